"""Image datasets: the :class:`ImageDataset` container, the generated ``glyphs`` set, MNIST, and file loading.

Images are float32 [N, C, H, W] in [0, 1] (channels-first; 0 = black). Public API:

- :func:`load_image_dataset` ``(spec, split="train", *, size=None, num=None, seed=0, channels=None, **options)``:
  a registry name (``glyphs``, ``mnist``) or a path (folder of pictures, picture, IDX, ``.npy``/``.npz``/``.h5``
  file; see :mod:`engine.data.image_loaders`) -> :class:`ImageDataset`.
- :func:`list_image_datasets`: one :class:`~engine.data.registry.DatasetInfo` per registry entry.
- :func:`load_image_file`, :func:`load_image_folder`: one file / one folder, all of it.
- :func:`subsample_images`, :func:`resize_images`, :func:`convert_channels`: the helpers the entry point uses.

Splits:

- ``glyphs``: train and test come from the independent streams ``SeedSequence([seed, 0 | 1])``.
- ``mnist``: the shared copy holds only the official 10,000-image test set (t10k). ``train`` = its first 8,000
  images, ``test`` = its last 2,000, held out for evaluation only (never train on them). LeCun's notes say the
  first 5,000 t10k images come from NIST's SD-3 (Census employees, cleaner) and the last 5,000 from SD-1
  (students, harder), so this test split holds SD-1 writers only and is somewhat harder than train.
- files and folders: ``train`` = every image; ``test`` is an error (a file has no held-out split).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from engine.data.dataset import check_count, subset_indices
from engine.data.image_loaders import (
    check_labels,
    fit_size,
    parse_size,
    read_any,
    read_idx_file,
    split_key,
    to_channels,
)
from engine.data.registry import DatasetInfo
from engine.errors import DataError
from engine.paths import shared_data_dir

SPLIT_STREAM = {"train": 0, "test": 1}
MNIST_TRAIN = 8_000
MNIST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """N images with C channels on one H x W pixel grid (compared by identity).

    Attributes:
        name: short name (registry name, file stem or folder name).
        values: float32 [N, C, H, W], every value finite and in [0, 1].
        source: provenance: file path(s) or generator name with its parameters and seed, plus notes on anything
            converted, rescaled or skipped while loading.
        labels: optional int64 [N] class labels (the digit for glyphs and MNIST), or None.
    """

    name: str
    values: np.ndarray
    source: str
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        values = np.asarray(self.values)
        where = self.name or "dataset"
        if values.ndim != 4:
            raise DataError(f"{where}: values must have shape [N, C, H, W], got shape {values.shape}")
        if values.dtype.kind not in "fiub":
            raise DataError(f"{where}: values must be real numbers, got dtype {values.dtype}")
        values = values.astype(np.float32, copy=False)
        n, c, h, w = values.shape
        if n == 0 or c == 0:
            raise DataError(f"{where}: the dataset holds no images (shape {values.shape})")
        if h < 2 or w < 2:
            raise DataError(f"{where}: images must be at least 2x2 pixels, got {h}x{w}")
        finite = np.isfinite(values)
        if not finite.all():
            bad = int((~finite).reshape(n, -1).any(axis=1).sum())
            raise DataError(f"{where}: {bad} images contain NaN or inf; remove or impute them")
        if values.min() < 0 or values.max() > 1:
            raise DataError(f"{where}: pixel values must lie in [0, 1], found [{values.min():.4g}, "
                            f"{values.max():.4g}]; rescale them")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "labels", check_labels(self.labels, n, where))

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def channels(self) -> int:
        """Number of channels C (1 = grey, 3 = RGB)."""
        return int(self.values.shape[1])

    @property
    def size(self) -> tuple[int, int]:
        """Image size (H, W) in pixels."""
        return int(self.values.shape[2]), int(self.values.shape[3])

    def __repr__(self) -> str:
        n, c, h, w = self.values.shape
        return f"ImageDataset(name={self.name!r}, images={n}, channels={c}, size={h}x{w}, source={self.source!r})"


# ----------------------------------------------------------------------------------------------- helpers
def subsample_images(ds: ImageDataset, num: int | None, seed: int) -> ImageDataset:
    """The first ``num`` images of ``ds`` after a permutation seeded by ``seed`` (``ds`` itself if None/>= N)."""
    keep = subset_indices(len(ds), num, seed, ds.name)
    if keep is None:
        return ds
    labels = None if ds.labels is None else ds.labels[keep]
    return ImageDataset(ds.name, ds.values[keep], f"{ds.source}; {num} images drawn with seed {seed}", labels)


def resize_images(ds: ImageDataset, size: int | Sequence[int] | None) -> ImageDataset:
    """``ds`` resized to cover ``size`` (H, W) with its aspect ratio kept, then centre-cropped (see
    :func:`~engine.data.image_loaders.fit_size`); ``ds`` itself when None or already that size."""
    hw = parse_size(size, ds.name)
    if hw is None or hw == ds.size:
        return ds
    return ImageDataset(ds.name, fit_size(ds.values, hw),
                        f"{ds.source}; resized and centre-cropped to {hw[0]}x{hw[1]}", ds.labels)


def convert_channels(ds: ImageDataset, channels: int | None) -> ImageDataset:
    """Grey <-> RGB: grey is repeated over R, G, B; RGB -> grey is ``0.299 R + 0.587 G + 0.114 B``."""
    values, note = to_channels(ds.values, channels, ds.name)
    return ImageDataset(ds.name, values, f"{ds.source}; {note}", ds.labels) if note else ds


def _check_split(name: str, split: str) -> int:
    if split not in SPLIT_STREAM:
        raise DataError(f"{name}: unknown split {split!r}; use 'train' or 'test'")
    return SPLIT_STREAM[split]


# ----------------------------------------------------------------------------------------------- glyphs
GLYPH_SIZE = 28
GLYPH_NUM = {"train": 10_000, "test": 2_000}
DIGITS = "0123456789"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
GLYPH_BOX = 20 / 28
"""Longer side of a glyph's ink box as a fraction of the shorter image side (MNIST's 20-pixel box in 28)."""
STROKES = (0, 1, 2)
"""Pillow ``stroke_width`` levels, in pixels of a 112-pixel font (a 28-pixel image): stems of about 2.5, 3 and 3.5
output pixels, mean ink 0.11, 0.13, 0.15 per pixel (MNIST t10k: 0.12)."""
ROTATION_DEG = 12.0
SCALE = (0.9, 1.05)
SLANT = (-0.15, 0.35)
"""Horizontal shear x += slant * (height above the centre): positive leans right, as most handwriting does."""
WIDTH = (0.75, 1.05)
"""Horizontal squeeze: the font's digits are wider than handwritten ones."""
SHIFT_PX = 1.0
ELASTIC_PX = 1.5
MESH = 4
"""Elastic warp: a displacement of up to ELASTIC_PX output pixels at each node of a MESH x MESH grid over the image,
bilinear in between: a cheap smooth elastic distortion."""
SUPERSAMPLE = 2
_FONT_PER_PIXEL = 4
_WARP_CHUNK = 256
_JITTER = (f"rotation +-{ROTATION_DEG:g} deg, scale {SCALE[0]:g}-{SCALE[1]:g}, slant {SLANT[0]:g}..{SLANT[1]:g}, "
           f"width {WIDTH[0]:g}-{WIDTH[1]:g}, shift +-{SHIFT_PX:g} px, elastic +-{ELASTIC_PX:g} px on a "
           f"{MESH}x{MESH} mesh, stroke widths {STROKES[0]}-{STROKES[-1]} (per 112 px of font)")


def _default_font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's built-in font: the scalable Aileron Regular (Pillow >= 10.1 with FreeType), else its bitmap font."""
    try:
        return ImageFont.load_default(size=px)
    except TypeError:  # Pillow < 10.1 takes no size
        return ImageFont.load_default()


def _render(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, char: str, stroke: int, px: int) -> np.ndarray:
    """White-on-black anti-aliased bitmap of ``char`` at about ``px`` pixels per em, thickened by ``stroke``."""
    if isinstance(font, ImageFont.FreeTypeFont):
        image = Image.new("L", (2 * px, 2 * px))
        ImageDraw.Draw(image).text((px // 2, px // 2), char, fill=255, font=font, stroke_width=stroke,
                                   stroke_fill=255)
        return np.asarray(image)
    small = Image.new("L", (24, 24))  # bitmap font (about 11 px tall, no stroke support): upscale, then dilate
    ImageDraw.Draw(small).text((6, 6), char, fill=255, font=font)
    factor = max(1, round(px / 11))
    image = small.resize((24 * factor, 24 * factor), Image.Resampling.BICUBIC)
    return np.asarray(image.filter(ImageFilter.MaxFilter(2 * stroke + 1)) if stroke else image)


def _glyph_bank(chars: str, px: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Every char at every stroke level, cropped to one common box with a margin.

    Returns (ink float32 [chars * levels, th, tw] in [0, 1] with tile ``char * levels + level``, centre of mass
    [chars * levels, 2] as (x, y) in continuous tile coordinates (pixel (i, j) covers [j, j+1) x [i, i+1)), ink
    extent max(height, width) in pixels [chars * levels], font description).
    """
    font = _default_font(px)
    ink = np.stack([_render(font, char, round(level * px / 112), px) for char in chars for level in STROKES])
    rows, cols = np.nonzero(ink.max(axis=0))
    if rows.size == 0:
        raise DataError("glyphs: Pillow's default font draws nothing; check the Pillow install")
    margin = 2
    top, left = max(rows.min() - margin, 0), max(cols.min() - margin, 0)
    ink = ink[:, top:rows.max() + 1 + margin, left:cols.max() + 1 + margin]
    ink = ink.astype(np.float32) / np.float32(255)
    mass = ink.sum(axis=(1, 2), dtype=np.float64)
    if not (mass > 0).all():
        missing = chars[int(np.argmin(mass)) // len(STROKES)]
        raise DataError(f"glyphs: Pillow's default font draws nothing for {missing!r}; check the Pillow install")
    com = np.stack([(ink.sum(1) * (np.arange(ink.shape[2]) + 0.5)).sum(1) / mass,
                    (ink.sum(2) * (np.arange(ink.shape[1]) + 0.5)).sum(1) / mass], axis=-1)
    on_rows, on_cols = ink.max(axis=2) > 0, ink.max(axis=1) > 0
    height = on_rows.shape[1] - np.argmax(on_rows[:, ::-1], 1) - np.argmax(on_rows, 1)
    width = on_cols.shape[1] - np.argmax(on_cols[:, ::-1], 1) - np.argmax(on_cols, 1)
    if isinstance(font, ImageFont.FreeTypeFont):
        described = " ".join(font.getname()) + " (Pillow's default font)"
    else:
        described = "Pillow's bitmap default font"
    return ink, com, np.maximum(height, width).astype(np.float64), described


def glyphs(split: str = "train", *, size: int | Sequence[int] | None = None, num: int | None = None,
           seed: int = 0, letters: bool = False, **options: object) -> ImageDataset:
    """Digits (and, with ``letters=True``, capital letters) written in Pillow's built-in font under random
    affine and elastic jitter: white strokes on black, anti-aliased, float32 [num, 1, H, W], labels = index of
    the character in ``0-9`` (then ``A-Z`` = 10..35).

    Why: a default that needs no download and no extra dependency. scikit-learn's digits are 8x8 and
    scikit-learn is not a dependency; Pillow is, and since 10.1 it ships a scalable font (Aileron Regular;
    older Pillow or one without FreeType gives the bitmap font, upscaled and dilated instead of stroked).

    Each image is the inverse map of output pixel p to the glyph bitmap (rendered once per character and
    stroke level at 4 px per output px)::

        src(p) = c + A^{-1} (p + d(p) - o),   A = s R(theta) [[1, -slant], [0, 1]] diag(width, 1)

    with c the glyph's centre of mass and o the image centre plus a shift (so glyphs are centred by mass, as
    MNIST's are), s scaling the ink box's longer side to ``GLYPH_BOX`` of the image times ``SCALE``, and d a
    smooth elastic displacement: uniform offsets of up to ``ELASTIC_PX`` at the nodes of a ``MESH`` x ``MESH``
    grid, bilinearly interpolated. The glyph is sampled bilinearly (``torch.grid_sample``) on a 2x canvas and
    box-filtered down, so edges are anti-aliased. Measured: mean ink 0.13 per pixel (MNIST t10k: 0.12);
    10,000 images take about 0.4 s of one core (torch.set_num_threads(1)).

    Parameters are drawn as one uniform block [num, 8 + 2 (MESH + 1)^2] from ``SeedSequence([seed, 0 | 1])``
    (train | test), so image k is the same for every ``num > k``; train and test are independent streams.
    """
    if options:
        raise DataError(f"glyphs: unknown option(s) {', '.join(sorted(options))}; the only option is letters")
    stream = _check_split("glyphs", split)
    n = GLYPH_NUM[split] if num is None else num
    check_count("num", n, minimum=1, where="glyphs")
    check_count("seed", seed, minimum=0, where="glyphs")
    h, w = parse_size(size, "glyphs") or (GLYPH_SIZE, GLYPH_SIZE)
    chars = DIGITS + (LETTERS if letters else "")
    bank, com, extent, font_name = _glyph_bank(chars, _FONT_PER_PIXEL * min(h, w))
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), stream]))
    u = rng.random((int(n), 8 + 2 * (MESH + 1) ** 2))
    labels = np.minimum((u[:, 0] * len(chars)).astype(np.int64), len(chars) - 1)
    tile = labels * len(STROKES) + np.minimum((u[:, 1] * len(STROKES)).astype(np.int64), len(STROKES) - 1)
    k = SUPERSAMPLE
    angle = np.deg2rad(ROTATION_DEG * (2 * u[:, 2] - 1))
    scale = k * GLYPH_BOX * min(h, w) * (SCALE[0] + (SCALE[1] - SCALE[0]) * u[:, 3]) / extent[tile]
    slant = SLANT[0] + (SLANT[1] - SLANT[0]) * u[:, 4]
    width = WIDTH[0] + (WIDTH[1] - WIDTH[0]) * u[:, 5]
    cos, sin, one, zero = np.cos(angle), np.sin(angle), np.ones_like(angle), np.zeros_like(angle)
    rotate = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    shear = np.stack([np.stack([one, -slant], -1), np.stack([zero, one], -1)], -2)
    squeeze = np.stack([np.stack([width, zero], -1), np.stack([zero, one], -1)], -2)
    inverse = np.linalg.inv(scale[:, None, None] * rotate @ shear @ squeeze)  # canvas offset -> glyph offset
    centre = np.array([k * w / 2, k * h / 2]) + k * SHIFT_PX * (2 * u[:, 6:8] - 1)
    offset = com[tile] - np.einsum("nij,nj->ni", inverse, centre)
    nodes = k * ELASTIC_PX * (2 * u[:, 8:].reshape(-1, MESH + 1, MESH + 1, 2) - 1)
    out = _warp(torch.from_numpy(bank), tile, inverse, offset, nodes, (k * h, k * w), k)
    source = (f"glyphs: {'digits and capital letters' if letters else 'digits'} in {font_name}, {h}x{w}, "
              f"{_JITTER}; split {split}, seed {seed} (SeedSequence([{seed}, {stream}])), {len(u)} images")
    return ImageDataset("glyphs", out, source, labels)


def _warp(bank: torch.Tensor, tile: np.ndarray, inverse: np.ndarray, offset: np.ndarray, nodes: np.ndarray,
          canvas: tuple[int, int], k: int) -> np.ndarray:
    """Sample ``bank[tile[i]]`` [th, tw] at ``inverse[i] (p + d_i(p)) + offset[i]`` for the pixel centres p of a
    ``canvas`` (kH, kW), d_i bilinear from ``nodes[i]`` [M+1, M+1, 2]; average k x k blocks -> float32 [N, 1, H, W].

    The source point is linear in per-pixel features (x, y, 1, the (M+1)^2 bilinear node weights), so the
    sampling grid of a whole chunk is one matrix product ``features [P, F] @ coefficients [F, chunk * 2]``.
    """
    th, tw = bank.shape[1:]
    n, rows, cols = len(tile), nodes.shape[1], nodes.shape[2]
    ys, xs = torch.meshgrid(torch.arange(canvas[0]) + 0.5, torch.arange(canvas[1]) + 0.5, indexing="ij")
    hats = torch.einsum("yr,xq->yxrq", _hat_weights(canvas[0], rows), _hat_weights(canvas[1], cols))
    features = torch.cat([xs[..., None], ys[..., None], torch.ones(*canvas, 1), hats.reshape(*canvas, -1)], -1)
    features = features.reshape(-1, 3 + rows * cols).float()  # [P, F]
    to_grid = np.array([2.0 / tw, 2.0 / th])  # continuous tile coordinates -> grid_sample's [-1, 1]
    coefficients = np.concatenate([inverse.transpose(0, 2, 1), (offset - 1.0 / to_grid)[:, None, :],
                                   np.einsum("nij,nrqj->nrqi", inverse, nodes).reshape(n, -1, 2)], axis=1)
    coefficients = torch.from_numpy((coefficients * to_grid).astype(np.float32))  # [N, F, 2]
    out = np.empty((n, 1, canvas[0] // k, canvas[1] // k), dtype=np.float32)
    for start in range(0, n, _WARP_CHUNK):
        part = coefficients[start:start + _WARP_CHUNK]
        grid = (features @ part.permute(1, 0, 2).reshape(features.shape[1], -1)).reshape(-1, len(part), 2)
        grid = grid.permute(1, 0, 2).reshape(len(part), *canvas, 2)
        drawn = torch.nn.functional.grid_sample(bank[torch.from_numpy(tile[start:start + len(part)])][:, None], grid,
                                                mode="bilinear", padding_mode="zeros", align_corners=False)
        out[start:start + len(part)] = torch.nn.functional.avg_pool2d(drawn, k).clamp_(0.0, 1.0).numpy()
    return out


def _hat_weights(length: int, nodes: int) -> torch.Tensor:
    """[length, nodes] linear-interpolation weights from ``nodes`` equispaced nodes spanning pixels 0..length-1."""
    position = torch.arange(length, dtype=torch.float64) * (nodes - 1) / max(length - 1, 1)
    return torch.clamp(1.0 - (position[:, None] - torch.arange(nodes)[None, :]).abs(), min=0.0)


# ----------------------------------------------------------------------------------------------- MNIST
_MNIST_CACHE: dict[tuple, tuple[np.ndarray, np.ndarray, str]] = {}
"""Parsed t10k arrays by (path, mtime): repeated loads cost nothing."""


def mnist_dir() -> Path:
    """``shared_data_dir() / "images" / "mnist"``."""
    return shared_data_dir() / "images" / "mnist"


def mnist(split: str = "train", **options: object) -> ImageDataset:
    """MNIST t10k digits [N, 1, 28, 28] (white on black), labels 0..9: train = first 8,000, test = last 2,000."""
    if options:
        raise DataError(f"mnist: unknown option(s) {', '.join(sorted(options))}")
    _check_split("mnist", split)
    images, label_file = (mnist_dir() / name for name in MNIST_FILES)
    for p in (images, label_file):
        if not p.is_file():
            raise DataError(f"mnist: data file {p} not found; set HDM_DATA_DIR to the shared data folder")
    key = (str(images), images.stat().st_mtime_ns, label_file.stat().st_mtime_ns)
    if key not in _MNIST_CACHE:
        pixels = read_idx_file(images)
        if pixels.labels is None or pixels.values.shape[1:] != (1, 28, 28) or len(pixels.values) <= MNIST_TRAIN:
            raise DataError(f"{images}: expected more than {MNIST_TRAIN} labelled 28x28 images, got "
                            f"{pixels.values.shape}; restore the original t10k files")
        _MNIST_CACHE[key] = (pixels.values, pixels.labels, "; ".join(pixels.notes))
    values, labels, notes = _MNIST_CACHE[key]
    part = slice(0, MNIST_TRAIN) if split == "train" else slice(MNIST_TRAIN, None)
    rows = f"images {part.start or 0}..{(part.stop or len(values)) - 1}"
    source = f"{images} ({notes}); split {split} = t10k {rows} (first {MNIST_TRAIN} train, the rest held-out test)"
    return ImageDataset("mnist", values[part].copy(), source, labels[part].copy())


# ----------------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class _Entry:
    builder: Callable[..., ImageDataset]
    description: str
    files: tuple[str, ...] = ()  # under shared_data_dir(); none for generated sets


IMAGE_REGISTRY: dict[str, _Entry] = {
    "glyphs": _Entry(glyphs, "digits 0-9 in Pillow's font with affine/elastic jitter, 28x28 grey (no download)"),
    "mnist": _Entry(mnist, "MNIST t10k handwritten digits, 28x28 grey: first 8,000 train, last 2,000 test",
                    tuple(f"images/mnist/{name}" for name in MNIST_FILES)),
}


def list_image_datasets() -> list[DatasetInfo]:
    """Every registered image dataset with whether it can be loaded here (real sets need the shared data)."""
    return [DatasetInfo(name, e.description, all((shared_data_dir() / f).is_file() for f in e.files),
                        "real" if e.files else "generated") for name, e in IMAGE_REGISTRY.items()]


def load_image_file(path: str | Path, *, size: int | Sequence[int] | None = None,
                    channels: int | None = None) -> ImageDataset:
    """Every image of one file or folder (see :mod:`engine.data.image_loaders` for the formats and rules).

    Args:
        path: a picture, IDX, ``.npy``, ``.npz`` (``file.npz:key``), ``.h5``/``.hdf5`` (``file.h5:name``) file,
            or a folder of pictures.
        size: int or (H, W): resize to cover it and centre-crop; None keeps the size (a folder's images must
            then all have one size).
        channels: 1 or 3 to convert grey <-> RGB; None keeps the file's.
    """
    hw = parse_size(size, str(path))
    where, pixels = read_any(path, hw)
    values, note = to_channels(pixels.values, channels, str(where))
    notes = pixels.notes + ([note] if note else []) + ([f"resized and centre-cropped to {hw[0]}x{hw[1]}"]
                                                       if hw is not None else [])
    key = split_key(path)[1]
    source = str(where.resolve()) + (f":{key}" if key else "") + (f" ({'; '.join(notes)})" if notes else "")
    return ImageDataset(where.stem or where.name, values, source, pixels.labels)


def load_image_folder(path: str | Path, *, size: int | Sequence[int] | None = None,
                      channels: int | None = None) -> ImageDataset:
    """Every picture directly inside the folder ``path`` (see :func:`load_image_file`)."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder" + ("; use load_image_file for one file" if folder.exists()
                                                     else "; check the path"))
    return load_image_file(folder, size=size, channels=channels)


def load_image_dataset(spec: str | Path, split: str = "train", *, size: int | Sequence[int] | None = None,
                       num: int | None = None, seed: int = 0, channels: int | None = None,
                       **options: object) -> ImageDataset:
    """An image dataset by registry name or path.

    Args:
        spec: a name of :data:`IMAGE_REGISTRY` (case-insensitive) or a path accepted by :func:`load_image_file`.
        split: ``"train"`` or ``"test"``; a file or folder has no held-out split (``"train"`` = all of it).
        size: int or (H, W). glyphs: rendered at that size; MNIST and files: resized to cover it and
            centre-cropped.
        num: glyphs: how many to generate (default 10,000 train / 2,000 test); MNIST and files: keep the
            first ``num`` after a shuffle seeded by ``seed``.
        seed: seed of the generator / the shuffle.
        channels: 1 or 3 to convert grey <-> RGB.
        **options: generator options (``letters`` for glyphs).

    Returns:
        An :class:`ImageDataset`, values float32 [N, C, H, W] in [0, 1].
    """
    key = str(spec).strip().lower()
    entry = IMAGE_REGISTRY.get(key)
    check_count("seed", seed, minimum=0, where=str(spec))
    if entry is not None and not entry.files:
        return convert_channels(entry.builder(split, size=size, num=num, seed=seed, **options), channels)
    if entry is not None:
        parse_size(size, key)
        ds = subsample_images(entry.builder(split, **options), num, seed)
        return convert_channels(resize_images(ds, size), channels)
    path, _ = split_key(spec)
    if not path.exists() and not path.suffix and not any(sep in str(spec) for sep in ("/", "\\")):
        raise DataError(f"unknown image dataset {str(spec)!r}; choose one of {', '.join(IMAGE_REGISTRY)} "
                        "or give an image file or folder path")
    if split != "train":
        raise DataError(f"{path}: an image file or folder has no held-out split (asked for {split!r}); use split "
                        "'train' for all images, or give the test images as their own file")
    if options:
        raise DataError(f"{path}: options {', '.join(sorted(options))} apply only to generated datasets")
    return subsample_images(load_image_file(spec, size=size, channels=channels), num, seed)
