"""Samplers driven by the exact score operator of Gaussian data reproduce that data's law."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.equations import make_equation
from engine.equations.gaussian import GaussianNoisePredictor, exact_output_law
from engine.errors import Cancelled, ConfigError
from engine.operators import KernelCovariance, kernel_matrix
from engine.rng import SampleRNG
from engine.samplers import EDM_RHO, SAMPLERS, default_spacing, get_sampler, time_grid

GRID = np.linspace(-10, 10, 32)
Q = KernelCovariance("squared_exponential", 0.8).on_grid(GRID)
# The data law N(mu, C) differs from the noise law N(0, Q): a rougher kernel, a mean.
C = kernel_matrix("matern52", GRID, length_scale=3.0) + 1e-6 * np.eye(GRID.size)
MU = 0.5 * np.sin(GRID / 3)
# Stochastic samplers need more steps: at 300 (EM) and 200 (exponential) steps the 200-vs-200 test
# detects their discretisation bias (12-14 %), at 1000 and 500 it does not.
STEPS = {"euler_maruyama": 1000, "exponential": 500, "pc": 200, "ode_heun": 50, "ddim": 100, "dpm2m": 25,
         "dpm2m_sde": 50}


def _exact(n: int, seed: int) -> np.ndarray:
    z = np.random.default_rng(seed).standard_normal((n, GRID.size))
    return MU + z @ np.linalg.cholesky(C).T


def _run(name: str, eq_name: str, n: int, seed0: int = 0) -> np.ndarray:
    eq = make_equation(eq_name, Q)
    rng = SampleRNG(range(seed0, seed0 + n))
    spacing = default_spacing(name)
    ts = time_grid(eq, STEPS[name], spacing)
    x_T = eq.prior_sample(rng, (1, GRID.size)).double()
    if eq_name == "ve":  # the VE prior is centred on the data, N(x0, s(T)^2 Q): add the data mean
        x_T = x_T + torch.as_tensor(MU)
    x0 = get_sampler(name)(GaussianNoisePredictor(eq, C, MU), eq, x_T, ts, rng=rng)
    return x0[:, 0].numpy()


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_vp_samplers_reproduce_gaussian_data_power_and_covariance(name):
    from engine.metrics import mmd_power

    x = _run(name, "vp", 4000)
    ref = _exact(4000, 123)
    res = mmd_power(x, ref, block_size=200, repeats=5, permutations=300, seed=1)  # 100 tests
    assert res.power <= 10.0, res
    cov_err = np.linalg.norm(np.cov(x.T) - C) / np.linalg.norm(C)
    noise = np.linalg.norm(np.cov(ref.T) - C) / np.linalg.norm(C)  # sampling noise at this size
    assert cov_err < 3 * noise + 0.02, (cov_err, noise)
    assert np.abs(x.mean(0) - MU).max() < 0.15


@pytest.mark.parametrize("eq_name", ["subvp", "ve"])
@pytest.mark.parametrize("name", ["exponential", "ddim", "pc"])
def test_other_equations_reproduce_gaussian_data(name, eq_name):
    x = _run(name, eq_name, 1500)
    ref = _exact(1500, 7)
    noise = np.linalg.norm(np.cov(ref.T) - C) / np.linalg.norm(C)
    assert np.linalg.norm(np.cov(x.T) - C) / np.linalg.norm(C) < 3 * noise + 0.02
    assert np.abs(x.mean(0) - MU).max() < 0.15


def test_samples_do_not_depend_on_batch_composition():
    eq = make_equation("vp", Q)
    oracle = GaussianNoisePredictor(eq, C, MU)
    ts = time_grid(eq, 20)
    full_rng = SampleRNG([10, 11, 12])
    full = SAMPLERS["exponential"](oracle, eq, eq.prior_sample(full_rng, (1, 32)).double(), ts, rng=full_rng)
    one_rng = SampleRNG([12])
    one = SAMPLERS["exponential"](oracle, eq, eq.prior_sample(one_rng, (1, 32)).double(), ts, rng=one_rng)
    # equal up to float32 round-off in batched matmuls (BLAS blocks by batch size)
    torch.testing.assert_close(full[2], one[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_callback_every_step_and_cancel(name):
    eq = make_equation("vp", Q)
    oracle = GaussianNoisePredictor(eq, C, MU)
    rng = SampleRNG(range(4))
    ts = time_grid(eq, 7)
    seen = []
    SAMPLERS[name](oracle, eq, eq.prior_sample(rng, (1, 32)).double(), ts, rng=rng, callback=seen.append)
    assert [s.step for s in seen] == list(range(1, 8))
    assert seen[-1].t == pytest.approx(eq.eps)
    assert all(s.x.shape == (4, 1, 32) and s.x0.shape == (4, 1, 32) for s in seen)
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > 3

    with pytest.raises(Cancelled):
        SAMPLERS[name](oracle, eq, eq.prior_sample(rng, (1, 32)).double(), ts, rng=rng, should_stop=stop)


def test_time_grids():
    eq = make_equation("vp", Q)
    for spacing in ("uniform", "logsnr", "edm"):
        ts = time_grid(eq, 10, spacing)
        assert ts.shape == (11,) and float(ts[0]) == eq.T and float(ts[-1]) == pytest.approx(eq.eps)
        assert torch.all(ts[1:] < ts[:-1])
    lam = eq.log_snr(time_grid(eq, 10, "logsnr"))
    torch.testing.assert_close(lam.diff(), lam.diff().mean().expand(10), rtol=1e-3, atol=1e-3)
    root = torch.exp(-eq.log_snr(time_grid(eq, 10, "edm")) / (2 * EDM_RHO))  # (s/m)^(1/rho)
    torch.testing.assert_close(root.diff(), root.diff().mean().expand(10), rtol=1e-3, atol=1e-5)
    with pytest.raises(ConfigError):
        time_grid(eq, 0)
    with pytest.raises(ConfigError, match="unknown time spacing 'karras'; choose one of uniform, logsnr, edm"):
        time_grid(eq, 10, "karras")
    with pytest.raises(ConfigError):
        get_sampler("rk45")


def _ode_error(name: str, steps: int, eq, oracle, x_T: torch.Tensor, ref: torch.Tensor) -> float:
    x = SAMPLERS[name](oracle, eq, x_T.clone(), time_grid(eq, steps, "logsnr"), rng=SampleRNG(range(x_T.shape[0])),
                       denoise_final=False)
    return float((x - ref).norm() / ref.norm())


@pytest.mark.parametrize("setting", ["vp-curves", "hdm-spde-images"])
def test_dpm2m_is_second_order_and_ddim_first_order(setting):
    """Global error of the probability-flow solution against a 2000-step one, with the exact score.

    Doubling the steps divides DPM-Solver++(2M)'s error by about 4 (measured 3.5-4.0 from 20 to 80 steps) and
    ddim's by about 2 (1.9-2.0); on HDM-SPDE, per DCT mode, as on the scalar VP equation.
    """
    if setting == "vp-curves":
        eq = make_equation("vp", Q)
        oracle = GaussianNoisePredictor(eq, C, MU)
        x_T = eq.prior_sample(SampleRNG(range(16)), (1, GRID.size)).double()
    else:
        from tests.test_ihdm import StableOracle
        from tests.test_spde import H, W, _data_spectrum
        from tests.test_spde import _eq as spde_equation

        eq = spde_equation()
        oracle = StableOracle(eq, *_data_spectrum())
        x_T = eq.prior_sample(SampleRNG(range(16)), (1, H, W)).double()
    ref = SAMPLERS["dpm2m"](oracle, eq, x_T.clone(), time_grid(eq, 2000, "logsnr"), rng=SampleRNG(range(16)),
                            denoise_final=False)
    dpm = [_ode_error("dpm2m", n, eq, oracle, x_T, ref) for n in (40, 80)]
    ddim = [_ode_error("ddim", n, eq, oracle, x_T, ref) for n in (40, 80)]
    assert 3.2 < dpm[0] / dpm[1] < 5.0, dpm
    assert 1.7 < ddim[0] / ddim[1] < 2.3, ddim
    assert dpm[0] < 0.2 * ddim[0], (dpm, ddim)


def test_the_default_sampling_batch_depends_on_device_and_size(monkeypatch):
    # CPU: about CPU_POINTS_PER_BATCH grid points a batch (activations stay in cache; measured 1.5-3.5x faster
    # than one batch of 1000), at least 32 items; a GPU takes one large batch.
    from engine import api
    from engine.pipeline import CPU_POINTS_PER_BATCH, GPU_POINTS_PER_BATCH, HDMModel

    model = api.load_model("quadratic")  # trained on 100 points
    assert model.default_batch_size() == CPU_POINTS_PER_BATCH // 100 == 250
    assert model.default_batch_size(np.linspace(-10, 10, 400)) == 62
    assert model.default_batch_size(np.linspace(-10, 10, 5000)) == 32
    result = model.sample(300, steps=3, sampler="exponential", seed=4)
    assert result.settings["batch_size"] == 250 and result.samples.shape == (300, 1, 100)
    one_batch = model.sample(300, steps=3, sampler="exponential", seed=4, batch_size=300)
    np.testing.assert_allclose(result.samples, one_batch.samples, rtol=0, atol=1e-4)  # data units (scale 100)
    assert model.sample(5, steps=2, seed=0).settings["batch_size"] == 5  # never more than asked for
    monkeypatch.setattr(HDMModel, "device", property(lambda self: torch.device("cuda")))
    assert model.default_batch_size() == 1000
    assert model.default_batch_size(np.linspace(-10, 10, 100_000)) == GPU_POINTS_PER_BATCH // 100_000 == 10


@pytest.mark.parametrize("name", ["dpm2m", "dpm2m_sde"])
@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_dpm_solvers_take_the_last_step_first_order_on_any_grid(name, schedule):
    """The exact law of DPM-Solver++(2M)'s output (Gaussian data, exact score) on a grid uniform in t, whose last
    step is ~8 times longer in lambda than the one before: extrapolating x0_hat over it (the 2M correction,
    which DPM-Solver++ drops below 15 steps only) gave covariance errors of 16-49 % at 15 steps (dpm2m_sde both
    schedules, dpm2m linear), against 1.4-6.5 % with a first-order last step; and more steps must not make it
    worse."""
    eq = make_equation("vp", Q, schedule=schedule)
    T = torch.tensor(eq.T, dtype=torch.float64)
    m, s = float(eq.mean_coef(T)), float(eq.std(T))
    oracle = GaussianNoisePredictor(eq, C, MU)
    errors = []
    for steps in (14, 15, 20, 40):
        mean, cov = exact_output_law(get_sampler(name), oracle, eq, time_grid(eq, steps, "uniform"), (1, GRID.size),
                                     m * MU, m * m * C + s * s * Q.matrix())
        errors.append(float(np.linalg.norm(cov - C) / np.linalg.norm(C)))
    assert max(errors) < 0.1, errors
    assert errors[-1] <= errors[1], errors


def _pixel_covariance(spectrum: torch.Tensor) -> np.ndarray:
    """The pixel-basis covariance of a law diagonal in the DCT basis with per-mode variances ``spectrum`` [H, W]."""
    from engine.operators.dct import idct2

    h, w = spectrum.shape
    basis = idct2(torch.eye(h * w, dtype=torch.float64).reshape(-1, h, w)).reshape(h * w, -1)  # row k: mode k
    return (basis.T @ torch.diag(spectrum.reshape(-1)) @ basis).numpy()


@pytest.mark.parametrize("name", ["ddim", "dpm2m", "dpm2m_sde", "exponential", "pc"])
@pytest.mark.parametrize("kind", ["hdm_spde", "ihdm"])
def test_a_noise_only_predictor_samples_the_heat_equations(name, kind):
    """A predictor without ``both`` (the "noise" parameterisation) gets x0_hat by Tweedie, ``(x - s e_hat) / m``:
    on HDM-SPDE and IHDM ``m_k`` is tiny (IHDM: 0 at T) in the high modes, where that was round-off divided by
    ``m_k``, which the next step multiplies up: exact-score samples had relative covariance errors of 1e11 to
    1e31 (28 x 28 in float32: rms 1e22, or NaN). With the modes below the signal floor set to the mean, the
    output's exact law is the one the stable predictor (with ``both``) gives."""
    from engine.operators.dct import dct2, idct2
    from tests.test_ihdm import StableOracle
    from tests.test_ihdm import _eq as ihdm_equation
    from tests.test_spde import H, SpectralGaussianOracle, W, _data_spectrum, _per_mode
    from tests.test_spde import _eq as spde_equation

    eq = spde_equation() if kind == "hdm_spde" else ihdm_equation()
    c, mu = _data_spectrum()
    m, sd, q = _per_mode(eq, torch.tensor(eq.T, dtype=torch.float64))
    mean_T = idct2(m * dct2(mu)).reshape(-1).numpy()  # the exact law at T, mode by mode
    cov_T = _pixel_covariance(m**2 * c + q * sd**2)
    target = _pixel_covariance(c)
    ts = time_grid(eq, 20, default_spacing(name))
    errors = {}
    for label, oracle in (("noise only", SpectralGaussianOracle(eq, c, mu)), ("both", StableOracle(eq, c, mu))):
        mean, cov = exact_output_law(get_sampler(name), oracle, eq, ts, (1, H, W), mean_T, cov_T)
        assert np.isfinite(cov).all() and np.isfinite(mean).all(), label
        errors[label] = float(np.linalg.norm(cov - target) / np.linalg.norm(target))
    assert errors["noise only"] <= 1.05 * errors["both"] + 1e-3, errors
