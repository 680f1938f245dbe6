"""Per-channel standardisation of curves, independent of the grid resolution.

``Normalizer`` keeps ONE mean and ONE standard deviation per channel, pooled over all curves and all grid
points of the training set (not per grid point, and never from a handful of curves as the reference does
for Melbourne), so the same transform applies to curves sampled at any resolution. A channel whose std is 0
(or not finite) uses std = 1.0, so constant data only gets centred. A channel the training data hold
constant (std at most 1e-12 of its scale; e.g. a joint coordinate a skeleton never moves) is listed in
``constant``: :meth:`Normalizer.denormalize` writes its mean back exactly, so whatever a model leaves in it
(residual noise, which walks bones off their lengths) never reaches the output. ``kind="none"`` is the identity.

``fit(..., cap=True)`` (``--channel-scale capped``, the default for motions) gives no channel a std above the
data's RMS channel std (over the channels that vary): channels that share one unit, a skeleton's coordinates in
metres, then keep comparable metres per unit of noise. Standardised each by its own std, the walker's root x
and z (std 1.85 m: where the walks end up) took 34 times the metres per unit of a typical joint coordinate,
and whatever noise the model left there (about 0.27 units after 2500 steps) became 96 % of the samples' jerk.
Measured (width 64, one seed, ``hdm bench --sections quality``): walks, 2500 steps, ``exponential``-10: jerk
1544 -> 397 (data 111), joint-velocity two-sample power 100 % -> 4.8 %, foot skating 3.6 -> 1.2 m/s,
trajectory power 3.7 % -> 4.8 %; cmu07, 4000 steps: jerk 922-967 -> 236-263 (data 257), velocity power 100 %
-> 20-43 % (real training clips: 22 %), foot skating 2.4 -> 0.6-0.75, trajectory power level.

Images use the same class with ``spatial_dims=2`` (arrays [..., C, H, W]) and the fixed map
``mean = std = 0.5`` that sends pixel values in [0, 1] to [-1, 1] (:meth:`Normalizer.unit_range`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import DataError

KINDS = ("standard", "none")


@dataclass(frozen=True)
class Normalizer:
    """``x -> (x - mean[c]) / std[c]`` per channel c; arrays are shaped [..., C, n].

    Attributes:
        kind: ``"standard"`` or ``"none"`` (identity).
        mean: float64 [C] (empty for ``none``).
        std: float64 [C], all > 0 (empty for ``none``).
        constant: channels the fitted data hold constant; :meth:`denormalize` returns their mean there.
    """

    kind: str = "standard"
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    spatial_dims: int = 1  # 1: arrays [..., C, n]; 2: images [..., C, H, W]
    constant: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DataError(f"normalizer: unknown kind {self.kind!r}; use one of {', '.join(KINDS)}")
        mean = tuple(float(v) for v in self.mean)
        std = tuple(float(v) for v in self.std)
        if self.kind == "standard":
            if not mean or len(mean) != len(std):
                raise DataError(f"normalizer: need one mean and one std per channel, "
                                f"got {len(mean)} and {len(std)}")
            if not (np.isfinite(mean).all() and np.isfinite(std).all() and (np.asarray(std) > 0).all()):
                raise DataError("normalizer: means must be finite and stds finite and > 0")
        if self.spatial_dims not in (1, 2):
            raise DataError(f"normalizer: spatial_dims must be 1 or 2, got {self.spatial_dims!r}")
        try:
            constant = tuple(sorted({int(c) for c in self.constant}))
        except (TypeError, ValueError):
            raise DataError(f"normalizer: constant must list channel indices, got {self.constant!r:.80}") from None
        if constant and (self.kind != "standard" or constant[0] < 0 or constant[-1] >= len(mean)):
            raise DataError(f"normalizer: constant channels {list(constant)} are not among its {len(mean)} channels")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "constant", constant)

    @classmethod
    def unit_range(cls, channels: int) -> Normalizer:
        """Images: pixel values in [0, 1] -> [-1, 1] on every channel."""
        return cls("standard", (0.5,) * channels, (0.5,) * channels, spatial_dims=2)

    @classmethod
    def fit(cls, values: Any, kind: str = "standard", *, cap: bool = False) -> Normalizer:
        """Fit to curves [N, C, n] (numpy or torch): per-channel mean/std over all curves and points; ``cap``: no
        std above the RMS of the varying channels' stds (see the module docstring)."""
        if kind == "none":
            return cls("none")
        v = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float64)
        if v.ndim != 3 or v.shape[0] == 0:
            raise DataError(f"normalizer: fit needs curves shaped [N, C, n], got shape {v.shape}")
        mean = v.mean(axis=(0, 2))
        std = v.std(axis=(0, 2))
        # constant up to rounding: the std of identical values can come out as 1e-17 rather than 0
        flat = np.isfinite(std) & np.isfinite(mean) & (std <= 1e-12 * np.maximum(1.0, np.abs(mean)))
        std = np.where(np.isfinite(std) & (std > 0) & ~flat, std, 1.0)
        if cap and not flat.all():
            std = np.where(flat, std, np.minimum(std, np.sqrt(np.mean(std[~flat] ** 2))))
        return cls(kind, tuple(mean), tuple(std), constant=tuple(int(c) for c in np.flatnonzero(flat)))

    @property
    def channels(self) -> int | None:
        """C, or None for the identity."""
        return len(self.mean) if self.kind == "standard" else None

    def _params(self, x: Any, *, output: bool = False) -> tuple[Any, Any]:
        """Mean and std shaped to broadcast over ``x``; ``output``: std 0 on the constant channels."""
        shape = tuple(x.shape)
        d = self.spatial_dims
        if len(shape) < d + 1 or shape[-d - 1] != len(self.mean):
            layout = "n" if d == 1 else "H, W"
            raise DataError(f"normalizer: fitted on {len(self.mean)} channel(s); expected an array shaped "
                            f"[..., {len(self.mean)}, {layout}], got {shape}")
        mean = np.asarray(self.mean).reshape((-1,) + (1,) * d)
        std = np.asarray(self.std)
        if output and self.constant:
            std = std.copy()
            std[list(self.constant)] = 0.0
        std = std.reshape((-1,) + (1,) * d)
        if hasattr(x, "new_tensor"):  # torch tensor: same device and dtype
            return x.new_tensor(mean), x.new_tensor(std)
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
        return mean.astype(dtype), std.astype(dtype)

    def normalize(self, x: Any) -> Any:
        """``(x - mean) / std`` for an array or tensor [..., C, n] (same type back)."""
        if self.kind == "none":
            return x
        x = x if hasattr(x, "new_tensor") else np.asarray(x)
        mean, std = self._params(x)
        return (x - mean) / std

    def denormalize(self, x: Any) -> Any:
        """``x * std + mean``, the inverse of :meth:`normalize`; the mean alone on the ``constant`` channels."""
        if self.kind == "none":
            return x
        x = x if hasattr(x, "new_tensor") else np.asarray(x)
        mean, std = self._params(x, output=True)
        return x * std + mean

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready ``{"kind", "mean", "std"}``."""
        out = {"kind": self.kind, "mean": list(self.mean), "std": list(self.std)}
        if self.spatial_dims != 1:
            out["spatial_dims"] = self.spatial_dims
        if self.constant:
            out["constant"] = list(self.constant)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalizer:
        """The inverse of :meth:`to_dict`."""
        if not isinstance(d, dict) or "kind" not in d:
            raise DataError(f"normalizer: expected a dict with 'kind', 'mean', 'std', got {d!r:.80}")
        try:
            return cls(str(d["kind"]), tuple(d.get("mean", ())), tuple(d.get("std", ())),
                       int(d.get("spatial_dims", 1)), tuple(d.get("constant", ())))
        except (TypeError, ValueError) as exc:
            if isinstance(exc, DataError):
                raise
            raise DataError(f"normalizer: malformed mean/std ({exc})") from None
