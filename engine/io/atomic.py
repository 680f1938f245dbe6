"""Atomic file writes: a reader never sees a half-written file.

Every writer goes through a temporary file in the destination's directory (same file
system, so the final :func:`os.replace` is atomic), fsyncs it, then renames it over the
destination. If anything fails, the temporary file is removed and an existing destination
is left byte-for-byte untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text"]


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp creates files 0600; finished files get the usual permissions (read once, at import).
_FILE_MODE = 0o666 & ~_read_umask()


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

    On normal exit the temporary file is fsynced and ``os.replace``-d onto ``path``. If the
    block raises, the temporary file is deleted, ``path`` is untouched and the exception
    propagates. Missing parent directories are created.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        mode = target.stat().st_mode & 0o777 if target.exists() else _FILE_MODE
        os.chmod(tmp, mode)
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    target = Path(path)
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8, newlines written as given); returns the path."""
    return atomic_write_bytes(path, text.encode(encoding))
