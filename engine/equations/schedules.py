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


@dataclass(frozen=True)
class HeatSchedule(Schedule):
    """IHDM's blur schedule: the heat time ``tau = sigma_B^2 / 2`` of a blur width ``sigma_B(t)`` log-spaced
    from ``blur_min`` (t = 0) to ``blur_max`` (t = T) pixels, less the first blur so that the process starts
    at the data:

        tau(t) = (sigma_B(t)^2 - blur_min^2) / 2,   sigma_B(t) = blur_min (blur_max / blur_min)^{t/T},
        log alpha(t) = -tau(t),   beta(t) = 2 tau'(t) = 2 sigma_B(t)^2 log(blur_max / blur_min) / T.

    Used by the IHDM equation (:class:`engine.equations.spde.IHDMEquation`), whose per-mode mean is the
    heat semigroup ``exp(-tau(t) lambda_k)``. IHDM itself starts at ``tau_min = blur_min^2 / 2`` (its data
    level is already blurred by ``blur_min``); here ``tau(0) = 0``, so sampling ends at the data, and from
    the first levels on the two blurs agree to ``blur_min^2 / 2`` (0.125 px^2).
    """

    blur_min: float = 0.5
    blur_max: float = 20.0
    T: float = 1.0
    eps: float = 1e-3
    name: str = "heat"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.blur_min) and math.isfinite(self.blur_max) and 0 < self.blur_min < self.blur_max):
            raise ConfigError(f"the blur schedule needs 0 < blur_min < blur_max, got {self.blur_min}, "
                              f"{self.blur_max}")
        if not 0 < self.eps < self.T:
            raise ConfigError(f"eps must lie in (0, T), got {self.eps}")

    @property
    def _log_ratio(self) -> float:
        return 2 * math.log(self.blur_max / self.blur_min)

    def blur(self, t: torch.Tensor) -> torch.Tensor:
        """The blur width ``sigma_B(t)`` in pixels."""
        return self.blur_min * torch.exp(0.5 * self._log_ratio * t / self.T)

    def tau(self, t: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.blur_min**2 * torch.expm1(self._log_ratio * t / self.T)

    def log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return -self.tau(t)

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return self.blur(t) ** 2 * self._log_ratio / self.T
