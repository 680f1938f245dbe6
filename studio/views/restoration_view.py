"""The restoration session's views: the input with a mask brush, the live estimate, the side-by-side results.

Arrays are channels-first and in data units: curves and motions [C, n] on a grid [n], images [C, H, W]
in [0, 1] (shown as grey for C = 1, RGB for C = 3, clipped to [0, 1]).

- :class:`MaskCanvas` shows an image item and paints a mask on it with the mouse: the left button marks
  pixels *missing*, the right button marks them observed again. ``mask`` is boolean [H, W], True where a
  pixel is observed (the convention of :func:`engine.restoration.make_degradation`'s ``mask`` option).
- :class:`RestorationView` holds the input (the canvas), the degraded preview, the live denoised estimate
  ``x0_hat(x_t)`` of the running restoration, one :class:`Tile` per result (original / degraded / each
  prior's restoration, with PSNR, SSIM and consistency under it) and, for curves, one overlay plot of the
  original, the observed points, the naive baseline and the restorations (their mean and a few singles).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QSizePolicy, QSpinBox, QVBoxLayout, QWidget

from studio.views.plotting import ThemedPlotWidget, series_color, stack_curves

SINGLES_SHOWN = 3  # single restorations drawn beside their mean
TILE_MIN = 96  # a tile's smallest plot side in pixels: four tiles side by side fit a narrow Restore tab
_MISSING_RGBA = (230, 40, 40, 150)  # painted (missing) pixels over the image
_LIVE_NOTE = "the denoised\nestimate x0(x_t)\nappears here\nwhile restoring"  # short lines: a narrow plot


def image_for_display(x: np.ndarray) -> np.ndarray:
    """[C, H, W] in [0, 1] -> [H, W] (C = 1) or [H, W, 3] (C = 3), clipped, for a row-major ImageItem."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
    return x[0] if x.shape[0] == 1 else np.moveaxis(x[:3], 0, -1)


def _note(plot: ThemedPlotWidget, text: str) -> None:
    """An empty plot with a centred note saying what will appear there."""
    plot.getPlotItem().getViewBox().disableAutoRange()
    plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
    plot.show_placeholder(text)


def _set_plot_mode(plot: ThemedPlotWidget, images: bool) -> None:
    """Put ``plot`` in the mode of what it shows now (every plot that shows images and curves in turn is set
    each time it shows something). Images: pixels square, row 0 at the top, no axes, no mouse panning (the
    mouse paints). Curves and motions: y up, free aspect, axes and grid, mouse panning."""
    item = plot.getPlotItem()
    for axis in ("left", "bottom"):
        item.showAxis(axis, not images)
    item.showGrid(x=not images, y=not images, alpha=0.15)
    if images:
        item.hideButtons()
    else:
        item.showButtons()
    box = item.getViewBox()
    box.invertY(images)
    box.setAspectLocked(images)
    box.setMouseEnabled(not images, not images)
    box.setMenuEnabled(not images)


def _wrapping_label(parent: QWidget) -> QLabel:
    """A centred label that wraps its words and never asks for width (a long title must not widen the window)."""
    label = QLabel("", parent)
    label.setWordWrap(True)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    policy = label.sizePolicy()  # keeps the height-for-width of the word wrap
    policy.setHorizontalPolicy(QSizePolicy.Policy.Ignored)
    label.setSizePolicy(policy)
    return label


class _MaskItem(pg.ImageItem):
    """The mask overlay; mouse clicks and drags on it paint (left: missing, right: observed)."""

    def __init__(self, canvas: MaskCanvas) -> None:
        super().__init__(axisOrder="row-major")
        self._canvas = canvas

    def _paint(self, ev) -> bool:
        button = ev.button()
        if button not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton) or not self._canvas.painting:
            return False
        pos = ev.pos()
        self._canvas.paint_at(int(np.floor(pos.y())), int(np.floor(pos.x())),
                              erase=button == Qt.MouseButton.RightButton)
        return True

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 - pyqtgraph override
        if self._paint(ev):
            ev.accept()
        else:
            ev.ignore()

    def mouseDragEvent(self, ev) -> None:  # noqa: N802 - pyqtgraph override
        if self._paint(ev):
            ev.accept()
        else:
            ev.ignore()


class MaskCanvas(ThemedPlotWidget):
    """An image with a paintable mask (images), or the item's curves (curves and motions)."""

    mask_changed = Signal()

    def __init__(self, parent: QWidget | None = None, title: str = "Input") -> None:
        super().__init__(parent, title=title)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.overlay = _MaskItem(self)
        self.overlay.setLookupTable(np.array([(0, 0, 0, 0), _MISSING_RGBA], dtype=np.ubyte))
        self.curve = self.plot([], [], pen=pg.mkPen(series_color(0), width=2))
        self.addItem(self.image)
        self.addItem(self.overlay)
        self._painting = False
        self.overlay.setVisible(False)
        self.brush = 3  # brush side in pixels
        self._missing = np.zeros((0, 0), dtype=bool)

    @property
    def painting(self) -> bool:
        """Whether the mask is in use (inpaint-mask, drawn): only then is it shown and painted on; otherwise
        it is hidden (read as missing pixels by tasks that ignore it) and its strokes are kept."""
        return self._painting

    @painting.setter
    def painting(self, on: bool) -> None:
        self._painting = bool(on)
        self.overlay.setVisible(self._painting and self.image.isVisible())

    @property
    def mask(self) -> np.ndarray:
        """Boolean [H, W]: True where a pixel is observed."""
        return ~self._missing

    @property
    def missing_count(self) -> int:
        return int(self._missing.sum())

    def show_image(self, x: np.ndarray) -> None:
        """Show an image item [C, H, W]; the mask keeps its strokes while the size is unchanged."""
        self.hide_placeholder()
        _set_plot_mode(self, True)
        self.curve.setData([], [])
        H, W = x.shape[-2:]
        if self._missing.shape != (H, W):
            self._missing = np.zeros((H, W), dtype=bool)
        self.image.setImage(image_for_display(x), levels=(0.0, 1.0))
        self.image.setVisible(True)
        self.overlay.setVisible(self._painting)
        self._draw_mask()
        self.getPlotItem().getViewBox().autoRange(padding=0.02)

    def show_nothing(self, note: str) -> None:
        """No item: an empty plot with ``note`` (the mask keeps its strokes)."""
        self.image.clear()
        self.image.setVisible(False)
        self.overlay.setVisible(False)
        self.curve.setData([], [])
        _note(self, note)

    def show_curves(self, grid: np.ndarray, x: np.ndarray, channel: int = 0) -> None:
        """Show a curve or motion item [C, n] (channel ``channel``); nothing to paint on."""
        self.hide_placeholder()
        _set_plot_mode(self, False)
        self.image.setVisible(False)
        self.overlay.setVisible(False)
        self.curve.setData(np.asarray(grid, dtype=np.float64), np.asarray(x[channel], dtype=np.float64))
        self.getPlotItem().getViewBox().autoRange()

    def paint_at(self, row: int, col: int, *, erase: bool = False) -> None:
        """Mark a ``brush`` x ``brush`` square centred at (row, col) missing (or observed when ``erase``)."""
        H, W = self._missing.shape
        if not (0 <= row < H and 0 <= col < W):
            return
        r = self.brush // 2
        self._missing[max(0, row - r): row - r + self.brush, max(0, col - r): col - r + self.brush] = not erase
        self._draw_mask()
        self.mask_changed.emit()

    def clear_mask(self) -> None:
        self._missing[:] = False
        self._draw_mask()
        self.mask_changed.emit()

    def _draw_mask(self) -> None:
        if self._missing.size:
            self.overlay.setImage(self._missing.astype(np.uint8), levels=(0, 1), autoLevels=False)


@dataclass
class TileContent:
    """What one tile shows: an image [C, H, W] or curves (a main curve [C, n], singles [k, C, n], extras)."""

    title: str
    value: np.ndarray
    metrics: str = ""
    singles: np.ndarray | None = None
    reference: np.ndarray | None = None  # curves: the original, drawn faintly behind
    points: np.ndarray | None = None  # curves: bool [C, n], the observed points (drawn as dots)


class Tile(QWidget):
    """One result: a title, a small plot (an image or curves) and its metrics underneath."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = _wrapping_label(self)
        self.plot = ThemedPlotWidget(self)
        self.plot.setMinimumSize(TILE_MIN, TILE_MIN)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.reference = self.plot.plot([], [], pen=pg.mkPen(QColor(128, 128, 128, 160), width=1,
                                                              style=Qt.PenStyle.DashLine))
        self.singles = self.plot.plot([], [], pen=pg.mkPen(series_color(1, 110), width=1))
        self.main = self.plot.plot([], [], pen=pg.mkPen(series_color(0), width=2))
        self.dots = self.plot.plot([], [], pen=None, symbol="o", symbolSize=5, symbolBrush=series_color(3),
                                   symbolPen=None)
        self.metrics = _wrapping_label(self)
        self.metrics.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.title)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.metrics)

    def show_content(self, content: TileContent, grid: np.ndarray | None, channel: int = 0) -> None:
        self.title.setText(f"<b>{content.title}</b>")
        self.title.setToolTip(content.title)
        self.metrics.setText(content.metrics)
        self.plot.hide_placeholder()
        for item in (self.reference, self.singles, self.main, self.dots):
            item.setData([], [])
        if grid is None:  # an image
            _set_plot_mode(self.plot, True)
            self.image.setImage(image_for_display(content.value), levels=(0.0, 1.0))
            self.image.setVisible(True)
            self.plot.getPlotItem().getViewBox().autoRange(padding=0.02)
            return
        _set_plot_mode(self.plot, False)
        self.image.setVisible(False)
        self.image.clear()
        g = np.asarray(grid, dtype=np.float64)
        if content.reference is not None:
            self.reference.setData(g, content.reference[channel])
        if content.singles is not None and len(content.singles):
            sx, sy = stack_curves(g, content.singles[:SINGLES_SHOWN, channel])
            self.singles.setData(sx, sy, connect="finite")
        if content.points is not None:
            seen = content.points[channel]
            self.dots.setData(g[seen], content.value[channel][seen])
        else:
            self.main.setData(g, content.value[channel])
        self.plot.getPlotItem().getViewBox().autoRange()


class RestorationView(QWidget):
    """Input and degraded preview, the live estimate, then the side-by-side results (and the curves' overlay)."""

    frame_drawn = Signal(int)  # live frames drawn since the run began

    def __init__(self, parent: QWidget | None = None, max_tiles: int = 4) -> None:
        super().__init__(parent)
        self.canvas = MaskCanvas(self, "Input")
        self.degraded = Tile(self)
        self.live = ThemedPlotWidget(self, title="Live estimate")
        self.live_image = pg.ImageItem(axisOrder="row-major")
        self.live.addItem(self.live_image)
        self.live_curves = self.live.plot([], [], pen=pg.mkPen(series_color(0), width=1))
        self.live_reference = self.live.plot([], [], pen=pg.mkPen(QColor(128, 128, 128, 160), width=1,
                                                                   style=Qt.PenStyle.DashLine))
        self.live_label = _wrapping_label(self)
        self.channel = QSpinBox(self)
        self.channel.setPrefix("channel ")
        self.channel.setToolTip("Which channel of the curves (motions: a joint angle or coordinate) is drawn")
        self.channel.setVisible(False)
        self.channel.valueChanged.connect(self._redraw)
        # motions are drawn one coordinate at a time (not as stick figures): say which one
        self.channel_note = QLabel("", self)
        self.channel_note.setWordWrap(True)
        policy = self.channel_note.sizePolicy()
        policy.setHorizontalPolicy(QSizePolicy.Policy.Ignored)
        self.channel_note.setSizePolicy(policy)
        self._motion = False
        self.tiles = [Tile(self) for _ in range(max_tiles)]
        self.overlay = ThemedPlotWidget(self, title="Curves: original, observed, naive and restorations")
        self.overlay.setMinimumHeight(220)
        self.overlay.setVisible(False)
        self.legend = QLabel("", self)  # under the plot, so that it never hides a curve
        self.legend.setWordWrap(True)
        self.legend.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message = QLabel("", self)
        self.message.setWordWrap(True)

        live_box = QVBoxLayout()
        live_box.addWidget(self.live, 1)
        live_box.addWidget(self.live_label)
        top = QHBoxLayout()
        top.addWidget(self.canvas, 1)
        top.addWidget(self.degraded, 1)
        top.addLayout(live_box, 1)
        self._tile_grid = QGridLayout()
        for j, tile in enumerate(self.tiles):
            self._tile_grid.addWidget(tile, 0, j)
            tile.setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        channel_row = QHBoxLayout()
        channel_row.addWidget(self.channel)
        channel_row.addWidget(self.channel_note, 1)
        layout.addLayout(top, 3)
        layout.addLayout(channel_row)
        layout.addLayout(self._tile_grid, 3)
        layout.addWidget(self.overlay, 3)
        layout.addWidget(self.legend)
        layout.addWidget(self.message)

        self._grid: np.ndarray | None = None
        self._item: np.ndarray | None = None
        self._contents: list[TileContent] = []
        self._overlay_data: dict | None = None
        self._degraded: TileContent | None = None
        self._last_live: np.ndarray | None = None
        self.frames = 0
        _note(self.live, _LIVE_NOTE)
        _note(self.canvas, "choose a checkpoint and an item")
        _note(self.degraded.plot, "the degraded item appears here")

    # -- input -------------------------------------------------------------------------------
    @property
    def images(self) -> bool:
        return self._grid is None

    def set_item(self, item: np.ndarray, grid: np.ndarray | None, *, motion: bool = False) -> None:
        """A new input item ([C, H, W] with ``grid`` None, or [C, n] on ``grid``; ``motion``: joint positions,
        3 channels per joint); clears old results."""
        self._item = np.asarray(item)
        self._grid = None if grid is None else np.asarray(grid, dtype=np.float64)
        self._motion = motion
        channels = self._item.shape[0]
        self.channel.blockSignals(True)
        self.channel.setRange(0, max(0, channels - 1))
        self.channel.blockSignals(False)
        self.channel.setVisible(not self.images and channels > 1)
        self.channel_note.setVisible(motion)
        self._describe_channel()
        self.clear_results()
        self._reset_live()
        self._draw_input()

    def clear_item(self, note: str) -> None:
        """No item (its load failed): the last item's input, preview, live estimate and results go."""
        self._item = None
        self.channel.setVisible(False)
        self.channel_note.setVisible(False)
        self.clear_results()
        self._reset_live()
        self.canvas.show_nothing(note)
        self.set_degraded_preview(None, "no item")

    def _describe_channel(self) -> None:
        if self._motion:
            c = self.channel.value()
            joint, axis = divmod(c, 3)
            where = "the root's position" if joint == 0 else "relative to the root"
            self.channel_note.setText(f"joint {joint}, {'xyz'[axis]} ({where}) over time: motions are drawn "
                                      "one coordinate at a time, not as stick figures")

    def set_degraded_preview(self, content: TileContent | None,
                             note: str = "the parameters are not valid:\nsee the message under the controls") -> None:
        """The degraded item for the current settings (``None``: none, for the reason ``note``)."""
        self._degraded = content
        if content is None:
            self.degraded.title.setText("<b>Degraded</b>")
            self.degraded.title.setToolTip("Degraded")
            self.degraded.metrics.setText("")
            self.degraded.image.clear()
            for item in (self.degraded.reference, self.degraded.main, self.degraded.dots, self.degraded.singles):
                item.setData([], [])
            _set_plot_mode(self.degraded.plot, self.images)
            _note(self.degraded.plot, note)
            return
        self.degraded.show_content(content, self._grid, self.channel.value())

    # -- live --------------------------------------------------------------------------------
    def _reset_live(self) -> None:
        """An empty live plot in the mode of the current item (a new item: the last estimate was of another)."""
        self.frames = 0
        self._last_live = None
        self.live_image.clear()
        self.live_image.setVisible(False)
        self.live_curves.setData([], [])
        self.live_reference.setData([], [])
        self.live_label.setText("")
        _set_plot_mode(self.live, self.images)
        _note(self.live, _LIVE_NOTE)

    def begin_live(self) -> None:
        self.frames = 0
        self._last_live = None
        self.live.hide_placeholder()
        self.live_label.setText("starting…")
        _set_plot_mode(self.live, self.images)
        if self.images:
            self.live_curves.setData([], [])
            self.live_reference.setData([], [])
        else:
            self.live_image.clear()
            self.live_image.setVisible(False)
            if self._item is not None and self._grid is not None:
                self.live_reference.setData(self._grid, self._item[self.channel.value()])

    @Slot(object)
    def show_frame(self, payload: dict) -> None:
        """One live frame: ``{"x0": [k, C, *S] (data units), "t", "step", "total", "label"}``."""
        x0 = np.asarray(payload["x0"])
        self._last_live = x0
        if self.images:
            self.live_image.setVisible(True)
            self.live_image.setImage(image_for_display(x0[0]), levels=(0.0, 1.0))
            if self.frames == 0:
                self.live.getPlotItem().getViewBox().autoRange(padding=0.02)
        else:
            c = self.channel.value()
            lx, ly = stack_curves(self._grid, x0[:, c])
            self.live_curves.setData(lx, ly, connect="finite", skipFiniteCheck=True)
            if self.frames == 0:
                self.live.getPlotItem().getViewBox().enableAutoRange()
        self.live_label.setText(f"{payload['label']} · step {payload['step']}/{payload['total']} · "
                                f"t = {payload['t']:.4f}")
        self.frames += 1
        self.frame_drawn.emit(self.frames)

    def end_live(self, text: str) -> None:
        self.live_label.setText(text)

    # -- results -----------------------------------------------------------------------------
    def clear_results(self) -> None:
        self._contents = []
        self._overlay_data = None
        for tile in self.tiles:
            tile.setVisible(False)
        self.overlay.setVisible(False)
        self.overlay.getPlotItem().clear()
        self.message.setText("")

    def show_results(self, contents: list[TileContent], overlay: dict | None) -> None:
        """Tiles left to right (original, degraded, one per prior); ``overlay`` (curves only):
        ``{"original": [C, n], "points": bool [C, n] | None, "observed": [C, n], "naive": [C, n],
        "restorations": [(label, mean [C, n], singles [k, C, n])]}``."""
        self._contents = contents[: len(self.tiles)]
        self._overlay_data = overlay
        self._redraw()

    @Slot()
    def _redraw(self) -> None:
        self._describe_channel()
        self._draw_input()
        if self._degraded is not None:
            self.degraded.show_content(self._degraded, self._grid, self.channel.value())
        c = self.channel.value()
        for j, tile in enumerate(self.tiles):
            if j < len(self._contents):
                tile.setVisible(True)
                tile.show_content(self._contents[j], self._grid, c)
            else:
                tile.setVisible(False)
        self._draw_overlay(c)

    def _draw_input(self) -> None:
        if self._item is None:
            return
        if self.images:
            self.canvas.show_image(self._item)
        else:
            self.canvas.show_curves(self._grid, self._item, self.channel.value())

    def _draw_overlay(self, c: int) -> None:
        plot = self.overlay.getPlotItem()
        plot.clear()
        data = self._overlay_data
        shown = data is not None and not self.images
        self.overlay.setVisible(shown)
        self.legend.setVisible(shown)
        if data is None or self._grid is None:
            return
        g = self._grid
        grey, dots, dashed = QColor(90, 90, 90), series_color(3), QColor(140, 140, 140)
        entries = [(grey, "━", "original")]
        plot.plot(g, data["original"][c], pen=pg.mkPen(grey, width=2))
        if data.get("points") is not None:
            seen = data["points"][c]
            plot.plot(g[seen], data["observed"][c][seen], pen=None, symbol="o", symbolSize=6, symbolBrush=dots,
                      symbolPen=None)
            entries.append((dots, "●", "observed"))
        else:
            plot.plot(g, data["observed"][c], pen=pg.mkPen(dots, width=1))
            entries.append((dots, "━", "degraded"))
        plot.plot(g, data["naive"][c], pen=pg.mkPen(dashed, width=1.5, style=Qt.PenStyle.DashLine))
        entries.append((dashed, "┅", "naive baseline"))
        for j, (label, mean, singles) in enumerate(data["restorations"]):
            color = series_color(2 * j)
            if len(singles):
                sx, sy = stack_curves(g, singles[:SINGLES_SHOWN, c])
                plot.plot(sx, sy, connect="finite", pen=pg.mkPen(series_color(2 * j, 90), width=1))
            plot.plot(g, mean[c], pen=pg.mkPen(color, width=2.5))
            entries.append((color, "━", f"{label}: mean (thin: single restorations)"))
        self.legend.setText("&nbsp;&nbsp; ".join(f'<span style="color:{col.name()}">{mark}</span> {text}'
                                                 for col, mark, text in entries))
        plot.getViewBox().autoRange()
