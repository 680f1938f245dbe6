"""Opening and saving: data, checkpoints, sample files and project files.

Loads run on the window's ``io_jobs`` runner (one at a time; while one runs, only the latest
request waits), so choosing data never waits for a training run. A bad file is reported plainly
(data: in the data panel and the log; anything else: in a dialog too) and the session carries on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, Slot

from engine.errors import HDMError
from studio import APPLICATION
from studio import engine_jobs as ej
from studio.jobs import Job
from studio.session import load_project, save_project
from studio.workspace import TRAINED

if TYPE_CHECKING:
    from studio.main_window import MainWindow

logger = logging.getLogger("studio")
DEFAULT_DATASET = "quadratic"
TITLES = {"load_model": "Loading checkpoint", "open_hdf5": "Opening sample file", "load_data": "Loading data",
          "check_model": "Checking the sample file's checkpoint"}


def recorded_settings(sf: Any, modality: str, sampling: dict[str, Any]) -> dict[str, Any]:
    """What a sample file records of how it was drawn beyond the Sampling panel's settings, for "Sample this
    seed" to redraw exactly its sample: the sampler's ``spacing`` (None: the sampler's default), the ``grid``
    points (functions, motions: the file's own, which may be no uniform grid; a list, JSON-ready), the
    ``image_size`` (images) and the ``checkpoint_sha256`` the model must have."""
    spacing = sampling.get("spacing")
    out: dict[str, Any] = {"spacing": spacing if isinstance(spacing, str) and spacing else None,
                           "checkpoint_sha256": sf.checkpoint_sha256 or None}
    if modality == "images":
        size = sampling.get("image_size")
        out["image_size"] = [int(v) for v in size] if isinstance(size, list | tuple) and len(size) == 2 else \
            [int(sf.samples.shape[-2]), int(sf.samples.shape[-1])]
    elif sf.grid is not None:
        out["grid"] = [float(v) for v in np.asarray(sf.grid, dtype=np.float64)]
    return out


def checkpoint_label(path: str | Path) -> str:
    """A checkpoint file's label in the list: ``<folder>/<file>`` (every run saves ``model.safetensors``),
    as the Training panel labels the checkpoints it saves; a bare name or a folder as it is."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.suffix and p.parent.name else p.name


class FileController(QObject):
    """Connects the window's file actions and panels to its ``io_jobs`` runner."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.w = window
        self.ws = window.workspace
        self._pending_io: tuple[Job, str, ej.OpenedFile | None] | None = None
        self._io_subject = ""
        self._io_opened: ej.OpenedFile | None = None  # what the running open_hdf5 job took its file for
        w = window
        w.data_panel.load_requested.connect(self.load_data)
        w.training_panel.load_requested.connect(self.load_checkpoint)
        w.sampling_panel.checkpoint_file_chosen.connect(self.load_checkpoint)
        w.io_jobs.finished.connect(self._on_io_finished)
        w.io_jobs.failed.connect(self._on_io_failed)
        w.io_jobs.cancelled.connect(lambda *_: self._next_io())
        w.io_jobs.message.connect(lambda _name, text: w.log_panel.append("info", "engine", text))

    def start(self, *, load_default_data: bool = True) -> None:
        if load_default_data and self.w.data_panel.spec is None:
            self.w.data_panel.request(DEFAULT_DATASET)

    # -- loads ---------------------------------------------------------------------------------
    def _submit_io(self, job: Job, subject: str, opened: ej.OpenedFile | None = None) -> None:
        if self.w.io_jobs.busy:
            self._pending_io = (job, subject, opened)  # only the latest request matters
            return
        self._io_subject, self._io_opened = subject, opened
        self.w.io_jobs.submit(job)

    def _next_io(self) -> None:
        if self._pending_io is not None:
            job, subject, opened = self._pending_io
            self._pending_io = None
            self._submit_io(job, subject, opened)

    @Slot(str, object)
    def load_data(self, spec: str, n_points: int | None = None) -> None:
        self._submit_io(ej.load_dataset_job(spec, n_points, modality=self.w.data_panel.modality_for(spec)), spec)

    @Slot(str)
    def load_checkpoint(self, path: str) -> None:
        if path:
            self._submit_io(ej.load_model_job(path, self.w.device_status.device()), path)

    def open_path(self, path: Path) -> None:
        suffix = path.suffix.lower()
        if suffix == ".json":
            self.load_project(str(path))
        elif suffix == ".safetensors":
            self.load_checkpoint(str(path))
        elif suffix in (".h5", ".hdf5"):
            opened = ej.OpenedFile()
            self._submit_io(ej.open_hdf5_job(path, self.w.data_panel.n_points(), opened), str(path), opened)
        else:
            self.w.data_panel.request(str(path))

    @Slot(str, object)
    def _on_io_finished(self, name: str, result: Any) -> None:
        subject = self._io_subject
        if name == "load_data":
            self._set_dataset(subject, *result)
        elif name == "open_hdf5":
            kind, value = result
            if kind == "samples":
                self._show_sample_file(value)
            else:
                self._set_dataset(subject, value, "functions")
        elif name == "check_model":  # the checkpoint a sample file names, read to compare its digest
            if subject not in self.ws.models:
                self.ws.models.put(subject, result)
            self._verify_recalled(subject)
        elif name == "load_model":
            self.ws.models.put(subject, result)
            self.w.sampling_panel.add_checkpoint(subject, checkpoint_label(subject), modality=result.modality)
            g = result.geometry
            size = f"{g.height}×{g.width} images" if result.modality == "images" else f"{len(g.grid)}-point grid"
            logger.info(f"loaded {result.modality} checkpoint {subject} ({result.config.model.name}, "
                        f"width {result.config.model.width}, {size})")
            if not self.ws.has_samples:
                self.w.view.show_message(f"Press Sample (Ctrl+R) to draw from {Path(subject).name}")
        self._next_io()

    @Slot(str, str, str)
    def _on_io_failed(self, name: str, message: str, details: str) -> None:
        subject = self._io_subject
        opened = self._io_opened.kind if self._io_opened is not None else ""
        if name == "check_model":  # the file's checkpoint cannot be read: its seeds cannot be redrawn
            if self.ws.opened is not None and self.ws.sample_key == subject:
                self._refuse_resample(f"the checkpoint the sample file names, {subject}, cannot be read ({message})")
            logger.warning(f"could not read {subject}, the checkpoint of the sample file shown: {message}")
        elif name == "load_data" or (name == "open_hdf5" and opened != "samples"):  # data to import
            self.w.data_panel.show_error(subject, message)
            logger.error(f"could not open {subject}: {message}")
        else:
            self.w.show_error(TITLES.get(name, name), message)
        if details:
            self.w.log_panel.append("error", "studio", details)
        self._next_io()

    def _set_dataset(self, spec: str, dataset: Any, modality: str) -> None:
        self.ws.dataset, self.ws.dataset_spec, self.ws.modality = dataset, spec, modality
        self.w.data_panel.show_dataset(spec, dataset, modality)
        if modality == "images":
            _, _, h, w = dataset.values.shape
            self.w.prior_panel.set_image_size(h, w, dataset.name, dataset.values[:8])
        else:
            self.w.prior_panel.set_grid(dataset.grid, dataset.default_length_scale, dataset.name)
        self.w.sync_controls()  # the Training panel follows the data, once any training run has ended
        shape = " × ".join(str(v) for v in np.shape(dataset.values)[1:])
        logger.info(f"data: {dataset.name}, {len(dataset)} {modality} of {shape}")

    def _show_sample_file(self, sf: Any) -> None:
        config = sf.config if isinstance(sf.config, dict) else {}
        modality = sf.modality if sf.modality in ("functions", "images", "motions") else "functions"
        skeleton = None
        if modality == "motions":
            motion = config.get("motion")
            if not isinstance(motion, dict) or "skeleton" not in motion:
                self.w.show_error("Opening sample file", f"{sf.path}: motion samples without a skeleton")
                return
            skeleton = ([int(p) for p in motion["skeleton"]["parents"]], float(motion.get("fps", 30.0)))
        expected = 4 if modality == "images" else 3
        if sf.samples.ndim != expected:
            self.w.show_error("Opening sample file", f"{sf.path}: {modality} samples must have {expected} "
                              f"dimensions, got shape {sf.samples.shape}")
            return
        grid = sf.grid if sf.grid is not None or modality == "images" else \
            np.arange(sf.samples.shape[-1], dtype=np.float64)
        self.ws.opened, self.ws.outcome = sf, None
        self.w.view.set_result(grid, sf.samples, sf.seeds, sf.trajectory, sf.trajectory_times,
                               modality=modality, skeleton=skeleton)
        studio = config.get("studio") if isinstance(config.get("studio"), dict) else {}
        sampling = config.get("sampling") if isinstance(config.get("sampling"), dict) else {}
        # the engine records the grid's size; the studio also whether it was the training grid
        chosen = studio.get("sampling", {})
        grid_size = chosen.get("grid_size") if "grid_size" in chosen else sampling.get("grid_size")
        recalled = self._recall_checkpoint(studio.get("checkpoint"), config.get("checkpoint"))
        self.w.sampling_panel.set_state({
            "sampler": sampling.get("sampler"), "steps": sampling.get("steps"),
            "seed": int(sf.seeds[0]) if len(sf.seeds) else None, "num_samples": int(len(sf.seeds)),
            "grid_size": grid_size, "prior": sampling.get("prior", chosen.get("prior")),
            "preview": chosen.get("preview")})
        # "Sample this seed" redraws with the file's checkpoint and settings, where that checkpoint is here (the
        # model trained in this session is not the one a file names: that one was replaced or is in another session)
        known = recalled is not None and recalled != TRAINED
        self.ws.sample_key = recalled if known else None
        self.ws.sample_settings = {**self.w.sampling_panel.settings(), **recorded_settings(sf, modality, sampling)} \
            if known else {}
        where = f"{sf.samples.shape[-2]}×{sf.samples.shape[-1]} pixels" if modality == "images" else \
            f"{grid.size} points"
        count = sf.num_samples
        spacing = f" ({sampling['spacing']} spacing)" if sampling.get("spacing") else ""
        text = (f"Opened {Path(sf.path).name}: {count} sample{'s' if count != 1 else ''} ({modality}) on {where}, "
                f"sampler {sampling.get('sampler')}, {sampling.get('steps')} steps{spacing}")
        self.w.sampling_panel.show_samples([int(s) for s in sf.seeds], text, modality=modality,
                                           settings=self.ws.sample_settings if known else None)
        logger.info(f"opened sample file {sf.path} (settings recalled)")
        if known and recalled is not None:
            if recalled in self.ws.models:
                self._verify_recalled(recalled)
            else:  # read it now, off the GUI thread, to compare its digest with the file's before any redraw
                self._submit_io(ej.check_model_job(recalled, self.w.device_status.device()), recalled)
        self.w.sync_controls()

    def _verify_recalled(self, key: str) -> None:
        """Refuse "Sample this seed" for the sample file shown where the model of ``key``, the checkpoint it
        recalled, is not the one the file records (another model now sits at that path or name)."""
        sf, model = self.ws.opened, self.ws.models.get(key)
        if sf is None or model is None or self.ws.sample_key != key:
            return  # another file or samples are shown now
        reason = ej.checkpoint_mismatch(model, sf.checkpoint_sha256, key)
        if reason:
            self._refuse_resample(reason)

    def _refuse_resample(self, reason: str) -> None:
        self.ws.sample_key, self.ws.sample_settings = None, {}
        self.w.sampling_panel.refuse_resample(reason)
        logger.warning(f"Sample this seed is off for {self.ws.opened.path if self.ws.opened else 'these samples'}: "
                       f"{reason}")

    def _recall_checkpoint(self, key: Any, source: Any) -> str | None:
        """Select the checkpoint a sample file names; returns its key (None where it is not here)."""
        panel = self.w.sampling_panel
        if isinstance(key, str) and panel.select_checkpoint(key):
            return key
        if isinstance(source, str) and source:
            from engine import api

            for name, path in api.list_checkpoints().items():
                if Path(source) == path and panel.select_checkpoint(name):
                    return name
            if Path(source).is_file():
                panel.add_checkpoint(source, checkpoint_label(source))
                return source
            logger.warning(f"the file's checkpoint {source} is not available here")
        return None

    # -- projects ----------------------------------------------------------------------------
    @Slot(str)
    def save_project(self, path: str) -> None:
        if not path:
            return
        sections = self.w.session_sections()
        sampler = sections.get("sampler", {})
        saved_as = getattr(self.w.controller, "_trained_source", TRAINED)  # where Save… put the trained model
        if sampler.get("checkpoint") == TRAINED and saved_as != TRAINED and Path(saved_as).is_file():
            sections["sampler"] = {**sampler, "trained_checkpoint": str(saved_as)}
        try:
            save_project(path, sections)
        except OSError as exc:
            self.w.show_error("Saving project", f"{path}: {exc.strerror or exc}")
            return
        self.ws.project_path = path
        self.w.setWindowTitle(f"{Path(path).stem} — {APPLICATION}")
        logger.info(f"saved project {path}")

    @Slot(str)
    def load_project(self, path: str) -> None:
        try:
            sections = load_project(path)
        except HDMError as exc:
            self.w.show_error("Opening project", str(exc))
            return
        w = self.w
        w.prior_panel.set_state(sections["prior"])
        w.training_panel.set_state(sections["model"])
        sampler = dict(sections["sampler"])
        key = sampler.get("checkpoint")
        notice = ""
        if key == TRAINED and w.sampling_panel.checkpoint.findData(TRAINED) < 0:
            sampler["checkpoint"], notice = self._trained_stand_in(sampler.get("trained_checkpoint"))
        elif isinstance(key, str) and key != TRAINED and Path(key).is_file():
            w.sampling_panel.add_checkpoint(key, checkpoint_label(key), select=False)
        w.sampling_panel.set_state(sampler)
        if notice:
            w.sampling_panel.notice.setText(f"<i>{notice}</i>")
            w.statusBar().showMessage(notice, 15_000)
        w.sampling_panel.set_export_state(sections["export"])
        w.data_panel.set_state(sections["data"])
        self.ws.project_path = path
        w.setWindowTitle(f"{Path(path).stem} — {APPLICATION}")
        logger.info(f"opened project {path}")

    def _trained_stand_in(self, saved: Any) -> tuple[str | None, str]:
        """The checkpoint to select for a project that chose the model trained in its session, which the
        project does not hold: the file that model was saved to (when the project names one that is
        here), else the one selected now, with a warning saying so. Returns (key, notice)."""
        panel = self.w.sampling_panel
        if isinstance(saved, str) and saved and Path(saved).is_file():
            panel.add_checkpoint(saved, checkpoint_label(saved), select=False)
            logger.info(f"the project's model, trained in the session that saved it, was saved as {saved}: "
                        "selected")
            return saved, ""
        index = panel.checkpoint.currentIndex()
        current = panel.checkpoint.itemText(index) if index >= 0 else "none"
        text = (f"The project sampled from the model trained in its session, which is not saved in the project; "
                f"selected instead: {current} (train again, or save the trained model before saving the project)")
        logger.warning(text)
        return panel.checkpoint_key(), text

