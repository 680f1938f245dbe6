"""The compute of every journey (curves, images, motions): train, sample, export, evaluate; results land
in the views.

The controller owns no widgets; it connects the main window's panels to the ``jobs`` runner
and keeps the :class:`~studio.workspace.Workspace` up to date (on the GUI thread only).
Loading files is :mod:`studio.files`' concern.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, QStandardPaths, Slot
from PySide6.QtWidgets import QFileDialog

from engine.errors import ConfigError, HDMError
from studio import APPLICATION
from studio import engine_jobs as ej
from studio.child_training import ChildTraining, new_run_dir
from studio.dialogs import file_dialog
from studio.jobs import PAUSED
from studio.panels.sampling_panel import EXPORT_FOR, EXPORT_FORMATS
from studio.workspace import TRAINED

if TYPE_CHECKING:
    from studio.main_window import MainWindow

logger = logging.getLogger("studio")
DEFAULT_CHECKPOINT = "quadratic"  # offered first when bundled
EXPORT_FILTERS = {"h5": "HDF5 (*.h5)", "csv": "CSV (*.csv)", "png": "A new folder for the PNG files (*)",
                  "bvh": "A new folder for the BVH files (*)"}
TITLES = {"train": "Training", "sample": "Sampling", "export": "Export", "evaluate": "Evaluation",
          "save_checkpoint": "Saving checkpoint", "restoration_item": "Loading the item", "restore": "Restoration",
          "load_data": "Loading data", "load_model": "Loading the checkpoint", "open_hdf5": "Opening the samples",
          "load_run": "Loading the trained run"}


def diverged(losses: list[float]) -> bool:
    """Whether a run's loss went non-finite or ended far (100×) above where it started: its model is not usable."""
    if not losses:
        return False
    first, final = losses[0], float(np.mean(losses[-50:]))
    return not np.isfinite(final) or (np.isfinite(first) and final > 100 * abs(first))


class Controller(QObject):
    """Connects the panels of ``window`` to its job runners."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.w = window
        self.ws = window.workspace
        self._sample_key: str | None = None
        self._sample_settings: dict[str, Any] = {}
        self._refusal = ej.SampleRefusal()  # why the running sample job refused its model, if it did
        self._sample_cached = True  # whether the running sample job's model goes into the checkpoints' cache
        self._last_loss: float | None = None
        self._trained_source = TRAINED
        self._dialog: QFileDialog | None = None
        w = window
        w.training_panel.start_requested.connect(self.start_training)
        w.training_panel.pause_toggled.connect(w.jobs.toggle_pause)
        w.training_panel.cancel_requested.connect(self.cancel_current)
        w.training_panel.save_requested.connect(self.save_checkpoint)
        w.sampling_panel.sample_requested.connect(self.start_sampling)
        w.sampling_panel.seed_requested.connect(self.sample_seed)
        w.sampling_panel.cancel_requested.connect(self.cancel_current)
        w.sampling_panel.export_requested.connect(self.choose_export_path)
        w.sampling_panel.evaluate_requested.connect(self.evaluate)
        w.sampling_panel.highlight_requested.connect(w.view.highlight_seed)
        jobs = w.jobs
        jobs.started.connect(self._on_started)
        jobs.progress.connect(self._on_progress)
        jobs.preview.connect(self._on_preview)
        jobs.message.connect(self._on_message)
        jobs.finished.connect(self._on_finished)
        jobs.failed.connect(self._on_failed)
        jobs.cancelled.connect(self._on_cancelled)
        jobs.state_changed.connect(self._on_state)
        self.child = ChildTraining(self)  # training in several processes
        self.child.progress.connect(self._on_child_progress)
        self.child.preview.connect(self._on_child_preview)
        self.child.output.connect(self._on_child_output)
        self.child.finished.connect(self._on_child_finished)
        self.child.failed.connect(self._on_child_failed)
        self.child.cancelled.connect(self._on_child_cancelled)
        self.child.state_changed.connect(lambda _state: self.w.sync_controls())

    def start(self) -> None:
        from engine import api

        paths = dict(api.list_checkpoints())
        bundled = sorted(paths, key=lambda name: name != DEFAULT_CHECKPOINT)
        self.w.sampling_panel.set_bundled({name: paths[name] for name in bundled})
        if bundled:
            self.w.sampling_panel.select_checkpoint(bundled[0])
            self.w.view.show_message(f"Press Sample (Ctrl+R) to draw from the bundled '{bundled[0]}' model")
        else:
            self.w.view.show_message("No bundled checkpoint found in assets/checkpoints.\n"
                                     "Train a model in the Training panel (Ctrl+T)\n"
                                     "or open a .safetensors file (Ctrl+O).")
            logger.info("No bundled checkpoint found in assets/checkpoints: train a model in the Training "
                        "panel (Ctrl+T) or open a .safetensors file (Ctrl+O)")
        self.w.sync_controls()

    # -- training ----------------------------------------------------------------------------
    @Slot()
    def start_training(self) -> None:
        from engine.config import RunConfig

        if self.w.compute_busy:
            return
        if self.ws.dataset is None:
            self.w.show_error("Training", "choose a dataset first (Data panel)")
            return
        prior, panel = self.w.prior_panel, self.w.training_panel
        modality = self.ws.modality
        data: dict[str, Any] = {"spec": str(self.ws.dataset_spec), "modality": modality}
        sections: dict[str, Any] = prior.image_config() if modality == "images" else {
            "noise": prior.noise_config(), "equation": prior.equation_config()}
        if modality == "functions":
            data["n_points"] = self.w.data_panel.n_points()
        try:
            config = RunConfig().replace(data=data, model=panel.model_config(), train=panel.train_config(),
                                         **sections)
        except ConfigError as exc:
            self.w.show_error("Training", str(exc))
            return
        processes = panel.processes()
        if processes > 1 and config.train.batch_size % processes:
            self.w.show_error("Training", f"batch {config.train.batch_size} does not split over {processes} "
                              f"processes: make the batch a multiple of {processes} or use 1 process")
            return
        if self.ws.training.trainer is not None and self.ws.training.trainer.step_count:
            logger.info("a new run replaces the model trained earlier in this session (Save… keeps a model)")
        self.ws.training = ej.TrainHandle()
        self.ws.models.pop(TRAINED)
        self._withdraw_trained()
        self._trained_source = TRAINED
        self._last_loss = None
        panel.begin(processes)
        if not self.ws.has_samples:
            self.w.view.show_message("Training… sample from the model (Ctrl+R) when it is done or cancelled")
        if processes > 1:
            self._start_child(config, processes)
            return
        self.w.jobs.submit(ej.train_job(config, self.ws.dataset, self.ws.training,
                                        device=self.w.device_status.device(),
                                        preview_every=panel.preview_every()))

    def runs_folder(self) -> Path:
        """Where runs in child processes go: the setting ``paths/runs``, else the user's data folder."""
        configured = self.w.settings.value("paths/runs", "")
        if configured:
            return Path(str(configured))
        base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppLocalDataLocation)
        return Path(base or Path.home() / ".hdm-studio") / "runs"

    def _start_child(self, config: Any, processes: int) -> None:
        """Train ``config`` in ``processes`` data-parallel processes (a child torchrun); follow its progress."""
        device = self.w.device_status.device()
        cores = os.cpu_count() or 1
        if not device.startswith("cuda") and processes > cores:
            logger.warning(f"{processes} training processes on {cores} CPU cores: they will share the cores "
                           "(allowed with gloo, but slower than fewer processes)")
        # a checkpoint about ten times per run, so Cancel keeps the latest one (never half-written)
        config = config.replace(train={"checkpoint_every": self.w.training_panel.preview_every()})
        try:
            run_dir = new_run_dir(self.runs_folder().expanduser().resolve())
            command = self.child.start(config, processes=processes, run_dir=run_dir, device=device,
                                       modality=self.ws.modality)
        except (HDMError, OSError) as exc:
            self.w.training_panel.show_result(f"Training failed: {exc}")
            self.w.show_error("Training", str(exc))
            return
        logger.info(f"training in {processes} processes into {run_dir}: {' '.join(command)}")
        self._on_started("train", f"training in {processes} processes")

    @Slot(str)
    def save_checkpoint(self, directory: str) -> None:
        trainer = self.ws.training.trainer
        if not directory:
            return
        if trainer is None or trainer.step_count == 0:
            self.w.show_error("Saving checkpoint", "nothing to save: train a model first")
            return
        try:  # before any write: the folder dialog asks nothing when the folder holds another run
            trainer.check_save_folder(directory)
        except ConfigError as exc:
            self.w.show_error("Saving checkpoint", str(exc))
            return
        self.w.jobs.submit(ej.save_checkpoint_job(trainer, directory))

    def _withdraw_trained(self) -> None:
        """Take the session's trained model out of the checkpoint list (a new run replaces it; it
        comes back, as the new run's, once that has trained a step)."""
        panel = self.w.sampling_panel
        was_selected = panel.checkpoint_key() == TRAINED
        panel.modalities.pop(TRAINED, None)
        index = panel.checkpoint.findData(TRAINED)
        if index < 0:
            return
        panel.checkpoint.removeItem(index)
        if was_selected:  # the combo fell on its neighbour: prefer one of the data's modality, and say so
            keys = [panel.checkpoint.itemData(i) for i in range(panel.checkpoint.count())]
            same = [k for k in keys if panel.modalities.get(k) == self.ws.modality]
            if same:
                panel.select_checkpoint(same[0])
            if panel.checkpoint_key():
                logger.info(f"the model trained earlier is replaced by the new run; Sampling now uses "
                            f"{panel.checkpoint.currentText()} until the new run has trained a step")

    def _offer_trained(self, trainer: Any, note: str) -> None:
        if trainer is None or trainer.step_count == 0:
            return
        self.ws.models.pop(TRAINED)
        label = f"trained here: {trainer.dataset.name}, {trainer.step_count} steps{note}"
        self.w.sampling_panel.add_checkpoint(TRAINED, label, modality=trainer.modality)
        if not self.ws.has_samples:
            self.w.view.show_message("Press Sample (Ctrl+R) to draw from the model trained here")

    # -- sampling ----------------------------------------------------------------------------
    @Slot()
    @Slot(dict)
    def start_sampling(self, settings: dict[str, Any] | None = None, model: Any = None) -> None:
        """Sample with ``settings`` (default: the panel's) from their checkpoint, or from ``model``, which
        then stays out of the checkpoints' cache (it may no longer be the one the checkpoint names)."""
        if self.w.compute_busy:
            return
        s = settings or self.w.sampling_panel.settings()
        key = s.get("checkpoint")
        if not key:
            self.w.show_error("Sampling", "no checkpoint: train a model (Training panel) or open a "
                              ".safetensors file")
            return
        models = self.ws.models
        cached = model if model is not None else models.get(key) if key == TRAINED else None
        trainer = self.ws.training.trainer
        device = self.w.device_status.device()
        if model is None and key == TRAINED and (trainer is None or trainer.step_count == 0):
            self.w.show_error("Sampling", "the model trained in this session is gone; train again")
            return

        def get_model():  # on the worker thread
            if cached is not None:
                return cached
            if key == TRAINED:  # it names the file that holds it (saved at this step, or its run's), else none
                return trainer.model()
            return models.load(key, device)

        self._sample_key = key
        self._sample_settings = dict(s)
        self._sample_cached = model is None
        modality = getattr(model, "modality", None) or self.w.sampling_panel.modalities.get(key) \
            or getattr(cached or models.get(key), "modality", None)
        self.w.view.begin_live(np.zeros(0), 1.0, modality=modality)
        # a sample file's seed: also what the file records beyond the panel's settings (files.recorded_settings),
        # and the model must be the file's (its sha256)
        self._refusal = ej.SampleRefusal()
        self.w.jobs.submit(ej.sample_job(get_model, sampler=s["sampler"], steps=int(s["steps"]),
                                         num=int(s["num_samples"]), seed=int(s["seed"]),
                                         grid_size=s.get("grid_size"), device=device, prior=s.get("prior"),
                                         preview=s.get("preview") or "state", spacing=s.get("spacing"),
                                         grid=s.get("grid"), image_size=s.get("image_size"),
                                         expect_sha256=s.get("checkpoint_sha256"), refusal=self._refusal))

    @Slot(dict)
    def sample_seed(self, settings: dict[str, Any]) -> None:
        """The "Sample this seed" button: one sample with the shown samples' settings (``settings``) and model. Samples
        drawn here are redrawn by the very model that drew them, even where their checkpoint entry now holds
        another (a new training run); samples opened from a file, by the checkpoint the file names."""
        out = self.ws.outcome
        self.start_sampling(settings, model=out.model if out is not None else None)

    def _show_outcome(self, outcome: ej.SampleOutcome) -> None:
        r = outcome.result
        self.ws.outcome, self.ws.opened = outcome, None
        self.ws.sample_key, self.ws.sample_settings = self._sample_key, self._sample_settings
        modality = outcome.model.modality
        if self._sample_key and self._sample_cached:
            if self._sample_key == TRAINED:  # the others are in the cache since their job loaded them
                self.ws.models.put(TRAINED, outcome.model)
            self.w.sampling_panel.modalities[self._sample_key] = modality
        self.w.view.set_result(r.grid, r.samples, r.seeds, r.trajectory, r.trajectory_times, outcome.T,
                               modality=modality, skeleton=ej.model_skeleton(outcome.model))
        states = 0 if r.trajectory is None else len(r.trajectory)
        where = (f"{r.samples.shape[-2]}×{r.samples.shape[-1]} pixels, prior {r.settings.get('prior')}"
                 if modality == "images" else f"{r.grid.size} points")
        count = len(r.samples)
        text = (f"{count} sample{'s' if count != 1 else ''} ({modality}) on {where} · {r.settings['sampler']}, "
                f"{r.settings['steps']} steps ({r.settings['network_evaluations']} evaluations) · "
                f"{states} trajectory states")
        self.w.sampling_panel.show_samples([int(v) for v in r.seeds], text, modality=modality,
                                           settings=self.ws.sample_settings)
        logger.info(f"sampled {text}")

    # -- export ------------------------------------------------------------------------------
    @Slot()
    def choose_export_path(self) -> None:
        if not self.ws.has_samples:
            self.w.show_error("Export", "nothing to export: sample first or open a sample file")
            return
        fmt = self.w.sampling_panel.export_settings()["format"]  # one that applies to the samples shown
        self._dialog = file_dialog(self.w, "Export samples", self.export_to,
                                   directory=str(self.w.settings.value("paths/last_dir", "")),
                                   name_filter=EXPORT_FILTERS[fmt], save_suffix=fmt if fmt in ("h5", "csv") else "")

    @Slot(str)
    def export_to(self, path: str, fmt: str | None = None) -> bool:
        """Export the samples shown to ``path`` (format from the suffix, else the panel's; PNG and BVH: a folder)."""
        if not path or self.w.compute_busy:
            return False
        settings = self.w.sampling_panel.export_settings()
        suffix = Path(path).suffix.lower().lstrip(".")
        fmt = fmt or ("h5" if suffix in ("h5", "hdf5") else "csv" if suffix == "csv" else settings["format"])
        modality = self.w.sampling_panel.sample_modality()
        allowed = EXPORT_FOR.get(modality or "", EXPORT_FORMATS)
        if fmt not in allowed:  # e.g. a name ending .csv typed for images: say so here, not in the engine's terms
            self.w.show_error("Export", f"{EXPORT_FORMATS.get(fmt, fmt)} does not apply to the samples shown "
                              f"({modality}): export them as {' or '.join(EXPORT_FORMATS[f] for f in allowed)}")
            return False
        from engine.io import CSV_SUFFIXES, HDF5_SUFFIXES, check_output_name

        try:  # the name says the format, as hdm requires: no HDF5 file named .tsv (read back as curves), no
            # folder of PNG files named grid.png
            if fmt in ("h5", "csv"):
                check_output_name(path, suffixes=HDF5_SUFFIXES if fmt == "h5" else CSV_SUFFIXES,
                                  what="an HDF5 sample file" if fmt == "h5" else "a CSV file")
            else:
                check_output_name(path, folder=True)
        except HDMError as exc:
            self.w.show_error("Export", str(exc))
            return False
        out = self.ws.outcome
        try:
            if out is not None:
                extra = {"studio": {"sampling": self.ws.sample_settings, "checkpoint": self.ws.sample_key,
                                    "application": APPLICATION}}
                job = ej.export_job(path, fmt, result=out.result, model=out.model,
                                    include_trajectory=settings["trajectory"], extra=extra)
            elif self.ws.opened is not None:
                job = ej.export_job(path, fmt, source=self.ws.opened.path, include_trajectory=settings["trajectory"])
            else:
                self.w.show_error("Export", "nothing to export: sample first or open a sample file")
                return False
        except HDMError as exc:
            self.w.show_error("Export", str(exc))
            return False
        return self.w.jobs.submit(job)

    @Slot()
    def evaluate(self) -> bool:
        """Compare the samples shown with the held-out split of the data their model learnt."""
        if self.w.compute_busy:
            return False
        out, opened = self.ws.outcome, self.ws.opened
        if out is not None:
            spec = out.model.config.data.spec
            job = ej.evaluate_job(spec, result=out.result, model=out.model)
        elif opened is not None:
            run = opened.config.get("run", {}) if isinstance(opened.config, dict) else {}
            spec = run.get("data", {}).get("spec") if isinstance(run.get("data"), dict) else None
            if not spec:
                self.w.show_error("Evaluation", f"{opened.path}: its config names no training data")
                return False
            job = ej.evaluate_job(spec, source=opened.path)
        else:
            self.w.show_error("Evaluation", "nothing to evaluate: sample first or open a sample file")
            return False
        if Path(spec).expanduser().is_file():  # the engine's report says so too (``data.held_out``)
            text = f"Evaluating against {Path(spec).name}, the training file itself (a file has no held-out split)…"
        else:
            text = f"Evaluating against the held-out split of {spec}…"
        self.w.sampling_panel.show_evaluation(text)
        return self.w.jobs.submit(job)

    # -- compute runner feedback -------------------------------------------------------------
    @Slot()
    def cancel_current(self) -> None:
        if self.child.running:
            self.child.cancel()
        else:
            self.w.jobs.cancel()

    @staticmethod
    def _running_title(name: str, title: str) -> str:
        """What the status bar calls a running job: "Sampling", not the job's short label "sample"
        (loaders keep theirs: it names the file)."""
        return TITLES[name] if name in ("train", "sample", "evaluate", "export", "restore") else title

    @Slot(str, str)
    def _on_started(self, name: str, title: str) -> None:
        self.w.job_status.begin(self._running_title(name, title))
        logger.info(f"{title} started")

    @Slot(str, int, int, float)
    def _on_progress(self, name: str, step: int, total: int, eta: float) -> None:
        self.w.job_status.update_progress(step, total, eta)
        if name == "train":
            self.w.training_panel.show_progress(step, total, eta, self._last_loss)

    @Slot(str, object)
    def _on_preview(self, name: str, payload: Any) -> None:
        if name == "train":
            if len(payload["losses"]):
                self._last_loss = float(payload["losses"][-1])
            self.w.training_panel.show_preview(payload)
        elif name == "sample":
            self.w.view.show_frame(payload)

    @Slot(str, str)
    def _on_message(self, name: str, text: str) -> None:
        self.w.log_panel.append("info", "engine", text)

    @Slot(str, object)
    def _on_finished(self, name: str, result: Any) -> None:
        self.w.job_status.end(f"{TITLES.get(name, name)} finished", done=True)
        if name == "train":
            trainer = result
            final = float(np.mean(trainer.losses[-50:]))
            steps = f"{trainer.step_count} step{'s' if trainer.step_count != 1 else ''}"
            failed = diverged(trainer.losses)
            if failed:
                lr = trainer.config.train.lr
                text = (f"Training diverged: the loss rose from {trainer.losses[0]:.3g} to {final:.3g} in {steps}, "
                        f"so the model is not usable. Train again with a smaller learning rate (LR is {lr:g}; "
                        f"try {lr / 10:g}).")
                logger.warning(text)
            else:
                text = (f"Trained {steps} in {trainer.elapsed:.1f} s; final loss {final:.4g}. "
                        "Sample from it in the Sampling panel, or Save… it.")
                logger.info(text)
            self.w.training_panel.show_result(text)
            self._offer_trained(trainer, " (diverged)" if failed else "")
        elif name == "sample":
            self._show_outcome(result)
        elif name == "export":
            logger.info(f"exported {result}")
            self.w.job_status.end(f"Exported {Path(result).name}", done=True)
        elif name == "evaluate":
            text = ej.summarize_evaluation(result)
            self.w.sampling_panel.show_evaluation(text)
            logger.info(f"evaluation {text}")
        elif name == "save_checkpoint":
            self._trained_source = str(result)
            self.ws.models.pop(TRAINED)
            self.ws.models.forget(str(result))  # under any key naming the file, for Sampling and Restore alike
            logger.info(f"saved checkpoint {result}")
            label = f"{Path(result).parent.name}/{Path(result).name}"
            self.w.sampling_panel.add_checkpoint(str(result), label, select=False)
        self.w.sync_controls()

    @Slot(str, str, str)
    def _on_failed(self, name: str, message: str, details: str) -> None:
        title = TITLES.get(name, name)
        self.w.job_status.end(f"{title} failed")
        self.w.show_error(title, message)
        if details:
            self.w.log_panel.append("error", "studio", details)
        if name == "train":
            self.w.training_panel.show_result(f"Training failed: {message}")
            self._offer_trained(self.ws.training.trainer, " (failed)")
        elif name == "sample":
            if self._refusal.reason and self.ws.has_samples and self.w.view.show_last_result():
                # "Sample this seed" refused another model than the file's: the samples stay, the button goes off
                self.ws.sample_key, self.ws.sample_settings = None, {}
                self.w.sampling_panel.refuse_resample(self._refusal.reason)
                self.w.view.time_label.setText("not redrawn: the checkpoint holds another model now")
            else:
                self.w.view.show_message(f"Sampling failed: {message}")
        elif name == "evaluate":
            self.w.sampling_panel.show_evaluation(f"Evaluation failed: {message}")
        self.w.sync_controls()

    @Slot(str, str)
    def _on_cancelled(self, name: str, message: str) -> None:
        self.w.job_status.end(message[:1].upper() + message[1:])
        logger.info(message)
        if name == "train":
            trainer = self.ws.training.trainer
            note = ""
            if trainer is not None and trainer.step_count:
                note = " The model so far can be sampled or saved."
                self._offer_trained(trainer, " (cancelled)")
            self.w.training_panel.show_result(message[:1].upper() + message[1:] + "." + note)
        elif name == "sample":
            # Export, "Sample this seed" and Highlight act on the last finished samples: show them again
            if self.ws.has_samples and self.w.view.show_last_result():
                self.w.view.time_label.setText("sampling cancelled · the previous samples are shown")
            else:
                self.w.view.time_label.setText("sampling cancelled")
        elif name == "evaluate":
            self.w.sampling_panel.show_evaluation("Evaluation cancelled.")
        self.w.sync_controls()

    # -- training in child processes -----------------------------------------------------------
    @Slot(int, int, float)
    def _on_child_progress(self, step: int, total: int, eta: float) -> None:
        self._on_progress("train", step, total, eta)

    @Slot(object)
    def _on_child_preview(self, payload: Any) -> None:
        self._on_preview("train", payload)

    @Slot(str, str)
    def _on_child_output(self, level: str, text: str) -> None:
        self.w.log_panel.append(level, "train", text)

    @Slot(object)
    def _on_child_finished(self, trainer: Any) -> None:
        self.ws.training.trainer = trainer  # as if trained here: sample from it, or Save… it
        self._on_finished("train", trainer)

    @Slot(str, str)
    def _on_child_failed(self, message: str, details: str) -> None:
        self._on_failed("train", message, details)

    @Slot(str, object)
    def _on_child_cancelled(self, message: str, trainer: Any) -> None:
        self.ws.training.trainer = trainer
        self._on_cancelled("train", message)

    @Slot(str)
    def _on_state(self, state: str) -> None:
        current = self.w.jobs.current
        if current is not None:
            self.w.job_status.set_paused(state == PAUSED, self._running_title(current.name, current.title))
        self.w.sync_controls()
