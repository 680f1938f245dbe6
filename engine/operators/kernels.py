"""Stationary covariance kernels k(x, x') on a 1D domain.

Each kernel is ``gain * rho(r / length_scale)`` with ``r = |x - x'|``; ``k(x, x) = gain`` so a
draw from N(0, K) has pointwise variance ``gain`` on any grid. The squared-exponential uses
``exp(-r^2 / l^2)`` (no 1/2), the convention of the reference code, so its length scales
(0.8 for Quadratic) carry over unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from engine.errors import ConfigError


def _white(r: np.ndarray, ell: float, period: float | None) -> np.ndarray:
    return (r == 0.0).astype(np.float64)


def _squared_exponential(r: np.ndarray, ell: float, period: float | None) -> np.ndarray:
    return np.exp(-((r / ell) ** 2))


def _matern12(r: np.ndarray, ell: float, period: float | None) -> np.ndarray:
    return np.exp(-r / ell)


def _matern32(r: np.ndarray, ell: float, period: float | None) -> np.ndarray:
    a = math.sqrt(3.0) * r / ell
    return (1.0 + a) * np.exp(-a)


def _matern52(r: np.ndarray, ell: float, period: float | None) -> np.ndarray:
    a = math.sqrt(5.0) * r / ell
    return (1.0 + a + a * a / 3.0) * np.exp(-a)


def _periodic(r: np.ndarray, ell: float, period: float | None) -> np.ndarray:
    if period is None or not period > 0:
        raise ConfigError(f"the periodic kernel needs a period > 0, got {period!r} (hdm train --period; "
                          "noise.period in a RunConfig)")
    return np.exp(-2.0 * np.sin(np.pi * r / period) ** 2 / ell**2)


KERNELS: dict[str, Callable[[np.ndarray, float, float | None], np.ndarray]] = {
    "white": _white,
    "squared_exponential": _squared_exponential,
    "matern12": _matern12,
    "matern32": _matern32,
    "matern52": _matern52,
    "periodic": _periodic,
}
"""Kernel profiles by name: ``rho(r, length_scale, period)`` with ``rho(0) = 1``."""

ALIASES = {"rbf": "squared_exponential", "se": "squared_exponential", "gaussian": "squared_exponential",
           "exponential": "matern12", "matern-1/2": "matern12", "matern-3/2": "matern32",
           "matern-5/2": "matern52"}


def canonical_kernel(name: str) -> str:
    """The registry name for ``name`` (accepting a few common aliases)."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in KERNELS:
        raise ConfigError(f"unknown kernel {name!r}; choose one of {', '.join(KERNELS)}")
    return key


def kernel_length_scale(name: str, correlation_length: float, period: float | None) -> float:
    """The length scale to give kernel ``name`` for a correlation length ``L`` in the coordinates' units
    (a dataset's suggestion).

    Every kernel takes ``L`` as it is but the periodic one, whose ``exp(-2 sin^2(pi r / P) / l^2)``
    reads ``l`` relative to the period: it gets ``l = sqrt(2) sin(pi L / P)`` (``L`` at most ``P / 2``),
    which gives it the squared exponential's correlation ``e^-1`` at distance ``L``. (``L`` itself,
    tens of grid units on daily data, made every correlation about 1: Q of rank one, flat draws.)
    Without a valid period ``L`` is returned, and the kernel reports the missing period.
    """
    if canonical_kernel(name) != "periodic" or period is None or not period > 0:
        return float(correlation_length)
    return math.sqrt(2.0) * math.sin(math.pi * min(float(correlation_length), period / 2) / period)


def kernel_matrix(name: str, x: np.ndarray, y: np.ndarray | None = None, *, length_scale: float = 1.0,
                  gain: float = 1.0, period: float | None = None) -> np.ndarray:
    """The Gram matrix ``K[i, j] = k(x_i, y_j)`` in float64.

    Args:
        name: a key of :data:`KERNELS` (or an alias such as ``rbf``).
        x: coordinates, shape [n].
        y: coordinates, shape [m]; ``x`` when omitted.
        length_scale: ``l > 0`` in the units of the coordinates.
        gain: ``k(x, x) > 0``.
        period: the period of the ``periodic`` kernel.

    Returns:
        Array of shape [n, m].
    """
    key = canonical_kernel(name)
    if not (np.isfinite(length_scale) and length_scale > 0):
        raise ConfigError(f"kernel length scale must be a positive number, got {length_scale}")
    if not (np.isfinite(gain) and gain > 0):
        raise ConfigError(f"kernel gain must be a positive number, got {gain}")
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = x if y is None else np.asarray(y, dtype=np.float64).reshape(-1)
    r = np.abs(x[:, None] - y[None, :])
    return gain * KERNELS[key](r, float(length_scale), period)
