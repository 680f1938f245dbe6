"""Image grids and stick figures: how the studio shows images and motions.

Images [K, C, H, W] are tiled into one picture (a pyqtgraph ``ImageItem``, row-major, one pixel
of gap between tiles) so a live frame is one texture upload however many images it holds.
Motions are joint positions [K, T, J, 3] (``engine.motion.channels_to_positions``) drawn as stick
figures under a fixed side projection: the horizontal axis is the world's x (walking direction),
the vertical its y (up); z (depth) is dropped. All bones of all figures are one NaN-separated
polyline, so a frame is one ``setData``. A :class:`Filmstrip` lays a few frames of one motion
[3J, T] (channels, ``engine.motion.positions_to_channels``) side by side, so motions compare at a glance.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QWidget

from studio.views.plotting import ThemedPlotWidget, series_color


def tile_images(images: np.ndarray, columns: int | None = None, gap: int = 1, fill: float = 1.0) -> np.ndarray:
    """Tile ``images`` [K, C, H, W] (C = 1 or 3) into one picture [rows*(H+gap)-gap, cols*(W+gap)-gap(, 3)].

    Row-major order (image k at row ``k // cols``, column ``k % cols``); ``columns`` defaults to
    ``ceil(sqrt(K))``; the gaps and unused tiles hold ``fill``.
    """
    x = np.asarray(images, dtype=np.float32)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape [K, 1 or 3, H, W], got {x.shape}")
    k, c, h, w = x.shape
    cols = max(1, min(k, columns or math.ceil(math.sqrt(k))))
    rows = math.ceil(k / cols)
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, c), fill, dtype=np.float32)
    for i in range(k):
        r, q = divmod(i, cols)
        out[r * (h + gap): r * (h + gap) + h, q * (w + gap): q * (w + gap) + w] = np.moveaxis(x[i], 0, -1)
    return out[..., 0] if c == 1 else out


class ImageGridView(ThemedPlotWidget):
    """A tiled grid of images with a fixed intensity range (data units: 0 black, 1 white).

    Args:
        levels: the intensity range mapped to black..white; values outside are clipped (noisy
            states at large t overshoot it, which is what the eye should see: saturated noise).
    """

    def __init__(self, parent: QWidget | None = None, title: str | None = None, *,
                 levels: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__(parent, title=title)
        self.levels = levels
        self.image = pg.ImageItem(axisOrder="row-major")
        self.addItem(self.image)
        item = self.getPlotItem()
        item.showGrid(x=False, y=False)
        item.hideAxis("left")
        item.hideAxis("bottom")
        view = item.getViewBox()
        view.setAspectLocked(True)
        view.invertY(True)  # row 0 at the top, as images are read
        view.setMouseEnabled(x=False, y=False)
        self.shape: tuple[int, ...] | None = None  # of the last tiled picture

    def set_images(self, images: np.ndarray, columns: int | None = None) -> None:
        """Show ``images`` [K, C, H, W]."""
        tiled = np.clip(tile_images(images, columns), *self.levels)
        refit = tiled.shape != self.shape
        self.image.setImage(tiled, levels=self.levels, autoLevels=False)
        self.shape = tiled.shape
        self.hide_placeholder()
        if refit:
            self.getPlotItem().getViewBox().autoRange(padding=0.01)

    def picture(self) -> np.ndarray | None:
        """The picture shown (for tests: what the user sees, before the colour map)."""
        return self.image.image

    def clear_images(self, placeholder: str = "") -> None:
        """Show nothing (and ``placeholder``, if given) until the next :meth:`set_images`."""
        self.image.clear()
        self.shape = None
        self.show_placeholder(placeholder)


def bone_pairs(parents: list[int] | tuple[int, ...]) -> np.ndarray:
    """Bones as (parent, child) joint index pairs [B, 2] from a parent list (``parents[0] == -1``)."""
    return np.array([(p, j) for j, p in enumerate(parents) if p >= 0], dtype=np.int64).reshape(-1, 2)


def travel_heading(positions: np.ndarray) -> np.ndarray:
    """The unit (x, z) direction in which a motion [T, J, 3] (y up) travels: its root's (joint 0's) net
    horizontal displacement; (1, 0) where the root does not move."""
    p = np.asarray(positions, dtype=np.float64)
    d = p[-1, 0, [0, 2]] - p[0, 0, [0, 2]]
    n = float(np.hypot(*d))
    return d / n if n > 1e-9 else np.array([1.0, 0.0])


def side_projection(positions: np.ndarray, heading: np.ndarray | tuple[float, float] = (1.0, 0.0)) -> np.ndarray:
    """Joint positions [..., 3] (y up) -> [..., 2]: the horizontal coordinate along ``heading`` (a unit (x, z)
    vector, e.g. :func:`travel_heading`) and y. Along the direction of travel a walker is seen from the side,
    where its gait shows; a fixed x showed cmu07, which walks along z, from the front."""
    p = np.asarray(positions, dtype=np.float64)
    h = np.asarray(heading, dtype=np.float64)
    return np.stack([p[..., 0] * h[..., 0] + p[..., 2] * h[..., 1], p[..., 1]], axis=-1)


def stick_polyline(points: np.ndarray, bones: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Figures [K, J, 2] shifted by ``offsets`` [K, 2] -> one NaN-separated polyline (x, y) of all bones."""
    p = np.asarray(points, dtype=np.float64) + np.asarray(offsets, dtype=np.float64)[:, None, :]
    k, b = p.shape[0], len(bones)
    seg = np.full((k, b, 3, 2), np.nan)
    seg[:, :, 0] = p[:, bones[:, 0]]
    seg[:, :, 1] = p[:, bones[:, 1]]
    seg = seg.reshape(-1, 2)
    return seg[:, 0], seg[:, 1]


class SkeletonView(ThemedPlotWidget):
    """Motions as stick figures side by side, animated by a QTimer at the clip's frame rate.

    ``set_motions(positions [K, T, J, 3], parents, fps)``: figure k is drawn at its own root
    track in a lane as wide as the widest figure's travel, so several samples walk in parallel
    lanes; the lanes fill rows and columns in the shape that draws the figures largest in the view
    (one row of six walkers, each travelling 6 m, drew 1.8 m figures 26 px tall in a square view).
    ``set_frame(i)`` shows frame i (the timer advances it, looping).
    """

    frame_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None, title: str | None = None, *, max_figures: int = 6) -> None:
        super().__init__(parent, title=title)
        self.max_figures = max_figures
        self.getPlotItem().getViewBox().setAspectLocked(True)
        self.getPlotItem().showGrid(x=False, y=True, alpha=0.15)
        self.getPlotItem().setLabel("bottom", "x (side view)")
        self._lines = self.plot([], [], pen=pg.mkPen(series_color(0), width=2), connect="finite")
        self._joints = self.plot([], [], pen=None, symbol="o", symbolSize=4, symbolBrush=series_color(0))
        self._positions: np.ndarray | None = None  # [K, T, J, 2] projected
        self._bones = np.zeros((0, 2), dtype=np.int64)
        self._offsets = np.zeros((0, 2))
        self._columns = 1
        self.frame = 0
        self.frames_drawn = 0
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._advance)

    def set_motions(self, positions: np.ndarray, parents: list[int] | tuple[int, ...], fps: float = 30.0, *,
                    animate: bool = True, heading: np.ndarray | None = None) -> None:
        """Show motions [K, T, J, 3] (the first ``max_figures``) with the skeleton ``parents``, each seen from the
        side of its own direction of travel, or along ``heading`` (x, z) for all (frames of one clip)."""
        shown = np.asarray(positions)[: self.max_figures]
        if heading is None:
            heading = np.stack([travel_heading(m) for m in shown])[:, None, None, :] if len(shown) else (1.0, 0.0)
        p = side_projection(shown, heading)
        first = self._positions is None or self._positions.shape != p.shape
        self._positions = p
        self._bones = bone_pairs(parents)
        self._layout()
        self.frame = min(self.frame, p.shape[1] - 1) if not first else 0
        self.hide_placeholder()
        if first:
            self.fit_range()
        self.timer.setInterval(max(15, int(1000 / max(fps, 1.0))))
        self._draw()
        if animate and p.shape[1] > 1:
            self.timer.start()
        else:
            self.timer.stop()

    def _layout(self) -> int:
        """Place the lanes (``_offsets``) in the number of columns that draws the figures largest in the view's
        current shape (the view keeps the aspect ratio); returns that number."""
        p = self._positions
        k = p.shape[0]
        span = float(np.ptp(p[..., 0], axis=(1, 2)).max()) if p.size else 1.0
        height = float(np.ptp(p[..., 1])) if p.size else 1.0
        lane_w, lane_h = max(span, 0.6 * height) * 1.15 + 1e-9, height * 1.25 + 1e-9
        box = self.getPlotItem().getViewBox()
        w, h = max(float(box.width()), 1.0), max(float(box.height()), 1.0)
        columns = max(range(1, k + 1), key=lambda c: (min(w / (c * lane_w), h / (math.ceil(k / c) * lane_h)), c))
        col, row = np.arange(k) % columns, np.arange(k) // columns
        self._offsets = np.stack([col * lane_w - p[:, :1, 0, 0].mean(axis=1), -row * lane_h], axis=1)
        self._columns = columns
        return columns

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        if getattr(self, "_positions", None) is not None and self._positions.shape[0] > 1:  # (None while built)
            before = self._columns
            if self._layout() != before:
                self.fit_range()
                self._draw()

    def fit_range(self) -> None:
        """Frame every figure over all its frames (live runs keep the range of the first, noisy, state)."""
        if self._positions is None or not np.isfinite(self._positions).all():
            return
        p = self._positions
        xs = p[..., 0] + self._offsets[:, None, None, 0]
        ys = p[..., 1] + self._offsets[:, None, None, 1]
        self.setRange(xRange=(float(xs.min()), float(xs.max())), yRange=(float(ys.min()), float(ys.max())),
                      padding=0.08)

    def set_frame(self, index: int) -> None:
        if self._positions is not None:
            self.frame = int(index) % self._positions.shape[1]
            self._draw()

    def stop(self) -> None:
        self.timer.stop()

    def clear_motions(self, placeholder: str = "") -> None:
        """Show no figure (and ``placeholder``, if given) until the next :meth:`set_motions`."""
        self.timer.stop()
        self._positions = None
        self.frame = 0
        self._lines.setData([], [])
        self._joints.setData([], [])
        self.show_placeholder(placeholder)

    @property
    def num_frames(self) -> int:
        return 0 if self._positions is None else int(self._positions.shape[1])

    def polyline(self) -> tuple[np.ndarray, np.ndarray]:
        """The bones drawn now (x, y), NaN-separated (for tests)."""
        x, y = self._lines.getData()
        return (np.zeros(0), np.zeros(0)) if x is None else (np.asarray(x), np.asarray(y))

    @Slot()
    def _advance(self) -> None:
        self.set_frame(self.frame + 1)

    def _draw(self) -> None:
        p = self._positions[:, self.frame]
        x, y = stick_polyline(p, self._bones, self._offsets)
        self._lines.setData(x, y, connect="finite")
        joints = p + self._offsets[:, None, :]
        self._joints.setData(joints[..., 0].ravel(), joints[..., 1].ravel())
        self.frames_drawn += 1
        self.frame_changed.emit(self.frame)


FILMSTRIP_FRAMES = 6  # frames of a motion in a filmstrip: six figures stay legible in a third of a window
MISSING_PEN = (QColor(128, 128, 128, 220), 2, Qt.PenStyle.DashLine)  # colour, width, style of missing bones


class Filmstrip:
    """The layout of a static filmstrip: ``frames`` (evenly spaced, first and last included) of a motion
    [3J, T] drawn left to right as stick figures, side view.

    It is made from the *reference* motion of a comparison (an original item): frame ``frames[k]`` of every
    motion drawn with it goes to slot k, shifted by what centres the reference's figure at ``k * lane``, so
    the original, degraded and restored versions of the item line up from plot to plot, at one scale
    (``x_range``, ``y_range``), and a root that drifts shows as a figure that leaves its slot.
    """

    def __init__(self, reference: np.ndarray, parents: list[int] | tuple[int, ...],
                 shown: int = FILMSTRIP_FRAMES) -> None:
        from engine.motion import channels_to_positions

        count = np.asarray(reference).shape[-1]
        self.frames = np.unique(np.linspace(0, count - 1, min(shown, count)).round().astype(np.int64))
        self.heading = travel_heading(channels_to_positions(np.asarray(reference)))  # the reference's side view
        self.bones = bone_pairs(parents)
        p = self.points(reference)
        width = float(np.ptp(p[..., 0], axis=1).max())
        height = float(np.ptp(p[..., 1]))
        self.lane = max(width, 0.4 * height) * 1.15 + 1e-9
        k = len(self.frames)
        centre = (p[..., 0].min(axis=1) + p[..., 0].max(axis=1)) / 2
        self.offsets = np.stack([np.arange(k) * self.lane - centre, np.zeros(k)], axis=1)
        xs = p[..., 0] + self.offsets[:, :1]
        self.x_range = (float(xs.min()), float(xs.max()))
        self.y_range = (float(p[..., 1].min()), float(p[..., 1].max()))

    def points(self, values: np.ndarray) -> np.ndarray:
        """The shown frames of a motion [3J, T] as side-view joints [K, J, 2]."""
        from engine.motion import channels_to_positions

        return side_projection(channels_to_positions(np.asarray(values)[:, self.frames]), self.heading)

    def ticks(self) -> list[tuple[float, str]]:
        """Bottom-axis ticks: each slot's frame number."""
        return [(k * self.lane, str(int(f))) for k, f in enumerate(self.frames)]

    def lines(self, values: np.ndarray, observed: np.ndarray | None = None, reference: np.ndarray | None = None
              ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """The bones of ``values`` [3J, T] as two NaN-separated polylines: (known, missing).

        ``observed`` (bool [3J, T], a degradation's mask) marks a bone missing at a frame where either of its
        joints lacks a coordinate; missing bones are drawn where ``reference`` has them (what was lost), else
        where ``values`` has them. Without ``observed`` every bone is known.
        """
        bones = len(self.bones)
        known = np.ones((len(self.frames), bones), dtype=bool)
        if observed is not None and reference is not None:
            # every other joint is stored relative to the root: where the root is lost (filled with zeros) the
            # figure is placed on the reference's root, not dropped to the origin; its own bones show as missing
            lost_root = ~np.asarray(observed, dtype=bool)[:3].all(axis=0)
            if lost_root.any():
                values = np.array(values, dtype=np.float64)
                values[:3, lost_root] = np.asarray(reference, dtype=np.float64)[:3, lost_root]
        if observed is not None:
            o = np.asarray(observed, dtype=bool)[:, self.frames]
            joints = o.reshape(-1, 3, o.shape[-1]).all(axis=1).T  # [K, J]
            known = joints[:, self.bones[:, 0]] & joints[:, self.bones[:, 1]]
        shown = stick_polyline(self.points(values), self.bones, self.offsets)
        lost = shown if reference is None else stick_polyline(self.points(reference), self.bones, self.offsets)
        return self._select(shown, known), self._select(lost, ~known)

    def _select(self, line: tuple[np.ndarray, np.ndarray], keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The bones of a :func:`stick_polyline` where ``keep`` [K, B] holds."""
        rows = keep.ravel()
        return line[0].reshape(-1, 3)[rows].ravel(), line[1].reshape(-1, 3)[rows].ravel()


class FilmstripItems:
    """A filmstrip's two plot items on ``plot``: the known bones (``pen``) and the missing ones (dashed grey)."""

    def __init__(self, plot: pg.PlotWidget, pen) -> None:
        color, width, style = MISSING_PEN
        self.missing = plot.plot([], [], pen=pg.mkPen(color, width=width, style=style), connect="finite")
        self.known = plot.plot([], [], pen=pen, connect="finite")

    def show(self, strip: Filmstrip, values: np.ndarray, observed: np.ndarray | None = None,
             reference: np.ndarray | None = None) -> None:
        """Draw ``values`` [3J, T] with ``strip`` (``observed``, ``reference``: as :meth:`Filmstrip.lines`)."""
        (x, y), (mx, my) = strip.lines(values, observed, reference)
        self.known.setData(x, y, connect="finite")
        self.missing.setData(mx, my, connect="finite")

    def clear(self) -> None:
        self.known.setData([], [])
        self.missing.setData([], [])

    def polylines(self) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """The (known, missing) bones drawn now, NaN-separated (for tests)."""
        return tuple((np.zeros(0), np.zeros(0)) if item.getData()[0] is None
                     else tuple(np.asarray(a) for a in item.getData()) for item in (self.known, self.missing))
