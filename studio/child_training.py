"""Training in several processes: a data-parallel ``hdm train`` run (torchrun) as a child process.

The user picks more than one process in the Training panel; the studio then starts

    python -m torch.distributed.run --standalone --nproc-per-node=N -m engine.cli train ... \\
        --progress-jsonl RUN_DIR/progress.jsonl --out RUN_DIR

with :class:`~PySide6.QtCore.QProcess` in a session of its own (so Cancel reaches every rank:
SIGTERM to the process group, SIGKILL after a timeout; and ``--stop-with`` the studio's process
id, so the run also stops if the studio crashes or is killed), follows ``progress.jsonl`` with a timer
(:class:`JsonlFollower` parses complete lines only), relays the child's output line by line,
and when the child is done loads the run from ``RUN_DIR`` (its ``train_state.pt``) into a
:class:`~engine.training.Trainer`, as if it had been trained in the studio. A cancelled run (SIGTERM)
saves itself at its last whole step before it stops, atomically, so Cancel keeps what was trained and
nothing is half-written.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from collections import deque
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal, Slot

from engine.cli import TRAIN_FLAGS, foreign_options
from engine.errors import ConfigError
from studio import engine_jobs as ej
from studio.jobs import CANCELLING, IDLE, RUNNING, Job, JobContext, JobRunner

LOADING = "loading"  # the child is done; its run is being loaded into the session
PROGRESS_FILE = "progress.jsonl"
STDERR_TAIL = 40  # lines of the child's stderr kept for the failure report
KILL = getattr(signal, "SIGKILL", signal.SIGTERM)  # (Windows has no SIGKILL; QProcess.kill() is used there)
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR",
                "MASTER_PORT", "TORCHELASTIC_RUN_ID")


class JsonlFollower:
    """Reads the JSON objects appended to a JSON Lines file since the last :meth:`read` (no Qt).

    Only complete lines (ending in ``\\n``) are parsed; a partial last line waits for its end.
    A missing file reads as nothing; a line that is not a JSON object is counted in ``skipped``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._offset = 0
        self._partial = b""
        self.skipped = 0

    def read(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as f:
                if os.fstat(f.fileno()).st_size < self._offset:  # truncated or replaced: start over
                    self._offset, self._partial = 0, b""
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        records = []
        for line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if isinstance(record, dict):
                records.append(record)
            else:
                self.skipped += 1
        return records


def _text(value: Any) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def train_arguments(config: Any) -> list[str]:
    """The ``hdm train`` flags that rebuild ``config`` (an :class:`~engine.config.RunConfig`).

    Raises ConfigError for a setting the command line cannot express (the studio never sets one).
    """
    from engine.config import RunConfig

    default = RunConfig()
    args: list[str] = []
    ignored = set(foreign_options(config.data.modality)) if config.data.modality != "auto" else set()
    for section in fields(config):
        ours, base = getattr(config, section.name), getattr(default, section.name)
        for f in fields(ours):
            value, flag = getattr(ours, f.name), TRAIN_FLAGS.get(section.name, {}).get(f.name)
            if flag in ignored:  # the other kind of data's prior options: not read, so not passed
                continue
            if flag is None:
                if value != getattr(base, f.name):
                    raise ConfigError(f"{section.name}.{f.name} = {value!r} cannot be passed to a training "
                                      "process; train in one process")
            elif isinstance(value, bool):  # a switch
                args += [flag] if value else []
            elif isinstance(value, (tuple, list)):
                args += [flag, *(_text(v) for v in value)]
            elif value is not None:
                args += [flag, _text(value)]
    return args


def torchrun_command(config: Any, *, processes: int, run_dir: str | Path, device: str = "cpu",
                     watch_pid: int | None = None) -> list[str]:
    """The child's command line (program first): ``hdm train`` under ``python -m torch.distributed.run``.

    ``python -m`` twice, so neither ``torchrun`` nor ``hdm`` need be on the PATH. On POSIX the run
    stops once ``watch_pid`` (default: this process, the studio) has exited (``--stop-with``).
    """
    run_dir = Path(run_dir)
    cuda = device.startswith("cuda")
    watch = ["--stop-with", str(watch_pid or os.getpid())] if os.name == "posix" else []
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
            "-m", "engine.cli", "train", *train_arguments(config), "--distributed",
            "--device", "cuda" if cuda else "cpu", "--out", str(run_dir),
            "--progress-jsonl", str(run_dir / PROGRESS_FILE), *watch, "--quiet"]


def new_run_dir(root: str | Path) -> Path:
    """A fresh ``root/YYYYMMDD-HHMMSS[-k]`` folder for one run."""
    root = Path(root)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for k in range(1000):
        path = root / (stamp if k == 0 else f"{stamp}-{k}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise ConfigError(f"{root}: cannot make a new run folder")


def failure_message(error_event: str | None, stderr_tail: list[str], exit_code: int) -> str:
    """One line for the user: rank 0's error event, else the last ``error:`` line, else stderr's last line."""
    if error_event:
        return error_event
    for line in reversed(stderr_tail):
        if line.startswith("error: "):
            return line[len("error: "):]
    last = next((line.strip() for line in reversed(stderr_tail) if line.strip()), "")
    return f"the training processes exited with code {exit_code}" + (f": {last}" if last else "")


class ChildTraining(QObject):
    """One multi-process training run at a time, as a child process; lives on the GUI thread.

    ``progress`` and ``preview`` carry what the in-process training job reports (step, total,
    ETA; a payload whose ``losses`` is the loss curve so far), so the same views show either.
    """

    progress = Signal(int, int, float)  # step, total, eta seconds
    preview = Signal(object)  # {"losses", "samples", "grid", "modality", "sample_step", "skeleton"}
    output = Signal(str, str)  # level, one line of the child's stdout or stderr
    finished = Signal(object)  # the Trainer loaded from the run folder
    failed = Signal(str, str)  # one-line message, details ("" for the child: its stderr is in the log already)
    cancelled = Signal(str, object)  # message, the Trainer of the last checkpoint (or None)
    state_changed = Signal(str)  # idle | running | cancelling | loading

    def __init__(self, parent: QObject | None = None, *, poll_ms: int = 200, kill_after_ms: int = 15_000,
                 preview_curves: int = 8) -> None:
        super().__init__(parent)
        self.kill_after_ms = kill_after_ms
        self.preview_curves = preview_curves
        self.process: QProcess | None = None
        self.run_dir: Path | None = None
        self.processes = 0
        self.device = "cpu"
        self.modality = "functions"
        self.losses: list[float] = []
        self.step = 0
        self.total = 0
        self.summary: dict[str, Any] | None = None
        self._error_event: str | None = None
        self._stderr: deque[str] = deque(maxlen=STDERR_TAIL)
        self._buffers = {"out": b"", "err": b""}
        self._follower: JsonlFollower | None = None
        self._state = IDLE
        self._pgid: int | None = None
        self._elapsed = 0.0
        self._cancelled_at: int | None = None
        self._closing = False
        self.timer = QTimer(self)
        self.timer.setInterval(poll_ms)
        self.timer.timeout.connect(self.poll)
        self.loader = JobRunner(self, max_rate_hz=0)
        self.loader.finished.connect(self._on_loaded)
        self.loader.failed.connect(self._on_load_failed)

    # -- queries -----------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    @property
    def running(self) -> bool:
        """True from start until the run is loaded (or has failed, or was cancelled)."""
        return self._state != IDLE

    # -- control -----------------------------------------------------------------------------
    def start(self, config: Any, *, processes: int, run_dir: str | Path, device: str = "cpu",
              modality: str = "functions") -> list[str]:
        """Start ``hdm train`` for ``config`` on ``processes`` ranks into ``run_dir``; returns the command.

        Raises ConfigError when a run is going on or the global batch does not split evenly.
        """
        if self.running:
            raise ConfigError("a training run is going on; cancel it first")
        if processes < 1:
            raise ConfigError(f"the number of processes must be at least 1, got {processes}")
        batch = config.train.batch_size
        if batch % processes:
            raise ConfigError(f"batch {batch} does not split over {processes} processes; use a multiple of "
                              f"{processes} (e.g. {max(processes, batch // processes * processes)})")
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        progress = self.run_dir / PROGRESS_FILE
        progress.unlink(missing_ok=True)
        command = torchrun_command(config, processes=processes, run_dir=self.run_dir, device=device)
        self.processes, self.device, self.modality = processes, device, modality
        self.losses, self.step, self.total = [], 0, config.train.steps
        self.summary, self._error_event = None, None
        self._stderr.clear()
        self._buffers = {"out": b"", "err": b""}
        self._follower = JsonlFollower(progress)
        self._pgid, self._elapsed = None, 0.0

        proc = QProcess(self)
        proc.setProgram(command[0])
        proc.setArguments(command[1:])
        proc.setProcessEnvironment(self._environment(processes))
        if os.name == "posix":  # its own session: Cancel signals torchrun and every rank at once
            proc.setUnixProcessParameters(QProcess.UnixProcessFlag.CreateNewSession)
        proc.started.connect(self._on_started)
        proc.readyReadStandardOutput.connect(self._read_stdout)
        proc.readyReadStandardError.connect(self._read_stderr)
        proc.finished.connect(self._on_finished)
        proc.errorOccurred.connect(self._on_error)
        self.process = proc
        self._set_state(RUNNING)
        proc.start()
        self.timer.start()
        return command

    @Slot()
    def cancel(self) -> None:
        """Stop the run: SIGTERM to every process of the run, SIGKILL if any is left after ``kill_after_ms``.

        The ranks finish the step under way and rank 0 saves the run before they exit (a second or so); the
        15 s allowance also covers a slow step (a first, compiling one) and a large checkpoint."""
        if self._state != RUNNING or self.process is None:
            return
        self._set_state(CANCELLING)
        self._signal(signal.SIGTERM)
        QTimer.singleShot(self.kill_after_ms, self._kill)

    def shutdown(self, timeout_ms: int = 5000) -> None:
        """On closing the studio: stop the child and wait for it (no signals are emitted any more)."""
        self._closing = True
        self.timer.stop()
        proc = self.process
        if proc is not None and proc.state() != QProcess.ProcessState.NotRunning:
            self._signal(signal.SIGTERM)
            if not proc.waitForFinished(timeout_ms):
                self._signal(KILL)
                proc.waitForFinished(2000)
            self._signal(KILL)  # any rank still alive after torchrun left
        self.loader.shutdown(timeout_ms)

    # -- following the child -----------------------------------------------------------------
    @Slot()
    def poll(self) -> None:
        """Read the progress lines written since the last poll; report the newest step."""
        if self._follower is None:
            return
        fresh = False
        for record in self._follower.read():
            event = record.get("event")
            if event == "done":
                self.summary = record
            elif event == "error":
                self._error_event = str(record.get("message") or "training failed")
            elif "step" in record:
                loss = record.get("loss")
                self.losses.append(float(loss) if loss is not None else math.nan)
                self.step = int(record["step"])
                self.total = int(record.get("total", self.total))
                self._elapsed = float(record.get("elapsed", 0.0))
                fresh = True
        if fresh and not self._closing:
            eta = self._elapsed / self.step * (self.total - self.step) if self.step else math.nan
            self.preview.emit({"losses": np.asarray(self.losses, dtype=np.float32), "samples": None,
                               "grid": None, "modality": self.modality, "sample_step": 0, "skeleton": None})
            self.progress.emit(self.step, self.total, eta)

    def _environment(self, processes: int) -> QProcessEnvironment:
        env = QProcessEnvironment.systemEnvironment()
        for key in TORCHRUN_ENV:
            env.remove(key)
        env.insert("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
        env.insert("PYTHONUNBUFFERED", "1")
        root = str(Path(__file__).resolve().parent.parent)  # where `engine` is, installed or not
        path = env.value("PYTHONPATH", "")
        env.insert("PYTHONPATH", root + (os.pathsep + path if path else ""))
        return env

    @Slot()
    def _read_stdout(self) -> None:
        if self.process is not None:
            self._lines("out", bytes(self.process.readAllStandardOutput().data()))

    @Slot()
    def _read_stderr(self) -> None:
        if self.process is not None:
            self._lines("err", bytes(self.process.readAllStandardError().data()))

    def _lines(self, channel: str, data: bytes, final: bool = False) -> None:
        *lines, rest = (self._buffers[channel] + data).split(b"\n")
        self._buffers[channel] = rest
        if final and rest:
            lines.append(rest)
            self._buffers[channel] = b""
        for raw in lines:
            line = raw.decode("utf-8", errors="replace").rstrip("\r").rstrip()
            if not line:
                continue
            level = "info"
            if channel == "err":
                self._stderr.append(line)
                level = "error" if line.startswith("error: ") else "warning"
            if not self._closing:
                self.output.emit(level, line)

    @Slot()
    def _on_started(self) -> None:
        if os.name == "posix" and self.process is not None:
            self._pgid = int(self.process.processId())  # a session leader: its pid is its group's id

    def _signal(self, sig: int) -> None:
        proc = self.process
        if proc is None:
            return
        if self._pgid:
            try:
                os.killpg(self._pgid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        elif sig == signal.SIGTERM:
            proc.terminate()
        else:
            proc.kill()

    @Slot()
    def _kill(self) -> None:
        if self._state == CANCELLING and self.process is not None \
                and self.process.state() != QProcess.ProcessState.NotRunning:
            self.output.emit("warning", f"the training processes did not stop within {self.kill_after_ms / 1000:g} "
                                        "s; killing them")
            self._signal(KILL)

    @Slot(QProcess.ProcessError)
    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and not self._closing:
            text = self.process.errorString() if self.process is not None else "unknown error"
            self._end()
            self.failed.emit(f"could not start the training processes ({text})", "")

    @Slot(int, QProcess.ExitStatus)
    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        if self._closing or self._state == IDLE:
            return
        self.timer.stop()
        self._read_stdout()
        self._read_stderr()
        self._lines("out", b"", final=True)
        self._lines("err", b"", final=True)
        self.poll()
        cancelling = self._state == CANCELLING
        if cancelling:
            self._signal(KILL)  # any rank still alive after torchrun left
        ok = exit_status == QProcess.ExitStatus.NormalExit and exit_code == 0 and self.summary is not None
        has_state = self.run_dir is not None and (self.run_dir / "train_state.pt").is_file()
        if cancelling and not has_state:
            self._end()
            self.cancelled.emit(f"training cancelled at step {self.step} (no checkpoint yet)", None)
        elif cancelling or ok:
            self._load(cancelled=cancelling)
        else:
            message = failure_message(self._error_event, list(self._stderr), exit_code)
            self._end()
            self.failed.emit(message, "")  # its stderr is in the log already, line by line

    # -- loading the run into the session ------------------------------------------------------
    def _load(self, *, cancelled: bool) -> None:
        """Load ``run_dir/train_state.pt`` (and sample a preview from it) on a worker thread."""
        run_dir, device, shown = self.run_dir, self.device, self.preview_curves
        self._cancelled_at = self.step if cancelled else None
        self._set_state(LOADING)

        def run(ctx: JobContext):
            import torch

            from engine.training import Trainer

            trainer = Trainer.resume(run_dir, device=device, continue_run=False)  # as trained: no new segment
            modality = trainer.modality
            count = shown if modality == "functions" else min(shown, ej.PREVIEWS[modality])
            with torch.inference_mode():
                samples = trainer.model().sample(count, steps=20, sampler="ddim", seed=0).samples
            grid = None if modality == "images" else np.asarray(trainer.dataset.grid, dtype=np.float64)
            payload = {"losses": np.asarray(trainer.losses, dtype=np.float32), "samples": samples, "grid": grid,
                       "modality": modality, "sample_step": trainer.step_count,
                       "skeleton": ej.dataset_skeleton(trainer.dataset)}
            return trainer, payload

        self.loader.submit(Job("load_run", run, "load the trained run"))

    @Slot(str, object)
    def _on_loaded(self, _name: str, result: Any) -> None:
        trainer, payload = result
        cancelled_at = self._cancelled_at
        self._end()
        if self._closing:
            return
        self.preview.emit(payload)
        if cancelled_at is None:
            self.finished.emit(trainer)
        else:
            saved = trainer.step_count
            self.cancelled.emit(f"training cancelled at step {saved} (saved)" if saved >= cancelled_at else
                                f"training cancelled at step {cancelled_at} (last checkpoint: step {saved})", trainer)

    @Slot(str, str, str)
    def _on_load_failed(self, _name: str, message: str, details: str) -> None:
        self._end()
        if not self._closing:
            self.failed.emit(f"{self.run_dir}: cannot load the trained run ({message})", details)

    def _end(self) -> None:
        self.timer.stop()
        if self.process is not None:
            self.process.deleteLater()
            self.process = None
        self._set_state(IDLE)

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            if not self._closing:
                self.state_changed.emit(state)
