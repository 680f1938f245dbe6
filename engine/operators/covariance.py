"""The covariance operator Q on a grid, through a cached eigendecomposition.

For a kernel k on the domain, Q restricted to grid points x_1..x_n is the Gram matrix
``K = k(x_i, x_j)``. With ``K + jitter I = V diag(lam) V^T`` (``V`` orthonormal), a draw
``e = V (sqrt(lam) * z)``, ``z ~ N(0, I)``, has covariance exactly ``K + jitter I`` on that grid,
whatever the grid (uniform or not, any size). This is what makes sampling resolution-free:
the noise on a new grid is drawn from the kernel on that grid, never interpolated
(the reference code's defect 2).

The eigenvalues (sorted in decreasing order) are exposed for the studio's spectrum plot.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from engine.errors import ConfigError
from engine.operators.kernels import canonical_kernel, kernel_matrix

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KernelCovariance:
    """A covariance operator given by a stationary kernel on the domain (grid-free).

    Attributes:
        kernel: kernel name (see :data:`engine.operators.kernels.KERNELS`).
        length_scale: kernel length scale in the units of the grid coordinates.
        gain: pointwise variance ``k(x, x)``.
        period: period for the ``periodic`` kernel.
        jitter: added to the diagonal, relative to ``gain`` (keeps Q positive definite).
    """

    kernel: str = "squared_exponential"
    length_scale: float = 1.0
    gain: float = 1.0
    period: float | None = None
    jitter: float = 1e-6

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel", canonical_kernel(self.kernel))
        if not (np.isfinite(self.length_scale) and self.length_scale > 0):
            raise ConfigError(f"length scale must be a positive number, got {self.length_scale}")
        if not (np.isfinite(self.gain) and self.gain > 0):
            raise ConfigError(f"kernel gain must be a positive number, got {self.gain}")
        if not (self.jitter >= 0):
            raise ConfigError(f"jitter must be >= 0, got {self.jitter}")

    def on_grid(self, grid: np.ndarray | torch.Tensor) -> GridCovariance:
        """Q restricted to ``grid`` (shape [n]), eigendecomposed once and cached."""
        x = _as_grid(grid)
        vals, vecs = _eigh_cached(self, x.tobytes(), x.size)
        return GridCovariance(eigenvalues=vals, eigenvectors=vecs, grid=x, white=False)


DENSE_EIGH_BYTES_PER_ENTRY = 40
"""Peak bytes per entry of Q while it is built and eigendecomposed (measured: 40.4 at 4000 points): the kernel's
temporaries, the matrix, LAPACK's copy, workspace and eigenvectors, and their sorted copy."""
DENSE_EIGH_NOTE_POINTS = 4096
"""Above this many points the eigendecomposition is worth a note (n^3 work: 7.5 s at 4000 points on this 2-core
box, about 8 minutes at 16,000), and runs where a signal can interrupt it (:func:`_interruptible`)."""


def check_dense_eigh(n: int) -> None:
    """ConfigError, before anything is allocated, where Q's dense eigendecomposition on ``n`` points would not fit in
    the memory available now (it would swap, or end in the kernel's out-of-memory killer); a logged note where it
    will take long."""
    from engine.device import available_memory

    need, free = DENSE_EIGH_BYTES_PER_ENTRY * n * n, available_memory()
    if free is not None and need > free:
        largest = int((free / DENSE_EIGH_BYTES_PER_ENTRY) ** 0.5)
        raise ConfigError(f"a {n}-point grid needs the prior's {n} x {n} covariance eigendecomposed: about "
                          f"{need / 2**30:.1f} GiB, and {free / 2**30:.1f} GiB is available; use a grid of at most "
                          f"{largest} points")
    if n > DENSE_EIGH_NOTE_POINTS:
        log.warning("eigendecomposing the prior's covariance on %d points (dense, n^3 work: minutes above about "
                    "8000 points on a CPU)", n)


EIGH_THREAD = "hdm-eigh"  # the thread a long eigendecomposition runs on (hdm exits past it when interrupted)


def _interruptible(fn, *args):
    """``fn(*args)`` where a signal can still end the program: on the main thread, the call runs on a daemon
    thread while the main thread waits in short joins, between which Python runs its signal handlers (Ctrl+C,
    the CLI's SIGTERM); a LAPACK call on the main thread would hold them until it returned (20,000 points ran 12
    minutes past SIGTERM). The abandoned call ends with the process (``hdm`` exits past it: the BLAS library's
    exit handler would wait for it). Elsewhere (the studio's worker) it runs in place."""
    if threading.current_thread() is not threading.main_thread():
        return fn(*args)
    outcome: list = []

    def run() -> None:
        try:
            outcome.append((True, fn(*args)))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller as it is
            outcome.append((False, exc))

    worker = threading.Thread(target=run, name=EIGH_THREAD, daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.05)
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


@dataclass(frozen=True)
class WhiteCovariance:
    """Q = gain * I: white noise on the grid (the DDPM baseline)."""

    gain: float = 1.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.gain) and self.gain > 0):
            raise ConfigError(f"noise gain must be a positive number, got {self.gain}")

    def on_grid(self, grid: np.ndarray | torch.Tensor) -> GridCovariance:
        x = _as_grid(grid)
        vals = np.full(x.size, self.gain)
        return GridCovariance(eigenvalues=vals, eigenvectors=None, grid=x, white=True)


def covariance_from_config(kernel: str, length_scale: float = 1.0, gain: float = 1.0,
                           period: float | None = None, jitter: float = 1e-6
                           ) -> KernelCovariance | WhiteCovariance:
    """The operator Q for a noise configuration (``white`` gives :class:`WhiteCovariance`)."""
    if canonical_kernel(kernel) == "white":
        return WhiteCovariance(gain=gain)
    return KernelCovariance(kernel, length_scale, gain, period, jitter)


class GridCovariance:
    """Q on one grid: ``Q = V diag(lam) V^T``; acts on the last axis of [..., n] tensors.

    Tensors are kept per (device, dtype) on first use.
    """

    def __init__(self, eigenvalues: np.ndarray, eigenvectors: np.ndarray | None, grid: np.ndarray,
                 white: bool) -> None:
        self.eigenvalues_np = np.asarray(eigenvalues, dtype=np.float64)
        self._vecs_np = eigenvectors
        self.grid = grid
        self.white = white
        self._cache: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor | None]] = {}

    @property
    def n(self) -> int:
        return int(self.grid.size)

    def _tensors(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        key = (like.device, like.dtype)
        if key not in self._cache:
            sqrt_lam = torch.as_tensor(np.sqrt(self.eigenvalues_np), dtype=like.dtype, device=like.device)
            vecs = None if self._vecs_np is None else torch.as_tensor(
                self._vecs_np, dtype=like.dtype, device=like.device)
            self._cache[key] = (sqrt_lam, vecs)
        return self._cache[key]

    def eigenvalues(self) -> np.ndarray:
        """Eigenvalues of Q on this grid, decreasing, shape [n]."""
        return self.eigenvalues_np.copy()

    def matrix(self) -> np.ndarray:
        """The dense matrix Q on the grid (float64 [n, n]); for tests and small grids."""
        if self._vecs_np is None:
            return np.diag(self.eigenvalues_np)
        return (self._vecs_np * self.eigenvalues_np) @ self._vecs_np.T

    def sqrt_apply(self, z: torch.Tensor) -> torch.Tensor:
        """``Q^{1/2} z`` (symmetric root) for z of shape [..., n]: maps white noise to N(0, Q)."""
        sqrt_lam, vecs = self._tensors(z)
        if vecs is None:
            return z * sqrt_lam
        return ((z @ vecs) * sqrt_lam) @ vecs.T

    def apply(self, u: torch.Tensor) -> torch.Tensor:
        """``Q u`` for u of shape [..., n]."""
        sqrt_lam, vecs = self._tensors(u)
        if vecs is None:
            return u * sqrt_lam**2
        return ((u @ vecs) * sqrt_lam**2) @ vecs.T


def _as_grid(grid: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(grid, torch.Tensor):
        grid = grid.detach().cpu().numpy()
    x = np.ascontiguousarray(np.asarray(grid, dtype=np.float64).reshape(-1))
    if x.size < 1 or not np.all(np.isfinite(x)):
        raise ConfigError("the grid must hold at least one finite coordinate")
    if x.size > 1 and not np.all(np.diff(x) > 0):
        raise ConfigError("grid coordinates must be strictly increasing")
    return x


EIGH_CACHE_BYTES = 256 * 2**20
"""What the cached eigendecompositions may hold together: an n-point grid's takes about 8 n^2 bytes (0.3 MB at
200 points, 32 MB at 2000), so a count bound alone let a session of large sampling grids keep gigabytes."""

_eigh_cache: OrderedDict[tuple[KernelCovariance, bytes], tuple[np.ndarray, np.ndarray]] = OrderedDict()
_eigh_lock = threading.Lock()


def _eigh_cached(cov: KernelCovariance, grid_bytes: bytes, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(eigenvalues descending, eigenvectors)`` of Q on the grid; the least recently used are dropped once
    the cache holds more than :data:`EIGH_CACHE_BYTES` (the newest is always kept)."""
    key = (cov, grid_bytes)
    with _eigh_lock:
        if key in _eigh_cache:
            _eigh_cache.move_to_end(key)
            return _eigh_cache[key]
    check_dense_eigh(n)
    x = np.frombuffer(grid_bytes, dtype=np.float64, count=n)
    k = kernel_matrix(cov.kernel, x, length_scale=cov.length_scale, gain=cov.gain, period=cov.period)
    k[np.diag_indices(n)] += cov.jitter * cov.gain
    vals, vecs = _interruptible(np.linalg.eigh, k) if n > DENSE_EIGH_NOTE_POINTS else np.linalg.eigh(k)
    order = np.argsort(vals)[::-1]
    entry = np.clip(vals[order], 0.0, None), np.ascontiguousarray(vecs[:, order])  # round-off: tiny negatives
    with _eigh_lock:
        _eigh_cache[key] = entry
        held = sum(v.nbytes + w.nbytes for v, w in _eigh_cache.values())
        while held > EIGH_CACHE_BYTES and len(_eigh_cache) > 1:
            v, w = _eigh_cache.popitem(last=False)[1]
            held -= v.nbytes + w.nbytes
    return entry


def grid_key(grid: np.ndarray) -> str:
    """A short stable hash of a grid (for provenance)."""
    return hashlib.sha256(np.asarray(grid, dtype=np.float64).tobytes()).hexdigest()[:16]
