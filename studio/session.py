"""Project files: the studio's settings (data, prior, model, sampler, export) as JSON.

A project file records choices, not results: which data, which prior and equation, which
model size and training settings or checkpoint, how to sample and how to export. Loading one
restores every panel. Files are written atomically (temporary name, then rename).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from engine.errors import ConfigError

FORMAT = "hdm-studio-project"
VERSION = 1
SECTIONS = ("data", "prior", "model", "sampler", "export")


def save_project(path: str | Path, sections: dict[str, dict[str, Any]]) -> Path:
    """Write ``sections`` (a dict per panel) to ``path``."""
    path = Path(path)
    doc = {"format": FORMAT, "version": VERSION}
    doc.update({k: sections.get(k, {}) for k in SECTIONS})
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_project(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a project file; raises :class:`ConfigError` with one line when it is not one."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the project file ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a JSON project file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ConfigError(f"{path}: not an HDM Studio project (expected \"format\": \"{FORMAT}\")")
    if not isinstance(doc.get("version"), int) or doc["version"] > VERSION:
        raise ConfigError(f"{path}: project version {doc.get('version')!r} is newer than this studio "
                          f"understands ({VERSION}); update HDM Studio")
    out: dict[str, dict[str, Any]] = {}
    for key in SECTIONS:
        value = doc.get(key, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: section {key!r} must be a JSON object")
        out[key] = value
    return out
