"""The Python API: what the CLI and the studio both call.

>>> from engine import api
>>> model = api.load_model("quadratic")
>>> result = model.sample(100, steps=50, seed=0)  # dpm2m_sde, the default sampler
>>> api.write_sample_file("samples.h5", result, model)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from engine.config import RunConfig
from engine.data.select import names_a_path, refuse_in_memory
from engine.errors import Cancelled, CheckpointError, ConfigError, DataError, HDMError
from engine.paths import CHECKPOINTS_DIR
from engine.pipeline import HDMModel, SampleResult
from engine.training import EXECUTION, MODEL_FILE, STATE_FILE, Trainer, TrainProgress, run_files


def list_checkpoints() -> dict[str, Path]:
    """Bundled checkpoints by name (``assets/checkpoints/NAME.safetensors``)."""
    if not CHECKPOINTS_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(CHECKPOINTS_DIR.glob("*.safetensors"))}


def resolve_checkpoint(spec: str | Path) -> Path:
    """A bundled checkpoint's name, a ``.safetensors`` file, or a run directory holding one."""
    if not isinstance(spec, str | os.PathLike) or not str(spec).strip():
        raise ConfigError(f"a checkpoint is a bundled name, a .safetensors file or a run directory, got {spec!r}")
    bundled = list_checkpoints()
    if isinstance(spec, str) and spec in bundled:
        return bundled[spec]
    path = Path(spec)
    if path.is_dir():
        if (path / MODEL_FILE).is_file():
            return path / MODEL_FILE
        raise CheckpointError(f"{path}: directory holds no {MODEL_FILE}; train into it first")
    if not path.exists():
        names = ", ".join(bundled) or "none"
        raise CheckpointError(f"{spec}: no such checkpoint file or bundled name (bundled: {names})")
    if path.name == STATE_FILE:
        raise CheckpointError(f"{path}: is a run's training state (what resuming continues from), not a model; give "
                              f"the run directory {path.parent} or its {MODEL_FILE}")
    return path


def load_model(spec: str | Path, device: str = "cpu", *, modality: str | None = None) -> HDMModel:
    """Load a checkpoint (bundled name or path) for sampling; ``modality`` insists on one."""
    from engine.device import resolve_device
    from engine.io import load_model as load_weights

    path = resolve_checkpoint(spec)
    loaded = load_weights(path)
    found = loaded.meta.get("modality", "functions")
    if modality is not None and found != modality:
        raise CheckpointError(f"{path}: is a checkpoint of {found}, not of {modality}")
    model = HDMModel.from_parts(loaded.state_dict, loaded.config, loaded.meta, sha256=loaded.sha256,
                                source=str(Path(path).expanduser().resolve()))  # any folder finds it
    return model.to(resolve_device(device))


def train(config: RunConfig, out_dir: str | Path, *, device: str = "cpu", resume: bool = False,
          callback: Callable[[TrainProgress], None] | None = None,
          should_stop: Callable[[], bool] | None = None, readout_every: int | None = None,
          dataset: Any = None) -> Trainer:
    """Train (or resume) a model into ``out_dir``; returns the trainer (its ``model()`` samples).

    ``dataset``: data of your own instead of ``config.data`` (a FunctionDataset, ImageDataset or MotionDataset,
    or curves as an array [N, n] or [N, C, n] on the grid 0..n-1: :func:`engine.data.loaders.array_dataset`
    gives them another grid and a name). The run records them as ``in-memory:NAME`` with their SHA-256;
    resuming it needs the same data again.

    Resuming takes ``steps`` and how the steps run (``precision``, ``compile``, ``cuda_graphs``)
    from ``config`` and the rest from the run; another value than the default and the run's for any other
    setting is refused (it would be ignored), as are fewer ``steps`` than already trained and other data.
    ``readout_every``: see :meth:`Trainer.run`. Stopped by ``should_stop``, the run is saved at that step
    and :class:`~engine.errors.Cancelled` carries the trainer as ``partial`` (its ``model()`` samples).

    Raises ConfigError, before any work, when ``out_dir`` already holds a run and ``resume`` is False
    (a new run would replace it, as ``hdm train`` refuses too).
    """
    out = Path(out_dir)
    if not resume and (existing := run_files(out.expanduser())):
        raise ConfigError(f"{out} already holds a run ({', '.join(existing)}), which training would replace: "
                          "resume=True continues it; for a new run choose another out_dir (or delete that folder)")
    if dataset is not None:
        from engine.data import FunctionDataset, ImageDataset
        from engine.data.loaders import array_dataset

        if not isinstance(dataset, FunctionDataset | ImageDataset):  # (a MotionDataset is a FunctionDataset)
            dataset = array_dataset(dataset)
    if resume:
        trainer = Trainer.resume(out, steps=config.train.steps, device=device, dataset=dataset,
                                 execution={k: getattr(config.train, k) for k in EXECUTION}, requested=config)
    else:
        trainer = Trainer(config, dataset=dataset, device=device)
    trainer.run(callback=callback, should_stop=should_stop, out_dir=out, readout_every=readout_every)
    return trainer


def write_sample_file(path: str | Path, result: SampleResult, model: HDMModel,
                      extra: dict[str, Any] | None = None) -> Path:
    """Write samples to the HDF5 schema with full provenance (see :mod:`engine.io.samples`)."""
    from engine.io import write_samples

    meta = dict(model.extra_meta)
    motion = meta.get("motion")
    if result.modality == "motions" and isinstance(motion, dict) and result.grid is not None and result.grid.size > 1:
        # the frame rate of these samples' grid (another --grid-size than the training one has another)
        fps = float(1.0 / np.mean(np.diff(np.asarray(result.grid, dtype=np.float64))))
        if not np.isclose(fps, float(motion.get("fps", 0.0)), rtol=1e-6, atol=0.0):
            meta["motion"] = {**motion, "fps": fps}
    # the checkpoint file holding the model (None for one no file holds, e.g. a trainer's model between saves)
    config = {"run": model.config.to_dict(), "sampling": result.settings, "checkpoint": model.source or None,
              **meta, **(extra or {})}
    return write_samples(path, result.samples, seeds=result.seeds, config=config, modality=result.modality,
                         grid=result.grid, trajectory=result.trajectory,
                         trajectory_times=result.trajectory_times, checkpoint_sha256=model.sha256)


def regenerate(samples_path: Any, *, indices: Any = None, checkpoint: str | Path | None = None,
               device: str = "cpu", callback: Callable[[Any], None] | None = None,
               should_stop: Callable[[], bool] | None = None) -> tuple[SampleResult, HDMModel, np.ndarray]:
    """Draw the samples of a sample file again from what it records; returns ``(result, model, indices)``.

    The model is the file's checkpoint (its ``config["checkpoint"]``, or ``checkpoint`` where it moved) and
    must have the file's ``checkpoint_sha256``; sampler, steps, spacing, the grid (functions, motions) or
    image size and prior (images), seeds and batch size are the file's. Every batch holding one of
    ``indices`` (positions in the file; default all) is drawn whole, as it was, so the samples come out bit
    for bit on the device that drew them (another device rounds otherwise). ``result.samples[i]`` is the
    file's sample ``indices[i]``. ``samples_path`` may also be the file already read
    (:class:`engine.io.SampleFile`).

    Raises CheckpointError where the file names no checkpoint or another model sits at its path, and DataError
    where it records no seeds.
    """
    from engine.io import SampleFile

    sf = samples_path if isinstance(samples_path, SampleFile) else _read_sample_file(samples_path, "regenerating")
    config = sf.config if isinstance(sf.config, dict) else {}
    sampling = config.get("sampling") if isinstance(config.get("sampling"), dict) else {}
    spec = checkpoint if checkpoint is not None else config.get("checkpoint")
    if not spec:
        raise CheckpointError(f"{sf.path}: names no checkpoint (its samples came from a model no file held); give "
                              "the checkpoint that drew them")
    if not sf.seeds_recorded:
        raise DataError(f"{sf.path}: records no seeds, so its samples cannot be drawn again; regenerate a file "
                        "`hdm sample` or the studio wrote (it records each sample's seed)")
    if checkpoint is None and spec not in list_checkpoints() and not Path(str(spec)).exists():
        raise CheckpointError(f"{sf.path}: its checkpoint {spec} is not there any more; if it moved, give its new "
                              "place (hdm regenerate --checkpoint PATH, checkpoint= in Python)")
    model = load_model(spec, device=device, modality=sf.modality)
    if sf.checkpoint_sha256 and model.sha256 != sf.checkpoint_sha256:
        raise CheckpointError(f"{spec}: holds another model than the one that drew {sf.path} (sha256 "
                              f"{model.sha256[:12]}... against the file's {sf.checkpoint_sha256[:12]}...); give the "
                              "checkpoint that drew them")
    num = sf.num_samples
    wanted = np.arange(num) if indices is None else np.asarray(indices)
    if wanted.ndim != 1 or wanted.size == 0 or wanted.dtype.kind not in "iu" or wanted.min() < 0 \
            or wanted.max() >= num:
        raise ConfigError(f"indices must be positions 0..{num - 1} in {sf.path}, got {indices!r}")
    batch = int(sampling.get("batch_size") or num)
    batches = np.unique(wanted // batch)  # drawn whole and in order: the last, partial one can only come last
    positions = np.concatenate([np.arange(b * batch, min(num, (b + 1) * batch)) for b in batches])
    images = sf.modality == "images"
    size = sampling.get("image_size")
    result = model.sample(positions.size, steps=int(sampling.get("steps", 50)),
                          sampler=str(sampling.get("sampler", "dpm2m_sde")), spacing=sampling.get("spacing"),
                          grid=None if images else sf.grid, size=tuple(size) if images and size else None,
                          prior=sampling.get("prior") if images else None, seeds=sf.seeds[positions].tolist(),
                          batch_size=batch, callback=callback, should_stop=should_stop)
    pick = np.searchsorted(positions, wanted)
    return dataclasses.replace(result, samples=result.samples[pick], seeds=result.seeds[pick]), model, wanted


def reference_data(spec: str, grid: np.ndarray, *, split: str = "test", seed: int = 0, num: int | None = None):
    """The held-out curves of a dataset (or all curves of a file) on the samples' grid (for evaluation).

    ``num``: generated sets draw this many curves; real sets and files keep ``num`` drawn at random with
    ``seed``, never the first ``num``: held-out files are often sorted (MelbournePedestrian's test file by
    sensor). ``split="train"`` with another ``seed`` gives a second sample of a generated set's law.
    """
    from engine.data import load_function_dataset

    refuse_in_memory(spec)
    n = int(np.asarray(grid).size)
    if names_a_path(spec):  # a file is a held-out set in itself: all its rows
        split = "train"
    data = load_function_dataset(spec, split, seed=seed, num=num)
    if data.values.shape[-1] != n or not np.allclose(data.grid, grid):
        data = load_function_dataset(spec, split, n_points=n, seed=seed, num=num)
    if not np.allclose(data.grid, grid, rtol=1e-6, atol=1e-9):
        raise DataError(f"{spec}: the samples' grid ({n} points over [{grid[0]:g}, {grid[-1]:g}]) does not match "
                        f"the data's grid over [{data.grid[0]:g}, {data.grid[-1]:g}]")
    return data


def image_classifier(data_spec: str, *, seed: int = 0):
    """The feature classifier for image metrics on ``data_spec``: ``assets/classifiers/NAME.safetensors`` when
    bundled, else trained here on the dataset's training split (deterministic: seed 0, one thread, the default
    recipe of :mod:`engine.metrics.classifier`). Returns ``(classifier, source)``."""
    import torch

    from engine.data import load_image_dataset
    from engine.metrics.classifier import load_classifier, train_classifier
    from engine.paths import ASSETS_DIR

    name = Path(str(data_spec)).stem.lower()
    bundled = ASSETS_DIR / "classifiers" / f"{name}.safetensors"
    if bundled.is_file():
        return load_classifier(bundled), str(bundled)
    train = load_image_dataset(data_spec, "train")
    if train.labels is None:
        raise DataError(f"{data_spec}: image metrics need a classifier, and these images have no labels to train "
                        "one; evaluate against a labelled dataset (mnist, glyphs)")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_classifier(train.values, train.labels, seed=seed), f"trained on {train.source}"
    finally:
        torch.set_num_threads(threads)


def evaluate(samples_path: str | Path | SampleResult, data_spec: str, *, block_size: int = 10, repeats: int = 30,
             permutations: int = 1000, balanced_sizes: tuple[int, ...] = (100, 500), seed: int = 0,
             split: str = "test", should_stop: Callable[[], bool] | None = None,
             model: HDMModel | None = None) -> dict[str, Any]:
    """Compare a sample file with held-out data: two-sample power and functional errors for curves;
    classifier-feature Frechet distance and KID, sliced Wasserstein, spectrum error and memorisation
    for images; for motions trajectory and velocity power, jerk, foot skating and bone-length error, and
    (``real_clips``, against a test split) the same figures of as many real training clips against the same
    held-out clips: what real motion scores there (about 5 % where the splits share one law; more where
    the held-out clips are other trials or people). ``should_stop``: a cancel token, asked between the
    tests' repeats (curves and motions) and between the stages (raises :class:`~engine.errors.Cancelled`).

    ``samples_path`` may also be a :class:`SampleResult` fresh from :meth:`HDMModel.sample`, with the ``model``
    that drew it (its run config and checkpoint are the samples' provenance; the held-out check needs them):
    it is evaluated as its sample file would be, and the report's ``samples`` says it is in no file
    (``path`` and ``sha256`` None, ``unsaved``, with its count, seed range and sampling settings).

    The report records what its numbers depend on: ``settings`` (the arguments that apply to the samples'
    modality: ``seed`` and ``split`` always; curves also ``block_size``, ``repeats``, ``permutations``,
    ``balanced_sizes``; motions ``block_size`` and ``permutations``), ``samples`` (``path``, resolved, and
    ``sha256`` of the sample file), ``checkpoint_sha256``, ``data`` (with the split actually used and, for a
    data file, its ``sha256``), the software ``versions`` and ``created`` (ISO-8601 UTC)."""
    from datetime import UTC, datetime

    from engine.io import file_sha256
    from engine.io.samples import software_versions
    from engine.metrics import evaluate_function_samples

    if isinstance(samples_path, SampleResult):
        return _evaluate_result(samples_path, model, data_spec, block_size=block_size, repeats=repeats,
                                permutations=permutations, balanced_sizes=balanced_sizes, seed=seed, split=split,
                                should_stop=should_stop)
    sf = _read_sample_file(samples_path, "hdm evaluate")
    _check_data_modality(samples_path, "images" if sf.modality == "images" else
                         "motions" if sf.modality == "motions" else "functions", data_spec)

    def check() -> None:
        if should_stop is not None and should_stop():
            raise Cancelled("evaluation cancelled")

    if sf.modality == "images":
        report = _evaluate_images(sf, data_spec, split=split, seed=seed)
    elif sf.modality == "motions":
        report = _evaluate_motions(sf, data_spec, split=split, seed=seed, block_size=block_size,
                                   permutations=permutations, should_stop=should_stop)
    else:
        if sf.samples.ndim != 3 or sf.grid is None:
            raise DataError(f"{samples_path}: holds {sf.modality} samples, not curves on a grid")
        data = reference_data(data_spec, sf.grid, split=split)
        report = evaluate_function_samples(sf.samples, data.values, block_size=block_size, repeats=repeats,
                                           permutations=permutations, seed=seed, balanced_sizes=balanced_sizes,
                                           should_stop=should_stop)
        report["data"] = {"spec": data_spec, "split": split, "source": data.source, "num": len(data)}
        check()
        report["mmd2"] = _mmd2_with_floor(sf.samples, data.values, data_spec, sf.grid, split=split, seed=seed)
    check()
    if names_a_path(data_spec):
        report["data"]["split"] = "all"  # a file or folder is compared whole
    report["data"]["held_out"] = _held_out(sf, data_spec, report["data"]["split"])
    data_path = Path(str(data_spec)).expanduser()
    if names_a_path(data_spec) and data_path.is_file():  # a data file: which contents (a folder: its source says)
        report["data"]["sha256"] = file_sha256(data_path)
    where = Path(samples_path).expanduser()
    report["samples"] = {"path": str(where.resolve()), "sha256": file_sha256(where)}
    report["checkpoint_sha256"] = sf.checkpoint_sha256
    settings: dict[str, Any] = {"seed": seed, "split": split}
    if sf.modality == "motions":
        settings.update(block_size=block_size, permutations=permutations)
    elif sf.modality != "images":
        settings.update(block_size=block_size, repeats=repeats, permutations=permutations,
                        balanced_sizes=[int(m) for m in balanced_sizes])
    report["settings"] = settings
    report["versions"] = software_versions()
    report["created"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return report


def _evaluate_result(result: SampleResult, model: HDMModel | None, data_spec: str, **options: Any) -> dict[str, Any]:
    """:func:`evaluate` of samples in no file: written (without their trajectory) to a temporary sample file,
    which the report does not name."""
    import tempfile

    if model is None:
        raise ConfigError("evaluating a SampleResult needs the model that drew it (model=...): its run config and "
                          "checkpoint are the samples' provenance")
    with tempfile.TemporaryDirectory(prefix="hdm-eval-") as tmp:
        path = Path(tmp) / "samples.h5"
        write_sample_file(path, dataclasses.replace(result, trajectory=None, trajectory_times=None), model)
        report = evaluate(path, data_spec, **options)
    seeds = np.asarray(result.seeds)
    report["samples"] = {"path": None, "sha256": None, "unsaved": True, "num": int(seeds.size),
                         "seeds": [int(seeds.min()), int(seeds.max())] if seeds.size else [],
                         "sampling": dict(result.settings), "checkpoint": model.source or None}
    return report


def _held_out(sf, data_spec: str, split: str) -> bool:
    """False where the reference data are what the samples' model was trained on, as far as the sample file's
    provenance says (the same file or folder, a copy of it or the file moved elsewhere, or the same dataset's
    training split): a model that memorised its training items scores as well there as one that generalises."""
    from engine.io import same_file

    run = sf.config.get("run") if isinstance(sf.config, dict) else None
    data = run.get("data") if isinstance(run, dict) else None
    trained = data.get("spec") if isinstance(data, dict) else None
    if not isinstance(trained, str) or not trained:
        return True  # unknown provenance: nothing says otherwise
    if names_a_path(data_spec):
        trained_path = Path(trained).expanduser()
        if trained_path.exists() and same_file(trained_path, Path(str(data_spec)).expanduser()):
            return False
        return not _holds_the_training_data(sf, data_spec)
    return not (split == "train" and trained.strip().lower() == str(data_spec).strip().lower())


def _holds_the_training_data(sf, data_spec: str) -> bool:
    """Whether the file or folder ``data_spec`` holds the data the samples' model trained on, elsewhere than the
    run recorded (a copy, or moved): read as the run read its own (its data settings), they have the SHA-256 the
    checkpoint records. False where that cannot be told (the checkpoint gone or another file now, a run saved
    before checkpoints recorded it, data the run's settings cannot read)."""
    from engine.data.dataset import data_sha256
    from engine.data.select import load_dataset
    from engine.io import load_model as read_checkpoint

    try:
        loaded = read_checkpoint(resolve_checkpoint(sf.config.get("checkpoint")))
        if sf.checkpoint_sha256 and loaded.sha256 != sf.checkpoint_sha256:
            return False
        training = loaded.meta.get("training")
        recorded = training.get("dataset_sha256") if isinstance(training, dict) else None
        if not recorded:
            return False
        data = RunConfig.from_dict(loaded.config, stored=True).data
        dataset, _ = load_dataset(dataclasses.replace(data, spec=str(data_spec)), "train")
        return data_sha256(dataset) == recorded
    except (HDMError, OSError, TypeError, ValueError):
        return False


_ADJECTIVE = {"functions": "a function", "images": "an image", "motions": "a motion"}
_ARRAY_SUFFIXES = (".npy", ".npz", ".h5", ".hdf5")  # curves or images: the samples' loader decides


def _check_data_modality(samples_path: str | Path, modality: str, data_spec: str) -> None:
    """Refuse held-out data of another modality than the samples' (each loader knows only its own names)."""
    from engine.data import list_function_datasets, list_image_datasets
    from engine.data.select import detect_modality
    from engine.motion import list_motion_datasets

    registries = {"functions": list_function_datasets(), "images": list_image_datasets(),
                  "motions": list_motion_datasets()}
    key = str(data_spec).strip().lower()
    other = next((m for m, infos in registries.items() if key in {i.name for i in infos}), None)
    path = Path(str(data_spec)).expanduser()
    if other is None and path.exists() and path.suffix.lower() not in _ARRAY_SUFFIXES:
        try:
            other = detect_modality(path)
        except DataError:
            return  # the loader says what is wrong with it
    if other is None or other == modality:
        return
    names = [i.name for i in registries[modality] if i.available] or [i.name for i in registries[modality]]
    what = f"is {_ADJECTIVE[other]} dataset" if key in {i.name for i in registries[other]} else f"holds {other}"
    raise DataError(f"{samples_path}: the samples are {modality} but {data_spec} {what}; evaluate against "
                    f"{_ADJECTIVE[modality]} dataset such as {', '.join(names)} (or a file of {modality})")


MMD2_MAX_CURVES = 2000
"""``evaluate``'s MMD^2 uses at most this many curves of each sample (a random draw): its Gram matrix is dense."""


def perfect_generator_floor(spec: str, grid: np.ndarray, real: np.ndarray, size: int, *, bandwidth: float,
                            seed: int = 0, draws: int = 10):
    """What ``size`` curves of dataset ``spec``'s own law score in MMD^2 against ``real`` (its held-out curves).

    :func:`engine.metrics.mmd2_floor` over ``draws`` draws from the training split (a generated set:
    fresh draws, seed ``seed + 1``), at ``bandwidth``. None where there is no second sample of the law:
    ``spec`` is a file (it is its own held-out set), or its training split has fewer than ``size`` curves.
    """
    from engine.metrics import mmd2_floor

    if names_a_path(spec):
        return None
    pool = reference_data(spec, grid, split="train", seed=seed + 1, num=draws * size).values
    if len(pool) < size:
        return None
    return mmd2_floor(pool, real, size, draws=draws, bandwidth=bandwidth, seed=seed)


def _mmd2_with_floor(generated: np.ndarray, real: np.ndarray, data_spec: str, grid: np.ndarray, *, split: str,
                     seed: int) -> dict[str, Any]:
    """The MMD^2 of the samples against the held-out curves, beside what a perfect generator scores there.

    The bandwidth is the held-out curves' median heuristic; the floor is :func:`perfect_generator_floor`.
    Power tests blocks of 10-500 curves; MMD^2 uses every pair, so it separates generators that all
    reach ~5 % power, but only where it lies outside the floor's spread (wide on Quadratic, whose
    MMD^2 follows the share of each branch).
    """
    from engine.metrics.twosample import median_heuristic, mmd2_unbiased

    rng = np.random.default_rng(seed)
    if len(generated) > MMD2_MAX_CURVES:
        generated = generated[np.sort(rng.choice(len(generated), MMD2_MAX_CURVES, replace=False))]
    if len(real) > MMD2_MAX_CURVES:
        real = real[np.sort(rng.choice(len(real), MMD2_MAX_CURVES, replace=False))]
    bandwidth = median_heuristic(real)
    floor = None if split != "test" else perfect_generator_floor(data_spec, grid, real, len(generated),
                                                                 bandwidth=bandwidth, seed=seed)
    value = mmd2_unbiased(generated, real, bandwidth)
    out: dict[str, Any] = {"value": float(f"{value:.4g}"),
                           "bandwidth": float(f"{bandwidth:.6g}"), "n_generated": len(generated),
                           "n_real": len(real), "floor": None if floor is None else floor.to_dict(),
                           "at_floor": None if floor is None else floor.within(value)}
    if floor is None:
        out["floor_note"] = ("no floor: no second sample of the data's law (the held-out curves are a file or "
                             "not the test split, or the training split is smaller than the samples)")
    return out


def _evaluate_motions(sf, data_spec: str, *, split: str, seed: int, block_size: int, permutations: int,
                      should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    from engine.metrics.twosample import min_block_size
    from engine.motion import channels_to_positions, evaluate_motion_samples, load_motion_dataset

    motion = sf.config.get("motion") if isinstance(sf.config, dict) else None
    if not isinstance(motion, dict):
        raise DataError(f"{sf.path}: motion samples without their skeleton; sample them again with `hdm sample`")
    fps, frames = _motion_fps(sf, motion), int(sf.samples.shape[-1])
    if names_a_path(data_spec):
        split = "train"  # a file or folder is a held-out set in itself
    # reference clips as long and at the frame rate of the samples (on a --grid-size grid, not the training one)
    reference = load_motion_dataset(data_spec, split, fps=fps, frames=frames)
    block = min(block_size, len(reference), len(sf.samples))
    if block < (need := min_block_size()):
        raise DataError(f"{sf.path}: {len(sf.samples)} motions against {len(reference)} reference clips: a {block} vs "
                        f"{block} two-sample test can never reject (its power would read 0 %); draw at least {need} "
                        "motions (and compare with at least as many clips)")
    real = reference.to_positions()
    report = evaluate_motion_samples(channels_to_positions(sf.samples), real, reference.skeleton,
                                     fps, seed=seed, block_size=block, permutations=permutations,
                                     should_stop=should_stop)
    report["generated"] = report.pop("samples")  # "samples" names the sample file in every report
    report["data"] = {"spec": data_spec, "split": split, "source": reference.source, "num": len(reference)}
    report["real_clips"] = None
    if split == "test" and not names_a_path(data_spec):  # what real motions score against these held-out clips
        clips = load_motion_dataset(data_spec, "train", fps=fps, frames=frames, num=len(sf.samples), seed=seed + 1)
        if len(clips) >= block:
            ours = evaluate_motion_samples(clips.to_positions(), real, reference.skeleton, fps, seed=seed,
                                           block_size=block, permutations=permutations, should_stop=should_stop)
            report["real_clips"] = {"num": len(clips), "power_trajectory": ours["power_trajectory"],
                                    "power_velocity": ours["power_velocity"], **ours["samples"]}
    return report


def _motion_fps(sf, motion: dict[str, Any]) -> float:
    """The motion samples' frame rate: from their time grid, which must be uniform (the stored ``motion.fps``
    is the training one; samples drawn on another grid size have another)."""
    stored = None
    if "fps" in motion:
        try:
            stored = float(motion["fps"])
        except (TypeError, ValueError):
            stored = math.nan
        if not (math.isfinite(stored) and stored > 0):
            raise DataError(f"{sf.path}: its motion frame rate {motion['fps']!r} is not a positive number; the file "
                            "is corrupt: sample the motions again with `hdm sample`")
    if sf.grid is None:
        if stored is None:
            raise DataError(f"{sf.path}: motion samples with neither a time grid nor a frame rate; sample them "
                            "again with `hdm sample`")
        return stored
    steps = np.diff(np.asarray(sf.grid, dtype=np.float64))
    dt = float(steps.mean()) if steps.size else math.nan
    if not (np.isfinite(steps).all() and dt > 0 and np.allclose(steps, dt, rtol=1e-6, atol=0.0)):
        raise DataError(f"{sf.path}: motion metrics need at least 2 frames evenly spaced in time, and these "
                        f"samples' grid ({sf.grid.size} points) is not; sample on the training grid or a "
                        "uniform --grid-size")
    fps = 1.0 / dt
    return stored if stored is not None and abs(fps - stored) <= 1e-6 * stored else fps


def _evaluate_images(sf, data_spec: str, *, split: str, seed: int) -> dict[str, Any]:
    from engine.data import load_image_dataset
    from engine.metrics.images import evaluate_image_samples

    reference = load_image_dataset(data_spec, split)
    train = load_image_dataset(data_spec, "train") if split != "train" else None
    classifier, source = image_classifier(data_spec, seed=0)
    samples = np.asarray(sf.samples, dtype=np.float32)
    outside = float(np.mean((samples < -0.01) | (samples > 1.01)))
    report = evaluate_image_samples(np.clip(samples, 0.0, 1.0), reference.values, classifier=classifier,
                                    train=None if train is None else train.values, seed=seed)
    report["samples_clipped_fraction"] = outside  # pixels more than 0.01 outside [0, 1]; all are clipped
    report["classifier_source"] = source
    report["data"] = {"spec": data_spec, "split": split, "source": reference.source, "num": len(reference)}
    return report


EXPORT_FORMATS = ("csv", "png", "bvh")


def _read_sample_file(path: str | Path, what: str):
    """:func:`engine.io.read_samples`, saying so where ``path`` is a restoration file (``hdm restore``'s or the
    studio's), which the sample reader would only call a file without samples."""
    from engine.io import read_samples

    try:
        return read_samples(path)
    except HDMError:
        if _restoration_schema(path) is None:
            raise
        from engine.restoration.run import SCHEMA

        raise DataError(f"{path}: is a restoration file ({SCHEMA}, from `hdm restore` or the studio's Restore tab), "
                        f"not a sample file: {what} takes the sample files of `hdm sample`; a restoration file is "
                        "plain HDF5, read its datasets (original, degraded, restored, restored_mean, metrics/...) "
                        "with h5py") from None


def _restoration_schema(path: str | Path) -> str | None:
    """The ``schema`` attribute of an HDF5 file when it names a restoration file, else None."""
    from engine.io import hdf5_schema

    schema = hdf5_schema(path)
    return schema if schema is not None and schema.startswith("hdm-restoration/") else None


def export(samples_path: str | Path, fmt: str, out: str | Path) -> Path:
    """Export a sample file: ``csv`` (curves; one file), ``png`` (images) or ``bvh`` (motions; a folder)."""
    from engine.io import export_csv
    from engine.io.export import export_bvh, export_png

    if fmt not in EXPORT_FORMATS:
        raise DataError(f"unknown export format {fmt!r}; supported: {', '.join(EXPORT_FORMATS)}")
    sf = _read_sample_file(samples_path, "hdm export")
    if fmt == "csv":
        return export_csv(sf, out)
    return export_png(sf, out) if fmt == "png" else export_bvh(sf, out)


def dumps(obj: Any) -> str:
    """Indented JSON for reports (numpy scalars and arrays, tensors and paths allowed)."""
    from engine.io._jsonutil import json_default

    return json.dumps(obj, indent=2, default=json_default)
