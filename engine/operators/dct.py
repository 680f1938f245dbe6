"""Orthonormal 2D DCT-II (and its inverse) in torch, and the Neumann Laplacian's spectrum.

The orthonormal DCT-II of ``x`` (length N) is

    X_k = c_k sum_{i=0}^{N-1} x_i cos(pi k (2i + 1) / (2N)),   c_0 = sqrt(1/N), c_k = sqrt(2/N),

an orthogonal matrix ``D`` (so the inverse is ``D^T``, the orthonormal DCT-III). It is computed
with one complex FFT of the same length by Makhoul's reordering (IEEE TASSP 1980):
``v = [x_0, x_2, x_4, ..., x_5, x_3, x_1]`` gives ``sum_i x_i cos(pi k(2i+1)/(2N)) =
Re(exp(-i pi k / (2N)) FFT(v)_k)``, for any N (odd or even). The 2D transform applies it along
the last two axes of [..., H, W] tensors (float32 or float64, any device; no in-place ops, so it
is differentiable).

**Neumann Laplacian.** The DCT-II basis vectors ``cos(pi m (i + 1/2) / H)`` are the eigenvectors
of the 5-point finite-difference Laplacian with reflecting (Neumann) boundary and pixel spacing
1, with eigenvalues ``-(4 sin^2(pi m/(2H)) + 4 sin^2(pi n/(2W)))``. They also sample the continuous
Neumann eigenfunctions ``cos(pi m x / H)`` on ``[0, H] x [0, W]`` (pixel centres at ``i + 1/2``),
whose eigenvalues are ``-((pi m/H)^2 + (pi n/W)^2)``. The studio's HDM-SPDE uses the continuous
convention, as the reference code does (``(pi m / k)^2``): :func:`neumann_laplacian_eigenvalues`
returns ``lambda_mn = (pi m / H)^2 + (pi n / W)^2`` (the eigenvalues of ``-Delta``, pixel spacing 1);
:func:`neumann_laplacian_eigenvalues` with ``convention="discrete"`` gives the finite-difference ones.
The two agree to ``O(k^4)`` at low frequencies (``4 sin^2(x/2) = x^2 - x^4/12 + ...``).
"""

from __future__ import annotations

import math

import torch

_TWIDDLES: dict[tuple[int, torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}


def _factors(n: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(exp(-i pi k/(2n)), c_k)`` for k < n, cached per (n, device, dtype)."""
    key = (n, like.device, like.dtype)
    if key not in _TWIDDLES:
        with torch.inference_mode(False):  # cached tensors must serve autograd too (restoration's guidance)
            _TWIDDLES[key] = _make_factors(n, like)
    return _TWIDDLES[key]


def _make_factors(n: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    k = torch.arange(n, dtype=torch.float64)
    tw = torch.polar(torch.ones_like(k), -math.pi * k / (2 * n))
    scale = torch.full((n,), math.sqrt(2.0 / n), dtype=torch.float64)
    scale[0] = math.sqrt(1.0 / n)
    cdtype = torch.complex128 if like.dtype == torch.float64 else torch.complex64
    return tw.to(device=like.device, dtype=cdtype), scale.to(device=like.device, dtype=like.dtype)


def _check_real(x: torch.Tensor) -> None:
    if not x.is_floating_point():
        raise TypeError(f"the DCT needs a real floating-point tensor, got {x.dtype}")


def dct(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Orthonormal DCT-II along ``dim`` (Makhoul's FFT algorithm)."""
    _check_real(x)
    x = x.movedim(dim, -1)
    n = x.shape[-1]
    tw, scale = _factors(n, x)
    v = torch.cat([x[..., ::2], x[..., 1::2].flip(-1)], dim=-1)
    y = (torch.fft.fft(v, dim=-1) * tw).real * scale
    return y.movedim(-1, dim)


def idct(X: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Inverse of :func:`dct` (the orthonormal DCT-III) along ``dim``.

    With ``Y = X / c`` the unnormalised coefficients, ``FFT(v)_k = exp(i pi k/(2N)) (Y_k - i Y_{N-k})``
    (``Y_N = 0``); ``v = IFFT(.)`` is then un-permuted.
    """
    _check_real(X)
    X = X.movedim(dim, -1)
    n = X.shape[-1]
    tw, scale = _factors(n, X)
    y = X / scale
    y_rev = torch.cat([torch.zeros_like(y[..., :1]), y[..., 1:].flip(-1)], dim=-1)
    v = torch.fft.ifft(torch.complex(y, -y_rev) * tw.conj(), dim=-1).real
    half = (n + 1) // 2
    even, odd = v[..., :half], v[..., half:].flip(-1)
    if n % 2:
        odd = torch.cat([odd, torch.zeros_like(even[..., :1])], dim=-1)
    x = torch.stack([even, odd], dim=-1).reshape(*v.shape[:-1], 2 * half)[..., :n]
    return x.movedim(-1, dim)


def dct2(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2D DCT-II over the last two axes of [..., H, W]."""
    return dct(dct(x, -1), -2)


def idct2(X: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dct2`."""
    return idct(idct(X, -2), -1)


def dct_matrix(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``D[k, i] = c_k cos(pi k (2i+1)/(2n))`` (direct definition)."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * k * (2 * i + 1) / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.to(dtype)


def neumann_laplacian_eigenvalues(H: int, W: int, dtype: torch.dtype = torch.float64,
                                  device: torch.device | str | None = None, *, pixel_size: float = 1.0,
                                  convention: str = "continuous") -> torch.Tensor:
    """Eigenvalues of ``-Delta`` (Neumann) for the DCT-II modes, shape [H, W] (mode (m, n) at [m, n]).

    ``continuous`` (default, the reference's): ``lambda_mn = (pi m / (H h))^2 + (pi n / (W h))^2``
    with pixel spacing ``h = pixel_size`` (1: the image is ``[0, H] x [0, W]``).
    ``discrete``: the 5-point stencil's exact eigenvalues ``(4 sin^2(pi m/(2H)) + 4 sin^2(pi n/(2W))) / h^2``.
    """
    if H < 1 or W < 1:
        raise ValueError(f"image size must be positive, got {H}x{W}")
    if not pixel_size > 0:
        raise ValueError(f"pixel size must be positive, got {pixel_size}")
    m = torch.arange(H, dtype=torch.float64)[:, None]
    n = torch.arange(W, dtype=torch.float64)[None, :]
    if convention == "continuous":
        lam = (math.pi * m / H) ** 2 + (math.pi * n / W) ** 2
    elif convention == "discrete":
        lam = 4 * torch.sin(math.pi * m / (2 * H)) ** 2 + 4 * torch.sin(math.pi * n / (2 * W)) ** 2
    else:
        raise ValueError(f"unknown Laplacian convention {convention!r}; choose continuous or discrete")
    return (lam / pixel_size**2).to(dtype=dtype, device=device)
