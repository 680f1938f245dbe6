"""Real curve sets read from ``engine.paths.shared_data_dir() / "functions"``; fixed, leak-free splits.

- ``melbourne``: UCR MelbournePedestrian, hourly pedestrian counts, grid = hours 0..23 (24 points).
  train = ``MelbournePedestrian_TRAIN.tsv``, test = ``MelbournePedestrian_TEST.tsv`` (UCR's own split).
  UCR writes missing counts as -1: those and NaN are treated as missing and the row is dropped (count in
  ``source``). Test rows identical to a train row are dropped from test. labels = sensor site 1..10.
  Noise length scale 2.3 h (the reference's 2.0 on linspace(-10, 10, 24), in hours).
  Measured: train 1,138 (1,200 rows, 62 incomplete), test 2,319 (2,450 rows, 131 incomplete); no test row
  equals a train row. The test curves equal, in order, HDM's ``MelbournePedestrian_TEST.arff`` after its
  rows with ``?`` are dropped (HDM trains on 80 % of that file alone).
- ``gridwatch``: GB electricity demand (MW), one curve per day, 288 five-minute slots, grid = hours
  0, 1/12, ..., 23 + 11/12. Read from the raw ``gridwatch_2020..2022.csv.gz``: each reading goes to slot
  ``floor((60 h + min) / 5)`` of its day; a day is kept when each of its 288 slots holds exactly one reading
  and every value is in 5,000..70,000 MW. Split: one permutation of the kept days with the fixed seed
  :data:`GRIDWATCH_SPLIT_SEED`; its first 10 % (rounded) are test, the rest train, so each day is in exactly
  one split (the reference draws the two splits with different seeds and leaks 80 of 102 test days).
  Each split keeps calendar order. labels = weekday (0 = Monday). Length scale 2.16 h (1.8 on [-10, 10]).
  Measured: 1,096 calendar days; 1,071 have 288 readings, but 19 of those hold two readings in one slot
  (e.g. 12:30:34 and 12:30:35 on 2020-01-06) and none in another, so 1,052 fill every slot once and 1,040
  also lie in range (SOURCE.md's "1,059" counts days by number of readings) -> 936 train, 104 test, no
  day shared. Parsing the three files takes about 0.6 s. Values are raw MW; HDM standardises each curve
  by its own mean and std instead.
- ``aemet``: mean daily temperature (deg C) at 73 Spanish stations, 365 days, grid = day of year 1..365.
  Split: every 5th station (rows 5, 10, ..., 70 of the file, 14 stations) is test, the other 59 train.
  labels = station row number 1..73. Length scale 36.4 days (a tenth of the year, the reference's ratio).
- ``italypower``: UCR ItalyPowerDemand (z-normalised daily demand, 24 hourly points), UCR's split:
  train = ``ItalyPowerDemand_TRAIN.tsv`` (67), test = ``ItalyPowerDemand_TEST.tsv`` (1,029); test rows
  identical to a train row are dropped (measured: none). labels = class 1/2. Length scale 2.3 h.

Parsed arrays are cached per process (keyed by path and modification time).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from engine.data.dataset import FunctionDataset
from engine.data.loaders import check_path, read_table, read_ucr_tsv
from engine.errors import DataError
from engine.paths import shared_data_dir

GRIDWATCH_YEARS = (2020, 2021, 2022)
GRIDWATCH_SPLIT_SEED = 20_230_429
GRIDWATCH_TEST_FRACTION = 0.1
GRIDWATCH_RANGE_MW = (5_000.0, 70_000.0)
SLOTS_PER_DAY = 288
HOURS_24 = np.arange(24, dtype=np.float64)

_CACHE: dict[tuple, object] = {}
"""Parsed files by (kind, path, mtime) so repeated loads cost nothing."""


def functions_dir() -> Path:
    """``shared_data_dir() / "functions"``."""
    return shared_data_dir() / "functions"


def _files(name: str, folder: str, names: list[str]) -> list[Path]:
    paths = [functions_dir() / folder / n for n in names]
    for p in paths:
        if not p.is_file():
            raise DataError(f"{name}: data file {p} not found; set HDM_DATA_DIR to the shared data folder")
    return paths


def _cached(kind: str, paths: list[Path], build):
    key = (kind, *((str(p), p.stat().st_mtime_ns) for p in paths))
    if key not in _CACHE:
        _CACHE[key] = build()
    return _CACHE[key]


def _check_split(name: str, split: str) -> None:
    if split not in ("train", "test"):
        raise DataError(f"{name}: unknown split {split!r}; use 'train' or 'test'")


def _no_options(name: str, options: dict) -> None:
    if options:
        raise DataError(f"{name}: unknown option(s) {', '.join(sorted(options))}")


def drop_rows_seen_in(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Mask [N] of rows of ``values`` [N, ...] that do NOT occur (bit-identical) in ``reference`` [M, ...]."""
    ref = np.ascontiguousarray(reference, dtype=np.float64).reshape(len(reference), -1)
    seen = {row.tobytes() for row in ref}
    flat = np.ascontiguousarray(values, dtype=np.float64).reshape(len(values), -1)
    return np.array([row.tobytes() not in seen for row in flat], dtype=bool)


# ----------------------------------------------------------------------------------------------- UCR pairs
def _ucr_clean(path: Path, missing_value: float | None) -> tuple[np.ndarray, np.ndarray, int]:
    """(labels [N], values float64 [N, n], dropped) of a UCR ``.tsv`` with incomplete rows removed."""
    def build():
        labels, values, _ = read_ucr_tsv(check_path(path))
        if missing_value is not None:
            values = np.where(values == missing_value, np.nan, values)
        ok = np.isfinite(values).all(axis=1)
        return labels[ok], values[ok], int((~ok).sum())

    return _cached("ucr", [path], build)


def _ucr_pair(name: str, split: str, train: Path, test: Path, missing_value: float | None,
              ell: float) -> FunctionDataset:
    tr_labels, tr_values, tr_dropped = _ucr_clean(train, missing_value)
    if split == "train":
        labels, values, path = tr_labels, tr_values, train
        notes = [f"dropped {tr_dropped} rows with missing values"]
    else:
        labels, values, te_dropped = _ucr_clean(test, missing_value)
        fresh = drop_rows_seen_in(values, tr_values)
        notes = [f"dropped {te_dropped} rows with missing values",
                 f"dropped {int((~fresh).sum())} rows identical to a train row"]
        labels, values, path = labels[fresh], values[fresh], test
    if values.shape[1] != HOURS_24.size:
        raise DataError(f"{path}: expected 24 hourly values per row, got {values.shape[1]}")
    return FunctionDataset(name, values[:, None, :].astype(np.float32), HOURS_24,
                           f"{path} ({'; '.join(notes)})", ell, labels=labels)


def melbourne(split: str = "train", **options: object) -> FunctionDataset:
    """MelbournePedestrian hourly counts [N, 1, 24] on hours 0..23 (see module doc for the split)."""
    _no_options("melbourne", options)
    _check_split("melbourne", split)
    train, test = _files("melbourne", "melbourne",
                         ["MelbournePedestrian_TRAIN.tsv", "MelbournePedestrian_TEST.tsv"])
    return _ucr_pair("melbourne", split, train, test, -1.0, 2.3)


def italypower(split: str = "train", **options: object) -> FunctionDataset:
    """ItalyPowerDemand z-normalised hourly demand [N, 1, 24] on hours 0..23 (UCR's split)."""
    _no_options("italypower", options)
    _check_split("italypower", split)
    train, test = _files("italypower", "other/ItalyPowerDemand",
                         ["ItalyPowerDemand_TRAIN.tsv", "ItalyPowerDemand_TEST.tsv"])
    return _ucr_pair("italypower", split, train, test, None, 2.3)


# ----------------------------------------------------------------------------------------------- AEMET
def aemet(split: str = "train", **options: object) -> FunctionDataset:
    """AEMET daily temperature curves [N, 1, 365] on days 1..365; every 5th station is test."""
    _no_options("aemet", options)
    _check_split("aemet", split)
    (path,) = _files("aemet", "aemet", ["aemet.csv"])
    table = _cached("aemet", [path], lambda: read_table(path, allow_header=True, whitespace_ok=False)[0])
    if table.shape[1] != 366 or not np.isfinite(table).all():
        raise DataError(f"{path}: expected a station id then 365 finite temperatures per row, "
                        f"got {table.shape[1]} columns")
    rows = np.arange(table.shape[0])
    pick = (rows % 5 == 4) if split == "test" else (rows % 5 != 4)
    values = table[pick, 1:][:, None, :].astype(np.float32)
    return FunctionDataset("aemet", values, np.arange(1.0, 366.0), f"{path} (every 5th station is test)",
                           36.4, labels=(rows[pick] + 1).astype(np.int64))


# ----------------------------------------------------------------------------------------------- Gridwatch
def _parse_gridwatch_file(path: Path) -> np.ndarray:
    """One raw Gridwatch ``.csv.gz`` -> int64 [rows, 8]: id, Y, M, D, h, min, s, demand."""
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot be decompressed ({exc}); the file may be truncated") from None
    header, _, body = raw.partition(b"\n")
    if [c.strip() for c in header.split(b",")] != [b"id", b"timestamp", b"demand"]:
        raise DataError(f"{path}: expected the header 'id, timestamp, demand', got {header[:60]!r}")
    tokens = body.translate(bytes.maketrans(b"-:,", b"   ")).split()
    try:
        table = np.array(tokens, dtype=np.int64)
    except ValueError:
        table = np.zeros(1, dtype=np.int64)  # size check below then finds the bad row
    rows = sum(1 for line in body.splitlines() if line.strip())
    if table.size != 8 * rows:
        _raise_bad_gridwatch_row(path, body)
    return table.reshape(-1, 8)


def _raise_bad_gridwatch_row(path: Path, body: bytes) -> None:
    for k, line in enumerate(body.split(b"\n")):
        if not line.strip():
            continue
        parts = line.translate(bytes.maketrans(b"-:,", b"   ")).split()
        if len(parts) != 8 or not all(p.isdigit() for p in parts):
            raise DataError(f"{path}: row {k + 2} is not 'id, YYYY-MM-DD hh:mm:ss, demand': {line[:60]!r}")
    raise DataError(f"{path}: could not read the readings; check the file")  # pragma: no cover


def parse_gridwatch(paths: list[Path]) -> tuple[np.ndarray, np.ndarray, int]:
    """Daily curves from raw Gridwatch files: (dates datetime64[D] [D], MW float64 [D, 288], days seen)."""
    t = np.concatenate([_parse_gridwatch_file(p) for p in paths])
    year, month, day, hour, minute, demand = t[:, 1], t[:, 2], t[:, 3], t[:, 4], t[:, 5], t[:, 7]
    if ((month < 1) | (month > 12) | (day < 1) | (day > 31) | (hour > 23) | (minute > 59)).any():
        raise DataError(f"{paths[0].parent}: a Gridwatch timestamp is out of range (month/day/hour/minute)")
    months = ((year - 1970) * 12 + month - 1).astype("datetime64[M]")
    dates = months.astype("datetime64[D]") + (day - 1).astype("timedelta64[D]")
    days, day_idx = np.unique(dates, return_inverse=True)
    slot = (hour * 60 + minute) // 5
    key = day_idx * SLOTS_PER_DAY + slot
    counts = np.bincount(key, minlength=days.size * SLOTS_PER_DAY).reshape(days.size, SLOTS_PER_DAY)
    curves = np.zeros((days.size, SLOTS_PER_DAY))
    curves[day_idx, slot] = demand
    lo, hi = GRIDWATCH_RANGE_MW
    keep = (counts == 1).all(axis=1) & ((curves >= lo) & (curves <= hi)).all(axis=1)
    if not keep.any():
        raise DataError(f"{paths[0].parent}: no complete day (288 five-minute readings within "
                        "5,000..70,000 MW) in the Gridwatch files")
    return days[keep], curves[keep], int(days.size)


def gridwatch_split_indices(n_days: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) day indices, each sorted: one fixed permutation, first 10 % (rounded) to test."""
    perm = np.random.default_rng(GRIDWATCH_SPLIT_SEED).permutation(n_days)
    n_test = int(round(GRIDWATCH_TEST_FRACTION * n_days))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def gridwatch(split: str = "train", **options: object) -> FunctionDataset:
    """GB daily demand curves [N, 1, 288] in MW on hours 0..23+11/12 (see module doc for cleaning/split)."""
    _no_options("gridwatch", options)
    _check_split("gridwatch", split)
    paths = _files("gridwatch", "gridwatch", [f"gridwatch_{y}.csv.gz" for y in GRIDWATCH_YEARS])
    dates, curves, seen = _cached("gridwatch", paths, lambda: parse_gridwatch(paths))
    train_idx, test_idx = gridwatch_split_indices(len(dates))
    idx = train_idx if split == "train" else test_idx
    values, days = curves[idx], dates[idx]
    note = ""
    if split == "test":
        fresh = drop_rows_seen_in(values, curves[train_idx])
        values, days = values[fresh], days[fresh]
        note = f", {int((~fresh).sum())} test days identical to a train day dropped"
    weekday = (days.astype(np.int64) + 3) % 7
    source = (f"{paths[0].parent}/gridwatch_{GRIDWATCH_YEARS[0]}..{GRIDWATCH_YEARS[-1]}.csv.gz: "
              f"{len(dates)} of {seen} days complete and within 5,000..70,000 MW; "
              f"split seed {GRIDWATCH_SPLIT_SEED}, "
              f"{len(test_idx)} test / {len(train_idx)} train days{note}")
    grid = np.arange(SLOTS_PER_DAY, dtype=np.float64) / 12.0
    return FunctionDataset("gridwatch", values[:, None, :].astype(np.float32), grid, source, 2.16,
                           labels=weekday)
