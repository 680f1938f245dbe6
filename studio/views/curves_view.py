"""Overlaid curves: a dataset preview, draws from the prior, a training-time sample preview."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from studio.views.plotting import ThemedPlotWidget, accent_color, series_color, stack_curves


class CurvesView(ThemedPlotWidget):
    """Up to ``max_curves`` curves of one channel, overlaid; optionally their mean.

    Args:
        distinct: one colour per curve (for a handful of draws) instead of one translucent colour.
        show_mean: draw the pointwise mean of all the curves on top.
    """

    def __init__(self, parent: QWidget | None = None, *, title: str | None = None, max_curves: int = 64,
                 distinct: bool = False, show_mean: bool = False, empty_text: str = "") -> None:
        super().__init__(parent, title=title)
        self.max_curves = max_curves
        self.distinct = distinct
        self.show_mean = show_mean
        self._items: list[pg.PlotDataItem] = []
        self._overlay = self.plot([], [], pen=pg.mkPen(accent_color(70), width=1), connect="finite")
        self._mean = self.plot([], [], pen=pg.mkPen(accent_color(255), width=2.5))
        self.setXRange(0, 1, padding=0)
        self.setYRange(0, 1, padding=0)
        self._empty_text = empty_text
        self.show_placeholder(empty_text)
        self.count = 0

    def clear_curves(self, empty_text: str | None = None) -> None:
        for item in self._items:
            self.removeItem(item)
        self._items = []
        self._overlay.setData([], [])
        self._mean.setData([], [])
        if empty_text is not None:
            self._empty_text = empty_text
        self.setXRange(0, 1, padding=0)
        self.setYRange(0, 1, padding=0)
        self.show_placeholder(self._empty_text)
        self.count = 0

    def set_curves(self, grid: np.ndarray, values: np.ndarray, channel: int = 0) -> None:
        """Show ``values`` [N, C, n] (or [N, n]) on ``grid`` [n]."""
        grid = np.asarray(grid, dtype=np.float64)
        v = np.asarray(values)
        if v.ndim == 3:
            v = v[:, min(channel, v.shape[1] - 1)]
        shown = v[: self.max_curves]
        self.hide_placeholder()
        if self.distinct:
            self._overlay.setData([], [])
            while len(self._items) < len(shown):
                self._items.append(self.plot([], []))
            for k, item in enumerate(self._items):
                if k < len(shown):
                    item.setData(grid, shown[k], pen=pg.mkPen(series_color(k), width=1.5))
                    item.setVisible(True)
                else:
                    item.setVisible(False)
        else:
            x, y = stack_curves(grid, shown)
            self._overlay.setData(x, y, connect="finite")
        if self.show_mean and len(v):
            self._mean.setData(grid, v.mean(axis=0))
        self.count = int(len(shown))
        self.enableAutoRange()
        self.getPlotItem().getViewBox().setDefaultPadding(0.02)
