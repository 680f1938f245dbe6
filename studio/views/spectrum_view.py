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
        self.getAxis("left").setTicks([self.decade_ticks(lam), []])
        self.enableAutoRange()

    @staticmethod
    def decade_ticks(lam: np.ndarray, labels: int = 3) -> list[tuple[float, str]]:
        """At most ``labels`` decades (log10 positions, labelled 1e-4): pyqtgraph's own labels (1, 0.01, 0.0001)
        overlapped in the panel's short plot."""
        if lam.size == 0:
            return []
        lo, hi = int(np.ceil(np.log10(lam.min()))), int(np.floor(np.log10(lam.max())))  # decades inside
        lo = min(lo, hi)
        step = max(1, -(-(hi - lo) // max(1, labels - 1)))
        return [(float(e), "1" if e == 0 else f"1e{e}") for e in range(hi, lo - 1, -step)]
