from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _torch_threads():
    """One torch thread per test: on a busy 2-core machine two OpenMP threads per process were measured up to
    30-100 times slower than one (they spin against the other processes' threads)."""
    import torch

    torch.set_num_threads(1)
    yield
