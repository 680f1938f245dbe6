"""Forward equations: closed-form marginals, score operator, reverse and ODE drifts, priors."""

from __future__ import annotations

from engine.equations.base import EQUATIONS, Equation, make_equation
from engine.equations.schedules import SCHEDULES, Schedule

__all__ = ["EQUATIONS", "SCHEDULES", "Equation", "Schedule", "make_equation"]
