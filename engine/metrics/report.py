"""One call for the function benchmarks: two-sample power at several block sizes plus functional errors.

``evaluate_function_samples`` runs :func:`engine.metrics.twosample.mmd_power` at the paper's block
size (10 vs 10, 30 repeats: comparable with the published numbers) and at larger *balanced* block
sizes (100 vs 100, 500 vs 500 by default), which are far more sensitive, then
:func:`engine.metrics.functional.functional_errors`. Every value is a plain Python number, string,
list or dict, so the report can be written with ``json.dump`` as is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.errors import ConfigError
from engine.metrics._inputs import ArrayLike, as_pair, check_int
from engine.metrics.functional import functional_errors
from engine.metrics.twosample import mmd_power


def evaluate_function_samples(
    generated: ArrayLike,
    real: ArrayLike,
    *,
    block_size: int = 10,
    repeats: int = 30,
    permutations: int = 1000,
    seed: int = 0,
    balanced_sizes: tuple[int, ...] = (100, 500),
    alpha: float = 0.05,
    grid: ArrayLike | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Two-sample power and functional errors of generated curves against real ones.

    Args:
        generated: [N, n] or [N, C, n] curves (numpy or torch).
        real: [M, n] or [M, C, n] curves with the same (C, n).
        block_size: the main test's m (must satisfy ``m <= min(N, M)``).
        repeats, permutations, seed, alpha: passed to every :func:`mmd_power` call.
        balanced_sizes: further block sizes; one larger than ``min(N, M)`` is skipped with a
            string note in its entry (not an error).
        grid: optional grid [n] for the functional errors' quadrature weights.
        should_stop: a cancel token for :func:`mmd_power`.

    Returns:
        ``{"power": {"10": {...}, "100": {...} or "skipped: ...", ...}, "functional": {...},
        "n_generated": N, "n_real": M}``; each power entry is
        :meth:`PowerResult.to_dict` (``power``, ``std``, ``n_blocks``, ``repeats``, ...).

    Raises:
        ConfigError: bad settings, or ``block_size`` larger than the smaller sample.
        DataError: NaN/inf, wrong rank, or mismatched (C, n).
    """
    g, r = as_pair(generated, real)
    n_gen, n_real = int(g.shape[0]), int(r.shape[0])
    main = check_int(block_size, "block_size", 2)
    if isinstance(balanced_sizes, (str, bytes)) or not hasattr(balanced_sizes, "__iter__"):
        raise ConfigError(f"balanced_sizes must be a sequence of integers, got {balanced_sizes!r}")
    extra = [check_int(b, "balanced_sizes entry", 2) for b in balanced_sizes]
    smaller = min(n_gen, n_real)
    if main > smaller:
        raise ConfigError(
            f"block_size={main} needs at least {main} curves in each sample; "
            f"got {n_gen} generated and {n_real} real"
        )
    power: dict[str, Any] = {}
    for m in [main, *extra]:
        key = str(m)
        if key in power:
            continue
        if m > smaller:
            power[key] = (
                f"skipped: block size {m} needs at least {m} curves in each sample "
                f"(have {n_gen} generated, {n_real} real)"
            )
            continue
        res = mmd_power(
            g, r, block_size=m, repeats=repeats, permutations=permutations, alpha=alpha, seed=seed,
            should_stop=should_stop,
        )
        power[key] = res.to_dict()
    return {
        "power": power,
        "functional": functional_errors(g, r, grid=grid),
        "n_generated": n_gen,
        "n_real": n_real,
    }
