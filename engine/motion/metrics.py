"""Motion quality metrics on joint positions [N, T, J, 3] (a single clip [T, J, 3] is also accepted).

- :func:`bone_length_error`: mean over clips, frames and bones of ``| |p_j - p_parent| - L_j | / L_j``
  with L_j the skeleton's rest length (bones shorter than 1e-6 of the skeleton's size are skipped).
  0 for any output of forward kinematics.
- :func:`foot_skating`: mean horizontal (x, z) speed, in units per second, of the foot joints over the
  frame pairs where the foot is in contact: within ``height_threshold`` of the ground at both frames.
  The ground is each foot joint's lowest height over the clip (a toe and an ankle rest at different
  heights). Default threshold: 2.5 % of the leg (the longest root-to-foot chain), about 3 cm for an adult.
  Foot joints: ``feet`` or, by default, every joint whose name contains "foot", "toe" or "ankle".
- :func:`jerk`: mean norm of the third time derivative, ``|p[t+3] - 3p[t+2] + 3p[t+1] - p[t]| * fps^3``,
  in units per second cubed.
- :func:`evaluate_motion_samples`: the three for generated samples and reference clips, plus the power
  of the kernel two-sample test (:func:`engine.metrics.twosample.mmd_power`, lower is better, about
  alpha when indistinguishable) on the flattened trajectories (the channels of
  :func:`engine.motion.dataset.positions_to_channels`) and on the joint velocities
  ``(p[t+1] - p[t]) * fps`` [N, 3J, T-1].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from engine.errors import ConfigError, DataError
from engine.metrics.twosample import mmd_power
from engine.motion.dataset import positions_to_channels
from engine.motion.skeleton import Skeleton

FOOT_WORDS = ("foot", "toe", "ankle")
CONTACT_FRACTION_OF_LEG = 0.025


def _positions(x: object, skeleton: Skeleton | None, name: str) -> np.ndarray:
    """``x`` as float64 [N, T, J, 3], checked against the skeleton."""
    detach = getattr(x, "detach", None)
    p = np.asarray(detach().cpu().numpy() if detach is not None else x, dtype=np.float64)
    if p.ndim == 3:
        p = p[None]
    if p.ndim != 4 or p.shape[-1] != 3 or 0 in p.shape:
        raise DataError(f"{name}: positions must have shape [N, T, J, 3], got {p.shape}")
    if skeleton is not None and p.shape[2] != skeleton.num_joints:
        raise DataError(f"{name}: {p.shape[2]} joints, but the skeleton has {skeleton.num_joints}")
    if not np.isfinite(p).all():
        raise DataError(f"{name}: positions contain NaN or inf")
    return p


def _check_fps(fps: float) -> float:
    f = float(fps)
    if not (math.isfinite(f) and f > 0):
        raise ConfigError(f"fps must be a positive number, got {fps!r}")
    return f


def foot_joints(skeleton: Skeleton) -> tuple[str, ...]:
    """Joints whose name contains "foot", "toe" or "ankle" (case-insensitive), e.g. LeftFoot, CC_Base_L_ToeBase."""
    return tuple(n for n in skeleton.names if any(w in n.lower() for w in FOOT_WORDS))


def bone_length_error(positions: np.ndarray, skeleton: Skeleton) -> float:
    """Mean relative bone-length error (see the module docstring)."""
    p = _positions(positions, skeleton, "bone_length_error")
    rest = skeleton.bone_lengths()
    bones = np.array([j for j in range(1, skeleton.num_joints) if rest[j] > 1e-6 * skeleton.size], dtype=np.int64)
    if bones.size == 0:
        raise DataError("bone_length_error: the skeleton has no bone of positive length")
    parents = np.array(skeleton.parents)[bones]
    lengths = np.linalg.norm(p[:, :, bones] - p[:, :, parents], axis=-1)
    return float(np.mean(np.abs(lengths - rest[bones]) / rest[bones]))


def foot_skating(positions: np.ndarray, skeleton: Skeleton, fps: float, *, feet: Sequence[str] | None = None,
                 height_threshold: float | None = None) -> float:
    """Mean horizontal speed (units/s) of foot joints in ground contact (see the module docstring); 0 if none is."""
    p = _positions(positions, skeleton, "foot_skating")
    f = _check_fps(fps)
    names = foot_joints(skeleton) if feet is None else tuple(feet)
    if not names:
        raise DataError("foot_skating: no joint name contains 'foot', 'toe' or 'ankle'; pass feet=[...]")
    idx = skeleton.indices(names)
    if height_threshold is None:
        thr = CONTACT_FRACTION_OF_LEG * max(skeleton.chain_length(int(j)) for j in idx)
    else:
        thr = float(height_threshold)
        if not (math.isfinite(thr) and thr > 0):
            raise ConfigError(f"height_threshold must be a positive length, got {height_threshold!r}")
    foot = p[:, :, idx]  # [N, T, F, 3]
    height = foot[..., 1] - foot[..., 1].min(axis=1, keepdims=True)
    low = height < thr
    contact = low[:, 1:] & low[:, :-1]
    speed = np.linalg.norm(np.diff(foot[..., [0, 2]], axis=1), axis=-1) * f
    return float(speed[contact].mean()) if contact.any() else 0.0


def jerk(positions: np.ndarray, fps: float) -> float:
    """Mean norm of the third time derivative (units/s^3) over clips, frames and joints (needs T >= 4)."""
    p = _positions(positions, None, "jerk")
    f = _check_fps(fps)
    if p.shape[1] < 4:
        raise DataError(f"jerk: needs at least 4 frames, got {p.shape[1]}")
    d3 = np.diff(p, n=3, axis=1) * f**3
    return float(np.linalg.norm(d3, axis=-1).mean())


def motion_statistics(positions: np.ndarray, skeleton: Skeleton, fps: float) -> dict[str, float]:
    """``bone_length_error``, ``foot_skating`` and ``jerk`` of clips [N, T, J, 3] of ``skeleton`` at ``fps``."""
    return {"bone_length_error": bone_length_error(positions, skeleton),
            "foot_skating": foot_skating(positions, skeleton, fps), "jerk": jerk(positions, fps)}


def _velocity_channels(p: np.ndarray, fps: float) -> np.ndarray:
    v = np.diff(p, axis=1) * fps  # [N, T-1, J, 3]
    return np.swapaxes(v.reshape(*v.shape[:2], -1), 1, 2)


def evaluate_motion_samples(samples: np.ndarray, reference: np.ndarray, skeleton: Skeleton, fps: float, *,
                            seed: int = 0, block_size: int = 10, repeats: int = 10, permutations: int = 1000,
                            alpha: float = 0.05, should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Per-set motion metrics and two-sample power of generated clips against reference clips.

    Args:
        samples: generated positions [N, T, J, 3] (numpy or torch).
        reference: real positions [M, T, J, 3].
        skeleton: the joints of both.
        fps: frames per second.
        seed, block_size, repeats, permutations, alpha: passed to :func:`mmd_power` (``block_size`` must not
            exceed min(N, M)).
        should_stop: a cancel token for :func:`mmd_power`.

    Returns:
        ``{"samples": {...}, "reference": {...}, "power_trajectory": {...}, "power_velocity": {...},
        "n_samples": N, "n_reference": M, "fps": fps}``; the per-set dicts hold ``bone_length_error``,
        ``foot_skating`` and ``jerk``; the power entries are :meth:`PowerResult.to_dict`. Plain JSON values.
    """
    g = _positions(samples, skeleton, "samples")
    r = _positions(reference, skeleton, "reference")
    f = _check_fps(fps)
    if g.shape[1:] != r.shape[1:]:
        raise DataError(f"samples are shaped {g.shape[1:]} but reference clips {r.shape[1:]}; they must share "
                        "frames and joints")

    options = {"block_size": block_size, "repeats": repeats, "permutations": permutations, "alpha": alpha,
               "seed": seed, "should_stop": should_stop}
    return {
        "samples": motion_statistics(g, skeleton, f),
        "reference": motion_statistics(r, skeleton, f),
        "power_trajectory": mmd_power(positions_to_channels(g), positions_to_channels(r), **options).to_dict(),
        "power_velocity": mmd_power(_velocity_channels(g, f), _velocity_channels(r, f), **options).to_dict(),
        "n_samples": int(g.shape[0]),
        "n_reference": int(r.shape[0]),
        "fps": f,
    }
