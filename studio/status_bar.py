"""Status bar widgets: the running job's progress and ETA; the device and its memory."""

from __future__ import annotations

import math

from PySide6.QtCore import QTimer, Signal, Slot
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QProgressBar, QWidget

from studio.memory import read_memory
from studio.panels.training_panel import format_eta


class JobStatus(QWidget):
    """``job title · progress bar · ETA`` for the running job."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel("Ready", self)
        self.bar = QProgressBar(self)
        self.bar.setFixedWidth(220)
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setTextVisible(False)
        self.eta = QLabel("", self)
        self.eta.setMinimumWidth(110)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        layout.addWidget(self.eta)

    def begin(self, title: str) -> None:
        self.label.setText(title.capitalize())
        self.bar.setTextVisible(True)
        self.bar.setRange(0, 0)  # busy until the first report
        self.eta.setText("")

    def update_progress(self, step: int, total: int, eta: float) -> None:
        self.bar.setRange(0, max(1, total))
        self.bar.setValue(min(step, total))
        self.eta.setText(format_eta(eta) if math.isfinite(eta) else "")

    def set_paused(self, paused: bool, title: str) -> None:
        self.label.setText(f"{title.capitalize()} (paused)" if paused else title.capitalize())

    def end(self, text: str, done: bool = False) -> None:
        self.label.setText(text)
        self.bar.setRange(0, 1)
        self.bar.setValue(1 if done else 0)
        self.bar.setTextVisible(done)
        self.eta.setText("")


class DeviceStatus(QWidget):
    """Device selector (CPU and each CUDA device) with a memory readout polled about once a second."""

    device_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None, poll_ms: int = 1000) -> None:
        super().__init__(parent)
        from engine.device import available_devices

        self.combo = QComboBox(self)
        self.combo.addItems(available_devices())
        self.combo.setToolTip("Where training and sampling run")
        self.combo.currentTextChanged.connect(self._on_device)
        self.memory = QLabel("", self)
        self.memory.setMinimumWidth(260)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Device", self))
        layout.addWidget(self.combo)
        layout.addWidget(self.memory)
        self.timer = QTimer(self)
        self.timer.setInterval(poll_ms)
        self.timer.timeout.connect(self.poll)
        self.timer.start()
        self.poll()

    def device(self) -> str:
        return self.combo.currentText()

    def set_device(self, name: str) -> bool:
        index = self.combo.findText(name)
        if index >= 0:
            self.combo.setCurrentIndex(index)
        return index >= 0

    @Slot(str)
    def _on_device(self, name: str) -> None:
        self.poll()
        self.device_changed.emit(name)

    @Slot()
    def poll(self) -> None:
        try:
            self.memory.setText(read_memory(self.device()).text(self.device()))
        except (RuntimeError, OSError, ValueError) as exc:  # a driver hiccup must not break the bar
            self.memory.setText(f"{self.device()}: memory unknown ({type(exc).__name__})")
