"""``hdm``: the headless command line (train, sample, evaluate, export, list).

Every command calls :mod:`engine.api`; progress bars adapt the engine's callbacks. A user's
mistake ends in ``error: <one line>`` on stderr and exit code 2, never a traceback; nothing
is left half-written (every file is written to a temporary name, then renamed).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.errors import Cancelled, HDMError


def _write_json(path: str | None, payload: dict[str, Any]) -> None:
    if path:
        from engine.api import dumps
        from engine.io import atomic_write_text

        atomic_write_text(Path(path), dumps(payload) + "\n")


def _outputs(outputs: dict[str, str | None], inputs: dict[str, str | None], *, folder: str | None = None) -> None:
    """Before any work: each output path can be written (:func:`engine.io.check_writable`; the flag named
    ``folder`` is a folder) and names neither an input file nor another output (writing it would destroy it)."""
    from engine.errors import ConfigError
    from engine.io import check_writable, same_file

    def same(a: str, b: str) -> bool:
        pa, pb = Path(a).expanduser(), Path(b).expanduser()
        return same_file(pa, pb) if pa.exists() and pb.exists() else pa.resolve() == pb.resolve()

    named = [(flag, path) for flag, path in outputs.items() if path]
    for i, (flag, path) in enumerate(named):
        for other, source in [*((f, q) for f, q in inputs.items() if q), *named[:i]]:
            if same(path, source):
                raise ConfigError(f"{flag} {path} is the same file as {other}: writing it would destroy that "
                                  "file; choose another path")
        check_writable(Path(path).expanduser(), folder=flag == folder)


def _bar(total: int, desc: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", disable=quiet, leave=False, dynamic_ncols=True)


class ProgressLog:
    """``--progress-jsonl``: one JSON object per line, flushed at once, so another program can follow a run.

    Lines are ``{"step", "total", "loss", "lr", "elapsed"}`` per read-out step, then one
    ``{"event": "done", ...summary}`` or ``{"event": "error", "message"}``. A follower must only
    parse complete lines (ending in a newline). A None ``path`` writes nothing (ranks other than 0).
    """

    def __init__(self, path: str | None) -> None:
        self._file = None
        if path:
            from engine.errors import ConfigError

            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
            except OSError as exc:
                raise ConfigError(f"{path}: cannot write the progress file ({exc.strerror or exc})") from None

    def write(self, record: dict[str, Any]) -> None:
        if self._file is not None:
            import json

            self._file.write(json.dumps(record, allow_nan=False, default=str) + "\n")
            self._file.flush()

    def step(self, p: Any) -> None:
        loss = float(p.loss)
        self.write({"step": int(p.step), "total": int(p.total), "loss": loss if math.isfinite(loss) else None,
                    "lr": float(p.lr), "elapsed": round(float(p.elapsed), 4)})

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie awaiting its parent counts as exited)."""
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:  # Linux: a killed process stays a zombie until its parent reaps it
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _stop_with(pid: int, poll_s: float = 1.0) -> None:
    """Watch ``pid`` from a daemon thread; once it has exited, end this run as Cancel would (SIGTERM).

    Under torchrun the signal goes to the launcher, which stops every rank; alone, to this process.
    The studio passes its own process id, so a training child never outlives a studio that crashed
    or was killed (it runs in a session of its own, where the terminal's hang-up does not reach it).
    The last periodic checkpoint is kept.
    """
    import contextlib
    import os
    import signal
    import threading

    from engine.distributed import launched_by_torchrun

    target = os.getppid() if launched_by_torchrun() else os.getpid()

    def watch() -> None:
        while _process_alive(pid):
            time.sleep(poll_s)
        os.kill(target, signal.SIGTERM)  # first: the message below fails once the studio's pipe has no reader
        with contextlib.suppress(OSError, ValueError):
            print(f"hdm train: process {pid} (--stop-with) has exited; stopping", file=sys.stderr, flush=True)

    threading.Thread(target=watch, name="hdm-stop-with", daemon=True).start()


def cmd_train(args: argparse.Namespace) -> int:
    from engine.distributed import env_rank
    from engine.errors import ConfigError

    if args.stop_with is not None:
        if sys.platform == "win32":
            raise ConfigError("--stop-with is for POSIX systems")
        if args.stop_with < 1 or not _process_alive(args.stop_with):
            raise ConfigError(f"--stop-with {args.stop_with}: no such running process")
        _stop_with(args.stop_with)
    log = ProgressLog(args.progress_jsonl if env_rank() == 0 else None)
    try:
        summary = _train(args, log.step)
    except BaseException as exc:
        message = str(exc) if isinstance(exc, HDMError) else f"{type(exc).__name__}: {exc}"
        log.write({"event": "error", "message": " ".join(message.split()) or type(exc).__name__})
        raise
    else:
        if summary is not None:
            log.write({"event": "done", **summary})
    finally:
        log.close()
    return 0


def _train(args: argparse.Namespace, on_step: Callable[[Any], None]) -> dict[str, Any] | None:
    """Train as ``args`` say; returns the summary (None on ranks other than 0)."""
    from engine import api
    from engine.errors import ConfigError

    if args.readout_every is not None and args.readout_every < 1:
        raise ConfigError(f"--readout-every must be a positive number of steps, got {args.readout_every}")
    cfg = _run_config(args)
    _check_run_folder(args, cfg)
    from engine.distributed import env_rank, launched_by_torchrun, train_distributed

    distributed = args.distributed or launched_by_torchrun()
    bar = _bar(args.steps, "train", args.quiet or env_rank() != 0)

    def progress(p):
        bar.n = p.step
        bar.set_postfix(loss=f"{p.loss:.4f}", refresh=False)
        bar.refresh()
        on_step(p)

    started = time.perf_counter()
    if distributed:  # a torchrun process: rank 0 shows progress, prints the summary
        trainer = train_distributed(cfg, args.out, device=args.device, resume=args.resume,
                                    callback=progress, readout_every=args.readout_every)
        bar.close()
        if not trainer.dist.is_main:
            return None
    else:
        trainer = api.train(cfg, args.out, device=args.device, resume=args.resume, callback=progress,
                            readout_every=args.readout_every)
        bar.close()
    summary = {"out": str(Path(args.out) / "model.safetensors"), "steps": trainer.step_count,
               "final_loss": trainer.model_metadata()["training"]["final_loss"],
               "train_seconds": round(trainer.elapsed, 2), "wall_seconds": round(time.perf_counter() - started, 2),
               "config": trainer.config.to_dict()}
    print(f"trained {trainer.step_count} steps in {trainer.elapsed:.1f}s; final loss "
          f"{summary['final_loss']:.4f}; wrote {summary['out']}")
    _write_json(args.json, summary)
    return summary


# The RunConfig fields ``hdm train`` takes as options (section -> field -> flag); every other field keeps its
# default. The studio's multi-process training builds its command line from the same table.
TRAIN_FLAGS: dict[str, dict[str, str]] = {
    "data": {"spec": "--data", "modality": "--modality", "n_points": "--n-points", "num": "--num-items",
             "seed": "--data-seed", "image_size": "--image-size", "channels": "--channels", "fps": "--fps",
             "frames": "--frames"},
    "noise": {"kernel": "--kernel", "length_scale": "--length-scale", "gain": "--gain", "period": "--period",
              "sigma": "--sigma", "gamma": "--gamma"},
    "equation": {"name": "--equation", "schedule": "--schedule", "blur_min": "--blur-min",
                 "blur_max": "--blur-max", "heat_noise": "--heat-noise"},
    "model": {"name": "--model", "width": "--width", "modes": "--modes", "layers": "--layers",
              "padding": "--padding", "emb_dim": "--emb-dim", "channel_mult": "--channel-mult",
              "num_res_blocks": "--res-blocks", "attention_levels": "--attention"},
    "train": {"steps": "--steps", "batch_size": "--batch-size", "lr": "--lr", "seed": "--seed",
              "warmup": "--warmup", "checkpoint_every": "--checkpoint-every", "precision": "--precision",
              "compile": "--compile"},
}


def _dest(flag: str) -> str:
    return flag[2:].replace("-", "_")


def _run_config(args: argparse.Namespace) -> Any:
    """The RunConfig that ``hdm train``'s options describe (model options left unset keep the architecture's
    defaults)."""
    from engine.config import RunConfig

    sections = {section: {key: getattr(args, _dest(flag)) for key, flag in flags.items()}
                for section, flags in TRAIN_FLAGS.items()}
    sections["model"] = {key: value for key, value in sections["model"].items() if value is not None}
    return RunConfig().replace(**sections)


def _typed_options(argv: list[str]) -> set[str]:
    """The dests of the options written in ``argv`` (whatever their value, abbreviated or ``--x=v``)."""
    parser = build_parser()
    for action in parser._actions:  # argparse keeps subcommands in a private action type
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                for option in sub._actions:
                    option.default = argparse.SUPPRESS
                sub.set_defaults(func=None)
    return {dest for dest in vars(parser.parse_args(argv)) if dest not in ("command", "func")}


def _check_run_folder(args: argparse.Namespace, cfg: Any) -> None:
    """Before the first step: a finished run is not overwritten by a new one, and a resumed run is
    not asked for settings it does not have (they would be ignored without a word)."""
    import json

    from engine.errors import ConfigError
    from engine.io import load_train_state, same_file
    from engine.operators.kernels import canonical_kernel
    from engine.training import EXECUTION, STATE_FILE, run_files

    out = Path(args.out).expanduser()
    _outputs({"--out": args.out, "--json": args.json, "--progress-jsonl": args.progress_jsonl}, {}, folder="--out")
    existing = run_files(out)
    if not args.resume:
        if existing:
            raise ConfigError(f"--out {out} already holds a run ({', '.join(existing)}): --resume continues it; "
                              "for a new run choose another --out (or delete that folder)")
        return
    if not (out / STATE_FILE).is_file():
        return  # Trainer.resume says what is missing
    state = load_train_state(out / STATE_FILE)
    done = int(state.get("step", 0))
    if args.steps <= done:
        raise ConfigError(f"--steps {args.steps}: the run in {out} has trained {done} steps already; give a larger "
                          "--steps to continue it")
    try:
        stored = json.loads(state["config"])
    except (KeyError, TypeError, ValueError):
        return  # Trainer.resume reports the broken state
    ours, conflicts = cfg.to_dict(), []
    for section, flags in TRAIN_FLAGS.items():
        for key, flag in flags.items():
            if _dest(flag) not in args.typed or (section == "train" and key in ("steps", *EXECUTION)):
                continue  # not asked for, or what a resumed run may change
            value = json.loads(json.dumps(ours[section][key]))  # as stored: tuples are lists
            have = stored.get(section, {}).get(key, value)
            if key == "kernel":  # "se", "rbf" and "squared_exponential" name one kernel
                value, have = canonical_kernel(str(value)), canonical_kernel(str(have))
            if value != have and value != "auto" and not (key == "spec" and same_file(value, have)):
                conflicts.append(f"{flag} {value!r} (the run has {have!r})")
    if conflicts:
        raise ConfigError(f"--resume continues the run in {out} with its own settings; these options differ from "
                          f"them: {'; '.join(conflicts)}. Drop them, or train a new run in another --out")


def cmd_sample(args: argparse.Namespace) -> int:
    from engine.distributed import init_distributed, launched_by_torchrun, shutdown
    from engine.errors import ConfigError

    for name, value in (("--num-samples", args.num_samples), ("--steps", args.steps),
                        ("--batch-size", 1 if args.batch_size is None else args.batch_size)):
        if value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value}")
    if args.trajectory_every < 0:
        raise ConfigError(f"--trajectory-every must be 0 (no trajectory) or a positive step, "
                          f"got {args.trajectory_every}")
    checkpoint = args.checkpoint if Path(args.checkpoint).suffix == ".safetensors" else None
    _outputs({"--out": args.out, "--json": args.json}, {"--checkpoint": checkpoint})
    if not (args.distributed or launched_by_torchrun()):
        return _sample(args, None, args.device)
    if args.trajectory_every:
        raise ConfigError("--trajectory-every: trajectories are not gathered across processes; sample them in "
                          "one process (without torchrun)")
    ctx, device = init_distributed(args.device, "sample")
    try:
        code = _sample(args, ctx, device)
    except BaseException:
        shutdown(clean=False)
        raise
    shutdown()
    return code


def _sample(args: argparse.Namespace, ctx: Any, device: str) -> int:
    """Sample as ``args`` say, in one process (``ctx`` None) or split over the ranks of ``ctx``.

    Distributed: whole batches are dealt to the ranks and gathered (bit-identical to one
    process); rank 0 alone shows progress and writes the files.
    """
    import numpy as np

    from engine import api
    from engine.distributed import batch_ranges, sample_distributed
    from engine.errors import ConfigError
    from engine.pipeline import uniform_grid

    main_rank = ctx is None or ctx.is_main
    model = api.load_model(args.checkpoint, device=device)
    images = model.modality == "images"
    if images and args.grid_size is not None:
        raise ConfigError("--grid-size is for functions and motions; use --image-size for an image model")
    if not images and (args.image_size is not None or args.prior):
        raise ConfigError("--image-size and --prior are for image models")
    grid = uniform_grid(model.geometry, args.grid_size) if args.grid_size is not None else None
    batch = args.batch_size or min(args.num_samples, model.default_batch_size(grid, args.image_size))
    start, stop = (0, args.num_samples) if ctx is None else batch_ranges(args.num_samples, batch,
                                                                         ctx.world_size)[ctx.rank]
    bar = _bar(args.steps * -(-(stop - start) // batch), "sample", args.quiet or not main_rank)
    kwargs = {"steps": args.steps, "sampler": args.sampler, "spacing": args.spacing, "grid": grid,
              "size": args.image_size, "prior": args.prior, "seed": args.seed, "batch_size": batch,
              "callback": lambda info: bar.update(1)}
    started = time.perf_counter()
    if ctx is None:
        result = model.sample(args.num_samples, trajectory_every=args.trajectory_every, **kwargs)
    else:
        result = sample_distributed(model, args.num_samples, ctx, **kwargs)
    seconds = time.perf_counter() - started
    bar.close()
    if not main_rank:
        return 0
    path = api.write_sample_file(args.out, result, model)
    shape = " x ".join(str(v) for v in result.samples.shape[1:])
    where = "" if ctx is None else f" over {ctx.world_size} processes"
    print(f"sampled {args.num_samples} {model.modality} ({shape}) with {args.sampler} "
          f"({args.steps} steps) in {seconds:.2f}s{where}; wrote {path}")
    _write_json(args.json, {"out": str(path), "seconds": round(seconds, 3), **result.settings,
                            "num_samples": args.num_samples, "checkpoint_sha256": model.sha256,
                            "sample_mean": float(np.mean(result.samples))})
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from engine import api

    _outputs({"--json": args.json}, {"--samples": args.samples})
    sizes = tuple(args.balanced) if args.balanced is not None else (100, 500)
    report = api.evaluate(args.samples, args.data, block_size=args.block_size, repeats=args.repeats,
                          permutations=args.permutations, balanced_sizes=sizes, seed=args.seed,
                          split=args.split)
    if not report["data"]["held_out"]:
        print(f"note: {args.data} is what the samples' model was trained on, not held out: a model that memorised "
              "its training items scores as well here as one that generalises; compare with held-out data",
              file=sys.stderr)
    if "fd" in report:  # images
        print(f"Frechet distance {report['fd']:.3f}, KID {report['kid']:.3f} ± {report['kid_std']:.3f} "
              f"(classifier features, sha256 {report['classifier_sha256'][:12]})")
        for key in ("sw1", "spectrum_error", "nn_ratio", "classes_covered", "class_tv_distance"):
            if report.get(key) is not None:
                print(f"{key}: {report[key]:.4g}")
        _write_json(args.json, report)
        return 0
    if "power_trajectory" in report:  # motions
        for key in ("power_trajectory", "power_velocity"):
            res = report[key]
            print(f"{key.replace('_', ' ')}: {res['power']:.1f} % ± {res['std']:.1f}")
        for side in ("generated", "reference"):
            m = report[side]
            print(f"{side}: bone-length error {m['bone_length_error']:.4g}, foot skating {m['foot_skating']:.4g} "
                  f"m/s, jerk {m['jerk']:.4g}")
        _write_json(args.json, report)
        return 0
    for key, res in report["power"].items():
        if isinstance(res, dict) and "power" in res:
            print(f"power {key} vs {key}: {res['power']:.1f} % ± {res['std']:.1f} "
                  f"({res['n_blocks']} blocks x {res['repeats']} repeats)")
        else:
            print(f"power {key} vs {key}: skipped ({res})")
    mmd = report.get("mmd2")
    if mmd:
        line = f"MMD^2 ({mmd['n_generated']} vs {mmd['n_real']}): {mmd['value']:.3g}"
        floor = mmd["floor"]
        if floor:
            line += (f"; a perfect generator scores {floor['mean']:.3g} ± {floor['std']:.2g} "
                     f"({floor['low']:.3g} to {floor['high']:.3g}, {floor['draws']} draws"
                     f"{'' if floor['disjoint'] else ', overlapping: spread understated'}): "
                     + ("within its spread" if mmd["at_floor"] else f"above its mean + 2 sd ({floor['bar']:.3g})"))
        else:
            line += f" ({mmd.get('floor_note', 'no floor')})"
        print(line)
    for key, value in report["functional"].items():
        print(f"{key}: {value:.4g}")
    _write_json(args.json, report)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from engine import api

    _outputs({"--out": args.out, "--json": args.json}, {"--samples": args.samples},
             folder="--out" if args.format in ("png", "bvh") else None)
    out = api.export(args.samples, args.format, args.out)
    print(f"wrote {out}")
    _write_json(args.json, {"out": str(out), "format": args.format, "samples": str(args.samples)})
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from engine import api
    from engine.data import list_function_datasets, list_image_datasets
    from engine.motion import list_motion_datasets
    from engine.samplers import SAMPLER_DESCRIPTIONS

    report: dict[str, Any] = {"datasets": {}, "checkpoints": {}, "samplers": dict(SAMPLER_DESCRIPTIONS)}
    for modality, infos in (("functions", list_function_datasets()), ("images", list_image_datasets()),
                            ("motions", list_motion_datasets())):
        print(f"datasets ({modality}):")
        report["datasets"][modality] = []
        for info in infos:
            flag = "" if info.available else "  (unavailable: shared data not found)"
            print(f"  {info.name:12s} {info.description}{flag}")
            report["datasets"][modality].append({"name": info.name, "description": info.description,
                                                 "available": bool(info.available)})
    print("checkpoints:")
    for name, path in api.list_checkpoints().items():
        print(f"  {name:12s} {path}")
        report["checkpoints"][name] = str(path)
    print("samplers:")
    for name, text in SAMPLER_DESCRIPTIONS.items():
        print(f"  {name:15s} {text}")
    _write_json(args.json, report)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hdm", description="Hilbert diffusion models, headless.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model on a dataset or file")
    t.add_argument("--data", default="quadratic", help="embedded dataset name or file path")
    t.add_argument("--out", required=True, help="run directory (model.safetensors, train_state.pt)")
    t.add_argument("--steps", type=int, default=2000)
    t.add_argument("--batch-size", type=int, default=100)
    t.add_argument("--lr", type=float, default=None, help="default: 2e-3 (FNO-1D), 5e-4 (image networks)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    t.add_argument("--n-points", type=int, default=None, help="resample the data to this many points")
    t.add_argument("--num-items", "--num-curves", dest="num_items", type=int, default=None,
                   help="use at most this many training items")
    t.add_argument("--modality", default="auto", choices=["auto", "functions", "motions", "images"],
                   help="what the data are (auto: from the dataset name or file type)")
    t.add_argument("--image-size", type=int, default=None, help="images: resize and centre-crop to this size")
    t.add_argument("--channels", type=int, default=None, help="images: 1 (grey) or 3 (RGB)")
    t.add_argument("--fps", type=float, default=None, help="motions: resample clips to this frame rate")
    t.add_argument("--frames", type=int, default=None, help="motions: frames per training clip")
    t.add_argument("--data-seed", type=int, default=0, help="seed of synthetic datasets")
    t.add_argument("--kernel", default="squared_exponential")
    t.add_argument("--length-scale", type=float, default=None,
                   help="default: the dataset's recommendation (the periodic kernel's is relative to --period)")
    t.add_argument("--gain", type=float, default=1.0)
    t.add_argument("--period", type=float, default=None)
    t.add_argument("--sigma", type=float, default=1.0, help="images: Q = (sigma I - Laplacian)^-gamma")
    t.add_argument("--gamma", type=float, default=0.0, help="images: smoothness of the noise (0 = white)")
    t.add_argument("--equation", default="auto",
                   help="functions/motions: vp, subvp, ve; images: hdm_spde, vp (DDPM), ihdm (default: vp / hdm_spde)")
    t.add_argument("--blur-min", type=float, default=0.5, help="ihdm: blur at t = 0 (pixels)")
    t.add_argument("--blur-max", type=float, default=20.0, help="ihdm: blur at t = T (pixels)")
    t.add_argument("--heat-noise", type=float, default=0.01, help="ihdm: the small noise level")
    t.add_argument("--schedule", default="cosine", help="cosine or linear")
    t.add_argument("--model", default="auto", help="fno1d, unet or fno2d (default: fno1d; unet for images)")
    t.add_argument("--width", type=int, default=32, help="FNO channels / UNet base channels")
    t.add_argument("--modes", type=int, default=16)
    t.add_argument("--layers", type=int, default=4)
    t.add_argument("--padding", type=float, default=1.0,
                   help="FNO-1D: extend the Fourier period by this fraction of the domain (1, the default: FNO's "
                        "zero-padding, so the two ends of a non-periodic curve do not wrap onto each other)")
    t.add_argument("--emb-dim", type=int, default=None)
    t.add_argument("--channel-mult", type=int, nargs="+", default=None, help="UNet: channels per level (x width)")
    t.add_argument("--res-blocks", type=int, default=None, help="UNet: residual blocks per level")
    t.add_argument("--attention", type=int, nargs="*", default=None, help="UNet: levels with self-attention")
    t.add_argument("--checkpoint-every", type=int, default=500,
                   help="save the run every k steps (0: only at the end)")
    t.add_argument("--warmup", type=int, default=100, help="learning-rate warm-up steps (then cosine decay)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out up to --steps")
    t.add_argument("--distributed", action="store_true",
                   help="data-parallel over the processes of `torchrun --nproc-per-node=N --no-python hdm train ...` "
                        "(on by itself under torchrun; gloo on CPU, NCCL on CUDA; --batch-size is the global batch)")
    t.add_argument("--readout-every", type=int, default=None,
                   help="read the loss back (and report progress) every k steps (default: 1 on a CPU, 10 on a GPU, "
                        "whose host would otherwise wait for each step before queueing the next)")
    t.add_argument("--progress-jsonl", default=None, metavar="PATH",
                   help="append one JSON line per step (step, total, loss, lr, elapsed), then a done or error "
                        "line, flushed at once so another program can follow the run (rank 0 only)")
    t.add_argument("--stop-with", type=int, default=None, metavar="PID",
                   help="stop (as Cancel does) once process PID has exited: the studio's own id for its training "
                        "children (POSIX)")
    t.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"],
                   help="tf32: float32 matmuls on TF32 tensor cores (CUDA, compute capability >= 8.0); "
                        "bf16: the network's forward under bf16 autocast (weights, loss and EMA stay fp32)")
    t.add_argument("--compile", action="store_true",
                   help="torch.compile the network and loss (eager, with a warning, where compiling fails)")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="sample curves, images or motions from a checkpoint into an HDF5 file")
    s.add_argument("--checkpoint", default="quadratic", help="bundled name, .safetensors file or run dir")
    s.add_argument("--num-samples", type=int, default=1000)
    s.add_argument("--steps", type=int, default=50)
    s.add_argument("--sampler", default="dpm2m_sde",  # engine.samplers.DEFAULT_SAMPLER (not imported: torch)
                   help="see `hdm list`; default dpm2m_sde (the best measured at 50 steps on curves and images)")
    s.add_argument("--spacing", default=None,
                   help="the time grid: uniform (in t), logsnr (uniform in log SNR) or edm (Karras et al.'s rho = 7); "
                        "default: logsnr for ddim, ode_heun, dpm2m and dpm2m_sde, uniform for the others")
    s.add_argument("--grid-size", type=int, default=None, help="sample on a uniform grid of this size")
    s.add_argument("--image-size", type=int, default=None, help="images: sample at this size (FNO-2D models)")
    s.add_argument("--prior", default=None, choices=["hdm", "white", "ihdm"],
                   help="images: the law x_T is drawn from (default: hdm; ihdm for the ihdm equation)")
    s.add_argument("--seed", type=int, default=0, help="sample k uses seed + k")
    s.add_argument("--batch-size", type=int, default=None,
                   help="items per batch (default: GPU 1000 curves or 256 images; CPU about 25,000 points or "
                        "pixels a batch, which keeps the activations in cache)")
    s.add_argument("--trajectory-every", type=int, default=0, help="keep every k-th reverse-time state")
    s.add_argument("--device", default="cpu")
    s.add_argument("--out", required=True)
    s.add_argument("--distributed", action="store_true",
                   help="split the batches over the processes of `torchrun --nproc-per-node=N --no-python hdm "
                        "sample ...` (on by itself under torchrun); the samples are bit-identical to one process")
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("evaluate", help="compare samples with held-out data: two-sample power, MMD^2 and "
                                        "functional errors (curves), FD/KID (images), motion metrics")
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
    x.add_argument("--format", default="csv", choices=["csv", "png", "bvh"],
                   help="csv: curves (one file); png: images, bvh: motions (a folder, one file per sample)")
    x.add_argument("--out", required=True)
    x.set_defaults(func=cmd_export)

    from engine.restoration.run import add_restore_arguments, run_restore_command

    r = sub.add_parser("restore", help="degrade dataset items and restore them (HDF5 + JSON summary)")
    add_restore_arguments(r)  # adds its own --json and --quiet
    r.set_defaults(func=run_restore_command)

    from engine.bench import add_bench_arguments, run_bench_command

    b = sub.add_parser("bench", help="training-step, sampling, quality-per-evaluation and memory figures (JSON)")
    add_bench_arguments(b)  # adds its own --json and --quiet
    b.set_defaults(func=run_bench_command)

    ls = sub.add_parser("list", help="embedded datasets, bundled checkpoints and samplers")
    ls.set_defaults(func=cmd_list)

    for sp in (t, s, e, x, ls):
        sp.add_argument("--quiet", action="store_true", help="no progress bar")
        sp.add_argument("--json", default=None, metavar="PATH", help="write the figures to PATH as JSON")
    return p


def _out_of_memory(text: str) -> bool:
    """Whether a RuntimeError's text is an allocation failure (torch's CPU allocator, CUDA, MPS)."""
    return any(key in text for key in ("can't allocate memory", "out of memory", "Unable to allocate",
                                       "not enough memory"))


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is, as Ctrl+C is: writes in progress remove their temporary file."""


class _Interrupts:
    """While a command runs: SIGTERM (the studio's Cancel of a training child, ``--stop-with``, ``timeout``,
    schedulers, torchrun's teardown) unwinds like Ctrl+C instead of ending the process where it stands, which
    left the hidden temporary file of a write in progress behind; and a signal is remembered, since one that
    lands in a finaliser (h5py closes objects through weakref callbacks) is printed and dropped by Python,
    and the command then went on to exit 0."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Interrupts:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():  # Python sets handlers there only
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: object) -> None:
        import signal

        self.received = signum
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.typed = _typed_options(sys.argv[1:] if argv is None else argv)  # what was asked for, not defaulted
    from engine.device import tune_cpu_allocator

    tune_cpu_allocator()  # process-wide: only entry points do it
    with _Interrupts() as interrupts:
        code = _run(args)
    if interrupts.received is not None and code == 0:  # the signal was dropped in a finaliser; the work finished
        print("interrupted (after the command had finished its output)", file=sys.stderr)
        return 128 + interrupts.received
    return code


def _run(args: argparse.Namespace) -> int:
    """The command, with its errors turned into one line and an exit code."""
    try:
        return args.func(args)
    except HDMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:  # RuntimeError: only torch's out-of-memory ones (others re-raised)
        text = " ".join(str(exc).split())
        if isinstance(exc, RuntimeError) and not _out_of_memory(text):
            raise
        print(f"error: out of memory ({text[:200] or 'MemoryError'}): ask for fewer samples, points, pixels or a "
              "smaller --batch-size", file=sys.stderr)
        return 2
    except Cancelled as exc:
        print(f"cancelled: {exc}", file=sys.stderr)
        return 130
    except Terminated:
        print("terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `hdm list | head`: the reader left; not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
