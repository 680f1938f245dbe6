"""A small deterministic CNN whose penultimate layer is the feature space of the image metrics.

Inception weights cannot be obtained offline, so the Fréchet distance and KID of
:mod:`engine.metrics.images` are computed in the 128-d features of this classifier, trained
in-project on a labelled image set (MNIST-sized data). Every report prints the classifier's
:attr:`FeatureClassifier.sha256`, so two numbers are comparable only when that hash agrees.

Network (``ClassifierNet``, ~193k parameters at 28x28 with 10 classes)::

    x in [0, 1], [B, C, H, W]  ->  2x - 1
    conv3x3(C -> 16, stride 1)  ReLU        [B, 16, H, W]
    conv3x3(16 -> 32, stride 2) ReLU        [B, 32, ceil(H/2), ceil(W/2)]
    conv3x3(32 -> 64, stride 2) ReLU        [B, 64, ceil(H/4), ceil(W/4)]
    conv3x3(64 -> 64, stride 2) ReLU        [B, 64, ceil(H/8), ceil(W/8)]
    flatten, linear -> 128, ReLU            features [B, 128]   (the metric space)
    linear 128 -> K                         logits [B, K]

Down-sampling is by strided convolutions and the loss is written as ``-sum(onehot *
log_softmax)`` with the one-hot built by comparison: no pooling, ``nll_loss``, ``gather`` or
``scatter`` kernels, which torch flags as non-deterministic on CUDA (atomic adds).

Training (:func:`train_classifier`): weights initialised from a ``torch.Generator`` seeded
``seed`` (He-uniform for every layer, zero biases; the global RNG is never read), Adam with a
cosine learning-rate decay to 0, mini-batches drawn by ``randperm`` from a second generator
seeded ``seed + 1``, a fixed number of epochs, no augmentation or dropout. On the CPU the
result is bit-identical for the same seed, data, torch build and thread count (the ops used
raise nothing under ``torch.use_deterministic_algorithms(True)``, which the tests check). On
CUDA, cuDNN is put in deterministic mode (``torch.backends.cudnn.flags``) for the duration of
the call; that switch is process-wide while it lasts. CPU and CUDA weights differ, and so do
CPU weights trained with different thread counts (``info["threads"]`` records it). Cost: the
default 6 epochs on 8,000 MNIST digits take ~13 s of one CPU core and reach ~98 % accuracy on
2,000 held-out digits.

Input size: fixed at training (``input_size``, default the training images' own H x W).
Images of another size are resized to it (bilinear, antialiased, see
:func:`engine.metrics.images.resize_images`); :func:`engine.metrics.images.evaluate_image_samples`
records it in its report. The channel count must match.

File format: :func:`engine.io.checkpoints.save_model` (safetensors, never a pickle) with
config ``{"kind": "feature-classifier", "channels", "height", "width", "num_classes",
"widths", "feature_dim"}`` and metadata ``weights_sha256`` and ``training`` (seed, epochs,
sizes, test accuracy, ...). :func:`load_classifier` rebuilds the network from the config and
refuses (:class:`~engine.errors.CheckpointError`) a file whose tensors miss, exceed or
mis-shape the network's, or whose recomputed weight hash differs from the stored one.

Weight hash (:func:`weights_sha256`): SHA-256 over the tensors in sorted-name order, each
contributing ``name NUL dtype NUL shape NUL`` then its little-endian bytes (C order). It
depends on the weights only, not on the metadata or on safetensors' header layout.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.device import resolve_device
from engine.errors import Cancelled, CheckpointError, ConfigError, DataError
from engine.io.checkpoints import load_model, save_model
from engine.metrics._inputs import check_int
from engine.metrics.images import as_images, resize_images

__all__ = [
    "CLASSIFIER_KIND",
    "ClassifierNet",
    "ClassifierProgress",
    "FeatureClassifier",
    "load_classifier",
    "train_classifier",
    "weights_sha256",
]

CLASSIFIER_KIND = "feature-classifier"
FEATURE_DIM = 128
WIDTHS = (16, 32, 64, 64)


class ClassifierNet(nn.Module):
    """The CNN of the module doc: images [B, C, H, W] in [0, 1] -> logits [B, K] (features [B, 128])."""

    def __init__(self, channels: int, height: int, width: int, num_classes: int,
                 widths: tuple[int, ...] = WIDTHS, feature_dim: int = FEATURE_DIM) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in, h, w = channels, height, width
        for i, c_out in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers += [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.ReLU()]
            c_in, h, w = c_out, (h - 1) // stride + 1, (w - 1) // stride + 1
        self.conv = nn.Sequential(*layers)
        self.embed = nn.Linear(c_in * h * w, feature_dim)
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations [B, feature_dim] (after the ReLU) of images x [B, C, H, W]."""
        return F.relu(self.embed(self.conv(2.0 * x - 1.0).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, K] of images x [B, C, H, W] in [0, 1]."""
        return self.head(self.features(x))


def _build_net(config: Mapping[str, Any], device: torch.device, seed: int | None) -> ClassifierNet:
    """The network of ``config``; He-uniform weights from a generator seeded ``seed`` (None: uninitialised).

    Built on the meta device first, so construction consumes no global random numbers.
    """
    with torch.device("meta"):
        net = ClassifierNet(config["channels"], config["height"], config["width"], config["num_classes"],
                            tuple(config["widths"]), config["feature_dim"])
    net = net.to_empty(device="cpu")
    if seed is not None:
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for module in net.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    nn.init.kaiming_uniform_(module.weight, nonlinearity="relu", generator=gen)
                    module.bias.zero_()
    return net.to(device)


def weights_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Hex SHA-256 of a state dict (definition in the module doc)."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().to("cpu").contiguous()
        shape = ",".join(str(s) for s in t.shape)
        digest.update(f"{name}\0{str(t.dtype).removeprefix('torch.')}\0{shape}\0".encode())
        arr = t.numpy()
        digest.update(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class ClassifierProgress:
    """What :func:`train_classifier` reports after each optimiser step."""

    epoch: int  # 1-based epoch of this step
    epochs: int
    step: int  # 1-based step over the whole run
    steps: int
    loss: float  # mean cross-entropy of this mini-batch


class FeatureClassifier:
    """A trained :class:`ClassifierNet` with its config, training record and weight hash.

    Attributes:
        config: ``{"kind", "channels", "height", "width", "num_classes", "widths", "feature_dim"}``.
        info: the training record (seed, epochs, sizes, ``test_accuracy`` when a test set was given, ...).
        sha256: :func:`weights_sha256` of the weights (what reports print).
        device: where the network runs.
    """

    def __init__(self, net: ClassifierNet, config: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> None:
        self.net = net.eval()
        self.config = dict(config)
        self.info = dict(info or {})
        self.device = next(net.parameters()).device
        self.sha256 = weights_sha256(net.state_dict())

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) the network takes; other (H, W) are resized to it."""
        return (self.config["channels"], self.config["height"], self.config["width"])

    @property
    def num_classes(self) -> int:
        """Number of classes K."""
        return self.config["num_classes"]

    @property
    def feature_dim(self) -> int:
        """Dimension of :meth:`features` (128)."""
        return self.config["feature_dim"]

    def _prepare(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Images [N, C, H, W] in [0, 1] -> float32 [N, C, H0, W0] at the network's input size (CPU)."""
        x = as_images(images, "images")
        c, h, w = self.input_shape
        if x.shape[1] != c:
            raise DataError(f"images have {x.shape[1]} channels but the classifier takes {c}; "
                            f"use a classifier trained on {x.shape[1]}-channel images")
        return resize_images(x, (h, w)).to(torch.float32)

    @torch.no_grad()
    def _batched(self, images: np.ndarray | torch.Tensor, batch_size: int, fn: Callable) -> torch.Tensor:
        x = self._prepare(images)
        size = check_int(batch_size, "batch_size", 1)
        return torch.cat([fn(x[i:i + size].to(self.device)).cpu() for i in range(0, x.shape[0], size)])

    def features(self, images: np.ndarray | torch.Tensor, batch_size: int = 500) -> np.ndarray:
        """Penultimate features, float64 [N, 128], of images [N, C, H, W] in [0, 1]."""
        return self._batched(images, batch_size, self.net.features).to(torch.float64).numpy()

    def logits(self, images: np.ndarray | torch.Tensor, batch_size: int = 500) -> np.ndarray:
        """Class logits, float64 [N, K], of images [N, C, H, W] in [0, 1]."""
        return self._batched(images, batch_size, self.net).to(torch.float64).numpy()

    def predict(self, images: np.ndarray | torch.Tensor, batch_size: int = 500) -> np.ndarray:
        """Predicted classes, int64 [N] (argmax of the logits)."""
        return self.logits(images, batch_size).argmax(axis=1).astype(np.int64)

    def accuracy(self, images: np.ndarray | torch.Tensor, labels: np.ndarray) -> float:
        """Share of images whose predicted class equals its label (in [0, 1])."""
        y = _as_labels(labels, _num_images(images), self.num_classes)
        return float((self.predict(images) == y).mean())

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the classifier as an HDM Studio safetensors model file (atomically); returns the path."""
        meta = {"weights_sha256": self.sha256, "training": self.info}
        return save_model(path, self.net.state_dict(), config=self.config, meta=meta)


def _num_images(images: np.ndarray | torch.Tensor) -> int:
    return int(images.shape[0]) if hasattr(images, "shape") and len(images.shape) else 0


def _as_labels(labels: np.ndarray | torch.Tensor, n: int, num_classes: int | None) -> np.ndarray:
    """Integer labels int64 [n] in [0, num_classes); DataError otherwise (num_classes None: any >= 0)."""
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise DataError(f"labels must be a 1-D array with one entry per image ({n}), got shape {y.shape}")
    if not (np.issubdtype(y.dtype, np.integer) or (np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)))):
        raise DataError(f"labels must be integers (class indices), got dtype {y.dtype}")
    y = y.astype(np.int64)
    if n and y.min() < 0:
        raise DataError(f"labels must be >= 0, got {int(y.min())}")
    if num_classes is not None and n and y.max() >= num_classes:
        raise DataError(f"label {int(y.max())} is out of range for {num_classes} classes")
    return y


def _check_lr(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 < float(value) < math.inf):
        raise ConfigError(f"lr must be a positive number, got {value!r}")
    return float(value)


def _check_input_size(value: object) -> tuple[int, int]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ConfigError(f"input_size must be (height, width), got {value!r}")
    return check_int(value[0], "input_size height", 4), check_int(value[1], "input_size width", 4)


def _cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy ``-mean_i log softmax(logits_i)[y_i]``, elementwise ops and sums only."""
    onehot = (y[:, None] == torch.arange(logits.shape[1], device=logits.device)).to(logits.dtype)
    return -(onehot * F.log_softmax(logits, dim=1)).sum(1).mean()


def train_classifier(
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    *,
    seed: int = 0,
    epochs: int = 6,
    batch_size: int = 64,
    lr: float = 2e-3,
    num_classes: int | None = None,
    input_size: tuple[int, int] | None = None,
    test_images: np.ndarray | torch.Tensor | None = None,
    test_labels: np.ndarray | torch.Tensor | None = None,
    device: str = "cpu",
    callback: Callable[[ClassifierProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> FeatureClassifier:
    """Train the feature classifier (recipe and determinism in the module doc).

    Args:
        images: [N, C, H, W] training images in [0, 1] (numpy or torch).
        labels: [N] integer classes.
        seed: integer in [0, 2**63); the weights are a function of (data, arguments, device, torch build,
            thread count).
        epochs: full passes over the data (fixed: no early stopping).
        batch_size: images per optimiser step (the last, smaller batch of an epoch is used too).
        lr: Adam's initial learning rate (cosine decay to 0 over the run).
        num_classes: K; default ``max(labels) + 1``.
        input_size: (H0, W0) of the network; default the images' (H, W). Others are resized to it.
        test_images, test_labels: optional held-out set; its accuracy goes to ``info["test_accuracy"]``.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        callback: called after every step with a :class:`ClassifierProgress`.
        should_stop: checked before every step; True raises :class:`~engine.errors.Cancelled`.

    Raises:
        ConfigError: bad settings. DataError: bad images or labels.
    """
    s = check_int(seed, "seed", 0)
    if s >= 2**63:
        raise ConfigError(f"seed must be below 2**63, got {s}")
    n_epochs = check_int(epochs, "epochs", 1)
    bs = check_int(batch_size, "batch_size", 1)
    rate = _check_lr(lr)
    dev = resolve_device(device)
    x = as_images(images, "training images")
    if x.shape[0] < 2:
        raise DataError(f"the classifier needs at least 2 training images, got {x.shape[0]}")
    if (test_images is None) != (test_labels is None):
        raise ConfigError("give both test_images and test_labels, or neither")
    k = None if num_classes is None else check_int(num_classes, "num_classes", 2)
    y = _as_labels(labels, x.shape[0], k)
    k = int(y.max()) + 1 if k is None else k
    if k < 2:
        raise DataError("the training labels hold a single class; the classifier needs at least 2")
    h0, w0 = (x.shape[2], x.shape[3]) if input_size is None else _check_input_size(input_size)
    config = {"kind": CLASSIFIER_KIND, "channels": int(x.shape[1]), "height": h0, "width": w0,
              "num_classes": k, "widths": list(WIDTHS), "feature_dim": FEATURE_DIM}
    original_hw = [int(x.shape[2]), int(x.shape[3])]
    x = resize_images(x, (h0, w0)).to(torch.float32)
    net = _build_net(config, dev, s)
    start = time.perf_counter()
    if dev.type == "cuda":
        with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True):
            _fit(net, x, torch.from_numpy(y), n_epochs, bs, rate, s, callback, should_stop)
    else:
        _fit(net, x, torch.from_numpy(y), n_epochs, bs, rate, s, callback, should_stop)
    info: dict[str, Any] = {
        "seed": s, "epochs": n_epochs, "batch_size": bs, "lr": rate, "n_train": int(x.shape[0]),
        "train_seconds": round(time.perf_counter() - start, 3), "device": str(dev),
        "torch_version": torch.__version__, "threads": torch.get_num_threads(),
        "resized_from": None if original_hw == [h0, w0] else original_hw,
    }
    clf = FeatureClassifier(net, config, info)
    if test_images is not None:
        clf.info["n_test"] = _num_images(test_images)
        clf.info["test_accuracy"] = clf.accuracy(test_images, test_labels)
    return clf


def _fit(net: ClassifierNet, x: torch.Tensor, y: torch.Tensor, epochs: int, batch_size: int, lr: float,
         seed: int, callback: Callable[[ClassifierProgress], None] | None,
         should_stop: Callable[[], bool] | None) -> None:
    """Adam + cosine decay over ``epochs`` shuffled passes; x float32 [N, C, H, W] (CPU), y int64 [N]."""
    dev = next(net.parameters()).device
    n = x.shape[0]
    per_epoch = math.ceil(n / batch_size)
    total = epochs * per_epoch
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1.0 + math.cos(math.pi * i / total)))
    order_gen = torch.Generator().manual_seed(seed + 1)
    net.train()
    step = 0
    for epoch in range(1, epochs + 1):
        order = torch.randperm(n, generator=order_gen)
        for lo in range(0, n, batch_size):
            if should_stop is not None and should_stop():
                raise Cancelled(f"classifier training cancelled at step {step} of {total}")
            idx = order[lo:lo + batch_size]
            loss = _cross_entropy(net(x[idx].to(dev)), y[idx].to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if callback is not None:
                callback(ClassifierProgress(epoch, epochs, step, total, float(loss.detach())))
    net.eval()


def _check_config(config: Mapping[str, Any], src: Path) -> dict[str, Any]:
    """The classifier config of a loaded file, validated; CheckpointError when it is not one."""
    if config.get("kind") != CLASSIFIER_KIND:
        raise CheckpointError(f"{src}: is not a feature classifier (config kind {config.get('kind')!r}); "
                              f"pass a file written by FeatureClassifier.save")
    out = {"kind": CLASSIFIER_KIND}
    for key in ("channels", "height", "width", "num_classes", "feature_dim"):
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CheckpointError(f"{src}: classifier config {key!r} is {value!r}, not a positive integer; "
                                  f"the file is corrupt, re-save the classifier")
        out[key] = value
    widths = config.get("widths")
    if not isinstance(widths, list) or not widths or not all(isinstance(w, int) and w >= 1 for w in widths):
        raise CheckpointError(f"{src}: classifier config 'widths' is {widths!r}, not a list of positive "
                              f"integers; the file is corrupt, re-save the classifier")
    out["widths"] = widths
    return out


def load_classifier(path: str | os.PathLike[str], device: str = "cpu") -> FeatureClassifier:
    """Read a classifier written by :meth:`FeatureClassifier.save` (safetensors only).

    Raises:
        CheckpointError: missing, pickled, truncated or foreign file; tensors that do not match the
            network the config describes (names or shapes); a weight hash that differs from the stored one.
    """
    loaded = load_model(path)
    src = loaded.path if loaded.path is not None else Path(path)
    config = _check_config(loaded.config, src)
    net = _build_net(config, torch.device("cpu"), None)
    expected = net.state_dict()
    got = loaded.state_dict
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{src}: tensors do not match the classifier's config (missing {missing[:3]}, "
                              f"unexpected {extra[:3]}); re-save the classifier")
    for name, ref in expected.items():
        if got[name].shape != ref.shape or got[name].dtype != ref.dtype:
            raise CheckpointError(f"{src}: tensor {name!r} is {got[name].dtype} {tuple(got[name].shape)}, the "
                                  f"config needs {ref.dtype} {tuple(ref.shape)}; re-save the classifier")
    stored = loaded.meta.get("weights_sha256")
    actual = weights_sha256(got)
    if stored != actual:
        raise CheckpointError(f"{src}: weight hash {actual[:12]}... differs from the stored "
                              f"{str(stored)[:12]}...; the weights were altered, re-save the classifier")
    net.load_state_dict(got)
    training = loaded.meta.get("training")
    return FeatureClassifier(net.to(resolve_device(device)), config, training if isinstance(training, dict) else {})
