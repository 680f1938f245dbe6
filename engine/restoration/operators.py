"""Degradations ``y = A x + sigma_y n``: linear measurement operators as data objects.

Items are channels-first: curves [C, n], motions [C, T], images [C, H, W]; every method takes a batch
[B, C, *spatial] (torch, any float dtype and device). Every operator acts on each channel separately.

**The natural basis.** Every operator here has a singular value decomposition ``A = U diag(b) V^T`` whose
right singular vectors ``V`` are known in closed form (DDRM's view): the pixels / points / frames for masks
and subsampling, the DCT-II modes for the heat blur, the normalised block indicators for pooling and
pixelation. In that basis the measurement is *componentwise*:

    ybar_j = (U^T y)_j / b_j = (V^T x)_j + (sigma_y / b_j) n_j,        n_j ~ N(0, 1) independent,

for the *observed* components (``b_j > 0``, or ``b_j >= rcond`` for the blur); the others are not measured.
So ``A^+ y = V ybar`` (the Moore–Penrose pseudo-inverse, truncated below ``rcond`` like
``numpy.linalg.pinv``) and ``project(x, y) = x - A^+(A x - y) = x + V (ybar - V^T x)``, which replaces the
observed components of ``x`` by the measured ones and keeps the rest. :meth:`Degradation.correct` is the
same with a gain per component, which the noise-aware restoration uses
(:mod:`engine.restoration.conditional`).

**Tasks** (:data:`TASKS`, :func:`make_degradation`):

- images: ``inpaint-noise`` (a fraction of the pixels replaced by noise; the others observed),
  ``inpaint-mask`` (random square patches, a centred box, or a user mask), ``super-resolution``
  (k x k average pooling, ``y`` the small image), ``pixelate`` (block averages shown at full size),
  ``deblur`` (heat blur, below);
- curves [C, n]: ``impute`` (missing points at random or missing intervals), ``super-resolution``
  (keep every k-th point, ``y`` the coarse curve), ``deblur`` / ``smooth`` (a 1D heat blur);
- motions [C, T]: ``inbetween`` (keep keyframes every k frames, or the first and last few frames),
  ``missing-joints`` (whole channels missing).

:attr:`TaskSpec.modalities` names the model modalities a task is for (curves and motions share the item
shape, so the item alone cannot tell); :func:`tasks_for` lists a modality's tasks.

**Heat blur.** A Gaussian blur of ``sigma`` pixels (grid points for curves) is implemented as the heat
semigroup ``exp(sigma^2/2 Delta)`` with the Neumann (reflecting) Laplacian: diagonal in the orthonormal
DCT-II basis with multiplier ``exp(-lambda_k sigma^2 / 2)``, where ``lambda_k`` are the *continuous*
eigenvalues of :func:`engine.operators.dct.neumann_laplacian_eigenvalues` (``(pi k / n)^2`` per axis). Its
kernel is the Gaussian of standard deviation ``sigma`` reflected at the borders (method of images), up to the
aliasing of the highest modes, ``~exp(-pi^2 sigma^2 / 2)``: 1e-10 at ``sigma = 2`` (the tests check this and the
dense matrix), 7e-4 at ``sigma = 1``.

**Naive baselines** (:meth:`Degradation.naive`): linear interpolation between observed points (curves,
motions: in the index, i.e. on a uniform grid), multi-scale normalised convolution (image masks), bilinear
upsampling (image super-resolution), the measurement itself (pixelate, deblur), zero fill (missing
channels: the training mean when applied in normalised units, as :mod:`engine.restoration.run` does).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from engine.errors import ConfigError
from engine.operators.dct import dct, dct2, idct, idct2, neumann_laplacian_eigenvalues

__all__ = [
    "TASKS",
    "AveragePool",
    "Degradation",
    "HeatBlur",
    "Mask",
    "Pixelate",
    "Subsample",
    "TaskSpec",
    "make_degradation",
    "tasks_for",
]


def _describe(shape: tuple[int, ...]) -> str:
    return "x".join(str(v) for v in shape)


def _check_noise(where: str, noise: float) -> float:
    try:
        value = float(noise)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: --noise must be a number >= 0, got {noise!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"{where}: --noise must be a number >= 0 (the measurement noise std), got {noise!r}")
    return value


@dataclass(frozen=True, eq=False)
class Degradation(ABC):
    """A linear measurement ``y = A x + noise * n`` of items of shape ``shape`` = (C, *spatial).

    Attributes:
        shape: the item shape, channels first ([C, n], [C, T] or [C, H, W]).
        noise: ``sigma_y``, the std of the white Gaussian noise on every measured value, in the units of
            the data the operator is applied to.
    """

    task: ClassVar[str]
    shape: tuple[int, ...]
    noise: float = field(default=0.0, kw_only=True)
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            shape = tuple(int(v) for v in self.shape)
        except (TypeError, ValueError):
            raise ConfigError(f"{self.task}: the item shape must be a tuple of integers, got {self.shape!r}") from None
        if len(shape) not in (2, 3) or min(shape) < 1:
            raise ConfigError(f"{self.task}: items are [C, n] curves/motions or [C, H, W] images, got shape {shape}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "noise", _check_noise(self.task, self.noise))

    # -- shapes ---------------------------------------------------------------------------------
    @property
    def spatial(self) -> tuple[int, ...]:
        """The item's spatial shape: (n,) or (H, W)."""
        return self.shape[1:]

    @property
    def measurement_shape(self) -> tuple[int, ...]:
        """Shape of one measurement ``y`` (channels first)."""
        return self.shape

    @property
    @abstractmethod
    def measurement_size(self) -> int:
        """``m``: the number of measured values per item (what consistency is normalised by)."""

    @property
    def mask(self) -> np.ndarray | None:
        """Boolean [C, *spatial], True where a value is observed, for pointwise operators; else None."""
        return None

    def check(self, x: torch.Tensor, what: str = "item") -> None:
        """Raise ConfigError unless ``x`` is a batch [B, *shape]."""
        if x.ndim != len(self.shape) + 1 or tuple(x.shape[1:]) != self.shape:
            kind = "images [C, H, W]" if len(self.shape) == 3 else "curves or motions [C, n]"
            raise ConfigError(f"{self.task}: made for {kind} of shape {_describe(self.shape)}, got a batch of "
                              f"{what}s shaped {tuple(x.shape)}; build the degradation for this item shape")

    def check_measurement(self, y: torch.Tensor) -> None:
        if y.ndim != len(self.measurement_shape) + 1 or tuple(y.shape[1:]) != self.measurement_shape:
            raise ConfigError(f"{self.task}: a measurement has shape {_describe(self.measurement_shape)} per item, "
                              f"got a batch shaped {tuple(y.shape)}")

    # -- the operator ---------------------------------------------------------------------------
    @abstractmethod
    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``A x`` (noiseless), [B, *measurement_shape]."""

    @abstractmethod
    def components(self, x: torch.Tensor) -> torch.Tensor:
        """``V^T x``: the item in the operator's natural basis, [B, *component_shape]."""

    @abstractmethod
    def embed(self, c: torch.Tensor) -> torch.Tensor:
        """``V c``: the adjoint of :meth:`components` (orthonormal: ``components(embed(c)) = c``)."""

    @abstractmethod
    def measured(self, y: torch.Tensor) -> torch.Tensor:
        """``ybar = U^T y / b`` on the observed components, 0 elsewhere, [B, *component_shape]."""

    @abstractmethod
    def singular_values(self, like: torch.Tensor) -> torch.Tensor:
        """``b`` per component (0 where unobserved), shaped [*component_shape], dtype/device of ``like``."""

    def observed(self, like: torch.Tensor) -> torch.Tensor:
        """1 on the observed components, 0 elsewhere, [*component_shape]."""
        return (self.singular_values(like) > 0).to(like.dtype)

    def measurement_support(self, like: torch.Tensor) -> torch.Tensor:
        """Where ``y`` holds a measured value (1) rather than a structural zero (0), [*measurement_shape]."""
        return torch.ones(self.measurement_shape, dtype=like.dtype, device=like.device)

    def measure(self, x: torch.Tensor, z: torch.Tensor | None = None, *,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """``y = A x + noise * z``, ``z`` standard normal of the measurement's shape [B, ...] (given, or drawn on
        the CPU from ``generator``); structural zeros of ``y`` (masks) stay zero."""
        self.check(x)
        y = self.apply(x)
        if self.noise > 0:
            if z is None:
                if generator is None:
                    raise ConfigError(f"{self.task}: a noisy measurement needs the noise draws z or a generator")
                z = torch.randn(y.shape, generator=generator, dtype=torch.float64)
            self.check_measurement(z)
            y = y + self.noise * z.to(y) * self.measurement_support(y)
        return y

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        """``A^+ y = V ybar``, [B, *shape]."""
        self.check_measurement(y)
        return self.embed(self.measured(y))

    def project(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``x - A^+(A x - y)``: the observed components of x replaced by the measured ones."""
        return self.correct(x, y, 1.0)

    def correct(self, x: torch.Tensor, y: torch.Tensor, gain: torch.Tensor | float) -> torch.Tensor:
        """``x + V (g * (ybar - V^T x))`` on the observed components; ``g = 1`` is :meth:`project`."""
        self.check(x)
        self.check_measurement(y)
        w = self.observed(x) * gain
        return x + self.embed(w * (self.measured(y).to(x) - self.components(x)))

    @abstractmethod
    def naive(self, y: torch.Tensor) -> torch.Tensor:
        """The baseline restoration of ``y`` at full size, [B, *shape] (see the module docstring)."""

    def display(self, y: torch.Tensor) -> torch.Tensor:
        """What a user is shown as the degraded item, full size (the naive restoration unless overridden)."""
        return self.naive(y)

    # -- provenance -----------------------------------------------------------------------------
    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The task's parameters (JSON-ready)."""

    def to_dict(self) -> dict[str, Any]:
        """``{"task", "shape", "noise", **params}``: everything that rebuilds the operator (HDF5 provenance)."""
        return {"task": self.task, "shape": list(self.shape), "noise": self.noise, **self.params()}

    # -- helpers --------------------------------------------------------------------------------
    def _tensor(self, key: str, build: Callable[[], np.ndarray], like: torch.Tensor) -> torch.Tensor:
        """A constant array as a tensor of ``like``'s dtype and device, built once and cached (separately inside
        ``torch.inference_mode``, whose tensors autograd refuses)."""
        cache_key = (key, like.device, like.dtype, torch.is_inference_mode_enabled())
        if cache_key not in self._cache:
            self._cache[cache_key] = torch.as_tensor(build(), dtype=like.dtype, device=like.device)
        return self._cache[cache_key]


# -- pointwise masks -------------------------------------------------------------------------------
def _check_mask(task: str, mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    m = np.asarray(mask)
    if m.dtype.kind not in "biuf":
        raise ConfigError(f"{task}: the mask must hold numbers or booleans, got dtype {m.dtype}")
    if m.shape == shape[1:]:
        m = np.broadcast_to(m, shape)
    if m.shape != shape:
        raise ConfigError(f"{task}: the mask has shape {_describe(m.shape)} but the items are {_describe(shape)}; "
                          f"give a mask of shape {_describe(shape[1:])} or {_describe(shape)} (nonzero = observed)")
    m = np.ascontiguousarray(m != 0)
    if not m.any():
        raise ConfigError(f"{task}: the mask observes nothing; at least one value must be observed")
    if m.all():
        raise ConfigError(f"{task}: the mask observes everything; there is nothing to restore")
    return m


def _interp_matrices(mask: np.ndarray) -> np.ndarray:
    """Per channel, the matrix [n, n] that fills the unobserved points of a row by linear interpolation.

    Observed points are kept; a gap is filled linearly between its two observed neighbours (in the index),
    constantly beyond the first/last observed point; a row with nothing observed becomes 0.
    """
    C, n = mask.shape
    L = np.zeros((C, n, n))
    for c in range(C):
        obs = np.flatnonzero(mask[c])
        if obs.size == 0:
            continue
        for i in range(n):
            j = np.searchsorted(obs, i)
            if j < obs.size and obs[j] == i:
                L[c, i, i] = 1.0
            elif j == 0:
                L[c, i, obs[0]] = 1.0
            elif j == obs.size:
                L[c, i, obs[-1]] = 1.0
            else:
                a, b = obs[j - 1], obs[j]
                w = (i - a) / (b - a)
                L[c, i, a] += 1.0 - w
                L[c, i, b] += w
    return L


def _heat_multiplier(spatial: tuple[int, ...], sigma: float) -> np.ndarray:
    """``exp(-lambda_k sigma^2 / 2)`` on the DCT modes of an item's spatial shape (continuous eigenvalues)."""
    if len(spatial) == 1:
        lam = neumann_laplacian_eigenvalues(1, spatial[0])[0]
    else:
        lam = neumann_laplacian_eigenvalues(*spatial)
    return torch.exp(-0.5 * sigma**2 * lam).numpy()


def _dct_nd(x: torch.Tensor, d: int) -> torch.Tensor:
    return dct(x, -1) if d == 1 else dct2(x)


def _idct_nd(X: torch.Tensor, d: int) -> torch.Tensor:
    return idct(X, -1) if d == 1 else idct2(X)


def _heat_blur(x: torch.Tensor, multiplier: torch.Tensor) -> torch.Tensor:
    d = multiplier.ndim
    return _idct_nd(multiplier * _dct_nd(x, d), d)


@dataclass(frozen=True, eq=False)
class Mask(Degradation):
    """Pointwise observation ``A = diag(mask)``: ``y = mask * (x + noise n)``, full size with zeros elsewhere.

    ``A`` is an orthogonal projection, so ``A^+ = A``; its natural basis is the pixels (points, frames)
    themselves, ``b = mask``. ``task`` names the task it was built for (``impute``, ``inpaint-mask``,
    ``inpaint-noise``, ``inbetween``, ``missing-joints``); ``details`` its parameters.

    Naive restoration: linear interpolation along the last axis (curves, motions), multi-scale normalised
    convolution (images: at the finest of the heat-blur scales 1, 2, 4, ... px where the observed pixels carry
    at least 5 % of the weight, else the mean of the observed pixels).
    """

    mask_array: np.ndarray = field(default=None, kw_only=True)  # type: ignore[assignment]
    task_name: str = field(default="mask", kw_only=True)
    details: Mapping[str, Any] = field(default_factory=dict, kw_only=True)
    noise_fill: bool = field(default=False, kw_only=True)  # inpaint-noise: displayed with noise in the gaps

    @property
    def task(self) -> str:  # type: ignore[override]
        return self.task_name

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mask_array is None:
            raise ConfigError(f"{self.task}: a mask is required")
        object.__setattr__(self, "mask_array", _check_mask(self.task, self.mask_array, self.shape))

    @property
    def mask(self) -> np.ndarray:
        return self.mask_array

    @property
    def measurement_size(self) -> int:
        return int(self.mask_array.sum())

    def _m(self, like: torch.Tensor) -> torch.Tensor:
        return self._tensor("mask", lambda: self.mask_array, like)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        return x * self._m(x)

    def components(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def embed(self, c: torch.Tensor) -> torch.Tensor:
        return c

    def measured(self, y: torch.Tensor) -> torch.Tensor:
        return y * self._m(y)

    def singular_values(self, like: torch.Tensor) -> torch.Tensor:
        return self._m(like)

    def measurement_support(self, like: torch.Tensor) -> torch.Tensor:
        return self._m(like)

    def naive(self, y: torch.Tensor) -> torch.Tensor:
        self.check_measurement(y)
        if len(self.spatial) == 1:
            L = self._tensor("interp", lambda: _interp_matrices(self.mask_array), y)
            return torch.einsum("cij,bcj->bci", L, y)
        return self._fill_image(y * self._m(y))

    def _fill_image(self, y: torch.Tensor) -> torch.Tensor:
        m = self._m(y)
        count = m.sum(dim=(-2, -1), keepdim=True)
        mean = y.sum(dim=(-2, -1), keepdim=True) / count.clamp_min(1.0)
        out = torch.where(m.bool(), y, mean.expand_as(y))
        H, W = self.spatial
        scales = [2.0**k for k in range(int(math.log2(max(H, W))) + 1)]
        filled = m.bool().expand_as(y).clone()
        for s in scales:  # finest scale first: each pixel takes the finest estimate with enough support
            mult = self._tensor(f"heat{s}", lambda s=s: _heat_multiplier(self.spatial, s), y)
            weight = _heat_blur(m.expand_as(y), mult)
            est = _heat_blur(y * m, mult) / weight.clamp_min(1e-12)
            take = (~filled) & (weight > 0.05)
            out = torch.where(take, est, out)
            filled = filled | take
        return out

    def display(self, y: torch.Tensor) -> torch.Tensor:
        """Inpaint-noise: the gaps hold noise with the observed values' mean and std per channel (seeded)."""
        if not self.noise_fill:
            return self.naive(y)
        self.check_measurement(y)
        mf = self._m(y).expand_as(y)
        m = mf.bool()
        dims = tuple(range(2, y.ndim))
        count = mf.sum(dim=dims, keepdim=True).clamp_min(1.0)
        mean = (y * mf).sum(dim=dims, keepdim=True) / count
        std = (((y - mean) * mf) ** 2).sum(dim=dims, keepdim=True).div(count).sqrt()
        g = torch.Generator().manual_seed(int(self.details.get("seed", 0)) + 1)
        z = torch.randn(y.shape, generator=g, dtype=torch.float64).to(y)
        return torch.where(m, y, mean + std * z)

    def params(self) -> dict[str, Any]:
        return dict(self.details)


@dataclass(frozen=True, eq=False)
class Subsample(Degradation):
    """Curves and motions: keep every ``factor``-th point, ``y = x[..., ::factor]`` (the coarse curve).

    ``A`` selects points, ``A^+`` puts them back with zeros between; natural basis = the points, ``b`` = 1 on
    the kept ones. Naive restoration: linear interpolation between the kept points (constant past the last).
    """

    task: ClassVar[str] = "super-resolution"
    factor: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.shape) != 2:
            raise ConfigError(f"{self.task}: subsampling is for curves/motions [C, n]; images use average pooling")
        n = self.shape[-1]
        if not isinstance(self.factor, int | np.integer) or not 2 <= self.factor <= n - 1:
            raise ConfigError(f"{self.task}: --factor must be an integer in [2, {n - 1}] for {n} points, "
                              f"got {self.factor!r}")
        object.__setattr__(self, "factor", int(self.factor))

    @property
    def kept(self) -> np.ndarray:
        return np.arange(0, self.shape[-1], self.factor)

    @property
    def mask(self) -> np.ndarray:
        m = np.zeros(self.shape, dtype=bool)
        m[:, self.kept] = True
        return m

    @property
    def measurement_shape(self) -> tuple[int, ...]:
        return (self.shape[0], self.kept.size)

    @property
    def measurement_size(self) -> int:
        return self.shape[0] * self.kept.size

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        return x[..., :: self.factor]

    def components(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def embed(self, c: torch.Tensor) -> torch.Tensor:
        return c

    def measured(self, y: torch.Tensor) -> torch.Tensor:
        self.check_measurement(y)
        out = y.new_zeros((y.shape[0], *self.shape))
        out[..., :: self.factor] = y
        return out

    def singular_values(self, like: torch.Tensor) -> torch.Tensor:
        return self._tensor("mask", lambda: self.mask, like)

    def naive(self, y: torch.Tensor) -> torch.Tensor:
        L = self._tensor("interp", lambda: _interp_matrices(self.mask), y)
        return torch.einsum("cij,bcj->bci", L, self.measured(y))

    def params(self) -> dict[str, Any]:
        return {"factor": self.factor}


@dataclass(frozen=True, eq=False)
class HeatBlur(Degradation):
    """Heat blur ``A = exp(sigma^2/2 Delta)`` (Neumann), DCT-diagonal with ``b_k = exp(-lambda_k sigma^2/2)``.

    ``sigma`` is in pixels (grid points for curves and frames for motions). ``A`` is invertible, but its
    smallest singular values are far below round-off; ``A^+`` is the pseudo-inverse truncated at ``rcond``
    (as ``numpy.linalg.pinv(A, rcond)``: modes with ``b_k < rcond`` count as unobserved, ``b_0 = 1``).
    ``y`` is the blurred item (full size); the naive restoration is ``y`` itself.
    """

    task_name: str = field(default="deblur", kw_only=True)
    sigma: float = 1.0
    rcond: float = 1e-3

    @property
    def task(self) -> str:  # type: ignore[override]
        return self.task_name

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, value in (("sigma", self.sigma), ("rcond", self.rcond)):
            if not isinstance(value, int | float | np.number) or not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{self.task}: --{name} must be a positive number, got {value!r}")
        if self.rcond >= 1:
            raise ConfigError(f"{self.task}: --rcond must lie in (0, 1), got {self.rcond!r}")
        object.__setattr__(self, "sigma", float(self.sigma))
        object.__setattr__(self, "rcond", float(self.rcond))

    @property
    def multiplier(self) -> np.ndarray:
        """``b_k`` on the DCT modes, float64 [*spatial]."""
        return _heat_multiplier(self.spatial, self.sigma)

    @property
    def measurement_size(self) -> int:
        return int(np.prod(self.shape))

    def _b(self, like: torch.Tensor) -> torch.Tensor:
        return self._tensor("b", lambda: self.multiplier, like)

    def _b_observed(self, like: torch.Tensor) -> torch.Tensor:
        return self._tensor("b_obs", lambda: np.where(self.multiplier >= self.rcond, self.multiplier, 0.0), like)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        return _heat_blur(x, self._b(x))

    def components(self, x: torch.Tensor) -> torch.Tensor:
        return _dct_nd(x, len(self.spatial))

    def embed(self, c: torch.Tensor) -> torch.Tensor:
        return _idct_nd(c, len(self.spatial))

    def measured(self, y: torch.Tensor) -> torch.Tensor:
        self.check_measurement(y)
        b = self._b_observed(y)
        return torch.where(b > 0, self.components(y) / torch.where(b > 0, b, 1.0), 0.0)

    def singular_values(self, like: torch.Tensor) -> torch.Tensor:
        return self._b_observed(like).expand(self.shape)

    def naive(self, y: torch.Tensor) -> torch.Tensor:
        self.check_measurement(y)
        return y

    def params(self) -> dict[str, Any]:
        return {"sigma": self.sigma, "rcond": self.rcond}


def _check_factor(task: str, factor: Any, spatial: tuple[int, ...]) -> int:
    if not isinstance(factor, int | np.integer) or factor < 2:
        raise ConfigError(f"{task}: --factor must be an integer >= 2, got {factor!r}")
    if any(s % int(factor) for s in spatial):
        raise ConfigError(f"{task}: --factor {factor} does not divide the image size {_describe(spatial)}; "
                          "pick a factor that divides both sides (or crop the images)")
    return int(factor)


@dataclass(frozen=True, eq=False)
class AveragePool(Degradation):
    """Images: ``y = `` the mean of every ``factor x factor`` block, a [C, H/k, W/k] image.

    With ``K = k^2``, ``A = K^{-1/2} V^T`` where ``V``'s columns are the block indicators over ``sqrt(K)``
    (orthonormal): ``b = K^{-1/2}``, ``A^+`` = nearest-neighbour upsampling (``A A^+ = I``). Naive
    restoration: bilinear upsampling.
    """

    task: ClassVar[str] = "super-resolution"
    factor: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.shape) != 3:
            raise ConfigError(f"{self.task}: average pooling is for images [C, H, W]")
        object.__setattr__(self, "factor", _check_factor(self.task, self.factor, self.spatial))

    @property
    def measurement_shape(self) -> tuple[int, ...]:
        C, H, W = self.shape
        return (C, H // self.factor, W // self.factor)

    @property
    def measurement_size(self) -> int:
        return int(np.prod(self.measurement_shape))

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        k = self.factor
        return x.reshape(B, C, H // k, k, W // k, k).mean(dim=(3, 5))

    def _upsample(self, c: torch.Tensor) -> torch.Tensor:
        return c.repeat_interleave(self.factor, dim=-2).repeat_interleave(self.factor, dim=-1)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        return self._pool(x)

    def components(self, x: torch.Tensor) -> torch.Tensor:
        return self.factor * self._pool(x)

    def embed(self, c: torch.Tensor) -> torch.Tensor:
        return self._upsample(c) / self.factor

    def measured(self, y: torch.Tensor) -> torch.Tensor:
        self.check_measurement(y)
        return self.factor * y

    def singular_values(self, like: torch.Tensor) -> torch.Tensor:
        return torch.full(self.measurement_shape, 1.0 / self.factor, dtype=like.dtype, device=like.device)

    def naive(self, y: torch.Tensor) -> torch.Tensor:
        self.check_measurement(y)
        return F.interpolate(y, scale_factor=self.factor, mode="bilinear", align_corners=False)

    def params(self) -> dict[str, Any]:
        return {"factor": self.factor}


@dataclass(frozen=True, eq=False)
class Pixelate(AveragePool):
    """Images: every ``factor x factor`` block replaced by its mean, shown at full size (``y`` is [C, H, W]).

    ``A = V V^T`` (the orthogonal projection onto block-constant images), ``b = 1`` on the blocks,
    ``A^+ = A``. The noise is white on the full-size ``y`` (so ``m = C H W`` values are measured, and the
    block components see noise of std ``noise``). Naive restoration: ``y`` itself.
    """

    task: ClassVar[str] = "pixelate"

    @property
    def measurement_shape(self) -> tuple[int, ...]:
        return self.shape

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        return self._upsample(self._pool(x))

    def measured(self, y: torch.Tensor) -> torch.Tensor:
        self.check_measurement(y)
        return self.components(y)

    def singular_values(self, like: torch.Tensor) -> torch.Tensor:
        C, H, W = self.shape
        k = self.factor
        return torch.ones((C, H // k, W // k), dtype=like.dtype, device=like.device)

    def naive(self, y: torch.Tensor) -> torch.Tensor:
        self.check_measurement(y)
        return y


# -- masks for each task ---------------------------------------------------------------------------
def _generator(seed: Any, task: str) -> np.random.Generator:
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"{task}: --mask-seed must be an integer >= 0, got {seed!r}")
    return np.random.default_rng(int(seed))


def _fraction(task: str, value: Any, name: str = "fraction") -> float:
    if not isinstance(value, int | float | np.number) or not 0 < value < 1:
        raise ConfigError(f"{task}: --{name} must be a number strictly between 0 and 1, got {value!r}")
    return float(value)


def _read_user_mask(task: str, mask: Any) -> np.ndarray:
    if isinstance(mask, str | Path):
        path = Path(mask).expanduser()
        if path.suffix.lower() != ".npy" or not path.is_file():
            raise ConfigError(f"{task}: --mask {path}: give an existing .npy file (nonzero = observed)")
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{task}: --mask {path}: cannot read it as a .npy array ({exc})") from None
    if isinstance(mask, torch.Tensor):
        return mask.detach().cpu().numpy()
    return np.asarray(mask)


def _inpaint_noise(shape, *, fraction=0.5, seed=0, noise=0.0) -> Mask:
    task = "inpaint-noise"
    rng = _generator(seed, task)
    f = _fraction(task, fraction)
    missing = rng.random(shape[1:]) < f
    details = {"fraction": f, "seed": int(seed)}
    return Mask(shape, mask_array=~missing, task_name=task, details=details, noise_fill=True, noise=noise)


def _inpaint_mask(shape, *, mode="patches", fraction=0.5, patch=4, box=0.5, mask=None, seed=0, noise=0.0) -> Mask:
    task = "inpaint-mask"
    H, W = shape[1:]
    details: dict[str, Any] = {"mode": mode}
    if mask is not None and mode != "array":
        mode = "array"
        details["mode"] = mode
    if mode == "patches":
        f = _fraction(task, fraction)
        if not isinstance(patch, int | np.integer) or not 1 <= patch <= min(H, W):
            raise ConfigError(f"{task}: --patch must be an integer in [1, {min(H, W)}] pixels, got {patch!r}")
        rng = _generator(seed, task)
        blocks = rng.random((-(-H // patch), -(-W // patch))) < f
        missing = np.kron(blocks, np.ones((patch, patch), dtype=bool))[:H, :W]
        details.update(fraction=f, patch=int(patch), seed=int(seed))
        m = ~missing
    elif mode == "box":
        b = _fraction(task, box, "box")
        h, w = max(1, round(b * H)), max(1, round(b * W))
        m = np.ones((H, W), dtype=bool)
        m[(H - h) // 2:(H - h) // 2 + h, (W - w) // 2:(W - w) // 2 + w] = False
        details.update(box=b)
    elif mode == "array":
        if mask is None:
            raise ConfigError(f"{task}: mode 'array' needs --mask (a .npy array, nonzero = observed)")
        m = _check_mask(task, _read_user_mask(task, mask), tuple(shape))
        if isinstance(mask, str | Path):
            details["mask_file"] = str(mask)
        details["mask_sha256"] = _digest(m)
    else:
        raise ConfigError(f"{task}: unknown --mode {mode!r}; choose patches, box or array")
    return Mask(shape, mask_array=m, task_name=task, details=details, noise=noise)


def _digest(a: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.uint8).tobytes()).hexdigest()[:16]


def _impute(shape, *, mode="random", fraction=0.5, intervals=1, seed=0, noise=0.0) -> Mask:
    task = "impute"
    n = shape[-1]
    f = _fraction(task, fraction)
    rng = _generator(seed, task)
    details: dict[str, Any] = {"mode": mode, "fraction": f, "seed": int(seed)}
    if mode == "random":
        missing = rng.random(n) < f
    elif mode == "intervals":
        if not isinstance(intervals, int | np.integer) or intervals < 1:
            raise ConfigError(f"{task}: --intervals must be an integer >= 1, got {intervals!r}")
        length = round(f * n) // int(intervals)
        if length < 1:
            raise ConfigError(f"{task}: {intervals} intervals missing {f:g} of {n} points leaves less than one "
                              "point per interval; use fewer intervals or a larger fraction")
        missing = np.zeros(n, dtype=bool)
        edges = np.linspace(0, n, int(intervals) + 1).round().astype(int)
        for a, b in zip(edges[:-1], edges[1:]):  # one gap at a random place inside each equal segment
            start = a + int(rng.integers(0, max(1, b - a - length + 1)))
            missing[start:start + length] = True
        details["intervals"] = int(intervals)
    else:
        raise ConfigError(f"{task}: unknown --mode {mode!r}; choose random or intervals")
    return Mask(shape, mask_array=~missing, task_name=task, details=details, noise=noise)


def _inbetween(shape, *, mode="keyframes", factor=4, keep=2, noise=0.0) -> Mask:
    task = "inbetween"
    T = shape[-1]
    m = np.zeros(T, dtype=bool)
    if mode == "keyframes":
        if not isinstance(factor, int | np.integer) or not 2 <= factor <= T - 1:
            raise ConfigError(f"{task}: --factor (keyframe spacing) must be an integer in [2, {T - 1}], "
                              f"got {factor!r}")
        m[::factor] = True
        m[-1] = True
        details = {"mode": mode, "factor": int(factor)}
    elif mode == "ends":
        if not isinstance(keep, int | np.integer) or not 1 <= keep < T / 2:
            raise ConfigError(f"{task}: --keep (frames kept at each end) must be an integer in [1, {(T - 1) // 2}], "
                              f"got {keep!r}")
        m[:keep] = True
        m[-keep:] = True
        details = {"mode": mode, "keep": int(keep)}
    else:
        raise ConfigError(f"{task}: unknown --mode {mode!r}; choose keyframes or ends")
    return Mask(shape, mask_array=m, task_name=task, details=details, noise=noise)


def _missing_joints(shape, *, channels=None, joints=None, per_joint=3, noise=0.0) -> Mask:
    task = "missing-joints"
    C = shape[0]
    if (channels is None) == (joints is None):
        raise ConfigError(f"{task}: give either --channels (missing channel indices) or --joints "
                          "(missing joint indices, --per-joint channels each)")
    if joints is not None:
        if not isinstance(per_joint, int | np.integer) or per_joint < 1:
            raise ConfigError(f"{task}: --per-joint must be a positive integer, got {per_joint!r}")
        chans = [int(j) * int(per_joint) + i for j in np.atleast_1d(joints) for i in range(int(per_joint))]
        details: dict[str, Any] = {"joints": [int(j) for j in np.atleast_1d(joints)], "per_joint": int(per_joint)}
    else:
        chans = [int(c) for c in np.atleast_1d(channels)]
        details = {"channels": chans}
    bad = [c for c in chans if not 0 <= c < C]
    if bad:
        raise ConfigError(f"{task}: channel(s) {bad} do not exist; the items have {C} channels")
    m = np.ones(shape, dtype=bool)
    m[chans] = False
    return Mask(shape, mask_array=m, task_name=task, details=details, noise=noise)


def _super_resolution(shape, *, factor=2, noise=0.0) -> Degradation:
    if len(shape) == 3:
        return AveragePool(shape, factor=factor, noise=noise)
    return Subsample(shape, factor=factor, noise=noise)


def _pixelate(shape, *, factor=4, noise=0.0) -> Pixelate:
    return Pixelate(shape, factor=factor, noise=noise)


def _deblur(task: str) -> Callable[..., HeatBlur]:
    def build(shape, *, sigma=2.0, rcond=1e-3, noise=0.0) -> HeatBlur:
        return HeatBlur(shape, sigma=sigma, rcond=rcond, noise=noise, task_name=task)

    return build


@dataclass(frozen=True)
class TaskSpec:
    """A task of :data:`TASKS`: which items it applies to and how its degradation is built."""

    name: str
    item_ndims: tuple[int, ...]  # 2: curves/motions [C, n]; 3: images [C, H, W]
    description: str
    build: Callable[..., Degradation]
    options: tuple[str, ...]
    modalities: tuple[str, ...]  # the model modalities it makes sense for ("functions", "motions", "images")


TASKS: dict[str, TaskSpec] = {t.name: t for t in (
    TaskSpec("inpaint-noise", (3,), "images: a fraction of the pixels replaced by noise",
             _inpaint_noise, ("fraction", "seed", "noise"), ("images",)),
    TaskSpec("inpaint-mask", (3,), "images: random patches, a centred box or a user mask missing",
             _inpaint_mask, ("mode", "fraction", "patch", "box", "mask", "seed", "noise"), ("images",)),
    TaskSpec("super-resolution", (2, 3), "images: k x k average pooling; curves: keep every k-th point",
             _super_resolution, ("factor", "noise"), ("images", "functions", "motions")),
    TaskSpec("pixelate", (3,), "images: k x k block averages shown at full size", _pixelate, ("factor", "noise"),
             ("images",)),
    TaskSpec("deblur", (2, 3), "heat (Gaussian) blur of sigma pixels, Neumann boundary", _deblur("deblur"),
             ("sigma", "rcond", "noise"), ("images", "functions", "motions")),
    TaskSpec("smooth", (2,), "curves: a 1D heat blur of sigma grid points (same as deblur)", _deblur("smooth"),
             ("sigma", "rcond", "noise"), ("functions", "motions")),
    TaskSpec("impute", (2,), "curves: missing points at random or missing intervals", _impute,
             ("mode", "fraction", "intervals", "seed", "noise"), ("functions", "motions")),
    TaskSpec("inbetween", (2,), "motions: keyframes every k frames, or the first/last few frames, observed",
             _inbetween, ("mode", "factor", "keep", "noise"), ("motions",)),
    TaskSpec("missing-joints", (2,), "motions: whole channels (joints) missing", _missing_joints,
             ("channels", "joints", "per_joint", "noise"), ("motions",)),
)}
"""Tasks by name (the CLI's ``--task``)."""


def tasks_for(modality: str) -> list[str]:
    """The names of the tasks of :data:`TASKS` that apply to items of ``modality``."""
    return [name for name, spec in TASKS.items() if modality in spec.modalities]


def make_degradation(task: str, shape: tuple[int, ...], *, modality: str | None = None,
                     **params: Any) -> Degradation:
    """The degradation of ``task`` for items of ``shape`` (C, n) / (C, T) / (C, H, W).

    ``params`` are the task's options (:attr:`TaskSpec.options`; ``seed`` seeds random masks, the same mask
    for every item); every task takes ``noise`` (the measurement noise std, >= 0). ``modality``, when given,
    must be one the task applies to (:attr:`TaskSpec.modalities`): curves and motions share the item shape
    [C, n], so only the modality tells in-betweening of a motion from a task on a curve.
    """
    if task not in TASKS:
        raise ConfigError(f"unknown restoration task {task!r}; choose one of {', '.join(TASKS)}")
    spec = TASKS[task]
    if modality is not None and modality not in spec.modalities:
        raise ConfigError(f"task {task!r} is for {' or '.join(spec.modalities)}, not {modality}; for {modality} "
                          f"choose one of {', '.join(tasks_for(modality))}")
    try:
        shape = tuple(int(v) for v in shape)
    except (TypeError, ValueError):
        raise ConfigError(f"{task}: the item shape must be a tuple of integers, got {shape!r}") from None
    if len(shape) not in spec.item_ndims:
        wants = " or ".join("images [C, H, W]" if d == 3 else "curves/motions [C, n]" for d in spec.item_ndims)
        raise ConfigError(f"{task}: is a task for {wants}; got an item of shape {_describe(shape)}")
    unknown = sorted(set(params) - set(spec.options))
    if unknown:
        raise ConfigError(f"{task}: unknown option(s) {', '.join(unknown)}; it takes {', '.join(spec.options)}")
    return spec.build(shape, **params)
