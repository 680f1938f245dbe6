"""``hdm-studio``: launch the studio (or, with ``--demo``, sample once and take a screenshot).

The asyncio loop runs through qasync (thin glue only: every computation runs on the job
runner's worker thread). On Python 3.11 ``asyncio.run`` has no ``loop_factory``, hence
``asyncio.Runner(loop_factory=qasync.QEventLoop)``.

    hdm-studio
    hdm-studio --offscreen --demo --screenshot out.png
    hdm-studio --offscreen --demo --checkpoint mnist_hdm --screenshot out.png   # live image grids
    hdm-studio --checkpoint runs/x/model.safetensors --steps 200 --num-samples 32
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from studio import APPLICATION, ORGANIZATION

DEFAULT_CHECKPOINT = "quadratic"  # what --demo samples from when it is bundled
IMAGE_DEMO = {"num_samples": 16, "steps": 30}  # --demo on an image checkpoint, unless given


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hdm-studio",
                                description="HDM Studio: Hilbert diffusion models, visible.")
    p.add_argument("--offscreen", action="store_true",
                   help="render without a screen (QT_QPA_PLATFORM=offscreen)")
    p.add_argument("--demo", action="store_true",
                   help="on start, sample from the bundled checkpoint with the live view")
    p.add_argument("--screenshot", metavar="PATH",
                   help="save a screenshot of the window to PATH (with --demo: after sampling) and exit")
    p.add_argument("--checkpoint", metavar="NAME|PATH",
                   help="a bundled checkpoint's name, a .safetensors file or a run directory")
    p.add_argument("--steps", type=int, help="sampling steps")
    p.add_argument("--num-samples", type=int, help="number of samples")
    return p


def configure_compute() -> int:
    """Leave one core to the GUI thread: torch's intra-op threads = cores - 1 (at least 1).

    On a 2-core machine two torch threads and the GUI thread contend for the cores and a tiny
    training step slows from ~4 ms to ~100 ms; one thread keeps both fast.
    """
    import torch

    threads = max(1, (os.cpu_count() or 1) - 1)
    torch.set_num_threads(threads)
    return threads


def demo_checkpoint(spec: str | None) -> str:
    """The checkpoint ``--demo`` samples from: ``spec`` or a bundled one, the curve model first (ValueError if
    none). ``spec`` may name an image checkpoint (e.g. ``mnist_hdm``): the live view then shows image grids."""
    from engine import api

    bundled = api.list_checkpoints()
    if spec is None:
        if not bundled:
            raise ValueError("--demo needs a checkpoint: none is bundled in assets/checkpoints; "
                             "pass --checkpoint PATH")
        return DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT in bundled else next(iter(bundled))
    return checkpoint_spec(spec)


def checkpoint_spec(spec: str) -> str:
    """``--checkpoint`` as the studio takes it: a bundled name as it is, a ``.safetensors`` file or a run directory
    (as ``hdm`` takes them) as the model file's path; ValueError naming what is wrong otherwise."""
    from engine import api
    from engine.errors import HDMError

    if spec in api.list_checkpoints():
        return spec
    try:
        return str(api.resolve_checkpoint(spec))
    except HDMError as exc:
        raise ValueError(f"--checkpoint {exc}") from None


SCREENSHOT_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def check_args(args: argparse.Namespace) -> argparse.Namespace:
    """The options checked before any window opens (ValueError saying what to change): counts in the boxes'
    ranges, ``--checkpoint`` resolved (:func:`checkpoint_spec`), ``--screenshot`` an image file that can be
    written. The spin boxes would silently clamp a count (``--steps -1`` ran 1 step)."""
    from engine.errors import HDMError
    from engine.io import check_output_name, check_writable
    from studio.panels.sampling_panel import NUM_SAMPLES_RANGE, STEPS_RANGE

    for flag, value, (lo, hi) in (("--steps", args.steps, STEPS_RANGE),
                                  ("--num-samples", args.num_samples, NUM_SAMPLES_RANGE)):
        if value is not None and not lo <= value <= hi:
            raise ValueError(f"{flag} must be in {lo}..{hi:,}, got {value}")
    if args.demo:
        args.checkpoint = demo_checkpoint(args.checkpoint)
    elif args.checkpoint:
        args.checkpoint = checkpoint_spec(args.checkpoint)
    if args.screenshot:
        try:
            check_output_name(args.screenshot, suffixes=SCREENSHOT_SUFFIXES, what="an image",
                              flag="--screenshot")
        except HDMError as exc:
            raise ValueError(str(exc)) from None
        try:
            check_writable(Path(args.screenshot).expanduser())
        except HDMError as exc:
            raise ValueError(f"--screenshot {exc}") from None
    return args


class Demo:
    """Drives the window: sample once, then (optionally) save a screenshot, then close."""

    def __init__(self, window, args: argparse.Namespace) -> None:
        self.window = window
        self.args = args
        self.exit_code = 0

    def start(self) -> None:
        from PySide6.QtCore import QTimer

        w, panel = self.window, self.window.sampling_panel
        spec = self.args.checkpoint  # resolved by check_args (a bundled name, else the model file's path)
        if panel.checkpoint.findData(spec) < 0:
            panel.add_checkpoint(spec, Path(spec).name)
        panel.select_checkpoint(spec)
        if panel.modality() == "images":  # a UNet step on a CPU costs ~50x a curve step: a smaller default run
            if self.args.num_samples is None:
                panel.num.setValue(IMAGE_DEMO["num_samples"])
            if self.args.steps is None:
                panel.steps.setValue(IMAGE_DEMO["steps"])
        w.jobs.finished.connect(self._on_finished)
        w.jobs.failed.connect(lambda name, msg, _details: self.fail(f"{name} failed: {msg}"))
        w.jobs.cancelled.connect(lambda name, msg: self.fail(msg))
        QTimer.singleShot(0, w.controller.start_sampling)

    def _on_finished(self, name: str, _result: object) -> None:
        from PySide6.QtCore import QTimer

        if name == "sample":
            QTimer.singleShot(150, self.finish)

    def finish(self) -> None:
        if self.args.screenshot:
            if not save_screenshot(self.window, self.args.screenshot):
                self.exit_code = 2
        self.window.close()

    def fail(self, message: str) -> None:
        print(f"error: {message}", file=sys.stderr)
        self.exit_code = 2
        self.window.close()


def save_screenshot(window, path: str) -> bool:
    """Save ``window``'s picture to ``path`` (its folder made if missing); says where, or why not on stderr."""
    target = Path(path).expanduser()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: --screenshot {path}: cannot make its folder ({exc.strerror or exc})", file=sys.stderr)
        return False
    if not window.grab().save(str(target)):
        print(f"error: --screenshot {path}: Qt could not write the image there", file=sys.stderr)
        return False
    print(f"screenshot: {path}")
    return True


async def _run_until_closed(app, window, demo: Demo | None, screenshot: str | None) -> int:
    from PySide6.QtCore import QTimer

    closed = asyncio.get_running_loop().create_future()

    def on_closed() -> None:
        if not closed.done():
            closed.set_result(None)

    app.lastWindowClosed.connect(on_closed)
    shot_failed = False
    if demo is not None:
        demo.start()
    elif screenshot:
        def shoot() -> None:
            nonlocal shot_failed
            shot_failed = not save_screenshot(window, screenshot)
            window.close()

        QTimer.singleShot(1500, shoot)
    await closed
    return demo.exit_code if demo is not None else 2 if shot_failed else 0


def create_window(args: argparse.Namespace):
    """The application and its main window, configured as ``args`` ask (not shown yet)."""
    if args.offscreen:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from engine.device import tune_cpu_allocator

    tune_cpu_allocator()  # process-wide: only entry points do it

    from PySide6.QtWidgets import QApplication

    from studio.log import install_excepthook
    from studio.main_window import MainWindow
    from studio.theme import configure_pyqtgraph, follow_system_theme

    configure_compute()
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "hdm-studio"])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setQuitOnLastWindowClosed(False)  # the coroutine in main() ends the loop, not Qt
    configure_pyqtgraph()
    follow_system_theme(app)

    window = MainWindow()
    install_excepthook(lambda line: window.show_error("Unexpected error", line))
    if args.demo or args.screenshot:
        window.reset_layout()
        window.resize(1560, 980)
    panel = window.sampling_panel
    if args.steps is not None:
        panel.steps.setValue(args.steps)
    if args.num_samples is not None:
        panel.num.setValue(args.num_samples)
    if args.checkpoint and not args.demo:  # resolved by check_args: a bundled name, else the model file's path
        if not panel.select_checkpoint(args.checkpoint):
            window.files.load_checkpoint(args.checkpoint)
    return app, window


def main(argv: list[str] | None = None) -> int:
    from engine.device import configure_openmp

    configure_openmp()  # first: OpenMP reads its spin count when torch loads it
    args = build_parser().parse_args(argv)
    try:
        check_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app, window = create_window(args)
    import qasync

    window.show()
    demo = Demo(window, args) if args.demo else None
    with asyncio.Runner(loop_factory=qasync.QEventLoop) as runner:
        code = runner.run(_run_until_closed(app, window, demo, args.screenshot))
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
