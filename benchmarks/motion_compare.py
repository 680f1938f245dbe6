"""Motions benchmark: the HDM prior (Q-Wiener noise over time) vs white noise, same network, steps and batch.

    # cmu07: train on the 10 training clips (169 windows), sample as many clips as the held-out split (26)
    python benchmarks/motion_compare.py --data cmu07 --out runs/motion_cmu07 --steps 4000 --width 64 --speed
    # evaluate again with smaller tests (26 // 5 = 5 tests per repeat instead of 2), reusing the checkpoints
    python benchmarks/motion_compare.py --data cmu07 --out runs/motion_cmu07 --reuse --block-size 5
    # the procedural walker: 200 samples against its test stream; --speed times 120-frame, 22-joint sampling
    python benchmarks/motion_compare.py --data walk --out runs/motion_walk --steps 2500 --width 64 --speed

CPU, one thread per run (``--threads``). Measured steps/s on this project's shared 2-core machine: see
``steps_per_s`` in the printed lines (cmu07, width 64, batch 32: 28 alone, 11-17 under load; walk, 120
frames: width 32 35, width 64 12 alone).

Both variants share everything but ``noise.kernel``: ``squared_exponential`` with the dataset's default
length scale (``engine.motion.dataset.DEFAULT_LENGTH_SCALE``, 0.15 s), i.e. the HDM prior, against
``white``, i.e. white-noise diffusion. Each samples from its own prior (ddim, ``--sample-steps``) and is
evaluated against held-out clips with :func:`engine.api.evaluate`: two-sample power (lower is better, about
alpha = 5 % when indistinguishable) on trajectories and on joint velocities, bone-length error, foot skating
and jerk, next to the same statistics of the held-out clips. Each variant's samples are drawn as a
stick-figure strip (``strip_<variant>.png``; ``strip_data.png`` for held-out clips), and the whole report
is written to ``OUT/report.json``.

``--speed``: seconds to sample one clip of the training length (120 frames, 22 joints for ``walk``) with
100 steps on CPU, for ddim and exponential, with the trained HDM model (median of ``--speed-repeats``).
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
from engine.io.atomic import atomic_write_text  # noqa: E402
from engine.motion import channels_to_positions, load_motion_dataset  # noqa: E402
from engine.motion.render import render_strip  # noqa: E402
from engine.motion.skeleton import Skeleton  # noqa: E402

KERNELS = {"hdm": "squared_exponential", "white": "white"}
WALK_SAMPLES = 200


def config_for(kernel: str, args: argparse.Namespace) -> RunConfig:
    """The run of one variant: only ``noise.kernel`` differs between variants."""
    return RunConfig().replace(
        data={"spec": args.data, "seed": 0}, noise={"kernel": kernel},
        model={"width": args.width, "modes": args.modes, "layers": args.layers, "padding": args.padding},
        train={"steps": args.steps, "batch_size": args.batch_size, "seed": 0,
               "checkpoint_every": args.steps})


def num_samples(args: argparse.Namespace, reference_count: int) -> int:
    """As many as the held-out split for real sets, ``WALK_SAMPLES`` for generated ones (unless ``--num``)."""
    if args.num is not None:
        return args.num
    return reference_count if args.data == "cmu07" else WALK_SAMPLES


def run_variant(variant: str, args: argparse.Namespace, reference_count: int) -> dict:
    """Train (or reuse) one variant, sample, write the sample file and its strip; timings and training figures."""
    out = Path(args.out) / variant
    info: dict = {"variant": variant, "kernel": KERNELS[variant]}
    if not (args.reuse and (out / "model.safetensors").exists()):
        trainer = api.train(config_for(KERNELS[variant], args), out)
        info.update(steps=trainer.step_count, train_seconds=round(trainer.elapsed, 1),
                    steps_per_s=round(trainer.step_count / trainer.elapsed, 2),
                    final_loss=round(float(np.mean(trainer.losses[-200:])), 5))
    model = api.load_model(out)
    n = num_samples(args, reference_count)
    t0 = time.perf_counter()
    result = model.sample(n, steps=args.sample_steps, sampler="ddim", seed=10_000, batch_size=n)
    info.update(num_samples=n, sample_seconds=round(time.perf_counter() - t0, 2),
                length_scale=model.config.noise.length_scale, equation=model.config.equation.name,
                parameters=sum(p.numel() for p in model.network.parameters()))
    path = api.write_sample_file(out / "samples.h5", result, model)
    skeleton = Skeleton.from_dict(model.extra_meta["motion"]["skeleton"])
    positions = channels_to_positions(result.samples)
    info["strip"] = str(render_strip(positions[: args.strip_rows], skeleton, Path(args.out) / f"strip_{variant}.png",
                                     frames=args.strip_frames))
    report = api.evaluate(path, args.data, block_size=args.block_size, permutations=args.permutations)
    info["evaluation"] = {k: report[k] for k in ("generated", "reference", "power_trajectory", "power_velocity",
                                                 "n_samples", "n_reference")}
    return info


def sampling_speed(args: argparse.Namespace) -> dict:
    """Median seconds for one clip of the training length, 100 steps, ddim and exponential, HDM model."""
    model = api.load_model(Path(args.out) / "hdm")
    model.sample(1, steps=3)  # warm-up
    out = {"frames": len(model.geometry.grid), "joints": model.geometry.channels // 3,
           "threads": torch.get_num_threads(), "steps": 100}
    for sampler in ("ddim", "exponential"):
        times = []
        for r in range(args.speed_repeats):
            t0 = time.perf_counter()
            model.sample(1, steps=100, sampler=sampler, seed=r)
            times.append(time.perf_counter() - t0)
        out[f"{sampler}_s"] = round(float(np.median(times)), 3)
    return out


def table(rows: list[dict]) -> str:
    """A plain-text table of both variants and the held-out clips."""
    lines = [f"{'':10s} {'power traj %':>13s} {'power vel %':>12s} {'bone err':>9s} {'skating m/s':>12s} "
             f"{'jerk m/s^3':>11s}"]
    for r in rows:
        e, g = r["evaluation"], r["evaluation"]["generated"]
        lines.append(f"{r['variant']:10s} {e['power_trajectory']['power']:13.1f} {e['power_velocity']['power']:12.1f} "
                     f"{g['bone_length_error']:9.4f} {g['foot_skating']:12.4f} {g['jerk']:11.1f}")
    ref = rows[0]["evaluation"]["reference"]
    lines.append(f"{'held-out':10s} {'':>13s} {'':>12s} {ref['bone_length_error']:9.4f} {ref['foot_skating']:12.4f} "
                 f"{ref['jerk']:11.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from engine.device import tune_cpu_allocator

    tune_cpu_allocator()  # time what `hdm` and the studio run with
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="cmu07", help="cmu07 or walk")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--modes", type=int, default=16)
    p.add_argument("--padding", type=float, default=1.0, help="FNO-1D padding (0: periodic layers, the old default)")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--sample-steps", type=int, default=100)
    p.add_argument("--num", type=int, default=None, help="samples per variant (default: see num_samples)")
    p.add_argument("--permutations", type=int, default=1000)
    p.add_argument("--block-size", type=int, default=10, help="clips per two-sample test (cmu07's 26 held-out "
                   "clips give 26 // block-size tests per repeat)")
    p.add_argument("--strip-rows", type=int, default=4)
    p.add_argument("--strip-frames", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reuse", action="store_true", help="reuse trained checkpoints in OUT")
    p.add_argument("--speed", action="store_true", help="also time 100-step sampling of one clip")
    p.add_argument("--speed-repeats", type=int, default=5)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    reference = load_motion_dataset(args.data, "test")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    render_strip(reference.to_positions()[: args.strip_rows], reference.skeleton, out / "strip_data.png",
                 frames=args.strip_frames)
    rows = []
    for variant in KERNELS:
        rows.append(run_variant(variant, args, len(reference)))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "evaluation"}), flush=True)
    report = {"data": args.data, "reference": reference.source, "variants": rows}
    if args.speed:
        report["speed"] = sampling_speed(args)
        print(json.dumps(report["speed"]), flush=True)
    atomic_write_text(out / "report.json", api.dumps(report))
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
