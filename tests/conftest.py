from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _torch_threads():
    """Keep the suite CPU-sized and reproducible on 2-core machines."""
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield
