"""A trained model: network + equation + normalisation, and sampling on any grid or image size.

:class:`HDMModel` is what a checkpoint holds and what the CLI, the Python API and the studio
sample from, for every modality. What differs between modalities lives in a small *domain*
object (:class:`FunctionDomain` for functions and motions, :class:`ImageDomain` for images):
where samples live (a grid or an H x W image), how the equation is bound there, and how the
network is called.

Sampling is resolution-free where the mathematics allows: for functions the equation is
re-bound to Q on the requested grid (exact kernel covariance there) and the FNO evaluates its
spectral layers at the new coordinates; for images an FNO-2D samples at another size with the
continuous operators of the same physical image (pixel size = training size / new size).

**Priors** (images; ``prior=`` at sampling time):

- ``hdm``: the exact Gaussian part of the marginal at T, ``N(0, Shat_T^2 Q)`` (drops ``M_T x_0``,
  whose size is ``m(T) <= 0.0084`` for the cosine schedule; on HDM-SPDE the image-mean mode keeps
  ``alpha(T)^sigma`` of ``x_0``: 0.0084 at ``sigma = 1`` but 9 % at 0.5 and 62 % at 0.1, and sampling warns
  once a model when a mode keeps more than :data:`PRIOR_MEAN_WARNING`);
- ``white``: ``N(0, s_T^2 I)``; valid only where the law at T is white, i.e. the white-noise VP (DDPM), where
  it equals ``hdm`` (HDM-SPDE with ``gamma = 0`` has a white Q, but its drift colours the marginal);
- ``ihdm``: ``M_T x_0 + Shat_T e`` with ``x_0`` drawn from training images stored in the checkpoint (the
  blurred-data prior of inverse heat dissipation; the exact empirical marginal at T of any of the linear
  equations, and the only valid prior of the ``ihdm`` equation, which never forgets the image mean).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from engine.config import RunConfig
from engine.equations.base import Equation, make_equation
from engine.errors import CheckpointError, ConfigError, DataError
from engine.operators.covariance import covariance_from_config
from engine.rng import SampleRNG
from engine.samplers import EVALS_PER_STEP, StepInfo, default_sampler_for, default_spacing, get_sampler, time_grid

log = logging.getLogger(__name__)
PRIOR_MEAN_WARNING = 0.05  # the largest m_k(T) the hdm prior's dropping of M_T x_0 passes over in silence

PRIORS = {
    "hdm": "the exact Gaussian marginal at T, N(0, Shat_T^2 Q)",
    "white": "white noise N(0, s_T^2 I) (only for white-noise equations)",
    "ihdm": "maximally blurred training images plus noise (inverse heat dissipation)",
}
CPU_POINTS_PER_BATCH = 25_000
"""Sampling on a CPU: grid points (or pixels) per batch by default (:meth:`HDMModel.default_batch_size`)."""
GPU_POINTS_PER_BATCH = 1_048_576
"""Sampling on a GPU: at most this many grid points (or pixels) per batch by default."""
PRIOR_BANK_SIZE = 1000  # training images kept in an image checkpoint for the ihdm prior
_BANK_CUTOFF = 1e-6  # DCT modes whose mean coefficient at T is below this are not stored


@dataclass(frozen=True)
class ModelGeometry:
    """Functions and motions: what the network must know of the training grid to read other grids."""

    grid: tuple[float, ...]  # the training grid
    channels: int
    length_scale: float  # the resolved kernel length scale

    @property
    def domain(self) -> tuple[float, float]:
        return (self.grid[0], self.grid[-1])

    @property
    def period(self) -> float:
        """Fourier period: the domain plus one mean spacing (exact DFT on a uniform training grid)."""
        n = len(self.grid)
        a, b = self.domain
        return (b - a) * n / (n - 1) if n > 1 else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"grid": list(self.grid), "channels": self.channels, "length_scale": self.length_scale}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelGeometry:
        return cls(tuple(float(v) for v in d["grid"]), int(d["channels"]), float(d["length_scale"]))


@dataclass(frozen=True)
class ImageGeometry:
    """Images: the training size and channels."""

    height: int
    width: int
    channels: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    def to_dict(self) -> dict[str, Any]:
        return {"height": self.height, "width": self.width, "channels": self.channels}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImageGeometry:
        return cls(int(d["height"]), int(d["width"]), int(d["channels"]))


def build_network(config: RunConfig, geometry: ModelGeometry | ImageGeometry) -> torch.nn.Module:
    """The backbone named by ``config.model`` (resolved) for ``geometry``."""
    m = config.model
    if m.name == "fno1d":
        from engine.models.fno import FNO1d

        return FNO1d(channels=geometry.channels, width=m.width, modes=m.modes, layers=m.layers,
                     domain=geometry.domain, period=geometry.period, emb_dim=m.emb_dim, padding=m.padding)
    if m.name == "unet":
        from engine.models.unet import UNet

        return UNet(geometry.channels, width=m.width, channel_mult=m.channel_mult, num_res_blocks=m.num_res_blocks,
                    attention_levels=m.attention_levels, emb_dim=m.emb_dim, dropout=m.dropout)
    if m.name == "fno2d":
        from engine.models.fno2d import FNO2d

        return FNO2d(geometry.channels, width=m.width, modes=m.modes, layers=m.layers, emb_dim=m.emb_dim)
    raise ConfigError(f"unknown model {m.name!r}")


def build_equation(config: RunConfig, geometry: ModelGeometry, grid: np.ndarray) -> Equation:
    """The functions' equation bound to Q on ``grid``."""
    n = config.noise
    Q = covariance_from_config(n.kernel, geometry.length_scale, n.gain, n.period, n.jitter).on_grid(grid)
    e = config.equation
    return make_equation(e.name, Q, schedule=e.schedule, T=e.T, eps=e.eps, beta_min=e.beta_min,
                         beta_max=e.beta_max, eta_min=e.eta_min, eta_max=e.eta_max)


def build_image_equation(config: RunConfig, geometry: ImageGeometry, size: tuple[int, int]) -> Equation:
    """The images' equation on an ``size`` = (H, W) image of the training image's physical extent."""
    from engine.equations.spde import make_image_equation

    H, W = size
    pixel = geometry.height / H
    if abs(geometry.width / W - pixel) > 1e-12:
        raise ConfigError(f"{H}x{W} does not keep the training aspect ratio {geometry.height}x{geometry.width}")
    e, n = config.equation, config.noise
    return make_image_equation(e.name, H, W, sigma=n.sigma, gamma=n.gamma, schedule=e.schedule, T=e.T, eps=e.eps,
                               beta_min=e.beta_min, beta_max=e.beta_max, pixel_size=pixel, blur_min=e.blur_min,
                               blur_max=e.blur_max, noise=e.heat_noise)


def _in_network_dtype(network: torch.nn.Module, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
                      ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``fn(x, t)`` with ``x`` in the network's dtype and the output in ``x``'s: a float64 state (exact-score
    experiments, ``restore_items(dtype=torch.float64)``) runs through a float32 network."""
    dtype = next(network.parameters()).dtype

    def call(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return fn(x, t) if x.dtype == dtype else fn(x.to(dtype), t).to(x.dtype)

    return call


class FunctionDomain:
    """Functions and motions: samples [C, n] on a grid; the FNO-1D reads the grid's coordinates."""

    def __init__(self, config: RunConfig, geometry: ModelGeometry) -> None:
        self.config, self.geometry = config, geometry

    def default(self) -> np.ndarray:
        return np.asarray(self.geometry.grid, dtype=np.float64)

    def check(self, at: Any) -> np.ndarray:
        try:
            grid = np.asarray(at, dtype=np.float64)
        except (TypeError, ValueError):
            grid = None
        if (grid is None or grid.ndim != 1 or grid.size < 2 or not np.isfinite(grid).all()
                or not (np.diff(grid) > 0).all()):
            raise ConfigError("a sampling grid must be a strictly increasing 1D array of at least 2 finite points"
                              + (f", got a {type(at).__name__}" if grid is None else ""))
        a, b = self.geometry.domain
        slack = 4 * float(np.finfo(np.float32).eps) * max(abs(a), abs(b), b - a)  # a float32 copy of the domain
        if grid[0] < a - slack or grid[-1] > b + slack:  # the FNO's Fourier layers wrap around the domain
            raise ConfigError(f"the sampling grid spans [{grid[0]:.10g}, {grid[-1]:.10g}], but the model was trained "
                              f"on [{a:.10g}, {b:.10g}] and knows the functions there only: sample inside it (any "
                              "points, any number)")
        return grid

    def equation(self, at: np.ndarray) -> Equation:
        return build_equation(self.config, self.geometry, at)

    def shape(self, at: np.ndarray) -> tuple[int, ...]:
        return (self.geometry.channels, at.size)

    def backbone(self, network: torch.nn.Module, at: np.ndarray, device: torch.device):
        g = torch.as_tensor(at, dtype=torch.float32, device=device)
        return _in_network_dtype(network, lambda x, t: network(x, t, g))

    def settings(self, at: np.ndarray) -> dict[str, Any]:
        return {"grid_size": int(at.size)}


class ImageDomain:
    """Images: samples [C, H, W]; a UNet works at the training size, an FNO-2D at any size."""

    def __init__(self, config: RunConfig, geometry: ImageGeometry) -> None:
        self.config, self.geometry = config, geometry

    def default(self) -> tuple[int, int]:
        return (self.geometry.height, self.geometry.width)

    def check(self, at: Any) -> tuple[int, int]:
        if _is_int(at):
            at = (at, at)
        try:
            H, W = at
        except (TypeError, ValueError):
            H = W = None
        if not (_is_int(H) and _is_int(W)):
            raise ConfigError(f"an image size is (height, width) in whole pixels, got {at!r}")
        H, W = int(H), int(W)
        if H < 2 or W < 2:
            raise ConfigError(f"an image size must be at least 2x2, got {H}x{W}")
        if (H, W) != self.default() and self.config.model.name != "fno2d":
            raise ConfigError(f"this {self.config.model.name} samples only at its training size "
                              f"{self.geometry.height}x{self.geometry.width}; an FNO-2D model can sample at others")
        return (H, W)

    def equation(self, at: tuple[int, int]) -> Equation:
        return build_image_equation(self.config, self.geometry, at)

    def shape(self, at: tuple[int, int]) -> tuple[int, ...]:
        return (self.geometry.channels, *at)

    def backbone(self, network: torch.nn.Module, at: tuple[int, int], device: torch.device):
        return _in_network_dtype(network, network)

    def settings(self, at: tuple[int, int]) -> dict[str, Any]:
        return {"image_size": list(at)}


def make_domain(config: RunConfig, geometry: ModelGeometry | ImageGeometry) -> FunctionDomain | ImageDomain:
    return ImageDomain(config, geometry) if isinstance(geometry, ImageGeometry) else FunctionDomain(config, geometry)


@dataclass
class SampleResult:
    """Samples in data units, with what is needed to reproduce them."""

    samples: np.ndarray  # [N, C, n] (functions, motions) or [N, C, H, W] (images), denormalised
    grid: np.ndarray | None  # [n] (functions, motions); None for images
    seeds: np.ndarray  # [N] int64
    settings: dict[str, Any]
    trajectory: np.ndarray | None = None  # [S, N, ...] denormalised states, T -> 0
    trajectory_times: np.ndarray | None = None  # [S]
    modality: str = "functions"


def _is_int(value: Any) -> bool:
    """A Python or numpy integer (not a bool)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def as_count(what: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int, or ConfigError unless it is an integer >= ``minimum``."""
    if not _is_int(value) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConfigError(f"{what} must be {kind}, got {value!r}")
    return int(value)


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""Seeds are stored as int64 (sample files, :class:`SampleResult`); :class:`SampleRNG` takes any of them."""


def sample_seeds(num: int, seeds: Sequence[int] | None = None, seed: int = 0) -> np.ndarray:
    """The int64 seed of each of ``num`` samples: ``seeds`` (one per sample), else ``seed, seed + 1, ...``."""
    if seeds is None:
        if not _is_int(seed) or not INT64_MIN <= int(seed) <= INT64_MAX - (num - 1):
            raise ConfigError(f"seed (--seed) must be an integer in [-2^63, 2^63 - num_samples] = [{INT64_MIN}, "
                              f"{INT64_MAX - (num - 1)}] for {num} samples (sample k uses seed + k, an int64), "
                              f"got {seed!r}")
        return np.int64(seed) + np.arange(num, dtype=np.int64)
    try:
        values = np.asarray(seeds)
    except (TypeError, ValueError):
        raise ConfigError(f"seeds must be a flat list of {num} integers, one per sample") from None
    if values.dtype.kind != "i":  # unsigned, float, bool, object (Python ints past int64), strings
        bad = [v for v in values.ravel().tolist() if not (_is_int(v) and INT64_MIN <= v <= INT64_MAX)]
        if bad or values.dtype.kind not in "uO":
            raise ConfigError("seeds must be integers in [-2^63, 2^63 - 1] (int64), one per sample; got "
                              + (repr(bad[0]) if bad else f"{values.dtype} values"))
    if values.shape != (num,):
        raise ConfigError(f"expected {num} seeds, one per sample, got "
                          + (f"{values.size}" if values.ndim == 1 else f"an array shaped {values.shape}"))
    return values.astype(np.int64)


MAX_GRID_POINTS = 1 << 20
"""A sampling grid's bound before anything is allocated: a million points is 8 MB a curve and, through the FNO's
width, gigabytes a batch (the Q-Wiener prior's dense eigendecomposition needs n^2 memory: far fewer points)."""


def uniform_grid(geometry: ModelGeometry, n_points: int) -> np.ndarray:
    """A uniform grid of ``n_points`` (at most :data:`MAX_GRID_POINTS`) over the training domain."""
    n_points = as_count("grid size (--grid-size)", n_points, minimum=2)
    if n_points > MAX_GRID_POINTS:
        raise ConfigError(f"grid size (--grid-size) {n_points} is past what any model here can sample on (at most "
                          f"{MAX_GRID_POINTS} points; a Q-Wiener prior's dense covariance allows far fewer)")
    a, b = geometry.domain
    return np.linspace(a, b, n_points)


def prior_bank(equation: Equation, images: torch.Tensor, num: int = PRIOR_BANK_SIZE, seed: int = 0
               ) -> dict[str, torch.Tensor]:
    """What the ``ihdm`` prior needs of the training images (normalised, [N, C, H, W]): the DCT coefficients
    of up to ``num`` of them on the modes whose mean coefficient at T exceeds ``1e-6`` (the others contribute
    less than ``1e-6 |x_0|`` at T). Returns ``{"prior.bank": [K_img, C, K], "prior.modes": [K] flat indices}``.
    """
    from engine.operators.dct import dct2

    t = torch.tensor(equation.T, dtype=torch.float64)
    m, _ = equation.mode_coefs(t)
    m = torch.as_tensor(m, dtype=torch.float64).expand(images.shape[-2:]).reshape(-1)
    modes = torch.nonzero(m > _BANK_CUTOFF).reshape(-1)
    g = torch.Generator().manual_seed(seed)
    keep = torch.randperm(images.shape[0], generator=g)[:num]
    coefs = dct2(images[keep].to(torch.float64)).reshape(len(keep), images.shape[1], -1)[..., modes]
    return {"prior.bank": coefs.to(torch.float32).cpu(), "prior.modes": modes.cpu()}


class HDMModel:
    """A trained Hilbert diffusion model of functions, motions or images.

    Args:
        config: the resolved run configuration it was trained with.
        geometry: :class:`ModelGeometry` (functions, motions) or :class:`ImageGeometry`.
        normalizer: ``engine.data.Normalizer`` as a dict (applied to data, inverted on output).
        network: the backbone (EMA weights).
        extras: modality data stored with the model: ``prior.bank``/``prior.modes`` tensors (images, the
            ``ihdm`` prior) and ``meta`` (e.g. a motion's skeleton).
    """

    def __init__(self, config: RunConfig, geometry: ModelGeometry | ImageGeometry, normalizer: dict[str, Any],
                 network: torch.nn.Module, *, sha256: str = "", source: str = "",
                 tensors: dict[str, torch.Tensor] | None = None, extra_meta: dict[str, Any] | None = None) -> None:
        from engine.data import Normalizer

        self.config = config
        self.geometry = geometry
        self.domain = make_domain(config, geometry)
        self.normalizer = Normalizer.from_dict(normalizer)
        self.network = network.eval()
        self.sha256 = sha256
        self.source = source
        self.tensors = dict(tensors or {})
        self.extra_meta = dict(extra_meta or {})
        self._warned_prior_mean = False  # see _warn_dropped_mean

    @property
    def modality(self) -> str:
        return self.config.data.modality

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def to(self, device: torch.device | str) -> HDMModel:
        self.network.to(device)
        return self

    @property
    def training_grid(self) -> np.ndarray:
        """Functions and motions: the training grid."""
        if not isinstance(self.geometry, ModelGeometry):
            raise ConfigError("an image model has no grid; use its image size")
        return np.asarray(self.geometry.grid, dtype=np.float64)

    @property
    def motion_fps(self) -> float:
        """Motions: the frame rate the model was trained at (from its checkpoint)."""
        fps = (self.extra_meta.get("motion") or {}).get("fps") or self.config.data.fps
        if not fps:
            raise DataError("the motion checkpoint stores no frame rate; retrain it with this version")
        return float(fps)

    def equation_on(self, at: Any = None) -> Equation:
        """The forward equation on ``at``: a grid (functions, motions) or (H, W) (images); default: training."""
        return self.domain.equation(self.domain.default() if at is None else self.domain.check(at))

    def noise_predictor(self, at: Any = None, equation: Equation | None = None
                        ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``e_hat(x, t)`` on ``at``: the backbone wrapped by its parameterisation."""
        from engine.objectives import noise_predictor

        at = self.domain.default() if at is None else self.domain.check(at)
        equation = self.domain.equation(at) if equation is None else equation
        backbone = self.domain.backbone(self.network, at, self.device)
        return noise_predictor(backbone, equation, self.config.model.parameterization)

    def default_prior(self) -> str:
        return "ihdm" if self.config.equation.name == "ihdm" else "hdm"

    def prior_sample(self, prior: str, equation: Equation, rng: SampleRNG, shape: tuple[int, ...]) -> torch.Tensor:
        """A draw of x_T from ``prior`` (see the module docstring), [B, *shape] on the model's device."""
        if prior not in PRIORS:
            raise ConfigError(f"unknown prior {prior!r}; choose one of {', '.join(PRIORS)}")
        from engine.equations.spde import SPDEEquation

        if prior == "white" and (isinstance(equation, SPDEEquation) or not getattr(equation.Q, "white", False)):
            spde = isinstance(equation, SPDEEquation)
            why = (f"{self.config.equation.name}: each DCT mode has its own variance" if spde
                   else f"Q is the {self.config.noise.kernel} kernel, not white")
            use = "the hdm or ihdm prior" if isinstance(self.geometry, ImageGeometry) else "the hdm prior"
            raise ConfigError(f"this model's law at T is coloured ({why}); a white prior would start the reverse "
                              f"equation off it: use {use}")
        if prior != "ihdm":
            x_T = equation.prior_sample(rng, shape).to(self.device)  # (refused for the ihdm equation)
            if isinstance(equation, SPDEEquation):
                self._warn_dropped_mean(equation)
            return x_T
        if "prior.bank" not in self.tensors:
            raise ConfigError("the ihdm prior needs training images stored with the model; this checkpoint has "
                              "none (only image checkpoints do): use the hdm prior")
        from engine.operators.dct import idct2

        bank, modes = self.tensors["prior.bank"], self.tensors["prior.modes"]
        C, H, W = shape
        h, w = self.geometry.height, self.geometry.width
        rows, cols = modes // w, modes % w
        if H < h or W < w:
            raise ConfigError("the ihdm prior needs at least the training image size")
        coefs = torch.zeros(len(rng), C, H * W, dtype=torch.float64)
        pick = bank[rng.randint(bank.shape[0])].to(torch.float64) * float(np.sqrt(H * W / (h * w)))
        coefs[..., rows * W + cols] = pick  # the same physical modes on a finer image
        x0 = idct2(coefs.reshape(len(rng), C, H, W)).to(torch.float32).to(self.device)
        t = torch.full((len(rng),), equation.T, dtype=torch.float64, device=self.device)
        return equation.perturb(x0, t, equation.sample_noise(rng, shape))

    def _warn_dropped_mean(self, equation: Equation) -> None:
        """Once a model: say so where the hdm prior drops a sizeable ``M_T x_0`` (HDM-SPDE with ``sigma < 1``)."""
        if self._warned_prior_mean:
            return
        self._warned_prior_mean = True
        kept = float(equation.mode_mean(torch.tensor(equation.T, dtype=torch.float64)).max())
        if kept > PRIOR_MEAN_WARNING:
            log.warning("the hdm prior starts from N(0, Shat_T^2 Q), dropping M_T x_0, but this model's equation "
                        "(hdm_spde, sigma %g) keeps %.0f %% of the image's mean at T (0.8 %% at sigma 1): samples' "
                        "brightness and lowest modes may be off; the ihdm prior draws the exact marginal "
                        "(--prior ihdm, or Prior in the studio)", self.config.noise.sigma, 100 * kept)

    def default_batch_size(self, grid: np.ndarray | None = None, size: tuple[int, int] | int | None = None) -> int:
        """Items per sampling batch when none is given (``grid``/``size`` as :meth:`sample`; default: training).

        On a GPU one large batch keeps it busy: 1000 curves or motions, 256 images, fewer where that would
        exceed :data:`GPU_POINTS_PER_BATCH` grid points or pixels (a 100,000-point grid, 256x256 images), whose
        activations could outgrow the GPU's memory (the reference FNO, width 256, peaks at about 7 KiB a point
        in inference, so 7 GiB at the cap). On a CPU, batches of
        about :data:`CPU_POINTS_PER_BATCH` grid points or pixels (at least 32 items, the studio's preview),
        so the network's activations stay in cache and below glibc's mmap threshold. Measured (2-core
        EPYC, 1 thread, 1000 curves, exponential-5): 100 points 3.1-3.4 s in one batch, 2.1-2.2 s in batches
        of 250; 400 points 26 s, 7.3-8.4 s in batches of 60; 256 MNIST images (UNet) 11-17 s, 7.4 s in
        batches of 32. With :func:`engine.device.tune_cpu_allocator` (what ``hdm`` and the studio run
        with) 100 points take 1.4-1.9 s whatever the batch, and 400 points still 10-13 s in one batch
        against 5.0 s in batches of 60.
        """
        return self._batch_for(self._where(grid, size))

    def _where(self, grid: np.ndarray | None, size: tuple[int, int] | int | None) -> Any:
        """The grid (functions, motions) or size (images) asked for, checked; the training one by default."""
        images = isinstance(self.geometry, ImageGeometry)
        if (grid is not None and images) or (size is not None and not images):
            raise ConfigError("give a grid for functions and motions, an image size for images")
        return self.domain.check(size if images else grid) if (grid is not None or size is not None) \
            else self.domain.default()

    def _batch_for(self, at: Any) -> int:
        points = math.prod(self.domain.shape(at)[1:])
        if self.device.type != "cpu":
            most = 256 if isinstance(self.geometry, ImageGeometry) else 1000
            return max(1, min(most, GPU_POINTS_PER_BATCH // points))
        return max(32, CPU_POINTS_PER_BATCH // points)

    def sample(self, num: int, *, steps: int = 50, sampler: str | None = None, grid: np.ndarray | None = None,
               size: tuple[int, int] | int | None = None, prior: str | None = None,
               seeds: Sequence[int] | None = None, seed: int = 0, batch_size: int | None = None,
               spacing: str | None = None, callback: Callable[[StepInfo], None] | None = None,
               should_stop: Callable[[], bool] | None = None, trajectory_every: int = 0) -> SampleResult:
        """Draw ``num`` samples on ``grid`` (functions, motions) or at ``size`` (images); default: training.

        Args:
            prior: ``hdm``, ``white`` or ``ihdm`` (images; default ``hdm``, ``ihdm`` for the ihdm equation).
            seeds: one seed per sample; default ``seed, seed+1, ...``. Sample k depends only on
                its seed, not on the batch size (up to float rounding: 1e-7 to 1e-4 relative, up to 1e-3
                for IHDM images; the same ``batch_size`` reproduces it bit for bit).
            batch_size: items per batch; default :meth:`default_batch_size` (by device and size).
            trajectory_every: keep every k-th state of the reverse trajectory (0: none).
            callback: receives each step's :class:`StepInfo` (batch-local; ``x`` normalised).
        """
        num = as_count("num_samples (--num-samples)", num)
        steps = as_count("steps (--steps)", steps)
        trajectory_every = as_count("trajectory_every (--trajectory-every, 0 for none)", trajectory_every, 0)
        if batch_size is not None:
            batch_size = as_count("batch_size (--batch-size)", batch_size)
        images = isinstance(self.geometry, ImageGeometry)
        at = self._where(grid, size)
        batch_size = min(num, self._batch_for(at)) if batch_size is None else batch_size
        seeds = sample_seeds(num, seeds, seed)
        prior = prior or self.default_prior()
        sampler = default_sampler_for(self.modality) if sampler is None else sampler
        fn = get_sampler(sampler)
        if sampler not in EVALS_PER_STEP:  # a sampler registered by hand: asked now, not after the sampling
            raise ConfigError(f"sampler {sampler!r} is in engine.samplers.SAMPLERS but not in EVALS_PER_STEP: add the "
                              "number of network evaluations one of its steps takes")
        equation = self.domain.equation(at)
        spacing = spacing or default_spacing(sampler)
        ts = time_grid(equation, steps, spacing)
        predict = self.noise_predictor(at, equation)
        shape = self.domain.shape(at)
        outs, trajs, traj_times = [], [], []
        for start in range(0, num, batch_size):
            rng = SampleRNG(seeds[start:start + batch_size].tolist(), self.device)
            x_T = self.prior_sample(prior, equation, rng, shape)
            states: list[torch.Tensor] = [x_T.cpu()] if trajectory_every else []
            times = [float(ts[0])]

            def on_step(info: StepInfo, states=states, times=times) -> None:
                if trajectory_every and (info.step % trajectory_every == 0 or info.step == info.total):
                    states.append(info.x.detach().cpu())
                    times.append(info.t)
                if callback is not None:
                    callback(info)

            with torch.inference_mode():
                x0 = fn(predict, equation, x_T, ts, rng=rng, callback=on_step, should_stop=should_stop)
            outs.append(self.normalizer.denormalize(x0.cpu().numpy()))
            if trajectory_every:
                trajs.append(np.stack([self.normalizer.denormalize(s.numpy()) for s in states]))
                traj_times = times
        settings = {"sampler": sampler, "steps": steps, "spacing": spacing, **self.domain.settings(at),
                    "network_evaluations": steps * EVALS_PER_STEP[sampler] + 1, "batch_size": batch_size,
                    "trajectory_every": trajectory_every, "device": str(self.device),
                    "T": float(equation.T), "eps": float(equation.eps)}  # the time interval, as resolved
        if images:
            settings["prior"] = prior
        return SampleResult(
            samples=np.concatenate(outs).astype(np.float32), grid=None if images else at, seeds=seeds,
            settings=settings, modality=self.modality,
            trajectory=np.concatenate(trajs, axis=1).astype(np.float32) if trajs else None,
            trajectory_times=np.asarray(traj_times) if trajs else None)

    # -- persistence -----------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        return {"geometry": self.geometry.to_dict(), "normalizer": self.normalizer.to_dict(),
                "modality": self.modality, **self.extra_meta}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Everything a checkpoint stores: the network's weights and the modality's tensors."""
        out = {k: v.detach().cpu() for k, v in self.network.state_dict().items()}
        out.update({k: v.detach().cpu() for k, v in self.tensors.items()})
        return out

    @classmethod
    def from_parts(cls, state_dict: dict[str, torch.Tensor], config: dict[str, Any], meta: dict[str, Any],
                   *, sha256: str = "", source: str = "") -> HDMModel:
        """Rebuild from a checkpoint's weights, config and metadata; mismatches raise CheckpointError."""
        where = source or "checkpoint"
        try:
            modality = meta.get("modality", "functions")
            geo = meta["geometry"]
            geometry = ImageGeometry.from_dict(geo) if modality == "images" else ModelGeometry.from_dict(geo)
            run = RunConfig.from_dict(config, stored=True).resolve(modality)
            normalizer = meta["normalizer"]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"{where}: its metadata is incomplete ({exc}); "
                                  "is it an HDM Studio checkpoint?") from None
        tensors = {k: v for k, v in state_dict.items() if k.startswith("prior.")}
        weights = {k: v for k, v in state_dict.items() if not k.startswith("prior.")}
        try:  # any error building from the stored metadata means the metadata is bad: say which file
            if isinstance(geometry, ModelGeometry):
                grid = np.asarray(geometry.grid)
                if grid.size < 2 or not np.isfinite(grid).all() or not (np.diff(grid) > 0).all():
                    raise ConfigError(f"the training grid ({grid.size} points) must be a strictly increasing list "
                                      "of at least 2 finite numbers")
            with torch.random.fork_rng(devices=[]):  # its random initial weights are replaced: leave torch's RNG
                network = build_network(run, geometry)
            expected = network.state_dict()
            missing = set(expected) - set(weights)
            unexpected = set(weights) - set(expected)
            wrong = [k for k in expected if k in weights and weights[k].shape != expected[k].shape]
            if missing or unexpected or wrong:
                raise CheckpointError(f"{where}: its weights do not match its config "
                                      f"({len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} "
                                      "mis-shaped tensors); it belongs to another model")
            network.load_state_dict(weights)
            extra = {k: v for k, v in meta.items() if k not in ("geometry", "normalizer", "modality", "training")}
            model = cls(run, geometry, normalizer, network, sha256=sha256, source=source, tensors=tensors,
                        extra_meta=extra)
            model._check_metadata()
        except (ConfigError, DataError, ValueError, IndexError, KeyError, TypeError, AttributeError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise CheckpointError(f"{where}: the checkpoint's metadata is invalid ({reason}); it is corrupt or was "
                                  "edited: retrain the model or use an intact copy") from None
        return model

    def _check_metadata(self) -> None:
        """Fail now, not at the first sample, on stored settings that cannot work: the training grid or
        size, the normaliser's channels, the equation bound there (schedule, T, eps, kernel, jitter)."""
        at = self.domain.check(self.domain.default())
        channels = self.normalizer.channels
        if channels is not None and channels != self.geometry.channels:
            raise DataError(f"normalizer: fitted on {channels} channel(s) but the model has {self.geometry.channels}")
        self.domain.equation(at)
