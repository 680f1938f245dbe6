"""A built-in 22-joint humanoid and a parametric walk / run generator with planted feet.

Skeleton (:func:`humanoid_skeleton`): metres, Y up, facing +Z in a T-pose (the person's left is +X), BVH
depth-first order: Hips (root, 0.96 m high); Spine, Spine1, Chest, Neck, Head; Left/Right Shoulder
(clavicle), Arm, ForeArm, Hand; Left/Right UpLeg, Leg, Foot, Toe. Thigh 0.42 m, shin 0.40 m, ankle 8 cm
and toe joint 2 cm above the ground at rest; size (hand to foot along bones) about 2.0 m.

Generator (:func:`walk_positions`), all clips at once, vectorised over [N, T]:

1. **Path.** Heading ``theta(t) = theta0 + omega t`` (turning rate omega), speed ``v = step * cadence``
   (stride = 2 steps, one gait cycle ``P = 2 / cadence`` seconds); the path is the closed form
   ``c(t) = v int_0^t (sin theta, 0, cos theta) du``.
2. **Feet.** The left foot strikes at ``t = (k + phase) P``, the right half a cycle later; each stance
   lasts ``duty * P`` (walk: duty ~ 0.6, double support; run: ~ 0.36, a flight phase). During stance
   of step k the ankle is *fixed* at ``c(t_mid) +- w left(t_mid)`` (t_mid the stance's middle, w = 9 cm)
   at ankle height, the foot flat and turned to ``theta(t_mid)``: zero skating by construction. In swing
   (s from 0 to 1) it rises ``h sin^2(pi s)``, toes pitched down by ``15 deg sin^2(pi s)``, and travels to the
   next plant along a quintic smoothstep of ``(s - 0.1) / 0.8`` (no horizontal motion during the first and
   last 10 % of the swing, zero speed and acceleration at both ends): a foot near the ground barely slides
   (foot-skating metric 0.07 m/s against 0.27 m/s for a cosine profile without the delay).
3. **Pelvis.** ``c(t)`` plus a lateral sway toward the stance foot and a vertical bob at twice the
   step frequency (walk: highest at mid-stance; run: lowest); its mean height is the largest one from
   which the leg (thigh + shin, 96 %) reaches the plants at strike and at mid-stance; yaw oscillates with
   the legs; the torso leans forward and counter-rotates; the neck keeps the head level.
4. **Arms** hang 8 degrees from the body and swing opposite to the legs (amplitude ``arm_swing``) with the
   elbow bent more on the forward swing.
5. **Legs** by analytic two-bone IK from the hip joints to the ankle targets, knees toward the pelvis's
   forward direction. Stance targets are always within reach (96 % of the leg), so planted feet never
   move; a swing target beyond 97 % of the leg (the foot still rising behind a body that moves on) is
   pulled toward the hip along the hip-ankle line by a smooth saturation (measured on 1000 clips: a
   quarter of the swing frames of walks move by more than 1 mm, by at most 3.5 cm; half of those of runs,
   by at most 14 cm: the knee folds instead of dragging the foot).
   Every bone keeps its rest length exactly.

Per-clip parameters (uniform ranges, walk / run): step 0.50-0.75 / 0.90-1.30 m, cadence 1.6-2.1 / 2.6-3.0
steps/s (speed 0.8-1.6 / 2.3-3.9 m/s), duty 0.58-0.64 / 0.32-0.40, swing height 6-12 / 15-25 cm, bob
1.5-3.5 / 3-5 cm, arm swing 15-40 / 25-50 deg, elbow 15-30 / 70-90 deg, lean 2-8 / 8-15 deg, pelvis yaw
3-8 deg, sway 1.5-3 cm, turning rate +-20 deg/s, heading uniform, gait phase uniform.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from engine.errors import ConfigError
from engine.motion.skeleton import Skeleton, axis_rotation

ANKLE_HEIGHT = 0.08
FOOT_WIDTH = 0.09
"""Lateral distance of each foot plant from the path (m), the hip joints' half width."""
REACH = 0.96
"""Fraction of thigh + shin the leg may stretch to at the extremes of stance."""
SATURATION = 0.97
"""Hip-ankle distances beyond this fraction of thigh + shin are smoothly shortened (only ever in swing)."""
TOE_PITCH = np.deg2rad(15.0)
SWING_DELAY = 0.1
"""Fraction of the swing at each end during which the foot only rises / descends (no horizontal motion)."""
ARM_ABDUCTION = np.deg2rad(82.0)
_CHUNK = 128
"""Clips generated per vectorised batch."""

_HUMANOID = (
    # name, parent, offset (m)
    ("Hips", None, (0.0, 0.96, 0.0)),
    ("Spine", "Hips", (0.0, 0.10, 0.0)),
    ("Spine1", "Spine", (0.0, 0.12, 0.0)),
    ("Chest", "Spine1", (0.0, 0.14, 0.0)),
    ("Neck", "Chest", (0.0, 0.16, 0.0)),
    ("Head", "Neck", (0.0, 0.10, 0.02)),
    ("LeftShoulder", "Chest", (0.03, 0.11, 0.0)),
    ("LeftArm", "LeftShoulder", (0.15, 0.0, 0.0)),
    ("LeftForeArm", "LeftArm", (0.28, 0.0, 0.0)),
    ("LeftHand", "LeftForeArm", (0.25, 0.0, 0.0)),
    ("RightShoulder", "Chest", (-0.03, 0.11, 0.0)),
    ("RightArm", "RightShoulder", (-0.15, 0.0, 0.0)),
    ("RightForeArm", "RightArm", (-0.28, 0.0, 0.0)),
    ("RightHand", "RightForeArm", (-0.25, 0.0, 0.0)),
    ("LeftUpLeg", "Hips", (0.09, -0.06, 0.0)),
    ("LeftLeg", "LeftUpLeg", (0.0, -0.42, 0.0)),
    ("LeftFoot", "LeftLeg", (0.0, -0.40, 0.0)),
    ("LeftToe", "LeftFoot", (0.0, -0.06, 0.13)),
    ("RightUpLeg", "Hips", (-0.09, -0.06, 0.0)),
    ("RightLeg", "RightUpLeg", (0.0, -0.42, 0.0)),
    ("RightFoot", "RightLeg", (0.0, -0.40, 0.0)),
    ("RightToe", "RightFoot", (0.0, -0.06, 0.13)),
)
_END_SITES = {"Head": (0.0, 0.15, 0.0), "LeftHand": (0.08, 0.0, 0.0), "RightHand": (-0.08, 0.0, 0.0),
              "LeftToe": (0.0, 0.0, 0.05), "RightToe": (0.0, 0.0, 0.05)}
FOOT_JOINTS = ("LeftFoot", "LeftToe", "RightFoot", "RightToe")


def humanoid_skeleton() -> Skeleton:
    """The built-in 22-joint humanoid (metres, Y up, T-pose facing +Z)."""
    names = tuple(n for n, _, _ in _HUMANOID)
    parents = tuple(-1 if p is None else names.index(p) for _, p, _ in _HUMANOID)
    ends = {names.index(k): np.array(v) for k, v in _END_SITES.items()}
    return Skeleton(names, parents, np.array([o for _, _, o in _HUMANOID]), ends)


@dataclass(frozen=True)
class GaitParameters:
    """Per-clip parameters, each a float64 array [N] (angles in radians, lengths in metres, times in seconds)."""

    run: np.ndarray  # 1.0 for a run, 0.0 for a walk
    step: np.ndarray  # step length (half a stride)
    cadence: np.ndarray  # steps per second
    duty: np.ndarray  # stance fraction of the gait cycle
    swing_height: np.ndarray  # ankle lift at mid-swing
    bob: np.ndarray  # pelvis vertical amplitude
    arm_swing: np.ndarray
    elbow: np.ndarray
    lean: np.ndarray
    pelvis_yaw: np.ndarray
    sway: np.ndarray
    turn_rate: np.ndarray  # rad / s
    heading: np.ndarray  # initial heading (0 = facing +Z)
    phase: np.ndarray  # gait phase at t = 0, in cycles

    @property
    def speed(self) -> np.ndarray:
        """Walking speed ``step * cadence`` (m/s)."""
        return self.step * self.cadence

    @property
    def stride(self) -> np.ndarray:
        """Stride length, two steps (m)."""
        return 2.0 * self.step

    def __len__(self) -> int:
        return int(self.run.shape[0])


_WALK = {"step": (0.50, 0.75), "cadence": (1.6, 2.1), "duty": (0.58, 0.64), "swing_height": (0.06, 0.12),
         "bob": (0.015, 0.035), "arm_swing": (15.0, 40.0), "elbow": (15.0, 30.0), "lean": (2.0, 8.0)}
_RUN = {"step": (0.90, 1.30), "cadence": (2.6, 3.0), "duty": (0.32, 0.40), "swing_height": (0.15, 0.25),
        "bob": (0.03, 0.05), "arm_swing": (25.0, 50.0), "elbow": (70.0, 90.0), "lean": (8.0, 15.0)}
_ANGLES = ("arm_swing", "elbow", "lean")
_SHARED = {"pelvis_yaw": (3.0, 8.0), "sway": (0.015, 0.03), "turn_rate": (-20.0, 20.0), "heading": (-180.0, 180.0),
           "phase": (0.0, 1.0)}
_SHARED_ANGLES = ("pelvis_yaw", "turn_rate", "heading")


def sample_gait_parameters(rngs: list[np.random.Generator], run_fraction: float = 0.0) -> GaitParameters:
    """One clip's parameters from each generator (ranges in the module docstring).

    Each clip draws a fixed number of uniforms from its own generator, so clip k does not depend on how many
    clips are drawn.
    """
    if not 0.0 <= float(run_fraction) <= 1.0:
        raise ConfigError(f"run_fraction must lie in [0, 1], got {run_fraction!r}")
    keys = list(_WALK) + list(_SHARED)
    u = np.array([rng.random(1 + len(keys)) for rng in rngs]).reshape(len(rngs), 1 + len(keys))
    run = (u[:, 0] < float(run_fraction)).astype(np.float64)
    out: dict[str, np.ndarray] = {"run": run}
    for i, key in enumerate(keys, start=1):
        if key in _WALK:
            lo = np.where(run > 0, _RUN[key][0], _WALK[key][0])
            hi = np.where(run > 0, _RUN[key][1], _WALK[key][1])
        else:
            lo, hi = _SHARED[key]
        value = lo + (hi - lo) * u[:, i]
        out[key] = np.deg2rad(value) if key in _ANGLES or key in _SHARED_ANGLES else value
    return GaitParameters(**out)


def _path(p: GaitParameters, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ground path c(t) [..., 3] and heading theta(t) [...] for times t [N, ...] (closed form)."""
    shape = (-1,) + (1,) * (t.ndim - 1)
    omega, th0, v = p.turn_rate.reshape(shape), p.heading.reshape(shape), p.speed.reshape(shape)
    half = 0.5 * omega * t
    # int_0^t e^{i(th0 + omega u)} du = t e^{i(th0 + omega t / 2)} sinc(omega t / 2)
    arc = v * t * np.sinc(half / np.pi)
    mid = th0 + half
    c = np.stack([arc * np.sin(mid), np.zeros_like(t), arc * np.cos(mid)], axis=-1)
    return c, th0 + omega * t


def _left(theta: np.ndarray) -> np.ndarray:
    """The person's left, ``Ry(theta) (1, 0, 0)``, [..., 3]."""
    return np.stack([np.cos(theta), np.zeros_like(theta), -np.sin(theta)], axis=-1)


def _foot_targets(p: GaitParameters, t: np.ndarray, side: float, shift: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ankle positions [N, T, 3], foot yaw [N, T] and toe pitch [N, T] of one foot (side +1 left, -1 right)."""
    col = (slice(None), None)
    period = 2.0 / p.cadence[col]
    duty = p.duty[col]
    u = t / period - p.phase[col] - shift
    k = np.floor(u)
    frac = u - k

    def plant(step: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t_mid = (step + p.phase[col] + shift + 0.5 * duty) * period
        c, theta = _path(p, t_mid)
        return c + side * FOOT_WIDTH * _left(theta), theta

    here, yaw0 = plant(k)
    there, yaw1 = plant(k + 1.0)
    swing = frac >= duty
    s = np.where(swing, (frac - duty) / (1.0 - duty), 0.0)
    q = np.clip((s - SWING_DELAY) / (1.0 - 2.0 * SWING_DELAY), 0.0, 1.0)
    w = q**3 * (10.0 - 15.0 * q + 6.0 * q * q)  # quintic smoothstep: zero speed and acceleration at both ends
    ankle = here + w[..., None] * (there - here)
    ankle[..., 1] = ANKLE_HEIGHT + p.swing_height[col] * np.sin(np.pi * s) ** 2
    return ankle, yaw0 + w * (yaw1 - yaw0), TOE_PITCH * np.sin(np.pi * s) ** 2


def _two_bone(hip: np.ndarray, ankle: np.ndarray, pole: np.ndarray, a: float, b: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """Knee and (reachable) ankle [..., 3]: |knee - hip| = a, |ankle - knee| = b, knee toward ``pole``.

    A hip-ankle distance d beyond ``d0 = SATURATION (a + b)`` becomes ``d0 + w tanh((d - d0) / w)`` with
    ``w = 0.999 (a + b) - d0``: smooth (C2 at d0, so no jerk spike) and always short of a straight knee.
    """
    d_vec = ankle - hip
    dist = np.linalg.norm(d_vec, axis=-1, keepdims=True)
    u = d_vec / dist
    d0 = SATURATION * (a + b)
    width = 0.999 * (a + b) - d0
    d = np.where(dist > d0, d0 + width * np.tanh((dist - d0) / width), dist)
    d = np.maximum(d, abs(a - b) + 1e-6)
    ankle = hip + d * u
    cos_hip = (a * a + d * d - b * b) / (2.0 * a * d)
    w = pole - np.sum(pole * u, axis=-1, keepdims=True) * u
    w = w / np.linalg.norm(w, axis=-1, keepdims=True)
    knee = hip + a * (cos_hip * u + np.sqrt(np.clip(1.0 - cos_hip**2, 0.0, None)) * w)
    return knee, ankle


def walk_positions(params: GaitParameters, frames: int = 120, fps: float = 30.0,
                   skeleton: Skeleton | None = None) -> np.ndarray:
    """Global joint positions [N, T, 22, 3] (metres) of the clips described by ``params`` (algorithm above).

    ``skeleton`` must be :func:`humanoid_skeleton` or a re-proportioned copy of it (same joints).
    """
    sk = humanoid_skeleton() if skeleton is None else skeleton
    if sk.names != humanoid_skeleton().names:
        raise ConfigError("walk_positions needs the built-in humanoid's joints (see humanoid_skeleton())")
    n = len(params)
    t = np.broadcast_to(np.arange(frames) / float(fps), (n, frames))
    col = (slice(None), None)
    cycle = 2.0 * np.pi * (0.5 * t * params.cadence[col] - params.phase[col])  # gait angle, 0 = left strike
    sigma = np.where(params.run > 0, -1.0, 1.0)[col]
    c, theta = _path(params, t)
    # pelvis height: highest that reaches the plants at strike and at mid-stance (leg at REACH)
    names = sk.names
    ix = {name: i for i, name in enumerate(names)}
    hip_drop = -sk.offsets[ix["LeftUpLeg"], 1]
    thigh, shin = float(np.linalg.norm(sk.offsets[ix["LeftLeg"]])), float(np.linalg.norm(sk.offsets[ix["LeftFoot"]]))
    reach = REACH * (thigh + shin)
    reach_h = params.step * params.duty
    low = np.sqrt(np.clip(reach**2 - reach_h**2, 0.0, None))
    sig = sigma[:, 0]
    h_c = np.minimum(low - sig * params.bob * np.cos(2.0 * np.pi * params.duty), reach - sig * params.bob)
    h_c = h_c + hip_drop + ANKLE_HEIGHT
    bob = sigma * params.bob[col] * np.cos(2.0 * (cycle - np.pi * params.duty[col]))
    sway = params.sway[col] * np.cos(cycle - np.pi * params.duty[col])
    root = c + sway[..., None] * _left(theta)
    root[..., 1] = h_c[col] + bob
    # local rotations of pelvis, spine, neck and arms
    yaw_osc = -params.pelvis_yaw[col] * np.cos(cycle)
    rot = np.empty((len(names), n, frames, 3, 3))  # joint-major, as global_transforms works internally
    rot[:] = np.eye(3)
    rot[ix["Hips"]] = axis_rotation(theta + yaw_osc, "Y")
    lean = params.lean[col]
    for joint, share in (("Spine", 0.5), ("Spine1", 0.3), ("Chest", 0.2)):
        rot[ix[joint]] = axis_rotation(-1.5 * share * yaw_osc, "Y") @ axis_rotation(share * lean, "X")
    rot[ix["Neck"]] = axis_rotation(-0.7 * lean, "X")
    rot[ix["Head"]] = axis_rotation(-0.3 * lean, "X") @ axis_rotation(0.5 * yaw_osc, "Y")
    arm = params.arm_swing[col]
    elbow = params.elbow[col]
    for side, sign in (("Left", -1.0), ("Right", 1.0)):
        swing = sign * arm * np.cos(cycle)  # > 0: forward
        rot[ix[f"{side}Arm"]] = axis_rotation(-swing, "X") @ axis_rotation(sign * ARM_ABDUCTION, "Z")
        bend = elbow * (1.0 + 0.3 * np.clip(swing / np.maximum(arm, 1e-9), 0.0, None))
        rot[ix[f"{side}ForeArm"]] = axis_rotation(sign * bend, "Y")
    glob, pos = sk.global_transforms(np.moveaxis(rot, 0, -3), root - sk.offsets[0])
    # legs: two-bone IK from the hips to the planted / swinging ankles
    forward = glob[..., ix["Hips"], :, 2]
    for side, sign, shift in (("Left", 1.0, 0.0), ("Right", -1.0, 0.5)):
        ankle, foot_yaw, pitch = _foot_targets(params, t, sign, shift)
        hip = pos[..., ix[f"{side}UpLeg"], :]
        knee, ankle = _two_bone(hip, ankle, forward, thigh, shin)
        toe_rot = axis_rotation(foot_yaw, "Y") @ axis_rotation(pitch, "X")
        toe = ankle + np.einsum("...ij,j->...i", toe_rot, sk.offsets[ix[f"{side}Toe"]])
        pos[..., ix[f"{side}Leg"], :] = knee
        pos[..., ix[f"{side}Foot"], :] = ankle
        pos[..., ix[f"{side}Toe"], :] = toe
    return pos


def generate_walks(num: int, *, frames: int = 120, fps: float = 30.0, seed: int = 0, split: str = "train",
                   run_fraction: float = 0.0) -> tuple[np.ndarray, GaitParameters]:
    """``num`` clips: (positions [num, frames, 22, 3] in metres, their :class:`GaitParameters`).

    Split ``train`` draws from ``SeedSequence([seed, 0])``, ``test`` from ``SeedSequence([seed, 1])``
    (independent streams); clip k gets the k-th spawned child, so the first k clips of any ``num >= k``
    are the same.
    """
    streams = {"train": 0, "test": 1}
    if split not in streams:
        raise ConfigError(f"walk: unknown split {split!r}; use 'train' or 'test'")
    for name, v, low in (("num", num, 1), ("frames", frames, 2), ("seed", seed, 0)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < low:
            raise ConfigError(f"walk: {name} must be an integer >= {low}, got {v!r}")
    if not (np.isfinite(fps) and fps > 0):
        raise ConfigError(f"walk: fps must be a positive number, got {fps!r}")
    children = np.random.SeedSequence([int(seed), streams[split]]).spawn(int(num))
    params = sample_gait_parameters([np.random.default_rng(s) for s in children], run_fraction)
    chunks = [walk_positions(_take(params, slice(lo, lo + _CHUNK)), int(frames), float(fps))
              for lo in range(0, int(num), _CHUNK)]  # bounded temporaries (~25 MB per chunk at 120 frames)
    return np.concatenate(chunks), params


def _take(params: GaitParameters, index: slice) -> GaitParameters:
    return GaitParameters(**{f.name: getattr(params, f.name)[index] for f in fields(GaitParameters)})


