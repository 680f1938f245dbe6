"""Exact score operators for Gaussian data: the closed-form oracle the tests drive samplers with."""

from __future__ import annotations

import numpy as np
import torch

from engine.equations.base import Equation


class GaussianNoiseOracle:
    """The exact coloured-noise predictor for data ``N(mu, C)`` under a scalar-mean equation.

    ``x_t ~ N(m mu, m^2 C + s^2 Q)`` so ``Q grad log p_t(x) = -Q Sigma_t^{-1} (x - m mu)`` and the
    ideal noise prediction is ``e_hat = -s Q grad log p_t = s Q Sigma_t^{-1} (x - m mu)``.
    """

    def __init__(self, equation: Equation, C: np.ndarray, mu: np.ndarray | None = None) -> None:
        self.eq = equation
        self.C = torch.as_tensor(C, dtype=torch.float64)
        self.Q = torch.as_tensor(equation.Q.matrix(), dtype=torch.float64)
        n = self.C.shape[0]
        self.mu = torch.zeros(n, dtype=torch.float64) if mu is None else torch.as_tensor(mu, dtype=torch.float64)
        self.calls = 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        t0 = torch.as_tensor(float(t.reshape(-1)[0]), dtype=torch.float64)
        m, s = float(self.eq.mean_coef(t0)), float(self.eq.std(t0))
        sigma = m**2 * self.C + s**2 * self.Q
        r = x.to(torch.float64) - m * self.mu
        sol = torch.linalg.solve(sigma, r.reshape(-1, r.shape[-1]).T).T  # Sigma^{-1} r
        e_hat = s * sol @ self.Q
        return e_hat.reshape(x.shape).to(x.dtype)
