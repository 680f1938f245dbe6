"""Device selection: a string in configs, a ``torch.device`` only at run time."""

from __future__ import annotations

import torch

from engine.errors import ConfigError


def resolve_device(name: str | None = "cpu") -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available) -> ``torch.device``."""
    name = (name or "cpu").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} requested but CUDA is not available here; use --device cpu")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s)")
        return dev
    raise ConfigError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto")


def available_devices() -> list[str]:
    """``cpu`` and each CUDA device, for the studio's selector."""
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return out
