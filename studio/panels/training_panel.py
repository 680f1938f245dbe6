"""The training panel: model size and optimisation settings, start/pause/resume/cancel,
a live loss curve, periodic samples from the EMA model, checkpoint save and load.

Curves and motions train an FNO-1D (width, modes, layers); images a UNet of a preset size
(``UNET_PRESETS``). Periodic previews show as curves, an image grid or stick figures.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from studio.dialogs import CHECKPOINT_FILTER, file_dialog
from studio.jobs import IDLE, PAUSED, RUNNING
from studio.views.curves_view import CurvesView
from studio.views.loss_view import LossView
from studio.views.media import ImageGridView, SkeletonView

UNET_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"width": 8, "channel_mult": (1, 2), "num_res_blocks": 1, "attention_levels": (), "emb_dim": 32},
    "small": {"width": 32, "channel_mult": (1, 2, 2), "num_res_blocks": 2, "attention_levels": (2,),
              "emb_dim": 64},
}
MAX_PROCESSES = 64  # more than the cores is allowed (gloo), with a warning in the log
DEFAULT_LR = {"functions": 2e-3, "motions": 2e-3, "images": 5e-4}  # the engine's defaults per network


def format_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "ETA —"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"ETA {seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"ETA {seconds // 60} min {seconds % 60:02d} s"
    return f"ETA {seconds} s"


class TrainingPanel(QWidget):
    """Settings in, a training job out; shows what the job reports."""

    start_requested = Signal()
    pause_toggled = Signal()
    cancel_requested = Signal()
    save_requested = Signal(str)  # directory
    load_requested = Signal(str)  # .safetensors file or run directory

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.width_box = self._int(1, 1024, 32, "Channels of the FNO's hidden layers")
        self.modes_box = self._int(1, 512, 16, "Fourier modes kept per spectral layer")
        self.layers_box = self._int(1, 32, 4, "Number of spectral layers")
        self.steps_box = self._int(1, 10_000_000, 2000, "Optimisation steps")
        self.batch_box = self._int(1, 100_000, 100, "Curves per step")
        self.lr_box = QDoubleSpinBox(self)
        self.lr_box.setDecimals(6)
        self.lr_box.setRange(1e-6, 1.0)
        self.lr_box.setSingleStep(1e-4)
        self.lr_box.setValue(2e-3)
        self.lr_box.setToolTip("Peak learning rate (AdamW, warm-up then cosine decay)")
        self.seed_box = self._int(0, 2**31 - 1, 0, "Seed of the initial weights and of the batches")
        self.processes_box = self._int(1, MAX_PROCESSES, 1, "1: train inside the studio (pausable, with live "
                                       "sample previews). More: a data-parallel run of that many processes "
                                       "(torchrun; gloo on a CPU, one GPU each on CUDA) started as a child "
                                       "process; the batch is split between them, so it must be a multiple "
                                       "of this number")
        self.time_law_box = QComboBox(self)
        for law, text in (("uniform", "uniform in t"), ("mixed", "half in log t")):
            self.time_law_box.addItem(text, law)
        self.time_law_box.setToolTip("The law of the training times. Half in log t trains more near t = 0, where "
                                     "the finest noise is removed: on Quadratic the samples kept 2.2x less "
                                     "non-parabolic residual at equal steps (hdm train --time-law)")
        self.unet_size = QComboBox(self)
        for name, preset in UNET_PRESETS.items():
            self.unet_size.addItem(f"{name} (width {preset['width']}, levels {len(preset['channel_mult'])})", name)
        self.unet_size.setToolTip("UNet size for images: tiny for a quick look on a CPU, small for real runs")
        self.modality = "functions"

        grid = QGridLayout()
        for i, (label, w) in enumerate((("Width", self.width_box), ("Modes", self.modes_box),
                                        ("Layers", self.layers_box), ("Steps", self.steps_box),
                                        ("Batch", self.batch_box), ("LR", self.lr_box),
                                        ("Seed", self.seed_box), ("Processes", self.processes_box),
                                        ("Times", self.time_law_box))):
            grid.addWidget(QLabel(label, self), i // 2, 2 * (i % 2))
            grid.addWidget(w, i // 2, 2 * (i % 2) + 1)
        unet_form = QFormLayout()
        unet_form.addRow("UNet size", self.unet_size)
        self._unet_form = unet_form
        unet_form.setRowVisible(self.unet_size, False)  # images only

        self.start_button = QPushButton("Start", self)
        self.start_button.setToolTip("Train on the current data with the current prior (Ctrl+T)")
        self.pause_button = QPushButton("Pause", self)
        self.pause_button.setToolTip("Pause or resume between steps (Ctrl+P)")
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setToolTip("Stop training; the model so far can still be saved (Esc)")
        self.save_button = QPushButton("Save…", self)
        self.save_button.setToolTip("Save model.safetensors and train_state.pt into a folder")
        self.load_button = QPushButton("Load…", self)
        self.load_button.setToolTip("Load a checkpoint (.safetensors) for sampling")
        self.start_button.clicked.connect(self.start_requested)
        self.pause_button.clicked.connect(self.pause_toggled)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.save_button.clicked.connect(self._choose_save_dir)
        self.load_button.clicked.connect(self._choose_checkpoint)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.pause_button, self.cancel_button, self.save_button,
                  self.load_button):
            buttons.addWidget(b)

        self.status = QLabel("Not trained in this session", self)
        self.status.setWordWrap(True)
        self.status.setMinimumHeight(2 * self.status.fontMetrics().lineSpacing())  # never clipped to one line
        self.loss = LossView(self)
        self.samples = CurvesView(self, title="Samples from the EMA model", max_curves=16,
                                  empty_text="periodic previews appear while training")
        self.sample_images = ImageGridView(self, title="Samples from the EMA model")
        self.sample_motions = SkeletonView(self, title="Samples from the EMA model (side view)", max_figures=4)
        self.sample_images.clear_images("periodic previews appear while training")
        self.sample_motions.clear_motions("periodic previews appear while training")
        self.previews = QStackedWidget(self)
        for w in (self.samples, self.sample_images, self.sample_motions):
            self.previews.addWidget(w)
        plots = QSplitter(Qt.Orientation.Vertical, self)
        for w in (self.loss, self.previews):
            w.setMinimumHeight(120)
            plots.addWidget(w)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(grid)
        layout.addLayout(unet_form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(plots, 1)
        self._dialog: QFileDialog | None = None
        self.set_job_state(IDLE, training=False, has_trainer=False)

    def _int(self, lo: int, hi: int, value: int, tip: str) -> QSpinBox:
        box = QSpinBox(self)
        box.setRange(lo, hi)
        box.setValue(value)
        box.setToolTip(tip)
        return box

    # -- configuration -----------------------------------------------------------------------
    def set_modality(self, modality: str) -> None:
        """Offer the settings of ``modality``'s network (FNO-1D or UNet) and its preview."""
        if modality == self.modality:
            return
        if abs(self.lr_box.value() - DEFAULT_LR[self.modality]) < 1e-12:
            self.lr_box.setValue(DEFAULT_LR[modality])
        self.modality = modality
        images = modality == "images"
        self._unet_form.setRowVisible(self.unet_size, images)
        for box in (self.modes_box, self.layers_box, self.width_box):
            box.setEnabled(not images)
        self.previews.setCurrentIndex(("functions", "images", "motions").index(modality))
        self.sample_motions.stop()

    def model_config(self) -> dict[str, Any]:
        if self.modality == "images":
            return {"name": "unet", **UNET_PRESETS[self.unet_size.currentData()]}
        return {"width": self.width_box.value(), "modes": self.modes_box.value(),
                "layers": self.layers_box.value()}

    def train_config(self) -> dict[str, Any]:
        steps = self.steps_box.value()
        return {"steps": steps, "batch_size": self.batch_box.value(), "lr": float(self.lr_box.value()),
                "seed": self.seed_box.value(), "warmup": min(100, steps // 10),
                "checkpoint_every": 0, "time_law": self.time_law_box.currentData()}

    def processes(self) -> int:
        """How many training processes: 1 trains in the studio, more in a child process (torchrun)."""
        return self.processes_box.value()

    def preview_every(self) -> int:
        """Sample previews about ten times per run (not more often than every 25 steps)."""
        return max(25, self.steps_box.value() // 10)

    def state(self) -> dict[str, Any]:
        return {**self.model_config(), "train": self.train_config(), "processes": self.processes()}

    def set_state(self, state: dict[str, Any]) -> None:
        if state.get("name") == "unet":
            preset = next((k for k, v in UNET_PRESETS.items() if v["width"] == state.get("width")), "tiny")
            self.unet_size.setCurrentIndex(self.unet_size.findData(preset))
        else:
            for key, box in (("width", self.width_box), ("modes", self.modes_box), ("layers", self.layers_box)):
                if key in state:
                    box.setValue(int(state[key]))
        train = state.get("train", {})
        if "steps" in train:
            self.steps_box.setValue(int(train["steps"]))
        if "batch_size" in train:
            self.batch_box.setValue(int(train["batch_size"]))
        if "lr" in train:
            self.lr_box.setValue(float(train["lr"]))
        if "seed" in train:
            self.seed_box.setValue(int(train["seed"]))
        if self.time_law_box.findData(train.get("time_law")) >= 0:
            self.time_law_box.setCurrentIndex(self.time_law_box.findData(train["time_law"]))
        if "processes" in state:
            self.processes_box.setValue(int(state["processes"]))

    # -- job feedback ------------------------------------------------------------------------
    def set_job_state(self, state: str, *, training: bool, has_trainer: bool, pausable: bool = True) -> None:
        """Enable what makes sense: ``training`` is whether the running job is this panel's
        (``pausable``: False for a run in a child process)."""
        busy = state != IDLE
        self.start_button.setEnabled(not busy)
        self.pause_button.setEnabled(training and pausable and state in (RUNNING, PAUSED))
        self.pause_button.setText("Resume" if training and state == PAUSED else "Pause")
        self.cancel_button.setEnabled(training and state in (RUNNING, PAUSED))
        self.save_button.setEnabled(has_trainer and not busy)
        self.load_button.setEnabled(not busy)

    def begin(self, processes: int = 1) -> None:
        """Clear the views for a new run (``processes`` > 1: a child process, previews only at its end)."""
        self.loss.clear_losses()
        note = ("periodic previews appear while training" if processes == 1 else
                f"samples appear when the {processes} training processes are done")
        self.samples.clear_curves(note)  # the previous run's previews must not pass for this run's
        self.sample_images.clear_images(note)
        self.sample_motions.clear_motions(note)
        for view in (self.samples, self.sample_images):
            view.set_title("Samples from the EMA model")
        self.sample_motions.set_title("Samples from the EMA model (side view)")
        self.status.setText("Starting…" if processes == 1 else f"Starting {processes} training processes…")

    def show_progress(self, step: int, total: int, eta: float, loss: float | None = None) -> None:
        loss_text = f" · loss {loss:.4g}" if loss is not None else ""
        self.status.setText(f"Step {step}/{total}{loss_text} · {format_eta(eta)}")

    @Slot(object)
    def show_preview(self, payload: dict[str, Any]) -> None:
        losses = np.asarray(payload["losses"])
        if losses.size:
            self.loss.set_losses(losses)
        if payload.get("samples") is not None:
            title = f"Samples from the EMA model at step {payload['sample_step']}"
            modality = payload.get("modality", "functions")
            if modality == "images":
                self.sample_images.set_images(payload["samples"])
                self.sample_images.set_title(title)
            elif modality == "motions" and payload.get("skeleton") is not None:
                from engine.motion import channels_to_positions

                parents, fps = payload["skeleton"]
                self.sample_motions.set_motions(channels_to_positions(payload["samples"]), parents, fps)
                self.sample_motions.set_title(title)
            else:
                self.samples.set_curves(payload["grid"], payload["samples"])
                self.samples.set_title(title)

    def show_result(self, text: str) -> None:
        self.status.setText(text)

    # -- dialogs (non-blocking: no nested event loop under qasync) ---------------------------
    @Slot()
    def _choose_save_dir(self) -> None:
        self._dialog = file_dialog(self, "Save checkpoint into folder", self.save_requested, folder=True)

    @Slot()
    def _choose_checkpoint(self) -> None:
        self._dialog = file_dialog(self, "Load checkpoint", self.load_requested, name_filter=CHECKPOINT_FILTER)
