"""The prior and equation panel: Q's kernel and the forward equation, with live plots.

Every change (debounced) redraws: a few draws from N(0, Q) on the data's grid (the shape of the
noise the model learns to remove), the eigenvalue spectrum of Q (how fast it decays is how
smooth the prior is) and the equation's marginal coefficients m(t) and s(t).

For image data (``set_image_size``) the panel offers the image equations instead: ``hdm_spde``
(Q = (sigma I - Delta)^-gamma on the DCT modes), ``vp`` (Q = I) and ``ihdm`` (blur from
``blur_min`` to ``blur_max`` pixels); the draws are x_T from the equation's law at T as an image
grid (ihdm: the first data images blurred to ``blur_max`` plus noise, its x_T), the spectrum is
Q's sorted eigenvalues, and m(t), s(t) are averaged over the DCT modes.
"""

from __future__ import annotations

import math
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
from engine.equations.spde import IMAGE_EQUATIONS
from engine.errors import HDMError
from engine.operators import KERNELS
from studio.views.curves_view import CurvesView
from studio.views.media import ImageGridView
from studio.views.schedule_view import ScheduleView
from studio.views.spectrum_view import SpectrumView

PREVIEW_POINTS = 512  # larger grids are previewed on this many uniform points
DRAWS = 5
IMAGE_DRAWS = 6  # a 3 x 2 grid


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
        self.length = self._spin(1e-4, 1e4, 0.8, 4, "Kernel length scale (grid units; the periodic kernel's is "
                                 "relative to its period: exp(-2 sin²(π r / P) / l²))")
        self.length.setEnabled(False)
        self.gain = self._spin(1e-4, 1e4, 1.0, 3, "Pointwise variance k(x, x)")
        self.period = self._spin(1e-4, 1e6, 1.0, 4, "Period of the periodic kernel (grid units); it follows "
                                 "each dataset's span unless you set it for the dataset loaded")
        self._period_data: str | None = None  # the dataset whose period the user set; None: the data's span
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
        self.grid_label.setWordWrap(True)
        self.image_equation = QComboBox(self)
        for name in IMAGE_EQUATIONS:
            self.image_equation.addItem(name, name)
        self.image_equation.setToolTip("hdm_spde: Q = (sigma I - Laplacian)^-gamma (HDM); vp: Q = I (DDPM); "
                                       "ihdm: inverse heat dissipation (blur plus a little noise)")
        self.sigma = self._spin(1e-3, 1e3, 1.0, 3, "sigma of Q = (sigma I - Laplacian)^-gamma")
        self.gamma = self._spin(0.0, 10.0, 0.0, 2, "gamma of Q = (sigma I - Laplacian)^-gamma (0: white)")
        self.blur_min = self._spin(0.0, 100.0, 0.5, 2, "IHDM: blur at t = 0 (training pixels)")
        self.blur_max = self._spin(0.01, 1000.0, 20.0, 2, "IHDM: blur at T (training pixels)")
        self.image_size: tuple[int, int] | None = None  # set: the panel is in image mode
        self._image_data: np.ndarray | None = None  # a few data images [K, C, H, W] (the ihdm draws)

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
        form.addRow("Image equation", self.image_equation)
        form.addRow("sigma", self.sigma)
        form.addRow("gamma", self.gamma)
        form.addRow("Blur min", self.blur_min)
        form.addRow("Blur max", self.blur_max)
        self._form = form
        self._function_rows = ("Kernel", "Length scale", "Gain", "Period", "Equation")

        self.draws = CurvesView(self, title="Draws from N(0, Q)", max_curves=DRAWS, distinct=True)
        self.image_draws = ImageGridView(self, title="Draws of x_T", levels=(-3.0, 3.0))
        self.image_draws.setVisible(False)
        self.spectrum = SpectrumView(self)
        self.coefficients = ScheduleView(self)
        plots = QSplitter(Qt.Orientation.Vertical, self)
        for w in (self.draws, self.image_draws, self.spectrum, self.coefficients):
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
        for w in (self.kernel, self.equation, self.schedule, self.image_equation):
            w.currentIndexChanged.connect(self._schedule_refresh)
        for w in (self.length, self.gain, self.period, self.sigma, self.gamma, self.blur_min, self.blur_max):
            w.valueChanged.connect(self._schedule_refresh)
        self.auto_length.toggled.connect(self._on_auto)
        self.period.valueChanged.connect(self._on_period_edited)
        self._show_rows()
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
    def set_image_size(self, height: int, width: int, name: str = "data", images: np.ndarray | None = None
                       ) -> None:
        """Image mode: Q and the equations on ``height`` x ``width`` images; ``images`` [K, C, H, W] in [0, 1]
        (a few of the data's) show what the ihdm prior starts from."""
        self.image_size = (int(height), int(width))
        self._grid_source = name
        self._image_data = None if images is None else np.asarray(images[:IMAGE_DRAWS], dtype=np.float32)
        self._show_rows()
        self._schedule_refresh()

    def _show_rows(self) -> None:
        images = self.image_size is not None
        for row in range(self._form.rowCount()):
            label = self._form.itemAt(row, QFormLayout.ItemRole.LabelRole)
            text = label.widget().text() if label is not None and label.widget() is not None else ""
            if text in self._function_rows:
                self._form.setRowVisible(row, not images)
            elif text in ("Image equation", "sigma", "gamma", "Blur min", "Blur max"):
                self._form.setRowVisible(row, images)
        self.draws.setVisible(not images)
        self.image_draws.setVisible(images)

    def set_grid(self, grid: np.ndarray, default_length_scale: float, name: str = "data") -> None:
        """Preview on the data's grid; the 'dataset's' length scale is its suggested one (leaves image mode)."""
        self.image_size = None
        self._show_rows()
        self._grid = np.asarray(grid, dtype=np.float64)
        self._grid_source = name
        self._default_length = float(default_length_scale)
        if self._period_data != name:  # a new dataset: its span (a period set for another one does not fit it)
            self._period_data = None
            self.period.blockSignals(True)
            self.period.setValue(self._span())
            self.period.blockSignals(False)
        self._schedule_refresh()

    def _span(self) -> float:
        span = float(self._grid[-1] - self._grid[0]) if self._grid.size else 0.0
        return span or 1.0

    @Slot(float)
    def _on_period_edited(self, value: float) -> None:
        """The user's period holds for the dataset loaded (until other data is loaded); its span: automatic."""
        auto = math.isclose(value, self._span(), rel_tol=1e-6) or self.image_size is not None
        self._period_data = None if auto else self._grid_source

    def suggested_length(self) -> float:
        """The dataset's suggested length scale in the current kernel's own terms (the periodic kernel's is
        relative to its period: :func:`engine.operators.kernel_length_scale`)."""
        from engine.operators import kernel_length_scale

        period = float(self.period.value()) if self.kernel.currentText() == "periodic" else None
        return kernel_length_scale(self.kernel.currentText(), self._default_length, period)

    @Slot(bool)
    def _on_auto(self, auto: bool) -> None:
        self._sync_enabled()
        self._schedule_refresh()

    def _sync_enabled(self) -> None:
        white = self.kernel.currentText() == "white"
        self.length.setEnabled(not self.auto_length.isChecked() and not white)
        self.auto_length.setEnabled(not white)
        self.period.setEnabled(self.kernel.currentText() == "periodic")
        if self.image_size is not None:
            ihdm = self.image_equation.currentData() == "ihdm"
            self.schedule.setEnabled(not ihdm)  # ihdm has its own (heat) schedule
            for w in (self.sigma, self.gamma):
                w.setEnabled(self.image_equation.currentData() == "hdm_spde")
            for w in (self.blur_min, self.blur_max):
                w.setEnabled(ihdm)
        else:
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

    def _refresh_images(self) -> None:
        """Image mode: the equation on the image size, draws of x_T, Q's spectrum, mode-averaged m(t), s(t)."""
        from engine.equations.spde import make_image_equation
        from engine.rng import SampleRNG

        h, w = self.image_size
        cfg = self.image_config()
        eq, noise = cfg["equation"], cfg["noise"]
        try:
            equation = make_image_equation(eq["name"], h, w, sigma=noise["sigma"], gamma=noise["gamma"],
                                           schedule=eq["schedule"], blur_min=eq["blur_min"],
                                           blur_max=eq["blur_max"])
            rng = SampleRNG(list(range(IMAGE_DRAWS)), "cpu")
            if eq["name"] == "ihdm":
                if self._image_data is None:
                    raise HDMError("the ihdm prior starts from blurred data images: choose image data first")
                x0 = torch.as_tensor(self._image_data[:IMAGE_DRAWS])
                k = x0.shape[0]
                t = torch.full((k,), equation.T, dtype=torch.float64)
                x = equation.perturb(x0, t, equation.sample_noise(SampleRNG(list(range(k)), "cpu"),
                                                                  tuple(x0.shape[1:])))
            else:
                x = equation.prior_sample(rng, (1, h, w))
        except HDMError as exc:
            self.error.setText(str(exc))
            self.error.setVisible(True)
            return
        self.error.setVisible(False)
        x = x.detach().double().numpy()
        if eq["name"] == "ihdm":  # blurred images plus a little noise: their own range
            lo, hi = float(x.min()), float(x.max())
            self.image_draws.levels = (lo, hi if hi > lo else lo + 1.0)
        else:  # N(0, Q) draws: +-3 of their standard deviation, so smooth draws keep their contrast
            spread = 3.0 * float(x.std()) or 1.0
            self.image_draws.levels = (-spread, spread)
        self.image_draws.set_images(x, columns=3)
        self.image_draws.set_title(f"Draws of x_T ({eq['name']})")
        self.spectrum.set_eigenvalues(np.sort(np.asarray(equation.Q.eigenvalues(), dtype=np.float64))[::-1])
        t = torch.linspace(equation.eps, equation.T, 200, dtype=torch.float64)
        m, s = equation.mode_coefs(t[:, None, None])
        m = torch.as_tensor(m).reshape(len(t), -1).mean(dim=1)
        s = torch.as_tensor(s).reshape(len(t), -1).mean(dim=1)
        self.coefficients.set_coefficients(t.numpy(), m.numpy(), s.numpy())
        self.grid_label.setText(f"<small>Q on {self._grid_source}'s {h}×{w} pixels ({h * w} DCT modes); "
                                "m(t), s(t) averaged over the modes</small>")
        self.updates += 1
        self.changed.emit()

    @Slot()
    def refresh(self) -> None:
        """Recompute Q on the grid, its draws and spectrum, and the equation's coefficients."""
        if self.image_size is not None:
            self._refresh_images()
            return
        from engine.equations import make_equation
        from engine.operators import covariance_from_config

        grid = self.preview_grid()
        noise = self.noise_config()
        length = noise["length_scale"] or self.suggested_length()
        if noise["length_scale"] is None:  # shown as the training will resolve it
            self.length.blockSignals(True)
            self.length.setValue(length)
            self.length.blockSignals(False)
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

    def image_config(self) -> dict[str, Any]:
        """The RunConfig sections ``noise`` and ``equation`` for images."""
        return {"noise": {"sigma": float(self.sigma.value()), "gamma": float(self.gamma.value())},
                "equation": {"name": self.image_equation.currentData(), "schedule": self.schedule.currentText(),
                             "blur_min": float(self.blur_min.value()), "blur_max": float(self.blur_max.value())}}

    def state(self) -> dict[str, Any]:
        return {"noise": self.noise_config(), "equation": self.equation_config(), "images": self.image_config(),
                "period_data": self._period_data}

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
        # the dataset the period was set for (None: it follows the data's span, as in projects without the key)
        self._period_data = state["period_data"] if isinstance(state.get("period_data"), str) else None
        index = self.equation.findData(eq.get("name"))
        if index >= 0:
            self.equation.setCurrentIndex(index)
        if eq.get("schedule") in SCHEDULES:
            self.schedule.setCurrentText(eq["schedule"])
        images = state.get("images", {})
        image_eq = images.get("equation", {})
        index = self.image_equation.findData(image_eq.get("name"))
        if index >= 0:
            self.image_equation.setCurrentIndex(index)
        for key, box in (("blur_min", self.blur_min), ("blur_max", self.blur_max)):
            if image_eq.get(key) is not None:
                box.setValue(float(image_eq[key]))
        for key, box in (("sigma", self.sigma), ("gamma", self.gamma)):
            if images.get("noise", {}).get(key) is not None:
                box.setValue(float(images["noise"][key]))
        self._schedule_refresh()
