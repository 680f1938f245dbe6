"""What the session holds between jobs: the data, the models, the latest samples."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from studio.engine_jobs import SampleOutcome, TrainHandle

TRAINED = "session:trained"  # the checkpoint key of the model trained in this session


@dataclass
class Workspace:
    """Plain state owned by the main window (touched on the GUI thread only)."""

    dataset: Any = None  # engine.data.FunctionDataset, ImageDataset or engine.motion.MotionDataset
    dataset_spec: str | None = None
    modality: str = "functions"  # of the dataset: functions | images | motions
    training: TrainHandle = field(default_factory=TrainHandle)
    models: dict[str, Any] = field(default_factory=dict)  # checkpoint key -> HDMModel
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
