"""The motion journey: walk data as stick figures, a tiny FNO sampled live as an animated skeleton,
HDF5 and BVH export, reopening the file recalls the settings."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest

from engine.io import read_samples
from tests.gui.conftest import WALK_FRAMES as FRAMES  # the frames of the tiny_walk_checkpoint fixture
from tests.gui.helpers import open_checkpoint, wait_idle

pytestmark = pytest.mark.gui


def test_side_projection_and_bones_draw_every_bone_of_every_figure():
    from studio.views.media import bone_pairs, stick_polyline

    parents = (-1, 0, 1, 0)
    bones = bone_pairs(parents)
    np.testing.assert_array_equal(bones, [[0, 1], [1, 2], [0, 3]])
    pts = np.arange(2 * 4 * 2, dtype=np.float64).reshape(2, 4, 2)
    offsets = np.array([[0.0, 0.0], [10.0, 0.0]])
    x, y = stick_polyline(pts, bones, offsets)
    assert x.shape == (2 * 3 * 3,) and np.isnan(x[2::3]).all()  # a NaN after each bone
    np.testing.assert_array_equal(x[3:5], pts[0, [1, 2], 0])  # figure 0, bone 1 -> 2
    np.testing.assert_array_equal(x[9:11], pts[1, [0, 1], 0] + 10)  # figure 1 shifted right


def test_motion_data_sample_live_export_reopen(window, qtbot, tiny_walk_checkpoint, tmp_path, shot):
    w, panel, view = window, window.sampling_panel, window.view
    w.data_panel.choose("walk")
    qtbot.waitUntil(lambda: w.workspace.dataset_spec == "walk", timeout=20_000)
    thumbs = w.data_panel.motion_preview
    assert w.workspace.modality == "motions" and w.data_panel.previews.currentWidget() is thumbs
    bx, by = thumbs.polyline()
    assert np.isfinite(bx).sum() > 50 and np.nanstd(by) > 0.1  # figures with height, not a dot
    shot(w, "motions_data")

    key = open_checkpoint(qtbot, w, tiny_walk_checkpoint)
    assert panel.modality() == "motions"
    panel.sampler.setCurrentText("ddim")
    panel.steps.setValue(400)  # a tiny FNO steps fast: enough steps for >= 10 throttled previews
    panel.num.setValue(3)
    panel.seed.setValue(5)
    frames: list[bytes] = []
    view.frame_drawn.connect(lambda n: frames.append(view.skeletons.polyline()[1].tobytes()))
    w.actions_by_name["run"].trigger()
    wait_idle(qtbot, w, timeout=60_000)
    assert not w.error_box.isVisible(), w.error_box.text()
    result = w.workspace.outcome.result
    assert result.samples.shape == (3, 66, FRAMES) and list(result.seeds) == [5, 6, 7]
    assert len(set(frames)) >= 10, f"only {len(set(frames))} distinct live frames"
    assert view.stack.currentWidget() is view.skeletons

    # the skeleton walks: its timer steps the frames, and the drawn bones change with them
    sk = view.skeletons
    assert sk.timer.isActive() and sk.num_frames == FRAMES
    before = sk.polyline()[0].copy()
    start = sk.frames_drawn
    qtbot.waitUntil(lambda: sk.frames_drawn >= start + 3, timeout=5_000)
    assert not np.array_equal(before, sk.polyline()[0], equal_nan=True)
    shot(w, "motions_done")

    h5 = tmp_path / "walks.h5"
    assert w.controller.export_to(str(h5))
    wait_idle(qtbot, w)
    sf = read_samples(h5)
    assert sf.modality == "motions"
    np.testing.assert_allclose(sf.samples, result.samples)
    bvh = tmp_path / "bvh"
    assert w.controller.export_to(str(bvh), "bvh")
    wait_idle(qtbot, w)
    assert not w.error_box.isVisible(), w.error_box.text()
    assert len(list(bvh.glob("*.bvh"))) == 3

    panel.steps.setValue(99)
    panel.num.setValue(1)
    panel.select_checkpoint("quadratic") if panel.checkpoint.findData("quadratic") >= 0 else None
    w.open_path(str(h5))
    qtbot.waitUntil(lambda: w.workspace.opened is not None, timeout=15_000)
    s = panel.settings()
    assert (s["checkpoint"], s["sampler"], s["steps"], s["num_samples"], s["seed"]) == (key, "ddim", 400, 3, 5)
    assert view.stack.currentWidget() is view.skeletons and view.positions == len(result.trajectory) + 1


def test_motion_evaluation_summary_names_power_and_the_physical_metrics():
    """The engine's motion report nests its figures; the studio's line must show them, not only the fps."""
    from studio.engine_jobs import summarize_evaluation

    power = {"power": 5.5, "std": 1.2, "block_size": 10}
    report = {"power_trajectory": power, "power_velocity": {**power, "power": 100.0, "std": 0.0}, "fps": 30.0,
              "generated": {"jerk": 3581.0, "foot_skating": 10.6, "bone_length_error": 0.02},
              "reference": {"jerk": 113.0, "foot_skating": 0.06, "bone_length_error": 4.5e-8},
              "data": {"spec": "walk", "split": "test", "num": 1000}}
    text = summarize_evaluation(report)
    assert text.startswith("vs walk test split (1000 items): power trajectory (10 vs 10): 5.5 % ± 1.2; "
                           "power velocity (10 vs 10): 100.0 % ± 0.0; jerk 3.58e+03 (held-out 113)")
    assert "foot skating m/s 10.6 (held-out 0.06)" in text and "bone-length error" in text and "\n" not in text
    assert "real training clips" not in text  # none in the report: nothing claimed
    report["real_clips"] = {"num": 1000, "power_trajectory": {**power, "power": 36.7},
                            "power_velocity": {**power, "power": 21.7}, "jerk": 237.0}
    assert "; real training clips score 36.7 % / 21.7 % (power near 5 %" in summarize_evaluation(report)


def test_an_evaluation_is_scrolled_into_view(window, qtbot):
    """A motion report runs to several lines; at an ordinary window height the Sampling dock showed the
    first words only, below the fold, and the user had to find the scroll bar."""
    from PySide6.QtWidgets import QScrollArea

    from studio.engine_jobs import summarize_evaluation

    window.resize(1280, 720)
    panel = window.sampling_panel
    scroll = panel.parentWidget().parentWidget()
    assert isinstance(scroll, QScrollArea)
    scroll.verticalScrollBar().setValue(0)
    power = {"power": 5.5, "std": 1.2, "block_size": 10}
    report = {"power_trajectory": power, "power_velocity": power, "fps": 30.0,
              "generated": {"jerk": 3581.0, "foot_skating": 10.6, "bone_length_error": 0.02},
              "reference": {"jerk": 113.0, "foot_skating": 0.06, "bone_length_error": 4.5e-8},
              "data": {"spec": "walk", "split": "test", "num": 1000}}
    panel.show_evaluation(summarize_evaluation(report))

    def shown() -> bool:
        label = panel.evaluation
        top = label.mapTo(scroll.viewport(), label.rect().topLeft()).y()
        return top >= 0 and top + label.height() <= scroll.viewport().height()

    qtbot.waitUntil(shown, timeout=5_000)


def test_an_evaluation_against_the_training_file_says_so():
    """A model trained on a file was evaluated against that file under the words "test split"."""
    from studio.engine_jobs import summarize_evaluation

    report = {"power": {"10": {"power": 5.0, "std": 1.0}}, "functional": {},
              "data": {"spec": "/data/aemet.csv", "split": "all", "num": 73, "held_out": False}}
    assert summarize_evaluation(report).startswith(
        "vs aemet.csv (73 items, the model's training data, not held out): power 10 vs 10")


def test_the_walkers_fill_the_view_in_rows_and_columns_as_its_shape_allows(themed_app, qtbot):
    """Six walkers in one row of 6 m lanes were drawn 26 px tall in a square-ish view (audit s12): the lanes now
    take the columns that draw them largest, and follow the view's shape when it is resized."""
    from engine.motion import generate_walks, humanoid_skeleton
    from studio.views.media import SkeletonView

    positions, _ = generate_walks(6, frames=60)
    view = SkeletonView()
    qtbot.addWidget(view)
    view.resize(600, 650)
    view.show()
    qtbot.waitExposed(view)
    view.set_motions(positions, humanoid_skeleton().parents, animate=False)
    box = view.getPlotItem().getViewBox()

    def figure_px() -> float:  # one figure's height on the screen
        top, ground = box.mapViewToDevice(pg.Point(0, positions[..., 1].max())), box.mapViewToDevice(pg.Point(0, 0))
        return abs(top.y() - ground.y())

    assert view._columns < 6 and figure_px() > 60
    x, y = view.polyline()
    assert np.nanmax(y) - np.nanmin(y) > 2 * np.ptp(positions[..., 1])  # more than one row
    view.resize(1800, 300)  # a wide strip: the figures go side by side
    qtbot.waitUntil(lambda: view._columns == 6, timeout=2000)
    assert figure_px() > 40
