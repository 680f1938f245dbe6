"""Reverse-time samplers, one signature for all.

``sampler(predict_noise, equation, x_T, ts, *, rng, callback=None, should_stop=None) -> x_0``

- ``predict_noise(x, t)`` returns the network's prediction of the coloured noise ``e``
  (so ``Q grad log p_t = -e_hat / s(t)``; see :mod:`engine.objectives`);
- ``ts`` runs from ``T`` down to ``eps`` (``len(ts) = steps + 1``, see :func:`time_grid`);
- ``rng`` is a :class:`~engine.rng.SampleRNG` (one stream per sample: sample k is the same
  whatever the batch);
- ``callback(StepInfo)`` is called after every step with the current state and the
  denoised estimate (the studio draws the live trajectory from it; the CLI a progress bar);
- ``should_stop()`` is checked before every step; when it returns True, :class:`Cancelled`.

The state keeps ``x_T``'s dtype, and noise is drawn in it for float64 states (:func:`sample_noise`), so an
exact-score experiment in float64 (:mod:`engine.equations.gaussian`) is float64 end to end.

After the last step the sample is denoised once more (Tweedie, ``x_0 = (x - s e_hat)/m``), as
is standard; pass ``denoise_final=False`` to keep the raw state at ``eps``.

**Stable denoising.** ``x_0 = M_t^{-1}(x - S_t e_hat)`` divides by ``m(t)``, which for the high modes of
the heat equations (HDM-SPDE near T, IHDM everywhere) is far below float precision: once ``e_hat`` is
formed, ``x - S_t e_hat`` is rounding noise and the division amplifies it without bound. A predictor may
therefore carry a ``both(x, t) -> (e_hat, x0_hat)`` attribute that computes the two from the network's
output directly (the ``v`` parameterisation does, see :mod:`engine.objectives`); samplers use it when present.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass

import torch

from engine.equations.base import Equation
from engine.errors import Cancelled, ConfigError
from engine.rng import SampleRNG

NoisePredictor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class StepInfo:
    """What a sampler reports after each step."""

    step: int  # 1-based
    total: int
    t: float  # the time reached
    x: torch.Tensor  # state at t, [B, C, n]
    x0: torch.Tensor  # denoised estimate at the step's start, [B, C, n]


Callback = Callable[[StepInfo], None] | None
ShouldStop = Callable[[], bool] | None


SPACINGS = ("uniform", "logsnr", "edm")
"""Time grids of :func:`time_grid`."""

EDM_RHO = 7.0
"""The exponent of the ``edm`` grid (Karras et al. 2022's choice for their ODE samplers)."""


def time_grid(equation: Equation, steps: int, spacing: str = "uniform", device="cpu") -> torch.Tensor:
    """Times from ``T`` to ``eps`` (``steps + 1`` points, float64).

    ``uniform`` in t; ``logsnr``: uniform in the log signal-to-noise ratio ``lambda = log(m^2/s^2)``,
    which puts steps where the sample changes most; ``edm``: the noise-to-signal ratio
    ``sigma = s/m = exp(-lambda/2)`` spaced uniformly in ``sigma^(1/7)`` (Karras et al. 2022), which
    spends more of a small budget near the data than ``logsnr`` does and fewer at the noisy end.
    """
    if not isinstance(steps, numbers.Integral) or isinstance(steps, bool) or steps < 1:
        raise ConfigError(f"the number of steps must be a positive integer, got {steps!r}")
    steps = int(steps)
    if spacing == "uniform":
        return torch.linspace(equation.T, equation.eps, steps + 1, dtype=torch.float64, device=device)
    if spacing not in SPACINGS:
        raise ConfigError(f"unknown time spacing {spacing!r}; choose one of {', '.join(SPACINGS)}")
    fine = torch.linspace(equation.T, equation.eps, 4001, dtype=torch.float64)
    lam = equation.log_snr(fine)  # increasing along ``fine``
    if spacing == "logsnr":
        targets = torch.linspace(float(lam[0]), float(lam[-1]), steps + 1, dtype=torch.float64)
    else:
        root = torch.exp(-lam[[0, -1]] / (2 * EDM_RHO))  # sigma^(1/rho) at T and at eps
        targets = -2 * EDM_RHO * torch.log(torch.linspace(float(root[0]), float(root[1]), steps + 1,
                                                          dtype=torch.float64))
    # Bracket each target between two points of the fine grid, then bisect: lambda is far from linear
    # in t near eps (about -2 log t), where interpolating between grid points misplaced the last step.
    idx = torch.searchsorted(lam.contiguous(), targets.contiguous()).clamp(1, fine.numel() - 1)
    a, b = fine[idx - 1], fine[idx]  # lambda(a) <= target <= lambda(b)
    for _ in range(60):
        mid = 0.5 * (a + b)
        below = equation.log_snr(mid) < targets
        a, b = torch.where(below, mid, a), torch.where(below, b, mid)
    ts = 0.5 * (a + b)
    ts[0], ts[-1] = equation.T, equation.eps
    return ts.to(device)


def _batch_t(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), float(t), dtype=torch.float64, device=x.device)


def _check(should_stop: ShouldStop) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled("sampling cancelled")


SNR_FLOOR = {dtype: torch.finfo(dtype).eps ** 0.5 for dtype in (torch.float16, torch.bfloat16, torch.float32,
                                                                 torch.float64)}


def tweedie_x0(equation: Equation, x_t: torch.Tensor, e_hat: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Tweedie's ``x0_hat = (x_t - s e_hat) / m``, set to 0 (the normalised data mean) in the modes whose
    signal-to-noise ratio ``m_k / s_k`` is below ``sqrt(eps)`` of the dtype.

    There ``x_t`` carries no information on ``x_0`` and ``(x_t - s e_hat) / m`` is round-off divided by a tiny
    ``m_k`` (HDM-SPDE's high modes near T: ``m_k`` down to 1e-43; IHDM's are 0 at T). A sampler's next step
    multiplies it by ``m_s / m_t``, far above 1 there: 50-step samples of exact-score HDM-SPDE images reached
    1e22, IHDM's NaN. The exact denoiser is ``O(m_k)`` in those modes, so nothing is lost. (Equations with one
    mean coefficient keep ``m / s`` at 0.008 or more: vp and subvp at T; there the floor changes nothing.)
    """
    return equation.denoise(x_t, e_hat, t, snr_floor=SNR_FLOOR[x_t.dtype])


def predict(predict_noise: NoisePredictor, equation: Equation, x: torch.Tensor, tb: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(e_hat, x0_hat)`` at times ``tb``: from the predictor's ``both`` when it has one, else by Tweedie
    (:func:`tweedie_x0`)."""
    both = getattr(predict_noise, "both", None)
    if both is not None:
        return both(x, tb.to(x.dtype))
    e_hat = predict_noise(x, tb.to(x.dtype))
    return e_hat, tweedie_x0(equation, x, e_hat, tb)


def noise_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a sampler draws its noise in for a state of ``dtype``: float64 for a float64 state (exact-score
    experiments keep every digit), float32 otherwise (float32 states, and half-precision ones, whose noise
    was always drawn in float32: their streams, hence their samples, are unchanged)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def sample_noise(equation: Equation, rng: SampleRNG, x: torch.Tensor) -> torch.Tensor:
    """One draw of ``e ~ N(0, Q)`` per row of the state ``x`` [B, *item], in :func:`noise_dtype` of ``x``'s dtype.

    How every sampler here draws its noise; a custom sampler should do the same, so that a float64 state gets
    float64 noise (``equation.sample_noise`` alone defaults to float32).
    """
    return equation.sample_noise(rng, tuple(x.shape[1:]), noise_dtype(x.dtype))


def _finish(predict_noise, equation, x, t_last, denoise_final):
    if not denoise_final:
        return x
    return predict(predict_noise, equation, x, _batch_t(t_last, x))[1]


EXPLICIT_PEAK_LOG10 = 7.0  # float32 holds about 7 digits: a mode amplified further on the way swamps the others
EXPLICIT_FINAL_LOG10 = 1.0  # amplified tenfold at the end: the errors dominate the sample (MNIST at 20 steps: 40-fold)


def explicit_amplification(equation: Equation, ts: torch.Tensor | list[float]) -> tuple[float, float]:
    """log10 of how much explicit (Euler) steps on the grid ``ts`` amplify the fastest mode: at its peak
    during the run and at the end.

    A step ``h`` multiplies a mode of decay rate ``r`` by ``|1 - h r|``: above 1 where ``h r > 2``. Near
    T the rates of stiff equations are large (IHDM at 28 x 28: ``1/2 beta(T) a_max`` about 27,000), so the
    first steps amplify; later ones contract again. Both figures matter: past a peak of about 1e7 the
    amplified mode has swamped the others at float32 precision (MNIST HDM-SPDE peaks at 1e6.5 with 25
    to 50 steps and still samples well), and growth that remains at the end dominates the sample.
    """
    times = torch.as_tensor(ts, dtype=torch.float64).cpu()
    factors = (1.0 - (times[:-1] - times[1:]).abs() * equation.max_drift_rate(times[:-1]).cpu()).abs()
    log_growth = torch.cumsum(torch.log10(factors.clamp_min(1e-300)), 0)
    return max(0.0, float(log_growth.max())), float(log_growth[-1])


def check_explicit_stability(equation: Equation, ts: torch.Tensor, name: str = "euler_maruyama") -> None:
    """ConfigError where explicit steps of the reverse equation on the grid ``ts`` blow up
    (:func:`explicit_amplification` past :data:`EXPLICIT_PEAK_LOG10` or :data:`EXPLICIT_FINAL_LOG10`);
    the message says about how many uniform steps would do. The exponential-integrator samplers take
    the linear part exactly and have no such limit.
    """
    peak, final = explicit_amplification(equation, ts)
    if peak < EXPLICIT_PEAK_LOG10 and final < EXPLICIT_FINAL_LOG10:
        return
    steps = len(ts) - 1

    def stable(n: int) -> bool:
        p, f = explicit_amplification(equation, time_grid(equation, n))
        return p < EXPLICIT_PEAK_LOG10 and f < EXPLICIT_FINAL_LOG10

    low, need = steps, 2 * steps  # the fewest uniform steps that pass: doubling, then bisection
    while need < 2**20 and not stable(need):
        low, need = need, 2 * need
    while need - low > max(1, need // 20):
        mid = (low + need) // 2
        low, need = (low, mid) if stable(mid) else (mid, need)
    raise ConfigError(f"{name} is unstable on this {equation.name} equation with {steps} steps: explicit steps "
                      f"amplify its fastest mode by 1e{max(peak, final):.0f} near t = T; it needs about {need} "
                      "uniform steps. Use exponential, dpm2m_sde or pc, which take the linear part exactly")


def euler_maruyama(predict_noise: NoisePredictor, equation: Equation, x: torch.Tensor, ts: torch.Tensor, *,
                   rng: SampleRNG, callback: Callback = None, should_stop: ShouldStop = None,
                   denoise_final: bool = True) -> torch.Tensor:
    """Euler–Maruyama on the reverse SDE: ``x <- x - h (B_t x - S(t, x)) + g(t) sqrt(h) Q^{1/2} z``.

    Explicit in the linear drift, so unstable with too few steps on stiff equations
    (:func:`check_explicit_stability`: IHDM needs over 10,000 uniform steps on 28 x 28 images).
    """
    check_explicit_stability(equation, ts)
    total = len(ts) - 1
    for i in range(total):
        _check(should_stop)
        t, t_next = ts[i], ts[i + 1]
        h = float(t - t_next)
        tb = _batch_t(t, x)
        e_hat, x0 = predict(predict_noise, equation, x, tb)
        q = equation.q_score_from_noise(e_hat, tb)
        g = float(equation.diffusion_sq(t)) ** 0.5
        x = x - h * equation.reverse_drift(x, q, tb) + g * h**0.5 * sample_noise(equation, rng, x)
        if callback is not None:
            callback(StepInfo(i + 1, total, float(t_next), x, x0))
    return _finish(predict_noise, equation, x, ts[-1], denoise_final)


def exponential(predict_noise: NoisePredictor, equation: Equation, x: torch.Tensor, ts: torch.Tensor, *,
                rng: SampleRNG, callback: Callback = None, should_stop: ShouldStop = None,
                denoise_final: bool = True) -> torch.Tensor:
    """Exponential integrator of the reverse SDE (the linear part exact per mode).

    Holding the denoised estimate ``x_0`` fixed over a step, the reverse SDE's solution is the
    Gaussian bridge ``p(x_s | x_t, x_0)`` of the forward equation, drawn exactly
    (:meth:`Equation.posterior_step`); for VP this is DDPM's ancestral step.
    """
    total = len(ts) - 1
    for i in range(total):
        _check(should_stop)
        t, s = ts[i], ts[i + 1]
        tb, sb = _batch_t(t, x), _batch_t(s, x)
        x0 = predict(predict_noise, equation, x, tb)[1]
        x = equation.posterior_step(x, x0, tb, sb, sample_noise(equation, rng, x))
        if callback is not None:
            callback(StepInfo(i + 1, total, float(s), x, x0))
    return _finish(predict_noise, equation, x, ts[-1], denoise_final)


def predictor_corrector(predict_noise: NoisePredictor, equation: Equation, x: torch.Tensor, ts: torch.Tensor,
                        *, rng: SampleRNG, callback: Callback = None, should_stop: ShouldStop = None,
                        denoise_final: bool = True, snr: float = 0.16, corrector_steps: int = 1
                        ) -> torch.Tensor:
    """Exponential-integrator predictor + Q-preconditioned Langevin corrector.

    The corrector runs ``x <- x + D Q grad log p_t(x) + sqrt(2 D) Q^{1/2} z``, Langevin dynamics
    preconditioned by ``D Q`` (any symmetric positive operator commuting with Q keeps p_t invariant). Its
    step follows score_sde's signal-to-noise rule in the Q^{-1/2}-whitened metric, where
    ``|Q grad log p| ~ sqrt(n)/s`` and ``|z| ~ sqrt(n)``: ``D = 2 (snr s(t))^2``, per mode of the
    equation's eigenbasis (``s_k`` of each DCT mode for HDM-SPDE: one scalar step would be far too large for
    the high modes, whose ``s_k`` is small, and made the corrector diverge there).
    """
    total = len(ts) - 1
    for i in range(total):
        _check(should_stop)
        t, s = ts[i], ts[i + 1]
        tb, sb = _batch_t(t, x), _batch_t(s, x)
        x0 = predict(predict_noise, equation, x, tb)[1]
        x = equation.posterior_step(x, x0, tb, sb, sample_noise(equation, rng, x))
        if i < total - 1:  # no corrector at eps, where s(t) ~ 0
            for _ in range(corrector_steps):
                e_hat = predict_noise(x, sb.to(x.dtype))
                q = equation.q_score_from_noise(e_hat, sb)
                delta = 2.0 * (snr * equation.mode_coefs(sb)[1]) ** 2  # per mode: [B] or [B, H, W]
                noise = sample_noise(equation, rng, x)
                x = x + equation.scale_modes(delta, q) + equation.scale_modes((2 * delta).sqrt(), noise)
        if callback is not None:
            callback(StepInfo(i + 1, total, float(s), x, x0))
    return _finish(predict_noise, equation, x, ts[-1], denoise_final)


def ode_heun(predict_noise: NoisePredictor, equation: Equation, x: torch.Tensor, ts: torch.Tensor, *,
             rng: SampleRNG, callback: Callback = None, should_stop: ShouldStop = None,
             denoise_final: bool = True) -> torch.Tensor:
    """Probability-flow ODE ``dx/dt = B_t x - 1/2 S(t, x)`` by Heun's method (2 evaluations a step)."""
    total = len(ts) - 1

    def velocity(x_, t_):
        tb = _batch_t(t_, x_)
        e_hat, x0_ = predict(predict_noise, equation, x_, tb)
        return equation.ode_drift(x_, equation.q_score_from_noise(e_hat, tb), tb), x0_

    for i in range(total):
        _check(should_stop)
        t, t_next = ts[i], ts[i + 1]
        h = float(t_next - t)  # negative
        v, x0 = velocity(x, t)
        x_pred = x + h * v
        v2, _ = velocity(x_pred, t_next)
        x = x + 0.5 * h * (v + v2)
        if callback is not None:
            callback(StepInfo(i + 1, total, float(t_next), x, x0))
    return _finish(predict_noise, equation, x, ts[-1], denoise_final)


def ddim(predict_noise: NoisePredictor, equation: Equation, x: torch.Tensor, ts: torch.Tensor, *,
         rng: SampleRNG, callback: Callback = None, should_stop: ShouldStop = None,
         denoise_final: bool = True) -> torch.Tensor:
    """Exponential integrator of the probability-flow ODE (DDIM / DPM-Solver-1): deterministic."""
    total = len(ts) - 1
    for i in range(total):
        _check(should_stop)
        t, s = ts[i], ts[i + 1]
        tb, sb = _batch_t(t, x), _batch_t(s, x)
        e_hat, x0 = predict(predict_noise, equation, x, tb)
        x = equation.flow_step(x, e_hat, tb, sb, x0=x0)
        if callback is not None:
            callback(StepInfo(i + 1, total, float(s), x, x0))
    return _finish(predict_noise, equation, x, ts[-1], denoise_final)


def _half_log_snr(equation: Equation, tb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per mode ``(lambda_k, m_k)`` at times ``tb``, with ``lambda_k = log(m_k / s_k)``."""
    m, sd = equation.mode_coefs(tb)
    return torch.log(m) - torch.log(sd), m


def _multistep_coef(m_s: torch.Tensor, lam_prev: torch.Tensor, lam_t: torch.Tensor, lam_s: torch.Tensor, *,
                    stochastic: bool) -> torch.Tensor:
    """Per-mode weight of ``x0_hat(t) - x0_hat(t_prev)`` in a DPM-Solver++(2M) step from t to s.

    With ``lambda_k = log(m_k / s_k)`` per mode, ``h = lambda(s) - lambda(t)`` and
    ``r = (lambda(t) - lambda(t_prev)) / h``, the second-order term is ``c / (2 r)`` with
    ``c = m_s (1 - e^{-h})`` (ODE) or ``m_s (1 - e^{-2h})`` (SDE): the first-order step's own weight of
    ``x0_hat``. Modes whose mean has underflowed (heat equations near T) carry no signal: their
    weight is set to 0 (a first-order step there) instead of the NaN of ``log 0``.
    """
    h, h_prev = lam_s - lam_t, lam_t - lam_prev
    c = m_s * -torch.expm1(-2 * h if stochastic else -h)
    return torch.nan_to_num(c * h / (2 * h_prev), nan=0.0, posinf=0.0, neginf=0.0)


def _dpm_solver_2m(predict_noise: NoisePredictor, equation: Equation, x: torch.Tensor, ts: torch.Tensor, *,
                   rng: SampleRNG, callback: Callback, should_stop: ShouldStop, denoise_final: bool,
                   stochastic: bool) -> torch.Tensor:
    total = len(ts) - 1
    # The last step, into eps, is first order whatever the step count. DPM-Solver++ does so below 15 steps only,
    # but on a grid uniform in t that step is about 8 times longer in lambda than the one before, and extrapolating
    # x0_hat that far spoilt the samples from 15 steps on. Exact covariance error (Gaussian data, exact score; the
    # test_samplers fixtures) at 15 steps, before -> after: dpm2m_sde 30 % -> 1.8 % (vp cosine), 49 % -> 6.5 %
    # (linear); dpm2m 16 % -> 1.4 % (linear), 6.0 % -> 6.2 % (cosine, the one case slightly worse); on the
    # default logsnr grid both agree to 0.1 %.
    x0_prev, lam_prev = None, None
    lam_t = _half_log_snr(equation, _batch_t(ts[0], x))[0]  # each step's lambda(s) is the next one's lambda(t)
    for i in range(total):
        _check(should_stop)
        t, s = ts[i], ts[i + 1]
        tb, sb = _batch_t(t, x), _batch_t(s, x)
        e_hat, x0 = predict(predict_noise, equation, x, tb)
        if stochastic:
            x_next = equation.posterior_step(x, x0, tb, sb, sample_noise(equation, rng, x))
        else:
            x_next = equation.flow_step(x, e_hat, tb, sb, x0=x0)
        lam_s, m_s = _half_log_snr(equation, sb)
        if x0_prev is not None and i < total - 1:
            coef = _multistep_coef(m_s, lam_prev, lam_t, lam_s, stochastic=stochastic)
            x_next = x_next + equation.scale_modes(coef, x0 - x0_prev)
        x0_prev, lam_prev, lam_t, x = x0, lam_t, lam_s, x_next
        if callback is not None:
            callback(StepInfo(i + 1, total, float(s), x, x0))
    return _finish(predict_noise, equation, x, ts[-1], denoise_final)


def dpm2m(predict_noise: NoisePredictor, equation: Equation, x: torch.Tensor, ts: torch.Tensor, *,
          rng: SampleRNG, callback: Callback = None, should_stop: ShouldStop = None,
          denoise_final: bool = True) -> torch.Tensor:
    """DPM-Solver++(2M) on the probability-flow ODE: second order, one evaluation a step, deterministic.

    :func:`ddim` (the exact linear part with ``x0_hat`` held fixed over a step) plus the multistep
    correction that makes ``x0_hat`` linear in ``lambda = log(m/s)`` over the step, from the previous
    step's estimate (Lu et al. 2022, "DPM-Solver++"). Written per mode of the equation's eigenbasis,
    so it holds for HDM-SPDE and IHDM, whose ``m`` and ``s`` differ per DCT mode. The first step has
    no history and is a ddim step; with fewer than 15 steps so is the last.
    """
    return _dpm_solver_2m(predict_noise, equation, x, ts, rng=rng, callback=callback, should_stop=should_stop,
                          denoise_final=denoise_final, stochastic=False)


def dpm2m_sde(predict_noise: NoisePredictor, equation: Equation, x: torch.Tensor, ts: torch.Tensor, *,
              rng: SampleRNG, callback: Callback = None, should_stop: ShouldStop = None,
              denoise_final: bool = True) -> torch.Tensor:
    """SDE-DPM-Solver++(2M): :func:`exponential` (the exact bridge, DDPM's ancestral step) plus the same
    second-order multistep correction of ``x0_hat``, weighted for the SDE (``1 - e^{-2h}``)."""
    return _dpm_solver_2m(predict_noise, equation, x, ts, rng=rng, callback=callback, should_stop=should_stop,
                          denoise_final=denoise_final, stochastic=True)


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "euler_maruyama": euler_maruyama,
    "exponential": exponential,
    "pc": predictor_corrector,
    "ode_heun": ode_heun,
    "ddim": ddim,
    "dpm2m": dpm2m,
    "dpm2m_sde": dpm2m_sde,
}
"""Samplers by name (the CLI's ``--sampler`` and the studio's list)."""

SAMPLER_DESCRIPTIONS = {
    "euler_maruyama": "Euler–Maruyama on the reverse SDE (the reference's sampler)",
    "exponential": "exponential integrator of the reverse SDE (exact linear part; DDPM ancestral)",
    "pc": "predictor–corrector: exponential predictor + Q-preconditioned Langevin corrector",
    "ode_heun": "probability-flow ODE, Heun's 2nd-order method (deterministic)",
    "ddim": "probability-flow ODE, exponential integrator (DDIM; deterministic)",
    "dpm2m": "probability-flow ODE, DPM-Solver++(2M): second order, 1 evaluation a step (deterministic)",
    "dpm2m_sde": "reverse SDE, SDE-DPM-Solver++(2M): the exponential step with a second-order correction",
}

EVALS_PER_STEP = {"euler_maruyama": 1, "exponential": 1, "pc": 2, "ode_heun": 2, "ddim": 1, "dpm2m": 1,
                  "dpm2m_sde": 1}

DEFAULT_SAMPLER = "dpm2m_sde"
"""What ``HDMModel.sample``, ``hdm sample`` and the studio use unless told (with 50 steps). Measured (CPU,
2026-12, ``hdm bench --sections quality``): at 50 network evaluations it is within a perfect generator's
MMD^2 spread on Quadratic (1000 and 5000 samples; just above it at 25 with 5000) and on Melbourne (from 25;
ddim needs 50 there, exponential 100), and leaves none of the end-point artifacts the ODE samplers leave
on Quadratic (3-8 curves in 1000); on MNIST (HDM-SPDE) it has the best FD at 50 evaluations (39 against
ddim's 52, exponential's 44). Motions use :data:`MODALITY_DEFAULT_SAMPLERS`."""

MODALITY_DEFAULT_SAMPLERS = {"motions": "exponential"}
"""Where another sampler is the default (:func:`default_sampler_for`). Motions: ``exponential``, the ancestral
step, leaves clips at least as smooth as dpm2m_sde at every budget measured (``hdm bench --sections quality``,
200 samples against 200 held-out walks, CPU, 2026-12, width 64, one seed). Walks trained with the capped
channel scale (2500 steps), exponential against dpm2m_sde at 10 / 25 / 50 evaluations: jerk 397 / 432 / 447
against 619 / 481 / 457 (the data's 111), joint-velocity power 4.8 / 5.8 / 6.3 % against 12 / 8.2 / 6.7 %,
trajectory power 4.7-5.2 % against 4.2-5.0 %; cmu07 (capped, 4000 steps, 26 held-out windows), at 50:
level (trajectory 40 % against 43 %, velocity 25 % against 20 %, jerk 254 against 260). On models trained
with each channel's own scale (checkpoints from before it) the gap is wide: walks, 10,000 steps, at 50,
velocity power 18 % against 63 %, jerk 759 against 942."""


def default_sampler_for(modality: str | None) -> str:
    """The sampler ``HDMModel.sample``, ``hdm sample`` and the studio use for a model of ``modality``."""
    return MODALITY_DEFAULT_SAMPLERS.get(modality or "", DEFAULT_SAMPLER)

DEFAULT_SPACING = {"ddim": "logsnr", "ode_heun": "logsnr", "dpm2m": "logsnr", "dpm2m_sde": "logsnr"}
"""The time grid each sampler uses unless one is asked for (others: ``uniform``); see :func:`default_spacing`."""


def default_spacing(sampler: str) -> str:
    """The time spacing a sampler uses by default: ``logsnr`` for the deterministic and second-order samplers.

    Their steps are exact, or second-order accurate, in ``lambda = log(m/s)``, so equal steps in
    ``lambda`` spread their error evenly (DPM-Solver's choice); ``uniform`` in t for the others.
    """
    return DEFAULT_SPACING.get(sampler, "uniform")


def get_sampler(name: str) -> Callable[..., torch.Tensor]:
    if name not in SAMPLERS:
        raise ConfigError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    return SAMPLERS[name]
