"""HDF5 sample files: generated samples with the provenance to reproduce them.

Schema ``hdm-samples/1``
========================

One HDF5 file per sampling run, written with ``libver=("v110", "v110")`` so that HDF5 1.10+
readers open it (h5py, MATLAB, HDFView, netCDF-4/HDF5 tools). Only standard HDF5 types are used
(IEEE floats, 64-bit integers, variable-length UTF-8 strings): plain ``h5py`` reads everything,
no HDM Studio code is needed. The file is written to a temporary name and renamed, so a file
with this name is always complete.

Datasets (in the root group)::

    samples            float32  [N, C, n]      modality "functions": N curves, C channels, n grid points
                                [N, C, T]      modality "motions":   N motions, C coordinates, T frames
                                [N, C, H, W]   modality "images":    N images, C channels, H x W pixels
                       chunked by whole samples (a chunk is k consecutive samples, k >= 1 chosen so a
                       chunk holds at most 256 KiB, i.e. k = 1 for samples of 256 KiB or more),
                       gzip level 4 with the byte-shuffle filter (both built into every HDF5)
    seeds              int64    [N]            seeds[i] regenerates samples[i] (same model and settings);
                                               readers treat a missing dataset as unknown (-1)
    grid               float64  [n]            optional: the points of the last axis of `samples`
                                               (curve abscissae, motion frame times)
    trajectory         float32  [S, N, ...]    optional: S intermediate states of the reverse process
                                               (same trailing shape as `samples`), noise first (t = T)
                                               and data last (t -> 0); chunked (1, k, ...), gzip 4 + shuffle
    trajectory_times   float64  [S]            the diffusion time of each trajectory state; present
                                               exactly when `trajectory` is

Attributes (of the root group)::

    schema             str   "hdm-samples/1" (a reader refuses another major version, "hdm-samples/2")
    modality           str   "functions" | "motions" | "images"
    config             str   JSON object: everything needed to regenerate the samples (run config,
                             sampler settings, checkpoint)
    checkpoint_sha256  str   SHA-256 (hex) of the model file that generated them, "" if none
    versions           str   JSON object: {"hdm-studio", "python", "torch", "numpy", "h5py", "hdf5"}
    created            str   ISO-8601 UTC time of writing, e.g. "2026-11-25T11:40:07Z"
    json_attrs         str   JSON list of the attribute names whose value is a JSON string
                             (always "config" and "versions", plus extra attributes that are not
                             plain str / int / float)
    <extra>            str, int64 or float64 as given; any other value (bool, None, list, dict,
                       array) as a JSON string listed in `json_attrs`

Reading with plain h5py::

    with h5py.File("samples.h5", "r") as f:
        x = f["samples"][...]                       # float32 [N, C, n]
        config = json.loads(f.attrs["config"])
"""

from __future__ import annotations

import io
import json
import math
import os
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import DataError
from engine.io._jsonutil import json_default
from engine.io.atomic import atomic_path, check_not_input, interrupts_deferred

__all__ = ["SCHEMA", "MODALITIES", "SampleFile", "write_samples", "read_samples", "export_csv", "software_versions"]

SCHEMA = "hdm-samples/1"
MODALITIES = ("functions", "motions", "images")
_NDIM = {"functions": 3, "motions": 3, "images": 4}
_RESERVED_ATTRS = frozenset({"schema", "modality", "config", "checkpoint_sha256", "versions", "created",
                             "json_attrs"})
_CHUNK_BYTES = 256 * 1024
_GZIP_LEVEL = 4


@dataclass(frozen=True, eq=False)
class SampleFile:
    """The contents of a sample file (see the module docstring for the schema).

    ``attrs`` holds every root attribute with JSON-encoded ones decoded (``config`` and
    ``versions`` included); ``grid``, ``trajectory`` and ``trajectory_times`` are ``None`` when
    the file has none; ``path`` is the file it was read from. A file without ``seeds`` (not written by
    hdm) reads with seeds -1 and ``seeds_recorded`` False: its samples cannot be drawn again.
    """

    samples: np.ndarray
    seeds: np.ndarray
    grid: np.ndarray | None
    config: dict[str, Any]
    modality: str
    checkpoint_sha256: str
    versions: dict[str, Any]
    attrs: dict[str, Any] = field(default_factory=dict)
    trajectory: np.ndarray | None = None
    trajectory_times: np.ndarray | None = None
    path: Path | None = None
    seeds_recorded: bool = True

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[0])


# -- writing -----------------------------------------------------------------------------------
def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _nonfinite_message(path: Path, what: str, arr: np.ndarray) -> str | None:
    bad = ~np.isfinite(arr)
    count = int(bad.sum())
    if not count:
        return None
    nan = int(np.isnan(arr).sum())
    per_sample = bad.reshape(bad.shape[0], -1).any(axis=1) if what == "samples" else None
    which = ""
    if per_sample is not None:
        idx = np.flatnonzero(per_sample)
        shown = ", ".join(str(i) for i in idx[:5]) + (", ..." if idx.size > 5 else "")
        which = f" in {idx.size} of {arr.shape[0]} samples ({shown})"
    return (f"{path}: {count} of {arr.size} {what} values are not finite ({nan} NaN, {count - nan} infinite)"
            f"{which}; nothing was written: the sampler diverged, try more steps or another checkpoint")


def software_versions() -> dict[str, str]:
    """The versions of the software that made a file (hdm-studio, python, torch, numpy, h5py, hdf5): its
    ``versions`` provenance."""
    import h5py

    from engine import __version__

    torch_version = "unavailable"
    if "torch" in sys.modules:
        torch_version = str(sys.modules["torch"].__version__)
    else:
        try:
            from importlib.metadata import version

            torch_version = version("torch")
        except Exception:  # noqa: BLE001 - provenance is best effort
            pass
    return {"hdm-studio": __version__, "python": platform.python_version(), "torch": torch_version,
            "numpy": np.__version__, "h5py": h5py.__version__, "hdf5": h5py.version.hdf5_version}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=json_default, sort_keys=False)


def _chunk_rows(shape: tuple[int, ...], itemsize: int) -> int:
    per_sample = max(1, math.prod(shape[1:]) * itemsize)
    return int(max(1, min(shape[0], _CHUNK_BYTES // per_sample)))


def write_samples(path: str | os.PathLike[str], samples: Any, *, seeds: Any, config: Mapping[str, Any],
                  modality: str = "functions", grid: Any = None, trajectory: Any = None,
                  trajectory_times: Any = None, checkpoint_sha256: str | None = None,
                  extra_attrs: Mapping[str, Any] | None = None) -> Path:
    """Write a ``hdm-samples/1`` file atomically and return its path.

    Args:
        samples: float array ``[N, C, n]`` (functions), ``[N, C, T]`` (motions) or
            ``[N, C, H, W]`` (images); stored as float32. Every value must be finite.
        seeds: ``N`` integer seeds, ``seeds[i]`` regenerates ``samples[i]``.
        config: JSON-serialisable settings that regenerate the samples.
        modality: ``"functions"``, ``"motions"`` or ``"images"``.
        grid: optional ``[n]`` points of the last axis.
        trajectory, trajectory_times: optional ``[S, N, ...]`` states and their ``[S]`` times.
        checkpoint_sha256: hex digest of the model file (``""`` stored when ``None``).
        extra_attrs: more root attributes (str/int/float stored as is, the rest as JSON).

    Raises:
        DataError: non-finite samples, mismatched seeds/grid/trajectory shapes (nothing written).
        ValueError: an unknown modality, or an extra attribute that shadows a schema attribute.
    """
    import h5py

    target = Path(path)
    if modality not in _NDIM:
        raise ValueError(f"unknown modality {modality!r}; expected one of {', '.join(MODALITIES)}")
    x = _as_numpy(samples)
    if x.dtype.kind not in "fiu":
        raise DataError(f"{target}: samples must be real numbers, got dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
    want = _NDIM[modality]
    if x.ndim != want or x.shape[0] == 0 or 0 in x.shape:
        layout = "[N, C, H, W]" if modality == "images" else "[N, C, n]"
        raise DataError(f"{target}: {modality} samples must be a non-empty {layout} array, "
                        f"got shape {x.shape}")
    if (msg := _nonfinite_message(target, "samples", x)) is not None:
        raise DataError(msg)
    n = x.shape[0]

    s = _as_numpy(seeds)
    if s.ndim != 1 or s.shape[0] != n:
        raise DataError(f"{target}: expected {n} seeds (one per sample), got shape {s.shape}")
    if s.size and s.dtype.kind not in "iu":
        raise DataError(f"{target}: seeds must be integers, got dtype {s.dtype}")
    if s.size and s.dtype.kind == "u" and int(s.max()) > np.iinfo(np.int64).max:
        raise DataError(f"{target}: seeds must fit in int64, got {int(s.max())}")
    s = s.astype(np.int64)

    g = None
    if grid is not None:
        g = _as_numpy(grid).astype(np.float64)
        if g.ndim != 1 or g.shape[0] != x.shape[-1]:
            raise DataError(f"{target}: grid has shape {g.shape} but the samples' last axis has "
                            f"{x.shape[-1]} points; pass a 1-D grid of that length")
        if not np.all(np.isfinite(g)):
            raise DataError(f"{target}: grid has non-finite values")

    traj = times = None
    if (trajectory is None) != (trajectory_times is None):
        raise DataError(f"{target}: trajectory and trajectory_times must be given together")
    if trajectory is not None:
        traj = _as_numpy(trajectory).astype(np.float32, copy=False)
        times = _as_numpy(trajectory_times).astype(np.float64)
        if traj.ndim != x.ndim + 1 or traj.shape[1:] != x.shape or traj.shape[0] == 0:
            raise DataError(f"{target}: trajectory has shape {traj.shape}, "
                            f"expected [S, {', '.join(map(str, x.shape))}]")
        if times.shape != (traj.shape[0],):
            raise DataError(f"{target}: trajectory_times has shape {times.shape}, "
                            f"expected ({traj.shape[0]},)")
        if (msg := _nonfinite_message(target, "trajectory", traj)) is not None:
            raise DataError(msg)
        if not np.all(np.isfinite(times)):
            raise DataError(f"{target}: trajectory_times has non-finite values")

    try:
        config_json = _dumps(dict(config))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"config is not JSON-serialisable: {exc}") from None

    attrs: dict[str, Any] = {
        "schema": SCHEMA,
        "modality": modality,
        "config": config_json,
        "checkpoint_sha256": checkpoint_sha256 or "",
        "versions": _dumps(software_versions()),
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    json_attrs = ["config", "versions"]
    for key, value in (extra_attrs or {}).items():
        if key in _RESERVED_ATTRS:
            raise ValueError(f"extra attribute {key!r} would overwrite a schema attribute")
        if isinstance(value, np.generic) and not isinstance(value, np.bool_):
            value = value.item()
        if isinstance(value, str) or (type(value) in (int, float) and (
                type(value) is float or -(2**63) <= value < 2**63)):
            attrs[key] = value
        else:
            attrs[key] = _dumps(value)
            json_attrs.append(key)
    attrs["json_attrs"] = json.dumps(json_attrs)

    rows = _chunk_rows(x.shape, 4)
    # h5py closes its objects through weakref callbacks, where Python prints and drops a Ctrl+C: deferred to the
    # end of the file, it stops the command (and the temporary file goes) instead of being lost
    with atomic_path(target) as tmp, interrupts_deferred():
        with h5py.File(tmp, "w", libver=("v110", "v110")) as f:
            f.create_dataset("samples", data=x, dtype=np.float32, chunks=(rows, *x.shape[1:]),
                             compression="gzip", compression_opts=_GZIP_LEVEL, shuffle=True)
            f.create_dataset("seeds", data=s, dtype=np.int64)
            if g is not None:
                f.create_dataset("grid", data=g, dtype=np.float64)
            if traj is not None:
                f.create_dataset("trajectory", data=traj, dtype=np.float32,
                                 chunks=(1, rows, *traj.shape[2:]), compression="gzip",
                                 compression_opts=_GZIP_LEVEL, shuffle=True)
                f.create_dataset("trajectory_times", data=times, dtype=np.float64)
            for key, value in attrs.items():
                if isinstance(value, int):
                    f.attrs.create(key, value, dtype=np.int64)
                elif isinstance(value, float):
                    f.attrs.create(key, value, dtype=np.float64)
                else:
                    f.attrs[key] = value  # str -> variable-length UTF-8
    return target


# -- reading -----------------------------------------------------------------------------------
def _attr_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SO":
            return [_attr_value(v) for v in value.tolist()]
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_samples(path: str | os.PathLike[str]) -> SampleFile:
    """Read a sample file written by :func:`write_samples` (or by hand with plain h5py).

    Only ``samples`` is required; ``seeds`` defaults to -1 (unknown), ``modality`` to what the
    sample shape implies, ``config`` to ``{}``.

    The file is held to what :func:`write_samples` guarantees: numeric samples with no empty axis and
    only finite values (within float32 range), a ``modality`` (when given) among :data:`MODALITIES`,
    and a numeric, finite, strictly increasing ``grid``; the same for ``trajectory`` and its times.

    Raises:
        DataError: a missing, non-HDF5, truncated or malformed file (one-line message naming it).
    """
    import h5py

    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such sample file")
    if not p.is_file():
        raise DataError(f"{p}: is a directory, not a sample file")
    try:
        is_hdf5 = h5py.is_hdf5(p)
    except OSError as exc:
        raise DataError(f"{p}: cannot read it ({exc})") from None
    if not is_hdf5:
        raise DataError(f"{p}: is not an HDF5 file; expected an HDM sample file (.h5)")
    try:
        with h5py.File(p, "r") as f:
            return _read_open_file(p, f)
    except OSError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{p}: is truncated or corrupt ({reason}); regenerate it or copy it again") from None


def _numeric(p: Path, name: str, obj: Any, dtype: Any) -> np.ndarray:
    """The real-number contents of dataset ``obj`` (cast to ``dtype`` unless None), else a DataError."""
    import h5py

    if not isinstance(obj, h5py.Dataset):
        raise DataError(f"{p}: '{name}' is not a dataset; the file is damaged or was not written by HDM Studio")
    if not isinstance(obj.dtype, np.dtype) or obj.dtype.kind not in "fiu":
        raise DataError(f"{p}: '{name}' has dtype {obj.dtype}; expected numbers (the file is damaged or was "
                        "not written by HDM Studio)")
    data = np.asarray(obj[...])
    return data if dtype is None else data.astype(dtype)


def _finite_float32(p: Path, name: str, raw: np.ndarray) -> np.ndarray:
    """``raw`` as float32, refusing NaN, infinite and beyond-float32 values as the writer does."""
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.asarray(raw, dtype=np.float32)
    bad = ~np.isfinite(values)
    count = int(bad.sum())
    if count:
        nan = int(np.isnan(values).sum())
        raw_bad = int((~np.isfinite(raw)).sum()) if raw.dtype.kind == "f" else 0
        too_big = count - raw_bad
        parts = [f"{nan} NaN", f"{count - nan - too_big} infinite"]
        if too_big:
            parts.append(f"{too_big} beyond the float32 range")
        lead = 1 if name == "trajectory" else 0  # samples [N, ...], trajectory [S, N, ...]
        per = np.moveaxis(bad, lead, 0).reshape(bad.shape[lead], -1).any(axis=1)
        raise DataError(f"{p}: {count} of {values.size} '{name}' values are not finite ({', '.join(parts)}) in "
                        f"{int(per.sum())} of {per.size} samples; HDM Studio never writes such values, the file is "
                        "damaged or came from a sampler that diverged: regenerate it")
    return values


def _read_open_file(p: Path, f: Any) -> SampleFile:
    import h5py

    if "samples" not in f or not isinstance(f["samples"], h5py.Dataset):
        raise DataError(f"{p}: has no 'samples' dataset: is it an HDM sample file?")
    attrs = {key: _attr_value(f.attrs[key]) for key in f.attrs}
    schema = attrs.get("schema")
    if isinstance(schema, str) and schema.startswith("hdm-samples/") and schema != SCHEMA:
        raise DataError(f"{p}: uses schema {schema!r} but this HDM Studio reads {SCHEMA!r}; "
                        "upgrade HDM Studio")

    json_names = ["config", "versions"]
    raw_list = attrs.get("json_attrs")
    if isinstance(raw_list, str):
        try:
            listed = json.loads(raw_list)
        except ValueError:
            raise DataError(f"{p}: its 'json_attrs' attribute is not valid JSON; "
                            "the file is damaged") from None
        if isinstance(listed, list):
            json_names += [n for n in listed if isinstance(n, str) and n not in json_names]
    for name in json_names:
        if name in attrs and isinstance(attrs[name], str):
            try:
                attrs[name] = json.loads(attrs[name])
            except ValueError as exc:
                raise DataError(f"{p}: its '{name}' attribute is not valid JSON ({exc}); the file is damaged "
                                "or was not written by HDM Studio") from None
    config = attrs.get("config", {})
    if not isinstance(config, dict):
        raise DataError(f"{p}: its 'config' attribute is not a JSON object; the file is damaged")
    versions = attrs.get("versions", {})
    if not isinstance(versions, dict):
        versions = {}

    dset = f["samples"]
    if not isinstance(dset.dtype, np.dtype) or dset.dtype.kind not in "fiu":
        raise DataError(f"{p}: 'samples' has dtype {dset.dtype}; expected float32 numbers")
    if dset.ndim not in (3, 4):
        raise DataError(f"{p}: 'samples' has shape {dset.shape}; expected [N, C, n] or [N, C, H, W]")
    if 0 in dset.shape:
        raise DataError(f"{p}: 'samples' has shape {dset.shape}, with an empty axis; expected at least one "
                        "sample, channel and point (the file holds no values)")
    samples = _finite_float32(p, "samples", dset[...])
    n = samples.shape[0]
    modality = attrs.get("modality")
    if "modality" in attrs and modality not in MODALITIES:
        raise DataError(f"{p}: has modality {modality!r}; expected one of {', '.join(MODALITIES)} (the file was "
                        "not written by HDM Studio or is damaged)")
    if not modality:
        modality = "images" if samples.ndim == 4 else "functions"
    if _NDIM[modality] != samples.ndim:
        raise DataError(f"{p}: modality {modality!r} does not match samples of shape {samples.shape}")

    if "seeds" in f:
        seeds = np.asarray(f["seeds"][...])
        if seeds.shape != (n,) or seeds.dtype.kind not in "iu":
            raise DataError(f"{p}: 'seeds' has shape {seeds.shape} and dtype {seeds.dtype}; "
                            f"expected {n} integers")
        seeds = seeds.astype(np.int64)
    else:
        seeds = np.full(n, -1, dtype=np.int64)

    grid = None
    if "grid" in f:
        grid = _numeric(p, "grid", f["grid"], np.float64)
        if grid.shape != (samples.shape[-1],):
            raise DataError(f"{p}: 'grid' has shape {grid.shape} but the samples' last axis has "
                            f"{samples.shape[-1]} points")
        if not np.all(np.isfinite(grid)):
            raise DataError(f"{p}: {int((~np.isfinite(grid)).sum())} of {grid.size} 'grid' values are not finite "
                            "(NaN or infinite); the file is damaged or was not written by HDM Studio")
        if grid.size > 1 and not np.all(np.diff(grid) > 0):
            raise DataError(f"{p}: 'grid' is not strictly increasing; the file is damaged or was not written by "
                            "HDM Studio")

    trajectory = times = None
    if "trajectory" in f:
        tset = f["trajectory"]
        if not isinstance(tset, h5py.Dataset):
            raise DataError(f"{p}: 'trajectory' is not a dataset; the file is damaged")
        if tset.ndim != samples.ndim + 1 or tset.shape[1:] != samples.shape or tset.shape[0] == 0:
            raise DataError(f"{p}: 'trajectory' has shape {tset.shape}; expected [S, "
                            f"{', '.join(map(str, samples.shape))}]")
        if "trajectory_times" not in f:
            raise DataError(f"{p}: has a 'trajectory' but no 'trajectory_times'; the file is damaged")
        trajectory = _finite_float32(p, "trajectory", _numeric(p, "trajectory", tset, None))
        times = _numeric(p, "trajectory_times", f["trajectory_times"], np.float64)
        if times.shape != (trajectory.shape[0],):
            raise DataError(f"{p}: 'trajectory_times' has shape {times.shape}; "
                            f"expected ({trajectory.shape[0]},)")
        if not np.all(np.isfinite(times)):
            raise DataError(f"{p}: 'trajectory_times' has non-finite values; the file is damaged")

    sha = attrs.get("checkpoint_sha256", "")
    return SampleFile(samples=samples, seeds=seeds, grid=grid, config=config, modality=modality,
                      checkpoint_sha256=sha if isinstance(sha, str) else str(sha), versions=versions,
                      attrs=attrs, trajectory=trajectory, trajectory_times=times, path=p,
                      seeds_recorded="seeds" in f)


# -- export ------------------------------------------------------------------------------------
def export_csv(sample_file: SampleFile, out_path: str | os.PathLike[str]) -> Path:
    """Write curves as CSV atomically: one row per (sample, channel), sample-major.

    Header ``channel,sample,seed,<grid values>`` (grid values in shortest round-trip form;
    ``0,1,...`` when the file has no grid); values with 9 significant digits (exact float32).

    Raises:
        DataError: for images (``[N, C, H, W]``): export them with ``--format png``.
        OutputError: ``out_path`` is the sample file itself, or cannot be written.
    """
    x = sample_file.samples
    name = sample_file.path if sample_file.path is not None else "sample file"
    if x.ndim != 3:
        raise DataError(f"{name}: holds {sample_file.modality} of shape {x.shape}; CSV export is for curves "
                        "[N, C, n] only, use --format png for images")
    check_not_input(out_path, sample_file.path)
    n_samples, n_channels, n_points = x.shape
    grid = sample_file.grid if sample_file.grid is not None else np.arange(n_points, dtype=np.float64)
    header = "channel,sample,seed," + ",".join(repr(float(v)) for v in grid)
    row_fmt = ",".join(["%.9g"] * n_points)
    out = Path(out_path)
    with atomic_path(out) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            buf = io.StringIO()
            buf.write(header + "\n")
            for i in range(n_samples):
                seed = int(sample_file.seeds[i])
                for c in range(n_channels):
                    buf.write(f"{c},{i},{seed},")
                    buf.write(row_fmt % tuple(x[i, c].tolist()))
                    buf.write("\n")
                if buf.tell() > 1 << 20:
                    fh.write(buf.getvalue())
                    buf = io.StringIO()
            fh.write(buf.getvalue())
    return out
