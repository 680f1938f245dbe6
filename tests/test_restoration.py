"""Degrade-then-restore: operator algebra, exact Gaussian posteriors, approximation errors, DPS, metrics,
error messages, and an end-to-end run on the bundled quadratic model."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
import torch

from engine.equations import make_equation
from engine.equations.gaussian import GaussianNoisePredictor
from engine.equations.spde import make_image_equation
from engine.errors import ConfigError, DataError
from engine.operators import KernelCovariance, kernel_matrix
from engine.operators.covariance import GridCovariance, WhiteCovariance
from engine.operators.dct import dct2, dct_matrix, idct2
from engine.restoration import (
    TASKS,
    add_restore_arguments,
    consistency,
    diversity,
    make_degradation,
    psnr,
    restore,
    restore_items,
    run_restore_command,
    ssim,
    summary_table,
    tasks_for,
    write_restoration,
)
from engine.restoration.conditional import DenoisingCovariance, replacement_predictor
from engine.restoration.operators import HeatBlur
from engine.rng import SampleRNG
from engine.samplers import SAMPLERS

N = 32
GRID = np.linspace(-10, 10, N)
LAM = (np.pi * np.arange(N) / N) ** 2  # continuous Neumann eigenvalues on 32 points
D = dct_matrix(N).numpy()


def dense(d) -> tuple[np.ndarray, np.ndarray]:
    """``(A, A^+)`` of a degradation as dense matrices on flattened items/measurements."""
    n = math.prod(d.shape)
    A = d.apply(torch.eye(n, dtype=torch.float64).reshape(n, *d.shape)).reshape(n, -1).T.numpy()
    m = A.shape[0]
    P = d.pinv(torch.eye(m, dtype=torch.float64).reshape(m, *d.measurement_shape)).reshape(m, -1).T.numpy()
    return A, P


def gaussian_posterior(A: np.ndarray, C: np.ndarray, mu: np.ndarray, y: np.ndarray, s2: float
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``mu + C A^T (A C A^T + s2 I)^-1 (y - A mu)`` and covariance ``C - C A^T (...)^-1 A C``."""
    gain = C @ A.T @ np.linalg.inv(A @ C @ A.T + s2 * np.eye(A.shape[0]))
    return mu + gain @ (y - A @ mu), C - gain @ A @ C


# -- operators -------------------------------------------------------------------------------------
CASES = [
    ("impute", (2, 20), {}),
    ("impute", (1, 20), {"mode": "intervals", "intervals": 2, "fraction": 0.4}),
    ("super-resolution", (2, 21), {"factor": 3}),
    ("smooth", (1, 16), {"sigma": 0.8}),
    ("deblur", (1, 16), {"sigma": 2.0}),  # modes with b_k < rcond are dropped: A^+ is truncated
    ("inbetween", (3, 17), {}),
    ("inbetween", (2, 12), {"mode": "ends", "keep": 3}),
    ("missing-joints", (6, 10), {"joints": [1]}),
    ("missing-joints", (4, 10), {"channels": [0, 3]}),
    ("inpaint-noise", (2, 8, 8), {}),
    ("inpaint-mask", (1, 8, 8), {"patch": 2}),
    ("inpaint-mask", (3, 8, 6), {"mode": "box", "box": 0.4}),
    ("super-resolution", (3, 8, 12), {"factor": 4}),
    ("pixelate", (1, 8, 8), {"factor": 2}),
    ("deblur", (1, 6, 5), {"sigma": 1.0}),
]


@pytest.mark.parametrize(("task", "shape", "params"), CASES, ids=[f"{c[0]}-{len(c[1]) - 1}d" for c in CASES])
def test_operator_algebra(task, shape, params):
    d = make_degradation(task, shape, **params)
    A, P = dense(d)
    rcond = getattr(d, "rcond", 1e-12)
    np.testing.assert_allclose(P, np.linalg.pinv(A, rcond=rcond), atol=1e-10)  # A^+ is the Moore-Penrose pinv
    # Penrose conditions; A A^+ A = A up to the modes below rcond (truncated pseudo-inverse)
    assert np.abs(A @ P @ A - A).max() <= (rcond if isinstance(d, HeatBlur) else 1e-12)
    np.testing.assert_allclose(P @ A @ P, P, atol=1e-12)
    np.testing.assert_allclose(A @ P, (A @ P).T, atol=1e-12)
    np.testing.assert_allclose(P @ A, (P @ A).T, atol=1e-12)
    g = torch.Generator().manual_seed(0)
    x, x_other = (torch.randn(3, *shape, generator=g, dtype=torch.float64) for _ in range(2))
    y = d.apply(x)
    assert tuple(y.shape[1:]) == d.measurement_shape
    p = d.project(x_other, y)
    torch.testing.assert_close(d.project(p, y), p, rtol=0, atol=1e-12)  # idempotent
    torch.testing.assert_close(d.pinv(y), torch.as_tensor(P @ y.reshape(3, -1).T.numpy()).T.reshape(x.shape))
    if not isinstance(d, HeatBlur) or task == "smooth":  # every blur mode kept at sigma 0.8: consistency is exact
        torch.testing.assert_close(d.apply(p), y, rtol=0, atol=1e-12)
    c = d.components(x)  # the natural basis is orthonormal
    torch.testing.assert_close(d.components(d.embed(c)), c, rtol=0, atol=1e-12)
    torch.testing.assert_close((d.embed(c) * x).sum(), (c * c).sum())
    assert d.naive(y).shape == x.shape and d.display(y).shape == x.shape
    if d.mask is not None:
        assert d.mask.shape == shape and d.mask.dtype == bool
        assert d.measurement_size == int(d.mask.sum())
    # provenance round-trips through JSON and rebuilds the same operator
    spec = json.loads(json.dumps(d.to_dict()))
    again = make_degradation(spec.pop("task"), tuple(spec.pop("shape")), **spec)
    np.testing.assert_array_equal(dense(again)[0], A)


def test_measurement_noise_is_white_on_the_measured_values():
    d = make_degradation("impute", (1, 4000), fraction=0.3, noise=0.5)
    x = torch.zeros(1, 1, 4000, dtype=torch.float64)
    y = d.measure(x, torch.randn(1, 1, 4000, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    assert (y[0, 0][~torch.as_tensor(d.mask[0])] == 0).all()  # structural zeros stay zero
    assert float(y[0, 0][torch.as_tensor(d.mask[0])].std()) == pytest.approx(0.5, rel=0.05)
    assert consistency(x, y, d)[0] == pytest.approx(1.0, rel=0.05)  # the truth is consistent in units of sigma_y
    drawn = [d.measure(x, generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(drawn[0], drawn[1])  # explicit generators, never the global RNG
    with pytest.raises(ConfigError, match="needs the noise draws z or a generator"):
        d.measure(x)


@pytest.mark.parametrize("sigma", [2.0, 3.5])
def test_heat_blur_is_the_dct_multiplier_and_the_reflected_gaussian(sigma):
    """exp(sigma^2/2 Laplacian), Neumann: D^T diag(exp(-lambda sigma^2/2)) D = Gaussian of std sigma reflected at
    the borders (method of images, pixel centres at i + 1/2), to round-off for sigma >= 2."""
    n = 40
    A, _ = dense(make_degradation("deblur", (1, n), sigma=sigma))
    Dn = dct_matrix(n).numpy()
    lam = (np.pi * np.arange(n) / n) ** 2
    np.testing.assert_allclose(A, Dn.T @ np.diag(np.exp(-lam * sigma**2 / 2)) @ Dn, atol=1e-13)
    u = np.arange(n) + 0.5
    shifts = 2 * n * np.arange(-4, 5)[:, None, None]

    def gauss(v):
        return np.exp(-(v**2) / (2 * sigma**2)) / math.sqrt(2 * math.pi * sigma**2)

    K = (gauss(u[:, None] - u[None, :] + shifts) + gauss(u[:, None] + u[None, :] + shifts)).sum(0)
    np.testing.assert_allclose(A, K, atol=1e-9)
    np.testing.assert_allclose(A.sum(1), 1.0, atol=1e-12)  # the blur preserves constants (Neumann)
    # 2D: separable, the same 1D operator along each axis
    A2, _ = dense(make_degradation("deblur", (1, n, 6), sigma=sigma))
    A6, _ = dense(make_degradation("deblur", (1, 6), sigma=sigma))
    np.testing.assert_allclose(A2, np.kron(A, A6), atol=1e-12)


def test_naive_baselines():
    # curves: linear interpolation reproduces a line between observed points, constant beyond them
    d = make_degradation("impute", (1, 30), mode="intervals", fraction=0.3, seed=2)
    line = torch.linspace(-1, 2, 30, dtype=torch.float64).reshape(1, 1, 30)
    obs = np.flatnonzero(d.mask[0])
    inside = slice(obs[0], obs[-1] + 1)
    torch.testing.assert_close(d.naive(d.apply(line))[..., inside], line[..., inside])
    sr = make_degradation("super-resolution", (1, 31), factor=3)  # keeps 0, 3, ..., 30
    line31 = torch.linspace(-1, 2, 31, dtype=torch.float64).reshape(1, 1, 31)
    torch.testing.assert_close(sr.naive(sr.apply(line31)), line31)
    # missing channels: zero fill (the training mean in normalised units)
    mj = make_degradation("missing-joints", (3, 5), channels=[1])
    assert (mj.naive(mj.apply(torch.ones(1, 3, 5)))[:, 1] == 0).all()
    # images: a constant is filled exactly, bilinear upsampling keeps constants, pixelate/deblur show y itself
    const = torch.full((2, 3, 8, 8), 0.7, dtype=torch.float64)
    for task, params in (("inpaint-mask", {"mode": "box"}), ("inpaint-noise", {}), ("super-resolution", {})):
        op = make_degradation(task, (3, 8, 8), **params)
        torch.testing.assert_close(op.naive(op.apply(const)), const)
    for task in ("pixelate", "deblur"):
        op = make_degradation(task, (3, 8, 8))
        y = op.apply(torch.randn(2, 3, 8, 8, dtype=torch.float64))
        assert torch.equal(op.naive(y), y)
    # inpaint-noise is shown with noise of the observed pixels' mean and std in the gaps
    noisy = make_degradation("inpaint-noise", (1, 32, 32), fraction=0.5)
    image = 0.3 + 0.1 * torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    shown = noisy.display(noisy.apply(image))[0, 0]
    gaps = ~torch.as_tensor(noisy.mask[0])
    assert torch.equal(shown[~gaps], image[0, 0][~gaps])
    assert float(shown[gaps].mean()) == pytest.approx(0.3, abs=0.02)
    assert float(shown[gaps].std()) == pytest.approx(0.1, rel=0.15)


# -- exact posteriors: the closed-form Gaussian oracle drives "replace" -------------------------------
def _z_and_variance(X: np.ndarray, mean: np.ndarray, var: np.ndarray) -> tuple[float, float, float, float]:
    """Max |z| of the sample mean, rms and max relative variance error, and the latter's standard error."""
    n = X.shape[0]
    z = (X.mean(0) - mean) / np.sqrt(var / n)
    rel = X.var(0, ddof=1) / var - 1
    return float(np.abs(z).max()), float(np.sqrt((rel**2).mean())), float(np.abs(rel).max()), math.sqrt(2 / n)


# The second-order samplers get there in a tenth of the steps (the ODE with the logsnr grid they default to).
POSTERIOR_RUNS = [("exponential", 400, "uniform", 2000), ("ddim", 200, "uniform", 4000),
                  ("dpm2m", 25, "logsnr", 4000), ("dpm2m_sde", 50, "logsnr", 2000)]
POSTERIOR_IDS = [run[0] for run in POSTERIOR_RUNS]


@pytest.mark.parametrize(("sampler", "steps", "spacing", "num"), POSTERIOR_RUNS, ids=POSTERIOR_IDS)
def test_replace_samples_the_exact_posterior_of_a_mask(sampler, steps, spacing, num):
    """White Q, pixel-diagonal C, a mask: observed values equal y, unobserved ones keep their prior law."""
    eq = make_equation("vp", WhiteCovariance().on_grid(GRID))
    c = 0.3 + 0.35 * (1 + np.sin(np.arange(N)))
    mu = 0.5 * np.cos(GRID / 3)
    x = mu + np.sqrt(c) * np.random.default_rng(1).standard_normal(N)
    d = make_degradation("impute", (1, N), fraction=0.5, seed=3)
    y = d.apply(torch.as_tensor(x).reshape(1, 1, N))
    X = restore(GaussianNoisePredictor(eq, np.diag(c), mu), eq, d, y.expand(num, 1, N), sampler=sampler, steps=steps,
                spacing=spacing, rng=SampleRNG(range(num)), x_shape=(1, N))[:, 0].numpy()
    obs = d.mask[0]
    np.testing.assert_allclose(X[:, obs], np.broadcast_to(x[obs], X[:, obs].shape), atol=1e-10)
    z, rms, worst, se = _z_and_variance(X[:, ~obs], mu[~obs], c[~obs])
    assert z < 4.5 and rms < 2 * se and worst < 4.5 * se, (z, rms, worst, se)
    corr = np.corrcoef(X[:, ~obs].T) - np.eye(int((~obs).sum()))  # independent, as the posterior's components
    assert np.abs(corr).max() < 5 / math.sqrt(num)


@pytest.mark.parametrize(("sampler", "steps", "spacing", "num"), POSTERIOR_RUNS, ids=POSTERIOR_IDS)
@pytest.mark.parametrize("noise", [0.0, 0.1])
def test_replace_samples_the_exact_posterior_of_a_blur(sampler, steps, spacing, num, noise):
    """DCT-diagonal Q and C, the heat blur: noiseless, the modes above rcond equal A^+ y and the others keep
    their prior law; noisy, the noise-aware gain with the prior's variance gives the exact Gaussian posterior."""
    q = 1 / (1 + 4 * LAM)
    eq = make_equation("vp", GridCovariance(q, D.T.copy(), GRID, white=False))  # Q = D^T diag(q) D
    c = 1 / (1 + 2 * LAM) ** 1.5
    mu = 0.03 * GRID
    x = mu + D.T @ (np.sqrt(c) * np.random.default_rng(2).standard_normal(N))
    d = make_degradation("deblur", (1, N), sigma=2.0, noise=noise)
    b = np.exp(-LAM * 2.0**2 / 2)
    observed = b >= d.rcond
    assert 0 < observed.sum() < N  # a non-degenerate posterior in both cases
    z_noise = torch.randn(1, 1, N, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    y = d.measure(torch.as_tensor(x).reshape(1, 1, N), z_noise)
    y_hat, mu_hat = D @ y[0, 0].numpy(), D @ mu
    if noise == 0:
        mean, var = np.where(observed, y_hat / b, mu_hat), np.where(observed, 0.0, c)
        options = {}
    else:  # per mode: prior N(mu_k, c_k), measurement y_k = b_k x_k + noise
        var = 1 / (1 / c + b**2 / noise**2)
        mean = var * (mu_hat / c + b * y_hat / noise**2)
        options = {"prior_variance": torch.as_tensor(c).reshape(1, N)}
    # the closed form agrees with the general Gaussian posterior formula
    A, _ = dense(d)
    if noise > 0:
        m_full, C_full = gaussian_posterior(A, D.T @ np.diag(c) @ D, mu, y[0, 0].numpy(), noise**2)
        np.testing.assert_allclose(D @ m_full, mean, atol=1e-8)
        np.testing.assert_allclose(np.diag(D @ C_full @ D.T), var, atol=1e-10)
    oracle = GaussianNoisePredictor(eq, D.T @ np.diag(c) @ D, mu)
    X = restore(oracle, eq, d, y.expand(num, 1, N), sampler=sampler, steps=steps, spacing=spacing,
                rng=SampleRNG(range(num)), x_shape=(1, N), **options)[:, 0].numpy() @ D.T
    free = var > 0
    np.testing.assert_allclose(X[:, ~free], np.broadcast_to(mean[~free], X[:, ~free].shape), atol=1e-9)
    z, rms, worst, se = _z_and_variance(X[:, free], mean[free], var[free])
    assert z < 4.5 and rms < 2 * se and worst < 4.5 * se, (z, rms, worst, se)


def test_replace_on_the_hdm_spde_samples_the_exact_posterior_of_an_image_blur():
    """Per-mode coefficients (HDM-SPDE, 6 x 6 images): the implied noise is built mode by mode."""
    H = W = 6
    eq = make_image_equation("hdm_spde", H, W, sigma=1.0, gamma=0.1)
    lam = eq.Q.laplacian
    c = 0.8 / (1 + 1.5 * lam)
    mu_hat = torch.zeros(H, W, dtype=torch.float64)
    mu_hat[0, 0], mu_hat[1, 0] = 1.0, -0.5

    def oracle(x, t):  # exact per DCT mode: e_hat = shat q (X - m mu) / (m^2 c + q shat^2)
        t0 = t.reshape(-1)[:1].double()
        m, sd, q = eq.mode_mean(t0)[0], eq.mode_std(t0)[0], eq.Q.spectrum
        return idct2(sd * q * (dct2(x.double()) - m * mu_hat) / (m**2 * c + q * sd**2)).to(x.dtype)

    d = make_degradation("deblur", (1, H, W), sigma=1.6)
    b = torch.exp(-lam * 1.6**2 / 2)
    observed = b >= d.rcond
    assert 0 < int(observed.sum()) < H * W
    x_true = idct2(mu_hat + c.sqrt() * torch.randn(H, W, generator=torch.Generator().manual_seed(3),
                                                   dtype=torch.float64)).reshape(1, 1, H, W)
    y = d.apply(x_true)
    num = 1500
    X = dct2(restore(oracle, eq, d, y.expand(num, 1, H, W), sampler="ddim", steps=100, spacing="logsnr",
                     rng=SampleRNG(range(num)), x_shape=(1, H, W)))[:, 0]
    torch.testing.assert_close(X[:, observed], dct2(x_true)[0, 0][observed].expand(num, -1), rtol=0, atol=1e-8)
    z, rms, worst, se = _z_and_variance(X[:, ~observed].numpy(), mu_hat[~observed].numpy(), c[~observed].numpy())
    assert z < 4.5 and rms < 3 * se and worst < 6 * se, (z, rms, worst, se)


def _approximation_error(eq, C, mu, d, x, metric, num=2000, sampler="ddim", steps=100):
    """Mean error in posterior sds (max, rms), the sd ratio (min, max) and the largest mean z-score."""
    y = d.apply(torch.as_tensor(x).reshape(1, 1, N))
    obs = d.mask[0]
    mean, cov = gaussian_posterior(np.eye(N)[obs], C, mu, x[obs], 0.0)
    sd = np.sqrt(np.diag(cov)[~obs])
    X = restore(GaussianNoisePredictor(eq, C, mu), eq, d, y.expand(num, 1, N), sampler=sampler, steps=steps,
                rng=SampleRNG(range(num)), x_shape=(1, N), metric=metric)[:, 0].numpy()[:, ~obs]
    err = np.abs(X.mean(0) - mean[~obs]) / sd
    ratio = X.std(0) / sd
    return (float(err.max()), float(np.sqrt((err**2).mean())), float(ratio.min()), float(ratio.max()),
            float(err.max() * math.sqrt(num)))


MATERN = kernel_matrix("matern52", GRID, length_scale=3.0) + 1e-6 * np.eye(N)
MATERN_MEAN = 0.5 * np.sin(GRID / 3)
MATERN_DRAW = MATERN_MEAN + np.linalg.cholesky(MATERN) @ np.random.default_rng(4).standard_normal(N)


def test_replace_is_only_approximate_for_a_correlated_prior():
    """A smooth prior (Matern 5/2, length 3) and a missing interval: measured on 2000 restorations (ddim, 100
    steps): the posterior mean is off by up to ~3.9 posterior sds (rms ~1.5) next to the gap's edges and the
    spread is 1.1-3.9x too wide (exponential, 200 steps: 3.0 sds, 1.2-2.8x). Bounded, not exact."""
    eq = make_equation("vp", WhiteCovariance().on_grid(GRID))
    d = make_degradation("impute", (1, N), mode="intervals", fraction=0.4, seed=1)
    worst, rms, lo, hi, z = _approximation_error(eq, MATERN, MATERN_MEAN, d, MATERN_DRAW, "operator")
    assert z > 20  # far outside sampling error: an approximation
    assert worst < 5.0 and rms < 2.0 and 0.9 < lo and hi < 5.0, (worst, rms, lo, hi)
    # with white Q, V^T Sigma_t V is diagonal: the posterior metric is the same correction
    same = _approximation_error(eq, MATERN, MATERN_MEAN, d, MATERN_DRAW, "posterior", num=200)
    again = _approximation_error(eq, MATERN, MATERN_MEAN, d, MATERN_DRAW, "operator", num=200)
    assert same == pytest.approx(again, rel=1e-6)


def test_posterior_metric_is_closer_with_coloured_noise_and_a_smooth_prior():
    """SE-kernel Q (the functions models' noise) and a Matern prior, half the points missing: the correction in
    the Sigma_t^{-1} metric spreads y smoothly (kriging with Q) instead of creating spikes in the implied noise.
    Measured (ddim, 100 steps): mean error max/rms 5.5/2.7 sds (operator) vs 2.3/1.4 (posterior)."""
    eq = make_equation("vp", KernelCovariance("squared_exponential", 0.8).on_grid(GRID))
    d = make_degradation("impute", (1, N), fraction=0.5, seed=3)
    op = _approximation_error(eq, MATERN, MATERN_MEAN, d, MATERN_DRAW, "operator")
    post = _approximation_error(eq, MATERN, MATERN_MEAN, d, MATERN_DRAW, "posterior")
    assert post[1] < 0.75 * op[1] and post[3] < op[3], (op, post)
    assert post[0] < 4.0 and post[3] < 4.0


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_sampler_becomes_conditional(name):
    """Replacement wraps the predictor only: every sampler's result matches y exactly on the observed points
    (Tweedie's final step returns the corrected estimate), with either metric and coloured noise."""
    eq = make_equation("vp", KernelCovariance("squared_exponential", 0.8).on_grid(GRID))
    d = make_degradation("impute", (1, N), fraction=0.4, seed=0)
    y = d.apply(torch.as_tensor(MATERN_DRAW).reshape(1, 1, N)).expand(8, 1, N)
    seen = []
    for metric in ("operator", "posterior"):
        x = restore(GaussianNoisePredictor(eq, MATERN, MATERN_MEAN), eq, d, y, sampler=name, steps=6,
                    rng=SampleRNG(range(8)), x_shape=(1, N), callback=seen.append, metric=metric)
        torch.testing.assert_close(d.apply(x), y, rtol=0, atol=1e-9)
    assert len(seen) == 12 and seen[-1].x0.shape == (8, 1, N)


def test_denoising_covariance_matches_dense_matrices():
    """diag/blocks of V^T Sigma_t V and Sigma_t V alpha against dense Sigma_t, for a scalar (VP, SE kernel) and a
    per-mode (HDM-SPDE) equation and three kinds of operator."""
    t = torch.tensor([0.3, 0.7], dtype=torch.float64)
    eq1 = make_equation("vp", KernelCovariance("squared_exponential", 0.8).on_grid(GRID))
    Q1 = eq1.Q.matrix()
    H, W = 4, 6
    eq2 = make_image_equation("hdm_spde", H, W, sigma=1.0, gamma=0.5)
    D2 = torch.kron(dct_matrix(H), dct_matrix(W)).numpy()
    cases = [(eq1, make_degradation("impute", (2, N), fraction=0.5)), (eq1, make_degradation("smooth", (1, N))),
             (eq2, make_degradation("inpaint-mask", (2, H, W), patch=1)),
             (eq2, make_degradation("super-resolution", (1, H, W), factor=2))]
    for eq, d in cases:
        cov = DenoisingCovariance(eq, d, torch.zeros(1, dtype=torch.float64))
        C = d.shape[0]
        n = math.prod(d.spatial)
        V = d.components(torch.eye(n * C, dtype=torch.float64).reshape(n * C, *d.shape)).reshape(n * C, -1)
        V = V.numpy()[:n, : V.shape[1] // C]  # channel 0's components as columns of V^T
        for i, ti in enumerate(t):
            m, s = eq.mode_coefs(ti.reshape(1))
            if eq is eq1:
                sigma = float(s / m) ** 2 * Q1
            else:
                r = (s[0] / m[0]).reshape(-1).numpy() ** 2 * eq.Q.spectrum.reshape(-1).numpy()
                sigma = D2.T @ np.diag(r) @ D2
            G = V.T @ sigma @ V
            np.testing.assert_allclose(cov.variance(t)[i].reshape(C, -1)[0].numpy(), np.diag(G), rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(cov.covariance(float(ti))[0].numpy(), G, rtol=1e-9, atol=1e-12)
            alpha = torch.randn(2, *cov.component_shape, dtype=torch.float64)
            spread = cov.spread(alpha, t)[i, 0].reshape(-1).numpy()
            np.testing.assert_allclose(spread, sigma @ V @ alpha[i].reshape(C, -1)[0].numpy(), rtol=1e-9, atol=1e-12)


def test_noise_aware_gain_replaces_early_and_trusts_the_network_late():
    eq = make_equation("vp", WhiteCovariance().on_grid(GRID))
    d = make_degradation("impute", (1, N), fraction=0.5, noise=0.2)
    y = torch.zeros(1, 1, N, dtype=torch.float64)
    ones = torch.ones(1, 1, N, dtype=torch.float64)
    predict = replacement_predictor(lambda x, t: torch.zeros_like(x), eq, d, y)  # network says x0 = x / m

    def corrected(t: float) -> torch.Tensor:
        tt = torch.tensor([t], dtype=torch.float64)
        return eq.denoise(ones, predict(ones, tt), tt)

    obs = torch.as_tensor(d.mask[0])
    m, s = (float(v) for v in eq.mode_coefs(torch.tensor(0.9, dtype=torch.float64)))
    g = (s / m) ** 2 / ((s / m) ** 2 + 0.2**2)  # the gain of a unit-variance white component
    torch.testing.assert_close(corrected(0.9)[0, 0, obs], torch.full((int(obs.sum()),), (1 - g) / m,
                                                                     dtype=torch.float64))
    assert float(corrected(1e-4)[0, 0, obs].sub(1).abs().max()) < 1e-3  # late: y's noise is not copied
    m_half = float(eq.mean_coef(torch.tensor(0.5, dtype=torch.float64)))
    torch.testing.assert_close(corrected(0.5)[0, 0, ~obs], torch.full((int((~obs).sum()),), 1 / m_half,
                                                                        dtype=torch.float64))  # untouched


# -- DPS ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["exponential", "ddim", "ode_heun"])
def test_dps_reduces_the_measurement_error(name):
    eq = make_equation("vp", KernelCovariance("squared_exponential", 0.8).on_grid(GRID))
    d = make_degradation("deblur", (1, N), sigma=2.0, noise=0.05)
    z = torch.randn(1, 1, N, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = d.measure(torch.as_tensor(MATERN_DRAW).reshape(1, 1, N), z).expand(64, 1, N)
    oracle = GaussianNoisePredictor(eq, MATERN, MATERN_MEAN)

    def run(zeta: float) -> np.ndarray:
        x = restore(oracle, eq, d, y, method="dps", sampler=name, steps=40, rng=SampleRNG(range(64)),
                    x_shape=(1, N), zeta=zeta)
        return consistency(x, y, d)

    free, guided = run(0.0), run(0.3)  # zeta = 0 is unconditional sampling
    assert np.median(free) > 10 and np.median(guided) < 2.5, (np.median(free), np.median(guided))
    with torch.inference_mode(), pytest.raises(ConfigError, match="outside torch.inference_mode"):
        restore(oracle, eq, d, y, method="dps", rng=SampleRNG(range(64)), x_shape=(1, N))


# -- metrics ------------------------------------------------------------------------------------------
def test_psnr_and_diversity_closed_forms():
    ref = np.zeros((2, 1, 10))
    ref[:, 0, 0] = 4.0  # range 4
    x = ref + 0.1
    np.testing.assert_allclose(psnr(x, ref), 10 * np.log10(16 / 0.01))
    np.testing.assert_allclose(psnr(x, ref, data_range=1.0), 10 * np.log10(1 / 0.01))
    assert np.isinf(psnr(ref, ref)).all()
    r = np.stack([np.zeros((3, 2, 5)), np.ones((3, 2, 5))], axis=1)  # two restorations 0 and 1: std sqrt(1/2)
    np.testing.assert_allclose(diversity(r), math.sqrt(0.5))


def test_ssim_matches_a_reference_implementation():
    ndimage = pytest.importorskip("scipy.ndimage")
    g = np.random.default_rng(0)
    ref = g.random((2, 3, 24, 20))
    x = np.clip(ref + 0.1 * g.standard_normal(ref.shape), 0, 1)

    def reference(a, b, L, axes):  # Wang et al. with scipy's Gaussian filter, borders cropped
        k1, k2 = (0.01 * L) ** 2, (0.03 * L) ** 2
        sigma = [1.5 if i in axes else 0 for i in range(a.ndim)]

        def f(u):
            return ndimage.gaussian_filter(u, sigma, truncate=3.5, mode="constant")

        ma, mb = f(a), f(b)
        va, vb, cab = f(a * a) - ma**2, f(b * b) - mb**2, f(a * b) - ma * mb
        s = ((2 * ma * mb + k1) * (2 * cab + k2)) / ((ma**2 + mb**2 + k1) * (va + vb + k2))
        crop = tuple(slice(5, -5) if i in axes else slice(None) for i in range(a.ndim))
        return s[crop].mean()

    for i in range(2):
        L = ref[i].max() - ref[i].min()
        assert ssim(x, ref)[i] == pytest.approx(reference(x[i], ref[i], L, (1, 2)), abs=1e-10)
        curve_x, curve_ref = x[:, :, 0, :], ref[:, :, 0, :]
        L1 = curve_ref[i].max() - curve_ref[i].min()
        assert ssim(curve_x, curve_ref)[i] == pytest.approx(reference(curve_x[i], curve_ref[i], L1, (1,)), abs=1e-10)
    np.testing.assert_allclose(ssim(ref, ref), 1.0)
    worse = np.clip(ref + 0.3 * g.standard_normal(ref.shape), 0, 1)
    assert (ssim(worse, ref) < ssim(x, ref)).all()


# -- errors -------------------------------------------------------------------------------------------
def test_every_error_message(tmp_path):
    def bad(match, fn, *args, **kwargs):
        with pytest.raises(ConfigError, match=match):
            fn(*args, **kwargs)

    bad("has shape 7x8 but the items are 1x8x8", make_degradation, "inpaint-mask", (1, 8, 8), mask=np.ones((7, 8)))
    bad("observes nothing", make_degradation, "inpaint-mask", (1, 8, 8), mask=np.zeros((8, 8)))
    bad("observes everything", make_degradation, "inpaint-mask", (1, 8, 8), mask=np.ones((8, 8)))
    bad("existing .npy file", make_degradation, "inpaint-mask", (1, 8, 8), mask=str(tmp_path / "none.npy"))
    bad("needs --mask", make_degradation, "inpaint-mask", (1, 8, 8), mode="array")
    bad("--patch must be", make_degradation, "inpaint-mask", (1, 8, 8), patch=9)
    bad("does not divide the image size 10x10", make_degradation, "super-resolution", (1, 10, 10), factor=4)
    bad("does not divide", make_degradation, "pixelate", (1, 12, 10), factor=4)
    bad("--factor must be an integer >= 2", make_degradation, "pixelate", (1, 8, 8), factor=1)
    bad(r"--factor must be an integer in \[2, 19\]", make_degradation, "super-resolution", (1, 20), factor=20)
    bad("--sigma must be a positive number", make_degradation, "deblur", (1, 16), sigma=0.0)
    bad("--sigma must be a positive number", make_degradation, "smooth", (1, 16), sigma=-1.0)
    bad("--rcond must lie in", make_degradation, "deblur", (1, 16), rcond=2.0)
    bad("--noise must be a number >= 0", make_degradation, "impute", (1, 16), noise=-0.1)
    bad("--fraction must be a number strictly between 0 and 1", make_degradation, "impute", (1, 16), fraction=1.0)
    bad("less than one point per interval", make_degradation, "impute", (1, 16), mode="intervals", intervals=20)
    bad("unknown --mode", make_degradation, "impute", (1, 16), mode="blocks")
    bad("--mask-seed must be", make_degradation, "impute", (1, 16), seed=-1)
    bad("either --channels", make_degradation, "missing-joints", (6, 10))
    bad("do not exist; the items have 6 channels", make_degradation, "missing-joints", (6, 10), joints=[2])
    bad("--keep", make_degradation, "inbetween", (2, 10), mode="ends", keep=5)
    bad("is a task for images", make_degradation, "inpaint-noise", (1, 100))
    bad("is a task for curves/motions", make_degradation, "impute", (1, 8, 8))
    bad("unknown restoration task", make_degradation, "denoise", (1, 8))
    bad("unknown option", make_degradation, "impute", (1, 16), sigma=2.0)
    d = make_degradation("impute", (1, 16))
    bad(r"made for curves or motions \[C, n\] of shape 1x16", d.apply, torch.zeros(2, 1, 4, 4))
    bad(r"made for curves or motions \[C, n\] of shape 1x16", d.apply, torch.zeros(2, 1, 24))
    bad("a measurement has shape 1x16", d.pinv, torch.zeros(2, 1, 8))
    eq = make_equation("vp", WhiteCovariance().on_grid(np.linspace(0, 1, 16)))
    y = torch.zeros(2, 1, 16)
    kw = {"rng": SampleRNG([0, 1]), "x_shape": (1, 16)}
    bad("unknown restoration method", restore, None, eq, d, y, method="guided", **kw)
    bad("unknown option", restore, None, eq, d, y, method="dps", metric="posterior", **kw)
    bad("unknown replacement metric", restore, lambda x, t: x, eq, d, y, metric="l1", **kw)
    bad("is not the degradation's item shape", restore, None, eq, d, y, rng=SampleRNG([0, 1]), x_shape=(1, 8))
    bad("give one stream per sample", restore, None, eq, d, y, rng=SampleRNG([0]), x_shape=(1, 16))
    bad("prior_variance applies to the operator metric", restore, lambda x, t: x, eq, d, y, metric="posterior",
        prior_variance=1.0, **kw)
    bad("zeta must be a finite number", restore, lambda x, t: x, eq, d, y, method="dps", zeta=-1.0, **kw)
    big = make_degradation("inpaint-mask", (1, 128, 128), noise=0.1)
    bad("too large for items of shape", DenoisingCovariance, make_image_equation("vp", 128, 128), big,
        torch.zeros(1))
    bad("diversity needs at least 2", diversity, np.zeros((3, 1, 1, 8)))
    bad("equal shape", psnr, np.zeros((2, 1, 8)), np.zeros((2, 1, 9)))


# -- end to end on the bundled quadratic model -------------------------------------------------------
@pytest.fixture(scope="module")
def quadratic():
    from engine import api

    return api.load_model("quadratic")


def test_restore_items_beats_the_naive_baseline_and_writes_hdf5(quadratic, tmp_path):
    h5py = pytest.importorskip("h5py")
    from engine import api

    items = api.reference_data("quadratic", quadratic.training_grid, split="test").values[:4]
    result = restore_items(quadratic, items, "impute", params={"mode": "intervals", "fraction": 0.3},
                           num_restorations=2, steps=20, seed=3)
    m = result.metrics
    assert result.restored.shape == (4, 2, 1, 100) and result.restored_mean.shape == (4, 1, 100)
    assert (m["restored_mean"]["psnr"] > m["naive"]["psnr"] + 6).all()  # linear interpolation across the gap fails
    assert (m["restored_mean"]["consistency"] < 1e-3).all()  # noiseless: observed points equal y (data units)
    np.testing.assert_allclose(result.restored_mean[..., result.degradation.mask[0]],
                               items[..., result.degradation.mask[0]], rtol=0, atol=2e-3)
    table = summary_table(result)
    assert table["psnr_gain_db"]["items_better_than_naive"] == 1.0 and table["diversity"] > 0
    path = write_restoration(tmp_path / "r.h5", result, {"data": "quadratic"})
    with h5py.File(path, "r") as f:
        assert f.attrs["schema"] == "hdm-restoration/1" and f.attrs["task"] == "impute"
        assert json.loads(f.attrs["operator"])["mode"] == "intervals"
        assert f.attrs["checkpoint_sha256"] == quadratic.sha256 and f.attrs["method"] == "replace"
        np.testing.assert_array_equal(f["restored"][...], result.restored)
        np.testing.assert_array_equal(f["mask"][...].astype(bool), result.degradation.mask)
        np.testing.assert_array_equal(f["metrics/naive/psnr"][...], m["naive"]["psnr"])
        assert f["original"].shape == (4, 1, 100) and f["grid"].shape == (100,)
        assert json.loads(f.attrs["config"])["data"] == "quadratic"
    # the same seeds reproduce the restorations (up to float32 round-off of a batch of another size: the
    # posterior metric's solves are batched); the measurement noise is in data units
    again = restore_items(quadratic, items[:1], "impute", params={"mode": "intervals", "fraction": 0.3},
                          num_restorations=2, steps=20, seed=3)
    np.testing.assert_allclose(again.restored[0], result.restored[0], rtol=1e-5, atol=1e-3)
    noisy = restore_items(quadratic, items[:2], "deblur", params={"sigma": 2.0, "noise": 1.0},
                          num_restorations=1, steps=10, method="dps", method_options={"zeta": 0.3})
    blurred = noisy.degradation.apply(torch.as_tensor(noisy.original, dtype=torch.float64)).numpy()
    assert np.std(noisy.measurement - blurred) == pytest.approx(1.0, rel=0.3)


def test_hdm_restore_command(quadratic, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_restore_arguments(parser)
    out, summary = tmp_path / "restored.h5", tmp_path / "summary.json"
    args = parser.parse_args(["--data", "quadratic", "--task", "super-resolution", "--factor", "3", "--num-items",
                              "3", "--num-restorations", "2", "--steps", "5", "--metric", "posterior", "--out",
                              str(out), "--json", str(summary), "--quiet"])
    assert run_restore_command(args) == 0
    table = json.loads(summary.read_text())
    assert table["items"] == 3 and table["operator"]["factor"] == 3 and table["out"] == str(out)
    assert "PSNR dB" in capsys.readouterr().out and out.is_file()
    args = parser.parse_args(["--data", "quadratic", "--task", "impute", "--sigma", "2", "--out", str(out)])
    with pytest.raises(ConfigError, match="--sigma does not apply to task impute"):
        run_restore_command(args)


def test_restore_items_on_images_with_an_exact_prior(tmp_path):
    """The runner is modality-agnostic: images [N, C, H, W] through a model-like object (HDM-SPDE, exact score).

    In float64: in float32 the samplers' HDM-SPDE steps amplify round-off in the modes where ``m_k`` ~ 0 near T
    (unconditional ddim included), which is the equation's matter, not restoration's."""
    H = W = 8
    eq = make_image_equation("hdm_spde", H, W, sigma=1.0, gamma=0.1)
    c = 0.5 / (1 + eq.Q.laplacian)

    class Affine:  # pixels in [0, 1] <-> [-1, 1], per channel
        def normalize(self, x):
            return (x - 0.5) / 0.5

        def denormalize(self, x):
            return x * 0.5 + 0.5

    class ImageModel:
        device = torch.device("cpu")
        normalizer = Affine()
        modality = "images"

        def equation_on(self, at):
            assert tuple(at) == (H, W)
            return eq

        def noise_predictor(self, at, equation):
            def predict(x, t):
                t0 = t.reshape(-1)[:1].double()
                m, sd, q = eq.mode_mean(t0)[0], eq.mode_std(t0)[0], eq.Q.spectrum
                return idct2(sd * q * dct2(x.double()) / (m**2 * c + q * sd**2)).to(x.dtype)

            return predict

    g = torch.Generator().manual_seed(0)
    images = (0.5 + 0.5 * idct2(c.sqrt() * torch.randn(6, 2, H, W, generator=g, dtype=torch.float64))).numpy()
    for task, params in (("inpaint-mask", {"patch": 2}), ("super-resolution", {}), ("pixelate", {}),
                         ("deblur", {"sigma": 1.0}), ("deblur", {"sigma": 1.0, "noise": 0.02, "rcond": 0.1}),
                         ("inpaint-noise", {"noise": 0.02})):
        r = restore_items(ImageModel(), images, task, params=params, num_restorations=8, steps=30, seed=1,
                          dtype=torch.float64)
        assert r.restored.shape == (6, 8, 2, H, W) and r.modality == "images"
        assert np.isfinite(r.restored).all() and r.grid is None
        m = r.metrics
        if params.get("noise"):  # explains y up to its noise, without fitting the noise
            # exact posterior (closed form, inpaint-noise here): a draw's consistency is 1 exactly in expectation,
            # the posterior mean's 0.13; the ancestral sampler's draws measured 0.51, their mean of 8 0.21
            assert 0.1 < np.median(m["restored_mean"]["consistency"]) < 3, task
            assert 0.3 < np.median(m["restored_single"]["consistency"]) < 3, task
        # smooth Gaussian fields: the naive fills are near the posterior mean (inpainting: MSE 0.051 vs 0.044),
        # which 8 draws estimate with an excess variance of 1/8 of the posterior's
        gain = np.median(m["restored_mean"]["psnr"] - m["naive"]["psnr"])
        assert gain > (10.0 if task == "deblur" and not params.get("noise") else -1.0), (task, gain)
    path = write_restoration(tmp_path / "img.h5", r)
    assert path.is_file()
    with pytest.raises(DataError, match="NaN or inf"):
        restore_items(ImageModel(), images * np.nan, "pixelate")
    assert set(TASKS) >= {"inpaint-noise", "inpaint-mask", "super-resolution", "pixelate", "deblur", "impute",
                          "smooth", "inbetween", "missing-joints"}


# -- hdm restore for every modality: images (bundled MNIST), motions (a tiny model), modality errors -----------
def _restore_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_restore_arguments(parser)
    return parser


def test_tasks_know_their_modality():
    for modality in ("functions", "motions", "images"):
        names = tasks_for(modality)
        assert names and all(modality in TASKS[t].modalities for t in names)
    assert tasks_for("images") == ["inpaint-noise", "inpaint-mask", "super-resolution", "pixelate", "deblur"]
    assert "inbetween" in tasks_for("motions") and "inbetween" not in tasks_for("functions")
    with pytest.raises(ConfigError, match="task 'inbetween' is for motions, not functions; for functions choose"):
        make_degradation("inbetween", (3, 16), modality="functions")
    make_degradation("inbetween", (3, 16), modality="motions", factor=4)  # same shape, the right modality


def test_hdm_restore_command_on_mnist(tmp_path, capsys):
    """``hdm restore --data mnist --checkpoint mnist_hdm``: held-out MNIST digits, restored with the bundled
    UNet; replacement with ``sigma_y = 0`` keeps every observed pixel of the original exactly."""
    import h5py

    from engine.data.images import mnist_dir

    if not mnist_dir().is_dir():
        pytest.skip("the shared MNIST copy is absent")
    parser = _restore_parser()
    out, summary = tmp_path / "mnist.h5", tmp_path / "mnist.json"
    args = parser.parse_args(["--data", "mnist", "--checkpoint", "mnist_hdm", "--task", "inpaint-mask",
                              "--num-items", "3", "--num-restorations", "2", "--steps", "4", "--out", str(out),
                              "--json", str(summary), "--quiet"])
    assert run_restore_command(args) == 0
    table = json.loads(summary.read_text())
    assert table["items"] == 3 and table["restorations_per_item"] == 2 and table["task"] == "inpaint-mask"
    assert table["consistency"]["restored_mean"] < 1e-5  # observed pixels equal y (data units, sigma_y = 0)
    with h5py.File(out) as f:
        assert f.attrs["modality"] == "images" and "grid" not in f
        original, restored, mask = f["original"][()], f["restored"][()], f["mask"][()].astype(bool)
    assert original.shape == (3, 1, 28, 28) and restored.shape == (3, 2, 1, 28, 28)
    assert 0 <= original.min() and original.max() <= 1 and 0 < mask.mean() < 1
    np.testing.assert_allclose(restored[:, :, mask], np.repeat(original[:, None], 2, axis=1)[:, :, mask],
                               atol=1e-5)
    assert "PSNR dB" in capsys.readouterr().out
    for argv, error, match in (
        (["--task", "inbetween"], ConfigError, "--task inbetween is for motions, but mnist_hdm is a model of images"),
        (["--task", "deblur", "--data", "quadratic"], DataError, "quadratic: holds functions but the checkpoint is a "
                                                                   "model of images"),
    ):
        argv = ["--data", "mnist", "--checkpoint", "mnist_hdm", *argv, "--out", str(tmp_path / "bad.h5")]
        with pytest.raises(error, match=match):
            run_restore_command(parser.parse_args(argv))
    assert not (tmp_path / "bad.h5").exists()


@pytest.fixture(scope="module")
def walk_model_dir(tmp_path_factory):
    """A tiny motion model (FNO-1D, 3 training steps) on 16-frame procedural walks, saved as a run folder."""
    from engine.config import RunConfig
    from engine.training import Trainer

    config = RunConfig().replace(data={"spec": "walk", "num": 32, "frames": 16},
                                 model={"width": 8, "modes": 4, "layers": 1, "emb_dim": 8},
                                 train={"steps": 3, "batch_size": 8})
    trainer = Trainer(config)
    for _ in range(3):
        trainer.step()
    out = tmp_path_factory.mktemp("walk")
    trainer.save(out)
    return out


def test_hdm_restore_command_inbetweens_motions(walk_model_dir, tmp_path):
    """``--task inbetween`` on a motion checkpoint: held-out walks at the model's frame rate and clip length;
    the keyframes (every 4th frame and the last) are kept exactly, the frames between are sampled."""
    import h5py

    parser = _restore_parser()
    out, summary = tmp_path / "walk.h5", tmp_path / "walk.json"
    args = parser.parse_args(["--data", "walk", "--checkpoint", str(walk_model_dir), "--task", "inbetween",
                              "--factor", "4", "--num-items", "3", "--num-restorations", "2", "--steps", "4",
                              "--out", str(out), "--json", str(summary), "--quiet"])
    assert run_restore_command(args) == 0
    with h5py.File(out) as f:
        assert f.attrs["modality"] == "motions" and f.attrs["task"] == "inbetween"
        original, restored, mask, grid = (f[k][()] for k in ("original", "restored", "mask", "grid"))
    assert original.shape == (3, 66, 16) and restored.shape == (3, 2, 66, 16)
    np.testing.assert_allclose(grid, np.arange(16) / 30.0)
    keyframes = mask.astype(bool)
    assert keyframes.all(axis=0).tolist() == [t % 4 == 0 or t == 15 for t in range(16)]
    np.testing.assert_allclose(restored[:, :, keyframes], np.repeat(original[:, None], 2, axis=1)[:, :, keyframes],
                               atol=1e-4)
    from engine.motion import load_motion_dataset

    held_out = load_motion_dataset("walk", "test", fps=30.0, frames=16, num=3, seed=0).values
    np.testing.assert_allclose(original, held_out, atol=1e-6)  # the test stream, not the training clips
    # the coordinates the walker never moves (spine, hip heights) come back as they are, not with the model's noise
    from engine import api

    norm = api.load_model(walk_model_dir).normalizer
    assert norm.constant == (3, 4, 5, 43, 55)
    for c in norm.constant:
        np.testing.assert_allclose(restored[:, :, c], original[:, None, c].repeat(2, axis=1), atol=1e-6)
    assert json.loads(summary.read_text())["items"] == 3
    for argv, error, match in (
        (["--task", "pixelate"], ConfigError, "--task pixelate is for images, but .* is a model of motions"),
        (["--task", "inbetween", "--data", "quadratic"], DataError, "quadratic: holds functions but the checkpoint"),
    ):
        argv = ["--data", "walk", "--checkpoint", str(walk_model_dir), *argv, "--out", str(tmp_path / "bad.h5")]
        with pytest.raises(error, match=match):
            run_restore_command(parser.parse_args(argv))
    assert not (tmp_path / "bad.h5").exists()


def test_a_motion_model_returns_the_coordinates_its_data_never_move_exactly(walk_model_dir):
    """The walker's spine offset and hip heights are constant in every clip: samples (and their live trajectory)
    hold them at the data's value, where a model's leftover noise used to walk them 0.2-0.3 m off."""
    from engine import api

    model = api.load_model(walk_model_dir)
    const = list(model.normalizer.constant)
    out = model.sample(3, steps=3, seed=0, trajectory_every=1)
    mean = np.asarray(model.normalizer.mean, dtype=np.float32)[const, None]
    for states in (out.samples, *out.trajectory):
        np.testing.assert_array_equal(states[:, const], np.broadcast_to(mean, states[:, const].shape))
    varying = [c for c in range(out.samples.shape[1]) if c not in const]
    assert out.samples[:, varying].std(axis=(0, 2)).min() > 0


def test_measured_data_with_gaps_are_filled_item_by_item():
    """API audit M6: items with NaN gaps were refused (even by impute) and one mask served every item, so real
    measured data needed the low-level restore() and hand-written normalisation."""
    from engine import api
    from engine.restoration import make_degradation, restore_items, restore_observed

    model = api.load_model("quadratic")
    clean = api.reference_data("quadratic", model.training_grid, num=5).values.astype(np.float64)
    n = clean.shape[-1]
    observed = clean.copy()
    observed[0, 0, 10:30] = np.nan  # three patterns of gaps and an item without any
    observed[1, 0, 10:30] = np.nan
    observed[2, 0, ::3] = np.nan
    observed[3, 0, 60:] = np.nan
    out = restore_observed(model, observed, num_restorations=2, steps=6, seed=3)
    assert out.restored.shape == (5, 2, 1, n) and out.settings["patterns"] == 4
    kept = ~np.isnan(observed)
    np.testing.assert_allclose(out.restored_mean[kept], observed[kept], rtol=1e-5)  # replacement keeps them
    np.testing.assert_array_equal(out.restored[4, 0], clean[4].astype(np.float32))  # no gap: as it was
    assert np.isfinite(out.restored).all() and np.abs(out.restored_mean[0, 0, 10:30]).max() < 150
    # one pattern, no noise: the same draws as degrading the clean items with that mask
    mask = make_degradation("impute", (1, n), mode="random", fraction=0.3, seed=1)
    gaps = np.where(mask.mask, clean[:2], np.nan)
    same = restore_observed(model, gaps, num_restorations=2, steps=6, seed=3)
    reference = restore_items(model, clean[:2], mask, num_restorations=2, steps=6, seed=3)
    np.testing.assert_allclose(same.restored, reference.restored, rtol=1e-6, atol=1e-6)
    with pytest.raises(DataError, match="observe no value"):
        restore_observed(model, np.full((1, 1, n), np.nan))
    with pytest.raises(DataError, match="mark values that were not observed with NaN"):
        restore_observed(model, np.where(kept[:1], observed[:1], np.inf))
