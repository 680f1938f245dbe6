"""engine.io.export and export_csv: folders holding exported files, interrupted exports, inputs as outputs, BVH
frame times."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import DataError, OutputError
from engine.io import export_csv, read_samples, write_samples
from engine.io.export import bvh_frame_time, export_bvh, export_png
from engine.motion.bvh import read_bvh
from engine.motion.dataset import positions_to_channels
from engine.motion.procedural import humanoid_skeleton, sample_gait_parameters, walk_positions


def _images(path, n, seed=0):
    x = np.random.default_rng(seed).random((n, 1, 6, 5), dtype=np.float32)
    return read_samples(write_samples(path, x, seeds=range(n), config={"n": n}, modality="images"))


def _motions(path, n=2, frames=12, step=1 / 30, fps=30.0, grid=True):
    params = sample_gait_parameters([np.random.default_rng(i) for i in range(n)])
    channels = positions_to_channels(walk_positions(params, frames=frames, fps=1 / step))
    config = {"motion": {"skeleton": humanoid_skeleton().to_dict(), "fps": fps}}
    g = np.arange(frames) * step if grid is True else grid
    return read_samples(write_samples(path, channels, seeds=range(n), config=config, modality="motions", grid=g))


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# -- files of an earlier export, or the user's --------------------------------------------------------
def test_png_export_refuses_a_folder_holding_exported_files(tmp_path):
    out = tmp_path / "mix"
    export_png(_images(tmp_path / "four.h5", 4), out)
    (out / "notes.txt").write_text("mine")
    before = _snapshot(out)
    for other in (_images(tmp_path / "two.h5", 2, seed=1), _images(tmp_path / "four2.h5", 4, seed=2)):
        with pytest.raises(OutputError) as info:  # fewer samples: a mix; as many: all overwritten
            export_png(other, out)
        text = str(info.value)
        assert "\n" not in text and str(out) in text and "already holds exported files" in text
        assert "grid.png, sample_00000.png, sample_00001.png and 2 more" in text and "empty or new folder" in text
        assert _snapshot(out) == before, "nothing may be written or deleted"

    own = tmp_path / "own"  # the user's own file of an export's name
    own.mkdir()
    (own / "sample_00000.png").write_bytes(b"my picture")
    with pytest.raises(OutputError, match=r"already holds exported files \(sample_00000\.png\)"):
        export_png(_images(tmp_path / "one.h5", 1), own)
    assert (own / "sample_00000.png").read_bytes() == b"my picture"

    fresh = export_png(_images(tmp_path / "two2.h5", 2), tmp_path / "fresh")
    assert sorted(p.name for p in fresh.iterdir()) == ["grid.png", "sample_00000.png", "sample_00001.png"]


def test_bvh_export_refuses_folders_holding_bvh_or_png_exports(tmp_path):
    out = tmp_path / "bvh"
    export_bvh(_motions(tmp_path / "m3.h5", n=3), out)
    before = _snapshot(out)
    for n in (2, 3):
        with pytest.raises(OutputError, match=r"already holds exported files.*sample_00000\.bvh"):
            export_bvh(_motions(tmp_path / f"m{n}b.h5", n=n), out)
    assert _snapshot(out) == before

    pngs = tmp_path / "pngs"
    export_png(_images(tmp_path / "i.h5", 2), pngs)
    with pytest.raises(OutputError, match=r"already holds exported files.*grid\.png"):
        export_bvh(_motions(tmp_path / "m2c.h5", n=2), pngs)
    with pytest.raises(OutputError, match=r"already holds exported files.*sample_00000\.bvh"):
        export_png(_images(tmp_path / "i3.h5", 3), out)
    assert _snapshot(out) == before


# -- interrupted exports: all files or none ------------------------------------------------------------
def _interrupt_on_save(monkeypatch, module, name, after):
    """Make ``module.name`` raise KeyboardInterrupt (Ctrl+C) on its call number ``after + 1``."""
    real = getattr(module, name)
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) > after:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, flaky)


def test_an_interrupted_png_export_leaves_no_file_and_no_folder_it_made(tmp_path, monkeypatch):
    from PIL import Image

    images = _images(tmp_path / "five.h5", 5)
    _interrupt_on_save(monkeypatch, Image.Image, "save", after=3)
    out = tmp_path / "new" / "pngs"
    with pytest.raises(KeyboardInterrupt):
        export_png(images, out)
    assert not (tmp_path / "new").exists(), "the folders the export created are removed again"

    kept = tmp_path / "kept"  # an existing folder with the user's file
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    monkeypatch.undo()
    _interrupt_on_save(monkeypatch, Image.Image, "save", after=3)
    with pytest.raises(KeyboardInterrupt):
        export_png(images, kept)
    assert _snapshot(kept) == {"notes.txt": b"mine"}, "no file written and no temporary file left"

    monkeypatch.undo()
    export_png(images, kept)  # the same export, uninterrupted
    assert len(_snapshot(kept)) == 1 + 5 + 1


def test_a_failing_bvh_export_leaves_no_file(tmp_path, monkeypatch):
    import engine.motion.bvh as bvh

    motions = _motions(tmp_path / "m3.h5", n=3)
    _interrupt_on_save(monkeypatch, bvh, "atomic_write_text", after=2)
    out = tmp_path / "bvh"
    out.mkdir()
    with pytest.raises(KeyboardInterrupt):
        export_bvh(motions, out)
    assert list(out.iterdir()) == [], "the existing folder stays, empty"
    monkeypatch.undo()
    assert len(list(export_bvh(motions, out).iterdir())) == 3 + 1  # and provenance.json


def test_folder_export_checks_the_folder_before_writing(tmp_path):
    sf = _images(tmp_path / "s.h5", 3)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="it is a file, not a folder"):
        export_png(sf, tmp_path / "file")
    with pytest.raises(OutputError, match="a parent, .*file, is a file"):
        export_png(sf, tmp_path / "file" / "sub")
    out = tmp_path / "out"
    (out / "sample_00001.png").mkdir(parents=True)
    with pytest.raises(OutputError, match=r"sample_00001\.png: cannot write here: it is a folder"):
        export_png(sf, out)
    assert sorted(p.name for p in out.iterdir()) == ["sample_00001.png"]
    assert (tmp_path / "file").read_text() == "x"


# -- an output that is the input -----------------------------------------------------------------------
def test_exports_refuse_to_overwrite_their_own_sample_file(tmp_path):
    x = np.random.default_rng(0).standard_normal((2, 1, 5)).astype(np.float32)
    src = write_samples(tmp_path / "self.h5", x, seeds=[1, 2], config={})
    before = src.read_bytes()
    with pytest.raises(OutputError, match="same file as the input") as info:
        export_csv(read_samples(src), tmp_path / "." / "self.h5")
    assert "\n" not in str(info.value)
    img = _images(tmp_path / "img.h5", 2)
    img_before = (tmp_path / "img.h5").read_bytes()
    with pytest.raises(OutputError, match="same file as the input"):
        export_png(img, tmp_path / "img.h5")
    assert src.read_bytes() == before and (tmp_path / "img.h5").read_bytes() == img_before
    assert read_samples(src).samples.shape == (2, 1, 5)
    assert export_csv(read_samples(src), tmp_path / "self.csv").is_file()  # another name is fine


# -- BVH frame time ------------------------------------------------------------------------------------
def test_bvh_frame_time_comes_from_the_sample_grid(tmp_path):
    sf = _motions(tmp_path / "m60.h5", n=2, frames=10, step=2 / 30, fps=30.0)  # a 30 fps model sampled at 15 fps
    assert bvh_frame_time(sf) == pytest.approx(2 / 30, rel=1e-12)
    out = export_bvh(sf, tmp_path / "bvh60")
    text = (out / "sample_00000.bvh").read_text()
    assert "Frame Time: 0.0666666" in text and "Frames: 10" in text
    assert read_bvh(out / "sample_00001.bvh").frame_time == pytest.approx(2 / 30, rel=1e-6)

    same = _motions(tmp_path / "m30.h5", n=1, frames=10, step=1 / 30, fps=30.0)
    assert bvh_frame_time(same) == pytest.approx(1 / 30, rel=1e-12)
    nogrid = _motions(tmp_path / "nogrid.h5", n=1, frames=10, fps=25.0, grid=None)
    assert nogrid.grid is None and bvh_frame_time(nogrid) == pytest.approx(1 / 25)


def test_bvh_frame_time_refuses_uneven_grids_and_bad_fps(tmp_path):
    uneven = np.arange(10) / 30.0
    uneven[5:] += 0.01
    with pytest.raises(DataError, match="not evenly spaced"):
        export_bvh(_motions(tmp_path / "u.h5", n=1, frames=10, grid=uneven), tmp_path / "u")
    assert not (tmp_path / "u").exists()
    with pytest.raises(DataError, match="motion.fps is 'abc'"):
        bvh_frame_time(_motions(tmp_path / "abc.h5", n=1, frames=10, fps="abc", grid=None))
