"""Stick-figure strips: evenly spaced frames of motions drawn side by side into one PNG (Pillow).

Layout: one row per motion, ``frames`` cells per row; cell ``(i, k)`` shows motion i at frame
``round(k (T - 1) / (frames - 1))`` (all T frames when ``frames >= T``). Y is up (the BVH convention). The
horizontal screen axis is, per motion, a unit vector ``d`` in the ground (x-z) plane and a joint is drawn at
``(p . d, p_y)``; the depth ``p . (d x y)`` is dropped:

- ``view="travel"`` (default): ``d`` is the root's horizontal displacement from the first to the last frame,
  normalised, so a walk is seen from its side whichever way it heads (``d = x`` when the root moves less
  than 1 % of the figure's height);
- ``view="x"`` / ``view="z"``: the fixed x-y / z-y plane.

Scale and placement (one for the whole strip, so heights and strides compare across cells and rows):

- the ground is the lowest joint height over every motion and frame, drawn as a grey line in every cell
  at ``margin`` pixels above the cell's bottom;
- each figure is centred horizontally on its root's screen position at that frame (a walk would otherwise leave the
  cell), so the strip shows poses, not travel;
- one pixels-per-unit factor for all cells: the largest that fits both the tallest pose (height above
  the ground) and the widest reach from the root, inside the cell less its margins.

Bones are drawn parent to child; joints on the left side of the body (a name part ``Left``/``left``/``L``
at the start or after ``_``, followed by ``_``, an upper-case letter, a digit or the end: ``LeftFoot``,
``CC_Base_L_Thigh``, ``L_Hip``) in blue, the right side likewise in red, the rest (``Hips``, ``LowerBack``) in black.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from engine.errors import ConfigError, DataError
from engine.io.atomic import atomic_path
from engine.motion.skeleton import Skeleton

DEFAULT_CELL = (96, 160)
"""Default cell (width, height) in pixels."""
_MARGIN_FRACTION = 0.08
_LEFT = re.compile(r"(^|_)([Ll]eft|LEFT|L)(_|[A-Z0-9]|$)")
_RIGHT = re.compile(r"(^|_)([Rr]ight|RIGHT|R)(_|[A-Z0-9]|$)")
_COLOURS = {"left": (40, 90, 200), "right": (200, 50, 40), "centre": (20, 20, 20)}


def side_of(name: str) -> str:
    """``"left"``, ``"right"`` or ``"centre"`` from a joint name (``LeftFoot``, ``CC_Base_R_Calf``, ``Hips``)."""
    if _LEFT.search(name):
        return "left"
    if _RIGHT.search(name):
        return "right"
    return "centre"


def frame_indices(num_frames: int, frames: int) -> np.ndarray:
    """``min(frames, T)`` evenly spaced frame indices in [0, T - 1], first and last included (int64)."""
    k = min(int(frames), int(num_frames))
    if k == 1:
        return np.zeros(1, dtype=np.int64)
    return np.round(np.linspace(0, num_frames - 1, k)).astype(np.int64)


VIEWS = ("travel", "x", "z")


def screen_coordinates(positions: np.ndarray, view: str = "travel") -> np.ndarray:
    """Positions [N, T, J, 3] -> (horizontal, up) screen coordinates [N, T, J, 2] in the positions' unit.

    The horizontal axis ``d`` per motion is described in the module docstring (``view``).
    """
    if view not in VIEWS:
        raise ConfigError(f"render_strip: unknown view {view!r}; choose one of {', '.join(VIEWS)}")
    n = positions.shape[0]
    d = np.zeros((n, 2))  # (x, z) components
    d[:, 0 if view != "z" else 1] = 1.0
    if view == "travel":
        move = positions[:, -1, 0, [0, 2]] - positions[:, 0, 0, [0, 2]]
        norm = np.linalg.norm(move, axis=-1)
        extent = np.ptp(positions[..., 1].reshape(n, -1), axis=-1)
        moving = norm > 0.01 * np.maximum(extent, 1e-12)
        d[moving] = move[moving] / norm[moving, None]
    horizontal = positions[..., 0] * d[:, None, None, 0] + positions[..., 2] * d[:, None, None, 1]
    return np.stack([horizontal, positions[..., 1]], axis=-1)


def strip_layout(screen: np.ndarray, frames: int, cell: tuple[int, int]
                 ) -> tuple[np.ndarray, float, float, int]:
    """Frame indices, pixels per unit, ground height and margin (pixels) of a strip (see the module docstring).

    Args:
        screen: screen coordinates [N, T, J, 2] (:func:`screen_coordinates`).
        frames: cells per row asked for.
        cell: (width, height) of a cell in pixels.
    """
    idx = frame_indices(screen.shape[1], frames)
    shown = screen[:, idx]  # [N, K, J, 2]
    ground = float(shown[..., 1].min())
    width, height = cell
    margin = max(2, round(_MARGIN_FRACTION * min(width, height)))
    tallest = float(shown[..., 1].max()) - ground
    reach = float(np.abs(shown[..., 0] - shown[:, :, :1, 0]).max())
    fits = []
    if tallest > 0:
        fits.append((height - 2 * margin) / tallest)
    if reach > 0:
        fits.append((width / 2 - margin) / reach)
    scale = min(fits) if fits else 1.0
    return idx, scale, ground, margin


def render_strip(positions: object, skeleton: Skeleton, path: str | os.PathLike[str], *, frames: int = 8,
                 size: tuple[int, int] = DEFAULT_CELL, view: str = "travel", line_width: int = 2) -> Path:
    """Draw evenly spaced frames of one or more motions as stick figures into a PNG, atomically.

    Args:
        positions: joint positions [T, J, 3] or [N, T, J, 3] (numpy or torch), Y up, any unit.
        skeleton: the joints (``parents`` give the bones).
        path: the PNG to write (missing folders are created).
        frames: cells per row (fewer when the motions have fewer frames).
        size: (width, height) of one cell in pixels; the image is ``K * width`` by ``N * height`` with
            ``K = min(frames, T)``.
        view: the horizontal screen axis: ``"travel"`` (a side view of each motion), ``"x"`` or ``"z"``.
        line_width: bone thickness in pixels.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    from PIL import Image, ImageDraw

    detach = getattr(positions, "detach", None)
    p = np.asarray(detach().cpu().numpy() if detach is not None else positions, dtype=np.float64)
    if p.ndim == 3:
        p = p[None]
    if p.ndim != 4 or p.shape[-1] != 3 or 0 in p.shape:
        raise DataError(f"render_strip: positions must have shape [T, J, 3] or [N, T, J, 3], got {p.shape}")
    if p.shape[2] != skeleton.num_joints:
        raise DataError(f"render_strip: {p.shape[2]} joints, but the skeleton has {skeleton.num_joints}")
    if not np.isfinite(p).all():
        raise DataError("render_strip: positions contain NaN or inf")
    if isinstance(frames, bool) or not isinstance(frames, int | np.integer) or frames < 1:
        raise ConfigError(f"render_strip: frames must be a positive integer, got {frames!r}")
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ConfigError(f"render_strip: size must be (width, height) in pixels, got {size!r}") from None
    if width < 16 or height < 16:
        raise ConfigError(f"render_strip: size: cells must be at least 16 x 16 pixels, got {width} x {height}")
    if int(line_width) < 1:
        raise ConfigError(f"render_strip: line_width must be >= 1, got {line_width!r}")

    screen = screen_coordinates(p, view)
    idx, scale, ground, margin = strip_layout(screen, frames, (width, height))
    n, k = p.shape[0], idx.size
    image = Image.new("RGB", (k * width, n * height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    colours = [_COLOURS[side_of(name)] for name in skeleton.names]
    radius = max(1, int(line_width))
    for i in range(n):
        top = i * height
        base = top + height - margin  # pixel row of the ground
        for c, t in enumerate(idx):
            left = c * width
            draw.rectangle([left, top, left + width - 1, top + height - 1], outline=(225, 225, 225))
            draw.line([left + 2, base, left + width - 3, base], fill=(150, 150, 150), width=1)
            pose = screen[i, t]
            u = left + width / 2 + (pose[:, 0] - pose[0, 0]) * scale
            v = base - (pose[:, 1] - ground) * scale
            for j, parent in enumerate(skeleton.parents):
                if parent >= 0:
                    draw.line([u[parent], v[parent], u[j], v[j]], fill=colours[j], width=int(line_width))
            for j in range(skeleton.num_joints):
                draw.ellipse([u[j] - radius, v[j] - radius, u[j] + radius, v[j] + radius], fill=colours[j])
            draw.text((left + 3, top + 2), f"{int(t)}", fill=(120, 120, 120))
    out = Path(path)
    with atomic_path(out) as tmp:
        image.save(tmp, format="PNG")
    return out
