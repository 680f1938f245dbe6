"""What a run records of itself (its data, its history, the file its model is in), so that it can be resumed
only on its own data and repeated from its checkpoint; training on the caller's own arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine import api
from engine.config import RunConfig
from engine.data.loaders import array_dataset
from engine.errors import ConfigError, DataError
from engine.io import file_sha256, load_model, load_train_state, save_train_state
from engine.training import STATE_FILE, Trainer

TINY = RunConfig().replace(model={"width": 8, "modes": 4, "layers": 1, "emb_dim": 16},
                           train={"steps": 4, "batch_size": 16, "warmup": 1, "checkpoint_every": 100})


def _curves(num: int = 60, n: int = 24, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 1.0, n)
    return 100.0 + 2.0 * np.sin(6.0 * x[None, :] + rng.uniform(0.0, 6.0, (num, 1)))  # [N, n], far from 0


def test_a_run_on_an_array_is_recorded_as_in_memory_and_resumes_only_on_the_same_array(tmp_path):
    """Before: the run on an array recorded the config's default data ("quadratic"), and resuming it loaded
    Quadratic, refitted the normaliser (mean 100 became 0.3) and trained on: samples had mean 3, not 100."""
    curves, out = _curves(), tmp_path / "run"
    trainer = api.train(TINY, out, dataset=curves)
    checkpoint = load_model(out / "model.safetensors")
    assert checkpoint.config["data"]["spec"] == "in-memory:array"
    assert checkpoint.meta["training"]["dataset_sha256"] == trainer.data_sha256
    with pytest.raises(DataError, match=r"in memory \(array\).*dataset="):
        api.train(TINY.replace(train={"steps": 6}), out, resume=True)
    with pytest.raises(ConfigError, match="differ from the data the run"):
        api.train(TINY.replace(train={"steps": 6}), out, resume=True, dataset=curves[:50])
    resumed = api.train(TINY.replace(train={"steps": 6}), out, resume=True, dataset=torch.from_numpy(curves))
    assert resumed.step_count == 6 and resumed.normalizer.to_dict() == trainer.normalizer.to_dict()
    assert abs(float(resumed.model().sample(8, steps=5, seed=0).samples.mean()) - 100.0) < 20.0


def test_a_dataset_the_config_names_keeps_its_name(tmp_path):
    """The studio hands the Trainer the dataset it loaded from the config's spec: that spec stays."""
    from engine.config import DataConfig
    from engine.data.select import load_dataset

    path = tmp_path / "c.npy"
    np.save(path, _curves())
    for spec in ("quadratic", str(path)):
        config = TINY.replace(data={"spec": spec, "num": 40, "n_points": 16} if spec == "quadratic" else {"spec": spec})
        dataset, _ = load_dataset(DataConfig(**{**config.data.__dict__}), "train")
        assert Trainer(config, dataset=dataset).config.data.spec == spec
    # a FunctionDataset of the caller's own, under a name the config does not give, is in memory too
    assert Trainer(TINY, dataset=array_dataset(_curves(), np.linspace(0, 1, 24), name="mine")).config.data.spec \
        == "in-memory:mine"


def test_array_datasets_are_checked_like_files():
    with pytest.raises(DataError, match=r"\[N, n\] or \[N, C, n\]"):
        array_dataset(np.zeros((2, 3, 4, 5)))
    with pytest.raises(DataError, match="NaN or inf"):
        array_dataset(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(DataError, match="strictly increasing"):
        array_dataset(np.zeros((3, 4)), grid=[0.0, 2.0, 1.0, 3.0])
    with pytest.raises(ConfigError, match=r"got a ndarray.*dataset=array"):
        RunConfig().replace(data={"spec": np.zeros(3)})


def test_a_resumed_run_records_each_segment_of_its_training(tmp_path):
    """Before: 30 steps resumed to 60 left the same config as a straight 60-step run, with other weights (the
    learning rate's schedule spanned 30 steps, then 60): nothing said it had been resumed."""
    out = tmp_path / "run"
    config = TINY.replace(data={"spec": "quadratic", "num": 40, "n_points": 16})
    api.train(config, out)
    first = load_model(out / "model.safetensors").meta["training"]
    assert first["resumed"] is False and [(s["from_step"], s["steps"]) for s in first["history"]] == [(0, 4)]
    assert {"precision", "compile", "device", "processes", "started", "versions"} <= set(first["history"][0])
    api.train(config.replace(train={"steps": 7}), out, resume=True)
    second = load_model(out / "model.safetensors").meta["training"]
    assert second["resumed"] is True and [(s["from_step"], s["steps"]) for s in second["history"]] == [(0, 4), (4, 7)]
    # a run saved before runs recorded their data and history resumes, and says its first segment is unknown
    state = load_train_state(out / STATE_FILE)
    del state["data_sha256"], state["history"]
    save_train_state(out / STATE_FILE, state)
    old = Trainer.resume(out, steps=8)
    assert old.history[0] == {"from_step": 0, "recorded": False} and old.history[1]["from_step"] == 7


def test_a_resume_refuses_settings_it_would_ignore_and_fewer_steps(tmp_path):
    """Before: api.train(resume=True) silently kept the run's width when asked for another, and 'resumed' a
    10-step run to 4 steps (nothing ran; the state said steps 4 at step 10)."""
    out = tmp_path / "run"
    config = TINY.replace(data={"spec": "quadratic", "num": 40, "n_points": 16})
    api.train(config, out)
    with pytest.raises(ConfigError, match=r"model.width: asked 16, the run has 8"):
        api.train(config.replace(model={"width": 16}, train={"steps": 6}), out, resume=True)
    with pytest.raises(ConfigError, match="has trained 4 steps already"):
        api.train(config.replace(train={"steps": 3}), out, resume=True)
    # defaults are not asked for: a plain RunConfig with more steps continues the run
    assert api.train(RunConfig().replace(train={"steps": 5}), out, resume=True).step_count == 5


def test_the_model_a_trainer_hands_out_names_the_file_that_holds_it(tmp_path):
    """Before: a trainer's model named the dataset ("quadratic") as its checkpoint, and sample files written
    from it pointed at the bundled checkpoint, another model (regenerating: max difference 203)."""
    out = tmp_path / "run"
    trainer = api.train(TINY.replace(data={"spec": "quadratic", "num": 40, "n_points": 16}), out)
    model = trainer.model()
    assert model.source == str((out / "model.safetensors").resolve())
    assert model.sha256 == file_sha256(out / "model.safetensors")
    path = api.write_sample_file(tmp_path / "s.h5", model.sample(2, steps=3), model)
    import h5py

    with h5py.File(path, "r") as f:
        assert json.loads(f.attrs["config"])["checkpoint"] == model.source
        assert f.attrs["checkpoint_sha256"] == model.sha256
    trainer.step()  # past the last save: no file holds the model now
    unsaved = trainer.model()
    assert unsaved.source == "" and unsaved.sha256 == ""
    with h5py.File(api.write_sample_file(tmp_path / "u.h5", unsaved.sample(2, steps=3), unsaved), "r") as f:
        assert json.loads(f.attrs["config"])["checkpoint"] is None and f.attrs["checkpoint_sha256"] == ""


def test_a_stopped_run_hands_out_its_trainer(tmp_path):
    """Stopping api.train raised Cancelled with no handle on the trainer: its model had to be read back from disk."""
    from engine.errors import Cancelled

    config = TINY.replace(data={"spec": "quadratic", "num": 40, "n_points": 16}, train={"steps": 50})
    calls = []
    with pytest.raises(Cancelled) as stopped:
        api.train(config, tmp_path / "run", should_stop=lambda: calls.append(1) or len(calls) > 3)
    trainer = stopped.value.partial
    assert isinstance(trainer, Trainer) and trainer.step_count == 3
    assert trainer.model().sha256 == file_sha256(tmp_path / "run" / "model.safetensors")  # saved at that step


def test_a_dataset_name_is_recorded_as_a_name_even_beside_a_folder_of_that_name(tmp_path, monkeypatch):
    """Regression review H1: after `hdm train --out quadratic`, the next run from that folder recorded the first
    run's folder as its data (a path), could not be resumed, and the studio's Evaluate failed on it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quadratic").mkdir()
    config = TINY.replace(data={"spec": "quadratic", "num": 40, "n_points": 16})
    trainer = api.train(config, tmp_path / "run")
    assert trainer.config.data.spec == "quadratic"
    assert api.train(config.replace(train={"steps": 5}), tmp_path / "run", resume=True).step_count == 5
    report = api.evaluate(api.write_sample_file(tmp_path / "s.h5", trainer.model().sample(20, steps=2),
                                                trainer.model()), "quadratic", block_size=10, repeats=2,
                          permutations=19, balanced_sizes=(10,))
    assert report["data"]["split"] == "test" and "sha256" not in report["data"]


def test_data_named_like_a_dataset_but_given_in_memory_are_in_memory(tmp_path):
    """Regression review M5: an array named "quadratic" was recorded as the generated Quadratic set."""
    trainer = Trainer(TINY, dataset=array_dataset(_curves(), name="quadratic"))
    assert trainer.config.data.spec == "in-memory:quadratic"
    model = trainer.model()
    samples = api.write_sample_file(tmp_path / "s.h5", model.sample(4, steps=2), model)
    with pytest.raises(DataError, match="trained on data given in memory"):  # was: "unknown dataset"
        api.evaluate(samples, model.config.data.spec)


def test_a_run_whose_data_file_moved_resumes_from_its_new_place_if_the_data_are_its_own(tmp_path, capsys):
    """Regression review M3: with the data's SHA-256 recorded, a moved file is the run's data; before, the CLI
    refused the new --data as a changed setting and could not find the old one."""
    from engine.cli import main

    data = tmp_path / "curves.npy"
    np.save(data, _curves())
    out = tmp_path / "run"
    small = ["--width", "8", "--modes", "4", "--layers", "1", "--batch-size", "16", "--quiet"]
    assert main(["train", "--data", str(data), "--steps", "2", "--out", str(out), *small]) == 0
    moved = data.rename(tmp_path / "moved.npy")
    assert main(["train", "--resume", "--steps", "3", "--out", str(out), "--quiet"]) == 2  # not at the old place
    capsys.readouterr()
    assert main(["train", "--resume", "--data", str(moved), "--steps", "3", "--out", str(out), "--quiet"]) == 0
    history = load_model(out / "model.safetensors").meta["training"]["history"]
    assert [h["data"] for h in history] == [str(data.resolve()), str(moved.resolve())]
    np.save(tmp_path / "other.npy", _curves(seed=1))
    assert main(["train", "--resume", "--data", str(tmp_path / "other.npy"), "--steps", "4", "--out", str(out),
                 "--quiet"]) == 2
    assert "differ from the data the run" in capsys.readouterr().err


def test_loading_a_run_as_trained_adds_no_segment_and_names_its_file(tmp_path):
    """Regression review M4: the studio reads a run its child process trained with Trainer.resume, which added a
    resume that never happened, and the model it handed out named no file."""
    out = tmp_path / "run"
    api.train(TINY.replace(data={"spec": "quadratic", "num": 40, "n_points": 16}), out)
    loaded = Trainer.resume(out, continue_run=False)
    assert len(loaded.history) == 1 and loaded.model_metadata()["training"]["resumed"] is False
    assert loaded.model().sha256 == file_sha256(out / "model.safetensors")


def test_a_dataset_object_is_recorded_as_what_load_dataset_read_it_from(tmp_path):
    """Second review M3: the record compared the spec alone, so a model trained on Quadratic's test split was
    recorded as plain 'quadratic' (its train split: evaluate then called its own training data held out), and
    one loaded with num/n_points was recorded without them (resuming refused it as other data)."""
    from engine.config import DataConfig
    from engine.data.select import load_dataset

    small, _ = load_dataset(DataConfig(spec="quadratic", num=50, n_points=40, seed=3), "train")
    trainer = Trainer(TINY, dataset=small)
    assert (trainer.config.data.spec, trainer.config.data.num, trainer.config.data.n_points,
            trainer.config.data.seed) == ("quadratic", 50, 40, 3)
    trainer.run(out_dir=tmp_path / "run")
    assert Trainer.resume(tmp_path / "run", steps=5).step_count == 4  # the same data load again: accepted
    held, _ = load_dataset(DataConfig(spec="quadratic", num=50, n_points=40), "test")
    assert Trainer(TINY, dataset=held).config.data.spec == "in-memory:quadratic"


def test_a_missing_data_file_on_resume_says_how_to_name_its_new_place(tmp_path):
    from engine.cli import main

    data = tmp_path / "curves.npy"
    np.save(data, _curves())
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--steps", "2", "--out", str(out), "--width", "8", "--modes", "4",
                 "--layers", "1", "--batch-size", "16", "--quiet"]) == 0
    data.unlink()
    with pytest.raises(DataError, match=r"moved, name their new place: hdm train --resume --data NEWPATH"):
        Trainer.resume(out, steps=3)
