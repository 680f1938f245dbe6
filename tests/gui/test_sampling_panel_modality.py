"""The sampling panel and trajectory view follow the modality: image-only settings do not leak into curve or
motion runs, Evaluate needs enough samples, Highlight only where there are curves, the label counts what is drawn."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest

from tests.gui.helpers import open_checkpoint, wait_idle

pytestmark = pytest.mark.gui


@pytest.fixture
def panel(themed_app, qtbot):
    """A bare sampling panel offering one checkpoint of each modality (keys: its modality)."""
    from studio.panels.sampling_panel import SamplingPanel

    p = SamplingPanel()
    qtbot.addWidget(p)
    for modality in ("functions", "images", "motions"):
        p.add_checkpoint(modality, modality, select=False, modality=modality)
    return p


def _select(panel, key: str) -> None:
    assert panel.select_checkpoint(key) and panel.modality() == key


def test_live_view_x0_applies_to_images_only(panel):
    _select(panel, "images")
    panel.preview.setCurrentIndex(panel.preview.findData("x0"))
    assert panel.settings()["preview"] == "x0"
    for key in ("functions", "motions"):
        _select(panel, key)
        assert not panel.preview.isVisibleTo(panel)  # no control to see or change it here ...
        assert panel.settings()["preview"] == "state"  # ... so it has no effect here
    _select(panel, "images")
    assert panel.preview.isVisibleTo(panel) and panel.settings()["preview"] == "x0"  # the choice is kept


def test_a_motion_model_samples_with_the_motion_default_unless_the_user_chose(panel):
    """Motions default to the exponential sampler (smoother clips at every budget measured), curves and
    images to dpm2m_sde; a sampler the user picked is kept across checkpoints."""
    _select(panel, "functions")
    assert panel.settings()["sampler"] == "dpm2m_sde"
    _select(panel, "motions")
    assert panel.settings()["sampler"] == "exponential"
    _select(panel, "images")
    assert panel.settings()["sampler"] == "dpm2m_sde"
    panel.sampler.setCurrentText("ddim")
    for key in ("motions", "functions"):
        _select(panel, key)
        assert panel.settings()["sampler"] == "ddim"


def test_curve_frames_say_when_they_show_the_x0_estimate(themed_app, qtbot):
    from studio.views.trajectory_view import TrajectoryView

    view = TrajectoryView()
    qtbot.addWidget(view)
    grid = np.linspace(0, 1, 8)
    view.begin_live(grid, 1.0, modality="functions")
    frame = {"x": np.zeros((2, 1, 8)), "t": 0.5, "step": 3, "total": 10, "grid": grid, "T": 1.0,
             "modality": "functions"}
    view.show_frame({**frame, "what": "x0"})
    assert view.time_label.text().endswith("x0 estimate")
    view.show_frame({**frame, "what": "state"})
    assert "x0" not in view.time_label.text()


def test_evaluate_needs_the_engines_minimum_of_samples(panel):
    from engine import api
    from studio.panels.sampling_panel import EVALUATE_MIN, EVALUATE_TIP

    # curves: the two-sample test's blocks (api.evaluate's default block_size, which the studio's job keeps)
    assert EVALUATE_MIN["functions"] == inspect.signature(api.evaluate).parameters["block_size"].default
    panel.set_job_state("idle", sampling=False)
    assert not panel.evaluate_button.isEnabled()  # nothing to evaluate yet
    for modality, need in EVALUATE_MIN.items():
        panel.show_samples(list(range(need - 1)), "", modality=modality)
        assert not panel.evaluate_button.isEnabled(), modality
        assert f"at least {need} samples" in panel.evaluate_button.toolTip()
        panel.show_samples(list(range(need)), "", modality=modality)
        assert panel.evaluate_button.isEnabled(), modality
        assert panel.evaluate_button.toolTip() == EVALUATE_TIP
        panel.set_job_state("running", sampling=True)
        assert not panel.evaluate_button.isEnabled()
        panel.set_job_state("idle", sampling=False)
    # without a modality, the samples are the current checkpoint's
    _select(panel, "images")
    panel.show_samples([0, 1, 2], "")
    assert panel.evaluate_button.isEnabled()
    _select(panel, "functions")
    panel.show_samples([0, 1, 2], "")
    assert not panel.evaluate_button.isEnabled()


def test_highlight_is_for_curves_only(panel):
    assert not panel.highlight_button.isEnabled()
    for modality in ("images", "motions"):
        panel.show_samples(list(range(12)), "", modality=modality)
        assert not panel.highlight_button.isEnabled()
        assert "curve" in panel.highlight_button.toolTip() and modality in panel.highlight_button.toolTip()
    panel.show_samples(list(range(12)), "", modality="functions")
    assert panel.highlight_button.isEnabled()


def test_motion_label_counts_the_figures_drawn(themed_app, qtbot):
    from studio.views.trajectory_view import TrajectoryView

    view = TrajectoryView()
    qtbot.addWidget(view)
    parents, frames = [-1, 0, 1], 8
    samples = np.random.default_rng(0).normal(size=(12, 3 * len(parents), frames))
    view.set_result(np.arange(frames, dtype=np.float64), samples, np.arange(12), modality="motions",
                    skeleton=(parents, 30.0))
    drawn = view.skeletons.max_figures
    assert view.skeletons._positions.shape[0] == drawn < 12
    assert view.time_label.text() == f"t = 0 · denoised ({drawn} shown)"
    view.set_result(np.linspace(0, 1, 8), np.zeros((12, 1, 8)), np.arange(12), modality="functions")
    assert view.time_label.text() == "t = 0 · denoised (12 shown)"
    view.skeletons.stop()


def _curve_checkpoint(qtbot, window, tiny_checkpoint) -> str:
    from engine import api

    if "quadratic" in api.list_checkpoints():
        assert window.sampling_panel.select_checkpoint("quadratic")
        return "quadratic"
    return open_checkpoint(qtbot, window, tiny_checkpoint)


def test_curve_run_after_x0_on_an_image_model_shows_x_t(window, qtbot, tiny_checkpoint, shot):
    """The audit's journey: x0 chosen on an image model, then a curve model samples: its live frames are x_t."""
    w, panel, view = window, window.sampling_panel, window.view
    panel.add_checkpoint("image-model", "an image model", modality="images")
    panel.preview.setCurrentIndex(panel.preview.findData("x0"))
    assert panel.settings()["preview"] == "x0"
    _curve_checkpoint(qtbot, w, tiny_checkpoint)
    assert panel.modality() == "functions"
    panel.steps.setValue(40)
    panel.num.setValue(8)
    whats: list[str] = []
    labels: list[str] = []
    w.jobs.preview.connect(lambda name, p: whats.append(p.get("what"))
                           if name == "sample" and isinstance(p, dict) else None)
    view.frame_drawn.connect(lambda n: labels.append(view.time_label.text()))
    live_shot: list[Path] = []
    view.frame_drawn.connect(lambda n: live_shot.append(shot(w, "curves_after_image_x0_live"))
                             if n == 3 and not live_shot else None)
    w.actions_by_name["run"].trigger()
    wait_idle(qtbot, w, timeout=60_000)
    assert not w.error_box.isVisible(), w.error_box.text()
    assert whats and set(whats) == {"state"}
    assert labels and not any("x0" in text for text in labels)
    # 8 curves: too few for the evaluation's blocks of 10, so Evaluate says so instead of failing
    assert not panel.evaluate_button.isEnabled() and "at least 10 samples" in panel.evaluate_button.toolTip()
    assert panel.highlight_button.isEnabled()
    shot(w, "curves_after_image_x0_done")


def test_motion_run_counts_the_figures_drawn(window, qtbot, tiny_walk_checkpoint, shot):
    w, panel, view = window, window.sampling_panel, window.view
    open_checkpoint(qtbot, w, tiny_walk_checkpoint)
    assert panel.modality() == "motions"
    panel.steps.setValue(8)
    panel.num.setValue(9)
    w.actions_by_name["run"].trigger()
    wait_idle(qtbot, w, timeout=60_000)
    assert not w.error_box.isVisible(), w.error_box.text()
    drawn = view.skeletons._positions.shape[0]
    assert drawn == min(9, view.skeletons.max_figures)
    assert view.time_label.text() == f"t = 0 · denoised ({drawn} shown)"
    assert not panel.highlight_button.isEnabled() and panel.evaluate_button.isEnabled()
    shot(w, "motions_sampled")


def test_the_data_end_of_the_time_colours_stands_out_from_the_plot(themed_app, qtbot):
    """Final samples were drawn in viridis' light yellow on the light theme's white plots (third GUI audit); the
    time legend was shown beside images and stick figures, which are not coloured by time."""
    from studio.theme import apply_theme
    from studio.views.plotting import time_color
    from studio.views.trajectory_view import TrajectoryView

    view = TrajectoryView()
    qtbot.addWidget(view)
    view.show()
    assert time_color(0).lightness() < 100 < time_color(1).lightness()  # light theme: data dark, noise light
    assert time_color(0).name() in view.time_bar.styleSheet()
    try:
        apply_theme(themed_app, dark=True)
        assert time_color(0).lightness() > 120 > time_color(1).lightness()
        qtbot.waitUntil(lambda: time_color(0).name() in view.time_bar.styleSheet(), timeout=2000)
    finally:
        apply_theme(themed_app, dark=False)
    view.set_modality("images")
    assert not any(w.isVisible() for w in view.time_legend)
    view.set_modality("functions")
    assert all(w.isVisible() for w in view.time_legend)


def test_a_project_does_not_choose_an_export_format_the_samples_refuse(panel):
    """A project naming PNG selected the greyed PNG entry while curves were shown; Export… then opened a folder
    dialog for PNG files and refused only afterwards."""
    panel.show_samples([0, 1], "", modality="functions")
    panel.set_export_state({"format": "png", "trajectory": False})
    assert panel.export_settings()["format"] == "h5" and not panel.export_trajectory.isChecked()
    panel.set_export_state({"format": "csv"})
    assert panel.export_settings()["format"] == "csv"

