"""The prior and equation panel: Q's kernel and the forward equation, with live plots.

Every change (debounced) redraws: a few draws from N(0, Q) on the data's grid (the shape of the
noise the model learns to remove), the eigenvalue spectrum of Q (how fast it decays is how
smooth the prior is) and the equation's marginal coefficients m(t) and s(t).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from engine.equations import EQUATIONS, SCHEDULES
from engine.errors import HDMError
from engine.operators import KERNELS
from studio.views.curves_view import CurvesView
from studio.views.schedule_view import ScheduleView
from studio.views.spectrum_view import SpectrumView

PREVIEW_POINTS = 512  # larger grids are previewed on this many uniform points
DRAWS = 5


class PriorPanel(QWidget):
    """Kernel, length scale, gain (and period) of Q; the equation and its schedule."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None, debounce_ms: int = 120) -> None:
        super().__init__(parent)
        self.kernel = QComboBox(self)
        self.kernel.addItems(list(KERNELS))
        self.kernel.setCurrentText("squared_exponential")
        self.auto_length = QCheckBox("dataset's", self)
        self.auto_length.setToolTip("Use the dataset's suggested length scale")
        self.auto_length.setChecked(True)
        self.length = self._spin(1e-4, 1e4, 0.8, 4, "Kernel length scale (grid units)")
        self.length.setEnabled(False)
        self.gain = self._spin(1e-4, 1e4, 1.0, 3, "Pointwise variance k(x, x)")
        self.period = self._spin(1e-4, 1e6, 1.0, 4, "Period of the periodic kernel (grid units)")
        self.equation = QComboBox(self)
        for name, text in EQUATIONS.items():
            self.equation.addItem(name, name)
            self.equation.setItemData(self.equation.count() - 1, text, Qt.ItemDataRole.ToolTipRole)
        self.schedule = QComboBox(self)
        self.schedule.addItems(list(SCHEDULES))
        self.error = QLabel("", self)
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #d32f2f;")
        self.error.setVisible(False)
        self.grid_label = QLabel("", self)

        length_row = QHBoxLayout()
        length_row.addWidget(self.length, 1)
        length_row.addWidget(self.auto_length)
        form = QFormLayout()
        form.addRow("Kernel", self.kernel)
        form.addRow("Length scale", length_row)
        form.addRow("Gain", self.gain)
        form.addRow("Period", self.period)
        form.addRow("Equation", self.equation)
        form.addRow("Schedule", self.schedule)

        self.draws = CurvesView(self, title="Draws from N(0, Q)", max_curves=DRAWS, distinct=True)
        self.spectrum = SpectrumView(self)
        self.coefficients = ScheduleView(self)
        plots = QSplitter(Qt.Orientation.Vertical, self)
        for w in (self.draws, self.spectrum, self.coefficients):
            w.setMinimumHeight(110)
            plots.addWidget(w)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        layout.addWidget(self.grid_label)
        layout.addWidget(self.error)
        layout.addWidget(plots, 1)

        self._grid = np.linspace(0.0, 1.0, 100)
        self._grid_source = "default grid"
        self._default_length = 0.8
        self.updates = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self.refresh)
        for w in (self.kernel, self.equation, self.schedule):
            w.currentIndexChanged.connect(self._schedule_refresh)
        for w in (self.length, self.gain, self.period):
            w.valueChanged.connect(self._schedule_refresh)
        self.auto_length.toggled.connect(self._on_auto)
        self._sync_enabled()
        self.refresh()

    def _spin(self, lo: float, hi: float, value: float, decimals: int, tip: str) -> QDoubleSpinBox:
        spin = QDoubleSpinBox(self)
        spin.setRange(lo, hi)
        spin.setDecimals(decimals)
        spin.setValue(value)
        spin.setSingleStep(0.05)
        spin.setToolTip(tip)
        spin.setKeyboardTracking(False)
        return spin

    # -- inputs ------------------------------------------------------------------------------
    def set_grid(self, grid: np.ndarray, default_length_scale: float, name: str = "data") -> None:
        """Preview on the data's grid; the 'dataset's' length scale is its suggested one."""
        self._grid = np.asarray(grid, dtype=np.float64)
        self._grid_source = name
        self._default_length = float(default_length_scale)
        if self.auto_length.isChecked():
            self.length.blockSignals(True)
            self.length.setValue(self._default_length)
            self.length.blockSignals(False)
        if self.period.value() == 1.0:
            self.period.setValue(float(self._grid[-1] - self._grid[0]) or 1.0)
        self._schedule_refresh()

    @Slot(bool)
    def _on_auto(self, auto: bool) -> None:
        if auto:
            self.length.setValue(self._default_length)
        self._sync_enabled()
        self._schedule_refresh()

    def _sync_enabled(self) -> None:
        white = self.kernel.currentText() == "white"
        self.length.setEnabled(not self.auto_length.isChecked() and not white)
        self.auto_length.setEnabled(not white)
        self.period.setEnabled(self.kernel.currentText() == "periodic")
        self.schedule.setEnabled(self.equation.currentData() != "ve")

    @Slot()
    def _schedule_refresh(self) -> None:
        self._sync_enabled()
        self._timer.start()

    # -- live plots --------------------------------------------------------------------------
    def preview_grid(self) -> np.ndarray:
        g = self._grid
        if g.size <= PREVIEW_POINTS:
            return g
        return np.linspace(g[0], g[-1], PREVIEW_POINTS)

    @Slot()
    def refresh(self) -> None:
        """Recompute Q on the grid, its draws and spectrum, and the equation's coefficients."""
        from engine.equations import make_equation
        from engine.operators import covariance_from_config

        grid = self.preview_grid()
        noise = self.noise_config()
        length = noise["length_scale"] or self._default_length
        try:
            Q = covariance_from_config(noise["kernel"], length, noise["gain"], noise["period"]).on_grid(grid)
            eq = self.equation_config()
            equation = make_equation(eq["name"], Q, schedule=eq["schedule"])
        except HDMError as exc:
            self.error.setText(str(exc))
            self.error.setVisible(True)
            return
        self.error.setVisible(False)
        z = torch.randn(DRAWS, grid.size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        self.draws.set_curves(grid, Q.sqrt_apply(z).numpy())
        self.spectrum.set_eigenvalues(Q.eigenvalues())
        t = torch.linspace(equation.eps, equation.T, 200, dtype=torch.float64)
        self.coefficients.set_coefficients(t.numpy(), equation.mean_coef(t).numpy(), equation.std(t).numpy())
        resampled = "" if grid.size == self._grid.size else f", previewed on {grid.size}"
        self.grid_label.setText(f"<small>Q on the {self._grid_source} grid: {self._grid.size} points over "
                                f"[{grid[0]:g}, {grid[-1]:g}]{resampled}</small>")
        self.updates += 1
        self.changed.emit()

    # -- configuration -----------------------------------------------------------------------
    def noise_config(self) -> dict[str, Any]:
        kernel = self.kernel.currentText()
        return {"kernel": kernel,
                "length_scale": None if self.auto_length.isChecked() else float(self.length.value()),
                "gain": float(self.gain.value()),
                "period": float(self.period.value()) if kernel == "periodic" else None}

    def equation_config(self) -> dict[str, Any]:
        return {"name": self.equation.currentData(), "schedule": self.schedule.currentText()}

    def state(self) -> dict[str, Any]:
        return {"noise": self.noise_config(), "equation": self.equation_config()}

    def set_state(self, state: dict[str, Any]) -> None:
        noise = state.get("noise", {})
        eq = state.get("equation", {})
        if noise.get("kernel") in KERNELS:
            self.kernel.setCurrentText(noise["kernel"])
        self.auto_length.setChecked(noise.get("length_scale") is None)
        if noise.get("length_scale") is not None:
            self.length.setValue(float(noise["length_scale"]))
        if noise.get("gain") is not None:
            self.gain.setValue(float(noise["gain"]))
        if noise.get("period") is not None:
            self.period.setValue(float(noise["period"]))
        index = self.equation.findData(eq.get("name"))
        if index >= 0:
            self.equation.setCurrentIndex(index)
        if eq.get("schedule") in SCHEDULES:
            self.schedule.setCurrentText(eq["schedule"])
        self._schedule_refresh()
