"""Sample-quality metrics for curves: kernel two-sample power and functional errors.

- :func:`mmd_power`: power (%) of the balanced-block MMD permutation test (the paper's
  headline metric, without the reference code's block-size defect); protocol in
  :mod:`engine.metrics.twosample`.
- :func:`functional_errors`: mean / variance / autocorrelation / spectrum errors
  (:mod:`engine.metrics.functional`).
- :func:`evaluate_function_samples`: both, at the paper's block size and larger balanced ones,
  as a JSON-serialisable report (:mod:`engine.metrics.report`).

Images (:mod:`engine.metrics.images`, :mod:`engine.metrics.classifier`): Frechet distance and KID in
the features of a small deterministic classifier trained in-project, pixel sliced Wasserstein,
radial power-spectrum error, nearest-neighbour memorisation: :func:`evaluate_image_samples`.
"""

from __future__ import annotations

from engine.metrics.classifier import FeatureClassifier, load_classifier, train_classifier
from engine.metrics.functional import functional_errors, mean_autocorrelation, mean_power_spectrum
from engine.metrics.images import (
    KIDResult,
    evaluate_image_samples,
    frechet_distance,
    kernel_inception_distance,
    memorisation_summary,
    nearest_neighbour_distances,
    power_spectrum,
    sliced_wasserstein,
    spectrum_error,
)
from engine.metrics.report import evaluate_function_samples
from engine.metrics.twosample import MMD2Floor, PowerResult, median_heuristic, mmd2_floor, mmd2_unbiased, mmd_power

__all__ = [
    "FeatureClassifier",
    "KIDResult",
    "MMD2Floor",
    "PowerResult",
    "evaluate_function_samples",
    "evaluate_image_samples",
    "frechet_distance",
    "kernel_inception_distance",
    "load_classifier",
    "memorisation_summary",
    "nearest_neighbour_distances",
    "power_spectrum",
    "sliced_wasserstein",
    "spectrum_error",
    "train_classifier",
    "functional_errors",
    "mean_autocorrelation",
    "mean_power_spectrum",
    "median_heuristic",
    "mmd2_floor",
    "mmd2_unbiased",
    "mmd_power",
]
