"""Where the project's files live: bundled assets and the shared real datasets."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = PROJECT_ROOT / "assets"
CHECKPOINTS_DIR = ASSETS_DIR / "checkpoints"


def shared_data_dir() -> Path:
    """Root of the real datasets (``../shared/data`` beside the project, or ``$HDM_DATA_DIR``)."""
    env = os.environ.get("HDM_DATA_DIR")
    if env:
        return Path(env)
    return PROJECT_ROOT.parent / "shared" / "data"
