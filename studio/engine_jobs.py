"""The engine's long operations as jobs for :class:`studio.jobs.JobRunner`.

Each factory returns a :class:`~studio.jobs.Job` whose function runs on the worker thread,
calls the engine (never Qt) and reports through the :class:`~studio.jobs.JobContext`.
Previews are small CPU numpy arrays built only when they will be shown.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.errors import Cancelled, DataError
from studio.jobs import Job, JobContext

TRAJECTORY_STATES = 50  # states kept for the scrubber
TRAJECTORY_BUDGET = 256 * 1024**2  # bytes; fewer states (or none) beyond this
PREVIEW_CURVES = 32
PREVIEW_IMAGES = 16  # images drawn live (a 4 x 4 grid)
PREVIEW_MOTIONS = 4  # stick figures drawn live
PREVIEWS = {"functions": PREVIEW_CURVES, "images": PREVIEW_IMAGES, "motions": PREVIEW_MOTIONS}
EXPORT_FORMATS = ("h5", "csv", "png", "bvh")


@dataclass
class TrainHandle:
    """Where a training job leaves its trainer, so a cancelled run can still be saved or sampled."""

    trainer: Any = None


@dataclass
class SampleOutcome:
    """What a sampling job returns: the model it used, the result, and the equation's T."""

    model: Any  # engine.pipeline.HDMModel
    result: Any  # engine.pipeline.SampleResult
    T: float
    base_seed: int


@dataclass
class SampleRefusal:
    """Why a sampling job refused to draw (set on the worker thread before it raises): ``reason`` is non-empty
    where the model it loaded is not the one the samples' file records (:func:`checkpoint_mismatch`)."""

    reason: str = ""


def checkpoint_mismatch(model: Any, expected: str | None, where: str = "") -> str:
    """Why ``model`` cannot redraw samples whose file records the checkpoint digest ``expected``: its sha256
    differs (another model now sits at the path or name the file names); "" where they agree or either is
    unknown (a file without a digest, a model trained in a session)."""
    found = str(getattr(model, "sha256", "") or "")
    if not expected or not found or found == expected:
        return ""
    source = where or str(getattr(model, "source", "") or "the checkpoint")
    return (f"the checkpoint {source} now holds another model than the one that drew these samples (its sha256 is "
            f"{found[:12]}…, the sample file records {expected[:12]}…): a different model sits at that path or "
            "name now, so a redrawn seed would not be the file's sample; open the checkpoint that made them")


def model_skeleton(model: Any) -> tuple[list[int], float] | None:
    """A motion model's (skeleton parents, fps) from its metadata; None for other models."""
    motion = model.extra_meta.get("motion") if isinstance(getattr(model, "extra_meta", None), dict) else None
    if not isinstance(motion, dict) or "skeleton" not in motion:
        return None
    return [int(p) for p in motion["skeleton"]["parents"]], float(motion.get("fps", 30.0))


def dataset_skeleton(dataset: Any) -> tuple[list[int], float] | None:
    """A :class:`~engine.motion.MotionDataset`'s (skeleton parents, fps); None for other datasets."""
    skeleton = getattr(dataset, "skeleton", None)
    return None if skeleton is None else ([int(p) for p in skeleton.parents], float(dataset.fps))


def load_dataset_job(spec: str, n_points: int | None = None, seed: int = 0, modality: str = "auto",
                     num: int | None = None) -> Job:
    """Load the training split of any modality's embedded dataset or file (``modality`` "auto": detected).

    Returns ``(dataset, modality)``.
    """

    def run(ctx: JobContext):
        from engine.config import DataConfig
        from engine.data.select import load_dataset

        return load_dataset(DataConfig(spec=spec, modality=modality, n_points=n_points, seed=seed, num=num), "train")

    return Job("load_data", run, f"load {Path(spec).name}")


def train_job(config, dataset, handle: TrainHandle, *, device: str = "cpu", preview_every: int = 0,
              preview_curves: int = 8) -> Job:
    """Train step by step (pausable between steps); previews carry the loss curve and, every
    ``preview_every`` steps, a few curves sampled from the EMA model.

    Losses are read back at the device's cadence (:func:`engine.training.default_readout_every`:
    every step on a CPU, every 10 on a GPU, so its host queues steps ahead instead of waiting
    for each); progress is reported at each read-out.
    """

    def run(ctx: JobContext):
        from engine.training import Trainer, default_readout_every

        trainer = Trainer(config, dataset=dataset, device=device)
        handle.trainer = trainer
        cfg = trainer.config
        modality = trainer.modality
        shape = " × ".join(str(v) for v in np.shape(dataset.values)[1:])
        ctx.log(f"training {cfg.model.name} (width {cfg.model.width}) on {dataset.name}: {len(dataset)} "
                f"{modality} of {shape}, {cfg.train.steps} steps, equation {cfg.equation.name}, device {device}")
        total = cfg.train.steps
        grid = None if modality == "images" else np.asarray(dataset.grid, dtype=np.float64)
        latest: dict[str, Any] = {"samples": None, "sample_step": 0, "modality": modality,
                                  "skeleton": dataset_skeleton(dataset)}
        shown = preview_curves if modality == "functions" else min(preview_curves, PREVIEWS[modality])

        def payload() -> dict[str, Any]:
            return {"losses": np.asarray(trainer.losses, dtype=np.float32), "grid": grid, **latest}

        readout_every = default_readout_every(trainer.device)
        while trainer.step_count < total:
            if ctx.should_stop():
                raise Cancelled(f"training cancelled at step {trainer.step_count}")
            trainer.step_async()
            step = trainer.step_count
            fresh = bool(preview_every) and (step % preview_every == 0 or step == total)
            if not (fresh or step % readout_every == 0 or step == total):
                continue
            trainer.flush()
            if fresh:
                model = trainer.model()
                with torch.inference_mode():
                    latest["samples"] = model.sample(shown, steps=20, sampler="ddim", seed=0).samples
                latest["sample_step"] = step
            ctx.report(step, total, payload, force=fresh)
        return trainer

    return Job("train", run, "train")


def _trajectory_every(steps: int, num: int, points: int, channels: int) -> int:
    every = max(1, math.ceil(steps / TRAJECTORY_STATES))
    while every <= steps:
        states = math.ceil(steps / every) + 1
        if states * num * points * channels * 4 <= TRAJECTORY_BUDGET:
            return every
        every *= 2
    return 0


def sample_job(get_model: Callable[[], Any], *, sampler: str, steps: int, num: int, seed: int,
               grid_size: int | None = None, device: str = "cpu", batch_size: int | None = None,
               prior: str | None = None, preview: str = "state", spacing: str | None = None,
               grid: Any = None, image_size: Any = None, expect_sha256: str | None = None,
               refusal: SampleRefusal | None = None) -> Job:
    """Sample ``num`` curves, images or motions (seeds ``seed + k``) with live previews of the first batch.

    Args:
        grid_size: functions and motions: a uniform grid of this many points (None: the training grid).
        prior: images: ``hdm``, ``white`` or ``ihdm`` (None: the model's default); others: None.
        preview: what the live view shows: ``state`` (x_t) or ``x0`` (the sampler's estimate of x_0).
        spacing: the sampler's time grid (``HDMModel.sample``'s; None: the sampler's default).
        grid: functions and motions: these points exactly (a sample file's grid), instead of ``grid_size``.
        image_size: images: (H, W) to sample at (None: the training size).
        expect_sha256: refuse (``DataError``, with ``refusal.reason`` set) a model whose sha256 is another:
            redrawing a sample file's seed with another model than the file's gives another sample.
    """
    if preview not in ("state", "x0"):
        raise DataError(f"unknown preview {preview!r}; choose state or x0")

    def run(ctx: JobContext) -> SampleOutcome:
        from engine.pipeline import uniform_grid

        model = get_model().to(device)
        reason = checkpoint_mismatch(model, expect_sha256)
        if reason:
            if refusal is not None:
                refusal.reason = reason
            raise DataError(f"not redrawn: {reason}")
        modality = model.modality
        images = modality == "images"
        at: Any = None
        if images:
            at = None if image_size is None else tuple(int(v) for v in image_size)
            T = float(model.equation_on().T)
            g = model.geometry
            h, w = at if at is not None else (g.height, g.width)
            size = g.channels * h * w
            where = f"{h}×{w} pixels, prior {prior or model.default_prior()}"
        else:
            if grid is not None:  # a sample file's points, the uniform grid of that size included
                at = np.asarray(grid, dtype=np.float64)
            else:
                at = model.training_grid if grid_size is None else uniform_grid(model.geometry, grid_size)
            T = float(model.equation_on(at).T)
            size = at.size * model.geometry.channels
            where = f"{at.size} points"
        every = _trajectory_every(steps, num, size, 1)
        # the model's choice for its device
        batch = batch_size or min(num, model.default_batch_size(None if images else at, at if images else None))
        n_batches = math.ceil(num / batch)
        shown = PREVIEWS[modality]
        skeleton = model_skeleton(model)
        count = 0

        def on_step(info) -> None:
            nonlocal count
            count += 1
            first_batch = count <= info.total

            def make_preview() -> dict[str, Any]:
                src = info.x0 if preview == "x0" and info.x0 is not None else info.x
                x = src[:shown].detach().float().cpu().numpy()
                return {"x": model.normalizer.denormalize(x), "t": info.t, "step": info.step,
                        "total": info.total, "grid": None if images else at, "T": T, "modality": modality,
                        "skeleton": skeleton,
                        "what": "x0" if src is info.x0 else "state"}

            ctx.report(count, info.total * n_batches, make_preview if first_batch else None)

        ctx.log(f"sampling {num} {modality} on {where}: {sampler}, {steps} steps"
                f"{'' if spacing is None else f' ({spacing} spacing)'}, seeds {seed}…{seed + num - 1}, device {device}")
        kw: dict[str, Any] = {"prior": prior, "size": at} if images else {"grid": at}
        with torch.inference_mode():
            result = model.sample(num, steps=steps, sampler=sampler, seed=seed, batch_size=batch, spacing=spacing,
                                  callback=on_step, should_stop=ctx.should_stop, trajectory_every=every, **kw)
        return SampleOutcome(model, result, T, seed)

    return Job("sample", run, "sample")


def load_model_job(spec: str, device: str = "cpu") -> Job:
    def run(ctx: JobContext):
        from engine import api

        return api.load_model(spec, device=device)

    return Job("load_model", run, f"load {Path(spec).name}")


def check_model_job(spec: str, device: str = "cpu") -> Job:
    """Load the checkpoint a sample file names (as :func:`load_model_job`), for the window to compare its sha256
    with the file's before "Sample this seed" redraws with it."""
    job = load_model_job(spec, device)
    return Job("check_model", job.fn, f"check {Path(spec).name}")


def save_checkpoint_job(trainer, out_dir: str | Path) -> Job:
    def run(ctx: JobContext) -> Path:
        return trainer.save(out_dir)

    return Job("save_checkpoint", run, "save checkpoint")


def export_job(path: str | Path, fmt: str, *, result=None, model=None, source: str | Path | None = None,
               include_trajectory: bool = True, extra: dict[str, Any] | None = None) -> Job:
    """Export samples as HDF5 (the engine's schema), or CSV (curves), PNG (images) or BVH (motions) via an
    HDF5 file and ``engine.api.export`` (PNG and BVH: a folder, one file per sample).

    Either ``result`` and ``model`` (fresh samples) or ``source`` (an HDF5 file opened earlier).
    """
    from engine.io import check_not_input

    path = Path(path)
    if fmt not in EXPORT_FORMATS:
        raise DataError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    if source is not None and result is None:
        check_not_input(path, source)  # refused at once, in one line: the export would destroy its input

    def write_h5(target: Path) -> Path:
        from engine import api
        from engine.io import atomic_path

        if result is not None and model is not None:
            res = result if include_trajectory else replace(result, trajectory=None, trajectory_times=None)
            return Path(api.write_sample_file(target, res, model, extra=extra))
        if source is not None:
            check_not_input(target, source)
            with atomic_path(target) as tmp:
                if include_trajectory:
                    shutil.copyfile(source, tmp)
                else:
                    copy_sample_file(source, tmp, skip=TRAJECTORY_DATASETS)
            return target
        raise DataError("nothing to export: sample first or open a sample file")

    def run(ctx: JobContext) -> Path:
        from engine import api

        if fmt == "h5":
            return write_h5(path)
        if source is not None and result is None:
            return Path(api.export(source, fmt, path))
        with tempfile.TemporaryDirectory(prefix="hdm-export-") as tmp:
            h5 = write_h5(Path(tmp) / "samples.h5")
            if fmt == "bvh":  # its provenance.json names no sample file: these samples are in none
                from engine.io import read_samples
                from engine.io.export import export_bvh

                return Path(export_bvh(read_samples(h5), path, source={"path": None, "sha256": None,
                                                                       "unsaved": True}))
            return Path(api.export(h5, fmt, path))

    return Job("export", run, f"export {path.name}")


TRAJECTORY_DATASETS = ("trajectory", "trajectory_times")


def copy_sample_file(source: str | Path, target: str | Path, *, skip: tuple[str, ...] = ()) -> Path:
    """Copy the HDF5 file ``source`` to ``target`` without the root datasets named in ``skip``.

    Every root attribute (the schema, config, checkpoint digest, versions, creation time: the provenance)
    and every other dataset (with its compression, chunks and attributes) is kept as it is.
    """
    import h5py

    with h5py.File(source, "r") as src, h5py.File(target, "w", libver=("v110", "v110")) as dst:
        for key in src.attrs:
            dst.attrs.create(key, src.attrs[key], dtype=src.attrs.get_id(key).dtype)
        for name in src:
            if name not in skip:
                src.copy(src[name], dst, name=name)
    return Path(target)


SAMPLE_FILE_ATTRS = (b"schema", b"checkpoint_sha256")  # root attribute names of a sample file, near its start
SNIFF_BYTES = 64 * 1024


@dataclass
class OpenedFile:
    """What :func:`open_hdf5_job` took its file for, set on the worker thread before the file is read:
    ``"samples"`` (a sample file, a damaged one included), ``"data"`` (curves to import), ``""`` (not yet known).

    It tells the studio, when the job fails, whether the user was opening samples or importing data.
    """

    kind: str = ""


def hdf5_kind(path: str | Path) -> str:
    """``"samples"`` for a sample file (the ``schema`` attribute), ``"data"`` for anything else.

    A sample file that HDF5 cannot open (truncated, damaged) is still recognised by its root attribute
    names, which sit in the file's first few KiB.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "samples" if "schema" in f.attrs else "data"
    except OSError:
        pass
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError:
        return "data"  # the data loader explains what is wrong with the file
    return "samples" if b"HDF\r\n\x1a\n" in head and all(n in head for n in SAMPLE_FILE_ATTRS) else "data"


def open_hdf5_job(path: str | Path, n_points: int | None = None, opened: OpenedFile | None = None) -> Job:
    """An ``.h5`` file is either a sample file (it has the ``schema`` attribute) or curves to import.

    Returns ``("samples", SampleFile)`` or ``("data", FunctionDataset)``; ``opened.kind`` says which it is
    taken for, also when reading it fails.
    """
    found = opened if opened is not None else OpenedFile()

    def run(ctx: JobContext) -> tuple[str, Any]:
        from engine.data import load_function_dataset
        from engine.io import read_samples

        found.kind = hdf5_kind(path)
        if found.kind == "samples":
            return "samples", read_samples(path)
        return "data", load_function_dataset(str(path), "train", n_points=n_points)

    return Job("open_hdf5", run, f"open {Path(path).name}")


def evaluate_job(data_spec: str, *, result=None, model=None, source: str | Path | None = None) -> Job:
    """Compare samples with the held-out split of ``data_spec`` (two-sample power, functional errors).

    Either fresh ``result`` and ``model`` or ``source``. The report's ``samples`` names the user's file
    (``source``); fresh samples are in no file (:func:`engine.api.evaluate` of a SampleResult).
    """

    def run(ctx: JobContext) -> dict[str, Any]:
        from engine import api

        if source is not None and result is None:
            return api.evaluate(source, data_spec, permutations=500, should_stop=ctx.should_stop)
        if result is None or model is None:
            raise DataError("nothing to evaluate: sample first or open a sample file")
        return api.evaluate(result, data_spec, model=model, permutations=500, should_stop=ctx.should_stop)

    return Job("evaluate", run, f"evaluate against {data_spec}")


def summarize_evaluation(report: dict[str, Any]) -> str:
    """One line of the evaluation report: curves: power at each block size, then the functional errors;
    images: classifier-feature FD and KID, sliced Wasserstein, classes covered; motions: trajectory and
    velocity power, then jerk, foot skating and bone-length error beside the held-out motions'."""
    data = report.get("data", {})
    which = "" if data.get("split") == "all" else f" {data.get('split')} split"
    trained = "" if data.get("held_out", True) else ", the model's training data, not held out"
    spec = str(data.get("spec"))
    name = Path(spec).name if "/" in spec or "\\" in spec else spec  # a file: its name, not its whole path
    head = f"vs {name}{which} ({data.get('num')} items{trained}): "
    if "fd" in report:
        return head + (f"FD {report['fd']:.4g}, KID {report['kid']:.4g} ± {report.get('kid_std', 0.0):.2g}, "
                       f"SW1 {report['sw1']:.3g}, classes covered {report.get('classes_covered')}, "
                       f"nearest-neighbour ratio {report.get('nn_ratio', float('nan')):.3g} (lower FD/KID = closer)")
    if "power_trajectory" in report:  # motions
        parts = [f"power {key} ({res['block_size']} vs {res['block_size']}): {res['power']:.1f} % ± {res['std']:.1f}"
                 for key, res in (("trajectory", report["power_trajectory"]), ("velocity", report["power_velocity"]))
                 if isinstance(res, dict) and "power" in res]
        gen, ref = report.get("generated", {}), report.get("reference", {})
        parts += [f"{label} {gen[key]:.3g} (held-out {ref[key]:.3g})"
                  for key, label in (("jerk", "jerk"), ("foot_skating", "foot skating m/s"),
                                     ("bone_length_error", "bone-length error")) if key in gen and key in ref]
        real = report.get("real_clips")
        if real:
            parts.append(f"real training clips score {real['power_trajectory']['power']:.1f} % / "
                         f"{real['power_velocity']['power']:.1f} %")
        return head + "; ".join(parts) + " (power near 5 % = indistinguishable)"
    if "power" not in report:
        scalars = [f"{k} {v:.4g}" for k, v in report.items() if isinstance(v, float)][:8]
        return head + "; ".join(scalars)
    parts = []
    for size, entry in report.get("power", {}).items():
        if isinstance(entry, dict):
            parts.append(f"power {size} vs {size}: {entry['power']:.1f} % ± {entry['std']:.1f}")
    mmd = report.get("mmd2")
    if mmd:
        floor = mmd.get("floor")
        verdict = ", within its spread" if mmd.get("at_floor") else ", above it"
        parts.append(f"MMD² {mmd['value']:.2g}" + (f" (a perfect generator: {floor['mean']:.2g} ± {floor['std']:.1g}"
                                                    f"{verdict})" if floor else ""))
    f = report.get("functional", {})
    if f:
        parts.append(f"mean error {f['mean_error']:.3g}, variance error {f['variance_error']:.3g}")
    return head + "; ".join(parts) + " (power near 5 % = indistinguishable)"
