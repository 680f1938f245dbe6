"""Functions benchmark: training time to quality, sampling latency, and resolution-free quality.

Prints figures (no assertions): trains a model with the CLI's defaults, samples 1000 curves
with several samplers (timed), and evaluates each against 1000 held-out curves with the
kernel two-sample test (10 vs 10 x 30 repeats, balanced 100 vs 100) and functional errors.
The baseline measured in the same run is the reference code's recipe for sampling: 1000
Euler–Maruyama steps.

    python benchmarks/functions_quality_speed.py --data quadratic --steps 2000
    python benchmarks/functions_quality_speed.py --checkpoint quadratic      # no training: the bundled model
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.device import configure_openmp  # noqa: E402

configure_openmp()  # before torch loads OpenMP: time what `hdm` and the studio run with
import torch  # noqa: E402

from engine import api  # noqa: E402
from engine.config import RunConfig  # noqa: E402
from engine.metrics import functional_errors, mmd_power  # noqa: E402
from engine.pipeline import uniform_grid  # noqa: E402
from engine.training import Trainer  # noqa: E402


def evaluate(samples: np.ndarray, real: np.ndarray) -> dict:
    p10 = mmd_power(samples, real, block_size=10, repeats=30, seed=0)
    out = {"power10": round(p10.power, 2), "power10_std": round(p10.std, 2)}
    for m in (50, 100):
        if min(len(samples), len(real)) >= 2 * m:
            out[f"power{m}"] = round(mmd_power(samples, real, block_size=m, repeats=10, seed=0).power, 2)
    fe = functional_errors(samples, real)
    out.update({k: round(float(v), 4) for k, v in fe.items() if k in ("mean_error", "variance_error")})
    return out


def main() -> int:
    from engine.device import tune_cpu_allocator

    tune_cpu_allocator()  # time what `hdm` and the studio run with
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="quadratic")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--checkpoint", default=None, help="skip training and load this checkpoint")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--num-samples", type=int, default=1000)
    ap.add_argument("--resolutions", type=int, nargs="*", default=[50, 200])
    ap.add_argument("--baseline", action="store_true", help="also time 1000-step Euler–Maruyama")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if "OMP_NUM_THREADS" not in os.environ:  # respect a limit set for runs sharing the machine
        torch.set_num_threads(os.cpu_count() or 1)
    report: dict = {"device": args.device, "threads": torch.get_num_threads(), "data": args.data}

    if args.checkpoint:
        model = api.load_model(args.checkpoint, device=args.device)
    else:
        cfg = RunConfig().replace(data={"spec": args.data},
                                  train={"steps": args.steps, "batch_size": args.batch_size})
        trainer = Trainer(cfg, device=args.device)
        t0 = time.perf_counter()
        trainer.run()
        report["train_seconds"] = round(time.perf_counter() - t0, 2)
        report["train_steps"] = args.steps
        model = trainer.model()
        print(f"trained {args.steps} steps on {args.data} in {report['train_seconds']} s", flush=True)

    grid = model.training_grid
    real = api.reference_data(args.data, grid).values
    runs = [("ddim", 25), ("ddim", 50), ("ode_heun", 25), ("exponential", 100), ("pc", 100)]
    if args.baseline:
        runs.append(("euler_maruyama", 1000))
    report["samplers"] = {}
    for sampler, steps in runs:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        res = model.sample(args.num_samples, steps=steps, sampler=sampler, seed=10_000)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        row = {"seconds": round(seconds, 3), **evaluate(res.samples, real)}
        report["samplers"][f"{sampler}-{steps}"] = row
        print(f"{sampler:15s} {steps:5d} steps  {json.dumps(row)}", flush=True)
    if args.baseline:
        base = report["samplers"]["euler_maruyama-1000"]["seconds"]
        for row in report["samplers"].values():
            row["speedup_vs_em1000"] = round(base / row["seconds"], 1)

    report["resolutions"] = {}
    for n in args.resolutions:
        g = uniform_grid(model.geometry, n)
        res = model.sample(args.num_samples, steps=25, sampler="ddim", grid=g, seed=20_000)
        ref = api.reference_data(args.data, g).values
        row = evaluate(res.samples, ref)
        report["resolutions"][str(n)] = row
        print(f"resolution n={n}: {json.dumps(row)}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
