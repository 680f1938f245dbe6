"""``hdm``: the headless command line (train, sample, evaluate, export, list).

Every command calls :mod:`engine.api`; progress bars adapt the engine's callbacks. A user's
mistake ends in ``error: <one line>`` on stderr and exit code 2, never a traceback; nothing
is left half-written (every file is written to a temporary name, then renamed).
"""

from __future__ import annotations

import argparse
import json
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


def check_outputs(outputs: dict[str, str | None], inputs: dict[str, str | None], *, folder: str | None = None,
                  formats: dict[str, tuple[tuple[str, ...], str]] | None = None) -> None:
    """Before any work: each output path can be written (:func:`engine.io.check_writable`; the flag named
    ``folder`` is a folder) and names neither an input (a file or folder the command reads: writing it would destroy
    it) nor another output (one would overwrite the other), and an existing output file is one hdm made
    (:func:`engine.io.check_replaceable`: nothing is overwritten that the command did not make). Keys are what the
    error names (flags, or phrases such as "the run's model.safetensors (in --out)"); None paths are skipped.

    An output's name must not belie what is written there: ``formats`` maps a flag to the suffixes its file may end
    in and what the file is (``{"--out": (HDF5_SUFFIXES, "an HDF5 sample file")}``), and a new ``folder`` may not
    be named like a file (``export --format png --out grid.png``): :func:`engine.io.check_output_name`. A ``--json``
    report may not be named like a file of another format (``--json out.h5``)."""
    from engine.errors import ConfigError
    from engine.io import FILE_SUFFIXES, check_output_name, check_replaceable, check_writable, same_file

    def same(a: str, b: str) -> bool:
        pa, pb = Path(a).expanduser(), Path(b).expanduser()
        return same_file(pa, pb) if pa.exists() and pb.exists() else pa.resolve() == pb.resolve()

    sources = [(flag, str(path)) for flag, path in inputs.items() if path]
    named = [(flag, str(path)) for flag, path in outputs.items() if path]
    for i, (flag, path) in enumerate(named):
        for other, source in sources:
            if same(path, source):
                noun = "folder" if Path(source).expanduser().is_dir() else "file"
                raise ConfigError(f"{flag} {path} is the same {noun} as {other}: writing it would destroy that "
                                  f"{noun}; choose another path")
        for other, source in named[:i]:
            if same(path, source):
                noun = "path" if folder in (flag, other) else "file"
                raise ConfigError(f"{flag} {path} is the same {noun} as {other}: one output would overwrite the "
                                  "other; choose another path")
        check_writable(Path(path).expanduser(), folder=flag == folder)
        if flag != folder:
            check_replaceable(path, flag=flag, json_report=flag == "--json")
    for flag, (suffixes, what) in (formats or {}).items():
        if outputs.get(flag):
            check_output_name(str(outputs[flag]), suffixes=suffixes, what=what, flag=flag)
    report = outputs.get("--json")
    if report and Path(report).suffix.lower() in FILE_SUFFIXES - {".json", ".jsonl", ".txt"}:
        check_output_name(str(report), suffixes=(".json",), what="a JSON report", flag="--json")
    if folder and outputs.get(folder):
        check_output_name(str(outputs[folder]), folder=True, flag=folder)


def path_input(spec: Any) -> str | None:
    """``spec`` when it names an existing file or folder (an input the outputs must not be), else None (a dataset
    name, or a path the loader will say is missing)."""
    if not isinstance(spec, str) or not spec.strip():
        return None
    return spec if Path(spec).expanduser().exists() else None


def checkpoint_inputs(spec: str) -> dict[str, str | None]:
    """The files ``--checkpoint`` reads, for :func:`check_outputs`: its model file (a bundled name or a run directory
    resolved by :func:`engine.api.resolve_checkpoint`, which also says what is wrong with a bad one) and, in a run
    folder, the run's ``train_state.pt`` beside it."""
    from engine.api import resolve_checkpoint
    from engine.training import MODEL_FILE, STATE_FILE

    path = resolve_checkpoint(spec)
    state = path.parent / STATE_FILE
    return {"--checkpoint": str(path),
            f"--checkpoint's {STATE_FILE}": str(state) if path.name == MODEL_FILE and state.is_file() else None}


_BARS: list[Any] = []  # the progress bars of the command running: closed before its error line


def _on_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def progress_bar(total: int, desc: str, quiet: bool):
    """A progress bar on stderr. On a terminal it is erased when closed; elsewhere (a log file, a pipe) it ends its
    line, so what follows (an ``error:`` line a program looks for) starts a line of its own."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="step", disable=quiet, leave=not _on_terminal(), dynamic_ncols=True)
    _BARS.append(bar)
    return bar


def _close_bars() -> None:
    while _BARS:
        _BARS.pop().close()


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
    state = _resumed_state(args)
    _check_train_outputs(args, state)  # before the progress file is created: it is one of the outputs
    log = ProgressLog(args.progress_jsonl if env_rank() == 0 else None)
    try:
        summary = _train(args, log.step, state)
    except BaseException as exc:
        log.write({"event": "error", "message": _event_message(exc)})
        raise
    else:
        if summary is not None:
            log.write({"event": "done", **summary})
    finally:
        log.close()
    return 0


def _event_message(exc: BaseException) -> str:
    """The progress file's error message: the line ``hdm`` prints (without ``error:``)."""
    if isinstance(exc, Terminated):
        return "terminated"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    text = " ".join(str(exc).split())
    if isinstance(exc, HDMError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _resumed_state(args: argparse.Namespace) -> dict[str, Any] | None:
    """With ``--resume``: the step and stored configuration of the run in ``--out`` (None where it has no readable
    ``train_state.pt``: :func:`_check_run_folder` or ``Trainer.resume`` then says what is wrong)."""
    from engine.training import STATE_FILE

    path = Path(args.out).expanduser() / STATE_FILE
    if not args.resume or not path.is_file():
        return None
    from engine.io import load_train_state

    try:
        state = load_train_state(path)
    except HDMError:
        return None
    return {"step": state.get("step", 0), "config": state.get("config"), "elapsed": state.get("elapsed", 0.0)}


def _stored_config(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """The run configuration a :func:`_resumed_state` holds, as a dict (None where it has none)."""
    try:
        stored = json.loads(state["config"]) if state is not None else None
    except (KeyError, TypeError, ValueError):
        return None
    return stored if isinstance(stored, dict) else None


def _check_train_outputs(args: argparse.Namespace, state: dict[str, Any] | None) -> None:
    """``hdm train``'s outputs (``--out``, the run's two files in it, ``--json``, ``--progress-jsonl``) against each
    other and against the data it reads (``--data``, or a resumed run's own when ``--data`` is not given)."""
    from engine.training import MODEL_FILE, STATE_FILE

    data, label = args.data, "--data"
    stored = _stored_config(state)
    if stored is not None and "data" not in args.typed:
        section = stored.get("data")
        data, label = (section.get("spec") if isinstance(section, dict) else None), "the run's --data"
    out = Path(args.out).expanduser()
    check_outputs({"--out": args.out, f"the run's {MODEL_FILE} (in --out)": str(out / MODEL_FILE),
              f"the run's {STATE_FILE} (in --out)": str(out / STATE_FILE), "--json": args.json,
              "--progress-jsonl": args.progress_jsonl}, {label: path_input(data)}, folder="--out")


def _train(args: argparse.Namespace, on_step: Callable[[Any], None],
           state: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Train as ``args`` say; returns the summary (None on ranks other than 0). ``state``: :func:`_resumed_state`."""
    from engine import api
    from engine.errors import ConfigError

    if args.readout_every is not None and args.readout_every < 1:
        raise ConfigError(f"--readout-every must be a positive number of steps, got {args.readout_every}")
    cfg = _check_run_folder(args, _run_config(args), state)
    if not args.resume:  # (a resumed run compares typed options with its own)
        _refuse_foreign_options(args, cfg)
    from engine.distributed import env_rank, launched_by_torchrun, train_distributed

    distributed = args.distributed or launched_by_torchrun()
    bars: list[Any] = []  # drawn at the first step, once the data have loaded: a bad file's error stands alone

    def progress(p):
        if not bars:
            bars.append(progress_bar(args.steps, "train", args.quiet or env_rank() != 0))
        bar = bars[0]
        bar.n = p.step
        bar.set_postfix(loss=f"{p.loss:.4f}", refresh=False)
        bar.refresh()
        on_step(p)

    started = time.perf_counter()
    if distributed:  # a torchrun process: rank 0 shows progress, prints the summary
        trainer = train_distributed(cfg, args.out, device=args.device, resume=args.resume,
                                    callback=progress, readout_every=args.readout_every)
    else:
        trainer = api.train(cfg, args.out, device=args.device, resume=args.resume, callback=progress,
                            readout_every=args.readout_every)
    _close_bars()
    if distributed and not trainer.dist.is_main:
        return None
    window = min(50, len(trainer.losses))  # Trainer.model_metadata's final_loss: the mean of the last 50 steps
    first = int(trainer.history[-1].get("from_step", 0)) if args.resume else 0  # this command's first step
    before = float((state or {}).get("elapsed") or 0.0) if first else 0.0  # the run's training time until then
    summary = {"out": str(Path(args.out) / "model.safetensors"), "steps": trainer.step_count,
               "resumed_from_step": first if args.resume else None, "steps_trained": trainer.step_count - first,
               "final_loss": trainer.model_metadata()["training"]["final_loss"], "final_loss_steps": window,
               "train_seconds": round(trainer.elapsed, 2), "segment_train_seconds": round(trainer.elapsed - before, 2),
               "wall_seconds": round(time.perf_counter() - started, 2), "config": trainer.config.to_dict()}
    done = f"trained {trainer.step_count} steps in {trainer.elapsed:.1f}s" if not first else (
        f"trained {trainer.step_count - first} steps in {trainer.elapsed - before:.1f}s (resumed at step {first}; "
        f"the run: {trainer.step_count} steps, {trainer.elapsed:.1f}s)")
    print(f"{done}; final loss (mean of the run's last {window} steps) {summary['final_loss']:.4f}; "
          f"wrote {summary['out']}")
    _write_json(args.json, summary)
    return summary


# The RunConfig fields ``hdm train`` takes as options (section -> field -> flag); every other field keeps its
# default. The studio's multi-process training builds its command line from the same table.
TRAIN_FLAGS: dict[str, dict[str, str]] = {
    "data": {"spec": "--data", "modality": "--modality", "n_points": "--n-points", "num": "--num-items",
             "seed": "--data-seed", "image_size": "--image-size", "channels": "--channels", "fps": "--fps",
             "frames": "--frames", "channel_scale": "--channel-scale"},
    "noise": {"kernel": "--kernel", "length_scale": "--length-scale", "gain": "--gain", "period": "--period",
              "sigma": "--sigma", "gamma": "--gamma"},
    "equation": {"name": "--equation", "schedule": "--schedule", "blur_min": "--blur-min",
                 "blur_max": "--blur-max", "heat_noise": "--heat-noise"},
    "model": {"name": "--model", "width": "--width", "modes": "--modes", "layers": "--layers",
              "padding": "--padding", "emb_dim": "--emb-dim", "channel_mult": "--channel-mult",
              "num_res_blocks": "--res-blocks", "attention_levels": "--attention"},
    "train": {"steps": "--steps", "batch_size": "--batch-size", "lr": "--lr", "seed": "--seed",
              "warmup": "--warmup", "checkpoint_every": "--checkpoint-every", "precision": "--precision",
              "compile": "--compile", "time_law": "--time-law"},
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


# Options that one kind of data reads and the other ignores: images' prior and equation, or the curves' (and
# motions') kernel. Typed for the other kind, they were ignored yet stored in the run's config.
ONE_KIND_OPTIONS = {"--sigma": "images", "--gamma": "images", "--blur-min": "images", "--blur-max": "images",
                    "--heat-noise": "images", "--kernel": "curves", "--length-scale": "curves", "--gain": "curves",
                    "--period": "curves", "--channel-scale": "curves"}


def foreign_options(modality: str) -> list[str]:
    """The :data:`ONE_KIND_OPTIONS` that data of ``modality`` (functions, motions, images) do not read."""
    kind = "images" if modality == "images" else "curves"
    return [flag for flag, owner in ONE_KIND_OPTIONS.items() if owner != kind]


def _refuse_foreign_options(args: argparse.Namespace, cfg: Any) -> None:
    """ConfigError for an option of the other kind of data typed with a value of its own (``--kernel matern12``
    for images, ``--sigma 5`` for curves), as ``--image-size`` for curves is: it would be ignored, yet written into
    the checkpoint's config. (A default value, as the studio passes every option, is let through.)"""
    from engine.config import RunConfig
    from engine.data.select import detect_modality
    from engine.errors import ConfigError

    modality = cfg.data.modality if cfg.data.modality != "auto" else detect_modality(cfg.data.spec)
    ours, default = cfg.to_dict(), RunConfig().to_dict()
    where = {flag: (section, key) for section, flags in TRAIN_FLAGS.items() for key, flag in flags.items()}
    foreign = [flag for flag in foreign_options(modality) if _dest(flag) in args.typed
               and ours[where[flag][0]][where[flag][1]] != default[where[flag][0]][where[flag][1]]]
    if foreign:
        one = len(foreign) == 1
        raise ConfigError(f"the data are {modality}: {', '.join(foreign)} {'applies' if one else 'apply'} to "
                          f"{'curves and motions' if modality == 'images' else 'images'} only; drop "
                          f"{'it' if one else 'them'}")


def _command_of(argv: list[str]) -> str:
    """The subcommand ``argv`` names: its first word that is not an option (``hdm`` itself takes no values), or
    ``""`` when it names none (``hdm --help``)."""
    return next((word for word in argv if not word.startswith("-")), "")


def _typed_options(argv: list[str]) -> set[str]:
    """The dests of the options written in ``argv`` (whatever their value, abbreviated or ``--x=v``)."""
    parser = build_parser(_command_of(argv))
    for action in parser._actions:  # argparse keeps subcommands in a private action type
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                for option in sub._actions:
                    option.default = argparse.SUPPRESS
                sub.set_defaults(func=None)
    return {dest for dest in vars(parser.parse_args(argv)) if dest not in ("command", "func")}


def _check_run_folder(args: argparse.Namespace, cfg: Any, state: dict[str, Any] | None = None) -> Any:
    """Before the first step: a finished run is not overwritten by a new one, and a resumed run is
    not asked for settings it does not have (they would be ignored without a word).

    Returns ``cfg``; resumed, with the run's own execution options (``--precision``, ``--compile``,
    ``cuda_graphs``) where none was typed: ``api.train`` hands ``cfg``'s to the resumed run, and the parser's
    defaults would silently replace the run's.
    """
    from engine.data.select import names_a_path
    from engine.errors import ConfigError
    from engine.operators.kernels import canonical_kernel
    from engine.training import EXECUTION, STATE_FILE, run_files

    out = Path(args.out).expanduser()
    existing = run_files(out)
    if not args.resume:
        if existing:
            raise ConfigError(f"--out {out} already holds a run ({', '.join(existing)}): --resume continues it; "
                              "for a new run choose another --out (or delete that folder)")
        return cfg
    if state is None and (out / STATE_FILE).is_file():
        from engine.io import load_train_state

        state = load_train_state(out / STATE_FILE)  # _resumed_state could not read it: this says why
    if state is None:
        return cfg  # Trainer.resume says what is missing
    done = int(state.get("step", 0))
    if args.steps <= done:
        raise ConfigError(f"--steps {args.steps}: the run in {out} has trained {done} steps already; give a larger "
                          "--steps to continue it")
    stored = _stored_config(state)
    if stored is None:
        return cfg  # Trainer.resume reports the broken state
    ours, conflicts = cfg.to_dict(), []
    for section, flags in TRAIN_FLAGS.items():
        for key, flag in flags.items():
            if _dest(flag) not in args.typed or (section == "train" and key in ("steps", *EXECUTION)):
                continue  # not asked for, or what a resumed run may change
            value = json.loads(json.dumps(ours[section][key]))  # as stored: tuples are lists
            have = stored.get(section, {}).get(key, value)
            if key == "kernel":  # "se", "rbf" and "squared_exponential" name one kernel
                value, have = canonical_kernel(str(value)), canonical_kernel(str(have))
            if key == "spec" and names_a_path(value):
                continue  # the same file, or the run's data moved there: Trainer.resume checks their SHA-256
            if value != have and value != "auto":
                conflicts.append(f"{flag} {value!r} (the run has {have!r})")
    if conflicts:
        raise ConfigError(f"--resume continues the run in {out} with its own settings; these options differ from "
                          f"them: {'; '.join(conflicts)}. Drop them, or train a new run in another --out")
    return cfg.replace(train=_resumed_execution(args, cfg, stored))


def _resumed_execution(args: argparse.Namespace, cfg: Any, stored: dict[str, Any]) -> dict[str, Any]:
    """The execution options of a resumed run: those typed, else the run's own (else the config's defaults)."""
    from engine.config import TrainConfig
    from engine.training import EXECUTION

    train = stored.get("train") if isinstance(stored.get("train"), dict) else {}
    default = TrainConfig()
    execution = {}
    for key in EXECUTION:
        flag = TRAIN_FLAGS["train"].get(key)
        typed = flag is not None and _dest(flag) in args.typed
        execution[key] = getattr(cfg.train, key) if typed else train.get(key, getattr(default, key))
    from engine.device import resolve_device
    from engine.errors import ConfigError
    from engine.training import check_precision

    device = resolve_device(args.device)
    precision_typed = _dest(TRAIN_FLAGS["train"]["precision"]) in args.typed
    if not precision_typed:  # the run's own, from another machine (tf32 on a GPU, resumed on a CPU): fp32 here
        try:
            check_precision(execution["precision"], device)
        except ConfigError:
            print(f"note: the run trained with --precision {execution['precision']}, which {device} cannot run; "
                  "resuming in fp32 (--precision picks another)", file=sys.stderr)
            execution["precision"] = "fp32"
    if execution.get("cuda_graphs"):  # no flag: kept where it can run (one CUDA process, compiled), else dropped
        from engine.distributed import launched_by_torchrun

        execution["cuda_graphs"] = bool(device.type == "cuda" and execution.get("compile") and not args.distributed
                                        and not launched_by_torchrun())
    return execution


def cmd_sample(args: argparse.Namespace) -> int:
    from engine.distributed import init_distributed, launched_by_torchrun, shutdown
    from engine.errors import ConfigError
    from engine.io import HDF5_SUFFIXES

    for name, value in (("--num-samples", args.num_samples), ("--steps", args.steps),
                        ("--batch-size", 1 if args.batch_size is None else args.batch_size)):
        if value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value}")
    if args.trajectory_every < 0:
        raise ConfigError(f"--trajectory-every must be 0 (no trajectory) or a positive step, "
                          f"got {args.trajectory_every}")
    check_outputs({"--out": args.out, "--json": args.json}, checkpoint_inputs(args.checkpoint),
                  formats={"--out": (HDF5_SUFFIXES, "an HDF5 sample file (hdm export makes PNG, CSV or BVH files)")})
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
    from engine.samplers import default_sampler_for

    main_rank = ctx is None or ctx.is_main
    model = api.load_model(args.checkpoint, device=device)
    images = model.modality == "images"
    if images and args.grid_size is not None:
        raise ConfigError("--grid-size is for functions and motions; use --image-size for an image model")
    for flag, value in (("--image-size", args.image_size), ("--prior", args.prior)):
        if not images and value is not None:
            raise ConfigError(f"{flag} is for image models; this checkpoint holds a {model.modality} model")
    grid = uniform_grid(model.geometry, args.grid_size) if args.grid_size is not None else None
    batch = args.batch_size or min(args.num_samples, model.default_batch_size(grid, args.image_size))
    start, stop = (0, args.num_samples) if ctx is None else batch_ranges(args.num_samples, batch,
                                                                         ctx.world_size)[ctx.rank]
    bar = progress_bar(args.steps * -(-(stop - start) // batch), "sample", args.quiet or not main_rank)
    sampler = args.sampler or default_sampler_for(model.modality)
    kwargs = {"steps": args.steps, "sampler": sampler, "spacing": args.spacing, "grid": grid,
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
    print(f"sampled {args.num_samples} {model.modality} ({shape}) with {sampler} "
          f"({args.steps} steps) in {seconds:.2f}s{where}; wrote {path}")
    _write_json(args.json, {"out": str(path), "seconds": round(seconds, 3), **result.settings,
                            "num_samples": args.num_samples, "seed": args.seed, "checkpoint_sha256": model.sha256,
                            "sample_mean": float(np.mean(result.samples))})
    return 0


def _check_evaluate_options(args: argparse.Namespace) -> None:
    """The two-sample tests' settings, named by their flags (the engine names its parameters), before the work."""
    from engine.errors import ConfigError
    from engine.metrics.twosample import min_block_size

    alpha = 0.05  # the level api.evaluate tests at
    need = min_block_size(alpha)
    for flag, values in (("--block-size", [args.block_size]), ("--balanced", args.balanced or [])):
        for m in values:
            if m < need:
                raise ConfigError(f"{flag} {m}: a {m} vs {m} two-sample test can never reject at the {alpha:.0%} "
                                  f"level (its power would read 0 %); use blocks of at least {need} items")
    if args.repeats < 1:
        raise ConfigError(f"--repeats must be a positive integer, got {args.repeats}")
    if 1.0 / (1.0 + args.permutations) > alpha:
        raise ConfigError(f"--permutations {args.permutations} can never reach the {alpha:.0%} level: use at least "
                          f"{math.ceil(1.0 / alpha - 1.0)}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be an integer >= 0, got {args.seed}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from engine import api

    _check_evaluate_options(args)
    check_outputs({"--json": args.json}, {"--samples": args.samples, "--data": path_input(args.data)})
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
        real = report.get("real_clips")
        if real:
            print(f"{real['num']} real training clips against the same held-out clips (what real motion scores "
                  f"here): trajectory {real['power_trajectory']['power']:.1f} %, velocity "
                  f"{real['power_velocity']['power']:.1f} %, jerk {real['jerk']:.4g}")
        _write_json(args.json, report)
        return 0
    for key, res in report["power"].items():
        if isinstance(res, dict) and "power" in res:
            print(f"power {key} vs {key}: {res['power']:.1f} % ± {res['std']:.1f} "
                  f"({res['n_blocks']} blocks x {res['repeats']} repeats)")
        else:
            print(f"power {key} vs {key}: {res}")  # "skipped: why"
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
    from engine.io import CSV_SUFFIXES

    csv = args.format == "csv"
    check_outputs({"--out": args.out, "--json": args.json}, {"--samples": args.samples},
                  folder=None if csv else "--out", formats={"--out": (CSV_SUFFIXES, "a CSV file")} if csv else None)
    out = api.export(args.samples, args.format, args.out)
    print(f"wrote {out}")
    _write_json(args.json, {"out": str(out), "format": args.format, "samples": str(args.samples)})
    return 0


def cmd_regenerate(args: argparse.Namespace) -> int:
    """``hdm regenerate``: the file's samples drawn again, and how far they are from the file's."""
    import numpy as np

    from engine import api
    from engine.errors import ConfigError
    from engine.io import HDF5_SUFFIXES

    indices = None
    if args.indices is not None:
        try:
            indices = [int(v) for v in args.indices.split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"--indices must be positions separated by commas, got {args.indices!r}") from None
        twice = sorted({i for i in indices if indices.count(i) > 1})
        if twice:
            raise ConfigError(f"--indices lists {', '.join(map(str, twice))} more than once; give each position once")
    inputs = {"--samples": args.samples, **(checkpoint_inputs(args.checkpoint) if args.checkpoint else {})}
    check_outputs({"--out": args.out, "--json": args.json}, inputs,
                  formats={"--out": (HDF5_SUFFIXES, "an HDF5 sample file")} if args.out else None)
    sf = api._read_sample_file(args.samples, "regenerating")  # a restoration file is named as one
    sampling = sf.config.get("sampling", {}) if isinstance(sf.config, dict) else {}
    batch = int(sampling.get("batch_size") or sf.num_samples)
    drawn = len({i // batch for i in (range(sf.num_samples) if indices is None else indices)})  # whole batches
    bars: list[Any] = []  # drawn at the first step: a bad checkpoint's error line stands alone

    def step(info: Any) -> None:
        if not bars:
            bars.append(progress_bar(int(sampling.get("steps", 0)) * drawn, "regenerate", args.quiet))
        bars[0].update(1)

    result, model, wanted = api.regenerate(sf, indices=indices, checkpoint=args.checkpoint,
                                           device=args.device, callback=step)
    _close_bars()
    old = sf.samples[wanted].astype(np.float64)
    diff = np.abs(result.samples.astype(np.float64) - old)
    scale = float(np.abs(old).max()) or 1.0
    report = {"samples": str(args.samples), "indices": wanted.tolist() if indices is not None else "all",
              "num": int(wanted.size), "identical": bool((diff == 0).all()),
              "max_abs_difference": float(diff.max()), "max_relative_difference": float(diff.max()) / scale,
              "checkpoint": model.source, "checkpoint_sha256": model.sha256, "device": args.device,
              "file_device": sampling.get("device")}
    verdict = "identical to the file's" if report["identical"] else \
        f"max |difference| {report['max_abs_difference']:.3g} ({report['max_relative_difference']:.2g} of the " \
        "largest value)"
    print(f"regenerated {wanted.size} of {sf.num_samples} samples of {args.samples}: {verdict}")
    if not report["identical"] and sampling.get("device") and sampling["device"] != str(model.device):
        print(f"note: the file was drawn on {sampling['device']}, these on {model.device}: devices round differently",
              file=sys.stderr)
    if args.out:
        path = api.write_sample_file(args.out, result, model, extra={"regenerated_from": report})
        print(f"wrote {path}")
        report["out"] = str(path)
    _write_json(args.json, report)
    return 0 if report["identical"] else 1  # as cmp(1): a script can tell a reproduced file from one that is not


def cmd_list(args: argparse.Namespace) -> int:
    from engine import api
    from engine.data import list_function_datasets, list_image_datasets
    from engine.motion import list_motion_datasets
    from engine.samplers import SAMPLER_DESCRIPTIONS

    check_outputs({"--json": args.json}, {})  # before the listing: a bad --json is not reported after it
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


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows each option's default, unless it is None or a switch's False (the help says what happens
    then) or the help already states it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.default is None or action.default is False or action.default == argparse.SUPPRESS
                or action.required or "default" in text):
            return text
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """``hdm``'s parser (its subcommands' too): a usage error ends, like the commands' own errors, in one
    ``error:`` line on stderr and exit code 2 (argparse printed the usage block first); help shows defaults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> Any:
        text = " ".join(message.split())
        self.exit(2, f"error: {self.prog}: {text} (see `{self.prog} --help`)\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """``hdm``'s parser, every subcommand complete; with ``command`` (the subcommand about to run, ``""`` for
    none), ``restore`` and ``bench`` are listed but get their options only when named: theirs come from
    registries that import torch, which kept ``hdm --help`` and ``hdm list`` waiting about 2 s."""
    from engine import __version__
    from engine.config import ModelConfig

    m = ModelConfig()  # the architectures' defaults, which the model options left unset keep
    p = _Parser(prog="hdm", description="Hilbert diffusion models, headless.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                   help="print the version of hdm and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a model on a dataset or file")
    t.add_argument("--data", default="quadratic", help="embedded dataset name (see `hdm list`) or file path")
    t.add_argument("--out", required=True, help="run directory (model.safetensors, train_state.pt)")
    t.add_argument("--steps", type=int, default=2000, help="training steps (with --resume: the new total)")
    t.add_argument("--batch-size", type=int, default=100,
                   help="items per step (--distributed: the global batch, over all processes)")
    t.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 2e-3 for the FNO-1D, 5e-4 "
                                                          "for image networks)")
    t.add_argument("--seed", type=int, default=0, help="seed of the run (initial weights, batches, noise)")
    t.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    t.add_argument("--n-points", type=int, default=None, help="resample the data to this many points (default: "
                                                              "the data's own)")
    t.add_argument("--num-items", "--num-curves", dest="num_items", type=int, default=None,
                   help="use at most this many training items (default: all)")
    t.add_argument("--modality", default="auto", choices=["auto", "functions", "motions", "images"],
                   help="what the data are (auto: from the dataset name or file type)")
    t.add_argument("--image-size", type=int, default=None, help="images: resize and centre-crop to this size "
                                                                "(default: the images' own)")
    t.add_argument("--channels", type=int, default=None, help="images: 1 (grey) or 3 (RGB) (default: the images' own)")
    t.add_argument("--fps", type=float, default=None, help="motions: resample clips to this frame rate (default: the "
                                                           "dataset's)")
    t.add_argument("--frames", type=int, default=None, help="motions: frames per training clip (default: the "
                                                            "dataset's)")
    t.add_argument("--channel-scale", default="auto", choices=["auto", "own", "capped"],
                   help="functions and motions: scale each channel by its own std (own) or by at most the data's "
                        "RMS channel std (capped: a motion's root travel then gets no more noise in metres than a "
                        "joint; jerk 4x lower on walks and cmu07); auto: capped for motions, own for functions")
    t.add_argument("--data-seed", type=int, default=0, help="seed of synthetic datasets")
    t.add_argument("--kernel", default="squared_exponential",
                   help="functions and motions: the covariance kernel of the noise: squared_exponential (se, rbf), "
                        "matern12, matern32, matern52, periodic (needs --period) or white")
    t.add_argument("--length-scale", type=float, default=None,
                   help="the kernel's length scale (default: the dataset's recommendation; the periodic kernel's is "
                        "relative to --period)")
    t.add_argument("--gain", type=float, default=1.0, help="functions and motions: the kernel's gain (noise scale)")
    t.add_argument("--period", type=float, default=None, help="the periodic kernel's period, in the grid's units")
    t.add_argument("--sigma", type=float, default=1.0, help="images: Q = (sigma I - Laplacian)^-gamma")
    t.add_argument("--gamma", type=float, default=0.0, help="images: smoothness of the noise (0 = white)")
    t.add_argument("--equation", default="auto",
                   help="functions/motions: vp, subvp, ve; images: hdm_spde, vp (DDPM), ihdm (auto: vp / hdm_spde)")
    t.add_argument("--blur-min", type=float, default=0.5, help="ihdm: blur at t = 0 (pixels)")
    t.add_argument("--blur-max", type=float, default=20.0, help="ihdm: blur at t = T (pixels)")
    t.add_argument("--heat-noise", type=float, default=0.01, help="ihdm: the small noise level")
    t.add_argument("--schedule", default="cosine", help="cosine or linear")
    t.add_argument("--model", default="auto", help="fno1d, unet or fno2d (auto: fno1d; unet for images)")
    t.add_argument("--width", type=int, default=32, help="FNO channels / UNet base channels")
    t.add_argument("--modes", type=int, default=16, help="FNO Fourier modes (per axis for fno2d)")
    t.add_argument("--layers", type=int, default=4, help="FNO layers")
    t.add_argument("--padding", type=float, default=1.0,
                   help="FNO-1D: extend the Fourier period by this fraction of the domain (1: FNO's zero-padding, so "
                        "the two ends of a non-periodic curve do not wrap onto each other)")
    t.add_argument("--emb-dim", type=int, default=None, help=f"size of the time embedding (default: {m.emb_dim})")
    t.add_argument("--channel-mult", type=int, nargs="+", default=None,
                   help=f"UNet: channels per level (x width) (default: {' '.join(map(str, m.channel_mult))})")
    t.add_argument("--res-blocks", type=int, default=None,
                   help=f"UNet: residual blocks per level (default: {m.num_res_blocks})")
    t.add_argument("--attention", type=int, nargs="*", default=None,
                   help=f"UNet: levels with self-attention (default: {' '.join(map(str, m.attention_levels))}; none: "
                        "--attention alone)")
    t.add_argument("--checkpoint-every", type=int, default=500,
                   help="save the run every k steps (0: only at the end)")
    t.add_argument("--warmup", type=int, default=100, help="learning-rate warm-up steps (then cosine decay)")
    t.add_argument("--time-law", default="uniform", choices=["uniform", "mixed"],  # engine.config.TIME_LAWS
                   help="the training times: uniform in t, or mixed (half of each batch uniform in log t: more "
                        "training near t = 0, where the finest noise is removed; Quadratic's samples kept 2.2x "
                        "less non-parabolic residual)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out up to --steps (with its own "
                                                         "settings; --precision and --compile may change)")
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
                        "bf16: the network's forward under bf16 autocast (weights, loss and EMA stay fp32); "
                        "--resume keeps the run's unless given")
    t.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False,
                   help="torch.compile the network and loss (eager, with a warning, where compiling fails); "
                        "--resume keeps the run's unless given")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="sample curves, images or motions from a checkpoint into an HDF5 file")
    s.add_argument("--checkpoint", default="quadratic", help="bundled name, .safetensors file or run dir")
    s.add_argument("--num-samples", type=int, default=1000, help="how many samples to draw")
    s.add_argument("--steps", type=int, default=50, help="sampler steps")
    s.add_argument("--sampler", default=None,  # engine.samplers.default_sampler_for (not imported: torch)
                   help="see `hdm list`; default: the best measured at 50 steps, dpm2m_sde for curves and images, "
                        "exponential for motions")
    s.add_argument("--spacing", default=None,
                   help="the time grid: uniform (in t), logsnr (uniform in log SNR) or edm (Karras et al.'s rho = 7); "
                        "default: logsnr for ddim, ode_heun, dpm2m and dpm2m_sde, uniform for the others")
    s.add_argument("--grid-size", type=int, default=None, help="sample on a uniform grid of this size (default: the "
                                                               "training grid)")
    s.add_argument("--image-size", type=int, default=None, help="images: sample at this size (FNO-2D models)")
    s.add_argument("--prior", default=None, choices=["hdm", "white", "ihdm"],
                   help="images: the law x_T is drawn from (default: hdm; ihdm for the ihdm equation)")
    s.add_argument("--seed", type=int, default=0, help="sample k uses seed + k")
    s.add_argument("--batch-size", type=int, default=None,
                   help="items per batch (default: GPU 1000 curves or 256 images; CPU about 25,000 points or "
                        "pixels a batch, which keeps the activations in cache)")
    s.add_argument("--trajectory-every", type=int, default=0, help="keep every k-th reverse-time state (0: none)")
    s.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    s.add_argument("--out", required=True, help="the HDF5 sample file to write")
    s.add_argument("--distributed", action="store_true",
                   help="split the batches over the processes of `torchrun --nproc-per-node=N --no-python hdm "
                        "sample ...` (on by itself under torchrun); the samples are bit-identical to one process")
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("evaluate", help="compare samples with held-out data: two-sample power, MMD^2 and "
                                        "functional errors (curves), FD/KID (images), motion metrics")
    e.add_argument("--samples", required=True, help="the HDF5 sample file (from `hdm sample`)")
    e.add_argument("--data", required=True,
                   help="dataset name (its --split is used) or a file or folder (compared whole)")
    e.add_argument("--split", default="test", help="the dataset's split to compare with (a file or folder is "
                                                   "compared whole)")
    e.add_argument("--block-size", type=int, default=10,
                   help="curves and motions: items of each sample in the main two-sample test (at least 4)")
    e.add_argument("--repeats", type=int, default=30, help="curves: repeats of each power test")
    e.add_argument("--permutations", type=int, default=1000,
                   help="curves and motions: permutations per test (at least 19 for the 5%% level)")
    e.add_argument("--balanced", type=int, nargs="*", default=None,
                   help="curves: further block sizes (default: 100 500; none: --balanced alone)")
    e.add_argument("--seed", type=int, default=0, help="seed of the tests' random draws")
    e.set_defaults(func=cmd_evaluate)

    x = sub.add_parser("export", help="export a sample file")
    x.add_argument("--samples", required=True, help="the HDF5 sample file (from `hdm sample`)")
    x.add_argument("--format", default="csv", choices=["csv", "png", "bvh"],
                   help="csv: curves or motions (one file, one row per sample and channel); png: images, bvh: "
                        "motions (a folder, one file per sample)")
    x.add_argument("--out", required=True, help="csv: the file to write; png, bvh: the folder")
    x.set_defaults(func=cmd_export)

    g = sub.add_parser("regenerate", help="draw a sample file's samples again from what it records and compare "
                                          "them with the file's (reproducibility check)",
                       description="Draw a sample file's samples again from what it records and compare them with "
                                   "the file's. Exit code 0 when they are identical, 1 when they differ (another "
                                   "device rounds differently), 2 on an error.")
    g.add_argument("--samples", required=True, help="the HDF5 sample file (from `hdm sample` or the studio)")
    g.add_argument("--indices", default=None,
                   help="positions in the file to draw again, e.g. 0,5,17 (default: all; each one's batch is "
                        "drawn whole, as it was)")
    g.add_argument("--checkpoint", default=None,
                   help="where the file's checkpoint is now, if it moved (it must have the file's sha256)")
    g.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (the file's device reproduces it "
                                                   "bit for bit; another one rounds otherwise)")
    g.add_argument("--out", default=None, help="also write the samples drawn again to this HDF5 file")
    g.set_defaults(func=cmd_regenerate)

    r = sub.add_parser("restore", help="degrade dataset items and restore them (HDF5 + JSON summary)")
    if command in (None, "restore"):
        from engine.restoration.run import add_restore_arguments, run_restore_command

        add_restore_arguments(r)  # adds its own --json and --quiet
        r.set_defaults(func=run_restore_command)

    b = sub.add_parser("bench", help="training-step, sampling, quality-per-evaluation and memory figures (JSON)")
    if command in (None, "bench"):
        from engine.bench import add_bench_arguments, run_bench_command

        add_bench_arguments(b)  # adds its own --json and --quiet
        b.set_defaults(func=run_bench_command)

    ls = sub.add_parser("list", help="embedded datasets, bundled checkpoints and samplers")
    ls.set_defaults(func=cmd_list)

    for sp, summary in ((t, "the run's summary"), (s, "the sampling figures"), (e, "the report"),
                        (x, "the export's paths"), (ls, "the listing"), (g, "the comparison")):
        sp.add_argument("--quiet", action="store_true",
                        help="no progress bar" if sp in (t, s, g) else f"accepted as by every command; {sp.prog} shows "
                                                                    "no progress, so it changes nothing")
        sp.add_argument("--json", default=None, metavar="PATH", help=f"write {summary} to PATH as JSON")
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

        first = self.received is None
        self.received = signum
        if not first:  # a second signal (GNU timeout sends one to the command and one to its group) while an
            _exit_past_an_abandoned_eigh(128 + signum)  # abandoned eigendecomposition runs: leave now
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def main(argv: list[str] | None = None) -> int:
    from engine.device import configure_openmp, tune_cpu_allocator

    configure_openmp()  # first: OpenMP reads its spin count when torch loads it
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_command_of(argv)).parse_args(argv)
    args.typed = _typed_options(argv)  # what was asked for, not defaulted
    tune_cpu_allocator()  # process-wide: only entry points do it
    with _Interrupts() as interrupts:
        try:
            code = _run(args)
        except KeyboardInterrupt as exc:  # a second signal, landing after _run had handled the first
            code = 143 if isinstance(exc, Terminated) else 130
        _exit_past_an_abandoned_eigh(code)  # under the handlers above: a late signal cannot stop it half-way
    if interrupts.received is not None and code == 0:  # the signal was dropped in a finaliser; the work finished
        print("interrupted (after the command had finished its output)", file=sys.stderr)
        code = 128 + interrupts.received
    return code


def _exit_past_an_abandoned_eigh(code: int) -> None:
    """End the process now where an interrupted eigendecomposition still runs (engine.operators.covariance's
    ``_interruptible``): the BLAS library's exit handler would wait for it (a SIGTERM'd 16,000-point sample sat
    18 minutes after printing 'terminated'). Outputs were already cleaned up by the unwinding."""
    import os
    import threading

    from engine.operators.covariance import EIGH_THREAD

    if any(t.name == EIGH_THREAD and t.is_alive() for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _run(args: argparse.Namespace) -> int:
    """The command, with its errors turned into one line and an exit code."""
    try:
        return args.func(args)
    except HDMError as exc:
        _close_bars()  # first: the error line starts a line of its own
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:  # RuntimeError: only torch's out-of-memory ones (others re-raised)
        _close_bars()
        text = " ".join(str(exc).split())
        if isinstance(exc, RuntimeError) and not _out_of_memory(text):
            raise
        print(f"error: out of memory ({text[:200] or 'MemoryError'}): ask for fewer samples, points, pixels or a "
              "smaller --batch-size", file=sys.stderr)
        return 2
    except Cancelled as exc:
        _close_bars()
        print(f"cancelled: {exc}", file=sys.stderr)
        return 130
    except Terminated:
        _close_bars()
        print("terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        _close_bars()
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `hdm list | head`: the reader left; not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        _close_bars()


if __name__ == "__main__":
    sys.exit(main())
