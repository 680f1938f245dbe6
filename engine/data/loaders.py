"""Readers for curve files; each returns a validated :class:`FunctionDataset`.

Supported formats (chosen by extension):

- ``.csv`` / ``.txt``: one curve per row, separated by tabs, semicolons, commas (detected in that order from
  the first row) or else blanks (``numpy.savetxt``); an optional first row of names is a header when none of
  its cells is a number, and a header whose first cell is empty (pandas ``to_csv``, R ``write.csv``) marks
  column 1 as a row index, which is dropped.
- ``.tsv`` (UCR 2018): no header, tab/space separated, column 0 = class label, the rest = the curve.
- ``.ts`` (sktime): ``@`` header lines, then ``@data`` and one line per case ``v1,v2,...:label``; several
  channels are ``ch1:ch2:...:label``. ``?`` (missing) is an error.
- ``.arff`` (Weka/timeseriesclassification.com): numeric ``@attribute`` columns then an optional class
  attribute. Rows holding ``?`` are dropped (as the HDM reference does) and the count is kept in ``source``.
- ``.npy`` / ``.npz``: an array [N, n] or [N, C, n]; an ``.npz`` takes key ``values``, ``samples`` or its only
  array, plus optional ``grid`` [n] and ``labels`` [N]. Pickled/object arrays are refused.
- ``.h5`` / ``.hdf5``: dataset ``samples``, ``values`` or ``data`` [N, n] or [N, C, n], optional ``grid``
  and ``labels``.

Files without a grid get ``grid = 0, 1, ..., n-1`` (sample index) and a default noise length scale of a tenth
of the domain (the ratio the HDM reference uses: length 2 on [-10, 10]). Every problem raises a one-line
:class:`DataError` naming the file (and the row/column where that helps).
"""

from __future__ import annotations

import re
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.data.dataset import FunctionDataset
from engine.errors import DataError

DEFAULT_LENGTH_FRACTION = 0.1
"""Default noise length scale of a file, as a fraction of its domain width."""


# ----------------------------------------------------------------------------------------------- helpers
def check_path(path: str | Path) -> Path:
    """``path`` as a Path; DataError when it is missing or a folder."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p}: file not found; check the path")
    if p.is_dir():
        raise DataError(f"{p}: is a folder, not a data file; give one of the files inside it")
    return p


def read_text(path: Path) -> str:
    """The file's text (UTF-8, BOM stripped); DataError for binary or empty files."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: is not a UTF-8 text file (byte {exc.start}); save it as plain text") \
            from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror}); check its permissions") from None
    if not text.strip():
        raise DataError(f"{path}: the file is empty; it needs one curve per row")
    return text


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _split(line: str, delimiter: str | None) -> list[str]:
    cells = line.split() if delimiter is None else line.split(delimiter)
    return [c.strip().strip('"').strip("'").strip() for c in cells]


def _detect_delimiter(line: str, whitespace_ok: bool) -> str | None:
    for d in ("\t", ";", ","):
        if d in line:
            return d
    return None if whitespace_ok else ","


def to_float_rows(rows: list[list[str]], line_numbers: list[int], path: Path,
                  column_offset: int = 0) -> np.ndarray:
    """Equal-length rows of strings -> float64 [rows, cols]; DataError naming the first bad cell."""
    try:
        return np.array(rows, dtype=np.float64).reshape(len(rows), -1)
    except ValueError:
        pass
    for row, line in zip(rows, line_numbers):
        for j, cell in enumerate(row):
            where = f"{path}: row {line}, column {j + 1 + column_offset}"
            if cell == "":
                raise DataError(f"{where} is empty; fill or remove it")
            if not _is_number(cell):
                raise DataError(f"{where}: {cell!r} is not a number")
    raise DataError(f"{path}: could not read the numbers; check the separators")  # pragma: no cover


def check_ragged(lengths: list[int], line_numbers: list[int], path: Path, what: str = "values") -> int:
    """The common row length; DataError naming the first row whose length differs from the most common."""
    expected = Counter(lengths).most_common(1)[0][0]
    for length, line in zip(lengths, line_numbers):
        if length != expected:
            raise DataError(f"{path}: row {line} has {length} {what}, expected {expected}")
    return expected


def read_table(path: Path, *, allow_header: bool, whitespace_ok: bool,
               index_column: bool = False) -> tuple[np.ndarray, list[int], bool]:
    """A delimited numeric table.

    Args:
        path: the text file.
        allow_header: a first row without any number is a header and is skipped.
        whitespace_ok: split on runs of blanks when the first row has no tab, semicolon or comma.
        index_column: when the header's first cell is empty (how pandas ``to_csv`` and R ``write.csv``
            mark their row names), drop column 0 as a row index.

    Returns:
        float64 [rows, cols] (NaN allowed), each row's 1-based line number, and whether an index column
        was dropped.
    """
    text = read_text(path)
    lines = [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip()]
    delimiter = _detect_delimiter(lines[0][1], whitespace_ok)
    rows = [_split(line, delimiter) for _, line in lines]
    numbers = [i for i, _ in lines]
    drop = False
    if allow_header and not any(_is_number(c) for c in rows[0]):
        drop = index_column and len(rows[0]) > 1 and rows[0][0] == ""
        rows, numbers = rows[1:], numbers[1:]
        if not rows:
            raise DataError(f"{path}: the file holds only a header row and no curves")
    if drop:
        rows = [r[1:] for r in rows]
    check_ragged([len(r) for r in rows], numbers, path)
    return to_float_rows(rows, numbers, path, column_offset=int(drop)), numbers, drop


def check_finite_rows(values: np.ndarray, line_numbers: list[int] | None, path: Path) -> None:
    """DataError when any curve of ``values`` [N, ...] holds NaN or inf."""
    bad = ~np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
    if bad.any():
        first = int(np.argmax(bad))
        where = f"row {line_numbers[first]}" if line_numbers is not None else f"curve {first}"
        count = int(bad.sum())
        rows = f"{count} rows contain" if count > 1 else "1 row contains"
        raise DataError(f"{path}: {rows} NaN or inf (first: {where}); "
                        "remove or impute them")


def tidy_labels(labels: np.ndarray) -> np.ndarray:
    """Numeric labels as int64 when they are all whole numbers; other labels unchanged."""
    if labels.dtype.kind == "f" and np.isfinite(labels).all() and (labels == np.round(labels)).all():
        return labels.astype(np.int64)
    if labels.dtype.kind in "US":
        try:
            return tidy_labels(labels.astype(np.float64))
        except ValueError:
            return labels
    return labels


def make_dataset(path: Path, values: np.ndarray, *, grid: np.ndarray | None = None,
                 labels: np.ndarray | None = None, note: str = "") -> FunctionDataset:
    """Shape-check ``values`` ([N, n] or [N, C, n]) and wrap it with the default grid/length scale."""
    values = np.asarray(values)
    if values.ndim == 2:
        values = values[:, None, :]
    if values.ndim != 3:
        raise DataError(f"{path}: expected an array [N, n] or [N, C, n], "
                        f"got {values.ndim}-D shape {values.shape}")
    if values.shape[0] == 0:
        raise DataError(f"{path}: the file holds no curves")
    if values.shape[-1] < 2:
        raise DataError(f"{path}: curves need at least 2 points, got {values.shape[-1]} column(s)")
    if values.dtype.kind not in "fiub":
        raise DataError(f"{path}: values must be real numbers, got dtype {values.dtype}")
    check_finite_rows(values, None, path)
    if values.dtype.kind == "f" and np.abs(values).max() > np.finfo(np.float32).max:
        raise DataError(f"{path}: values exceed the float32 range (|x| > 3.4e38); rescale them")
    n = values.shape[-1]
    if grid is None:
        grid = np.arange(n, dtype=np.float64)
    else:
        grid = _checked_grid(path, grid, n)
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if labels.shape[0] != values.shape[0]:
            raise DataError(f"{path}: {labels.shape[0]} labels for {values.shape[0]} curves")
    source = str(path.resolve()) + (f" ({note})" if note else "")
    ell = DEFAULT_LENGTH_FRACTION * float(grid[-1] - grid[0])
    try:
        return FunctionDataset(path.stem, values.astype(np.float32), grid, source, ell, labels=labels)
    except DataError as exc:  # pragma: no cover - make_dataset checks first; keep the file name regardless
        raise DataError(f"{path}: {exc}") from None


def _checked_grid(path: Path, grid: np.ndarray, n: int) -> np.ndarray:
    grid = np.asarray(grid)
    if grid.dtype.kind not in "fiu" or grid.shape != (n,):
        raise DataError(f"{path}: 'grid' must be {n} numbers (one per point), got shape {grid.shape}")
    grid = grid.astype(np.float64)
    if not np.isfinite(grid).all() or not (np.diff(grid) > 0).all():
        raise DataError(f"{path}: 'grid' must be finite and strictly increasing")
    return grid


# ----------------------------------------------------------------------------------------------- text formats
def load_csv(path: str | Path) -> FunctionDataset:
    """One curve per row; comma, semicolon, tab or blank separated; optional header row. Returns [N, 1, n].

    A header whose first cell is empty marks column 1 as a row index (pandas/R style); it is dropped.
    """
    p = check_path(path)
    values, numbers, dropped_index = read_table(p, allow_header=True, whitespace_ok=True, index_column=True)
    if values.shape[1] < 2:
        raise DataError(f"{p}: rows have {values.shape[1]} value(s); a curve needs at least 2 columns")
    check_finite_rows(values, numbers, p)
    note = "column 1 (empty header name) read as a row index and dropped" if dropped_index else ""
    return make_dataset(p, values, note=note)


def read_ucr_tsv(path: Path) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """A UCR 2018 ``.tsv``: (labels [N], values float64 [N, n] with NaN kept, line numbers)."""
    table, numbers, _ = read_table(path, allow_header=False, whitespace_ok=True)
    if table.shape[1] < 3:
        raise DataError(f"{path}: rows have {table.shape[1]} column(s); "
                        "a UCR row is a label then >= 2 values")
    return tidy_labels(table[:, 0]), table[:, 1:], numbers


def load_ucr_tsv(path: str | Path) -> FunctionDataset:
    """UCR ``.tsv``: column 0 = class label (-> ``labels``), the rest = one curve. Returns [N, 1, n]."""
    p = check_path(path)
    labels, values, numbers = read_ucr_tsv(p)
    check_finite_rows(values, numbers, p)
    return make_dataset(p, values, labels=labels)


def _ts_header(lines: list[tuple[int, str]], path: Path) -> tuple[int, bool | None]:
    """Index of the first data line and whether cases end with a class label (None: not stated)."""
    has_label: bool | None = None
    for k, (_, line) in enumerate(lines):
        low = line.lower()
        if low.startswith(("@classlabel", "@targetlabel")):
            has_label = len(low.split()) > 1 and low.split()[1] == "true"
        elif low.startswith("@data"):
            return k + 1, has_label
    raise DataError(f"{path}: no '@data' line; is this an sktime .ts file?")


def _ts_case(line: str, lineno: int, has_label: bool | None,
             path: Path) -> tuple[list[list[str]], str | None]:
    parts = line.split(":")
    if has_label is None:
        has_label = len(parts) > 1 and "," not in parts[-1]
    label = parts.pop().strip() if has_label else None
    if not parts:
        raise DataError(f"{path}: row {lineno} has a label but no values")
    channels = [[c.strip() for c in part.split(",")] for part in parts]
    for c, cells in enumerate(channels):
        if "?" in cells:
            raise DataError(f"{path}: row {lineno}, channel {c + 1} has a missing value '?'; "
                            "impute it or remove the case")
    return channels, label


def load_ts(path: str | Path) -> FunctionDataset:
    """sktime ``.ts``: ``v1,...,vn[:w1,...,wn]:label`` per line -> [N, C, n] with ``labels``."""
    p = check_path(path)
    lines = [(i + 1, ln.strip()) for i, ln in enumerate(read_text(p).splitlines())]
    lines = [(i, ln) for i, ln in lines if ln and not ln.startswith("#")]
    start, has_label = _ts_header(lines, p)
    data = lines[start:]
    if not data:
        raise DataError(f"{p}: no cases after '@data'")
    cases = [_ts_case(ln, i, has_label, p) for i, ln in data]
    numbers = [i for i, _ in data]
    check_ragged([len(ch) for ch, _ in cases], numbers, p, what="channel(s)")
    flat = [cell for ch, _ in cases for cell in ch]
    flat_numbers = [i for (ch, _), i in zip(cases, numbers) for _ in ch]
    check_ragged([len(c) for c in flat], flat_numbers, p, what="values per channel")
    values = to_float_rows(flat, flat_numbers, p).reshape(len(cases), len(cases[0][0]), -1)
    check_finite_rows(values, numbers, p)
    labels = None
    if all(lab is not None for _, lab in cases):
        labels = tidy_labels(np.array([lab for _, lab in cases]))
    return make_dataset(p, values, labels=labels)


_ARFF_ATTRIBUTE = re.compile(r"""@attribute\s+('[^']*'|"[^"]*"|\S+)\s+(.*)""")


def _arff_attributes(lines: list[tuple[int, str]], path: Path) -> tuple[int, list[bool]]:
    """Index of the first data line and, per attribute, whether it is numeric."""
    numeric: list[bool] = []
    for k, (lineno, line) in enumerate(lines):
        low = line.lower()
        if low.startswith("@attribute"):
            match = _ARFF_ATTRIBUTE.match(low)
            kind = match.group(2).strip() if match else ""
            if kind.startswith("relational"):
                raise DataError(f"{path}: row {lineno}: relational (multivariate) ARFF attributes are not "
                                "supported; convert the file to .ts or .npy")
            numeric.append(kind.split()[0] in ("numeric", "real", "integer") if kind else False)
        elif low.startswith("@data"):
            return k + 1, numeric
    raise DataError(f"{path}: no '@data' line; is this an ARFF file?")


def load_arff(path: str | Path) -> FunctionDataset:
    """ARFF: numeric attributes = the curve, a trailing non-numeric attribute = ``labels``. Returns [N, 1, n].

    Rows holding a missing value ``?`` are dropped; their count is recorded in ``source``.
    """
    p = check_path(path)
    lines = [(i + 1, ln.strip()) for i, ln in enumerate(read_text(p).splitlines())]
    lines = [(i, ln) for i, ln in lines if ln and not ln.startswith("%")]
    start, numeric = _arff_attributes(lines, p)
    n_values = sum(numeric)
    has_label = bool(numeric) and not numeric[-1]
    if n_values != len(numeric) - int(has_label):
        raise DataError(f"{p}: only numeric attributes and one final class attribute are supported")
    data = lines[start:]
    if not data:
        raise DataError(f"{p}: no rows after '@data'")
    if any(ln.startswith("{") for _, ln in data):
        raise DataError(f"{p}: sparse ARFF rows ('{{...}}') are not supported; save the file as dense ARFF")
    rows = [_split(ln, ",") for _, ln in data]
    numbers = [i for i, _ in data]
    for row, lineno in zip(rows, numbers):
        if len(row) != len(numeric):
            raise DataError(f"{p}: row {lineno} has {len(row)} values, "
                            f"expected {len(numeric)} (one per @attribute)")
    keep = [k for k, row in enumerate(rows) if "?" not in row[:n_values]]
    dropped = len(rows) - len(keep)
    if not keep:
        raise DataError(f"{p}: every row has a missing value '?'; no curves left")
    rows, numbers = [rows[k] for k in keep], [numbers[k] for k in keep]
    values = to_float_rows([r[:n_values] for r in rows], numbers, p)
    check_finite_rows(values, numbers, p)
    labels = tidy_labels(np.array([r[-1] for r in rows])) if has_label else None
    note = f"dropped {dropped} rows with missing values '?'" if dropped else ""
    return make_dataset(p, values, labels=labels, note=note)


# -------------------------------------------------------------------------------------------- binary formats
def load_numpy(path: str | Path) -> FunctionDataset:
    """``.npy`` [N, n] / [N, C, n], or ``.npz`` with ``values``/``samples``/only array (+ ``grid``)."""
    p = check_path(path)
    try:
        loaded = np.load(p, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                arrays = {k: loaded[k] for k in loaded.files}
            return _from_npz(p, arrays)
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{p}: cannot be read as a NumPy file ({_why(p, exc)}); "
                        "save it with numpy.save or numpy.savez") from None
    return make_dataset(p, loaded)


def _why(path: Path, exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "pickle" in text.lower():
        with path.open("rb") as f:
            head = f.read(6)
        if head.startswith((b"\x93NUMPY", b"PK")):
            return "it holds Python objects, which are not loaded for safety"
        return "it is not in .npy/.npz format"
    return text


def _from_npz(path: Path, arrays: dict[str, np.ndarray]) -> FunctionDataset:
    for key in ("values", "samples"):
        if key in arrays:
            values = arrays[key]
            break
    else:
        others = [k for k in arrays if k not in ("grid", "labels")]
        if len(others) != 1:
            raise DataError(f"{path}: expected an array named 'values' or 'samples' (found {sorted(arrays)})")
        values = arrays[others[0]]
    return make_dataset(path, values, grid=arrays.get("grid"), labels=arrays.get("labels"))


def load_hdf5(path: str | Path) -> FunctionDataset:
    """HDF5: dataset ``samples``, ``values`` or ``data`` [N, n] / [N, C, n]; optional ``grid``, ``labels``."""
    import h5py

    p = check_path(path)
    try:
        with h5py.File(p, "r") as f:
            key = next((k for k in ("samples", "values", "data") if k in f), None)
            if key is None or not isinstance(f[key], h5py.Dataset):
                raise DataError(f"{p}: no dataset named 'samples', 'values' or 'data' "
                                f"(found {sorted(f.keys())})")
            values = f[key][()]
            grid = f["grid"][()] if isinstance(f.get("grid"), h5py.Dataset) else None
            labels = f["labels"][()] if isinstance(f.get("labels"), h5py.Dataset) else None
    except DataError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise DataError(f"{p}: cannot be read as HDF5 ({_why(p, exc)}); "
                        "the file may be truncated or not HDF5") from None
    return make_dataset(p, values, grid=grid, labels=labels)


# ----------------------------------------------------------------------------------------------- dispatch
LOADERS: dict[str, Callable[[str | Path], FunctionDataset]] = {
    ".csv": load_csv,
    ".txt": load_csv,
    ".tsv": load_ucr_tsv,
    ".ts": load_ts,
    ".arff": load_arff,
    ".npy": load_numpy,
    ".npz": load_numpy,
    ".h5": load_hdf5,
    ".hdf5": load_hdf5,
}
"""File loaders by lower-case extension."""


def load_file(path: str | Path) -> FunctionDataset:
    """Load a curve file, choosing the reader by its extension (see :data:`LOADERS`)."""
    p = Path(path).expanduser()
    loader = LOADERS.get(p.suffix.lower())
    if loader is None:
        raise DataError(f"{p}: unknown file type {p.suffix or '(no extension)'!r}; "
                        f"use one of {', '.join(sorted(LOADERS))}")
    return loader(p)
