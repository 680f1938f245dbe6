"""Atomic file writes: a reader never sees a half-written file.

Every writer goes through a temporary file in the destination's directory (same file
system, so the final :func:`os.replace` is atomic), fsyncs it, then renames it over the
destination. If anything fails, the temporary file is removed and an existing destination
is left byte-for-byte untouched.

A destination that cannot be written (an existing folder where a file is expected, a parent
that is a file, no permission, a read-only or full file system) raises
:class:`~engine.errors.OutputError` with one line naming the path and the reason, never a bare
``OSError``. :func:`check_writable` raises the same error up front, before a long computation,
without leaving anything behind; :func:`check_not_input` refuses an output that is one of the
inputs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from engine.errors import OutputError

__all__ = ["CSV_SUFFIXES", "FILE_SUFFIXES", "HDF5_SUFFIXES", "atomic_path", "atomic_paths", "atomic_write_bytes",
           "atomic_write_text", "check_not_input", "check_output_name", "check_replaceable", "check_writable",
           "hdf5_schema", "same_file"]


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp creates files 0600; finished files get the usual permissions (read once, at import).
_FILE_MODE = 0o666 & ~_read_umask()

# errno -> why the location cannot be written (the part after "cannot write here: ").
_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied (operation not permitted)",
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.ENAMETOOLONG: "the name is too long",
    errno.ENOENT: "files cannot be created at this location",
    errno.ELOOP: "too many levels of symbolic links",
}
# Errors a writer may raise mid-write that are about the destination, not about the writer's input.
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def _exists(p: Path) -> bool:
    """Whether anything (a broken symbolic link included) is at ``p``; errors count as nothing."""
    try:
        return os.path.lexists(p)
    except (OSError, ValueError):
        return False


def _diagnose(target: Path, folder: bool) -> str | None:
    """Why ``target`` cannot be a file (``folder=False``) or a folder, judged from the disk; None if no clear reason."""
    if _exists(target):
        if folder and not target.is_dir():
            return "it is a file, not a folder" if target.is_file() else "it exists and is not a folder"
        if not folder and target.is_dir():
            return "it is a folder"
    for parent in target.parents:  # nearest first
        if _exists(parent):
            if not parent.is_dir():
                kind = "a file" if parent.is_file() else "not a folder"
                return f"a parent, {parent}, is {kind}"
            break
    return None


def _advice(reason: str, folder: bool) -> str:
    if reason == "it is a folder":
        return "give a file name (for example a file inside that folder)"
    if reason.startswith("it is a file") or reason.startswith("it exists"):
        return "give a folder name (a new or existing folder), not a file"
    return "choose another location"


def _error(target: Path, reason: str, folder: bool = False) -> OutputError:
    return OutputError(f"{target}: cannot write here: {reason}; {_advice(reason, folder)}")


def _translate(target: Path, exc: OSError, folder: bool = False) -> OutputError:
    """A one-line :class:`OutputError` for an ``OSError`` met while writing ``target``."""
    if isinstance(exc, OutputError):
        return exc
    reason = _diagnose(target, folder)
    if reason is None:
        if isinstance(exc, IsADirectoryError):
            reason = "it is a folder"
        elif isinstance(exc, NotADirectoryError | FileExistsError):
            reason = "a parent is not a folder"
        else:
            reason = _REASONS.get(exc.errno or -1) or (exc.strerror or str(exc) or type(exc).__name__).lower()
    return _error(target, reason.splitlines()[0] if reason else "unknown error", folder)


def _nearest_existing(p: Path) -> Path:
    for parent in p.parents:
        if _exists(parent):
            return parent
    return Path(".")


def check_writable(path: str | os.PathLike[str], *, folder: bool = False) -> Path:
    """Raise :class:`~engine.errors.OutputError` now if ``path`` could not be written later.

    Call it before a long computation whose result goes to ``path``, so a bad ``--out`` fails in
    a second rather than after the work. ``folder=False``: ``path`` will be a file written with
    :func:`atomic_path`; ``folder=True``: ``path`` is a folder that will be created if missing
    and receive files. Nothing permanent is created: missing parent folders are not made, and
    writability is probed with a temporary file that is removed at once.

    Rejects: an existing folder where a file is expected (or an existing non-folder where a folder
    is expected), a parent path component that is a file, and a location where no file can be
    created (permissions, read-only file system, ``/proc``...). Accepts a path that does not
    exist yet when its nearest existing ancestor is a folder that accepts new files.

    Returns ``Path(path)``.
    """
    target = Path(path)
    if (reason := _diagnose(target, folder)) is not None:
        raise _error(target, reason, folder)
    probe_dir = target if (folder and target.is_dir()) else _nearest_existing(target)
    try:
        fd, name = tempfile.mkstemp(prefix=".hdm-write-check.", suffix=".tmp", dir=probe_dir)
    except OSError as exc:
        raise _translate(target, exc, folder) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)
    return target


HDF5_SUFFIXES = (".h5", ".hdf5")
CSV_SUFFIXES = (".csv", ".txt")
# names that say "a file of this format": a folder output named so is a slip (``--out samples.png`` for PNG files)
FILE_SUFFIXES = frozenset({*HDF5_SUFFIXES, *CSV_SUFFIXES, ".json", ".jsonl", ".png", ".jpg", ".jpeg", ".bvh",
                           ".npy", ".npz", ".pt", ".pth", ".safetensors"})


def check_output_name(path: str | os.PathLike[str], *, suffixes: tuple[str, ...] | None = None, what: str = "",
                      folder: bool = False, flag: str = "") -> None:
    """OutputError where an output's name belies what is written there: a file not ending in one of ``suffixes``
    (case-blind; ``what`` says what the file is, e.g. "an HDF5 sample file"), or a new ``folder`` named like a
    file (``grid.png`` for a folder of PNG files). ``flag`` prefixes the message (``--out``)."""
    target = Path(path)
    name = f"{flag} {path}" if flag else str(path)
    if suffixes is not None and target.suffix.lower() not in suffixes:
        names = " or ".join(f"*{suffix}" for suffix in suffixes)
        raise OutputError(f"{name}: this writes {what}; name it {names}")
    if folder and target.suffix.lower() in FILE_SUFFIXES and not target.expanduser().is_dir():
        raise OutputError(f"{name} is the folder the files are written into, but it is named like a "
                          f"{target.suffix.lower()} file; choose a folder name without {target.suffix.lower()}")


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether ``a`` and ``b`` both exist and are the same file (links and ``..`` resolved)."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def check_not_input(output: str | os.PathLike[str], *inputs: str | os.PathLike[str] | None) -> None:
    """Raise :class:`~engine.errors.OutputError` when ``output`` is the same file as one of ``inputs``.

    Writing an output over its own input would destroy the input (for example ``hdm export
    --samples s.h5 --out s.h5``). ``None`` inputs are skipped; paths that do not exist never match.
    """
    for source in inputs:
        if source is not None and same_file(output, source):
            raise OutputError(f"{output}: is the same file as the input {source}; writing it would destroy "
                              "the input, choose another output path")


# What hdm writes, told apart from a file it did not make (check_replaceable): an HDF5 file's root ``schema``
# starts so (samples, restorations), and a CSV export's header so.
HDM_HDF5_SCHEMA_PREFIX = "hdm-"
HDM_CSV_HEADER = b"channel,sample,seed,"
_JSON_READ_LIMIT = 256 << 20  # a JSON report larger than this is not one hdm wrote


def hdf5_schema(path: str | os.PathLike[str]) -> str | None:
    """The root ``schema`` attribute of an HDF5 file (hdm's files name their format there), or None where the file
    has none or is not HDF5 that h5py can read."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            schema = f.attrs.get("schema")
    except Exception:  # noqa: BLE001 - any file h5py cannot read as HDF5 has no schema
        return None
    if isinstance(schema, bytes):
        schema = schema.decode("utf-8", "replace")
    return schema if isinstance(schema, str) else None


def _made_by_hdm(path: Path, json_report: bool) -> str | None:
    """None when ``path`` (an existing file) is empty or of a kind hdm writes, else what it should have been."""
    if path.stat().st_size == 0:
        return None
    suffix = path.suffix.lower()
    if json_report or suffix in (".json", ".jsonl"):
        import json

        what = "a JSON document (one object per line)" if suffix == ".jsonl" else "a JSON document"
        if path.stat().st_size > _JSON_READ_LIMIT:
            return what
        try:
            text = path.read_text(encoding="utf-8")
            docs = [line for line in text.splitlines() if line.strip()] if suffix == ".jsonl" else [text]
            return None if docs and all(isinstance(json.loads(doc), dict) for doc in docs) else what
        except (OSError, UnicodeDecodeError, ValueError):
            return what
    if suffix in HDF5_SUFFIXES:
        schema = hdf5_schema(path) or ""
        return None if schema.startswith(HDM_HDF5_SCHEMA_PREFIX) else "an HDM sample or restoration file"
    if suffix in CSV_SUFFIXES:
        with open(path, "rb") as fh:
            head = fh.read(len(HDM_CSV_HEADER))
        return None if head == HDM_CSV_HEADER else "a CSV export of hdm (header channel,sample,seed,...)"
    return None  # other outputs (a run's model and state) are guarded by their command


def check_replaceable(path: str | os.PathLike[str], *, flag: str = "", json_report: bool = False) -> None:
    """Raise :class:`~engine.errors.OutputError` when ``path`` is an existing file hdm did not make: nothing is
    overwritten that the command did not make. An existing output is replaced only when it is empty or of the kind
    hdm writes there: an HDF5 file with an hdm ``schema`` (sample and restoration files), a CSV with the export's
    header, a JSON document (``json_report``: a ``--json`` report, whatever its name; ``.jsonl``: one JSON object
    per line). Paths that do not exist, and folders, pass (:func:`check_writable` judges those)."""
    target = Path(path).expanduser()
    if not target.is_file():
        return
    try:
        wanted = _made_by_hdm(target, json_report)
    except OSError as exc:
        raise _translate(target, exc) from None
    if wanted is not None:
        name = f"{flag} {path}" if flag else str(path)
        raise OutputError(f"{name} exists and is not {wanted}: hdm replaces only files it made; choose another "
                          "path, or move that file away first")


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    For writers that take a file name (h5py, safetensors, ``torch.save``)::

        with atomic_path("out.h5") as tmp:
            with h5py.File(tmp, "w") as f:
                ...

    On normal exit the temporary file gets the usual permissions (the umask's, or those of the
    file it replaces, even if the writer replaced the temporary file with one of its own), is
    fsynced and ``os.replace``-d onto ``path``. If the block raises, the temporary file is
    deleted, ``path`` is untouched and the exception propagates. Missing parent directories are
    created.

    Raises:
        OutputError: ``path`` is a folder, a parent is a file, or the location cannot be written
            (permission, read-only or full file system); raised before the block runs where it
            can be known then. A full or read-only disk met by the block's writer is reported the
            same way.
    """
    target = Path(path)
    if (reason := _diagnose(target, folder=False)) is not None:
        raise _error(target, reason)
    tmp: Path | None = None
    try:  # from the temporary file's creation on: an interrupt (Ctrl+C between two lines) must not leave it
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            tmp = Path(name)
            os.close(fd)
        except OSError as exc:
            raise _translate(target, exc) from None
        try:
            mode = target.stat().st_mode & 0o777 if target.exists() else _FILE_MODE
            os.chmod(tmp, mode)
        except OSError as exc:
            raise _translate(target, exc) from None
        try:
            yield tmp
        except OSError as exc:
            if exc.errno in _WRITE_ERRNOS and not isinstance(exc, OutputError):
                raise _translate(target, exc) from None
            raise
        try:
            os.chmod(tmp, mode)  # safetensors' save_file replaces the temp file with a 0600 one
            _fsync_file(tmp)
            os.replace(tmp, target)
        except OSError as exc:
            raise _translate(target, exc) from None
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise
    _fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_paths() -> Iterator[Callable[[str | os.PathLike[str]], Path]]:
    """Files written as a set: every one appears at the end of the block, or none does.

    Yields ``stage(path)``, which returns a temporary path for ``path`` (as :func:`atomic_path`). On normal
    exit all of them are renamed into place together, with Ctrl+C and SIGTERM deferred to the end of the
    renaming; if the block raises or is interrupted, every temporary file is removed and no destination is
    touched. For exports of one file per sample, which were left half done by an interrupt::

        with atomic_paths() as stage:
            for i, image in enumerate(images):
                save(image, stage(folder / f"sample_{i:05d}.png"))
    """
    stack = contextlib.ExitStack()
    with stack:  # an exception in the block reaches every atomic_path, which removes its temporary file
        yield lambda path: stack.enter_context(atomic_path(path))
        with interrupts_deferred():
            stack.close()  # each atomic_path renames its file into place


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path (:class:`OutputError` if it cannot be written)."""
    target = Path(path)
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8, newlines written as given); returns the path."""
    return atomic_write_bytes(path, text.encode(encoding))


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[Callable[[], None]]:
    """Ctrl+C or SIGTERM arriving in the block takes effect at its end, where it is raised again.

    For files written as a set: each write is atomic, but a run's ``model.safetensors`` and
    ``train_state.pt`` interrupted between the two were a checkpoint apart (resuming from one step,
    sampling the next). Off the main thread (the studio's workers), where Python delivers no signals,
    the block just runs.

    Only the first signal waits: it puts the displaced handlers back, so a second Ctrl+C takes effect at
    once (a block that runs long, such as a first training step that compiles for minutes, can always be
    stopped by pressing again).

    Yields ``deliver()``, which raises a signal received so far at once: a loop deferred as a whole calls it
    between its iterations (training steps), which costs a list test, where entering the block for each
    iteration cost two handler swaps a signal.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    received: list[int] = []
    previous: dict[int, object] = {}
    restored = False

    def restore() -> None:
        nonlocal restored
        if not restored:
            restored = True
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def defer(signum: int, _frame: object) -> None:
        received.append(signum)
        restore()

    for signum in (signal.SIGINT, signal.SIGTERM):  # one by one: a signal between the two restores the first
        if restored:
            break
        previous[signum] = signal.signal(signum, defer)

    def deliver() -> None:
        if received:
            signal.raise_signal(received.pop(0))  # to the handler the block displaced

    try:
        yield deliver
    finally:
        restore()
        if received:
            signal.raise_signal(received[0])
