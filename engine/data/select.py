"""One entry point for every modality: which kind of data a spec names, and loading it.

``detect_modality(spec)`` answers from the registries (function, image and motion dataset names) and, for
paths, from the file type: ``.bvh`` files or folders of them are motions; image files, folders of images
and MNIST ``idx`` files are images; curve files (``.csv``, ``.tsv``, ``.ts``, ``.arff``) are functions.
Arrays (``.npy``, ``.npz``, ``.h5``) are ambiguous ([N, C, n] curves or [N, H, W] images): they are read
as functions unless the configuration says ``modality = "images"``.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

from engine.config import DataConfig
from engine.errors import DataError

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".idx"}


def _image_names() -> set[str]:
    from engine.data.images import list_image_datasets

    return {d.name for d in list_image_datasets()}


def _motion_names() -> set[str]:
    from engine.motion import list_motion_datasets

    return {d.name for d in list_motion_datasets()}


def refuse_in_memory(spec: str | Path) -> None:
    """DataError for the ``in-memory:NAME`` spec of a run trained on data given as an object: nothing holds them."""
    from engine.config import IN_MEMORY_PREFIX

    if str(spec).startswith(IN_MEMORY_PREFIX):
        raise DataError(f"{spec}: the run was trained on data given in memory ({str(spec)[len(IN_MEMORY_PREFIX):]}), "
                        "which no dataset name or file holds: give those data again (to resume, from Python: "
                        "api.train(config, out_dir, resume=True, dataset=...); to evaluate: a file holding them)")


def is_dataset_name(spec: str | Path) -> bool:
    """Whether ``spec`` is the name of an embedded dataset (curves, images or motions): loaders read such a name
    as that dataset even where a file or folder of the same name is in the working folder."""
    from engine.data.registry import REGISTRY

    key = str(spec).strip().lower()
    return key in REGISTRY or key in _image_names() or key in _motion_names()


def names_a_path(spec: str | Path) -> bool:
    """Whether the loaders read ``spec`` as a file or folder (it exists and is no dataset name)."""
    return bool(str(spec).strip()) and not is_dataset_name(spec) and Path(str(spec)).expanduser().exists()


# dataset object -> the DataConfig and split load_dataset read it from (what a run given the object records)
_LOADED_FROM: weakref.WeakKeyDictionary[Any, tuple[DataConfig, str]] = weakref.WeakKeyDictionary()


def loaded_from(dataset) -> DataConfig | None:
    """The DataConfig that :func:`load_dataset` read ``dataset`` from, as its training split (the one a run's
    config loads again); None for data built any other way, or another split."""
    data, split = _LOADED_FROM.get(dataset, (None, ""))
    return data if split == "train" else None


def names_dataset(spec: str | Path, dataset) -> bool:
    """Whether the data spec ``spec``, a path (file or folder), names ``dataset`` built from it without
    :func:`load_dataset` (its source starts with that path: loaders record the path they read). Data
    :func:`load_dataset` read are told by :func:`loaded_from`; an array given in memory, or a dataset of a
    name built otherwise, is named by nothing."""
    if not names_a_path(spec):
        return False
    path = Path(str(spec).strip()).expanduser()
    source = str(dataset.source)
    return source.startswith(str(path)) or source.startswith(str(path.resolve()))


def detect_modality(spec: str | Path) -> str:
    """``functions``, ``motions`` or ``images`` for a dataset name or path."""
    from engine.data.registry import REGISTRY

    refuse_in_memory(spec)
    key = str(spec).strip().lower()
    if key in REGISTRY:
        return "functions"
    if key in _image_names():
        return "images"
    if key in _motion_names():
        return "motions"
    path = Path(str(spec)).expanduser()
    suffix = path.suffix.lower()
    if not suffix and not path.exists():
        names = ", ".join([*REGISTRY, *sorted(_image_names()), *sorted(_motion_names())])
        raise DataError(f"unknown dataset {str(spec)!r}; choose one of {names} or give a data file or folder")
    if suffix == ".bvh":
        return "motions"
    from engine.data.image_loaders import is_idx

    if suffix in _IMAGE_SUFFIXES or is_idx(path):
        return "images"
    if path.is_dir():
        files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
        if any(p.suffix.lower() == ".bvh" for p in files):
            return "motions"
        if any(p.suffix.lower() in _IMAGE_SUFFIXES for p in files):
            return "images"
        raise DataError(f"{path}: the folder holds no .bvh motions and no images; give a data file or folder")
    return "functions"


def load_dataset(data: DataConfig, split: str = "train"):
    """The dataset ``data`` names (FunctionDataset, MotionDataset or ImageDataset) and its modality."""
    refuse_in_memory(data.spec)
    modality = data.modality if data.modality != "auto" else detect_modality(data.spec)
    if modality == "images":
        from engine.data.images import load_image_dataset

        ds = load_image_dataset(data.spec, split, size=data.image_size, num=data.num, seed=data.seed,
                                channels=data.channels)
    elif modality == "motions":
        from engine.motion import load_motion_dataset

        kw = {k: v for k, v in (("fps", data.fps), ("frames", data.frames)) if v is not None}
        ds = load_motion_dataset(data.spec, split, num=data.num, seed=data.seed, **kw)
    else:
        from engine.data.registry import load_function_dataset

        ds = load_function_dataset(data.spec, split, n_points=data.n_points, num=data.num, seed=data.seed)
    _LOADED_FROM[ds] = (data, split)
    return ds, modality
