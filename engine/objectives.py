"""Denoising score matching in H with coloured-noise prediction.

With ``x_t = m(t) x_0 + s(t) e``, ``e ~ N(0, Q)``, the Q-preconditioned conditional score is
``Q grad log p_t(x_t | x_0) = -e / s(t)``. The network ``F(x_t, t)`` predicts ``e`` and the
score estimate is ``-F / s(t)``. The loss

    L = E_{t ~ U(eps, T), x_0, e} [ |F(x_t, t) - e|^2 ]     (|.|^2 = mean over grid points and channels)

equals ``E[ s(t)^2 |Q grad log p_t - (-F/s)|^2 ]``: denoising score matching on the
Q-preconditioned score with the weighting ``lambda(t) = s(t)^2`` (Ho et al.'s "simple"
noise-prediction weighting, as in the reference code). The norm is the grid L2 norm divided by
the number of points, a Riemann sum of the L2(domain) norm, so the loss does not scale with
the resolution. No ``Q^{-1}`` appears anywhere.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from engine.equations.base import Equation

NoisePredictor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def sample_times(batch: int, equation: Equation, generator: torch.Generator, device: torch.device
                 ) -> torch.Tensor:
    """Training times ``t ~ U(eps, T)``, stratified over the batch (lower variance, same law)."""
    u = (torch.arange(batch, dtype=torch.float64) + torch.rand(batch, generator=generator, dtype=torch.float64))
    u = u[torch.randperm(batch, generator=generator)] / batch
    return (equation.eps + (equation.T - equation.eps) * u).to(device)


def dsm_loss(predict_noise: NoisePredictor, equation: Equation, x0: torch.Tensor, t: torch.Tensor,
             e: torch.Tensor) -> torch.Tensor:
    """Noise-prediction DSM loss for clean data ``x0`` [B, C, n], times ``t`` [B], noise ``e ~ N(0, Q)``."""
    x_t = equation.perturb(x0, t, e)
    return (predict_noise(x_t, t.to(x0.dtype)) - e).pow(2).mean()
