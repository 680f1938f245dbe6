"""FNO-1D with time conditioning that sees the grid coordinates.

The spectral convolutions are written with a quadrature-weighted Fourier transform evaluated
*at the grid coordinates*: for points x_i with weights w_i (normalised cell widths) and the
phase ``phi_i = (x_i - a) / P`` on the training domain's period P,

    c_k = sum_i w_i u(x_i) exp(-2 pi i k phi_i),     u(x_i) <- Re sum_k r_k c'_k exp(2 pi i k phi_i)

(``r_0 = 1``, ``r_k = 2``). On the training grid (uniform, n points, P = n * spacing) this is
exactly ``irfft(truncate(rfft(u)))``; on any other grid, finer, coarser or non-uniform, it is
the same operator on the same physical frequencies, so a network trained on one grid samples
on another. The network also receives the coordinate itself as an input channel.

Time enters through a sinusoidal embedding of ``t`` and a per-layer affine modulation (FiLM).
The output is a prediction of the coloured noise ``e`` (see :mod:`engine.objectives`).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def quadrature(grid: torch.Tensor, a: float, period: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Phases ``(x - a) / P`` and normalised cell-width weights for grid points [n]."""
    phase = (grid - a) / period
    n = grid.numel()
    if n == 1:
        return phase, torch.ones_like(grid)
    mid = 0.5 * (grid[1:] + grid[:-1])
    lo = torch.cat([grid[:1] - (mid[:1] - grid[:1]), mid])
    hi = torch.cat([mid, grid[-1:] + (grid[-1:] - mid[-1:])])
    w = hi - lo
    return phase, w / w.sum()


def fourier_bases(grid: torch.Tensor, modes: int, a: float, period: float, oversample: float = 1.0
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Real forward [n, 2k] and inverse [2k, n] bases on the given grid (k usable modes).

    ``h @ fwd`` gives ``[Re c_0..c_{k-1}, Im c_0..c_{k-1}]`` and ``[Re c', Im c'] @ inv`` gives
    ``Re sum_k r_k c'_k exp(2 pi i k phi)``: a truncated real DFT written with real matmuls.
    ``oversample``: the period's ratio to the grid's own (1 + padding); n points resolve
    ``n * oversample / 2`` modes of the longer period.
    """
    phase, w = quadrature(grid.to(torch.float64), a, period)
    n = grid.numel()
    k = min(modes, int(n * oversample) // 2 + 1)
    ang = 2 * math.pi * phase[:, None] * torch.arange(k, dtype=torch.float64, device=grid.device)[None, :]
    fwd = torch.cat([w[:, None] * torch.cos(ang), -w[:, None] * torch.sin(ang)], dim=1)
    r = torch.full((k,), 2.0, dtype=torch.float64, device=grid.device)
    r[0] = 1.0
    if oversample == 1.0 and k == n // 2 + 1 and n % 2 == 0:
        r[-1] = 1.0  # the Nyquist mode of an even grid appears once
    inv = torch.cat([r[:, None] * torch.cos(ang.T), -r[:, None] * torch.sin(ang.T)], dim=0)
    return fwd, inv


class SpectralConv1d(nn.Module):
    """Channel mixing of the lowest ``modes`` Fourier coefficients (complex weights per mode)."""

    def __init__(self, width: int, modes: int) -> None:
        super().__init__()
        self.modes = modes
        self.weight = nn.Parameter(torch.randn(2, modes, width, width) / width)

    def forward(self, h: torch.Tensor, fwd: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
        """``h`` is channels-last [B, n, W]; ``fwd`` [n, 2k], ``inv`` [2k, n] real.

        Under autocast the layer leaves it and runs in float32 (input cast up, float32 output): the
        Fourier bases and mode products are not rounded to bf16 (``benchmarks/bf16_accuracy.py``
        measures what the rounding would cost).
        """
        if torch.is_autocast_enabled(h.device.type):
            with torch.autocast(h.device.type, enabled=False):
                return self.mix(h.float(), fwd, inv)
        return self.mix(h, fwd, inv)

    def mix(self, h: torch.Tensor, fwd: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
        """The spectral convolution in the dtype it is given (see :meth:`forward`).

        Per mode, ``(c_re + i c_im)(w_re + i w_im)`` as four batched matmuls on views of the
        weight (no [k, 2W, 2W] real block is assembled), ``c_re w_re - c_im w_im`` fused in one
        ``baddbmm``.
        """
        k = fwd.shape[1] // 2
        coef = torch.matmul(fwd.T, h).transpose(0, 1)  # [2k, B, W]: rows (Re c_0.., Im c_0..)
        cr, ci = coef[:k], coef[k:]
        wr, wi = self.weight[0, :k], self.weight[1, :k]
        re = torch.baddbmm(torch.bmm(cr, wr), ci, wi, alpha=-1)
        im = torch.baddbmm(torch.bmm(cr, wi), ci, wr)
        return torch.matmul(inv.T, torch.cat([re, im]).transpose(0, 1))  # [B, n, W]


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of ``1000 t`` (shape [B] -> [B, dim])."""
    half = dim // 2
    # float64, then rounded once: the same float32 frequencies on every device (CUDA's and the CPU's float32
    # exp may differ by an ulp, and 1000 t multiplies it)
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float64, device=t.device) / half).float()
    arg = 1000.0 * t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


class FNOBlock(nn.Module):
    """``h + MLP(gelu(FiLM_t(LayerNorm(K h + W h))))`` on channels-last features [B, n, W].

    LayerNorm normalises each point over channels, so the block does not depend on the grid size.
    """

    def __init__(self, width: int, modes: int, emb_dim: int) -> None:
        super().__init__()
        self.spectral = SpectralConv1d(width, modes)
        self.pointwise = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)
        self.film = nn.Linear(emb_dim, 2 * width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, h, emb, fwd, inv):
        y = self.spectral(h, fwd, inv) + self.pointwise(h)
        scale, shift = self.film(emb)[:, None, :].chunk(2, dim=2)
        y = self.norm(y) * (1 + scale) + shift
        return h + self.mlp(nn.functional.gelu(y))


class FNO1d(nn.Module):
    """Time-conditioned Fourier neural operator on 1D grids.

    Args:
        channels: data channels C (input and output).
        width: hidden channels.
        modes: Fourier modes kept per layer.
        layers: number of FNO blocks.
        domain: (a, b) of the training grid; coordinates are read relative to it.
        period: the Fourier period P in coordinate units (for a uniform training grid of n
            points: ``(b - a) n / (n - 1)``).
        padding: the spectral layers use the period ``P (1 + padding)``, i.e. the curve extended
            by ``padding P`` (FNO's zero-padding): with 0 the layers are periodic on the domain and
            a non-periodic curve's two ends are coupled; 1 decouples them.
        emb_dim: time-embedding width.

    Shapes: ``forward(x [B, C, n], t [B], grid [n]) -> [B, C, n]``.
    """

    def __init__(self, channels: int = 1, width: int = 32, modes: int = 16, layers: int = 4,
                 domain: tuple[float, float] = (0.0, 1.0), period: float = 1.0, emb_dim: int = 64,
                 padding: float = 0.0) -> None:
        super().__init__()
        self.domain = (float(domain[0]), float(domain[1]))
        self.oversample = 1.0 + float(padding)
        self.period = float(period) * self.oversample
        self.modes = modes
        self.time_mlp = nn.Sequential(nn.Linear(emb_dim, 2 * emb_dim), nn.GELU(), nn.Linear(2 * emb_dim, emb_dim))
        self.emb_dim = emb_dim
        self.lift = nn.Linear(channels + 1, width)
        self.blocks = nn.ModuleList(FNOBlock(width, modes, emb_dim) for _ in range(layers))
        self.project = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, channels))
        self._bases_of: tuple[torch.Tensor, int, torch.Tensor, torch.Tensor] | None = None

    def bases(self, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The float32 bases ``(fwd [n, 2k], inv [2k, n])`` of ``grid``, on its device.

        Cached for the last grid *tensor* (same object, unmodified): the trainer and the
        samplers pass one grid tensor at every step, so the bases are built once per run,
        and the check never reads the grid's values (no host synchronisation on CUDA). A new
        grid tensor (e.g. a training sub-grid) is computed on its device. Under ``torch.compile``
        the bases are part of the compiled graph (no cache: it would guard on tensor identity).
        """
        if torch.compiler.is_compiling():
            fwd, inv = fourier_bases(grid.detach(), self.modes, self.domain[0], self.period, self.oversample)
            return fwd.float(), inv.float()
        cached = self._bases_of
        version = -1 if grid.is_inference() else grid._version  # inference tensors have no version counter
        if cached is None or cached[0] is not grid or cached[1] != version:
            fwd, inv = fourier_bases(grid.detach(), self.modes, self.domain[0], self.period, self.oversample)
            cached = self._bases_of = (grid, version, fwd.float(), inv.float())
        return cached[2], cached[3]

    def forward(self, x: torch.Tensor, t: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        b, _, n = x.shape
        a, bnd = self.domain
        coord = (2.0 * (grid.to(x.dtype) - a) / (bnd - a) - 1.0)[None, :, None].expand(b, n, 1)
        h = self.lift(torch.cat([x.transpose(1, 2), coord], dim=2))
        emb = self.time_mlp(timestep_embedding(t.reshape(-1).expand(b), self.emb_dim))
        fwd, inv = self.bases(grid)
        for block in self.blocks:
            h = block(h, emb, fwd, inv)
        return self.project(h).transpose(1, 2)
