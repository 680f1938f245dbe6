"""JSON encoding shared by the file formats (numpy scalars/arrays, tensors and paths allowed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["json_default", "to_json"]


def json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    tolist = getattr(obj, "tolist", None)  # torch tensors, without importing torch
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def to_json(obj: Any) -> str:
    """Compact, key-order-preserving JSON (NaN/inf kept as JS literals, as Python's json reads them)."""
    return json.dumps(obj, default=json_default, ensure_ascii=False)
