"""Shared plot plumbing: a plot widget that follows the application palette, colours by time."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QColor, QPalette, QResizeEvent, QTextOption
from PySide6.QtWidgets import QApplication, QGraphicsItem, QWidget

_TIME_MAP = pg.colormap.get("viridis")


def time_color(frac: float, alpha: int = 255) -> QColor:
    """Colour of reverse time, ``frac`` = t / T: the data (0) get the end of viridis that stands out from the
    plot's background, dark purple on a light theme and yellow on a dark one (yellow samples on white were
    hard to see), pure noise (1) the other end."""
    dark = QApplication.palette().color(QPalette.ColorRole.Base).lightness() < 128
    x = float(np.clip(frac, 0.0, 1.0))
    color = _TIME_MAP.map(1.0 - x if dark else x, mode="qcolor")
    color.setAlpha(alpha)
    return color


def series_color(k: int, alpha: int = 255) -> QColor:
    """The k-th of a few distinguishable colours (for a handful of overlaid curves)."""
    color = pg.intColor(k, hues=9, values=1, maxValue=230, minValue=150)
    color.setAlpha(alpha)
    return color


def accent_color(alpha: int = 255) -> QColor:
    color = QColor(QApplication.palette().color(QPalette.ColorRole.Highlight))
    color.setAlpha(alpha)
    return color


def stack_curves(grid: np.ndarray, curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Many curves [K, n] as one NaN-separated polyline (x, y) for one fast ``PlotDataItem``."""
    curves = np.asarray(curves, dtype=np.float64).reshape(-1, np.asarray(grid).size)
    k, n = curves.shape
    x = np.empty((k, n + 1))
    y = np.empty((k, n + 1))
    x[:, :n] = grid
    y[:, :n] = curves
    x[:, n] = np.nan
    y[:, n] = np.nan
    return x.ravel(), y.ravel()


class ThemedPlotWidget(pg.PlotWidget):
    """A ``PlotWidget`` whose background, axes and text follow the palette (light or dark)."""

    def __init__(self, parent: QWidget | None = None, title: str | None = None) -> None:
        self._ready = False
        self._title = title
        super().__init__(parent)
        self._ready = True
        self.getPlotItem().showGrid(x=True, y=True, alpha=0.15)
        for name in ("left", "bottom"):
            # axes (and their grid) are re-played on every repaint otherwise: caching them as a pixmap
            # halves the cost of a live frame
            self.getPlotItem().getAxis(name).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self._placeholder = pg.TextItem("", anchor=(0.5, 0.5))
        self._placeholder.textItem.document().setDefaultTextOption(QTextOption(Qt.AlignmentFlag.AlignHCenter))
        self._placeholder.setVisible(False)
        self.addItem(self._placeholder, ignoreBounds=True)
        self.apply_palette()

    def show_placeholder(self, text: str) -> None:
        """A centred note on an empty plot (what will appear here, and when)."""
        (x0, x1), (y0, y1) = self.getPlotItem().getViewBox().viewRange()
        color = QApplication.palette().color(QPalette.ColorRole.PlaceholderText)
        self._placeholder.setText(text, color=color)
        self._placeholder.setPos((x0 + x1) / 2, (y0 + y1) / 2)
        self._wrap_placeholder()
        self._placeholder.setVisible(bool(text))

    def _wrap_placeholder(self) -> None:
        """Wrap the note to the plot's width (it ran off both sides of a narrow plot, cut mid-word)."""
        box = self.getPlotItem().getViewBox().sceneBoundingRect().width()
        width = max(80.0, 0.9 * box)
        item = self._placeholder.textItem
        item.setTextWidth(-1)  # its natural width first: a short note stays on one line, centred
        if item.boundingRect().width() > width:
            item.setTextWidth(width)
        self._placeholder.updateTextPos()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if self._ready and self._placeholder.isVisible():
            self._wrap_placeholder()

    def hide_placeholder(self) -> None:
        self._placeholder.setVisible(False)

    def apply_palette(self) -> None:
        pal = QApplication.palette()
        fg = pal.color(QPalette.ColorRole.Text)
        self.setBackground(pal.color(QPalette.ColorRole.Base))
        item = self.getPlotItem()
        for name in ("left", "bottom"):
            axis = item.getAxis(name)
            axis.setPen(fg)
            axis.setTextPen(fg)
        if self._title:
            item.setTitle(self._title, color=fg.name(), size="9pt")

    def set_title(self, title: str) -> None:
        self._title = title
        fg = QApplication.palette().color(QPalette.ColorRole.Text)
        self.getPlotItem().setTitle(title, color=fg.name(), size="9pt")

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt override
        if self._ready and event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self.apply_palette()
        super().changeEvent(event)
