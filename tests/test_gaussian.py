"""The public closed form for Gaussian data (engine.equations.gaussian) and float64 noise in the samplers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.equations import make_equation
from engine.equations.gaussian import (
    GaussianNoisePredictor,
    exact_output_law,
    gaussian_marginal,
    item_shape,
    marginal_operators,
    prior_law,
    sampler_affine_map,
)
from engine.equations.spde import make_image_equation
from engine.errors import ConfigError
from engine.operators import KernelCovariance, kernel_matrix
from engine.operators.dct import dct2, idct2
from engine.rng import SampleRNG
from engine.samplers import SAMPLERS, default_spacing, get_sampler, noise_dtype, time_grid

GRID = np.linspace(-10, 10, 24)
Q = KernelCovariance("squared_exponential", 0.8).on_grid(GRID)
C = kernel_matrix("matern52", GRID, length_scale=3.0) + 1e-6 * np.eye(GRID.size)
MU = 0.5 * np.sin(GRID / 3)
H, W = 6, 6
STOCHASTIC = ["euler_maruyama", "exponential", "pc", "dpm2m_sde"]


def _t(v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)


def _equation(name: str):
    if name in ("vp", "subvp", "ve"):
        return make_equation(name, Q)
    if name == "ihdm":
        return make_image_equation("ihdm", H, W, blur_min=0.5, blur_max=4.0, noise=0.05)
    return make_image_equation(name, H, W, sigma=1.0, gamma=0.1)  # hdm_spde, or white vp on images


def _data(eq) -> tuple[np.ndarray, np.ndarray, torch.Tensor | None]:
    """``(C, mu, c)``: curves use the Matern law; images a law diagonal in the DCT basis, ``c`` its spectrum."""
    if eq.Q.__class__.__name__ == "GridCovariance":
        return C, MU, None
    m = torch.arange(H, dtype=torch.float64)[:, None]
    n = torch.arange(W, dtype=torch.float64)[None, :]
    c = 0.6 / (1 + 0.5 * m**2 + 2.0 * n) + 0.05 * torch.exp(-((m - 3) ** 2 + (n - 4) ** 2) / 2)
    mu_hat = torch.zeros(H, W, dtype=torch.float64)
    mu_hat[0, 0], mu_hat[1, 0] = 1.5, -0.8
    basis = idct2(torch.eye(H * W, dtype=torch.float64).reshape(-1, H, W)).reshape(H * W, -1)  # row k: mode k
    return (basis.T @ torch.diag(c.reshape(-1)) @ basis).numpy(), idct2(mu_hat).reshape(-1).numpy(), c


ALL = ["vp", "subvp", "ve", "hdm_spde", "ihdm", "vp_image"]


def _eq_and_data(name: str):
    eq = make_image_equation("vp", H, W) if name == "vp_image" else _equation(name)
    return (eq, *_data(eq))


# -- the marginal -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_marginal_operators_are_the_equations_perturbation(name):
    """M_t x_0 + S_t e is ``equation.perturb(x_0, t, e)``; Q is the noise operator; all symmetric."""
    eq, *_ = _eq_and_data(name)
    shape = item_shape(eq)
    n = int(np.prod(shape))
    g = torch.Generator().manual_seed(0)
    x0, e = (torch.randn(3, *shape, generator=g, dtype=torch.float64) for _ in range(2))
    for t in (eq.eps, 0.4 * eq.T, eq.T):
        M, S, Qm = marginal_operators(eq, t)
        assert M.shape == S.shape == Qm.shape == (n, n)
        for A in (M, S, Qm):
            torch.testing.assert_close(A, A.T, rtol=0, atol=1e-14)
        tb = torch.full((3,), t, dtype=torch.float64)
        expected = eq.perturb(x0, tb, e).reshape(3, n)
        torch.testing.assert_close(x0.reshape(3, n) @ M.T + e.reshape(3, n) @ S.T, expected, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(e.reshape(3, n) @ Qm.T, eq.Q.apply(e).reshape(3, n), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(M @ Qm, Qm @ M, rtol=1e-9, atol=1e-12)  # commute with Q


@pytest.mark.parametrize("name", ALL)
def test_gaussian_marginal_is_the_closed_form(name):
    """Scalar equations: ``(m mu, m^2 C + s^2 Q)``; heat equations, per DCT mode: ``m_k^2 c_k + q_k shat_k^2``."""
    eq, Cd, mu, c = _eq_and_data(name)
    t = 0.3 * eq.T
    mean, cov = gaussian_marginal(eq, t, Cd, mu)
    m, s = eq.mode_coefs(_t(t))
    if c is None:
        np.testing.assert_allclose(mean, float(m) * mu, rtol=1e-12)
        np.testing.assert_allclose(cov, float(m) ** 2 * Cd + float(s) ** 2 * Q.matrix(), rtol=1e-10, atol=1e-13)
    else:
        v = m**2 * c + eq.Q.spectrum * s**2  # per-mode variance of x_t
        V = dct2(dct2(torch.as_tensor(cov).reshape(H, W, H, W)).permute(2, 3, 0, 1))  # D cov D^T, [H, W, H, W]
        torch.testing.assert_close(V.reshape(H * W, H * W), torch.diag(v.reshape(-1)), rtol=1e-9, atol=1e-12)
        mu_img = torch.as_tensor(mu).reshape(H, W)
        torch.testing.assert_close(torch.as_tensor(mean).reshape(H, W), idct2(m * dct2(mu_img)))
    if name != "ihdm":
        zero, cov_T = prior_law(eq)
        M, S, Qm = marginal_operators(eq, eq.T)
        assert not zero.any()
        np.testing.assert_allclose(cov_T, (S @ Qm @ S).numpy())


def test_prior_law_is_the_law_of_prior_sample():
    eq = _equation("vp")
    _, cov_T = prior_law(eq)
    x = eq.prior_sample(SampleRNG(range(20000)), (1, GRID.size), torch.float64)[:, 0].numpy()
    assert x.dtype == np.float64
    rel = np.linalg.norm(np.cov(x.T) - cov_T) / np.linalg.norm(cov_T)
    assert rel < 0.05, rel
    with pytest.raises(ConfigError, match="IHDM"):
        prior_law(_equation("ihdm"))


# -- the predictor --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_predictor_gives_the_exact_score_and_denoiser(name):
    """``q_score_from_noise(e_hat)`` is ``Q grad log N(x; M mu, Sigma_t)`` (autograd of the density), and ``both``'s
    ``x0_hat`` is the Gaussian posterior mean ``E[x_0 | x_t]`` (the regression of x_0 on x_t)."""
    eq, Cd, mu, _ = _eq_and_data(name)
    shape = item_shape(eq)
    n = int(np.prod(shape))
    pred = GaussianNoisePredictor(eq, Cd, mu, both=True)
    g = torch.Generator().manual_seed(1)
    for t in (0.05 * eq.T, 0.5 * eq.T, eq.T):
        mean_t, cov_t = (torch.as_tensor(a) for a in gaussian_marginal(eq, t, Cd, mu))
        x = (mean_t + torch.randn(4, n, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov_t).T)
        x = x.reshape(4, *shape).requires_grad_(True)
        dist = torch.distributions.MultivariateNormal(mean_t, covariance_matrix=cov_t)
        grad = torch.autograd.grad(dist.log_prob(x.reshape(4, n)).sum(), x)[0]
        x = x.detach()
        tb = torch.full((4,), t, dtype=torch.float64)
        e_hat, x0 = pred.both(x, tb)
        assert e_hat.shape == x.shape and e_hat.dtype == torch.float64
        torch.testing.assert_close(e_hat, pred(x, tb))
        want = eq.Q.apply(grad)
        tol = {"rtol": 1e-6, "atol": 1e-8 * float(want.abs().max())}
        torch.testing.assert_close(eq.q_score_from_noise(e_hat, tb), want, **tol)
        torch.testing.assert_close(pred.q_score(x, tb), want, **tol)
        # E[x_0 | x_t]: cross-covariance Cov(x_0, x_t) = C M_t
        M = marginal_operators(eq, t)[0]
        Cm = torch.as_tensor(Cd)
        expected = torch.as_tensor(mu) + (x.reshape(4, n) - mean_t) @ torch.linalg.solve(cov_t, M @ Cm)
        torch.testing.assert_close(x0.reshape(4, n), expected, rtol=1e-8, atol=1e-10)
        torch.testing.assert_close(pred.denoised(x, tb), x0)


@pytest.mark.parametrize("name", ["hdm_spde", "ihdm", "vp_image"])
def test_predictor_agrees_with_the_per_mode_oracle_on_images(name):
    """On images the dense predictor is the per-DCT-mode formula ``e_hat = shat q (X - m mu) / (m^2 c + q shat^2)``."""
    from tests.test_ihdm import StableOracle

    eq, Cd, mu, c = _eq_and_data(name)
    spectral = StableOracle(eq, c, torch.as_tensor(mu).reshape(H, W))
    dense = GaussianNoisePredictor(eq, Cd, mu, both=True)
    x = torch.randn(5, 1, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for t in (eq.eps, 0.3 * eq.T, eq.T):
        tb = torch.full((5,), t, dtype=torch.float64)
        for a, b in zip(spectral.both(x, tb), dense.both(x, tb)):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_predictor_keeps_dtype_and_device_and_takes_mixed_times_and_channels():
    eq = _equation("vp")
    pred = GaussianNoisePredictor(eq, C, MU)
    x = torch.randn(3, 2, GRID.size, dtype=torch.float64)  # two i.i.d. channels, each N(MU, C)
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    e = pred(x, t)
    for b in range(3):
        for ch in range(2):
            one = pred(x[b:b + 1, ch:ch + 1], t[b:b + 1])
            torch.testing.assert_close(e[b:b + 1, ch:ch + 1], one, rtol=1e-12, atol=1e-14)
    assert pred(x.float(), t.float()).dtype == torch.float32
    assert pred.calls == 1 + 6 + 1
    with pytest.raises(ConfigError, match="square"):
        GaussianNoisePredictor(eq, np.ones((3, 4)))
    with pytest.raises(ConfigError, match="does not fit"):
        GaussianNoisePredictor(eq, np.eye(5))
    with pytest.raises(ConfigError, match="symmetric"):
        GaussianNoisePredictor(eq, C + np.triu(np.ones_like(C), 1))
    with pytest.raises(ConfigError, match="mean"):
        GaussianNoisePredictor(eq, C, np.zeros(3))


def test_the_tests_closed_form_module_reexports_the_engine():
    from tests.closed_form import GaussianNoiseOracle
    from tests.closed_form import exact_output_law as reexported

    eq = _equation("vp")
    oracle = GaussianNoiseOracle(eq, C, MU)
    assert isinstance(oracle, GaussianNoisePredictor) and not hasattr(oracle, "both")
    assert reexported is exact_output_law


# -- the exact output law -----------------------------------------------------------------------
def test_exact_output_law_of_a_hand_written_sampler():
    """A "sampler" that adds one draw of N(0, Q) to its start: the output law is ``(mean_T, cov_T + Q)``."""

    def add_noise(predict_noise, equation, x, ts, *, rng, **kwargs):
        return x + equation.sample_noise(rng, tuple(x.shape[1:]), x.dtype)

    eq = _equation("vp")
    mean_T, cov_T = gaussian_marginal(eq, eq.T, C, MU)
    mean, cov = exact_output_law(add_noise, None, eq, time_grid(eq, 3), (1, GRID.size), mean_T, cov_T)
    np.testing.assert_allclose(mean, mean_T, atol=1e-14)
    np.testing.assert_allclose(cov, cov_T + Q.matrix(), rtol=1e-12, atol=1e-14)

    def wrong_shape(predict_noise, equation, x, ts, *, rng, **kwargs):
        return x + rng.randn(GRID.size, dtype=x.dtype)[:, None]

    with pytest.raises(ConfigError, match="item shape"):
        exact_output_law(wrong_shape, None, eq, time_grid(eq, 3), (1, GRID.size), mean_T, cov_T)


@pytest.mark.parametrize("name", ["vp", "ve", "hdm_spde", "ihdm"])
def test_every_sampler_converges_to_the_data_law_in_the_exact_law(name):
    """From the exact law at T with the exact score, the output covariance error is the discretisation error:
    small, and smaller with more steps (measured at 10 and 40 steps)."""
    eq, Cd, mu, _ = _eq_and_data(name)
    shape = item_shape(eq)
    pred = GaussianNoisePredictor(eq, Cd, mu, both=name in ("hdm_spde", "ihdm"))
    mean_T, cov_T = gaussian_marginal(eq, eq.T, Cd, mu)
    names = ["ddim", "dpm2m", "dpm2m_sde", "exponential"] if name in ("hdm_spde", "ihdm") else list(SAMPLERS)
    for sampler in names:
        if sampler == "euler_maruyama":
            continue  # explicit: needs hundreds of steps (test_samplers)
        errs = []
        for steps in (10, 40):
            mean, cov = exact_output_law(get_sampler(sampler), pred, eq, time_grid(eq, steps, default_spacing(sampler)),
                                         shape, mean_T, cov_T)
            errs.append(float(np.linalg.norm(cov - Cd) / np.linalg.norm(Cd)))
            assert np.abs(mean - mu).max() < 0.1 * np.abs(mu).max() + 1e-3, (sampler, steps)
        assert errs[1] < 0.5 * errs[0] and errs[1] < 0.25, (sampler, errs)


# -- float64 noise ----------------------------------------------------------------------------------
class _RecordingRNG(SampleRNG):
    def __init__(self, seeds) -> None:
        super().__init__(seeds)
        self.dtypes: list[torch.dtype] = []

    def randn(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        self.dtypes.append(dtype)
        return super().randn(*shape, dtype=dtype)


@pytest.mark.parametrize("name", STOCHASTIC)
def test_a_float64_state_gets_float64_noise_and_a_float32_one_float32(name):
    eq = _equation("vp")
    pred = GaussianNoisePredictor(eq, C, MU)
    ts = time_grid(eq, 600 if name == "euler_maruyama" else 8)
    for dtype in (torch.float64, torch.float32):
        rng = _RecordingRNG(range(3))
        x_T = eq.prior_sample(rng, (1, GRID.size), dtype)
        assert x_T.dtype == dtype
        seen: list[torch.dtype] = []
        x = SAMPLERS[name](pred, eq, x_T, ts, rng=rng, callback=lambda info, seen=seen: seen.append(info.x.dtype))
        assert x.dtype == dtype and set(seen) == {dtype}
        assert len(rng.dtypes) > 1 and set(rng.dtypes) == {noise_dtype(dtype)} == {dtype}, (dtype, set(rng.dtypes))


@pytest.mark.parametrize("name", ["exponential", "dpm2m_sde", "pc"])
def test_a_float64_exact_score_run_is_its_exact_affine_map_to_float64_precision(name):
    """Pathwise: a float64 run with real SampleRNG draws equals ``b + A x_T + B z`` (:func:`sampler_affine_map`)
    with ``z`` the same generators' float64 draws, to ~1e-13. With float32 noise (before) the best one could do
    is ``z`` rounded to float32, 1e-8 off: the check below shows that float32 noise could not pass."""
    eq = _equation("vp")
    pred = GaussianNoisePredictor(eq, C, MU)
    ts = time_grid(eq, 6)
    shape = (1, GRID.size)
    b, A, B = sampler_affine_map(get_sampler(name), pred, eq, ts, shape)
    draws = B.shape[1] // GRID.size
    seeds = [5, 6, 7, 8]
    x_T = torch.as_tensor(np.random.default_rng(0).standard_normal((4, *shape)))
    x = SAMPLERS[name](pred, eq, x_T, ts, rng=SampleRNG(seeds))[:, 0].numpy()
    replay = SampleRNG(seeds)
    z = torch.cat([replay.randn(*shape, dtype=torch.float64).reshape(4, -1) for _ in range(draws)], 1).numpy()
    expected = b + x_T.reshape(4, -1).numpy() @ A.T + z @ B.T
    scale = np.abs(expected).max()
    err = np.abs(x - expected).max() / scale
    assert err < 1e-11, err
    rounded = b + x_T.reshape(4, -1).numpy() @ A.T + z.astype(np.float32).astype(np.float64) @ B.T
    assert np.abs(rounded - expected).max() / scale > 100 * err


def test_predictor_is_differentiable():
    """Guided samplers (DPS) differentiate ``x0_hat`` through the predictor: ``d e_hat / dx = S_t Q Sigma_t^{-1}``."""
    eq = _equation("vp")
    pred = GaussianNoisePredictor(eq, C, MU)
    x = torch.randn(2, 1, GRID.size, dtype=torch.float32, requires_grad=True)
    t = torch.tensor([0.4, 0.7])
    w = torch.randn(2, 1, GRID.size)
    (pred(x, t) * w).sum().backward()
    for b, tv in enumerate((0.4, 0.7)):
        M, S, Qm = marginal_operators(eq, tv)
        sigma = M @ torch.as_tensor(C) @ M + S @ Qm @ S
        J = S @ Qm @ torch.linalg.inv(sigma)  # e_hat = J (x - M mu)
        torch.testing.assert_close(x.grad[b, 0], (w[b, 0].double() @ J).float(), rtol=1e-4, atol=1e-5)
