"""Training in several processes from the studio: a torchrun child, followed through its progress file.

Two gloo processes train a tiny model for a few steps; the loss reaches the plot while the child
runs, the run folder holds the checkpoint, and the session samples from the model at once. A
child that fails (its data file is gone) reports its error; Cancel stops every process.
"""

from __future__ import annotations

import json
import os

import pytest

from engine.config import RunConfig
from studio.child_training import JsonlFollower, train_arguments
from studio.jobs import IDLE
from studio.workspace import TRAINED
from tests.gui.helpers import wait_idle

SCREENSHOT = "/tmp/child_training.png"


def test_follower_parses_complete_lines_only(tmp_path):
    path = tmp_path / "progress.jsonl"
    follower = JsonlFollower(path)
    assert follower.read() == []  # no file yet
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"step": 1, "loss": 0.5}\n{"step": 2, "lo')
    assert follower.read() == [{"step": 1, "loss": 0.5}]
    assert follower.read() == []  # the partial line waits for its end
    with open(path, "a", encoding="utf-8") as f:
        f.write('ss": 0.25}\nnot json\n\n{"event": "done"')
    assert follower.read() == [{"step": 2, "loss": 0.25}]
    assert follower.skipped == 1
    with open(path, "a", encoding="utf-8") as f:
        f.write("}\n")
    assert follower.read() == [{"event": "done"}]
    path.write_text('{"step": 1}\n')  # a new, shorter file: read from its start
    assert follower.read() == [{"step": 1}]


def test_train_arguments_express_the_config_or_refuse():
    from engine.cli import build_parser
    from engine.errors import ConfigError

    config = RunConfig().replace(data={"spec": "quadratic", "modality": "functions", "n_points": 64},
                                 noise={"kernel": "matern32", "length_scale": 0.7},
                                 model={"width": 8, "modes": 4, "layers": 1},
                                 train={"steps": 6, "batch_size": 16, "lr": 1e-3, "warmup": 0, "seed": 3})
    args = build_parser().parse_args(["train", *train_arguments(config), "--out", "x"])
    assert (args.data, args.n_points, args.kernel, args.length_scale, args.width, args.steps, args.batch_size,
            args.lr, args.warmup, args.seed) == ("quadratic", 64, "matern32", 0.7, 8, 6, 16, 1e-3, 0, 3)
    unet = RunConfig().replace(model={"name": "unet", "width": 8, "channel_mult": (1, 2), "attention_levels": ()})
    args = build_parser().parse_args(["train", *train_arguments(unet), "--out", "x"])
    assert args.channel_mult == [1, 2] and args.attention == []
    with pytest.raises(ConfigError, match="ema_decay"):
        train_arguments(RunConfig().replace(train={"ema_decay": 0.9}))
    # only the data's own kind of prior options is passed (hdm train refuses the other kind's typed with values
    # of their own)
    images = RunConfig().replace(data={"spec": "glyphs", "modality": "images"}, noise={"kernel": "matern32",
                                                                                      "sigma": 2.0})
    flags = train_arguments(images)
    assert "--kernel" not in flags and "--gain" not in flags and float(flags[flags.index("--sigma") + 1]) == 2.0
    curves = RunConfig().replace(data={"spec": "quadratic", "modality": "functions"}, noise={"gamma": 1.5})
    flags = train_arguments(curves)
    assert "--gamma" not in flags and "--blur-min" not in flags and "--kernel" in flags


def _tiny(window, steps: int, processes: int, tmp_path) -> None:
    panel = window.training_panel
    panel.width_box.setValue(8)
    panel.modes_box.setValue(4)
    panel.layers_box.setValue(1)
    panel.batch_box.setValue(16)
    panel.steps_box.setValue(steps)
    panel.processes_box.setValue(processes)
    window.settings.setValue("paths/runs", str(tmp_path / "runs"))


def _wait_child(qtbot, window, timeout: int = 90_000) -> None:
    qtbot.waitUntil(lambda: not window.controller.child.running, timeout=timeout)


@pytest.mark.gui
def test_two_processes_train_in_a_child_then_sample(window, qtbot, tmp_path, shot):
    from engine.training import Trainer

    w, panel, child = window, window.training_panel, window.controller.child
    _tiny(w, 6, 2, tmp_path)
    followed: list[int] = []
    child.preview.connect(lambda payload: followed.append(len(payload["losses"]))
                          if payload["samples"] is None else None)
    w.actions_by_name["train"].trigger()
    assert child.running and w.compute_busy and child.processes == 2
    assert not panel.start_button.isEnabled() and not panel.pause_button.isEnabled()
    assert panel.cancel_button.isEnabled() and not w.actions_by_name["pause"].isEnabled()
    assert not w.sampling_panel.sample_button.isEnabled()
    qtbot.waitUntil(lambda: bool(followed), timeout=60_000)
    shot(w.training_panel, "child_training_live")  # the loss curve while the child runs or is being loaded
    _wait_child(qtbot, w)

    assert not w.error_box.isVisible(), w.error_box.text()
    assert followed and followed[-1] == 6  # the progress file reached the loss plot while the child ran
    assert panel.loss.points == 6 and panel.samples.count > 0  # loss curve, then samples of the result
    assert "Trained 6 steps" in panel.status.text() and w.job_status.bar.value() == w.job_status.bar.maximum()
    run_dir = child.run_dir
    assert run_dir.parent == tmp_path / "runs" and (run_dir / "model.safetensors").is_file()
    records = [json.loads(line) for line in (run_dir / "progress.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records[:-1]] == list(range(1, 7)) and records[-1]["event"] == "done"
    assert any("trained 6 steps" in line for line in w.log_panel.lines())  # the child's stdout, in the log

    trainer = w.workspace.training.trainer  # loaded into the session like an in-process run
    assert trainer is not None and trainer.step_count == 6 and len(trainer.losses) == 6
    expected = Trainer(RunConfig().replace(
        data={"spec": "quadratic", "modality": "functions", "n_points": w.data_panel.n_points()},
        noise=w.prior_panel.noise_config(), equation=w.prior_panel.equation_config(),
        model=panel.model_config(), train=panel.train_config()), dataset=w.workspace.dataset).config
    assert trainer.config.replace(train={"checkpoint_every": 0}).to_dict() == expected.to_dict()
    shot(w.training_panel, "child_training")
    assert w.training_panel.grab().save(SCREENSHOT)

    sampling = w.sampling_panel
    assert sampling.checkpoint_key() == TRAINED and panel.start_button.isEnabled() and panel.save_button.isEnabled()
    sampling.steps.setValue(5)
    sampling.num.setValue(4)
    sampling.custom_grid.setChecked(False)
    w.controller.start_sampling()
    wait_idle(qtbot, w)
    assert w.workspace.outcome.result.samples.shape == (4, 1, 100)


@pytest.mark.gui
def test_a_failing_child_reports_its_error(window, qtbot, tmp_path):
    w, panel = window, window.training_panel
    _tiny(w, 4, 2, tmp_path)
    gone = tmp_path / "gone.csv"
    w.workspace.dataset_spec = str(gone)  # the data file was moved after it was loaded
    w.controller.start_training()
    assert w.controller.child.running
    _wait_child(qtbot, w)
    assert w.error_box.isVisible() and "gone.csv" in w.error_box.text()
    assert panel.status.text().startswith("Training failed") and "gone.csv" in panel.status.text()
    assert any("[train] error:" in line and "gone.csv" in line for line in w.log_panel.lines())
    assert w.workspace.training.trainer is None and panel.start_button.isEnabled()
    assert w.jobs.state == IDLE and not w.compute_busy


@pytest.mark.gui
def test_batch_must_split_over_the_processes(window, qtbot, tmp_path):
    w = window
    _tiny(w, 4, 3, tmp_path)
    w.controller.start_training()
    assert w.error_box.isVisible() and "multiple of 3" in w.error_box.text()
    assert not w.controller.child.running and not (tmp_path / "runs").exists()


@pytest.mark.gui
@pytest.mark.skipif(os.name != "posix", reason="process groups")
def test_cancel_stops_every_process_and_keeps_what_was_trained(window, qtbot, tmp_path):
    from engine import api

    w, panel, child = window, window.training_panel, window.controller.child
    _tiny(w, 250, 2, tmp_path)  # a checkpoint every 25 steps
    w.controller.start_training()
    qtbot.waitUntil(lambda: child.step >= 30, timeout=60_000)
    pgid = child._pgid
    seen = child.step
    panel.cancel_button.click()
    _wait_child(qtbot, w, timeout=30_000)
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)  # no process of the run is left
    assert "cancelled" in panel.status.text().lower() and not w.error_box.isVisible()
    trainer = w.workspace.training.trainer  # offered like a cancelled in-process run
    # SIGTERM saves the run at its last whole step (it used to keep the last periodic checkpoint, step 25)
    assert trainer is not None and trainer.step_count >= seen
    assert w.sampling_panel.checkpoint_key() == TRAINED and "cancelled" in w.sampling_panel.checkpoint.currentText()
    assert api.load_model(child.run_dir).config.model.width == 8  # complete, never half-written


@pytest.mark.gui
@pytest.mark.skipif(os.name != "posix", reason="process groups")
def test_closing_the_window_stops_the_child(window, qtbot, tmp_path):
    w, child = window, window.controller.child
    _tiny(w, 100_000, 2, tmp_path)
    w.controller.start_training()
    qtbot.waitUntil(lambda: bool(child._pgid), timeout=10_000)
    pgid = child._pgid
    w.close()
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)


@pytest.mark.skipif(os.name != "posix", reason="--stop-with watches a POSIX process id")
def test_a_child_run_stops_when_the_studio_is_gone(tmp_path):
    """The torchrun child watches the studio's process id: when that process dies without cleaning up
    (a crash, SIGKILL), torchrun and every rank stop within seconds instead of training on unseen."""
    import signal
    import subprocess
    import sys
    import time

    from studio.child_training import PROGRESS_FILE, torchrun_command

    studio = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # stands in for the studio
    config = RunConfig().replace(data={"spec": "quadratic", "n_points": 16, "num": 64},
                                 model={"width": 4, "modes": 2, "layers": 1, "emb_dim": 8},
                                 train={"steps": 100_000, "batch_size": 4, "checkpoint_every": 0})
    command = torchrun_command(config, processes=2, run_dir=tmp_path, watch_pid=studio.pid)
    assert command[command.index("--stop-with") + 1] == str(studio.pid)
    child = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / PROGRESS_FILE).exists() or (tmp_path / PROGRESS_FILE).stat().st_size < 200:
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the child never started training"
            time.sleep(0.2)
        studio.kill()
        studio.wait()
        try:  # torchrun ends once its ranks have stopped; its stderr is drained meanwhile (a full pipe would block it)
            _, err = child.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            tail = child.communicate()[1].decode()[-3000:]
            raise AssertionError(f"the run outlived the studio by 30 s: {tail}") from None
        assert "has exited; stopping" in err.decode()
        time.sleep(0.5)
        with pytest.raises(ProcessLookupError):  # nothing of the run's process group is left
            os.killpg(child.pid, 0)
    finally:
        studio.kill()
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
