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


def load_restoration_item(qtbot, panel, checkpoint, index: int = 0) -> None:
    """Choose ``checkpoint`` (and item ``index``) on a Restore panel and wait until its item is loaded."""
    checkpoint = str(checkpoint)
    panel.index.setValue(index)
    assert panel.select_checkpoint(checkpoint)
    qtbot.waitUntil(lambda: panel.loaded is not None and panel.loaded.checkpoint == checkpoint
                    and panel.loaded.index == index and not panel.runner.busy, timeout=30_000)
    assert panel.error.text() == "", panel.error.text()
