"""The job runner: results, errors, cancel, pause, throttling, and a cross-thread signal flood."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import QObject, QThread, Signal, Slot

from engine.errors import Cancelled, DataError
from studio.jobs import IDLE, PAUSED, RUNNING, Job, JobRunner, describe_error

pytestmark = pytest.mark.gui


class Recorder(QObject):
    """Collects what a runner emits (slots run on the GUI thread)."""

    def __init__(self, runner: JobRunner) -> None:
        super().__init__()
        self.events: list[tuple] = []
        self.threads: set[int] = set()
        for name in ("started", "progress", "preview", "finished", "failed", "cancelled", "state_changed"):
            getattr(runner, name).connect(lambda *a, n=name: self._record(n, a))

    def _record(self, name: str, args: tuple) -> None:
        self.threads.add(threading.get_ident())
        self.events.append((name, *args))

    def of(self, name: str) -> list[tuple]:
        return [e for e in self.events if e[0] == name]


def test_result_and_progress_arrive_on_the_gui_thread(qapp, qtbot):
    runner = JobRunner()
    rec = Recorder(runner)
    worker_threads = []

    def fn(ctx):
        worker_threads.append(threading.get_ident())
        for i in range(1, 6):
            ctx.report(i, 5, lambda i=i: {"i": i}, force=True)
        return 42

    with qtbot.waitSignal(runner.finished, timeout=5000) as sig:
        assert runner.submit(Job("demo", fn))
    assert sig.args == ["demo", 42]
    assert rec.threads == {threading.get_ident()} and worker_threads[0] != threading.get_ident()
    assert [e[2] for e in rec.of("progress")][-1] == 5
    assert rec.of("preview") and runner.state == IDLE and not runner.busy


@pytest.mark.parametrize(("exc", "expected", "has_traceback"), [
    (DataError("x.csv: row 2 is empty"), "x.csv: row 2 is empty", False),
    (ZeroDivisionError("division by zero"), "ZeroDivisionError: division by zero", True),
])
def test_errors_become_one_line_messages(qapp, qtbot, exc, expected, has_traceback):
    runner = JobRunner()

    def fn(ctx):
        raise exc

    with qtbot.waitSignal(runner.failed, timeout=5000) as sig:
        runner.submit(Job("bad", fn))
    name, message, details = sig.args
    assert (name, message) == ("bad", expected) and "\n" not in message
    assert bool(details) == has_traceback
    assert describe_error(ValueError("a\nb")) == "ValueError: a b"


def test_cancel_is_reported_as_cancelled_not_failed(qapp, qtbot):
    runner = JobRunner()
    rec = Recorder(runner)

    def fn(ctx):
        for i in range(10_000):
            if ctx.should_stop():
                raise Cancelled(f"stopped at {i}")
            ctx.report(i + 1, 10_000)
            time.sleep(0.001)
        return "done"

    runner.submit(Job("long", fn))
    qtbot.waitUntil(lambda: len(rec.of("progress")) >= 2, timeout=5000)
    with qtbot.waitSignal(runner.cancelled, timeout=5000) as sig:
        runner.cancel()
    assert sig.args[0] == "long" and sig.args[1].startswith("stopped at")
    assert not rec.of("failed") and not rec.of("finished") and runner.state == IDLE


def test_pause_holds_the_worker_between_steps_and_resume_continues(qapp, qtbot):
    runner = JobRunner()
    steps: list[int] = []

    def fn(ctx):
        for i in range(1, 400):
            steps.append(i)
            ctx.report(i, 400)
            time.sleep(0.002)
        return len(steps)

    runner.submit(Job("pausable", fn))
    qtbot.waitUntil(lambda: len(steps) >= 5, timeout=5000)
    runner.pause()
    assert runner.state == PAUSED
    qtbot.wait(60)
    held = len(steps)
    qtbot.wait(200)
    assert len(steps) == held  # nothing ran while paused
    runner.resume()
    assert runner.state == RUNNING
    with qtbot.waitSignal(runner.finished, timeout=10_000) as sig:
        pass
    assert sig.args[1] == 399


def test_a_paused_job_shows_the_paused_steps_preview(qapp, qtbot):
    """The throttle drops previews between frames; the frame frozen by a pause was one of the last drawn, some
    steps behind the progress bar (step 4 of 10 at 90 %)."""
    runner = JobRunner(max_rate_hz=2)  # at most one preview per half second: most steps' are dropped
    rec = Recorder(runner)
    steps: list[int] = []

    def fn(ctx):
        for i in range(1, 400):
            steps.append(i)
            ctx.report(i, 400, lambda i=i: {"step": i})
            time.sleep(0.002)

    runner.submit(Job("pausable", fn))
    qtbot.waitUntil(lambda: len(steps) >= 21, timeout=5000)
    runner.pause()
    qtbot.waitUntil(lambda: rec.of("progress")[-1][2] == steps[-1] > 20, timeout=5000)  # the paused step's report
    qtbot.wait(50)
    assert rec.of("preview")[-1][2]["step"] == rec.of("progress")[-1][2] == steps[-1]
    runner.cancel()
    qtbot.waitUntil(lambda: runner.state == IDLE, timeout=5000)


def test_progress_is_throttled_to_the_screen_rate(qapp, qtbot):
    runner = JobRunner(max_rate_hz=30)
    rec = Recorder(runner)

    def fn(ctx):
        t0 = time.perf_counter()
        for i in range(1, 3001):
            ctx.report(i, 3000, lambda: {"frame": 1})
            if i % 10 == 0:
                time.sleep(0.001)
        return time.perf_counter() - t0

    with qtbot.waitSignal(runner.finished, timeout=20_000) as sig:
        runner.submit(Job("fast", fn))
    duration = sig.args[1]
    assert len(rec.of("progress")) <= 30 * duration + 3
    assert rec.of("progress")[-1][2] == 3000  # the last step always gets through


def test_busy_runner_refuses_a_second_job(qapp, qtbot):
    runner = JobRunner()
    gate = threading.Event()
    runner.submit(Job("first", lambda ctx: gate.wait(5)))
    assert runner.busy and not runner.submit(Job("second", lambda ctx: None))
    with qtbot.waitSignal(runner.finished, timeout=5000):
        gate.set()


class _Flood(QThread):
    progress = Signal(int, int, float)

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def run(self) -> None:
        for i in range(self.n):
            self.progress.emit(i, self.n, 0.5)


class _Counter(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    @Slot(int, int, float)
    def on_progress(self, step: int, total: int, eta: float) -> None:
        self.count += 1


def test_ten_thousand_cross_thread_signals_do_not_crash(qapp, qtbot):
    """PySide6 6.12.0 leaks a reference to True per emit and aborts after a few hundred (PLATFORM.md)."""
    flood, counter = _Flood(10_000), _Counter()
    flood.progress.connect(counter.on_progress)
    flood.start()
    qtbot.waitUntil(lambda: counter.count == 10_000, timeout=30_000)
    assert flood.wait(5000)
    # and through the runner's own relay, unthrottled
    runner = JobRunner(max_rate_hz=0)
    rec = Recorder(runner)

    def fn(ctx):
        for i in range(1, 10_001):
            ctx.report(i, 10_000)
        return True

    with qtbot.waitSignal(runner.finished, timeout=30_000):
        runner.submit(Job("flood", fn))
    assert len(rec.of("progress")) == 10_000


class _Ctx:
    """A job context without a runner: records what the job reports."""

    def __init__(self) -> None:
        self.reports: list[tuple[int, int, bool, int]] = []

    def should_stop(self) -> bool:
        return False

    def log(self, text: str) -> None:
        pass

    def report(self, step, total, preview=None, *, force=False) -> None:
        self.reports.append((step, total, force, len(preview()["losses"])))


@pytest.mark.parametrize("cadence", [1, 4])
def test_the_training_job_reports_at_each_loss_read_out(monkeypatch, cadence):
    """Every step on a CPU; on a GPU (cadence 10, here 4) at read-outs, previews and the last step,
    each report carrying every loss up to its step."""
    from engine.config import RunConfig
    from engine.data.select import load_dataset
    from studio.engine_jobs import TrainHandle, train_job

    monkeypatch.setattr("engine.training.default_readout_every", lambda device: cadence)
    config = RunConfig().replace(data={"spec": "quadratic", "n_points": 16, "num": 50},
                                 model={"width": 4, "modes": 2, "layers": 1, "emb_dim": 8},
                                 train={"steps": 11, "batch_size": 8, "warmup": 1})
    dataset, _ = load_dataset(config.data, "train")
    ctx, handle = _Ctx(), TrainHandle()
    trainer = train_job(config, dataset, handle, preview_every=6).fn(ctx)
    steps = [step for step, *_ in ctx.reports]
    assert steps == (list(range(1, 12)) if cadence == 1 else [4, 6, 8, 11])
    assert all(n_losses == step for step, _, _, n_losses in ctx.reports)
    assert [step for step, _, force, _ in ctx.reports if force] == [6, 11]
    assert trainer.step_count == 11 and len(trainer.losses) == 11 and not trainer._pending
