"""The shell: docks, shortcuts, status bar, persisted layout, project files, the headless path."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QFontMetrics, QKeySequence

from studio.session import load_project

pytestmark = pytest.mark.gui
ROOT = Path(__file__).resolve().parents[2]


def test_launch_shows_docks_status_and_no_checkpoint_message(window, shot):
    from engine import api

    assert set(window.docks) == {"data", "prior", "sampling", "training", "log"}
    assert all(d.isVisible() for d in window.docks.values())
    assert window.device_status.combo.itemText(0) == "cpu"
    assert "GiB" in window.device_status.memory.text()
    assert window.data_panel.preview.count > 0 and window.prior_panel.spectrum.count == 100
    # the spectrum's short plot labels at most three decades inside its range (1, 0.01, 0.0001 overlapped)
    ticks = window.prior_panel.spectrum.getAxis("left")._tickLevels[0]
    assert 1 <= len(ticks) <= 3 and all(label == "1" or label.startswith("1e-") for _, label in ticks)
    assert window.prior_panel.spectrum.decade_ticks(np.geomspace(1e-6, 3.0, 9)) == [
        (0.0, "1"), (-3.0, "1e-3"), (-6.0, "1e-6")]
    bundled = list(api.list_checkpoints())
    offered = [window.sampling_panel.checkpoint.itemData(i) for i in range(len(bundled))]
    assert sorted(offered) == sorted(bundled)
    if "quadratic" in bundled:  # the curve model is offered (and selected) first
        assert offered[0] == window.sampling_panel.checkpoint_key() == "quadratic"
    shot(window, "launch")


def test_starts_with_a_clear_message_when_no_checkpoint_is_bundled(themed_app, qtbot, settings, monkeypatch):
    from engine import api
    from studio.app import demo_checkpoint
    from studio.main_window import MainWindow

    monkeypatch.setattr(api, "list_checkpoints", lambda: {})
    w = MainWindow(settings=settings, load_default_data=False)
    qtbot.addWidget(w)
    w.show()
    assert "No bundled checkpoint" in w.sampling_panel.notice.text()
    assert "No bundled checkpoint" in w.view.plot._placeholder.toPlainText()
    assert w.sampling_panel.checkpoint.count() == 0
    w.controller.start_sampling()  # nothing to sample from: said so, nothing breaks
    assert w.error_box.isVisible() and "no checkpoint" in w.error_box.text()
    with pytest.raises(ValueError, match="none is bundled"):
        demo_checkpoint(None)
    w.close()


def test_the_window_paints_before_the_engine_warms_up(themed_app, qtbot, settings):
    # the engine's one-off costs (torch._dynamo's import, ~2 s) used to hold the window back; they follow it now
    from studio.main_window import MainWindow

    w = MainWindow(settings=settings, load_default_data=False)
    qtbot.addWidget(w)
    assert not w.engine_warm
    w.show()
    assert not w.engine_warm and w.isVisible()
    qtbot.waitUntil(lambda: w.engine_warm, timeout=60_000)
    assert "torch._dynamo" in sys.modules
    w.close()


def test_shortcuts(window):
    keys = {name: a.shortcut() for name, a in window.actions_by_name.items()}
    assert keys["run"] == QKeySequence("Ctrl+R") and keys["pause"] == QKeySequence("Ctrl+P")
    assert keys["cancel"] == QKeySequence("Esc")
    assert keys["open"] == QKeySequence(QKeySequence.StandardKey.Open) == QKeySequence("Ctrl+O")
    assert keys["save"] == QKeySequence(QKeySequence.StandardKey.Save) == QKeySequence("Ctrl+S")


def test_layout_and_device_persist_in_qsettings(themed_app, qtbot, settings):
    from studio.main_window import MainWindow

    first = MainWindow(settings=settings, load_default_data=False)
    qtbot.addWidget(first)
    first.resize(1200, 555)
    first.show()
    assert first.height() == 555
    first.docks["log"].hide()
    first.close()
    again = MainWindow(settings=settings, load_default_data=False)
    qtbot.addWidget(again)
    again.show()
    assert again.height() == 555  # (the offscreen screen is 800 px wide: widths are clamped to it)
    assert not again.docks["log"].isVisible() and again.docks["data"].isVisible()
    assert settings.value("device") == "cpu"
    again.close()


def test_every_compute_job_follows_the_device_selector(window):
    """The Restore tab kept the device it was built with: a GPU chosen in the status bar left it on the CPU."""
    window.device_status.device_changed.emit("cuda:7")
    assert window.restoration_panel.device == "cuda:7"


def test_the_window_fits_a_laptop_screen(window, qtbot):
    """The docks' panels scroll when squeezed: the window's minimum width must not exceed a 1366 px screen
    (it was 1530 px: each dock refused to be narrower than its panel)."""
    assert window.minimumSizeHint().width() <= 1280
    docks = [window.docks["data"], window.docks["sampling"]]
    wants = [d.widget().widget().minimumSizeHint().width() for d in docks]
    window.resize(1024, 700)
    qtbot.waitUntil(lambda: window.width() == 1024, timeout=2000)
    assert any(d.width() < want for d, want in zip(docks, wants))  # squeezed: the panels scroll sideways
    window.resize(1560, 980)  # room again: the columns get their panels' width back (they stayed squeezed)
    qtbot.waitUntil(lambda: all(d.width() >= want for d, want in zip(docks, wants)), timeout=2000)


def test_a_plots_note_wraps_to_a_narrow_plot(window, qtbot):
    """At 1280 x 720 the start-up note ("Press Sample (Ctrl+R) to draw from ...") ran off both sides of the
    Trajectory plot, cut mid-word; it now wraps within the plot, and a short note stays on one line."""
    window.resize(1280, 720)
    qtbot.waitUntil(lambda: window.width() == 1280, timeout=2000)
    plot = window.view.stack.currentWidget()
    note = plot._placeholder
    text = "Press Sample (Ctrl+R) to draw from the bundled 'quadratic' model, or open a checkpoint file"
    plot.show_placeholder(text)
    qtbot.wait(20)
    box = plot.getPlotItem().getViewBox().sceneBoundingRect()
    shown = note.mapRectToScene(note.boundingRect())
    assert box.left() <= shown.left() and shown.right() <= box.right(), (shown, box)
    assert shown.height() > 1.5 * QFontMetrics(note.textItem.font()).height()  # wrapped onto more lines
    window.resize(1560, 980)  # wider again: re-wrapped to the new width, still inside
    qtbot.waitUntil(lambda: window.width() == 1560, timeout=2000)
    qtbot.wait(20)
    box = plot.getPlotItem().getViewBox().sceneBoundingRect()
    shown = note.mapRectToScene(note.boundingRect())
    assert box.left() <= shown.left() and shown.right() <= box.right(), (shown, box)
    plot.show_placeholder("short")
    assert note.textItem.textWidth() == -1


def test_project_save_and_load_round_trip(window, qtbot, tmp_path):
    w = window
    w.prior_panel.kernel.setCurrentText("matern32")
    w.prior_panel.auto_length.setChecked(False)
    w.prior_panel.length.setValue(1.7)
    w.prior_panel.equation.setCurrentIndex(w.prior_panel.equation.findData("subvp"))
    w.training_panel.width_box.setValue(24)
    w.training_panel.steps_box.setValue(345)
    w.sampling_panel.sampler.setCurrentText("ddim")
    w.sampling_panel.steps.setValue(77)
    w.sampling_panel.custom_grid.setChecked(True)
    w.sampling_panel.grid_points.setValue(300)
    w.sampling_panel.export_format.setCurrentIndex(1)
    saved = w.session_sections()
    path = tmp_path / "project.json"
    w.files.save_project(str(path))
    assert load_project(path)["sampler"]["steps"] == 77 and json.loads(path.read_text())["version"] == 1

    w.prior_panel.kernel.setCurrentText("white")
    w.training_panel.width_box.setValue(8)
    w.sampling_panel.steps.setValue(5)
    w.sampling_panel.custom_grid.setChecked(False)
    w.sampling_panel.export_format.setCurrentIndex(0)
    w.open_path(str(path))
    assert w.session_sections() == saved
    assert w.windowTitle().startswith("project")


def test_bad_project_file_is_an_error_not_a_crash(window, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}')
    window.open_path(str(bad))
    assert window.error_box.isVisible() and "not an HDM Studio project" in window.error_box.text()
    assert any("not an HDM Studio project" in line for line in window.log_panel.lines())


def test_headless_demo_writes_a_screenshot(tiny_checkpoint, tmp_path):
    out = tmp_path / "demo.png"
    args = ["--offscreen", "--demo", "--checkpoint", str(tiny_checkpoint), "--steps", "20",
            "--num-samples", "8", "--screenshot", str(out)]
    proc = subprocess.run([sys.executable, "-m", "studio.app", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 10_000
    bad = subprocess.run([sys.executable, "-m", "studio.app", "--offscreen", "--demo", "--checkpoint",
                          str(tmp_path / "absent.safetensors")], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "absent.safetensors" in bad.stderr


def test_the_studios_options_are_checked_before_a_window_opens(tiny_checkpoint, tmp_path):
    """``--steps -1`` ran 1 step, ``--num-samples 0`` drew 1, a run directory as ``--checkpoint`` was "no such
    file", and ``--screenshot`` to a place it cannot be written exited 0 without a word (audit s12)."""
    from engine import api
    from studio.app import build_parser, check_args

    def checked(*argv: str):
        return check_args(build_parser().parse_args(list(argv)))

    for argv, words in ((["--steps", "-1"], "--steps must be in 1..100,000, got -1"),
                        (["--num-samples", "0"], "--num-samples must be in 1..1,000,000"),
                        (["--num-samples", "100000000"], "got 100000000"),
                        (["--checkpoint", str(tmp_path / "absent")], "no such checkpoint file or bundled name"),
                        (["--checkpoint", str(tmp_path)], "holds no model.safetensors"),
                        (["--screenshot", str(tmp_path / "shot.txt")], "name it *.png"),
                        (["--screenshot", "/proc/shot.png"], "/proc/shot.png")):
        with pytest.raises(ValueError, match=re.escape(words)):
            checked(*argv)
    run_dir = tiny_checkpoint.parent  # a run directory, as hdm takes it
    assert checked("--checkpoint", str(run_dir)).checkpoint == str(run_dir / "model.safetensors")
    assert checked("--demo", "--checkpoint", str(run_dir)).checkpoint == str(run_dir / "model.safetensors")
    if "quadratic" in api.list_checkpoints():
        assert checked("--demo").checkpoint == "quadratic"
    bad = subprocess.run([sys.executable, "-m", "studio.app", "--offscreen", "--screenshot", "/proc/y.png"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--screenshot /proc/y.png" in bad.stderr, bad.stderr


def test_headless_demo_on_the_bundled_image_checkpoint(tmp_path):
    """``hdm-studio --offscreen --demo --checkpoint mnist_hdm --screenshot out.png``: a grid of digits."""
    from engine import api

    if "mnist_hdm" not in api.list_checkpoints():
        pytest.skip("mnist_hdm is not bundled here")
    out = tmp_path / "demo_mnist.png"
    args = ["--offscreen", "--demo", "--checkpoint", "mnist_hdm", "--steps", "10", "--num-samples", "4",
            "--screenshot", str(out)]
    proc = subprocess.run([sys.executable, "-m", "studio.app", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import numpy as np
    from PIL import Image

    shot = np.asarray(Image.open(out).convert("L"), dtype=np.float64)
    h, w = shot.shape
    centre = shot[h // 4: 3 * h // 4, 2 * w // 5: 3 * w // 5]  # inside the image grid
    assert (centre < 40).mean() > 0.3 and (centre > 200).mean() > 0.02  # dark background, white strokes


def test_tab_moves_between_fields_not_through_the_docks_scroll_frames(window, qtbot):
    """Tab passed through five invisible stops (the docks' scroll areas) between the panels (third GUI audit)."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication, QScrollArea

    window.activateWindow()
    window.data_panel.combo.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is not None, timeout=2000)
    seen = []
    for _ in range(80):
        QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        seen.append(QApplication.focusWidget())
    assert not [w for w in seen if isinstance(w, QScrollArea)]
    assert len({id(w) for w in seen}) > 20  # it does go round the fields
