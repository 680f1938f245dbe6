"""Score networks (noise predictors) for Hilbert diffusion."""

from __future__ import annotations

from engine.models.fno import FNO1d

__all__ = ["FNO1d"]
