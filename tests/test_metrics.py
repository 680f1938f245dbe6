"""Metrics: kernel two-sample power (calibration, detection, defect 4) and functional errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from engine.errors import ConfigError, DataError
from engine.metrics import (
    PowerResult,
    evaluate_function_samples,
    functional_errors,
    mean_autocorrelation,
    median_heuristic,
    mmd2_floor,
    mmd2_unbiased,
    mmd_power,
)
from engine.metrics import twosample as ts

X = np.linspace(-10.0, 10.0, 100)


def quadratic(num: int, rng: np.random.Generator, *, plus_only: bool = False) -> np.ndarray:
    """``a x^2 + eps``: a = +-1 equiprobable (or +1), eps ~ N(0, 1) per curve; [num, 100]."""
    a = np.ones(num) if plus_only else rng.choice([-1.0, 1.0], size=num)
    return a[:, None] * X[None, :] ** 2 + rng.standard_normal(num)[:, None]


def gp_draws(num: int, rng: np.random.Generator, n: int = 50, ell: float = 2.0) -> np.ndarray:
    """Squared-exponential GP draws on linspace(-10, 10, n): [num, n]."""
    x = np.linspace(-10.0, 10.0, n)
    k = np.exp(-((x[:, None] - x[None, :]) ** 2) / ell**2) + 1e-8 * np.eye(n)
    return rng.standard_normal((num, n)) @ np.linalg.cholesky(k).T


# ---------------------------------------------------------------- naive references


def naive_sq_dist(f: np.ndarray, g: np.ndarray) -> float:
    return float(np.sum((f - g) ** 2) / f.size)


def naive_median(z: np.ndarray) -> float:
    d = [math.sqrt(naive_sq_dist(z[i], z[j])) for i in range(len(z)) for j in range(i + 1, len(z))]
    return float(np.median(d))


def naive_mmd2(x: np.ndarray, y: np.ndarray, gamma: float) -> float:
    def k(f, g):
        return math.exp(-naive_sq_dist(f, g) / (2.0 * gamma**2))

    n, m = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j)
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    sxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m))
    return sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2.0 * sxy / (n * m)


# ---------------------------------------------------------------- kernel pieces


def test_median_heuristic_matches_naive():
    rng = np.random.default_rng(1)
    for n_curves in (7, 8):  # odd and even number of pairs (21, 28)
        z = rng.standard_normal((n_curves, 2, 9)) * 3.0 + 100.0  # large offset: checks centring
        assert median_heuristic(z) == pytest.approx(naive_median(z.reshape(n_curves, -1)), rel=1e-12)


@pytest.mark.parametrize("sizes", [(6, 6), (5, 8)])
def test_mmd2_unbiased_matches_double_loop(sizes):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((sizes[0], 12))
    y = rng.standard_normal((sizes[1], 12)) + 0.3
    gamma = naive_median(np.concatenate([x, y]))
    assert mmd2_unbiased(x, y) == pytest.approx(naive_mmd2(x, y, gamma), rel=1e-10, abs=1e-14)
    assert mmd2_unbiased(x, y, bandwidth=0.7) == pytest.approx(naive_mmd2(x, y, 0.7), rel=1e-10, abs=1e-14)


def test_batched_relabelled_mmd2_matches_double_loop():
    """The vectorised permutation statistic: [B, 2m, 2m] Gram x [P, 2m] +-1 labels -> [B, P]."""
    rng = np.random.default_rng(3)
    b, m, d, p = 3, 5, 7, 6
    z = rng.standard_normal((b, 2 * m, d))
    z[1] += np.linspace(0, 1, d)  # blocks of different laws
    pooled = torch.tensor(z)
    gram = ts._gaussian_gram(pooled)
    signs = torch.tensor(np.stack([rng.permutation([1.0] * m + [-1.0] * m) for _ in range(p)]))
    got = ts._mmd2_balanced(gram, signs).numpy()
    assert got.shape == (b, p)
    for i in range(b):
        gamma = naive_median(z[i])
        for j in range(p):
            s = signs[j].numpy()
            want = naive_mmd2(z[i][s > 0], z[i][s < 0], gamma)
            assert got[i, j] == pytest.approx(want, rel=1e-10, abs=1e-14)


def test_quadratic_forms_chunked_path_matches_einsum(monkeypatch):
    """Large blocks take the chunked W K GEMM instead of the outer-product one: same numbers."""
    rng = np.random.default_rng(18)
    gram = ts._gaussian_gram(torch.tensor(rng.standard_normal((5, 8, 4))))
    signs = torch.tensor(np.stack([rng.permutation([1.0] * 4 + [-1.0] * 4) for _ in range(7)]))
    want = torch.einsum("pi,bij,pj->bp", signs, gram, signs)
    torch.testing.assert_close(ts._quadratic_forms(gram, signs), want, rtol=1e-13, atol=1e-13)
    monkeypatch.setattr(ts, "_CHUNK_ELEMENTS", 100)  # forces the GEMM path, 1 block per chunk
    torch.testing.assert_close(ts._quadratic_forms(gram, signs), want, rtol=1e-13, atol=1e-13)


# ---------------------------------------------------------------- the power protocol


def test_calibration_same_law_rejects_about_alpha():
    """2000 vs 2000 i.i.d. draws of one GP law, 10 vs 10: 200 tests x 16 repeats = 3200 tests."""
    rng = np.random.default_rng(4)
    res = mmd_power(gp_draws(2000, rng), gp_draws(2000, rng), block_size=10, repeats=16, seed=0)
    assert res.n_blocks == 200 and res.repeats * res.n_blocks >= 3000
    assert abs(res.power - 5.0) <= 2.0, res.power


def test_detects_quadratic_sign_mixture_at_10_vs_10():
    rng = np.random.default_rng(5)
    mixed = quadratic(300, rng)
    plus = quadratic(300, rng, plus_only=True)
    res = mmd_power(mixed, plus, block_size=10, repeats=10, seed=0)
    assert res.n_blocks == 30
    assert res.power >= 70.0, res.power


def test_mmd2_floor_is_what_the_data_law_itself_scores():
    # On Quadratic the MMD^2 of 200 vs 200 follows the share of each branch: a perfect generator scatters
    # around 0 by the floor's spread, and a generator with 65 % on one branch lies far above all of it.
    rng = np.random.default_rng(11)
    real, pool = quadratic(200, rng), quadratic(2000, rng)
    gamma = median_heuristic(real)
    floor = mmd2_floor(pool, real, 200, draws=10, bandwidth=gamma, seed=0)
    assert floor.disjoint and (floor.draws, floor.size) == (10, 200) and floor.std > 0
    assert floor.low <= floor.mean <= floor.high and abs(floor.mean) < 2 * floor.std
    a = np.where(np.arange(200) < 130, 1.0, -1.0)
    biased = a[:, None] * X[None, :] ** 2 + rng.standard_normal(200)[:, None]
    assert mmd2_unbiased(biased, real, gamma) > floor.high + 3 * floor.std
    assert floor.bar == pytest.approx(floor.mean + 2 * floor.std)
    assert floor.to_dict()["bar"] == pytest.approx(floor.bar, rel=1e-3)
    fresh = mmd2_unbiased(quadratic(200, rng), real, gamma)  # one more perfect draw: within (about 95 % of draws)
    assert floor.within(fresh) and not floor.within(mmd2_unbiased(biased, real, gamma))
    assert mmd2_floor(pool, real, 200, draws=10, bandwidth=gamma, seed=0) == floor
    overlapping = mmd2_floor(pool[:500], real, 200, draws=10, bandwidth=gamma)
    assert not overlapping.disjoint and json.dumps(overlapping.to_dict())
    with pytest.raises(DataError, match="fewer than one draw"):
        mmd2_floor(pool[:100], real, 200)
    with pytest.raises(ConfigError, match="draws"):
        mmd2_floor(pool, real, 200, draws=1)


def test_unequal_sizes_are_not_blind_defect_4():
    """1000 white-noise curves vs 20 Quadratic ones: 2 balanced blocks of 10 vs 10, both reject."""
    rng = np.random.default_rng(6)
    noise = rng.standard_normal((1000, 100))
    res = mmd_power(noise, quadratic(20, rng), block_size=10, repeats=10, seed=0)
    assert res.n_blocks == 2
    assert res.power >= 95.0, res.power
    # and the other way round (the sample sizes' order does not matter)
    res2 = mmd_power(quadratic(20, rng), noise, block_size=10, repeats=10, seed=0)
    assert res2.n_blocks == 2 and res2.power >= 95.0


def reference_style_power(
    gen: np.ndarray, real: np.ndarray, rng: np.random.Generator, perms: int = 200
) -> float:
    """Defect 4 re-enacted: n_tests = len(gen) // 10 slices of each sample (10 generated vs
    len(real) // n_tests real), the kernel matrix cut at the *real* slice size but normalised
    with the generated one, rejection when the statistic exceeds the null's 95 % quantile."""
    n_tests = len(gen) // 10
    m, n = len(gen) // n_tests, len(real) // n_tests
    rejected = []
    for t in range(n_tests):
        z = np.concatenate([gen[t * m : (t + 1) * m], real[t * n : (t + 1) * n]])
        d = np.sqrt(((z[:, None] - z[None]) ** 2).mean(-1))
        k = np.exp(-(d**2) / (2.0 * np.median(d[d > 0]) ** 2))

        def stat(kk: np.ndarray) -> float:
            kxx, kyy, kxy = kk[:n, :n], kk[n:, n:], kk[:n, n:]
            return (
                (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                - 2.0 * kxy.sum() / (m * n)
            )

        null = [stat(k[np.ix_(i, i)]) for i in (rng.permutation(len(z)) for _ in range(perms))]
        rejected.append(stat(k) > np.quantile(null, 0.95))
    return 100.0 * float(np.mean(rejected))


def test_reference_style_slicing_is_blind_where_balanced_blocks_are_not():
    """Melbourne's shape (10 generated vs 2 real per test): white noise vs Quadratic passes as
    'indistinguishable' under the reference slicing; balanced 10 vs 10 blocks reject every time."""
    rng = np.random.default_rng(17)
    noise, real = rng.standard_normal((100, 100)), quadratic(20, rng)
    assert reference_style_power(noise, real, rng) <= 10.0
    res = mmd_power(noise, real, block_size=10, repeats=5, permutations=200, seed=0)
    assert res.n_blocks == 2 and res.power == 100.0


def test_unequal_sizes_same_law_stay_calibrated():
    rng = np.random.default_rng(7)
    res = mmd_power(rng.standard_normal((1500, 30)), rng.standard_normal((100, 30)), block_size=10,
                    repeats=40, seed=0)
    assert res.n_blocks == 10
    assert res.power <= 10.0, res.power


def test_larger_balanced_blocks_see_what_10_vs_10_misses():
    """GP draws vs the same draws scaled by 1.3: near alpha at 10 vs 10, clear at 100 vs 100."""
    rng = np.random.default_rng(8)
    a, b = gp_draws(400, rng), 1.3 * gp_draws(400, rng)
    small = mmd_power(a, b, block_size=10, repeats=5, permutations=200, seed=0)
    big = mmd_power(a, b, block_size=100, repeats=5, permutations=200, seed=0)
    assert big.n_blocks == 4
    assert small.power < 25.0 and big.power >= 80.0, (small.power, big.power)


def test_seeds_reproduce_and_differ():
    rng = np.random.default_rng(9)
    a, b = rng.standard_normal((200, 20)), rng.standard_normal((200, 20)) + 0.2
    r1 = mmd_power(a, b, repeats=4, permutations=200, seed=3)
    r2 = mmd_power(torch.tensor(a), torch.tensor(b).float().double(), repeats=4, permutations=200, seed=3)
    assert r1 == r2
    r3 = mmd_power(a, b, repeats=4, permutations=200, seed=4)
    assert r3.per_repeat != r1.per_repeat
    # the global RNG is neither used nor changed
    state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()  # noqa: NPY002
    mmd_power(a, b, repeats=2, permutations=100, seed=0)
    assert torch.equal(state, torch.get_rng_state())
    assert np.array_equal(np_state, np.random.get_state()[1])  # noqa: NPY002


def test_repeat_streams_do_not_depend_on_the_number_of_repeats():
    rng = np.random.default_rng(19)
    a, b = rng.standard_normal((60, 12)), rng.standard_normal((60, 12)) + 0.3
    short = mmd_power(a, b, repeats=2, permutations=100, seed=5)
    long = mmd_power(a, b, repeats=4, permutations=100, seed=5)
    assert long.per_repeat[:2] == short.per_repeat


def test_power_result_fields_and_max_blocks():
    rng = np.random.default_rng(10)
    a, b = rng.standard_normal((100, 3, 8)), rng.standard_normal((80, 3, 8))
    res = mmd_power(a, b, block_size=10, repeats=3, permutations=100, max_blocks=5, seed=0)
    assert isinstance(res, PowerResult)
    assert res.n_blocks == 5 and res.repeats == 3 and len(res.per_repeat) == 3
    assert res.block_size == 10 and res.permutations == 100 and res.alpha == 0.05
    assert res.power == pytest.approx(float(np.mean(res.per_repeat)))
    assert all(0.0 <= v <= 100.0 and (v / 20.0).is_integer() for v in res.per_repeat)  # k of 5 blocks
    d = res.to_dict()
    json.dumps(d)
    assert {"power", "std", "n_blocks", "repeats", "per_repeat"} <= set(d)
    with pytest.raises(AttributeError):
        res.power = 0.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"block_size": 1},
        {"block_size": 0},
        {"block_size": 3},  # p >= 2/C(6, 3) = 0.1: can never reject
        {"block_size": 2.5},
        {"repeats": 0},
        {"permutations": 0},
        {"permutations": 10},  # p >= 1/11 can never reach alpha = 0.05
        {"alpha": 0.0},
        {"alpha": 1.0},
        {"alpha": -0.1},
        {"seed": -1},
        {"max_blocks": 0},
        {"block_size": 60},  # more than the 50 real curves
    ],
)
def test_bad_settings_raise_config_error(kwargs):
    rng = np.random.default_rng(11)
    with pytest.raises(ConfigError):
        mmd_power(rng.standard_normal((80, 5)), rng.standard_normal((50, 5)), **kwargs)


def test_blocks_too_small_to_reject_are_refused():
    """3 vs 3 curves split 20 ways; MMD^2 is symmetric, so the observed split ties with its mirror image and
    p >= 2/20 = 0.1: even disjoint distributions never reject at 5 %, and a motion evaluation of 3 samples read
    0 % power, "indistinguishable"."""
    import math

    import torch

    from engine.metrics.twosample import _block_pvalues, _gaussian_gram, min_block_size

    rng = np.random.default_rng(5)
    far = [rng.standard_normal((3, 8)), rng.standard_normal((3, 8)) + 50.0]
    gram = _gaussian_gram(torch.from_numpy(np.concatenate(far))[None])
    assert float(_block_pvalues(gram, 3, 2000, rng)[0]) >= 2 / math.comb(6, 3) - 0.02  # the floor, up to noise
    assert [min_block_size(a) for a in (0.1, 0.05, 0.01)] == [4, 4, 5]
    with pytest.raises(ConfigError, match="can never reject; use blocks of at least 4"):
        mmd_power(far[0], far[1], block_size=3)
    assert mmd_power(np.concatenate([far[0]] * 4), np.concatenate([far[1]] * 4), block_size=4, repeats=2,
                     permutations=200).power == 100.0


def test_bad_data_raise_data_error():
    rng = np.random.default_rng(12)
    good = rng.standard_normal((40, 6))
    bad = good.copy()
    bad[3, 2] = np.nan
    for g, r in [(bad, good), (good, bad), (good, rng.standard_normal((40, 7))),
                 (good, rng.standard_normal((40, 2, 6))), (good[0], good), (good, np.inf * good)]:
        with pytest.raises(DataError):
            mmd_power(g, r, block_size=5, repeats=1, permutations=100)
        with pytest.raises(DataError):
            functional_errors(g, r)
    for msg_exc in (ConfigError, DataError):
        try:
            mmd_power(bad, good) if msg_exc is DataError else mmd_power(good, good, block_size=1)
        except msg_exc as exc:
            assert "\n" not in str(exc) and str(exc)


# ---------------------------------------------------------------- functional errors


def test_functional_errors_small_for_one_law_large_for_another():
    rng = np.random.default_rng(13)
    a, b = gp_draws(3000, rng), gp_draws(3000, rng)
    same = functional_errors(a, b)
    assert set(same) >= {"mean_error", "variance_error", "acf_error", "spectrum_error",
                         "mean_std_generated", "mean_std_real"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in same.values())
    for key in ("mean_error", "variance_error", "acf_error", "spectrum_error"):
        assert same[key] < 0.1, (key, same[key])
    assert same["mean_std_real"] == pytest.approx(1.0, abs=0.05)

    rough = rng.standard_normal((3000, 50))  # white noise: same marginal variance, no correlation
    diff = functional_errors(rough, b)
    assert diff["acf_error"] > 0.5 and diff["spectrum_error"] > 1.0
    shifted = functional_errors(2.0 * a + 1.0, b)
    assert shifted["mean_error"] > 0.5 and shifted["variance_error"] > 2.0
    assert shifted["std_ratio"] == pytest.approx(2.0, rel=0.05)


def test_autocorrelation_matches_naive_and_handles_constants():
    rng = np.random.default_rng(14)
    x = rng.standard_normal((5, 2, 11))
    x[0, 1] = 3.0  # a constant curve
    n = x.shape[-1]
    want = np.zeros((2, n // 2 + 1))
    for j in range(5):
        for c in range(2):
            f = x[j, c] - x[j, c].mean()
            c0 = float(f @ f) / n
            if c0 == 0.0:
                want[c, 0] += 1.0 / 5
                continue
            for h in range(n // 2 + 1):
                want[c, h] += float(f[: n - h] @ f[h:]) / n / c0 / 5
    np.testing.assert_allclose(mean_autocorrelation(torch.tensor(x)).numpy(), want, atol=1e-12)
    same = functional_errors(np.ones((4, 10)), np.ones((4, 10)))
    assert all(v == 0.0 for k, v in same.items() if k.endswith("_error"))


def test_functional_errors_grid_weights_and_checks():
    rng = np.random.default_rng(15)
    a, b = rng.standard_normal((50, 20)), rng.standard_normal((60, 20))
    uniform = functional_errors(a, b)
    on_grid = functional_errors(a, b, grid=np.linspace(0, 1, 20))  # trapezoid: half-weight endpoints
    assert on_grid == pytest.approx(functional_errors(a, b, grid=np.linspace(-10, 10, 20)), rel=1e-12)
    assert on_grid["mean_error"] == pytest.approx(uniform["mean_error"], rel=0.1)
    assert on_grid["acf_error"] == uniform["acf_error"]  # lags in grid steps: no weights
    uneven = np.concatenate([np.linspace(0, 0.1, 10), np.linspace(0.2, 1, 10)])
    assert functional_errors(a, b, grid=uneven)["mean_error"] != pytest.approx(on_grid["mean_error"])
    with pytest.raises(DataError):
        functional_errors(a, b, grid=np.linspace(0, 1, 19))
    with pytest.raises(DataError):
        functional_errors(a, b, grid=np.linspace(1, 0, 20))
    with pytest.raises(DataError):
        functional_errors(a[:1], b)


# ---------------------------------------------------------------- the report


def test_evaluate_function_samples_report_shape():
    rng = np.random.default_rng(16)
    gen = rng.standard_normal((250, 1, 16))
    real = rng.standard_normal((120, 1, 16))
    report = evaluate_function_samples(gen, real, block_size=10, repeats=2, permutations=100, seed=0,
                                       balanced_sizes=(100, 500))
    json.dumps(report)
    assert report["n_generated"] == 250 and report["n_real"] == 120
    assert set(report["power"]) == {"10", "100", "500"}
    for key, n_blocks in (("10", 12), ("100", 1)):
        entry = report["power"][key]
        assert {"power", "std", "n_blocks", "repeats"} <= set(entry)
        assert entry["n_blocks"] == n_blocks and entry["repeats"] == 2
    assert isinstance(report["power"]["500"], str) and "500" in report["power"]["500"]
    assert set(report["functional"]) >= {"mean_error", "variance_error", "acf_error", "spectrum_error"}
    assert all(isinstance(v, float) for v in report["functional"].values())
    with pytest.raises(ConfigError):
        evaluate_function_samples(gen, real, block_size=200, repeats=1, permutations=100)
    with pytest.raises(DataError):
        evaluate_function_samples(gen, real[:, :, :8], repeats=1, permutations=100)
