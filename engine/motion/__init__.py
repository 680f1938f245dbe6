"""Motions: skeletons and kinematics, BVH files, a procedural walker, motion datasets and metrics.

A motion is a multichannel function of time, values [N, C, T] on a grid in seconds, C = 3J joint-position
channels (layout in :mod:`engine.motion.dataset`).

- :mod:`engine.motion.skeleton`: :class:`Skeleton` (forward kinematics, ``subset``, bone lengths), Euler
  angles <-> matrices for any order, :func:`positions_to_rotations` (per-joint IK).
- :mod:`engine.motion.bvh`: :func:`read_bvh` (strict, errors name the line), :func:`write_bvh` (atomic,
  Blender-readable), :func:`resample_clip` (slerp), :func:`resample_positions`, :func:`windows`.
- :mod:`engine.motion.procedural`: :func:`humanoid_skeleton` (22 joints) and :func:`generate_walks`.
- :mod:`engine.motion.dataset`: :class:`MotionDataset`, :func:`load_motion_dataset` (``walk``, ``walkrun``,
  ``cmu07``, ``.bvh`` paths), :func:`list_motion_datasets`, :func:`positions_to_channels`,
  :func:`channels_to_positions`.
- :mod:`engine.motion.metrics`: :func:`bone_length_error`, :func:`foot_skating`, :func:`jerk`,
  :func:`evaluate_motion_samples`.
- :mod:`engine.motion.render`: :func:`render_strip` (stick-figure frame strips to PNG).
"""

from __future__ import annotations

from engine.motion.bvh import BVHClip, parse_bvh, read_bvh, resample_clip, resample_positions, windows, write_bvh
from engine.motion.dataset import (
    MotionDataset,
    channels_to_positions,
    list_motion_datasets,
    load_motion_dataset,
    positions_to_channels,
)
from engine.motion.metrics import bone_length_error, evaluate_motion_samples, foot_skating, jerk, motion_statistics
from engine.motion.procedural import GaitParameters, generate_walks, humanoid_skeleton
from engine.motion.render import render_strip
from engine.motion.skeleton import Skeleton, euler_to_matrix, matrix_to_euler, positions_to_rotations

__all__ = [
    "BVHClip",
    "GaitParameters",
    "MotionDataset",
    "Skeleton",
    "bone_length_error",
    "channels_to_positions",
    "euler_to_matrix",
    "evaluate_motion_samples",
    "foot_skating",
    "generate_walks",
    "humanoid_skeleton",
    "jerk",
    "list_motion_datasets",
    "load_motion_dataset",
    "matrix_to_euler",
    "motion_statistics",
    "parse_bvh",
    "positions_to_channels",
    "positions_to_rotations",
    "read_bvh",
    "render_strip",
    "resample_clip",
    "resample_positions",
    "windows",
    "write_bvh",
]
