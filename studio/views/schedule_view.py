"""The forward equation's marginal coefficients: x_t = m(t) x_0 + s(t) e, e ~ N(0, Q)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from studio.views.plotting import ThemedPlotWidget, series_color


class ScheduleView(ThemedPlotWidget):
    """m(t) (signal kept) and s(t) (noise added) over [eps, T]."""

    def __init__(self, parent: QWidget | None = None) -> None:
        m, s = series_color(0).name(), series_color(4).name()
        super().__init__(parent, title=f"Forward equation: <span style='color:{m}'>m(t)</span>, "
                                       f"<span style='color:{s}'>s(t)</span>")
        self.setLabel("bottom", "t")
        self._m = self.plot([], [], pen=pg.mkPen(series_color(0), width=2), name="m(t)")
        self._s = self.plot([], [], pen=pg.mkPen(series_color(4), width=2), name="s(t)")

    def set_coefficients(self, t: np.ndarray, m: np.ndarray, s: np.ndarray) -> None:
        self._m.setData(np.asarray(t), np.asarray(m))
        self._s.setData(np.asarray(t), np.asarray(s))
        self.enableAutoRange()
