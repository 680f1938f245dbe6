"""Exact score operators for Gaussian data: a thin re-export of :mod:`engine.equations.gaussian` for older scripts.

``GaussianNoiseOracle(equation, C, mu)`` is :class:`~engine.equations.gaussian.GaussianNoisePredictor` without
``both`` (a plain noise predictor, its ``x0_hat`` formed by the samplers' Tweedie step), as it always was.
"""

from __future__ import annotations

from engine.equations.gaussian import GaussianNoisePredictor, exact_output_law, gaussian_marginal, prior_law


def GaussianNoiseOracle(equation, C, mu=None) -> GaussianNoisePredictor:  # noqa: N802 - the old class name
    """The exact noise predictor for data ``N(mu, C)`` (see :class:`GaussianNoisePredictor`)."""
    return GaussianNoisePredictor(equation, C, mu)


__all__ = ["GaussianNoiseOracle", "GaussianNoisePredictor", "exact_output_law", "gaussian_marginal", "prior_law"]
