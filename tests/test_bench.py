"""``hdm bench``: the JSON schema on a tiny configuration (figures are not asserted, only their structure)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from engine.bench import TRAIN_VARIANTS, BenchOptions, parse_samplers, quality_table, run_bench, steps_for_budget
from engine.cli import main
from engine.config import RunConfig
from engine.errors import ConfigError
from engine.samplers import EVALS_PER_STEP
from engine.training import Trainer

TINY = dict(width=8, modes=4, layers=1, n_points=32, batch_size=16, train_steps=2, warmup_steps=1,
            readout_every=2, train_variants=("eager_fp32", "eager_bf16"),
            num_samples=6, samplers=(("ddim", 2), ("ode_heun", 2)), baseline_steps=3,
            quality_samplers=("ddim", "exponential"), quality_evals=(3, 5), quality_samples=20, power_block=10,
            power_repeats=2, power_permutations=20)


def _tiny_run(tmp_path_factory, name: str, data: dict, batch_size: int):
    """A run folder of a tiny FNO-1D trained 2 steps on ``data``."""
    cfg = RunConfig().replace(data=data, model={"width": 8, "modes": 4, "layers": 1, "emb_dim": 16},
                              train={"steps": 2, "batch_size": batch_size})
    out = tmp_path_factory.mktemp(name)
    Trainer(cfg).run(out_dir=out)
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return _tiny_run(tmp_path_factory, "bench_run", {"spec": "quadratic", "n_points": 32, "num": 100}, 8)


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and value > 0


def test_report_schema_and_baseline_ratios(checkpoint):
    report = run_bench(BenchOptions(checkpoint=str(checkpoint), **TINY))
    assert report["schema"] == 2
    env = report["environment"]
    assert env["device"] == "cpu" and env["torch"] and env["numpy"] and env["python"]

    train = report["training"]
    _check_training(train, ("eager_fp32", "eager_bf16"))
    assert train["compile"] == {} and train["skipped"] == {} and train["failed"] == {}

    sampling = report["sampling"]
    runs = sampling["runs"]
    assert sampling["baseline"] == "euler_maruyama:3" and sampling["num_samples"] == 6
    assert [(r["sampler"], r["steps"]) for r in runs] == [("euler_maruyama", 3), ("ddim", 2), ("ode_heun", 2)]
    assert runs[0]["ratio_to_baseline"] == 1.0
    for r in runs:
        assert r["network_evaluations"] == r["steps"] * EVALS_PER_STEP[r["sampler"]] + 1
        assert r["batch_size"] == 6  # the model's default batch, capped at the 6 samples asked for
        assert _positive(r["seconds"]) and _positive(r["peak_memory_bytes"])

    quality = report["quality"]
    assert quality["held_out"] == 20 and quality["block"] == 10 and quality["data"] == "quadratic"
    assert quality["metric"] == "power" and "power at 10 vs 10" in quality_table(quality)
    assert (quality["baseline"]["sampler"], quality["baseline"]["steps"]) == ("euler_maruyama", 3)
    assert [(r["sampler"], r["budget"]) for r in quality["rows"]] == [
        ("ddim", 3), ("ddim", 5), ("exponential", 3), ("exponential", 5)]
    for r in quality["rows"]:
        assert r["network_evaluations"] <= r["budget"]
        assert 0.0 <= r["power"] <= 100.0
        assert r["power_minus_baseline"] == pytest.approx(r["power"] - quality["baseline"]["power"], abs=0.02)
        assert np.isfinite(r["mmd2"]) and -0.1 < r["mmd2"] < 2.0  # unbiased MMD^2 of a Gaussian kernel
        assert r["mmd2_at_floor"] == (r["mmd2"] <= quality["mmd2_floor"]["bar"] * (1 + 1e-3))
    assert quality["mmd2_bandwidth"] > 0 and "MMD^2" in quality_table(quality)
    floor = quality["mmd2_floor"]  # 10 draws of 20 fresh Quadratic curves against the same 20 held-out ones
    assert (floor["draws"], floor["size"], floor["disjoint"]) == (10, 20, True) and floor["std"] > 0
    perfect = quality["perfect_generator"]  # one more draw of 20 fresh curves, scored like a row
    assert perfect["curves"] == 20 and 0.0 <= perfect["power"] <= 100.0 and np.isfinite(perfect["mmd2"])
    table = quality_table(quality)
    lines = table.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("sampler"))
    assert "a perfect generator" in table and "floor" in lines[head]
    assert f"20 curves of the data's own law (a perfect generator) score {perfect['power']:.1f} %" in table
    rows = quality["rows"]
    assert [line.split()[-1] for line in lines[head + 1:head + 1 + len(rows)]] == [
        "yes" if r["mmd2_at_floor"] else "no" for r in rows]
    assert ("more --quality-samples narrow it" in table) == all(r["mmd2_at_floor"] for r in rows)
    json.dumps(report)  # plain JSON types only


def _check_training(train, variants) -> None:
    assert train["baseline"] == "eager_fp32"
    assert set(train["variants"]) == {f"{v}{suffix}" for v in variants for suffix in ("", "_readout_every_2")}
    assert train["variants"]["eager_fp32"]["ratio_to_baseline"] == 1.0
    for fig in train["variants"].values():
        assert all(_positive(fig[key]) for key in ("step_ms_median", "host_ms_median", "items_per_s",
                                                   "ratio_to_baseline", "peak_memory_bytes"))
    for v in [*variants, *(f"{v}_readout_every_2" for v in variants)]:  # each its own host share (audit s12:
        fig = train["variants"][v]  # the deferred variants copied the per-step one's, above their own step time)
        assert fig["host_ms_median"] <= fig["step_ms_median"]
    assert _positive(train["peak_memory_bytes"])
    agreement = train["bf16_agreement"]
    assert agreement["after_steps"] >= 4 and agreement["batches"] == 3  # warm-up + 2 timed steps, twice
    for name in ("bf16", "bf16_spectral_bf16"):
        assert 0 < agreement[name]["grad_rel_diff"] < agreement["fp32_batch_to_batch_grad_rel_diff"]


@pytest.mark.skipif(os.environ.get("HDM_TEST_COMPILE") != "1",
                    reason="compiles two variants (about a minute cold); set HDM_TEST_COMPILE=1")
def test_compiled_variants_report_their_compile_time():
    opts = {**TINY, "train_variants": tuple(TRAIN_VARIANTS), "warmup_steps": 0}
    train = run_bench(BenchOptions(**opts))["training"]
    tf32 = {"eager_tf32", "compiled_tf32", "compiled_tf32_cudagraphs"}  # CUDA only: skipped here, with the reason
    _check_training(train, tuple(v for v in TRAIN_VARIANTS if v not in tf32))
    assert set(train["skipped"]) == tf32 and all("CUDA" in why for why in train["skipped"].values())
    assert train["failed"] == {}
    assert set(train["compile"]) == {"compiled_fp32", "compiled_bf16"}
    for fig in train["compile"].values():
        assert fig["compiled"] and fig["warmup_steps"] == 2 and fig["warmup_s"] >= fig["compile_s"] >= 0
        assert fig["graphs_compiled_in_warmup"] + fig["graphs_compiled_while_timed"] <= 2


def test_a_failing_variant_is_reported_and_the_others_still_run(monkeypatch):
    """A variant that raises mid-run (say, a compiler bug on some GPU) must not cost the run's other figures."""
    real = Trainer.step_async

    def step_async(self):
        if self.config.train.precision == "bf16":
            raise RuntimeError("simulated failure of the bf16 step")
        return real(self)

    monkeypatch.setattr(Trainer, "step_async", step_async)
    opts = {**TINY, "train_variants": ("eager_bf16", "eager_fp32")}
    train = run_bench(BenchOptions(**opts, sections=("training",)))["training"]
    assert train["failed"] == {"eager_bf16": "RuntimeError: simulated failure of the bf16 step"}
    assert set(train["variants"]) == {"eager_fp32", "eager_fp32_readout_every_2"}
    assert "bf16_agreement" not in train  # no bf16 figures: nothing to compare


def test_cuda_graph_variants_need_a_cuda_device():
    opts = {**TINY, "train_variants": ("compiled_tf32_cudagraphs",)}
    train = run_bench(BenchOptions(**opts, sections=("training",)))["training"]
    skipped = train["skipped"]
    assert set(skipped) == {"compiled_tf32_cudagraphs"} and "CUDA" in skipped["compiled_tf32_cudagraphs"]


@pytest.fixture(scope="module")
def image_checkpoint(tmp_path_factory):
    cfg = RunConfig().replace(data={"spec": "glyphs", "num": 64, "image_size": 16},
                              model={"name": "unet", "width": 8, "channel_mult": [1, 1], "num_res_blocks": 1,
                                     "attention_levels": [], "emb_dim": 16},
                              train={"steps": 2, "batch_size": 8})
    out = tmp_path_factory.mktemp("bench_images")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    Trainer(cfg).run(out_dir=out)
    torch.set_num_threads(n)
    return out


def test_image_quality_is_frechet_distance_per_evaluation_budget(image_checkpoint):
    opts = BenchOptions(checkpoint=str(image_checkpoint), baseline_steps=3, quality_samplers=("ddim",),
                        quality_evals=(3, 5), image_samples=12, image_reference=30)
    quality = run_bench_quality(opts)
    assert quality["metric"] == "fd" and quality["samples"] == 12 and quality["held_out"] == 30
    assert quality["data"] == "glyphs" and "assets/classifiers/glyphs" in quality["classifier"]
    assert _positive(quality["fd_real_floor"]) and _positive(quality["baseline"]["fd"])
    assert [(r["sampler"], r["budget"]) for r in quality["rows"]] == [("ddim", 3), ("ddim", 5)]
    for r in quality["rows"]:
        assert r["network_evaluations"] <= r["budget"] and _positive(r["fd"])
        assert r["fd_minus_baseline"] == pytest.approx(r["fd"] - quality["baseline"]["fd"], abs=1e-3)
    assert "FD of 12 samples vs 30 held-out images" in quality_table(quality)
    json.dumps(quality)


@pytest.fixture(scope="module")
def motion_checkpoint(tmp_path_factory):
    return _tiny_run(tmp_path_factory, "bench_motions", {"spec": "walk", "num": 16, "frames": 32}, 4)


def test_motion_quality_is_what_hdm_evaluate_reports_per_evaluation_budget(motion_checkpoint):
    """Motions: trajectory and velocity power, jerk, foot skating and bone error per budget, next to the held-out
    clips' own statistics and to what as many real training clips score (the floor)."""
    opts = BenchOptions(checkpoint=str(motion_checkpoint), baseline_steps=3, quality_samplers=("ddim",),
                        quality_evals=(3, 5), motion_samples=20, motion_block=10, power_repeats=2,
                        power_permutations=20)
    quality = run_bench_quality(opts)
    assert (quality["metric"], quality["modality"], quality["data"]) == ("power", "motions", "walk")
    assert (quality["held_out"], quality["block"], quality["frames"], quality["fps"]) == (20, 10, 32, 30.0)
    held, real = quality["held_out_stats"], quality["training_clips"]
    assert held["bone_length_error"] < 1e-6 and _positive(held["jerk"]) and _positive(held["foot_skating"])
    # the floor is real motion: forward kinematics keeps the bones, and the walker's jerk is its held-out jerk
    assert real["clips"] == 20 and real["bone_length_error"] < 1e-6
    assert real["jerk"] == pytest.approx(held["jerk"], rel=0.5)
    rows = [quality["baseline"], *quality["rows"]]
    assert [(r["sampler"], r.get("budget")) for r in rows] == [("euler_maruyama", None), ("ddim", 3), ("ddim", 5)]
    for r in rows:
        assert 0 <= r["power"] <= 100 and 0 <= r["velocity_power"] <= 100
        assert _positive(r["jerk"]) and r["bone_length_error"] > 1e-3  # two training steps: not a skeleton yet
    for r in quality["rows"]:
        assert r["network_evaluations"] <= r["budget"]
        assert r["power_minus_baseline"] == pytest.approx(r["power"] - quality["baseline"]["power"], abs=1e-6)
    table = quality_table(quality)
    assert "motions: two-sample power at 10 vs 10 clips" in table and "20 training clips (real motions)" in table
    assert len(table.splitlines()) == 3 + len(rows)
    json.dumps(quality)
    with pytest.raises(ConfigError, match="--motion-block 3: .* never reject"):
        _parse_bench(["--motion-block", "3"])
    with pytest.raises(ConfigError, match="--motion-samples must be a positive integer"):
        _parse_bench(["--motion-samples", "0"])


def run_bench_quality(opts: BenchOptions):
    from engine.bench import Clock, bench_quality
    from engine.device import resolve_device

    return bench_quality(opts, Clock(resolve_device(opts.device)))


def test_cli_bench_writes_the_same_schema(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(["bench", "--width", "8", "--modes", "4", "--layers", "1", "--n-points", "32", "--batch-size", "8",
                 "--train-steps", "1", "--warmup-steps", "0", "--readout-every", "1", "--num-samples", "4",
                 "--train-variants", "eager_fp32",
                 "--samplers", "ddim:2", "--baseline-steps", "3", "--json", str(out), "--quiet"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    assert printed["quality"] is None and [r["sampler"] for r in printed["sampling"]["runs"]] == ["euler_maruyama",
                                                                                                  "ddim"]
    assert set(printed["training"]["variants"]) == {"eager_fp32", "eager_fp32_readout_every_1"}
    assert "bf16_agreement" not in printed["training"]
    with pytest.raises(ConfigError, match="--train-variants: unknown eager_fp16"):
        _parse_bench(["--train-variants", "eager_fp16"])


def test_budgets_and_sampler_lists():
    for name, per in EVALS_PER_STEP.items():
        for budget in (2, 10, 25, 50, 100):
            steps = steps_for_budget(name, budget)
            assert steps * per + 1 <= budget or steps == 1
            assert (steps + 1) * per + 1 > budget
    assert parse_samplers("ddim:25, exponential:30") == (("ddim", 25), ("exponential", 30))
    for bad in ("ddim", "ddim:0", "nope:3", "ddim:x"):
        with pytest.raises(ConfigError, match="--samplers"):
            parse_samplers(bad)


def _parse_bench(argv):
    import argparse

    from engine.bench import add_bench_arguments, options_from_args

    p = argparse.ArgumentParser()
    add_bench_arguments(p)
    return options_from_args(p.parse_args(argv))


def test_sections_run_only_what_is_asked(checkpoint, capsys):
    code = main(["bench", "--sections", "quality", "--checkpoint", str(checkpoint), "--baseline-steps", "3",
                 "--quality-samplers", "dpm2m", "--quality-evals", "4", "--quality-samples", "20",
                 "--power-block", "10", "--power-repeats", "2", "--power-permutations", "20", "--quiet"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["training"] is None and printed["sampling"] is None
    assert [(r["sampler"], r["steps"]) for r in printed["quality"]["rows"]] == [("dpm2m", 3)]
    report = run_bench(BenchOptions(**{**TINY, "train_variants": ("eager_fp32", "eager_bf16")},
                                    sections=("sampling",)))
    assert report["training"] is None and report["quality"] is None
    assert [r["sampler"] for r in report["sampling"]["runs"]] == ["euler_maruyama", "ddim", "ode_heun"]
    for bad, match in ((["--sections", "speed"], "--sections"), (["--sections", "quality"], "give --checkpoint")):
        with pytest.raises(ConfigError, match=match):
            _parse_bench(bad)


def test_a_stiff_equation_gets_a_stable_baseline(tmp_path):
    """Euler-Maruyama cannot integrate IHDM in 1000 steps (or 3): the quality baseline is then the exponential
    integrator at the same step count, and the report says why."""
    cfg = RunConfig().replace(data={"spec": "glyphs", "num": 64, "image_size": 16}, equation={"name": "ihdm"},
                              model={"name": "unet", "width": 8, "channel_mult": [1, 1], "num_res_blocks": 1,
                                     "attention_levels": [], "emb_dim": 16},
                              train={"steps": 2, "batch_size": 8})
    Trainer(cfg).run(out_dir=tmp_path)
    opts = BenchOptions(checkpoint=str(tmp_path), baseline_steps=3, quality_samplers=("ddim",), quality_evals=(3,),
                        image_samples=12, image_reference=30)
    quality = run_bench_quality(opts)
    base = quality["baseline"]
    assert (base["sampler"], base["steps"]) == ("exponential", 3) and "euler_maruyama refused" in base["note"]
    assert np.isfinite(base["fd"]) and np.isfinite(quality["rows"][0]["fd"])
