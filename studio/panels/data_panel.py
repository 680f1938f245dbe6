"""The data panel: an embedded dataset of any modality or a file/folder, with a preview.

Curves show overlaid, images as a tiled grid, motions as stick figures (one clip at a few
frames side by side). Loading happens on a worker (the main window runs
:func:`studio.engine_jobs.load_dataset_job`, which detects the modality like the engine does);
this panel only asks for it (``load_requested``) and shows the dataset or the loader's error,
plainly, keeping the previous dataset when a file is bad.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from studio.dialogs import file_dialog
from studio.views.curves_view import CurvesView
from studio.views.media import ImageGridView, SkeletonView, travel_heading

FILE_FILTER = ("Data files (*.csv *.txt *.tsv *.ts *.arff *.npy *.npz *.h5 *.hdf5 *.bvh *.idx *.png *.jpg *.jpeg "
               "*.bmp *-ubyte);;Curve files (*.csv *.txt *.tsv *.ts *.arff *.npy *.npz *.h5 *.hdf5);;"
               "Motions (*.bvh);;Images (*.png *.jpg *.jpeg *.bmp *.idx *-ubyte *.npz);;All files (*)")
MODALITY_PAGES = ("functions", "images", "motions")
ARRAY_SUFFIXES = (".npy", ".npz")  # curves or images: the user says which
PREVIEW_IMAGES = 36  # a 6 x 6 grid
MOTION_FRAMES = 5  # stick figures of one clip, side by side


SOURCE_CHARS = 140  # a dataset's source text beyond this is elided in the panel (whole in the tooltip)


def motion_thumbnail_frames(num_frames: int, count: int = MOTION_FRAMES) -> np.ndarray:
    """Evenly spaced frame indices (first to last) of a clip of ``num_frames`` frames."""
    return np.unique(np.linspace(0, num_frames - 1, min(count, num_frames)).round().astype(np.int64))


class DataPanel(QWidget):
    """Choose the training data; see what it looks like."""

    load_requested = Signal(str, object)  # spec (registry name or path), n_points (int | None)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.combo = QComboBox(self)
        self.combo.setToolTip("Datasets that ship with HDM Studio (real ones need ../shared/data)")
        self.combo.activated.connect(self._on_activated)
        self.points = QSpinBox(self)
        self.points.setRange(0, 100_000)
        self.points.setSpecialValueText("native")
        self.points.setToolTip("Resample the curves to this many uniform points (native: as stored)")
        self.points.setKeyboardTracking(False)
        self.points.valueChanged.connect(self._on_points)
        self.import_button = QPushButton("Import file…", self)
        self.import_button.setToolTip("Import curves from a file (or drop one on the window)")
        self.import_button.clicked.connect(self.choose_file)
        self.folder_button = QPushButton("Folder…", self)
        self.folder_button.setToolTip("Import a folder of images or of .bvh motions")
        self.folder_button.clicked.connect(self.choose_folder)
        self.arrays_as = QComboBox(self)
        self.arrays_as.addItem("arrays: curves", "auto")
        self.arrays_as.addItem("arrays: images", "images")
        self.arrays_as.setToolTip(".npy/.npz arrays are ambiguous: [N, C, n] curves or [N, H, W] / [N, C, H, W] "
                                  "images; choose how to read them")
        self.info = QLabel("No dataset loaded", self)
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error = QLabel("", self)
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #d32f2f;")
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.setVisible(False)
        self.preview = CurvesView(self, title="Data", max_curves=100, show_mean=True,
                                  empty_text="choose a dataset")
        self.preview.setMinimumHeight(170)
        self.image_preview = ImageGridView(self, title="Data")
        self.motion_preview = SkeletonView(self, title="Data (one clip, side view)", max_figures=MOTION_FRAMES)
        self.previews = QStackedWidget(self)
        for page in (self.preview, self.image_preview, self.motion_preview):
            page.setMinimumHeight(170)
            self.previews.addWidget(page)
        self.modality = "functions"

        form = QFormLayout()
        form.addRow("Dataset", self.combo)
        points_row = QHBoxLayout()
        points_row.addWidget(self.points, 1)
        files_row = QHBoxLayout()
        files_row.addWidget(self.import_button)
        files_row.addWidget(self.folder_button)
        files_row.addWidget(self.arrays_as)
        form.addRow("Points", points_row)
        form.addRow("Import", files_row)
        self._form = form
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        layout.addWidget(self.info)
        layout.addWidget(self.error)
        layout.addWidget(self.previews, 1)
        self.spec: str | None = None
        self._dialog: QFileDialog | None = None
        self._populate()

    # -- choices -----------------------------------------------------------------------------
    def _populate(self) -> None:
        from engine.data import list_function_datasets, list_image_datasets
        from engine.motion import list_motion_datasets

        self.combo.addItem("choose…", None)
        model = self.combo.model()
        registries = (("curves", list_function_datasets()), ("images", list_image_datasets()),
                      ("motions", list_motion_datasets()))
        for label, infos in registries:
            for info in infos:
                self.combo.addItem(f"{info.name}  ({label}, {info.kind})", info.name)
                index = self.combo.count() - 1
                tip = info.description if info.available else f"{info.description} (its files are not " \
                    "here: the real datasets live in ../shared/data or $HDM_DATA_DIR)"
                self.combo.setItemData(index, tip, Qt.ItemDataRole.ToolTipRole)
                if not info.available:
                    model.item(index).setEnabled(False)

    def n_points(self) -> int | None:
        return self.points.value() or None

    def modality_for(self, spec: str) -> str:
        """How to read ``spec``: ``images`` for arrays (.npy, .npz) when chosen so, else ``auto`` (detected)."""
        if Path(str(spec)).suffix.lower() in ARRAY_SUFFIXES:
            return self.arrays_as.currentData()
        return "auto"

    @Slot(int)
    def _on_activated(self, index: int) -> None:
        name = self.combo.itemData(index)
        if name and (name != self.spec or self.error.isVisible()):
            self.request(name)

    @Slot(int)
    def _on_points(self, _value: int) -> None:
        if self.spec is not None:
            self.request(self.spec)

    def choose(self, name: str) -> None:
        """Select an embedded dataset as a user would."""
        index = self.combo.findData(name)
        if index < 0:
            raise KeyError(name)
        self.combo.setCurrentIndex(index)
        self._on_activated(index)

    def request(self, spec: str, n_points: int | None = None) -> None:
        """Ask for ``spec`` (a registry name or a file path) to be loaded."""
        if n_points is not None:
            self.points.blockSignals(True)
            self.points.setValue(n_points)
            self.points.blockSignals(False)
        self.info.setText(f"Loading {Path(spec).name}…")
        self.load_requested.emit(str(spec), self.n_points())

    @Slot()
    def choose_file(self) -> None:
        self._dialog = file_dialog(self, "Import data", self.request, name_filter=FILE_FILTER)

    @Slot()
    def choose_folder(self) -> None:
        self._dialog = file_dialog(self, "Import a folder of images or motions", self.request, folder=True)

    # -- results -----------------------------------------------------------------------------
    def show_dataset(self, spec: str, dataset: Any, modality: str = "functions") -> None:
        """Show ``dataset`` (FunctionDataset [N, C, n], ImageDataset [N, C, H, W] or MotionDataset [N, 3J, T])."""
        self.spec = spec
        self.modality = modality
        self.error.setVisible(False)
        self._form.setRowVisible(1, modality == "functions")  # resampling applies to curves only
        self.motion_preview.stop()
        self.previews.setCurrentIndex(MODALITY_PAGES.index(modality))
        if modality == "images":
            n, c, h, w = dataset.values.shape
            self.info.setText(f"<b>{dataset.name}</b>: {n} images × {c} channel{'s' * (c > 1)} × {h}×{w} "
                              f"pixels<br><small>{self._source(dataset.source)}</small>")
            self.image_preview.set_images(dataset.values[:PREVIEW_IMAGES])
        elif modality == "motions":
            n, c, t = dataset.values.shape
            self.info.setText(f"<b>{dataset.name}</b>: {n} clips × {dataset.num_joints} joints × {t} frames "
                              f"at {dataset.fps:g} fps<br><small>{self._source(dataset.source)}</small>")
            clip = dataset.to_positions(dataset.values[:1])[0]  # [T, J, 3]
            frames = clip[motion_thumbnail_frames(t)][:, None]  # [K, 1, J, 3]: K figures of one frame each
            self.motion_preview.set_motions(frames, dataset.skeleton.parents, dataset.fps, animate=False,
                                            heading=travel_heading(clip))
        else:
            n, c, p = dataset.values.shape
            a, b = dataset.domain
            self.info.setText(f"<b>{dataset.name}</b>: {n} curves × {c} channel{'s' * (c > 1)} × {p} points "
                              f"on [{a:g}, {b:g}]; suggested length scale {dataset.default_length_scale:g}"
                              f"<br><small>{self._source(dataset.source)}</small>")
            self.preview.set_curves(np.asarray(dataset.grid), dataset.values)
        self._select(spec)

    def _source(self, text: str) -> str:
        """The dataset's source as shown (HTML-escaped), shortened to about two lines of the panel; the
        whole text is the label's tooltip (long sources, e.g. cmu07's clip list, pushed the preview out)."""
        from html import escape

        self.info.setToolTip(text if len(text) > SOURCE_CHARS else "")
        return escape(text if len(text) <= SOURCE_CHARS else text[: SOURCE_CHARS - 1].rstrip() + "…")

    def show_error(self, spec: str, message: str) -> None:
        self.error.setText(f"Could not load {Path(spec).name}: {message}")
        self.error.setVisible(True)
        self.info.setText("The previous dataset stays in use." if self.spec else "No dataset loaded")

    def _select(self, spec: str) -> None:
        index = self.combo.findData(spec)
        self.combo.setCurrentIndex(max(0, index))  # a file shows as "choose…"

    # -- session -----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"spec": self.spec, "n_points": self.n_points()}

    def set_state(self, state: dict[str, Any]) -> None:
        spec = state.get("spec")
        self.points.blockSignals(True)
        self.points.setValue(int(state.get("n_points") or 0))
        self.points.blockSignals(False)
        if spec:
            self.request(str(spec))
