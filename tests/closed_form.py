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


class _BasisRNG:
    """A stand-in for :class:`engine.rng.SampleRNG` whose ``c``-th draw puts ``e_j`` in row ``1 + n + c n + j``."""

    def __init__(self, n: int, draws: int, shape: tuple[int, ...]) -> None:
        self.n, self.shape, self.calls = n, tuple(shape), 0
        self.rows = 1 + n + draws * n

    def __len__(self) -> int:
        return self.rows

    def randn(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        assert tuple(shape) == self.shape, (shape, self.shape)
        z = torch.zeros(self.rows, self.n, dtype=torch.float64)
        lo = 1 + self.n + self.calls * self.n
        z[lo:lo + self.n] = torch.eye(self.n, dtype=torch.float64)
        self.calls += 1
        return z.reshape(self.rows, *shape).to(dtype)


class _CountingRNG(_BasisRNG):
    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__(0, 0, shape)
        self.rows = 1

    def randn(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        self.calls += 1
        return torch.zeros(1, *shape, dtype=dtype)


def exact_output_law(sampler, predictor, equation: Equation, ts: torch.Tensor, shape: tuple[int, ...],
                     mean_T: np.ndarray, cov_T: np.ndarray, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a sampler's output, exactly, for an affine ``predictor`` (Gaussian data).

    The output is then affine in the start ``x_T ~ N(mean_T, cov_T)`` and the noise draws ``z_c ~ N(0, I)``:
    ``x_0 = b + A x_T + sum_c B_c z_c``. One batch of basis inputs (run in float64) gives ``b``, ``A`` and the
    ``B_c``, hence the law without Monte-Carlo noise: any error left is the sampler's discretisation.
    ``shape`` is one item's shape; the law is of the flattened item.
    """
    n = int(np.prod(shape))
    counting = _CountingRNG(tuple(shape))  # how many draws the sampler makes
    sampler(predictor, equation, torch.zeros(1, *shape, dtype=torch.float64), ts, rng=counting, **kwargs)
    rng = _BasisRNG(n, counting.calls, tuple(shape))
    x = torch.zeros(rng.rows, n, dtype=torch.float64)
    x[1:1 + n] = torch.eye(n, dtype=torch.float64)
    out = sampler(predictor, equation, x.reshape(rng.rows, *shape), ts, rng=rng, **kwargs)
    out = out.reshape(rng.rows, n).double()
    b = out[0]
    A = (out[1:1 + n] - b).T
    B = out[1 + n:] - b
    mean = b + A @ torch.as_tensor(mean_T, dtype=torch.float64)
    cov = A @ torch.as_tensor(cov_T, dtype=torch.float64) @ A.T + B.T @ B
    return mean.numpy(), cov.numpy()
