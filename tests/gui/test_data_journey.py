"""Choosing data and a prior: embedded datasets, files (dialog path and drag-and-drop), bad files."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from tests.gui.helpers import wait_idle
from tests.test_data import TEXT_CASES, _bad_binary_files

pytestmark = pytest.mark.gui


def test_choose_dataset_updates_preview_and_prior(window, qtbot, shot):
    panel, prior = window.data_panel, window.prior_panel
    assert panel.spec == "quadratic"
    before = prior.updates
    panel.choose("sinusoids")
    qtbot.waitUntil(lambda: panel.spec == "sinusoids", timeout=10_000)
    assert window.workspace.dataset.name == "sinusoids" and panel.preview.count > 10
    qtbot.waitUntil(lambda: prior.updates > before, timeout=5000)
    assert "sinusoids" in prior.grid_label.text()

    # the prior's plots follow its parameters (debounced)
    spectrum_before = prior.spectrum._line.getData()[1].copy()
    n = prior.updates
    prior.kernel.setCurrentText("matern12")
    prior.gain.setValue(2.0)
    qtbot.waitUntil(lambda: prior.updates == n + 1, timeout=5000)
    qtbot.wait(200)
    assert prior.updates == n + 1  # two edits, one recomputation
    spectrum = prior.spectrum._line.getData()[1]
    assert not np.allclose(spectrum, spectrum_before) and spectrum[0] > spectrum[-1]
    assert prior.draws.count == 5
    panel.points.setValue(64)  # resampling re-loads the data on the new grid
    qtbot.waitUntil(lambda: window.workspace.dataset.n_points == 64, timeout=10_000)
    qtbot.waitUntil(lambda: "64 points" in prior.grid_label.text(), timeout=5000)
    prior.kernel.setCurrentText("periodic")
    assert prior.period.isEnabled()
    shot(window, "dataset_sinusoids_matern12")


def test_every_bad_file_from_the_loader_tests_shows_an_error_and_the_app_carries_on(window, qtbot, tmp_path):
    panel = window.data_panel
    bad = {}
    for case, (name, content, _expected) in TEXT_CASES.items():
        path = tmp_path / "text" / name
        path.parent.mkdir(exist_ok=True)
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
        bad[case] = path
    binary = tmp_path / "binary"
    binary.mkdir()
    files = _bad_binary_files(binary)
    files.pop("full.h5")  # a valid file among the bad ones
    bad.update(files)
    bad["missing"] = tmp_path / "absent.csv"
    assert len(bad) >= 30
    for case, path in bad.items():
        window.open_path(str(path))
        wait_idle(qtbot, window)
        assert panel.error.isVisible(), case
        assert path.name in panel.error.text(), (case, panel.error.text())
        assert window.workspace.dataset.name == "quadratic", case  # the previous data stays
    assert window.log_panel.counts["error"] >= len(bad)
    assert not window.error_box.isVisible()  # shown plainly in the panel, no dialog per file

    good = tmp_path / "good.csv"
    rows = np.sin(np.linspace(0, 3, 40))[None, :] * np.arange(1, 21)[:, None]
    np.savetxt(good, rows, delimiter=",")
    window.open_path(str(good))
    qtbot.waitUntil(lambda: panel.spec == str(good), timeout=10_000)
    assert not panel.error.isVisible() and window.workspace.dataset.values.shape == (20, 1, 40)


def test_drop_a_file_on_the_window_imports_it(window, qtbot, tmp_path, shot):
    path = tmp_path / "dropped.csv"
    np.savetxt(path, np.cos(np.linspace(0, 6, 50))[None, :] * np.linspace(0.5, 2, 12)[:, None], delimiter=",")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    args = (QPoint(500, 400), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier)
    text = QMimeData()
    text.setText("not a file")
    refused = QDragEnterEvent(args[0], args[1], text, args[3], args[4])
    QApplication.sendEvent(window, refused)
    assert not refused.isAccepted()
    enter = QDragEnterEvent(*args)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(window, QDropEvent(*args))
    qtbot.waitUntil(lambda: window.data_panel.spec == str(path), timeout=10_000)
    assert window.data_panel.preview.count == 12
    shot(window.data_panel, "dropped_file")


def test_a_long_dataset_source_is_elided_with_the_whole_text_in_the_tooltip(window):
    """cmu07's source (its clip list) ran to six lines and pushed the data preview out of the panel."""
    import dataclasses

    from engine.data import load_function_dataset

    panel = window.data_panel
    data = load_function_dataset("quadratic")
    long = "clips " + ", ".join(f"007_{k:02d}" for k in range(40)) + " <resampled>"
    panel.show_dataset("quadratic", dataclasses.replace(data, source=long))
    assert "…" in panel.info.text() and long not in panel.info.text() and panel.info.toolTip() == long
    panel.show_dataset("quadratic", data)
    assert data.source in panel.info.text() and panel.info.toolTip() == ""
