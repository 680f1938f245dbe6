"""Readers for curve files; each returns a validated :class:`FunctionDataset`.

Supported formats (chosen by extension):

- ``.csv`` / ``.txt``: one curve per row, separated by tabs, semicolons, commas (detected in that order from
  the first row) or else blanks (``numpy.savetxt``). Row 1 is a header, not a curve, when (see :func:`load_csv`)
  none of its cells is a number (names), or it is exactly ``0,1,...,n-1`` written as whole numbers (pandas'
  column labels, ``DataFrame(array).to_csv(index=False)``), or its first cell is empty and column 1 below it
  is a row index ``0..N-1`` or ``1..N`` (pandas ``to_csv()``, R ``write.csv``). A header whose first cell is
  empty marks column 1 as a row index, which is dropped. A file whose header starts ``channel,sample,seed``
  is an ``hdm export --format csv`` file: read back as [N, C, n] on the grid named by the header.
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

import logging
import re
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from engine.data.dataset import FunctionDataset
from engine.errors import DataError

log = logging.getLogger(__name__)

DEFAULT_LENGTH_FRACTION = 0.1
IN_MEMORY_SOURCE = "an array given in memory"  # array_dataset's source: no file holds these data
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


def text_rows(path: Path, *, whitespace_ok: bool) -> tuple[list[list[str]], list[int], str | None]:
    """The file's non-blank lines split into cells, their line numbers, and the delimiter detected from row 1
    (None: runs of blanks)."""
    text = read_text(path)
    lines = [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip()]
    delimiter = _detect_delimiter(lines[0][1], whitespace_ok)
    return [_split(line, delimiter) for _, line in lines], [i for i, _ in lines], delimiter


def _is_column_labels(cells: list[str]) -> bool:
    """``cells`` are exactly ``0, 1, ..., len-1`` written as whole numbers (pandas' default column labels)."""
    return len(cells) > 1 and all(cell == str(k) for k, cell in enumerate(cells))


def _is_row_index(cells: list[str]) -> bool:
    """``cells`` are ``0, 1, ..., N-1`` (pandas) or ``1, ..., N`` (R) written as whole numbers."""
    if not cells or cells[0] not in ("0", "1"):
        return False
    first = int(cells[0])
    return all(cell == str(first + k) for k, cell in enumerate(cells))


def _header(rows: list[list[str]], path: Path, index_column: bool, delimited: bool) -> tuple[bool, bool]:
    """Whether row 1 is a header, and whether column 1 is a row index to drop (see :func:`load_csv`).

    Column numbers count as a header in delimited files only (pandas writes commas): a blank-separated
    ``numpy.savetxt`` file whose first curve happens to be 0, 1, ..., n-1 keeps it."""
    first = rows[0]
    if not any(_is_number(c) for c in first):  # names (an empty first cell = row names below)
        return True, index_column and len(first) > 1 and first[0] == ""
    if delimited and _is_column_labels(first):
        log.warning("%s: row 1 (%s) is read as a header of column numbers (pandas to_csv), not as a curve",
                    path, _abbreviate(first))
        return True, False
    if len(first) > 1 and first[0] == "" and len(rows) > 1 and _is_row_index([r[0] for r in rows[1:]]):
        index = f"{rows[1][0]}..{rows[-1][0]}"
        if index_column:
            log.warning("%s: row 1 (%s) is read as a header and column 1 (%s) as a row index, which is "
                        "dropped (pandas to_csv / R write.csv layout)", path, _abbreviate(first), index)
        else:
            log.warning("%s: row 1 (%s) is read as a header (its first cell is empty and column 1 is %s)",
                        path, _abbreviate(first), index)
        return True, index_column
    return False, False


def _abbreviate(cells: list[str]) -> str:
    return ",".join(cells) if len(cells) <= 6 else ",".join(cells[:3]) + ",...," + ",".join(cells[-2:])


def _check_first_row(row: list[str], line: int, path: Path) -> None:
    """DataError for a first row that is neither a header nor a curve: names mixed with numbers, or an empty
    first cell (a header over row names that are not a plain 0..N-1 / 1..N index)."""
    for j, cell in enumerate(row):
        if cell != "" and not _is_number(cell):
            raise DataError(f"{path}: row {line}, column {j + 1}: {cell!r} is not a number, yet row {line} also "
                            "holds numbers; a header row must name every column (or be the column numbers "
                            "0,1,...,n-1), so rename its numeric cells or delete the row")
    if len(row) > 1 and row[0] == "" and all(row[1:]):
        raise DataError(f"{path}: row {line}, column 1 is empty; fill it, or if row {line} is a header over "
                        "row names, save the file without them (pandas to_csv(index=False))")


def read_table(path: Path, *, allow_header: bool, whitespace_ok: bool,
               index_column: bool = False) -> tuple[np.ndarray, list[int], bool]:
    """A delimited numeric table.

    Args:
        path: the text file.
        allow_header: row 1 may be a header, which is skipped: a row without any number, the column numbers
            ``0,1,...,n-1``, or a row whose first cell is empty above a row index (see :func:`load_csv`).
        whitespace_ok: split on runs of blanks when the first row has no tab, semicolon or comma.
        index_column: when the header's first cell is empty (how pandas ``to_csv`` and R ``write.csv``
            mark their row names), drop column 0 as a row index.

    Returns:
        float64 [rows, cols] (NaN allowed), each row's 1-based line number, and whether an index column
        was dropped.
    """
    rows, numbers, delimiter = text_rows(path, whitespace_ok=whitespace_ok)
    return _numeric_table(rows, numbers, path, allow_header=allow_header, index_column=index_column,
                          delimited=delimiter is not None)


def _numeric_table(rows: list[list[str]], numbers: list[int], path: Path, *, allow_header: bool,
                   index_column: bool, delimited: bool = True) -> tuple[np.ndarray, list[int], bool]:
    header, drop = _header(rows, path, index_column, delimited) if allow_header else (False, False)
    if header:
        rows, numbers = rows[1:], numbers[1:]
        if not rows:
            raise DataError(f"{path}: the file holds only a header row and no curves")
    elif allow_header:
        _check_first_row(rows[0], numbers[0], path)
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


def make_dataset(path: Path | str, values: np.ndarray, *, grid: np.ndarray | None = None,
                 labels: np.ndarray | None = None, note: str = "", source: str | None = None) -> FunctionDataset:
    """Shape-check ``values`` ([N, n] or [N, C, n]) and wrap it with the default grid/length scale.

    ``path`` names the file in messages and gives the dataset its name (the stem) and source (the resolved path
    and ``note``) unless ``source`` is given (data that come from no file: :func:`array_dataset`)."""
    path = Path(path)
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
    if source is None:
        source = str(path.resolve()) + (f" ({note})" if note else "")
    ell = DEFAULT_LENGTH_FRACTION * float(grid[-1] - grid[0])
    try:
        return FunctionDataset(path.stem, values.astype(np.float32), grid, source, ell, labels=labels)
    except DataError as exc:  # pragma: no cover - make_dataset checks first; keep the file name regardless
        raise DataError(f"{path}: {exc}") from None


def array_dataset(values: Any, grid: Any = None, *, name: str = "array", labels: Any = None) -> FunctionDataset:
    """Curves held in memory as a dataset to train on (``api.train(..., dataset=)``): ``values`` a numpy array
    or torch tensor [N, n] or [N, C, n], ``grid`` its n points (default ``0, 1, ..., n-1``), checked as a file's
    (finite values, a strictly increasing grid). Its source says it came from no file: a run trained on it
    records ``in-memory:NAME`` as its data, and resuming it needs the same array again.
    """
    if not isinstance(name, str) or not name.strip() or any(c in name for c in "/\\:"):
        raise DataError(f"an in-memory dataset needs a plain name (no / \\ or :), got {name!r}")
    if hasattr(values, "detach") and hasattr(values, "cpu"):  # a torch tensor, without importing torch
        values = values.detach().cpu().numpy()
    if hasattr(grid, "detach") and hasattr(grid, "cpu"):
        grid = grid.detach().cpu().numpy()
    return make_dataset(name, values, grid=grid, labels=labels, source=f"{IN_MEMORY_SOURCE} ({name})")


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
    """One curve per row; comma, semicolon, tab or blank separated; optional header row. Returns [N, 1, n]
    ([N, C, n] for an hdm export).

    Row 1 is a header (skipped, never a curve) when

    1. none of its cells is a number (column names); or
    2. the file is comma, semicolon or tab separated and row 1's cells are exactly ``0,1,...,n-1`` written as
       whole numbers (``0.0`` or ``1e0`` do not count): the column labels
       ``pandas.DataFrame(array).to_csv(index=False)`` writes (a blank-separated ``numpy.savetxt`` file keeps
       such a first row as a curve); or
    3. its first cell is empty and column 1 of every later row is ``0,1,...,N-1`` or ``1,...,N`` written as
       whole numbers: the row index ``DataFrame.to_csv()`` / R ``write.csv`` write, whatever the labels.

    Otherwise row 1 is a curve; a row 1 mixing names and numbers is an error. Cases 2 and 3 are logged as
    warnings (``engine.data.loaders``), so a file whose first curve really is the ramp ``0..n-1`` is not
    dropped silently. A header whose first cell is empty (cases 1 and 3) marks column 1 as a row index,
    which is dropped. The grid is ``0..n-1`` with or without a header (header labels are not read as
    coordinates).

    A header starting ``channel,sample,seed`` (``hdm export --format csv``) is read as that export: see
    :func:`read_export_csv`.
    """
    p = check_path(path)
    rows, numbers, delimiter = text_rows(p, whitespace_ok=True)
    if [c.lower() for c in rows[0][:3]] == list(EXPORT_HEADER):
        return read_export_csv(p, rows, numbers)
    values, numbers, dropped_index = _numeric_table(rows, numbers, p, allow_header=True, index_column=True,
                                                    delimited=delimiter is not None)
    if values.shape[1] < 2:
        raise DataError(f"{p}: rows have {values.shape[1]} value(s); a curve needs at least 2 columns")
    check_finite_rows(values, numbers, p)
    note = "column 1 (empty header name) read as a row index and dropped" if dropped_index else ""
    return make_dataset(p, values, note=note)


EXPORT_HEADER = ("channel", "sample", "seed")
"""The first header cells of ``hdm export --format csv`` (engine.io.samples.export_csv)."""


def read_export_csv(path: Path, rows: list[list[str]], numbers: list[int]) -> FunctionDataset:
    """An ``hdm export --format csv`` file -> [N, C, n] on the header's grid.

    Header ``channel,sample,seed,<grid values>``; then one row ``c,i,seed,<values>`` per sample ``i`` and
    channel ``c``. Rows are grouped by sample (in increasing sample number) and stacked by channel; every
    sample needs each channel ``0..C-1`` exactly once. Seeds are not checked.
    """
    header, body, lines = rows[0], rows[1:], numbers[1:]
    what = "the hdm CSV export header"
    grid_cells = header[len(EXPORT_HEADER):]
    if len(grid_cells) < 2:
        raise DataError(f"{path}: row {numbers[0]}: {what} names {len(grid_cells)} grid point(s) after "
                        "'channel,sample,seed'; a curve needs at least 2")
    for j, cell in enumerate(grid_cells, start=len(EXPORT_HEADER) + 1):
        if not _is_number(cell):
            raise DataError(f"{path}: row {numbers[0]}, column {j}: {cell!r} is not a grid value; {what} "
                            "must continue with one number per point")
    grid = np.array(grid_cells, dtype=np.float64)
    if not np.isfinite(grid).all() or not (np.diff(grid) > 0).all():
        raise DataError(f"{path}: row {numbers[0]}: the grid values of {what} must be finite and strictly "
                        "increasing; fix the header or export the sample file again")
    if not body:
        raise DataError(f"{path}: the file holds only a header row and no curves")
    for row, line in zip(body, lines):
        if len(row) != len(header):
            raise DataError(f"{path}: row {line} has {len(row)} values, expected {len(header)} (channel, "
                            f"sample, seed and one value per grid point of the header)")
    table = to_float_rows(body, lines, path)
    check_finite_rows(table[:, len(EXPORT_HEADER):], lines, path)
    for j, name in enumerate(EXPORT_HEADER[:2]):
        col = table[:, j]
        bad = ~((col >= 0) & (col < 2**31) & (col == np.round(col)))
        if bad.any():
            k = int(np.argmax(bad))
            raise DataError(f"{path}: row {lines[k]}, column {j + 1}: {name} {body[k][j]!r} must be a whole "
                            "number >= 0")
    at: dict[int, dict[int, int]] = {}  # sample -> channel -> index into body
    for k, (c, i) in enumerate(zip(table[:, 0].astype(np.int64).tolist(), table[:, 1].astype(np.int64).tolist())):
        channels = at.setdefault(i, {})
        if c in channels:
            raise DataError(f"{path}: row {lines[k]} repeats channel {c} of sample {i} (first at row "
                            f"{lines[channels[c]]}); each sample needs each channel once, so remove one of them")
        channels[c] = k
    n_channels = 1 + max(max(channels) for channels in at.values())
    for i in sorted(at):
        missing = [c for c in range(n_channels) if c not in at[i]]
        if missing:
            raise DataError(f"{path}: row {lines[min(at[i].values())]}: sample {i} has no channel {missing[0]} "
                            f"(the file has channels 0..{n_channels - 1}); every sample needs all of them, so "
                            "add the missing rows or remove the sample's rows")
    order = np.array([[at[i][c] for c in range(n_channels)] for i in sorted(at)])
    values = table[:, len(EXPORT_HEADER):][order]
    note = f"hdm CSV export: {values.shape[0]} samples x {n_channels} channel(s)"
    return make_dataset(path, values, grid=grid, note=note)


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
