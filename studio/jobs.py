"""Engine jobs on a worker thread, observed through Qt signals.

A *job* is a plain function ``fn(ctx: JobContext) -> result`` that runs on a worker
:class:`~PySide6.QtCore.QThread`. It reports through ``ctx.report(step, total, preview)``
(called from the engine's callback, i.e. between steps), honours ``ctx.should_stop`` (the
engine's cancel token, which makes the engine raise :class:`engine.errors.Cancelled`) and may
be paused: ``report`` blocks on a condition while the job is paused.

The :class:`JobRunner` lives on the GUI thread and re-emits what the worker reports as its own
signals, so receivers (widgets) always run on the GUI thread. Progress and previews are
throttled to ``max_rate_hz`` (about the screen's rate); a preview is built (``preview()`` is
a callable, so the copy to the CPU only happens when it will be shown) only when the previous
one has been handled on the GUI thread, so a slow view never queues up frames.
"""

from __future__ import annotations

import math
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from engine.errors import Cancelled, HDMError

IDLE, RUNNING, PAUSED, CANCELLING = "idle", "running", "paused", "cancelling"


def describe_error(exc: BaseException) -> str:
    """One line for the user: an HDMError's own message, anything else prefixed with its type."""
    text = str(exc) if isinstance(exc, HDMError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split()) or type(exc).__name__


class JobContext:
    """What a job function receives on the worker thread (thread-safe)."""

    def __init__(self, worker: _Worker, max_rate_hz: float) -> None:
        self._worker = worker
        self._interval = 1.0 / max_rate_hz if max_rate_hz > 0 else 0.0
        self._cancel = threading.Event()
        self._cond = threading.Condition()
        self._paused = False
        self._paused_for = 0.0
        self._started = time.perf_counter()
        self._last_emit = -math.inf
        self._preview_pending = threading.Event()

    # -- called by the job (worker thread) ---------------------------------------------------
    def should_stop(self) -> bool:
        """The engine's cancel token: True once cancel was requested."""
        return self._cancel.is_set()

    def report(self, step: int, total: int, preview: Callable[[], Any] | None = None, *,
               force: bool = False) -> None:
        """Report progress after ``step`` of ``total``; waits here while the job is paused.

        Pausing shows this step's preview whatever the throttle dropped before it: the frozen frame is the
        paused state, not an earlier one (it showed step 4 of 10 beside a progress bar at 90 %).
        """
        if self._paused:
            self._emit(step, total, None if preview is None else preview())
            self._wait_while_paused()
            return
        now = time.perf_counter()
        if force or step >= total or now - self._last_emit >= self._interval:
            self._last_emit = now
            payload = None
            if preview is not None and not self._preview_pending.is_set():
                payload = preview()
            self._emit(step, total, payload)

    def log(self, text: str) -> None:
        """A line for the log panel."""
        self._worker.message.emit(text)

    # -- called by the runner (GUI thread) ---------------------------------------------------
    def pause(self) -> None:
        with self._cond:
            self._paused = True

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def cancel(self) -> None:
        self._cancel.set()
        self.resume()

    @property
    def paused(self) -> bool:
        return self._paused

    def preview_handled(self) -> None:
        self._preview_pending.clear()

    # -- internals ---------------------------------------------------------------------------
    def _wait_while_paused(self) -> None:
        began = time.perf_counter()
        with self._cond:
            while self._paused and not self._cancel.is_set():
                self._cond.wait(0.25)
        self._paused_for += time.perf_counter() - began

    def _emit(self, step: int, total: int, payload: Any) -> None:
        running = time.perf_counter() - self._started - self._paused_for
        eta = running / step * (total - step) if 0 < step <= total else math.nan
        self._worker.progress.emit(int(step), int(total), float(eta))
        if payload is not None:
            self._preview_pending.set()
            self._worker.preview.emit(payload)


@dataclass(frozen=True)
class Job:
    """A unit of work: ``fn(ctx)`` runs on the worker thread; ``name`` keys the signals."""

    name: str
    fn: Callable[[JobContext], Any]
    label: str = ""

    @property
    def title(self) -> str:
        return self.label or self.name


class _Worker(QThread):
    """Runs one job; its signals are emitted on the worker thread and queued to the runner."""

    progress = Signal(int, int, float)
    preview = Signal(object)
    message = Signal(str)
    succeeded = Signal(object)
    errored = Signal(str, str)
    stopped = Signal(str)

    def __init__(self, job: Job, max_rate_hz: float, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.job = job
        self.ctx = JobContext(self, max_rate_hz)

    def run(self) -> None:  # worker thread
        try:
            result = self.job.fn(self.ctx)
        except Cancelled as exc:
            self.stopped.emit(str(exc) or f"{self.job.title} cancelled")
        except Exception as exc:  # every failure reaches the user, none is swallowed
            details = "" if isinstance(exc, HDMError) else traceback.format_exc()
            self.errored.emit(describe_error(exc), details)
        else:
            if self.ctx.should_stop():
                self.stopped.emit(f"{self.job.title} cancelled")
            else:
                self.succeeded.emit(result)


class JobRunner(QObject):
    """Runs one job at a time on a worker thread; lives on (and signals on) the GUI thread."""

    started = Signal(str, str)  # name, title
    progress = Signal(str, int, int, float)  # name, step, total, eta seconds (nan: unknown)
    preview = Signal(str, object)  # name, payload (small numpy arrays)
    message = Signal(str, str)  # name, text
    finished = Signal(str, object)  # name, result
    failed = Signal(str, str, str)  # name, one-line message, traceback ("" for user errors)
    cancelled = Signal(str, str)  # name, message
    state_changed = Signal(str)  # idle | running | paused | cancelling

    def __init__(self, parent: QObject | None = None, max_rate_hz: float = 30.0) -> None:
        super().__init__(parent)
        self.max_rate_hz = max_rate_hz
        self._worker: _Worker | None = None
        self._retired: set[_Worker] = set()
        self._state = IDLE

    # -- queries -----------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    @property
    def busy(self) -> bool:
        return self._worker is not None

    @property
    def current(self) -> Job | None:
        return self._worker.job if self._worker is not None else None

    # -- control -----------------------------------------------------------------------------
    def submit(self, job: Job) -> bool:
        """Start ``job``; returns False (and starts nothing) while another job runs."""
        if self._worker is not None:
            return False
        worker = _Worker(job, self.max_rate_hz)
        worker.progress.connect(self._on_progress)
        worker.preview.connect(self._on_preview)
        worker.message.connect(self._on_message)
        worker.succeeded.connect(self._on_succeeded)
        worker.errored.connect(self._on_errored)
        worker.stopped.connect(self._on_stopped)
        worker.finished.connect(self._on_thread_finished)
        self._worker = worker
        self._set_state(RUNNING)
        self.started.emit(job.name, job.title)
        worker.start()
        return True

    @Slot()
    def pause(self) -> None:
        if self._worker is not None and self._state == RUNNING:
            self._worker.ctx.pause()
            self._set_state(PAUSED)

    @Slot()
    def resume(self) -> None:
        if self._worker is not None and self._state == PAUSED:
            self._worker.ctx.resume()
            self._set_state(RUNNING)

    @Slot()
    def toggle_pause(self) -> None:
        if self._state == PAUSED:
            self.resume()
        else:
            self.pause()

    @Slot()
    def cancel(self) -> None:
        if self._worker is not None and self._state in (RUNNING, PAUSED):
            self._worker.ctx.cancel()
            self._set_state(CANCELLING)

    def wait(self, timeout_ms: int = 10_000) -> bool:
        """Block until the worker threads have ended (on shutdown); True if they all did."""
        ok = True
        for w in [self._worker, *self._retired]:
            if w is not None:
                ok = w.wait(timeout_ms) and ok
        if self._worker is not None and self._worker.isFinished():  # its last signals may never be delivered
            self._retired.add(self._worker)
            self._worker = None
            self._set_state(IDLE)
        return ok

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel the running job and wait for the threads to end."""
        self.cancel()
        return self.wait(timeout_ms)

    # -- relays (GUI thread) -----------------------------------------------------------------
    def _sender_is_current(self) -> bool:
        return self._worker is not None and self.sender() is self._worker

    def _name(self) -> str:
        w = self.sender()
        return w.job.name if isinstance(w, _Worker) else ""

    @Slot(int, int, float)
    def _on_progress(self, step: int, total: int, eta: float) -> None:
        if self._sender_is_current():
            self.progress.emit(self._name(), step, total, eta)

    @Slot(object)
    def _on_preview(self, payload: object) -> None:
        w = self.sender()
        try:
            if self._sender_is_current() and self._state != CANCELLING:
                self.preview.emit(self._name(), payload)
        finally:
            if isinstance(w, _Worker):
                w.ctx.preview_handled()

    @Slot(str)
    def _on_message(self, text: str) -> None:
        self.message.emit(self._name(), text)

    @Slot(object)
    def _on_succeeded(self, result: object) -> None:
        name = self._finish()
        self.finished.emit(name, result)

    @Slot(str, str)
    def _on_errored(self, text: str, details: str) -> None:
        name = self._finish()
        self.failed.emit(name, text, details)

    @Slot(str)
    def _on_stopped(self, text: str) -> None:
        name = self._finish()
        self.cancelled.emit(name, text)

    def _finish(self) -> str:
        w = self.sender()
        name = w.job.name if isinstance(w, _Worker) else ""
        if w is self._worker:
            self._retired.add(self._worker)
            self._worker = None
            self._set_state(IDLE)
        return name

    @Slot()
    def _on_thread_finished(self) -> None:
        w = self.sender()
        if not isinstance(w, _Worker):
            return
        if w is self._worker:  # ended without reporting (a BaseException in the job): never stay busy
            self._worker = None
            self._set_state(IDLE)
            self.failed.emit(w.job.name, f"{w.job.title} stopped unexpectedly", "")
        self._retired.discard(w)
        w.deleteLater()

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.state_changed.emit(state)
