from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.models import FNO1d
from engine.models.fno import fourier_bases


def _period(a, b, n):
    return (b - a) * n / (n - 1)


def test_spectral_transform_is_rfft_on_the_training_grid():
    n = 64
    grid = torch.linspace(-10, 10, n, dtype=torch.float64)
    fwd, inv = fourier_bases(grid, n // 2 + 1, -10.0, _period(-10, 10, n))
    u = torch.randn(5, n, dtype=torch.float64)
    coef = u @ fwd
    ref = torch.fft.rfft(u) / n
    k = n // 2 + 1
    torch.testing.assert_close(coef[:, :k], ref.real)
    torch.testing.assert_close(coef[:, k:], ref.imag)
    torch.testing.assert_close(coef @ inv, u)  # full band: exact inverse


def test_truncated_transform_is_resolution_consistent():
    """A band-limited function has the same low Fourier coefficients on any fine grid."""
    a, b, n_train = -10.0, 10.0, 100
    P = _period(a, b, n_train)

    def f(x):
        return torch.cos(2 * torch.pi * 2 * (x - a) / P) + 0.5 * torch.sin(2 * torch.pi * 3 * (x - a) / P)

    coefs = []
    for n in (100, 200, 400):
        g = torch.linspace(a, b, n, dtype=torch.float64)
        fwd, _ = fourier_bases(g, 8, a, P)
        coefs.append(f(g) @ fwd)
    torch.testing.assert_close(coefs[1], coefs[0], atol=0.03, rtol=0)
    torch.testing.assert_close(coefs[2], coefs[0], atol=0.03, rtol=0)


def test_padding_decouples_the_two_ends_of_the_domain():
    """Without padding the truncated transform is periodic on the domain: a spike at the left end reappears at
    the right end (85 % of its own amplitude). With padding 1 (period twice the domain) it does not (< 5 %)."""
    n = 100
    grid = torch.linspace(-10, 10, n, dtype=torch.float64)
    spike = torch.zeros(n, dtype=torch.float64)
    spike[0] = 1.0
    ratios = {}
    for padding in (0.0, 1.0):
        fwd, inv = fourier_bases(grid, 16, -10.0, _period(-10, 10, n) * (1 + padding), 1 + padding)
        out = spike @ fwd @ inv
        ratios[padding] = float(out[-1] / out[0])
    assert ratios[0.0] > 0.8 and abs(ratios[1.0]) < 0.05
    net = FNO1d(channels=1, width=8, modes=8, layers=1, domain=(-10, 10), period=_period(-10, 10, n), padding=1.0)
    assert net.period == pytest.approx(2 * _period(-10, 10, n)) and net.bases(grid.float())[0].shape == (n, 16)
    # a short grid resolves twice as many modes of the doubled period (n + 1 for n points)
    assert fourier_bases(torch.linspace(-10, 10, 12), 16, -10.0, 2 * _period(-10, 10, 12), 2.0)[0].shape == (12, 26)


def test_checkpoints_without_padding_keep_the_periodic_layers():
    """``model.padding`` arrived with default 1; a stored config without it was trained with 0."""
    from engine.config import RunConfig

    old = {"model": {"name": "fno1d", "width": 8}}
    assert RunConfig.from_dict(old, stored=True).model.padding == 0.0
    assert RunConfig.from_dict(old).model.padding == 1.0 and RunConfig().model.padding == 1.0


@pytest.mark.parametrize("n", [17, 50, 100, 257])
def test_fno_runs_on_any_grid_including_non_uniform(n):
    torch.manual_seed(0)
    net = FNO1d(channels=2, width=8, modes=6, layers=2, domain=(-10, 10), period=_period(-10, 10, 100))
    grid = torch.linspace(-10, 10, n)
    out = net(torch.randn(3, 2, n), torch.rand(3), grid)
    assert out.shape == (3, 2, n) and torch.isfinite(out).all()
    ng = torch.sort(torch.from_numpy(np.random.default_rng(0).uniform(-10, 10, n)).float()).values
    assert net(torch.randn(3, 2, n), torch.rand(3), ng).shape == (3, 2, n)


def test_fno_is_a_consistent_operator_across_resolutions():
    """Evaluated on a smooth input, outputs at shared points agree between grids."""
    torch.manual_seed(0)
    net = FNO1d(channels=1, width=16, modes=8, layers=2, domain=(-10, 10), period=_period(-10, 10, 101))
    coarse = torch.linspace(-10, 10, 101)
    fine = torch.linspace(-10, 10, 201)
    u = lambda x: torch.sin(x / 2)[None, None, :]  # noqa: E731
    t = torch.tensor([0.5])
    with torch.no_grad():
        yc = net(u(coarse), t, coarse)[0, 0]
        yf = net(u(fine), t, fine)[0, 0, ::2]
    assert (yc - yf).abs().max() < 0.05 * yc.abs().max()
