"""Sample with the live trajectory, scrub it, recall a seed, export HDF5 and CSV, reopen the file."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from engine.io import read_samples
from tests.gui.helpers import open_checkpoint, wait_idle

pytestmark = pytest.mark.gui


def _checkpoint(qtbot, window, tiny_checkpoint) -> str:
    """The bundled curve checkpoint when there is one, else the tiny in-process model (opened as a file)."""
    from engine import api

    if "quadratic" in api.list_checkpoints():
        assert window.sampling_panel.select_checkpoint("quadratic")
        return "quadratic"
    return open_checkpoint(qtbot, window, tiny_checkpoint)


def test_sample_live_scrub_export_and_reopen(window, qtbot, tiny_checkpoint, tmp_path, shot):
    w, panel, view = window, window.sampling_panel, window.view
    key = _checkpoint(qtbot, w, tiny_checkpoint)
    panel.sampler.setCurrentText("euler_maruyama")
    panel.steps.setValue(400)
    panel.num.setValue(24)
    panel.seed.setValue(7)
    panel.custom_grid.setChecked(True)
    panel.grid_points.setValue(160)  # resolution-free: not the training grid
    frames: list[float] = []
    view.frame_drawn.connect(lambda n: frames.append(float(view._history[-1][1])))
    mid_shot: list = []

    def grab_mid(n: int) -> None:
        if n == 8 and not mid_shot:
            mid_shot.append(shot(w, "sampling_live"))

    view.frame_drawn.connect(grab_mid)
    w.actions_by_name["run"].trigger()  # Ctrl+R
    assert w.jobs.busy and not panel.sample_button.isEnabled()
    wait_idle(qtbot, w, timeout=60_000)

    assert not w.error_box.isVisible(), w.error_box.text()
    outcome = w.workspace.outcome
    assert outcome is not None and outcome.result.samples.shape == (24, 1, 160)
    assert list(outcome.result.seeds) == list(range(7, 31))
    assert len(set(frames)) >= 10, f"only {len(set(frames))} distinct live frames"
    assert frames == sorted(frames, reverse=True)  # t runs from T down to 0
    assert view.positions == len(outcome.result.trajectory) + 1 > 10
    assert mid_shot, "no live frame was captured"
    shot(w, "sampling_done")

    # the scrubber replays the saved trajectory
    view.slider.setValue(view.positions // 3)
    assert "state" in view.time_label.text()
    shot(view, "scrubbed")
    view.slider.setValue(view.slider.maximum())

    h5 = tmp_path / "samples.h5"
    assert w.controller.export_to(str(h5))
    wait_idle(qtbot, w)
    assert h5.is_file() and not w.error_box.isVisible()
    bare = tmp_path / "bare.h5"
    panel.export_trajectory.setChecked(False)
    assert w.controller.export_to(str(bare))
    wait_idle(qtbot, w)
    panel.export_trajectory.setChecked(True)
    assert read_samples(bare).trajectory is None and read_samples(h5).trajectory is not None
    out_csv = tmp_path / "samples.csv"
    assert w.controller.export_to(str(out_csv))
    wait_idle(qtbot, w)
    with out_csv.open() as f:
        rows = list(csv.reader(f))
    assert len(rows) == 1 + 24 and len(rows[0]) == 3 + 160

    # reopen: the same settings come back, the curves and the trajectory are shown
    saved = panel.settings()
    panel.sampler.setCurrentText("ddim")
    panel.steps.setValue(5)
    panel.num.setValue(3)
    panel.seed.setValue(0)
    panel.custom_grid.setChecked(False)
    view.set_result(np.linspace(0, 1, 5), np.zeros((1, 1, 5)))
    w.open_path(str(h5))
    qtbot.waitUntil(lambda: w.workspace.opened is not None, timeout=10_000)
    assert panel.settings() == saved
    assert panel.checkpoint_key() == key
    assert view.positions == len(outcome.result.trajectory) + 1
    np.testing.assert_array_equal(view._final, w.workspace.opened.samples[: view.max_curves])
    shot(w, "reopened_h5")

    # the opened file is compared with the held-out data its model was trained on
    assert w.controller.evaluate()
    wait_idle(qtbot, w, timeout=60_000)
    assert not w.error_box.isVisible(), w.error_box.text()
    assert "power 10 vs 10" in panel.evaluation.text() and "test split" in panel.evaluation.text()
    text = panel.evaluation.text()
    assert "MMD² " in text and "a perfect generator" in text and ("within its spread" in text or "above it" in text)
    shot(w, "evaluated")

    # an opened file exports too (to CSV, straight from the file)
    again = tmp_path / "again.csv"
    assert w.controller.export_to(str(again))
    wait_idle(qtbot, w)
    assert again.read_text() == out_csv.read_text()

    # a seed is recallable: drawing it alone gives the same curve as in the file
    panel.recall_seed.setValue(12)
    panel.highlight_button.click()
    assert view._highlight.getData()[1] is not None
    expected = w.workspace.opened.samples[12 - 7]
    settings_before = panel.settings()
    panel.resample_button.click()
    wait_idle(qtbot, w, timeout=60_000)
    single = w.workspace.outcome.result
    assert list(single.seeds) == [12]
    np.testing.assert_allclose(single.samples[0], expected, rtol=1e-4, atol=1e-4)
    assert panel.settings() == settings_before  # recalling does not change the settings
    shot(w, "recalled_seed")


def test_sampling_errors_show_a_dialog_and_the_log(window, qtbot, tmp_path):
    bogus = tmp_path / "broken.safetensors"
    bogus.write_bytes(b"definitely not safetensors")
    window.sampling_panel.add_checkpoint(str(bogus), bogus.name)
    window.controller.start_sampling()
    wait_idle(qtbot, window)
    assert window.error_box.isVisible()
    message = window.error_box.text()
    assert "broken.safetensors" in message and "\n" not in message
    assert any("broken.safetensors" in line for line in window.log_panel.lines())
    assert window.sampling_panel.sample_button.isEnabled()  # the app carries on


def test_cancel_sampling_with_escape(window, qtbot, tiny_checkpoint):
    w = window
    open_checkpoint(qtbot, w, tiny_checkpoint)
    w.sampling_panel.steps.setValue(20_000)
    w.sampling_panel.num.setValue(8)
    w.controller.start_sampling()
    qtbot.waitUntil(lambda: w.view.frames >= 2, timeout=30_000)
    w.actions_by_name["cancel"].trigger()  # Esc
    wait_idle(qtbot, w)
    assert not w.error_box.isVisible() and "cancelled" in w.job_status.label.text().lower()
    assert w.sampling_panel.sample_button.isEnabled()


def test_a_cancelled_run_gives_back_the_previous_samples(window, qtbot, tiny_checkpoint):
    """Export, "Sample this seed" and Highlight act on the last finished samples: after a cancelled run the
    view must show those again, not the cancelled run's partial frames."""
    import numpy as np

    w, panel = window, window.sampling_panel
    open_checkpoint(qtbot, w, tiny_checkpoint)
    panel.steps.setValue(3)
    panel.num.setValue(6)
    w.controller.start_sampling()
    wait_idle(qtbot, w)
    finished = np.array(w.view._final, copy=True)
    panel.steps.setValue(20_000)
    panel.num.setValue(8)
    w.controller.start_sampling()
    qtbot.waitUntil(lambda: w.view.frames >= 2, timeout=30_000)
    w.actions_by_name["cancel"].trigger()
    wait_idle(qtbot, w)
    assert "the previous samples are shown" in w.view.time_label.text()
    np.testing.assert_array_equal(w.view._final, finished)
    assert w.workspace.outcome.result.samples.shape[0] == 6 and panel.export_button.isEnabled()
