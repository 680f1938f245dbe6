"""Motion datasets: a motion is a multichannel function of time, values [N, C, T] on a grid in seconds.

**Representation.** The diffusion runs on joint *positions*, a linear space in which Gaussian / Q-Wiener
noise and the FNO's smoothing along time make sense (rotations live on SO(3), where adding noise does not).
For a clip of T frames of J joints with global positions ``p[t, j]`` (Y up), the C = 3J channels are,
joint-major (channel ``3 j + k`` is axis k = x, y, z of joint j):

- j = 0, the root trajectory: ``(x_t - x_0, y_t, z_t - z_0)``: horizontal position relative to the clip's
  first frame, absolute height (so the ground stays where it is);
- j >= 1: the joint relative to the root in the same frame, ``p[t, j] - p[t, 0]``.

:func:`positions_to_channels` and :func:`channels_to_positions` are exact inverses (up to the
first-frame x, z, which are set to 0). Bone lengths are not enforced by the network: they are measured
by :func:`engine.motion.metrics.bone_length_error` and restored exactly on export, where
:func:`engine.motion.skeleton.positions_to_rotations` fits per-joint rotations (swing for one child,
Kabsch / SVD for several) and forward kinematics rebuilds positions with the rest bone lengths
(:func:`engine.motion.bvh.write_bvh` does both).

**Noise length scale.** ``default_length_scale = 0.15`` s for every set: with the squared-exponential kernel
``exp(-r^2 / l^2)`` the noise decorrelates over about 4-5 frames at 30 fps. A walking step lasts about
0.5 s and the fastest meaningful events (heel strike, toe-off, the turn of an arm swing) unfold over
0.1-0.2 s, so noise at 0.15 s perturbs at the scale of the finest real structure while staying smooth from
frame to frame (mocap has no frame-level jitter for the network to learn); over a 4 s clip it is 3.75 % of
the domain, close to the reference's Quadratic setting (0.8 on a domain of 20).

**Sets** (:func:`load_motion_dataset`):

- ``walk``: the procedural humanoid (22 joints, metres) walking, :mod:`engine.motion.procedural`; ``walkrun``:
  the same with 30 % runs. train / test from independent streams ``SeedSequence([seed, 0 | 1])``;
  ``num`` clips (default 1000) of ``frames`` (default 120) at ``fps``; labels: 0 walk, 1 run.
- ``cmu07``: the 12 CMU subject-07 walks of ``shared_data_dir()/motion/cmu_subject07_walk_bvh`` (an iClone
  100-joint rig, 60 fps, centimetres). Frame 0 of 007_03 ... 007_12 is a reference T-pose (SOURCE.md) and
  is dropped from the motion; it serves as the rest pose of the body subset :data:`CMU07_BODY_JOINTS`
  (21 joints: hips; thigh, calf, foot, toe base of each leg; waist, two spine joints, the two neck joints,
  head; upper arm, forearm, hand of each arm). Fingers, toes, face, breasts and the twist / share helper
  bones are dropped, and so are the clavicles, whose rotations are constant, so the shoulders attach
  rigidly to Spine02 and every kept bone keeps its length (measured: relative error below 1e-6).
  007_01 has an extra top-level ``RL_BoneRoot``; its body joints are taken by name, with the same
  geometry. Clips are resampled to ``fps`` by slerp of the local rotations, converted to metres (x 0.01)
  and cut into windows of ``frames`` (default 60: the clips last 2.2-4.3 s) with a ``hop`` (default
  ``max(1, frames // 30)``). Whole clips are held out: test = 007_08 and 007_11 (two plain walks), train =
  the other 10. labels: the clip number (1..12).
- a path to a ``.bvh`` file or a folder of them: every clip must share one skeleton (names, parents,
  offsets), else a DataError names the first that differs; ``joints`` picks a subset (offsets from the
  file's rest pose); units are the file's; frames default 120, or 3/4 of the longest clip where no clip
  has 120 (a single short clip still gives several windows); split ``train`` only; labels: the file's
  index in sorted order.

``num`` keeps that many windows of a BVH set after a shuffle seeded by ``seed``.
The subject-35 set (``cmu_subject35_walk_mocap35/mocap35.mat``) is not supported: it is a MATLAB 5.0 file,
which h5py cannot open (it reads only MATLAB 7.3 / HDF5 files), and scipy is not a dependency; it also has
no skeleton (50 GPDM joint-angle features).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.data.dataset import FunctionDataset, check_count
from engine.data.registry import DatasetInfo
from engine.errors import ConfigError, DataError
from engine.motion.bvh import BVHClip, read_bvh, resample_clip, windows
from engine.motion.procedural import generate_walks, humanoid_skeleton
from engine.motion.skeleton import Skeleton
from engine.paths import shared_data_dir

DEFAULT_LENGTH_SCALE = 0.15
"""Seconds; see the module docstring."""
CMU07_FOLDER = "cmu_subject07_walk_bvh"
CMU07_TEST_CLIPS = ("007_08", "007_11")
CMU07_REFERENCE = ("007_03", 0)
"""Clip and frame holding the rig's T-pose, the rest pose of the body subset."""
CMU07_POSE_FRAME_CLIPS = tuple(f"007_{k:02d}" for k in range(3, 13))
"""Clips whose frame 0 is the T-pose, not motion."""
CMU07_TO_METRES = 0.01
CMU07_BODY_JOINTS = (
    "CC_Base_Hip",
    "CC_Base_L_Thigh", "CC_Base_L_Calf", "CC_Base_L_Foot", "CC_Base_L_ToeBase",
    "CC_Base_R_Thigh", "CC_Base_R_Calf", "CC_Base_R_Foot", "CC_Base_R_ToeBase",
    "CC_Base_Waist", "CC_Base_Spine01", "CC_Base_Spine02", "CC_Base_NeckTwist01", "CC_Base_NeckTwist02",
    "CC_Base_Head",
    "CC_Base_L_Upperarm", "CC_Base_L_Forearm", "CC_Base_L_Hand",
    "CC_Base_R_Upperarm", "CC_Base_R_Forearm", "CC_Base_R_Hand",
)
DEFAULT_NUM = 1000
DEFAULT_FRAMES = 120
CMU07_FRAMES = 60

_CACHE: dict[tuple, BVHClip] = {}
"""Parsed BVH files by (path, mtime, size)."""


# ----------------------------------------------------------------------------------------------- representation
def positions_to_channels(positions: np.ndarray) -> np.ndarray:
    """Joint positions [..., T, J, 3] -> channels [..., 3J, T] (layout in the module docstring), float64."""
    p = np.asarray(positions, dtype=np.float64)
    if p.ndim < 3 or p.shape[-1] != 3:
        raise DataError(f"positions must have shape [..., T, J, 3], got {p.shape}")
    out = p - p[..., :, :1, :]  # joints relative to the root
    root = p[..., :, 0, :].copy()
    root[..., [0, 2]] -= root[..., :1, [0, 2]]
    out[..., :, 0, :] = root
    return np.swapaxes(out.reshape(*p.shape[:-2], -1), -1, -2)


def channels_to_positions(values: np.ndarray) -> np.ndarray:
    """Channels [..., 3J, T] -> joint positions [..., T, J, 3] (the first frame's root at x = z = 0), float64."""
    v = _as_numpy(values)
    if v.ndim < 2 or v.shape[-2] % 3:
        raise DataError(f"motion values must have shape [..., 3J, T], got {v.shape}")
    p = np.swapaxes(v, -1, -2).reshape(*v.shape[:-2], v.shape[-1], v.shape[-2] // 3, 3)
    out = p + p[..., :, :1, :]
    out[..., :, 0, :] = p[..., :, 0, :]
    return out


def _as_numpy(values: object) -> np.ndarray:
    detach = getattr(values, "detach", None)
    if detach is not None:  # a torch tensor
        values = detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64)


# ----------------------------------------------------------------------------------------------- dataset
@dataclass(frozen=True, eq=False)
class MotionDataset(FunctionDataset):
    """A :class:`FunctionDataset` of motions: values [N, 3J, T] (see the module docstring), grid = k / fps seconds.

    Extra attributes:
        skeleton: the joints the channels describe (required; None only as the dataclass default).
        fps: frames per second of the grid.
    """

    skeleton: Skeleton | None = None
    fps: float = 30.0

    def __post_init__(self) -> None:
        super().__post_init__()
        where = self.name or "motion dataset"
        if not isinstance(self.skeleton, Skeleton):
            raise DataError(f"{where}: a motion dataset needs its skeleton")
        if self.channels != 3 * self.skeleton.num_joints:
            raise DataError(f"{where}: {self.channels} channels do not match 3 x {self.skeleton.num_joints} joints")
        fps = float(self.fps)
        if not (math.isfinite(fps) and fps > 0):
            raise DataError(f"{where}: fps must be a positive number, got {self.fps!r}")
        if not np.allclose(np.diff(self.grid), 1.0 / fps, rtol=1e-6, atol=0.0):
            raise DataError(f"{where}: the grid must be spaced 1/fps = {1.0 / fps:.6g} s")
        object.__setattr__(self, "fps", fps)

    @property
    def num_joints(self) -> int:
        """J."""
        return self.skeleton.num_joints

    def to_positions(self, values: np.ndarray | None = None) -> np.ndarray:
        """Joint positions [N, T, J, 3] (float64) of ``values`` [N, 3J, T] (numpy or torch; default: this set's)."""
        v = self.values if values is None else _as_numpy(values)
        if v.ndim != 3 or v.shape[1] != self.channels:
            raise DataError(f"{self.name}: motion values must have shape [N, {self.channels}, T], got {v.shape}")
        return channels_to_positions(v)

    def __repr__(self) -> str:
        n, c, t = self.values.shape
        return (f"MotionDataset(name={self.name!r}, clips={n}, joints={self.num_joints}, frames={t}, "
                f"fps={self.fps:g}, source={self.source!r})")


def _make(name: str, positions: np.ndarray, fps: float, source: str, skeleton: Skeleton,
          labels: np.ndarray | None) -> MotionDataset:
    values = positions_to_channels(positions).astype(np.float32)
    grid = np.arange(values.shape[-1]) / fps
    return MotionDataset(name, values, grid, source, DEFAULT_LENGTH_SCALE, labels=labels, skeleton=skeleton,
                         fps=fps)


# ----------------------------------------------------------------------------------------------- loading
def _read_cached(path: Path) -> BVHClip:
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _CACHE:
        _CACHE[key] = read_bvh(path)
    return _CACHE[key]


def _clip_positions(clip: BVHClip, fps: float, skip_first: bool, joints: Sequence[str]) -> np.ndarray:
    """Positions [F', J', 3] of ``joints`` at ``fps`` (frame 0 dropped first if ``skip_first``)."""
    if skip_first:
        if clip.num_frames < 3:
            raise DataError(f"{clip.path}: too few frames after dropping the reference pose")
        clip = BVHClip(clip.path, clip.skeleton, clip.channels, clip.rotations[1:], clip.translations[1:],
                       clip.frame_time)
    if clip.num_frames >= 2 and not math.isclose(clip.fps, fps, rel_tol=1e-9):
        clip = resample_clip(clip, fps)
    return clip.positions()[:, clip.skeleton.indices(joints)]


def _cut(name: str, per_clip: list[np.ndarray], frames: int, hop: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Windows [W, frames, J, 3] of every clip, the clip index of each, and the number of clips too short."""
    parts, labels, short = [], [], 0
    for k, pos in enumerate(per_clip):
        w = windows(pos, frames, hop)
        short += int(w.shape[0] == 0)
        parts.append(w)
        labels.append(np.full(w.shape[0], k, dtype=np.int64))
    out = np.concatenate(parts)
    if out.shape[0] == 0:
        longest = max(p.shape[0] for p in per_clip)
        raise DataError(f"{name}: no clip has {frames} frames (the longest has {longest} at this fps); "
                        "ask for fewer frames")
    return out, np.concatenate(labels), short


def _shuffle_keep(positions: np.ndarray, labels: np.ndarray, num: int | None, seed: int, name: str
                  ) -> tuple[np.ndarray, np.ndarray, str]:
    if num is None or num >= positions.shape[0]:
        return positions, labels, ""
    check_count("num", num, minimum=1, where=name)
    keep = np.random.default_rng(seed).permutation(positions.shape[0])[: int(num)]
    return positions[keep], labels[keep], f"; {num} windows drawn with seed {seed}"


def _cmu07(split: str, fps: float, frames: int, hop: int, num: int | None, seed: int,
           joints: Sequence[str] | None) -> MotionDataset:
    folder = shared_data_dir() / "motion" / CMU07_FOLDER
    names = [f"007_{k:02d}" for k in range(1, 13)]
    paths = [folder / f"{n}.bvh" for n in names]
    for p in paths:
        if not p.is_file():
            raise DataError(f"cmu07: data file {p} not found; set HDM_DATA_DIR to the shared data folder")
    ref_clip = _read_cached(folder / f"{CMU07_REFERENCE[0]}.bvh")
    rig = ref_clip.skeleton.with_rest_positions(ref_clip.positions()[CMU07_REFERENCE[1]])
    keep = CMU07_BODY_JOINTS if joints is None else tuple(joints)
    skeleton = rig.subset(keep).scaled(CMU07_TO_METRES)
    chosen = [i for i, n in enumerate(names) if (n in CMU07_TEST_CLIPS) == (split == "test")]
    per_clip = [CMU07_TO_METRES * _clip_positions(_read_cached(paths[i]), fps, names[i] in CMU07_POSE_FRAME_CLIPS,
                                                  skeleton.names) for i in chosen]
    pos, clip_idx, short = _cut("cmu07", per_clip, frames, hop)
    labels = np.array(chosen)[clip_idx] + 1
    pos, labels, drawn = _shuffle_keep(pos, labels, num, seed, "cmu07")
    resampled = "60 fps kept" if fps == 60 else f"slerp-resampled 60 -> {fps:g} fps"
    source = (f"{folder} (CMU mocap subject 07, iClone rig): split {split} = clips "
              f"{', '.join(names[i] for i in chosen)}; T-pose frame 0 of 007_03..007_12 dropped and used as rest "
              f"pose; {skeleton.num_joints} joints; {resampled}; x 0.01 (cm -> m); "
              f"{frames}-frame windows, hop {hop}" + (f"; {short} clips shorter than a window" if short else "")
              + drawn)
    return _make("cmu07", pos, fps, source, skeleton, labels)


def _walk(split: str, fps: float, frames: int, num: int | None, seed: int, joints: Sequence[str] | None,
          run_fraction: float, name: str) -> MotionDataset:
    skeleton = humanoid_skeleton()
    count = DEFAULT_NUM if num is None else num
    check_count("num", count, minimum=1, where=name)
    pos, params = generate_walks(count, frames=frames, fps=fps, seed=seed, split=split, run_fraction=run_fraction)
    if joints is not None:
        skeleton = skeleton.subset(tuple(joints))
        pos = pos[:, :, humanoid_skeleton().indices(skeleton.names)]
    source = (f"procedural humanoid {'walks' if run_fraction == 0 else f'walks and {run_fraction:.0%} runs'} "
              f"(engine.motion.procedural), split {split}, SeedSequence([{seed}, {0 if split == 'train' else 1}]), "
              f"{count} clips of {frames} frames at {fps:g} fps")
    return _make(name, pos, fps, source, skeleton, params.run.astype(np.int64))


def _bvh_path(path: Path, split: str, fps: float, frames: int | None, hop: int | None, num: int | None, seed: int,
              joints: Sequence[str] | None) -> MotionDataset:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".bvh" and p.is_file())
        if not files:
            raise DataError(f"{path}: the folder holds no .bvh file")
    elif path.is_file():
        files = [path]
    else:
        raise DataError(f"{path}: no such file or folder")
    if split != "train":
        raise DataError(f"{path}: BVH files have no held-out split (asked for {split!r}); use split 'train', or "
                        "put the test clips in their own folder")
    clips = [_read_cached(f) for f in files]
    first = clips[0].skeleton
    for f, c in zip(files[1:], clips[1:]):
        if not c.skeleton.same_as(first):
            raise DataError(f"{f}: its skeleton differs from that of {files[0]} (joint names, hierarchy or "
                            "offsets); every clip of a folder must share one skeleton")
    skeleton = first if joints is None else first.subset(tuple(joints))
    per_clip = [_clip_positions(c, fps, False, skeleton.names) for c in clips]
    fitted = ""
    if frames is None:  # the default, unless every clip is shorter: then windows of 3/4 of the longest
        longest = max(p.shape[0] for p in per_clip)
        frames = DEFAULT_FRAMES if longest >= DEFAULT_FRAMES else max(2, 3 * longest // 4)
        if frames != DEFAULT_FRAMES:
            fitted = f" (3/4 of the longest clip, {longest} frames: no clip has {DEFAULT_FRAMES})"
    hop = max(1, frames // 30) if hop is None else hop
    pos, labels, short = _cut(path.name, per_clip, frames, hop)
    pos, labels, drawn = _shuffle_keep(pos, labels, num, seed, path.name)
    source = (f"{path} ({len(files)} BVH files, {skeleton.num_joints} joints, resampled to {fps:g} fps, "
              f"{frames}-frame windows{fitted}, hop {hop}"
              + (f", {short} clips shorter than a window" if short else "") + ")" + drawn)
    return _make(path.stem, pos, fps, source, skeleton, labels)


@dataclass(frozen=True)
class _Entry:
    description: str
    folder: str | None  # under shared_data_dir()/motion; None for generated sets
    default_frames: int


REGISTRY: dict[str, _Entry] = {
    "walk": _Entry("procedural 22-joint humanoid walking (random speed, cadence, turning), 4 s at 30 fps", None,
                   DEFAULT_FRAMES),
    "walkrun": _Entry("procedural humanoid, 70 % walks and 30 % runs, 4 s at 30 fps", None, DEFAULT_FRAMES),
    "cmu07": _Entry("CMU subject 07 walks (12 BVH clips), 21 body joints, 2 s windows at 30 fps", CMU07_FOLDER,
                    CMU07_FRAMES),
}


def list_motion_datasets() -> list[DatasetInfo]:
    """Every registered motion set with whether it can be loaded here (real sets need the shared data)."""
    root = shared_data_dir() / "motion"
    return [DatasetInfo(name, e.description, e.folder is None or (root / e.folder).is_dir(),
                        "generated" if e.folder is None else "real") for name, e in REGISTRY.items()]


def load_motion_dataset(spec: str | os.PathLike[str], split: str = "train", *, fps: float = 30.0,
                        frames: int | None = None, hop: int | None = None, num: int | None = None, seed: int = 0,
                        joints: Sequence[str] | None = None) -> MotionDataset:
    """A motion set by registry name (``walk``, ``walkrun``, ``cmu07``) or ``.bvh`` file / folder path.

    Args:
        spec: registry name (case-insensitive) or path.
        split: ``"train"`` or ``"test"`` (paths: ``"train"`` only).
        fps: frames per second of the result (BVH clips are slerp-resampled).
        frames: frames per clip; None: 60 for ``cmu07``, else 120 (BVH files whose clips are all
            shorter: 3/4 of the longest).
        hop: BVH sets: frames between window starts; None: ``max(1, frames // 30)``. Not for generated sets.
        num: generated sets: number of clips (default 1000); BVH sets: keep this many windows after a shuffle.
        seed: generator seed / shuffle seed.
        joints: keep only these joints (a sub-tree with one root); None: the set's default.

    Returns:
        A :class:`MotionDataset` with values float32 [N, 3J, frames] and grid ``arange(frames) / fps``.
    """
    if split not in ("train", "test"):
        raise DataError(f"{spec}: unknown split {split!r}; use 'train' or 'test'")
    try:
        fps_f = float(fps)
    except (TypeError, ValueError):
        fps_f = math.nan
    if not (math.isfinite(fps_f) and fps_f > 0):
        raise ConfigError(f"fps must be a positive number, got {fps!r}")
    check_count("seed", seed, minimum=0, where=str(spec))
    key = str(spec).strip().lower()
    entry = REGISTRY.get(key)
    n_frames = (entry.default_frames if entry is not None else DEFAULT_FRAMES) if frames is None else frames
    check_count("frames", n_frames, minimum=2, where=str(spec))
    if hop is not None:
        check_count("hop", hop, minimum=1, where=str(spec))
    if entry is not None and entry.folder is None:
        if hop is not None:
            raise ConfigError(f"{key}: hop applies only to BVH sets (generated clips are made at their length)")
        return _walk(split, fps_f, int(n_frames), num, seed, joints, 0.3 if key == "walkrun" else 0.0, key)
    step = max(1, int(n_frames) // 30) if hop is None else hop
    if num is not None:
        check_count("num", num, minimum=1, where=str(spec))
    if entry is not None:
        return _cmu07(split, fps_f, int(n_frames), int(step), num, seed, joints)
    path = Path(str(spec)).expanduser()
    if not path.exists() and path.suffix.lower() != ".bvh":
        raise DataError(f"unknown motion dataset {str(spec)!r}; choose one of {', '.join(REGISTRY)} or give a "
                        ".bvh file or a folder of them")
    return _bvh_path(path, split, fps_f, None if frames is None else int(n_frames), hop, num, seed, joints)
