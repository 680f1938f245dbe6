"""engine.io.atomic: unwritable destinations give one-line OutputErrors, up-front checks, file modes."""

from __future__ import annotations

import errno
import os
import stat
import sys
import tempfile
from pathlib import Path

import pytest
import torch

import engine.io.atomic as atomic_mod
from engine.errors import HDMError, OutputError
from engine.io import (
    atomic_path,
    atomic_write_text,
    check_not_input,
    check_writable,
    load_model,
    same_file,
    save_model,
)

POSIX = os.name == "posix"


def _tree(root: Path) -> list[str]:
    """Every path under ``root`` (hidden temp files included), relative, sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _one_line(exc: BaseException, path: Path | str) -> str:
    text = str(exc)
    assert "\n" not in text and str(path) in text, text
    return text


def _unwritable_dir() -> Path | None:
    """A real folder where this process cannot create files (root ignores permission bits), or None."""
    for candidate in ("/sys", "/proc"):
        p = Path(candidate)
        if not p.is_dir():
            continue
        try:
            fd, name = tempfile.mkstemp(dir=p)
        except OSError:
            return p
        os.close(fd)
        os.unlink(name)
    return None


# -- atomic_path: the destination cannot be written ----------------------------------------------------
def test_error_class_is_an_hdm_error_and_an_os_error():
    assert issubclass(OutputError, HDMError) and issubclass(OutputError, OSError)


def test_existing_folder_as_target_fails_before_the_work_and_leaves_it_alone(tmp_path):
    target = tmp_path / "d1"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    before = _tree(tmp_path)
    ran = []
    with pytest.raises(OutputError) as info:
        with atomic_path(target) as tmp:
            ran.append(tmp)
    assert "it is a folder" in _one_line(info.value, target)
    assert ran == [], "the block must not run when the destination is known to be unwritable"
    assert _tree(tmp_path) == before and (target / "keep.txt").read_text() == "mine"
    with pytest.raises(OutputError, match="it is a folder"):
        atomic_write_text(target, "x")
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("rel", ["s1.json/x.h5", "s1.json/deeper/x.h5"])
def test_a_parent_that_is_a_file_is_named(tmp_path, rel):
    (tmp_path / "s1.json").write_text("{}")
    target = tmp_path / rel
    with pytest.raises(OutputError) as info:
        atomic_write_text(target, "x")
    text = _one_line(info.value, target)
    assert f"a parent, {tmp_path / 's1.json'}, is a file" in text
    assert (tmp_path / "s1.json").read_text() == "{}" and _tree(tmp_path) == ["s1.json"]


def test_permission_denied_when_creating_the_temp_file(tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / ".x.tmp"))

    monkeypatch.setattr(atomic_mod.tempfile, "mkstemp", denied)
    target = tmp_path / "x.h5"
    with pytest.raises(OutputError) as info:
        atomic_write_text(target, "x")
    assert "permission denied" in _one_line(info.value, target)
    assert _tree(tmp_path) == []


@pytest.mark.skipif(_unwritable_dir() is None, reason="needs a folder this process cannot write (/sys, /proc)")
def test_real_unwritable_locations_give_one_line_errors():
    for target in (_unwritable_dir() / "x.h5", Path("/proc/hdm-no-such/x.h5")):
        if not target.parent.parent.is_dir():
            continue
        with pytest.raises(OutputError) as info:
            atomic_write_text(target, "x")
        assert "cannot write here" in _one_line(info.value, target)


def test_failed_rename_keeps_the_old_file_and_removes_the_temp(tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def refuse(src, dst):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(atomic_mod.os, "replace", refuse)
    with pytest.raises(OutputError, match="permission denied") as info:
        atomic_write_text(target, "new")
    _one_line(info.value, target)
    assert target.read_text() == "old" and _tree(tmp_path) == ["out.txt"]


def test_disk_full_in_the_writer_is_translated_and_other_errors_pass_through(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(OutputError, match="no space left") as info:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")
    _one_line(info.value, target)
    assert target.read_bytes() == b"old" and _tree(tmp_path) == ["out.bin"]
    with pytest.raises(FileNotFoundError):  # an input the writer could not find: not the destination's fault
        with atomic_path(target):
            open(tmp_path / "missing-input", "rb")  # noqa: SIM115
    assert target.read_bytes() == b"old" and _tree(tmp_path) == ["out.bin"]


# -- check_writable ------------------------------------------------------------------------------------
def test_check_writable_accepts_a_new_path_and_creates_nothing(tmp_path):
    (tmp_path / "exists.h5").write_text("x")
    (tmp_path / "folder").mkdir()
    before = _tree(tmp_path)
    assert check_writable(tmp_path / "a" / "b" / "new.h5") == tmp_path / "a" / "b" / "new.h5"
    assert check_writable(str(tmp_path / "exists.h5")) == tmp_path / "exists.h5"
    assert check_writable(tmp_path / "new" / "run", folder=True) == tmp_path / "new" / "run"
    assert check_writable(tmp_path / "folder", folder=True) == tmp_path / "folder"
    assert _tree(tmp_path) == before


def test_check_writable_rejects_what_a_write_would_fail_on(tmp_path, monkeypatch):
    (tmp_path / "file.json").write_text("{}")
    (tmp_path / "folder").mkdir()
    before = _tree(tmp_path)
    cases = [
        (tmp_path / "folder", False, "it is a folder"),
        (tmp_path / "file.json", True, "it is a file, not a folder"),
        (tmp_path / "file.json" / "x.h5", False, "a parent, .*file.json, is a file"),
        (tmp_path / "file.json" / "a" / "run", True, "a parent, .*file.json, is a file"),
    ]
    for path, folder, reason in cases:
        with pytest.raises(OutputError, match=reason) as info:
            check_writable(path, folder=folder)
        assert "cannot write here" in _one_line(info.value, path)
    assert _tree(tmp_path) == before

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(atomic_mod.tempfile, "mkstemp", denied)
    for folder in (False, True):
        with pytest.raises(OutputError, match="permission denied"):
            check_writable(tmp_path / "sub" / "x", folder=folder)
    assert _tree(tmp_path) == before


@pytest.mark.skipif(_unwritable_dir() is None, reason="needs a folder this process cannot write (/sys, /proc)")
def test_check_writable_probes_the_real_location():
    where = _unwritable_dir()
    for folder in (False, True):
        with pytest.raises(OutputError) as info:
            check_writable(where / "hdm-run" / "x", folder=folder)
        _one_line(info.value, where / "hdm-run" / "x")
    assert not (where / "hdm-run").exists()


# -- check_not_input -----------------------------------------------------------------------------------
def test_check_not_input_refuses_the_input_under_any_spelling(tmp_path, monkeypatch):
    src = tmp_path / "s.h5"
    src.write_bytes(b"data")
    monkeypatch.chdir(tmp_path)
    for out in (src, "s.h5", tmp_path / "." / "s.h5", tmp_path / "sub" / ".." / "s.h5"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(OutputError, match="same file as the input") as info:
            check_not_input(out, None, tmp_path / "other.h5", src)
        _one_line(info.value, out)
    assert same_file("s.h5", src) and not same_file(tmp_path / "new.h5", src)
    check_not_input(tmp_path / "new.h5", src, None)   # different or missing files pass
    check_not_input(src, tmp_path / "missing.h5")
    assert src.read_bytes() == b"data"


# -- permissions of finished files ---------------------------------------------------------------------
@pytest.mark.skipif(not POSIX or sys.platform == "win32", reason="POSIX file modes")
def test_a_writer_that_replaces_the_temp_file_still_gets_the_usual_mode(tmp_path):
    target = tmp_path / "out.bin"
    with atomic_path(target) as tmp:
        tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # like safetensors' save_file
        os.write(fd, b"x")
        os.close(fd)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()


@pytest.mark.skipif(not POSIX or sys.platform == "win32", reason="POSIX file modes")
def test_saved_checkpoints_get_the_umask_mode_or_keep_the_replaced_files(tmp_path):
    sd = {"w": torch.arange(6.0).reshape(2, 3)}
    path = save_model(tmp_path / "run" / "model.safetensors", sd, config={"a": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()
    os.chmod(path, 0o640)
    save_model(path, sd, config={"a": 2})
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert load_model(path).config == {"a": 2}
    assert [p.name for p in path.parent.iterdir()] == ["model.safetensors"]


def test_a_second_interrupt_is_not_deferred():
    """The first Ctrl+C in an interrupts_deferred block waits for its end; a second one acts at once, so a block
    that runs long (a training step compiling for minutes) can always be stopped by pressing again."""
    import os
    import signal

    from engine.io import interrupts_deferred

    def interrupt() -> None:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # Python runs a handler at the next bytecode
            pass

    reached = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            interrupt()
            reached.append("after the first")
            interrupt()
            reached.append("after the second")
    assert reached == ["after the first"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt), interrupts_deferred() as deliver:
        interrupt()
        reached.append("deferred")
        deliver()  # raises it here
        reached.append("not reached")
    assert reached[1:] == ["deferred"]
