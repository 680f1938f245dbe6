"""CPU jobs beside other busy processes: OpenMP's wait policy and the thread count (figures, not assertions).

torch's CPU kernels run on OpenMP threads that, by default, spin at the end of every parallel region until
all threads arrive. When other processes hold the cores, a thread waits there for one that is descheduled,
spinning through the time slices the others need, on every operation. This measures, in fresh processes,
each workload in three conditions: ``idle`` cores, ``busy`` (beside ``--busy`` processes that each keep one
core busy) and ``pair`` (two copies of the workload at once, as two ``hdm`` commands or two test suites), with:

- ``default``: torch's thread count and GNU OpenMP's default spin (300,000 iterations);
- ``short_spin``: the same threads spinning 1,000 iterations before they sleep (``GOMP_SPINCOUNT=1000``),
  which ``hdm`` and the studio set for themselves (:func:`engine.device.configure_openmp`);
- ``passive``: no spin at all (``OMP_WAIT_POLICY=PASSIVE``);
- ``one_thread``: ``OMP_NUM_THREADS=1``.

Workloads: sampling 64 Quadratic curves with dpm2m_sde-50 from the bundled checkpoint (the studio's demo),
30 training steps of the default FNO on Quadratic (batch 100), and 4 MNIST images with the exponential
integrator, 10 steps (``--images``). Each figure is the median of ``--repeats`` timed runs after a warm-up
run (in ``pair``, the slower copy's), with its ratio to ``default`` on idle cores measured in the same run.

    python benchmarks/cpu_contention.py
    python benchmarks/cpu_contention.py --busy 1 --repeats 5 --images --json contention.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WORKLOAD = r"""
import json, statistics, sys, time
import torch
from engine import api
from engine.config import RunConfig
from engine.training import Trainer

name, repeats = sys.argv[1], int(sys.argv[2])
if name == "sample":
    model = api.load_model("quadratic")
    run = lambda: model.sample(64, steps=50, sampler="dpm2m_sde", seed=0)
elif name == "train":
    trainer = Trainer(RunConfig().replace(train={"steps": 10**6, "batch_size": 100}))
    run = lambda: [trainer.step() for _ in range(30)]
else:
    model = api.load_model("mnist_hdm")
    run = lambda: model.sample(4, steps=10, sampler="exponential", seed=0)
run()  # warm-up: first-call costs are not what is compared
times = []
for _ in range(repeats):
    started = time.perf_counter()
    run()
    times.append(time.perf_counter() - started)
print(json.dumps({"median_s": statistics.median(times), "threads": torch.get_num_threads()}))
"""

BUSY = "while True:\n    pass\n"

VARIANTS = {"default": {}, "short_spin": {"GOMP_SPINCOUNT": "1000"}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
            "one_thread": {"OMP_NUM_THREADS": "1"}}


def run_workload(name: str, variant: dict[str, str], repeats: int, copies: int = 1) -> dict[str, float]:
    """``copies`` processes of the workload at once; the slowest one's figures."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT")}
    env.update(variant, PYTHONPATH=str(ROOT))  # the workload imports the engine, not hdm's entry point
    procs = [subprocess.Popen([sys.executable, "-c", WORKLOAD, name, str(repeats)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(copies)]
    figures = []
    for proc in procs:
        out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"{name} failed: {err[-2000:]}")
        figures.append(json.loads(out.strip().splitlines()[-1]))
    return max(figures, key=lambda f: f["median_s"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--busy", type=int, default=1, help="processes keeping a core busy in the 'busy' condition")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--images", action="store_true", help="also the MNIST workload (slower)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    workloads = ["sample", "train"] + (["images"] if args.images else [])
    results: dict[str, dict[str, dict[str, float]]] = {}
    for condition in ("idle", "busy", "pair"):
        hogs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(args.busy if condition == "busy"
                                                                              else 0)]
        try:
            time.sleep(0.5 if hogs else 0.0)
            for name in workloads:
                for variant, env in VARIANTS.items():
                    figure = run_workload(name, env, args.repeats, copies=2 if condition == "pair" else 1)
                    results.setdefault(name, {})[f"{variant}_{condition}"] = figure
                    print(f"{name:8s} {variant:10s} {condition:5s} {figure['median_s']:8.3f} s "
                          f"({figure['threads']} threads)", file=sys.stderr)
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()
    report: dict[str, object] = {}
    for name, figures in results.items():
        base = figures["default_idle"]["median_s"]
        report[name] = {key: {"median_s": round(f["median_s"], 4), "threads": f["threads"],
                              "ratio_to_default_idle": round(f["median_s"] / base, 2)} for key, f in figures.items()}
    report["cpu_count"] = os.cpu_count()
    report["busy_processes"] = args.busy
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
