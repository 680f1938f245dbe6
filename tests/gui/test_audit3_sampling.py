"""Third GUI audit, sampling and training: Save… never replaces another run, a re-saved checkpoint is reloaded,
"Sample this seed" and Export follow the samples shown (not the checkpoint selected now), a diverged run says so,
and counts are in the singular where there is one."""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest

from studio.workspace import TRAINED
from tests.gui.helpers import load_restoration_item, open_checkpoint, wait_idle

pytestmark = pytest.mark.gui


def _train(qtbot, window, steps: int = 3, lr: float | None = None, batch: int = 16) -> None:
    panel = window.training_panel
    panel.width_box.setValue(8)
    panel.modes_box.setValue(4)
    panel.layers_box.setValue(1)
    panel.batch_box.setValue(batch)
    panel.steps_box.setValue(steps)
    if lr is not None:
        panel.lr_box.setValue(lr)
    window.controller.start_training()
    wait_idle(qtbot, window, timeout=60_000)
    assert window.workspace.training.trainer.step_count == steps


def _sample(qtbot, window, key: str, num: int = 2) -> None:
    panel = window.sampling_panel
    assert panel.select_checkpoint(key)
    panel.num.setValue(num)
    panel.steps.setValue(4)
    window.controller.start_sampling()
    wait_idle(qtbot, window, timeout=60_000)
    assert not window.error_box.isVisible(), window.error_box.text()


def _digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_save_refuses_a_folder_holding_another_run_but_updates_its_own(window, qtbot, tmp_path, tiny_checkpoint, shot):
    w = window
    _train(qtbot, w)
    victim = tmp_path / "victim"
    shutil.copytree(tiny_checkpoint.parent, victim)
    before = _digest(victim)
    w.controller.save_checkpoint(str(victim))
    wait_idle(qtbot, w)
    assert w.error_box.isVisible() and "choose an empty or new folder" in w.error_box.text()
    assert _digest(victim) == before  # nothing written, not even in part
    shot(w, "save_refused")
    w.error_box.hide()

    own = tmp_path / "own"
    w.controller.save_checkpoint(str(own))
    wait_idle(qtbot, w)
    assert (own / "model.safetensors").is_file() and not w.error_box.isVisible()
    w.controller.save_checkpoint(str(own))  # this run's folder: an update of its own checkpoint
    wait_idle(qtbot, w)
    assert not w.error_box.isVisible(), w.error_box.text()


def test_resaving_a_checkpoint_forgets_every_model_loaded_from_it(window, qtbot, tmp_path):
    w = window
    _train(qtbot, w)
    folder = tmp_path / "run"
    w.controller.save_checkpoint(str(folder))
    wait_idle(qtbot, w)
    path = open_checkpoint(qtbot, w, folder / "model.safetensors")
    wait_idle(qtbot, w)
    assert path in w.workspace.models
    models = w.restoration_panel._models
    assert models is w.workspace.models, "Sampling and Restore share one cache: a checkpoint is read once"
    other_spelling = os.path.join(str(folder), ".", "model.safetensors")  # as the Restore tab might name it
    models.load(other_spelling, "cpu")
    w.controller.save_checkpoint(str(folder))
    wait_idle(qtbot, w)
    assert not w.error_box.isVisible(), w.error_box.text()
    assert path not in models and other_spelling not in models  # the next use reads the file again


def test_sample_this_seed_uses_the_model_and_settings_of_the_samples_shown(
        window, qtbot, tiny_checkpoint, tiny_walk_checkpoint, shot):
    w, panel = window, window.sampling_panel
    curves = open_checkpoint(qtbot, w, tiny_checkpoint)
    walk = open_checkpoint(qtbot, w, tiny_walk_checkpoint)
    _sample(qtbot, w, walk, num=3)
    drawn = w.workspace.outcome
    panel.select_checkpoint(curves)  # browsing the list, no new sampling
    panel.steps.setValue(9)
    panel.recall_seed.setValue(1)
    panel.resample_button.click()
    wait_idle(qtbot, w, timeout=60_000)
    again = w.workspace.outcome
    assert again.model is drawn.model and again.result.modality == "motions"
    assert list(again.result.seeds) == [1] and again.result.settings["steps"] == 4
    assert panel.result.text().startswith("1 sample (motions)")
    assert panel.checkpoint_key() == curves and panel.steps.value() == 9  # the panel's choices are kept
    qtbot.wait(50)
    shot(w, "sample_this_seed_shown_model")


def test_sample_this_seed_is_off_for_a_file_whose_model_is_not_here(window, qtbot, tmp_path):
    w, panel = window, window.sampling_panel
    _train(qtbot, w)
    _sample(qtbot, w, TRAINED)
    assert panel.resample_button.isEnabled()
    path = tmp_path / "trained.h5"
    assert w.controller.export_to(str(path))
    wait_idle(qtbot, w)
    _train(qtbot, w)  # the session's model is another one now
    w.open_path(str(path))
    qtbot.waitUntil(lambda: w.workspace.opened is not None, timeout=15_000)
    assert not panel.resample_button.isEnabled()
    assert "not here" in panel.resample_button.toolTip()


def test_export_formats_follow_the_samples_shown(window, qtbot, tmp_path, tiny_checkpoint, tiny_walk_checkpoint, shot):
    w, panel = window, window.sampling_panel
    curves = open_checkpoint(qtbot, w, tiny_checkpoint)
    walk = open_checkpoint(qtbot, w, tiny_walk_checkpoint)
    _sample(qtbot, w, walk)
    panel.select_checkpoint(curves)
    model = panel.export_format.model()
    enabled = {panel.export_format.itemData(i) for i in range(panel.export_format.count()) if model.item(i).isEnabled()}
    assert enabled == {"h5", "bvh"}
    qtbot.wait(50)  # the panel's layout, before the screenshot
    shot(w, "export_formats_of_samples_shown")
    assert not w.controller.export_to(str(tmp_path / "walks.csv"))  # a name ending .csv, typed by hand
    message = w.error_box.text()
    assert w.error_box.isVisible() and "motions" in message and "BVH" in message
    assert "--" not in message and "hdm-export" not in message
    assert not (tmp_path / "walks.csv").exists()


def test_a_diverged_run_says_so(window, qtbot, shot):
    _train(qtbot, window, steps=10, lr=1.0)  # the LR box's maximum: the loss rises about 1e20-fold
    text = window.training_panel.status.text()
    assert text.startswith("Training diverged") and "smaller learning rate" in text
    assert any("diverged" in line for line in window.log_panel.lines())
    assert "(diverged)" in window.sampling_panel.checkpoint.currentText()
    qtbot.wait(50)
    shot(window.training_panel, "training_diverged")


def test_counts_of_one_are_singular(window, qtbot, tmp_path):
    w, panel = window, window.sampling_panel
    _train(qtbot, w, steps=1)
    assert "Trained 1 step " in w.training_panel.status.text()
    _sample(qtbot, w, TRAINED, num=1)
    assert panel.result.text().startswith("1 sample (functions)")
    path = tmp_path / "one.h5"
    assert w.controller.export_to(str(path))
    wait_idle(qtbot, w)
    w.open_path(str(path))
    qtbot.waitUntil(lambda: w.workspace.opened is not None, timeout=15_000)
    assert "one.h5: 1 sample (functions) on" in panel.result.text()


def test_a_batch_of_many_copies_of_the_data_is_said_in_the_log(window, qtbot):
    _train(qtbot, window, steps=1, batch=2 * len(window.workspace.dataset))
    assert any("batch 2000 is 2 times the 1000 items" in line for line in window.log_panel.lines())


def test_a_cancelled_evaluation_says_so(window, qtbot, tiny_checkpoint):
    """Cancel stopped the evaluation (it takes a cancel token now), but the panel kept "Evaluating…"."""
    panel = window.sampling_panel
    open_checkpoint(qtbot, window, tiny_checkpoint)
    panel.steps.setValue(2)
    panel.num.setValue(20)
    window.controller.start_sampling()
    wait_idle(qtbot, window)
    assert window.controller.evaluate()
    assert panel.evaluation.text().startswith("Evaluating")
    window.controller.cancel_current()
    wait_idle(qtbot, window)
    assert panel.evaluation.text() == "Evaluation cancelled."


def test_sampling_and_restore_read_a_checkpoint_once(window, qtbot, monkeypatch):
    """One model per checkpoint for the session: the Restore tab uses the one Sampling loaded (and the other way
    round), where each used to read its own copy (the bundled image checkpoints are 7 MB each)."""
    from engine import api

    reads: list[str] = []
    real = api.load_model

    def counting(spec, *args, **kwargs):
        reads.append(str(spec))
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(api, "load_model", counting)
    w, panel = window, window.sampling_panel
    assert panel.select_checkpoint("quadratic")
    panel.steps.setValue(2)
    panel.num.setValue(2)
    w.controller.start_sampling()
    wait_idle(qtbot, w)
    assert w.workspace.outcome is not None and reads == ["quadratic"]
    w.central_tabs.setCurrentWidget(w.restoration_panel)  # the tab loads its item once shown
    load_restoration_item(qtbot, w.restoration_panel, "quadratic")
    assert reads == ["quadratic"], "the Restore tab read the checkpoint again"
    assert w.restoration_panel.loaded.checkpoint == "quadratic"
