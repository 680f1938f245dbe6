"""Memory readouts for the status bar (no psutil: ``/proc`` on Linux, ``resource`` elsewhere)."""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass
from pathlib import Path

GIB = 1024**3


@dataclass(frozen=True)
class MemoryReading:
    """Bytes used by this process and, where known, the device's free and total bytes."""

    used: int
    free: int | None = None
    total: int | None = None

    def text(self, device: str) -> str:
        used = f"studio {self.used / GIB:.2f} GiB"
        if self.free is None or self.total is None:
            return f"{device}: {used}"
        return f"{device}: {used} · {self.free / GIB:.1f} of {self.total / GIB:.1f} GiB free"


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                out[key] = int(parts[0]) * 1024
    except OSError:
        pass
    return out


def process_rss() -> int:
    """Resident memory of this process (peak where the current value is not available)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def read_memory(device: str) -> MemoryReading:
    """The reading for ``cpu`` (system RAM) or ``cuda:N`` (that GPU's memory)."""
    if device.startswith("cuda"):
        import torch

        index = int(device.partition(":")[2] or 0)
        free, total = torch.cuda.mem_get_info(index)
        return MemoryReading(int(torch.cuda.memory_allocated(index)), int(free), int(total))
    info = _meminfo()
    return MemoryReading(process_rss(), info.get("MemAvailable"), info.get("MemTotal"))
