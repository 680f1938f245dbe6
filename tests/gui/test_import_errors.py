"""Importing image and motion files through the GUI: every bad file from the loaders' tests shows the loader's
error in the data panel, the previous data stays, and a good folder of images loads afterwards."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest
from PIL import Image

from tests.gui.helpers import wait_idle
from tests.test_bvh import ERRORS as BVH_ERRORS
from tests.test_image_data import idx_bytes

pytestmark = pytest.mark.gui


def _png_bytes(rng: np.random.Generator, size: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _bad_image_inputs(root, rng: np.random.Generator) -> dict:
    """The image loaders' bad inputs (tests/test_image_data.py), as files and folders to import."""
    bad = {}
    cut = root / "cut.png"
    cut.write_bytes(_png_bytes(rng, 64)[:200])
    bad["truncated png"] = cut
    images = rng.integers(0, 256, (3, 4, 4), dtype=np.uint8)
    magic = root / "bad.idx"
    magic.write_bytes(b"\x01\x02\x08\x03" + idx_bytes(images)[4:])
    bad["bad idx magic"] = magic
    short = root / "short-idx3-ubyte"
    short.write_bytes(idx_bytes(images)[:-5])
    bad["truncated idx"] = short
    gz = root / "c-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(idx_bytes(images))[:-10])
    bad["cut gzip idx"] = gz
    fake = root / "fake_folder"
    fake.mkdir()
    (fake / "ok.png").write_bytes(_png_bytes(rng))
    (fake / "fake.png").write_text("not a png")
    bad["folder with a fake png"] = fake
    empty = root / "nothing_here"
    empty.mkdir()
    (empty / "notes.txt").write_text("hello")
    bad["folder without images or motions"] = empty
    return bad


def test_bad_image_and_bvh_files_show_the_loaders_errors_and_the_app_carries_on(window, qtbot, tmp_path, shot):
    panel = window.data_panel
    rng = np.random.default_rng(0)
    bad = {}
    for i, (text, _line, _message) in enumerate(BVH_ERRORS):
        path = tmp_path / "bvh" / f"case{i:02d}.bvh"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        bad[f"bvh {i}"] = path
    bad["missing bvh"] = tmp_path / "absent.bvh"
    images = tmp_path / "images"
    images.mkdir()
    bad.update(_bad_image_inputs(images, rng))
    assert len(bad) >= 25
    for case, path in bad.items():
        window.open_path(str(path))
        wait_idle(qtbot, window)
        assert panel.error.isVisible(), case
        assert path.name in panel.error.text(), (case, panel.error.text())
        assert "\n" not in panel.error.text(), case
        assert window.workspace.dataset.name == "quadratic", case  # the previous data stays
    assert window.log_panel.counts["error"] >= len(bad)
    assert not window.error_box.isVisible()
    shot(window, "import_error_shown")

    good = tmp_path / "digits"
    good.mkdir()
    for k in range(5):
        (good / f"d{k}.png").write_bytes(_png_bytes(rng))
    window.open_path(str(good))
    qtbot.waitUntil(lambda: window.workspace.dataset_spec == str(good), timeout=15_000)
    assert not panel.error.isVisible()
    assert window.workspace.modality == "images" and window.workspace.dataset.values.shape == (5, 1, 16, 16)
    assert panel.image_preview.picture().shape == (2 * 17 - 1, 3 * 17 - 1)  # 5 images: 2 rows of 3


def test_an_npz_of_images_is_read_as_images_when_chosen(window, qtbot, tmp_path):
    panel = window.data_panel
    path = tmp_path / "pictures.npz"
    values = np.random.default_rng(1).random((6, 12, 12)).astype(np.float32)
    np.savez(path, images=values)
    panel.arrays_as.setCurrentIndex(panel.arrays_as.findData("images"))
    window.open_path(str(path))
    qtbot.waitUntil(lambda: window.workspace.dataset_spec == str(path), timeout=15_000)
    assert window.workspace.modality == "images"
    np.testing.assert_allclose(window.workspace.dataset.values[:, 0], values, atol=1e-6)
    assert panel.previews.currentWidget() is panel.image_preview
