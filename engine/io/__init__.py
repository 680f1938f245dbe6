"""File formats and safe writes: HDF5 sample files, checkpoint files, atomic writes.

- :mod:`engine.io.atomic`       write-to-temp-then-rename helpers, up-front writability checks
- :mod:`engine.io.samples`      the ``hdm-samples/1`` HDF5 schema, CSV export
- :mod:`engine.io.checkpoints`  safetensors model files, weights-only training state
"""

from __future__ import annotations

from engine.io.atomic import (
    CSV_SUFFIXES,
    FILE_SUFFIXES,
    HDF5_SUFFIXES,
    atomic_path,
    atomic_paths,
    atomic_write_bytes,
    atomic_write_text,
    check_not_input,
    check_output_name,
    check_replaceable,
    check_writable,
    hdf5_schema,
    interrupts_deferred,
    same_file,
)
from engine.io.checkpoints import (
    MODEL_FORMAT,
    LoadedModel,
    file_sha256,
    load_model,
    load_train_state,
    save_model,
    save_train_state,
)
from engine.io.samples import SCHEMA, SampleFile, export_csv, read_samples, write_samples

__all__ = [
    "CSV_SUFFIXES",
    "FILE_SUFFIXES",
    "HDF5_SUFFIXES",
    "MODEL_FORMAT",
    "SCHEMA",
    "LoadedModel",
    "SampleFile",
    "atomic_path",
    "atomic_paths",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_not_input",
    "check_output_name",
    "check_replaceable",
    "check_writable",
    "export_csv",
    "file_sha256",
    "hdf5_schema",
    "interrupts_deferred",
    "load_model",
    "load_train_state",
    "read_samples",
    "same_file",
    "save_model",
    "save_train_state",
    "write_samples",
]
