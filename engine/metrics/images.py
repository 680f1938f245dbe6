"""Image sample-quality metrics: feature Fréchet distance, KID, sliced Wasserstein, spectra, memorisation.

Images are [N, C, H, W] arrays (numpy or torch) with values in [0, 1]; features are [N, d].
Everything is computed in float64. Inception weights are not available offline, so the
feature metrics use the 128-d penultimate layer of the in-project classifier of
:mod:`engine.metrics.classifier` (its SHA-256 goes into every report). Definitions:

- **Fréchet distance** (:func:`frechet_distance`): Gaussian fits ``(mu, S)`` (sample mean,
  unbiased covariance) of the two feature sets, ``FD = |mu_a - mu_b|^2 + tr(S_a + S_b -
  2 (S_a^{1/2} S_b S_a^{1/2})^{1/2})``, the squared 2-Wasserstein distance between the two
  Gaussians. Both square roots come from symmetric eigendecompositions with negative
  (rounding) eigenvalues clamped to 0, so singular covariances (N <= d) are handled; the
  result is clamped at 0. Like any FD it is biased upwards for small N: compare numbers at
  equal sample sizes only.
- **KID** (:func:`kernel_inception_distance`, Binkowski et al. 2018, here in the
  classifier's features): the unbiased MMD^2 with the cubic polynomial kernel ``k(x, y) =
  (x.y / d + 1)^3`` between ``subsets`` random subsets of ``m`` features of each set (drawn
  without replacement within a subset, independently across subsets), reported as the mean
  and the population standard deviation over subsets. The std is the spread of one subset's
  estimate, not the standard error of the mean. ``m = min(subset_size, N_a, N_b)``.
- **Sliced Wasserstein** (:func:`sliced_wasserstein`): SW_1, the mean over ``projections``
  directions theta, uniform on the unit sphere of R^{C H W}, of the 1-Wasserstein distance
  ``W_1 = int_0^1 |F_a^{-1}(u) - F_b^{-1}(u)| du`` between the projections ``<x, theta>`` of
  the flattened images. It is computed exactly for any sizes N_a, N_b: the two empirical
  quantile functions are compared on the union of their breakpoints ``{i/N_a} U {j/N_b}``
  (for N_a = N_b this is the mean absolute difference of the sorted projections). Units:
  pixel intensity along a unit direction; a translation of every image by a vector v gives
  exactly ``mean_theta |<theta, v>|``.
- **Radial power spectrum** (:func:`power_spectrum`): per channel, ``P(f) = |DFT_2(x)(f)|^2 /
  (H W)`` (unnormalised forward DFT, no window, no centring, so bin 0 carries the mean),
  averaged over the pixels f of radial bin ``k = round(min(H, W) * |f|)`` with ``|f|`` in
  cycles per pixel, for ``k = 0 .. min(H, W) // 2`` (corner frequencies beyond the inscribed
  circle are dropped), then averaged over images. Radial averaging is linear, so this equals
  the mean over images of each image's radial spectrum. Returns [C, min(H, W)//2 + 1].
- **Spectrum error** (:func:`spectrum_error`): ``mean_{c, k} |log10 S_a(c, k) - log10
  S_b(c, k)|``, the mean absolute difference of the log10 radial spectra (in decades: 0.1 ~
  a factor 1.26), both floored at ``1e-12 * max S_b`` (b is the reference).
- **Memorisation** (:func:`nearest_neighbour_distances`, :func:`memorisation_summary`): the
  L2 pixel distance of each image to its nearest training image; ``nn_ratio = median NN
  distance of the samples / median NN distance of held-out real images`` (<< 1 means the
  generator copies its training set, ~1 means its samples are as far from the training set
  as new real images are), and ``nn_copy_fraction``, the share of samples closer to the
  training set than the closest held-out image is (exact copies give 1; for samples
  exchangeable with the held-out images it is about 1 / (M + 1)).

:func:`evaluate_image_samples` computes all of them and returns a flat, JSON-serialisable dict.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.errors import Cancelled, DataError
from engine.metrics._inputs import ArrayLike, as_float64, check_int

if TYPE_CHECKING:
    from engine.metrics.classifier import FeatureClassifier

__all__ = [
    "KIDResult",
    "as_images",
    "evaluate_image_samples",
    "frechet_distance",
    "kernel_inception_distance",
    "memorisation_summary",
    "nearest_neighbour_distances",
    "power_spectrum",
    "projection_directions",
    "resize_images",
    "sliced_wasserstein",
    "spectrum_error",
]

_RANGE_TOL = 1e-5  # values may leave [0, 1] by rounding only
_CHUNK_ELEMENTS = 1 << 22  # entries of the largest temporary (~32 MiB in float64)


# --------------------------------------------------------------------------- inputs


def as_images(x: ArrayLike, name: str) -> torch.Tensor:
    """``x`` [N, C, H, W] (numpy or torch) as a float64 CPU tensor.

    Raises:
        DataError: another rank, an empty set, NaN/inf, or values outside [0, 1] (beyond 1e-5).
    """
    t = as_float64(x, name)
    if t.ndim != 4:
        raise DataError(f"{name} must be shaped [N, C, H, W], got {tuple(t.shape)}")
    if 0 in t.shape:
        raise DataError(f"{name} are empty (shape {tuple(t.shape)})")
    if not bool(torch.isfinite(t).all()):
        raise DataError(f"{name} contain NaN or infinite values")
    lo, hi = float(t.min()), float(t.max())
    if lo < -_RANGE_TOL or hi > 1.0 + _RANGE_TOL:
        raise DataError(f"{name} have values in [{lo:.4g}, {hi:.4g}], the metrics need [0, 1]; "
                        f"clip them (np.clip(x, 0, 1)) or map [-1, 1] to [0, 1] first")
    return t


def _as_features(x: ArrayLike, name: str) -> torch.Tensor:
    """Features [N, d] (N >= 2) as a float64 CPU tensor; DataError otherwise."""
    t = as_float64(x, f"{name} features")
    if t.ndim != 2 or t.shape[1] == 0:
        raise DataError(f"{name} features must be shaped [N, d], got {tuple(t.shape)}")
    if t.shape[0] < 2:
        raise DataError(f"{name} features need at least 2 rows, got {t.shape[0]}")
    if not bool(torch.isfinite(t).all()):
        raise DataError(f"{name} features contain NaN or infinite values")
    return t


def _feature_pair(a: ArrayLike, b: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    fa, fb = _as_features(a, "first"), _as_features(b, "second")
    if fa.shape[1] != fb.shape[1]:
        raise DataError(f"feature dimensions differ ({fa.shape[1]} vs {fb.shape[1]}); use one classifier for both")
    return fa, fb


def _image_pair(a: ArrayLike, b: ArrayLike, names: tuple[str, str]) -> tuple[torch.Tensor, torch.Tensor]:
    ia, ib = as_images(a, names[0]), as_images(b, names[1])
    if ia.shape[1:] != ib.shape[1:]:
        raise DataError(f"{names[0]} are shaped {tuple(ia.shape[1:])} but {names[1]} {tuple(ib.shape[1:])}; "
                        f"they must share (C, H, W)")
    return ia, ib


def resize_images(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Images [N, C, H, W] resized to ``size`` = (H', W'): bilinear, antialiased (a no-op at the same size).

    Antialiasing (a triangle filter widened by the scale factor) matters when shrinking; the
    weights are non-negative, so values stay in the input's range.
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)


def _check_stop(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled("image evaluation cancelled")


# --------------------------------------------------------------------------- feature metrics


def _psd_sqrt(s: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric PSD matrix [d, d] (negative eigenvalues clamped to 0)."""
    w, v = torch.linalg.eigh(s)
    return (v * w.clamp_min(0.0).sqrt()) @ v.T


def _mean_cov(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mu = f.mean(0)
    c = f - mu
    return mu, c.T @ c / (f.shape[0] - 1)


def frechet_distance(feat_a: ArrayLike, feat_b: ArrayLike) -> float:
    """Fréchet distance between the Gaussian fits of two feature sets [N_a, d], [N_b, d] (module doc)."""
    fa, fb = _feature_pair(feat_a, feat_b)
    mu_a, s_a = _mean_cov(fa)
    mu_b, s_b = _mean_cov(fb)
    root_a = _psd_sqrt(s_a)
    m = root_a @ s_b @ root_a
    cross = torch.linalg.eigvalsh(0.5 * (m + m.T)).clamp_min(0.0).sqrt().sum()
    fd = (mu_a - mu_b).pow(2).sum() + s_a.trace() + s_b.trace() - 2.0 * cross
    return max(float(fd), 0.0)


@dataclass(frozen=True)
class KIDResult:
    """Outcome of :func:`kernel_inception_distance`."""

    mean: float  # mean unbiased MMD^2 over subsets
    std: float  # population std over subsets
    subsets: int
    subset_size: int  # m actually used

    def to_dict(self) -> dict[str, float | int]:
        """A JSON-serialisable dict."""
        return asdict(self)


def _polynomial_mmd2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD^2 with ``k = (x.y/d + 1)^3`` for batches x, y [S, m, d] -> [S]."""
    m, d = x.shape[1], x.shape[2]

    def offdiag_mean(a: torch.Tensor) -> torch.Tensor:
        k = (a @ a.transpose(1, 2) / d + 1.0).pow(3)
        return (k.sum((1, 2)) - k.diagonal(dim1=1, dim2=2).sum(1)) / (m * (m - 1))

    kxy = (x @ y.transpose(1, 2) / d + 1.0).pow(3).mean((1, 2))
    return offdiag_mean(x) + offdiag_mean(y) - 2.0 * kxy


def kernel_inception_distance(
    feat_a: ArrayLike, feat_b: ArrayLike, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> KIDResult:
    """KID between feature sets [N_a, d] and [N_b, d]: mean and std of the unbiased polynomial MMD^2.

    Subset s draws ``m = min(subset_size, N_a, N_b)`` rows of each set without replacement with a
    ``numpy.random.Generator`` seeded ``SeedSequence([seed, s])`` (so subset s does not depend on
    ``subsets``). Subsets are processed in batches of a few million kernel entries.
    """
    fa, fb = _feature_pair(feat_a, feat_b)
    n_sub = check_int(subsets, "subsets", 1)
    m = min(check_int(subset_size, "subset_size", 2), fa.shape[0], fb.shape[0])
    s = check_int(seed, "seed", 0)
    idx_a, idx_b = [], []
    for i in range(n_sub):
        rng = np.random.default_rng(np.random.SeedSequence([s, i]))
        idx_a.append(rng.choice(fa.shape[0], m, replace=False))
        idx_b.append(rng.choice(fb.shape[0], m, replace=False))
    ia, ib = torch.from_numpy(np.stack(idx_a)), torch.from_numpy(np.stack(idx_b))
    batch = max(1, _CHUNK_ELEMENTS // (m * m))
    values = torch.cat([_polynomial_mmd2(fa[ia[lo:lo + batch]], fb[ib[lo:lo + batch]])
                        for lo in range(0, n_sub, batch)])
    return KIDResult(mean=float(values.mean()), std=float(values.std(correction=0)), subsets=n_sub, subset_size=m)


# --------------------------------------------------------------------------- pixel metrics


def projection_directions(dim: int, projections: int, seed: int = 0) -> np.ndarray:
    """``projections`` directions uniform on the unit sphere of R^dim: float64 [P, dim], unit rows.

    Normalised standard Gaussian vectors from ``numpy.random.default_rng(seed)``.
    """
    d = check_int(dim, "dim", 1)
    p = check_int(projections, "projections", 1)
    g = np.random.default_rng(check_int(seed, "seed", 0)).standard_normal((p, d))
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def _w1_sorted(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact W_1 between 1-D empirical laws, per column: sorted a [N, P], sorted b [M, P] -> [P].

    The quantile functions are step functions with breakpoints i/N and j/M; on each interval of the
    union of breakpoints both are constant, equal to ``a[ceil(uN) - 1]`` and ``b[ceil(uM) - 1]`` at
    its right end u. Breakpoints are kept as integers in units of 1/(N M), so the grid is exact.
    """
    n, m = a.shape[0], b.shape[0]
    if n == m:
        return (a - b).abs().mean(0)
    u = np.union1d(np.arange(1, n + 1, dtype=np.int64) * m, np.arange(1, m + 1, dtype=np.int64) * n)
    du = torch.from_numpy(np.diff(u, prepend=0) / (n * m))
    ia = torch.from_numpy(-(-u // m) - 1)  # ceil(u / m) - 1 = ceil(t n) - 1 with t = u / (n m)
    ib = torch.from_numpy(-(-u // n) - 1)
    return ((a[ia] - b[ib]).abs() * du[:, None]).sum(0)


def sliced_wasserstein(a: ArrayLike, b: ArrayLike, *, projections: int = 1000, seed: int = 0) -> float:
    """Sliced 1-Wasserstein distance SW_1 between image sets [N_a, C, H, W] and [N_b, C, H, W] (module doc).

    The directions are :func:`projection_directions` ``(C H W, projections, seed)``; they are
    processed in chunks so that no temporary exceeds a few million entries.
    """
    ia, ib = _image_pair(a, b, ("first images", "second images"))
    xa, xb = ia.flatten(1), ib.flatten(1)
    theta = torch.from_numpy(projection_directions(xa.shape[1], projections, seed))
    chunk = max(1, _CHUNK_ELEMENTS // max(xa.shape[0], xb.shape[0], xa.shape[1]))
    w1 = [_w1_sorted((xa @ t.T).sort(0).values, (xb @ t.T).sort(0).values) for t in theta.split(chunk)]
    return float(torch.cat(w1).mean())


def power_spectrum(images: ArrayLike) -> np.ndarray:
    """Radially averaged power spectrum [C, min(H, W)//2 + 1] of images [N, C, H, W] (module doc)."""
    x = as_images(images, "images")
    h, w = x.shape[-2:]
    f = torch.fft.fft2(x)
    power = (f.real**2 + f.imag**2).mean(0) / (h * w)  # [C, H, W]
    k_max = min(h, w) // 2
    radius = torch.sqrt(torch.fft.fftfreq(h, dtype=torch.float64)[:, None] ** 2
                        + torch.fft.fftfreq(w, dtype=torch.float64)[None, :] ** 2) * min(h, w)
    bins = torch.round(radius).to(torch.int64).flatten()
    keep = bins <= k_max
    sums = torch.zeros(x.shape[1], k_max + 1, dtype=torch.float64)
    sums.index_add_(1, bins[keep], power.flatten(1)[:, keep])
    counts = torch.bincount(bins[keep], minlength=k_max + 1).to(torch.float64)
    return (sums / counts).numpy()


def spectrum_error(a: ArrayLike, b: ArrayLike) -> float:
    """Mean absolute difference of the log10 radial spectra of images a and b (b the reference; module doc)."""
    ia, ib = _image_pair(a, b, ("first images", "second images"))
    s_a, s_b = power_spectrum(ia), power_spectrum(ib)
    floor = max(1e-12 * float(s_b.max()), 1e-300)
    return float(np.abs(np.log10(np.maximum(s_a, floor)) - np.log10(np.maximum(s_b, floor))).mean())


def nearest_neighbour_distances(samples: ArrayLike, train: ArrayLike) -> np.ndarray:
    """L2 pixel distance of each sample to its nearest training image: float64 [N].

    Samples [N, C, H, W], train [M, C, H, W]. The nearest neighbour is found with ``torch.cdist``
    in chunks of samples (a few million distances at a time); the distance to it is then recomputed
    directly, so an exact copy of a training image gives exactly 0.
    """
    s, t = _image_pair(samples, train, ("samples", "training images"))
    xs, xt = s.flatten(1), t.flatten(1)
    rows = max(1, _CHUNK_ELEMENTS // xt.shape[0])
    out = []
    for lo in range(0, xs.shape[0], rows):
        chunk = xs[lo:lo + rows]
        nearest = torch.cdist(chunk, xt).argmin(1)
        out.append((chunk - xt[nearest]).norm(dim=1))
    return torch.cat(out).numpy()


def memorisation_summary(samples: ArrayLike, train: ArrayLike, held_out: ArrayLike) -> dict[str, float]:
    """Nearest-neighbour memorisation check of samples against real held-out images (module doc).

    Args:
        samples: generated images [N, C, H, W].
        train: the generator's training images [M, C, H, W].
        held_out: real images not in ``train`` [K, C, H, W].

    Returns:
        ``nn_median_samples``, ``nn_median_held_out``, ``nn_ratio`` (their quotient; 1 when both are 0,
        inf when only the held-out median is) and ``nn_copy_fraction``.
    """
    d_s = nearest_neighbour_distances(samples, train)
    d_h = nearest_neighbour_distances(held_out, train)
    med_s, med_h = float(np.median(d_s)), float(np.median(d_h))
    ratio = med_s / med_h if med_h > 0 else (1.0 if med_s == 0 else math.inf)
    return {
        "nn_median_samples": med_s,
        "nn_median_held_out": med_h,
        "nn_ratio": ratio,
        "nn_copy_fraction": float((d_s < d_h.min()).mean()),
    }


# --------------------------------------------------------------------------- report


def _resize_note(src: tuple[int, ...], dst: tuple[int, ...]) -> str | None:
    if tuple(src) == tuple(dst):
        return None
    return f"{src[0]}x{src[1]} -> {dst[0]}x{dst[1]} (bilinear, antialiased)"


def evaluate_image_samples(
    samples: ArrayLike,
    reference: ArrayLike,
    *,
    classifier: FeatureClassifier,
    train: ArrayLike | None = None,
    seed: int = 0,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    projections: int = 1000,
    callback: Callable[[str, int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """All image metrics of generated samples against real reference images, as one flat dict.

    Args:
        samples: generated images [N, C, H, W] in [0, 1]. If their (H, W) differ from the
            reference's they are resized to it first (noted in ``samples_resized``).
        reference: real images [M, C, H, W] in [0, 1], *not* used to train the generator (held out).
        classifier: a :class:`~engine.metrics.classifier.FeatureClassifier` with the same C; images
            whose (H, W) differ from its input size are resized for it (``classifier_resized``).
        train: optional training images of the generator [K, C, H, W] (the reference's shape):
            enables the memorisation check (otherwise its entries are None).
        seed: seeds the KID subsets and the sliced-Wasserstein directions.
        kid_subsets, kid_subset_size, projections: see :func:`kernel_inception_distance` and
            :func:`sliced_wasserstein`.
        callback: called as ``callback(step_name, step, total)`` before each step.
        should_stop: checked before each step; True raises :class:`~engine.errors.Cancelled`.

    Returns:
        ``n_samples``, ``n_reference``, ``n_train``, ``image_shape`` [C, H, W], ``samples_resized``,
        ``classifier_sha256``, ``classifier_input`` [C, H, W], ``classifier_resized``, ``fd``,
        ``kid``, ``kid_std``, ``kid_subsets``, ``kid_subset_size``, ``sw1``, ``sw_projections``,
        ``spectrum_error``, ``nn_median_samples``, ``nn_median_held_out``, ``nn_ratio``,
        ``nn_copy_fraction``, ``class_histogram`` (predicted classes of the samples, K counts),
        ``class_histogram_reference``, ``classes_covered`` (classes predicted for at least one
        sample) and ``class_tv_distance`` (total variation distance ``1/2 sum_k |p_k - q_k|``
        between the two predicted-class frequencies). Plain Python numbers, strings, lists and None.

    Raises:
        DataError: bad images (rank, range, NaN) or mismatched channels; ConfigError: bad settings.
    """
    ref = as_images(reference, "reference images")
    gen = as_images(samples, "samples")
    c, h, w = ref.shape[1:]
    if gen.shape[1] != c:
        raise DataError(f"samples have {gen.shape[1]} channels but the reference images {c}; they must match")
    samples_resized = _resize_note(tuple(gen.shape[2:]), (h, w))
    gen = resize_images(gen, (h, w))
    tr = None
    if train is not None:
        tr = as_images(train, "training images")
        if tr.shape[1:] != ref.shape[1:]:
            raise DataError(f"training images are shaped {tuple(tr.shape[1:])} but the reference images "
                            f"{tuple(ref.shape[1:])}; pass both at the same resolution")
    steps = ["features", "frechet_distance", "kid", "sliced_wasserstein", "spectrum"]
    steps += ["nearest_neighbours"] if tr is not None else []

    def begin(name: str) -> None:
        _check_stop(should_stop)
        if callback is not None:
            callback(name, steps.index(name) + 1, len(steps))

    begin("features")
    f_gen, f_ref = classifier.features(gen), classifier.features(ref)
    k = classifier.num_classes
    hist_gen = np.bincount(classifier.predict(gen), minlength=k)
    hist_ref = np.bincount(classifier.predict(ref), minlength=k)
    begin("frechet_distance")
    fd = frechet_distance(f_gen, f_ref)
    begin("kid")
    kid = kernel_inception_distance(f_gen, f_ref, subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
    begin("sliced_wasserstein")
    sw = sliced_wasserstein(gen, ref, projections=projections, seed=seed)
    begin("spectrum")
    spec = spectrum_error(gen, ref)
    memo: dict[str, float | None] = dict.fromkeys(
        ("nn_median_samples", "nn_median_held_out", "nn_ratio", "nn_copy_fraction"))
    if tr is not None:
        begin("nearest_neighbours")
        memo = dict(memorisation_summary(gen, tr, ref))
    c0, h0, w0 = classifier.input_shape
    return {
        "n_samples": int(gen.shape[0]),
        "n_reference": int(ref.shape[0]),
        "n_train": None if tr is None else int(tr.shape[0]),
        "image_shape": [int(c), int(h), int(w)],
        "samples_resized": samples_resized,
        "classifier_sha256": classifier.sha256,
        "classifier_input": [c0, h0, w0],
        "classifier_resized": _resize_note((h, w), (h0, w0)),
        "fd": fd,
        "kid": kid.mean,
        "kid_std": kid.std,
        "kid_subsets": kid.subsets,
        "kid_subset_size": kid.subset_size,
        "sw1": sw,
        "sw_projections": check_int(projections, "projections", 1),
        "spectrum_error": spec,
        **memo,
        "class_histogram": [int(v) for v in hist_gen],
        "class_histogram_reference": [int(v) for v in hist_ref],
        "classes_covered": int((hist_gen > 0).sum()),
        "class_tv_distance": float(0.5 * np.abs(hist_gen / hist_gen.sum() - hist_ref / hist_ref.sum()).sum()),
    }
