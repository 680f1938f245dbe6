"""Function datasets: generated sets, real sets with fixed leak-free splits, file loaders, normalisation.

Public API:

- :func:`load_function_dataset` ``(spec, split="train", n_points=None, num=None, seed=0, **options)``:
  a registry name (``quadratic``, ``gp``, ``sinusoids``, ``mixture``, ``melbourne``, ``gridwatch``,
  ``aemet``, ``italypower``) or a file path -> :class:`FunctionDataset` (values float32 [N, C, n]).
- :func:`list_function_datasets`: :class:`DatasetInfo` (name, description, available, kind) per entry.
- :func:`load_file`: read one curve file (``.csv``, ``.tsv``, ``.ts``, ``.arff``, ``.npy``, ``.npz``,
  ``.h5``, ``.hdf5``).
- :func:`load_image_dataset` / :func:`list_image_datasets`: images (``glyphs`` embedded, ``mnist``, files and
  folders) -> :class:`ImageDataset` (values float32 [N, C, H, W] in [0, 1]); see :mod:`engine.data.images`.
- :class:`Normalizer`: per-channel mean/std, resolution independent, JSON round-trip.

Splits (details in :mod:`engine.data.synthetic` and :mod:`engine.data.real`):

- generated sets: train and test come from independent seeded streams ``SeedSequence([seed, 0 | 1])``.
- melbourne / italypower: the UCR TRAIN / TEST files; test rows identical to a train row are dropped.
- gridwatch: one fixed permutation of the clean days (seed ``GRIDWATCH_SPLIT_SEED``), 10 % test, disjoint.
- aemet: every 5th station (rows 5, 10, ..., 70) is test.
- files: ``train`` returns every row; ``test`` is an error (a file has no held-out split).
"""

from __future__ import annotations

from engine.data.dataset import FunctionDataset
from engine.data.images import ImageDataset, list_image_datasets, load_image_dataset, load_image_file
from engine.data.loaders import LOADERS, load_file
from engine.data.normalize import Normalizer
from engine.data.registry import REGISTRY, DatasetInfo, list_function_datasets, load_function_dataset

__all__ = [
    "LOADERS",
    "REGISTRY",
    "DatasetInfo",
    "FunctionDataset",
    "ImageDataset",
    "Normalizer",
    "list_function_datasets",
    "list_image_datasets",
    "load_file",
    "load_function_dataset",
    "load_image_dataset",
    "load_image_file",
]
