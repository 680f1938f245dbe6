"""Power of a kernel two-sample test between generated and real curves (lower is better).

The protocol (the paper's headline metric for functions, without the reference code's
block-size defect):

1. **Curves.** Samples are [N, n] or [N, C, n]; channels are flattened, so a curve is a
   vector of ``d = C * n`` values. Both samples must share (C, n).
2. **Norm and kernel.** ``||f - g||^2 = (1/d) * sum_i (f_i - g_i)^2`` (the grid L2 norm
   divided by sqrt(d)) and ``k(f, g) = exp(-||f - g||^2 / (2 gamma^2))``.
3. **Bandwidth.** ``gamma`` is the median heuristic of *each test*: the median (the mean of
   the two middle values for an even count) of the ``2m(2m-1)/2`` distances between distinct
   curves of that test's pooled sample of ``2m`` curves. If that median is 0 (more than half
   the pairs are duplicates), the mean of the positive distances is used, or 1 if there are
   none. The bandwidth is invariant under relabelling, so the permutation test stays exact.
4. **Statistic.** Unbiased MMD^2 (U-statistic, the diagonals of the within-sample kernel
   blocks excluded)::

       MMD^2 = sum_{i!=j} k(x_i,x_j)/(m(m-1)) + sum_{i!=j} k(y_i,y_j)/(m(m-1))
               - 2 sum_{i,j} k(x_i,y_j)/m^2

5. **p-value.** ``permutations`` uniformly random relabellings of the pooled ``2m`` curves
   into two groups of ``m``: ``p = (1 + #{perm >= observed}) / (1 + permutations)`` (ties
   within 1e-11, i.e. rounding, count as ``>=``). The test rejects when ``p <= alpha``.
   Settings where even ``p = 1/(1 + permutations)`` exceeds ``alpha`` are refused, as are blocks too
   small to reject: ``2m`` curves split into ``m + m`` in ``C(2m, m)`` ways and MMD^2 is symmetric in
   the two groups, so the observed split and its mirror image give ``p >= 2 / C(2m, m)`` (0.1 for 3
   vs 3, where any generator would score a power of 0 %); ``m >= 4`` at ``alpha = 0.05``.
6. **Blocks.** Each test compares ``m = block_size`` generated with ``m`` real curves
   (*balanced*, whatever the sizes N and M of the two samples). A repeat draws a fresh random
   assignment of curves to ``B = min(N, M) // m`` disjoint blocks (capped by ``max_blocks``),
   so no curve is used twice within a repeat. Curves left over are unused in that repeat.
   The null relabellings of block b are ``S_p o sigma_b`` (p = 1..P): P uniform random
   splits ``S_p`` drawn afresh each repeat, composed with a fresh uniform reordering
   ``sigma_b`` of that block's curves. For every block they are P i.i.d. uniform
   relabellings (so each p-value is exact), and for a given p they are independent across
   blocks; this needs one [P, 2m] shuffle per repeat instead of B * P of them.
7. **Power.** ``100 *`` the rejection rate over the B blocks of a repeat; the result reports
   the mean and the (population) standard deviation over ``repeats`` repeats. The spread is
   resampling noise: it says nothing about the generator's own variability.
8. **Randomness.** Repeat r uses its own ``numpy.random.Generator`` seeded from
   ``numpy.random.SeedSequence([seed, r])``; global RNG state is never read or changed, so a
   result depends only on the data and the arguments (and not on ``repeats``: repeat r is
   the same whatever the number of repeats).

The reference code slices its kernel matrix with the size of the *other* sample whenever
the two sizes differ (10 generated vs 2 real on Melbourne), which makes the test blind; here
the blocks are balanced by construction.

Everything is vectorised: per repeat, the [B, 2m, 2m] Gram matrices of all blocks come from
one batched matrix product, and, blocks being balanced, the MMD^2 of a relabelling is an
increasing function of the quadratic form ``w'Kw`` of its +-1 label vector (see
:func:`_mmd2_balanced`); all B x P forms come from one GEMM (in chunks of a few million
entries), never a Python loop over blocks or permutations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from engine.errors import Cancelled, ConfigError, DataError
from engine.metrics._inputs import ArrayLike, as_curves, as_pair, check_alpha, check_int

_TIE_TOL = 1e-11  # kernel values lie in [0, 1]; MMD^2 rounding errors are ~1e-15
_CHUNK_ELEMENTS = 1 << 22  # entries of the largest temporary (~32 MiB in float64)


@dataclass(frozen=True)
class PowerResult:
    """Outcome of :func:`mmd_power` (percentages in [0, 100])."""

    power: float  # mean rejection rate over repeats, %
    std: float  # population std of the per-repeat rates, %
    per_repeat: tuple[float, ...]  # rejection rate of each repeat, %
    block_size: int  # m: curves of each sample per test
    n_blocks: int  # B: tests per repeat
    repeats: int
    permutations: int
    alpha: float

    @property
    def n_tests(self) -> int:
        """Total number of tests run (``n_blocks * repeats``)."""
        return self.n_blocks * self.repeats

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (``per_repeat`` as a list)."""
        d = asdict(self)
        d["per_repeat"] = list(self.per_repeat)
        d["n_tests"] = self.n_tests
        return d


# --------------------------------------------------------------------------- kernel pieces


def _pairwise_sq_dists(x: torch.Tensor) -> torch.Tensor:
    """Normalised squared distances ``||x_i - x_j||^2 / d`` for x [B, N, d] -> [B, N, N].

    Each batch is centred first (distances are translation invariant), which keeps the
    Gram-matrix formula accurate for curves with large offsets; the diagonal is exactly 0.
    """
    x = x - x.mean(dim=1, keepdim=True)
    sq = (x * x).sum(-1)
    d2 = (sq[:, :, None] + sq[:, None, :] - 2.0 * torch.matmul(x, x.transpose(1, 2))).clamp_min_(0.0)
    d2.diagonal(dim1=1, dim2=2).zero_()
    return d2 / x.shape[-1]


def _median_bandwidth(d2: torch.Tensor) -> torch.Tensor:
    """Median heuristic per batch: [B, N, N] squared distances -> gamma [B].

    The median of the distances over pairs i < j (an even count averages the two middle
    values); a zero median falls back to the mean positive distance, or 1.
    """
    n = d2.shape[-1]
    iu = torch.triu_indices(n, n, offset=1)
    pairs = d2[:, iu[0], iu[1]]  # squared distances, [B, L]
    k = pairs.shape[-1]
    lower = pairs.kthvalue((k + 1) // 2, dim=-1).values  # the (k+1)//2-th smallest
    if k % 2:
        upper = lower
    else:  # the next order statistic: lower again if it is repeated, else the next value up
        repeated = (pairs <= lower[:, None]).sum(-1) > k // 2
        above = pairs.masked_fill(pairs <= lower[:, None], float("inf")).min(-1).values
        upper = torch.where(repeated, lower, above)
    med = 0.5 * (lower.sqrt() + upper.sqrt())
    dist = pairs.sqrt()
    pos = (dist > 0).sum(-1)
    mean_pos = dist.sum(-1) / pos.clamp_min(1)
    fallback = torch.where(pos > 0, mean_pos, torch.ones_like(mean_pos))
    return torch.where(med > 0, med, fallback)


def _gaussian_gram(x: torch.Tensor, bandwidth: torch.Tensor | None = None) -> torch.Tensor:
    """Kernel matrices [B, N, N] of x [B, N, d]; bandwidth [B] or None (median heuristic)."""
    d2 = _pairwise_sq_dists(x)
    gamma = _median_bandwidth(d2) if bandwidth is None else bandwidth
    return torch.exp(-d2 / (2.0 * gamma[:, None, None] ** 2))


def _quadratic_forms(gram: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """``q[b, p] = w_p' K_b w_p`` for gram [B, N, N] and shared sign vectors [P, N] -> [B, P].

    Small N: one GEMM of the flattened Gram matrices with the flattened outer products
    ``w w'``; large N: one GEMM ``W K`` per chunk of blocks, then a row-wise dot with W.
    """
    b, n, _ = gram.shape
    p = signs.shape[0]
    if p * n * n <= _CHUNK_ELEMENTS:
        outer = (signs[:, :, None] * signs[:, None, :]).reshape(p, n * n)
        return gram.reshape(b, n * n) @ outer.T
    chunk = max(1, _CHUNK_ELEMENTS // (p * n))
    out = []
    for lo in range(0, b, chunk):
        g = gram[lo : lo + chunk]
        wk = (signs @ g.permute(1, 0, 2).reshape(n, -1)).view(p, g.shape[0], n)  # [P, Bc, N]
        out.append((wk * signs[:, None, :]).sum(-1).T)
    return torch.cat(out)


def _mmd2_balanced(gram: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD^2 of balanced labellings: gram [B, 2m, 2m], signs [P, 2m] -> [B, P].

    ``signs`` are +1 (X) / -1 (Y) with m of each. With ``q = w'Kw``, ``T = 1'K1`` and
    ``t = tr K``: ``S_xx + S_yy = (T + q)/2`` and ``S_xy = (T - q)/4``, so::

        MMD^2 = ((T + q)/2 - t) / (m(m-1)) - (T - q) / (2 m^2),

    increasing in ``q``: one quadratic form per labelling gives the whole statistic.
    """
    m = gram.shape[-1] // 2
    q = _quadratic_forms(gram, signs)
    total = gram.sum(dim=(-2, -1))[:, None]
    trace = gram.diagonal(dim1=-2, dim2=-1).sum(-1)[:, None]
    return ((total + q) / 2.0 - trace) / (m * (m - 1)) - (total - q) / (2.0 * m * m)


def _random_signs(p: int, m: int, rng: np.random.Generator) -> torch.Tensor:
    """[p, 2m] float64 +-1 vectors, each a uniformly random split of 2m curves into m + m."""
    base = np.repeat(np.array([1.0, -1.0]), m)
    return torch.from_numpy(rng.permuted(np.broadcast_to(base, (p, 2 * m)), axis=1))


def _shuffle_blocks(gram: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Each block's Gram matrix [B, N, N] with rows and columns under its own random order."""
    b, n, _ = gram.shape
    order = torch.from_numpy(rng.permuted(np.broadcast_to(np.arange(n), (b, n)), axis=1))
    return gram[torch.arange(b)[:, None, None], order[:, :, None], order[:, None, :]]


def _block_pvalues(gram: torch.Tensor, m: int, permutations: int, rng: np.random.Generator) -> torch.Tensor:
    """Permutation p-values of B balanced blocks: gram [B, 2m, 2m] (generated first) -> [B].

    The null labellings of block b are ``S_p o sigma_b``: P uniformly random splits
    ``S`` shared by the repeat, composed with a fresh uniform reordering ``sigma_b`` of that
    block's curves. For each block they are P i.i.d. uniform relabellings, and for a given p
    they are independent across blocks; it costs one small sort instead of B * P of them.
    """
    base = torch.cat([torch.ones(m), -torch.ones(m)]).to(torch.float64)[None, :]
    observed = _mmd2_balanced(gram, base)  # [B, 1]
    null = _mmd2_balanced(_shuffle_blocks(gram, rng), _random_signs(permutations, m, rng))  # [B, P]
    count = (null >= observed - _TIE_TOL).sum(-1).to(torch.float64)
    return (1.0 + count) / (1.0 + permutations)


def _repeat_generator(seed: int, repeat: int) -> np.random.Generator:
    """An independent stream for repeat ``repeat`` of a run seeded ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([seed, repeat]))


# --------------------------------------------------------------------------- public API


def median_heuristic(x: ArrayLike) -> float:
    """The median-heuristic bandwidth gamma of one pooled sample x [N, n] or [N, C, n] (N >= 2)."""
    t = as_curves(x, "pooled")
    if t.shape[0] < 2:
        raise DataError("the median heuristic needs at least 2 curves")
    return float(_median_bandwidth(_pairwise_sq_dists(t.flatten(1)[None]))[0])


def mmd2_unbiased(generated: ArrayLike, real: ArrayLike, bandwidth: float | None = None) -> float:
    """Unbiased MMD^2 between two samples (each >= 2 curves, sizes may differ).

    ``bandwidth`` is gamma; None uses the median heuristic of the pooled sample. This is the
    exact code path of :func:`mmd_power` (one labelling instead of a batch).
    """
    g, r = as_pair(generated, real)
    if g.shape[0] < 2 or r.shape[0] < 2:
        raise DataError("unbiased MMD^2 needs at least 2 curves in each sample")
    if bandwidth is not None and not (math.isfinite(bandwidth) and bandwidth > 0):
        raise ConfigError(f"bandwidth must be a positive number, got {bandwidth!r}")
    n_x, n_y = g.shape[0], r.shape[0]
    pooled = torch.cat([g, r]).flatten(1)[None]
    gamma = None if bandwidth is None else torch.tensor([float(bandwidth)], dtype=torch.float64)
    gram = _gaussian_gram(pooled, gamma)
    if n_x == n_y:  # the path mmd_power takes
        signs = torch.cat([torch.ones(n_x), -torch.ones(n_y)]).to(torch.float64)[None, :]
        return float(_mmd2_balanced(gram, signs)[0, 0])
    k = gram[0]
    kxx, kyy, kxy = k[:n_x, :n_x], k[n_x:, n_x:], k[:n_x, n_x:]
    return float(
        (kxx.sum() - kxx.trace()) / (n_x * (n_x - 1))
        + (kyy.sum() - kyy.trace()) / (n_y * (n_y - 1))
        - 2.0 * kxy.sum() / (n_x * n_y)
    )


@dataclass(frozen=True)
class MMD2Floor:
    """What a perfect generator scores in :func:`mmd2_unbiased` against one fixed held-out set (:func:`mmd2_floor`)."""

    mean: float
    std: float  # population std over the draws
    low: float
    high: float
    draws: int
    size: int  # curves per draw
    disjoint: bool  # False: the pool was too small and the draws overlap (the spread is then understated)

    @property
    def bar(self) -> float:
        """The most a perfect generator plausibly scores: mean + 2 sd of the draws."""
        return self.mean + 2 * self.std

    def within(self, mmd2: float) -> bool:
        """Whether ``mmd2`` cannot be told from a perfect generator's at this size (at most :attr:`bar`)."""
        return bool(mmd2 <= self.bar)

    def to_dict(self) -> dict:
        d = {**asdict(self), "bar": self.bar}
        return {k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in d.items()}


def mmd2_floor(pool: ArrayLike, real: ArrayLike, size: int, *, draws: int = 10, bandwidth: float | None = None,
               seed: int = 0) -> MMD2Floor:
    """The spread of :func:`mmd2_unbiased` for ``size`` curves of the data's own law against ``real``.

    ``pool`` holds more curves of that law, independent of ``real`` (a training split, or fresh draws of
    a generated set); ``draws`` subsets of ``size`` curves, disjoint when the pool holds
    ``draws * size`` curves, are each scored against ``real`` at ``bandwidth``. A sampler's MMD^2 is
    only better or worse than another's where the difference exceeds this spread. It can be large:
    on Quadratic (two branches, a = +-1) MMD^2 at 1000 vs 1000 follows the share of each branch in
    the two samples, and perfect draws of 1000 scored -1e-3 to 5.3e-3 against the 1000 held-out curves
    (std 1.2e-3 and 1.7e-3 in two sets of draws); with 5000 against 5000, -8e-5 to 7.5e-5.
    """
    check_int(size, "size", 2)
    check_int(draws, "draws", 2)
    p, r = as_curves(pool, "pool"), as_curves(real, "real")
    if p.shape[0] < size:
        raise DataError(f"the pool holds {p.shape[0]} curves, fewer than one draw of {size}")
    rng = np.random.default_rng(seed)
    disjoint = p.shape[0] >= draws * size
    order = rng.permutation(p.shape[0])
    values = []
    for k in range(draws):
        idx = order[k * size:(k + 1) * size] if disjoint else rng.choice(p.shape[0], size, replace=False)
        values.append(mmd2_unbiased(p[idx], r, bandwidth))
    v = np.asarray(values)
    return MMD2Floor(float(v.mean()), float(v.std()), float(v.min()), float(v.max()), draws, size, disjoint)


def min_block_size(alpha: float = 0.05) -> int:
    """The smallest block ``m`` whose ``m`` vs ``m`` permutation test can reject at ``alpha``:
    ``2 / C(2m, m) < alpha`` (the observed split and its mirror image tie, and the observed one is counted
    in the p-value besides the random relabellings, so equality is not enough)."""
    a = check_alpha(alpha)
    m = 2
    while 2.0 / math.comb(2 * m, m) >= a:
        m += 1
    return m


def _check_settings(block_size, repeats, permutations, alpha, seed, max_blocks) -> tuple:
    m = check_int(block_size, "block_size", 2)
    reps = check_int(repeats, "repeats", 1)
    perms = check_int(permutations, "permutations", 1)
    a = check_alpha(alpha)
    s = check_int(seed, "seed", 0)
    cap = None if max_blocks is None else check_int(max_blocks, "max_blocks", 1)
    if 1.0 / (1.0 + perms) > a:
        need = math.ceil(1.0 / a - 1.0)
        raise ConfigError(f"permutations={perms} can never reach alpha={a}: use at least {need}")
    if m < (need := min_block_size(a)):
        splits = math.comb(2 * m, m)
        raise ConfigError(f"block_size={m}: {m} vs {m} items split {splits} ways, so the test's p-value is at least "
                          f"2/{splits} = {2 / splits:.3g}, not below alpha={a}, and it can never reject; use blocks "
                          f"of at least {need} items of each sample")
    return m, reps, perms, a, s, cap


def mmd_power(
    generated: ArrayLike,
    real: ArrayLike,
    *,
    block_size: int = 10,
    repeats: int = 30,
    permutations: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    max_blocks: int | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> PowerResult:
    """Power (%) of the balanced-block kernel two-sample test (protocol in the module doc).

    Args:
        generated: [N, n] or [N, C, n] curves (numpy or torch).
        real: [M, n] or [M, C, n] curves with the same (C, n).
        block_size: m, curves of *each* sample per test (>= 2).
        repeats: independent re-draws of the block assignment and permutations.
        permutations: random relabellings per test.
        alpha: test level in (0, 1).
        seed: non-negative integer; the result is a function of (data, arguments).
        max_blocks: optional cap on the number of blocks per repeat.
        should_stop: a cancel token, asked before each repeat (raises :class:`~engine.errors.Cancelled`).

    Raises:
        ConfigError: bad settings, or fewer than ``block_size`` curves in a sample.
        DataError: NaN/inf, wrong rank, or mismatched (C, n).
    """
    m, reps, perms, a, s, cap = _check_settings(block_size, repeats, permutations, alpha, seed, max_blocks)
    g, r = as_pair(generated, real)
    g, r = g.flatten(1), r.flatten(1)
    n_blocks = min(g.shape[0], r.shape[0]) // m
    if n_blocks == 0:
        raise ConfigError(
            f"block_size={m} needs at least {m} curves in each sample; "
            f"got {g.shape[0]} generated and {r.shape[0]} real"
        )
    if cap is not None:
        n_blocks = min(n_blocks, cap)
    rates = []
    for k in range(reps):
        if should_stop is not None and should_stop():
            raise Cancelled("evaluation cancelled")
        rates.append(_one_repeat(g, r, m, n_blocks, perms, a, _repeat_generator(s, k)))
    arr = np.asarray(rates, dtype=np.float64)
    return PowerResult(
        power=float(arr.mean()),
        std=float(arr.std()),
        per_repeat=tuple(float(v) for v in arr),
        block_size=m,
        n_blocks=n_blocks,
        repeats=reps,
        permutations=perms,
        alpha=a,
    )


def _one_repeat(
    g: torch.Tensor,
    r: torch.Tensor,
    m: int,
    n_blocks: int,
    perms: int,
    alpha: float,
    rng: np.random.Generator,
) -> float:
    """Rejection rate (%) of one repeat: g [N, d], r [M, d] -> fresh disjoint blocks -> tests."""
    gi = torch.from_numpy(rng.permutation(g.shape[0])[: n_blocks * m].reshape(n_blocks, m))
    ri = torch.from_numpy(rng.permutation(r.shape[0])[: n_blocks * m].reshape(n_blocks, m))
    pooled = torch.cat([g[gi], r[ri]], dim=1)  # [B, 2m, d], generated first
    pvals = _block_pvalues(_gaussian_gram(pooled), m, perms, rng)
    return 100.0 * float((pvals <= alpha).to(torch.float64).mean())
