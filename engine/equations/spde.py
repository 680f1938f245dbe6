"""HDM-SPDE on images: the damped stochastic heat equation, exact per DCT mode.

    dX = -1/2 beta(t) (sigma I - Delta) X dt + sqrt(beta(t)) dW^Q,      Q = (sigma_Q I - Delta)^{-gamma}

with ``Delta`` the Neumann Laplacian on the H x W image (pixel spacing 1 unless told; its
eigenbasis is the orthonormal 2D DCT-II, eigenvalues ``-lambda_k``, see :mod:`engine.operators.dct`).
Tensors are [B, C, H, W]; every channel evolves independently with the same operators.

**Per mode.** With ``a_k = sigma + lambda_k``, ``q_k`` the eigenvalue of Q and
``tau(t) = 1/2 int_0^t beta = -log alpha(t)`` (the schedule's), DCT coefficient k solves the scalar OU
equation ``dx_k = -1/2 beta a_k x_k dt + sqrt(beta) q_k^{1/2} dW_k``, so

    x_k(t) | x_k(0) ~ N( m_k x_k(0), q_k shat_k^2 ),
    m_k(t) = exp(-tau a_k),     shat_k(t)^2 = (1 - exp(-2 tau a_k)) / a_k,

i.e. ``s_k^2 = q_k shat_k^2 = a_k^{-gamma} (1 - e^{-2 tau a_k}) / a_k`` for the HDM-SPDE's Q (check:
``d/dt (q shat^2) = -beta a q shat^2 + beta q``). In operator form, with ``M_t = e^{-tau(sigma I - Delta)}``
(a heat-dissipation blur of time ``tau``, damped by ``e^{-tau sigma}``) and ``Shat_t = shat(sigma I - Delta)``,
both commuting with Q:

    x_t = M_t x_0 + Shat_t e,        e ~ N(0, Q)          (the coloured noise a network predicts)

so ``Q grad log p_t(x_t | x_0) = -Q (Shat_t^2 Q)^{-1} Shat_t e = -Shat_t^{-1} e`` -- the scalar rule
``-e/s`` with ``s`` replaced by the operator ``Shat_t``; no ``Q^{-1}`` is needed. ``G_t G_t^* = beta(t) Q``
exactly, so ``g^2(t) = beta(t)`` is a true scalar and the score operator is ``S = beta(t) Q grad log p_t``.

**Scalars.** The base interface's ``mean_coef``/``std``/``drift_coef`` are scalars; here they are those of
the lowest mode (k = 0, the image mean, ``lambda_0 = 0``): ``m = alpha^sigma``,
``shat^2 = (1 - alpha^{2 sigma})/sigma``, ``f = -beta sigma/2``. They form a consistent scalar equation
(``f = d log m/dt``, ``g^2 = d shat^2/dt - 2 f shat^2``);
``log_snr`` (time spacing) uses them. All operations the samplers call act per mode through the DCT
(:meth:`mode_mean`, :meth:`mode_std`), the PC corrector's step included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from engine.equations.base import Equation, _bc
from engine.equations.schedules import CosineSchedule, HeatSchedule, LinearSchedule, Schedule
from engine.errors import ConfigError
from engine.operators.dct import dct2, dct_matrix, idct2, neumann_laplacian_eigenvalues
from engine.rng import SampleRNG


# -- covariance operators on an H x W image --------------------------------------------------
class ImageCovariance:
    """A covariance Q on H x W images that is diagonal in the 2D DCT-II basis.

    ``Q = D^T diag(q) D`` with ``D`` the orthonormal 2D DCT; acts on the last two axes of
    [..., H, W]. ``spectrum`` holds ``q`` at [m, n] for DCT mode (m, n). ``laplacian`` holds the
    Neumann ``-Delta`` eigenvalues ``lambda_mn`` on the same layout (for the equations' drift).
    """

    def __init__(self, H: int, W: int, spectrum: torch.Tensor, *, white: bool, pixel_size: float = 1.0,
                 description: str = "") -> None:
        if H < 1 or W < 1:
            raise ConfigError(f"image size must be positive, got {H}x{W}")
        spectrum = torch.as_tensor(spectrum, dtype=torch.float64)
        if spectrum.shape != (H, W) or not bool(torch.all(spectrum > 0)):
            raise ConfigError(f"the spectrum must be positive with shape ({H}, {W})")
        self.H, self.W, self.white, self.pixel_size = int(H), int(W), white, float(pixel_size)
        self.spectrum = spectrum
        self.description = description
        self._cache: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    @property
    def shape(self) -> tuple[int, int]:
        return (self.H, self.W)

    @property
    def n(self) -> int:
        return self.H * self.W

    @cached_property
    def laplacian(self) -> torch.Tensor:
        """``lambda_mn = (pi m/H)^2 + (pi n/W)^2`` (pixel spacing ``pixel_size``), float64 [H, W]."""
        return neumann_laplacian_eigenvalues(self.H, self.W, pixel_size=self.pixel_size)

    def _sqrt(self, like: torch.Tensor) -> torch.Tensor:
        key = (like.device, like.dtype)
        if key not in self._cache:
            self._cache[key] = self.spectrum.sqrt().to(device=like.device, dtype=like.dtype)
        return self._cache[key]

    def _check(self, u: torch.Tensor) -> None:
        if tuple(u.shape[-2:]) != self.shape:
            raise ConfigError(f"this noise operator is for {self.H}x{self.W} images, got a tensor of shape "
                              f"{tuple(u.shape)}")

    def eigenvalues(self) -> np.ndarray:
        """Eigenvalues of Q, decreasing, float64 [H W]."""
        return np.sort(self.spectrum.numpy().reshape(-1))[::-1].copy()

    def matrix(self) -> np.ndarray:
        """Dense Q on the flattened image (row-major), float64 [HW, HW]; tests and tiny images only."""
        if self.n > 4096:
            raise ConfigError(f"a dense {self.n}x{self.n} matrix is too large; use apply()")
        d = torch.kron(dct_matrix(self.H), dct_matrix(self.W))  # 2D DCT of the flattened image
        return ((d.T * self.spectrum.reshape(-1)) @ d).numpy()

    def sqrt_apply(self, z: torch.Tensor) -> torch.Tensor:
        """``Q^{1/2} z`` for z of shape [..., H, W]: maps white noise to N(0, Q)."""
        self._check(z)
        if self.white:
            return z * self._sqrt(z)[0, 0]
        return idct2(dct2(z) * self._sqrt(z))

    def apply(self, u: torch.Tensor) -> torch.Tensor:
        """``Q u`` for u of shape [..., H, W]."""
        self._check(u)
        if self.white:
            return u * self._sqrt(u)[0, 0] ** 2
        return idct2(dct2(u) * self._sqrt(u) ** 2)


@dataclass(frozen=True)
class WhiteImageCovariance:
    """Q = gain I on images (the DDPM baseline), independent of the image size."""

    gain: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.gain) and self.gain > 0):
            raise ConfigError(f"noise gain must be a positive number, got {self.gain}")

    def on_image(self, H: int, W: int, pixel_size: float = 1.0) -> ImageCovariance:
        spec = torch.full((H, W), float(self.gain), dtype=torch.float64)
        return ImageCovariance(H, W, spec, white=True, pixel_size=pixel_size, description=f"white, gain {self.gain}")


@dataclass(frozen=True)
class HeatImageCovariance:
    """Q = (sigma I - Delta)^{-gamma} (Neumann), the HDM-SPDE's noise; gamma = 0 is white."""

    sigma: float = 1.0
    gamma: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise ConfigError(f"sigma must be a positive number, got {self.sigma}")
        if not (math.isfinite(self.gamma) and self.gamma >= 0):
            raise ConfigError(f"gamma must be a number >= 0, got {self.gamma}")

    def on_image(self, H: int, W: int, pixel_size: float = 1.0) -> ImageCovariance:
        lam = neumann_laplacian_eigenvalues(H, W, pixel_size=pixel_size)
        spec = (self.sigma + lam) ** (-self.gamma)
        return ImageCovariance(H, W, spec, white=self.gamma == 0, pixel_size=pixel_size,
                               description=f"(sigma I - Laplacian)^-gamma, sigma {self.sigma}, gamma {self.gamma}")


# -- the equation ------------------------------------------------------------------------------
def _modes(c: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-mode coefficients ``c`` (shape t.shape + [H, W]) cast and shaped against ``like`` [B, ..., H, W]."""
    c = c.to(dtype=like.dtype, device=like.device)
    if c.ndim > 2:  # [B, H, W] -> [B, 1, ..., 1, H, W]
        c = c.reshape(c.shape[:-2] + (1,) * (like.ndim - c.ndim) + c.shape[-2:])
    return c


class SPDEEquation(Equation):
    """HDM-SPDE ``dX = -1/2 beta(t)(sigma I - Delta) X dt + sqrt(beta(t)) dW^Q`` on [B, C, H, W] images.

    ``Q`` is any :class:`ImageCovariance` (normally ``HeatImageCovariance(sigma, gamma)``); ``sigma`` is
    the drift's damping (> 0). See the module docstring for the closed forms.
    """

    name = "hdm_spde"

    def __init__(self, Q: ImageCovariance, schedule: Schedule, sigma: float = 1.0) -> None:
        if not isinstance(Q, ImageCovariance):
            raise ConfigError("HDM-SPDE needs an image noise operator (ImageCovariance), not a 1D grid's")
        if not (math.isfinite(sigma) and sigma > 0):
            raise ConfigError(f"sigma must be a positive number, got {sigma}")
        super().__init__(Q)
        self.schedule, self.sigma = schedule, float(sigma)
        self.T, self.eps = schedule.T, schedule.eps

    # -- per-mode coefficients (float64, shape t.shape + [H, W]) -----------------------------
    def _tau(self, t: torch.Tensor) -> torch.Tensor:
        """``tau(t) = 1/2 int_0^t beta = -log alpha(t)``."""
        return -self.schedule.log_alpha(torch.as_tensor(t, dtype=torch.float64))

    def rates(self, device: torch.device | str | None = None) -> torch.Tensor:
        """``a_k = sigma + lambda_k``, float64 [H, W] (on ``device``, cached per device)."""
        device = torch.device("cpu") if device is None else torch.device(device)
        cache = self.__dict__.setdefault("_rates", {})
        if device not in cache:
            cache[device] = (self.sigma + self.Q.laplacian).to(device)
        return cache[device]

    def mode_mean(self, t: torch.Tensor) -> torch.Tensor:
        """``m_k(t) = exp(-tau(t) a_k)``."""
        tau = self._tau(t)
        return torch.exp(-tau[..., None, None] * self.rates(tau.device))

    def mode_std(self, t: torch.Tensor) -> torch.Tensor:
        """``shat_k(t) = sqrt((1 - exp(-2 tau a_k)) / a_k)``: x_t's covariance is ``Shat^2 Q``."""
        a = self.rates(torch.as_tensor(t).device)
        return torch.sqrt(-torch.expm1(-2 * self._tau(t)[..., None, None] * a) / a)

    def mode_variance(self, t: torch.Tensor) -> torch.Tensor:
        """``s_k^2 = q_k shat_k^2``: the per-mode variance of ``x_t | x_0``."""
        sd = self.mode_std(t)
        return self.Q.spectrum.to(sd.device) * sd**2

    # -- the modal interface used by the preconditioning (engine.objectives) -------------------
    def to_modes(self, x: torch.Tensor) -> torch.Tensor:
        return dct2(x)

    def from_modes(self, X: torch.Tensor) -> torch.Tensor:
        return idct2(X)

    def mode_coefs(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mode_mean(t), self.mode_std(t)

    def broadcast_modes(self, c: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return _modes(c, like)

    # -- scalar coefficients: the lowest mode's (see module docstring) ------------------------
    def mean_coef(self, t):
        return torch.exp(-self.sigma * self._tau(t))

    def std(self, t):
        return torch.sqrt(-torch.expm1(-2 * self.sigma * self._tau(t)) / self.sigma)

    def drift_coef(self, t):
        return -0.5 * self.sigma * self.schedule.beta(torch.as_tensor(t, dtype=torch.float64))

    def diffusion_sq(self, t):
        """``g^2 = beta(t)``: exact for every mode (``G G^* = beta Q``)."""
        return self.schedule.beta(torch.as_tensor(t, dtype=torch.float64))

    # -- noise and marginals ------------------------------------------------------------------
    def perturb(self, x0: torch.Tensor, t: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """``x_t = M_t x_0 + Shat_t e`` (per mode ``m_k x0_k + shat_k e_k``), e ~ N(0, Q)."""
        return idct2(_modes(self.mode_mean(t), x0) * dct2(x0) + _modes(self.mode_std(t), e) * dct2(e))

    def denoise(self, x_t: torch.Tensor, e_hat: torch.Tensor, t: torch.Tensor, snr_floor: float = 0.0
                ) -> torch.Tensor:
        """Tweedie's ``x_0 = M_t^{-1}(x_t - Shat_t e_hat)``, the exact inverse of :meth:`perturb`.

        Per mode the division is by ``max(m_k, sqrt(tiny))`` (``tiny`` of the dtype: 1e-19 for float32,
        1e-154 for float64), which only bites for modes whose signal is below the dtype's range
        (e.g. the highest modes at T in float32), where it keeps the result finite. Modes whose
        signal-to-noise ratio ``m_k / shat_k`` is below ``snr_floor`` are set to 0 instead (see
        :func:`engine.samplers.tweedie_x0`), in the modes: zeroed after the way back to pixels, their
        huge values would leak into every other mode by round-off.
        """
        m, sd = _modes(self.mode_mean(t), x_t), _modes(self.mode_std(t), x_t)
        X0 = (dct2(x_t) - sd * dct2(e_hat)) / m.clamp_min(torch.finfo(x_t.dtype).tiny ** 0.5)
        if snr_floor > 0:
            X0 = torch.where(m >= snr_floor * sd, X0, 0.0)
        return idct2(X0)

    def prior_sample(self, rng: SampleRNG, shape: tuple[int, ...], dtype: torch.dtype = torch.float32
                     ) -> torch.Tensor:
        """A draw from the HDM prior ``N(0, Shat_T^2 Q)`` (the exact marginal at T less ``M_T x_0``)."""
        e = self.sample_noise(rng, shape, dtype)
        t = torch.tensor(self.T, dtype=torch.float64)
        return idct2(_modes(self.mode_std(t), e) * dct2(e))

    def transition(self, t_from: torch.Tensor, t_to: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per mode ``x_k(t_to) = a_k x_k(t_from) + sqrt(v_k) e_k`` (e ~ N(0, Q)), t_from < t_to.

        ``a_k = exp(-(tau_to - tau_from) a_k)``, ``v_k = (1 - exp(-2 (tau_to - tau_from) a_k)) / a_k``;
        shapes t.shape + [H, W].
        """
        d = (self._tau(t_to) - self._tau(t_from))[..., None, None]
        rate = self.rates(d.device)
        return torch.exp(-d * rate), (-torch.expm1(-2 * d * rate) / rate).clamp_min(0.0)

    # -- scores -------------------------------------------------------------------------------
    def q_score_from_noise(self, e_hat: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``Q grad log p_t = -Shat_t^{-1} e_hat``."""
        return -idct2(dct2(e_hat) / _modes(self.mode_std(t), e_hat))

    def conditional_q_score(self, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``Q grad log p_t(x_t | x_0) = -Shat_t^{-2} (x_t - M_t x_0)`` (the covariance is ``Shat^2 Q``)."""
        r = dct2(x_t) - _modes(self.mode_mean(t), x0) * dct2(x0)
        return -idct2(r / _modes(self.mode_std(t), x_t) ** 2)

    def score_operator(self, q_score: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``S(t, u) = G_t G_t^* grad log p_t(u) = beta(t) Q grad log p_t(u)``."""
        return _bc(self.diffusion_sq(t), q_score) * q_score

    # -- drifts -------------------------------------------------------------------------------
    def max_drift_rate(self, t: torch.Tensor | float) -> torch.Tensor:
        """``1/2 beta(t) max_k a_k``: the fastest mode's decay rate (the finest DCT mode's)."""
        return 0.5 * self.schedule.beta(torch.as_tensor(t, dtype=torch.float64)) * float(self.rates().max())

    def drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``B_t x = -1/2 beta(t) (sigma I - Delta) x`` (per mode ``-1/2 beta a_k x_k``)."""
        beta = self.schedule.beta(torch.as_tensor(t, dtype=torch.float64))
        return idct2(_modes(-0.5 * beta[..., None, None] * self.rates(beta.device), x) * dct2(x))

    # -- exact steps ---------------------------------------------------------------------------
    def posterior_step(self, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, s: torch.Tensor,
                       z_coloured: torch.Tensor) -> torch.Tensor:
        """Draw ``x_s ~ p(x_s | x_t, x_0)`` per mode, s < t, ``z_coloured ~ N(0, Q)``.

        With ``a, v`` the transition s -> t: variance ``shat_s^2 v / shat_t^2`` (times q_k), mean
        ``(m_s v / shat_t^2) x_0 + (a shat_s^2 / shat_t^2) x_t`` (the precision form, written without 1/v).
        """
        a, v = self.transition(s, t)
        m_s, sd_s, sd_t = self.mode_mean(s), self.mode_std(s), self.mode_std(t)
        c0 = m_s * v / sd_t**2
        ct = a * sd_s**2 / sd_t**2
        sd = sd_s * v.sqrt() / sd_t
        out = _modes(c0, x_t) * dct2(x0) + _modes(ct, x_t) * dct2(x_t) + _modes(sd, x_t) * dct2(z_coloured)
        return idct2(out)

    def flow_step(self, x_t: torch.Tensor, e_hat: torch.Tensor, t: torch.Tensor, s: torch.Tensor,
                  x0: torch.Tensor | None = None) -> torch.Tensor:
        """DDIM per mode: ``x_s = M_s x_0_hat + Shat_s e_hat`` with ``e_hat`` held fixed."""
        x0 = self.denoise(x_t, e_hat, t) if x0 is None else x0
        return idct2(_modes(self.mode_mean(s), x_t) * dct2(x0) + _modes(self.mode_std(s), x_t) * dct2(e_hat))

    def log_snr(self, t: torch.Tensor) -> torch.Tensor:
        """The lowest mode's ``log(m_0^2 / shat_0^2)`` (decreasing in t; every mode's is below it)."""
        return 2 * (torch.log(self.mean_coef(t)) - torch.log(self.std(t)))


class IHDMEquation(SPDEEquation):
    """Inverse heat dissipation (Rissanen et al. 2023) written as a linear SPDE, so that the score machinery applies.

    IHDM blurs an image with the heat semigroup ``exp(tau Delta)`` (``tau = sigma_B^2 / 2``, sigma_B log-spaced
    from ``blur_min`` to ``blur_max`` px: :class:`HeatSchedule`) and adds a small white noise of level
    ``noise``. Here that is the undamped heat equation driven by a rough Wiener process,

        dX = Delta X dtau + noise * sqrt(2 (delta I - Delta)) dW,            (tau = tau(t))

    i.e. :class:`SPDEEquation` with damping ``delta`` (tiny) and ``Q = noise^2 (delta I - Delta)``. Per DCT mode
    ``x_k(t) | x_0 ~ N(exp(-tau (delta + lambda_k)) x0_k, noise^2 (1 - exp(-2 tau (delta + lambda_k))))``: the
    mean is IHDM's blur and the noise level is IHDM's ``noise`` on every mode the blur has already reached
    (it only vanishes, as it must for a process started at x_0, on modes not yet blurred).

    **What it does not forget.** The image mean (mode 0, ``lambda_0 = 0``) decays only by
    ``exp(-tau_T delta)`` ~ 1 and gets almost no noise, so the law at T is *not* a Gaussian: it is the law of
    the maximally blurred training images plus noise. Only the ``ihdm`` prior (those blurred images plus noise)
    is valid for this equation; :meth:`prior_sample` refuses.
    """

    name = "ihdm"

    def __init__(self, H: int, W: int, schedule: HeatSchedule, noise: float = 0.01, delta: float = 1e-4,
                 pixel_size: float = 1.0) -> None:
        if not (math.isfinite(noise) and noise > 0):
            raise ConfigError(f"the IHDM noise level must be a positive number, got {noise}")
        lam = neumann_laplacian_eigenvalues(H, W, pixel_size=pixel_size)
        Q = ImageCovariance(H, W, noise**2 * (delta + lam), white=False, pixel_size=pixel_size,
                            description=f"IHDM: noise^2 (delta I - Laplacian), noise {noise}")
        super().__init__(Q, schedule, sigma=delta)
        self.noise = float(noise)

    def log_snr(self, t: torch.Tensor) -> torch.Tensor:
        """``-2 log sigma_B(t)``: spacing uniform in it is IHDM's log-spaced blur schedule (uniform in t)."""
        return -2 * torch.log(self.schedule.blur(torch.as_tensor(t, dtype=torch.float64)))

    def prior_sample(self, rng: SampleRNG, shape: tuple[int, ...], dtype: torch.dtype = torch.float32
                     ) -> torch.Tensor:
        raise ConfigError("the IHDM process never forgets the image mean, so its law at T is not Gaussian; "
                          "sample with the ihdm prior (maximally blurred training images plus noise)")


IMAGE_EQUATIONS: dict[str, str] = {
    "hdm_spde": "HDM-SPDE: damped stochastic heat equation, Q = (sigma I - Laplacian)^-gamma",
    "vp": "white-noise VP (DDPM baseline) on images",
    "ihdm": "inverse heat dissipation: heat blur on a log-spaced schedule plus small noise (IHDM)",
}


def make_image_equation(name: str, H: int, W: int, *, sigma: float = 1.0, gamma: float = 0.0,
                        schedule: str = "cosine", T: float | None = None, eps: float | None = None,
                        beta_min: float = 0.1, beta_max: float = 20.0, pixel_size: float = 1.0,
                        blur_min: float = 0.5, blur_max: float = 20.0, noise: float = 0.01) -> Equation:
    """An image equation by name: ``hdm_spde`` (Q = (sigma I - Delta)^-gamma), ``vp`` (Q = I) or ``ihdm``.

    ``pixel_size`` is the pixel spacing in units of the *training* pixel (0.5 when sampling at twice the
    training resolution), so the same continuous operators act on the same physical image.
    ``blur_min``/``blur_max`` (training pixels) and ``noise`` apply to ``ihdm`` only, which has its own schedule.
    """
    from engine.equations.base import VPEquation

    if name not in IMAGE_EQUATIONS:
        raise ConfigError(f"unknown image equation {name!r}; choose one of {', '.join(IMAGE_EQUATIONS)}")
    if name == "ihdm":
        kw = {k: v for k, v in (("T", T), ("eps", eps)) if v is not None}
        return IHDMEquation(H, W, HeatSchedule(blur_min, blur_max, **kw), noise,
                            pixel_size=pixel_size)
    if schedule not in ("cosine", "linear"):
        raise ConfigError(f"unknown schedule {schedule!r}; choose cosine or linear")
    kw = {k: v for k, v in (("T", T), ("eps", eps)) if v is not None}
    sched = CosineSchedule(**kw) if schedule == "cosine" else LinearSchedule(beta_min, beta_max, **kw)
    if name == "vp":
        return VPEquation(WhiteImageCovariance().on_image(H, W, pixel_size), sched)
    Q = HeatImageCovariance(sigma, gamma).on_image(H, W, pixel_size)
    return SPDEEquation(Q, sched, sigma)
