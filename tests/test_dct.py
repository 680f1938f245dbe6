"""The orthonormal 2D DCT-II against its definition, and the Neumann Laplacian it diagonalises."""

from __future__ import annotations

import math

import pytest
import torch

from engine.operators.dct import dct, dct2, dct_matrix, idct, idct2, neumann_laplacian_eigenvalues

SIZES = [(1, 1), (2, 3), (8, 8), (16, 12), (7, 5), (9, 1)]


def _direct_dct2(x: torch.Tensor) -> torch.Tensor:
    """``D_H x D_W^T`` with D the cosine-definition orthonormal DCT-II matrix."""
    h, w = x.shape[-2:]
    return dct_matrix(h, x.dtype) @ x @ dct_matrix(w, x.dtype).T


def _fd_neumann_laplacian(u: torch.Tensor) -> torch.Tensor:
    """5-point Laplacian, pixel spacing 1, reflecting boundary (ghost pixel = edge pixel)."""
    p = torch.nn.functional.pad(u.unsqueeze(0), (1, 1, 1, 1), mode="replicate").squeeze(0)
    return p[..., 2:, 1:-1] + p[..., :-2, 1:-1] + p[..., 1:-1, 2:] + p[..., 1:-1, :-2] - 4 * u


def test_dct_matrix_is_orthonormal_and_matches_cosines():
    d = dct_matrix(6)
    torch.testing.assert_close(d @ d.T, torch.eye(6, dtype=torch.float64), rtol=0, atol=1e-13)
    assert float(d[0, 0]) == pytest.approx(1 / math.sqrt(6))
    assert float(d[2, 1]) == pytest.approx(math.sqrt(2 / 6) * math.cos(math.pi * 2 * 3 / 12))


@pytest.mark.parametrize("H,W", SIZES)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_fft_dct_matches_direct_matrix_dct(H, W, dtype, tol):
    x = torch.randn(2, 3, H, W, generator=torch.Generator().manual_seed(H * 31 + W), dtype=torch.float64).to(dtype)
    X = dct2(x)
    assert X.dtype == dtype and X.shape == x.shape
    torch.testing.assert_close(X, _direct_dct2(x), rtol=tol, atol=tol)
    # one axis at a time, along any dim
    torch.testing.assert_close(dct(x, dim=-2), dct_matrix(H, dtype) @ x, rtol=tol, atol=tol)


@pytest.mark.parametrize("H,W", SIZES)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_round_trip_and_energy(H, W, dtype, tol):
    x = torch.rand(4, H, W, generator=torch.Generator().manual_seed(7), dtype=torch.float64).to(dtype)
    torch.testing.assert_close(idct2(dct2(x)), x, rtol=tol, atol=tol)
    torch.testing.assert_close(dct2(idct2(x)), x, rtol=tol, atol=tol)
    torch.testing.assert_close(idct(dct(x, 1), 1), x, rtol=tol, atol=tol)
    e_in, e_out = x.pow(2).sum((-2, -1)), dct2(x).pow(2).sum((-2, -1))
    torch.testing.assert_close(e_out, e_in, rtol=10 * tol, atol=10 * tol)


def test_dct_is_differentiable():
    x = torch.randn(1, 5, 6, dtype=torch.float64, requires_grad=True)
    (idct2(dct2(x) * torch.arange(6.0, dtype=torch.float64))).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_dct_rejects_integer_tensors():
    with pytest.raises(TypeError):
        dct2(torch.ones(3, 3, dtype=torch.int64))


@pytest.mark.parametrize("H,W", [(8, 8), (16, 12), (7, 5)])
def test_dct_basis_diagonalises_the_neumann_fd_laplacian(H, W):
    """The DCT-II modes are exact eigenvectors of the reflecting-boundary 5-point Laplacian,
    eigenvalues -(4 sin^2(pi m/2H) + 4 sin^2(pi n/2W)) (the ``discrete`` convention)."""
    u = torch.randn(3, H, W, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    lam = neumann_laplacian_eigenvalues(H, W, convention="discrete")
    torch.testing.assert_close(idct2(-lam * dct2(u)), _fd_neumann_laplacian(u), rtol=1e-11, atol=1e-11)
    # each basis image separately: L phi_mn = -lambda_mn phi_mn
    for m, n in [(0, 0), (1, 0), (0, W - 1), (H - 1, 2), (3, 3)]:
        e = torch.zeros(H, W, dtype=torch.float64)
        e[m, n] = 1.0
        phi = idct2(e)
        torch.testing.assert_close(_fd_neumann_laplacian(phi), -lam[m, n] * phi, rtol=1e-11, atol=1e-11)


def test_continuous_convention_is_the_reference_and_agrees_at_low_frequency():
    """The equations use lambda = (pi m/H)^2 + (pi n/W)^2 (pixel spacing 1, the reference's (pi m/k)^2);
    it matches the FD eigenvalues up to x^4/12 per axis (x = pi m/H)."""
    H, W = 16, 12
    lam = neumann_laplacian_eigenvalues(H, W)
    assert lam.shape == (H, W) and lam.dtype == torch.float64 and float(lam[0, 0]) == 0.0
    assert float(lam[3, 5]) == pytest.approx((math.pi * 3 / H) ** 2 + (math.pi * 5 / W) ** 2)
    disc = neumann_laplacian_eigenvalues(H, W, convention="discrete")
    xm = (math.pi * torch.arange(H, dtype=torch.float64) / H)[:, None]
    xn = (math.pi * torch.arange(W, dtype=torch.float64) / W)[None, :]
    assert torch.all(lam >= disc - 1e-12)
    assert torch.all(lam - disc <= (xm**4 + xn**4) / 12 + 1e-12)
    # halving the pixel size (same physical image at twice the resolution) keeps the low modes' eigenvalues
    fine = neumann_laplacian_eigenvalues(2 * H, 2 * W, pixel_size=0.5)
    torch.testing.assert_close(fine[:H, :W], lam)
    assert neumann_laplacian_eigenvalues(4, 4, torch.float32).dtype == torch.float32
    with pytest.raises(ValueError):
        neumann_laplacian_eigenvalues(4, 4, convention="spectral")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_dct_on_cuda_matches_cpu():
    x = torch.randn(2, 3, 16, 12, dtype=torch.float64)
    torch.testing.assert_close(dct2(x.cuda()).cpu(), dct2(x), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(idct2(dct2(x.float().cuda())).cpu(), x.float(), rtol=1e-5, atol=1e-5)
