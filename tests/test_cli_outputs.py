"""``hdm``'s outputs never destroy its inputs, and its errors, notes and help say what they mean (audit s8).

Every case is CPU-sized and writes only under ``tmp_path``: bundled checkpoints are copied there, never written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from engine.cli import main

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "assets" / "checkpoints" / "quadratic.safetensors"
TINY = ["--n-points", "32", "--num-items", "100", "--width", "8", "--modes", "4", "--layers", "1",
        "--batch-size", "16", "--quiet"]


def _fails(args, capsys, *must_mention):
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error: ") and "\n" not in err, err
    for word in must_mention:
        assert word in err, err
    return err


def _curves(path: Path, rows: int = 40) -> Path:
    path.write_text("\n".join(",".join(f"{(i * j) % 7 / 7:.3f}" for j in range(32)) for i in range(rows)) + "\n")
    return path


@pytest.fixture
def run(tmp_path):
    """A run folder holding the bundled quadratic model and a stand-in train_state.pt."""
    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copyfile(BUNDLED, folder / "model.safetensors")
    (folder / "train_state.pt").write_bytes(b"state")
    return folder


@pytest.fixture(scope="module")
def sample_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("samples") / "s.h5"
    assert main(["sample", "--checkpoint", str(BUNDLED), "--num-samples", "12", "--steps", "2", "--out", str(path),
                 "--quiet"]) == 0
    return path


# -- 1. an output that is an input -------------------------------------------------------------------------------

def test_train_outputs_that_are_its_data_are_refused(tmp_path, capsys):
    data = _curves(tmp_path / "d.csv")
    kept = data.read_bytes()
    out = tmp_path / "r"
    _fails(["train", "--data", str(data), "--steps", "2", "--out", str(out), "--json", str(data), *TINY], capsys,
           "--json", "--data")
    _fails(["train", "--data", str(data), "--steps", "2", "--out", str(out), "--progress-jsonl", str(data), *TINY],
           capsys, "--progress-jsonl", "--data")
    _fails(["train", "--data", str(tmp_path), "--steps", "2", "--out", str(tmp_path), *TINY], capsys, "--out", "--data")
    assert data.read_bytes() == kept and not out.exists()


def test_train_outputs_that_are_its_run_files_are_refused(tmp_path, capsys):
    out = tmp_path / "r"
    _fails(["train", "--steps", "2", "--out", str(out), "--json", str(out / "model.safetensors"), *TINY], capsys,
           "--json", "model.safetensors")
    _fails(["train", "--steps", "2", "--out", str(out), "--progress-jsonl", str(out / "train_state.pt"), *TINY],
           capsys, "--progress-jsonl", "train_state.pt")
    assert not out.exists()  # the progress file was created before the checks (audit 7)
    _fails(["train", "--steps", "2", "--out", str(out), "--progress-jsonl", str(out), *TINY], capsys,
           "--progress-jsonl", "--out")
    assert not out.exists()


def test_a_resumed_run_does_not_write_over_its_own_data(tmp_path, capsys):
    """Without --data, a resumed run reads the data it was trained on: that file is an input too."""
    data = _curves(tmp_path / "d.csv")
    out = tmp_path / "r"
    assert main(["train", "--data", str(data), "--steps", "1", "--out", str(out), *TINY]) == 0
    kept = data.read_bytes()
    _fails(["train", "--steps", "2", "--out", str(out), "--resume", "--json", str(data), "--quiet"], capsys,
           "--json", "--data")
    assert data.read_bytes() == kept


def test_sample_and_restore_do_not_write_over_a_run_or_its_state(run, tmp_path, capsys):
    model, state = (run / "model.safetensors").read_bytes(), (run / "train_state.pt").read_bytes()
    sample = ["sample", "--checkpoint", str(run), "--num-samples", "2", "--steps", "2", "--quiet"]
    restore = ["restore", "--checkpoint", str(run), "--data", "quadratic", "--task", "impute", "--num-items", "2",
               "--num-restorations", "1", "--steps", "2", "--quiet"]
    for command in (sample, restore):
        _fails([*command, "--out", str(run / "model.safetensors")], capsys, "--out", "--checkpoint")
        _fails([*command, "--out", str(run / "train_state.pt")], capsys, "--out", "train_state.pt")
        _fails([*command, "--out", str(tmp_path / "o.h5"), "--json", str(run / "model.safetensors")], capsys,
               "--json", "--checkpoint")
    assert (run / "model.safetensors").read_bytes() == model and (run / "train_state.pt").read_bytes() == state
    assert not (tmp_path / "o.h5").exists()


def test_a_bundled_checkpoint_is_resolved_to_its_file(tmp_path, monkeypatch, capsys):
    bundled = tmp_path / "checkpoints"
    bundled.mkdir()
    shutil.copyfile(BUNDLED, bundled / "mine.safetensors")
    kept = (bundled / "mine.safetensors").read_bytes()
    monkeypatch.setattr("engine.api.CHECKPOINTS_DIR", bundled)
    _fails(["sample", "--checkpoint", "mine", "--num-samples", "2", "--steps", "2", "--quiet", "--out",
            str(bundled / "mine.safetensors")], capsys, "--out", "--checkpoint")
    _fails(["restore", "--checkpoint", "mine", "--data", "quadratic", "--task", "impute", "--num-items", "2",
            "--steps", "2", "--quiet", "--out", str(bundled / "mine.safetensors")], capsys, "--out", "--checkpoint")
    assert (bundled / "mine.safetensors").read_bytes() == kept


def test_restore_and_evaluate_do_not_write_over_their_data(tmp_path, capsys):
    items = tmp_path / "items.h5"
    items.write_bytes(b"keep")
    samples = tmp_path / "s.h5"
    samples.write_bytes(b"samples")
    _fails(["restore", "--checkpoint", str(BUNDLED), "--data", str(items), "--task", "impute", "--num-items", "2",
            "--steps", "2", "--quiet", "--out", str(items)], capsys, "--out", "--data")
    _fails(["evaluate", "--samples", str(samples), "--data", str(items), "--json", str(items)], capsys,
           "--json", "--data")
    mask = tmp_path / "mask.npy"
    np.save(mask, np.ones((8, 8)))
    kept = mask.read_bytes()
    _fails(["restore", "--checkpoint", str(BUNDLED), "--data", "quadratic", "--task", "impute", "--num-items", "2",
            "--steps", "2", "--quiet", "--out", str(tmp_path / "o.h5"), "--mask", str(mask), "--json", str(mask)],
           capsys, "--json", "--mask")
    out = tmp_path / "r.h5"
    _fails(["restore", "--checkpoint", str(BUNDLED), "--data", "quadratic", "--task", "impute", "--num-items", "2",
            "--steps", "2", "--quiet", "--out", str(out), "--json", str(out)], capsys, "--json", "--out")
    assert items.read_bytes() == b"keep" and mask.read_bytes() == kept and not out.exists()


def test_bench_does_not_write_over_its_checkpoint(tmp_path, monkeypatch, capsys):
    checkpoint = tmp_path / "q.safetensors"
    shutil.copyfile(BUNDLED, checkpoint)
    monkeypatch.setattr("engine.bench.run_bench", lambda opts: pytest.fail("the benchmark started"))
    _fails(["bench", "--sections", "quality", "--checkpoint", str(checkpoint), "--json", str(checkpoint)], capsys,
           "--json", "--checkpoint")
    assert checkpoint.read_bytes() == BUNDLED.read_bytes()


# -- 3, 8. an error line starts a line ---------------------------------------------------------------------------

def _error_lines(err: str) -> list[str]:
    return [line for line in err.split("\n") if "error:" in line]


def test_an_error_line_is_not_glued_onto_the_progress_bar(tmp_path, monkeypatch, capsys):
    """stderr is a file here (captured), not a terminal: the bar's \\r does not start a line."""
    from engine.errors import DataError
    from engine.training import TrainProgress

    def diverges(config, out, *, callback=None, **kwargs):  # the bar is drawn, then the run fails
        callback(TrainProgress(1, 5, 0.5, 1e-3, 0.1, [0.5]))
        raise DataError("training diverged at step 2")

    monkeypatch.setattr("engine.api.train", diverges)
    assert main(["train", "--steps", "5", "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert _error_lines(err) == ["error: training diverged at step 2"], repr(err)


def test_a_data_error_before_training_draws_no_bar(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "missing.csv"), "--steps", "5", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.csv" in err and "train:" not in err, repr(err)


# -- 4. a plain --resume keeps the run's execution options --------------------------------------------------------

def test_a_plain_resume_keeps_the_runs_precision(tmp_path):
    from engine import api
    from engine.io import load_model

    out = tmp_path / "r"
    assert main(["train", "--steps", "1", "--out", str(out), "--precision", "bf16", "--emb-dim", "16", *TINY]) == 0
    assert main(["train", "--steps", "2", "--out", str(out), "--resume", "--quiet"]) == 0
    assert api.load_model(out).config.train.precision == "bf16"
    assert load_model(out / "model.safetensors").meta["training"]["precision"] == "bf16"
    assert main(["train", "--steps", "3", "--out", str(out), "--resume", "--precision", "fp32", "--quiet"]) == 0
    assert api.load_model(out).config.train.precision == "fp32"  # typed: changed


def test_a_gpu_runs_tf32_is_resumed_in_fp32_on_a_cpu(tmp_path, capsys):
    """A run trained with --precision tf32 on a GPU, resumed plainly on a CPU: its precision cannot run there, so
    the resume falls back to fp32 and says so (keeping the run's precision made such a resume an error)."""
    import json

    import torch

    from engine import api
    from engine.io import load_train_state, save_train_state

    out = tmp_path / "r"
    assert main(["train", "--steps", "1", "--out", str(out), "--emb-dim", "16", "--quiet", *TINY]) == 0
    state = load_train_state(out / "train_state.pt")
    config = json.loads(state["config"])
    config["train"]["precision"] = "tf32"  # as a GPU run stores it
    state["config"] = json.dumps(config)
    state["losses"] = torch.as_tensor(state["losses"])
    save_train_state(out / "train_state.pt", state)
    capsys.readouterr()
    assert main(["train", "--steps", "2", "--out", str(out), "--resume", "--quiet"]) == 0
    assert "the run trained with --precision tf32, which cpu cannot run; resuming in fp32" in capsys.readouterr().err
    assert api.load_model(out).config.train.precision == "fp32"


# -- 5. the API refuses a folder holding a run -------------------------------------------------------------------

def test_api_train_refuses_a_folder_holding_a_run(run):
    from engine import api
    from engine.config import RunConfig
    from engine.errors import ConfigError

    before = (run / "model.safetensors").read_bytes()
    config = RunConfig().replace(data={"n_points": 32, "num": 20}, model={"width": 8, "modes": 4, "layers": 1},
                                 train={"steps": 1, "batch_size": 4})
    with pytest.raises(ConfigError, match=r"already holds a run .*resume=True"):
        api.train(config, run)
    assert (run / "model.safetensors").read_bytes() == before


# -- 6, 7. notes and labels --------------------------------------------------------------------------------------

def test_restore_says_when_the_data_hold_fewer_items_than_asked(sample_file, tmp_path, capsys):
    assert main(["restore", "--checkpoint", str(BUNDLED), "--data", str(sample_file), "--task", "impute",
                 "--num-items", "50", "--num-restorations", "1", "--steps", "2", "--out", str(tmp_path / "r.h5"),
                 "--quiet"]) == 0
    captured = capsys.readouterr()
    notes = [line for line in captured.err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "12 items" in notes[0] and "all of them" in notes[0], captured.err
    assert "restored 12 items" in captured.out


def test_the_train_summary_says_its_final_loss_is_a_mean_and_what_a_resume_trained(tmp_path, capsys):
    """A resume from step 3 to 5 said "trained 5 steps" in the whole run's time (audit s12): it says the 2 steps
    it trained, in their time, and where it resumed."""
    assert main(["train", "--steps", "3", "--out", str(tmp_path / "r"), *TINY]) == 0
    out = capsys.readouterr().out
    assert "trained 3 steps in" in out and "final loss (mean of the run's last 3 steps)" in out, out
    report = tmp_path / "resume.json"
    assert main(["train", "--steps", "5", "--out", str(tmp_path / "r"), "--resume", "--quiet", "--json",
                 str(report)]) == 0
    out = capsys.readouterr().out
    assert "trained 2 steps in" in out and "(resumed at step 3; the run: 5 steps," in out, out
    summary = json.loads(report.read_text())
    assert (summary["steps"], summary["resumed_from_step"], summary["steps_trained"]) == (5, 3, 2)
    assert 0 < summary["segment_train_seconds"] <= summary["train_seconds"]


# -- 8. bad inputs end in one error line -------------------------------------------------------------------------

def test_a_train_state_given_as_checkpoint_says_what_to_give(run, tmp_path, capsys):
    _fails(["sample", "--checkpoint", str(run / "train_state.pt"), "--num-samples", "2", "--steps", "2", "--out",
            str(tmp_path / "s.h5"), "--quiet"], capsys, "run directory", "model.safetensors")


def test_a_restoration_file_is_recognised(tmp_path, capsys):
    path = tmp_path / "restored.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("restored", data=np.zeros((2, 1, 1, 8), dtype=np.float32))
        f.attrs["schema"] = "hdm-restoration/1"
    _fails(["evaluate", "--samples", str(path), "--data", "quadratic"], capsys, "restoration file", "hdm sample")
    _fails(["export", "--samples", str(path), "--out", str(tmp_path / "x.csv")], capsys, "restoration file")
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize("args", [["export", "--samples", "s.h5", "--format", "gif", "--out", "x"],
                                  ["sample", "--steps", "many", "--out", "x.h5"], ["frobnicate"], []])
def test_usage_errors_end_in_one_error_line(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err


def test_the_progress_error_event_of_a_termination_has_no_stray_colon(tmp_path, monkeypatch):
    from engine import cli

    def terminated(*args, **kwargs):
        raise cli.Terminated()

    monkeypatch.setattr(cli, "_train", terminated)
    log = tmp_path / "progress.jsonl"
    assert main(["train", "--steps", "2", "--out", str(tmp_path / "r"), "--progress-jsonl", str(log),
                 "--quiet"]) == 143
    event = json.loads(log.read_text().splitlines()[-1])
    assert event == {"event": "error", "message": "terminated"}


# -- 9. checks up front, named by their flags --------------------------------------------------------------------

def test_bench_checks_the_quality_sample_size_before_the_work(monkeypatch, capsys):
    monkeypatch.setattr("engine.bench.run_bench", lambda opts: pytest.fail("the benchmark started"))
    _fails(["bench", "--sections", "quality", "--checkpoint", "quadratic", "--quality-samples", "20"], capsys,
           "--quality-samples", "--power-block")
    _fails(["bench", "--sections", "quality", "--checkpoint", "quadratic", "--power-block", "3"], capsys,
           "--power-block")


def test_list_checks_its_json_before_listing(tmp_path, capsys):
    code = main(["list", "--json", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and captured.err.startswith("error: "), captured


@pytest.mark.parametrize("option,flag", [(["--block-size", "3"], "--block-size"), (["--repeats", "0"], "--repeats"),
                                         (["--balanced", "2"], "--balanced"), (["--permutations", "5"],
                                                                               "--permutations")])
def test_evaluate_errors_name_the_flags(sample_file, option, flag, capsys):
    err = _fails(["evaluate", "--samples", str(sample_file), "--data", "quadratic", *option], capsys, flag)
    assert "block_size" not in err and not err.startswith("error: repeats")


@pytest.mark.parametrize("option,flag", [(["--warmup", "-1"], "--warmup"), (["--n-points", "1"], "--n-points"),
                                         (["--width", "0"], "--width"), (["--modes", "0"], "--modes"),
                                         (["--emb-dim", "3"], "--emb-dim"), (["--gain", "0"], "--gain"),
                                         (["--blur-min", "30"], "--blur-min"), (["--num-items", "0"], "--num-items"),
                                         (["--heat-noise", "0"], "--heat-noise"), (["--padding", "9"], "--padding")])
def test_train_errors_name_the_flags(option, flag, tmp_path, capsys):
    _fails(["train", "--steps", "2", "--out", str(tmp_path / "r"), "--quiet", *option], capsys, flag)
    assert not (tmp_path / "r").exists()


# -- 10. --version and --help ------------------------------------------------------------------------------------

def test_version(capsys):
    from engine import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"hdm {__version__}"


def _subparsers():
    import argparse

    from engine.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_option_has_a_help_text_and_help_shows_defaults():
    for name, sub in _subparsers().items():
        for action in sub._actions:
            assert action.help, f"hdm {name} {'/'.join(action.option_strings)}: no help text"
    train = _subparsers()["train"].format_help()
    for default in ("2000", "squared_exponential", "fp32"):
        assert f"(default: {default})" in " ".join(train.split()), default
    helps = {name: " ".join(sub.format_help().split()) for name, sub in _subparsers().items()}
    assert "compared whole" in helps["evaluate"] and "its test split is used" not in helps["evaluate"]
    assert "csv: curves or motions" in helps["export"]
    assert "no progress bar" not in helps["list"]


def test_options_of_the_other_kind_of_data_are_refused(tmp_path, capsys):
    """--kernel for images or --sigma for curves were ignored, yet stored in the checkpoint's config (README audit);
    typed with values of their own they are refused like --image-size for curves. Defaults pass (the studio's
    training child types every option)."""
    cases = [(["--data", "glyphs", "--kernel", "matern12"], "the data are images: --kernel applies to curves and "
              "motions only; drop it"),
             (["--data", "quadratic", "--sigma", "5", "--gamma", "3"], "the data are functions: --sigma, --gamma "
              "apply to images only; drop them"),
             (["--data", "walk", "--blur-min", "1"], "the data are motions: --blur-min applies to images only")]
    for i, (argv, message) in enumerate(cases):
        out = tmp_path / f"r{i}"
        assert main(["train", *argv, "--steps", "1", "--out", str(out), "--quiet"]) == 2
        assert message in capsys.readouterr().err and not out.exists()
    out = tmp_path / "defaults"
    assert main(["train", "--sigma", "1.0", "--gamma", "0", "--blur-min", "0.5", "--steps", "1", "--out", str(out),
                 "--quiet", *TINY]) == 0
    # sampling: the one flag given is named (--prior ihdm on a curve model blamed "--image-size and --prior")
    for flag, value in (("--prior", "ihdm"), ("--image-size", "8")):
        _fails(["sample", "--checkpoint", "quadratic", flag, value, "--out", str(tmp_path / "s.h5"), "--quiet"],
               capsys, f"{flag} is for image models; this checkpoint holds a functions model")


def test_an_output_named_like_another_format_is_refused_before_the_work(tmp_path, capsys):
    """``hdm sample --out s.png`` wrote an HDF5 file named s.png, and ``export --format png --out grid.png`` made a
    folder named like a file (README audit §10): a name that belies what is written there is refused, and nothing
    is made."""
    samples = tmp_path / "s.h5"
    assert main(["sample", "--checkpoint", "quadratic", "--num-samples", "2", "--steps", "2", "--out", str(samples),
                 "--quiet"]) == 0
    cases = [(["sample", "--checkpoint", "quadratic", "--num-samples", "2", "--steps", "2", "--out",
               str(tmp_path / "s.png")], "writes an HDF5 sample file", "*.h5 or *.hdf5"),
             (["restore", "--checkpoint", "quadratic", "--data", "quadratic", "--task", "impute", "--num-items", "1",
               "--steps", "2", "--out", str(tmp_path / "r.json")], "writes an HDF5 restoration file"),
             (["export", "--samples", str(samples), "--format", "csv", "--out", str(tmp_path / "c.h5")],
              "writes a CSV file", "*.csv or *.txt"),
             (["export", "--samples", str(samples), "--format", "png", "--out", str(tmp_path / "grid.png")],
              "named like a .png file"),
             (["train", "--data", "quadratic", "--steps", "1", "--out", str(tmp_path / "m.safetensors")],
              "named like a .safetensors file"),
             (["sample", "--checkpoint", "quadratic", "--num-samples", "2", "--steps", "2", "--out",
               str(tmp_path / "t.h5"), "--json", str(tmp_path / "t.h5")], "same file"),
             (["sample", "--checkpoint", "quadratic", "--num-samples", "2", "--steps", "2", "--out",
               str(tmp_path / "u.h5"), "--json", str(tmp_path / "u2.h5")], "writes a JSON report", "*.json"),
             (["list", "--json", str(tmp_path / "l.png")], "writes a JSON report")]
    for argv, *words in cases:
        _fails([*argv, "--quiet"], capsys, *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]
    # the suffix is read case-blind, and an existing folder keeps its name
    assert main(["export", "--samples", str(samples), "--format", "csv", "--out", str(tmp_path / "c.CSV"),
                 "--quiet"]) == 0
    assert main(["sample", "--checkpoint", "quadratic", "--num-samples", "2", "--steps", "2", "--out",
                 str(tmp_path / "t.HDF5"), "--quiet"]) == 0


def test_an_existing_file_hdm_did_not_make_is_never_written_over(tmp_path, capsys):
    """``hdm sample --out mine.h5``, ``export --format csv --out data.csv`` and ``--json notes.md`` replaced the
    user's own files (audit s12): an existing output is replaced only when hdm made it (an HDF5 file with an hdm
    schema, a CSV with the export's header, a JSON document for ``--json``) or it is empty; the others are refused
    before the work and keep every byte."""
    samples = tmp_path / "s.h5"
    sample = ["sample", "--checkpoint", "quadratic", "--num-samples", "2", "--steps", "2", "--quiet"]
    assert main([*sample, "--out", str(samples), "--json", str(tmp_path / "s.json")]) == 0
    with h5py.File(tmp_path / "mine.h5", "w") as f:
        f["data"] = np.arange(5)
    (tmp_path / "broken.h5").write_bytes(b"not HDF5")
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    (tmp_path / "notes.md").write_text("# my notes\n")
    (tmp_path / "log.jsonl").write_text('{"event": "step"}\nnot json\n')
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    cases = [([*sample, "--out", str(tmp_path / "mine.h5")], "--out", "not an HDM sample or restoration file"),
             ([*sample, "--out", str(tmp_path / "broken.h5")], "not an HDM sample"),
             (["restore", "--checkpoint", "quadratic", "--data", "quadratic", "--task", "impute", "--num-items", "1",
               "--steps", "2", "--quiet", "--out", str(tmp_path / "mine.h5")], "not an HDM"),
             (["export", "--samples", str(samples), "--format", "csv", "--out", str(tmp_path / "data.csv")],
              "not a CSV export of hdm"),
             ([*sample, "--out", str(tmp_path / "new.h5"), "--json", str(tmp_path / "notes.md")],
              "--json", "not a JSON document", "move that file away"),
             (["train", "--data", "quadratic", *TINY, "--steps", "1", "--out", str(tmp_path / "run"),
               "--progress-jsonl", str(tmp_path / "log.jsonl")], "--progress-jsonl", "one object per line")]
    for argv, *words in cases:
        _fails(argv, capsys, *words)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing written, nothing made
    # what hdm made (or an empty file) is replaced: a sample file by a restoration, a report by a report
    (tmp_path / "empty.csv").touch()
    assert main(["export", "--samples", str(samples), "--format", "csv", "--out", str(tmp_path / "empty.csv"),
                 "--quiet"]) == 0
    assert main(["export", "--samples", str(samples), "--format", "csv", "--out", str(tmp_path / "empty.csv"),
                 "--quiet"]) == 0
    assert main(["restore", "--checkpoint", "quadratic", "--data", "quadratic", "--task", "impute", "--num-items",
                 "1", "--steps", "2", "--quiet", "--out", str(samples), "--json", str(tmp_path / "s.json")]) == 0
    with h5py.File(samples, "r") as f:
        assert f.attrs["schema"] == "hdm-restoration/1"
    assert "task" in json.loads((tmp_path / "s.json").read_text())
