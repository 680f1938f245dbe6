"""``hdm bench``: training-step time, sampling time, quality per network evaluation and peak memory (JSON).

Every figure comes with its ratio to a baseline measured in the same run on the same device:

- training: the eager fp32 step read back after every step (``Trainer.step``); the variant
  reads the loss back every ``readout_every`` steps (``Trainer.step_async`` + ``flush``), the
  mode without a host synchronisation per step;
- sampling: fp32 eager Euler-Maruyama with 1000 steps (the reference recipe), then each
  ``sampler:steps`` asked for;
- quality (functions, with a checkpoint): two-sample power (%) at ``block`` vs ``block`` curves
  against held-out curves, for each sampler at each budget of network evaluations, next to the
  same power of the Euler-Maruyama 1000-step baseline (lower power = closer to the data).

Peak memory: ``torch.cuda.max_memory_allocated`` per section on CUDA; on CPU the process's
peak resident set (``resource.getrusage``, monotone over the run, so a section's figure is an
upper bound). Timings use ``time.perf_counter`` around ``torch.cuda.synchronize`` on CUDA.
This is a benchmark: the test suite checks its schema, never its timings.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from engine.errors import ConfigError

BASELINE_SAMPLER = ("euler_maruyama", 1000)
SCHEMA_VERSION = 1


@dataclass
class BenchOptions:
    """What ``hdm bench`` measures (defaults: the HDM paper's Quadratic reference configuration)."""

    device: str = "cpu"
    data: str = "quadratic"
    width: int = 256
    modes: int = 16
    layers: int = 4
    n_points: int = 100
    batch_size: int = 100
    train_steps: int = 30
    warmup_steps: int = 5
    readout_every: int = 10
    num_samples: int = 1000
    samplers: tuple[tuple[str, int], ...] = (("ddim", 25), ("exponential", 30))
    baseline_steps: int = BASELINE_SAMPLER[1]
    checkpoint: str | None = None
    quality_samplers: tuple[str, ...] = ("ddim", "exponential", "ode_heun")
    quality_evals: tuple[int, ...] = (10, 25, 50, 100)
    quality_samples: int = 1000
    power_block: int = 100
    power_repeats: int = 30
    power_permutations: int = 1000
    seed: int = 0


def parse_samplers(text: str) -> tuple[tuple[str, int], ...]:
    """``"ddim:25,exponential:30"`` -> ``(("ddim", 25), ("exponential", 30))``."""
    from engine.samplers import SAMPLERS

    out = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, steps = item.partition(":")
        if name not in SAMPLERS or not steps.isdigit() or int(steps) < 1:
            raise ConfigError(f"--samplers: {item!r} is not NAME:STEPS with NAME one of {', '.join(SAMPLERS)}")
        out.append((name, int(steps)))
    return tuple(out)


class _Clock:
    """Wall time of a section, synchronised with the device, and its peak memory (bytes)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_bytes(self) -> int:
        if self.cuda:
            return int(torch.cuda.max_memory_allocated(self.device))
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return int(rss if sys.platform == "darwin" else rss * 1024)

    def time(self, fn: Callable[[], Any]) -> float:
        self.sync()
        started = time.perf_counter()
        fn()
        self.sync()
        return time.perf_counter() - started


def environment(device: torch.device) -> dict[str, Any]:
    """Device, library versions and thread count: what the figures depend on."""
    info: dict[str, Any] = {"device": str(device), "torch": torch.__version__, "numpy": np.__version__,
                            "python": platform.python_version(), "platform": platform.platform(),
                            "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def _ratio(value: float, baseline: float) -> float:
    return round(value / baseline, 4) if baseline > 0 else float("nan")


def bench_training(opts: BenchOptions, clock: _Clock):
    """Median step time (ms) and throughput (items/s) of the eager step, read back per step and every k steps."""
    from engine.config import RunConfig
    from engine.training import Trainer

    cfg = RunConfig().replace(data={"spec": opts.data, "n_points": opts.n_points},
                              model={"width": opts.width, "modes": opts.modes, "layers": opts.layers},
                              train={"steps": 10 ** 9, "batch_size": opts.batch_size, "seed": opts.seed})
    trainer = Trainer(cfg, device=opts.device)
    clock.reset_peak()
    for _ in range(opts.warmup_steps):
        trainer.step()
    per_step = [clock.time(trainer.step) for _ in range(opts.train_steps)]
    k = max(1, opts.readout_every)

    def chunk() -> None:
        for _ in range(k):
            trainer.step_async()
        trainer.flush()

    chunks = max(1, opts.train_steps // k)
    deferred = [clock.time(chunk) / k for _ in range(chunks)]
    base = float(np.median(per_step))
    variants = {"eager_fp32": base, f"eager_fp32_readout_every_{k}": float(np.median(deferred))}
    section = {"config": {"data": opts.data, "width": opts.width, "modes": opts.modes, "layers": opts.layers,
                          "points": opts.n_points, "batch": opts.batch_size, "timed_steps": opts.train_steps},
               "baseline": "eager_fp32",
               "variants": {name: {"step_ms_median": round(1000 * v, 3),
                                   "items_per_s": round(opts.batch_size / v, 1),
                                   "ratio_to_baseline": _ratio(v, base)} for name, v in variants.items()},
               "peak_memory_bytes": clock.peak_bytes()}
    return section, trainer


def bench_sampling(model, opts: BenchOptions, clock: _Clock) -> dict[str, Any]:
    """Seconds to draw ``num_samples`` items per sampler and step count, with the EM-1000 baseline first."""
    runs = [(BASELINE_SAMPLER[0], opts.baseline_steps), *opts.samplers]
    out: dict[str, Any] = {"num_samples": opts.num_samples,
                           "baseline": f"{BASELINE_SAMPLER[0]}:{opts.baseline_steps}", "runs": []}
    base = None
    for name, steps in runs:
        model.sample(2, steps=2, sampler=name)  # warm-up (allocations, bases)
        clock.reset_peak()
        holder: dict[str, Any] = {}

        def draw(name=name, steps=steps, holder=holder) -> None:
            holder["result"] = model.sample(opts.num_samples, steps=steps, sampler=name, seed=opts.seed,
                                            batch_size=opts.num_samples)

        seconds = clock.time(draw)
        base = seconds if base is None else base
        out["runs"].append({"sampler": name, "steps": steps,
                            "network_evaluations": holder["result"].settings["network_evaluations"],
                            "seconds": round(seconds, 4), "items_per_s": round(opts.num_samples / seconds, 1),
                            "ratio_to_baseline": _ratio(seconds, base), "peak_memory_bytes": clock.peak_bytes()})
    return out


def steps_for_budget(sampler: str, evaluations: int) -> int:
    """The most steps whose network evaluations (``steps * per_step + 1``) fit in ``evaluations``."""
    from engine.samplers import EVALS_PER_STEP

    return max(1, (evaluations - 1) // EVALS_PER_STEP[sampler])


def bench_quality(opts: BenchOptions, clock: _Clock) -> dict[str, Any]:
    """Power (%) at ``power_block`` vs ``power_block`` per sampler and evaluation budget, against EM-1000."""
    from engine.api import load_model, reference_data
    from engine.metrics import mmd_power

    model = load_model(opts.checkpoint, device=opts.device)
    if model.modality != "functions":
        raise ConfigError(f"--checkpoint {opts.checkpoint}: quality per evaluation is measured for curves "
                          f"(power); this is a {model.modality} model")
    grid = np.asarray(model.geometry.grid)
    spec = model.config.data.spec
    real = reference_data(spec, grid, split="test").values[: opts.quality_samples]

    def power(name: str, steps: int) -> dict[str, Any]:
        holder: dict[str, Any] = {}

        def draw() -> None:
            holder["r"] = model.sample(opts.quality_samples, steps=steps, sampler=name, seed=opts.seed,
                                       batch_size=opts.quality_samples)

        seconds = clock.time(draw)
        res = mmd_power(holder["r"].samples, real, block_size=opts.power_block, repeats=opts.power_repeats,
                        permutations=opts.power_permutations, seed=opts.seed)
        return {"sampler": name, "steps": steps, "network_evaluations": holder["r"].settings["network_evaluations"],
                "power": round(res.power, 2), "power_std": round(res.std, 2), "seconds": round(seconds, 4)}

    base = power(BASELINE_SAMPLER[0], opts.baseline_steps)
    rows = []
    for name in opts.quality_samplers:
        for budget in opts.quality_evals:
            row = power(name, steps_for_budget(name, budget))
            row["budget"] = budget
            row["power_minus_baseline"] = round(row["power"] - base["power"], 2)
            row["time_ratio_to_baseline"] = _ratio(row["seconds"], base["seconds"])
            rows.append(row)
    return {"checkpoint": str(opts.checkpoint), "data": spec, "held_out": len(real),
            "block": opts.power_block, "baseline": base, "rows": rows}


def run_bench(opts: BenchOptions) -> dict[str, Any]:
    """All sections; the JSON-ready report (``schema``, ``environment``, ``training``, ``sampling``, ``quality``)."""
    from engine.device import resolve_device

    device = resolve_device(opts.device)
    opts.device = str(device)
    clock = _Clock(device)
    report: dict[str, Any] = {"schema": SCHEMA_VERSION, "environment": environment(device)}
    report["training"], trainer = bench_training(opts, clock)
    report["sampling"] = bench_sampling(trainer.model(), opts, clock)
    report["quality"] = bench_quality(opts, clock) if opts.checkpoint else None
    return report


def quality_table(quality: dict[str, Any]) -> str:
    """The quality section as a text table (power per sampler and evaluation budget)."""
    base = quality["baseline"]
    lines = [f"power at {quality['block']} vs {quality['block']} ({quality['held_out']} held-out curves); "
             f"baseline {base['sampler']}-{base['steps']}: {base['power']:.1f} % ± {base['power_std']:.1f}",
             f"{'sampler':15s} {'budget':>6s} {'steps':>5s} {'NFE':>5s} {'power %':>8s} {'diff':>6s} {'time x':>7s}"]
    for r in quality["rows"]:
        lines.append(f"{r['sampler']:15s} {r['budget']:6d} {r['steps']:5d} {r['network_evaluations']:5d} "
                     f"{r['power']:8.1f} {r['power_minus_baseline']:+6.1f} {r['time_ratio_to_baseline']:7.3f}")
    return "\n".join(lines)


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    """The ``hdm bench`` options (including ``--json`` and ``--quiet``)."""
    d = BenchOptions()
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--data", default=d.data, help="functions dataset of the training benchmark")
    p.add_argument("--width", type=int, default=d.width)
    p.add_argument("--modes", type=int, default=d.modes)
    p.add_argument("--layers", type=int, default=d.layers)
    p.add_argument("--n-points", type=int, default=d.n_points)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--train-steps", type=int, default=d.train_steps, help="timed training steps")
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    p.add_argument("--readout-every", type=int, default=d.readout_every)
    p.add_argument("--num-samples", type=int, default=d.num_samples, help="items per timed sampling run")
    p.add_argument("--samplers", default="ddim:25,exponential:30", help="NAME:STEPS,... timed against EM-1000")
    p.add_argument("--baseline-steps", type=int, default=d.baseline_steps,
                   help="Euler-Maruyama steps of the baseline (1000: the reference recipe)")
    p.add_argument("--checkpoint", default=None, help="measure power per evaluation budget for this model")
    p.add_argument("--quality-samplers", default=",".join(d.quality_samplers))
    p.add_argument("--quality-evals", default=",".join(map(str, d.quality_evals)))
    p.add_argument("--quality-samples", type=int, default=d.quality_samples)
    p.add_argument("--power-block", type=int, default=d.power_block)
    p.add_argument("--power-repeats", type=int, default=d.power_repeats)
    p.add_argument("--power-permutations", type=int, default=d.power_permutations)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, metavar="PATH", help="write the report to PATH (stdout gets it too)")
    p.add_argument("--quiet", action="store_true", help="JSON only, no table")


def options_from_args(args: argparse.Namespace) -> BenchOptions:
    """Validated options from the parsed command line."""
    from engine.samplers import SAMPLERS

    for name in ("width", "modes", "layers", "n_points", "batch_size", "train_steps", "readout_every",
                 "num_samples", "baseline_steps", "quality_samples", "power_block"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    samplers = tuple(s.strip() for s in args.quality_samplers.split(",") if s.strip())
    unknown = [s for s in samplers if s not in SAMPLERS]
    if unknown:
        raise ConfigError(f"--quality-samplers: unknown {', '.join(unknown)}; choose from {', '.join(SAMPLERS)}")
    try:
        evals = tuple(int(v) for v in args.quality_evals.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--quality-evals must be integers separated by commas, got {args.quality_evals!r}") from None
    if not evals or min(evals) < 2:
        raise ConfigError("--quality-evals: each budget must be at least 2 network evaluations")
    return BenchOptions(device=args.device, data=args.data, width=args.width, modes=args.modes, layers=args.layers,
                        n_points=args.n_points, batch_size=args.batch_size, train_steps=args.train_steps,
                        warmup_steps=max(0, args.warmup_steps), readout_every=args.readout_every,
                        num_samples=args.num_samples, samplers=parse_samplers(args.samplers),
                        baseline_steps=args.baseline_steps, checkpoint=args.checkpoint, quality_samplers=samplers,
                        quality_evals=evals, quality_samples=args.quality_samples, power_block=args.power_block,
                        power_repeats=args.power_repeats, power_permutations=args.power_permutations, seed=args.seed)


def run_bench_command(args: argparse.Namespace) -> int:
    """``hdm bench``: print the JSON report (and the quality table unless ``--quiet``)."""
    from engine.api import dumps

    report = run_bench(options_from_args(args))
    if report["quality"] is not None and not args.quiet:
        print(quality_table(report["quality"]), file=sys.stderr)
    text = dumps(report)
    print(text)
    if args.json:
        from pathlib import Path

        from engine.io import atomic_write_text

        atomic_write_text(Path(args.json), text + "\n")
    return 0
