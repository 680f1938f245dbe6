"""Training-step and sampling latency of the functions engine on one device (figures, not assertions).

The reference configuration of the HDM paper's Quadratic experiment: FNO width 256, 4 layers, 100 points,
batch 100. Prints JSON: median training-step time after warm-up, and the time to sample 1000 curves with
each sampler, against the reference recipe's 1000-step Euler-Maruyama baseline measured in the same run.

    python benchmarks/step_time.py --device cuda --width 256 --steps 300
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.config import RunConfig  # noqa: E402
from engine.training import Trainer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--modes", type=int, default=16)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--samplers", default="euler_maruyama:1000,ddim:25,exponential:30")
    args = ap.parse_args()
    cfg = RunConfig().replace(data={"spec": "quadratic", "n_points": 100},
                              model={"width": args.width, "modes": args.modes, "layers": args.layers},
                              train={"steps": args.steps, "batch_size": args.batch_size})
    trainer = Trainer(cfg, device=args.device)
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    times = []
    for _ in range(args.steps):
        sync()
        t0 = time.perf_counter()
        trainer.step()
        sync()
        times.append(time.perf_counter() - t0)
    warm = np.asarray(times[min(50, args.steps // 2):])
    report = {"device": str(trainer.device), "torch": torch.__version__,
              "gpu": torch.cuda.get_device_name() if trainer.device.type == "cuda" else "",
              "config": {"width": args.width, "modes": args.modes, "layers": args.layers, "batch": args.batch_size,
                         "points": 100},
              "train_step_ms_median": round(1000 * float(np.median(warm)), 3),
              "train_step_ms_p90": round(1000 * float(np.percentile(warm, 90)), 3)}
    model = trainer.model()
    baseline = None
    for spec in args.samplers.split(","):
        name, steps = spec.split(":")
        model.sample(10, steps=3, sampler=name)
        sync()
        t0 = time.perf_counter()
        model.sample(1000, steps=int(steps), sampler=name, batch_size=1000)
        sync()
        seconds = time.perf_counter() - t0
        baseline = baseline or seconds
        report[f"sample1000_{name}_{steps}_s"] = round(seconds, 3)
        report[f"sample1000_{name}_{steps}_ratio_to_first"] = round(seconds / baseline, 4)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
