"""Exports of sample files for other tools: PNG for images, BVH for motions (CSV lives in :mod:`engine.io.samples`).

Every export goes to a folder, one file per sample, each written atomically (a reader never sees a half
file); the folder is created when missing. The provenance travels with the files:

- **PNG** (``sample_00000.png`` ... and ``grid.png``): 8-bit grey or RGB, values clipped to [0, 1]; text
  chunks ``hdm-config`` (the sample file's config JSON: run config, sampler settings, checkpoint),
  ``hdm-seed`` (the sample's seed), ``hdm-checkpoint-sha256`` and ``hdm-schema``, so re-opening a PNG
  recalls how it was made.
- **BVH** (``sample_00000.bvh`` ...): the motion channels turned back into joint positions on the model's
  skeleton (stored in the sample file's config by :func:`engine.api.write_sample_file`), then into joint
  rotations by inverse kinematics, which restores the skeleton's bone lengths exactly
  (:func:`engine.motion.bvh.write_bvh`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from engine.errors import DataError
from engine.io.atomic import atomic_path
from engine.io.samples import SampleFile


def _folder(out_dir: str | os.PathLike[str]) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder; exports write one file per sample into a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


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
    out = _folder(out_dir)
    config = json.dumps(sample_file.config, sort_keys=True)

    def save(img: np.ndarray, path: Path, seed: int | None) -> None:
        info = PngImagePlugin.PngInfo()
        info.add_text("hdm-schema", "hdm-png/1")
        info.add_itxt("hdm-config", config)
        info.add_text("hdm-checkpoint-sha256", sample_file.checkpoint_sha256)
        if seed is not None:
            info.add_text("hdm-seed", str(seed))
        with atomic_path(path) as tmp:
            Image.fromarray(_to_uint8(img)).save(tmp, format="PNG", pnginfo=info)

    for i in range(x.shape[0]):
        save(x[i], out / f"sample_{i:05d}.png", int(sample_file.seeds[i]))
    save(image_grid(x[:grid_max]), out / "grid.png", None)
    return out


def export_bvh(sample_file: SampleFile, out_dir: str | os.PathLike[str]) -> Path:
    """One BVH file per motion sample, on the skeleton stored in the sample file."""
    from engine.motion.bvh import write_bvh
    from engine.motion.dataset import channels_to_positions
    from engine.motion.skeleton import Skeleton

    where = sample_file.path or "sample file"
    motion = sample_file.config.get("motion") if isinstance(sample_file.config, dict) else None
    if sample_file.modality != "motions" or not isinstance(motion, dict) or "skeleton" not in motion:
        raise DataError(f"{where}: holds {sample_file.modality} without a skeleton; BVH export is for motion "
                        "samples written by `hdm sample` from a motion checkpoint")
    skeleton = Skeleton.from_dict(motion["skeleton"])
    fps = float(motion["fps"])
    positions = channels_to_positions(sample_file.samples)  # [N, T, J, 3]
    if positions.shape[2] != skeleton.num_joints:
        raise DataError(f"{where}: samples have {positions.shape[2]} joints but the skeleton has "
                        f"{skeleton.num_joints}")
    out = _folder(out_dir)
    for i in range(positions.shape[0]):
        write_bvh(out / f"sample_{i:05d}.bvh", skeleton, positions[i], 1.0 / fps)
    return out
