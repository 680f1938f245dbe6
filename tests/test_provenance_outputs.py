"""Provenance audit, findings 6, 7, 11 and 12: what the evaluation report, the restore summary, the sample file and
summary and the PNG/BVH exports record of how they were made."""

from __future__ import annotations

import json
import re
import shutil
import types
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.io import file_sha256, read_samples, write_samples
from engine.io.samples import software_versions

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "assets" / "checkpoints" / "quadratic.safetensors"
CREATED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
EVALUATE = ["--block-size", "5", "--repeats", "2", "--permutations", "50", "--balanced", "8"]


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("samples") / "s.h5"
    assert main(["sample", "--checkpoint", str(BUNDLED), "--num-samples", "12", "--steps", "2", "--seed", "5",
                 "--trajectory-every", "1", "--out", str(path), "--json", str(path.with_suffix(".json")),
                 "--quiet"]) == 0
    return path


# -- 11: the sample file and `hdm sample --json` -------------------------------------------------------------------
def test_sample_file_and_summary_record_seed_device_and_trajectory_every(samples):
    summary = json.loads(samples.with_suffix(".json").read_text())
    assert summary["seed"] == 5 and summary["device"] == "cpu" and summary["trajectory_every"] == 1
    sampling = read_samples(samples).config["sampling"]
    assert sampling["device"] == "cpu" and sampling["trajectory_every"] == 1


# -- 6: the evaluation report -------------------------------------------------------------------------------------
def test_evaluate_json_records_settings_samples_file_versions_and_time(samples, tmp_path):
    reports = {}
    for seed in (0, 1):
        out = tmp_path / f"ev{seed}.json"
        assert main(["evaluate", "--samples", str(samples), "--data", "quadratic", *EVALUATE, "--seed", str(seed),
                     "--json", str(out)]) == 0
        reports[seed] = json.loads(out.read_text())
    r = reports[1]
    assert r["settings"] == {"seed": 1, "split": "test", "block_size": 5, "repeats": 2, "permutations": 50,
                             "balanced_sizes": [8]}
    assert reports[0]["settings"]["seed"] == 0
    assert r["samples"] == {"path": str(samples.resolve()), "sha256": file_sha256(samples)}
    assert r["checkpoint_sha256"] == read_samples(samples).checkpoint_sha256
    assert r["versions"] == software_versions() and CREATED.fullmatch(r["created"])
    assert "sha256" not in r["data"]  # a dataset name: its source says which curves


def test_evaluate_against_a_data_file_records_its_digest_and_the_split_used(samples, tmp_path):
    from engine import api

    data = tmp_path / "held_out.h5"
    assert main(["sample", "--checkpoint", str(BUNDLED), "--num-samples", "12", "--steps", "2", "--seed", "100",
                 "--out", str(data), "--quiet"]) == 0
    r = api.evaluate(samples, str(data), block_size=5, repeats=2, permutations=50, balanced_sizes=(8,), seed=2)
    assert r["data"]["split"] == "all" and r["data"]["sha256"] == file_sha256(data)
    assert r["settings"]["split"] == "test" and r["settings"]["seed"] == 2


def test_the_studios_evaluation_names_the_users_file_never_a_temporary_one(samples):
    from engine import api
    from studio import engine_jobs as ej

    ctx = types.SimpleNamespace(should_stop=lambda: False)
    opened = ej.evaluate_job("quadratic", source=samples).fn(ctx)
    assert opened["samples"] == {"path": str(samples.resolve()), "sha256": file_sha256(samples)}
    model = api.load_model("quadratic")
    result = model.sample(12, steps=2, seed=7)
    fresh = ej.evaluate_job("quadratic", result=result, model=model).fn(ctx)
    assert fresh["samples"]["path"] is None and fresh["samples"]["sha256"] is None and fresh["samples"]["unsaved"]
    assert fresh["samples"]["seeds"] == [7, 18] and fresh["samples"]["sampling"]["steps"] == 2
    assert "hdm-eval" not in json.dumps(fresh, default=str), "the temporary copy is gone: it must not be named"
    assert fresh["checkpoint_sha256"] == model.sha256


# -- 7: the restore summary and split ---------------------------------------------------------------------------
def test_restore_json_carries_what_made_it_and_a_path_records_the_split_used(samples, tmp_path):
    import h5py

    out, summary = tmp_path / "r.h5", tmp_path / "r.json"
    assert main(["restore", "--checkpoint", str(BUNDLED), "--data", str(samples), "--task", "impute",
                 "--num-items", "3", "--num-restorations", "2", "--steps", "2", "--seed", "7", "--method", "dps",
                 "--zeta", "0.2", "--batch-size", "4", "--out", str(out), "--json", str(summary), "--quiet"]) == 0
    table = json.loads(summary.read_text())
    assert table["checkpoint"] == str(BUNDLED) and table["checkpoint_sha256"] == file_sha256(BUNDLED)
    assert table["seed"] == 7 and table["prior"] == "hdm" and table["batch_size"] == 4
    assert table["method"] == "dps" and table["method_options"] == {"zeta": 0.2}
    assert table["device"] == "cpu" and table["versions"] == software_versions()
    assert table["data"] == {"spec": str(samples), "split": "all"}  # --split test does not apply to a path
    with h5py.File(out, "r") as f:
        assert json.loads(f.attrs["config"])["split"] == "all"
        assert json.loads(f.attrs["versions"]) == software_versions()

    named = tmp_path / "n.json"
    assert main(["restore", "--checkpoint", str(BUNDLED), "--data", "quadratic", "--task", "impute", "--num-items",
                 "2", "--num-restorations", "1", "--steps", "2", "--out", str(tmp_path / "n.h5"), "--json",
                 str(named), "--quiet"]) == 0
    table = json.loads(named.read_text())
    assert table["data"]["split"] == "test" and table["method_options"] == {"metric": "posterior"}


# -- 12: exports -----------------------------------------------------------------------------------------------
def test_png_exports_carry_versions_index_and_the_grids_seeds(tmp_path):
    from PIL import Image

    from engine.io.export import export_png

    x = np.random.default_rng(0).random((3, 1, 6, 5), dtype=np.float32)
    sf = read_samples(write_samples(tmp_path / "i.h5", x, seeds=[10, 11, 12], config={"n": 3}, modality="images"))
    out = export_png(sf, tmp_path / "png", grid_max=2)
    for i in range(3):
        with Image.open(out / f"sample_{i:05d}.png") as im:
            assert im.text["hdm-index"] == str(i) and im.text["hdm-seed"] == str(10 + i)
            assert json.loads(im.text["hdm-versions"]) == sf.versions and sf.versions
    with Image.open(out / "grid.png") as im:
        assert json.loads(im.text["hdm-seeds"]) == [10, 11] and "hdm-seed" not in im.text


def _motions(path, n=2, frames=12):
    from engine.motion.dataset import positions_to_channels
    from engine.motion.procedural import humanoid_skeleton, sample_gait_parameters, walk_positions

    params = sample_gait_parameters([np.random.default_rng(i) for i in range(n)])
    channels = positions_to_channels(walk_positions(params, frames=frames, fps=30.0))
    config = {"motion": {"skeleton": humanoid_skeleton().to_dict(), "fps": 30.0}}
    return read_samples(write_samples(path, channels, seeds=[4, 9][:n], config=config, modality="motions",
                                      grid=np.arange(frames) / 30.0, checkpoint_sha256="ab" * 32))


def test_bvh_export_writes_provenance_beside_the_files_as_part_of_the_set(tmp_path, monkeypatch):
    from engine.errors import OutputError
    from engine.io import export as export_module
    from engine.io.export import export_bvh
    from engine.motion.bvh import read_bvh

    motions = _motions(tmp_path / "m.h5")
    out = export_bvh(motions, tmp_path / "bvh")
    assert sorted(p.name for p in out.iterdir()) == ["provenance.json", "sample_00000.bvh", "sample_00001.bvh"]
    read_bvh(out / "sample_00000.bvh")  # the BVH files themselves stay plain BVH
    p = json.loads((out / "provenance.json").read_text())
    assert p["schema"] == "hdm-export-provenance/1" and p["format"] == "bvh"
    assert p["samples"] == {"path": str((tmp_path / "m.h5").resolve()), "sha256": file_sha256(tmp_path / "m.h5")}
    assert p["checkpoint_sha256"] == "ab" * 32 and p["config"] == motions.config
    assert p["versions"] == motions.versions and p["export_versions"] == software_versions()
    assert p["files"] == [{"file": "sample_00000.bvh", "index": 0, "seed": 4},
                          {"file": "sample_00001.bvh", "index": 1, "seed": 9}]
    assert p["frame_time"] == pytest.approx(1 / 30) and CREATED.fullmatch(p["created"])

    # a folder holding only an earlier export's provenance.json is an export folder too
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "provenance.json").write_text("{}")
    with pytest.raises(OutputError, match=r"already holds exported files \(provenance\.json\)"):
        export_bvh(motions, lone)

    # all or nothing: a failure while writing provenance.json leaves no BVH file either
    def failing(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export_module.json, "dumps", failing)
    with pytest.raises(KeyboardInterrupt):
        export_bvh(motions, tmp_path / "new" / "bvh")
    assert not (tmp_path / "new").exists()


def test_regenerate_draws_a_files_samples_again_bit_for_bit(tmp_path, capsys):
    """Provenance audit finding 8: nothing regenerated a file from what it records, or checked its checkpoint's
    sha256; one sample alone came out other than in the file (another batch rounds otherwise)."""
    path = tmp_path / "q.h5"
    assert main(["sample", "--checkpoint", "quadratic", "--num-samples", "40", "--sampler", "ddim", "--spacing",
                 "uniform", "--steps", "4", "--batch-size", "16", "--grid-size", "37", "--seed", "-3", "--out",
                 str(path), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["regenerate", "--samples", str(path), "--quiet"]) == 0
    assert "regenerated 40 of 40 samples" in capsys.readouterr().out
    report = tmp_path / "r.json"
    assert main(["regenerate", "--samples", str(path), "--indices", "3,39,17", "--out", str(tmp_path / "r.h5"),
                 "--json", str(report), "--quiet"]) == 0
    figures = json.loads(report.read_text())
    assert figures["identical"] is True and figures["indices"] == [3, 39, 17] and figures["max_abs_difference"] == 0
    again = read_samples(tmp_path / "r.h5")
    np.testing.assert_array_equal(again.samples, read_samples(path).samples[[3, 39, 17]])
    np.testing.assert_array_equal(again.seeds, [0, 36, 14])


def test_regenerate_refuses_another_model_at_the_files_checkpoint_and_a_file_without_one(tmp_path, capsys):
    from engine import api
    from engine.config import RunConfig
    from engine.errors import CheckpointError

    config = RunConfig().replace(data={"spec": "quadratic", "num": 40, "n_points": 16},
                                 model={"width": 8, "modes": 4, "layers": 1, "emb_dim": 16},
                                 train={"steps": 2, "batch_size": 8, "warmup": 1})
    trainer = api.train(config, tmp_path / "run")
    model = trainer.model()
    saved = api.write_sample_file(tmp_path / "s.h5", model.sample(3, steps=2), model)
    api.train(config.replace(train={"steps": 3}), tmp_path / "run", resume=True)  # the file at that path changes
    with pytest.raises(CheckpointError, match="holds another model than the one that drew"):
        api.regenerate(saved)
    trainer.step()
    unsaved = trainer.model()
    loose = api.write_sample_file(tmp_path / "u.h5", unsaved.sample(3, steps=2), unsaved)
    assert main(["regenerate", "--samples", str(loose), "--quiet"]) == 2
    assert "names no checkpoint" in capsys.readouterr().err


def test_regenerate_says_by_its_exit_code_whether_it_reproduced_the_file_and_refuses_one_without_seeds(tmp_path,
                                                                                                       capsys):
    """A file whose seeds were deleted regenerated to other samples (max |difference| 188) and exit 0, as did any
    file that did not reproduce (audit s12): no seeds is an error (2), samples that differ exit 1, as cmp does."""
    import h5py

    path = tmp_path / "q.h5"
    assert main(["sample", "--checkpoint", "quadratic", "--num-samples", "4", "--steps", "3", "--out", str(path),
                 "--quiet"]) == 0
    changed, seedless = tmp_path / "changed.h5", tmp_path / "seedless.h5"
    shutil.copy(path, changed)
    shutil.copy(path, seedless)
    with h5py.File(changed, "r+") as f:
        f["samples"][1] += 1e-3  # a sample the file's recipe does not draw
    with h5py.File(seedless, "r+") as f:
        del f["seeds"]
    capsys.readouterr()
    report = tmp_path / "r.json"
    assert main(["regenerate", "--samples", str(changed), "--json", str(report), "--quiet"]) == 1
    assert "max |difference| 0.001" in capsys.readouterr().out
    assert json.loads(report.read_text())["identical"] is False
    assert main(["regenerate", "--samples", str(seedless), "--quiet"]) == 2
    assert "records no seeds" in capsys.readouterr().err
    assert main(["regenerate", "--samples", str(path), "--quiet"]) == 0


def test_regenerate_names_a_restoration_file_a_moved_checkpoint_and_a_repeated_index(tmp_path, capsys):
    """What the audit of s12 found regenerate saying: "has no 'samples' dataset" for a restoration file, "no such
    checkpoint file" for a run that moved (without naming --checkpoint), and "2 of 8" for --indices 1,1."""
    from engine.config import RunConfig
    from engine.training import Trainer

    restored = tmp_path / "r.h5"
    assert main(["restore", "--checkpoint", "quadratic", "--data", "quadratic", "--task", "impute", "--num-items",
                 "1", "--steps", "2", "--out", str(restored), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["regenerate", "--samples", str(restored), "--quiet"]) == 2
    assert "is a restoration file" in capsys.readouterr().err
    trainer = Trainer(RunConfig().replace(data={"spec": "quadratic", "num": 40, "n_points": 16},
                                          model={"width": 8, "modes": 4, "layers": 1, "emb_dim": 16},
                                          train={"steps": 1, "batch_size": 8, "warmup": 1}))
    trainer.step()
    trainer.save(tmp_path / "run")
    samples = tmp_path / "s.h5"
    assert main(["sample", "--checkpoint", str(tmp_path / "run"), "--num-samples", "3", "--steps", "2", "--out",
                 str(samples), "--quiet"]) == 0
    assert main(["regenerate", "--samples", str(samples), "--indices", "1,2,1", "--quiet"]) == 2
    assert "--indices lists 1 more than once" in capsys.readouterr().err
    (tmp_path / "run").rename(tmp_path / "moved")
    assert main(["regenerate", "--samples", str(samples), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "is not there any more" in err and "--checkpoint PATH" in err
    assert main(["regenerate", "--samples", str(samples), "--checkpoint", str(tmp_path / "moved"), "--quiet"]) == 0
