"""The Restore tab draws motions as stick figures: a filmstrip of a few frames in every plot.

One coordinate of one joint over time did not let a user judge a restored motion; the input, the degraded
preview, the live estimate and every result now show the same frames side by side (side view), with the
degraded item's missing frames (in-betweening) or joints (missing-joints) dashed. The Channel toggle brings
back the per-channel curves; curves and images are drawn as before.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.gui.helpers import load_restoration_item

pytestmark = pytest.mark.gui

BONES = 21  # the procedural walker: 22 joints


@pytest.fixture
def panel(restoration_panel):
    return restoration_panel




def _restore(qtbot, panel, on_frame=None):
    panel.steps.setValue(3)
    panel.restorations.setValue(2)
    if on_frame is not None:
        panel.view.frame_drawn.connect(on_frame)
    before = panel.last_run
    assert panel.start_restore(), panel.error.text()
    qtbot.waitUntil(lambda: panel.last_run is not before and not panel.runner.busy, timeout=60_000)
    if on_frame is not None:
        panel.view.frame_drawn.disconnect(on_frame)
    return panel.last_run


def _bones(line) -> tuple[np.ndarray, np.ndarray]:
    """A NaN-separated bone polyline -> its bones' end points x [B, 2], y [B, 2] (each bone: 2 points, a NaN)."""
    x, y = line
    assert len(x) % 3 == 0 and np.isnan(x[2::3]).all()
    return np.stack([x[0::3], x[1::3]], axis=1), np.stack([y[0::3], y[1::3]], axis=1)


def _slots(strip, line) -> np.ndarray:
    """The filmstrip slot of each bone (by its midpoint; exact for figures of the item itself)."""
    bx, _ = _bones(line)
    return np.rint(bx.mean(axis=1) / strip.lane).astype(int)


def test_filmstrip_marks_missing_frames_and_joints():
    from engine.motion import positions_to_channels
    from engine.motion.procedural import generate_walks, humanoid_skeleton
    from studio.views.media import Filmstrip

    skeleton = humanoid_skeleton()
    walk = positions_to_channels(np.asarray(generate_walks(1, frames=32, seed=0)[0]))[0]  # [66, 32]
    strip = Filmstrip(walk, skeleton.parents, shown=6)
    assert strip.frames.tolist() == [0, 6, 12, 19, 25, 31]
    (known, lost) = strip.lines(walk)
    assert len(_bones(known)[0]) == 6 * BONES and len(lost[0]) == 0
    assert np.bincount(_slots(strip, known)).tolist() == [BONES] * 6  # one figure per slot
    # in-betweening: frames 6 and 19 missing -> their figures are all dashed, at the original's place
    observed = np.ones_like(walk, dtype=bool)
    observed[:, [6, 19]] = False
    known, lost = strip.lines(np.zeros_like(walk), observed, reference=walk)
    assert sorted(set(_slots(strip, lost))) == [1, 3] and len(_bones(lost)[0]) == 2 * BONES
    assert np.isfinite(lost[0][~np.isnan(lost[0])]).all()
    # missing-joints: joint 3 (the chest: 4 bones) missing in every frame
    observed = np.ones_like(walk, dtype=bool)
    observed[9:12] = False
    known, lost = strip.lines(walk, observed)
    assert len(_bones(lost)[0]) == 6 * 4 and len(_bones(known)[0]) == 6 * (BONES - 4)


def test_figures_are_seen_from_the_side_of_their_travel():
    """The view was a fixed (x, y): cmu07 walks along z, so its figures were seen from the front, the gait and
    the progress invisible (regression audit of this session)."""
    from engine.motion import positions_to_channels
    from engine.motion.procedural import generate_walks, humanoid_skeleton
    from studio.views.media import Filmstrip, side_projection, travel_heading

    walk = np.asarray(generate_walks(1, frames=32, seed=0)[0])[0]  # [T, J, 3]
    hx, hz = travel_heading(walk)
    x, z = walk[..., 0], walk[..., 2]
    turned = np.stack([x * hz - z * hx, walk[..., 1], x * hx + z * hz], axis=-1)  # the same walk, along +z
    np.testing.assert_allclose(travel_heading(turned), [0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(side_projection(turned, travel_heading(turned)), side_projection(walk, (hx, hz)),
                               atol=1e-9)  # the same side view whichever way it walks
    progress = np.ptp(side_projection(turned, travel_heading(turned))[:, 0, 0])
    assert np.ptp(side_projection(turned)[:, 0, 0]) < 0.1 * progress  # a fixed x saw only the sideways sway
    # missing-joints with the root lost: the known bones stay on the reference's root, not dropped to 0
    skeleton = humanoid_skeleton()
    channels = positions_to_channels(walk)
    strip = Filmstrip(channels, skeleton.parents, shown=6)
    observed = np.ones_like(channels, dtype=bool)
    observed[:3] = False
    degraded = channels.copy()
    degraded[:3] = 0.0
    known, _ = strip.lines(degraded, observed, reference=channels)
    full, _ = strip.lines(channels)
    shown = ~np.isnan(full[0])
    mask = np.isin(np.round(full[0][shown], 9), np.round(known[0][~np.isnan(known[0])], 9))
    assert mask.sum() >= len(known[0][~np.isnan(known[0])]) > 0  # every known bone where the original has it


def test_walk_inbetweening_as_stick_figures(panel, qtbot, tiny_walk_checkpoint, shot):
    load_restoration_item(qtbot, panel, tiny_walk_checkpoint)
    view = panel.view
    assert panel.loaded.skeleton is not None and len(panel.loaded.skeleton[0]) == BONES + 1
    assert view.figures_button.isVisible() and view.figures_button.isChecked() and view.strip is not None
    strip = view.strip
    figures = len(strip.frames)
    assert figures == 6  # a wide panel: six frames fit
    # the input: one figure per frame, all bones known
    known, lost = view.canvas.figures.polylines()
    assert np.bincount(_slots(strip, known)).tolist() == [BONES] * figures and len(lost[0]) == 0
    x, _ = view.canvas.curve.getData()
    assert x is None or len(x) == 0  # no channel curve
    panel.set_task("inbetween")
    panel.mode.setCurrentText("keyframes")
    panel.factor.setValue(4)
    assert panel.error.text() == ""
    # the preview: the kept frames drawn, the missing ones dashed
    kept = panel.current_degradation().mask.all(axis=0)[strip.frames]
    assert kept.any() and not kept.all()
    known, lost = view.degraded.figures.polylines()
    assert set(_slots(strip, known)) == set(np.flatnonzero(kept))
    assert set(_slots(strip, lost)) == set(np.flatnonzero(~kept))

    live: list[int] = []

    def on_frame(n: int) -> None:
        line, _ = view.live_figures.polylines()
        live.append(len(_bones(line)[0]))

    run = _restore(qtbot, panel, on_frame)
    assert live and set(live) == {figures * BONES}  # every live estimate drawn as figures
    tiles = [t for t in view.tiles if t.isVisible()]
    assert [t.title.toolTip().split(",")[0] for t in tiles] == ["Original", "Degraded", "Restored"]
    for tile in tiles:
        known, lost = tile.figures.polylines()
        assert len(_bones(known)[0]) + len(_bones(lost)[0]) == figures * BONES, tile.title.toolTip()
        assert np.isfinite(_bones(known)[0]).all() and np.isfinite(_bones(known)[1]).all()
        assert tile.main.getData()[0] is None or len(tile.main.getData()[0]) == 0  # no channel curve
    kept = run.runs[0][1].degradation.mask.all(axis=0)[strip.frames]
    assert set(_slots(strip, tiles[1].figures.polylines()[1])) == set(np.flatnonzero(~kept))
    assert len(tiles[0].figures.polylines()[1][0]) == 0 and len(tiles[2].figures.polylines()[1][0]) == 0
    assert view.overlay.isVisible()  # the time detail of one channel stays under the results
    qtbot.wait(50)
    shot(panel, "restore_motion_inbetween_figures")

    # Channel: the per-channel curves come back everywhere, the figures go
    view.curves_button.click()
    assert view.strip is None and view.channel_note.text().endswith("not as stick figures")
    for tile in tiles:
        assert len(tile.figures.polylines()[0][0]) == 0
    assert len(tiles[0].main.getData()[0]) == run.item.grid.size
    assert len(view.canvas.curve.getData()[0]) == run.item.grid.size
    assert len(view.live_curves.getData()[0]) > 0 and len(view.live_figures.polylines()[0][0]) == 0
    assert not view.canvas.getPlotItem().getViewBox().state["aspectLocked"]
    qtbot.wait(50)
    shot(panel, "restore_motion_inbetween_channel")
    view.figures_button.click()
    assert len(_bones(tiles[2].figures.polylines()[0])[0]) == figures * BONES
    assert len(_bones(view.live_figures.polylines()[0])[0]) == figures * BONES


def test_missing_joints_dash_their_bones(panel, qtbot, tiny_walk_checkpoint):
    load_restoration_item(qtbot, panel, tiny_walk_checkpoint)
    panel.set_task("missing-joints")
    panel.joints.setText("3, 16")  # the chest (4 bones) and the left foot (2 bones)
    strip = panel.view.strip
    figures = len(strip.frames)
    known, lost = panel.view.degraded.figures.polylines()
    assert len(_bones(lost)[0]) == figures * 6 and len(_bones(known)[0]) == figures * (BONES - 6)
    _restore(qtbot, panel)
    degraded = panel.view.tiles[1]
    assert len(_bones(degraded.figures.polylines()[1])[0]) == figures * 6
    restored = panel.view.tiles[2]
    assert len(_bones(restored.figures.polylines()[0])[0]) == figures * BONES


def test_curves_and_images_have_no_figures(themed_app, qtbot):
    from studio.views.restoration_view import RestorationView, TileContent

    view = RestorationView()
    qtbot.addWidget(view)
    view.show()
    grid = np.linspace(0.0, 1.0, 16)
    for item, g in ((np.sin(grid)[None], grid), (np.zeros((1, 8, 8)), None), (np.zeros((66, 16)), grid)):
        view.set_item(item, g, motion=item.shape[0] == 66)  # a motion without a skeleton: its channels
        view.set_degraded_preview(TileContent("Degraded (preview)", item))
        view.show_results([TileContent("Original", item)], None)
        assert view.strip is None and not view.figures_button.isVisible()
        for items in (view.canvas.figures, view.degraded.figures, view.tiles[0].figures):
            assert all(len(x) == 0 for x, _ in items.polylines())


def test_restore_tab_figures_in_the_window(window, qtbot, tiny_walk_checkpoint, shot):
    """Screenshots of the Restore tab at the default and a small window: in-betweening, then missing joints."""
    from tests.gui.helpers import wait_idle

    panel = window.restoration_panel
    window.central_tabs.setCurrentWidget(panel)
    wait_idle(qtbot, window)
    load_restoration_item(qtbot, panel, tiny_walk_checkpoint)
    panel.set_task("inbetween")
    panel.factor.setValue(4)
    _restore(qtbot, panel)
    qtbot.wait(100)
    shot(window, "restore_walk_inbetween_1560x980")
    window.resize(1280, 720)
    qtbot.wait(100)
    shot(window, "restore_walk_inbetween_1280x720")
    panel.set_task("missing-joints")
    panel.joints.setText("3, 16")
    _restore(qtbot, panel)
    qtbot.wait(100)
    shot(window, "restore_walk_missing_joints_1280x720")
    window.resize(1560, 980)
    qtbot.wait(100)
    shot(window, "restore_walk_missing_joints_1560x980")
    assert all(t.width() >= 96 for t in panel.view.tiles if t.isVisible())
