"""The CLI end to end, and every bad input ends in one line, a non-zero exit, nothing written."""

from __future__ import annotations

import argparse
import inspect
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from engine.cli import main
from engine.io import save_model

ROOT = Path(__file__).resolve().parent.parent
TINY_TRAIN = ["--n-points", "32", "--num-curves", "100", "--width", "8", "--modes", "4", "--layers", "1",
              "--batch-size", "16", "--quiet"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--data", "quadratic", "--steps", "6", "--out", str(out), *TINY_TRAIN,
                 "--json", str(out / "train.json")]) == 0
    return out


def test_train_sample_evaluate_export(run_dir, tmp_path, capsys):
    summary = json.loads((run_dir / "train.json").read_text())
    assert summary["steps"] == 6 and (run_dir / "model.safetensors").is_file()
    samples = tmp_path / "s.h5"
    assert main(["sample", "--checkpoint", str(run_dir), "--num-samples", "40", "--steps", "4",
                 "--grid-size", "50", "--out", str(samples), "--quiet", "--trajectory-every", "2",
                 "--json", str(tmp_path / "s.json")]) == 0
    with h5py.File(samples, "r") as f:  # plain h5py reads it
        assert f["samples"].shape == (40, 1, 50)
        assert f["grid"].shape == (50,)
        assert list(f["seeds"][:3]) == [0, 1, 2]
        assert f["trajectory"].shape[1:] == (40, 1, 50)
        assert json.loads(f.attrs["config"])["sampling"]["sampler"] == "dpm2m_sde"  # the default
        assert len(f.attrs["checkpoint_sha256"]) == 64
        assert "torch" in json.loads(f.attrs["versions"])
    report = tmp_path / "r.json"
    assert main(["evaluate", "--samples", str(samples), "--data", "quadratic", "--block-size", "10",
                 "--repeats", "2", "--permutations", "100", "--balanced", "--json", str(report)]) == 0
    rep = json.loads(report.read_text())
    assert 0 <= rep["power"]["10"]["power"] <= 100
    mmd = rep["mmd2"]  # beside it, what 10 draws of 40 fresh Quadratic curves score against the same held-out ones
    floor = mmd["floor"]
    assert (mmd["n_generated"], floor["draws"], floor["size"], floor["disjoint"]) == (40, 10, 40, True)
    assert mmd["at_floor"] == (mmd["value"] <= floor["bar"])
    out = capsys.readouterr().out
    assert "a perfect generator scores" in out
    assert ("within its spread" in out) == mmd["at_floor"] and ("above its mean + 2 sd" in out) != mmd["at_floor"]
    csv = tmp_path / "s.csv"
    assert main(["export", "--samples", str(samples), "--format", "csv", "--out", str(csv)]) == 0
    assert len(csv.read_text().splitlines()) == 41
    assert main(["list"]) == 0
    assert "quadratic" in capsys.readouterr().out


def _fails(args, capsys, *must_mention):
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert err.startswith("error: ") and "\n" not in err, err
    for word in must_mention:
        assert word in err, err
    return err


def test_bad_data_files(tmp_path, capsys):
    out = tmp_path / "out"
    nan = tmp_path / "nan.csv"
    nan.write_text("1,2,3\n4,nan,6\n")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("1,2,3\n4,5\n")
    text = tmp_path / "text.csv"
    text.write_text("1,2,3\n4,abc,6\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    for bad in (tmp_path / "missing.csv", nan, ragged, text, empty):
        _fails(["train", "--data", str(bad), "--steps", "2", "--out", str(out), "--quiet"], capsys, bad.name)
    assert not out.exists()


@pytest.mark.parametrize("option,value", [("--steps", "0"), ("--length-scale", "-1"), ("--length-scale", "0"),
                                          ("--batch-size", "0"), ("--kernel", "cubic"), ("--equation", "heat"),
                                          ("--device", "tpu"), ("--stop-with", "0"), ("--stop-with", "999999999"),
                                          ("--readout-every", "0"), ("--checkpoint-every", "-5")])
def test_bad_training_options(option, value, tmp_path, capsys):
    out = tmp_path / "out"
    _fails(["train", "--data", "quadratic", "--out", str(out), "--quiet", "--steps", "2", option, value], capsys)
    assert not (out / "model.safetensors").exists()


def test_bad_checkpoints(run_dir, tmp_path, capsys):
    out = tmp_path / "s.h5"
    truncated = tmp_path / "trunc.safetensors"
    truncated.write_bytes((run_dir / "model.safetensors").read_bytes()[:500])
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps(Evil()))
    evil_pt = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, evil_pt)
    other = tmp_path / "other.safetensors"
    save_model(other, {"w": torch.zeros(3)}, config=json.loads(json.dumps({})), meta={})
    for bad in (tmp_path / "nope.safetensors", truncated, evil, evil_pt, other):
        _fails(["sample", "--checkpoint", str(bad), "--num-samples", "2", "--steps", "2", "--out", str(out),
                "--quiet"], capsys, bad.name)
    assert not marker.exists() and not out.exists()


def test_checkpoint_of_another_model(run_dir, tmp_path, capsys):
    from engine.io import load_model

    loaded = load_model(run_dir / "model.safetensors")
    cfg = dict(loaded.config)
    cfg["model"] = {**cfg["model"], "width": 16}
    wrong = tmp_path / "wrong.safetensors"
    save_model(wrong, loaded.state_dict, config=cfg, meta=loaded.meta)
    _fails(["sample", "--checkpoint", str(wrong), "--num-samples", "2", "--steps", "2", "--out",
            str(tmp_path / "s.h5"), "--quiet"], capsys, "wrong.safetensors", "another model")


@pytest.mark.parametrize("option,value", [("--steps", "0"), ("--num-samples", "0"), ("--grid-size", "1"),
                                          ("--grid-size", "0"), ("--batch-size", "0"), ("--trajectory-every", "-1"),
                                          ("--sampler", "rk4"), ("--spacing", "karras")])
def test_bad_sampling_options(run_dir, option, value, tmp_path, capsys):
    out = tmp_path / "s.h5"
    args = ["sample", "--checkpoint", str(run_dir), "--num-samples", "2", "--steps", "2", "--out", str(out),
            "--quiet", option, value]
    _fails(args, capsys)
    assert not out.exists()


def test_bad_sample_files(tmp_path, capsys):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    _fails(["evaluate", "--samples", str(junk), "--data", "quadratic"], capsys, "junk.h5")
    _fails(["export", "--samples", str(tmp_path / "none.h5"), "--format", "csv", "--out", str(tmp_path / "x.csv")],
           capsys, "none.h5")
    assert not (tmp_path / "x.csv").exists()
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((3, 8), np.nan))
    _fails(["train", "--data", str(nan), "--out", str(tmp_path / "o"), "--quiet"], capsys, "nan.npy")


def test_console_script_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "sample", "--checkpoint", str(tmp_path / "x"),
                           "--out", str(tmp_path / "s.h5"), "--quiet"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: ")


def test_sample_defaults_to_the_engine_default_sampler():
    # the CLI and the API leave the choice to engine.samplers.default_sampler_for (per modality); the CLI's help
    # spells the defaults out (its parser does not import torch): the two must not drift apart
    from engine.cli import build_parser
    from engine.pipeline import HDMModel
    from engine.samplers import DEFAULT_SAMPLER, MODALITY_DEFAULT_SAMPLERS

    parser = build_parser("sample")
    args = parser.parse_args(["sample", "--out", "x.h5"])
    assert args.sampler is None and inspect.signature(HDMModel.sample).parameters["sampler"].default is None
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["sample"]
    text = next(a for a in sub._actions if "--sampler" in a.option_strings).help
    assert f"{DEFAULT_SAMPLER} for curves and images" in text
    assert all(f"{name} for {modality}" in text for modality, name in MODALITY_DEFAULT_SAMPLERS.items())


def test_entry_points_tune_the_cpu_allocator_and_the_engine_alone_does_not():
    import platform

    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"  # elsewhere: a no-op, says False
    tuned = str(glibc)
    code = ("import engine.api, engine.training, engine.device as d; before = d._allocator_tuned; "
            "print(before, d.tune_cpu_allocator(), d.tune_cpu_allocator())")

    def run(**env: str) -> str:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, **env})
        return out.stdout.strip()

    assert run() == f"None {tuned} {tuned}"  # importing the engine changes nothing; the call is idempotent
    assert run(HDM_MALLOC_TUNING="0") == "None False False"
    code = ("import sys, engine.device as d; from engine.cli import main; main(['list']); "
            "sys.stderr.write(str(d._allocator_tuned))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr.endswith(tuned)  # `hdm` tunes it


def test_evaluate_has_no_mmd2_floor_for_a_held_out_file(tmp_path):
    from engine.api import _mmd2_with_floor

    held_out = tmp_path / "held_out.csv"
    x = np.random.default_rng(0).standard_normal((30, 1, 8))
    np.savetxt(held_out, x[:, 0], delimiter=",")
    out = _mmd2_with_floor(x[:15], x[15:], str(held_out), np.arange(8.0), split="train", seed=0)
    assert out["floor"] is None and "no second sample" in out["floor_note"]
    assert (out["n_generated"], out["n_real"]) == (15, 15) and np.isfinite(out["value"])


def test_outputs_never_overwrite_inputs(run_dir, tmp_path, capsys):
    """An --out or --json that names an input file would destroy it: refused before any work."""
    checkpoint = tmp_path / "q.safetensors"
    checkpoint.write_bytes((run_dir / "model.safetensors").read_bytes())
    before = checkpoint.read_bytes()
    _fails(["sample", "--checkpoint", str(checkpoint), "--num-samples", "2", "--steps", "2", "--out", str(checkpoint),
            "--quiet"], capsys, "same file as --checkpoint")
    assert checkpoint.read_bytes() == before
    samples = tmp_path / "s.h5"
    assert main(["sample", "--checkpoint", str(checkpoint), "--num-samples", "2", "--steps", "2", "--out",
                 str(samples), "--quiet"]) == 0
    kept = samples.read_bytes()
    _fails(["export", "--samples", str(samples), "--format", "csv", "--out", str(samples)], capsys, "same file")
    _fails(["evaluate", "--samples", str(samples), "--data", "quadratic", "--json", str(samples)], capsys, "same file")
    _fails(["export", "--samples", str(samples), "--out", str(tmp_path / "a.csv"), "--json", str(tmp_path / "a.csv")],
           capsys, "--json", "same file as --out")
    assert samples.read_bytes() == kept


def test_export_and_list_write_their_json(run_dir, tmp_path):
    samples, csv, report = tmp_path / "s.h5", tmp_path / "s.csv", tmp_path / "export.json"
    assert main(["sample", "--checkpoint", str(run_dir), "--num-samples", "2", "--steps", "2", "--out", str(samples),
                 "--quiet"]) == 0
    assert main(["export", "--samples", str(samples), "--out", str(csv), "--json", str(report)]) == 0
    assert json.loads(report.read_text()) == {"out": str(csv), "format": "csv", "samples": str(samples)}
    listing = tmp_path / "list.json"
    assert main(["list", "--json", str(listing)]) == 0
    data = json.loads(listing.read_text())
    assert "quadratic" in data["checkpoints"] and "dpm2m_sde" in data["samplers"]
    assert {d["name"] for d in data["datasets"]["motions"]} >= {"walk", "cmu07"}


def test_a_finished_run_is_not_overwritten_and_a_resumed_one_keeps_its_settings(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "quadratic", "--steps", "3", "--out", str(out), *TINY_TRAIN]) == 0
    model = (out / "model.safetensors").read_bytes()
    _fails(["train", "--data", "quadratic", "--steps", "3", "--out", str(out), *TINY_TRAIN], capsys,
           "already holds a run", "--resume")
    _fails(["train", "--data", "quadratic", "--steps", "2", "--out", str(out), "--resume", *TINY_TRAIN], capsys,
           "has trained 3 steps already")
    _fails(["train", "--steps", "6", "--out", str(out), "--resume", *TINY_TRAIN, "--width", "64", "--lr", "0.5"],
           capsys, "--width 64 (the run has 8)", "--lr 0.5")
    assert (out / "model.safetensors").read_bytes() == model
    assert main(["train", "--data", "quadratic", "--steps", "5", "--out", str(out), "--resume", *TINY_TRAIN]) == 0


def test_resume_refuses_options_written_out_even_at_their_default(tmp_path, capsys, monkeypatch):
    """An option typed on the command line counts whatever its value: ``--width 32`` is the parser's default,
    and was passed over before (the run went on at width 8 without a word)."""
    curves = tmp_path / "curves.csv"
    curves.write_text("\n".join(",".join(f"{(i * j) % 7 / 7:.3f}" for j in range(32)) for i in range(40)) + "\n")
    out = tmp_path / "run"
    assert main(["train", "--data", str(curves), "--steps", "2", "--out", str(out), *TINY_TRAIN]) == 0
    _fails(["train", "--data", str(curves), "--steps", "3", "--out", str(out), "--resume", *TINY_TRAIN, "--width",
            "32"], capsys, "--width 32 (the run has 8)")
    _fails(["train", "--steps", "3", "--out", str(out), "--resume", "--wid=32"], capsys, "--width 32")
    _fails(["train", "--steps", "3", "--out", str(out), "--resume", "--data", "quadratic"], capsys,
           "--data 'quadratic'")
    monkeypatch.chdir(tmp_path)  # the same file by another name is the same data
    assert main(["train", "--data", "./curves.csv", "--steps", "3", "--out", str(out), "--resume", "--equation",
                 "auto", "--quiet"]) == 0


def test_resume_accepts_list_options_equal_to_the_runs(tmp_path):
    """``--channel-mult 1 2`` is a tuple in the config and a JSON list in the run: they were called different."""
    image = ["--data", "glyphs", "--image-size", "8", "--width", "8", "--channel-mult", "1", "2", "--res-blocks", "1",
             "--attention", "--batch-size", "4", "--num-items", "16", "--quiet", "--out", str(tmp_path / "run")]
    assert main(["train", "--steps", "1", *image]) == 0
    assert main(["train", "--steps", "2", "--resume", *image]) == 0


def test_resume_takes_a_kernel_by_any_of_its_names(tmp_path):
    out = str(tmp_path / "run")
    assert main(["train", "--kernel", "se", "--steps", "1", "--out", out, *TINY_TRAIN]) == 0
    assert main(["train", "--kernel", "squared_exponential", "--steps", "2", "--out", out, "--resume", "--quiet"]) == 0


def test_evaluating_against_the_training_file_says_it_is_not_held_out(tmp_path, capsys):
    """A model trained on a file was compared with that file and the report said "test split"; a copy of the file,
    or the file moved, is the training data too (the checkpoint's data SHA-256 says so), another file is not."""
    rng = np.random.default_rng(0)

    def write_curves(path: Path) -> Path:
        path.write_text("\n".join(",".join(f"{v:.4f}" for v in np.sin(np.linspace(0, 3, 32) + rng.normal()))
                                   for _ in range(40)) + "\n")
        return path

    curves, other = write_curves(tmp_path / "curves.csv"), write_curves(tmp_path / "other.csv")
    out, samples = tmp_path / "run", tmp_path / "s.h5"
    assert main(["train", "--data", str(curves), "--steps", "2", "--out", str(out), *TINY_TRAIN]) == 0
    assert main(["sample", "--checkpoint", str(out), "--num-samples", "20", "--steps", "2", "--out", str(samples),
                 "--quiet"]) == 0
    capsys.readouterr()
    report = tmp_path / "r.json"
    assert main(["evaluate", "--samples", str(samples), "--data", str(curves), "--repeats", "2", "--permutations",
                 "50", "--balanced", "--json", str(report)]) == 0
    assert "not held out" in capsys.readouterr().err
    data = json.loads(report.read_text())["data"]
    assert (data["split"], data["held_out"]) == ("all", False)
    assert main(["evaluate", "--samples", str(samples), "--data", str(other), "--repeats", "2", "--permutations",
                 "50", "--balanced", "--json", str(report)]) == 0
    assert "not held out" not in capsys.readouterr().err and json.loads(report.read_text())["data"]["held_out"]
    moved = tmp_path / "elsewhere" / "curves.csv"
    moved.parent.mkdir()
    copy = tmp_path / "copy.csv"
    copy.write_bytes(curves.read_bytes())
    curves.rename(moved)
    for path in (moved, copy):
        assert main(["evaluate", "--samples", str(samples), "--data", str(path), "--repeats", "2", "--permutations",
                     "50", "--balanced", "--json", str(report)]) == 0
        assert "not held out" in capsys.readouterr().err
        assert json.loads(report.read_text())["data"]["held_out"] is False


def test_sigterm_unwinds_like_ctrl_c_and_leaves_no_temporary_file(tmp_path, monkeypatch, capsys):
    """SIGTERM (the studio's Cancel of a training child, --stop-with, timeout) ended the process where it stood
    and left the hidden temporary file of a write in progress; a whole train_state.pt of them."""
    import os
    import signal

    from engine.io import atomic_path

    target = tmp_path / "out.csv"

    def export_then_terminated(samples, fmt, out):
        with atomic_path(out) as tmp:
            tmp.write_text("half")
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs at the next bytecode
                pass
        raise AssertionError("not terminated")

    monkeypatch.setattr("engine.api.export", export_then_terminated)
    samples = tmp_path / "s.h5"
    samples.write_bytes(b"")
    before = signal.getsignal(signal.SIGTERM)
    assert main(["export", "--samples", str(samples), "--format", "csv", "--out", str(target)]) == 143
    assert capsys.readouterr().err.strip() == "terminated"
    assert list(tmp_path.iterdir()) == [samples]  # no out.csv, no .out.csv.*.tmp
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is the command's only


def test_an_interrupt_python_dropped_is_not_reported_as_success(tmp_path, monkeypatch, capsys):
    """Ctrl+C landing in a finaliser (h5py closes objects through weakref callbacks) is printed and dropped by
    Python; the command went on and exited 0."""
    import os
    import signal

    def export_interrupted_in_a_finaliser(samples, fmt, out):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
        except KeyboardInterrupt:
            pass  # what Python does with an exception raised in a weakref callback
        return Path(out)

    monkeypatch.setattr("engine.api.export", export_interrupted_in_a_finaliser)
    samples = tmp_path / "s.h5"
    samples.write_bytes(b"")
    assert main(["export", "--samples", str(samples), "--format", "csv", "--out", str(tmp_path / "o.csv")]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_stop_with_stops_the_run_when_its_stderr_has_no_reader(monkeypatch):
    """The studio reads a training child's stderr through a pipe; once the studio is dead the watcher's message
    raised BrokenPipeError before the SIGTERM was sent, and the orphaned run trained on."""
    import os
    import signal
    import subprocess
    import threading

    from engine import cli

    class NoReader:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    gone = subprocess.Popen(["true"])
    gone.wait()
    sent = threading.Event()
    real_kill = os.kill

    def kill(pid, sig):
        if sig == signal.SIGTERM:
            sent.set()
            return None
        return real_kill(pid, sig)

    monkeypatch.setattr(os, "kill", kill)
    monkeypatch.setattr(sys, "stderr", NoReader())
    cli._stop_with(gone.pid, poll_s=0.01)
    assert sent.wait(5.0)


def test_running_out_of_memory_is_a_one_line_error(monkeypatch, capsys):
    def exhausted():
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you "
                           "tried to allocate 40000000000 bytes.")

    monkeypatch.setattr("engine.api.list_checkpoints", exhausted)
    _fails(["list"], capsys, "out of memory", "smaller --batch-size")
    monkeypatch.setattr("engine.api.list_checkpoints", lambda: (_ for _ in ()).throw(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):  # not every RuntimeError is the user's: a bug stays a traceback
        main(["list"])


def test_an_unwritable_output_fails_before_the_work(run_dir, tmp_path, capsys):
    """A folder where a file goes, or a file where a folder goes: a one-line error at once, nothing written."""
    folder, plain = tmp_path / "folder", tmp_path / "plain.txt"
    folder.mkdir()
    plain.write_text("keep")
    samples = tmp_path / "s.h5"
    assert main(["sample", "--checkpoint", str(run_dir), "--num-samples", "2", "--steps", "2", "--out", str(samples),
                 "--quiet"]) == 0
    cases = [
        ["train", "--data", "quadratic", "--steps", "2", "--out", str(plain), *TINY_TRAIN],
        ["train", "--data", "quadratic", "--steps", "2", "--out", str(tmp_path / "run"), "--json", str(folder),
         *TINY_TRAIN],
        ["sample", "--checkpoint", str(run_dir), "--num-samples", "2", "--steps", "2", "--out", str(folder), "--quiet"],
        ["sample", "--checkpoint", str(run_dir), "--num-samples", "2", "--steps", "2", "--out", str(tmp_path / "n.h5"),
         "--json", str(plain / "x.json"), "--quiet"],
        ["evaluate", "--samples", str(samples), "--data", "quadratic", "--json", str(folder)],
        ["export", "--samples", str(samples), "--out", str(folder)],
        ["restore", "--checkpoint", str(run_dir), "--data", "quadratic", "--task", "impute", "--num-items", "2",
         "--steps", "2", "--out", str(folder), "--quiet"],
    ]
    for args in cases:
        _fails(args, capsys, "cannot write here")
    assert plain.read_text() == "keep" and not any(folder.iterdir())
    assert not (tmp_path / "run").exists() and not (tmp_path / "n.h5").exists()
