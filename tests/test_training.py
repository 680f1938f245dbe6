"""Trainer: determinism, exact resume, checkpoints, and learning on a closed-form case."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine import api
from engine.config import RunConfig
from engine.data import load_function_dataset
from engine.errors import Cancelled, CheckpointError
from engine.training import Trainer

TINY = RunConfig().replace(data={"spec": "quadratic", "n_points": 32, "num": 200},
                           model={"width": 8, "modes": 4, "layers": 1, "emb_dim": 16},
                           train={"steps": 12, "batch_size": 16, "warmup": 2, "checkpoint_every": 5})


def test_training_is_deterministic_given_the_seed():
    a, b = Trainer(TINY), Trainer(TINY)
    la = [a.step() for _ in range(5)]
    lb = [b.step() for _ in range(5)]
    assert la == lb


def test_resume_continues_the_same_loss_curve(tmp_path):
    straight = Trainer(TINY)
    straight.run()
    first = Trainer(TINY)
    with pytest.raises(Cancelled):  # interrupted at step 7 of 12: state saved on cancel
        first.run(out_dir=tmp_path, should_stop=lambda: first.step_count >= 7)
    resumed = Trainer.resume(tmp_path)
    assert resumed.step_count == 7
    resumed.run(out_dir=tmp_path)
    np.testing.assert_allclose(resumed.losses, straight.losses, rtol=1e-5)
    for p, q in zip(resumed.ema.parameters(), straight.ema.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_checkpoint_round_trip_samples_identically(tmp_path):
    trainer = Trainer(TINY)
    trainer.run(out_dir=tmp_path)
    model = api.load_model(tmp_path)
    ref = trainer.model()
    a = model.sample(6, steps=4, seed=3).samples
    b = ref.sample(6, steps=4, seed=3).samples
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert len(model.sha256) == 64


def test_cancel_saves_and_raises(tmp_path):
    trainer = Trainer(TINY)
    with pytest.raises(Cancelled):
        trainer.run(out_dir=tmp_path, should_stop=lambda: trainer.step_count >= 3)
    assert Trainer.resume(tmp_path).step_count == 3


def test_resume_from_a_corrupt_state_is_a_checkpoint_error(tmp_path):
    Trainer(TINY).run(out_dir=tmp_path)
    state = tmp_path / "train_state.pt"
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(CheckpointError):
        Trainer.resume(tmp_path)


def test_samples_are_denormalised_and_follow_their_seeds():
    trainer = Trainer(TINY)
    trainer.run()
    model = trainer.model()
    r1 = model.sample(4, steps=3, seeds=[7, 8, 9, 10], batch_size=4)
    r2 = model.sample(2, steps=3, seeds=[9, 10], batch_size=1)
    np.testing.assert_allclose(r1.samples[2:], r2.samples, rtol=1e-4, atol=1e-3)
    assert r1.samples.shape == (4, 1, 32)


@pytest.mark.slow
def test_learns_gaussian_data_on_a_new_grid():
    """Trained on GP draws on 32 points, samples on 48 points have the data's covariance."""
    cfg = RunConfig().replace(
        data={"spec": "gp", "n_points": 32, "num": 1000},
        noise={"kernel": "squared_exponential", "length_scale": 1.0},
        model={"width": 16, "modes": 8, "layers": 2, "emb_dim": 32},
        train={"steps": 400, "batch_size": 64, "lr": 3e-3, "warmup": 20})
    trainer = Trainer(cfg)
    trainer.run()
    model = trainer.model()
    grid = np.linspace(-10, 10, 48)
    x = model.sample(800, steps=30, sampler="ddim", grid=grid, seed=100).samples[:, 0]
    real = load_function_dataset("gp", "test", n_points=48, num=800).values[:, 0]
    pointwise_var = x.var(0).mean() / real.var(0).mean()
    assert 0.75 < pointwise_var < 1.3, pointwise_var
    lag1 = np.corrcoef(x[:, 20], x[:, 21])[0, 1]
    lag1_real = np.corrcoef(real[:, 20], real[:, 21])[0, 1]
    assert abs(lag1 - lag1_real) < 0.1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_training_step_on_a_gpu_queues_its_work_without_waiting_for_it():
    """No host synchronisation inside a step (torch raises at any synchronising CUDA call in "error"
    mode): the host queues step k + 1 while the GPU still runs step k; only ``flush`` waits."""
    trainer = Trainer(TINY.replace(train={"subgrid_prob": 0.5}), device="cuda")
    for _ in range(4):  # first steps: allocations, the optimizer's state, FFT plans
        trainer.step()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(8):  # full grids and sub-grids (this seed draws both)
            trainer.step_async()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert len(trainer.flush()) == 8


def test_losses_are_read_back_every_step_on_a_cpu_and_every_ten_on_a_gpu():
    from engine.training import default_readout_every

    assert default_readout_every("cpu") == 1 and default_readout_every(torch.device("cpu")) == 1
    assert default_readout_every("cuda") == default_readout_every("cuda:1") == 10


def test_the_periodic_kernel_gets_the_datasets_length_in_its_own_terms():
    """``--kernel periodic`` without ``--length-scale``: the dataset's suggested length (grid units) becomes
    the periodic kernel's period-relative one, and the checkpoint stores that."""
    from engine.data.dataset import FunctionDataset
    from engine.operators import kernel_length_scale

    grid = np.arange(48.0)
    values = np.sin(2 * np.pi * grid / 48 + np.arange(20)[:, None])[:, None, :].astype(np.float32)
    data = FunctionDataset("days", values, grid, "test", 6.0)
    config = RunConfig().replace(noise={"kernel": "periodic", "period": 48.0},
                                 model={"width": 8, "modes": 4, "layers": 1}, train={"steps": 1, "batch_size": 4})
    trainer = Trainer(config, dataset=data)
    assert trainer.config.noise.length_scale == trainer.geometry.length_scale == kernel_length_scale(
        "periodic", 6.0, 48.0) == pytest.approx(np.sqrt(2) * np.sin(np.pi / 8))


def test_a_run_is_saved_over_its_own_checkpoint_only(tmp_path):
    """``check_save_folder``: what a user-chosen folder for Save… must pass (``save`` itself writes regardless)."""
    from engine.errors import ConfigError

    other = Trainer(TINY)
    other.step()
    other.save(tmp_path / "other")
    trainer = Trainer(TINY)
    trainer.step()
    with pytest.raises(ConfigError, match="already holds another run .*choose an empty or new folder"):
        trainer.check_save_folder(tmp_path / "other")
    trainer.check_save_folder(tmp_path / "new")  # a new folder, or one without a run
    trainer.save(tmp_path / "new")
    trainer.check_save_folder(tmp_path / "sub" / ".." / "new")  # its own folder, however named
    Trainer.resume(tmp_path / "other").check_save_folder(tmp_path / "other")  # a resumed run owns its folder


def test_a_batch_of_many_copies_of_the_data_is_allowed_with_a_warning(caplog):
    data = load_function_dataset("quadratic", n_points=16, num=8)
    with caplog.at_level("WARNING", logger="engine.training"):
        Trainer(TINY.replace(train={"batch_size": 8}), dataset=data)
        assert not caplog.records
        Trainer(TINY.replace(train={"batch_size": 80}), dataset=data)
    assert "batch 80 is 10 times the 8 items" in caplog.text


def test_an_interrupt_does_not_fall_between_the_runs_two_files(tmp_path, monkeypatch):
    """Ctrl+C or SIGTERM between model.safetensors and train_state.pt left them a checkpoint apart (soak audit):
    resuming from one step, sampling from the next. It now waits until both are written, then stops the run."""
    import os
    import signal

    import engine.io
    from engine.io import load_model, load_train_state

    config = RunConfig().replace(data={"num": 64}, model={"width": 8, "modes": 4, "layers": 1},
                                 train={"steps": 4, "batch_size": 8, "warmup": 1})
    trainer = Trainer(config)
    trainer.step()
    trainer.save(tmp_path)
    trainer.step()
    real = engine.io.save_model

    def save_model_then_interrupted(*args, **kwargs):
        out = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # Python runs a handler at the next bytecode
            pass
        return out

    monkeypatch.setattr(engine.io, "save_model", save_model_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        trainer.save(tmp_path)
    assert load_train_state(tmp_path / "train_state.pt")["step"] == 2
    assert load_model(tmp_path / "model.safetensors").meta["training"]["step"] == 2


def test_an_interrupted_run_is_saved_at_its_last_whole_step_and_resumes_exactly(tmp_path, monkeypatch):
    """Ctrl+C or SIGTERM (the CLI's KeyboardInterrupt) before the first periodic checkpoint (500 steps by default)
    saved nothing: 37 steps of 400 were lost and --resume had nothing to continue. The run is now saved, at the
    end of the step the signal fell in (it waits for it), and resuming gives the uninterrupted run's losses."""
    import os
    import signal

    from engine.io import load_train_state

    config = TINY.replace(train={"steps": 8, "checkpoint_every": 0})
    straight = Trainer(config)
    straight.run()
    trainer = Trainer(config)
    real = trainer._backward

    def interrupted_in_step_five(*args):
        loss = real(*args)
        if trainer.step_count == 4:  # inside step 5, before its optimiser update
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # Python runs a handler at the next bytecode
                pass
        return loss

    monkeypatch.setattr(trainer, "_backward", interrupted_in_step_five)
    reported = []
    with pytest.raises(KeyboardInterrupt):
        trainer.run(out_dir=tmp_path / "run", readout_every=1, callback=lambda p: reported.append(p.step))
    state = load_train_state(tmp_path / "run" / "train_state.pt")
    assert state["step"] == 5 and len(state["losses"]) == 5  # step 5 whole: update, EMA and count
    assert reported == [1, 2, 3, 4, 5]  # the progress shown ends at the step saved
    resumed = Trainer.resume(tmp_path / "run")
    resumed.run(readout_every=1)
    np.testing.assert_allclose(resumed.losses, straight.losses, rtol=1e-6)
    assert (tmp_path / "run" / "model.safetensors").is_file()
