"""``hdm``: the headless command line (train, sample, evaluate, export, list).

Every command calls :mod:`engine.api`; progress bars adapt the engine's callbacks. A user's
mistake ends in ``error: <one line>`` on stderr and exit code 2, never a traceback; nothing
is left half-written (every file is written to a temporary name, then renamed).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from engine.errors import Cancelled, HDMError


def _write_json(path: str | None, payload: dict[str, Any]) -> None:
    if path:
        from engine.api import dumps
        from engine.io import atomic_write_text

        atomic_write_text(Path(path), dumps(payload) + "\n")


def _bar(total: int, desc: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", disable=quiet, leave=False, dynamic_ncols=True)


def cmd_train(args: argparse.Namespace) -> int:
    from engine import api
    from engine.config import RunConfig

    cfg = RunConfig().replace(
        data={"spec": args.data, "n_points": args.n_points, "num": args.num_curves, "seed": args.data_seed},
        noise={"kernel": args.kernel, "length_scale": args.length_scale, "gain": args.gain, "period": args.period},
        equation={"name": args.equation, "schedule": args.schedule},
        model={"width": args.width, "modes": args.modes, "layers": args.layers},
        train={"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed},
    )
    bar = _bar(args.steps, "train", args.quiet)

    def progress(p):
        bar.n = p.step
        bar.set_postfix(loss=f"{p.loss:.4f}", refresh=False)
        bar.refresh()

    started = time.perf_counter()
    trainer = api.train(cfg, args.out, device=args.device, resume=args.resume, callback=progress)
    bar.close()
    summary = {"out": str(Path(args.out) / "model.safetensors"), "steps": trainer.step_count,
               "final_loss": trainer.model_metadata()["training"]["final_loss"],
               "train_seconds": round(trainer.elapsed, 2), "wall_seconds": round(time.perf_counter() - started, 2),
               "config": trainer.config.to_dict()}
    print(f"trained {trainer.step_count} steps in {trainer.elapsed:.1f}s; final loss "
          f"{summary['final_loss']:.4f}; wrote {summary['out']}")
    _write_json(args.json, summary)
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np

    from engine import api
    from engine.errors import ConfigError
    from engine.pipeline import uniform_grid

    for name, value in (("--num-samples", args.num_samples), ("--steps", args.steps),
                        ("--batch-size", args.batch_size or 1)):
        if value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value}")
    model = api.load_model(args.checkpoint, device=args.device)
    grid = uniform_grid(model.geometry, args.grid_size) if args.grid_size else None
    batch = args.batch_size or args.num_samples
    bar = _bar(args.steps * -(-args.num_samples // batch), "sample", args.quiet)
    started = time.perf_counter()
    result = model.sample(args.num_samples, steps=args.steps, sampler=args.sampler, grid=grid, seed=args.seed,
                          batch_size=batch, callback=lambda info: bar.update(1),
                          trajectory_every=args.trajectory_every)
    seconds = time.perf_counter() - started
    bar.close()
    path = api.write_sample_file(args.out, result, model)
    print(f"sampled {args.num_samples} curves x {result.grid.size} points with {args.sampler} "
          f"({args.steps} steps) in {seconds:.2f}s; wrote {path}")
    _write_json(args.json, {"out": str(path), "seconds": round(seconds, 3), **result.settings,
                            "num_samples": args.num_samples, "checkpoint_sha256": model.sha256,
                            "sample_mean": float(np.mean(result.samples))})
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from engine import api

    sizes = tuple(args.balanced) if args.balanced is not None else (100, 500)
    report = api.evaluate(args.samples, args.data, block_size=args.block_size, repeats=args.repeats,
                          permutations=args.permutations, balanced_sizes=sizes, seed=args.seed,
                          split=args.split)
    for key, res in report["power"].items():
        if isinstance(res, dict) and "power" in res:
            print(f"power {key} vs {key}: {res['power']:.1f} % ± {res['std']:.1f} "
                  f"({res['n_blocks']} blocks x {res['repeats']} repeats)")
        else:
            print(f"power {key} vs {key}: skipped ({res})")
    for key, value in report["functional"].items():
        print(f"{key}: {value:.4g}")
    _write_json(args.json, report)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from engine import api

    out = api.export(args.samples, args.format, args.out)
    print(f"wrote {out}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from engine import api
    from engine.data import list_function_datasets
    from engine.samplers import SAMPLER_DESCRIPTIONS

    print("datasets:")
    for info in list_function_datasets():
        flag = "" if info.available else "  (unavailable: shared data not found)"
        print(f"  {info.name:12s} {info.description}{flag}")
    print("checkpoints:")
    for name, path in api.list_checkpoints().items():
        print(f"  {name:12s} {path}")
    print("samplers:")
    for name, text in SAMPLER_DESCRIPTIONS.items():
        print(f"  {name:15s} {text}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hdm", description="Hilbert diffusion models, headless.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model on a dataset or file")
    t.add_argument("--data", default="quadratic", help="embedded dataset name or file path")
    t.add_argument("--out", required=True, help="run directory (model.safetensors, train_state.pt)")
    t.add_argument("--steps", type=int, default=2000)
    t.add_argument("--batch-size", type=int, default=100)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    t.add_argument("--n-points", type=int, default=None, help="resample the data to this many points")
    t.add_argument("--num-curves", type=int, default=None, help="use at most this many training curves")
    t.add_argument("--data-seed", type=int, default=0, help="seed of synthetic datasets")
    t.add_argument("--kernel", default="squared_exponential")
    t.add_argument("--length-scale", type=float, default=None, help="default: the dataset's recommendation")
    t.add_argument("--gain", type=float, default=1.0)
    t.add_argument("--period", type=float, default=None)
    t.add_argument("--equation", default="vp", help="vp, subvp or ve")
    t.add_argument("--schedule", default="cosine", help="cosine or linear")
    t.add_argument("--width", type=int, default=32)
    t.add_argument("--modes", type=int, default=16)
    t.add_argument("--layers", type=int, default=4)
    t.add_argument("--resume", action="store_true", help="continue the run in --out up to --steps")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="sample curves from a checkpoint into an HDF5 file")
    s.add_argument("--checkpoint", default="quadratic", help="bundled name, .safetensors file or run dir")
    s.add_argument("--num-samples", type=int, default=1000)
    s.add_argument("--steps", type=int, default=50)
    s.add_argument("--sampler", default="ddim")
    s.add_argument("--grid-size", type=int, default=None, help="sample on a uniform grid of this size")
    s.add_argument("--seed", type=int, default=0, help="sample k uses seed + k")
    s.add_argument("--batch-size", type=int, default=None)
    s.add_argument("--trajectory-every", type=int, default=0, help="keep every k-th reverse-time state")
    s.add_argument("--device", default="cpu")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("evaluate", help="two-sample power and functional errors against held-out data")
    e.add_argument("--samples", required=True)
    e.add_argument("--data", required=True, help="dataset name or file (its test split is used)")
    e.add_argument("--split", default="test")
    e.add_argument("--block-size", type=int, default=10)
    e.add_argument("--repeats", type=int, default=30)
    e.add_argument("--permutations", type=int, default=1000)
    e.add_argument("--balanced", type=int, nargs="*", default=None, help="extra balanced block sizes")
    e.add_argument("--seed", type=int, default=0)
    e.set_defaults(func=cmd_evaluate)

    x = sub.add_parser("export", help="export a sample file")
    x.add_argument("--samples", required=True)
    x.add_argument("--format", default="csv", choices=["csv"])
    x.add_argument("--out", required=True)
    x.set_defaults(func=cmd_export)

    ls = sub.add_parser("list", help="embedded datasets, bundled checkpoints and samplers")
    ls.set_defaults(func=cmd_list)

    for sp in (t, s, e, x, ls):
        sp.add_argument("--quiet", action="store_true", help="no progress bar")
        if sp is not ls:
            sp.add_argument("--json", default=None, metavar="PATH", help="write the figures to PATH as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except HDMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Cancelled as exc:
        print(f"cancelled: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `hdm list | head`: the reader left; not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
