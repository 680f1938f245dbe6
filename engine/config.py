"""Typed, validated, frozen configuration that round-trips through JSON.

One dataclass per section; :class:`RunConfig` gathers them and is saved inside every
checkpoint and every sample file. No ``torch.device`` ever enters a config: devices are
strings resolved at run time.

Three modalities share one configuration: ``functions`` (curves on a grid), ``motions``
(skeleton trajectories: multichannel functions of time) and ``images``. Settings whose best
value depends on the modality default to ``"auto"`` (or ``None``) and are fixed by
:meth:`RunConfig.resolve` once the data are known: the equation (``vp`` for functions and
motions, ``hdm_spde`` for images), the network (``fno1d`` or ``unet``) and the learning rate.
A checkpoint always stores the resolved configuration.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field, fields
from typing import Any

from engine.errors import ConfigError


def _positive(name: str, value: float, *, integer: bool = False) -> None:
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if not ok or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"{name} must be {kind}, got {value!r}")


MODALITIES = ("functions", "motions", "images")
CHANNEL_SCALES = ("auto", "own", "capped")
IN_MEMORY_PREFIX = "in-memory:"  # DataConfig.spec of a run trained on data given as objects, not named: no loader


@dataclass(frozen=True)
class DataConfig:
    """Which data to train on: an embedded dataset name or a file path (``in-memory:NAME`` records a run trained
    on a dataset given to :class:`engine.training.Trainer` that no name or file holds)."""

    spec: str = "quadratic"
    modality: str = "auto"  # functions | motions | images; "auto": from the dataset name or file
    n_points: int | None = None  # functions: resample to this many points (None: native)
    num: int | None = None  # cap the number of training items
    seed: int = 0  # seed of synthetic datasets (train and test streams derive from it)
    image_size: int | None = None  # images: resize and centre-crop to this size (None: native)
    channels: int | None = None  # images: convert to 1 (grey) or 3 (RGB) channels (None: native)
    fps: float | None = None  # motions: resample clips to this frame rate (None: the dataset's default)
    frames: int | None = None  # motions: frames per training clip (None: the dataset's default)
    # how each channel is scaled (functions, motions): "own" (by its own std), "capped" (by its own std, at most
    # the data's RMS channel std: see engine.data.normalize), "auto" (capped for motions, own for functions)
    channel_scale: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.spec, os.PathLike):  # a Path is stored (and written to JSON) as the text it names
            object.__setattr__(self, "spec", os.fspath(self.spec))

    def validate(self) -> None:
        if not isinstance(self.spec, str):
            raise ConfigError(f"--data must name a dataset or a file, got a {type(self.spec).__name__} (to train on "
                              "an array: api.train(config, out_dir, dataset=array))")
        if not str(self.spec).strip():
            raise ConfigError("--data must name a dataset or a file")
        if self.modality not in (*MODALITIES, "auto"):
            raise ConfigError(f"unknown modality {self.modality!r}; choose one of {', '.join(MODALITIES)}")
        for name, value in (("--n-points", self.n_points), ("--num-items", self.num),
                            ("--image-size", self.image_size), ("--frames", self.frames)):
            if value is not None:
                _positive(name, value, integer=True)
        if self.n_points is not None and self.n_points < 2:
            raise ConfigError(f"--n-points must be an integer >= 2, got {self.n_points}")
        if self.channels not in (None, 1, 3):
            raise ConfigError(f"--channels must be 1 (grey) or 3 (RGB), got {self.channels!r}")
        if self.fps is not None:
            _positive("--fps", self.fps)
        if self.channel_scale not in CHANNEL_SCALES:
            raise ConfigError(f"--channel-scale must be one of {', '.join(CHANNEL_SCALES)}, got {self.channel_scale!r}")


@dataclass(frozen=True)
class NoiseConfig:
    """The covariance operator Q of the Wiener process (the prior's shape)."""

    kernel: str = "squared_exponential"
    length_scale: float | None = None  # None: the dataset's recommended length scale
    gain: float = 1.0
    period: float | None = None
    jitter: float = 1e-6
    sigma: float = 1.0  # images: Q = (sigma I - Laplacian)^-gamma, and the HDM-SPDE drift's damping
    gamma: float = 0.0  # images: smoothness of the Q-Wiener noise (0: white noise, the reference's CIFAR10)

    def validate(self) -> None:
        from engine.operators.kernels import canonical_kernel

        canonical_kernel(self.kernel)
        if self.length_scale is not None:
            _positive("--length-scale", self.length_scale)
        _positive("--gain", self.gain)
        _positive("--sigma", self.sigma)
        if not (isinstance(self.gamma, int | float) and math.isfinite(self.gamma) and self.gamma >= 0):
            raise ConfigError(f"--gamma must be a number >= 0, got {self.gamma!r}")


@dataclass(frozen=True)
class EquationConfig:
    """The forward equation and its schedule."""

    name: str = "auto"  # functions/motions: vp | subvp | ve; images: hdm_spde | vp | ihdm
    schedule: str = "cosine"
    T: float | None = None
    eps: float | None = None
    beta_min: float = 0.1
    beta_max: float = 20.0
    eta_min: float = 0.01
    eta_max: float = 50.0
    blur_min: float = 0.5  # ihdm: blur width at t = 0, pixels
    blur_max: float = 20.0  # ihdm: blur width at t = T, pixels
    heat_noise: float = 0.01  # ihdm: the small noise level

    def validate(self) -> None:
        from engine.equations.base import EQUATIONS
        from engine.equations.schedules import SCHEDULES
        from engine.equations.spde import IMAGE_EQUATIONS

        known = {"auto", *EQUATIONS, *IMAGE_EQUATIONS}
        if self.name not in known:
            raise ConfigError(f"unknown equation {self.name!r}; choose one of {', '.join(sorted(known - {'auto'}))}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if not 0 < self.blur_min < self.blur_max:
            raise ConfigError(f"--blur-min and --blur-max must satisfy 0 < blur-min < blur-max, got "
                              f"{self.blur_min}, {self.blur_max}")
        _positive("--heat-noise", self.heat_noise)


PRECISIONS = ("fp32", "tf32", "bf16")
# The law of the training times: "uniform" t ~ U(eps, T); "mixed" half of each batch uniform in t, half uniform in
# log t (see engine.objectives.sample_times)
TIME_LAWS = ("uniform", "mixed")

# Settings whose default changed: a checkpoint written before the setting existed was trained with these.
STORED_DEFAULTS: dict[str, dict[str, Any]] = {"model": {"padding": 0.0}, "data": {"channel_scale": "own"}}

MODELS = {"fno1d": ("functions", "motions"), "unet": ("images",), "fno2d": ("images",)}


@dataclass(frozen=True)
class ModelConfig:
    """The score network: FNO-1D (functions, motions), UNet or FNO-2D (images)."""

    name: str = "auto"  # fno1d | unet | fno2d; "auto": fno1d for functions and motions, unet for images
    width: int = 32  # FNO channels; UNet base channels
    modes: int = 16  # FNO Fourier modes (per axis for fno2d)
    layers: int = 4  # FNO layers
    padding: float = 1.0  # FNO-1D: Fourier period extended by this fraction of the domain (1: FNO's zero-padding)
    emb_dim: int = 64  # time embedding size
    parameterization: str = "v"  # "v" (preconditioned, default) or "noise"; see engine.objectives
    channel_mult: tuple[int, ...] = (1, 2, 2)  # UNet: channels per level, times width
    num_res_blocks: int = 2  # UNet: residual blocks per level
    attention_levels: tuple[int, ...] = (2,)  # UNet: levels (0 = full resolution) with self-attention
    dropout: float = 0.0  # UNet

    def __post_init__(self) -> None:  # JSON gives lists
        object.__setattr__(self, "channel_mult", tuple(self.channel_mult))
        object.__setattr__(self, "attention_levels", tuple(self.attention_levels))

    def validate(self) -> None:
        if self.name not in (*MODELS, "auto"):
            raise ConfigError(f"unknown model {self.name!r}; choose one of {', '.join(MODELS)}")
        for key, flag in (("width", "--width"), ("modes", "--modes"), ("layers", "--layers"),
                          ("emb_dim", "--emb-dim"), ("num_res_blocks", "--res-blocks")):
            _positive(flag, getattr(self, key), integer=True)
        if not self.channel_mult or any(not isinstance(c, int) or c < 1 for c in self.channel_mult):
            raise ConfigError(f"--channel-mult must be positive integers, got {self.channel_mult}")
        if any(not isinstance(a, int) or not 0 <= a < len(self.channel_mult) for a in self.attention_levels):
            raise ConfigError(f"--attention must be levels 0..{len(self.channel_mult) - 1}, "
                              f"got {self.attention_levels}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must lie in [0, 1), got {self.dropout}")
        if not (isinstance(self.padding, int | float) and 0 <= self.padding <= 4):
            raise ConfigError(f"--padding must lie in [0, 4] (a fraction of the domain), got {self.padding!r}")
        if self.parameterization not in ("v", "noise"):
            raise ConfigError(f"unknown parameterization {self.parameterization!r}; use v or noise")
        if self.emb_dim % 2:
            raise ConfigError(f"--emb-dim must be even, got {self.emb_dim}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation: AdamW with warm-up and cosine decay, gradient clipping, EMA."""

    steps: int = 2000
    batch_size: int = 100
    lr: float | None = None  # None: 2e-3 for the FNO-1D, 5e-4 for image networks
    weight_decay: float = 1e-4
    warmup: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    ema_decay: float = 0.995
    seed: int = 0
    checkpoint_every: int = 500
    subgrid_prob: float = 0.5  # share of steps trained on a random sub-grid (resolution augmentation)
    subgrid_min_fraction: float = 0.4  # smallest sub-grid, as a fraction of the training grid
    time_law: str = "uniform"  # the training times' law: one of TIME_LAWS
    # How the step is executed (they do not change the model; a resumed run may change them):
    # "tf32": float32 matmuls on a CUDA GPU's TF32 tensor cores (10-bit mantissa, float32 range and accumulation);
    # "bf16": the network's forward under bf16 autocast (loss, weights, EMA stay fp32)
    precision: str = "fp32"
    compile: bool = False  # torch.compile the network + DSM loss (falls back to eager, with a warning, if it fails)
    # With compile, on one CUDA device: replay the compiled step as CUDA graphs (torch.compile's "reduce-overhead")
    cuda_graphs: bool = False

    def validate(self) -> None:
        _positive("--steps", self.steps, integer=True)
        _positive("--batch-size", self.batch_size, integer=True)
        if self.lr is not None:
            _positive("--lr", self.lr)
        _positive("grad clip", self.grad_clip)
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")
        if not (0 <= self.subgrid_prob <= 1 and 0 < self.subgrid_min_fraction <= 1):
            raise ConfigError("subgrid_prob must lie in [0, 1] and subgrid_min_fraction in (0, 1]")
        if isinstance(self.checkpoint_every, bool) or not isinstance(self.checkpoint_every, int) \
                or self.checkpoint_every < 0:
            raise ConfigError(f"--checkpoint-every must be 0 (only at the end) or a positive number of steps, "
                              f"got {self.checkpoint_every!r}")
        if self.warmup < 0:
            raise ConfigError(f"--warmup must be 0 (no warm-up) or a positive number of steps, got {self.warmup}")
        if self.weight_decay < 0 or not 0 < self.min_lr_ratio <= 1:
            raise ConfigError("weight decay must be >= 0 and min_lr_ratio in (0, 1]")
        if self.time_law not in TIME_LAWS:
            raise ConfigError(f"--time-law: unknown law {self.time_law!r}; choose one of {', '.join(TIME_LAWS)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if not isinstance(self.compile, bool):
            raise ConfigError(f"train compile must be true or false, got {self.compile!r}")
        if not isinstance(self.cuda_graphs, bool):
            raise ConfigError(f"train cuda_graphs must be true or false, got {self.cuda_graphs!r}")
        if self.cuda_graphs and not self.compile:
            raise ConfigError("cuda_graphs replays the compiled step: set compile too")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a trained model."""

    data: DataConfig = field(default_factory=DataConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    equation: EquationConfig = field(default_factory=EquationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> RunConfig:
        for f in fields(self):
            getattr(self, f.name).validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, stored: bool = False) -> RunConfig:
        """The configuration of a JSON object; absent settings take their defaults.

        ``stored``: ``d`` comes from a checkpoint or run state, whose absent settings are those of
        the version that wrote it (:data:`STORED_DEFAULTS`), not today's defaults.
        """
        if not isinstance(d, dict):
            raise ConfigError("a run configuration must be a JSON object")
        parts = {}
        for f in fields(cls):
            sub = d.get(f.name, {})
            if stored and isinstance(sub, dict):
                sub = {**STORED_DEFAULTS.get(f.name, {}), **sub}
            sub_cls = f.default_factory  # type: ignore[misc]
            names = {g.name for g in fields(sub_cls)}
            unknown = set(sub) - names
            if unknown:
                raise ConfigError(f"unknown {f.name} settings: {', '.join(sorted(unknown))}")
            parts[f.name] = sub_cls(**sub)
        return cls(**parts).validate()

    @property
    def modality(self) -> str:
        return self.data.modality

    def resolve(self, modality: str) -> RunConfig:
        """Fix the ``auto`` settings for ``modality`` and check that the rest fit it."""
        if modality not in MODALITIES:
            raise ConfigError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
        if self.data.modality not in ("auto", modality):
            raise ConfigError(f"the data are {modality} but the configuration says {self.data.modality}")
        from engine.equations.base import EQUATIONS
        from engine.equations.spde import IMAGE_EQUATIONS

        images = modality == "images"
        foreign = [name for name, value, owners in (("image_size", self.data.image_size, ("images",)),
                                                    ("channels", self.data.channels, ("images",)),
                                                    ("fps", self.data.fps, ("motions",)),
                                                    ("frames", self.data.frames, ("motions",)),
                                                    # images are mapped to [-1, 1] whatever it says; "own" is
                                                    # what their checkpoints from before the setting read as
                                                    ("channel_scale", "capped" if self.data.channel_scale == "capped"
                                                     else None, ("functions", "motions")))
                   if value is not None and modality not in owners]
        if foreign:
            one = len(foreign) == 1
            raise ConfigError(f"the data are {modality}: {', '.join('--' + n.replace('_', '-') for n in foreign)} "
                              f"{'applies' if one else 'apply'} to other data; drop {'it' if one else 'them'}")
        equation = self.equation.name if self.equation.name != "auto" else ("hdm_spde" if images else "vp")
        allowed = IMAGE_EQUATIONS if images else EQUATIONS
        if equation not in allowed:
            raise ConfigError(f"equation {equation!r} is not defined for {modality}; choose one of "
                              f"{', '.join(allowed)}")
        model = self.model.name if self.model.name != "auto" else ("unet" if images else "fno1d")
        if modality not in MODELS[model]:
            fits = [m for m, mods in MODELS.items() if modality in mods]
            raise ConfigError(f"model {model!r} is not for {modality}; choose one of {', '.join(fits)}")
        lr = self.train.lr if self.train.lr is not None else (2e-3 if model == "fno1d" else 5e-4)
        scale = self.data.channel_scale
        if scale == "auto" and not images:
            scale = "capped" if modality == "motions" else "own"
        return self.replace(data={"modality": modality, "channel_scale": scale}, equation={"name": equation},
                            model={"name": model}, train={"lr": lr})

    def replace(self, **sections: Any) -> RunConfig:
        """A copy with some fields changed, e.g. ``replace(train={"steps": 10})``."""
        d = self.to_dict()
        for key, value in sections.items():
            d[key].update(value)
        return RunConfig.from_dict(d)
