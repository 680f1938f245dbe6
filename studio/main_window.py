"""The main window: docks around the live trajectory view, wired to the job runners.

The central area is a tab widget (its bar hidden while it holds one tab): the trajectory view,
and any session added with :meth:`MainWindow.add_central_tab` (the restoration session).

Two runners: ``jobs`` for compute (train, sample, export, save) whose progress the status bar
shows and the shortcuts control, ``io_jobs`` for quick loads (data, checkpoints, sample files)
so choosing data never waits for a training run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer, Slot
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
    QResizeEvent,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QDockWidget,
    QFrame,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QTabWidget,
    QWidget,
)

from studio import APPLICATION, ORGANIZATION, log
from studio.controller import Controller
from studio.dialogs import file_dialog
from studio.files import FileController
from studio.jobs import IDLE, PAUSED, JobRunner
from studio.panels.data_panel import DataPanel
from studio.panels.log_panel import LogPanel
from studio.panels.prior_panel import PriorPanel
from studio.panels.restoration_panel import RestorationPanel
from studio.panels.sampling_panel import SamplingPanel
from studio.panels.training_panel import TrainingPanel
from studio.status_bar import DeviceStatus, JobStatus
from studio.views.trajectory_view import TrajectoryView
from studio.warmup import freeze_startup_heap, warm_engine
from studio.workspace import Workspace

logger = logging.getLogger("studio")

OPEN_FILTER = ("Everything HDM Studio opens (*.json *.h5 *.hdf5 *.safetensors *.csv *.txt *.tsv *.ts *.arff "
               "*.npy *.npz);;Projects (*.json);;Sample files (*.h5 *.hdf5);;Checkpoints (*.safetensors);;"
               "Curve files (*.csv *.txt *.tsv *.ts *.arff *.npy *.npz *.h5 *.hdf5);;All files (*)")
DOCK_MIN_WIDTH = 260  # a dock may be squeezed to this (its panel then scrolls sideways)
WARM_UP_AFTER_SHOW_MS = 100  # time for the window's first paint before the GUI thread warms the engine
RESTORE_MIN_WIDTH = 700  # the Restore tab's least comfortable width: narrower, the side docks make room for it


class MainWindow(QMainWindow):
    """HDM Studio's window. ``settings`` defaults to the user's QSettings (organisation "HDM Studio")."""

    def __init__(self, settings: QSettings | None = None, *, load_default_data: bool = True) -> None:
        super().__init__()
        self.engine_warm = False  # set by _warm_engine, run just after the window first shows
        self._warm_scheduled = False
        self.setWindowTitle(APPLICATION)
        self.setObjectName("MainWindow")
        self.resize(1560, 980)
        self.setAcceptDrops(True)
        self.settings = settings if settings is not None else QSettings(ORGANIZATION, APPLICATION)
        self.workspace = Workspace()
        self.jobs = JobRunner(self)
        self.io_jobs = JobRunner(self)

        self.log_panel = LogPanel(self)
        self.log_bridge = log.LogBridge(self)
        self.log_bridge.message.connect(self.log_panel.append)
        log.install(self.log_bridge)

        self.view = TrajectoryView(self)
        self.central_tabs = QTabWidget(self)
        self.central_tabs.setDocumentMode(True)
        self.central_tabs.tabBar().setAutoHide(True)
        self.central_tabs.addTab(self.view, "Trajectory")
        self.setCentralWidget(self.central_tabs)
        self.data_panel = DataPanel(self)
        self.prior_panel = PriorPanel(self)
        self.training_panel = TrainingPanel(self)
        self.sampling_panel = SamplingPanel(self)
        self.docks = {
            "data": self._dock("Data", self.data_panel, Qt.DockWidgetArea.LeftDockWidgetArea),
            "prior": self._dock("Prior and equation", self.prior_panel, Qt.DockWidgetArea.LeftDockWidgetArea),
            "sampling": self._dock("Sampling", self.sampling_panel, Qt.DockWidgetArea.RightDockWidgetArea),
            "training": self._dock("Training", self.training_panel, Qt.DockWidgetArea.RightDockWidgetArea),
            "log": self._dock("Log", self.log_panel, Qt.DockWidgetArea.BottomDockWidgetArea),
        }
        d = self.docks
        horizontal, vertical = Qt.Orientation.Horizontal, Qt.Orientation.Vertical
        self.resizeDocks([d["data"], d["sampling"]], [380, 460], horizontal)
        self.resizeDocks([d["log"]], [130], vertical)
        self.resizeDocks([d["data"], d["prior"]], [330, 560], vertical)
        self.resizeDocks([d["sampling"], d["training"]], [400, 400], vertical)

        self.job_status = JobStatus(self)
        self.device_status = DeviceStatus(self)
        self.statusBar().addWidget(self.job_status, 1)
        self.statusBar().addPermanentWidget(self.device_status)

        self.error_box = QMessageBox(self)
        self.error_box.setIcon(QMessageBox.Icon.Warning)
        self.error_box.setWindowModality(Qt.WindowModality.NonModal)
        self.controller = Controller(self)
        self.restoration_panel = RestorationPanel(self.jobs, self, device=self.device_status.device(),
                                                 models=self.workspace.models)
        self.device_status.device_changed.connect(self.restoration_panel.set_device)  # every compute job follows it
        self.sampling_panel.checkpoint_file_added.connect(self.restoration_panel.offer_checkpoint)
        self.add_central_tab("Restore", self.restoration_panel)
        self._docks_lent: list[QDockWidget] = []  # side docks hidden while the Restore tab is shown
        for dock in self.docks.values():  # shown or closed from the View menu meanwhile: the user's again
            dock.toggleViewAction().triggered.connect(
                lambda _checked=False, d=dock: self._docks_lent.remove(d) if d in self._docks_lent else None)
        self.central_tabs.currentChanged.connect(self._make_room_for_restore)
        self.files = FileController(self)
        self._build_actions()
        self._restore_layout()
        self.controller.start()
        self.files.start(load_default_data=load_default_data)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt override
        """The first time: the window paints first, then the engine's one-off costs are paid (see
        :mod:`studio.warmup`); paid before, they kept the window from appearing for about 2 s."""
        super().showEvent(event)
        if not self._warm_scheduled:
            self._warm_scheduled = True
            QTimer.singleShot(WARM_UP_AFTER_SHOW_MS, self, self._warm_engine)

    def _warm_engine(self) -> None:
        seconds = warm_engine()
        freeze_startup_heap()
        self.engine_warm = True
        logger.debug("engine warmed up in %.2f s", seconds)

    # -- construction ------------------------------------------------------------------------
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.split()[0].lower()}")
        scroll = QScrollArea(dock)  # small screens: a panel scrolls instead of forcing the window's size
        scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # its panel's fields take the focus, not the frame
        scroll.setWidget(widget)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        bar = scroll.verticalScrollBar().sizeHint().width()
        # Narrower than its panel only when squeezed (then it scrolls sideways too): the panels' own
        # minimums (about 370 and 450 px) made the window at least 1530 px wide, more than a laptop's screen.
        scroll.setMinimumWidth(min(widget.minimumSizeHint().width() + bar, DOCK_MIN_WIDTH))
        dock.setWidget(scroll)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, dock)
        return dock

    def add_central_tab(self, title: str, widget: QWidget) -> int:
        """Add a session beside the trajectory view as a tab of the central area; returns its index."""
        return self.central_tabs.addTab(widget, title)

    def _action(self, text: str, shortcut: QKeySequence | str | None, slot, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if tip:
            action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        c = self.controller
        self.actions_by_name = {
            "open": self._action("&Open…", QKeySequence.StandardKey.Open, self.choose_open,
                                 "Open a project, sample file, checkpoint or curve file"),
            "import": self._action("&Import data…", None, self.data_panel.choose_file),
            "save": self._action("&Save project", QKeySequence.StandardKey.Save, self.save_project_clicked),
            "save_as": self._action("Save project &as…", "Ctrl+Shift+S", self.choose_project_path),
            "export": self._action("&Export samples…", "Ctrl+E", c.choose_export_path),
            "quit": self._action("&Quit", QKeySequence.StandardKey.Quit, self.close),
            # the visible session's run: Restore on the Restore tab, sampling elsewhere
            "run": self._action("&Sample / Restore", "Ctrl+R",
                                lambda: self.restoration_panel.start_restore()
                                if self.central_tabs.currentWidget() is self.restoration_panel else c.start_sampling(),
                                "Sample with the live trajectory (on the Restore tab: restore)"),
            "train": self._action("&Train", "Ctrl+T", c.start_training, "Train on the current data"),
            "pause": self._action("&Pause / resume", "Ctrl+P", self.jobs.toggle_pause),
            "cancel": self._action("&Cancel", "Esc", c.cancel_current),
            "reset": self._action("&Reset layout", None, self.reset_layout),
        }
        a = self.actions_by_name
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        for key in ("open", "import", "save", "save_as", "export"):
            file_menu.addAction(a[key])
        file_menu.addSeparator()
        file_menu.addAction(a["quit"])
        run_menu = bar.addMenu("&Run")
        for key in ("run", "train", "pause", "cancel"):
            run_menu.addAction(a[key])
        view_menu = bar.addMenu("&View")
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        view_menu.addAction(a["reset"])

    # -- layout persistence ------------------------------------------------------------------
    def _restore_layout(self) -> None:
        self._default_state = self.saveState()
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)
        device = self.settings.value("device")
        if isinstance(device, str):
            self.device_status.set_device(device)

    @Slot(int)
    def _make_room_for_restore(self, _index: int) -> None:
        """On a narrow window (1280 px with both side columns leaves the Restore tab about 430 px, where its
        controls and tiles were cut) the side docks, which the tab does not use, are hidden while it is shown,
        and shown again with any other tab; the View menu shows them at any time."""
        if self.central_tabs.currentWidget() is not self.restoration_panel:
            self._give_docks_back()
        elif self._docks_lent:
            if self._central_width_with(self._docks_lent) >= RESTORE_MIN_WIDTH:  # the window has grown
                self._give_docks_back()
        elif self.central_tabs.width() < RESTORE_MIN_WIDTH:
            self._docks_lent = [d for name, d in self.docks.items() if name != "log" and d.isVisible()
                                and not d.isFloating()]
            for dock in self._docks_lent:
                dock.hide()
            if self._docks_lent:
                logger.info("side panels hidden while the Restore tab is shown (the window is narrow); they come "
                            "back with the Trajectory tab, or from the View menu")

    def _central_width_with(self, docks: list[QDockWidget]) -> int:
        """The central area's width were the hidden ``docks`` shown again (at their last widths)."""
        width = self.central_tabs.width()
        for area in (Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea):
            width -= max((d.width() for d in docks if self.dockWidgetArea(d) == area), default=0)
        return width

    def _give_docks_back(self) -> None:
        for dock in self._docks_lent:
            dock.show()
        self._docks_lent = []

    def save_layout(self) -> None:
        self._give_docks_back()  # the layout saved is the user's, not the Restore tab's
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("device", self.device_status.device())
        self.settings.sync()

    @Slot()
    def reset_layout(self) -> None:
        self.restoreState(self._default_state)
        for dock in self.docks.values():
            dock.setVisible(True)

    # -- files -------------------------------------------------------------------------------
    @Slot()
    def choose_open(self) -> None:
        self._dialog = file_dialog(self, "Open", self.open_path, name_filter=OPEN_FILTER,
                                   directory=str(self.settings.value("paths/last_dir", "")))

    @Slot(str)
    def open_path(self, path: str) -> None:
        """Open any file the studio understands (dispatch on its type)."""
        if path:
            self.settings.setValue("paths/last_dir", str(Path(path).parent))
            self.files.open_path(Path(path))

    @Slot()
    def save_project_clicked(self) -> None:
        if self.workspace.project_path:
            self.files.save_project(self.workspace.project_path)
        else:
            self.choose_project_path()

    @Slot()
    def choose_project_path(self) -> None:
        self._dialog = file_dialog(self, "Save project", self.files.save_project, name_filter="Projects (*.json)",
                                   directory=str(self.settings.value("paths/last_dir", "")), save_suffix="json")

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if files:
            event.acceptProposedAction()
            self.open_path(files[0])

    # -- feedback ----------------------------------------------------------------------------
    def show_error(self, title: str, message: str) -> None:
        """A one-line error in a (non-blocking) dialog and in the log."""
        logger.error(f"{title}: {message}")
        self.error_box.setWindowTitle(f"{APPLICATION}: {title}")
        self.error_box.setText(message)
        self.error_box.show()
        self.error_box.raise_()

    @property
    def compute_busy(self) -> bool:
        """A compute job runs, or a training run in child processes."""
        return self.jobs.busy or self.controller.child.running

    def sync_controls(self) -> None:
        child = self.controller.child
        state = child.state if child.running else self.jobs.state
        current = "train" if child.running else self.jobs.current.name if self.jobs.current else ""
        if current != "train" and self.workspace.modality:  # a run keeps its modality's panel until it ends
            self.training_panel.set_modality(self.workspace.modality)
        self.training_panel.set_job_state(state, training=current == "train",
                                          has_trainer=bool(self.workspace.training.trainer is not None
                                                           and self.workspace.training.trainer.step_count),
                                          pausable=not child.running)
        self.sampling_panel.set_job_state(state, sampling=current == "sample")
        a = self.actions_by_name
        a["run"].setEnabled(state == IDLE)
        a["train"].setEnabled(state == IDLE)
        a["pause"].setEnabled(state in ("running", PAUSED) and not child.running)
        a["cancel"].setEnabled(state in ("running", PAUSED))
        a["export"].setEnabled(state == IDLE and self.workspace.has_samples)

    def session_sections(self) -> dict[str, dict[str, Any]]:
        return {"data": self.data_panel.state(), "prior": self.prior_panel.state(),
                "model": self.training_panel.state(), "sampler": self.sampling_panel.state(),
                "export": self.sampling_panel.export_settings()}

    # -- shutdown ----------------------------------------------------------------------------
    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if event.size().width() > event.oldSize().width() > 0:
            QTimer.singleShot(0, self.widen_squeezed_docks)
        restore = self._docks_lent or self.central_tabs.currentWidget() is self.restoration_panel
        if restore and event.size().width() != event.oldSize().width():  # on the Restore tab: measure the room again
            QTimer.singleShot(0, lambda: self._make_room_for_restore(self.central_tabs.currentIndex()))

    @Slot()
    def widen_squeezed_docks(self) -> None:
        """Give the side columns their panels' width back once the window has room again.

        Docks may be squeezed below their panel's width on a narrow window (the panel scrolls sideways);
        Qt leaves them that narrow when the window grows, and the layout saved on close kept it.
        """
        columns = [d for d in (self.docks["data"], self.docks["sampling"]) if d.isVisible() and not d.isFloating()]
        wants = [d.widget().widget().minimumSizeHint().width() + d.widget().verticalScrollBar().sizeHint().width()
                 for d in columns]
        if any(d.width() < want for d, want in zip(columns, wants, strict=True)):
            self.resizeDocks(columns, [max(d.width(), want) for d, want in zip(columns, wants, strict=True)],
                             Qt.Orientation.Horizontal)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        self.save_layout()
        self.view.stop_playing()
        self.device_status.timer.stop()
        self.controller.child.shutdown()
        for runner in (self.jobs, self.io_jobs):
            if not runner.shutdown(15_000):
                logger.warning("a worker did not stop within 15 s")
        log.uninstall()
        super().closeEvent(event)
