"""``hdm bench``: the JSON schema on a tiny configuration (figures are not asserted, only their structure)."""

from __future__ import annotations

import json

import pytest

from engine.bench import BenchOptions, parse_samplers, run_bench, steps_for_budget
from engine.cli import main
from engine.config import RunConfig
from engine.errors import ConfigError
from engine.samplers import EVALS_PER_STEP
from engine.training import Trainer

TINY = dict(width=8, modes=4, layers=1, n_points=32, batch_size=16, train_steps=2, warmup_steps=1,
            readout_every=2, num_samples=6, samplers=(("ddim", 2), ("ode_heun", 2)), baseline_steps=3,
            quality_samplers=("ddim", "exponential"), quality_evals=(3, 5), quality_samples=20, power_block=10,
            power_repeats=2, power_permutations=20)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    cfg = RunConfig().replace(data={"spec": "quadratic", "n_points": 32, "num": 100},
                              model={"width": 8, "modes": 4, "layers": 1, "emb_dim": 16},
                              train={"steps": 2, "batch_size": 8})
    out = tmp_path_factory.mktemp("bench_run")
    Trainer(cfg).run(out_dir=out)
    return out


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and value > 0


def test_report_schema_and_baseline_ratios(checkpoint):
    report = run_bench(BenchOptions(checkpoint=str(checkpoint), **TINY))
    assert report["schema"] == 1
    env = report["environment"]
    assert env["device"] == "cpu" and env["torch"] and env["numpy"] and env["python"]

    train = report["training"]
    assert train["baseline"] == "eager_fp32" and set(train["variants"]) == {"eager_fp32", "eager_fp32_readout_every_2"}
    assert train["variants"]["eager_fp32"]["ratio_to_baseline"] == 1.0
    for fig in train["variants"].values():
        assert all(_positive(fig[key]) for key in ("step_ms_median", "items_per_s", "ratio_to_baseline"))
    assert _positive(train["peak_memory_bytes"])

    sampling = report["sampling"]
    runs = sampling["runs"]
    assert sampling["baseline"] == "euler_maruyama:3" and sampling["num_samples"] == 6
    assert [(r["sampler"], r["steps"]) for r in runs] == [("euler_maruyama", 3), ("ddim", 2), ("ode_heun", 2)]
    assert runs[0]["ratio_to_baseline"] == 1.0
    for r in runs:
        assert r["network_evaluations"] == r["steps"] * EVALS_PER_STEP[r["sampler"]] + 1
        assert _positive(r["seconds"]) and _positive(r["peak_memory_bytes"])

    quality = report["quality"]
    assert quality["held_out"] == 20 and quality["block"] == 10 and quality["data"] == "quadratic"
    assert (quality["baseline"]["sampler"], quality["baseline"]["steps"]) == ("euler_maruyama", 3)
    assert [(r["sampler"], r["budget"]) for r in quality["rows"]] == [
        ("ddim", 3), ("ddim", 5), ("exponential", 3), ("exponential", 5)]
    for r in quality["rows"]:
        assert r["network_evaluations"] <= r["budget"]
        assert 0.0 <= r["power"] <= 100.0
        assert r["power_minus_baseline"] == pytest.approx(r["power"] - quality["baseline"]["power"], abs=0.02)
    json.dumps(report)  # plain JSON types only


def test_cli_bench_writes_the_same_schema(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(["bench", "--width", "8", "--modes", "4", "--layers", "1", "--n-points", "32", "--batch-size", "8",
                 "--train-steps", "1", "--warmup-steps", "0", "--readout-every", "1", "--num-samples", "4",
                 "--samplers", "ddim:2", "--baseline-steps", "2", "--json", str(out), "--quiet"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    assert printed["quality"] is None and [r["sampler"] for r in printed["sampling"]["runs"]] == ["euler_maruyama",
                                                                                                  "ddim"]


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
