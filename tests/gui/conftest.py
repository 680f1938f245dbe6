"""Fixtures for the offscreen GUI tests: a themed app, a main window, a tiny checkpoint, screenshots."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SHOTS_ENV = "HDM_STUDIO_SHOTS"  # also copy every screenshot into this folder (for a human to look at)


@pytest.fixture(autouse=True)
def _studio_compute_threads(_torch_threads):
    """The studio's own policy (one core left to the GUI thread), after the suite's default."""
    from studio.app import configure_compute

    configure_compute()
    yield


@pytest.fixture(scope="session")
def themed_app(qapp):
    from studio import APPLICATION, ORGANIZATION
    from studio.theme import apply_theme, configure_pyqtgraph

    qapp.setOrganizationName(ORGANIZATION)
    qapp.setApplicationName(APPLICATION)
    configure_pyqtgraph()
    apply_theme(qapp, dark=False)
    return qapp


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A tiny model trained in-process (30 steps), saved like any run: ``model.safetensors``."""
    import torch

    from engine.config import RunConfig
    from engine.training import Trainer

    torch.set_num_threads(1)
    config = RunConfig().replace(data={"num": 200}, model={"width": 8, "modes": 4, "layers": 1},
                                 train={"steps": 30, "batch_size": 16, "warmup": 3})
    trainer = Trainer(config)
    for _ in range(30):
        trainer.step()
    return Path(trainer.save(tmp_path_factory.mktemp("tiny_run")))


WALK_FRAMES = 32


@pytest.fixture(scope="session")
def tiny_walk_checkpoint(tmp_path_factory) -> Path:
    """A tiny FNO-1D trained for 5 steps on 32 procedural walks of ``WALK_FRAMES`` frames, saved like any run."""
    import torch

    from engine.config import RunConfig
    from engine.training import Trainer

    torch.set_num_threads(1)
    config = RunConfig().replace(data={"spec": "walk", "num": 32, "frames": WALK_FRAMES},
                                 model={"width": 8, "modes": 4, "layers": 1},
                                 train={"steps": 5, "batch_size": 8, "warmup": 1})
    trainer = Trainer(config)
    for _ in range(5):
        trainer.step()
    return Path(trainer.save(tmp_path_factory.mktemp("tiny_walk")))


@pytest.fixture
def settings(tmp_path):
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window(themed_app, qtbot, settings):
    """The main window, shown, with the default dataset loaded and the engine warmed up (as a user finds it a
    moment after launch)."""
    from studio.main_window import MainWindow

    w = MainWindow(settings=settings)
    w.jobs.max_rate_hz = 0  # every step reaches the views: frame counts must not depend on machine speed
    qtbot.addWidget(w)
    w.resize(1560, 980)
    w.show()
    qtbot.waitUntil(lambda: w.workspace.dataset is not None and w.engine_warm, timeout=15_000)
    yield w
    w.close()


@pytest.fixture
def shot(tmp_path):
    """``shot(widget, name)`` saves a screenshot under the test's tmp dir and returns its path."""

    def save(widget, name: str) -> Path:
        path = tmp_path / f"{name}.png"
        assert widget.grab().save(str(path)), path
        extra = os.environ.get(SHOTS_ENV)
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, Path(extra) / path.name)
        return path

    return save


@pytest.fixture
def restoration_panel(themed_app, qtbot):
    """A Restore panel on its own job runner, shown at 1400 x 820."""
    from studio.jobs import JobRunner
    from studio.panels.restoration_panel import RestorationPanel

    runner = JobRunner(max_rate_hz=0)  # every step reaches the view: frame counts must not depend on machine speed
    p = RestorationPanel(runner)
    qtbot.addWidget(p)
    p.resize(1400, 820)
    p.show()
    yield p
    runner.shutdown(15_000)
