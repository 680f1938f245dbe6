"""The live reverse-time trajectory: curves redrawn as t runs from T to 0, and a time scrubber.

While a sampler runs, each preview (the state x_t of the first curves) replaces the drawn
curves, coloured by t/T (viridis: dark at T, pure noise; yellow at 0, data), with the few
previous states fading behind them as ghosts. Afterwards the scrubber replays the saved
trajectory (the engine's ``trajectory_every`` states) and ends on the denoised samples.

Images ([K, C, H, W] states) show as a tiled image grid instead, and motions ([K, 3J, T]
channels) as animated stick figures (:mod:`studio.views.media`); the scrubber works the same.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QSlider,
    QSpinBox,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.views.media import ImageGridView, SkeletonView
from studio.views.plotting import ThemedPlotWidget, accent_color, stack_curves, time_color

MODALITIES = ("functions", "images", "motions")


class TrajectoryView(QWidget):
    """Central view: live frames during sampling, replay of the trajectory afterwards.

    Args:
        max_curves: how many curves are drawn (the first ones; all are kept in the result).
        ghosts: how many earlier states stay visible behind the current one.
    """

    frame_drawn = Signal(int)  # number of live frames drawn since the run began

    def __init__(self, parent: QWidget | None = None, *, max_curves: int = 32, ghosts: int = 4) -> None:
        super().__init__(parent)
        self.max_curves = max_curves
        self.plot = ThemedPlotWidget(self, title="Reverse-time trajectory")
        self.plot.setLabel("bottom", "x")
        self.plot.setLabel("left", "u(x)")
        self._ghost_items = [self.plot.plot([], []) for _ in range(ghosts)]
        self._current = self.plot.plot([], [])
        self._highlight = self.plot.plot([], [], pen=pg.mkPen(accent_color(), width=3))
        self.images = ImageGridView(self, title="Reverse-time trajectory")
        self.skeletons = SkeletonView(self, title="Reverse-time trajectory (side view)")
        self.stack = QStackedWidget(self)
        for page in (self.plot, self.images, self.skeletons):
            self.stack.addWidget(page)
        self.modality = "functions"
        self._skeleton: tuple[list[int], float] = ([-1], 30.0)  # motions: parents, fps

        self.play_button = QToolButton(self)
        self.play_button.setText("▶")
        self.play_button.setToolTip("Replay the saved trajectory")
        self.play_button.clicked.connect(self._toggle_play)
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setToolTip("Time scrubber: drag to replay the reverse-time trajectory")
        self.slider.valueChanged.connect(self._on_scrub)
        self.time_label = QLabel("", self)
        self.time_label.setMinimumWidth(190)
        legend = QLabel("t = T", self)
        bar = self.time_bar = QLabel(self)
        bar.setFixedSize(90, 10)
        self._style_time_bar()
        legend_end = QLabel("0", self)
        self.time_legend = (legend, bar, legend_end)  # the curves' colours by time (images, motions: none)
        self.channel_box = QSpinBox(self)
        self.channel_box.setPrefix("channel ")
        self.channel_box.valueChanged.connect(lambda _: self._redraw())
        self.channel_box.setVisible(False)

        row = QHBoxLayout()
        row.addWidget(self.play_button)
        row.addWidget(self.slider, 1)
        row.addWidget(self.time_label)
        row.addWidget(legend)
        row.addWidget(bar)
        row.addWidget(legend_end)
        row.addWidget(self.channel_box)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.stack, 1)
        layout.addLayout(row)

        self._timer = QTimer(self)
        self._timer.setInterval(40)
        self._timer.timeout.connect(self._advance)

        self._grid = np.zeros(0)
        self._T = 1.0
        self._history: deque[tuple[np.ndarray, float]] = deque(maxlen=ghosts + 1)
        self._states: np.ndarray | None = None  # [S, K, C, n] replayable states
        self._times: np.ndarray | None = None  # [S]
        self._final: np.ndarray | None = None  # [K, C, n]
        self._seeds: np.ndarray | None = None
        self._highlight_seed: int | None = None
        self.frames = 0
        self.show_message("No samples yet: choose a checkpoint and press Sample (Ctrl+R)")
        self._built = True

    # -- public API --------------------------------------------------------------------------
    def show_message(self, text: str) -> None:
        """A note in the middle of the current page ('' hides it)."""
        self.stack.currentWidget().show_placeholder(text)

    def set_modality(self, modality: str, skeleton: tuple[list[int], float] | None = None) -> None:
        """Show ``modality``'s page (curves, image grid, stick figures); motions need (parents, fps)."""
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}")
        self.modality = modality
        if skeleton is not None:
            self._skeleton = (list(skeleton[0]), float(skeleton[1]))
        if modality != "motions":
            self.skeletons.stop()
        for widget in self.time_legend:
            widget.setVisible(modality == "functions")
        self.stack.setCurrentIndex(MODALITIES.index(modality))

    def show_last_result(self) -> bool:
        """Show the last finished samples again (after a live run was cancelled); False when there are none."""
        shown = getattr(self, "_shown", None)
        if shown is None:
            return False
        args, kwargs = shown
        self.set_result(*args, **kwargs)
        return True

    def begin_live(self, grid: np.ndarray, T: float, seeds: np.ndarray | None = None, *,
                   modality: str | None = None, skeleton: tuple[list[int], float] | None = None) -> None:
        """Prepare for a run on ``grid``; ``T`` is the equation's terminal time."""
        self.stop_playing()
        if modality is not None:
            self.set_modality(modality, skeleton)
        self._grid = np.asarray(grid, dtype=np.float64)
        self._T = float(T) if T > 0 else 1.0
        self._history.clear()
        self._states = self._times = self._final = None
        self._seeds = None if seeds is None else np.asarray(seeds)
        self.frames = 0
        self.slider.setEnabled(False)
        self.play_button.setEnabled(False)
        self.show_message("")
        self.time_label.setText("sampling…")
        self._highlight.setData([], [])
        self._live_range: tuple[float, float] | None = None
        self.plot.getPlotItem().getViewBox().disableAutoRange()

    @Slot(object)
    def show_frame(self, payload: dict) -> None:
        """Draw one live preview: ``{"x": [K, C, n] or [K, C, H, W], "t": float, "step": int, "total": int}``."""
        x = np.asarray(payload["x"])[: self.max_curves]
        if payload.get("modality", self.modality) != self.modality or payload.get("skeleton") is not None:
            self.set_modality(payload["modality"], payload.get("skeleton"))
        if self.modality != "functions":
            self._history.append((x, float(payload["t"])))
            self._draw_history()
            self.time_label.setText(self._live_label(payload))
            self.frames += 1
            self.frame_drawn.emit(self.frames)
            return
        if "grid" in payload:
            self._grid = np.asarray(payload["grid"], dtype=np.float64)
        if "T" in payload:
            self._T = float(payload["T"])
        self._set_channels(x.shape[1])
        self._history.append((x, float(payload["t"])))
        self._draw_history()
        self._fit_live_range(x[:, self._channel()])
        self.time_label.setText(self._live_label(payload))
        self.frames += 1
        self.frame_drawn.emit(self.frames)

    @staticmethod
    def _live_label(payload: dict) -> str:
        """The time label of a live frame, which says when it shows the x_0 estimate rather than x_t."""
        what = " · x0 estimate" if payload.get("what") == "x0" else ""
        return f"t = {payload['t']:.4f} · step {payload['step']}/{payload['total']}{what}"

    def shown_count(self) -> int:
        """How many of the finished samples are drawn (curves and images: up to ``max_curves``; motions:
        the stick figures, up to the skeleton view's ``max_figures``)."""
        if self._final is None:
            return 0
        n = len(self._final)
        return min(n, self.skeletons.max_figures) if self.modality == "motions" else n

    def set_result(self, grid: np.ndarray, samples: np.ndarray, seeds: np.ndarray | None = None,
                   trajectory: np.ndarray | None = None, times: np.ndarray | None = None,
                   T: float | None = None, *, modality: str | None = None,
                   skeleton: tuple[list[int], float] | None = None) -> None:
        """Show finished samples [N, C, n] or [N, C, H, W]; with a trajectory [S, N, ...] the scrubber replays it.

        ``grid`` is ignored for images; ``modality`` (default: the current one) picks the page.
        """
        self._shown = ((grid, samples, seeds, trajectory, times, T),
                       {"modality": modality or self.modality, "skeleton": skeleton})
        self.stop_playing()
        if modality is not None:
            self.set_modality(modality, skeleton)
        self._grid = np.zeros(0) if grid is None else np.asarray(grid, dtype=np.float64)
        self._final = np.asarray(samples)[: self.max_curves]
        self._seeds = None if seeds is None else np.asarray(seeds)
        if trajectory is not None and times is not None and len(trajectory):
            self._states = np.asarray(trajectory)[:, : self.max_curves]
            self._times = np.asarray(times, dtype=np.float64)
            self._T = float(T) if T else float(self._times[0]) or 1.0
        else:
            self._states = self._times = None
        self._set_channels(self._final.shape[1])
        self.show_message("")
        if self.modality == "functions":
            self.plot.getPlotItem().getViewBox().enableAutoRange()
        n_pos = (0 if self._states is None else len(self._states)) + 1
        self.slider.blockSignals(True)
        self.slider.setRange(0, n_pos - 1)
        self.slider.setValue(n_pos - 1)
        self.slider.blockSignals(False)
        self.slider.setEnabled(n_pos > 1)
        self.play_button.setEnabled(n_pos > 1)
        self._on_scrub(n_pos - 1)
        if self.modality == "motions":
            self.skeletons.fit_range()

    def highlight_seed(self, seed: int | None) -> None:
        """Emphasise the curve drawn with ``seed`` (when it is among the shown curves)."""
        self._highlight_seed = seed
        self._redraw()

    def seed_index(self, seed: int | None) -> int | None:
        if seed is None or self._seeds is None:
            return None
        hits = np.flatnonzero(self._seeds[: self.max_curves] == seed)
        return int(hits[0]) if hits.size else None

    @property
    def positions(self) -> int:
        return self.slider.maximum() + 1

    def stop_playing(self) -> None:
        """Stop the scrubber's replay (a motion's stick figures keep walking)."""
        self._timer.stop()
        self.play_button.setText("▶")

    # -- drawing -----------------------------------------------------------------------------
    def _channel(self) -> int:
        return self.channel_box.value() if self.channel_box.isVisible() else 0

    def _set_channels(self, channels: int) -> None:
        self.channel_box.setRange(0, max(0, channels - 1))
        self.channel_box.setVisible(channels > 1 and self.modality == "functions")

    def _draw_media(self, x: np.ndarray) -> None:
        """Images: the grid of ``x`` [K, C, H, W]; motions: stick figures of ``x`` [K, 3J, T]."""
        if self.modality == "images":
            self.images.set_images(x)
        else:
            from engine.motion import channels_to_positions

            parents, fps = self._skeleton
            self.skeletons.set_motions(channels_to_positions(x), parents, fps)

    def _draw_history(self) -> None:
        if self.modality != "functions":
            if self._history:
                self._draw_media(self._history[-1][0])
            return
        c = self._channel()
        frames = list(self._history)
        ghosts = frames[:-1][::-1]  # most recent first
        for j, item in enumerate(self._ghost_items):
            if j < len(ghosts):
                x, t = ghosts[j]
                alpha = int(150 * (1 - (j + 1) / (len(self._ghost_items) + 1)))
                gx, gy = stack_curves(self._grid, x[:, c])
                # faint ghosts without antialiasing: a third of the cost, no visible difference
                item.setData(gx, gy, connect="finite", pen=pg.mkPen(time_color(t / self._T, alpha), width=1),
                             antialias=False, skipFiniteCheck=True)
            else:
                item.setData([], [])
        if frames:
            x, t = frames[-1]
            cx, cy = stack_curves(self._grid, x[:, c])
            pen = pg.mkPen(time_color(t / self._T, 235), width=1)
            self._current.setData(cx, cy, connect="finite", pen=pen, skipFiniteCheck=True)
            k = self.seed_index(self._highlight_seed)
            if k is not None and k < len(x):
                self._highlight.setData(self._grid, x[k, c])
            else:
                self._highlight.setData([], [])

    def _fit_live_range(self, y: np.ndarray) -> None:
        """Change the live view's range only when the curves outgrow it or shrink well inside it.

        Re-ranging every frame would redraw the axes every frame, which costs more than the curves.
        """
        if self._grid.size == 0 or not np.isfinite(y).all():
            return
        lo, hi = float(y.min()), float(y.max())
        span = max(hi - lo, 1e-12)
        current = getattr(self, "_live_range", None)
        if current is not None:
            c_lo, c_hi = current
            inside = c_lo <= lo and hi <= c_hi
            if inside and (c_hi - c_lo) <= 2.5 * span:
                return
        self._live_range = (lo - 0.1 * span, hi + 0.1 * span)
        self.plot.setRange(xRange=(self._grid[0], self._grid[-1]), yRange=self._live_range, padding=0)

    def _style_time_bar(self) -> None:
        """The legend's gradient from t = T to 0, in :func:`time_color`'s colours for the current theme."""
        self.time_bar.setStyleSheet("background: qlineargradient(x1:0, y1:0, x2:1, y2:0, stop:0 "
                                    f"{time_color(1).name()}, stop:0.5 {time_color(0.5).name()}, "
                                    f"stop:1 {time_color(0).name()}); border-radius: 3px;")

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt override
        if getattr(self, "_built", False) and event.type() in (QEvent.Type.PaletteChange,
                                                               QEvent.Type.ApplicationPaletteChange):
            self._style_time_bar()
            self._redraw()  # the curves in the new theme's time colours
        super().changeEvent(event)

    def _redraw(self) -> None:
        if self._final is not None:
            self._on_scrub(self.slider.value())
        else:
            self._draw_history()

    @Slot(int)
    def _on_scrub(self, index: int) -> None:
        if self._final is None:
            return
        states = [] if self._states is None else list(zip(self._states, self._times, strict=True))
        final_t = 0.0
        states.append((self._final, final_t))
        index = int(np.clip(index, 0, len(states) - 1))
        self._history.clear()
        for x, t in states[max(0, index - self._history.maxlen + 1): index + 1]:
            self._history.append((x, float(t)))
        self._draw_history()
        if index == len(states) - 1:
            self.time_label.setText(f"t = 0 · denoised ({self.shown_count()} shown)")
        else:
            self.time_label.setText(f"t = {states[index][1]:.4f} · state {index + 1}/{len(states) - 1}")

    @Slot()
    def _toggle_play(self) -> None:
        if self._timer.isActive():
            self.stop_playing()
            return
        if self.slider.value() >= self.slider.maximum():
            self.slider.setValue(0)
        self.play_button.setText("⏸")
        self._timer.start()

    @Slot()
    def _advance(self) -> None:
        if self.slider.value() >= self.slider.maximum():
            self.stop_playing()
        else:
            self.slider.setValue(self.slider.value() + 1)
