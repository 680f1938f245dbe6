"""The restoration session: degrade an item, restore it with the live estimate, compare priors, cancel.

Drives :class:`studio.panels.restoration_panel.RestorationPanel` offscreen on its own
:class:`~studio.jobs.JobRunner` with the bundled checkpoints (quadratic curves; MNIST HDM-SPDE vs DDPM
when the shared MNIST test images are present), CPU-sized: a few steps, one or two restorations.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.gui.helpers import load_restoration_item

pytestmark = pytest.mark.gui


def _bundled(*names: str) -> None:
    from engine import api

    missing = [n for n in names if n not in api.list_checkpoints()]
    if missing:
        pytest.skip(f"bundled checkpoint(s) {missing} not present")


@pytest.fixture
def panel(restoration_panel):
    return restoration_panel




def _run(qtbot, panel, timeout: int = 60_000, live_shot=None):
    """Restore with the current settings; returns the run and the live frames' labels.

    ``live_shot``: a callable that saves a screenshot, called once at the third live frame.
    """
    before = panel.last_run
    frames: list[str] = []

    def on_frame(n: int) -> None:
        frames.append(panel.view.live_label.text())
        if n == 3 and live_shot is not None:
            live_shot()

    panel.view.frame_drawn.connect(on_frame)
    assert panel.start_restore(), panel.error.text()
    qtbot.waitUntil(lambda: panel.last_run is not before and not panel.runner.busy, timeout=timeout)
    assert panel.error.text() == "", panel.error.text()
    panel.view.frame_drawn.disconnect(on_frame)
    return panel.last_run, frames


def _shot(qtbot, shot, widget, name: str):
    qtbot.wait(50)  # let pending layout requests run, so the screenshot shows what a user sees
    return shot(widget, name)


def _metric_values(panel) -> list[float]:
    """The PSNR numbers written under the visible tiles."""
    import re

    texts = [t.metrics.text() for t in panel.view.tiles if t.isVisible()]
    return [float(v) for text in texts for v in re.findall(r"PSNR (-?[\d.]+|inf) dB", text)]


def test_curve_round_trip_errors_and_repeat(panel, qtbot, shot, tmp_path):
    _bundled("quadratic")
    load_restoration_item(qtbot, panel, "quadratic", index=3)
    item = panel.loaded
    assert item.modality == "functions" and item.item.shape == (1, 100) and item.source == "quadratic"
    tasks = [panel.task.itemData(i) for i in range(panel.task.count())]
    assert tasks == ["impute", "super-resolution", "smooth", "deblur"]  # functions' tasks only

    # bad parameters: the engine's one-line error, Restore disabled; fixing them makes the panel usable again
    panel.set_task("super-resolution")
    panel.factor.setValue(1)  # keeping every point restores nothing
    assert "factor" in panel.error.text().lower() and not panel.restore_button.isEnabled()
    assert not panel.start_restore()
    _shot(qtbot, shot, panel, "restoration_bad_parameters")
    panel.factor.setValue(3)
    assert panel.error.text() == "" and panel.restore_button.isEnabled()
    panel.set_task("smooth")
    panel.sigma.setValue(0.0)
    assert "blur σ" in panel.error.text().lower() and not panel.restore_button.isEnabled()
    panel.sigma.setValue(1.5)
    assert panel.error.text() == ""

    # impute two missing intervals (40 % of the points): the restoration passes through every observed point
    panel.set_task("impute")
    panel.mode.setCurrentText("intervals")
    panel.fraction.setValue(0.4)
    panel.intervals.setValue(2)
    panel.steps.setValue(20)
    panel.restorations.setValue(2)
    run, frames = _run(qtbot, panel)
    assert len(run.runs) == 1  # functions: the checkpoint's own prior only
    label, result = run.runs[0]
    assert result.degradation.task == "impute" and result.restored.shape == (1, 2, 1, 100)
    seen = result.degradation.mask
    assert (~seen).sum() == 40
    np.testing.assert_allclose(result.restored_mean[0][seen], item.item[seen], atol=1e-4)
    assert float(result.metrics["restored_mean"]["consistency"][0]) < 1e-4
    assert len(set(frames)) >= 5, frames  # live estimates at distinct steps
    psnrs = _metric_values(panel)
    assert len(psnrs) == 3 and all(np.isfinite(psnrs))  # naive, mean, single
    assert sum(t.isVisible() for t in panel.view.tiles) == 3 and panel.view.overlay.isVisible()
    overlay_items = panel.view.overlay.getPlotItem().listDataItems()
    assert len(overlay_items) >= 5  # original, observed, naive, singles, mean
    path = _shot(qtbot, shot, panel, "restoration_curves")
    assert path.stat().st_size > 10_000

    # repeat with other settings without restarting
    panel.set_task("smooth")
    panel.sigma.setValue(2.0)
    panel.noise.setValue(0.05)
    run2, _ = _run(qtbot, panel)
    r2 = run2.runs[0][1]
    assert r2.degradation.task == "smooth" and r2.degradation.noise == pytest.approx(0.05)
    assert "smooth" in panel.status.text()
    _shot(qtbot, shot, panel, "restoration_curves_smooth")

    # a file the loaders reject: its error is shown, the previous item is dropped (Restore would restore it under
    # the file's name), and the checkpoint's dataset loads and restores again
    bad = tmp_path / "bad.csv"
    bad.write_text("not,a\ncurve,file\n")
    panel.set_item_source(str(bad))
    qtbot.waitUntil(lambda: panel.error.text() != "" and not panel.runner.busy, timeout=20_000)
    assert "bad.csv" in panel.error.text() and panel.loaded is None and not panel.restore_button.isEnabled()
    panel.source.setCurrentIndex(0)  # back to the checkpoint's dataset
    qtbot.waitUntil(lambda: panel.error.text() == "" and not panel.runner.busy, timeout=20_000)
    run3, _ = _run(qtbot, panel)
    assert run3.runs[0][1].degradation.task == "smooth"


def test_mnist_drawn_mask_hdm_vs_white(panel, qtbot, shot, tmp_path):
    _bundled("mnist_hdm", "mnist_ddpm")
    from engine.paths import shared_data_dir

    shared = shared_data_dir()
    if not (shared / "images" / "mnist").is_dir():
        pytest.skip("the shared MNIST test images are not present")
    from PySide6.QtCore import QPointF, Qt

    _bundled("quadratic")
    load_restoration_item(qtbot, panel, "quadratic")  # a curve first: switching modality swaps the tasks and the views
    assert (panel.sampler.currentText(), panel.correction.currentText()) == ("ddim", "posterior")
    load_restoration_item(qtbot, panel, "mnist_hdm", index=0)
    assert panel.loaded.item.shape == (1, 28, 28)
    # the measured defaults per modality (engine.restoration.default_sampler / default_metric)
    assert (panel.sampler.currentText(), panel.correction.currentText()) == ("exponential", "operator")
    assert [panel.task.itemData(i) for i in range(panel.task.count())] == [
        "inpaint-noise", "inpaint-mask", "super-resolution", "pixelate", "deblur"]
    assert "no counterpart" not in panel.compare.text() and panel.compare.isChecked()
    panel.set_task("inpaint-mask")
    panel.mode.setCurrentText("drawn")
    assert "observes everything" in panel.error.text() and not panel.restore_button.isEnabled()

    # paint the mask: one real mouse click on the image, then a stroke across the digit's middle
    canvas = panel.view.canvas
    panel.brush.setValue(4)
    assert canvas.brush == 4
    qtbot.wait(100)  # let the layout settle before mapping image pixels to the screen
    view_pos = canvas.mapFromScene(canvas.overlay.mapToScene(QPointF(14.5, 10.5)))
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=view_pos)
    assert not canvas.mask[10, 14], "the click did not paint"
    for col in range(4, 24):
        canvas.paint_at(14, col)
    missing = ~canvas.mask
    assert 80 <= missing.sum() <= 200 and panel.error.text() == ""
    _shot(qtbot, shot, panel.view.canvas, "restoration_mnist_mask")

    panel.steps.setValue(10)
    panel.restorations.setValue(1)
    live: list = []
    run, frames = _run(qtbot, panel, live_shot=lambda: live.append(shot(panel.view, "restoration_mnist_live")))
    assert live, "no live frame was captured"
    assert [label for label, _ in run.runs] == ["HDM-SPDE prior (mnist_hdm)", "white prior (mnist_ddpm)"]
    for _, result in run.runs:
        assert np.array_equal(result.degradation.mask[0], canvas.mask)
        # replacement: the observed pixels come back exactly, the painted ones are filled in
        np.testing.assert_allclose(result.restored_mean[0][:, canvas.mask], run.item.item[:, canvas.mask],
                                   atol=1e-4)
        assert np.isfinite(result.metrics["restored_mean"]["psnr"]).all()
        filled = result.restored_mean[0][0][missing]
        assert filled.std() > 0.01  # not a flat fill
    assert len(set(frames)) >= 5
    assert sum(t.isVisible() for t in panel.view.tiles) == 4 and not panel.view.overlay.isVisible()
    assert len(_metric_values(panel)) == 3  # naive + one per prior
    img = panel.view.tiles[2].image.image
    assert img is not None and img.shape == (28, 28) and img.std() > 0.05
    _shot(qtbot, shot, panel, "restoration_mnist")

    # an item from a file: a 28 x 28 PNG is taken as it is ([0, 255] -> [0, 1])
    from PIL import Image

    pixels = (np.add.outer(np.arange(28), np.arange(28)) * 4).astype(np.uint8)
    png = tmp_path / "ramp.png"
    Image.fromarray(pixels).save(png)
    panel.set_item_source(str(png))
    qtbot.waitUntil(lambda: panel.loaded.source == str(png) and not panel.runner.busy, timeout=20_000)
    np.testing.assert_allclose(panel.loaded.item[0], pixels / 255.0, atol=1e-6)
    assert panel.loaded.count == 1


def test_cancel_leaves_the_panel_usable(panel, qtbot):
    _bundled("quadratic")
    load_restoration_item(qtbot, panel, "quadratic")
    panel.set_task("impute")
    panel.steps.setValue(5000)
    panel.restorations.setValue(1)
    def cancel_once(n: int) -> None:
        if n == 2:
            panel.view.frame_drawn.disconnect(cancel_once)
            panel.cancel()

    panel.view.frame_drawn.connect(cancel_once)
    assert panel.start_restore()
    qtbot.waitUntil(lambda: not panel.runner.busy, timeout=30_000)
    assert panel.last_run is None and "cancelled" in panel.status.text()
    assert panel.view.live_label.text() == "cancelled" and panel.restore_button.isEnabled()
    panel.steps.setValue(10)
    run, _ = _run(qtbot, panel)
    assert run.runs[0][1].settings["steps"] == 10
