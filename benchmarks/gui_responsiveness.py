"""GUI responsiveness while the engine works, and the live view's frame rate.

A QTimer probe ticks every 10 ms on the GUI thread while a job runs on the worker; a tick's
*wait* is how late it fires (gap between ticks minus 10 ms): what a user feels as a frozen
window. Reports the maximum and the 99th percentile during a training job (and during a
sampling job with the live trajectory view), plus how fast the trajectory view renders a frame
of curves and how many live frames per second it actually showed while sampling. With
``--images`` also: the probe while sampling the bundled ``mnist_hdm`` with live image grids, and
the render rates of the image grid (16 digits) and of the stick-figure view (4 walkers).

    python benchmarks/gui_responsiveness.py                 # default-size model, 8 s of training
    python benchmarks/gui_responsiveness.py --model tiny --seconds 3 --json out.json
    python benchmarks/gui_responsiveness.py --model tiny --seconds 3 --images
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

MODELS = {"tiny": {"width": 8, "modes": 4, "layers": 1, "batch": 16},
          "default": {"width": 32, "modes": 16, "layers": 4, "batch": 100}}


class LatencyProbe:
    """Ticks every ``interval_ms`` on the GUI thread and records how late each tick fires."""

    def __init__(self, interval_ms: int = 10) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.interval = interval_ms / 1000.0
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.stamps: list[float] = []

    def _tick(self) -> None:
        self.stamps.append(time.perf_counter())

    def start(self) -> None:
        self.stamps = [time.perf_counter()]
        self.timer.start()

    def stop(self) -> dict[str, float]:
        self.timer.stop()
        gaps = np.diff(np.asarray(self.stamps))
        if gaps.size == 0:
            return {"ticks": 0, "max_wait_ms": float("nan"), "p99_wait_ms": float("nan")}
        waits = np.clip(gaps - self.interval, 0.0, None) * 1000.0
        return {"ticks": int(gaps.size), "max_wait_ms": round(float(waits.max()), 2),
                "p99_wait_ms": round(float(np.percentile(waits, 99)), 2),
                "p50_wait_ms": round(float(np.percentile(waits, 50)), 2)}


def _pump(app, seconds: float, until=None) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end and not (until is not None and until()):
        app.processEvents()
        time.sleep(0.001)


def make_window(app, settings_dir: str):
    from PySide6.QtCore import QSettings

    from studio.main_window import MainWindow

    w = MainWindow(settings=QSettings(str(Path(settings_dir) / "s.ini"), QSettings.Format.IniFormat))
    w.resize(1560, 980)
    w.show()
    _pump(app, 30, until=lambda: w.workspace.dataset is not None)
    _pump(app, 1.0)  # let the first full paint of the window happen before probing
    return w


def probe_training(app, window, seconds: float, model: str) -> dict:
    """Probe while a training job runs for ``seconds``; then cancel it."""
    panel, size = window.training_panel, MODELS[model]
    panel.width_box.setValue(size["width"])
    panel.modes_box.setValue(size["modes"])
    panel.layers_box.setValue(size["layers"])
    panel.batch_box.setValue(size["batch"])
    panel.steps_box.setValue(1_000_000)
    probe = LatencyProbe()
    probe.start()
    window.controller.start_training()
    _pump(app, seconds)
    stats = probe.stop()
    trainer = window.workspace.training.trainer
    window.jobs.cancel()
    _pump(app, 30, until=lambda: not window.jobs.busy)
    stats.update({"job": "train", "model": model, "seconds": seconds,
                  "steps": trainer.step_count if trainer is not None else 0,
                  "loss_points_drawn": panel.loss.points})
    return stats


def probe_sampling(app, window, steps: int, num: int) -> dict:
    """Probe while sampling from the model just trained, with the live view; count its frames."""
    panel = window.sampling_panel
    panel.sampler.setCurrentText("euler_maruyama")
    panel.steps.setValue(steps)
    panel.num.setValue(num)
    probe = LatencyProbe()
    probe.start()
    started = time.perf_counter()
    window.controller.start_sampling()
    _pump(app, 600, until=lambda: not window.jobs.busy)
    elapsed = time.perf_counter() - started
    stats = probe.stop()
    stats.update({"job": "sample", "steps": steps, "num_samples": num, "seconds": round(elapsed, 2),
                  "live_frames": window.view.frames,
                  "live_frames_per_s": round(window.view.frames / elapsed, 1)})
    return stats


def render_rate(app, curves: int = 32, points: int = 100, frames: int = 60) -> dict:
    """Frames per second the trajectory view renders (update + a full synchronous paint)."""
    from studio.views.trajectory_view import TrajectoryView

    view = TrajectoryView()
    view.resize(900, 700)
    view.show()
    grid = np.linspace(-1.0, 1.0, points)
    rng = np.random.default_rng(0)
    view.begin_live(grid, 1.0)
    payloads = [{"x": rng.normal(size=(curves, 1, points)), "t": 1 - k / frames, "step": k, "total": frames}
                for k in range(frames)]
    started = time.perf_counter()
    for p in payloads:
        view.show_frame(p)
        view.plot.grab()  # forces the paint now
    elapsed = time.perf_counter() - started
    view.close()
    return {"curves": curves, "points": points, "ghosts": len(view._ghost_items),
            "frames_per_s": round(frames / elapsed, 1), "ms_per_frame": round(1000 * elapsed / frames, 2)}


def probe_image_sampling(app, window, steps: int, num: int, checkpoint: str = "mnist_hdm") -> dict:
    """Probe while sampling a bundled image checkpoint with live image grids."""
    panel = window.sampling_panel
    if not panel.select_checkpoint(checkpoint):
        return {"job": "sample images", "skipped": f"{checkpoint} is not bundled"}
    panel.sampler.setCurrentText("ddim")
    panel.steps.setValue(steps)
    panel.num.setValue(num)
    probe = LatencyProbe()
    probe.start()
    started = time.perf_counter()
    window.controller.start_sampling()
    _pump(app, 600, until=lambda: not window.jobs.busy)
    elapsed = time.perf_counter() - started
    stats = probe.stop()
    stats.update({"job": "sample images", "checkpoint": checkpoint, "steps": steps, "num_samples": num,
                  "seconds": round(elapsed, 2), "live_frames": window.view.frames,
                  "live_frames_per_s": round(window.view.frames / elapsed, 1)})
    return stats


def media_render_rates(app, frames: int = 60) -> dict:
    """Frames per second of the image grid (16 images 28 x 28) and of 4 stick figures (22 joints)."""
    from studio.views.media import ImageGridView, SkeletonView

    rng = np.random.default_rng(0)
    out = {}
    grid = ImageGridView()
    grid.resize(900, 700)
    grid.show()
    pictures = rng.random((frames, 16, 1, 28, 28))
    started = time.perf_counter()
    for x in pictures:
        grid.set_images(x)
        grid.grab()
    out["image_grid_frames_per_s"] = round(frames / (time.perf_counter() - started), 1)
    grid.close()
    sk = SkeletonView()
    sk.resize(900, 700)
    sk.show()
    parents = [-1] + [j - 1 for j in range(1, 22)]
    motions = np.cumsum(rng.normal(scale=0.05, size=(4, frames, 22, 3)), axis=2)
    sk.set_motions(motions, parents, 30.0, animate=False)
    started = time.perf_counter()
    for k in range(frames):
        sk.set_frame(k)
        sk.grab()
    out["skeleton_frames_per_s"] = round(frames / (time.perf_counter() - started), 1)
    sk.close()
    return out


def main() -> int:
    from engine.device import tune_cpu_allocator

    tune_cpu_allocator()  # time what `hdm` and the studio run with
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="how long to probe during training")
    ap.add_argument("--model", choices=list(MODELS), default="default")
    ap.add_argument("--sample-steps", type=int, default=200)
    ap.add_argument("--num-samples", type=int, default=64)
    ap.add_argument("--images", action="store_true", help="also probe image sampling and the media views")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    from PySide6.QtWidgets import QApplication

    from studio.app import configure_compute
    from studio.theme import apply_theme, configure_pyqtgraph

    threads = configure_compute()
    app = QApplication.instance() or QApplication([])
    configure_pyqtgraph()
    apply_theme(app, dark=False)
    with tempfile.TemporaryDirectory() as tmp:
        window = make_window(app, tmp)
        results = {"cpu_count": os.cpu_count(), "torch_threads": threads,
                   "training": probe_training(app, window, args.seconds, args.model),
                   "sampling": probe_sampling(app, window, args.sample_steps, args.num_samples),
                   "render": render_rate(app)}
        if args.images:
            results["image_sampling"] = probe_image_sampling(app, window, 30, 16)
            results["media_render"] = media_render_rates(app)
        window.close()
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
