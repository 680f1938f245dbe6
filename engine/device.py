"""Device selection (a string in configs, a ``torch.device`` only at run time), and the CPU's process-wide
tuning that the entry points apply: OpenMP's spin count (before torch loads) and the allocator's thresholds.
torch is imported where it is used, so :func:`configure_openmp` can run before it loads."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from engine.errors import ConfigError

if TYPE_CHECKING:
    import torch


def resolve_device(name: str | None = "cpu") -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available) -> ``torch.device``."""
    import torch

    name = (name or "cpu").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} requested but CUDA is not available here; use --device cpu")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s)")
        return dev
    raise ConfigError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto")


def available_memory() -> int | None:
    """Bytes of RAM a new allocation can get without swapping (Linux ``MemAvailable``; elsewhere the free pages),
    or None where the system does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def available_devices() -> list[str]:
    """``cpu`` and each CUDA device, for the studio's selector."""
    import torch

    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return out


def configure_openmp() -> bool:
    """Let torch's OpenMP threads spin briefly, then sleep, while they wait (GNU OpenMP's ``GOMP_SPINCOUNT=1000``
    instead of 300,000), unless the environment sets a wait policy or a spin count; returns whether a short
    spin is in force.

    At the end of every parallel region each thread spins until all have arrived. When other processes hold
    the cores, a thread waits there for one that is descheduled, spinning through the time slices the others
    need, on every operation. ``benchmarks/cpu_contention.py`` on the 2-core box (medians of 5, default spin
    against the short one): two copies of a job at once, 30 training steps 16.9-39 s against 2.7-2.9 s and 64
    curves sampled 3.0-9.8 s against 1.4-1.6 s (each alone: 1.2-1.3 s and 0.8-1.0 s); beside one busy
    process, 30 training steps 4.6-4.9 s against 2.4-2.7 s. Alone on idle cores the short spin costs 0-23 %
    (the sleeping threads are woken for each operation): 30 training steps 1.2-1.3 s against 1.4-1.6 s,
    4 MNIST images at 10 steps 0.42-0.55 s against 0.52-0.85 s.
    ``OMP_WAIT_POLICY=PASSIVE`` (no spin) does better under load but costs 30-90 % alone.

    OpenMP reads the setting once, when torch loads it, so this must run before anything imports torch;
    afterwards it sets nothing. GNU OpenMP only (Linux builds of torch; other runtimes ignore the variable).
    Process-wide (and inherited by child processes), so the entry points (``hdm``, ``hdm-studio``) call it and
    the engine itself never does; ``HDM_OPENMP_TUNING=0`` turns it off.
    """
    if os.environ.get("HDM_OPENMP_TUNING", "1") != "0" and "torch" not in sys.modules \
            and "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", str(SPIN_COUNT))
    return "OMP_WAIT_POLICY" not in os.environ and os.environ.get("GOMP_SPINCOUNT", "").strip() == str(SPIN_COUNT)


SPIN_COUNT = 1000  # what GNU OpenMP itself uses when it knows its threads outnumber the CPUs


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20  # glibc's largest on 64-bit systems
TRIM_THRESHOLD = 256 << 20
_allocator_tuned: bool | None = None


def tune_cpu_allocator() -> bool:
    """Keep freed memory in the process instead of returning it to the OS tensor by tensor (Linux, glibc).

    glibc serves blocks above a moving threshold with ``mmap`` and trims the heap once twice that
    lies free at its top, so a sampling loop whose activations are a few MB page-faults fresh
    memory for almost every operation's output (the profile showed a GELU and a bias copy on
    [250, 100, 64] at 8-9 ms each, 16-50x slower per element than the same operations at width 32).
    Fixing the mmap threshold at 32 MiB and the trim threshold at 256 MiB keeps those pages (the
    process then holds up to 256 MiB it no longer uses). Measured in-process A/B, 2-core CPU, 1000
    Quadratic curves, exponential-10: one batch of 1000 2.3-2.8 s -> 1.5-2.2 s, the default batches
    1.6-1.9 s -> 1.4-1.9 s, and no slow first call; 256 MNIST images in one batch 7.9-9.1 s ->
    5.4-7.0 s; the training step unchanged within noise.

    Process-wide, so the entry points (``hdm``, ``hdm-studio``) call it and the engine itself never
    does; ``HDM_MALLOC_TUNING=0`` turns it off. Returns whether the settings are in force.
    """
    global _allocator_tuned
    if _allocator_tuned is not None:
        return _allocator_tuned
    import ctypes
    import platform

    _allocator_tuned = False
    if os.environ.get("HDM_MALLOC_TUNING", "1") == "0" or platform.system() != "Linux" \
            or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    _allocator_tuned = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD,
                                                                                        TRIM_THRESHOLD))
    return _allocator_tuned
