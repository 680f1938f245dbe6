"""Small helpers shared by the GUI tests."""

from __future__ import annotations


def wait_idle(qtbot, window, timeout: int = 30_000) -> None:
    """Until neither runner has a job."""
    qtbot.waitUntil(lambda: not window.jobs.busy and not window.io_jobs.busy, timeout=timeout)


def open_checkpoint(qtbot, window, path) -> str:
    """Open a checkpoint file through the window and wait until the sampling panel offers it."""
    window.open_path(str(path))
    qtbot.waitUntil(lambda: window.sampling_panel.checkpoint_key() == str(path), timeout=15_000)
    return str(path)
