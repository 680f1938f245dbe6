"""Dataset names -> builders, and the one entry point :func:`load_function_dataset`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.data import real, synthetic
from engine.data.dataset import FunctionDataset, resample, subsample
from engine.data.loaders import LOADERS, load_file
from engine.errors import DataError


@dataclass(frozen=True)
class DatasetInfo:
    """One registry entry as listed to users."""

    name: str
    description: str
    available: bool
    kind: str  # "generated" or "real"


@dataclass(frozen=True)
class _Entry:
    builder: Callable[..., FunctionDataset]
    description: str
    folder: str | None  # under shared_data_dir()/functions; None for generated sets


REGISTRY: dict[str, _Entry] = {
    "quadratic": _Entry(synthetic.quadratic, "a*x^2 + eps, a = +/-1, eps ~ N(0,1) (HDM paper)", None),
    "gp": _Entry(synthetic.gp, "Gaussian-process draws (kernel, length_scale, gain)", None),
    "sinusoids": _Entry(synthetic.sinusoids, "random amplitude/frequency/phase sines, 100 points", None),
    "mixture": _Entry(synthetic.mixture, "bumps, sines and steps (multimodal), 100 points", None),
    "melbourne": _Entry(real.melbourne, "MelbournePedestrian hourly counts (UCR), 24 points", "melbourne"),
    "gridwatch": _Entry(real.gridwatch, "GB electricity demand 2020-22, daily, 288 points", "gridwatch"),
    "aemet": _Entry(real.aemet, "AEMET daily temperature, 73 Spanish stations, 365 points", "aemet"),
    "italypower": _Entry(real.italypower, "ItalyPowerDemand hourly demand (UCR), 24 points",
                         "other/ItalyPowerDemand"),
}


def list_function_datasets() -> list[DatasetInfo]:
    """Every registered dataset with whether it can be loaded here (real sets need the shared data)."""
    out = []
    for name, e in REGISTRY.items():
        available = e.folder is None or (real.functions_dir() / e.folder).is_dir()
        out.append(DatasetInfo(name, e.description, available, "generated" if e.folder is None else "real"))
    return out


def load_function_dataset(spec: str | Path, split: str = "train", *, n_points: int | None = None,
                          num: int | None = None, seed: int = 0, **options: object) -> FunctionDataset:
    """A dataset by registry name or file path.

    Args:
        spec: a name of :data:`REGISTRY` (case-insensitive) or a path to a ``.csv``, ``.tsv``, ``.ts``,
            ``.arff``, ``.npy``, ``.npz``, ``.h5`` or ``.hdf5`` file.
        split: ``"train"`` or ``"test"``; a file has no held-out split (``"train"`` = all of its rows).
        n_points: generated sets: the number of grid points; real sets and files: linearly interpolate onto
            a uniform grid of this many points over the same domain (unchanged when already so).
        num: generated sets: the number of curves (default 1000); real sets and files: keep the first
            ``num`` after a shuffle seeded by ``seed``.
        seed: random seed of the generator / the shuffle.
        **options: generator options (``a`` for quadratic; ``kernel``, ``length_scale``, ``gain``,
            ``period`` for gp).

    Returns:
        A :class:`FunctionDataset` with values float32 [N, C, n] and grid float64 [n].
    """
    key = str(spec).strip().lower()
    entry = REGISTRY.get(key)
    if entry is not None:
        if entry.folder is None:
            return entry.builder(split, n_points=n_points, num=num, seed=seed, **options)
        return subsample(resample(entry.builder(split, **options), n_points), num, seed)
    path = Path(str(spec)).expanduser()
    if path.suffix.lower() not in LOADERS and not path.exists():
        raise DataError(f"unknown dataset {str(spec)!r}; choose one of {', '.join(REGISTRY)} "
                        "or give a data file path")
    if split != "train":
        raise DataError(f"{path}: a data file has no held-out split (asked for {split!r}); use split 'train' "
                        "for all rows, or give the test curves as their own file")
    if options:
        raise DataError(f"{path}: options {', '.join(sorted(options))} apply only to generated datasets")
    return subsample(resample(load_file(path), n_points), num, seed)
