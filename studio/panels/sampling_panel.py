"""The sampling panel: checkpoint, sampler, steps, number of samples, seeds, grid, export.

Sample k is drawn with seed ``base + k`` (the engine's per-sample generators), so any one
curve can be recalled on its own: "Sample this seed" redraws exactly that curve.

The panel knows each checkpoint's modality (from its safetensors metadata or the loaded model)
and offers what applies: the grid for curves and motions; the prior (hdm, white, ihdm) and the
live preview (the state x_t or the x_0 estimate) for images; CSV, PNG or BVH export to match.
A setting whose row is hidden has no effect: :meth:`SamplingPanel.settings` gives its neutral value.

The buttons that act on the samples shown follow that sample set, not the checkpoint selected now:
Highlight only for curves (images and motions have no curve to emphasise), Evaluate only from
:data:`EVALUATE_MIN` samples, the export formats of their modality, and "Sample this seed" with the
model and settings that drew them (off where those are unknown: a sample file whose checkpoint is not here).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.metrics.twosample import min_block_size
from engine.samplers import DEFAULT_SAMPLER, SAMPLER_DESCRIPTIONS, SAMPLERS, default_sampler_for
from studio.dialogs import CHECKPOINT_FILTER, file_dialog
from studio.jobs import IDLE, PAUSED, RUNNING
from studio.workspace import TRAINED

EXPORT_FORMATS = {"h5": "HDF5", "csv": "CSV (curves)", "png": "PNG (images)", "bvh": "BVH (motions)"}
EXPORT_FOR = {"functions": ("h5", "csv"), "images": ("h5", "png"), "motions": ("h5", "bvh")}
PRIORS = {"": "model's default", "hdm": "hdm (coloured, Q)", "white": "white (DDPM models)",
          "ihdm": "ihdm (blurred images + noise)"}
PREVIEWS = {"state": "state x_t", "x0": "x0 estimate"}
EVALUATE_MIN = {"functions": 10, "images": 2, "motions": min_block_size()}
"""The fewest samples "Evaluate vs held-out data" accepts, by modality (fewer: the engine refuses them).

Curves: ``engine.api.evaluate``'s default ``block_size`` (10; ``studio.engine_jobs.evaluate_job``, which the
controller's ``evaluate()`` submits, keeps it; tests/gui/test_sampling_panel_modality.py checks it), blocks of
that many curves of each sample; motions: ``engine.api._evaluate_motions`` shrinks the block to the sample
count, down to the smallest block whose test can reject at 5 % (4); images: FD and KID fit the classifier
features' covariance, at least 2 rows (``engine.metrics.images``).
"""
EVALUATE_TIP = ("Kernel two-sample test (MMD power) and functional errors against the test split of the data "
                "the model was trained on (a model trained on a file: that file, which is not held out)")
HIGHLIGHT_TIP = "Emphasise the curve drawn with this seed"
RESAMPLE_TIP = "Redraw just this sample (same model and settings, one sample)"


def checkpoint_modality(path: str | Path) -> str | None:
    """The modality a ``.safetensors`` checkpoint records in its metadata (a JSON string; None when unreadable)."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            modality = json.loads((f.metadata() or {}).get("modality", "null"))
    except Exception:  # noqa: BLE001 - not a readable checkpoint: the loader reports why when it is used
        return None
    return modality if modality in EXPORT_FOR else None


STEPS_RANGE = (1, 100_000)  # the Steps box's bounds (hdm-studio --steps is checked against them)
NUM_SAMPLES_RANGE = (1, 1_000_000)  # the Samples box's

class _Note(QLabel):
    """A wrapped line of text that takes no room while empty (the three empty notes, with their spacing, pushed
    the Export row out of a 1280 x 720 window's Sampling dock)."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__("", parent)
        self.setWordWrap(True)
        self.setVisible(False)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt override
        super().setText(text)
        self.setVisible(bool(text))


class SamplingPanel(QWidget):
    """Settings in, a sampling job out."""

    sample_requested = Signal(dict)
    seed_requested = Signal(dict)  # the settings of the samples shown, for one sample: their recalled seed
    checkpoint_file_added = Signal(str, str)  # path, label: a .safetensors file offered here (opened or saved)
    cancel_requested = Signal()
    export_requested = Signal()
    evaluate_requested = Signal()
    checkpoint_file_chosen = Signal(str)
    highlight_requested = Signal(object)  # a seed (int) or None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.checkpoint = QComboBox(self)
        self.checkpoint.setToolTip("Which model samples: a bundled checkpoint, a file, or the one "
                                   "trained here")
        self.open_button = QPushButton("Open…", self)
        self.open_button.setToolTip("Open a checkpoint file (.safetensors)")
        self.open_button.clicked.connect(self._choose_checkpoint)
        self.notice = _Note(self)
        self.sampler = QComboBox(self)
        for name in SAMPLERS:
            self.sampler.addItem(name, name)
            self.sampler.setItemData(self.sampler.count() - 1, SAMPLER_DESCRIPTIONS.get(name, ""),
                                     Qt.ItemDataRole.ToolTipRole)
        self.sampler.setCurrentText(DEFAULT_SAMPLER)
        self._default_sampler = DEFAULT_SAMPLER  # the modality default last put in the box (see _apply_modality)
        self.steps = self._int(*STEPS_RANGE, 50, "Reverse-time steps from T to 0")
        self.num = self._int(*NUM_SAMPLES_RANGE, 64, "How many curves to draw")
        self.seed = self._int(0, 2**31 - 1, 0, "Sample k is drawn with seed base + k")
        self.seeds_label = QLabel("", self)
        self.custom_grid = QCheckBox("custom", self)
        self.custom_grid.setToolTip("Resolution-free sampling: draw the curves on a uniform grid of any size")
        self.grid_points = self._int(2, 100_000, 256, "Points of the uniform sampling grid")
        self.grid_points.setEnabled(False)
        self.custom_grid.toggled.connect(self.grid_points.setEnabled)
        self.prior = QComboBox(self)
        for key, text in PRIORS.items():
            self.prior.addItem(text, key)
        self.prior.setToolTip("Images: the law x_T is drawn from. hdm: the coloured Gaussian of the HDM "
                              "equation; white: N(0, I) (DDPM models only); ihdm: maximally blurred training "
                              "images plus noise (the only one for IHDM models)")
        self.preview = QComboBox(self)
        for key, text in PREVIEWS.items():
            self.preview.addItem(text, key)
        self.preview.setToolTip("What the live view shows at each step: the state x_t or the sampler's "
                                "estimate of the clean sample x_0")
        self.modalities: dict[str, str] = {}  # checkpoint key -> modality
        self.checkpoint.currentIndexChanged.connect(lambda _: self._apply_modality())

        ck_row = QHBoxLayout()
        ck_row.addWidget(self.checkpoint, 1)
        ck_row.addWidget(self.open_button)
        grid_row = QHBoxLayout()
        grid_row.addWidget(self.custom_grid)
        grid_row.addWidget(self.grid_points, 1)
        form = QFormLayout()
        form.addRow("Checkpoint", ck_row)
        form.addRow("Sampler", self.sampler)
        form.addRow("Steps", self.steps)
        form.addRow("Samples", self.num)
        form.addRow("Base seed", self.seed)
        form.addRow("", self.seeds_label)
        form.addRow("Grid", grid_row)
        form.addRow("Prior", self.prior)
        form.addRow("Live view", self.preview)
        self._form = form
        self._rows = {"grid": form.rowCount() - 3, "prior": form.rowCount() - 2, "preview": form.rowCount() - 1}

        self.sample_button = QPushButton("Sample", self)
        self.sample_button.setToolTip("Draw samples with the live trajectory (Ctrl+R)")
        self.sample_button.clicked.connect(self._request)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setToolTip("Stop sampling (Esc)")
        self.cancel_button.clicked.connect(self.cancel_requested)
        run_row = QHBoxLayout()
        run_row.addWidget(self.sample_button, 1)
        run_row.addWidget(self.cancel_button)

        self.recall_seed = self._int(0, 2**31 - 1, 0, "A seed of the current samples")
        self.highlight_button = QPushButton("Highlight", self)
        self.highlight_button.setToolTip(HIGHLIGHT_TIP)
        self.highlight_button.clicked.connect(lambda: self.highlight_requested.emit(self.recall_seed.value()))
        self.resample_button = QPushButton("Sample this seed", self)
        self.resample_button.setToolTip(RESAMPLE_TIP)
        self.resample_button.clicked.connect(self._request_seed)
        recall_row = QHBoxLayout()
        recall_row.addWidget(self.recall_seed, 1)
        recall_row.addWidget(self.highlight_button)
        recall_row.addWidget(self.resample_button)

        self.export_format = QComboBox(self)
        for key, text in EXPORT_FORMATS.items():
            self.export_format.addItem(text, key)
        self.export_trajectory = QCheckBox("trajectory", self)
        self.export_trajectory.setChecked(True)
        self.export_trajectory.setToolTip("HDF5: also store the reverse-time states the scrubber replays")
        self.export_button = QPushButton("Export…", self)
        self.export_button.setToolTip("Write the samples to a file (Ctrl+E)")
        self.export_button.clicked.connect(self.export_requested)
        export_row = QHBoxLayout()
        export_row.addWidget(self.export_format, 1)
        export_row.addWidget(self.export_trajectory)
        export_row.addWidget(self.export_button)
        self.evaluate_button = QPushButton("Evaluate vs held-out data", self)
        self.evaluate_button.setToolTip(EVALUATE_TIP)
        self.evaluate_button.clicked.connect(self.evaluate_requested)
        self.evaluation = _Note(self)
        self.evaluation.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        after = QFormLayout()
        after.addRow("Recall seed", recall_row)
        after.addRow("Export", export_row)
        after.addRow("Quality", self.evaluate_button)

        self.result = _Note(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        layout.addWidget(self.notice)
        layout.addLayout(run_row)
        layout.addWidget(self.result)
        layout.addLayout(after)
        layout.addWidget(self.evaluation)
        layout.addStretch(1)
        for w in (self.seed, self.num):
            w.valueChanged.connect(self._update_seeds_label)
        self._dialog: QFileDialog | None = None
        self._has_samples = False
        self._sample_count = 0  # of the sample set shown
        self._sample_modality = "functions"
        self._sample_settings: dict[str, Any] | None = None  # that drew the samples shown (None: unknown)
        self._resample_reason = ""  # why "Sample this seed" is off for the samples shown (empty: model not here)
        self._busy = False
        self._update_seeds_label()
        self._apply_modality()
        self.set_job_state(IDLE, sampling=False)

    def _int(self, lo: int, hi: int, value: int, tip: str) -> QSpinBox:
        box = QSpinBox(self)
        box.setRange(lo, hi)
        box.setValue(value)
        box.setToolTip(tip)
        return box

    # -- checkpoints -------------------------------------------------------------------------
    def set_bundled(self, names: list[str] | dict[str, Path]) -> None:
        """List the bundled checkpoints (names, or names -> paths to read their modality from)."""
        paths = names if isinstance(names, dict) else {}
        for name in names:
            modality = checkpoint_modality(paths[name]) if name in paths else None
            self.add_checkpoint(name, f"{name} ({modality or 'bundled'})", select=False, modality=modality)
        if names:
            self.notice.setText("")
        else:
            self.notice.setText("<i>No bundled checkpoint found (assets/checkpoints is empty). Train a model "
                                "in the Training panel, or open a .safetensors file.</i>")

    def add_checkpoint(self, key: str, label: str, *, select: bool = True, modality: str | None = None) -> None:
        """Offer ``key``; ``modality`` (default: read from the file when ``key`` is one) shapes the settings."""
        if modality is None and not key.startswith("session:") and Path(key).suffix == ".safetensors":
            modality = checkpoint_modality(key)
        if modality is not None:
            self.modalities[key] = modality
        index = self.checkpoint.findData(key)
        if index < 0:
            self.checkpoint.addItem(label, key)
            index = self.checkpoint.count() - 1
            if not key.startswith("session:") and Path(key).suffix == ".safetensors":
                self.checkpoint_file_added.emit(key, label)
        else:
            self.checkpoint.setItemText(index, label)
        if select:
            self.checkpoint.setCurrentIndex(index)
        if key == TRAINED or not key.startswith("session:"):
            self.notice.setText("")
        self._apply_modality()

    def modality(self) -> str:
        """The current checkpoint's modality (functions when unknown)."""
        return self.modalities.get(self.checkpoint_key() or "", "functions")

    def _apply_modality(self) -> None:
        modality = self.modality()
        images = modality == "images"
        for row, show in (("grid", not images), ("prior", images), ("preview", images)):
            self._form.setRowVisible(self._rows[row], show)
        self.num.setToolTip(f"How many {modality} to draw")
        default = default_sampler_for(modality)
        if self.sampler.currentData() == self._default_sampler:  # the user's own choice stays
            self.sampler.setCurrentText(default)
        self._default_sampler = default
        self._sync_export_formats()

    def _sync_export_formats(self) -> None:
        """Offer the export formats of the samples shown (before any: of the checkpoint's modality)."""
        allowed = EXPORT_FOR[self._sample_modality if self._has_samples else self.modality()]
        current = self.export_format.currentData()
        model = self.export_format.model()
        for i in range(self.export_format.count()):
            model.item(i).setEnabled(self.export_format.itemData(i) in allowed)
        if current not in allowed:
            self.export_format.setCurrentIndex(self.export_format.findData("h5"))

    def checkpoint_key(self) -> str | None:
        return self.checkpoint.currentData()

    def select_checkpoint(self, key: str) -> bool:
        index = self.checkpoint.findData(key)
        if index >= 0:
            self.checkpoint.setCurrentIndex(index)
        return index >= 0

    @Slot()
    def _choose_checkpoint(self) -> None:
        self._dialog = file_dialog(self, "Open checkpoint", self.checkpoint_file_chosen,
                                   name_filter=CHECKPOINT_FILTER)

    # -- settings ----------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """What a run uses: settings whose row is hidden for this modality give their neutral value."""
        images = self.modality() == "images"
        return {"checkpoint": self.checkpoint_key(), "sampler": self.sampler.currentData(),
                "steps": self.steps.value(), "num_samples": self.num.value(), "seed": self.seed.value(),
                "grid_size": self.grid_points.value() if self.custom_grid.isChecked() and not images else None,
                "prior": (self.prior.currentData() or None) if images else None,
                "preview": self.preview.currentData() if images else "state"}

    def export_settings(self) -> dict[str, Any]:
        return {"format": self.export_format.currentData(), "trajectory": self.export_trajectory.isChecked()}

    def state(self) -> dict[str, Any]:
        return self.settings()

    def set_state(self, state: dict[str, Any]) -> None:
        if state.get("checkpoint"):
            self.select_checkpoint(str(state["checkpoint"]))
        if state.get("sampler") in SAMPLERS:
            self.sampler.setCurrentText(state["sampler"])
        for key, box in (("steps", self.steps), ("num_samples", self.num), ("seed", self.seed)):
            if state.get(key) is not None:
                box.setValue(int(state[key]))
        grid = state.get("grid_size")
        self.custom_grid.setChecked(grid is not None)
        if grid is not None:
            self.grid_points.setValue(int(grid))
        for key, box in (("prior", self.prior), ("preview", self.preview)):
            index = box.findData(state.get(key) or "") if key in state else -1
            if index >= 0:
                box.setCurrentIndex(index)

    def set_export_state(self, state: dict[str, Any]) -> None:
        """A project's export choice, where it applies to the samples shown (a greyed format is not chosen)."""
        index = self.export_format.findData(state.get("format"))
        if index >= 0 and self.export_format.model().item(index).isEnabled():
            self.export_format.setCurrentIndex(index)
        if "trajectory" in state:
            self.export_trajectory.setChecked(bool(state["trajectory"]))

    # -- run ---------------------------------------------------------------------------------
    @Slot()
    def _request(self) -> None:
        self.sample_requested.emit(self.settings())

    @Slot()
    def _request_seed(self) -> None:
        if self._sample_settings is not None:
            self.seed_requested.emit({**self._sample_settings, "num_samples": 1, "seed": self.recall_seed.value()})

    @Slot()
    def _update_seeds_label(self) -> None:
        a, n = self.seed.value(), self.num.value()
        self.seeds_label.setText(f"<small>seeds {a}…{a + n - 1}: sample k has seed {a} + k</small>")

    def set_job_state(self, state: str, *, sampling: bool) -> None:
        busy = self._busy = state != IDLE
        self.sample_button.setEnabled(not busy)
        self.cancel_button.setEnabled(sampling and state in (RUNNING, PAUSED))
        self.export_button.setEnabled(not busy and self._has_samples)
        self._sync_sample_buttons()

    def _sync_sample_buttons(self) -> None:
        """Evaluate, Highlight and Sample this seed: only where they apply to the sample set shown (a tooltip
        says why not)."""
        modality = self._sample_modality
        need = EVALUATE_MIN.get(modality, EVALUATE_MIN["functions"])
        too_few = self._has_samples and self._sample_count < need
        self.evaluate_button.setEnabled(not self._busy and self._has_samples and not too_few)
        noun = {"functions": "curves", "images": "images", "motions": "motions"}.get(modality, "samples")
        self.evaluate_button.setToolTip(
            f"Draw at least {need} samples to evaluate: the comparison with held-out data needs at least {need} "
            f"{noun}; there are {self._sample_count}" if too_few else EVALUATE_TIP)
        curves = modality == "functions"
        self.highlight_button.setEnabled(self._has_samples and curves)
        self.highlight_button.setToolTip(HIGHLIGHT_TIP if curves or not self._has_samples else
                                         f"Highlight emphasises one curve: the {modality} shown have none")
        unknown = self._has_samples and self._sample_settings is None
        self.resample_button.setEnabled(not self._busy and self._has_samples and not unknown)
        self.resample_button.setToolTip(
            (f"Not available: {self._resample_reason}" if self._resample_reason else
             "Not available: the model that drew these samples is not here (their file names a checkpoint that was "
             "not found, or a model trained in a studio session); select a checkpoint and Sample") if unknown
            else RESAMPLE_TIP)

    def show_evaluation(self, text: str) -> None:
        """The evaluation's outcome, scrolled into view: a motion report is several lines long, and on a
        window of ordinary height the Sampling dock would show its first words only."""
        self.evaluation.setText(text)
        QTimer.singleShot(0, self._reveal_evaluation)  # once the label has its new height

    def _reveal_evaluation(self) -> None:
        parent = self.parentWidget()
        while parent is not None and not isinstance(parent, QScrollArea):
            parent = parent.parentWidget()
        if parent is not None and self.evaluation.text():
            QApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)  # the wrapped label's height first
            parent.ensureWidgetVisible(self.evaluation, 0, 8)

    def show_samples(self, seeds: list[int], text: str, *, modality: str | None = None,
                     settings: dict[str, Any] | None = None) -> None:
        """The run (or file) now shown: its seeds become recallable.

        ``modality``: of these samples (default: the current checkpoint's, which made them or recalls them).
        ``settings``: the ones that drew them (:meth:`settings`' keys; for a sample file also what it records
        beyond the panel's settings: ``spacing``, the ``grid`` points, ``image_size``, ``checkpoint_sha256``), which
        "Sample this seed" redraws with; None where they (or their model) are unknown.
        """
        self._has_samples = True
        self._sample_count = len(seeds)
        self._sample_modality = modality if modality in EXPORT_FOR else self.modality()
        self._sample_settings = dict(settings) if settings is not None else None
        self._resample_reason = ""
        if seeds:
            self.recall_seed.setRange(int(min(seeds)), int(max(seeds)))
            self.recall_seed.setValue(int(seeds[0]))
        self.result.setText(text)
        self.evaluation.setText("")
        self._sync_export_formats()
        self._sync_sample_buttons()

    def refuse_resample(self, reason: str) -> None:
        """Turn "Sample this seed" off for the samples shown, its tooltip saying ``reason`` (for example: the
        checkpoint their file names now holds another model)."""
        self._sample_settings = None
        self._resample_reason = reason
        self._sync_sample_buttons()

    def sample_modality(self) -> str | None:
        """The modality of the samples shown (None before any)."""
        return self._sample_modality if self._has_samples else None
