"""Stick-figure strips: image size, content, invariances of the layout, atomic writes and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.errors import ConfigError, DataError
from engine.motion import generate_walks, humanoid_skeleton
from engine.motion.render import (
    frame_indices,
    render_strip,
    screen_coordinates,
    side_of,
    strip_layout,
)

SKELETON = humanoid_skeleton()
BLUE, RED = (40, 90, 200), (200, 50, 40)


@pytest.fixture(scope="module")
def walks() -> np.ndarray:
    """Two procedural walks [2, 40, 22, 3] (metres, Y up)."""
    pos, _ = generate_walks(2, frames=40, fps=30.0, seed=3, split="test")
    return pos


def _pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"))


def _count(img: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int(np.all(img == np.array(colour, dtype=np.uint8), axis=-1).sum())


def test_strip_size_and_content(tmp_path, walks):
    path = render_strip(walks, SKELETON, tmp_path / "strip.png", frames=6, size=(80, 120))
    img = _pixels(path)
    assert img.shape == (2 * 120, 6 * 80, 3)  # rows = motions, columns = frames
    # each cell holds a figure with both body sides drawn, and no cell is blank
    for i in range(2):
        for c in range(6):
            cell = img[i * 120:(i + 1) * 120, c * 80:(c + 1) * 80]
            assert _count(cell, BLUE) > 20 and _count(cell, RED) > 20
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_single_motion_and_fewer_frames_than_cells(tmp_path, walks):
    img = _pixels(render_strip(walks[0, :5], SKELETON, tmp_path / "one.png", frames=8, size=(64, 96)))
    assert img.shape == (96, 5 * 64, 3)


def test_frame_indices_are_even_and_include_the_ends():
    idx = frame_indices(61, 7)
    assert idx.tolist() == [0, 10, 20, 30, 40, 50, 60]
    assert frame_indices(3, 8).tolist() == [0, 1, 2]
    assert frame_indices(10, 1).tolist() == [0]


def _rotate_y(p: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    r = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    return p @ r.T


def test_travel_view_is_a_side_view_whatever_the_heading(walks):
    """Rotating a motion about the vertical axis leaves its travel-view screen coordinates unchanged."""
    rotated = _rotate_y(walks, 1.1)
    np.testing.assert_allclose(screen_coordinates(rotated, "travel"), screen_coordinates(walks, "travel"),
                               atol=1e-9)
    # the horizontal axis is the root's net displacement: the root moves only along it
    screen = screen_coordinates(walks, "travel")
    travel = np.linalg.norm(walks[:, -1, 0, [0, 2]] - walks[:, 0, 0, [0, 2]], axis=-1)
    np.testing.assert_allclose(np.abs(screen[:, -1, 0, 0] - screen[:, 0, 0, 0]), travel, rtol=1e-9)
    # fixed views are the plain planes
    np.testing.assert_array_equal(screen_coordinates(walks, "x"), walks[..., [0, 1]])
    np.testing.assert_array_equal(screen_coordinates(walks, "z"), walks[..., [2, 1]])


def test_image_is_invariant_to_units_and_placement(tmp_path, walks):
    """One scale fitted to the data: centimetres, a shifted floor or a shifted start draw the same strip."""
    base = _pixels(render_strip(walks, SKELETON, tmp_path / "m.png", frames=4))
    moved = walks * 100.0 + np.array([250.0, -30.0, 70.0])
    np.testing.assert_array_equal(_pixels(render_strip(moved, SKELETON, tmp_path / "cm.png", frames=4)), base)


def test_layout_fits_the_tallest_pose_and_widest_reach(walks):
    cell = (90, 150)
    screen = screen_coordinates(walks)
    idx, scale, ground, margin = strip_layout(screen, 5, cell)
    shown = screen[:, idx]
    assert ground == pytest.approx(shown[..., 1].min())
    top = (shown[..., 1].max() - ground) * scale
    reach = np.abs(shown[..., 0] - shown[:, :, :1, 0]).max() * scale
    # everything fits in the cell less its margins, and one of the two constraints is tight
    assert top <= cell[1] - 2 * margin + 1e-9 and reach <= cell[0] / 2 - margin + 1e-9
    assert max(top / (cell[1] - 2 * margin), reach / (cell[0] / 2 - margin)) == pytest.approx(1.0)


def test_side_of_joint_names():
    assert [side_of(n) for n in ("LeftFoot", "CC_Base_L_Thigh", "L_Hip", "leftArm")] == ["left"] * 4
    assert [side_of(n) for n in ("RightArm", "CC_Base_R_Calf", "RThumb")] == ["right"] * 3
    assert [side_of(n) for n in ("Hips", "LowerBack", "Root", "CC_Base_Head", "Lhipjoint")] == ["centre"] * 5


def test_bad_input_raises_and_writes_nothing(tmp_path, walks):
    target = tmp_path / "keep.png"
    target.write_bytes(b"old")
    with pytest.raises(DataError, match="joints"):
        render_strip(walks[:, :, :10], SKELETON, target)
    with pytest.raises(DataError, match="shape"):
        render_strip(walks[0, 0], SKELETON, target)
    bad = walks.copy()
    bad[0, 3, 2, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        render_strip(bad, SKELETON, target)
    with pytest.raises(ConfigError, match="frames"):
        render_strip(walks, SKELETON, target, frames=0)
    with pytest.raises(ConfigError, match="size"):
        render_strip(walks, SKELETON, target, size=(8, 8))
    with pytest.raises(ConfigError, match="view"):
        render_strip(walks, SKELETON, target, view="top")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]
