"""Noise schedules of variance-preserving equations: ``alpha(t)`` and ``beta(t)``.

``alpha(t) = exp(-1/2 int_0^t beta)`` is the mean coefficient of the VP equation
``dX = -1/2 beta(t) X dt + sqrt(beta(t)) dW^Q``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from engine.errors import ConfigError


class Schedule(ABC):
    """``log alpha(t)`` and ``beta(t) = -2 d/dt log alpha(t)`` on [0, T]."""

    name: str
    T: float
    eps: float

    @abstractmethod
    def log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        """``log alpha(t)``, elementwise."""

    @abstractmethod
    def beta(self, t: torch.Tensor) -> torch.Tensor:
        """``beta(t) = -2 d/dt log alpha(t)``, elementwise."""


@dataclass(frozen=True)
class CosineSchedule(Schedule):
    """The continuous cosine schedule (Nichol & Dhariwal), as the reference code uses it.

    ``log alpha(t) = log cos(((t+s)/(1+s)) pi/2) - log cos((s/(1+s)) pi/2)``,
    ``beta(t) = pi/(1+s) tan(((t+s)/(1+s)) pi/2)``; T = 0.9946 keeps beta finite, eps = 1e-5.
    """

    s: float = 0.008
    T: float = 0.9946
    eps: float = 1e-5
    name: str = "cosine"

    def __post_init__(self) -> None:
        if not 0 < self.T < 1.0:
            raise ConfigError(f"cosine schedule needs 0 < T < 1, got {self.T}")
        if not 0 < self.eps < self.T:
            raise ConfigError(f"eps must lie in (0, T), got {self.eps}")

    def _angle(self, t: torch.Tensor) -> torch.Tensor:
        return (t + self.s) / (1 + self.s) * (math.pi / 2)

    def log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.log(torch.cos(self._angle(t))) - math.log(math.cos(self.s / (1 + self.s) * math.pi / 2))

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return math.pi / (1 + self.s) * torch.tan(self._angle(t))


@dataclass(frozen=True)
class LinearSchedule(Schedule):
    """``beta(t) = beta_min + t (beta_max - beta_min)`` on [0, 1] (score_sde's VP)."""

    beta_min: float = 0.1
    beta_max: float = 20.0
    T: float = 1.0
    eps: float = 1e-3
    name: str = "linear"

    def __post_init__(self) -> None:
        if not 0 < self.beta_min < self.beta_max:
            raise ConfigError(f"linear schedule needs 0 < beta_min < beta_max, got {self.beta_min}, "
                              f"{self.beta_max}")
        if not 0 < self.eps < self.T:
            raise ConfigError(f"eps must lie in (0, T), got {self.eps}")

    def log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return -0.5 * (self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2)

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)


SCHEDULES: dict[str, type[Schedule]] = {"cosine": CosineSchedule, "linear": LinearSchedule}
