"""Opening and saving files (audit round 2): damaged sample files, exports of opened files, checkpoint labels,
projects that chose the model trained in their session."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from tests.gui.helpers import open_checkpoint, wait_idle

pytestmark = pytest.mark.gui


def _sample_file(path, *, trajectory: bool = True):
    """A small hdm-samples/1 file (4 curves on 20 points), with a 3-state trajectory when asked."""
    from engine.io import write_samples

    rng = np.random.default_rng(0)
    samples = rng.normal(size=(4, 1, 20))
    kw = {}
    if trajectory:
        kw = {"trajectory": rng.normal(size=(3, 4, 1, 20)), "trajectory_times": np.array([1.0, 0.5, 0.0])}
    return write_samples(path, samples, seeds=np.arange(4), config={"sampling": {"sampler": "ddim", "steps": 5}},
                         grid=np.linspace(0.0, 1.0, 20), checkpoint_sha256="ab" * 32,
                         extra_attrs={"studio_note": "kept"}, **kw)


def _nans(tmp_path):
    path = _sample_file(tmp_path / "nans.h5")
    with h5py.File(path, "r+") as f:
        s = f["samples"][...]
        s[0, 0, :5] = np.nan
        f["samples"][...] = s
    return path


def _truncated(tmp_path):
    good = _sample_file(tmp_path / "good.h5")
    raw = good.read_bytes()
    path = tmp_path / "truncated.h5"
    path.write_bytes(raw[: len(raw) // 2])
    return path


@pytest.mark.parametrize("make", [_nans, _truncated], ids=["nans", "truncated"])
def test_a_damaged_sample_file_gets_a_dialog_and_the_data_panel_is_untouched(window, qtbot, tmp_path, shot, make):
    """N3: a sample file that fails to open was reported as a data-loading error in the Data panel."""
    path = make(tmp_path)
    panel = window.data_panel
    info_before = panel.info.text()
    window.open_path(str(path))
    wait_idle(qtbot, window)
    qtbot.waitUntil(window.error_box.isVisible, timeout=5000)
    assert "Opening sample file" in window.error_box.windowTitle()
    assert path.name in window.error_box.text()
    assert not panel.error.isVisible(), panel.error.text()
    assert panel.info.text() == info_before  # not "The previous dataset stays in use."
    assert window.workspace.dataset.name == "quadratic" and window.workspace.opened is None
    shot(window, f"damaged_sample_file_{path.stem}")
    shot(window.error_box, f"damaged_sample_file_{path.stem}_dialog")


def test_a_damaged_curve_file_is_still_a_data_error(window, qtbot, tmp_path):
    """Curves to import (no ``schema``) that fail keep their inline Data-panel error, without a dialog."""
    path = tmp_path / "curves.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.full((5, 30), np.nan)
    window.open_path(str(path))
    wait_idle(qtbot, window)
    assert window.data_panel.error.isVisible() and path.name in window.data_panel.error.text()
    assert not window.error_box.isVisible()


def _open_sample_file(window, qtbot, path):
    window.open_path(str(path))
    qtbot.waitUntil(lambda: window.workspace.opened is not None, timeout=10_000)
    wait_idle(qtbot, window)


def test_exporting_an_opened_file_onto_itself_is_refused_in_one_line(window, qtbot, tmp_path):
    """N4: the export copied the file onto itself: 'SameFileError: PosixPath(...)' and a traceback in the Log."""
    path = _sample_file(tmp_path / "s.h5")
    before = path.read_bytes()
    _open_sample_file(window, qtbot, path)
    errors_before = window.log_panel.counts["error"]
    window.controller.export_to(str(path))
    wait_idle(qtbot, window)
    qtbot.waitUntil(window.error_box.isVisible, timeout=5000)
    text = window.error_box.text()
    assert "is the same file as the input" in text and "choose another" in text, text
    assert "SameFileError" not in text and "PosixPath" not in text and "\n" not in text
    assert not any("Traceback" in line for line in window.log_panel.lines())
    assert window.log_panel.counts["error"] == errors_before + 1  # the one line, no traceback entry
    assert path.read_bytes() == before


def test_the_trajectory_checkbox_reaches_the_export_of_an_opened_file(window, qtbot, tmp_path):
    from engine.io import read_samples

    path = _sample_file(tmp_path / "s.h5")
    _open_sample_file(window, qtbot, path)
    window.sampling_panel.export_trajectory.setChecked(False)
    out = tmp_path / "bare.h5"
    window.controller.export_to(str(out))
    wait_idle(qtbot, window)
    assert out.exists() and read_samples(out).trajectory is None and read_samples(path).trajectory is not None


def test_exporting_an_opened_file_honours_include_trajectory(tmp_path):
    """N6: the HDF5 export of an opened file was a byte copy, trajectory included whatever the checkbox said."""
    from engine.io import read_samples
    from studio import engine_jobs as ej

    source = _sample_file(tmp_path / "s.h5")
    bare, full = tmp_path / "bare.h5", tmp_path / "full.h5"
    ej.export_job(bare, "h5", source=source, include_trajectory=False).fn(None)
    ej.export_job(full, "h5", source=source, include_trajectory=True).fn(None)
    original, without, with_ = read_samples(source), read_samples(bare), read_samples(full)
    assert original.trajectory is not None and with_.trajectory is not None
    assert without.trajectory is None and without.trajectory_times is None
    np.testing.assert_array_equal(without.samples, original.samples)
    np.testing.assert_array_equal(without.seeds, original.seeds)
    np.testing.assert_array_equal(without.grid, original.grid)
    with h5py.File(source, "r") as a, h5py.File(bare, "r") as b:
        assert dict(a.attrs) == dict(b.attrs)  # every provenance attribute, created and versions included
        assert set(b) == {"samples", "seeds", "grid"}
        assert b["samples"].compression == a["samples"].compression
    assert full.read_bytes() == source.read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, nothing left behind

    # onto its own source: refused before anything is written
    from engine.errors import OutputError

    with pytest.raises(OutputError, match="same file as the input"):
        ej.export_job(source, "h5", source=source, include_trajectory=False)
    assert read_samples(source).trajectory is not None


def test_opened_run_checkpoints_are_labelled_with_their_folder(window, qtbot, tmp_path, tiny_checkpoint):
    """N8: two opened runs both showed as 'model.safetensors'."""
    paths = []
    for run in ("run_curves", "run_other"):
        (tmp_path / run).mkdir()
        paths.append(tmp_path / run / "model.safetensors")
        shutil.copyfile(tiny_checkpoint, paths[-1])
    combo = window.sampling_panel.checkpoint
    for path in paths:
        open_checkpoint(qtbot, window, path)
        assert combo.currentText() == f"{path.parent.name}/model.safetensors"
    labels = [combo.itemText(i) for i in range(combo.count())]
    assert "run_curves/model.safetensors" in labels and "run_other/model.safetensors" in labels


def _project_with_trained(window, tmp_path, **sampler_extra):
    from studio.session import save_project
    from studio.workspace import TRAINED

    sections = window.session_sections()
    sections["sampler"] = {**sections["sampler"], "checkpoint": TRAINED, **sampler_extra}
    return save_project(tmp_path / "trained.json", sections)


def test_a_project_that_chose_the_session_model_warns_which_checkpoint_stands_in(window, qtbot, tmp_path):
    """N10: such a project reopened with an unrelated checkpoint selected, silently."""
    project = _project_with_trained(window, tmp_path)
    panel = window.sampling_panel
    warnings = window.log_panel.counts["warning"]
    window.files.load_project(str(project))
    wait_idle(qtbot, window)
    selected = panel.checkpoint.currentText()
    assert window.log_panel.counts["warning"] == warnings + 1
    line = [entry for entry in window.log_panel.lines() if "trained in its session" in entry]
    assert line and "not saved in the project" in line[-1] and selected in line[-1], line
    assert "not saved in the project" in panel.notice.text() and selected in panel.notice.text()
    assert "not saved in the project" in window.statusBar().currentMessage()


def test_a_project_remembers_where_the_session_model_was_saved(window, qtbot, tmp_path, tiny_checkpoint):
    """N10, better: the trained model's saved file is recorded in the project and selected on reopening."""
    from studio.session import load_project
    from studio.workspace import TRAINED

    saved = tmp_path / "my_run" / "model.safetensors"
    saved.parent.mkdir()
    shutil.copyfile(tiny_checkpoint, saved)
    panel = window.sampling_panel
    panel.add_checkpoint(TRAINED, "trained here: quadratic, 30 steps", modality="functions")
    window.controller._trained_source = str(saved)  # what saving the trained model from the Training panel does
    project = tmp_path / "p.json"
    window.files.save_project(str(project))
    assert load_project(project)["sampler"]["trained_checkpoint"] == str(saved)

    panel.checkpoint.removeItem(panel.checkpoint.findData(TRAINED))  # a later session: no trained model
    panel.select_checkpoint(panel.checkpoint.itemData(0))
    warnings = window.log_panel.counts["warning"]
    window.files.load_project(str(project))
    wait_idle(qtbot, window)
    assert panel.checkpoint_key() == str(saved)
    assert panel.checkpoint.currentText() == "my_run/model.safetensors"
    assert window.log_panel.counts["warning"] == warnings
