"""A time-conditioned UNet for images [B, C, H, W] (the DDPM architecture, sized for small images).

The backbone ``F(x, t)`` of :mod:`engine.objectives`: it sees a pre-scaled image and returns a
unit-scale image of the same shape. Layout, for ``channel_mult = (m_0, ..., m_{L-1})`` (L levels,
level ``l`` at resolution ``H / 2^l`` with ``width * m_l`` channels):

    conv3x3 -> [level l: num_res_blocks x (ResBlock [+ attention]) then a stride-2 conv3x3 (not at the last)]
            -> middle: ResBlock [+ attention] ResBlock
            -> [level l, reversed: (num_res_blocks + 1) x (concat skip, ResBlock [+ attention]),
                then nearest x2 + conv3x3 (not at level 0)]
            -> GroupNorm, SiLU, conv3x3 (zero-initialised: the network outputs exactly 0 at init)

Attention (single head, over all pixels of the level) is used at the levels listed in
``attention_levels``; the middle block has it when the last level is listed.

**Time.** ``e(t)`` is the sinusoidal embedding of ``1000 t`` (:func:`engine.models.fno.timestep_embedding`)
followed by an MLP; every residual block modulates its normalised features by it,

    ResBlock(h, t) = skip(h) + conv(dropout(SiLU(GN(conv(SiLU(GN(h)))) * (1 + a(e)) + b(e))))

with ``(a, b)`` a per-block linear map of ``SiLU(e(t))`` (scale-shift, as in improved DDPM).

**Any size.** The image is padded by reflection (replication where the image is too small to
reflect) to a multiple of ``2^(L-1)`` in each axis, centred, and the output is cropped back, so odd,
even and non-square sizes all work and the output has the input's shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from engine.errors import ConfigError, DataError
from engine.models.fno import timestep_embedding

UNET_PRESETS: dict[str, dict[str, object]] = {
    # For tests and CI (about 69k parameters): 28 -> 14, attention at 14x14.
    "tiny": {"width": 16, "channel_mult": (1, 1), "num_res_blocks": 1, "attention_levels": (1,),
             "emb_dim": 32, "groups": 8},
    # For MNIST-sized data (about 1.8 M parameters, the size of common MNIST DDPM UNets): 28 -> 14 -> 7,
    # attention at 7x7.
    "small": {"width": 32, "channel_mult": (1, 2, 2), "num_res_blocks": 2, "attention_levels": (2,),
              "emb_dim": 128, "groups": 8},
    # About 7.3 M parameters: twice the width, attention at 14x14 and 7x7.
    "base": {"width": 64, "channel_mult": (1, 2, 2), "num_res_blocks": 2, "attention_levels": (1, 2),
             "emb_dim": 256, "groups": 16},
}


class ResBlock(nn.Module):
    """Pre-activation residual block with GroupNorm + SiLU and a scale-shift time modulation.

    Shapes: ``forward(h [B, c_in, H, W], emb [B, emb_dim]) -> [B, c_out, H, W]``.
    """

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        y = self.conv1(F.silu(self.norm1(h)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        y = self.norm2(y) * (1 + scale) + shift
        y = self.conv2(self.dropout(F.silu(y)))
        return self.skip(h) + y


class SelfAttention(nn.Module):
    """Single-head self-attention over the pixels: ``h + proj(softmax(q k^T / sqrt(c)) v)``.

    ``q, k, v`` are 1x1 convolutions of ``GroupNorm(h)``. Shapes: [B, c, H, W] -> [B, c, H, W].
    """

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, c, height, width = h.shape
        # [B, 1, HW, c]: one head, in the 4-D layout the fused (flash, memory-efficient) kernels take; 3-D inputs
        # fell back to the plain one on a GPU
        q, k, v = self.qkv(self.norm(h)).reshape(b, 3, 1, c, height * width).transpose(3, 4).unbind(1)
        a = F.scaled_dot_product_attention(q, k, v)
        return h + self.proj(a.squeeze(1).transpose(1, 2).reshape(b, c, height, width))


class Downsample(nn.Module):
    """Stride-2 3x3 convolution: [B, c, H, W] -> [B, c, H/2, W/2] (H, W even)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.conv(h)


class Upsample(nn.Module):
    """Nearest-neighbour x2 then a 3x3 convolution: [B, c, H, W] -> [B, c, 2H, 2W]."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))


class _Stage(nn.Module):
    """A residual block optionally followed by self-attention (one step of a UNet level)."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float, attention: bool) -> None:
        super().__init__()
        self.res = ResBlock(c_in, c_out, emb_dim, groups, dropout)
        self.attn = SelfAttention(c_out, groups) if attention else nn.Identity()

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.attn(self.res(h, emb))


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Pad the last two axes of [B, C, H, W] up to multiples of ``multiple``, centred.

    Reflection where each side's pad is smaller than the axis, replication otherwise. Returns the
    padded tensor and ``(left, right, top, bottom)`` (``F.pad`` order).
    """
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    pads = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    if ph == 0 and pw == 0:
        return x, pads
    mode = "reflect" if max(pads[0], pads[1]) < w and max(pads[2], pads[3]) < h else "replicate"
    return F.pad(x, pads, mode=mode), pads


class UNet(nn.Module):
    """Time-conditioned UNet: ``forward(x [B, C, H, W], t [B] or scalar) -> [B, C, H, W]``.

    Args:
        channels: image channels C (input and output).
        width: channels of the first level; level ``l`` has ``width * channel_mult[l]``.
        channel_mult: per-level channel multipliers; ``len(channel_mult)`` levels, each but the last
            halving the resolution.
        num_res_blocks: residual blocks per level on the way down (one more on the way up).
        attention_levels: levels (0 = full resolution) with self-attention after each residual block.
        emb_dim: width of the time embedding (even).
        dropout: dropout probability inside the residual blocks.
        groups: GroupNorm groups; must divide ``width``.

    The output convolution is zero-initialised, so ``F(x, t) = 0`` at initialisation. Construction
    draws from torch's global generator (``torch.manual_seed`` makes it reproducible); the forward
    pass is deterministic in ``eval()`` mode (and in training mode whenever ``dropout == 0``).
    """

    def __init__(self, channels: int, *, width: int = 32, channel_mult: Sequence[int] = (1, 2, 2),
                 num_res_blocks: int = 2, attention_levels: Sequence[int] = (2,), emb_dim: int = 128,
                 dropout: float = 0.0, groups: int = 8) -> None:
        super().__init__()
        channel_mult = tuple(int(m) for m in channel_mult)
        attention_levels = tuple(int(a) for a in attention_levels)
        levels = len(channel_mult)
        if channels < 1:
            raise ConfigError(f"UNet channels must be >= 1, got {channels}")
        if levels < 1 or min(channel_mult) < 1:
            raise ConfigError(f"UNet channel_mult must be a non-empty list of positive integers, got {channel_mult}")
        if groups < 1 or width < 1 or width % groups:
            raise ConfigError(f"UNet width ({width}) must be a positive multiple of groups ({groups})")
        if num_res_blocks < 1:
            raise ConfigError(f"UNet num_res_blocks must be >= 1, got {num_res_blocks}")
        if any(a < 0 or a >= levels for a in attention_levels):
            raise ConfigError(f"UNet attention_levels {attention_levels} must lie in 0..{levels - 1}")
        if emb_dim < 2 or emb_dim % 2:
            raise ConfigError(f"UNet emb_dim must be a positive even number, got {emb_dim}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"UNet dropout must lie in [0, 1), got {dropout}")
        self.channels = channels
        self.emb_dim = emb_dim
        self.multiple = 2 ** (levels - 1)
        self.time_mlp = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.conv_in = nn.Conv2d(channels, width, 3, padding=1)

        self.down = nn.ModuleList()
        skips = [width]
        ch = width
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                self.down.append(_Stage(ch, width * mult, emb_dim, groups, dropout, level in attention_levels))
                ch = width * mult
                skips.append(ch)
            if level < levels - 1:
                self.down.append(Downsample(ch))
                skips.append(ch)
        mid_attention = (levels - 1) in attention_levels
        self.mid = nn.ModuleList([_Stage(ch, ch, emb_dim, groups, dropout, mid_attention),
                                  _Stage(ch, ch, emb_dim, groups, dropout, False)])
        self.up = nn.ModuleList()
        for level in reversed(range(levels)):
            out = width * channel_mult[level]
            for _ in range(num_res_blocks + 1):
                self.up.append(_Stage(ch + skips.pop(), out, emb_dim, groups, dropout, level in attention_levels))
                ch = out
            if level > 0:
                self.up.append(Upsample(ch))
        self.norm_out = nn.GroupNorm(groups, ch)
        self.conv_out = nn.Conv2d(ch, channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    @classmethod
    def from_preset(cls, name: str, channels: int, **overrides: object) -> UNet:
        """A UNet of the named size (a key of :data:`UNET_PRESETS`), with optional overrides."""
        if name not in UNET_PRESETS:
            raise ConfigError(f"unknown UNet preset {name!r}; choose one of {sorted(UNET_PRESETS)}")
        return cls(channels, **{**UNET_PRESETS[name], **overrides})

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise DataError(f"the UNet expects images [B, {self.channels}, H, W], got shape {tuple(x.shape)}; "
                            "use a model with as many channels as the dataset")
        b, _, height, width = x.shape
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(b)
        emb = self.time_mlp(timestep_embedding(t, self.emb_dim).to(x.dtype))
        h, (left, _, top, _) = _pad_to_multiple(x, self.multiple)
        h = self.conv_in(h)
        skips = [h]
        for module in self.down:
            h = module(h, emb) if isinstance(module, _Stage) else module(h)
            skips.append(h)
        for stage in self.mid:
            h = stage(h, emb)
        for module in self.up:
            h = module(torch.cat([h, skips.pop()], dim=1), emb) if isinstance(module, _Stage) else module(h)
        h = self.conv_out(F.silu(self.norm_out(h)))
        return h[:, :, top:top + height, left:left + width]


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["UNET_PRESETS", "UNet", "parameter_count", "ResBlock", "SelfAttention", "Downsample", "Upsample"]
