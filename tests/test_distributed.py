"""Data-parallel training and sampling: 2 gloo processes on CPU (torchrun) against one process.

Training splits the global batch drawn from the shared generator, so the loss curve, the
weights and the EMA must equal the one-process run with the same global batch (up to the
order of floating-point sums); resume must continue the same curve. Sampling deals whole
batches to the ranks, so the gathered samples must be bit-identical.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.config import RunConfig
from engine.distributed import DistContext, batch_ranges, launched_by_torchrun
from engine.errors import ConfigError
from engine.training import STATE_FILE, Trainer

ROOT = Path(__file__).resolve().parent.parent
TINY_ARGS = ["--data", "quadratic", "--n-points", "32", "--num-items", "200", "--width", "8", "--modes", "4",
             "--layers", "1", "--emb-dim", "16", "--batch-size", "16", "--checkpoint-every", "3", "--quiet"]


def _torchrun(args: list[str], nproc: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def _state(run_dir: Path) -> dict:
    return torch.load(run_dir / STATE_FILE, weights_only=True)


def _assert_same_run(dist_dir: Path, single: Trainer) -> None:
    state = _state(dist_dir)
    assert int(state["step"]) == single.step_count
    np.testing.assert_allclose(state["losses"].numpy(), np.asarray(single.losses), rtol=1e-5, atol=1e-6)
    for name, ref in single.network.state_dict().items():
        torch.testing.assert_close(state["network"][name], ref, rtol=1e-5, atol=1e-6)
    for name, ref in single.ema.state_dict().items():
        torch.testing.assert_close(state["ema"][name], ref, rtol=1e-5, atol=1e-6)


def test_two_gloo_processes_train_like_one_and_resume(tmp_path):
    run = tmp_path / "run"
    proc = _torchrun(["-m", "engine.cli", "train", *TINY_ARGS, "--steps", "4", "--device", "cpu", "--out", str(run)])
    assert proc.stdout.count("trained 4 steps") == 1  # rank 0 alone reports
    config = RunConfig.from_dict(json.loads(_state(run)["config"]))  # the CLI's config, global batch 16
    prefix = Trainer(config)  # one process, 4 steps: what the distributed run saved
    prefix.run()
    _assert_same_run(run, prefix)
    assert (run / "model.safetensors").is_file()
    single = Trainer(config.replace(train={"steps": 7}))
    single.run()

    _torchrun(["-m", "engine.cli", "train", *TINY_ARGS, "--steps", "7", "--device", "cpu", "--out", str(run),
               "--resume"])
    _assert_same_run(run, single)


SAMPLE_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from engine.api import load_model
    from engine.distributed import init_distributed, sample_distributed, shutdown

    ctx, device = init_distributed("cpu")
    model = load_model("quadratic", device=device)
    result = sample_distributed(model, 7, ctx, seed=11, steps=3, sampler=sys.argv[2], batch_size=2)
    if ctx.is_main:
        np.save(sys.argv[1], result.samples)
        np.save(sys.argv[1] + ".seeds.npy", result.seeds)
    shutdown()
""")


def test_distributed_sampling_is_bit_identical(tmp_path):
    from engine.api import load_model

    script = tmp_path / "sample.py"
    script.write_text(SAMPLE_SCRIPT)
    out = tmp_path / "samples.npy"
    _torchrun([str(script), str(out), "exponential"])
    gathered = np.load(out)
    single = load_model("quadratic").sample(7, seed=11, steps=3, sampler="exponential", batch_size=2)
    assert gathered.dtype == single.samples.dtype and gathered.shape == single.samples.shape
    assert np.array_equal(gathered, single.samples)
    assert np.array_equal(np.load(str(out) + ".seeds.npy"), single.seeds)


def test_hdm_sample_under_torchrun_is_bit_identical_to_one_process(tmp_path, capsys):
    from engine.cli import main
    from engine.io import read_samples

    args = ["sample", "--checkpoint", "quadratic", "--num-samples", "7", "--batch-size", "2", "--steps", "3",
            "--sampler", "exponential", "--seed", "11", "--quiet"]
    proc = _torchrun(["-m", "engine.cli", *args, "--out", str(tmp_path / "dist.h5"),
                      "--json", str(tmp_path / "dist.json")])
    assert proc.stdout.count("over 2 processes") == 1  # rank 0 alone writes and reports
    assert main([*args, "--out", str(tmp_path / "one.h5")]) == 0
    dist, one = read_samples(tmp_path / "dist.h5"), read_samples(tmp_path / "one.h5")
    assert dist.samples.dtype == one.samples.dtype and np.array_equal(dist.samples, one.samples)
    assert np.array_equal(dist.seeds, one.seeds) and np.array_equal(dist.grid, one.grid)
    assert dist.config["sampling"] == one.config["sampling"]
    assert json.loads((tmp_path / "dist.json").read_text())["num_samples"] == 7


def test_hdm_sample_refuses_distributed_trajectories(monkeypatch, tmp_path, capsys):
    from engine.cli import main

    for key, value in (("RANK", "0"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "0")):
        monkeypatch.setenv(key, value)  # looks like torchrun; refused before joining any group
    out = tmp_path / "s.h5"
    assert main(["sample", "--num-samples", "4", "--steps", "2", "--trajectory-every", "1", "--out", str(out),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --trajectory-every") and "one process" in err and not out.exists()


def test_progress_jsonl_follows_a_run(tmp_path):
    from engine.cli import main

    log = tmp_path / "progress.jsonl"
    assert main(["train", *TINY_ARGS, "--steps", "3", "--warmup", "1", "--out", str(tmp_path / "run"),
                 "--progress-jsonl", str(log)]) == 0
    lines = log.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["step"] for r in records[:-1]] == [1, 2, 3]
    assert all(set(r) == {"step", "total", "loss", "lr", "elapsed"} and r["total"] == 3 for r in records[:-1])
    done = records[-1]
    assert done["event"] == "done" and done["steps"] == 3 and done["config"]["train"]["warmup"] == 1
    assert main(["train", "--data", str(tmp_path / "missing.csv"), "--steps", "2", "--out", str(tmp_path / "bad"),
                 "--progress-jsonl", str(log), "--quiet"]) == 2
    last = json.loads(log.read_text().splitlines()[-1])
    assert last["event"] == "error" and "missing.csv" in last["message"]


def test_batch_ranges_deal_whole_batches_in_order():
    for num, batch, world in [(7, 2, 2), (10, 3, 4), (5, 10, 3), (1000, 100, 3), (4, 1, 8)]:
        ranges = batch_ranges(num, batch, world)
        assert len(ranges) == world
        assert ranges[0][0] == 0 and ranges[-1][1] == num
        for (a, b), (c, _) in zip(ranges, ranges[1:], strict=False):
            assert b == c and a <= b  # contiguous, in rank order
        for a, _ in ranges:  # every range starts on a batch boundary: the same batches as one process
            assert a % batch == 0 or a == num
        sizes = [-(-(b - a) // batch) for a, b in ranges]
        assert max(sizes) - min(sizes) <= 1


def test_batch_slices_partition_the_global_batch():
    slices = [DistContext(r, 4, r, "gloo").batch_slice(16) for r in range(4)]
    assert [i for s in slices for i in range(16)[s]] == list(range(16))
    with pytest.raises(ConfigError, match="divisible"):
        DistContext(0, 3, 0, "gloo").batch_slice(16)


def test_torchrun_environment_detection(monkeypatch, tmp_path, capsys):
    from engine.cli import main
    from engine.distributed import init_distributed

    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert not launched_by_torchrun()
    with pytest.raises(ConfigError, match="torchrun"):
        init_distributed("cpu")
    assert main(["train", "--distributed", "--steps", "2", "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "torchrun" in err and "\n" not in err
    assert not (tmp_path / "run").exists()
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert launched_by_torchrun()


def test_deferred_loss_readout_keeps_the_curve_and_the_callbacks(tmp_path):
    """``run(readout_every=k)`` reads losses back every k steps: same curve, one callback per step, in order."""
    config = RunConfig().replace(data={"spec": "quadratic", "n_points": 32, "num": 200},
                                 model={"width": 8, "modes": 4, "layers": 1, "emb_dim": 16},
                                 train={"steps": 9, "batch_size": 16, "warmup": 2, "checkpoint_every": 5})
    eager, deferred = Trainer(config), Trainer(config)
    seen_eager, seen_deferred = [], []
    eager.run(callback=lambda p: seen_eager.append((p.step, p.loss, p.lr)))
    deferred.run(callback=lambda p: seen_deferred.append((p.step, p.loss, p.lr)), out_dir=tmp_path,
                 readout_every=4)
    assert deferred.losses == eager.losses and seen_deferred == seen_eager
    assert [s for s, _, _ in seen_deferred] == list(range(1, 10))
    assert int(_state(tmp_path)["step"]) == 9 and len(_state(tmp_path)["losses"]) == 9
