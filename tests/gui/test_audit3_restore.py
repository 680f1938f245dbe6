"""Regressions from the third GUI audit, Restore tab: a failed load, the drawn mask, Ctrl+R and the wording.

- A failed item load drops the previous item: Restore is disabled (its tooltip says why) and the failed source
  is marked, instead of restoring the previous item while the combo shows the failed one.
- The drawn mask shows only while inpaint-mask (drawn) uses it; its strokes are kept.
- Ctrl+R on the Restore tab restores (the visible session), not a sampling run in the hidden Trajectory tab.
- Errors name the panel's controls, not the CLI's flags; missing joints are counted in joints; the drawn mask's
  caption has no internal name; a greyed Compare box is unticked; a motion's channel says which joint it is.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.gui.helpers import load_restoration_item

pytestmark = pytest.mark.gui


@pytest.fixture
def panel(restoration_panel):
    return restoration_panel




def test_failed_load_drops_the_previous_item(panel, qtbot, tiny_checkpoint, tmp_path, shot):
    from PySide6.QtCore import Qt

    load_restoration_item(qtbot, panel, tiny_checkpoint)
    assert panel.restore_button.isEnabled()
    bad = tmp_path / "bad.csv"
    bad.write_text("not,a\ncurve,file\n")
    panel.set_item_source(str(bad))
    qtbot.waitUntil(lambda: panel.error.text() != "" and not panel.runner.busy, timeout=20_000)
    error = panel.error.text()
    assert "bad.csv" in error
    # nothing loaded: Restore cannot restore the previous item under the failed source's name
    assert panel.loaded is None and not panel.restore_button.isEnabled()
    assert error in panel.restore_button.toolTip()
    assert not panel.start_restore() and panel.error.text() == error
    x, _ = panel.view.canvas.curve.getData()
    assert panel.view._item is None and (x is None or len(x) == 0)  # the previous item's curve is gone
    i = panel.source.findData(str(bad))
    assert panel.source.itemText(i).endswith("failed")
    assert panel.source.itemData(i, Qt.ItemDataRole.ToolTipRole) == error
    qtbot.wait(50)
    shot(panel, "audit3_failed_load")
    # another source loads again, and Restore comes back with its usual tooltip
    panel.source.setCurrentIndex(0)
    qtbot.waitUntil(lambda: panel.loaded is not None and not panel.runner.busy, timeout=20_000)
    assert panel.error.text() == "" and panel.restore_button.isEnabled()
    assert "Ctrl+R" in panel.restore_button.toolTip()


def test_failed_load_is_titled_as_a_load():
    from studio.controller import TITLES

    assert TITLES["restoration_item"] == "Loading the item"


def test_drawn_mask_shows_only_while_used(themed_app, qtbot):
    from studio.views.restoration_view import RestorationView

    view = RestorationView()
    qtbot.addWidget(view)
    view.show()
    view.set_item(np.zeros((1, 8, 8), dtype=np.float32), None)
    canvas = view.canvas
    assert not canvas.overlay.isVisible()  # no task uses a mask yet
    canvas.painting = True
    assert canvas.overlay.isVisible()
    canvas.paint_at(4, 4)
    canvas.painting = False  # another task: the strokes are hidden, not lost
    view.set_item(np.ones((1, 8, 8), dtype=np.float32), None)  # and a redraw does not show them again
    assert not canvas.overlay.isVisible() and canvas.missing_count == 9
    canvas.painting = True
    assert canvas.overlay.isVisible() and canvas.missing_count == 9


def test_panel_hides_the_mask_for_other_tasks(panel):
    """The panel's tasks switch the overlay (MNIST HDM-SPDE's tasks, on an image item set directly)."""
    from studio.panels.restoration_panel import LoadedItem

    panel._show_item(LoadedItem("mnist_hdm", "images", np.zeros((1, 8, 8), np.float32), None, "mnist", 0, 1,
                                ["mnist"], "mnist", "HDM-SPDE prior"))
    panel.set_task("inpaint-mask")
    panel.mode.setCurrentText("drawn")
    panel.view.canvas.paint_at(4, 4)
    assert panel.view.canvas.overlay.isVisible()
    for task in ("pixelate", "super-resolution", "deblur"):
        panel.set_task(task)
        assert not panel.view.canvas.overlay.isVisible(), task
    panel.set_task("inpaint-mask")
    panel.mode.setCurrentText("drawn")
    assert panel.view.canvas.overlay.isVisible() and panel.view.canvas.missing_count == 9
    caption = panel.view._degraded.metrics  # in words, not the engine's "mode array"
    assert "array" not in caption and "drawn, 9 pixels missing" in caption


def test_ctrl_r_restores_on_the_restore_tab(window, qtbot, tiny_checkpoint):
    from tests.gui.helpers import wait_idle

    panel = window.restoration_panel
    window.central_tabs.setCurrentWidget(panel)
    wait_idle(qtbot, window)
    load_restoration_item(qtbot, panel, tiny_checkpoint)
    panel.steps.setValue(2)
    panel.restorations.setValue(1)
    started = []
    window.jobs.started.connect(lambda name, title: started.append(name))
    window.actions_by_name["run"].trigger()  # Ctrl+R
    qtbot.waitUntil(lambda: panel.last_run is not None and not window.jobs.busy, timeout=30_000)
    assert started == ["restore"]
    assert "Ctrl+R" in panel.restore_button.toolTip()


def test_errors_name_the_panels_controls(panel, qtbot, tiny_checkpoint):
    from studio.panels.restoration_panel import gui_message

    assert gui_message("deblur: --sigma must be a positive number, got 0.0") == \
        "deblur: “Blur σ” must be a positive number, got 0.0"
    assert gui_message("x: --rcond must lie in (0, 1)") == "x: --rcond must lie in (0, 1)"  # no control: kept
    load_restoration_item(qtbot, panel, tiny_checkpoint)
    panel.set_task("super-resolution")
    panel.factor.setValue(1)
    assert "“Factor”" in panel.error.text() and "--" not in panel.error.text()
    panel.factor.setValue(2)
    panel.noise.setValue(-0.5)
    assert "“Noise σ_y”" in panel.error.text() and "--" not in panel.error.text()


def test_missing_joints_speak_in_joints(panel, qtbot, tiny_walk_checkpoint):
    load_restoration_item(qtbot, panel, tiny_walk_checkpoint)
    assert panel.loaded.item.shape[0] == 66  # 22 joints
    panel.set_task("missing-joints")
    panel.joints.setText("0, 3, 99")
    assert panel.error.text() == "missing-joints: joint 99 does not exist; the skeleton has joints 0–21"
    assert not panel.restore_button.isEnabled()
    panel.joints.setText("0, 3")
    assert panel.error.text() == "" and panel.restore_button.isEnabled()
    # the curves are one coordinate of one joint, and the view says which
    view = panel.view
    assert view.channel_note.isVisible() and "joint 0, x" in view.channel_note.text()
    view.channel.setValue(10)
    assert "joint 3, y" in view.channel_note.text()


def test_compare_unticked_while_disabled(themed_app, qtbot, tiny_checkpoint):
    from studio.jobs import JobRunner
    from studio.panels.restoration_panel import RestorationPanel

    runner = JobRunner()  # mnist_hdm and its counterpart are bundled (assets/checkpoints)
    panel = RestorationPanel(runner)  # never shown: nothing loads, only the controls react
    qtbot.addWidget(panel)
    assert panel.select_checkpoint("mnist_hdm")
    assert panel.compare.isEnabled() and panel.compare.isChecked()
    assert panel.select_checkpoint(str(tiny_checkpoint))
    assert not panel.compare.isEnabled() and not panel.compare.isChecked()  # not "checked but greyed"
    assert panel.checkpoints_to_run() == [str(tiny_checkpoint)]
    assert panel.select_checkpoint("mnist_hdm")
    assert panel.compare.isChecked()  # the user's choice comes back
    panel.compare.setChecked(False)
    panel.select_checkpoint(str(tiny_checkpoint))
    panel.select_checkpoint("mnist_hdm")
    assert not panel.compare.isChecked()
    runner.shutdown(5_000)


def test_controls_fit_a_1280x720_window(window, qtbot, tiny_checkpoint, shot):
    """The controls' rows wrap (field under label) instead of cutting "Open…" and "Cancel" or scrolling sideways."""
    from tests.gui.helpers import wait_idle

    window.resize(1280, 720)
    panel = window.restoration_panel
    window.central_tabs.setCurrentWidget(panel)
    wait_idle(qtbot, window)
    load_restoration_item(qtbot, panel, tiny_checkpoint)
    qtbot.wait(100)  # let pending layout requests run
    scroll = panel._scroll
    assert not scroll.horizontalScrollBar().isVisible()
    assert scroll.viewport().width() >= scroll.widget().minimumSizeHint().width()
    for button in (panel.open_checkpoint, panel.open_item, panel.restore_button, panel.cancel_button):
        assert button.width() >= button.minimumSizeHint().width(), button.text()
    shot(window, "audit3_restore_1280x720")


def test_a_restoration_is_exported_with_its_provenance(panel, qtbot, tiny_checkpoint, tmp_path):
    """The Restore tab had no export: its results could be written only by `hdm restore --out`."""
    import h5py

    from engine.restoration.run import SCHEMA

    load_restoration_item(qtbot, panel, tiny_checkpoint)
    assert not panel.export_button.isEnabled()  # nothing restored yet
    panel.steps.setValue(2)
    panel.restorations.setValue(2)
    assert panel.start_restore()
    qtbot.waitUntil(lambda: panel.last_run is not None and not panel.runner.busy, timeout=30_000)
    assert panel.export_button.isEnabled()
    assert not panel.export_to(str(tmp_path))  # a folder: refused in words, nothing written
    assert panel.error.text() and list(tmp_path.iterdir()) == []
    out = tmp_path / "restored.h5"
    assert panel.export_to(str(out)) and panel.error.text() == ""
    run = panel.last_run
    with h5py.File(out, "r") as f:
        assert f.attrs["schema"] == SCHEMA and f.attrs["task"] == run.runs[0][1].degradation.task
        np.testing.assert_allclose(f["restored"][()], run.runs[0][1].restored)
        config = json.loads(f.attrs["config"])
    assert config["checkpoint"] == str(tiny_checkpoint) and config["item"]["index"] == run.item.index
    panel.load_item()  # another item: the results go, and with them the export
    qtbot.waitUntil(lambda: not panel.runner.busy, timeout=30_000)
    assert panel.last_run is None and not panel.export_button.isEnabled()


def test_comparing_priors_exports_one_file_each(panel, tmp_path):
    from studio.panels.restoration_panel import RestorationRun

    panel._last_run = RestorationRun(None, [("hdm", None), ("white", None)],
                                     ["/a/mnist_hdm.safetensors", "mnist_ddpm"])
    assert panel.export_targets(tmp_path / "r.h5") == [tmp_path / "r.h5", tmp_path / "r_mnist_ddpm.h5"]
    # the file dialog asked about r.h5 only: an existing r_mnist_ddpm.h5 is not replaced without a word
    (tmp_path / "r_mnist_ddpm.h5").write_bytes(b"theirs")
    assert not panel.export_to(str(tmp_path / "r.h5")) and "r_mnist_ddpm.h5 already exist" in panel.error.text()
    assert (tmp_path / "r_mnist_ddpm.h5").read_bytes() == b"theirs" and not (tmp_path / "r.h5").exists()


def test_checkpoints_opened_or_saved_elsewhere_are_offered_for_restoration(window, qtbot, tiny_checkpoint):
    """The Restore tab listed only the bundled checkpoints and its own Open… (third GUI audit)."""
    from tests.gui.helpers import open_checkpoint

    combo = window.restoration_panel.checkpoint
    assert combo.findData(str(tiny_checkpoint)) < 0
    open_checkpoint(qtbot, window, tiny_checkpoint)
    assert combo.findData(str(tiny_checkpoint)) >= 0
    assert combo.currentData() != str(tiny_checkpoint)  # offered, not chosen


def test_a_load_finishing_after_another_checkpoint_was_chosen_is_dropped(panel, qtbot, tiny_checkpoint,
                                                                         tiny_walk_checkpoint):
    """The previous checkpoint's item, arriving late, added its datasets (walk, cmu07) to a curve checkpoint's
    sources (regression audit: pre-existing)."""
    panel.select_checkpoint(str(tiny_walk_checkpoint))
    assert panel.load_item()  # the walk item loads now...
    panel.select_checkpoint(str(tiny_checkpoint))  # ...while the curve checkpoint is chosen
    qtbot.waitUntil(lambda: panel.loaded is not None and panel.loaded.checkpoint == str(tiny_checkpoint)
                    and not panel.runner.busy, timeout=30_000)
    sources = [panel.source.itemData(i) for i in range(panel.source.count())]
    assert "walk" not in sources and "cmu07" not in sources, sources
