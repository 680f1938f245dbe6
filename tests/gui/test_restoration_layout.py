"""The Restore tab's plots and layout: every plot in the mode of what it shows, and a tab that fits the window.

- Images and curves in turn, in any order: image plots have row 0 at the top, square pixels and no axes; curve
  plots have y up, a free aspect and their axes (a plot left in image mode drew -x^2 as a cup).
- At the default window size the Restore tab fits, and a restoration with long tile titles (MNIST HDM-SPDE vs
  DDPM) does not widen the window.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.gui.helpers import load_restoration_item

pytestmark = pytest.mark.gui


def _mode(plot) -> tuple[bool, bool, bool]:
    """(y inverted, aspect locked, left axis shown) of a plot widget."""
    item = plot.getPlotItem()
    box = item.getViewBox()
    return bool(box.yInverted()), bool(box.state["aspectLocked"]), bool(item.getAxis("left").isVisible())


IMAGE_MODE, CURVE_MODE = (True, True, False), (False, False, True)


@pytest.fixture
def view(themed_app, qtbot):
    from studio.views.restoration_view import RestorationView

    v = RestorationView()
    qtbot.addWidget(v)
    v.resize(900, 700)
    v.show()
    return v


def _show(view, images: bool) -> list:
    """Show an item of the kind, its degraded preview, a live frame and the result tiles; the plots drawn."""
    from studio.views.restoration_view import TileContent

    rng = np.random.default_rng(0)
    if images:
        item, grid = rng.random((1, 8, 8)).astype(np.float32), None
        extra = {}
    else:
        grid = np.linspace(-1.0, 1.0, 20)
        item = -(grid**2)[None].astype(np.float32)
        extra = {"reference": item}
    view.set_item(item, grid)
    view.set_degraded_preview(TileContent("Degraded (preview)", item, "preview", **extra))
    assert _mode(view.live) == (IMAGE_MODE if images else CURVE_MODE)  # a new item: an empty live plot of its kind
    view.begin_live()
    view.show_frame({"x0": item[None], "t": 0.5, "step": 1, "total": 2, "label": "prior"})
    view.show_results([TileContent(title, item, "", **extra) for title in ("Original", "Degraded", "Restored")],
                      None if images else {"original": item, "points": None, "observed": item, "naive": item,
                                           "restorations": [("prior", item, item[None])]})
    return [view.canvas, view.degraded.plot, view.live] + [tile.plot for tile in view.tiles[:3]]


def test_plots_follow_the_kind_of_item(view):
    for images in (True, False, True, False, False, True):
        expected = IMAGE_MODE if images else CURVE_MODE
        for plot in _show(view, images):
            assert _mode(plot) == expected, (images, plot)
        if not images:  # y up: the top of the -x^2 curve is at the top of the plot
            (_, _), (y0, y1) = view.degraded.plot.getPlotItem().getViewBox().viewRange()
            assert y0 < y1
    # invalid parameters: the degraded tile's note, in the mode of the item (here an image, then a curve)
    view.set_degraded_preview(None)
    assert _mode(view.degraded.plot) == IMAGE_MODE
    _show(view, images=False)
    view.set_degraded_preview(None)
    assert _mode(view.degraded.plot) == CURVE_MODE


def test_long_tile_titles_wrap(view):
    from studio.views.restoration_view import TileContent

    item = np.zeros((1, 8, 8), dtype=np.float32)
    view.set_item(item, None)
    title = "Restored, HDM-SPDE prior (a_checkpoint_with_a_very_long_file_name_indeed)"
    view.show_results([TileContent(title, item, "PSNR 20.00 dB · SSIM 0.900 · consistency 1e-09")] * 4, None)
    tile = view.tiles[3]
    assert tile.title.wordWrap() and tile.title.toolTip() == title
    assert tile.minimumSizeHint().width() <= 120
    assert view.minimumSizeHint().width() <= 4 * 120 + 40


def test_restore_tab_fits_the_default_window(window, qtbot, shot):
    """The default flow: the Restore tab's MNIST comparison keeps the window's size, nothing is cut."""
    from engine import api
    from engine.paths import shared_data_dir

    if not {"mnist_hdm", "mnist_ddpm", "quadratic"} <= set(api.list_checkpoints()):
        pytest.skip("the bundled MNIST and quadratic checkpoints are not present")
    if not (shared_data_dir() / "images" / "mnist").is_dir():
        pytest.skip("the shared MNIST test images are not present")
    from PySide6.QtWidgets import QScrollArea

    from studio.panels.restoration_panel import RestorationPanel

    tabs = window.central_tabs
    panel = next(tabs.widget(i) for i in range(tabs.count()) if isinstance(tabs.widget(i), RestorationPanel))
    width = window.width()
    window.central_tabs.setCurrentWidget(panel)  # loads its first checkpoint's item
    qtbot.waitUntil(lambda: panel.loaded is not None and not window.jobs.busy, timeout=30_000)
    assert panel.select_checkpoint("mnist_hdm")
    qtbot.waitUntil(lambda: panel.loaded.checkpoint == "mnist_hdm" and not window.jobs.busy, timeout=30_000)
    panel.steps.setValue(2)
    panel.restorations.setValue(1)
    assert panel.compare.isChecked() and panel.compare.isEnabled()
    assert panel.start_restore(), panel.error.text()
    qtbot.waitUntil(lambda: panel.last_run is not None and not window.jobs.busy, timeout=60_000)
    qtbot.wait(100)  # let pending layout requests run
    assert len(panel.last_run.runs) == 2 and sum(t.isVisible() for t in panel.view.tiles) == 4
    assert window.width() == width, "the restoration widened the window"
    assert window.minimumSizeHint().width() <= width
    # nothing cut: the live estimate and every tile have room, the controls are not squeezed
    assert panel.view.live.width() >= 100
    assert all(t.width() >= 96 for t in panel.view.tiles if t.isVisible())
    scroll = panel.findChild(QScrollArea)
    assert scroll.viewport().width() >= scroll.widget().minimumSizeHint().width()
    source = panel.source
    assert source.fontMetrics().horizontalAdvance(source.currentText()) + 24 <= source.width()
    shot(window, "restoration_default_window_mnist")

    # a curve model next: its plots have y up, a free aspect and axes (not the image mode of the MNIST run)
    assert panel.select_checkpoint("quadratic")
    qtbot.waitUntil(lambda: panel.loaded.checkpoint == "quadratic" and not window.jobs.busy, timeout=30_000)
    for plot in (panel.view.canvas, panel.view.degraded.plot, panel.view.live):
        assert _mode(plot) == CURVE_MODE, plot
    assert window.width() == width
    qtbot.wait(100)
    shot(panel, "restoration_curve_after_images")


def test_a_narrow_window_lends_the_side_docks_to_the_restore_tab(window, qtbot):
    """At 1280 px the side columns left the Restore tab about 430 px: controls cut ("Ope…", "Can…"), tiles squeezed
    until their captions ran over their plots (third GUI audit). The docks, which the tab does not use, step aside
    while it is shown and come back with the Trajectory tab; the layout saved is the user's."""
    side = [d for name, d in window.docks.items() if name != "log"]
    window.central_tabs.setCurrentWidget(window.restoration_panel)
    qtbot.wait(50)
    assert all(d.isVisible() for d in side)  # 1560 px: room enough, nothing moves
    window.central_tabs.setCurrentWidget(window.view)
    window.resize(1280, 720)
    qtbot.wait(50)
    window.central_tabs.setCurrentWidget(window.restoration_panel)
    qtbot.waitUntil(lambda: window.central_tabs.width() >= 700, timeout=2000)
    assert not any(d.isVisible() for d in side) and window.docks["log"].isVisible()
    panel, view = window.restoration_panel, window.restoration_panel.view
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=30_000)
    load_restoration_item(qtbot, panel, "quadratic")  # generated data: no shared files needed
    panel.steps.setValue(2)
    panel.restorations.setValue(1)
    assert panel.start_restore()
    qtbot.waitUntil(lambda: panel.last_run is not None and not window.jobs.busy, timeout=30_000)
    qtbot.wait(50)  # too short for the results: they scroll, not squeezed onto each other (captions over plots)
    assert view.height() >= view.layout().minimumSize().height(), (view.height(), view.layout().minimumSize())
    assert view.width() <= view.parentWidget().width()
    window.save_layout()  # closing on the Restore tab: the docks are saved as the user had them
    assert all(d.isVisible() for d in side)
    window.central_tabs.setCurrentWidget(window.view)
    window.central_tabs.setCurrentWidget(window.restoration_panel)
    assert not any(d.isVisible() for d in side)
    window.central_tabs.setCurrentWidget(window.view)
    assert all(d.isVisible() for d in side)


def test_resizing_on_the_restore_tab_lends_or_gives_back_the_docks(window, qtbot):
    """The docks stepped aside only when the tab was chosen: narrowing the window on the Restore tab left it cut,
    and a dock the user closed from the View menu meanwhile came back with the Trajectory tab."""
    side = [d for name, d in window.docks.items() if name != "log"]
    window.central_tabs.setCurrentWidget(window.restoration_panel)
    qtbot.wait(50)
    assert all(d.isVisible() for d in side)
    window.resize(1280, 720)
    qtbot.waitUntil(lambda: not any(d.isVisible() for d in side), timeout=3000)
    window.resize(1900, 980)
    qtbot.waitUntil(lambda: all(d.isVisible() for d in side), timeout=3000)
    assert window.central_tabs.width() >= 700
    window.resize(1280, 720)
    qtbot.waitUntil(lambda: not any(d.isVisible() for d in side), timeout=3000)
    prior = window.docks["prior"]
    prior.toggleViewAction().trigger()  # shown from the View menu: the user's now
    prior.toggleViewAction().trigger()  # and closed again
    window.central_tabs.setCurrentWidget(window.view)
    assert not prior.isVisible() and all(d.isVisible() for d in side if d is not prior)

