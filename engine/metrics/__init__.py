"""Sample-quality metrics for curves: kernel two-sample power and functional errors.

- :func:`mmd_power`: power (%) of the balanced-block MMD permutation test (the paper's
  headline metric, without the reference code's block-size defect); protocol in
  :mod:`engine.metrics.twosample`.
- :func:`functional_errors`: mean / variance / autocorrelation / spectrum errors
  (:mod:`engine.metrics.functional`).
- :func:`evaluate_function_samples`: both, at the paper's block size and larger balanced ones,
  as a JSON-serialisable report (:mod:`engine.metrics.report`).
"""

from __future__ import annotations

from engine.metrics.functional import functional_errors, mean_autocorrelation, mean_power_spectrum
from engine.metrics.report import evaluate_function_samples
from engine.metrics.twosample import PowerResult, median_heuristic, mmd2_unbiased, mmd_power

__all__ = [
    "PowerResult",
    "evaluate_function_samples",
    "functional_errors",
    "mean_autocorrelation",
    "mean_power_spectrum",
    "median_heuristic",
    "mmd2_unbiased",
    "mmd_power",
]
