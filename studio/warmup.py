"""Pay one-off costs at startup, just after the window first paints, not as freezes mid-session.

The first optimiser step imports ``torch._dynamo`` (about 0.8 s of mostly GIL-holding work);
done on the worker in the middle of a session, it would stall the GUI thread for over 100 ms.
Full garbage collections of the startup heap would stall it for as long (see
:func:`freeze_startup_heap`).
"""

from __future__ import annotations

import time


def warm_engine() -> float:
    """Import what jobs import lazily and run one throwaway AdamW step; returns the seconds spent."""
    started = time.perf_counter()
    import torch

    import engine.data  # noqa: F401
    import engine.io  # noqa: F401
    import engine.training  # noqa: F401

    layer = torch.nn.Linear(2, 1)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=1e-3)
    layer(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    return time.perf_counter() - started


def freeze_startup_heap() -> None:
    """Move every object alive now out of the garbage collector's reach (``gc.freeze``).

    torch, pyqtgraph and the widgets make a heap of millions of objects; a full (generation 2)
    collection walks all of them and pauses the GUI thread for 60-170 ms at random moments.
    Frozen, they are never scanned again; later collections only walk what the session created.
    """
    import gc

    gc.collect()
    gc.freeze()
