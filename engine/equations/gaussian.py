"""Gaussian data in closed form: exact marginals, the exact score operator, and a sampler's exact output law.

For data ``x_0 ~ N(mu, C)`` every equation of the engine is linear with Gaussian transitions,

    x_t = M_t x_0 + S_t e,        e ~ N(0, Q),

where ``M_t`` and ``S_t`` are symmetric operators, diagonal in the equation's eigenbasis and commuting
with ``Q``: the scalars ``m(t) I`` and ``s(t) I`` for ``vp``, ``subvp`` and ``ve`` (any Q), and per 2D DCT
mode ``m_k(t)``, ``shat_k(t)`` for ``hdm_spde`` and ``ihdm`` (:mod:`engine.equations.spde`). So ``x_t`` is
Gaussian too, and everything a score-based sampler needs is known exactly:

    law of x_t                       N( M_t mu,  Sigma_t ),      Sigma_t = M_t C M_t + S_t^2 Q
    Q-preconditioned score           Q grad log p_t(x) = -Q Sigma_t^{-1} (x - M_t mu)
    ideal noise prediction           e_hat(x, t) = E[e | x_t = x]   = S_t Q Sigma_t^{-1} (x - M_t mu)
    ideal denoiser (Tweedie)         x0_hat(x, t) = E[x_0 | x_t = x] = mu + C M_t Sigma_t^{-1} (x - M_t mu)

``e_hat`` is what a network trained by denoising score matching converges to, and the samplers' rule
``Q grad log p_t = -S_t^{-1} e_hat`` (:meth:`Equation.q_score_from_noise`) turns it into the exact score. With
it, any consistent sampler must reproduce ``N(mu, C)`` as its steps grow; what is left at a finite step
count is the sampler's own discretisation error (and the prior's mismatch, if started from
:func:`prior_law` rather than the exact law at T).

Because ``e_hat`` is affine in ``x``, a sampler's output is affine in its start ``x_T`` and in its noise draws,
and :func:`exact_output_law` computes the output's mean and covariance *exactly*, with no Monte-Carlo
noise, by pushing basis vectors through an unmodified sampler. That is the test bench for a new sampler:
its covariance error against ``C`` is its discretisation error, measurable to 1e-6 and below.

Items are tensors of one item's ``shape`` (``(1, n)`` for curves on an n-point grid, ``(1, H, W)`` for
images); ``C`` is a dense matrix over the flattened item (row-major), so this is for small items (a few
thousand values at most). Everything here computes in float64 on the CPU.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import torch

from engine.equations.base import Equation
from engine.errors import ConfigError

__all__ = ["GaussianNoisePredictor", "exact_output_law", "gaussian_marginal", "item_shape", "marginal_operators",
           "prior_law", "sampler_affine_map"]

_F64 = torch.float64


def item_shape(equation: Equation, channels: int = 1) -> tuple[int, ...]:
    """One item's shape on the equation's grid: ``(channels, n)`` for a grid's Q, ``(channels, H, W)`` for an
    image's."""
    Q = equation.Q
    spatial = tuple(Q.shape) if hasattr(Q, "H") else (int(Q.n),)
    return (int(channels), *spatial)


def _as_f64(a, what: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a), dtype=_F64)
    if not bool(torch.isfinite(t).all()):
        raise ConfigError(f"the {what} must be finite")
    return t


def _resolve_shape(equation: Equation, n: int, shape: tuple[int, ...] | None) -> tuple[int, ...]:
    if shape is None:
        spatial = item_shape(equation)[1:]
        size = math.prod(spatial)
        if n % size:
            raise ConfigError(f"a {n} x {n} covariance does not fit this equation's grid of {size} values "
                              "(pass shape=)")
        shape = (n // size, *spatial)
    shape = tuple(int(s) for s in shape)
    if math.prod(shape) != n:
        raise ConfigError(f"a {n} x {n} covariance does not fit items of shape {shape}")
    return shape


def marginal_operators(equation: Equation, t: float | torch.Tensor, shape: tuple[int, ...] | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The dense matrices ``(M_t, S_t, Q)`` of ``x_t = M_t x_0 + S_t e``, ``e ~ N(0, Q)``, over one flattened item.

    float64 [n, n], n = prod(shape) (default shape :func:`item_shape`), each symmetric; built by applying the
    equation's own operators (:meth:`Equation.scale_modes`, ``Q.apply``) to the basis vectors, so they are
    the operators the samplers use. ``M_t`` and ``S_t`` commute with ``Q``. Channels evolve independently.
    """
    shape = item_shape(equation) if shape is None else tuple(int(s) for s in shape)
    n = math.prod(shape)
    basis = torch.eye(n, dtype=_F64).reshape(n, *shape)
    t0 = torch.as_tensor(float(t), dtype=_F64)
    m, s = equation.mode_coefs(t0)
    # row i of each is the operator applied to e_i: the transpose of its matrix
    M = equation.scale_modes(m, basis).reshape(n, n).T
    S = equation.scale_modes(s, basis).reshape(n, n).T
    Q = equation.Q.apply(basis).reshape(n, n).T
    sym = lambda A: 0.5 * (A + A.T)  # noqa: E731 - exact up to round-off; keep it exactly symmetric
    return sym(M).contiguous(), sym(S).contiguous(), sym(Q).contiguous()


def gaussian_marginal(equation: Equation, t: float | torch.Tensor, cov, mean=None,
                      shape: tuple[int, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The exact law of ``x_t`` for data ``N(mean, cov)``: ``(M_t mean, M_t cov M_t + S_t^2 Q)``.

    ``cov`` is [n, n] over one flattened item, ``mean`` [n] (default 0); returns float64 numpy arrays
    ``([n], [n, n])``. At ``t = equation.T`` this is the law a sampler should start from to reproduce the
    data exactly in the limit of many steps (:func:`prior_law` is the HDM prior, which drops ``M_T mean`` and
    ``M_T cov M_T``).
    """
    C = _as_f64(cov, "covariance")
    n = C.shape[0]
    if C.shape != (n, n):
        raise ConfigError(f"the covariance must be a square matrix, got shape {tuple(C.shape)}")
    mu = torch.zeros(n, dtype=_F64) if mean is None else _as_f64(mean, "mean").reshape(-1)
    if mu.numel() != n:
        raise ConfigError(f"the mean has {mu.numel()} values, the covariance {n}")
    M, S, Q = marginal_operators(equation, t, _resolve_shape(equation, n, shape))
    return (M @ mu).numpy(), (M @ C @ M + S @ Q @ S).numpy()


def prior_law(equation: Equation, shape: tuple[int, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The law of ``equation.prior_sample``: ``N(0, S_T Q S_T)`` over one flattened item (float64 numpy).

    This is the exact law at T of data with mean 0 less its ``M_T C M_T`` part; ``ve``'s prior is centred on 0
    (add the data mean to its draws, as the HDM prior does for ``ve``). ConfigError for ``ihdm``, whose law at
    T is not Gaussian (its prior is made of blurred training items).
    """
    from engine.equations.spde import IHDMEquation

    if isinstance(equation, IHDMEquation):
        raise ConfigError("the IHDM process never forgets the image mean, so it has no Gaussian prior; "
                          "start from gaussian_marginal(equation, equation.T, ...) instead")
    _, S, Q = marginal_operators(equation, equation.T, shape)
    return np.zeros(S.shape[0]), (S @ Q @ S).numpy()


class GaussianNoisePredictor:
    """The exact noise predictor (score operator) for data ``N(mean, cov)`` under ``equation``.

    Called like a network's predictor, ``predictor(x, t) -> e_hat`` with

        e_hat(x, t) = S_t Q Sigma_t^{-1} (x - M_t mean),     Sigma_t = M_t cov M_t + S_t^2 Q,

    the posterior mean of the coloured noise ``e`` given ``x_t = x`` (see the module docstring), so
    ``equation.q_score_from_noise(e_hat, t) = Q grad log p_t(x)`` exactly, and every sampler in
    :mod:`engine.samplers` driven by it reproduces ``N(mean, cov)`` as its steps grow. Works for every
    equation of the engine: ``vp``, ``subvp``, ``ve``, ``hdm_spde``, ``ihdm`` (with any Q).

    Args:
        equation: the forward equation, bound to the grid of the items.
        cov: the data covariance ``C``, [n, n] over one flattened item (numpy or torch).
        mean: the data mean, [n] or item-shaped; default 0.
        shape: one item's shape (prod = n); default ``(n // size, *grid)`` with ``size`` the grid's size
            (``(1, n)`` on a grid, ``(1, H, W)`` on an image). States ``x`` of shape [B, *extra, *shape] with
            more leading axes are read as ``B * prod(extra)`` independent items (e.g. ``cov`` per channel).
        both: also give the predictor ``both(x, t) -> (e_hat, x0_hat)`` with the exact denoiser
            ``x0_hat = mean + C M_t Sigma_t^{-1} (x - M_t mean)``, computed without Tweedie's division by
            ``M_t`` (what a v-parameterised network provides; the samplers use ``both`` when present, see
            :func:`engine.samplers.predict`). Default False: a plain noise predictor, whose ``x0_hat`` the
            samplers then form by Tweedie.

    ``x`` may have any float dtype and device: the arithmetic is float64 on the CPU and the result is cast back
    to ``x``'s dtype and device. Times ``t`` are [B] (rows may differ) or a scalar. ``calls`` counts the calls.
    Per time, the matrices are computed once (``O(n^3)``) and cached for the last few times.
    """

    CACHE = 8

    def __init__(self, equation: Equation, cov, mean=None, *, shape: tuple[int, ...] | None = None,
                 both: bool = False) -> None:
        self.equation = equation
        self.cov = _as_f64(cov, "covariance")
        n = self.cov.shape[0]
        if self.cov.shape != (n, n):
            raise ConfigError(f"the covariance must be a square matrix, got shape {tuple(self.cov.shape)}")
        if not torch.allclose(self.cov, self.cov.T, rtol=1e-10, atol=1e-12 * float(self.cov.abs().max())):
            raise ConfigError("the covariance must be symmetric")
        self.mean = torch.zeros(n, dtype=_F64) if mean is None else _as_f64(mean, "mean").reshape(-1)
        if self.mean.numel() != n:
            raise ConfigError(f"the mean has {self.mean.numel()} values, the covariance {n}")
        self.shape = _resolve_shape(equation, n, shape)
        self.n = n
        self.calls = 0
        self._cache: OrderedDict[float, tuple[torch.Tensor, ...]] = OrderedDict()
        if both:
            self.both = self._both

    # -- per-time matrices ------------------------------------------------------------------------
    def _at(self, t: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(M_t mean, A_e, A_x0)`` with ``e_hat = A_e (x - M_t mean)`` and ``x0_hat = mean + A_x0 (x - M_t mean)``."""
        hit = self._cache.get(t)
        if hit is not None:
            self._cache.move_to_end(t)
            return hit
        M, S, Q = marginal_operators(self.equation, t, self.shape)
        sigma = M @ self.cov @ M + S @ Q @ S
        # Sigma^{-1} (Q S) and Sigma^{-1} (M C); transposed, as Sigma, Q S and M are symmetric:
        sol = torch.linalg.solve(sigma, torch.cat([Q @ S, M @ self.cov], dim=1))
        A_e, A_x0 = sol[:, :self.n].T.contiguous(), sol[:, self.n:].T.contiguous()
        out = (M @ self.mean, A_e, A_x0)
        self._cache[t] = out
        if len(self._cache) > self.CACHE:
            self._cache.popitem(last=False)
        return out

    def marginal(self, t: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact law of ``x_t``: ``(M_t mean, Sigma_t)``, float64 ``([n], [n, n])``."""
        M, S, Q = marginal_operators(self.equation, t, self.shape)
        return M @ self.mean, M @ self.cov @ M + S @ Q @ S

    def _apply(self, x: torch.Tensor, t: torch.Tensor, which: tuple[int, ...]) -> list[torch.Tensor]:
        if x.ndim < 1 or x.numel() % self.n or x.numel() == 0:
            raise ConfigError(f"states must hold items of shape {self.shape}, got a tensor of shape {tuple(x.shape)}")
        rows = x.numel() // self.n
        B = x.shape[0]
        if rows % B:
            raise ConfigError(f"states must hold items of shape {self.shape}, got a tensor of shape {tuple(x.shape)}")
        xf = x.to(device="cpu", dtype=_F64).reshape(rows, self.n)  # differentiable: DPS takes gradients
        tt = torch.as_tensor(t).detach().to(device="cpu", dtype=_F64).reshape(-1)
        if tt.numel() == 1:
            tt = tt.expand(B)
        if tt.numel() != B:
            raise ConfigError(f"got {tt.numel()} times for a batch of {B}")
        tt = tt.repeat_interleave(rows // B)

        def at(tv: float, xs: torch.Tensor) -> list[torch.Tensor]:
            mt, *mats = self._at(tv)
            r = xs - mt
            return [(self.mean if k == 2 else 0.0) + r @ mats[k - 1].T for k in which]

        times = torch.unique(tt).tolist()
        if len(times) == 1:
            outs = at(times[0], xf)
        else:  # rows at different times: each group with its own matrices, put back in place
            outs = [torch.zeros_like(xf) for _ in which]
            for tv in times:
                idx = torch.nonzero(tt == tv).reshape(-1)
                outs = [o.index_put((idx,), v) for o, v in zip(outs, at(tv, xf[idx]))]
        return [o.reshape(x.shape).to(device=x.device, dtype=x.dtype) for o in outs]

    # -- the predictor interface ----------------------------------------------------------------
    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``e_hat = S_t Q Sigma_t^{-1} (x - M_t mean)``, shaped and typed like ``x``."""
        self.calls += 1
        return self._apply(x, t, (1,))[0]

    def denoised(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The exact denoiser ``x0_hat = E[x_0 | x_t = x] = mean + C M_t Sigma_t^{-1} (x - M_t mean)``."""
        return self._apply(x, t, (2,))[0]

    def q_score(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``Q grad log p_t(x) = -Q Sigma_t^{-1} (x - M_t mean)`` (``= equation.q_score_from_noise(e_hat, t)``)."""
        return self.equation.q_score_from_noise(self(x, t), torch.as_tensor(t, dtype=_F64))

    def _both(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        e_hat, x0 = self._apply(x, t, (1, 2))
        return e_hat, x0


# -- the exact output law of a sampler -------------------------------------------------------------
class _BasisRNG:
    """A stand-in for :class:`engine.rng.SampleRNG` whose ``c``-th draw puts ``e_j`` in row ``1 + n + c n + j``."""

    def __init__(self, n: int, draws: int, shape: tuple[int, ...]) -> None:
        self.n, self.shape, self.calls, self.draws = n, tuple(shape), 0, draws
        self.rows = 1 + n + draws * n

    def __len__(self) -> int:
        return self.rows

    def _check(self, shape: tuple[int, ...]) -> None:
        if tuple(shape) != self.shape:
            raise ConfigError(f"exact_output_law needs every draw to be rng.randn(*item_shape) with item shape "
                              f"{self.shape}; the sampler drew shape {tuple(shape)}")

    def randn(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        self._check(shape)
        if self.calls >= self.draws:
            raise ConfigError("the sampler drew more noise than in its counting run: exact_output_law needs a "
                              "sampler whose number of draws does not depend on the state")
        z = torch.zeros(self.rows, self.n, dtype=_F64)
        lo = 1 + self.n + self.calls * self.n
        z[lo:lo + self.n] = torch.eye(self.n, dtype=_F64)
        self.calls += 1
        return z.reshape(self.rows, *shape).to(dtype)


class _CountingRNG(_BasisRNG):
    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__(0, 0, shape)
        self.rows = 1

    def randn(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        self._check(shape)
        self.calls += 1
        return torch.zeros(1, *shape, dtype=dtype)


Sampler = Callable[..., torch.Tensor]


def sampler_affine_map(sampler: Sampler, predictor, equation: Equation, ts: torch.Tensor, shape: tuple[int, ...],
                       **kwargs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A sampler's output as an affine map of its start and its noise: ``(b, A, B)`` with

        x_0 = b + A x_T + B z,       z = (z_1, ..., z_D) the sampler's D draws ``rng.randn(*shape)``, stacked,

    exact for an affine ``predictor`` (:class:`GaussianNoisePredictor`): float64 numpy ``b`` [n], ``A`` [n, n],
    ``B`` [n, D n], n = prod(shape). The sampler runs unmodified (any callable with the engine's sampler
    signature, ``sampler(predictor, equation, x_T, ts, rng=..., **kwargs)``), twice: once to count its draws,
    once on the batch ``[0, e_1, ..., e_n, 0, ...]`` of ``1 + n + D n`` float64 rows, where the draws are basis
    vectors too. It must draw all its randomness through ``rng.randn(*shape, dtype=...)``, the same number of
    times whatever the state, and must not mix batch rows. Memory: about ``(1 + n + D n) n`` floats per state.
    """
    shape = tuple(int(s) for s in shape)
    n = math.prod(shape)
    counting = _CountingRNG(shape)
    sampler(predictor, equation, torch.zeros(1, *shape, dtype=_F64), ts, rng=counting, **kwargs)
    rng = _BasisRNG(n, counting.calls, shape)
    x = torch.zeros(rng.rows, n, dtype=_F64)
    x[1:1 + n] = torch.eye(n, dtype=_F64)
    out = sampler(predictor, equation, x.reshape(rng.rows, *shape), ts, rng=rng, **kwargs)
    if rng.calls != counting.calls:
        raise ConfigError(f"the sampler drew {rng.calls} times, then {counting.calls}: exact_output_law needs a "
                          "number of draws that does not depend on the state")
    out = out.detach().cpu().reshape(rng.rows, n).double()
    b = out[0]
    A = (out[1:1 + n] - b).T
    B = (out[1 + n:] - b).T
    return b.numpy(), A.numpy(), B.numpy()


def exact_output_law(sampler: Sampler, predictor, equation: Equation, ts: torch.Tensor, shape: tuple[int, ...],
                     mean_T, cov_T, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """The mean and covariance of a sampler's output, exactly (no Monte-Carlo noise), for an affine predictor.

    With the sampler's output ``x_0 = b + A x_T + B z`` (:func:`sampler_affine_map`), ``x_T ~ N(mean_T, cov_T)``
    and ``z ~ N(0, I)`` independent:

        mean = b + A mean_T,        cov = A cov_T A^T + B B^T.

    ``shape`` is one item's shape; the law is of the flattened item, float64 numpy ``([n], [n, n])``.
    ``mean_T``, ``cov_T``: the start's law, e.g. :func:`gaussian_marginal` at ``equation.T`` (then any error
    against the data law left is the sampler's discretisation error) or :func:`prior_law` (adds the prior's
    mismatch). ``kwargs`` go to the sampler. Guarantee: exact to float64 round-off whenever ``predictor`` is
    affine in ``x`` (as :class:`GaussianNoisePredictor` is) and the sampler meets
    :func:`sampler_affine_map`'s conditions.
    """
    b, A, B = sampler_affine_map(sampler, predictor, equation, ts, shape, **kwargs)
    n = b.size
    mT = np.asarray(mean_T.detach().cpu() if isinstance(mean_T, torch.Tensor) else mean_T, dtype=np.float64)
    cT = np.asarray(cov_T.detach().cpu() if isinstance(cov_T, torch.Tensor) else cov_T, dtype=np.float64)
    if mT.size != n or cT.shape != (n, n):
        raise ConfigError(f"the start's law must be a mean of {n} values and a {n} x {n} covariance, got "
                          f"{mT.shape} and {cT.shape}")
    return b + A @ mT.reshape(-1), A @ cT @ A.T + B @ B.T
