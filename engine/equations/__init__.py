"""Forward equations: closed-form marginals, score operator, reverse and ODE drifts, priors; and, for Gaussian
data, the exact law, score and sampler output law (:mod:`engine.equations.gaussian`)."""

from __future__ import annotations

from engine.equations.base import EQUATIONS, Equation, make_equation
from engine.equations.gaussian import GaussianNoisePredictor, exact_output_law, gaussian_marginal, prior_law
from engine.equations.schedules import SCHEDULES, Schedule

__all__ = ["EQUATIONS", "SCHEDULES", "Equation", "GaussianNoisePredictor", "Schedule", "exact_output_law",
           "gaussian_marginal", "make_equation", "prior_law"]
