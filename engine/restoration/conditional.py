"""Restoration by conditional sampling: any sampler of :mod:`engine.samplers`, any equation, made conditional.

:func:`restore` draws ``x ~ p(x | y)`` approximately for ``y = A x + sigma_y n`` with a trained prior, by
changing only what the sampler is given, never the sampler:

``"replace"`` (DDNM, Wang et al. 2023, in the operator's natural basis; :mod:`engine.restoration.operators`).
    ``predict_noise`` is wrapped: from the network's ``e_hat`` the Tweedie estimate
    ``x0_hat = denoise(x_t, e_hat)`` is corrected towards the measurement,
    ``x0' = x0_hat + V (g * (ybar - V^T x0_hat))`` (``g = 1``: ``x0' = project(x0_hat, y)``), and the noise
    the sampler receives is the one that *implies* ``x0'``:

        e' = from_modes( (to_modes(x_t) - m * to_modes(x0')) / s ),      (m, s) = equation.mode_coefs(t),

    so ``denoise(x_t, e') = x0'`` exactly and every sampler (SDE, ODE, predictor–corrector) steps towards an
    estimate that agrees with ``y``; the final denoising returns ``x0'`` itself. The wrapper also carries
    ``both(x, t) -> (e', x0')``, which the samplers use, so ``x0'`` reaches them without a division by ``m``;
    ``x0_hat`` itself comes from the model's ``both`` when it has one (:mod:`engine.samplers`).

    *Noisy measurements* (``sigma_y > 0``) use the noise-aware gain of DDNM+ per observed component j:
    ``g_j = V_j / (V_j + sigma_y^2 / b_j^2)``, the measurement's precision against the current posterior
    scale. ``V_j`` is the variance of ``(V^T x_0)_j`` given ``x_t``, estimated *without* the data's prior as
    ``v_j(t) = diag(V^T Sigma_t V)_j`` with ``Sigma_t = Cov(x0_hat - x_0 | x_0) = M_t^{-1} S_t Q S_t M_t^{-1}``
    (exact in every equation's eigenbasis: ``v_j = sum_k (s_k/m_k)^2 (V_j . Q^{1/2} phi_k)^2`` over the
    equation's modes ``phi_k``; :class:`DenoisingCovariance`), or, when the option ``prior_variance`` ``c_j`` is
    given, as ``V_j = 1/(1/v_j + 1/c_j)``. Early on ``V_j >> sigma_y^2/b_j^2`` and ``g = 1`` (replacement); as
    t -> 0, ``g -> 0`` and the network's estimate is trusted over the noisy ``y``. (DDNM+ clips a scalar version
    of the same ratio, ``min(1, sigma_t / (a_t sigma_y))``, and also lowers the sampler's injected noise, which
    a predictor wrapper cannot do: here the measurement noise that ``g`` lets through is not compensated, and
    components the prior knows to be small but ``y`` measures poorly (a blur's high modes) pick up noise;
    ``prior_variance`` or a larger blur ``rcond`` prevents that.)

    *Metric* (option ``metric``). ``"operator"`` (default) corrects componentwise in the operator's basis, as
    above. ``"posterior"`` makes the correction the Gaussian conditioning of ``x_0 ~ N(x0_hat, Sigma_t)`` on
    ``y``, i.e. the projection onto ``{A x = y}`` in the ``Sigma_t^{-1}`` metric (a Kalman update with
    ``sigma_y``): ``x0' = x0_hat + Sigma_t V_O (V_O^T Sigma_t V_O + diag(sigma_y^2/b^2))^{-1} (ybar - V^T x0_hat)_O``
    (``O``: the observed components; a dense solve per channel and time). For the VP family
    ``Sigma_t ∝ Q``: the correction is kriging with the kernel Q, so the implied noise stays smooth instead of
    spiking at isolated observed points, which is what a model trained on coloured noise needs for pointwise
    tasks (tests and the report measure it). Both metrics coincide when ``V^T Sigma_t V`` is diagonal.

    **When it is exact.** The posterior diffusion's denoiser is ``E[x_0 | x_t, y]``; replacement supplies
    ``E[x_0 | x_t]`` corrected on the observed components. The two agree when ``x_0``'s observed and unobserved
    components are independent given ``x_t``, i.e. when the prior covariance ``C``, the noise covariance ``Q``
    and the equation's coefficients are all diagonal in the operator's basis: a Gaussian prior ``N(mu, C)``,
    pixel-diagonal ``C`` and white ``Q`` with a mask; DCT-diagonal ``C`` and ``Q`` with the heat blur (or any
    DCT-diagonal operator). Then, with the exact score and ``sigma_y = 0``, "replace" samples the exact
    posterior (observed components equal ``y``, unobserved ones keep their prior law), up to the sampler's
    discretisation error, as unconditional sampling does; with ``sigma_y > 0`` it does so when given the exact
    ``prior_variance``. Otherwise (a correlated prior, coloured ``Q`` with a mask, a trained network) it is an
    approximation: the unobserved components of ``x0_hat`` are not updated by ``y`` within a step (operator
    metric), or only as a flat-prior Gaussian would be (posterior metric), and learn of ``y`` through the
    next steps' network evaluations on the corrected state. tests/test_restoration.py measures both.

    A predictor without ``both`` (e.g. an exact Gaussian score) has ``x0_hat`` by Tweedie's division; where a
    mode's signal-to-noise ratio ``m_k / s_k`` is below ``sqrt(eps)`` of the dtype it is then taken as 0 before
    the correction (see :func:`engine.samplers.tweedie_x0`).

``"dps"`` (diffusion posterior sampling, Chung et al. 2023).
    After every sampler step the state is moved down the gradient of the measurement error of the denoised
    estimate at the step's start, through the network:

        x_{i+1} <- x_{i+1} - zeta / ||y - A x0_hat(x_i)|| * grad_{x_i} ||y - A x0_hat(x_i)||^2

    (per item; ``zeta`` the option, default 0.3). It needs autograd through the network (``restore`` must run
    outside ``torch.inference_mode``; a step costs about 3x an unconditional one) and is never exact: the
    likelihood ``p(y | x_t)`` is approximated by ``p(y | x0_hat(x_t))``, and ``zeta`` trades consistency with
    ``y`` for fidelity to the prior. It works for any operator and any noise level, and is applied through
    the samplers' per-step callback, which hands over the sampler's live state (:class:`~engine.samplers.StepInfo`
    ``x``); the update is made in place.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from engine.equations.base import Equation
from engine.errors import ConfigError
from engine.restoration.operators import Degradation
from engine.rng import SampleRNG
from engine.samplers import (
    SNR_FLOOR,
    Callback,
    NoisePredictor,
    ShouldStop,
    StepInfo,
    default_spacing,
    get_sampler,
    time_grid,
    tweedie_x0,
)

__all__ = ["METHODS", "METRICS", "DenoisingCovariance", "dps_guidance", "replacement_predictor", "restore"]

METHODS: dict[str, str] = {
    "replace": "replacement of the denoised estimate's measured part (DDNM; noise-aware DDNM+ gain for noisy y)",
    "dps": "diffusion posterior sampling: a gradient step on ||y - A x0_hat||^2 after every step",
}
_OPTIONS = {"replace": ("noise_std", "prior_variance", "metric"), "dps": ("zeta",)}
METRICS = ("operator", "posterior")
_MAX_PROBE_ENTRIES = 2**25  # modes x components of the dense variance table (128 MiB in float32)


def _estimates(predict_noise: NoisePredictor, equation: Equation, x: torch.Tensor, t: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(e_hat, x0_hat)``: from the predictor's ``both`` when it has one (computed from the network's output,
    never dividing by ``m``; :mod:`engine.samplers`), else ``e_hat`` and :func:`~engine.samplers.tweedie_x0`."""
    both = getattr(predict_noise, "both", None)
    if both is not None:
        return both(x, t)
    e_hat = predict_noise(x, t)
    return e_hat, tweedie_x0(equation, x, e_hat, t.to(torch.float64))


def _implied_noise(equation: Equation, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``e`` with ``x_t = M_t x0 + S_t e`` per mode: ``from_modes((to_modes(x_t) - m to_modes(x0)) / s)``."""
    m, s = equation.mode_coefs(t)
    X = equation.to_modes(x_t)
    X0 = equation.to_modes(x0)
    return equation.from_modes((X - equation.broadcast_modes(m, X) * X0) / equation.broadcast_modes(s, X))


class DenoisingCovariance:
    """``Sigma_t = Cov(x0_hat - x_0)`` of the prior-free Tweedie estimate, seen in the operator's basis.

    With ``x_t = M_t x_0 + S_t e``, ``e ~ N(0, Q)``, the estimate ``x0_hat = M_t^{-1}(x_t - S_t e)`` of a flat prior
    errs by ``M_t^{-1} S_t e``, so ``Sigma_t = M_t^{-1} S_t Q S_t M_t^{-1} = sum_k r_k(t) psi_k psi_k^T`` with
    ``psi_k = Q^{1/2} phi_k`` (``phi_k`` the equation's modes, ``from_modes`` of unit vectors) and
    ``r_k = (s_k / m_k)^2``, because ``M_t`` and ``S_t`` commute with ``Q``. The table
    ``P[k, c, j] = (V_j . psi_k)`` (component j of channel c) is built once by probing the operator with every
    ``psi_k`` (as many probes as an item has points per channel; Q acts on every channel alike). Then

    - :meth:`variance`   ``diag(V^T Sigma_t V)``, per component;
    - :meth:`covariance` ``V^T Sigma_t V`` per channel, [C, m_c, m_c];
    - :meth:`spread`     ``Sigma_t V alpha`` for coefficients ``alpha`` on the components.
    """

    def __init__(self, equation: Equation, degradation: Degradation, like: torch.Tensor) -> None:
        spatial = degradation.spatial
        C = degradation.shape[0]
        K = math.prod(spatial)
        probe = torch.zeros(1, C, *spatial, dtype=torch.float64, device=like.device)
        self.component_shape = tuple(degradation.components(probe).shape[1:])
        per_channel = math.prod(self.component_shape) // C
        if K * C * per_channel > _MAX_PROBE_ENTRIES:
            raise ConfigError(f"{degradation.task}: noise-aware or posterior-metric replacement needs a {K} x "
                              f"{C * per_channel} table, too large for items of shape {degradation.shape}; "
                              "use --noise 0 with the operator metric, or --method dps")
        eye = torch.eye(K, dtype=torch.float64, device=like.device).reshape(K, 1, *spatial)
        psi = equation.Q.sqrt_apply(equation.from_modes(eye))  # [K, 1, *spatial]
        self.psi = psi.reshape(K, K)  # row k: psi_k flattened
        self.P = degradation.components(psi.expand(K, C, *spatial)).reshape(K, C, per_channel)
        self.equation, self.spatial, self.C, self.K = equation, spatial, C, K

    def ratios(self, t: torch.Tensor) -> torch.Tensor:
        """``r_k(t) = (s_k / m_k)^2`` for times t [B], float64 [B, K]."""
        t = t.to(torch.float64)
        m, s = self.equation.mode_coefs(t)
        like = torch.zeros(t.shape[0], 1, *self.spatial, dtype=torch.float64, device=t.device)
        snr = self.equation.broadcast_modes(m, like) / self.equation.broadcast_modes(s, like)
        r = snr.clamp_min(SNR_FLOOR[torch.float64]) ** -2  # capped where x_t has no information (see tweedie_x0)
        return r.expand_as(like).reshape(t.shape[0], self.K)

    def variance(self, t: torch.Tensor) -> torch.Tensor:
        """``diag(V^T Sigma_t V)``, float64 [B, *component_shape]."""
        v = torch.einsum("bk,kcj->bcj", self.ratios(t), self.P**2)
        return v.reshape(t.shape[0], *self.component_shape)

    def covariance(self, t: float) -> torch.Tensor:
        """``V^T Sigma_t V`` within each channel at one time t, float64 [C, m_c, m_c]."""
        r = self.ratios(torch.tensor([t], dtype=torch.float64, device=self.P.device))[0]
        return torch.einsum("k,kci,kcj->cij", r, self.P, self.P)

    def spread(self, alpha: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``Sigma_t V alpha`` for alpha [B, *component_shape], float64 [B, C, *spatial]."""
        a = alpha.to(torch.float64).reshape(alpha.shape[0], self.C, -1)
        beta = self.ratios(t)[:, None, :] * torch.einsum("kcj,bcj->bck", self.P, a)
        return (beta @ self.psi).reshape(alpha.shape[0], self.C, *self.spatial)


def replacement_predictor(predict_noise: NoisePredictor, equation: Equation, degradation: Degradation,
                          y: torch.Tensor, *, noise_std: torch.Tensor | float | None = None,
                          prior_variance: torch.Tensor | float | None = None, metric: str = "operator"
                          ) -> NoisePredictor:
    """Wrap ``predict_noise`` for the ``"replace"`` method (see the module docstring).

    Args:
        y: the measurements [B, *measurement_shape], one per sample of the batch.
        noise_std: ``sigma_y`` in the units of ``y``: a number or a tensor broadcastable to the operator's
            components (e.g. [C, 1, ...] per channel); default ``degradation.noise``. Zero: exact replacement.
        prior_variance: ``c_j``, the prior variance of each component (number or broadcastable tensor); None
            for the prior-free gain. Operator metric only.
        metric: ``"operator"`` (componentwise, DDNM/DDNM+) or ``"posterior"`` (the ``Sigma_t^{-1}`` metric).
    """
    degradation.check_measurement(y)
    if metric not in METRICS:
        raise ConfigError(f"unknown replacement metric {metric!r}; choose one of {', '.join(METRICS)}")
    sigma = degradation.noise if noise_std is None else noise_std
    sigma = torch.as_tensor(sigma, dtype=torch.float64, device=y.device)
    if not bool(torch.all(torch.isfinite(sigma) & (sigma >= 0))):
        raise ConfigError("the measurement noise std must be finite and >= 0")
    noisy = bool(torch.any(sigma > 0))
    c = None
    if prior_variance is not None:
        if metric != "operator":
            raise ConfigError("prior_variance applies to the operator metric only")
        c = torch.as_tensor(prior_variance, dtype=torch.float64, device=y.device)
        if not bool(torch.all(c > 0)):
            raise ConfigError("prior_variance must be > 0 on every component")
    tiny = torch.finfo(torch.float64).tiny
    ybar = degradation.measured(y.to(torch.float64))
    cache: dict[str, Any] = {}

    def covariance() -> DenoisingCovariance:
        if "cov" not in cache:
            cache["cov"] = DenoisingCovariance(equation, degradation, ybar)
        return cache["cov"]

    def noise_var() -> torch.Tensor:
        """``sigma_y^2 / b_j^2`` per component (inf where unobserved), float64 [*component_shape]."""
        if "noise_var" not in cache:
            b = degradation.singular_values(ybar)
            var = (sigma / b.clamp_min(tiny)) ** 2 * torch.ones_like(b)
            cache["noise_var"] = torch.where(b > 0, var, torch.inf)
        return cache["noise_var"]

    def gain(t: torch.Tensor) -> torch.Tensor | float:
        """Operator metric: 1 (noiseless) or the DDNM+ gain ``V / (V + sigma_y^2 / b^2)`` per component."""
        if not noisy:
            return 1.0
        v = covariance().variance(t)
        if c is not None:
            v = 1.0 / (1.0 / v + 1.0 / c)
        total = v + noise_var()
        return torch.where(total > 0, v / total.clamp_min(tiny), 1.0)

    def factor(t: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior metric: LU factors of ``V_O^T Sigma_t V_O + diag(sigma_y^2 / b^2)`` per channel."""
        if t not in cache:
            G = covariance().covariance(t)
            obs = degradation.observed(ybar).reshape(G.shape[0], -1)
            both = obs[:, :, None] * obs[:, None, :]
            noise = torch.where(obs > 0, noise_var().reshape(obs.shape), 0.0) if noisy else torch.zeros_like(obs)
            G = G * both + torch.diag_embed(noise + (1.0 - obs))  # unobserved components decouple: alpha_j = 0
            cache[t] = torch.linalg.lu_factor(G)
        return cache[t]

    def corrected(x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if metric == "operator":
            g = gain(t)
            return degradation.correct(x0, y.to(x0.dtype), g if isinstance(g, float) else g.to(x0.dtype))
        obs = degradation.observed(ybar)
        r = ((ybar - degradation.components(x0.to(torch.float64))) * obs).reshape(x0.shape[0], covariance().C, -1)
        alpha = torch.empty_like(r)
        for value in torch.unique(t):
            rows = t == value
            lu, pivots = factor(float(value))
            alpha[rows] = torch.linalg.lu_solve(lu, pivots, r[rows].unsqueeze(-1)).squeeze(-1)
        return x0 + covariance().spread(alpha.reshape(x0.shape[0], *covariance().component_shape), t).to(x0.dtype)

    def both(x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tt = t.to(torch.float64)
        x0 = corrected(_estimates(predict_noise, equation, x, t)[1], tt)
        return _implied_noise(equation, x, x0, tt).to(x.dtype), x0.to(x.dtype)

    def predict(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return both(x, t)[0]

    predict.both = both  # type: ignore[attr-defined]  # the samplers take x0' from here, not by division
    return predict


def dps_guidance(predict_noise: NoisePredictor, equation: Equation, degradation: Degradation, y: torch.Tensor,
                 *, zeta: float = 0.3) -> tuple[NoisePredictor, Callable[[StepInfo], None]]:
    """The ``"dps"`` method as a predictor (records the guidance at each step's start) and a per-step hook.

    The predictor's first evaluation after each step computes ``e_hat`` with autograd, the residual
    ``r = y - A x0_hat(x)`` per item and ``delta = zeta grad_x ||r||^2 / ||r||``; the hook subtracts ``delta``
    from the sampler's new state in place. Further evaluations within a step (Heun's, the corrector's) and
    the final denoising run without autograd.
    """
    if not (isinstance(zeta, int | float) and zeta >= 0 and zeta == zeta and zeta != float("inf")):
        raise ConfigError(f"dps: zeta must be a finite number >= 0, got {zeta!r}")
    degradation.check_measurement(y)
    state: dict[str, Any] = {"delta": None, "armed": True}

    def both(x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not state["armed"]:
            with torch.no_grad():
                return _estimates(predict_noise, equation, x, t)
        state["armed"] = False
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            e, x0 = _estimates(predict_noise, equation, xg, t)
            r = (y.to(x0.dtype) - degradation.apply(x0)).reshape(x.shape[0], -1)
            sq = r.pow(2).sum(dim=1)
            (grad,) = torch.autograd.grad(sq.sum(), xg)
        norm = sq.detach().sqrt().clamp_min(torch.finfo(x.dtype).tiny)
        state["delta"] = zeta * grad / norm.reshape((-1,) + (1,) * (x.ndim - 1))
        return e.detach(), x0.detach()

    def predict(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return both(x, t)[0]

    predict.both = both  # type: ignore[attr-defined]

    def hook(info: StepInfo) -> None:
        if state["delta"] is not None:
            info.x.sub_(state["delta"].to(info.x.dtype))
            state["delta"] = None
        state["armed"] = info.step < info.total

    return predict, hook


def restore(predict_noise: NoisePredictor, equation: Equation, degradation: Degradation, y: torch.Tensor, *,
            method: str = "replace", sampler: str | Callable[..., torch.Tensor] = "ddim", steps: int = 50,
            rng: SampleRNG, x_shape: tuple[int, ...], spacing: str | None = None, callback: Callback = None,
            should_stop: ShouldStop = None, x_T: torch.Tensor | None = None, **method_options: Any) -> torch.Tensor:
    """Restore ``y`` by conditional sampling: one draw from (approximately) ``p(x | y)`` per sample of ``rng``.

    Args:
        predict_noise: ``e_hat(x, t)`` of the prior (a model's :meth:`noise_predictor`), in the units of ``y``.
        equation: the forward equation the predictor was trained with, bound to the items' grid or size.
        degradation: the operator ``A`` (and ``sigma_y = degradation.noise`` unless ``noise_std`` is given).
        y: measurements [B, *degradation.measurement_shape] (repeat an item's ``y`` for several draws).
        method: ``"replace"`` or ``"dps"`` (module docstring).
        sampler: a name of :data:`engine.samplers.SAMPLERS` or a sampler with their signature.
        steps: number of sampler steps; ``spacing``: ``uniform`` or ``logsnr`` (default: ``logsnr`` for the
            samplers in :data:`engine.samplers.DEFAULT_SPACING`, else ``uniform``, as :meth:`HDMModel.sample`).
        rng: one random stream per sample (B of them).
        x_shape: the item shape (C, *spatial); must be the degradation's.
        x_T: the starting state [B, *x_shape]; default ``equation.prior_sample(rng, x_shape)``.
        callback, should_stop: as for the samplers (``Cancelled`` is raised when ``should_stop()``).
        **method_options: ``replace``: ``noise_std``, ``prior_variance``, ``metric``; ``dps``: ``zeta``.

    Returns:
        The restorations [B, *x_shape], same dtype as ``y``.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown restoration method {method!r}; choose one of {', '.join(METHODS)}")
    unknown = sorted(set(method_options) - set(_OPTIONS[method]))
    if unknown:
        raise ConfigError(f"{method}: unknown option(s) {', '.join(unknown)}; it takes "
                          f"{', '.join(_OPTIONS[method])}")
    if tuple(x_shape) != degradation.shape:
        raise ConfigError(f"x_shape {tuple(x_shape)} is not the degradation's item shape {degradation.shape}")
    degradation.check_measurement(y)
    if y.shape[0] != len(rng):
        raise ConfigError(f"{y.shape[0]} measurements for {len(rng)} random streams; give one stream per sample")
    fn = get_sampler(sampler) if isinstance(sampler, str) else sampler
    name = sampler if isinstance(sampler, str) else getattr(sampler, "__name__", "")
    if spacing is None:
        spacing = default_spacing(name)
    ts = time_grid(equation, steps, spacing)  # on the CPU, as HDMModel.sample's: samplers read float(ts[i]), and
    # a device tensor there made the host wait for the GPU twice a step
    if x_T is None:
        x_T = equation.prior_sample(rng, tuple(x_shape))
    x_T = x_T.to(device=y.device, dtype=y.dtype)
    if tuple(x_T.shape) != (y.shape[0], *x_shape):
        raise ConfigError(f"x_T has shape {tuple(x_T.shape)}, expected {(y.shape[0], *x_shape)}")

    if method == "replace":
        predict = replacement_predictor(predict_noise, equation, degradation, y, **method_options)
        with torch.no_grad():  # not inference_mode: its tensors, once cached (DCT twiddles), break a later dps
            return fn(predict, equation, x_T, ts, rng=rng, callback=callback, should_stop=should_stop)

    if torch.is_inference_mode_enabled():
        raise ConfigError("dps differentiates through the network: call restore outside torch.inference_mode")
    predict, hook = dps_guidance(predict_noise, equation, degradation, y.clone(), **method_options)

    def on_step(info: StepInfo) -> None:
        hook(info)
        if callback is not None:
            callback(info)

    with torch.no_grad():
        return fn(predict, equation, x_T.clone(), ts, rng=rng, callback=on_step, should_stop=should_stop)

