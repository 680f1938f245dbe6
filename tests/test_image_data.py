"""engine.data.images / image_loaders: the container, glyphs, MNIST, picture/IDX/array loaders and bad input."""

from __future__ import annotations

import gzip
import io
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image, ImageFont

from engine.data import images as image_module
from engine.data.image_loaders import LUMA, fit_size
from engine.data.images import (
    ImageDataset,
    convert_channels,
    glyphs,
    list_image_datasets,
    load_image_dataset,
    load_image_file,
    load_image_folder,
    mnist,
    resize_images,
    subsample_images,
)
from engine.data.registry import DatasetInfo
from engine.errors import DataError
from engine.paths import shared_data_dir

MNIST_DIR = shared_data_dir() / "images" / "mnist"
needs_mnist = pytest.mark.skipif(not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
                                 reason="shared MNIST folder absent")


def rng_u8(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def save(array: np.ndarray, path: Path, **kwargs: object) -> Path:
    Image.fromarray(array).save(path, **kwargs)
    return path


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    dtype = {0x08: ">u1", 0x0D: ">f4"}[type_code]
    head = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return head + np.ascontiguousarray(array, dtype=dtype).tobytes()


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


# ----------------------------------------------------------------------------------------------- container
def test_dataset_validates_and_converts():
    ds = ImageDataset("x", np.zeros((2, 1, 3, 4), dtype=np.float64), "test", labels=np.array([1.0, 2.0]))
    assert ds.values.dtype == np.float32 and ds.labels.dtype == np.int64
    assert (len(ds), ds.channels, ds.size) == (2, 1, (3, 4))
    assert ds != ImageDataset("x", ds.values, "test")  # compared by identity
    with pytest.raises(AttributeError):
        ds.name = "y"  # frozen
    bad = [
        (np.zeros((2, 3, 4)), "[N, C, H, W]"),
        (np.full((1, 1, 3, 3), np.nan), "NaN"),
        (np.full((1, 1, 3, 3), 1.5), "[0, 1]"),
        (np.zeros((0, 1, 3, 3)), "no images"),
        (np.zeros((1, 1, 1, 3)), "2x2"),
    ]
    for values, fragment in bad:
        with pytest.raises(DataError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
            ImageDataset("x", values, "test")
    with pytest.raises(DataError, match="labels must have shape"):
        ImageDataset("x", np.zeros((2, 1, 3, 3)), "test", labels=np.array([1]))
    with pytest.raises(DataError, match="whole numbers"):
        ImageDataset("x", np.zeros((2, 1, 3, 3)), "test", labels=np.array([0.5, 1.0]))


def test_subsample_is_seeded_and_keeps_labels_aligned():
    values = np.arange(10, dtype=np.float32)[:, None, None, None] / 10 * np.ones((1, 1, 2, 2), np.float32)
    ds = ImageDataset("x", values, "s", labels=np.arange(10))
    a, b = subsample_images(ds, 4, seed=3), subsample_images(ds, 4, seed=3)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_allclose(a.values[:, 0, 0, 0], a.labels / 10, rtol=1e-6)
    assert len(set(a.labels)) == 4 and "seed 3" in a.source
    assert subsample_images(ds, 20, seed=0) is ds and subsample_images(ds, None, seed=0) is ds
    with pytest.raises(DataError, match="num"):
        subsample_images(ds, 0, seed=0)


def test_resize_is_a_pure_centre_crop_at_scale_one_and_keeps_constants():
    values = np.random.default_rng(0).random((3, 2, 6, 10)).astype(np.float32)
    np.testing.assert_array_equal(fit_size(values, (6, 6)), values[..., 2:8])  # scale max(6/6, 6/10) = 1
    np.testing.assert_array_equal(fit_size(values, (4, 10)), values[..., 1:5, :])
    constant = np.full((2, 1, 5, 7), 0.3, dtype=np.float32)
    for size in [(11, 11), (3, 3), (20, 9)]:
        out = fit_size(constant, size)
        assert out.shape == (2, 1, *size)
        np.testing.assert_allclose(out, 0.3, atol=1e-6)
    ramp = np.broadcast_to(np.linspace(0, 1, 16, dtype=np.float32), (1, 1, 16, 16)).copy()
    half = fit_size(ramp, (8, 8))  # bilinear + antialias keeps a linear ramp linear away from the borders
    assert ((0 <= half) & (half <= 1)).all()
    np.testing.assert_allclose(np.diff(half[0, 0, 0, 2:6]), np.diff(half[0, 0, 0, 2:6]).mean(), atol=1e-5)
    ds = ImageDataset("r", values, "s")
    assert resize_images(ds, (6, 10)) is ds
    assert resize_images(ds, 6).size == (6, 6) and "6x6" in resize_images(ds, 6).source
    with pytest.raises(DataError, match="image size"):
        resize_images(ds, 1)


def test_channel_conversion_round_trip_and_luma():
    grey = np.random.default_rng(1).random((2, 1, 4, 4)).astype(np.float32)
    ds = ImageDataset("g", grey, "s")
    rgb = convert_channels(ds, 3)
    assert rgb.channels == 3 and "repeated" in rgb.source
    np.testing.assert_allclose(convert_channels(rgb, 1).values, grey, atol=1e-6)  # the luma weights sum to 1
    red = np.zeros((1, 3, 2, 2), np.float32)
    red[:, 0] = 1
    np.testing.assert_allclose(convert_channels(ImageDataset("r", red, "s"), 1).values, LUMA[0], atol=1e-7)
    assert convert_channels(ds, None) is ds and convert_channels(ds, 1) is ds
    with pytest.raises(DataError, match="channels must be 1"):
        convert_channels(ds, 2)
    with pytest.raises(DataError, match="cannot convert 4 channels"):
        convert_channels(ImageDataset("f", np.zeros((1, 4, 2, 2)), "s"), 1)


# ----------------------------------------------------------------------------------------------- glyphs
def test_glyphs_defaults_range_labels_and_splits():
    train, test = load_image_dataset("glyphs"), load_image_dataset("glyphs", "test")
    assert train.values.shape == (10_000, 1, 28, 28) and test.values.shape == (2_000, 1, 28, 28)
    assert train.values.dtype == np.float32 and 0 <= train.values.min() and train.values.max() <= 1
    assert train.values.max() > 0.99  # solid strokes reach full ink
    counts = np.bincount(train.labels, minlength=10)
    assert counts.size == 10 and (np.abs(counts - 1000) < 4 * np.sqrt(10_000 * 0.1 * 0.9)).all()  # binomial, 4 sigma
    assert "SeedSequence([0, 0])" in train.source and "SeedSequence([0, 1])" in test.source
    flat_train = {r.tobytes() for r in train.values.reshape(len(train), -1)}
    assert not any(r.tobytes() in flat_train for r in test.values.reshape(len(test), -1))


def test_glyphs_are_seeded_and_prefix_stable():
    a, b = glyphs(num=60, seed=5), glyphs(num=200, seed=5)
    np.testing.assert_array_equal(a.values, b.values[:60])
    np.testing.assert_array_equal(a.labels, b.labels[:60])
    assert not np.array_equal(a.values, glyphs(num=60, seed=6).values)


def test_glyphs_look_like_mnist_centred_digits():
    ds = glyphs(num=2000, seed=2)
    x = ds.values[:, 0].astype(np.float64)
    centre = np.arange(28) + 0.5
    mass = x.sum((1, 2))
    cx, cy = (x.sum(1) * centre).sum(1) / mass, (x.sum(2) * centre).sum(1) / mass
    assert abs(cx.mean() - 14) < 0.25 and abs(cy.mean() - 14) < 0.25  # centred by centre of mass
    assert np.abs(cx - 14).max() < 3 and np.abs(cy - 14).max() < 3
    assert 0.10 < x.mean() < 0.16  # MNIST t10k: 0.12 ink per pixel
    rows = (x > 0.3).any(2)
    height = 28 - rows[:, ::-1].argmax(1) - rows.argmax(1)
    assert 18.5 < height.mean() < 21.5  # MNIST: 20-pixel box
    ring = np.maximum.reduce([x[:, 0].max(1), x[:, -1].max(1), x[:, :, 0].max(1), x[:, :, -1].max(1)])
    assert (ring > 0.5).mean() < 0.03  # only a few long-stemmed 7s and 1s touch the border (measured 1.5 %)
    assert ((x > 0.02) & (x < 0.98)).mean() > 0.02  # anti-aliased, not binary


def test_glyph_labels_are_the_drawn_digit():
    """A nearest-class-mean classifier fitted on train glyphs reads test glyphs (an independent stream)."""
    train, test = glyphs("train", num=2000), glyphs("test", num=500)
    flat = train.values.reshape(len(train), -1)
    means = np.stack([flat[train.labels == c].mean(0) for c in range(10)])
    pred = ((test.values.reshape(len(test), 1, -1) - means[None]) ** 2).sum(-1).argmin(1)
    assert (pred == test.labels).mean() > 0.75


def test_glyph_options_sizes_letters_and_errors():
    ds = glyphs(num=40, size=(32, 24), letters=True, seed=1)
    assert ds.values.shape == (40, 1, 32, 24) and ds.labels.max() < 36 and "capital letters" in ds.source
    assert glyphs(num=500, letters=True).labels.max() >= 10
    assert load_image_dataset("GLYPHS", num=5, size=64, channels=3).values.shape == (5, 3, 64, 64)
    with pytest.raises(DataError, match="unknown option"):
        load_image_dataset("glyphs", num=5, stroke=2)
    with pytest.raises(DataError, match="unknown split"):
        glyphs("valid", num=5)
    with pytest.raises(DataError, match="num"):
        glyphs(num=0)


def test_glyphs_fall_back_to_the_bitmap_font(monkeypatch):
    monkeypatch.setattr(image_module, "_default_font", lambda px: ImageFont.load_default_imagefont())
    ds = glyphs(num=50, seed=4)
    assert "bitmap" in ds.source and ds.values.shape == (50, 1, 28, 28)
    assert 0.05 < ds.values.mean() < 0.3


# ----------------------------------------------------------------------------------------------- MNIST
@needs_mnist
def test_mnist_split_is_first_8000_and_last_2000():
    raw = np.frombuffer(gzip.decompress((MNIST_DIR / "t10k-images-idx3-ubyte.gz").read_bytes()), np.uint8,
                        offset=16).reshape(10_000, 28, 28)
    labels = np.frombuffer(gzip.decompress((MNIST_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes()), np.uint8,
                           offset=8)
    train, test = mnist("train"), mnist("test")
    assert train.values.shape == (8000, 1, 28, 28) and test.values.shape == (2000, 1, 28, 28)
    np.testing.assert_array_equal(np.round(train.values[:, 0] * 255), raw[:8000])
    np.testing.assert_array_equal(np.round(test.values[:, 0] * 255), raw[8000:])
    np.testing.assert_array_equal(np.concatenate([train.labels, test.labels]), labels)
    counts = np.bincount(np.concatenate([train.labels, test.labels]))
    np.testing.assert_array_equal(counts, [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])  # SOURCE.md
    assert "held-out test" in test.source


@needs_mnist
def test_mnist_through_the_entry_point():
    ds = load_image_dataset("mnist", "test", size=32, num=100, seed=1, channels=3)
    assert ds.values.shape == (100, 3, 32, 32) and ds.labels.shape == (100,)
    info = {i.name: i for i in list_image_datasets()}
    assert info["mnist"].available and info["mnist"].kind == "real"


def test_mnist_missing_folder_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HDM_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="HDM_DATA_DIR") as exc:
        load_image_dataset("mnist")
    assert "t10k-images-idx3-ubyte.gz" in one_line(exc)
    info = {i.name: i for i in list_image_datasets()}
    assert not info["mnist"].available and info["glyphs"].available and info["glyphs"].kind == "generated"
    assert all(isinstance(i, DatasetInfo) for i in info.values())


# ----------------------------------------------------------------------------------------------- pictures
def test_folder_of_grey_pngs_round_trips_in_natural_order(tmp_path):
    for k in (10, 2, 1):
        save(np.full((5, 6), k * 20, np.uint8), tmp_path / f"img{k}.png")
    (tmp_path / ".DS_Store").write_bytes(b"\x00junk")
    (tmp_path / "Thumbs.db").write_bytes(b"\x00junk")
    (tmp_path / "extra").mkdir()
    (tmp_path / "._img1.png").write_bytes(b"resource fork")
    ds = load_image_folder(tmp_path)
    assert ds.values.shape == (3, 1, 5, 6) and ds.name == tmp_path.name and ds.labels is None
    np.testing.assert_array_equal(ds.values[:, 0, 0, 0], np.array([20, 40, 200], np.float32) / 255)
    assert "skipped 3 hidden" in ds.source and ".DS_Store" in ds.source and "ignored 1 subfolder" in ds.source


def test_lossless_formats_are_exact_and_jpeg_is_close(tmp_path):
    grey = rng_u8((7, 9))
    for suffix in (".png", ".bmp", ".tif", ".gif", ".webp"):
        ds = load_image_file(save(grey, tmp_path / f"g{suffix}", **({"lossless": True} if suffix == ".webp" else {})))
        assert ds.values.shape == (1, 1, 7, 9), suffix
        np.testing.assert_array_equal(ds.values[0, 0], grey / np.float32(255))
    smooth = np.tile(np.linspace(0, 255, 16).astype(np.uint8), (16, 1))
    jpeg = load_image_file(save(smooth, tmp_path / "s.jpg", quality=95))
    np.testing.assert_allclose(jpeg.values[0, 0], smooth / 255, atol=0.03)


def test_rgba_is_composited_on_white_and_palettes_expand(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 102  # red at alpha 0.4
    ds = load_image_file(save(rgba, tmp_path / "a.png"))
    a = 102 / 255
    np.testing.assert_allclose(ds.values[0, :, 0, 0], [1.0, 1 - a, 1 - a], atol=1e-6)  # c a + (1 - a)
    assert "alpha composited on white" in ds.source
    colours = rng_u8((4, 5, 3), seed=3)
    quantised = Image.fromarray(colours).quantize(colors=4)
    quantised.save(tmp_path / "p.png")
    expected = np.asarray(quantised.convert("RGB")) / np.float32(255)
    np.testing.assert_array_equal(load_image_file(tmp_path / "p.png").values[0], expected.transpose(2, 0, 1))
    grey_palette = Image.fromarray(rng_u8((4, 5), seed=4)).convert("P")
    grey_palette.save(tmp_path / "gp.png")
    assert load_image_file(tmp_path / "gp.png").channels == 1  # every palette colour is grey


def test_other_modes_grey_alpha_cmyk_and_animation(tmp_path):
    la = np.zeros((2, 2, 2), np.uint8)
    la[..., 0], la[..., 1] = 0, 51  # black at alpha 0.2 -> 0.8 grey on white
    ds = load_image_file(save(la, tmp_path / "la.png"))
    assert ds.channels == 1
    np.testing.assert_allclose(ds.values, 1 - 51 / 255, atol=1e-6)
    cmyk = Image.new("CMYK", (3, 3), (0, 255, 255, 0))  # pure red in CMYK
    cmyk.save(tmp_path / "c.jpg", quality=100)
    red = load_image_file(tmp_path / "c.jpg")
    assert red.channels == 3 and red.values[0, 0].min() > 0.9 and red.values[0, 1:].max() < 0.1
    frames = [Image.fromarray(np.full((4, 4), v, np.uint8)) for v in (10, 200)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    anim = load_image_file(tmp_path / "anim.gif")
    assert "first of 2 frames" in anim.source and anim.values.shape == (1, 1, 4, 4)
    np.testing.assert_allclose(anim.values, 10 / 255, atol=1e-6)


def test_sixteen_bit_images_scale_by_65535_without_clipping(tmp_path):
    values = np.array([[0, 1000, 40000], [65535, 255, 256]], dtype=np.uint16)
    for suffix in (".png", ".tif"):
        ds = load_image_file(save(values, tmp_path / f"d{suffix}"))
        np.testing.assert_allclose(ds.values[0, 0], values / 65535, rtol=1e-6)
        assert ds.values.max() == 1.0 and 0 < ds.values[0, 0, 1, 2] < 0.01


def test_exif_orientation_is_applied(tmp_path):
    picture = np.zeros((2, 3), np.uint8)
    picture[0, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be rotated 90 degrees clockwise for display
    ds = load_image_file(save(picture, tmp_path / "o.png", exif=exif))
    np.testing.assert_array_equal(ds.values[0, 0], np.rot90(picture, -1) / np.float32(255))
    assert "EXIF orientation 6" in ds.source


def test_grey_and_rgb_mix_to_rgb_and_channels_option(tmp_path):
    save(np.full((4, 4), 100, np.uint8), tmp_path / "a.png")
    colour = rng_u8((4, 4, 3), seed=5)
    save(colour, tmp_path / "b.png")
    ds = load_image_folder(tmp_path)
    assert ds.channels == 3 and "1 grey images repeated to RGB" in ds.source
    np.testing.assert_array_equal(ds.values[0], np.full((3, 4, 4), 100 / np.float32(255)))
    grey = load_image_folder(tmp_path, channels=1)
    np.testing.assert_allclose(grey.values[1, 0], np.tensordot(LUMA, colour / 255, axes=([0], [2])), atol=1e-6)


def test_mixed_sizes_need_a_size_and_size_resizes_each(tmp_path):
    save(rng_u8((6, 10)), tmp_path / "wide.png")
    save(rng_u8((8, 8), seed=1), tmp_path / "square.png")
    with pytest.raises(DataError, match="--image-size") as exc:
        load_image_folder(tmp_path)
    assert "wide.png" in one_line(exc) and "square.png" in one_line(exc)
    ds = load_image_folder(tmp_path, size=6)
    assert ds.values.shape == (2, 1, 6, 6) and "resized and centre-cropped to 6x6" in ds.source
    wide = np.asarray(Image.open(tmp_path / "wide.png")) / np.float32(255)
    np.testing.assert_array_equal(ds.values[1, 0], wide[:, 2:8])  # natural order: square, wide


# ----------------------------------------------------------------------------------------------- bad pictures
def test_folder_errors_name_the_file(tmp_path):
    save(rng_u8((4, 4)), tmp_path / "ok.png")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="notes.txt is not an image") as exc:
        load_image_folder(tmp_path)
    one_line(exc)
    (tmp_path / "notes.txt").unlink()
    (tmp_path / "fake.png").write_text("not a png")
    with pytest.raises(DataError, match="fake.png: not a readable image"):
        load_image_folder(tmp_path)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_pictures_are_errors_naming_the_file(tmp_path, fmt):
    buffer = io.BytesIO()
    Image.fromarray(rng_u8((64, 64, 3))).save(buffer, format=fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(DataError, match="truncated or corrupt") as exc:
        load_image_file(path)
    assert str(path) in one_line(exc)
    save(rng_u8((64, 64, 3)), tmp_path / "fine.png")
    with pytest.raises(DataError, match=f"cut.{fmt.lower()}"):
        load_image_folder(tmp_path)


def test_empty_and_image_less_folders(tmp_path):
    (tmp_path / ".hidden").write_text("x")
    with pytest.raises(DataError, match="the folder is empty"):
        load_image_folder(tmp_path)
    (tmp_path / "sub").mkdir()
    with pytest.raises(DataError, match="only subfolders such as sub"):
        load_image_folder(tmp_path)
    (tmp_path / "table.csv").write_text("1,2")
    with pytest.raises(DataError, match="holds no images.*table.csv"):
        load_image_folder(tmp_path)


def test_missing_paths_and_unknown_types(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_image_file(tmp_path / "nope.png")
    with pytest.raises(DataError, match="folder not found|not a folder"):
        load_image_folder(tmp_path / "nowhere")
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(DataError, match="unknown image file type '.csv'"):
        load_image_file(tmp_path / "x.csv")
    with pytest.raises(DataError, match="unknown image dataset 'cifar'"):
        load_image_dataset("cifar")


# ----------------------------------------------------------------------------------------------- IDX
def test_idx_round_trip_with_labels_beside(tmp_path):
    images, labels = rng_u8((5, 6, 7)), np.arange(5, dtype=np.uint8)
    (tmp_path / "set-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (tmp_path / "set-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    ds = load_image_file(tmp_path / "set-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(ds.values[:, 0], images / np.float32(255))
    np.testing.assert_array_equal(ds.labels, labels)
    assert "labels from set-labels-idx1-ubyte" in ds.source
    floats = np.random.default_rng(0).random((2, 3, 3)).astype(np.float32)
    (tmp_path / "f.idx").write_bytes(idx_bytes(floats, 0x0D))
    np.testing.assert_array_equal(load_image_file(tmp_path / "f.idx").values[:, 0], floats)


def test_idx_bad_input(tmp_path):
    images = rng_u8((3, 4, 4))
    bad_magic = tmp_path / "bad.idx"
    bad_magic.write_bytes(b"\x01\x02\x08\x03" + idx_bytes(images)[4:])
    with pytest.raises(DataError, match="bad IDX magic number 01020803"):
        load_image_file(bad_magic)
    short = tmp_path / "short-idx3-ubyte"
    short.write_bytes(idx_bytes(images)[:-5])
    with pytest.raises(DataError, match="truncated"):
        load_image_file(short)
    labels = tmp_path / "l-idx1-ubyte"
    labels.write_bytes(idx_bytes(np.arange(3, dtype=np.uint8)))
    with pytest.raises(DataError, match="label file"):
        load_image_file(labels)
    cut = tmp_path / "c-idx3-ubyte.gz"
    cut.write_bytes(gzip.compress(idx_bytes(images))[:-10])
    with pytest.raises(DataError, match="cannot be decompressed"):
        load_image_file(cut)
    (tmp_path / "m-images-idx3-ubyte").write_bytes(idx_bytes(images))
    (tmp_path / "m-labels-idx1-ubyte").write_bytes(idx_bytes(np.arange(2, dtype=np.uint8)))
    with pytest.raises(DataError, match="does not match"):
        load_image_file(tmp_path / "m-images-idx3-ubyte")


# ----------------------------------------------------------------------------------------------- arrays
@pytest.mark.parametrize(("shape", "axes"), [((4, 5, 6), None), ((4, 5, 6, 3), (0, 3, 1, 2)), ((4, 3, 5, 6), None),
                                             ((4, 5, 6, 1), (0, 3, 1, 2))])
def test_array_layouts(tmp_path, shape, axes):
    raw = rng_u8(shape)
    np.save(tmp_path / "a.npy", raw)
    ds = load_image_file(tmp_path / "a.npy")
    expected = raw[:, None] if raw.ndim == 3 else (raw.transpose(axes) if axes else raw)
    np.testing.assert_array_equal(ds.values, expected / np.float32(255))


def test_array_value_rules(tmp_path):
    cases = {
        "u16": (np.array([[[0, 65535], [1000, 2]]], np.uint16), np.array([[[0, 1], [1000 / 65535, 2 / 65535]]]), ""),
        "i64": (np.array([[[0, 255], [128, 3]]], np.int64), np.array([[[0, 1], [128 / 255, 3 / 255]]]),
                "divided by 255"),
        "pm1": (np.array([[[-1, 1], [0, 0.5]]], np.float32), np.array([[[0, 1], [0.5, 0.75]]]), "(x + 1) / 2"),
        "unit": (np.array([[[0, 1], [0.25, 0.5]]], np.float64), np.array([[[0, 1], [0.25, 0.5]]]), ""),
        "bool": (np.array([[[True, False], [False, True]]]), np.array([[[1, 0], [0, 1]]]), ""),
    }
    for name, (raw, expected, note) in cases.items():
        np.save(tmp_path / f"{name}.npy", raw)
        ds = load_image_file(tmp_path / f"{name}.npy")
        np.testing.assert_allclose(ds.values[:, 0], expected, rtol=1e-6, err_msg=name)
        assert note in ds.source, name


@pytest.mark.parametrize(("raw", "fragment"), [
    (np.array([[[0.0, 255.0], [1.0, 2.0]]]), "span"),
    (np.array([[[0.0, np.nan], [1.0, 0.0]]]), "NaN or inf"),
    (np.array([[[0.0, np.inf], [1.0, 0.0]]]), "NaN or inf"),
    (np.zeros((3, 784)), "reshape flattened"),
    (np.zeros(5), "1-D"),
    (np.array([[[-3, 2], [1, 0]]], np.int32), ">= 0"),
    (np.array([[[0, 70000], [1, 0]]], np.int32), "65535"),
])
def test_bad_arrays(tmp_path, raw, fragment):
    np.save(tmp_path / "bad.npy", raw)
    with pytest.raises(DataError, match=fragment.replace("(", r"\(")) as exc:
        load_image_file(tmp_path / "bad.npy")
    assert "bad.npy" in one_line(exc)


def test_npz_keys_and_labels(tmp_path):
    a, b = rng_u8((3, 4, 4)), rng_u8((2, 5, 5), seed=1)
    np.savez(tmp_path / "one.npz", images=a, labels=np.array([7, 8, 9]))
    ds = load_image_file(tmp_path / "one.npz")
    np.testing.assert_array_equal(ds.labels, [7, 8, 9])
    np.savez(tmp_path / "two.npz", a=a, b=b)
    with pytest.raises(DataError, match="two.npz:<name>"):
        load_image_file(tmp_path / "two.npz")
    picked = load_image_file(f"{tmp_path / 'two.npz'}:b")
    assert picked.values.shape == (2, 1, 5, 5) and picked.source.startswith(f"{(tmp_path / 'two.npz').resolve()}:b")
    assert "array 'images'" in ds.source
    with pytest.raises(DataError, match="no array named 'c'"):
        load_image_file(f"{tmp_path / 'two.npz'}:c")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match="Python objects"):
        load_image_file(tmp_path / "obj.npy")


def test_hdf5_keys_auto_pick_and_labels(tmp_path):
    a = rng_u8((3, 5, 6, 3))
    with h5py.File(tmp_path / "one.h5", "w") as f:
        f["group/images"] = a
        f["group/labels"] = np.array([1, 2, 3])
        f["mean"] = np.zeros(4)
    ds = load_image_file(tmp_path / "one.h5")
    np.testing.assert_array_equal(ds.values, a.transpose(0, 3, 1, 2) / np.float32(255))
    np.testing.assert_array_equal(ds.labels, [1, 2, 3])
    assert "dataset 'group/images', the only 3-D/4-D one" in ds.source
    with h5py.File(tmp_path / "two.hdf5", "w") as f:
        f["x"], f["y"] = a, rng_u8((2, 6, 6))
    with pytest.raises(DataError, match="several image datasets"):
        load_image_file(tmp_path / "two.hdf5")
    assert load_image_dataset(f"{tmp_path / 'two.hdf5'}:y").values.shape == (2, 1, 6, 6)
    with pytest.raises(DataError, match="no dataset named 'z'"):
        load_image_file(f"{tmp_path / 'two.hdf5'}:z")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(DataError, match="junk.h5: cannot be read as HDF5"):
        load_image_file(tmp_path / "junk.h5")


# ----------------------------------------------------------------------------------------------- entry point
def test_files_have_no_test_split_and_take_no_options(tmp_path):
    np.save(tmp_path / "a.npy", rng_u8((10, 4, 4)))
    ds = load_image_dataset(tmp_path / "a.npy", num=4, seed=1, size=8, channels=3)
    assert ds.values.shape == (4, 3, 8, 8) and "4 images drawn with seed 1" in ds.source
    with pytest.raises(DataError, match="no held-out split"):
        load_image_dataset(tmp_path / "a.npy", "test")
    with pytest.raises(DataError, match="only to generated datasets"):
        load_image_dataset(tmp_path / "a.npy", letters=True)
