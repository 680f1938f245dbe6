"""Readers for image files: each returns validated float32 pixels [N, C, H, W] in [0, 1].

These functions work on arrays; :mod:`engine.data.images` wraps their result in an
:class:`~engine.data.images.ImageDataset`. Every problem raises a one-line :class:`DataError` naming the file
and saying what to do.

Formats (chosen by name):

- **picture files** (``.png``, ``.jpg``/``.jpeg``, ``.bmp``, ``.gif``, ``.tif``/``.tiff``, ``.webp``), one image
  each, decoded by Pillow: the EXIF orientation is applied; palette and WebP images (formats without a grey
  mode) are grey when R = G = B everywhere, else RGB; ``1``/``L``/``I;16``/``I``/``F`` images are grey, the rest
  RGB; an alpha channel
  is composited on white, ``c a + (1 - a)``. 8-bit values are divided by 255, 16-bit ones (``I;16``, or
  ``I`` holding 0..65535) by 65535 (never clipped), float (``F``) ones follow the array rule below. Animated
  files give their first frame. Pillow itself reads 16-bit colour PNGs as 8-bit.
- **folders** of picture files (not recursive): hidden files (``.DS_Store``, ``._x.png`` ...) and the OS
  thumbnail files ``Thumbs.db`` / ``desktop.ini`` are skipped and counted in the notes; any other file that is
  not a picture is an error naming it, so a stray file is never silently dropped or silently trained on.
  Files are read in natural name order (``img2`` before ``img10``). The set is grey when every image is grey,
  else RGB (grey images repeated over R, G, B). Without ``size`` all images must share one size.
- **IDX** (MNIST format: ``.idx``, ``*-idx3-ubyte``, each optionally ``.gz``): magic ``0 0 type ndim``,
  ``ndim`` big-endian uint32 sizes, then the values. Images are [N, H, W] (or [N, H, W, C]). The labels of
  ``<x>-images-idx3-ubyte[.gz]`` are read from ``<x>-labels-idx1-ubyte[.gz]`` beside it when present.
- **arrays** in ``.npy``, ``.npz`` (the only array, or ``file.npz:key``) and ``.h5``/``.hdf5`` (``file.h5:name``,
  else the only 3-D/4-D dataset): [N, H, W], [N, H, W, C] or [N, C, H, W]. A 4-D array is channels-last when
  its last axis is 1, 3 or 4 and its second is not. Channels are kept as they are (a 2-D field may have any
  number), so a 4-channel array is not treated as RGBA. An optional ``labels`` array [N] (npz key, or a
  dataset named ``labels`` beside the images) gives the labels.

Value rule for arrays (and float pictures): unsigned 8/16-bit integers are divided by 255 / 65535; other
integer types must be >= 0 and are divided by 255 when they are at most 255, else by 65535 when at most 65535
(the divisor is recorded); booleans are 0/1; floats in [0, 1] are kept, floats in [-1, 1] are mapped by
``(x + 1) / 2`` (recorded), anything else is an error. A tolerance of 1e-5 absorbs round-off at the ends.
"""

from __future__ import annotations

import gzip
import re
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.errors import DataError

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
ARRAY_SUFFIXES = (".npy", ".npz", ".h5", ".hdf5")
SKIPPED_NAMES = frozenset({"thumbs.db", "desktop.ini"})
"""OS thumbnail/settings files skipped in folders (besides every name starting with a dot)."""
RANGE_TOLERANCE = 1e-5
LUMA = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma weights of RGB -> grey (Pillow's ``convert("L")``); they sum to 1."""
_IDX_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_IDX_NAME = re.compile(r"(\.idx|-idx\d+-ubyte)$", re.IGNORECASE)
_KEYED = re.compile(r"^(.*\.(?:npz|h5|hdf5)):([^:]+)$", re.IGNORECASE)
_CHUNK = 512


@dataclass
class Pixels:
    """What a reader returns: values float32 [N, C, H, W] in [0, 1], labels int64 [N] or None, notes."""

    values: np.ndarray
    labels: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------- helpers
def check_file(path: Path) -> Path:
    """``path`` when it is an existing file; DataError otherwise."""
    if not path.exists():
        raise DataError(f"{path}: file not found; check the path")
    if path.is_dir():
        raise DataError(f"{path}: is a folder; load it as an image folder or give one file inside it")
    return path


def parse_size(size: int | Sequence[int] | None, where: str) -> tuple[int, int] | None:
    """``size`` as (H, W): an int n means (n, n); None stays None. DataError unless both are integers >= 2."""
    if size is None:
        return None
    if isinstance(size, int | np.integer):
        pair: tuple[object, ...] = (size, size)
    else:
        pair = tuple(size) if isinstance(size, Sequence) and not isinstance(size, str) else ()
    if len(pair) != 2 or not all(isinstance(s, int | np.integer) and not isinstance(s, bool) and s >= 2
                                 for s in pair):
        raise DataError(f"{where}: image size must be an integer >= 2 or a pair (H, W) of them, got {size!r}")
    return int(pair[0]), int(pair[1])


def fit_size(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize [N, C, h, w] to cover (H, W) keeping the aspect ratio, then centre-crop to [N, C, H, W].

    The scale is ``s = max(H / h, W / w)``; the image is resampled to ``(max(H, round(h s)), max(W, round(w s)))``
    by bilinear interpolation with an antialiasing (triangle) filter when shrinking, so every output is a convex
    combination of inputs and stays in [0, 1]; then rows ``(h' - H) // 2 ...`` and columns likewise are kept.
    Returns the input itself when it already has that size.
    """
    n, c, h, w = values.shape
    big_h, big_w = size
    if (h, w) == (big_h, big_w):
        return values
    s = max(big_h / h, big_w / w)
    rh, rw = max(big_h, round(h * s)), max(big_w, round(w * s))
    top, left = (rh - big_h) // 2, (rw - big_w) // 2
    out = np.empty((n, c, big_h, big_w), dtype=np.float32)
    for start in range(0, n, _CHUNK):
        x = torch.from_numpy(np.ascontiguousarray(values[start:start + _CHUNK], dtype=np.float32))
        if (rh, rw) != (h, w):
            x = torch.nn.functional.interpolate(x, size=(rh, rw), mode="bilinear", align_corners=False,
                                                antialias=True)
        out[start:start + _CHUNK] = x[..., top:top + big_h, left:left + big_w].clamp_(0.0, 1.0).numpy()
    return out


def to_channels(values: np.ndarray, channels: int | None, where: str) -> tuple[np.ndarray, str]:
    """Grey [N, 1, H, W] <-> RGB [N, 3, H, W]: grey is repeated; RGB -> grey is the BT.601 luma (:data:`LUMA`).

    Returns (values, note); the note is empty when nothing changed.
    """
    if channels is None:
        return values, ""
    if channels not in (1, 3) or isinstance(channels, bool):
        raise DataError(f"{where}: channels must be 1 (grey) or 3 (RGB), got {channels!r}")
    if channels == values.shape[1]:
        return values, ""
    have = values.shape[1]
    if channels == 3 and have == 1:
        return np.repeat(values, 3, axis=1), "grey repeated to RGB"
    if channels == 1 and have == 3:
        grey = np.tensordot(np.asarray(LUMA, dtype=np.float32), values, axes=([0], [1]))[:, None]
        return np.clip(grey, 0.0, 1.0).astype(np.float32), "RGB converted to grey (BT.601 luma)"
    raise DataError(f"{where}: cannot convert {have} channels to {channels}; only grey <-> RGB is supported")


def to_unit_range(values: np.ndarray, where: str) -> tuple[np.ndarray, str]:
    """Pixel values of any real dtype -> float32 in [0, 1] by the module's value rule. Returns (values, note)."""
    kind = values.dtype.kind
    if kind == "b":
        return values.astype(np.float32), ""
    if kind in "iu":
        return _integers_to_unit(values, where)
    if kind != "f":
        raise DataError(f"{where}: pixel values must be numbers, got dtype {values.dtype}")
    check_finite(values, where)
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    tol = RANGE_TOLERANCE
    if lo >= -tol and hi <= 1 + tol:
        return np.clip(values, 0.0, 1.0).astype(np.float32), ""
    if lo >= -1 - tol and hi <= 1 + tol:
        scaled = np.clip((values.astype(np.float64) + 1.0) / 2.0, 0.0, 1.0).astype(np.float32)
        return scaled, "float values in [-1, 1] mapped to [0, 1] by (x + 1) / 2"
    raise DataError(f"{where}: float values span [{lo:.4g}, {hi:.4g}]; images must lie in [0, 1] or [-1, 1] "
                    "(for 0..255 data divide by 255 or save as uint8)")


def _integers_to_unit(values: np.ndarray, where: str) -> tuple[np.ndarray, str]:
    if values.dtype.kind == "u" and values.dtype.itemsize <= 2:
        return (values.astype(np.float32) / np.float32(np.iinfo(values.dtype).max)), ""
    lo, hi = (int(values.min()), int(values.max())) if values.size else (0, 0)
    if lo < 0:
        raise DataError(f"{where}: integer pixels must be >= 0, found {lo}; shift them or save as uint8")
    for top in (255, 65535):
        if hi <= top:
            note = f"{values.dtype} values divided by {top} (they lie in 0..{hi})"
            return (values.astype(np.float64) / top).astype(np.float32), note
    raise DataError(f"{where}: integer pixels reach {hi} (> 65535); save them as uint8/uint16 or floats in [0, 1]")


def check_finite(values: np.ndarray, where: str) -> None:
    """DataError naming the count and first index of images [N, ...] that hold NaN or inf."""
    if values.dtype.kind != "f" or values.size == 0:
        return
    bad = ~np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
    if bad.any():
        raise DataError(f"{where}: {int(bad.sum())} image(s) contain NaN or inf (first: index {int(np.argmax(bad))}); "
                        "remove or impute them")


def to_nchw(values: np.ndarray, where: str) -> tuple[np.ndarray, str]:
    """[N, H, W] / [N, H, W, C] / [N, C, H, W] -> [N, C, H, W] (channels-last when the last axis is 1, 3 or 4
    and the second is not). Returns (values, note)."""
    if values.ndim == 3:
        return values[:, None], ""
    if values.ndim == 4:
        if values.shape[-1] in (1, 3, 4) and values.shape[1] not in (1, 3, 4):
            return np.moveaxis(values, -1, 1), "channels-last [N, H, W, C] moved to [N, C, H, W]"
        return values, ""
    raise DataError(f"{where}: expected an image array [N, H, W], [N, H, W, C] or [N, C, H, W], got "
                    f"{values.ndim}-D shape {values.shape}" + ("; reshape flattened images to [N, H, W]"
                                                               if values.ndim == 2 else ""))


def array_pixels(values: np.ndarray, where: str, labels: np.ndarray | None = None) -> Pixels:
    """A raw image array (see :func:`to_nchw`, :func:`to_unit_range`) and optional labels -> :class:`Pixels`."""
    values = np.asarray(values)
    values, layout = to_nchw(values, where)
    n, c, h, w = values.shape
    if n == 0:
        raise DataError(f"{where}: the array holds no images")
    if h < 2 or w < 2 or c < 1:
        raise DataError(f"{where}: images must be at least 2x2 with >= 1 channel, got [N, C, H, W] = {values.shape}")
    values, scaled = to_unit_range(values, where)
    return Pixels(np.ascontiguousarray(values), check_labels(labels, n, where), [s for s in (layout, scaled) if s])


def check_labels(labels: np.ndarray | None, n: int, where: str) -> np.ndarray | None:
    """Labels as int64 [n] (whole-number floats accepted); DataError for other shapes or values."""
    if labels is None:
        return None
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise DataError(f"{where}: labels must have shape [{n}] (one per image), got {labels.shape}")
    if labels.dtype.kind in "iub":
        return labels.astype(np.int64)
    if labels.dtype.kind == "f" and np.isfinite(labels).all() and (labels == np.round(labels)).all():
        return labels.astype(np.int64)
    raise DataError(f"{where}: labels must be whole numbers, got dtype {labels.dtype}")


# ----------------------------------------------------------------------------------------------- pictures
def _open_error(path: Path, exc: BaseException) -> DataError:
    if isinstance(exc, UnidentifiedImageError):
        return DataError(f"{path}: not a readable image (Pillow cannot identify it); re-export it or remove it")
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return DataError(f"{path}: cannot be decoded ({text}); the file may be truncated or corrupt, "
                     "re-export it or remove it")


def read_picture(path: Path) -> tuple[np.ndarray, bool, list[str]]:
    """One picture file -> (float32 [C, h, w] in [0, 1] with C = 1 or 3, whether it is grey, notes)."""
    try:
        with Image.open(path) as opened:
            no_grey_mode = opened.format == "WEBP" or opened.mode in ("P", "PA")
            frames = int(getattr(opened, "n_frames", 1))
            opened.load()
            orientation = opened.getexif().get(0x0112, 1)
            image = ImageOps.exif_transpose(opened)
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, Image.DecompressionBombError) as exc:
        raise _open_error(path, exc) from None
    notes = [f"EXIF orientation {orientation} applied"] if orientation not in (None, 1) else []
    if frames > 1:
        notes.append(f"first of {frames} frames")
    mode = image.mode
    if mode in ("P", "PA"):
        image = image.convert("RGBA")
    elif mode in ("1", "La"):
        image = image.convert("L" if mode == "1" else "LA")
    elif mode == "RGBa":
        image = image.convert("RGBA")
    elif mode not in ("L", "LA", "RGB", "RGBA", "I", "F") and not mode.startswith("I;16"):
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV
    raw = np.asarray(image)
    where = str(path)
    if image.mode == "I":
        if raw.size and (raw.min() < 0 or raw.max() > 65535):
            raise DataError(f"{path}: 32-bit integer pixels outside 0..65535; save it as 8/16-bit or float")
        pixels = raw.astype(np.float32) / np.float32(65535)
    elif image.mode == "F":
        pixels, note = to_unit_range(raw[None], where)
        pixels = pixels[0]
        notes += [note] if note else []
    else:
        pixels, _ = to_unit_range(raw, where)  # uint8 / 255 or uint16 / 65535
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.shape[-1] in (2, 4):  # composite on white: c a + 1 - a
        alpha = pixels[..., -1:]
        pixels = pixels[..., :-1] * alpha + (1.0 - alpha)
        notes += ["alpha composited on white"] if (alpha < 1).any() else []
    grey = pixels.shape[-1] == 1
    if no_grey_mode and (pixels[..., :1] == pixels).all():
        pixels, grey = pixels[..., :1], True
    return np.ascontiguousarray(np.moveaxis(pixels, -1, 0), dtype=np.float32), grey, notes


def read_picture_file(path: Path, size: tuple[int, int] | None) -> Pixels:
    """One picture file as a set of one image [1, C, H, W]."""
    pixels, _, notes = read_picture(check_file(path))
    values = pixels[None]
    if size is not None:
        values = fit_size(values, size)
    return Pixels(values, None, notes)


def _natural_key(name: str) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def read_folder(folder: Path, size: tuple[int, int] | None) -> Pixels:
    """Every picture directly inside ``folder`` -> [N, C, H, W] (see the module doc for the rules)."""
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found; check the path")
    entries = sorted(folder.iterdir(), key=lambda p: _natural_key(p.name))
    skipped = [p for p in entries if p.name.startswith(".") or p.name.lower() in SKIPPED_NAMES]
    visible = [p for p in entries if p not in skipped]
    subfolders = [p for p in visible if p.is_dir()]
    pictures = [p for p in visible if p.is_file() and p.suffix.lower() in PICTURE_SUFFIXES]
    others = [p for p in visible if p not in subfolders and p not in pictures]
    kinds = ", ".join(PICTURE_SUFFIXES)
    if not pictures:
        if others:
            raise DataError(f"{folder}: holds no images ({kinds}), only other files such as {others[0].name}; "
                            "give a folder of pictures or an array/IDX file")
        inside = f"only subfolders such as {subfolders[0].name}; " if subfolders else "the folder is empty; "
        raise DataError(f"{folder}: {inside}images are read from the folder itself ({kinds})")
    if others:
        more = f" (and {len(others) - 1} more)" if len(others) > 1 else ""
        raise DataError(f"{folder}: {others[0].name}{more} is not an image ({kinds}); move it out of the folder")
    decoded = []  # one at a time, resized at once, so a folder of large photos never sits in memory at full size
    for p in pictures:
        pix, grey, notes = read_picture(p)
        if size is not None:
            pix = fit_size(pix[None], size)[0]
        elif decoded and pix.shape[1:] != decoded[0][0].shape[1:]:
            first = decoded[0][0].shape[1:]
            raise DataError(f"{folder}: images differ in size ({pictures[0].name} is {first[0]}x{first[1]}, "
                            f"{p.name} is {pix.shape[1]}x{pix.shape[2]}, HxW); pass --image-size (size= in "
                            "Python) to resize and centre-crop them to one size")
        decoded.append((pix, grey, notes))
    rgb = not all(grey for _, grey, _ in decoded)
    images = [np.repeat(pix, 3, axis=0) if rgb and pix.shape[0] == 1 else pix for pix, _, _ in decoded]
    notes = [f"{len(pictures)} images"]
    if rgb and any(grey for _, grey, _ in decoded):
        notes.append(f"{sum(grey for _, grey, _ in decoded)} grey images repeated to RGB")
    per_file = sorted({n for _, _, ns in decoded for n in ns})
    notes += [f"{n} ({sum(n in ns for _, _, ns in decoded)} files)" for n in per_file]
    if skipped:
        notes.append(f"skipped {len(skipped)} hidden/system entries ({', '.join(p.name for p in skipped[:3])}"
                     f"{', ...' if len(skipped) > 3 else ''})")
    if subfolders:
        notes.append(f"ignored {len(subfolders)} subfolder(s)")
    return Pixels(np.stack(images), None, notes)


# ----------------------------------------------------------------------------------------------- IDX
def is_idx(path: Path) -> bool:
    """Whether ``path`` is named like an IDX file (``.idx``, ``*-idx3-ubyte``, optionally ``.gz``)."""
    name = path.name[:-3] if path.name.lower().endswith(".gz") else path.name
    return bool(_IDX_NAME.search(name))


def _read_bytes(path: Path) -> bytes:
    try:
        raw = check_file(path).read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror}); check its permissions") from None
    if not path.name.lower().endswith(".gz"):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot be decompressed ({exc}); the file may be truncated, "
                        "download it again") from None


def read_idx(path: Path) -> np.ndarray:
    """An IDX file -> its array (shape from the header, dtype from the type byte), header fully validated."""
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES or data[3] == 0:
        raise DataError(f"{path}: bad IDX magic number {data[:4].hex() or '(empty file)'}; expected 0000 then a "
                        "type byte (08 = uint8 ...) and a dimension count; is this an MNIST-format file?")
    dtype, ndim = _IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: the IDX header promises {ndim} dimensions but the file ends after "
                        f"{len(data)} bytes; the file is truncated")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(f"{path}: the IDX header says {'x'.join(map(str, dims))} values ({expected} bytes) but "
                        f"{len(data) - header} bytes follow; the file is truncated or not IDX")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def labels_beside(path: Path) -> Path | None:
    """``<x>-labels-idx1-ubyte[.gz]`` for ``<x>-images-idx3-ubyte[.gz]`` when that file exists."""
    if "images-idx3" not in path.name:
        return None
    base = path.name.replace("images-idx3", "labels-idx1")
    base = base[:-3] if base.lower().endswith(".gz") else base
    for name in (base, base + ".gz"):
        if (path.parent / name).is_file():
            return path.parent / name
    return None


def read_idx_file(path: Path) -> Pixels:
    """IDX images [N, H, W] (+ labels from the matching ``labels-idx1`` file) -> :class:`Pixels`."""
    values = read_idx(path)
    if values.ndim not in (3, 4):
        hint = "; this looks like a label file, give the images file" if values.ndim == 1 else ""
        raise DataError(f"{path}: IDX images must be 3-D [N, H, W] (or 4-D), got shape {values.shape}{hint}")
    label_path = labels_beside(path)
    labels = None
    if label_path is not None:
        labels = read_idx(label_path)
        if labels.shape != (values.shape[0],):
            raise DataError(f"{label_path}: {labels.shape} labels for {values.shape[0]} images in {path.name}; "
                            "the label file does not match")
    pixels = array_pixels(values, str(path), labels)
    if label_path is not None:
        pixels.notes.append(f"labels from {label_path.name}")
    return pixels


# ----------------------------------------------------------------------------------------------- arrays
def split_key(spec: str | Path) -> tuple[Path, str | None]:
    """``file.npz:key`` / ``file.h5:name`` -> (path, key); anything else -> (path, None)."""
    path = Path(str(spec)).expanduser()
    match = _KEYED.match(str(spec))
    if path.exists() or match is None:
        return path, None
    return Path(match.group(1)).expanduser(), match.group(2)


def _unsafe(path: Path, exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return "it holds Python objects, which are not loaded for safety" if "pickle" in text.lower() else text


def read_numpy_file(path: Path, key: str | None) -> Pixels:
    """``.npy`` image array, or ``.npz`` with its only array / ``key`` (plus optional ``labels``)."""
    check_file(path)
    where, picked = (f"{path}:{key}" if key else str(path)), False
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            if key is not None:
                raise DataError(f"{path}: a .npy file holds one array; drop ':{key}'")
            return array_pixels(loaded, where)
        with loaded:
            names = list(loaded.files)
            if key is None:
                images = [k for k in names if k != "labels"]
                if len(images) != 1:
                    raise DataError(f"{path}: holds arrays {', '.join(names) or '(none)'}; pick the images "
                                    f"with {path.name}:<name>")
                key, picked = images[0], True
            if key not in names:
                raise DataError(f"{path}: no array named {key!r} (found {', '.join(names)})")
            values = loaded[key]
            labels = loaded["labels"] if "labels" in names and key != "labels" else None
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot be read as a NumPy file ({_unsafe(path, exc)}); "
                        "save it with numpy.save or numpy.savez") from None
    pixels = array_pixels(values, where, labels)
    pixels.notes += [f"array {key!r}, the only one besides labels"] if picked else []
    return pixels


def _image_datasets(f: object) -> list[str]:
    """Names of every 3-D/4-D dataset in an open h5py file, in visiting order."""
    import h5py

    found: list[str] = []

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset) and obj.ndim in (3, 4):
            found.append(name)

    f.visititems(visit)
    return found


def read_hdf5_file(path: Path, key: str | None) -> Pixels:
    """``.h5``/``.hdf5``: dataset ``key``, else the only 3-D/4-D dataset; ``labels`` beside it when present."""
    import h5py

    check_file(path)
    picked = False
    try:
        with h5py.File(path, "r") as f:
            if key is None:
                found = _image_datasets(f)
                if len(found) != 1:
                    what = f"several image datasets ({', '.join(found)})" if found else "no 3-D/4-D dataset"
                    raise DataError(f"{path}: {what}; pick one with {path.name}:<name>")
                key, picked = found[0], True
            node = f.get(key)
            if not isinstance(node, h5py.Dataset):
                raise DataError(f"{path}: no dataset named {key!r} (top level holds {', '.join(f.keys())})")
            values = node[()]
            sibling = node.parent.get("labels")
            labels = sibling[()] if isinstance(sibling, h5py.Dataset) and sibling.name != node.name else None
    except DataError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise DataError(f"{path}: cannot be read as HDF5 ({exc}); the file may be truncated or not HDF5") from None
    pixels = array_pixels(values, f"{path}:{key}", labels)
    pixels.notes += [f"dataset {key!r}, the only 3-D/4-D one"] if picked else []
    return pixels


# ----------------------------------------------------------------------------------------------- dispatch
def read_any(spec: str | Path, size: tuple[int, int] | None) -> tuple[Path, Pixels]:
    """A folder, picture, IDX or array file (``file.npz:key`` / ``file.h5:name`` allowed) -> (path, pixels),
    resized and centre-cropped to ``size`` when given."""
    path, key = split_key(spec)
    suffix = path.suffix.lower()
    if path.is_dir():
        return path, read_folder(path, size)
    if key is None and suffix in PICTURE_SUFFIXES:
        return path, read_picture_file(path, size)
    if key is None and is_idx(path):
        pixels = read_idx_file(path)
    elif suffix in (".npy", ".npz"):
        pixels = read_numpy_file(path, key)
    elif suffix in (".h5", ".hdf5"):
        pixels = read_hdf5_file(path, key)
    else:
        check_file(path)
        raise DataError(f"{path}: unknown image file type {suffix or '(no extension)'!r}; use a folder of "
                        f"pictures, {', '.join(PICTURE_SUFFIXES + ARRAY_SUFFIXES)} or an IDX file (.idx, -idx3-ubyte)")
    if size is not None:
        pixels.values = fit_size(pixels.values, size)
    return path, pixels
