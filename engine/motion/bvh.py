"""BVH (Biovision Hierarchy) motion files: a strict reader, an atomic writer, resampling and windowing.

Reader (:func:`read_bvh`, :func:`parse_bvh`). Grammar::

    HIERARCHY
    ROOT name { OFFSET x y z  CHANNELS n c_1 ... c_n  (JOINT name { ... } | End Site { OFFSET x y z })* }
    MOTION
    Frames: F
    Frame Time: dt
    F rows of sum(n) numbers

Channel names are X/Y/Zposition and X/Y/Zrotation in any order and any case, each at most once per joint.
A joint's rotation is the product of its rotation channels in the listed order (intrinsic: ``Zrotation
Xrotation Yrotation`` means ``Rz Rx Ry``); missing rotation axes are appended with angle 0, so every joint
stores three angles in its :attr:`Skeleton.rotation_orders` order. Position channel values are *added* to the
joint's OFFSET (the root of the CMU/iClone files has OFFSET (0, 105, 0) and Yposition about -3: the hips are
at 102 units). Anything else is a :class:`DataError` naming the file and the line: unknown tokens or channel
names, a missing MOTION section, unbalanced braces, rows whose value count differs from the channel count,
non-numeric or non-finite values, a zero, negative or NaN frame time, a frame count that disagrees with the
rows or exceeds :data:`MAX_FRAMES`, non-UTF-8 bytes, an empty file. Only one ROOT is accepted.

Writer (:func:`write_bvh`): from positions (through :func:`positions_to_rotations`) or from local rotations.
The root is written with OFFSET 0 0 0 and 6 channels (Xposition Yposition Zposition + 3 rotations) holding
its absolute position, so readers that add the position channels to the OFFSET and readers that take them as
absolute (as Blender's importer does for the root) place it identically; other joints have 3 rotation
channels in the skeleton's order (or one given order such as "ZXY"). Every leaf gets an End Site (its own
if the skeleton has one, else half its bone along the bone's direction) so that Blender can draw the bone.
Angles are unwrapped along time (no 360-degree jumps between frames) and written with 6 decimals; positions
and offsets with 10 significant digits. The file is written atomically (:mod:`engine.io.atomic`).

Resampling (:func:`resample_clip`) slerps each joint's local rotation between neighbouring frames and
interpolates translations linearly, so bone lengths stay exact; :func:`resample_positions` interpolates joint
positions linearly (for position data such as generated samples). :func:`windows` cuts a long clip into
fixed-length training clips with a hop.
"""

from __future__ import annotations

import io
import math
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from engine.errors import ConfigError, DataError
from engine.io.atomic import atomic_write_text
from engine.motion.skeleton import (
    AXES,
    Skeleton,
    check_order,
    euler_to_matrix,
    interpolate_rotations,
    matrix_to_euler,
    positions_to_rotations,
)

MAX_FRAMES = 10_000_000
"""Frame counts above this are refused as absurd (about 46 hours at 60 fps)."""
_CHANNELS = {f"{a}{kind}".lower(): (kind, a) for kind in ("position", "rotation") for a in AXES}
_FRAMES_RE = re.compile(r"^Frames\s*:\s*(\S+)$")
_FRAME_TIME_RE = re.compile(r"^Frame\s+Time\s*:\s*(\S+)$")


@dataclass(frozen=True, eq=False)
class BVHClip:
    """One BVH file's content.

    Attributes:
        path: where it came from (a file path or ``"<string>"``).
        skeleton: the hierarchy, with each joint's rotation order.
        channels: per joint, its channel names as declared (canonical case, e.g. ``("Xposition", "Zrotation")``).
        rotations: float64 [F, J, 3], local Euler angles in degrees, ``rotations[f, j, i]`` about axis
            ``skeleton.rotation_orders[j][i]`` (0 for axes without a channel).
        translations: float64 [F, J, 3], position-channel values (x, y, z), 0 where a joint has none; they are
            added to the joint's offset.
        frame_time: seconds per frame (> 0).
    """

    path: str
    skeleton: Skeleton
    channels: tuple[tuple[str, ...], ...]
    rotations: np.ndarray
    translations: np.ndarray
    frame_time: float

    @property
    def num_frames(self) -> int:
        """F."""
        return int(self.rotations.shape[0])

    @property
    def fps(self) -> float:
        """Frames per second, ``1 / frame_time``."""
        return 1.0 / self.frame_time

    @property
    def root_translation(self) -> np.ndarray:
        """The root's position-channel values [F, 3]."""
        return self.translations[:, 0]

    def rotation_matrices(self) -> np.ndarray:
        """Local rotation matrices [F, J, 3, 3]."""
        out = np.empty((*self.rotations.shape[:2], 3, 3))
        for j, order in enumerate(self.skeleton.rotation_orders):
            out[:, j] = euler_to_matrix(self.rotations[:, j], order, degrees=True)
        return out

    def positions(self) -> np.ndarray:
        """Global joint positions [F, J, 3] by forward kinematics."""
        return self.skeleton.forward_kinematics(self.rotation_matrices(), self.translations)

    def __repr__(self) -> str:
        return (f"BVHClip({self.path!r}, joints={self.skeleton.num_joints}, frames={self.num_frames}, "
                f"fps={self.fps:.4g})")


# ----------------------------------------------------------------------------------------------- reading
class _Tokens:
    """Whitespace-separated tokens of the HIERARCHY section, each with its 1-based line number."""

    def __init__(self, items: list[tuple[str, int]], where: str) -> None:
        self.items = items
        self.pos = 0
        self.where = where

    def error(self, line: int, message: str) -> DataError:
        return DataError(f"{self.where}, line {line}: {message}")

    def peek(self) -> tuple[str, int] | None:
        return self.items[self.pos] if self.pos < len(self.items) else None

    def next(self, what: str, last_line: int) -> tuple[str, int]:
        if self.pos >= len(self.items):
            raise self.error(last_line, f"the file ends where {what} was expected")
        self.pos += 1
        return self.items[self.pos - 1]

    def number(self, what: str, last_line: int) -> float:
        tok, line = self.next(what, last_line)
        try:
            value = float(tok)
        except ValueError:
            raise self.error(line, f"expected a number for {what}, got {tok!r}") from None
        if not math.isfinite(value):
            raise self.error(line, f"{what} must be finite, got {tok!r}")
        return value


@dataclass
class _Node:
    name: str
    parent: int
    line: int
    offset: tuple[float, float, float] | None = None
    channels: tuple[str, ...] | None = None
    end_site: tuple[float, float, float] | None = None


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{where}, line {line}: the file is not UTF-8 text (byte {data[exc.start]:#04x}); "
                        "is it a BVH file?") from None


def _parse_channels(tokens: _Tokens, line: int, node: _Node) -> tuple[str, ...]:
    tok, nline = tokens.next("the channel count", line)
    if not tok.isdigit() or int(tok) > 6:
        raise tokens.error(nline, f"CHANNELS of joint {node.name!r} must start with a count 0..6, got {tok!r}")
    names = []
    for _ in range(int(tok)):
        name, cline = tokens.next(f"a channel name of joint {node.name!r}", nline)
        if cline != nline:
            raise tokens.error(nline, f"CHANNELS of joint {node.name!r} declares {tok} channels but lists "
                                      f"{len(names)}")
        key = name.lower()
        if key not in _CHANNELS:
            raise tokens.error(cline, f"unknown channel name {name!r} of joint {node.name!r}; use X/Y/Zposition "
                                      "or X/Y/Zrotation")
        kind, axis = _CHANNELS[key]
        canonical = f"{axis}{kind}"
        if canonical in names:
            raise tokens.error(cline, f"channel {canonical} is listed twice for joint {node.name!r}")
        names.append(canonical)
    nxt = tokens.peek()
    if nxt is not None and nxt[1] == nline and nxt[0] != "{" and nxt[0] != "}":
        raise tokens.error(nline, f"CHANNELS of joint {node.name!r} lists more names than its count {tok}")
    return tuple(names)


def _parse_hierarchy(tokens: _Tokens, first_line: int) -> tuple[list[_Node], int]:
    """Nodes in file order (parents first) and the line of MOTION."""
    tok, line = tokens.next("HIERARCHY", first_line)
    if tok != "HIERARCHY":
        raise tokens.error(line, f"a BVH file starts with HIERARCHY, got {tok!r}")
    nodes: list[_Node] = []
    stack: list[tuple[int, int, bool]] = []  # (node index, line of '{', is end site)
    pending: tuple[str, int, str | None] | None = None  # (kind, line, name)
    root_done = False
    while True:
        item = tokens.peek()
        if item is None:
            if stack:
                raise tokens.error(stack[-1][1], "unbalanced braces: this '{' is never closed")
            raise tokens.error(line, "missing MOTION section")
        tok, line = tokens.next("a keyword", line)
        if pending is not None and tok != "{":
            raise tokens.error(line, f"expected '{{' after {pending[0]} on line {pending[1]}, got {tok!r}")
        if tok == "{":
            if pending is None:
                raise tokens.error(line, "'{' without ROOT, JOINT or End Site before it")
            kind, pline, name = pending
            if kind == "End Site":
                stack.append((stack[-1][0], line, True))
            else:
                parent = stack[-1][0] if stack else -1
                nodes.append(_Node(str(name), parent, pline))
                stack.append((len(nodes) - 1, line, False))
            pending = None
        elif tok == "}":
            if not stack:
                raise tokens.error(line, "unbalanced braces: '}' without a matching '{'")
            index, _, is_end = stack.pop()
            node = nodes[index]
            if is_end:
                if node.end_site is None:
                    raise tokens.error(line, f"the End Site of joint {node.name!r} has no OFFSET")
            else:
                if node.offset is None:
                    raise tokens.error(line, f"joint {node.name!r} (line {node.line}) has no OFFSET")
                if node.channels is None:
                    raise tokens.error(line, f"joint {node.name!r} (line {node.line}) has no CHANNELS")
            root_done = not stack
        elif tok in ("ROOT", "JOINT"):
            if tok == "ROOT" and (stack or root_done):
                raise tokens.error(line, "only one ROOT is supported, at the top level")
            if tok == "JOINT" and (not stack or stack[-1][2]):
                raise tokens.error(line, "JOINT must be inside a ROOT or JOINT block")
            name, nline = tokens.next(f"the {tok} name", line)
            if nline != line or name in ("{", "}"):
                raise tokens.error(line, f"{tok} needs a name on the same line")
            pending = (tok, line, name)
        elif tok == "End":
            site, sline = tokens.next("'Site'", line)
            if site != "Site" or sline != line:
                raise tokens.error(line, f"expected 'End Site', got 'End {site}'")
            if not stack or stack[-1][2]:
                raise tokens.error(line, "End Site must be inside a ROOT or JOINT block")
            if nodes[stack[-1][0]].end_site is not None:
                raise tokens.error(line, f"joint {nodes[stack[-1][0]].name!r} has two End Sites")
            pending = ("End Site", line, None)
        elif tok == "OFFSET":
            if not stack:
                raise tokens.error(line, "OFFSET outside a ROOT, JOINT or End Site block")
            vec = tuple(tokens.number("OFFSET", line) for _ in range(3))
            node = nodes[stack[-1][0]]
            if stack[-1][2]:
                if node.end_site is not None:
                    raise tokens.error(line, f"the End Site of joint {node.name!r} has two OFFSETs")
                node.end_site = vec
            else:
                if node.offset is not None:
                    raise tokens.error(line, f"joint {node.name!r} has two OFFSETs")
                node.offset = vec
        elif tok == "CHANNELS":
            if not stack or stack[-1][2]:
                raise tokens.error(line, "CHANNELS must be inside a ROOT or JOINT block")
            node = nodes[stack[-1][0]]
            if node.channels is not None:
                raise tokens.error(line, f"joint {node.name!r} has two CHANNELS lines")
            node.channels = _parse_channels(tokens, line, node)
        elif tok == "MOTION":
            if stack:
                raise tokens.error(stack[-1][1], "unbalanced braces: this '{' is not closed before MOTION "
                                                 f"(line {line})")
            if not nodes:
                raise tokens.error(line, "MOTION before any ROOT")
            return nodes, line
        else:
            raise tokens.error(line, f"unexpected {tok!r} in the HIERARCHY section")


def _parse_motion(lines: list[str], start: int, n_channels: int, where: str) -> tuple[np.ndarray, float]:
    """Rows [F, n_channels] and the frame time from the lines after MOTION (``lines[start]`` is line start+1)."""
    def err(line: int, message: str) -> DataError:
        return DataError(f"{where}, line {line}: {message}")

    body = [(i + 1, ln.strip()) for i, ln in enumerate(lines) if i >= start and ln.strip()]
    if not body:
        raise err(len(lines), "MOTION must be followed by 'Frames: N'")
    fline, ftext = body[0]
    m = _FRAMES_RE.match(ftext)
    if m is None:
        raise err(fline, f"expected 'Frames: N', got {ftext[:60]!r}")
    if not m.group(1).isdigit():
        raise err(fline, f"the frame count must be a whole number, got {m.group(1)!r}")
    frames = int(m.group(1))
    if frames == 0:
        raise err(fline, "'Frames: 0': the file holds no motion")
    if frames > MAX_FRAMES:
        raise err(fline, f"the frame count {frames} is absurd (more than {MAX_FRAMES}); the file is corrupt")
    if len(body) < 2:
        raise err(fline, "expected 'Frame Time: seconds' after the frame count")
    tline, ttext = body[1]
    m = _FRAME_TIME_RE.match(ttext)
    if m is None:
        raise err(tline, f"expected 'Frame Time: seconds', got {ttext[:60]!r}")
    try:
        frame_time = float(m.group(1))
    except ValueError:
        raise err(tline, f"the frame time must be a number, got {m.group(1)!r}") from None
    if not (math.isfinite(frame_time) and frame_time > 0):
        raise err(tline, f"the frame time must be a positive number of seconds, got {m.group(1)!r}")
    rows = body[2:]
    if len(rows) > frames:
        raise err(rows[frames][0], f"more data rows than 'Frames: {frames}' (line {fline}) declares")
    if len(rows) < frames:
        last = rows[-1][0] if rows else tline
        raise err(last, f"'Frames: {frames}' (line {fline}) but only {len(rows)} data rows follow")
    split = [text.split() for _, text in rows]
    for (line, _), parts in zip(rows, split):
        if len(parts) != n_channels:
            raise err(line, f"a data row must hold {n_channels} values (the channel count), got {len(parts)}")
    try:
        values = np.array(split, dtype=np.float64).reshape(frames, n_channels)
    except ValueError:
        for (line, _), parts in zip(rows, split):
            for p in parts:
                try:
                    float(p)
                except ValueError:
                    raise err(line, f"{p!r} is not a number") from None
        raise
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        raise err(rows[int(np.argmax(bad))][0], "a data row holds NaN or inf")
    return values, frame_time


def parse_bvh(data: bytes | str, where: str = "<string>") -> BVHClip:
    """Parse BVH text (bytes must be UTF-8); ``where`` names the source in error messages."""
    text = _decode(data, where) if isinstance(data, bytes) else str(data)
    if not text.strip():
        raise DataError(f"{where}, line 1: the file is empty")
    lines = text.splitlines()
    items: list[tuple[str, int]] = []
    for i, ln in enumerate(lines, start=1):
        parts = ln.split()
        if parts[:1] == ["MOTION"]:
            items.append(("MOTION", i))
            if len(parts) > 1:
                raise DataError(f"{where}, line {i}: MOTION must stand alone on its line")
            break
        items.extend((p, i) for p in parts)
    first_line = next((i for i, ln in enumerate(lines, start=1) if ln.strip()), 1)
    tokens = _Tokens(items, where)
    nodes, mline = _parse_hierarchy(tokens, first_line)
    n_channels = sum(len(n.channels or ()) for n in nodes)
    if n_channels == 0:
        raise DataError(f"{where}, line {mline}: no joint declares any channel; there is no motion to read")
    values, frame_time = _parse_motion(lines, mline, n_channels, where)
    return _build_clip(nodes, values, frame_time, where)


def _build_clip(nodes: list[_Node], values: np.ndarray, frame_time: float, where: str) -> BVHClip:
    seen: set[str] = set()
    for n in nodes:
        if n.name in seen:
            raise DataError(f"{where}, line {n.line}: joint name {n.name!r} is used twice")
        seen.add(n.name)
    names = [n.name for n in nodes]
    frames, j = values.shape[0], len(nodes)
    rotations = np.zeros((frames, j, 3))
    translations = np.zeros((frames, j, 3))
    orders = []
    col = 0
    for k, node in enumerate(nodes):
        chans = node.channels or ()
        rot_axes = "".join(c[0] for c in chans if c.endswith("rotation"))
        order = rot_axes + "".join(a for a in AXES if a not in rot_axes)
        orders.append(order)
        for c in chans:
            if c.endswith("rotation"):
                rotations[:, k, order.index(c[0])] = values[:, col]
            else:
                translations[:, k, AXES.index(c[0])] = values[:, col]
            col += 1
    skeleton = Skeleton(tuple(names), tuple(n.parent for n in nodes), np.array([n.offset for n in nodes]),
                        {k: np.array(n.end_site) for k, n in enumerate(nodes) if n.end_site is not None},
                        tuple(orders))
    return BVHClip(where, skeleton, tuple(n.channels or () for n in nodes), rotations, translations, frame_time)


def read_bvh(path: str | os.PathLike[str]) -> BVHClip:
    """Read and validate one ``.bvh`` file (grammar and errors in the module docstring)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{p}: no such BVH file") from None
    except OSError as exc:
        raise DataError(f"{p}: cannot read the file ({exc.strerror})") from None
    return parse_bvh(data, str(p))


# ----------------------------------------------------------------------------------------------- writing
def _fmt(x: float) -> str:
    return f"{x:.10g}"


def _end_site(skeleton: Skeleton, j: int) -> np.ndarray:
    if j in skeleton.end_sites:
        return skeleton.end_sites[j]
    off = skeleton.offsets[j]
    if j > 0 and np.linalg.norm(off) > 1e-9 * max(skeleton.size, 1e-300):
        return 0.5 * off
    return np.array([0.0, 0.05 * max(skeleton.size, 1.0), 0.0])


def _hierarchy_text(skeleton: Skeleton, orders: list[str]) -> str:
    out = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        pad = "  " * depth
        out.append(f"{pad}{'ROOT' if j == 0 else 'JOINT'} {skeleton.names[j]}")
        out.append(f"{pad}{{")
        off = np.zeros(3) if j == 0 else skeleton.offsets[j]
        out.append(f"{pad}  OFFSET {' '.join(_fmt(v) for v in off)}")
        rot = " ".join(f"{a}rotation" for a in orders[j])
        out.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition {rot}" if j == 0 else
                   f"{pad}  CHANNELS 3 {rot}")
        for c in skeleton.children[j]:
            emit(c, depth + 1)
        if not skeleton.children[j]:
            out.append(f"{pad}  End Site")
            out.append(f"{pad}  {{")
            out.append(f"{pad}    OFFSET {' '.join(_fmt(v) for v in _end_site(skeleton, j))}")
            out.append(f"{pad}  }}")
        out.append(f"{pad}}}")

    emit(0, 0)
    return "\n".join(out)


def _dfs_order(skeleton: Skeleton) -> list[int]:
    order, stack = [], [0]
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(skeleton.children[j]))
    return order


def write_bvh(path: str | os.PathLike[str], skeleton: Skeleton, motion: np.ndarray, frame_time: float, *,
              root_translation: np.ndarray | None = None, order: str | None = None) -> Path:
    """Write a BVH file Blender can open; returns the path.

    Args:
        path: destination (written atomically; parent folders are created).
        skeleton: the hierarchy; joint names must be single words (no whitespace or braces).
        motion: global joint positions [F, J, 3] (rotations are recovered by :func:`positions_to_rotations`,
            restoring the rest bone lengths) or local rotation matrices [F, J, 3, 3].
        frame_time: seconds per frame (> 0).
        root_translation: with rotations: the root's translation [F, 3] (root position = offsets[0] + it);
            None means zeros. Must be None with positions.
        order: one Euler order for every joint (e.g. ``"ZXY"``); None keeps ``skeleton.rotation_orders``.
    """
    try:
        dt = float(frame_time)
    except (TypeError, ValueError):
        dt = math.nan
    if not (math.isfinite(dt) and dt > 0):
        raise ConfigError(f"write_bvh: frame_time must be a positive number of seconds, got {frame_time!r}")
    bad = [n for n in skeleton.names if not n or re.search(r"[\s{}]", n)]
    if bad:
        raise ConfigError(f"write_bvh: joint name {bad[0]!r} cannot be stored in BVH (whitespace or braces); "
                          "rename the joint")
    m = np.asarray(motion, dtype=np.float64)
    n = skeleton.num_joints
    if m.ndim == 3 and m.shape[1:] == (n, 3):
        if root_translation is not None:
            raise ConfigError("write_bvh: root_translation is taken from the positions; pass None")
        rotations, root_t = positions_to_rotations(skeleton, m)
    elif m.ndim == 4 and m.shape[1:] == (n, 3, 3):
        rotations = m
        root_t = np.zeros((m.shape[0], 3)) if root_translation is None else np.asarray(root_translation, float)
        if root_t.shape != (m.shape[0], 3):
            raise ConfigError(f"write_bvh: root_translation must have shape [{m.shape[0]}, 3], got {root_t.shape}")
    else:
        raise ConfigError(f"write_bvh: motion must be positions [F, {n}, 3] or rotations [F, {n}, 3, 3], "
                          f"got shape {m.shape}")
    if m.shape[0] == 0:
        raise ConfigError("write_bvh: the motion has no frames")
    if not (np.isfinite(rotations).all() and np.isfinite(root_t).all()):
        raise ConfigError("write_bvh: the motion contains NaN or inf")
    orders = list(skeleton.rotation_orders) if order is None else [check_order(order, where="write_bvh")] * n
    columns = [skeleton.offsets[0] + root_t]
    for j in _dfs_order(skeleton):
        ang = matrix_to_euler(rotations[:, j], orders[j])
        columns.append(np.rad2deg(np.unwrap(ang, axis=0)))
    data = np.concatenate(columns, axis=1)
    fmt = ["%.10g"] * 3 + ["%.6f"] * (data.shape[1] - 3)
    buf = io.StringIO()
    np.savetxt(buf, data, fmt=fmt, delimiter=" ")
    header = _hierarchy_text(_reordered(skeleton), [orders[j] for j in _dfs_order(skeleton)])
    text = f"{header}\nMOTION\nFrames: {data.shape[0]}\nFrame Time: {dt:.10g}\n{buf.getvalue()}"
    return atomic_write_text(path, text)


def _reordered(skeleton: Skeleton) -> Skeleton:
    """The skeleton with joints in depth-first order (the order a BVH file lists them)."""
    order = _dfs_order(skeleton)
    if order == list(range(skeleton.num_joints)):
        return skeleton
    new = {old: i for i, old in enumerate(order)}
    return Skeleton(tuple(skeleton.names[j] for j in order),
                    tuple(-1 if skeleton.parents[j] < 0 else new[skeleton.parents[j]] for j in order),
                    skeleton.offsets[order], {new[k]: v for k, v in skeleton.end_sites.items()},
                    tuple(skeleton.rotation_orders[j] for j in order))


# ----------------------------------------------------------------------------------------------- time
def _new_times(frames: int, fps_in: float, fps_out: float) -> np.ndarray:
    for name, v in (("source fps", fps_in), ("target fps", fps_out)):
        if not (math.isfinite(v) and v > 0):
            raise ConfigError(f"{name} must be a positive number, got {v!r}")
    duration = (frames - 1) / fps_in
    count = int(math.floor(duration * fps_out + 1e-9)) + 1
    return np.arange(count) / fps_out


def resample_positions(positions: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """Linearly interpolate positions [F, ...] sampled at ``fps_in`` onto frames ``k / fps_out`` within the clip.

    The new clip has ``floor((F-1) fps_out / fps_in) + 1`` frames and starts at the same instant.
    Interpolation shortens bones slightly between frames (chords of arcs); use :func:`resample_clip` for exact
    bone lengths when rotations are available.
    """
    p = np.asarray(positions, dtype=np.float64)
    if p.shape[0] < 2:
        raise DataError(f"resampling needs at least 2 frames, got {p.shape[0]}")
    t = np.arange(p.shape[0]) / fps_in
    nt = _new_times(p.shape[0], fps_in, fps_out)
    idx = np.clip(np.searchsorted(t, nt, side="right") - 1, 0, t.size - 2)
    w = np.clip((nt - t[idx]) * fps_in, 0.0, 1.0).reshape((-1,) + (1,) * (p.ndim - 1))
    return p[idx] * (1.0 - w) + p[idx + 1] * w


def resample_clip(clip: BVHClip, fps: float) -> BVHClip:
    """The clip at ``fps`` frames per second: local rotations slerped, translations linearly interpolated.

    Frame k of the result is the pose at ``k / fps`` seconds; the duration is cut to whole new frames.
    Rotations are slerped (not re-derived by IK), so joint twists survive and bone lengths stay exact.
    """
    if clip.num_frames < 2:
        raise DataError(f"{clip.path}: resampling needs at least 2 frames, got {clip.num_frames}")
    t = np.arange(clip.num_frames) * clip.frame_time
    nt = _new_times(clip.num_frames, clip.fps, float(fps))
    rot = interpolate_rotations(clip.rotation_matrices(), t, nt)
    euler = np.empty((nt.size, clip.skeleton.num_joints, 3))
    for j, order in enumerate(clip.skeleton.rotation_orders):
        euler[:, j] = np.rad2deg(np.unwrap(matrix_to_euler(rot[:, j], order), axis=0))
    translations = resample_positions(clip.translations, clip.fps, float(fps))
    return replace(clip, rotations=euler, translations=translations, frame_time=1.0 / float(fps))


def windows(sequence: np.ndarray, frames: int, hop: int) -> np.ndarray:
    """Fixed-length windows [W, frames, ...] of a sequence [F, ...], starting at 0, hop, 2 hop, ...

    Only whole windows are kept (``W = 1 + (F - frames) // hop``, 0 if ``F < frames``); they are copies.
    """
    for name, v, low in (("frames", frames, 2), ("hop", hop, 1)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {v!r}")
    seq = np.asarray(sequence)
    if seq.shape[0] < frames:
        return np.empty((0, frames, *seq.shape[1:]), dtype=seq.dtype)
    starts = np.arange(0, seq.shape[0] - frames + 1, hop)
    return seq[starts[:, None] + np.arange(frames)[None, :]]
