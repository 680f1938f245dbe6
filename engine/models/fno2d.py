"""FNO-2D with time conditioning for images [B, C, H, W], consistent across resolutions.

**Domain and boundary.** An H x W image is a function on the unit square sampled at the pixel centres
``((i + 1/2)/H, (j + 1/2)/W)``, whatever H and W: a 56 x 56 image covers the same square as a 28 x 28
one. Images are not periodic, so every spectral convolution acts on the *even (reflective) extension*
of the features to ``[0, 2]^2``: they are mirrored across the right and bottom edges (``[h, flip(h)]`` in
each axis, 2H x 2W samples), which makes them periodic and continuous (a wrap-around would put a jump at
the border), and the result is cropped back to ``[0, 1]^2``; the pointwise layers act on the H x W
pixels only. On the extension, Fourier mode ``k`` is ``exp(i pi k x)``, so the mode indices are those of the Neumann
Laplacian's DCT-II eigenbasis (``cos(pi k x)``) that :mod:`engine.equations.spde` uses: ``modes`` keeps
the same physical frequencies as a DCT truncation. (The DCT is the equations' eigenbasis; an FFT on the
extension is a convenient superset for the network: its weights may also create sines.)

**Spectral convolution.** With ``hat h = rfft2(h, norm="forward")`` on the 2H x 2W extension (so
``hat h[k]`` is the amplitude of ``exp(i pi k . x)``, independent of the grid size),

    (K h)(x) = irfft2( sum_c R[k] hat h_c[k] ),    |k_1| < m_1 (both signs), 0 <= k_2 < m_2,

with ``m_1 = min(modes, H)`` and ``m_2 = min(modes, W)`` and complex weights ``R[k]`` of shape
[C_in, C_out] per mode (column ``k_2 = 0`` symmetrised so that the output is real). The Nyquist
row/column (``k = H`` resp. ``W`` on the extension) is never kept: on the coarse grid it aliases
``exp(i pi H x)`` with ``exp(-i pi H x)`` (a sine there is invisible), on a finer grid it does not, so
a weight on it would act differently at different resolutions. For a band-limited input the kept
coefficients are exact on every grid fine enough, so a spectral layer is the same operator on the same
physical frequencies at every resolution.

**Block.** ``h + MLP(gelu(FiLM_t(LayerNorm(K h + W h))))`` with ``W`` a 1x1 convolution, LayerNorm over
channels at each point (grid independent), FiLM a per-channel affine map of the time embedding
(sinusoidal embedding of ``1000 t`` and an MLP, :func:`engine.models.fno.timestep_embedding`). The input
is lifted together with two coordinate channels ``(x, y)`` (the pixel centres) and projected back to C
channels by a pointwise MLP. So a network trained at 28 x 28 can be evaluated at 56 x 56: it sees the
same function, the same coordinates and the same frequencies.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from engine.errors import ConfigError, DataError
from engine.models.fno import timestep_embedding


def pixel_centres(n: int, *, dtype: torch.dtype = torch.float32, device: torch.device | None = None
                  ) -> torch.Tensor:
    """Pixel-centre coordinates ``(i + 1/2) / n`` on [0, 1], shape [n]."""
    return (torch.arange(n, dtype=dtype, device=device) + 0.5) / n


def even_extension(h: torch.Tensor) -> torch.Tensor:
    """Mirror the last two axes: [..., H, W] -> [..., 2H, 2W], ``[h, flip(h)]`` in each axis."""
    h = torch.cat([h, h.flip(-2)], dim=-2)
    return torch.cat([h, h.flip(-1)], dim=-1)


class SpectralConv2d(nn.Module):
    """Channel mixing of the lowest Fourier modes of a periodic field.

    ``forward(h [B, C_in, N_1, N_2]) -> [B, C_out, N_1, N_2]``: keeps rows ``|k_1| < min(modes, ceil(N_1/2))``
    and columns ``0 <= k_2 < min(modes, ceil(N_2/2))`` of ``rfft2(h, norm="forward")`` (never the Nyquist
    row or column of an even size), multiplies each kept mode by its complex [C_in, C_out] weight and
    transforms back with ``irfft2(s=(N_1, N_2), norm="forward")``. A Fourier multiplier: it commutes with
    periodic shifts, and with ``norm="forward"`` a band-limited field gives the same coefficients (and so
    the same output at shared points) on every grid that resolves it.
    """

    def __init__(self, c_in: int, c_out: int, modes: int) -> None:
        super().__init__()
        self.modes = modes
        # [re/im, row k_1 = -(modes-1)..modes-1, column k_2 = 0..modes-1, C_in, C_out]
        self.weight = nn.Parameter(torch.randn(2, 2 * modes - 1, modes, c_in, c_out) / c_in)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Under autocast the layer leaves it and runs in float32 (FFTs and mode products; float32 output).

        Needed, not only safer: torch's CPU FFT rejects bf16 (``Unsupported dtype BFloat16``), and
        so do the CUDA FFTs of most torch builds.
        """
        if torch.is_autocast_enabled(h.device.type):
            with torch.autocast(h.device.type, enabled=False):
                return self.mix(h.float())
        return self.mix(h)

    def mix(self, h: torch.Tensor) -> torch.Tensor:
        """The spectral convolution in the dtype it is given (float32 or float64)."""
        b, _, n1, n2 = h.shape
        m1, m2 = min(self.modes, (n1 + 1) // 2), min(self.modes, (n2 + 1) // 2)
        coef = torch.fft.rfft2(h, norm="forward")
        kept = torch.cat([coef[:, :, n1 - m1 + 1:, :m2], coef[:, :, :m1, :m2]], dim=2)  # k_1 = -(m1-1)..m1-1
        wr, wi = self.weight[:, self.modes - m1:self.modes + m1 - 1, :m2].flatten(1, 2)  # [modes, C_in, C_out]
        block = torch.cat([torch.cat([wr, wi], dim=2), torch.cat([-wi, wr], dim=2)], dim=1)  # [modes, 2C_in, 2C_out]
        x = kept.flatten(2).permute(2, 0, 1)  # [modes, B, C_in], complex
        y = torch.bmm(torch.cat([x.real, x.imag], dim=2), block)  # [Re, Im] of x @ (wr + i wi)
        mixed = torch.complex(*y.chunk(2, dim=2)).permute(1, 2, 0).reshape(b, -1, 2 * m1 - 1, m2)
        # Column k_2 = 0 must be Hermitian in k_1 for a real output: keep its Hermitian part (what a
        # c2r transform computes implicitly on the CPU; left undefined by other FFT backends).
        col0 = 0.5 * (mixed[..., :1] + mixed[..., :1].flip(2).conj())
        mixed = torch.cat([col0, mixed[..., 1:]], dim=3)
        c_out = mixed.shape[1]
        out = torch.cat([mixed[:, :, m1 - 1:], coef.new_zeros(b, c_out, n1 - 2 * m1 + 1, m2), mixed[:, :, :m1 - 1]],
                        dim=2)  # rows 0..m1-1, then zeros, then -(m1-1)..-1
        out = torch.cat([out, coef.new_zeros(b, c_out, n1, n2 // 2 + 1 - m2)], dim=3)
        return torch.fft.irfft2(out, s=(n1, n2), norm="forward")


class FNOBlock2d(nn.Module):
    """``h + MLP(gelu(FiLM_t(LayerNorm(K_E h + W h))))`` on channels-first features [B, width, H, W].

    ``K_E h`` is the spectral convolution of the even extension of ``h``, cropped back to H x W.
    """

    def __init__(self, width: int, modes: int, emb_dim: int) -> None:
        super().__init__()
        self.spectral = SpectralConv2d(width, width, modes)
        self.pointwise = nn.Conv2d(width, width, 1)
        self.norm = nn.LayerNorm(width)
        self.film = nn.Linear(emb_dim, 2 * width)
        self.mlp = nn.Sequential(nn.Conv2d(width, 2 * width, 1), nn.GELU(), nn.Conv2d(2 * width, width, 1))

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        height, width = h.shape[-2:]
        y = self.spectral(even_extension(h))[..., :height, :width] + self.pointwise(h)
        y = self.norm(y.movedim(1, -1)).movedim(-1, 1)
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        return h + self.mlp(F.gelu(y * (1 + scale) + shift))


class FNO2d(nn.Module):
    """Time-conditioned Fourier neural operator on images: ``forward(x [B, C, H, W], t [B]) -> [B, C, H, W]``.

    Args:
        channels: image channels C (input and output).
        width: hidden channels.
        modes: Fourier modes kept per axis (``|k_1| < modes``, ``0 <= k_2 < modes`` on the reflective
            extension; mode k is the DCT's frequency ``cos(pi k x)``).
        layers: number of FNO blocks.
        emb_dim: time-embedding width (even).

    Any H, W >= 1; the same weights serve every resolution (see the module docstring). The last
    projection layer is zero-initialised, so ``F(x, t) = 0`` at initialisation. Construction draws from
    torch's global generator; the forward pass is deterministic.
    """

    def __init__(self, channels: int, *, width: int = 32, modes: int = 12, layers: int = 4, emb_dim: int = 64
                 ) -> None:
        super().__init__()
        if channels < 1 or width < 1 or modes < 1 or layers < 1:
            raise ConfigError(f"FNO2d channels, width, modes and layers must be >= 1, got "
                              f"{channels}, {width}, {modes}, {layers}")
        if emb_dim < 2 or emb_dim % 2:
            raise ConfigError(f"FNO2d emb_dim must be a positive even number, got {emb_dim}")
        self.channels = channels
        self.modes = modes
        self.emb_dim = emb_dim
        self.time_mlp = nn.Sequential(nn.Linear(emb_dim, 2 * emb_dim), nn.GELU(), nn.Linear(2 * emb_dim, emb_dim))
        self.lift = nn.Conv2d(channels + 2, width, 1)
        self.blocks = nn.ModuleList(FNOBlock2d(width, modes, emb_dim) for _ in range(layers))
        self.project = nn.Sequential(nn.Conv2d(width, 2 * width, 1), nn.GELU(), nn.Conv2d(2 * width, channels, 1))
        nn.init.zeros_(self.project[-1].weight)
        nn.init.zeros_(self.project[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise DataError(f"FNO2d expects images [B, {self.channels}, H, W], got shape {tuple(x.shape)}; "
                            "use a model with as many channels as the dataset")
        b, _, height, width = x.shape
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(b)
        emb = self.time_mlp(timestep_embedding(t, self.emb_dim).to(x.dtype))
        ys = pixel_centres(height, dtype=x.dtype, device=x.device)[:, None].expand(height, width)
        xs = pixel_centres(width, dtype=x.dtype, device=x.device)[None, :].expand(height, width)
        coords = torch.stack([xs, ys])[None].expand(b, 2, height, width)
        h = self.lift(torch.cat([x, coords], dim=1))
        for block in self.blocks:
            h = block(h, emb)
        return self.project(h)


__all__ = ["FNO2d", "FNOBlock2d", "SpectralConv2d", "even_extension", "pixel_centres"]
