"""The restoration session's views: the input with a mask brush, the live estimate, the side-by-side results.

Arrays are channels-first and in data units: curves and motions [C, n] on a grid [n], images [C, H, W]
in [0, 1] (shown as grey for C = 1, RGB for C = 3, clipped to [0, 1]). Motions (3 channels per joint) with
a skeleton are drawn as filmstrips of stick figures (:class:`studio.views.media.Filmstrip`: a few frames side
by side, the missing bones dashed) or, at the user's choice, one channel over time like a curve.

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
from PySide6.QtWidgets import (
    QButtonGroup,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.views.media import FILMSTRIP_FRAMES, Filmstrip, FilmstripItems
from studio.views.plotting import ThemedPlotWidget, series_color, stack_curves

SINGLES_SHOWN = 3  # single restorations drawn beside their mean
TILE_MIN = 96  # a tile's smallest plot side in pixels: four tiles side by side fit a narrow Restore tab
FIGURE_MIN = 60  # pixels: a stick figure shorter than this is a scribble; a filmstrip then shows fewer frames
FEW_FRAMES = 4  # the frames of a filmstrip in narrow plots (else media.FILMSTRIP_FRAMES)
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


def _set_plot_mode(plot: ThemedPlotWidget, images: bool, strip: Filmstrip | None = None) -> None:
    """Put ``plot`` in the mode of what it shows now (every plot that shows images and curves in turn is set
    each time it shows something). Images: pixels square, row 0 at the top, no axes, no mouse panning (the
    mouse paints). Curves and motions: y up, free aspect, axes and grid, mouse panning. Motions as the
    filmstrip ``strip``: y up, square (a figure keeps its proportions), the bottom axis numbers the frames,
    and the range is the strip's, the same in every plot (a restoration far off leaves it, as it should)."""
    item = plot.getPlotItem()
    figures = strip is not None
    item.showAxis("left", not images and not figures)
    item.showAxis("bottom", not images)
    item.getAxis("bottom").setTicks([strip.ticks()] if figures else None)
    item.showGrid(x=not images and not figures, y=not images and not figures, alpha=0.15)
    if images:
        item.hideButtons()
    else:
        item.showButtons()
    box = item.getViewBox()
    box.invertY(images)
    box.setAspectLocked(images or figures)
    box.setMouseEnabled(not images, not images)
    box.setMenuEnabled(not images)
    if figures:
        box.disableAutoRange()
        plot.setRange(xRange=strip.x_range, yRange=strip.y_range, padding=0.06)


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
        self.figures = FilmstripItems(self, pg.mkPen(series_color(0), width=2))
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
        self.figures.clear()
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
        self.figures.clear()
        _note(self, note)

    def show_curves(self, grid: np.ndarray, x: np.ndarray, channel: int = 0) -> None:
        """Show a curve or motion item [C, n] (channel ``channel``); nothing to paint on."""
        self.hide_placeholder()
        _set_plot_mode(self, False)
        self.image.setVisible(False)
        self.overlay.setVisible(False)
        self.figures.clear()
        self.curve.setData(np.asarray(grid, dtype=np.float64), np.asarray(x[channel], dtype=np.float64))
        self.getPlotItem().getViewBox().autoRange()

    def show_figures(self, strip: Filmstrip, x: np.ndarray) -> None:
        """Show a motion item [3J, T] as the filmstrip ``strip``; nothing to paint on."""
        self.hide_placeholder()
        _set_plot_mode(self, False, strip)
        self.image.setVisible(False)
        self.overlay.setVisible(False)
        self.curve.setData([], [])
        self.figures.show(strip, x)

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
    reference: np.ndarray | None = None  # curves: the original, drawn faintly behind (figures: the missing bones)
    points: np.ndarray | None = None  # curves: bool [C, n], the observed points (drawn as dots; figures: the bones)


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
        self.figures = FilmstripItems(self.plot, pg.mkPen(series_color(0), width=2))
        self.metrics = _wrapping_label(self)
        self.metrics.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.title)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.metrics)

    def clear_plot(self) -> None:
        """Nothing drawn in the plot (the title and metrics stay)."""
        self.image.clear()
        self.figures.clear()
        for item in (self.reference, self.singles, self.main, self.dots):
            item.setData([], [])

    def show_content(self, content: TileContent, grid: np.ndarray | None, channel: int = 0,
                     strip: Filmstrip | None = None) -> None:
        """Show ``content``: an image (``grid`` None), a motion as the filmstrip ``strip`` (the mean only, its
        missing bones dashed where ``points`` are given) or curves (channel ``channel``)."""
        self.title.setText(f"<b>{content.title}</b>")
        self.title.setToolTip(content.title)
        self.metrics.setText(content.metrics)
        self.plot.hide_placeholder()
        self.clear_plot()
        if strip is not None:
            _set_plot_mode(self.plot, False, strip)
            self.image.setVisible(False)
            self.figures.show(strip, content.value, content.points, content.reference)
            return
        if grid is None:  # an image
            _set_plot_mode(self.plot, True)
            self.image.setImage(image_for_display(content.value), levels=(0.0, 1.0))
            self.image.setVisible(True)
            self.plot.getPlotItem().getViewBox().autoRange(padding=0.02)
            return
        _set_plot_mode(self.plot, False)
        self.image.setVisible(False)
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
        self.live_figures = FilmstripItems(self.live, pg.mkPen(series_color(0), width=1.5))
        self.live_label = _wrapping_label(self)
        self.channel = QSpinBox(self)
        self.channel.setPrefix("channel ")
        self.channel.setToolTip("Which channel of the curves (motions: a joint angle or coordinate) is drawn")
        self.channel.setVisible(False)
        self.channel.valueChanged.connect(self._redraw)
        # motions with a skeleton: stick figures (a filmstrip per plot) or one channel over time, as curves
        self.figures_button = self._mode_button("Figures", "Draw motions as stick figures: a few frames side by "
                                                "side (side view; dashed grey: bones missing in the degraded item)")
        self.curves_button = self._mode_button("Channel", "Draw motions one channel over time, like curves")
        self.figures_button.setChecked(True)
        self._mode_group = QButtonGroup(self)
        for button in (self.figures_button, self.curves_button):
            self._mode_group.addButton(button)
        self._mode_group.buttonToggled.connect(self._on_mode_toggled)
        # the channel is one coordinate of a joint: say which
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
        channel_row.addWidget(self.figures_button)
        channel_row.addWidget(self.curves_button)
        channel_row.addWidget(self.channel)
        channel_row.addStretch(1)
        layout.addLayout(top, 3)
        layout.addLayout(channel_row)
        layout.addWidget(self.channel_note)  # under the buttons: beside them, a narrow view made it a tall column
        layout.addLayout(self._tile_grid, 3)
        layout.addWidget(self.overlay, 3)
        layout.addWidget(self.legend)
        layout.addWidget(self.message)

        self._grid: np.ndarray | None = None
        self._item: np.ndarray | None = None
        self._strip: Filmstrip | None = None  # a motion item's filmstrip (None: not a motion, or no skeleton)
        self._parents: list[int] | tuple[int, ...] | None = None  # of a motion item's skeleton
        self._shown = FILMSTRIP_FRAMES  # frames per filmstrip (fewer in narrow plots)
        self._contents: list[TileContent] = []
        self._overlay_data: dict | None = None
        self._degraded: TileContent | None = None
        self._last_live: np.ndarray | None = None
        self._live_on = False  # a run began on this item: the live plot is in use (not its note)
        self.frames = 0
        _note(self.live, _LIVE_NOTE)
        _note(self.canvas, "choose a checkpoint and an item")
        _note(self.degraded.plot, "the degraded item appears here")

    def _mode_button(self, text: str, tip: str) -> QToolButton:
        button = QToolButton(self)
        button.setText(text)
        button.setToolTip(tip)
        button.setCheckable(True)
        button.setVisible(False)
        return button

    # -- input -------------------------------------------------------------------------------
    @property
    def images(self) -> bool:
        return self._grid is None

    @property
    def strip(self) -> Filmstrip | None:
        """The filmstrip the plots draw now: a motion item with a skeleton, in the Figures mode; else None."""
        return self._strip if self.figures_button.isChecked() else None

    def set_item(self, item: np.ndarray, grid: np.ndarray | None, *, motion: bool = False,
                 parents: list[int] | tuple[int, ...] | None = None) -> None:
        """A new input item ([C, H, W] with ``grid`` None, or [C, n] on ``grid``; ``motion``: joint positions,
        3 channels per joint, drawn as stick figures of the skeleton ``parents`` when given); clears old results."""
        self._item = np.asarray(item)
        self._grid = None if grid is None else np.asarray(grid, dtype=np.float64)
        self._motion = motion
        self._parents = parents if motion else None
        self._strip = None if self._parents is None else Filmstrip(self._item, parents, self._shown)
        self._fit_strip()
        for button in (self.figures_button, self.curves_button):
            button.setVisible(self._strip is not None)
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
        self._item = self._strip = self._parents = None
        for button in (self.figures_button, self.curves_button, self.channel):
            button.setVisible(False)
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
            what = f"joint {joint}, {'xyz'[axis]} ({where}) over time"
            if self.strip is None:
                self.channel_note.setText(f"{what}: motions are drawn one coordinate at a time, not as stick figures")
            else:
                frames = ", ".join(map(str, self.strip.frames))
                self.channel_note.setText(f"Figures: frames {frames} (side view; dashed grey: missing). "
                                          f"Curves below: {what}.")

    def _fit_strip(self) -> bool:
        """Six frames per filmstrip while each figure stays at least ``FIGURE_MIN`` pixels tall in the input plot
        (the tiles are about as large), else four (the default window with its docks); True when that changed."""
        if self._strip is None or not self.isVisible():
            return False
        width, height = self.canvas.width(), self.canvas.height() - 50  # less the title and the frames' axis
        (y0, y1), lane = self._strip.y_range, self._strip.lane
        per_unit = min(width / (FILMSTRIP_FRAMES * lane), height / (1.15 * (y1 - y0) + 1e-9))
        shown = FILMSTRIP_FRAMES if per_unit * (y1 - y0) >= FIGURE_MIN else FEW_FRAMES
        if shown == self._shown:
            return False
        self._shown = shown
        self._strip = Filmstrip(self._item, self._parents, shown)
        return True

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if self._fit_strip():
            self._redraw_all()

    @Slot(object, bool)
    def _on_mode_toggled(self, button: QToolButton, checked: bool) -> None:
        """Figures or Channel: every plot is drawn again in the chosen way."""
        if checked and self._item is not None:
            self._redraw_all()

    def _redraw_all(self) -> None:
        """The input, preview, results and the live estimate drawn again (another mode or filmstrip)."""
        self._redraw()
        if self._live_on:
            self._start_live_plot()
            if self._last_live is not None:
                self._draw_live(self._last_live, first=True)

    def set_degraded_preview(self, content: TileContent | None,
                             note: str = "the parameters are not valid:\nsee the message under the controls") -> None:
        """The degraded item for the current settings (``None``: none, for the reason ``note``)."""
        self._degraded = content
        if content is None:
            self.degraded.title.setText("<b>Degraded</b>")
            self.degraded.title.setToolTip("Degraded")
            self.degraded.metrics.setText("")
            self.degraded.clear_plot()
            _set_plot_mode(self.degraded.plot, self.images)
            _note(self.degraded.plot, note)
            return
        self.degraded.show_content(content, self._grid, self.channel.value(), self.strip)

    # -- live --------------------------------------------------------------------------------
    def _reset_live(self) -> None:
        """An empty live plot in the mode of the current item (a new item: the last estimate was of another)."""
        self.frames = 0
        self._last_live = None
        self._live_on = False
        self._clear_live()
        self.live_label.setText("")
        _set_plot_mode(self.live, self.images)
        _note(self.live, _LIVE_NOTE)

    def _clear_live(self) -> None:
        self.live_image.clear()
        self.live_image.setVisible(False)
        self.live_curves.setData([], [])
        self.live_reference.setData([], [])
        self.live_figures.clear()

    def begin_live(self) -> None:
        self.frames = 0
        self._last_live = None
        self._live_on = True
        self.live.hide_placeholder()
        self.live_label.setText("starting…")
        self._start_live_plot()

    def _start_live_plot(self) -> None:
        """An empty live plot in the current mode (curves: with the item's channel faintly behind)."""
        self._clear_live()
        _set_plot_mode(self.live, self.images, self.strip)
        if self.strip is None and self._item is not None and self._grid is not None:
            self.live_reference.setData(self._grid, self._item[self.channel.value()])

    @Slot(object)
    def show_frame(self, payload: dict) -> None:
        """One live frame: ``{"x0": [k, C, *S] (data units), "t", "step", "total", "label"}``."""
        x0 = np.asarray(payload["x0"])
        self._last_live = x0
        self._draw_live(x0, first=self.frames == 0)
        self.live_label.setText(f"{payload['label']} · step {payload['step']}/{payload['total']} · "
                                f"t = {payload['t']:.4f}")
        self.frames += 1
        self.frame_drawn.emit(self.frames)

    def _draw_live(self, x0: np.ndarray, first: bool) -> None:
        """Images: the first estimate; motions as figures: the first estimate's filmstrip (in the strip's fixed
        range: a noisy early estimate must not zoom out); curves: every estimate's channel (``first``: fit them)."""
        if self.images:
            self.live_image.setVisible(True)
            self.live_image.setImage(image_for_display(x0[0]), levels=(0.0, 1.0))
            if first:
                self.live.getPlotItem().getViewBox().autoRange(padding=0.02)
        elif self.strip is not None:
            self.live_figures.show(self.strip, x0[0])
        else:
            lx, ly = stack_curves(self._grid, x0[:, self.channel.value()])
            self.live_curves.setData(lx, ly, connect="finite", skipFiniteCheck=True)
            if first:
                self.live.getPlotItem().getViewBox().enableAutoRange()

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
        c, strip = self.channel.value(), self.strip
        if self._degraded is not None:
            self.degraded.show_content(self._degraded, self._grid, c, strip)
        for j, tile in enumerate(self.tiles):
            if j < len(self._contents):
                tile.setVisible(True)
                tile.show_content(self._contents[j], self._grid, c, strip)
            else:
                tile.setVisible(False)
        self._draw_overlay(c)

    def _draw_input(self) -> None:
        if self._item is None:
            return
        if self.images:
            self.canvas.show_image(self._item)
        elif self.strip is not None:
            self.canvas.show_figures(self.strip, self._item)
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
