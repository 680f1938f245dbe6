"""Typed, validated, frozen configuration that round-trips through JSON.

One dataclass per section; :class:`RunConfig` gathers them and is saved inside every
checkpoint and every sample file. No ``torch.device`` ever enters a config: devices are
strings resolved at run time.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any

from engine.errors import ConfigError


def _positive(name: str, value: float, *, integer: bool = False) -> None:
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if not ok or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"{name} must be {kind}, got {value!r}")


@dataclass(frozen=True)
class DataConfig:
    """Which data to train on: an embedded dataset name or a file path."""

    spec: str = "quadratic"
    n_points: int | None = None  # resample to this many points (None: native)
    num: int | None = None  # cap the number of training curves
    seed: int = 0  # seed of synthetic datasets (train and test streams derive from it)

    def validate(self) -> None:
        if not self.spec:
            raise ConfigError("--data must name a dataset or a file")
        if self.n_points is not None:
            _positive("--n-points", self.n_points, integer=True)
        if self.num is not None:
            _positive("number of curves", self.num, integer=True)


@dataclass(frozen=True)
class NoiseConfig:
    """The covariance operator Q of the Wiener process (the prior's shape)."""

    kernel: str = "squared_exponential"
    length_scale: float | None = None  # None: the dataset's recommended length scale
    gain: float = 1.0
    period: float | None = None
    jitter: float = 1e-6

    def validate(self) -> None:
        from engine.operators.kernels import canonical_kernel

        canonical_kernel(self.kernel)
        if self.length_scale is not None:
            _positive("--length-scale", self.length_scale)
        _positive("noise gain", self.gain)


@dataclass(frozen=True)
class EquationConfig:
    """The forward equation and its schedule."""

    name: str = "vp"
    schedule: str = "cosine"
    T: float | None = None
    eps: float | None = None
    beta_min: float = 0.1
    beta_max: float = 20.0
    eta_min: float = 0.01
    eta_max: float = 50.0

    def validate(self) -> None:
        from engine.equations.base import EQUATIONS
        from engine.equations.schedules import SCHEDULES

        if self.name not in EQUATIONS:
            raise ConfigError(f"unknown equation {self.name!r}; choose one of {', '.join(EQUATIONS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")


@dataclass(frozen=True)
class ModelConfig:
    """The score network (FNO-1D)."""

    name: str = "fno1d"
    width: int = 32
    modes: int = 16
    layers: int = 4
    emb_dim: int = 64
    parameterization: str = "v"  # "v" (preconditioned, default) or "noise"; see engine.objectives

    def validate(self) -> None:
        if self.name != "fno1d":
            raise ConfigError(f"unknown model {self.name!r}; the functions model is fno1d")
        for key in ("width", "modes", "layers", "emb_dim"):
            _positive(f"model {key}", getattr(self, key), integer=True)
        if self.parameterization not in ("v", "noise"):
            raise ConfigError(f"unknown parameterization {self.parameterization!r}; use v or noise")
        if self.emb_dim % 2:
            raise ConfigError(f"model emb_dim must be even, got {self.emb_dim}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation: AdamW with warm-up and cosine decay, gradient clipping, EMA."""

    steps: int = 2000
    batch_size: int = 100
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    ema_decay: float = 0.995
    seed: int = 0
    checkpoint_every: int = 500
    subgrid_prob: float = 0.5  # share of steps trained on a random sub-grid (resolution augmentation)
    subgrid_min_fraction: float = 0.4  # smallest sub-grid, as a fraction of the training grid

    def validate(self) -> None:
        _positive("--steps", self.steps, integer=True)
        _positive("--batch-size", self.batch_size, integer=True)
        _positive("--lr", self.lr)
        _positive("grad clip", self.grad_clip)
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")
        if not (0 <= self.subgrid_prob <= 1 and 0 < self.subgrid_min_fraction <= 1):
            raise ConfigError("subgrid_prob must lie in [0, 1] and subgrid_min_fraction in (0, 1]")
        if self.warmup < 0 or self.weight_decay < 0 or not 0 < self.min_lr_ratio <= 1:
            raise ConfigError("warmup and weight decay must be >= 0 and min_lr_ratio in (0, 1]")


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
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        if not isinstance(d, dict):
            raise ConfigError("a run configuration must be a JSON object")
        parts = {}
        for f in fields(cls):
            sub = d.get(f.name, {})
            sub_cls = f.default_factory  # type: ignore[misc]
            names = {g.name for g in fields(sub_cls)}
            unknown = set(sub) - names
            if unknown:
                raise ConfigError(f"unknown {f.name} settings: {', '.join(sorted(unknown))}")
            parts[f.name] = sub_cls(**sub)
        return cls(**parts).validate()

    def replace(self, **sections: Any) -> RunConfig:
        """A copy with some fields changed, e.g. ``replace(train={"steps": 10})``."""
        d = self.to_dict()
        for key, value in sections.items():
            d[key].update(value)
        return RunConfig.from_dict(d)
