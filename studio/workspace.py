"""What the session holds between jobs: the data, the models, the latest samples."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from studio.engine_jobs import SampleOutcome, TrainHandle

TRAINED = "session:trained"  # the checkpoint key of the model trained in this session


class ModelCache:
    """The models read from checkpoints, one per checkpoint key (a bundled name, a file, or :data:`TRAINED`), shared by
    the Sampling panel and the Restore tab so a checkpoint is read once per session.

    A model lives on one device at a time: :meth:`load` moves it to the device asked for (in place, as
    ``HDMModel.to`` does), which is safe because every job that uses a model runs on the one compute runner, one
    at a time. Jobs load on their worker threads, the window reads and forgets on the GUI thread: every access
    takes the lock, and a checkpoint is read outside it, so the window never waits for a load.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, Any] = {}

    def load(self, key: str, device: str) -> Any:
        """The model of checkpoint ``key`` on ``device``, read from its checkpoint the first time (on this thread)."""
        with self._lock:
            model = self._models.get(key)
        if model is None:
            from engine import api

            model = api.load_model(key, device=device)
            with self._lock:
                model = self._models.setdefault(key, model)
        return model.to(device)

    def get(self, key: str | None) -> Any:
        """The model of ``key`` if it was loaded, else None."""
        with self._lock:
            return self._models.get(key)

    def put(self, key: str, model: Any) -> None:
        with self._lock:
            self._models[key] = model

    def pop(self, key: str) -> Any:
        """Drop ``key``'s model (the next use reads its checkpoint again); returns it or None."""
        with self._lock:
            return self._models.pop(key, None)

    def forget(self, path: str) -> None:
        """Drop the models read from the checkpoint file ``path``, under any key naming it: it was rewritten."""
        from engine.io import same_file

        with self._lock:
            for key in [k for k in self._models if k == path or same_file(k, path)]:
                del self._models[key]

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._models

    def __getitem__(self, key: str) -> Any:
        with self._lock:
            return self._models[key]


@dataclass
class Workspace:
    """Plain state owned by the main window (touched on the GUI thread only, but for ``models``)."""

    dataset: Any = None  # engine.data.FunctionDataset, ImageDataset or engine.motion.MotionDataset
    dataset_spec: str | None = None
    modality: str = "functions"  # of the dataset: functions | images | motions
    training: TrainHandle = field(default_factory=TrainHandle)
    models: ModelCache = field(default_factory=ModelCache)  # checkpoint key -> HDMModel, shared with the Restore tab
    outcome: SampleOutcome | None = None  # the latest samples drawn here
    # the checkpoint the samples shown came from and the sampling panel's settings then ("Sample this seed" redraws
    # with them); for a sample file, those it names where that checkpoint is here, else None and {}
    sample_key: str | None = None
    sample_settings: dict[str, Any] = field(default_factory=dict)
    opened: Any = None  # engine.io.SampleFile opened from disk (when shown instead of `outcome`)
    project_path: str | None = None

    @property
    def has_samples(self) -> bool:
        return self.outcome is not None or self.opened is not None
