"""Training time to quality: how many seconds of training reach the foundation's Quadratic quality.

Prints figures (no assertions). For each step budget, a fresh model is trained with the CLI's
defaults for exactly that many steps (its own warm-up and cosine schedule, so a budget is a real
recipe, not a snapshot of a longer run), then 1000 curves are sampled and tested against 1000
held-out curves with the kernel two-sample test. The quality bar is the foundation issue's:
power <= 6 % at 10 vs 10 (30 repeats) and <= 10 % at 100 vs 100 (10 repeats). The report gives,
per budget, the training seconds (the trainer's own clock: steps and read-outs, not sampling or
evaluation), the sampling seconds and the powers, and the smallest budget that meets the bar;
beside them the unbiased MMD^2 of all samples against all held-out curves (the held-out curves'
median-heuristic bandwidth), which keeps falling after the power bar is met and so says how much
further training still buys. The power bar is weak: on CPU a model trained for 100 steps met it
while its MMD^2 was 0.075. So the report also gives the first budget meeting a strict bar: the power
bar and an MMD^2 no larger than a perfect generator's, i.e. at most the mean + 2 standard deviations
of the MMD^2 that 10 draws of as many fresh curves of the data's law score against the same held-out
curves (:func:`engine.metrics.mmd2_floor`). That spread is not small: on Quadratic the MMD^2 of 1000
curves follows the share of each branch (a = +-1), and perfect draws scored 1.9e-3 +- 1.7e-3 against
the 1000 held-out curves.

    OMP_NUM_THREADS=1 python benchmarks/time_to_quality.py --budgets 250,500,1000,2000
    python benchmarks/time_to_quality.py --device cuda --readout-every 50 --json ttq_cuda.json
    python benchmarks/time_to_quality.py --device cuda --width 256 --modes 16 --layers 4   # the reference network

Power is a noisy figure (its standard deviation over repeats is printed beside it): the budget
that first meets the bar can move by one budget between seeds.
"""

from __future__ import annotations

import argparse
import json
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
from engine.metrics import mmd_power  # noqa: E402
from engine.metrics.twosample import median_heuristic, mmd2_unbiased  # noqa: E402
from engine.training import Trainer  # noqa: E402

BAR = {"power10": 6.0, "power100": 10.0}
FLOOR_DRAWS = 10


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(model, real: np.ndarray, bandwidth: float, args) -> dict:
    _sync(args.device)
    t0 = time.perf_counter()
    samples = model.sample(args.num_samples, steps=args.sampler_steps, sampler=args.sampler, seed=10_000).samples
    _sync(args.device)
    seconds = time.perf_counter() - t0
    p10 = mmd_power(samples, real, block_size=10, repeats=30, seed=0)
    p100 = mmd_power(samples, real, block_size=100, repeats=10, seed=0)
    return {"sample_seconds": round(seconds, 3), "power10": round(p10.power, 2), "power10_std": round(p10.std, 2),
            "power100": round(p100.power, 2), "power100_std": round(p100.std, 2),
            "mmd2": float(f"{mmd2_unbiased(samples, real, bandwidth):.4g}")}


def main() -> int:
    from engine.device import tune_cpu_allocator

    tune_cpu_allocator()  # time what `hdm` and the studio run with
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="quadratic")
    ap.add_argument("--budgets", default="100,250,500,1000,2000", help="training steps, comma-separated")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=None, help="default: the CLI's")
    ap.add_argument("--width", type=int, default=None, help="FNO width (default: the CLI's)")
    ap.add_argument("--modes", type=int, default=None)
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--readout-every", type=int, default=1, help="loss read-back interval (larger: no host sync)")
    # exponential-10 matched Euler-Maruyama-1000 on the bundled Quadratic (power and MMD^2 within a perfect
    # generator's spread, no end-point artifacts; the ODE samplers leave 3-8 artifacts in 1000 curves)
    ap.add_argument("--sampler", default="exponential")
    ap.add_argument("--sampler-steps", type=int, default=10)
    ap.add_argument("--num-samples", type=int, default=1000)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    budgets = sorted({int(b) for b in args.budgets.split(",") if b.strip()})

    model_overrides = {k: v for k, v in (("width", args.width), ("modes", args.modes), ("layers", args.layers))
                       if v is not None}
    train = {"seed": args.seed, **({"batch_size": args.batch_size} if args.batch_size else {})}
    report: dict = {"data": args.data, "device": args.device, "threads": torch.get_num_threads(),
                    "torch": torch.__version__, "sampler": f"{args.sampler}-{args.sampler_steps}", "bar": BAR,
                    "budgets": []}
    if not args.device.startswith("cpu"):  # CUDA's lazy start (kernels, cuBLAS/cuFFT plans) out of the first budget
        started = time.perf_counter()
        warm = RunConfig().replace(data={"spec": args.data}, model=model_overrides, train={**train, "steps": 3})
        Trainer(warm, device=args.device).run(readout_every=args.readout_every)
        _sync(args.device)
        report["warmup_seconds"] = round(time.perf_counter() - started, 2)
    real = None
    for steps in budgets:
        cfg = RunConfig().replace(data={"spec": args.data}, model=model_overrides, train={**train, "steps": steps})
        trainer = Trainer(cfg, device=args.device)
        trainer.run(readout_every=args.readout_every)
        _sync(args.device)
        model = trainer.model()
        if real is None:
            real = api.reference_data(args.data, model.training_grid).values
            bandwidth = median_heuristic(real)
            floor = api.perfect_generator_floor(args.data, model.training_grid, real, args.num_samples,
                                                bandwidth=bandwidth, seed=args.seed, draws=FLOOR_DRAWS)
            if floor is None:
                raise SystemExit(f"{args.data}: no second sample of its law for the MMD^2 floor (a file, or a "
                                 f"training split smaller than --num-samples {args.num_samples})")
            strict_mmd2 = floor.bar
            report["mmd2_floor"] = floor.to_dict()
            report["strict_bar_mmd2"] = float(f"{strict_mmd2:.4g}")
            print("MMD^2 of a perfect generator:", json.dumps(report["mmd2_floor"]), flush=True)
            report["config"] = {"model": trainer.config.to_dict()["model"],
                                "batch_size": trainer.config.train.batch_size}
        row = {"steps": steps, "train_seconds": round(trainer.elapsed, 2),
               "final_loss": round(float(np.mean(trainer.losses[-50:])), 4), **measure(model, real, bandwidth, args)}
        row["meets_bar"] = row["power10"] <= BAR["power10"] and row["power100"] <= BAR["power100"]
        report["budgets"].append(row)
        print(json.dumps(row), flush=True)
    met = [r for r in report["budgets"] if r["meets_bar"]]
    strict = [r for r in met if r["mmd2"] <= report["strict_bar_mmd2"]]
    report["first_meeting_bar"] = met[0] if met else None
    report["first_meeting_strict_bar"] = strict[0] if strict else None
    print("first budget meeting the bar:", json.dumps(report["first_meeting_bar"]), flush=True)
    print(f"first budget meeting it with MMD^2 <= {report['strict_bar_mmd2']:g} (a perfect generator's mean + 2 sd):",
          json.dumps(report["first_meeting_strict_bar"]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
