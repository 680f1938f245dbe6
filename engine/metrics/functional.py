"""Functional (moment, autocorrelation, spectrum) errors between generated and real curves.

Complements the two-sample power: these statistics are deterministic, need no bandwidth,
and say *what* is wrong (offset, spread, smoothness, frequency content). All use float64.
Samples are [N, n] or [N, C, n]; statistics are computed per channel and pooled over
channels. With curves ``f_1..f_N`` on a grid of n points:

- **pointwise mean** ``mu(x) = mean_i f_i(x)``; ``mean_error = ||mu_g - mu_r|| / ||rms_r||``
  where ``rms_r(x) = sqrt(mean_i f_i(x)^2)`` (real data). The denominator is the real curves'
  root mean square rather than ``||mu_r||``, which vanishes for centred data (a GP prior) and
  would turn sampling noise into an infinite relative error; for data with a large offset
  the two coincide.
- **pointwise variance** ``v(x)`` (unbiased, ddof = 1); ``variance_error = ||v_g - v_r|| /
  ||v_r||``.
- **autocorrelation** ``rho(k)`` for lags ``k = 0..n//2``: each curve is centred by its own
  mean over the grid, ``c(k) = (1/n) sum_{j<n-k} f~_j f~_{j+k}`` (the biased autocovariance,
  a positive-definite sequence), ``rho(k) = c(k)/c(0)`` (a constant curve contributes
  ``rho = (1, 0, 0, ...)``), averaged over curves, per channel ([C, n//2 + 1]);
  ``acf_error = ||rho_g - rho_r||_2 / ||rho_r||_2`` (plain Euclidean norm over channels and
  lags; ``rho_r(0) = 1`` so the denominator is >= sqrt(C)). It measures shape and
  smoothness, invariant to offset and scale.
- **power spectrum** ``S(k) = mean_i |rfft(f_i)(k)|^2 / n`` for ``k = 0..n//2``, per channel
  (no window, no centring: k = 0 carries the mean); ``spectrum_error = sqrt(mean_{c,k}
  (ln S_g - ln S_r)^2)``, the RMS of the log-ratio in nepers (0.1 ~ spectra 10 % apart),
  with both spectra floored at ``1e-12 * max S_r`` so empty bins do not dominate.
- scalars: ``mean_generated``/``mean_real`` (grid average of the pointwise mean),
  ``mean_std_generated``/``mean_std_real`` (grid average of the pointwise standard
  deviation) and ``std_ratio = mean_std_generated / mean_std_real`` (1 when both are 0).

Norms ``||h||`` are grid L2 norms: ``sqrt(sum_x w(x) h(x)^2)`` with trapezoidal weights when
``grid`` is given, uniform weights otherwise (relative errors do not depend on the
normalisation). Autocorrelation and spectrum treat the n points as equispaced (lags and
frequencies in grid steps), whatever ``grid`` says.
"""

from __future__ import annotations

import torch

from engine.errors import DataError
from engine.metrics._inputs import ArrayLike, as_curves, as_pair

_TINY = 1e-300


def _weights(grid: ArrayLike | None, n: int) -> torch.Tensor:
    """Quadrature weights [n] summing to 1: trapezoidal on ``grid``, else uniform."""
    if grid is None:
        return torch.full((n,), 1.0 / n, dtype=torch.float64)
    x = torch.as_tensor(grid, dtype=torch.float64).reshape(-1)
    if x.numel() != n:
        raise DataError(f"grid has {x.numel()} points but the curves have {n}")
    if n == 1:
        return torch.ones(1, dtype=torch.float64)
    dx = x.diff()
    if not bool(torch.isfinite(x).all()) or not bool((dx > 0).all()):
        raise DataError("grid must be finite and strictly increasing")
    w = torch.zeros(n, dtype=torch.float64)
    w[:-1] += dx / 2
    w[1:] += dx / 2
    return w / w.sum()


def _norm(h: torch.Tensor, w: torch.Tensor) -> float:
    """Grid L2 norm of h [C, n] (summed over channels) with weights w [n]."""
    return float(((h * h) * w).sum().sqrt())


def _rel(err: float, ref: float) -> float:
    """err / ref, 0 when both vanish, inf when only the reference does."""
    if ref > _TINY:
        return err / ref
    return 0.0 if err <= _TINY else float("inf")


def mean_autocorrelation(x: ArrayLike) -> torch.Tensor:
    """Mean normalised autocorrelation [C, n//2 + 1] of curves x [N, n] or [N, C, n].

    See the module doc; a curve is constant when its variance is below 1e-20 times its mean
    square (rounding level), and then contributes ``(1, 0, 0, ...)``.
    """
    x = as_curves(x, "curves")
    n = x.shape[-1]
    c = x - x.mean(-1, keepdim=True)
    spec = torch.fft.rfft(c, n=2 * n)  # zero padding: linear, not circular, correlation
    acov = torch.fft.irfft(spec.real**2 + spec.imag**2, n=2 * n)[..., : n // 2 + 1] / n
    c0 = acov[..., :1]
    flat = c0 <= 1e-20 * x.pow(2).mean(-1, keepdim=True) + _TINY
    unit = torch.zeros_like(acov)
    unit[..., 0] = 1.0
    rho = torch.where(flat, unit, acov / c0.clamp_min(_TINY))
    return rho.mean(0)


def mean_power_spectrum(x: ArrayLike) -> torch.Tensor:
    """Mean power spectrum [C, n//2 + 1] of curves x [N, n] or [N, C, n]: ``mean_i |rfft f_i|^2 / n``."""
    x = as_curves(x, "curves")
    f = torch.fft.rfft(x, dim=-1)
    return (f.real**2 + f.imag**2).mean(0) / x.shape[-1]


def _spectrum_error(s_g: torch.Tensor, s_r: torch.Tensor) -> float:
    """RMS log-ratio of two spectra [C, K], floored at 1e-12 of the real maximum."""
    floor = max(1e-12 * float(s_r.max()), _TINY)
    ratio = s_g.clamp_min(floor).log() - s_r.clamp_min(floor).log()
    return float(ratio.pow(2).mean().sqrt())


def functional_errors(
    generated: ArrayLike, real: ArrayLike, grid: ArrayLike | None = None
) -> dict[str, float]:
    """Moment, autocorrelation and spectrum errors of generated vs real curves.

    Args:
        generated: [N, n] or [N, C, n] curves (N >= 2).
        real: [M, n] or [M, C, n] curves (M >= 2), same (C, n).
        grid: optional [n] strictly increasing coordinates (trapezoidal L2 weights).

    Returns:
        ``mean_error``, ``variance_error``, ``acf_error``, ``spectrum_error`` (all 0 for
        identical samples; definitions in the module doc) and the scalars
        ``mean_generated``, ``mean_real``, ``mean_std_generated``, ``mean_std_real``,
        ``std_ratio``.
    """
    g, r = as_pair(generated, real)
    if g.shape[0] < 2 or r.shape[0] < 2:
        raise DataError("functional errors need at least 2 curves in each sample")
    w = _weights(grid, g.shape[-1])
    mu_g, mu_r = g.mean(0), r.mean(0)  # [C, n]
    var_g, var_r = g.var(0), r.var(0)
    rms_r = r.pow(2).mean(0).sqrt()
    acf_g, acf_r = mean_autocorrelation(g), mean_autocorrelation(r)
    std_g = float((var_g.sqrt() * w).sum(-1).mean())
    std_r = float((var_r.sqrt() * w).sum(-1).mean())
    return {
        "mean_error": _rel(_norm(mu_g - mu_r, w), _norm(rms_r, w)),
        "variance_error": _rel(_norm(var_g - var_r, w), _norm(var_r, w)),
        "acf_error": _rel(float((acf_g - acf_r).norm()), float(acf_r.norm())),
        "spectrum_error": _spectrum_error(mean_power_spectrum(g), mean_power_spectrum(r)),
        "mean_generated": float((mu_g * w).sum(-1).mean()),
        "mean_real": float((mu_r * w).sum(-1).mean()),
        "mean_std_generated": std_g,
        "mean_std_real": std_r,
        "std_ratio": 1.0 if std_g <= _TINY and std_r <= _TINY else _rel(std_g, std_r),
    }
