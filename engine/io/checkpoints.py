"""Checkpoint files: model weights in safetensors, training state in a weights-only torch file.

Model file (``model.safetensors``)
    A standard safetensors file: the network's state dict (contiguous CPU tensors) plus
    string metadata ``{"format": "hdm-studio.model/1", "config": <run config JSON>,
    <key>: <JSON of value> for each entry of meta}``. Loading it never unpickles anything;
    a pickled ``.pt``/``.pth`` file given as a model is refused, since unpickling runs code.

Training state (``train_state.pt``)
    ``torch.save`` of a dict of tensors, nested dicts/lists of tensors (optimizer state),
    numbers and strings. It is loaded with ``torch.load(..., weights_only=True)``, which
    refuses any pickled object other than tensors and plain containers.

Every write goes through :func:`engine.io.atomic.atomic_path`: a crash mid-save leaves the
previous file intact, finished files get the usual (umask) permissions, and a destination that
cannot be written raises :class:`~engine.errors.OutputError`. Every problem with a file read
raises :class:`~engine.errors.CheckpointError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from engine.errors import CheckpointError
from engine.io._jsonutil import to_json
from engine.io.atomic import atomic_path

__all__ = ["MODEL_FORMAT", "LoadedModel", "save_model", "load_model", "save_train_state", "load_train_state",
           "file_sha256"]

MODEL_FORMAT = "hdm-studio.model/1"
_RESERVED_META = frozenset({"format", "config"})
_ZIP_MAGIC = b"PK\x03\x04"   # torch.save's default (zip) format
_PICKLE_PROTO = 0x80         # first byte of a pickle stream (protocol >= 2), legacy torch.save


@dataclass(frozen=True)
class LoadedModel:
    """A model checkpoint read from disk."""

    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)  # values JSON-decoded
    sha256: str = ""
    path: Path | None = None


def file_sha256(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def _head(path: Path, n: int = 8) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    """A safetensors file: u64 little-endian header length N, then N bytes of JSON (``{...``)."""
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= size - 8 and head[8:9] == b"{"


def _looks_pickled(path: Path) -> bool:
    """Zip (``torch.save``) or pickle-protocol magic, unless it is a plausible safetensors header.

    The header-length check matters: a safetensors header of 128 + 256*k bytes also starts with
    0x80. (This only picks the error message; safetensors never unpickles anything.)
    """
    head = _head(path, 9)
    if not (head.startswith(_ZIP_MAGIC) or head[:1] == bytes([_PICKLE_PROTO])):
        return False
    return not _looks_like_safetensors(head, path.stat().st_size)


def _check_exists(path: Path, what: str) -> None:
    if not path.exists():
        raise CheckpointError(f"{path}: no such {what} file; check the path (or train a model first)")
    if not path.is_file():
        raise CheckpointError(f"{path}: is a directory, not a {what} file; pass the file inside it")


# -- model weights -----------------------------------------------------------------------------------
def _cpu_tensors(state_dict: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies; tensors sharing memory (tied weights) are cloned apart."""
    out: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"save_model: state_dict[{key!r}] is a {type(value).__name__}, not a tensor")
        t = value.detach().to("cpu").contiguous()
        if t.numel():
            storage = t.untyped_storage()
            ident = (storage.data_ptr(), storage.nbytes())
            if ident in seen:
                t = t.clone()
            else:
                seen.add(ident)
        out[str(key)] = t
    return out


def save_model(path: str | os.PathLike[str], state_dict: Mapping[str, torch.Tensor], *,
               config: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> Path:
    """Write weights + config (+ JSON-able meta entries) as safetensors, atomically; returns the path.

    The file gets the usual permissions (``0o666`` less the umask, or those of the file it replaces):
    safetensors' ``save_file`` swaps in a 0600 file of its own, which :func:`atomic_path` re-chmods
    before the rename. Raises :class:`~engine.errors.OutputError` when ``path`` cannot be written.
    """
    target = Path(path)
    metadata = {"format": MODEL_FORMAT, "config": to_json(dict(config))}
    for key, value in (meta or {}).items():
        if key in _RESERVED_META:
            raise ValueError(f"save_model: meta key {key!r} is reserved; rename it")
        metadata[str(key)] = to_json(value)
    tensors = _cpu_tensors(state_dict)
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return target


def load_model(path: str | os.PathLike[str]) -> LoadedModel:
    """Read a model checkpoint written by :func:`save_model` (never unpickles anything)."""
    src = Path(path)
    _check_exists(src, "checkpoint")
    if _looks_pickled(src):
        raise CheckpointError(f"{src}: is a pickled torch file; HDM Studio loads weights only from "
                              f".safetensors (pickles can run code), refusing to load it")
    try:
        with safe_open(str(src), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            state_dict = {key: f.get_tensor(key) for key in f.keys()}
    except Exception:  # SafetensorError, OSError, ValueError: the file itself is bad
        raise CheckpointError(f"{src}: is truncated or not a safetensors file; re-export or retrain the "
                              f"model") from None
    fmt = metadata.get("format", "")
    if not fmt.startswith("hdm-studio.model/"):
        raise CheckpointError(f"{src}: is not an HDM Studio checkpoint (no '{MODEL_FORMAT}' format tag); "
                              f"train or convert a model with HDM Studio")
    if fmt != MODEL_FORMAT:
        raise CheckpointError(f"{src}: has checkpoint format {fmt!r}, this HDM Studio reads "
                              f"{MODEL_FORMAT!r}; upgrade HDM Studio")
    try:
        config = json.loads(metadata.get("config", ""))
    except ValueError:
        config = None
    if not isinstance(config, dict):
        raise CheckpointError(f"{src}: its config metadata is not a JSON object; the checkpoint is corrupt")
    meta: dict[str, Any] = {}
    for key, text in metadata.items():
        if key in _RESERVED_META:
            continue
        try:
            meta[key] = json.loads(text)
        except ValueError:
            meta[key] = text  # written by another tool: keep the raw string
    return LoadedModel(state_dict=state_dict, config=config, meta=meta, sha256=file_sha256(src), path=src)


# -- training state ----------------------------------------------------------------------------------
def save_train_state(path: str | os.PathLike[str], state: Mapping[str, Any]) -> Path:
    """``torch.save`` a training-state dict atomically; returns the path.

    The state must hold only what ``torch.load(weights_only=True)`` accepts: tensors
    (including a generator's ByteTensor state), dicts, lists, tuples, numbers, strings,
    bools and None.
    """
    target = Path(path)
    with atomic_path(target) as tmp:
        torch.save(dict(state), tmp)
    return target


def load_train_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a training state with ``weights_only=True`` (tensors and plain data only) onto the CPU."""
    src = Path(path)
    _check_exists(src, "training-state")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing them
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError (bad zip), EOFError, ...
        if "Unsupported global" in str(exc):
            raise CheckpointError(f"{src}: holds pickled objects other than tensors and plain data "
                                  f"(unpickling them could run code), refusing to load it; use a state "
                                  f"saved by HDM Studio") from None
        if _head(src)[:1] == bytes([_PICKLE_PROTO]):
            raise CheckpointError(f"{src}: is a pickle that the weights-only loader cannot read (a "
                                  f"pickle can run code), refusing to load it; use a state saved by "
                                  f"HDM Studio") from None
        raise CheckpointError(f"{src}: is truncated or not a training-state file; resume from another run "
                              f"or start training afresh") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{src}: holds a {type(state).__name__}, not a training-state dict; "
                              f"resume from a state saved by HDM Studio")
    return state
