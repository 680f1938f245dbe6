"""The live training loss: every step (faint) and a trailing moving average (bold)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from studio.views.plotting import ThemedPlotWidget, accent_color


def trailing_mean(values: np.ndarray, window: int = 50) -> np.ndarray:
    """Mean of the last ``window`` values at each step (fewer at the start)."""
    y = np.asarray(values, dtype=np.float64)
    c = np.concatenate([[0.0], np.cumsum(y)])
    i = np.arange(1, y.size + 1)
    lo = np.maximum(0, i - window)
    return (c[i] - c[lo]) / (i - lo)


class LossView(ThemedPlotWidget):
    """Denoising score-matching loss per step.

    Linear in y: pyqtgraph's log axis labels every minor tick when the range spans less than a
    decade, which is unreadable at a dock's height.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, title="Training loss")
        self.setLabel("bottom", "step")
        self._raw = self.plot([], [], pen=pg.mkPen(accent_color(80), width=1))
        self._trend = self.plot([], [], pen=pg.mkPen(accent_color(), width=2))
        self.getPlotItem().setDownsampling(auto=True, mode="peak")
        self.getPlotItem().setClipToView(True)
        self.points = 0
        self.setXRange(0, 100)
        self.setYRange(0, 1)
        self.show_placeholder("the loss appears here while training")

    def clear_losses(self) -> None:
        self._raw.setData([], [])
        self._trend.setData([], [])
        self.points = 0
        self.setXRange(0, 100)
        self.setYRange(0, 1)
        self.show_placeholder("the loss appears here while training")

    def set_losses(self, losses: np.ndarray) -> None:
        """The whole loss curve so far (one value per step)."""
        y = np.asarray(losses, dtype=np.float64)
        steps = np.arange(1, y.size + 1)
        self.hide_placeholder()
        self._raw.setData(steps, y)
        self._trend.setData(steps, trailing_mean(y))
        if not self.points:
            self.enableAutoRange()
        self.points = int(y.size)
