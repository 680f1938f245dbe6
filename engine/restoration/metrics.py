"""Restoration metrics per item: PSNR, SSIM, measurement consistency, diversity.

Items are batches [N, C, *spatial] (numpy or torch); every function returns float64 numpy [N].

- **PSNR** ``10 log10(L^2 / MSE)`` over all channels and points; ``L`` (the data range) is given, or per item
  ``max - min`` of the original. An exact restoration scores ``inf``.
- **SSIM** (Wang, Bovik, Sheikh, Simoncelli 2004): local means, variances and covariance under a normalised
  Gaussian window of size 11 and std 1.5 (the paper's weights, no ``N/(N-1)`` correction), constants
  ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, averaged over the positions where the window fits entirely
  (``valid``) and over channels. Images use the 2D window; **curves and motions use the same window in 1D**
  along their last axis (a 1D SSIM). A spatial axis shorter than 11 uses the largest odd window that fits.
- **Consistency** ``||A x_hat - y|| / sqrt(m)`` (``m`` measured values per item) in units of ``sigma_y``, so a
  restoration that explains ``y`` up to its noise scores about 1; absolute (the RMS residual) when
  ``sigma_y = 0``.
- **Diversity** the per-point standard deviation across an item's restorations (ddof 1), averaged over
  points: 0 when the restorations coincide.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.errors import ConfigError
from engine.restoration.operators import Degradation

__all__ = ["consistency", "diversity", "psnr", "ssim"]

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _as_tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(device="cpu", dtype=torch.float64)
    return torch.as_tensor(np.asarray(x), dtype=torch.float64)


def _pair(x: Any, ref: Any) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _as_tensor(x), _as_tensor(ref)
    if a.shape != b.shape or a.ndim not in (3, 4):
        raise ConfigError(f"metrics compare batches of equal shape [N, C, n] or [N, C, H, W], got {tuple(a.shape)} "
                          f"and {tuple(b.shape)}")
    return a, b


def _range(ref: torch.Tensor, data_range: float | None) -> torch.Tensor:
    if data_range is not None:
        if not (math.isfinite(data_range) and data_range > 0):
            raise ConfigError(f"the data range must be a positive number, got {data_range!r}")
        return torch.full((ref.shape[0],), float(data_range), dtype=torch.float64)
    flat = ref.reshape(ref.shape[0], -1)
    span = flat.max(dim=1).values - flat.min(dim=1).values
    return torch.where(span > 0, span, torch.ones_like(span))  # a constant original: range 1


def psnr(x: Any, ref: Any, data_range: float | None = None) -> np.ndarray:
    """PSNR in dB of each item of ``x`` against ``ref`` [N, C, *spatial] (``inf`` where equal)."""
    a, b = _pair(x, ref)
    mse = (a - b).pow(2).reshape(a.shape[0], -1).mean(dim=1)
    L = _range(b, data_range)
    with np.errstate(divide="ignore"):
        return (10.0 * np.log10((L**2).numpy() / mse.numpy())).astype(np.float64)


def _window(size: int) -> torch.Tensor:
    size = min(SSIM_WINDOW, size if size % 2 else size - 1)
    u = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    w = torch.exp(-(u**2) / (2 * SSIM_SIGMA**2))
    return w / w.sum()


def _filter(u: torch.Tensor, windows: list[torch.Tensor]) -> torch.Tensor:
    """Separable ``valid`` filtering of u [M, 1, *spatial] along each spatial axis."""
    if len(windows) == 1:
        return F.conv1d(u, windows[0].reshape(1, 1, -1))
    wh, ww = windows
    return F.conv2d(F.conv2d(u, wh.reshape(1, 1, -1, 1)), ww.reshape(1, 1, 1, -1))


def ssim(x: Any, ref: Any, data_range: float | None = None) -> np.ndarray:
    """Mean SSIM of each item of ``x`` against ``ref`` (2D for images, 1D along the last axis for curves)."""
    a, b = _pair(x, ref)
    N, C = a.shape[:2]
    spatial = a.shape[2:]
    if min(spatial) < 3:
        raise ConfigError(f"SSIM needs at least 3 points per axis, got items of shape {tuple(a.shape[1:])}")
    windows = [_window(s) for s in spatial]
    L = _range(b, data_range).reshape(N, 1, *([1] * len(spatial)))
    c1 = (SSIM_K1 * L) ** 2
    c2 = (SSIM_K2 * L) ** 2
    u, v = a.reshape(N * C, 1, *spatial), b.reshape(N * C, 1, *spatial)
    mu_a, mu_b = _filter(u, windows), _filter(v, windows)
    var_a = _filter(u * u, windows) - mu_a**2
    var_b = _filter(v * v, windows) - mu_b**2
    cov = _filter(u * v, windows) - mu_a * mu_b
    shape = (N, C, *mu_a.shape[2:])
    mu_a, mu_b, var_a, var_b, cov = (z.reshape(shape) for z in (mu_a, mu_b, var_a, var_b, cov))
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.reshape(N, -1).mean(dim=1).numpy()


def consistency(x: Any, y: Any, degradation: Degradation) -> np.ndarray:
    """``||A x - y|| / sqrt(m)`` per item, in units of ``degradation.noise`` (absolute when it is 0)."""
    xt = _as_tensor(x)
    yt = _as_tensor(y)
    degradation.check(xt, "restoration")
    degradation.check_measurement(yt)
    r = (degradation.apply(xt) - yt).reshape(xt.shape[0], -1)
    rms = r.pow(2).sum(dim=1).sqrt() / math.sqrt(degradation.measurement_size)
    scale = degradation.noise if degradation.noise > 0 else 1.0
    return (rms / scale).numpy()


def diversity(restorations: Any) -> np.ndarray:
    """Mean per-point std (ddof 1) across restorations [N, k, C, *spatial] of each item; needs k >= 2."""
    r = _as_tensor(restorations)
    if r.ndim not in (4, 5) or r.shape[1] < 2:
        raise ConfigError(f"diversity needs at least 2 restorations per item, shaped [N, k, ...], got {tuple(r.shape)}")
    return r.std(dim=1, correction=1).reshape(r.shape[0], -1).mean(dim=1).numpy()
