"""Closed-form checks of the forward equations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.equations import make_equation
from engine.equations.schedules import CosineSchedule
from engine.errors import ConfigError
from engine.operators import KernelCovariance

GRID = np.linspace(-10, 10, 24)
Q = KernelCovariance("squared_exponential", 0.8).on_grid(GRID)
EQS = [("vp", "cosine"), ("vp", "linear"), ("subvp", "cosine"), ("subvp", "linear"), ("ve", "cosine")]


def _eq(name, schedule):
    return make_equation(name, Q, schedule=schedule)


def test_cosine_schedule_matches_reference_formulas():
    s = CosineSchedule()
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2)  # noqa: E731
    expected = [math.log(f(u)) - math.log(f(0.0)) for u in t.tolist()]
    torch.testing.assert_close(s.log_alpha(t), torch.tensor(expected, dtype=torch.float64))
    # beta = -2 d/dt log alpha
    h = 1e-6
    num = -2 * (s.log_alpha(t + h) - s.log_alpha(t - h)) / (2 * h)
    torch.testing.assert_close(s.beta(t), num, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,schedule", EQS)
def test_coefficients_satisfy_the_sde(name, schedule):
    """f = d log m/dt and g^2 = d s^2/dt - 2 f s^2 (so the marginal solves the forward SDE)."""
    eq = _eq(name, schedule)
    t = torch.linspace(0.05, eq.T - 0.05, 7, dtype=torch.float64)
    h = 1e-6
    dlogm = (torch.log(eq.mean_coef(t + h)) - torch.log(eq.mean_coef(t - h))) / (2 * h)
    ds2 = (eq.std(t + h) ** 2 - eq.std(t - h) ** 2) / (2 * h)
    torch.testing.assert_close(eq.drift_coef(t), dlogm, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(eq.diffusion_sq(t), ds2 - 2 * eq.drift_coef(t) * eq.std(t) ** 2,
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name,schedule", EQS)
def test_transition_composes_to_the_marginal(name, schedule):
    eq = _eq(name, schedule)
    s, t = torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.7, dtype=torch.float64)
    a, v = eq.transition(s, t)
    torch.testing.assert_close(a * eq.mean_coef(s), eq.mean_coef(t))
    torch.testing.assert_close(a**2 * eq.std(s) ** 2 + v, eq.std(t) ** 2)


def test_vp_marginal_at_T_matches_the_prior():
    """Simulating the forward SDE from data reaches N(0, Q) up to m(T) x0, which is negligible."""
    eq = _eq("vp", "cosine")
    T = torch.tensor(eq.T, dtype=torch.float64)
    assert float(eq.mean_coef(T)) < 0.01
    assert abs(float(eq.std(T)) - 1.0) < 1e-4
    # Euler–Maruyama on the forward SDE from Quadratic-like data (normalised scale).
    g = torch.Generator().manual_seed(0)
    x0 = torch.from_numpy(np.sign(np.random.default_rng(0).standard_normal((3000, 1, 1))) * (GRID / 10) ** 2)
    x = x0.clone()
    ts = torch.linspace(0, eq.T, 1001, dtype=torch.float64)
    for i in range(1000):
        h = float(ts[i + 1] - ts[i])
        t = ts[i].expand(3000)
        z = torch.randn(x.shape, generator=g, dtype=torch.float64)
        x = x + h * eq.drift(x, t) + math.sqrt(float(eq.diffusion_sq(ts[i])) * h) * Q.sqrt_apply(z)
    emp = np.cov(x[:, 0].numpy().T)
    assert np.abs(emp - Q.matrix()).max() < 0.12
    assert np.abs(x.mean(0).numpy()).max() < 0.07


@pytest.mark.parametrize("name,schedule", EQS)
def test_perturb_and_denoise_are_inverse(name, schedule):
    eq = _eq(name, schedule)
    x0 = torch.randn(4, 1, GRID.size, dtype=torch.float64)
    e = torch.randn(4, 1, GRID.size, dtype=torch.float64)
    t = torch.tensor([0.1, 0.3, 0.5, 0.8], dtype=torch.float64)
    xt = eq.perturb(x0, t, e)
    torch.testing.assert_close(eq.denoise(xt, e, t), x0)
    # the conditional Q-score is -e/s, and q_score_from_noise agrees
    torch.testing.assert_close(eq.conditional_q_score(xt, x0, t), eq.q_score_from_noise(e, t))


def test_posterior_step_is_the_exact_gaussian_bridge():
    """p(x_s | x_t, x_0) by brute-force conditioning of the joint Gaussian (scalar mode)."""
    eq = _eq("vp", "cosine")
    s, t = torch.tensor([0.4], dtype=torch.float64), torch.tensor([0.6], dtype=torch.float64)
    m_s, s_s = float(eq.mean_coef(s)), float(eq.std(s))
    a, v = (float(c) for c in eq.transition(s, t))
    # joint of (x_s, x_t) given x0 = 1 (unit mode): cov [[s_s^2, a s_s^2], [a s_s^2, a^2 s_s^2 + v]]
    c11, c12, c22 = s_s**2, a * s_s**2, a**2 * s_s**2 + v
    x0, xt = 1.0, 0.3
    mean_ref = m_s * x0 + c12 / c22 * (xt - a * m_s * x0)
    var_ref = c11 - c12**2 / c22
    one = torch.ones(1, 1, 1, dtype=torch.float64)
    mean = eq.posterior_step(xt * one, x0 * one, t, s, 0 * one)
    plus = eq.posterior_step(xt * one, x0 * one, t, s, one)
    assert float(mean) == pytest.approx(mean_ref, rel=1e-10)
    assert float(plus - mean) ** 2 == pytest.approx(var_ref, rel=1e-10)


def test_bad_equation_settings():
    with pytest.raises(ConfigError, match="unknown equation"):
        make_equation("heat", Q)
    with pytest.raises(ConfigError, match="schedule"):
        make_equation("vp", Q, schedule="sigmoid")
    with pytest.raises(ConfigError):
        make_equation("ve", Q, eta_min=2.0, eta_max=1.0)
    with pytest.raises(ConfigError):
        make_equation("vp", Q, T=1.5)
