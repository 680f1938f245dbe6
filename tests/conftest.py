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


@pytest.fixture(autouse=True)
def _fresh_compiler_caches():
    """With HDM_TEST_COMPILE=1: every test starts with torch.compile's caches empty. Each compiling Trainer adds
    graphs of the one DenoisingLoss.forward, and torch refuses a function's 9th (the recompile limit): in one
    pytest process the compile tests ended exactly at it, one more graph short of failing (and on a GPU the
    CUDA-graph test added it)."""
    if os.environ.get("HDM_TEST_COMPILE") == "1":
        import torch

        torch._dynamo.reset()
    yield
