from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import ConfigError
from engine.operators import KERNELS, KernelCovariance, WhiteCovariance, kernel_matrix
from engine.rng import SampleRNG


@pytest.mark.parametrize("name", [k for k in KERNELS if k != "periodic"])
def test_kernels_are_unit_on_diagonal_and_psd(name):
    x = np.sort(np.random.default_rng(0).uniform(-5, 5, 40))
    K = kernel_matrix(name, x, length_scale=1.3, gain=2.0)
    np.testing.assert_allclose(np.diag(K), 2.0)
    np.testing.assert_allclose(K, K.T)
    assert np.linalg.eigvalsh(K).min() > -1e-9


def test_known_kernel_values():
    x = np.array([0.0, 1.0])
    assert kernel_matrix("squared_exponential", x, length_scale=2.0)[0, 1] == pytest.approx(np.exp(-0.25))
    assert kernel_matrix("matern12", x, length_scale=2.0)[0, 1] == pytest.approx(np.exp(-0.5))
    a = np.sqrt(3) / 2
    assert kernel_matrix("matern32", x, length_scale=2.0)[0, 1] == pytest.approx((1 + a) * np.exp(-a))
    a = np.sqrt(5) / 2
    assert kernel_matrix("matern52", x, length_scale=2.0)[0, 1] == pytest.approx((1 + a + a * a / 3) * np.exp(-a))
    k = kernel_matrix("periodic", np.array([0.0, 3.0]), length_scale=1.0, period=3.0)
    assert k[0, 1] == pytest.approx(1.0)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_bad_length_scale_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="length scale"):
        KernelCovariance("matern32", bad)


def test_unknown_kernel_and_missing_period():
    with pytest.raises(ConfigError, match="unknown kernel"):
        KernelCovariance("cubic", 1.0)
    with pytest.raises(ConfigError, match="period"):
        KernelCovariance("periodic", 1.0).on_grid(np.linspace(0, 1, 5))


@pytest.mark.parametrize("grid", [np.linspace(-10, 10, 37),
                                  np.sort(np.random.default_rng(1).uniform(-10, 10, 53))],
                         ids=["uniform", "non-uniform"])
def test_noise_has_exactly_the_kernel_covariance_on_any_grid(grid):
    cov = KernelCovariance("squared_exponential", 1.5)
    Q = cov.on_grid(grid)
    K = kernel_matrix("squared_exponential", grid, length_scale=1.5) + 1e-6 * np.eye(grid.size)
    # The sampling map Q^{1/2} reproduces K exactly (not just in distribution).
    root = Q.sqrt_apply(torch.eye(grid.size, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(root @ root.T, K, atol=1e-9)
    np.testing.assert_allclose(Q.matrix(), K, atol=1e-9)
    # And empirically.
    e = Q.sqrt_apply(SampleRNG(range(4000)).randn(grid.size, dtype=torch.float64)).numpy()
    assert np.abs(np.cov(e.T) - K).max() < 0.12
    lam = Q.eigenvalues()
    assert np.all(np.diff(lam) <= 1e-12) and lam.min() >= 0


def test_eigendecomposition_is_cached():
    cov = KernelCovariance("matern52", 2.0)
    g = np.linspace(0, 1, 64)
    a, b = cov.on_grid(g), cov.on_grid(g.copy())
    assert a._vecs_np is b._vecs_np


def test_the_eigendecomposition_cache_is_bounded_in_bytes(monkeypatch):
    """It was bounded by count (64 entries): 64 sampling grids of 2000 points held 2 GB."""
    from engine.operators import covariance

    monkeypatch.setattr(covariance, "EIGH_CACHE_BYTES", 3 * 8 * 100 * 101)  # three 100-point grids
    monkeypatch.setattr(covariance, "_eigh_cache", type(covariance._eigh_cache)())
    cov = KernelCovariance("matern52", 0.3)
    grids = [np.linspace(0, 1 + k, 100) for k in range(5)]
    first = cov.on_grid(grids[0])
    for g in grids[1:]:
        cov.on_grid(g)
    held = sum(v.nbytes + w.nbytes for v, w in covariance._eigh_cache.values())
    assert len(covariance._eigh_cache) == 3 and held <= covariance.EIGH_CACHE_BYTES
    assert cov.on_grid(grids[-1])._vecs_np is cov.on_grid(grids[-1].copy())._vecs_np  # the newest stay
    again = cov.on_grid(grids[0])  # dropped, computed anew: the same operator
    assert again._vecs_np is not first._vecs_np
    np.testing.assert_allclose(again.eigenvalues(), first.eigenvalues(), rtol=1e-12)
    monkeypatch.setattr(covariance, "EIGH_CACHE_BYTES", 1)
    cov.on_grid(np.linspace(0, 9, 50))
    assert len(covariance._eigh_cache) == 1  # the newest is kept whatever its size


def test_white_covariance_is_identity():
    Q = WhiteCovariance(2.0).on_grid(np.linspace(0, 1, 5))
    z = torch.randn(3, 5)
    torch.testing.assert_close(Q.sqrt_apply(z), z * 2**0.5)


def test_grid_must_increase():
    with pytest.raises(ConfigError, match="increasing"):
        KernelCovariance().on_grid(np.array([0.0, 2.0, 1.0]))


def test_per_sample_streams_do_not_depend_on_batch():
    a = SampleRNG([5, 6, 7]).randn(4)
    b = SampleRNG([7]).randn(4)
    torch.testing.assert_close(a[2], b[0])


def test_a_datasets_correlation_length_fits_the_periodic_kernel():
    """The periodic kernel's length scale is relative to its period: given a daily series' suggested 36.4 days
    as it is, every correlation was about 1 (Q of rank one, flat draws); converted, the correlation at that
    distance is the squared exponential's e^-1 and the spectrum spreads like the squared exponential's."""
    from engine.operators import covariance_from_config, kernel_length_scale

    grid, L, P = np.arange(365.0), 36.4, 365.0
    assert kernel_length_scale("squared_exponential", L, None) == L == kernel_length_scale("matern32", L, P)
    assert kernel_length_scale("periodic", L, None) == L  # no period: the kernel says what is missing
    ell = kernel_length_scale("periodic", L, P)
    np.testing.assert_allclose(kernel_matrix("periodic", np.array([0.0]), np.array([L]), length_scale=ell,
                                             period=P), np.exp(-1.0), rtol=1e-12)
    assert kernel_length_scale("periodic", 10 * P, P) == pytest.approx(np.sqrt(2.0))  # at most half a period

    def modes_for(kernel, length, period):
        ev = np.sort(np.asarray(covariance_from_config(kernel, length, 1.0, period).on_grid(grid).eigenvalues()))
        share = np.cumsum(ev[::-1]) / ev.sum()
        return int(np.searchsorted(share, 0.999)) + 1

    assert modes_for("periodic", L, P) == 1  # the defect: L taken as it is
    se, periodic = modes_for("squared_exponential", L, None), modes_for("periodic", ell, P)
    assert periodic >= 5 and 0.5 < periodic / se < 2, (periodic, se)


def test_a_grid_whose_eigendecomposition_cannot_fit_is_refused_before_anything_is_allocated(monkeypatch, caplog,
                                                                                            capsys):
    """``--grid-size 1000000000`` held 17 GB for 53 s before its out-of-memory line, and 20,000 points ran past
    SIGTERM in one uninterruptible LAPACK call (audit s12): Q's dense eigendecomposition is checked against the
    memory available first (40 bytes an entry), a long one is announced, and absurd sampling grids are refused
    before their coordinates exist."""
    import engine.device
    from engine.cli import main
    from engine.operators import covariance

    monkeypatch.setattr(engine.device, "available_memory", lambda: 40 * 300 * 300)  # room for 300 points
    cov = KernelCovariance(length_scale=0.37)  # a kernel no other test caches
    with pytest.raises(ConfigError, match=r"301-point grid .* at most 300 points"):
        cov.on_grid(np.linspace(0.0, 1.0, 301))
    assert cov.on_grid(np.linspace(0.0, 1.0, 300)).n == 300
    monkeypatch.setattr(engine.device, "available_memory", lambda: None)  # a system that does not say: no bound
    monkeypatch.setattr(covariance, "DENSE_EIGH_NOTE_POINTS", 200)
    with caplog.at_level("WARNING", logger="engine.operators.covariance"):
        cov.on_grid(np.linspace(0.0, 1.0, 257))
    assert "eigendecomposing the prior's covariance on 257 points" in caplog.text
    assert main(["sample", "--checkpoint", "quadratic", "--num-samples", "1", "--steps", "1", "--grid-size",
                 "1000000000", "--out", "unused.h5", "--quiet"]) == 2
    assert "at most 1048576 points" in capsys.readouterr().err


def test_a_long_eigendecomposition_on_the_main_thread_gives_way_to_ctrl_c():
    """20,000 points ran 12 minutes past SIGTERM inside one LAPACK call on the main thread (audit s12): above
    DENSE_EIGH_NOTE_POINTS the call runs on a thread while the main thread waits where Python handles signals."""
    import _thread
    import threading
    import time

    from engine.operators.covariance import EIGH_THREAD, _interruptible

    assert _interruptible(np.add, 2, 3) == 5
    with pytest.raises(ZeroDivisionError):
        _interruptible(lambda: 1 / 0)
    release = threading.Event()

    def lapack_like() -> None:  # holds on until released, as a long LAPACK call would
        release.wait(30)

    timer = threading.Timer(0.2, _thread.interrupt_main)
    started = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            _interruptible(lapack_like)
        assert time.perf_counter() - started < 5
    finally:
        release.set()  # no abandoned call outlives the test (hdm would exit past it)
        for t in threading.enumerate():
            if t.name == EIGH_THREAD:
                t.join(5)
