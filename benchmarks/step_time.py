"""Training-step and sampling latency of the functions engine on one device (figures, not assertions).

The reference configuration of the HDM paper's Quadratic experiment: FNO width 256, 4 layers, 100 points,
batch 100. Prints JSON: the median training-step time of each execution variant (eager fp32, the
baseline; bf16 autocast; torch.compile; both; each also with the loss read back every k steps) with
its ratio to the baseline measured in the same run, the compile time of the compiled variants apart,
how far bf16's loss and gradient lie from fp32's, the device and library versions; then the time to
sample 1000 curves with each sampler, against the reference recipe's 1000-step Euler-Maruyama.
The training figures come from :func:`engine.bench.bench_training` (what ``hdm bench`` reports).

    python benchmarks/step_time.py --device cuda --steps 300
    python benchmarks/step_time.py --device cpu --threads 1 --steps 5 --warmup 2 --samplers ""   # a quick CPU look
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.device import configure_openmp  # noqa: E402

configure_openmp()  # before torch loads OpenMP: time what `hdm` and the studio run with
import torch  # noqa: E402

from engine.bench import TRAIN_VARIANTS, BenchOptions, Clock, bench_training, environment  # noqa: E402
from engine.device import resolve_device, tune_cpu_allocator  # noqa: E402


def main() -> int:
    tune_cpu_allocator()  # time what `hdm` and the studio run with
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--modes", type=int, default=16)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--steps", type=int, default=300, help="timed training steps per variant")
    ap.add_argument("--warmup", type=int, default=20, help="untimed steps per variant (compile time for compiled ones)")
    ap.add_argument("--readout-every", type=int, default=10)
    ap.add_argument("--variants", default=",".join(TRAIN_VARIANTS), help=f"from {', '.join(TRAIN_VARIANTS)}")
    ap.add_argument("--samplers", default="euler_maruyama:1000,ddim:25,exponential:30")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--json", default=None, help="also write the report here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    opts = BenchOptions(device=str(device), width=args.width, modes=args.modes, layers=args.layers, n_points=100,
                        batch_size=args.batch_size, train_steps=args.steps, warmup_steps=args.warmup,
                        readout_every=args.readout_every,
                        train_variants=tuple(v for v in args.variants.split(",") if v))
    clock = Clock(device)
    training, trainer = bench_training(opts, clock)
    report = {"environment": environment(device), "training": training, "sampling": {}}
    model = trainer.model()
    baseline = None
    for spec in filter(None, args.samplers.split(",")):
        name, steps = spec.split(":")
        model.sample(10, steps=3, sampler=name)
        clock.sync()
        t0 = time.perf_counter()
        model.sample(1000, steps=int(steps), sampler=name, batch_size=1000)
        clock.sync()
        seconds = time.perf_counter() - t0
        baseline = baseline or seconds
        report["sampling"][f"{name}:{steps}"] = {"seconds_for_1000": round(seconds, 3),
                                                  "ratio_to_first": round(seconds / baseline, 4)}
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
