"""BVH reading (strict, errors name the line), writing, round trips, resampling and windowing.

The exported files are checked by a small parser written here from the format's description, which shares
no code with ``engine/motion/bvh.py`` (nor with ``engine/motion/skeleton.py``), and, when installed, by the
``bvhio`` package (PyPI; not a project dependency).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from engine.errors import ConfigError, DataError
from engine.motion import generate_walks, humanoid_skeleton, positions_to_rotations
from engine.motion.bvh import (
    MAX_FRAMES,
    parse_bvh,
    read_bvh,
    resample_clip,
    resample_positions,
    windows,
    write_bvh,
)
from engine.motion.dataset import CMU07_FOLDER
from engine.motion.metrics import bone_length_error
from engine.paths import shared_data_dir

ROUND_TRIP_RTOL = 1e-4
"""Round-trip tolerance on joint positions, relative to the skeleton's size."""


def cmu_files():
    folder = shared_data_dir() / "motion" / CMU07_FOLDER
    files = sorted(folder.glob("*.bvh"))
    if len(files) != 12:
        pytest.skip(f"the 12 CMU subject-07 clips were not found in {folder}")
    return files


# ----------------------------------------------------------------------------------------------- an independent reader
def _rot(axis: str, degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    if axis == "X":
        return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "Y":
        return np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def independent_read(text: str) -> dict:
    """Parse and check a BVH text as written by write_bvh; return joints, rows and world positions per frame.

    Checks: HIERARCHY / ROOT first, braces balanced, each joint has OFFSET then CHANNELS, the root has the
    6 channels X/Y/Zposition + 3 rotations, other joints exactly 3 rotation channels, each leaf an End Site,
    MOTION with 'Frames:' and 'Frame Time:', every row holding as many numbers as there are channels.
    """
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    assert lines[0] == "HIERARCHY" and lines[1].startswith("ROOT ")
    joints: list[dict] = []
    stack: list[dict | None] = []
    i = 1
    while lines[i] != "MOTION":
        words = lines[i].split()
        if words[0] in ("ROOT", "JOINT"):
            assert len(words) == 2 and lines[i + 1] == "{"
            parent = stack[-1]["index"] if stack else -1
            joint = {"name": words[1], "parent": parent, "index": len(joints), "children": 0, "end": False}
            if parent >= 0:
                joints[parent]["children"] += 1
            off, chans = lines[i + 2].split(), lines[i + 3].split()
            assert off[0] == "OFFSET" and len(off) == 4 and chans[0] == "CHANNELS"
            assert int(chans[1]) == len(chans) - 2
            joint["offset"] = np.array([float(v) for v in off[1:]])
            joint["channels"] = chans[2:]
            joints.append(joint)
            stack.append(joint)
            i += 4
        elif words == ["End", "Site"]:
            assert lines[i + 1] == "{" and lines[i + 2].startswith("OFFSET") and lines[i + 3] == "}"
            stack[-1]["end"] = True
            i += 4
        elif words == ["}"]:
            stack.pop()
            i += 1
        else:
            raise AssertionError(f"unexpected line {lines[i]!r}")
    assert not stack, "unbalanced braces"
    for j in joints:
        rot = [c for c in j["channels"] if c.endswith("rotation")]
        assert len(rot) == 3 and {c[0] for c in rot} == {"X", "Y", "Z"}
        if j["parent"] < 0:
            assert j["channels"][:3] == ["Xposition", "Yposition", "Zposition"] and len(j["channels"]) == 6
        else:
            assert len(j["channels"]) == 3
        assert j["children"] > 0 or j["end"], f"leaf {j['name']} has no End Site"
    frames = int(re.fullmatch(r"Frames:\s*(\d+)", lines[i + 1]).group(1))
    frame_time = float(re.fullmatch(r"Frame Time:\s*(\S+)", lines[i + 2]).group(1))
    rows = np.array([[float(v) for v in ln.split()] for ln in lines[i + 3:]])
    n_channels = sum(len(j["channels"]) for j in joints)
    assert rows.shape == (frames, n_channels)
    world = np.zeros((frames, len(joints), 3))
    for f in range(frames):
        col, frames_r = 0, []
        for j in joints:
            move, rot = np.zeros(3), np.eye(3)
            for c in j["channels"]:
                if c.endswith("position"):
                    move["XYZ".index(c[0])] = rows[f, col]
                else:
                    rot = rot @ _rot(c[0], rows[f, col])
                col += 1
            if j["parent"] < 0:
                frames_r.append(rot)
                world[f, j["index"]] = j["offset"] + move
            else:
                pr = frames_r[j["parent"]]
                frames_r.append(pr @ rot)
                world[f, j["index"]] = world[f, j["parent"]] + pr @ (j["offset"] + move)
    return {"names": [j["name"] for j in joints], "frame_time": frame_time, "positions": world}


# ----------------------------------------------------------------------------------------------- reading
BASE = """HIERARCHY
ROOT hips
{
  OFFSET 0 1 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT knee
  {
    OFFSET 0 -0.5 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 -0.5 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.5
0 0 0 0 0 0 0 0 0
1 0 0 90 0 0 0 0 0
"""


def edit(line: int, new: str | None, text: str = BASE) -> str:
    """BASE with 1-based line ``line`` replaced (or removed when ``new`` is None)."""
    lines = text.splitlines()
    if new is None:
        del lines[line - 1]
    else:
        lines[line - 1] = new
    return "\n".join(lines) + "\n"


def test_reader_semantics_on_a_hand_written_file():
    text = """HIERARCHY
ROOT hips
{
  OFFSET 0 1 0
  CHANNELS 6 XPOSITION yposition Zposition Zrotation Xrotation Yrotation
  JOINT arm
  {
    OFFSET 1 0 0
    CHANNELS 4 Xposition Yrotation Xrotation Zrotation
    JOINT hand {
      OFFSET 0.5 0 0
      CHANNELS 1 Zrotation
      End Site { OFFSET 0.1 0 0 }
    }
  }
}
MOTION
Frames: 1
Frame Time: 0.0333333
2 0 0  90 0 0  0.25 0 0 0  90
"""
    clip = parse_bvh(text)
    sk = clip.skeleton
    assert sk.names == ("hips", "arm", "hand") and sk.parents == (-1, 0, 1)
    assert sk.rotation_orders == ("ZXY", "YXZ", "ZXY")
    assert clip.channels[1] == ("Xposition", "Yrotation", "Xrotation", "Zrotation")
    np.testing.assert_allclose(sk.end_sites[2], [0.1, 0, 0])
    assert clip.fps == pytest.approx(30.0, rel=1e-5)
    # hips at offset + translation (2, 1, 0), turned 90 deg about Z: local x -> world y;
    # arm at hips + Rz (1.25, 0, 0) = (2, 2.25, 0) (offset + its Xposition); the hand's 0.5 x offset is turned
    # by the hips' rotation only (its own 90 degrees turn what hangs below it)
    np.testing.assert_allclose(clip.positions()[0], [[2, 1, 0], [2, 2.25, 0], [2, 2.75, 0]], atol=1e-12)


ERRORS = [
    (edit(9, "    CHANNELS 3 Zrotation Xrotation Wrotation"), 9, "unknown channel name 'Wrotation'"),
    (edit(9, "    CHANNELS 3 Zrotation Xrotation Zrotation"), 9, "listed twice"),
    (edit(9, "    CHANNELS 3 Zrotation Xrotation"), 9, "declares 3 channels"),
    ("\n".join(BASE.splitlines()[:15]), 15, "missing MOTION"),
    (edit(20, "1 0 0 90 0 0 0 0"), 20, "must hold 9 values"),
    (edit(20, "1 0 0 90 0 0 0 0 x"), 20, "'x' is not a number"),
    (edit(20, "1 0 0 90 0 0 0 0 nan"), 20, "NaN or inf"),
    (edit(18, "Frame Time: 0"), 18, "positive number of seconds"),
    (edit(18, "Frame Time: -0.1"), 18, "positive number of seconds"),
    (edit(18, "Frame Time: nan"), 18, "positive number of seconds"),
    (edit(17, "Frames: 3"), 20, "'Frames: 3' (line 17) but only 2 data rows"),
    (edit(17, "Frames: 1"), 20, "more data rows than 'Frames: 1'"),
    (edit(17, f"Frames: {MAX_FRAMES + 1}"), 17, "absurd"),
    (edit(17, "Frames: 0"), 17, "no motion"),
    (edit(17, "Frames: two"), 17, "whole number"),
    (edit(14, None), 3, "not closed before MOTION"),
    (edit(16, "}\nMOTION"), 16, "without a matching"),
    (edit(8, "    CHANNELS 3 Zrotation Xrotation Yrotation"), 9, "has two CHANNELS"),
    (edit(1, "HIERARCHIE"), 1, "starts with HIERARCHY"),
    (edit(6, "  JOINT hips"), 6, "used twice"),
    (edit(16, "ROOT other\n{\nOFFSET 0 0 0\nCHANNELS 0\n}\nMOTION"), 16, "only one ROOT"),
    ("   \n\n", 1, "empty"),
]


@pytest.mark.parametrize(("text", "line", "message"), ERRORS)
def test_reader_errors_name_the_file_and_line(text, line, message):
    with pytest.raises(DataError) as info:
        parse_bvh(text, "walk.bvh")
    msg = str(info.value)
    assert msg.startswith(f"walk.bvh, line {line}: "), msg
    assert message in msg, msg
    assert "\n" not in msg


def test_reader_refuses_non_utf8_bytes_and_missing_files(tmp_path):
    path = tmp_path / "latin.bvh"
    path.write_bytes(BASE.encode().replace(b"OFFSET 0 -0.5 0", b"OFFSET 0 -0.5 0 \xe9", 1))
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}, line 8: the file is not UTF-8"):
        read_bvh(path)
    with pytest.raises(DataError, match="no such BVH file"):
        read_bvh(tmp_path / "missing.bvh")
    assert read_bvh(_write(tmp_path / "ok.bvh", BASE)).num_frames == 2


def _write(path, text):
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------------------------- writing
def test_procedural_round_trip_through_a_file(tmp_path):
    sk = humanoid_skeleton()
    pos, _ = generate_walks(2, frames=60, seed=4)
    for k in range(2):
        out = write_bvh(tmp_path / f"walk{k}.bvh", sk, pos[k], 1 / 30)
        clip = read_bvh(out)
        assert clip.skeleton.names == sk.names and clip.num_frames == 60
        assert clip.frame_time == pytest.approx(1 / 30)
        err = np.abs(clip.positions() - pos[k]).max() / sk.size
        assert err < ROUND_TRIP_RTOL
        other = independent_read(out.read_text())
        assert other["names"] == list(sk.names)
        assert np.abs(other["positions"] - pos[k]).max() / sk.size < ROUND_TRIP_RTOL


def test_cmu_round_trip_import_positions_export_import(tmp_path):
    for path in cmu_files():
        clip = read_bvh(path)
        pos = clip.positions()
        assert bone_length_error(pos, clip.skeleton) < 1e-9
        out = write_bvh(tmp_path / path.name, clip.skeleton, pos, clip.frame_time)
        back = read_bvh(out)
        again = back.positions()[:, back.skeleton.indices(clip.skeleton.names)]
        assert np.abs(again - pos).max() / clip.skeleton.size < ROUND_TRIP_RTOL, path.name
    # one exported rig checked by the independent reader: structure, channel counts and its own FK
    other = independent_read(out.read_text())
    idx = clip.skeleton.indices(other["names"])
    assert len(other["names"]) == clip.skeleton.num_joints
    assert np.abs(other["positions"] - pos[:, idx]).max() / clip.skeleton.size < ROUND_TRIP_RTOL


def test_bvhio_reads_the_exported_file_to_the_same_positions(tmp_path):
    bvhio = pytest.importorskip("bvhio")
    sk = humanoid_skeleton()
    pos, _ = generate_walks(1, frames=20, seed=5)
    out = write_bvh(tmp_path / "walk.bvh", sk, pos[0], 1 / 30)
    root = bvhio.readAsHierarchy(str(out))
    layout = [joint for joint, _, _ in root.layout()]
    idx = sk.indices([j.Name for j in layout])
    for f in (0, 7, 19):
        root.loadPose(f)
        got = np.array([list(j.PositionWorld) for j in layout])
        assert np.abs(got - pos[0, f, idx]).max() / sk.size < ROUND_TRIP_RTOL  # bvhio works in float32


def test_write_from_rotations_with_another_order(tmp_path):
    sk = humanoid_skeleton()
    pos, _ = generate_walks(1, frames=15, seed=6)
    rot, root_t = positions_to_rotations(sk, pos[0])
    out = write_bvh(tmp_path / "xyz.bvh", sk, rot, 0.04, root_translation=root_t, order="XYZ")
    clip = read_bvh(out)
    assert set(clip.skeleton.rotation_orders) == {"XYZ"}
    assert clip.channels[0] == ("Xposition", "Yposition", "Zposition", "Xrotation", "Yrotation", "Zrotation")
    np.testing.assert_allclose(clip.skeleton.offsets[0], 0.0)  # the root's position lives in its channels
    assert np.abs(clip.positions() - pos[0]).max() / sk.size < ROUND_TRIP_RTOL
    # leaves without an End Site in the skeleton get one, so every bone can be drawn
    sub = sk.subset([n for n in sk.names if "Toe" not in n])
    text = write_bvh(tmp_path / "sub.bvh", sub, pos[0][:, sk.indices(sub.names)], 0.04).read_text()
    assert text.count("End Site") == sum(1 for kids in sub.children if not kids)


def test_writer_refuses_bad_input_and_leaves_the_old_file(tmp_path):
    sk = humanoid_skeleton()
    pos, _ = generate_walks(1, frames=5)
    target = tmp_path / "keep.bvh"
    target.write_text("old")
    bad = pos[0].copy()
    bad[2, 3, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        write_bvh(target, sk, bad, 1 / 30)
    with pytest.raises(ConfigError, match="frame_time"):
        write_bvh(target, sk, pos[0], 0.0)
    with pytest.raises(ConfigError, match="shape"):
        write_bvh(target, sk, pos[0][:, :5], 1 / 30)
    renamed = type(sk)(tuple("Left Hand" if n == "LeftHand" else n for n in sk.names), sk.parents, sk.offsets)
    with pytest.raises(ConfigError, match="whitespace"):
        write_bvh(target, renamed, pos[0], 1 / 30)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.bvh"]  # no temporary file left behind


# ----------------------------------------------------------------------------------------------- time
def test_resample_clip_halves_and_doubles_the_frame_rate(tmp_path):
    sk = humanoid_skeleton()
    pos, _ = generate_walks(1, frames=41, fps=60.0, seed=7)
    clip = read_bvh(write_bvh(tmp_path / "w.bvh", sk, pos[0], 1 / 60))
    half = resample_clip(clip, 30.0)
    assert half.num_frames == 21 and half.fps == pytest.approx(30.0)
    np.testing.assert_allclose(half.positions(), clip.positions()[::2], atol=1e-9)
    double = resample_clip(half, 60.0)
    assert double.num_frames == 41
    np.testing.assert_allclose(double.positions()[::2], half.positions(), atol=1e-9)
    assert bone_length_error(double.positions(), clip.skeleton) < 1e-9  # slerp keeps bones rigid
    assert np.abs(double.positions() - clip.positions()).max() < 0.02  # mid-frames close to the truth


def test_resample_positions_is_exact_for_linear_motion():
    t = np.arange(11) / 10.0
    pos = np.stack([t, 2 * t, -t], axis=-1)[:, None, :]  # [11, 1, 3]
    out = resample_positions(pos, 10.0, 25.0)
    assert out.shape == (26, 1, 3)
    s = np.arange(26) / 25.0
    np.testing.assert_allclose(out[:, 0], np.stack([s, 2 * s, -s], axis=-1), atol=1e-12)
    with pytest.raises(ConfigError):
        resample_positions(pos, 10.0, -1.0)


def test_windows_count_and_content():
    seq = np.arange(23)[:, None] * np.ones((1, 2))
    w = windows(seq, 10, 4)
    assert w.shape == (1 + (23 - 10) // 4, 10, 2)
    np.testing.assert_array_equal(w[:, 0, 0], [0, 4, 8, 12])
    np.testing.assert_array_equal(w[2, :, 1], np.arange(8, 18))
    assert windows(seq, 30, 1).shape == (0, 30, 2)
    with pytest.raises(ConfigError):
        windows(seq, 10, 0)
