from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.equations import make_equation
from engine.objectives import dsm_loss, noise_predictor, preconditioning
from engine.operators import KernelCovariance

Q = KernelCovariance("matern32", 1.0).on_grid(np.linspace(0, 5, 16))


@pytest.mark.parametrize("name", ["vp", "subvp", "ve"])
def test_v_parameterisation_recovers_the_noise_from_the_exact_target(name):
    """If F returns its exact target v, the wrapper returns exactly e, at every t (including near T)."""
    eq = make_equation(name, Q)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(6, 1, 16, generator=g, dtype=torch.float64)
    e = torch.randn(6, 1, 16, generator=g, dtype=torch.float64)
    t = torch.tensor([eq.eps, 0.01, 0.2, 0.5, 0.9, eq.T], dtype=torch.float64)
    x_t = eq.perturb(x0, t, e)
    m, s = eq.mean_coef(t)[:, None, None], eq.std(t)[:, None, None]
    v = (m * e - s * x0) / torch.sqrt(m**2 + s**2)
    predict = noise_predictor(lambda x, tt: v, eq, "v")
    torch.testing.assert_close(predict(x_t, t), e)
    # and the loss is zero for that backbone
    assert float(dsm_loss(lambda x, tt: v, eq, x0, t, e, "v")) < 1e-20
    c_in, c_skip, c_out = preconditioning(eq, t)
    assert torch.all(c_out <= 1) and torch.all(c_in > 0) and torch.all(c_skip >= 0)


def test_noise_parameterisation_is_plain_noise_prediction():
    eq = make_equation("vp", Q)
    x0 = torch.zeros(2, 1, 16)
    e = torch.ones(2, 1, 16)
    t = torch.tensor([0.3, 0.6], dtype=torch.float64)
    assert float(dsm_loss(lambda x, tt: torch.ones_like(x), eq, x0, t, e, "noise")) == 0.0
    assert noise_predictor(lambda x, tt: x, eq, "noise")(e, t) is e


def test_v_parameterisation_is_per_mode_for_the_heat_spde():
    """HDM-SPDE has per-DCT-mode m and s: the exact target still gives back e exactly."""
    from engine.equations.spde import make_image_equation

    eq = make_image_equation("hdm_spde", 8, 6, sigma=1.0, gamma=0.1)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(3, 2, 8, 6, generator=g, dtype=torch.float64)
    e = eq.Q.sqrt_apply(torch.randn(3, 2, 8, 6, generator=g, dtype=torch.float64))
    t = torch.tensor([0.05, 0.5, 0.9], dtype=torch.float64)
    x_t = eq.perturb(x0, t, e)
    from engine.operators.dct import dct2, idct2

    m, s = (c[:, None] for c in eq.mode_coefs(t))
    v = idct2((m * dct2(e) - s * dct2(x0)) / torch.sqrt(m**2 + s**2))
    torch.testing.assert_close(noise_predictor(lambda x, tt: v, eq, "v")(x_t, t), e)
    assert float(dsm_loss(lambda x, tt: v, eq, x0, t, e, "v")) < 1e-20


@pytest.mark.parametrize("name", ["vp", "hdm_spde", "ihdm"])
def test_the_loss_feeds_the_network_c_in_times_the_perturbed_state(name):
    """What the backbone sees is ``c_in x_t`` with ``x_t = equation.perturb(x0, t, e)``, and its target
    is ``v``; the loss of any backbone is the mean square of their difference."""
    from engine.equations.spde import make_image_equation

    eq = make_equation(name, Q) if name == "vp" else make_image_equation(name, 8, 6, sigma=1.0, gamma=0.1)
    shape = (3, 1, 16) if name == "vp" else (3, 2, 8, 6)
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(shape, generator=g, dtype=torch.float64)
    e = eq.Q.sqrt_apply(torch.randn(shape, generator=g, dtype=torch.float64))
    t = torch.tensor([0.05, 0.5, 0.9], dtype=torch.float64)
    c_in, _, _ = preconditioning(eq, t)
    m, s = eq.mode_coefs(t)
    expected_in = eq.scale_modes(c_in, eq.perturb(x0, t, e))
    v = eq.scale_modes(c_in, eq.scale_modes(m, e) - eq.scale_modes(s, x0))
    seen = []
    F = torch.randn(shape, generator=g, dtype=torch.float64)

    def backbone(x, tt):
        seen.append(x)
        return F

    loss = dsm_loss(backbone, eq, x0, t, e, "v")
    torch.testing.assert_close(seen[0], expected_in, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(loss, (F - v).pow(2).mean(), rtol=1e-12, atol=1e-12)


def test_training_times_are_uniform_or_half_log_uniform_from_the_same_draws():
    from engine.errors import ConfigError
    from engine.objectives import sample_times

    eq = make_equation("vp", Q)
    n = 20_000
    uniform = sample_times(n, eq, torch.Generator().manual_seed(3))
    mixed = sample_times(n, eq, torch.Generator().manual_seed(3), law="mixed")
    assert uniform.dtype == mixed.dtype == torch.float64
    assert torch.equal(uniform[1::2], mixed[1::2])  # the same draws: the RNG advances alike
    assert float(uniform.min()) >= eq.eps and float(uniform.max()) <= eq.T
    assert float(mixed.min()) >= eq.eps * (1 - 1e-12) and float(mixed.max()) <= eq.T * (1 + 1e-12)
    # every other time is log-uniform: its share below 1e-3 is log(1e-3/eps)/log(T/eps) (2/5 for eps = 1e-5)
    expected = np.log(1e-3 / eq.eps) / np.log(eq.T / eq.eps)
    assert abs(float((mixed[0::2] < 1e-3).double().mean()) - expected) < 0.015
    assert float((uniform < 1e-3).double().mean()) < 0.003
    # stratified: the uniform draws hold one time per stratum of (T - eps) / n
    strata = torch.floor((uniform - eq.eps) / (eq.T - eq.eps) * n).long()
    assert torch.equal(torch.sort(strata).values, torch.arange(n))
    with pytest.raises(ConfigError, match="uniform or mixed"):
        sample_times(4, eq, torch.Generator().manual_seed(0), law="loguniform")


def test_the_time_law_is_a_training_setting_hdm_train_takes():
    from engine.cli import _run_config as run_config
    from engine.cli import build_parser
    from engine.config import RunConfig
    from engine.errors import ConfigError

    args = build_parser("train").parse_args(["train", "--out", "x", "--time-law", "mixed"])
    assert run_config(args).train.time_law == "mixed"
    assert RunConfig().train.time_law == "uniform"
    assert RunConfig.from_dict(RunConfig().replace(train={"time_law": "mixed"}).to_dict()).train.time_law == "mixed"
    with pytest.raises(ConfigError, match="--time-law"):
        RunConfig().replace(train={"time_law": "log"})
