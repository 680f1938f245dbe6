"""The GUI thread stays responsive while the engine trains; the studio's own warnings reach the log."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest
from PySide6.QtCore import qWarning

pytestmark = pytest.mark.gui
BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "gui_responsiveness.py"


def _bench():
    spec = importlib.util.spec_from_file_location("gui_responsiveness", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_timer_probe_never_waits_50ms_while_training(window, qtbot):
    bench = _bench()
    panel = window.training_panel
    for box, value in ((panel.width_box, 8), (panel.modes_box, 4), (panel.layers_box, 1),
                       (panel.batch_box, 16), (panel.steps_box, 1_000_000)):
        box.setValue(value)
    qtbot.wait(300)  # the window's first full paint is not the job's doing
    probe = bench.LatencyProbe(interval_ms=10)
    probe.start()
    window.controller.start_training()
    deadline = time.perf_counter() + 2.0
    while time.perf_counter() < deadline:
        qtbot.wait(20)
    stats = probe.stop()
    steps = window.workspace.training.trainer.step_count
    window.jobs.cancel()
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=10_000)
    print(f"probe while training: {stats}, {steps} steps")
    assert steps > 20 and panel.loss.points > 0
    assert stats["ticks"] > 50  # the probe ran through the run (about 190 alone; 97 with another job on 2 cores)
    assert stats["max_wait_ms"] < 50, stats


def test_qt_warnings_reach_the_log_panel_but_the_headless_plugins_noise_does_not(window):
    qWarning("a warning from Qt itself")
    qWarning("This plugin does not support propagateSizeHints()")  # the offscreen plugin, for every window
    assert any("[qt] a warning from Qt itself" in line for line in window.log_panel.lines())
    assert not any("propagateSizeHints" in line for line in window.log_panel.lines())
    assert window.log_panel.counts["warning"] >= 1


def test_dark_palette_reaches_the_plots(window, themed_app, shot):
    from PySide6.QtGui import QPalette

    from studio.theme import apply_theme

    try:
        apply_theme(themed_app, dark=True)
        themed_app.processEvents()
        base = themed_app.palette().color(QPalette.ColorRole.Base)
        assert base.lightness() < 60
        assert window.view.plot.backgroundBrush().color() == base
        assert window.data_panel.preview.backgroundBrush().color() == base
        shot(window, "dark_theme")
    finally:
        apply_theme(themed_app, dark=False)
