"""The eigenvalue spectrum of the covariance operator Q on the data's grid (log scale)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from studio.views.plotting import ThemedPlotWidget, accent_color


class SpectrumView(ThemedPlotWidget):
    """Eigenvalues lambda_k of Q, decreasing: how fast they fall is how smooth the prior is."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, title="Spectrum of Q")
        self.setLabel("bottom", "k")
        self.setLogMode(y=True)
        self._line = self.plot([], [], pen=pg.mkPen(accent_color(), width=2), symbol="o", symbolSize=4,
                               symbolBrush=accent_color(), symbolPen=None)
        self.count = 0
        self.eigenvalues = np.zeros(0)  # the values drawn (clipped at the floor)

    def set_eigenvalues(self, eigenvalues: np.ndarray, floor: float = 1e-12) -> None:
        lam = np.clip(np.asarray(eigenvalues, dtype=np.float64), floor, None)
        self._line.setData(np.arange(1, lam.size + 1), lam)
        self.count = int(lam.size)
        self.eigenvalues = lam
        self.enableAutoRange()
