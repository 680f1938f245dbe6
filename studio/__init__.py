"""HDM Studio: the desktop app (PySide6) over :mod:`engine`.

The engine never imports Qt; the studio observes it through callbacks relayed as Qt signals
from a worker thread (:mod:`studio.jobs`).
"""

from __future__ import annotations

ORGANIZATION = "HDM Studio"
APPLICATION = "HDM Studio"
