"""Exports of sample files for other tools: PNG for images, BVH for motions (CSV lives in :mod:`engine.io.samples`).

Every export goes to a folder, one file per sample, written as a set (:func:`_written_as_a_set`): the files
appear together at the end, and an export that fails or is interrupted (Ctrl+C, SIGTERM, a full disk) leaves
none of them and removes the folder it created; the folder is created when missing. Before anything is
written the folder is checked (:func:`_prepare_folder`): it must be writable, and it must hold no
``sample_*.png``, ``sample_*.bvh``, ``grid.png`` or ``provenance.json`` file (an earlier export's, which this
one would overwrite or mix with, or the user's own), nor the sample file being exported. Such a folder is
refused with one line; nothing is deleted or overwritten. The provenance travels with the files:

- **PNG** (``sample_00000.png`` ... and ``grid.png``): 8-bit grey or RGB, values clipped to [0, 1]; text
  chunks ``hdm-config`` (the sample file's config JSON: run config, sampler settings, checkpoint),
  ``hdm-checkpoint-sha256``, ``hdm-versions`` (the sample file's ``versions`` JSON: the software that drew
  the samples) and ``hdm-schema``; each ``sample_*.png`` also ``hdm-seed`` (its seed) and ``hdm-index`` (its
  position in the sample file), and ``grid.png`` ``hdm-seeds`` (a JSON list of the seeds it shows, row by
  row), so re-opening a PNG recalls how it was made.
- **BVH** (``sample_00000.bvh`` ...): the motion channels turned back into joint positions on the model's
  skeleton (stored in the sample file's config by :func:`engine.api.write_sample_file`), then into joint
  rotations by inverse kinematics, which restores the skeleton's bone lengths exactly
  (:func:`engine.motion.bvh.write_bvh`). The frame time is the spacing of the sample file's ``grid`` (frame
  times in seconds), so motions sampled at another ``--grid-size`` than the training one play at their true
  speed; the training config's ``fps`` is used only for files without a grid. BVH has no comment syntax (our
  reader, like others, refuses unknown tokens), so the provenance goes beside the files, in the same set:
  ``provenance.json`` (:data:`PROVENANCE_SCHEMA`): the sample file (``path``, ``sha256``), its config,
  ``checkpoint_sha256`` and ``versions``, the exporting software's ``export_versions``, ``created``, the frame
  time, and per file its ``index`` in the sample file and ``seed``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import DataError, OutputError
from engine.io._jsonutil import json_default
from engine.io.atomic import _translate, atomic_paths, check_not_input, check_writable, same_file
from engine.io.samples import SampleFile

# Files an export writes: sample_<anything>.png / .bvh, grid.png and provenance.json. Others are the user's.
_EXPORT_FILE = re.compile(r"sample_.*\.(png|bvh)|grid\.png|provenance\.json", re.IGNORECASE)
PROVENANCE_FILE = "provenance.json"
PROVENANCE_SCHEMA = "hdm-export-provenance/1"


def _prepare_folder(out_dir: str | os.PathLike[str], names: Sequence[str], source: Path | None) -> Path:
    """Check the export folder before anything is written, then create it; returns it.

    Raises :class:`OutputError` when ``out_dir`` cannot be a writable folder, when one of ``names`` is a
    folder there or is the ``source`` sample file itself, or when the folder holds any
    ``sample_*.png``/``sample_*.bvh``/``grid.png``/``provenance.json`` file: an earlier export's, which this
    one would overwrite (a re-export of the same size replaced it without a word) or mix with, or the user's
    own. Nothing is deleted or overwritten.
    """
    out = Path(out_dir)
    check_not_input(out, source)
    check_writable(out, folder=True)
    if out.is_dir():
        wanted = set(names)
        try:
            entries = {entry.name: entry.is_dir() for entry in os.scandir(out)}
        except OSError as exc:
            raise _translate(out, exc, folder=True) from None
        for name in sorted(wanted & set(entries)):
            if entries[name]:
                raise OutputError(f"{out / name}: cannot write here: it is a folder; export into an empty or "
                                  "new folder")
            if source is not None and same_file(out / name, source):
                check_not_input(out / name, source)
        held = sorted(name for name in entries if _EXPORT_FILE.fullmatch(name) and not entries[name])
        if held:
            shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
            raise OutputError(f"{out}: the folder already holds exported files ({shown}), which this export would "
                              "overwrite or mix with; choose an empty or new folder, or remove them first")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _translate(out, exc, folder=True) from None
    return out


@contextlib.contextmanager
def _written_as_a_set(out_dir: str | os.PathLike[str], names: Sequence[str],
                      source: Path | None) -> Iterator[tuple[Path, Callable[[str], Path]]]:
    """Check and create the export folder (:func:`_prepare_folder`), then yield it and ``stage(name)``.

    ``stage(name)`` returns the temporary path to write ``folder / name`` to; the files are renamed into
    place together when the block ends (:func:`engine.io.atomic.atomic_paths`). If it raises or is
    interrupted, no file is written and a folder this export created (with any parents) is removed again.
    """
    out = Path(out_dir)
    missing = [p for p in (out, *out.parents) if not p.exists()]  # innermost first
    folder = _prepare_folder(out, names, source)
    try:
        with atomic_paths() as stage:
            yield folder, lambda name: stage(folder / name)
    except BaseException:
        for p in missing:
            try:
                p.rmdir()  # only while empty: a file someone else put there keeps its folder
            except OSError:
                break
        raise


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """[C, H, W] in [0, 1] -> uint8 [H, W] (grey) or [H, W, 3]."""
    img = np.round(np.clip(x, 0.0, 1.0) * 255).astype(np.uint8)
    return img[0] if img.shape[0] == 1 else np.moveaxis(img[:3], 0, -1)


def image_grid(samples: np.ndarray, columns: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile images [N, C, H, W] into one [C, rows (H + pad) - pad, cols (W + pad) - pad] array (pad = 1.0)."""
    n, c, h, w = samples.shape
    cols = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.ones((c, rows * (h + pad) - pad, cols * (w + pad) - pad), dtype=np.float32)
    for i in range(n):
        r, k = divmod(i, cols)
        grid[:, r * (h + pad):r * (h + pad) + h, k * (w + pad):k * (w + pad) + w] = samples[i]
    return grid


def export_png(sample_file: SampleFile, out_dir: str | os.PathLike[str], *, grid_max: int = 256) -> Path:
    """One PNG per image sample plus ``grid.png`` (the first ``grid_max``), with the config in text chunks."""
    from PIL import Image, PngImagePlugin

    x = sample_file.samples
    where = sample_file.path or "sample file"
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise DataError(f"{where}: holds {sample_file.modality} of shape {x.shape}; PNG export is for grey or RGB "
                        "images [N, 1|3, H, W] (use --format csv for curves, bvh for motions)")
    names = [f"sample_{i:05d}.png" for i in range(x.shape[0])] + ["grid.png"]
    config = json.dumps(sample_file.config, sort_keys=True)
    versions = json.dumps(sample_file.versions or {}, sort_keys=True)

    def save(img: np.ndarray, path: Path, chunks: dict[str, str]) -> None:
        info = PngImagePlugin.PngInfo()
        info.add_text("hdm-schema", "hdm-png/1")
        info.add_itxt("hdm-config", config)
        info.add_text("hdm-checkpoint-sha256", sample_file.checkpoint_sha256)
        info.add_itxt("hdm-versions", versions)
        for key, value in chunks.items():
            info.add_text(key, value)
        Image.fromarray(_to_uint8(img)).save(path, format="PNG", pnginfo=info)

    with _written_as_a_set(out_dir, names, sample_file.path) as (out, stage):
        for i in range(x.shape[0]):
            save(x[i], stage(names[i]), {"hdm-seed": str(int(sample_file.seeds[i])), "hdm-index": str(i)})
        shown = [int(v) for v in sample_file.seeds[:grid_max]]
        save(image_grid(x[:grid_max]), stage("grid.png"), {"hdm-seeds": json.dumps(shown)})
    return out


def export_provenance(sample_file: SampleFile, fmt: str, files: Sequence[str], *, frame_time: float | None = None,
                      source: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``provenance.json`` of an export of ``sample_file`` (JSON-ready): ``files[i]`` holds sample ``i``.

    ``source``: what to record as the sample file (default: its resolved ``path`` and ``sha256``; the studio
    passes its own for samples exported from memory through a temporary file).
    """
    from datetime import UTC, datetime

    from engine.io.checkpoints import file_sha256
    from engine.io.samples import software_versions

    if source is None:
        path = sample_file.path
        source = {"path": None, "sha256": None}
        if path is not None and Path(path).is_file():
            source = {"path": str(Path(path).resolve()), "sha256": file_sha256(path)}
    out: dict[str, Any] = {
        "schema": PROVENANCE_SCHEMA, "format": fmt, "samples": dict(source),
        "checkpoint_sha256": sample_file.checkpoint_sha256, "config": sample_file.config,
        "versions": sample_file.versions or {}, "export_versions": software_versions(),
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if frame_time is not None:
        out["frame_time"] = frame_time
    out["files"] = [{"file": name, "index": i, "seed": int(sample_file.seeds[i])} for i, name in enumerate(files)]
    return out


def export_bvh(sample_file: SampleFile, out_dir: str | os.PathLike[str], *,
               source: dict[str, Any] | None = None) -> Path:
    """One BVH file per motion sample, on the skeleton stored in the sample file, and ``provenance.json``
    (:func:`export_provenance`; ``source``: see there), written as one set."""
    from engine.motion.bvh import write_bvh
    from engine.motion.dataset import channels_to_positions
    from engine.motion.skeleton import Skeleton

    where = sample_file.path or "sample file"
    motion = sample_file.config.get("motion") if isinstance(sample_file.config, dict) else None
    if sample_file.modality != "motions" or not isinstance(motion, dict) or "skeleton" not in motion:
        raise DataError(f"{where}: holds {sample_file.modality} without a skeleton; BVH export is for motion "
                        "samples written by `hdm sample` from a motion checkpoint")
    skeleton = Skeleton.from_dict(motion["skeleton"])
    frame_time = bvh_frame_time(sample_file)
    positions = channels_to_positions(sample_file.samples)  # [N, T, J, 3]
    if positions.shape[2] != skeleton.num_joints:
        raise DataError(f"{where}: samples have {positions.shape[2]} joints but the skeleton has "
                        f"{skeleton.num_joints}")
    names = [f"sample_{i:05d}.bvh" for i in range(positions.shape[0])]
    provenance = export_provenance(sample_file, "bvh", names, frame_time=frame_time, source=source)
    with _written_as_a_set(out_dir, [*names, PROVENANCE_FILE], sample_file.path) as (out, stage):
        for i in range(positions.shape[0]):
            write_bvh(stage(names[i]), skeleton, positions[i], frame_time)
        with open(stage(PROVENANCE_FILE), "w", encoding="utf-8", newline="\n") as fh:
            fh.write(json.dumps(provenance, indent=2, default=json_default) + "\n")
    return out


def bvh_frame_time(sample_file: SampleFile) -> float:
    """Seconds per frame of motion samples: the spacing of the file's ``grid`` (frame times in seconds).

    The grid must be evenly spaced. A file without a grid (or with a single frame) falls back to
    ``1 / config["motion"]["fps"]``, the training frame rate.

    Raises:
        DataError: an uneven grid, or no usable grid and no positive ``motion.fps`` in the config.
    """
    where = sample_file.path or "sample file"
    grid = sample_file.grid
    if grid is not None and grid.size >= 2:
        steps = np.diff(np.asarray(grid, dtype=np.float64))
        step = float(grid[1] - grid[0])
        if not (math.isfinite(step) and step > 0):
            raise DataError(f"{where}: its grid does not increase ({grid[0]!r}, {grid[1]!r}, ...); BVH needs frame "
                            "times in seconds")
        if not np.allclose(steps, step, rtol=1e-4, atol=0.0):
            raise DataError(f"{where}: its grid (the frame times) is not evenly spaced (steps from "
                            f"{steps.min():.6g} to {steps.max():.6g} s); BVH needs one frame time, resample the "
                            "motions on a uniform grid")
        return step
    motion = sample_file.config.get("motion") if isinstance(sample_file.config, dict) else None
    fps = motion.get("fps") if isinstance(motion, dict) else None
    try:
        value = float(fps)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise DataError(f"{where}: has no frame times (no grid) and its config's motion.fps is {fps!r}, not a "
                        "positive number; re-sample the motions with `hdm sample`")
    return 1.0 / value
