"""The :class:`FunctionDataset` container and grid helpers shared by every loader."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.errors import DataError


@dataclass(frozen=True, eq=False)
class FunctionDataset:
    """A set of N curves with C channels sampled on one common grid of n points (compared by identity).

    Attributes:
        name: short name (registry name or file stem).
        values: float32 array [N, C, n], all finite.
        grid: float64 array [n], strictly increasing.
        source: provenance: file path(s) or generator name with its parameters and seed, plus notes
            on anything dropped while loading.
        default_length_scale: recommended length scale of the noise (Q) kernel, in grid units.
        domain: ``(grid[0], grid[-1])`` unless given.
        labels: optional per-curve labels [N] (class, sign, weekday ...), or None.
    """

    name: str
    values: np.ndarray
    grid: np.ndarray
    source: str
    default_length_scale: float
    domain: tuple[float, float] = field(default=(np.nan, np.nan))
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        values = np.asarray(self.values)
        grid = np.asarray(self.grid)
        where = self.name or "dataset"
        if values.ndim != 3:
            raise DataError(f"{where}: values must have shape [N, C, n], got shape {values.shape}")
        if not np.issubdtype(values.dtype, np.number) or np.iscomplexobj(values):
            raise DataError(f"{where}: values must be real numbers, got dtype {values.dtype}")
        values = values.astype(np.float32, copy=False)
        grid = grid.astype(np.float64, copy=False)
        if values.shape[0] == 0:
            raise DataError(f"{where}: the dataset holds no curves")
        check_grid(grid, values.shape[-1], where)
        if not np.isfinite(values).all():
            bad = int((~np.isfinite(values)).reshape(values.shape[0], -1).any(axis=1).sum())
            raise DataError(f"{where}: {bad} curves contain NaN or inf; remove or impute them")
        if not (np.isfinite(self.default_length_scale) and self.default_length_scale > 0):
            raise DataError(f"{where}: default_length_scale must be > 0, got {self.default_length_scale}")
        labels = self.labels
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (values.shape[0],):
                raise DataError(f"{where}: labels must have shape [{values.shape[0]}], got {labels.shape}")
        domain = self.domain
        if not all(np.isfinite(domain)):
            domain = (float(grid[0]), float(grid[-1]))
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "domain", (float(domain[0]), float(domain[1])))
        object.__setattr__(self, "default_length_scale", float(self.default_length_scale))

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_points(self) -> int:
        """Number of grid points n."""
        return int(self.values.shape[-1])

    @property
    def channels(self) -> int:
        """Number of channels C."""
        return int(self.values.shape[1])

    def __repr__(self) -> str:
        n, c, p = self.values.shape
        return (f"FunctionDataset(name={self.name!r}, curves={n}, channels={c}, points={p}, "
                f"domain={self.domain}, source={self.source!r})")


def data_sha256(dataset: Any) -> str:
    """SHA-256 (hex) of what a model trains on: a dataset's values as float32 with their shape, and its grid
    (float64) where it has one, for any modality. Two datasets with the same digest train the same run; a run
    records it to tell its data again (resume, provenance)."""
    digest = hashlib.sha256()
    values = np.ascontiguousarray(dataset.values, dtype=np.float32)
    digest.update(f"values {values.shape}".encode())
    digest.update(values.data)
    grid = getattr(dataset, "grid", None)
    if grid is not None:
        grid = np.ascontiguousarray(grid, dtype=np.float64)
        digest.update(f"grid {grid.shape}".encode())
        digest.update(grid.data)
    return digest.hexdigest()


def check_grid(grid: np.ndarray, n: int, where: str) -> None:
    """Raise DataError unless ``grid`` is a finite, strictly increasing float array of shape [n]."""
    if grid.shape != (n,):
        raise DataError(f"{where}: the grid must have shape [{n}] to match the curves, got {grid.shape}")
    if n < 2:
        raise DataError(f"{where}: curves need at least 2 points, got {n}")
    if not np.isfinite(grid).all():
        raise DataError(f"{where}: the grid contains NaN or inf")
    if not (np.diff(grid) > 0).all():
        raise DataError(f"{where}: the grid must be strictly increasing")


def interpolate(values: np.ndarray, grid: np.ndarray, new_grid: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolation of curves [N, C, n] on ``grid`` [n] onto ``new_grid`` [m].

    ``new_grid`` must lie inside ``[grid[0], grid[-1]]``. Returns float32 [N, C, m].
    """
    idx = np.clip(np.searchsorted(grid, new_grid, side="right") - 1, 0, grid.size - 2)
    w = (new_grid - grid[idx]) / (grid[idx + 1] - grid[idx])
    v = values.astype(np.float64, copy=False)
    out = v[..., idx] * (1.0 - w) + v[..., idx + 1] * w
    return out.astype(np.float32)


def resample(ds: FunctionDataset, n_points: int | None) -> FunctionDataset:
    """``ds`` on a uniform grid of ``n_points`` over its domain (unchanged when None or equal to n)."""
    if n_points is None:
        return ds
    check_count("n_points", n_points, minimum=2, where=ds.name)
    uniform = np.linspace(ds.grid[0], ds.grid[-1], ds.n_points)
    tol = 1e-12 * (1 + abs(ds.grid).max())
    if n_points == ds.n_points and np.allclose(ds.grid, uniform, rtol=0, atol=tol):
        return ds
    new_grid = np.linspace(ds.grid[0], ds.grid[-1], int(n_points))
    return FunctionDataset(ds.name, interpolate(ds.values, ds.grid, new_grid), new_grid,
                           f"{ds.source}; linearly interpolated to {n_points} points",
                           ds.default_length_scale, ds.domain, ds.labels)


def subset_indices(n: int, num: int | None, seed: int, where: str) -> np.ndarray | None:
    """Indices of the first ``num`` of ``n`` items after a shuffle seeded by ``seed``; None keeps all, in order."""
    if num is None:
        return None
    check_count("num", num, minimum=1, where=where)
    if num >= n:
        return None
    return np.random.default_rng(seed).permutation(n)[: int(num)]


def subsample(ds: FunctionDataset, num: int | None, seed: int) -> FunctionDataset:
    """The first ``num`` curves of ``ds`` after a shuffle seeded by ``seed`` (all, in order, if None)."""
    keep = subset_indices(len(ds), num, seed, ds.name)
    if keep is None:
        return ds
    labels = None if ds.labels is None else ds.labels[keep]
    source = f"{ds.source}; {num} curves drawn with seed {seed}"
    return FunctionDataset(ds.name, ds.values[keep], ds.grid, source, ds.default_length_scale, ds.domain,
                           labels)


def check_count(what: str, value: object, *, minimum: int, where: str) -> None:
    """Raise DataError unless ``value`` is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise DataError(f"{where}: {what} must be an integer >= {minimum}, got {value!r}")
