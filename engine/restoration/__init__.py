"""Degrade-then-restore: measurement operators, conditional sampling with any sampler, metrics, runs.

- :mod:`engine.restoration.operators`    ``y = A x + sigma_y n`` as data objects; :data:`TASKS`,
  :func:`make_degradation`
- :mod:`engine.restoration.conditional`  :func:`restore`: ``replace`` (DDNM/DDNM+) and ``dps`` around any
  sampler of :mod:`engine.samplers` and any equation
- :mod:`engine.restoration.metrics`      PSNR, SSIM (2D; 1D for curves), consistency, diversity
- :mod:`engine.restoration.run`          :func:`restore_items` (degrade, then restore), :func:`restore_observed`
  (fill the gaps of measured data), the ``hdm-restoration/1`` HDF5 file, the
  ``hdm restore`` command
"""

from __future__ import annotations

from engine.restoration.conditional import METHODS, restore
from engine.restoration.metrics import consistency, diversity, psnr, ssim
from engine.restoration.operators import TASKS, Degradation, make_degradation, tasks_for
from engine.restoration.run import (
    ObservedRestoration,
    RestorationResult,
    add_restore_arguments,
    default_metric,
    default_sampler,
    items_split,
    load_items,
    restore_items,
    restore_observed,
    run_restore_command,
    summary_table,
    write_restoration,
)

__all__ = [
    "METHODS",
    "TASKS",
    "Degradation",
    "ObservedRestoration",
    "RestorationResult",
    "add_restore_arguments",
    "consistency",
    "default_metric",
    "default_sampler",
    "diversity",
    "items_split",
    "load_items",
    "make_degradation",
    "psnr",
    "restore",
    "restore_items",
    "restore_observed",
    "run_restore_command",
    "ssim",
    "summary_table",
    "tasks_for",
    "write_restoration",
]
