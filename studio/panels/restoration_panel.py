"""The restoration session: pick an item, degrade it, restore it with the live estimate, compare priors.

A self-contained widget, ``RestorationPanel(runner)``: its controls on the left, a
:class:`~studio.views.restoration_view.RestorationView` on the right. Engine work runs as two jobs on
``runner`` (the studio's compute :class:`~studio.jobs.JobRunner`): ``restoration_item`` loads the checkpoint
and one item of a dataset's test split (or of a file), ``restore`` restores it. The panel reacts only to
its own jobs' signals, so it shares the runner with the other panels.

**What is compared.** The item ``x`` (data units) is measured once, ``y = A x + sigma_y n``
(:func:`engine.restoration.restore_items`, the measurement noise depends only on the seed), and restored
``k`` times with the checkpoint's prior and, when the checkpoint has a counterpart (:data:`COUNTERPARTS`:
MNIST HDM-SPDE / IHDM against DDPM's white-noise prior, and DDPM against HDM), ``k`` times with that one
from the same ``y`` and seeds. Each restoration tile reports the posterior-mean estimate (the mean of the
``k``) with PSNR, SSIM and consistency ``||A x_hat - y|| / sqrt(m)`` in units of ``sigma_y`` (the RMS
residual when ``sigma_y = 0``); the degraded tile reports the naive baseline (interpolation, zero fill
or the measurement itself) with the same metrics. Functions are compared with the same model only.

**Validation.** Every change of the task or its parameters rebuilds the degradation on the GUI thread
(a few milliseconds for these item sizes): the engine's one-line error is shown under the controls and
Restore stays disabled until the parameters are valid; otherwise the degraded preview updates.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from engine.errors import DataError, HDMError
from engine.restoration import METHODS, TASKS, default_metric, default_sampler, make_degradation
from engine.samplers import SAMPLERS
from studio.dialogs import CHECKPOINT_FILTER, file_dialog
from studio.engine_jobs import dataset_skeleton, model_skeleton
from studio.jobs import IDLE, Job, JobContext, JobRunner
from studio.views.restoration_view import RestorationView, TileContent
from studio.workspace import ModelCache

logger = logging.getLogger("studio")

ITEM_JOB, RESTORE_JOB = "restoration_item", "restore"
MODALITY_TASKS: dict[str, tuple[str, ...]] = {
    "images": ("inpaint-noise", "inpaint-mask", "super-resolution", "pixelate", "deblur"),
    "functions": ("impute", "super-resolution", "smooth", "deblur"),
    "motions": ("inbetween", "missing-joints"),
}
COUNTERPARTS = {"mnist_hdm": "mnist_ddpm", "mnist_ihdm": "mnist_ddpm", "mnist_ddpm": "mnist_hdm"}
METRICS = ("operator", "posterior")  # the replace method's correction (engine.restoration.conditional)
DRAWN = "drawn"  # inpaint-mask mode: the mask painted on the input
FAILED_NOTE = " — failed"  # appended to a source whose item did not load (its tooltip says why)
CONTROLS_MIN_WIDTH = 200  # the controls' least width (their rows wrap to fit); the Restore tab must fit a small window
ITEM_FILTER = ("Items (*.csv *.txt *.tsv *.ts *.arff *.npy *.npz *.h5 *.hdf5 *.png *.jpg *.jpeg *.bmp *.bvh);;"
               "All files (*)")
_MODES = {"impute": ("random", "intervals"), "inpaint-mask": ("patches", "box", DRAWN),
          "inbetween": ("keyframes", "ends")}
PER_JOINT = 3  # motion channels per joint (x, y, z): missing-joints' joints are numbered in these
LABELS = {"mode": "Mode", "fraction": "Fraction missing", "intervals": "Intervals", "factor": "Factor",
          "sigma": "Blur σ", "patch": "Patch", "box": "Box", "keep": "Keep frames", "joints": "Joints",
          "noise": "Noise σ_y", "seed": "Mask seed"}
# the engine's messages name the CLI's flags; the panel names its own controls instead
_FLAG_LABELS = {**{k: v for k, v in LABELS.items() if k != "seed"}, "mask-seed": "Mask seed", "mask": "the drawn mask",
                "method": "Method", "metric": "Correction"}
_FLAG = re.compile(r"--([a-z][a-z-]*)")


def gui_message(text: str) -> str:
    """An engine error with its CLI flag names (``--noise``) replaced by the panel's labels ("Noise σ_y")."""
    return _FLAG.sub(lambda m: f"“{_FLAG_LABELS[m[1]]}”" if m[1] in _FLAG_LABELS else m[0], text)


def prior_label(model: Any) -> str:
    """How a model's prior reads in a tile: HDM-SPDE, IHDM, white (DDPM-like) or HDM (coloured Q)."""
    name = model.config.equation.name
    if name == "hdm_spde":
        return "HDM-SPDE prior"
    if name == "ihdm":
        return "IHDM prior"
    return "white prior" if getattr(model.equation_on().Q, "white", False) else "HDM prior"


# -- engine side (worker thread) -----------------------------------------------------------------
@dataclass
class LoadedItem:
    """One item ready to degrade: ``item`` [C, n] (on ``grid``) or [C, H, W] (``grid`` None), data units."""

    checkpoint: str
    modality: str
    item: np.ndarray
    grid: np.ndarray | None
    source: str  # dataset name or file
    index: int
    count: int  # items in the source
    datasets: list[str]  # dataset names of the modality (the source list)
    default_source: str  # the checkpoint's own dataset
    prior: str  # the checkpoint's prior label
    skeleton: tuple[list[int], float] | None = None  # motions: (parents, fps), for the stick figures


@dataclass
class RestorationRun:
    """What a restore job returns: the item and, per prior, its label and :class:`RestorationResult`."""

    item: LoadedItem
    runs: list[tuple[str, Any]]
    checkpoints: list[str] = field(default_factory=list)  # of each run, in order


def _datasets(modality: str) -> list[str]:
    if modality == "images":
        from engine.data import list_image_datasets

        return [d.name for d in list_image_datasets()]
    if modality == "motions":
        from engine.motion import list_motion_datasets

        return [d.name for d in list_motion_datasets()]
    from engine.data import list_function_datasets

    return [d.name for d in list_function_datasets() if getattr(d, "available", True)]


def _load_values(model: Any, spec: str) -> tuple[np.ndarray, np.ndarray | None, tuple[list[int], float] | None]:
    """The test split of ``spec`` (all of it for a file) on the model's grid or image size, and for motions the
    skeleton of its items (:func:`studio.engine_jobs.dataset_skeleton`; else the checkpoint's)."""
    from dataclasses import replace

    from engine import api
    from engine.data.select import load_dataset

    split = "train" if Path(spec).expanduser().is_file() else "test"
    if model.modality == "images":
        from engine.data import load_image_dataset

        g = model.geometry
        ds = load_image_dataset(spec, split, size=(g.height, g.width), channels=g.channels)
        return np.asarray(ds.values), None, None
    grid = model.training_grid
    if model.modality == "functions":
        return np.asarray(api.reference_data(spec, grid, split=split).values), grid, None
    ds, _ = load_dataset(replace(model.config.data, spec=spec, modality="motions"), split)
    values = np.asarray(ds.values)
    if values.shape[-1] != grid.size:
        raise DataError(f"{spec}: motions of {values.shape[-1]} frames, but the checkpoint was trained on "
                        f"{grid.size} frames; choose items with clips of that length")
    return values, grid, dataset_skeleton(ds) or model_skeleton(model)


def load_item_job(models: ModelCache, checkpoint: str, source: str | None, index: int, device: str = "cpu") -> Job:
    """Load ``checkpoint`` and item ``index`` of ``source`` (default: the checkpoint's dataset's test split)."""

    def run(ctx: JobContext) -> LoadedItem:
        model = models.load(checkpoint, device)
        default = str(model.config.data.spec)
        spec = source or default
        values, grid, skeleton = _load_values(model, spec)
        shape = tuple(model.geometry.shape) if model.modality == "images" else (model.geometry.channels, grid.size)
        if tuple(values.shape[1:]) != shape:
            raise DataError(f"{spec}: items of shape {tuple(values.shape[1:])}, but {checkpoint} makes "
                            f"{model.modality} of shape {shape}; choose data of the checkpoint's kind")
        if not 0 <= index < len(values):
            raise DataError(f"{spec}: item {index} does not exist; it holds {len(values)} items (0…{len(values) - 1})")
        return LoadedItem(checkpoint, model.modality, values[index].astype(np.float32), grid, spec, index,
                          len(values), _datasets(model.modality), default, prior_label(model), skeleton)

    return Job(ITEM_JOB, run, f"load item {index} of {source or checkpoint}")


def restore_job(models: ModelCache, item: LoadedItem, checkpoints: list[str], task: str, params: dict[str, Any], *,
                method: str, sampler: str, steps: int, restorations: int, seed: int,
                method_options: dict[str, Any] | None = None, device: str = "cpu") -> Job:
    """Restore ``item`` with each checkpoint's prior in turn (the same measurement and seeds).

    ``method_options`` go to :func:`engine.restoration.restore` (``metric`` for ``replace``).
    """

    def run(ctx: JobContext) -> RestorationRun:
        from engine.restoration import restore_items

        total = steps * len(checkpoints)
        runs = []
        for j, spec in enumerate(checkpoints):
            model = models.load(spec, device)
            label = f"{prior_label(model)} ({Path(spec).stem})"
            done = j * steps

            def on_step(info, model=model, label=label, done=done) -> None:
                def preview() -> dict[str, Any]:
                    x0 = info.x0[:restorations].detach().float().cpu().numpy()
                    return {"x0": model.normalizer.denormalize(x0), "t": float(info.t), "step": info.step,
                            "total": info.total, "label": label}

                ctx.report(min(done + info.step, total), total, preview)

            ctx.log(f"restoring item {item.index} of {item.source} ({task}) with {label}: {method}, {sampler} "
                    f"{steps} steps, {restorations} restorations, seed {seed}")
            kwargs = dict(params=params, method=method, num_restorations=restorations, sampler=sampler,
                          steps=steps, seed=seed, grid=item.grid, method_options=method_options,
                          callback=on_step, should_stop=ctx.should_stop)
            if method == "dps":  # guidance differentiates through the network
                result = restore_items(model, item.item[None], task, **kwargs)
            else:  # no_grad, set here on the worker thread (inference tensors break FNO1d's basis cache)
                with torch.no_grad():
                    result = restore_items(model, item.item[None], task, **kwargs)
            runs.append((label, result))
        return RestorationRun(item, runs, list(checkpoints))

    return Job(RESTORE_JOB, run, f"restore ({task})")


# -- the panel (GUI thread) ----------------------------------------------------------------------
def _metrics_text(metrics: dict[str, dict[str, np.ndarray]], which: str) -> str:
    m = metrics[which]
    return (f"PSNR {float(m['psnr'][0]):.2f} dB · SSIM {float(m['ssim'][0]):.3f} · "
            f"consistency {float(m['consistency'][0]):.3g}")


class RestorationPanel(QWidget):
    """Degrade-then-restore on ``runner``: controls on the left, the session's views on the right."""

    run_finished = Signal(object)  # RestorationRun

    def __init__(self, runner: JobRunner, parent: QWidget | None = None, *, device: str = "cpu",
                 models: ModelCache | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.device = device
        self._models = models if models is not None else ModelCache()  # the window shares the session's
        self._loaded: LoadedItem | None = None
        self._load_error = ""  # why the chosen item is not loaded (the last load failed)
        self._loading_source = ""
        self._pending_load = False
        self._last_run: RestorationRun | None = None
        self._dialog: QFileDialog | None = None
        self._valid = False
        self.view = RestorationView(self)

        self.checkpoint = self._combo("The prior: a bundled checkpoint or a .safetensors file (one opened or saved in "
                                      "the Sampling and Training panels is offered here too)")
        self.open_checkpoint = QPushButton("Open…", self)
        self.open_checkpoint.clicked.connect(self._choose_checkpoint)
        self.source = self._combo("Where the item comes from: a dataset's test split, or a file (all its items)")
        self.open_item = QPushButton("File…", self)
        self.open_item.setToolTip("Take the item from a file (curves, images or motions)")
        self.open_item.clicked.connect(self._choose_item_file)
        self.index = QSpinBox(self)
        self.index.setRange(0, 1_000_000)
        self.index.setToolTip("Which item of the source")
        self.task = QComboBox(self)
        self.task.setToolTip("The degradation y = A x + sigma_y n")
        self.mode = QComboBox(self)
        self.fraction = self._double(0.0, 1.0, 0.5, 0.05, "Fraction of pixels / points missing (strictly in (0, 1))")
        self.intervals = self._int(0, 1000, 2, "Number of missing intervals")
        self.factor = self._int(1, 64, 2, "Super-resolution / pixelate factor (divides the size); keyframe spacing")
        self.sigma = self._double(0.0, 50.0, 1.5, 0.25, "Blur std in pixels (grid points); must be > 0")
        self.patch = self._int(0, 512, 4, "Patch side in pixels")
        self.box = self._double(0.0, 1.0, 0.5, 0.05, "Side of the centred missing box, as a fraction of the image")
        self.keep = self._int(0, 1000, 4, "Frames kept at each end")
        self.joints = QLineEdit("0", self)
        self.joints.setToolTip("Missing joints, e.g. 0, 3, 4 (3 channels each)")
        self.noise = self._double(-1.0, 100.0, 0.0, 0.01, "Measurement noise std sigma_y in data units (>= 0)")
        self.mask_seed = self._int(0, 2**31 - 1, 0, "Seed of random masks (the same mask for every run)")
        self.brush = self._int(1, 16, 3, "Brush side in pixels (left button: missing, right: observed)")
        self.clear_mask = QPushButton("Clear mask", self)
        self.clear_mask.clicked.connect(self.view.canvas.clear_mask)
        self._brush_row = QWidget(self)
        brush_row = QHBoxLayout(self._brush_row)
        brush_row.setContentsMargins(0, 0, 0, 0)
        brush_row.addWidget(self.brush, 1)
        brush_row.addWidget(self.clear_mask)
        self.method = QComboBox(self)
        self.method.addItems(list(METHODS))
        self.method.setToolTip("replace: DDNM in the operator's basis; dps: gradient guidance through the network")
        self.correction = QComboBox(self)
        self.correction.addItems(list(METRICS))
        self.correction.setToolTip("replace: correct the denoised estimate componentwise in the operator's basis, or "
                               "by Gaussian conditioning in the denoising covariance's metric (kriging with Q: "
                               "better for pointwise tasks on curves)")
        self.method.currentTextChanged.connect(lambda m: self.form.setRowVisible(self.correction, m == "replace"))
        self.sampler = QComboBox(self)
        self.sampler.addItems(list(SAMPLERS))
        self.sampler.setCurrentText("ddim")
        self.steps = self._int(1, 10_000, 25, "Reverse-time steps")
        self.restorations = self._int(1, 64, 4, "Restorations per prior (their mean is the posterior-mean estimate)")
        self.seed = self._int(0, 2**31 - 1, 0, "Measurement noise and sampler seeds")
        self.compare = QCheckBox("", self)
        self.compare.setChecked(True)
        self.compare.setToolTip("Also restore with the counterpart checkpoint (same measurement and seeds)")
        self._compare_wanted = True  # the user's choice, shown again when a checkpoint has a counterpart
        self.compare.toggled.connect(self._on_compare_toggled)

        ck_row = QHBoxLayout()
        ck_row.addWidget(self.checkpoint, 1)
        ck_row.addWidget(self.open_checkpoint)
        src_row = QHBoxLayout()
        src_row.addWidget(self.source, 1)
        src_row.addWidget(self.open_item)
        self.form = QFormLayout()
        # a narrow column (a small window with the side docks open) puts a row's field under its label
        # instead of cutting it ("Ope…", "Can…") or scrolling sideways
        self.form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        # the two long rows wrap: their label above, the box and button below at the column's full width
        self.form.addRow(QLabel("Checkpoint", self))
        self.form.addRow(ck_row)
        self.form.addRow(QLabel("Items", self))
        self.form.addRow(src_row)
        self.form.addRow("Item", self.index)
        self.form.addRow("Task", self.task)
        self._option_rows: dict[str, QWidget] = {
            "mode": self.mode, "fraction": self.fraction, "intervals": self.intervals, "factor": self.factor,
            "sigma": self.sigma, "patch": self.patch, "box": self.box, "keep": self.keep, "joints": self.joints,
            "noise": self.noise, "seed": self.mask_seed}
        for key, widget in self._option_rows.items():
            self.form.addRow(LABELS[key], widget)
        self.form.addRow("Brush", self._brush_row)
        self.form.addRow("Method", self.method)
        self.form.addRow("Correction", self.correction)
        self.form.addRow("Sampler", self.sampler)
        self.form.addRow("Steps", self.steps)
        self.form.addRow("Restorations", self.restorations)
        self.form.addRow("Seed", self.seed)
        self.form.addRow("Compare", self.compare)

        self.restore_button = QPushButton("Restore", self)
        self._restore_tip = "Degrade the item and restore it with the live estimate (Ctrl+R)"
        self.restore_button.setToolTip(self._restore_tip)
        self.restore_button.clicked.connect(self.start_restore)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button = QPushButton("Export…", self)
        self.export_button.setToolTip("Write the item, its measurement and restorations with their metrics to HDF5 "
                                      "(as hdm restore --out does; one file per prior when comparing)")
        self.export_button.clicked.connect(self.choose_export_path)
        run_row = QHBoxLayout()
        run_row.addWidget(self.restore_button, 1)
        run_row.addWidget(self.cancel_button)
        run_row.addWidget(self.export_button)
        self.error = QLabel("", self)
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #c62828;")
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)

        controls = QWidget(self)
        left = QVBoxLayout(controls)
        left.setContentsMargins(4, 4, 4, 4)
        left.addLayout(self.form)
        left.addLayout(run_row)
        left.addWidget(self.error)
        left.addWidget(self.status)
        left.addStretch(1)
        # a short or narrow tab scrolls the controls instead of squeezing them or widening the window
        scroll = QScrollArea(self)
        scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Tab goes from field to field, not through the frame
        scroll.setWidget(controls)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setMinimumWidth(CONTROLS_MIN_WIDTH)
        self._controls = controls
        self._scroll = scroll
        # a short window scrolls the results up and down: squeezed below their least height, the tiles' captions
        # and the curves' legend were drawn over the plots (sideways the view always fits: the docks make room)
        results = QScrollArea(self)
        results.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        results.setWidget(self.view)
        results.setWidgetResizable(True)
        results.setFrameShape(QFrame.Shape.NoFrame)
        results.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(scroll)
        splitter.addWidget(results)
        splitter.setStretchFactor(1, 1)
        splitter.setCollapsible(0, False)
        splitter.setCollapsible(1, False)
        self._splitter = splitter
        self._user_sized = False  # the user dragged the splitter: leave the columns' widths to them
        splitter.splitterMoved.connect(lambda *_: setattr(self, "_user_sized", True))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

        self._load_timer = QTimer(self)
        self._load_timer.setSingleShot(True)
        self._load_timer.setInterval(120)
        self._load_timer.timeout.connect(self.load_item)
        self.checkpoint.currentIndexChanged.connect(self._on_checkpoint_changed)
        self.source.currentIndexChanged.connect(lambda _: self._schedule_load())
        self.index.valueChanged.connect(lambda _: self._schedule_load())
        self.task.currentIndexChanged.connect(self._on_task_changed)
        self.mode.currentIndexChanged.connect(lambda _: self._on_options_changed())
        for box in (self.fraction, self.intervals, self.factor, self.sigma, self.patch, self.box, self.keep,
                    self.noise, self.mask_seed):
            box.valueChanged.connect(lambda _: self._on_options_changed())
        self.joints.textChanged.connect(lambda _: self._on_options_changed())
        self.brush.valueChanged.connect(lambda v: setattr(self.view.canvas, "brush", int(v)))
        self.view.canvas.mask_changed.connect(self._on_options_changed)
        runner.started.connect(self._on_started)
        runner.progress.connect(self._on_progress)
        runner.preview.connect(self._on_preview)
        runner.finished.connect(self._on_finished)
        runner.failed.connect(self._on_failed)
        runner.cancelled.connect(self._on_cancelled)
        runner.state_changed.connect(self._on_state)

        from engine import api

        for name in api.list_checkpoints():
            self.checkpoint.addItem(f"{name} (bundled)", name)
        self._set_tasks("functions")
        self._sync_buttons()

    def _combo(self, tip: str) -> QComboBox:
        """A combo box whose width does not follow its longest entry (file names); the tooltip shows it whole."""
        box = QComboBox(self)
        box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        box.setMinimumContentsLength(8)
        box.setToolTip(tip)
        box.currentIndexChanged.connect(lambda _: box.setToolTip(f"{box.currentText()}\n{tip}" if box.count() else tip))
        return box

    def _int(self, lo: int, hi: int, value: int, tip: str) -> QSpinBox:
        box = QSpinBox(self)
        box.setRange(lo, hi)
        box.setValue(value)
        box.setToolTip(tip)
        return box

    def _double(self, lo: float, hi: float, value: float, step: float, tip: str) -> QDoubleSpinBox:
        box = QDoubleSpinBox(self)
        box.setDecimals(3)
        box.setRange(lo, hi)
        box.setSingleStep(step)
        box.setValue(value)
        box.setToolTip(tip)
        return box

    # -- input -------------------------------------------------------------------------------
    @property
    def loaded(self) -> LoadedItem | None:
        return self._loaded

    @property
    def last_run(self) -> RestorationRun | None:
        return self._last_run

    def set_device(self, device: str) -> None:
        """Where the next jobs run (``cpu``, ``cuda:N``); a job moves the model it uses there."""
        self.device = device

    def select_checkpoint(self, key: str) -> bool:
        """Choose a bundled name or an opened file; loads its item."""
        index = self.checkpoint.findData(key)
        if index < 0 and Path(key).suffix == ".safetensors":
            self.checkpoint.addItem(f"{Path(key).name} (file)", key)
            index = self.checkpoint.count() - 1
        if index >= 0:
            if index == self.checkpoint.currentIndex():
                self._on_checkpoint_changed()
            self.checkpoint.setCurrentIndex(index)
        return index >= 0

    def offer_checkpoint(self, path: str, label: str) -> None:
        """List a checkpoint file (opened or saved elsewhere in the studio) without choosing it."""
        if self.checkpoint.findData(path) < 0:
            self.checkpoint.addItem(label, path)

    def set_item_source(self, spec: str | None) -> None:
        """Take items from a dataset name or file (``None``: the checkpoint's own dataset)."""
        index = self.source.findData(spec or "")
        if index < 0:
            self.source.addItem(f"{Path(spec).name} (file)" if Path(spec).exists() else spec, spec)
            index = self.source.count() - 1
        self.source.setCurrentIndex(index)
        self._schedule_load()

    @Slot()
    def _choose_checkpoint(self) -> None:
        self._dialog = file_dialog(self, "Open checkpoint", self.select_checkpoint, name_filter=CHECKPOINT_FILTER)

    @Slot()
    def _choose_item_file(self) -> None:
        self._dialog = file_dialog(self, "Open item file", self.set_item_source, name_filter=ITEM_FILTER)

    @Slot()
    def _on_checkpoint_changed(self) -> None:
        self.source.blockSignals(True)
        self.source.clear()
        self.source.addItem("checkpoint's dataset", "")
        self.source.setItemData(0, "the checkpoint's own dataset (its test split)", Qt.ItemDataRole.ToolTipRole)
        self.source.blockSignals(False)
        key = self.checkpoint.currentData() or ""
        other = COUNTERPARTS.get(key)
        self.compare.setEnabled(other is not None)  # disabled first: the unticking below is not the user's
        self.compare.setChecked(other is not None and self._compare_wanted)  # a greyed tick read as "will compare"
        self.compare.setText(f"also with {other}" if other else "no counterpart")
        self._schedule_load()

    @Slot(bool)
    def _on_compare_toggled(self, checked: bool) -> None:
        if self.compare.isEnabled():
            self._compare_wanted = checked

    def _schedule_load(self) -> None:
        if not self.checkpoint.currentData():
            return
        if not self.isVisible():  # load when the session is opened: never hold the shared runner in the background
            self._pending_load = True
            return
        self._load_timer.start()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self._fit_controls()
        if self._pending_load:
            self._load_timer.start()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._fit_controls()

    def _fit_controls(self) -> None:
        """The controls as wide as they need (up to half the tab), the views the rest, until the user drags the
        splitter: the tab often grows after it is first shown (docks settle), and the growth went to the views
        while the controls stayed cut."""
        if not self.isVisible():
            return
        bar = self._scroll.verticalScrollBar().sizeHint().width()  # the controls scroll up and down, never sideways
        self._scroll.setMinimumWidth(max(CONTROLS_MIN_WIDTH, self._controls.minimumSizeHint().width() + bar))
        if self._user_sized:
            return
        want = self._controls.sizeHint().width() + bar
        sizes = self._splitter.sizes()
        total = sum(sizes)
        controls = max(CONTROLS_MIN_WIDTH, min(want, total // 2))
        if sizes[0] != controls:
            self._splitter.setSizes([controls, max(1, total - controls)])

    @Slot()
    def load_item(self) -> bool:
        """Load the chosen item on the runner (later, when the runner is busy)."""
        key = self.checkpoint.currentData()
        if not key:
            return False
        if self.runner.busy:
            self._pending_load = True
            self.status.setText("waiting for the running job to load the item…")
            return False
        self._pending_load = False
        self.error.setText("")
        self._loading_source = self.source.currentData() or ""
        return self.runner.submit(load_item_job(self._models, key, self._loading_source or None,
                                                self.index.value(), self.device))

    def _show_item(self, item: LoadedItem) -> None:
        self._loaded, self._last_run = item, None  # the results shown are cleared with it
        self._load_error = ""
        self.source.blockSignals(True)
        have = {self.source.itemData(i) for i in range(self.source.count())}
        for name in item.datasets:
            if name not in have:
                self.source.addItem(f"{name} (test split)", name)
        i = self.source.findData(self._loading_source)
        if i >= 0 and self.source.itemText(i).endswith(FAILED_NOTE):  # it loads now (another item or checkpoint)
            self.source.setItemText(i, self.source.itemText(i).removesuffix(FAILED_NOTE))
            self.source.setItemData(i, None, Qt.ItemDataRole.ToolTipRole)
        self.source.blockSignals(False)
        self.index.blockSignals(True)
        self.index.setMaximum(max(0, item.count - 1))
        self.index.blockSignals(False)
        self.view.set_item(item.item, item.grid, motion=item.modality == "motions",  # before the tasks: they draw on it
                           parents=item.skeleton[0] if item.skeleton else None)
        self._set_tasks(item.modality)
        self.status.setText(f"{item.modality[:-1]} {item.index} of {item.source} ({item.count} items), "
                            f"{item.checkpoint}: {item.prior}")
        self._on_options_changed()

    # -- the degradation ---------------------------------------------------------------------
    def _set_tasks(self, modality: str) -> None:
        tasks = [t for t in MODALITY_TASKS.get(modality, ()) if t in TASKS]
        if [self.task.itemData(i) for i in range(self.task.count())] == tasks:
            return
        current = self.task.currentData()
        self.task.blockSignals(True)
        self.task.clear()
        for name in tasks:
            self.task.addItem(name, name)
            self.task.setItemData(self.task.count() - 1, TASKS[name].description, Qt.ItemDataRole.ToolTipRole)
        if current in tasks:
            self.task.setCurrentIndex(tasks.index(current))
        self.task.blockSignals(False)
        self.correction.setCurrentText(default_metric(modality))
        self.sampler.setCurrentText(default_sampler(modality))
        self._on_task_changed()

    def set_task(self, name: str) -> bool:
        index = self.task.findData(name)
        if index >= 0:
            self.task.setCurrentIndex(index)
        return index >= 0

    @Slot()
    def _on_task_changed(self) -> None:
        task = self.task.currentData()
        self.mode.blockSignals(True)
        self.mode.clear()
        self.mode.addItems(list(_MODES.get(task, ())))
        self.mode.blockSignals(False)
        self._on_options_changed()

    def _visible_options(self) -> set[str]:
        task = self.task.currentData()
        if task is None:
            return set()
        options = set(TASKS[task].options) - {"mask", "channels", "per_joint"}
        mode = self.mode.currentText()
        by_mode = {"impute": {"random": {"intervals"}, "intervals": set()},
                   "inpaint-mask": {"patches": {"box"}, "box": {"fraction", "patch", "seed"},
                                    DRAWN: {"fraction", "patch", "box", "seed"}},
                   "inbetween": {"keyframes": {"keep"}, "ends": {"factor"}}}
        return options - by_mode.get(task, {}).get(mode, set())

    def degradation_params(self) -> dict[str, Any]:
        """The task's options from the controls (as :func:`engine.restoration.make_degradation` takes them)."""
        task = self.task.currentData()
        visible = self._visible_options()
        values: dict[str, Any] = {"fraction": self.fraction.value(), "intervals": self.intervals.value(),
                                  "factor": self.factor.value(), "sigma": self.sigma.value(),
                                  "patch": self.patch.value(), "box": self.box.value(), "keep": self.keep.value(),
                                  "noise": self.noise.value(), "seed": self.mask_seed.value()}
        params = {k: v for k, v in values.items() if k in visible}
        if "mode" in visible:
            params["mode"] = self.mode.currentText()
        if task == "inpaint-mask" and params.get("mode") == DRAWN:
            params["mode"] = "array"
            params["mask"] = self.view.canvas.mask
        if task == "missing-joints":
            params["joints"] = self._joint_list()
        return params

    def _joint_list(self) -> list[int]:
        """The typed joints, checked against the item's skeleton here: the engine would name the channels."""
        text = self.joints.text().replace(",", " ").split()
        try:
            joints = [int(v) for v in text]
        except ValueError:
            raise DataError(f"missing-joints: joints must be integers separated by commas, got {self.joints.text()!r}"
                            ) from None
        count = self._loaded.item.shape[0] // PER_JOINT if self._loaded is not None else None
        bad = [j for j in joints if count is not None and not 0 <= j < count]
        if bad:
            which = "joint " + ", ".join(map(str, bad)) + (" does" if len(bad) == 1 else " do")
            raise DataError(f"missing-joints: {which} not exist; the skeleton has joints 0–{count - 1}")
        return joints

    def current_degradation(self):
        """The degradation for the loaded item and the current controls (raises the engine's errors)."""
        if self._loaded is None:
            raise DataError("no item yet: choose a checkpoint and an item")
        return make_degradation(self.task.currentData(), self._loaded.item.shape, **self.degradation_params())

    @Slot()
    def _on_options_changed(self) -> None:
        visible = self._visible_options()
        for key, widget in self._option_rows.items():
            self.form.setRowVisible(widget, key in visible)
        drawn = self.task.currentData() == "inpaint-mask" and self.mode.currentText() == DRAWN
        self.form.setRowVisible(self._brush_row, drawn)
        self.view.canvas.painting = drawn
        self._update_preview()

    def _update_preview(self) -> None:
        """Rebuild the degradation and show the degraded item, or the engine's error."""
        if self._loaded is None:
            self._sync_buttons()
            return
        try:
            degradation = self.current_degradation()
            x = torch.as_tensor(self._loaded.item[None], dtype=torch.float64)
            y = degradation.measure(x, generator=torch.Generator().manual_seed(self.seed.value()))
            shown = degradation.display(y)[0].numpy()
        except HDMError as exc:
            self._valid = False
            self.error.setText(gui_message(str(exc)))
            self.view.set_degraded_preview(None)
        else:
            self._valid = True
            self.error.setText("")
            mask = degradation.mask
            self.view.set_degraded_preview(TileContent(
                "Degraded (preview)", shown, f"{degradation.task}: {self._describe(degradation)}",
                reference=self._loaded.item if self._loaded.grid is not None else None,
                points=None if mask is None or self._loaded.grid is None else mask))
        self._sync_buttons()

    @staticmethod
    def _describe(degradation) -> str:
        params = {k: v for k, v in degradation.to_dict().items() if k not in ("task", "shape", "mask_sha256")}
        if params.get("mode") == "array":  # the engine's name for a given mask: here, the one drawn on the input
            params["mode"] = f"drawn, {int((~degradation.mask).any(axis=0).sum())} pixels missing"
        return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in params.items())

    # -- run ---------------------------------------------------------------------------------
    def method_options(self) -> dict[str, Any]:
        return {"metric": self.correction.currentText()} if self.method.currentText() == "replace" else {}

    def checkpoints_to_run(self) -> list[str]:
        key = self._loaded.checkpoint if self._loaded else self.checkpoint.currentData()
        other = COUNTERPARTS.get(key)
        return [key] + ([other] if other and self.compare.isChecked() and self.compare.isEnabled() else [])

    @Slot()
    def start_restore(self) -> bool:
        """Restore the loaded item with the current settings; False (and why, shown) when it cannot start."""
        if self.runner.busy:
            self.error.setText("another job is running; wait for it or cancel it")
            return False
        if self._load_timer.isActive() or self._pending_load:
            self.error.setText("the chosen item is still loading; restore when it is shown")
            return False
        self._update_preview()
        if self._loaded is None or not self._valid:
            if self._loaded is None:
                self.error.setText(self._load_error or "no item yet: choose a checkpoint and an item")
            return False
        job = restore_job(self._models, self._loaded, self.checkpoints_to_run(), self.task.currentData(),
                          self.degradation_params(), method=self.method.currentText(),
                          sampler=self.sampler.currentText(), steps=self.steps.value(),
                          restorations=self.restorations.value(), seed=self.seed.value(),
                          method_options=self.method_options(), device=self.device)
        self.view.clear_results()
        self.view.begin_live()
        self._last_run = None
        return self.runner.submit(job)

    # -- export ------------------------------------------------------------------------------
    @Slot()
    def choose_export_path(self) -> None:
        self._dialog = file_dialog(self, "Export restoration", self.export_to, name_filter="HDF5 (*.h5)",
                                   save_suffix="h5")

    def export_targets(self, path: str | Path) -> list[Path]:
        """The files :meth:`export_to` writes: ``path`` (the first prior's restoration), and for each further
        prior compared ``STEM_CHECKPOINT.h5`` beside it."""
        run, p = self._last_run, Path(path)
        others = [] if run is None else run.checkpoints[1:]
        return [p, *(p.with_name(f"{p.stem}_{Path(spec).stem}{p.suffix or '.h5'}") for spec in others)]

    def export_to(self, path: str) -> bool:
        """Write the restoration shown (schema ``hdm-restoration/1``, :func:`engine.restoration.write_restoration`)
        with where it came from; every target is checked before the first is written."""
        from engine.io import HDF5_SUFFIXES, check_output_name, check_writable
        from engine.restoration import write_restoration

        run = self._last_run
        if run is None:
            self.error.setText("nothing to export: restore an item first")
            return False
        try:  # as hdm restore --out: the name says HDF5
            check_output_name(path, suffixes=HDF5_SUFFIXES, what="an HDF5 restoration file")
        except HDMError as exc:
            self.error.setText(gui_message(str(exc)))
            return False
        targets = self.export_targets(path)
        taken = [t.name for t in targets[1:] if t.exists()]  # the dialog asked about the chosen file only
        if taken:
            self.error.setText(f"not exported: {', '.join(taken)} already exist beside {targets[0].name} (the other "
                               "prior's restoration goes there); choose another name or move them")
            return False
        try:
            for target in targets:
                check_writable(target)
            for target, (label, result), spec in zip(targets, run.runs, run.checkpoints, strict=True):
                write_restoration(target, result, {"checkpoint": spec, "prior": label, "item": {
                    "source": run.item.source, "index": run.item.index}, "written_by": "studio"})
        except HDMError as exc:
            self.error.setText(gui_message(str(exc)))
            return False
        self.error.setText("")
        self.status.setText("exported " + ", ".join(t.name for t in targets))
        logger.info(f"exported the restoration to {', '.join(str(t) for t in targets)}")
        return True

    @Slot()
    def cancel(self) -> None:
        if self._ours():
            self.runner.cancel()

    def _ours(self) -> bool:
        current = self.runner.current
        return current is not None and current.name in (ITEM_JOB, RESTORE_JOB)

    def _fail_load(self, text: str) -> None:
        """The chosen item did not load: drop the previous one (Restore must not restore an item that the
        controls no longer describe) and mark the source that failed, so that it is not picked again unawares."""
        self._loaded = self._last_run = None
        self._valid = False
        self._load_error = text
        self.view.clear_item("no item:\nsee the message\nunder the controls")  # short lines: a narrow plot
        i = self.source.findData(self._loading_source)
        if self._loading_source and i >= 0 and not self.source.itemText(i).endswith(FAILED_NOTE):
            self.source.setItemText(i, self.source.itemText(i) + FAILED_NOTE)
            self.source.setItemData(i, text, Qt.ItemDataRole.ToolTipRole)
        self.status.setText("no item loaded: choose another source, item or checkpoint")

    def _sync_buttons(self) -> None:
        idle = self.runner.state == IDLE
        self.restore_button.setEnabled(idle and self._loaded is not None and self._valid)
        why = f"No item to restore: {self._load_error}" if self._load_error else self._restore_tip
        self.restore_button.setToolTip(why)
        self.cancel_button.setEnabled(self._ours() and self.runner.state in ("running", "paused"))
        self.export_button.setEnabled(idle and self._last_run is not None)

    # -- runner signals ----------------------------------------------------------------------
    @Slot(str, str)
    def _on_started(self, name: str, title: str) -> None:
        if name == RESTORE_JOB:
            self.status.setText(f"{title}…")
        self._sync_buttons()

    @Slot(str, int, int, float)
    def _on_progress(self, name: str, step: int, total: int, eta: float) -> None:
        if name == RESTORE_JOB:
            left = f", about {eta:.0f} s left" if math.isfinite(eta) else ""
            self.status.setText(f"restoring: step {step}/{total}{left}")

    @Slot(str, object)
    def _on_preview(self, name: str, payload: object) -> None:
        if name == RESTORE_JOB and isinstance(payload, dict):
            self.view.show_frame(payload)

    @Slot(str, object)
    def _on_finished(self, name: str, result: object) -> None:
        if name == ITEM_JOB and isinstance(result, LoadedItem):
            if result.checkpoint == self.checkpoint.currentData():  # else a load for the new one is pending
                self._show_item(result)
        elif name == RESTORE_JOB and isinstance(result, RestorationRun):
            self._show_run(result)

    @Slot(str, str, str)
    def _on_failed(self, name: str, text: str, details: str) -> None:
        if name in (ITEM_JOB, RESTORE_JOB):
            text = gui_message(text)
            self.error.setText(text)
            self.status.setText("")
            if name == ITEM_JOB:
                self._fail_load(text)
            else:
                self.view.end_live("failed")
            self._sync_buttons()

    @Slot(str, str)
    def _on_cancelled(self, name: str, text: str) -> None:
        if name == RESTORE_JOB:
            self.view.end_live("cancelled")
            self.status.setText(text)

    @Slot(str)
    def _on_state(self, state: str) -> None:
        self._sync_buttons()
        if state == IDLE and self._pending_load and self.isVisible():
            QTimer.singleShot(0, self.load_item)

    # -- results -----------------------------------------------------------------------------
    def _show_run(self, run: RestorationRun) -> None:
        self._last_run = run
        self._sync_buttons()
        first = run.runs[0][1]
        curves = run.item.grid is not None
        mask = first.degradation.mask if curves else None
        contents = [
            TileContent("Original", first.original[0], "reference"),
            TileContent("Degraded", first.degraded[0], "naive baseline: " + _metrics_text(first.metrics, "naive"),
                        reference=first.original[0] if curves else None, points=mask),
        ]
        restorations = []
        for label, result in run.runs:
            k = result.restored.shape[1]
            text = (f"mean of {k}: " if k > 1 else "") + _metrics_text(result.metrics, "restored_mean")
            if k > 1:
                text += "<br>single: " + _metrics_text(result.metrics, "restored_single")
            contents.append(TileContent(f"Restored, {label}", result.restored_mean[0], text,
                                        singles=result.restored[0] if curves else None,
                                        reference=first.original[0] if curves else None))
            restorations.append((label, result.restored_mean[0], result.restored[0]))
        overlay = None
        if curves:
            overlay = {"original": first.original[0], "points": mask, "observed": first.degraded[0],
                       "naive": first.naive[0], "restorations": restorations}
        self.view.show_results(contents, overlay)
        seconds = sum(r.settings["seconds"] for _, r in run.runs)
        self.view.end_live(f"done: {len(run.runs)} prior(s) in {seconds:.1f} s")
        self.status.setText(f"restored {run.item.modality[:-1]} {run.item.index} of {run.item.source} "
                            f"({first.degradation.task}) in {seconds:.1f} s")
        self.run_finished.emit(run)
