"""Image score networks: the UNet and the resolution-consistent FNO-2D."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from engine.errors import ConfigError, DataError
from engine.models.fno2d import FNO2d, SpectralConv2d, even_extension, pixel_centres
from engine.models.unet import UNET_PRESETS, UNet, _pad_to_multiple, parameter_count


def _tiny_unet(channels: int) -> UNet:
    return UNet.from_preset("tiny", channels)


def _three_level_unet(channels: int) -> UNet:
    """Pads to multiples of 4 and has attention at the bottom (and so in the middle block)."""
    return UNet(channels, width=8, channel_mult=(1, 1, 2), num_res_blocks=1, attention_levels=(2,), emb_dim=16,
                groups=4)


def _fno(channels: int) -> FNO2d:
    return FNO2d(channels, width=8, modes=5, layers=2, emb_dim=16)


BUILDERS = {"unet-tiny": _tiny_unet, "unet-3-levels": _three_level_unet, "fno2d": _fno}


def _output_layer(model: nn.Module) -> nn.Conv2d:
    """The zero-initialised last convolution of either network."""
    return model.conv_out if isinstance(model, UNet) else model.project[-1]


def _randomise_output_layer(model: nn.Module) -> None:
    layer = _output_layer(model)
    with torch.no_grad():
        layer.weight.normal_(0.0, 0.1)
        layer.bias.normal_(0.0, 0.1)


# -- shared properties of both networks --------------------------------------------------------
@pytest.mark.parametrize("name", BUILDERS)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [(28, 28), (29, 31), (16, 9), (5, 3), (1, 1)])
def test_output_has_the_input_shape(name, channels, size):
    torch.manual_seed(0)
    net = BUILDERS[name](channels)
    _randomise_output_layer(net)
    x = torch.randn(2, channels, *size)
    y = net(x, torch.tensor([0.1, 0.7]))
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert net(x, torch.tensor(0.5)).shape == x.shape  # a scalar time is broadcast over the batch


@pytest.mark.parametrize("name", BUILDERS)
def test_output_is_exactly_zero_at_initialisation(name):
    torch.manual_seed(0)
    net = BUILDERS[name](3)
    y = net(torch.randn(4, 3, 12, 10), torch.rand(4))
    assert torch.count_nonzero(y) == 0


@pytest.mark.parametrize("name", BUILDERS)
def test_gradient_reaches_every_parameter(name):
    """At init only the zero-initialised last layer gets a gradient (the rest is multiplied by its
    zero weights); once that layer is non-zero, every parameter does."""
    torch.manual_seed(0)
    net = BUILDERS[name](1)
    x, t = torch.randn(4, 1, 20, 20), torch.rand(4)
    net(x, t).sin().sum().backward()
    last = set(_output_layer(net).parameters())
    for p in net.parameters():
        assert (p.grad is not None and p.grad.abs().sum() > 0) == (p in last)
    net.zero_grad(set_to_none=True)
    _randomise_output_layer(net)
    net(x, t).sin().sum().backward()
    dead = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead


@pytest.mark.parametrize("name", BUILDERS)
def test_time_conditioning_changes_the_output(name):
    torch.manual_seed(0)
    net = BUILDERS[name](1)
    _randomise_output_layer(net)
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        y0, y1 = net(x, torch.full((3,), 0.05)), net(x, torch.full((3,), 0.9))
        y_mixed = net(x, torch.tensor([0.05, 0.9, 0.05]))
    assert (y0 - y1).abs().mean() > 1e-2 * y0.abs().mean()
    # each sample sees its own time
    torch.testing.assert_close(y_mixed[[0, 2]], y0[[0, 2]], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(y_mixed[1], y1[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", BUILDERS)
def test_construction_and_forward_are_deterministic(name):
    nets = []
    for _ in range(2):
        torch.manual_seed(123)
        nets.append(BUILDERS[name](3))
        _randomise_output_layer(nets[-1])
    for (na, pa), (nb, pb) in zip(nets[0].named_parameters(), nets[1].named_parameters(), strict=True):
        assert na == nb and torch.equal(pa, pb)
    x, t = torch.randn(2, 3, 15, 17), torch.rand(2)
    with torch.no_grad():
        assert torch.equal(nets[0](x, t), nets[1](x, t))
        assert torch.equal(nets[0](x, t), nets[0](x, t))
    torch.manual_seed(124)
    other = BUILDERS[name](3)
    assert not torch.equal(next(other.parameters()), next(nets[0].parameters()))


@pytest.mark.parametrize("name", BUILDERS)
def test_wrong_channel_count_is_a_data_error(name):
    net = BUILDERS[name](1)
    with pytest.raises(DataError, match="channels"):
        net(torch.randn(2, 3, 8, 8), torch.rand(2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", BUILDERS)
def test_cuda_matches_cpu(name):
    """float64 on both; the time embedding is computed in float32 (engine.models.fno.timestep_embedding),
    whose sin/cos differ by ~1e-7 between devices: measured differences 2e-8 to 4e-7."""
    torch.manual_seed(0)
    net = BUILDERS[name](3).double()
    _randomise_output_layer(net)
    x, t = torch.randn(2, 3, 29, 22, dtype=torch.float64), torch.rand(2, dtype=torch.float64)
    with torch.no_grad():
        y_cpu = net(x, t)
        y_gpu = net.cuda()(x.cuda(), t.cuda()).cpu()
    torch.testing.assert_close(y_gpu, y_cpu, rtol=1e-5, atol=2e-6)


# -- UNet ---------------------------------------------------------------------------------------
def test_presets_have_the_documented_sizes():
    counts = {name: parameter_count(UNet.from_preset(name, 1)) for name in UNET_PRESETS}
    assert counts["tiny"] < 100_000
    assert 1_000_000 <= counts["small"] <= 2_000_000
    assert 6_000_000 <= counts["base"] <= 10_000_000
    assert UNet.from_preset("small", 1, dropout=0.1).mid[0].res.dropout.p == 0.1  # overrides apply


def test_padding_is_centred_and_cropped_back_exactly():
    x = torch.randn(2, 3, 29, 30)
    padded, (left, right, top, bottom) = _pad_to_multiple(x, 4)
    assert padded.shape[-2:] == (32, 32) and (left, right, top, bottom) == (1, 1, 1, 2)
    assert torch.equal(padded[..., top:top + 29, left:left + 30], x)
    torch.testing.assert_close(padded[..., top - 1, left:left + 30], x[..., 1, :])  # reflected, not zero
    tiny, pads = _pad_to_multiple(torch.randn(1, 1, 1, 2), 4)  # too small to reflect: replicated
    assert tiny.shape[-2:] == (4, 4) and pads == (1, 1, 1, 2)


@pytest.mark.parametrize(("options", "match"), [
    ({"width": 12, "groups": 8}, "groups"),
    ({"attention_levels": (3,)}, "attention_levels"),
    ({"channel_mult": ()}, "channel_mult"),
    ({"num_res_blocks": 0}, "num_res_blocks"),
    ({"emb_dim": 7}, "emb_dim"),
    ({"dropout": 1.0}, "dropout"),
])
def test_bad_unet_options_are_config_errors(options, match):
    with pytest.raises(ConfigError, match=match):
        UNet(1, **options)


def test_unknown_preset_is_a_config_error():
    with pytest.raises(ConfigError, match="preset"):
        UNet.from_preset("huge", 1)


def test_tiny_unet_overfits_a_fixed_batch():
    """A fixed (x, t) -> target mapping: 100 Adam steps reduce the loss at least tenfold."""
    torch.manual_seed(0)
    net = _tiny_unet(1)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 1, 16, 16, generator=g)
    t = torch.rand(8, generator=g)
    target = F.avg_pool2d(x, 3, stride=1, padding=1) * (1 + t)[:, None, None, None] - 0.3 * x
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(100):
        loss = (net(x, t) - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]


# -- FNO-2D: resolution transfer ----------------------------------------------------------------
def _band_limited_periodic(n: int, k: int, batch: int, channels: int, g: torch.Generator) -> torch.Tensor:
    """A real periodic field on an n x n grid with random Fourier modes |k_1|, k_2 < k (float64)."""
    coef = torch.zeros(batch, channels, n, n // 2 + 1, dtype=torch.complex128)
    re_im = torch.randn(2, batch, channels, 2 * k - 1, k, generator=g, dtype=torch.float64)
    rows = torch.cat([torch.arange(n - k + 1, n), torch.arange(k)])
    coef[:, :, rows, :k] = torch.complex(re_im[0], re_im[1])
    return torch.fft.irfft2(coef, s=(n, n), norm="forward")


def _fourier_upsample(u: torch.Tensor, factor: int) -> torch.Tensor:
    """Exact band-limited up-sampling of a field without Nyquist content: zero-pad its rfft2."""
    n1, n2 = u.shape[-2:]
    m1, m2 = factor * n1, factor * n2
    coef = torch.fft.rfft2(u, norm="forward")
    assert coef[..., n1 // 2, :].abs().max() < 1e-12 and coef[..., n2 // 2].abs().max() < 1e-12
    big = coef.new_zeros(*u.shape[:-2], m1, m2 // 2 + 1)
    h = (n1 + 1) // 2
    big[..., :h, : n2 // 2] = coef[..., :h, : n2 // 2]
    big[..., m1 - (n1 - h):, : n2 // 2] = coef[..., h:, : n2 // 2]
    return torch.fft.irfft2(big, s=(m1, m2), norm="forward")


@pytest.mark.parametrize("modes", [6, 12, 20])
def test_spectral_layer_agrees_at_common_points_after_fourier_upsampling(modes):
    """28 x 28 band-limited field (|k| < 12) and its exact up-sampling to 56 x 56: outputs agree at the
    shared points to float64 precision. ``modes = 20`` exceeds what 28 points resolve: the coarse grid
    keeps |k| < 14 (no Nyquist row/column), and the fine grid's extra modes see zero input."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    layer = SpectralConv2d(3, 4, modes).double()
    coarse = _band_limited_periodic(28, 12, 2, 3, g)
    fine = _fourier_upsample(coarse, 2)
    assert torch.allclose(fine[..., ::2, ::2], coarse, rtol=0, atol=1e-13)
    y_coarse, y_fine = layer(coarse), layer(fine)
    assert y_coarse.abs().max() > 1.0
    torch.testing.assert_close(y_fine[..., ::2, ::2], y_coarse, rtol=0, atol=1e-12)


def test_spectral_layer_ignores_the_nyquist_row_and_column():
    """``cos(pi i)`` along an even axis is the Nyquist mode: never kept, so the output is zero."""
    torch.manual_seed(0)
    layer = SpectralConv2d(1, 1, 40).double()
    i = torch.arange(28, dtype=torch.float64)
    nyquist_rows = torch.cos(math.pi * i)[:, None] * torch.cos(2 * math.pi * 3 * i / 28)[None, :]
    nyquist_cols = nyquist_rows.T
    for u in (nyquist_rows, nyquist_cols):
        assert layer(u[None, None]).abs().max() < 1e-12


def test_spectral_layer_on_one_mode_is_the_complex_weight():
    """``cos(2 pi (k_1 i / N_1 + k_2 j / N_2))`` with k_2 > 0 maps to ``Re(R[k] e^{i theta})``."""
    torch.manual_seed(0)
    layer = SpectralConv2d(1, 1, 6).double()
    k1, k2, n1, n2 = -2, 3, 20, 18
    theta = 2 * math.pi * (k1 * torch.arange(n1, dtype=torch.float64)[:, None] / n1
                           + k2 * torch.arange(n2, dtype=torch.float64)[None, :] / n2)
    r = layer.weight[:, layer.modes - 1 + k1, k2, 0, 0].detach()
    expected = r[0] * torch.cos(theta) - r[1] * torch.sin(theta)
    torch.testing.assert_close(layer(torch.cos(theta)[None, None])[0, 0], expected, rtol=0, atol=1e-12)


def _smooth_image(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A smooth, non-periodic 2-channel image sampled at the pixel centres of an n x n grid."""
    c = pixel_centres(n, dtype=dtype)
    y, x = c[:, None], c[None, :]
    a = torch.sin(2 * math.pi * x + 1.0) * torch.cos(math.pi * y) + 0.5 * x * y**2
    b = torch.exp(-((x - 0.4) ** 2 + (y - 0.6) ** 2) / 0.1)
    return torch.stack([a, b])[None]


def test_spectral_layer_on_the_even_extension_agrees_at_shared_pixel_centres():
    """As the network uses it (mirrored, then cropped): a DCT-band-limited image on 28 x 28 pixel
    centres and on 84 x 84 (where every coarse centre is a fine one, i = 3 i' + 1) give the same output."""
    torch.manual_seed(0)
    layer = SpectralConv2d(1, 2, 12).double()

    def image(n: int) -> torch.Tensor:
        c = pixel_centres(n, dtype=torch.float64)
        y, x = c[:, None], c[None, :]
        return (torch.cos(math.pi * 3 * x) * torch.cos(math.pi * 5 * y) + torch.cos(math.pi * 11 * y) - 0.5)[None, None]

    y28 = layer(even_extension(image(28)))[..., :28, :28]
    y84 = layer(even_extension(image(84)))[..., :84, :84]
    torch.testing.assert_close(y84[..., 1::3, 1::3], y28, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fno_trained_grid_output_transfers_to_twice_the_resolution(dtype):
    """The whole network on a smooth image at 28 x 28, 56 x 56 and 84 x 84 (random weights).

    Measured (max abs difference / max |y_28|, float64 and float32): the 2x2-pooled 56 x 56 output vs
    the 28 x 28 output 1.1e-3 and 1.8e-3 (pooling averages the four fine pixels inside a coarse one, an
    O(h^2) error; taking one of the four instead gives 2.7e-2); the 84 x 84 output at the shared pixel
    centres 2.5e-4 and 2.2e-4 (what is left is the aliasing of the pointwise nonlinearities)."""
    torch.manual_seed(0)
    net = FNO2d(2, width=32, modes=12, layers=4).to(dtype)
    _randomise_output_layer(net)
    t = torch.tensor([0.3], dtype=dtype)
    with torch.no_grad():
        y28, y56, y84 = (net(_smooth_image(n, dtype), t) for n in (28, 56, 84))
    scale = y28.abs().max()
    pooled = (F.avg_pool2d(y56, 2) - y28).abs().max() / scale
    shared = (y84[..., 1::3, 1::3] - y28).abs().max() / scale
    assert pooled < 5e-3, pooled
    assert shared < 1e-3, shared
