"""HDM engine: Hilbert diffusion models in pure torch + numpy (never imports Qt).

Organised by the mathematics:

- :mod:`engine.operators`  covariance kernels and their eigenbases (the operator Q)
- :mod:`engine.equations`  linear forward equations, marginals, score operator, reverse drifts
- :mod:`engine.models`     score networks (FNO-1D)
- :mod:`engine.objectives` denoising score matching in H
- :mod:`engine.samplers`   reverse-time samplers with one signature
- :mod:`engine.training`   step-wise trainer, EMA, checkpoints
- :mod:`engine.data`       datasets and loaders
- :mod:`engine.metrics`    two-sample power and functional errors
- :mod:`engine.io`         HDF5 sample files, checkpoint files, atomic writes
- :mod:`engine.api`        the Python API the CLI and the studio both call
"""

from __future__ import annotations

__version__ = "0.1.0"
