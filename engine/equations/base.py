"""The forward-equation interface, and the linear equations with a scalar mean (HDM-SDE).

Every equation the studio uses is linear, ``dX = B_t X dt + G_t dW``, with ``G_t G_t^* = g^2(t) Q``.
For the HDM-SDE family ``B_t = f(t) I``, so in any eigenbasis of Q each coordinate is a scalar
OU process and the marginal is closed form:

    X_t | X_0  ~  N( m(t) X_0,  s(t)^2 Q ),          x_t = m(t) x_0 + s(t) e,   e ~ N(0, Q)

with ``f = d/dt log m`` and ``g^2 = d/dt s^2 - 2 f s^2``. Then

- Q-preconditioned conditional score:  ``Q grad log p_t(x_t | x_0) = -(x_t - m x_0) / s^2 = -e / s``
  (no ``Q^{-1}`` needed: the network predicts the coloured noise ``e``);
- score operator (the paper's S):       ``S(t, u) = G_t G_t^* rho^{mu_t}(u) = g^2(t) Q grad log p_t(u)``;
- reverse drift (time-reversal formula): ``B_t u - S(t, u)`` integrated backward in t,
  i.e. ``Bhat_t(u) = -B_{T-t}(u) + S(T-t, u)`` in reversed time;
- probability-flow ODE drift:           ``B_t u - 1/2 S(t, u)``.

Equations are bound to a grid through their covariance (``GridCovariance``); binding the
same equation to another grid is how sampling becomes resolution-free.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch

from engine.errors import ConfigError
from engine.operators.covariance import GridCovariance
from engine.rng import SampleRNG


def append_dims(c: torch.Tensor, ndim: int) -> torch.Tensor:
    """Append trailing singleton axes to ``c`` (shape [B]) until it has ``ndim`` axes."""
    return c.reshape(c.shape + (1,) * (ndim - c.ndim))


def _bc(c: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A coefficient (float64, shape [B] or scalar) cast and shaped to broadcast against ``like``."""
    c = torch.as_tensor(c).to(dtype=like.dtype, device=like.device)
    return append_dims(c, like.ndim) if c.ndim else c


class Equation(ABC):
    """A linear forward equation bound to a covariance operator Q on one grid.

    Tensors are [B, C, *spatial]; times ``t`` are tensors of shape [B] (or scalars).
    """

    name: str
    T: float
    eps: float

    def __init__(self, Q: GridCovariance) -> None:
        self.Q = Q

    # -- coefficients ----------------------------------------------------------------------
    @abstractmethod
    def mean_coef(self, t: torch.Tensor) -> torch.Tensor:
        """``m(t)``: the marginal mean is ``m(t) x_0``."""

    @abstractmethod
    def std(self, t: torch.Tensor) -> torch.Tensor:
        """``s(t)``: the marginal covariance is ``s(t)^2 Q``."""

    @abstractmethod
    def drift_coef(self, t: torch.Tensor) -> torch.Tensor:
        """``f(t)`` with ``B_t = f(t) I``."""

    @abstractmethod
    def diffusion_sq(self, t: torch.Tensor) -> torch.Tensor:
        """``g(t)^2`` with ``G_t G_t^* = g(t)^2 Q``."""

    def max_drift_rate(self, t: torch.Tensor | float) -> torch.Tensor:
        """The fastest decay rate of the linear drift ``B_t`` over the modes at each time ``t`` (``|f(t)|``
        here), float64 like ``t``.

        An explicit (Euler) step ``h`` of the reverse equation amplifies that mode where ``h`` times this
        rate exceeds 2 (:func:`engine.samplers.check_explicit_stability`).
        """
        return self.drift_coef(torch.as_tensor(t, dtype=torch.float64)).abs()

    # -- the eigenbasis in which the coefficients are diagonal (identity here: scalar m, s) ----
    def to_modes(self, x: torch.Tensor) -> torch.Tensor:
        """Coordinates in the basis where ``m`` and ``s`` act diagonally (here: any basis)."""
        return x

    def from_modes(self, X: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_modes`."""
        return X

    def mode_coefs(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-mode ``(m_k(t), s_k(t))`` of ``x_t = M x_0 + S e``; scalars here."""
        return self.mean_coef(t), self.std(t)

    def broadcast_modes(self, c: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Shape per-mode coefficients from :meth:`mode_coefs` against modal tensors like ``like``."""
        return _bc(c, like)

    def scale_modes(self, c: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Per-mode coefficients ``c`` applied to ``u``: ``from_modes(c * to_modes(u))``."""
        return self.from_modes(self.broadcast_modes(c, u) * self.to_modes(u))

    def bind(self, Q: GridCovariance) -> Equation:
        """The same equation with Q on another grid."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.__dict__.pop("_rates", None)  # per-Q caches (engine.equations.spde)
        clone.Q = Q
        return clone

    # -- noise and marginals ---------------------------------------------------------------
    def sample_noise(self, rng: SampleRNG, shape: tuple[int, ...], dtype: torch.dtype = torch.float32
                     ) -> torch.Tensor:
        """``e ~ N(0, Q)`` per sample: shape [B, *shape], the last axis on Q's grid, drawn in ``dtype``
        (samplers pass their state's, see :func:`engine.samplers.sample_noise`)."""
        return self.Q.sqrt_apply(rng.randn(*shape, dtype=dtype))

    def perturb(self, x0: torch.Tensor, t: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """``x_t = m(t) x_0 + s(t) e`` (the closed-form marginal, given coloured noise e)."""
        return _bc(self.mean_coef(t), x0) * x0 + _bc(self.std(t), x0) * e

    def prior_sample(self, rng: SampleRNG, shape: tuple[int, ...], dtype: torch.dtype = torch.float32
                     ) -> torch.Tensor:
        """A draw from the terminal law ``N(0, s(T)^2 Q)`` (the HDM prior; ``m(T) x_0`` is dropped), in ``dtype``."""
        t = torch.tensor(self.T, dtype=torch.float64)
        return float(self.std(t)) * self.sample_noise(rng, shape, dtype)

    def transition(self, t_from: torch.Tensor, t_to: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact forward transition ``x_{t_to} = a x_{t_from} + sqrt(v) e`` for t_from < t_to, e ~ N(0, Q)."""
        a = self.mean_coef(t_to) / self.mean_coef(t_from)
        v = self.std(t_to) ** 2 - a**2 * self.std(t_from) ** 2
        return a, v.clamp_min(0.0)

    # -- scores ----------------------------------------------------------------------------
    def q_score_from_noise(self, e_hat: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``Q grad log p_t`` from a prediction of the coloured noise: ``-e_hat / s(t)``."""
        return -e_hat / _bc(self.std(t), e_hat)

    def conditional_q_score(self, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``Q grad log p_t(x_t | x_0) = -(x_t - m x_0) / s^2``: the regression target of DSM."""
        m = _bc(self.mean_coef(t), x_t)
        s = _bc(self.std(t), x_t)
        return -(x_t - m * x0) / s**2

    def denoise(self, x_t: torch.Tensor, e_hat: torch.Tensor, t: torch.Tensor, snr_floor: float = 0.0
                ) -> torch.Tensor:
        """Tweedie's estimate of ``x_0``: ``(x_t - s e_hat) / m``; 0 (the normalised data mean) where
        ``m / s < snr_floor`` (see :func:`engine.samplers.tweedie_x0`)."""
        m = _bc(self.mean_coef(t), x_t)
        s = _bc(self.std(t), x_t)
        x0 = (x_t - s * e_hat) / m
        return torch.where(m >= snr_floor * s, x0, 0.0) if snr_floor > 0 else x0

    def score_operator(self, q_score: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``S(t, u) = G_t G_t^* grad log mu_t(u) = g^2(t) Q grad log p_t(u)``."""
        return _bc(self.diffusion_sq(t), q_score) * q_score

    # -- drifts ----------------------------------------------------------------------------
    def drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Forward drift ``B_t x``."""
        return _bc(self.drift_coef(t), x) * x

    def reverse_drift(self, x: torch.Tensor, q_score: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``B_t x - S(t, x)``: the reverse SDE's drift in forward time (integrate with dt < 0)."""
        return self.drift(x, t) - self.score_operator(q_score, t)

    def ode_drift(self, x: torch.Tensor, q_score: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Probability-flow ODE drift ``B_t x - 1/2 S(t, x)``."""
        return self.drift(x, t) - 0.5 * self.score_operator(q_score, t)

    # -- exact steps used by the exponential-integrator samplers ---------------------------
    def posterior_step(self, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, s: torch.Tensor,
                       z_coloured: torch.Tensor) -> torch.Tensor:
        """Draw ``x_s ~ p(x_s | x_t, x_0)`` for s < t (Gaussian, exact per mode).

        With ``x_s = m_s x_0 + s_s e`` and ``x_t = a x_s + sqrt(v) e'``:
        precision ``1/s_s^2 + a^2/v``, mean ``var (m_s x_0 / s_s^2 + a x_t / v)`` (all times Q).
        """
        a, v = self.transition(s, t)
        m_s, s_s = self.mean_coef(s), self.std(s)
        var = 1.0 / (1.0 / s_s**2 + a**2 / v)
        c0 = var * m_s / s_s**2
        ct = var * a / v
        return (_bc(c0, x_t) * x0 + _bc(ct, x_t) * x_t
                + _bc(var.sqrt(), x_t) * z_coloured)

    def flow_step(self, x_t: torch.Tensor, e_hat: torch.Tensor, t: torch.Tensor, s: torch.Tensor,
                  x0: torch.Tensor | None = None) -> torch.Tensor:
        """Exponential-integrator step of the probability-flow ODE with ``e_hat`` held fixed (DDIM).

        ``x0``: the denoised estimate when the predictor gives it directly (numerically stable where
        ``m(t)`` is tiny); default :meth:`denoise`.
        """
        x0 = self.denoise(x_t, e_hat, t) if x0 is None else x0
        return _bc(self.mean_coef(s), x_t) * x0 + _bc(self.std(s), x_t) * e_hat

    def log_snr(self, t: torch.Tensor) -> torch.Tensor:
        """``log(m^2 / s^2)``: decreasing in t; used to space sampling times."""
        return 2 * (torch.log(self.mean_coef(t)) - torch.log(self.std(t)))


class VPEquation(Equation):
    """HDM-SDE, variance preserving: ``dX = -1/2 beta(t) X dt + sqrt(beta(t)) dW^Q``.

    ``m = alpha(t)``, ``s = sqrt(1 - alpha^2)``, ``f = -beta/2``, ``g^2 = beta``.
    """

    name = "vp"

    def __init__(self, Q: GridCovariance, schedule) -> None:
        super().__init__(Q)
        self.schedule = schedule
        self.T, self.eps = schedule.T, schedule.eps

    def mean_coef(self, t):
        return torch.exp(self.schedule.log_alpha(torch.as_tensor(t, dtype=torch.float64)))

    def std(self, t):
        return torch.sqrt(-torch.expm1(2 * self.schedule.log_alpha(torch.as_tensor(t, dtype=torch.float64))))

    def drift_coef(self, t):
        return -0.5 * self.schedule.beta(torch.as_tensor(t, dtype=torch.float64))

    def diffusion_sq(self, t):
        return self.schedule.beta(torch.as_tensor(t, dtype=torch.float64))


class SubVPEquation(VPEquation):
    """sub-VP (Song et al.): ``dX = -1/2 beta X dt + sqrt(beta (1 - alpha^4)) dW^Q``; ``s = 1 - alpha^2``."""

    name = "subvp"

    def std(self, t):
        return -torch.expm1(2 * self.schedule.log_alpha(torch.as_tensor(t, dtype=torch.float64)))

    def diffusion_sq(self, t):
        t = torch.as_tensor(t, dtype=torch.float64)
        return self.schedule.beta(t) * -torch.expm1(4 * self.schedule.log_alpha(t))


class VEEquation(Equation):
    """Variance exploding (the lecture notes' geometric schedule): ``dX = sqrt(d eta^2/dt) dW^Q``.

    ``eta(t) = eta_min (eta_max/eta_min)^{t/T}``; started at ``X_0`` the marginal is exactly
    ``N(X_0, (eta(t)^2 - eta_min^2) Q)``, so ``m = 1`` and ``s^2 = eta^2 - eta_min^2``.
    """

    name = "ve"

    def __init__(self, Q: GridCovariance, eta_min: float = 0.01, eta_max: float = 50.0, T: float = 1.0,
                 eps: float = 1e-3) -> None:
        super().__init__(Q)
        if not 0 < eta_min < eta_max:
            raise ConfigError(f"VE needs 0 < eta_min < eta_max, got {eta_min}, {eta_max}")
        if not 0 < eps < T:
            raise ConfigError(f"eps must lie in (0, T), got eps={eps}, T={T}")
        self.eta_min, self.eta_max, self.T, self.eps = eta_min, eta_max, T, eps
        self._rate = 2 * math.log(eta_max / eta_min) / T

    def _eta_sq(self, t):
        return self.eta_min**2 * torch.exp(self._rate * torch.as_tensor(t, dtype=torch.float64))

    def mean_coef(self, t):
        return torch.ones_like(torch.as_tensor(t, dtype=torch.float64))

    def std(self, t):
        return torch.sqrt(self._eta_sq(t) - self.eta_min**2)

    def drift_coef(self, t):
        return torch.zeros_like(torch.as_tensor(t, dtype=torch.float64))

    def diffusion_sq(self, t):
        return self._rate * self._eta_sq(t)


EQUATIONS: dict[str, str] = {
    "vp": "HDM-SDE, variance preserving (cosine or linear schedule)",
    "subvp": "sub-VP: VP drift with a smaller diffusion",
    "ve": "variance exploding with a geometric noise scale",
}


def make_equation(name: str, Q: GridCovariance, *, schedule: str = "cosine", T: float | None = None,
                  eps: float | None = None, beta_min: float = 0.1, beta_max: float = 20.0,
                  eta_min: float = 0.01, eta_max: float = 50.0) -> Equation:
    """Build a registered equation by name, bound to ``Q``."""
    from engine.equations.schedules import SCHEDULES, CosineSchedule, LinearSchedule

    if name not in EQUATIONS:
        raise ConfigError(f"unknown equation {name!r}; choose one of {', '.join(EQUATIONS)}")
    if name == "ve":
        return VEEquation(Q, eta_min, eta_max, T=1.0 if T is None else T, eps=1e-3 if eps is None else eps)
    if schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    kw = {k: v for k, v in (("T", T), ("eps", eps)) if v is not None}
    sched = CosineSchedule(**kw) if schedule == "cosine" else LinearSchedule(beta_min, beta_max, **kw)
    return (VPEquation if name == "vp" else SubVPEquation)(Q, sched)
