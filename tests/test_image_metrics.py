"""Image metrics: closed forms (FD, KID, SW, spectra), MNIST checks, and the feature classifier."""

from __future__ import annotations

import contextlib
import gzip
import itertools
import json
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from engine.errors import Cancelled, CheckpointError, ConfigError, DataError
from engine.io.checkpoints import load_model, save_model
from engine.metrics import images as im
from engine.metrics.classifier import FeatureClassifier, load_classifier, train_classifier, weights_sha256
from engine.paths import shared_data_dir

# ---------------------------------------------------------------- helpers


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread: on a busy 2-core machine two OpenMP threads wait on each other's
    time slices (measured: 15 s instead of 0.4 s for a 1-epoch training). The weight hash depends on
    the thread count, so every training here runs under the same setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)



def with_moments(rng: np.random.Generator, n: int, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """n points [n, d] whose sample mean and unbiased sample covariance are exactly ``mean`` and ``cov``."""
    z = rng.standard_normal((n, len(mean)))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(z.T @ z / (n - 1))).T  # sample covariance I
    return mean + z @ np.linalg.cholesky(cov).T


def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of images [N, C, H, W] (replicate padding; values stay in [0, 1])."""
    r = math.ceil(3 * sigma)
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k /= k.sum()
    xt = torch.as_tensor(x, dtype=torch.float64).flatten(0, 1)[:, None]
    xt = torch.nn.functional.conv2d(torch.nn.functional.pad(xt, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    xt = torch.nn.functional.conv2d(torch.nn.functional.pad(xt, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return xt.reshape(x.shape).numpy()


def add_noise(x: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    return np.clip(x + sigma * np.random.default_rng(seed).standard_normal(x.shape), 0.0, 1.0)


def naive_poly_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]

    def k(a, b):
        return (float(a @ b) / d + 1.0) ** 3

    n, m = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j)
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    sxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m))
    return sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2.0 * sxy / (n * m)


# ---------------------------------------------------------------- MNIST (shared data)


def _read_idx(path, offset: int) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        return np.frombuffer(fh.read(), dtype=np.uint8, offset=offset)


@pytest.fixture(scope="module")
def mnist() -> dict[str, np.ndarray]:
    """MNIST t10k (see shared/data/images/mnist/SOURCE.md), randomly split 8,000 train / 2,000 held out.

    The split is random: the file's first half (Census employees) and second half (students)
    differ in style, so a contiguous split would itself be a distribution shift.
    """
    folder = shared_data_dir() / "images" / "mnist"
    images, labels = folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz"
    if not (images.is_file() and labels.is_file()):
        pytest.skip(f"MNIST t10k not found in {folder}")
    x = _read_idx(images, 16).reshape(10000, 1, 28, 28).astype(np.float32) / 255.0
    y = _read_idx(labels, 8).astype(np.int64)
    order = np.random.default_rng(0).permutation(10000)
    x, y = x[order], y[order]
    return {"train": x[:8000], "train_labels": y[:8000], "test": x[8000:], "test_labels": y[8000:]}


@pytest.fixture(scope="module")
def classifier(mnist) -> FeatureClassifier:
    """The default recipe on 8,000 images (~15 s of one core), scored on the 2,000 held out."""
    with one_thread():
        return train_classifier(mnist["train"], mnist["train_labels"], seed=0,
                                test_images=mnist["test"], test_labels=mnist["test_labels"])


@pytest.fixture(scope="module")
def train_features(mnist, classifier) -> np.ndarray:
    with one_thread():
        return classifier.features(mnist["train"])


# ---------------------------------------------------------------- Fréchet distance


def test_frechet_distance_of_commuting_gaussians_is_closed_form():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.1, 3.0, 6), rng.uniform(0.1, 3.0, 6)
    mu_a, mu_b = rng.standard_normal(6), rng.standard_normal(6)
    fa = with_moments(rng, 50, mu_a, np.diag(a))
    fb = with_moments(rng, 80, mu_b, np.diag(b))
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + np.sum((mu_a - mu_b) ** 2)
    assert im.frechet_distance(fa, fb) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_of_non_commuting_2d_gaussians_is_closed_form():
    # For 2x2 PSD M: tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)); here M = A^1/2 B A^1/2.
    rng = np.random.default_rng(1)
    a = np.array([[2.0, 0.7], [0.7, 1.0]])
    b = np.array([[0.5, -0.3], [-0.3, 1.5]])
    mu = np.array([0.3, -1.2])
    cross = math.sqrt(np.trace(a @ b) + 2.0 * math.sqrt(np.linalg.det(a) * np.linalg.det(b)))
    expected = mu @ mu + np.trace(a) + np.trace(b) - 2.0 * cross
    fa, fb = with_moments(rng, 40, np.zeros(2), a), with_moments(rng, 30, mu, b)
    assert im.frechet_distance(fa, fb) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_invariances_and_singular_covariances():
    rng = np.random.default_rng(2)
    fa = rng.standard_normal((40, 8)) @ rng.standard_normal((8, 8))
    fb = rng.standard_normal((30, 8)) + 0.5
    fd = im.frechet_distance(fa, fb)
    assert im.frechet_distance(fa, fa) == pytest.approx(0.0, abs=1e-9)
    assert im.frechet_distance(fb, fa) == pytest.approx(fd, rel=1e-9)
    q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    shift = rng.standard_normal(8)
    assert im.frechet_distance(fa @ q + shift, fb @ q + shift) == pytest.approx(fd, rel=1e-9)
    # fewer points than dimensions: rank-deficient covariances, still finite and >= 0
    low = im.frechet_distance(rng.standard_normal((5, 20)), rng.standard_normal((6, 20)))
    assert math.isfinite(low) and low >= 0.0
    with pytest.raises(DataError, match="feature dimensions differ"):
        im.frechet_distance(fa, fb[:, :4])
    with pytest.raises(DataError, match="at least 2"):
        im.frechet_distance(fa[:1], fb)


# ---------------------------------------------------------------- KID


def test_kid_with_one_full_subset_equals_the_naive_unbiased_mmd():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((12, 5)), rng.standard_normal((9, 5)) + 0.3
    res = im.kernel_inception_distance(x[:9], y, subsets=1, subset_size=9)
    assert res.subset_size == 9 and res.std == 0.0
    assert res.mean == pytest.approx(naive_poly_mmd2(x[:9], y), rel=1e-10)  # a subset of all rows: any order
    # m is capped by the smaller set; subset s draws its rows from SeedSequence([seed, s]) whatever ``subsets`` is
    few = im.kernel_inception_distance(x, y, subsets=3, subset_size=50, seed=4)
    assert few.subset_size == 9
    one = im.kernel_inception_distance(x, y, subsets=1, subset_size=6, seed=4).mean
    two = im.kernel_inception_distance(x, y, subsets=2, subset_size=6, seed=4).mean
    rng = np.random.default_rng(np.random.SeedSequence([4, 1]))
    ia, ib = rng.choice(12, 6, replace=False), rng.choice(9, 6, replace=False)
    assert 2 * two - one == pytest.approx(naive_poly_mmd2(x[ia], y[ib]), rel=1e-9)
    assert json.loads(json.dumps(few.to_dict())) == few.to_dict()


def test_kid_is_zero_within_its_std_for_one_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(5)
    feats = np.abs(rng.standard_normal((1200, 16)))  # ReLU-like features
    same = im.kernel_inception_distance(feats[:600], feats[600:], subsets=50, subset_size=300)
    shifted = im.kernel_inception_distance(feats[:600], feats[600:] + 0.3, subsets=50, subset_size=300)
    assert abs(same.mean) < 2.0 * same.std
    assert shifted.mean > 10.0 * shifted.std > 0.0


# ---------------------------------------------------------------- sliced Wasserstein


def test_projection_directions_are_unit_and_seeded():
    d = im.projection_directions(30, 7, seed=3)
    assert d.shape == (7, 30)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, rtol=1e-14)
    np.testing.assert_array_equal(d, im.projection_directions(30, 7, seed=3))
    assert not np.array_equal(d, im.projection_directions(30, 7, seed=4))


def test_sliced_wasserstein_identical_and_shifted_sets():
    rng = np.random.default_rng(6)
    x = rng.uniform(0.2, 0.6, (40, 2, 4, 5))
    v = rng.uniform(0.0, 0.3, (2, 4, 5))
    theta = im.projection_directions(40, 64, seed=9)
    expected = float(np.abs(theta @ v.ravel()).mean())  # W1 of a translate = |<theta, v>|
    assert im.sliced_wasserstein(x, x, projections=64, seed=9) == 0.0
    assert im.sliced_wasserstein(x, x + v, projections=64, seed=9) == pytest.approx(expected, rel=1e-12)
    # unequal sizes: x twice over is the same empirical law, so the merged-quantile W1 is exact
    twice = np.concatenate([x, x])
    assert im.sliced_wasserstein(twice, x, projections=64, seed=9) == pytest.approx(0.0, abs=1e-15)
    assert im.sliced_wasserstein(x, twice + v, projections=64, seed=9) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(DataError, match="share"):
        im.sliced_wasserstein(x, x[:, :1])


def test_exact_1d_wasserstein_matches_scipy_for_unequal_sizes():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((13, 3)), rng.exponential(size=(7, 3))
    ours = im._w1_sorted(torch.from_numpy(np.sort(a, 0)), torch.from_numpy(np.sort(b, 0))).numpy()
    ref = [stats.wasserstein_distance(a[:, j], b[:, j]) for j in range(3)]
    np.testing.assert_allclose(ours, ref, rtol=1e-12)


# ---------------------------------------------------------------- spectra


def test_power_spectrum_of_a_cosine_has_two_bins():
    i = np.arange(28)
    img = 0.5 + 0.25 * np.cos(2 * np.pi * 3 * i / 28)[:, None] * np.ones((1, 28))  # 3 cycles along H
    s = im.power_spectrum(np.stack([img[None], img[None]]))
    assert s.shape == (1, 15)
    # P = |DFT|^2 / (HW): the DC pixel holds (0.5 HW)^2 / HW; the pixels (+-3, 0) hold (0.125 HW)^2 / HW each,
    # averaged over every pixel of radial bin 3; all other pixels hold nothing.
    radius = np.sqrt(np.fft.fftfreq(28)[:, None] ** 2 + np.fft.fftfreq(28)[None, :] ** 2) * 28
    count3 = int((np.round(radius) == 3).sum())
    assert s[0, 0] == pytest.approx(0.25 * 784)
    assert s[0, 3] == pytest.approx(2 * (0.125 * 784) ** 2 / 784 / count3)
    others = np.delete(s[0], [0, 3])
    assert np.all(others < 1e-20)


def test_spectrum_error_is_zero_for_equal_spectra_and_detects_a_blur(mnist):
    real, train = mnist["test"], mnist["train"]
    assert im.spectrum_error(real, real) == 0.0
    same = im.spectrum_error(real, train)
    blurred = im.spectrum_error(gaussian_blur(real, 1.0), train)
    assert same < 0.02  # measured 0.005
    assert blurred > 30 * same and blurred > 0.5  # measured 1.37 decades
    spec_real, spec_blur = im.power_spectrum(real), im.power_spectrum(gaussian_blur(real, 1.0))
    assert np.all(spec_blur[0, 5:] < spec_real[0, 5:])  # a blur only removes high-frequency power


# ---------------------------------------------------------------- memorisation


def test_nearest_neighbour_distances_match_brute_force_and_copies_are_exactly_zero():
    rng = np.random.default_rng(8)
    train = rng.uniform(size=(30, 1, 4, 4))
    samples = np.concatenate([rng.uniform(size=(5, 1, 4, 4)), train[[3, 17]]])
    d = im.nearest_neighbour_distances(samples, train)
    brute = np.sqrt(((samples[:, None] - train[None]) ** 2).sum((2, 3, 4))).min(1)
    np.testing.assert_allclose(d[:5], brute[:5], rtol=1e-12)
    assert d[5] == 0.0 and d[6] == 0.0


def test_memorisation_flags_copies_and_not_held_out_images(mnist):
    train, held_out = mnist["train"], mnist["test"]
    copies = im.memorisation_summary(train[:500], train, held_out[:1000])
    fresh = im.memorisation_summary(held_out[1000:1500], train, held_out[:1000])
    assert copies["nn_ratio"] == 0.0 and copies["nn_copy_fraction"] == 1.0
    assert 0.9 < fresh["nn_ratio"] < 1.1  # measured 0.99
    assert fresh["nn_copy_fraction"] < 0.02


# ---------------------------------------------------------------- inputs


def test_images_are_validated():
    good = np.full((3, 1, 4, 4), 0.5)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        im.as_images(good * 2 - 1.5, "samples")
    with pytest.raises(DataError, match="NaN"):
        im.as_images(np.full((3, 1, 4, 4), np.nan), "samples")
    with pytest.raises(DataError, match=r"\[N, C, H, W\]"):
        im.as_images(good[:, 0], "samples")
    assert im.as_images(good + 1e-7, "samples").dtype == torch.float64  # rounding above 1 is tolerated
    up = im.resize_images(torch.from_numpy(good), (8, 8))
    assert up.shape == (3, 1, 8, 8) and torch.allclose(up, torch.tensor(0.5, dtype=torch.float64))
    with pytest.raises(ConfigError, match="projections"):
        im.sliced_wasserstein(good, good, projections=0)


# ---------------------------------------------------------------- classifier


def test_classifier_accuracy_and_features(mnist, classifier):
    assert classifier.info["test_accuracy"] > 0.97  # measured 0.98-0.99 (6 epochs, 8,000 images)
    assert sum(p.numel() for p in classifier.net.parameters()) < 300_000
    f = classifier.features(mnist["test"][:300], batch_size=64)
    assert f.shape == (300, 128) and f.dtype == np.float64 and f.min() >= 0.0
    np.testing.assert_array_equal(f, classifier.features(mnist["test"][:300], batch_size=300))
    # another input size is resized (bilinear, antialiased): a 2x upsampling barely changes predictions
    big = im.resize_images(torch.from_numpy(mnist["test"][:300]).double(), (56, 56)).clamp(0, 1).numpy()
    agree = (classifier.predict(big) == classifier.predict(mnist["test"][:300])).mean()
    assert agree > 0.95
    with pytest.raises(DataError, match="channels"):
        classifier.features(np.zeros((2, 3, 28, 28)))


def test_classifier_training_is_deterministic_and_seeded(mnist):
    x, y = mnist["train"][:1500], mnist["train_labels"][:1500]
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)  # raises if training used a non-deterministic kernel
    try:
        a = train_classifier(x, y, seed=3, epochs=1)
    finally:
        torch.use_deterministic_algorithms(previous)
    b = train_classifier(x, y, seed=3, epochs=1)
    c = train_classifier(x, y, seed=4, epochs=1)
    assert a.sha256 == b.sha256 == weights_sha256(b.net.state_dict())
    assert c.sha256 != a.sha256
    for (_, pa), (_, pb) in zip(a.net.state_dict().items(), b.net.state_dict().items(), strict=True):
        assert torch.equal(pa, pb)


def test_classifier_save_load_round_trip_and_refusals(tmp_path, mnist):
    x, y = mnist["train"][:600], mnist["train_labels"][:600]
    clf = train_classifier(x, y, seed=0, epochs=1)
    path = clf.save(tmp_path / "clf.safetensors")
    back = load_classifier(path)
    assert back.sha256 == clf.sha256 and back.config == clf.config and back.info["n_train"] == 600
    np.testing.assert_array_equal(back.features(x[:50]), clf.features(x[:50]))

    loaded = load_model(path)
    tampered = dict(loaded.state_dict)
    tampered["head.bias"] = tampered["head.bias"] + 1e-3
    save_model(tmp_path / "tampered.safetensors", tampered, config=loaded.config, meta=loaded.meta)
    with pytest.raises(CheckpointError, match="hash"):
        load_classifier(tmp_path / "tampered.safetensors")

    wrong = dict(loaded.config, feature_dim=64)
    save_model(tmp_path / "shape.safetensors", loaded.state_dict, config=wrong, meta=loaded.meta)
    with pytest.raises(CheckpointError, match="config needs"):
        load_classifier(tmp_path / "shape.safetensors")

    save_model(tmp_path / "other.safetensors", loaded.state_dict, config={"kind": "unet"}, meta=loaded.meta)
    with pytest.raises(CheckpointError, match="not a feature classifier"):
        load_classifier(tmp_path / "other.safetensors")

    torch.save(loaded.state_dict, tmp_path / "clf.pt")
    with pytest.raises(CheckpointError, match="pickle"):
        load_classifier(tmp_path / "clf.pt")


def test_classifier_training_reports_progress_and_can_be_cancelled(mnist):
    x, y = mnist["train"][:200], mnist["train_labels"][:200]
    seen = []
    train_classifier(x, y, epochs=2, batch_size=50, callback=seen.append)
    assert [p.step for p in seen] == list(range(1, 9)) and seen[-1].epoch == 2 and seen[-1].steps == 8
    calls = itertools.count()
    with pytest.raises(Cancelled):
        train_classifier(x, y, epochs=2, batch_size=50, should_stop=lambda: next(calls) >= 3)
    with pytest.raises(DataError, match="labels"):
        train_classifier(x, y[:-1])
    with pytest.raises(ConfigError, match="epochs"):
        train_classifier(x, y, epochs=0)
    with pytest.raises(ConfigError, match="test_labels"):
        train_classifier(x, y, test_images=x)


# ---------------------------------------------------------------- the perfect generator and the report


def test_real_held_out_images_score_far_better_than_blurred_or_noised_ones(mnist, classifier, train_features):
    """Real held-out vs real train features: FD near its finite-sample floor; degradations far above it.

    Measured (default classifier, 2,000 vs 8,000 images): FD real 2.2 (train half vs half: 2.4),
    blur sigma=1 px 182, noise sigma=0.2 55; KID real -0.1 +- 1.4, blur 241 +- 11, noise 88 +- 6.
    """
    held_out = mnist["test"]
    fd = {}
    kid = {}
    for name, images in [("real", held_out), ("blur", gaussian_blur(held_out, 1.0)),
                         ("noise", add_noise(held_out, 0.2))]:
        feats = classifier.features(images)
        fd[name] = im.frechet_distance(feats, train_features)
        kid[name] = im.kernel_inception_distance(feats, train_features, subsets=20, subset_size=1000)
    print(f"FD {fd}; KID { {k: (round(v.mean, 3), round(v.std, 3)) for k, v in kid.items()} }")
    assert fd["real"] < 5.0
    assert fd["blur"] > 10 * fd["real"] and fd["noise"] > 5 * fd["real"]
    assert abs(kid["real"].mean) < 2 * kid["real"].std
    assert kid["blur"].mean > 5 * kid["blur"].std and kid["noise"].mean > 5 * kid["noise"].std


def test_evaluate_image_samples_report(mnist, classifier):
    train, held_out = mnist["train"], mnist["test"]
    kwargs = {"classifier": classifier, "kid_subsets": 10, "kid_subset_size": 500, "projections": 100}
    steps = []
    copies = im.evaluate_image_samples(train[:1000], held_out, train=train,
                                       callback=lambda name, i, n: steps.append((name, i, n)), **kwargs)
    assert json.loads(json.dumps(copies)) == copies
    assert [s[0] for s in steps][-1] == "nearest_neighbours" and steps[-1][1:] == (6, 6)
    assert copies["n_samples"] == 1000 and copies["n_reference"] == 2000 and copies["n_train"] == 8000
    assert copies["classifier_sha256"] == classifier.sha256 and copies["classifier_resized"] is None
    assert copies["nn_ratio"] == 0.0 and copies["nn_copy_fraction"] == 1.0
    assert sum(copies["class_histogram"]) == 1000 and copies["classes_covered"] == 10
    assert copies["class_tv_distance"] < 0.1
    assert all(isinstance(v, (int, float, str, list, type(None))) for v in copies.values())

    # one collapsed mode: every sample is a "1"
    ones = train[mnist["train_labels"] == 1][:300]
    collapsed = im.evaluate_image_samples(ones, held_out, **kwargs)
    assert collapsed["n_train"] is None and collapsed["nn_ratio"] is None
    assert collapsed["classes_covered"] <= 2 and collapsed["class_tv_distance"] > 0.8
    assert collapsed["fd"] > 20 * copies["fd"]

    # samples at another resolution are resized to the reference grid, and the report says so
    big = im.resize_images(torch.from_numpy(held_out[:400]).double(), (56, 56)).clamp(0, 1).numpy()
    resized = im.evaluate_image_samples(big, held_out, **kwargs)
    assert resized["samples_resized"] == "56x56 -> 28x28 (bilinear, antialiased)"
    assert resized["image_shape"] == [1, 28, 28]

    with pytest.raises(Cancelled):
        im.evaluate_image_samples(held_out, held_out, should_stop=lambda: True, **kwargs)
    with pytest.raises(DataError, match="channels"):
        im.evaluate_image_samples(np.zeros((4, 3, 28, 28)), held_out, **kwargs)
