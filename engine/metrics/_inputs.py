"""Input checks shared by the metrics: curves as float64 tensors shaped [N, C, n]."""

from __future__ import annotations

import numbers

import numpy as np
import torch

from engine.errors import ConfigError, DataError

ArrayLike = np.ndarray | torch.Tensor


def as_float64(x: ArrayLike, what: str) -> torch.Tensor:
    """``x`` (numpy, torch or nested sequences) as a float64 CPU tensor; DataError if it is not numeric."""
    if isinstance(x, torch.Tensor):
        return x.detach().to(device="cpu", dtype=torch.float64)
    try:
        return torch.as_tensor(np.asarray(x, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} are not numeric arrays ({exc})") from None


def as_curves(x: ArrayLike, name: str) -> torch.Tensor:
    """``x`` ([N, n] or [N, C, n], numpy or torch) as a float64 CPU tensor [N, C, n].

    Raises :class:`DataError` for another rank, an empty sample or non-finite values.
    """
    t = as_float64(x, f"{name} samples")
    if t.ndim == 2:
        t = t[:, None, :]
    if t.ndim != 3:
        raise DataError(f"{name} samples must be shaped [N, n] or [N, C, n], got {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0 or t.shape[2] == 0:
        raise DataError(f"{name} samples are empty (shape {tuple(t.shape)})")
    if not bool(torch.isfinite(t).all()):
        raise DataError(f"{name} samples contain NaN or infinite values")
    return t


def as_pair(generated: ArrayLike, real: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Both samples as [N, C, n] / [M, C, n] float64 tensors with the same (C, n)."""
    g = as_curves(generated, "generated")
    r = as_curves(real, "real")
    if g.shape[1:] != r.shape[1:]:
        raise DataError(
            f"generated curves are shaped {tuple(g.shape[1:])} but real ones {tuple(r.shape[1:])}; "
            "they must share channels and grid"
        )
    return g, r


def check_int(value: object, name: str, minimum: int) -> int:
    """``value`` as an int >= ``minimum`` (bools refused), else :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_alpha(alpha: object) -> float:
    """``alpha`` as a float strictly between 0 and 1, else :class:`ConfigError`."""
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 < float(alpha) < 1.0:
        raise ConfigError(f"alpha must be a number strictly between 0 and 1, got {alpha!r}")
    return float(alpha)
