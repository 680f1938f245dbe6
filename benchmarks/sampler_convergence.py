"""How fast the deterministic samplers converge on a trained model: error against the converged ODE solution.

The probability-flow ODE maps each prior draw x_T to one sample. With the seeds fixed, every
deterministic sampler at every step count approximates the same map, so its error against a
many-step solution is its discretisation error alone, free of the sampling noise that makes
two-sample power move by several points between repeats. Printed per sampler, time spacing and
step count: network evaluations and, per sample, the relative error ``|x - x_ref| / |x_ref|``: its
median and 90th percentile, and the share of samples whose error exceeds 0.5. Those have left for
another branch of the data (on Quadratic, the other sign of ``a``): near the boundary between
branches the ODE's map is discontinuous, so any discretisation error sends a few samples across.
They are still samples of the data's law, but they would dominate an all-sample norm, hence the
quantiles. A figure, not a test.

    OMP_NUM_THREADS=1 python benchmarks/sampler_convergence.py --checkpoint quadratic --num-samples 200
    python benchmarks/sampler_convergence.py --checkpoint mnist_hdm --num-samples 64 --steps 5,10,20,50
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.device import configure_openmp  # noqa: E402

configure_openmp()  # before torch loads OpenMP: time what `hdm` and the studio run with

from engine import api  # noqa: E402


def main() -> int:
    from engine.device import tune_cpu_allocator

    tune_cpu_allocator()  # time what `hdm` and the studio run with
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="quadratic")
    ap.add_argument("--num-samples", type=int, default=200)
    ap.add_argument("--samplers", default="ddim,dpm2m,ode_heun")
    ap.add_argument("--spacings", default="logsnr,uniform")
    ap.add_argument("--steps", default="5,10,20,50,100")
    ap.add_argument("--ref-steps", type=int, default=1000, help="dpm2m steps of the converged reference (logsnr)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    model = api.load_model(args.checkpoint, device=args.device)
    n = args.num_samples

    def draw(sampler: str, steps: int, spacing: str):
        return model.sample(n, steps=steps, sampler=sampler, seed=args.seed, batch_size=n, spacing=spacing)

    ref = draw("dpm2m", args.ref_steps, "logsnr").samples.reshape(n, -1).astype(np.float64)
    check = draw("dpm2m", args.ref_steps // 2, "logsnr").samples.reshape(n, -1)
    report = {"checkpoint": args.checkpoint, "num_samples": n, "reference": f"dpm2m-{args.ref_steps} logsnr",
              "reference_self_error": float(np.linalg.norm(check - ref) / np.linalg.norm(ref)), "rows": []}
    print(f"reference dpm2m-{args.ref_steps}; against dpm2m-{args.ref_steps // 2}: "
          f"{report['reference_self_error']:.2e}")
    print(f"{'sampler':10s} {'spacing':8s} {'steps':>5s} {'NFE':>5s} {'median err':>10s} {'p90 err':>9s} "
          f"{'crossed':>7s}")
    for sampler in args.samplers.split(","):
        for spacing in args.spacings.split(","):
            for steps in (int(s) for s in args.steps.split(",")):
                result = draw(sampler, steps, spacing)
                x = result.samples.reshape(n, -1)
                per = np.linalg.norm(x - ref, axis=1) / np.linalg.norm(ref, axis=1)
                row = {"sampler": sampler, "spacing": spacing, "steps": steps,
                       "network_evaluations": result.settings["network_evaluations"],
                       "median_rel_error": float(np.median(per)), "p90_rel_error": float(np.quantile(per, 0.9)),
                       "crossed_share": float((per > 0.5).mean())}
                report["rows"].append(row)
                print(f"{sampler:10s} {spacing:8s} {steps:5d} {row['network_evaluations']:5d} "
                      f"{row['median_rel_error']:10.2e} {row['p90_rel_error']:9.2e} {row['crossed_share']:7.1%}",
                      flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
