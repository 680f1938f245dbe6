"""Generated curve sets on ``x = linspace(-10, 10, n)`` (the HDM reference grid).

Every generator draws split ``train`` from ``np.random.SeedSequence([seed, 0])`` and ``test`` from
``np.random.SeedSequence([seed, 1])``: two independent streams, so the splits never share a curve (beyond
chance) and each is reproducible. Per-curve parameters are drawn as whole vectors, each from its own child
stream, so the first k curves of a set of ``num`` are the same for every ``num >= k``.

- ``quadratic``: ``y = a x^2 + eps``, ``a = +1 or -1`` equiprobable, ``eps ~ N(0, 1)`` constant per curve
  (exactly the HDM paper's set); labels = a. Values are raw; the reference code feeds its network y / 50,
  here :class:`engine.data.normalize.Normalizer` does the scaling (pooled std of the set is about 45).
- ``gp``: draws from N(0, K) with a kernel of :mod:`engine.operators.kernels` (default squared-exponential,
  length scale 1, gain 1), sampled as ``V sqrt(D) z`` from ``eigh(K + 1e-10 I)`` (round-off negative
  eigenvalues clipped to 0).
- ``sinusoids``: ``A sin(2 pi f (x + 10) / 20 + phi)``, A ~ U(0.5, 2), f ~ U(0.5, 3) cycles over the domain,
  phi ~ U(0, 2 pi).
- ``mixture``: three equiprobable families (labels 0, 1, 2), so samples are multimodal:
  0 = Gaussian bump ``h exp(-(x - c)^2 / (2 w^2))`` with h ~ U(1.5, 2.5), c ~ U(-5, 5), w ~ U(1, 2.5);
  1 = sine ``A sin(2 pi f (x + 10) / 20 + phi)`` with A ~ U(0.5, 1.5), f ~ U(1, 2), phi ~ U(0, 2 pi);
  2 = step ``s tanh((x - c) / w) - 1.5`` with s ~ U(1, 2), c ~ U(-5, 5), w ~ U(0.5, 2).
"""

from __future__ import annotations

import numpy as np

from engine.data.dataset import FunctionDataset, check_count
from engine.errors import ConfigError, DataError

DEFAULT_POINTS = 100
DEFAULT_NUM = 1000
GP_JITTER = 1e-10
"""Diagonal jitter added to the GP kernel matrix before its eigendecomposition."""
SPLIT_STREAM = {"train": 0, "test": 1}


def reference_grid(n: int) -> np.ndarray:
    """The HDM grid ``linspace(-10, 10, n)``, float64 [n]."""
    return np.linspace(-10.0, 10.0, n)


def _streams(name: str, split: str, seed: int, count: int) -> list[np.random.Generator]:
    """``count`` independent generators for one split of one generated set."""
    if split not in SPLIT_STREAM:
        raise DataError(f"{name}: unknown split {split!r}; use 'train' or 'test'")
    check_count("seed", seed, minimum=0, where=name)
    parent = np.random.SeedSequence([int(seed), SPLIT_STREAM[split]])
    return [np.random.default_rng(s) for s in parent.spawn(count)]


def _sizes(name: str, n_points: int | None, num: int | None) -> tuple[int, int]:
    n = DEFAULT_POINTS if n_points is None else n_points
    m = DEFAULT_NUM if num is None else num
    check_count("n_points", n, minimum=2, where=name)
    check_count("num", m, minimum=1, where=name)
    return int(n), int(m)


def _no_options(name: str, options: dict) -> None:
    if options:
        raise DataError(f"{name}: unknown option(s) {', '.join(sorted(options))}")


def quadratic_curves(a: np.ndarray, eps: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``a x^2 + eps`` for per-curve ``a`` [N] and ``eps`` [N] on ``x`` [n]: float32 [N, 1, n]."""
    return (a[:, None] * x[None, :] ** 2 + eps[:, None]).astype(np.float32)[:, None, :]


def quadratic(split: str = "train", n_points: int | None = None, num: int | None = None, seed: int = 0,
              a: int | None = None, **options: object) -> FunctionDataset:
    """The HDM Quadratic set: [num, 1, n] curves ``a x^2 + eps`` (``a`` forced to +1/-1 when given)."""
    _no_options("quadratic", options)
    n, m = _sizes("quadratic", n_points, num)
    if a is not None and a not in (1, -1):
        raise DataError(f"quadratic: option a must be +1 or -1, got {a!r}")
    sign_rng, eps_rng = _streams("quadratic", split, seed, 2)
    signs = np.where(sign_rng.random(m) < 0.5, 1.0, -1.0)
    if a is not None:
        signs = np.full(m, float(a))
    eps = eps_rng.standard_normal(m)
    x = reference_grid(n)
    src = f"generated: quadratic a*x^2+eps, split={split}, seed={seed}" + (f", a={a:+d}" if a else "")
    return FunctionDataset("quadratic", quadratic_curves(signs, eps, x), x, src, 0.8,
                           labels=signs.astype(np.int64))


def gp(split: str = "train", n_points: int | None = None, num: int | None = None, seed: int = 0,
       kernel: str = "squared_exponential", length_scale: float = 1.0, gain: float = 1.0,
       period: float | None = None, **options: object) -> FunctionDataset:
    """Gaussian-process draws [num, 1, n] with ``kernel(length_scale, gain, period)`` on the HDM grid."""
    from engine.operators.kernels import canonical_kernel, kernel_matrix  # lazy: the package imports torch

    _no_options("gp", options)
    n, m = _sizes("gp", n_points, num)
    ell, g = _positive("gp", "length_scale", length_scale), _positive("gp", "gain", gain)
    per = None if period is None else _positive("gp", "period", period)
    x = reference_grid(n)
    try:
        kernel = canonical_kernel(str(kernel))
        K = kernel_matrix(kernel, x, length_scale=ell, gain=g, period=per)
    except ConfigError as exc:
        raise DataError(f"gp: {exc}") from None
    d, V = np.linalg.eigh(K + GP_JITTER * np.eye(n))
    root = V * np.sqrt(np.clip(d, 0.0, None))
    (rng,) = _streams("gp", split, seed, 1)
    z = rng.standard_normal((m, n))
    values = (z @ root.T).astype(np.float32)[:, None, :]
    src = (f"generated: gp kernel={kernel}, length_scale={ell}, gain={g}"
           f"{f', period={per}' if per else ''}, split={split}, seed={seed}")
    return FunctionDataset("gp", values, x, src, ell)


def _positive(name: str, what: str, value: object) -> float:
    """``value`` as a finite float > 0, else DataError (options may arrive as strings from a CLI or GUI)."""
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(f"{name}: {what} must be a number > 0, got {value!r}") from None
    if not (np.isfinite(out) and out > 0):
        raise DataError(f"{name}: {what} must be a number > 0, got {value!r}")
    return out


def _sines(x: np.ndarray, amp: np.ndarray, freq: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """[N, n] sines over the 20-wide reference domain."""
    t = (x[None, :] + 10.0) / 20.0
    return amp[:, None] * np.sin(2 * np.pi * freq[:, None] * t + phase[:, None])


def sinusoids(split: str = "train", n_points: int | None = None, num: int | None = None, seed: int = 0,
              **options: object) -> FunctionDataset:
    """Random sines [num, 1, n]: A ~ U(0.5, 2), f ~ U(0.5, 3) cycles per domain, phase ~ U(0, 2 pi)."""
    _no_options("sinusoids", options)
    n, m = _sizes("sinusoids", n_points, num)
    ra, rf, rp = _streams("sinusoids", split, seed, 3)
    x = reference_grid(n)
    values = _sines(x, ra.uniform(0.5, 2.0, m), rf.uniform(0.5, 3.0, m), rp.uniform(0, 2 * np.pi, m))
    return FunctionDataset("sinusoids", values.astype(np.float32)[:, None, :], x,
                           f"generated: sinusoids, split={split}, seed={seed}", 1.0)


def mixture(split: str = "train", n_points: int | None = None, num: int | None = None, seed: int = 0,
            **options: object) -> FunctionDataset:
    """Bumps, sines and steps in equal proportion [num, 1, n]; ``labels`` = family 0/1/2 (see module doc)."""
    _no_options("mixture", options)
    n, m = _sizes("mixture", n_points, num)
    rk, r1, r2, r3 = _streams("mixture", split, seed, 4)
    x = reference_grid(n)
    family = rk.integers(0, 3, m)
    h, c, w = r1.uniform(1.5, 2.5, m), r1.uniform(-5, 5, m), r1.uniform(1.0, 2.5, m)
    bump = h[:, None] * np.exp(-((x[None, :] - c[:, None]) ** 2) / (2 * w[:, None] ** 2))
    sine = _sines(x, r2.uniform(0.5, 1.5, m), r2.uniform(1.0, 2.0, m), r2.uniform(0, 2 * np.pi, m))
    s, c3, w3 = r3.uniform(1.0, 2.0, m), r3.uniform(-5, 5, m), r3.uniform(0.5, 2.0, m)
    step = s[:, None] * np.tanh((x[None, :] - c3[:, None]) / w3[:, None]) - 1.5
    values = np.choose(family[:, None], [bump, sine, step])
    return FunctionDataset("mixture", values.astype(np.float32)[:, None, :], x,
                           f"generated: mixture of bump/sine/step, split={split}, seed={seed}", 1.0,
                           labels=family.astype(np.int64))
