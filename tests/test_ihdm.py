"""IHDM (inverse heat dissipation) as a linear SPDE: its schedule, per-mode law, prior rules, and exact sampling."""

from __future__ import annotations

import math

import pytest
import torch

from engine.equations.schedules import HeatSchedule
from engine.equations.spde import IHDMEquation, make_image_equation
from engine.errors import ConfigError
from engine.operators.dct import dct2, idct2, neumann_laplacian_eigenvalues
from engine.rng import SampleRNG
from engine.samplers import SAMPLERS, time_grid
from tests.test_spde import SpectralGaussianOracle, _check_law, _data_spectrum, _per_mode

H, W = 8, 8


class StableOracle(SpectralGaussianOracle):
    """The exact predictor with ``both``: e_hat and the posterior mean of x_0, each without cancellation."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.both = self._both

    def _both(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t0 = torch.as_tensor(float(t.reshape(-1)[0]), dtype=torch.float64)
        m, sd, q = _per_mode(self.eq, t0)
        v = m**2 * self.c + q * sd**2
        r = dct2(x.double()) - m * self.mu_hat
        return idct2(sd * q * r / v).to(x.dtype), idct2(self.mu_hat + m * self.c * r / v).to(x.dtype)


def _eq(blur_max: float = 6.0) -> IHDMEquation:
    return make_image_equation("ihdm", H, W, blur_min=0.5, blur_max=blur_max, noise=0.05)


def test_heat_schedule_is_log_spaced_blur_and_beta_is_its_derivative():
    s = HeatSchedule(0.5, 20.0)
    t = torch.linspace(0.0, 1.0, 11, dtype=torch.float64)
    blur = s.blur(t)
    torch.testing.assert_close(s.tau(t), (blur**2 - 0.25) / 2)
    torch.testing.assert_close(blur[0], torch.tensor(0.5, dtype=torch.float64))
    torch.testing.assert_close(blur[-1], torch.tensor(20.0, dtype=torch.float64))
    torch.testing.assert_close(torch.diff(torch.log(blur)), torch.full((10,), math.log(40) / 10, dtype=torch.float64))
    h = 1e-6
    tt = torch.linspace(0.1, 0.9, 5, dtype=torch.float64)
    fd = -2 * (s.log_alpha(tt + h) - s.log_alpha(tt - h)) / (2 * h)
    torch.testing.assert_close(s.beta(tt), fd, rtol=1e-6, atol=1e-6)
    with pytest.raises(ConfigError):
        HeatSchedule(2.0, 1.0)


def test_mean_is_the_heat_blur_and_noise_is_ihdm_level_on_blurred_modes():
    eq = _eq()
    t = torch.tensor([0.3, 1.0], dtype=torch.float64)
    tau = eq.schedule.tau(t)[:, None, None]
    lam = neumann_laplacian_eigenvalues(H, W)
    torch.testing.assert_close(eq.mode_mean(t), torch.exp(-tau * (lam + 1e-4)))
    torch.testing.assert_close(eq.mode_variance(t), 0.05**2 * (1 - torch.exp(-2 * tau * (lam + 1e-4))))
    # the image mean barely decays and barely gets noise: the law at T is not Gaussian
    assert float(eq.mode_mean(t)[-1, 0, 0]) > 0.99
    assert float(eq.mode_variance(t)[-1, 0, 0]) < 1e-4 * 0.05**2 * 2 * float(tau[-1])
    # a fully blurred mode carries exactly the IHDM noise level
    assert abs(float(eq.mode_variance(t)[-1, -1, -1]) - 0.05**2) < 1e-12


def test_the_gaussian_prior_is_refused_for_ihdm():
    with pytest.raises(ConfigError, match="ihdm prior"):
        _eq().prior_sample(SampleRNG([0]), (1, H, W))


def test_logsnr_spacing_is_the_log_spaced_blur_schedule():
    eq = _eq()
    torch.testing.assert_close(time_grid(eq, 10, "logsnr"), time_grid(eq, 10, "uniform"))


@pytest.mark.parametrize("name", ["ddim", "exponential", "dpm2m", "dpm2m_sde"])
def test_exact_score_from_the_exact_time_T_law_reproduces_gaussian_data(name):
    """Gaussian data N(mu, C), C DCT-diagonal: x_T ~ its exact law at T (mode by mode), exact score -> the data."""
    eq = _eq()
    c, mu = _data_spectrum()
    n = 1000
    rng = SampleRNG(range(n))
    T = torch.tensor(eq.T, dtype=torch.float64)
    m, v = eq.mode_mean(T), eq.mode_variance(T)
    z = rng.randn(1, H, W, dtype=torch.float64)
    x_T = idct2(m * dct2(mu) + torch.sqrt(m**2 * c + v) * z)
    steps = 200
    x = SAMPLERS[name](StableOracle(eq, c, mu), eq, x_T, time_grid(eq, steps), rng=rng)
    _check_law(x, c, mu)


def test_euler_maruyama_refuses_a_step_count_at_which_ihdm_blows_up():
    """Near T the finest mode decays at 1/2 beta(T) a_max (about 2,000 at 8 x 8 here): explicit Euler steps
    multiply it by |1 - h r| >> 1, and the samples went to inf (math audit: covariance 1e31, then inf). The
    sampler now refuses, naming a step count that works; the exponential integrators take it exactly."""
    from engine.samplers import EXPLICIT_PEAK_LOG10, check_explicit_stability, explicit_amplification

    eq = _eq()
    ts = time_grid(eq, 100)
    times = [float(v) for v in ts]
    log_growth, peak = 0.0, 0.0
    a_max = float((eq.sigma + neumann_laplacian_eigenvalues(H, W)).max())
    for t, t_next in zip(times[:-1], times[1:]):  # the closed form, mode by mode
        beta = float(eq.schedule.beta(torch.tensor(t, dtype=torch.float64)))
        log_growth += math.log10(abs(1 - (t - t_next) * 0.5 * beta * a_max))
        peak = max(peak, log_growth)
    assert explicit_amplification(eq, ts) == pytest.approx((peak, log_growth), rel=1e-9)
    assert peak > EXPLICIT_PEAK_LOG10
    with pytest.raises(ConfigError, match=r"euler_maruyama is unstable on this ihdm equation with 100 steps.*needs "
                                          r"about \d+ uniform steps"):
        SAMPLERS["euler_maruyama"](lambda x, t: x, eq, torch.zeros(1, 1, H, W), ts, rng=SampleRNG([0]))
    message = ""
    try:
        check_explicit_stability(eq, ts)
    except ConfigError as exc:
        message = str(exc)
    need = int(message.split("about ")[1].split()[0])
    peak_ok, final_ok = explicit_amplification(eq, time_grid(eq, need))
    assert peak_ok < EXPLICIT_PEAK_LOG10 and final_ok < 1.0  # the count it names does pass
