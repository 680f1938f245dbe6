"""Skeletons, rotations and kinematics (numpy, float64).

Conventions (those of BVH):

- A skeleton has J joints in an order where every parent comes before its children; joint 0 is
  the root (parent -1). ``offsets[j]`` is joint j's position in its parent's frame in the rest
  pose, where every rotation is the identity, so rest positions are cumulative sums of offsets.
- A pose is a local rotation matrix per joint, ``R_j`` [3, 3] mapping joint j's frame to its
  parent's, plus a root translation. Forward kinematics::

      G_0 = R_0,                 p_0 = offsets[0] + t_0
      G_j = G_parent(j) R_j,     p_j = p_parent(j) + G_parent(j) (offsets[j] + t_j)

  where t_j is a per-joint translation (0 for joints without position channels).
- Euler angles are intrinsic, in the order the BVH channels list them: ``order = "ZXY"`` and
  angles (z, x, y) mean ``R = Rz(z) Rx(x) Ry(y)``; ``Ra(t)`` is the right-handed rotation by t
  about axis a. Angles are radians unless ``degrees=True``.
- Shapes carry any leading batch dimensions: rotations [..., J, 3, 3], positions [..., J, 3],
  root translations [..., 3].

Inverse kinematics (:func:`positions_to_rotations`) recovers local rotations from joint positions:
the global rotation of joint j is the rotation that best maps its children's rest offsets onto the
observed child vectors ``p_c - p_j``: the minimal rotation (swing) relative to the parent's frame
when the children's offsets span one direction, the orthogonal Procrustes (Kabsch / SVD) solution
when they span a plane. Leaves keep their parent's orientation (their twist is unobservable from
positions). FK of the result restores the rest bone lengths exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from engine.errors import DataError

AXES = "XYZ"
DEFAULT_ORDER = "ZXY"
_RANK_TOL = 1e-3
"""Children offsets whose second singular value is below this fraction of the first count as one direction."""


# ----------------------------------------------------------------------------------------------- rotations
def check_order(order: str, *, where: str = "rotation order", allow_short: bool = False) -> str:
    """``order`` upper-cased; raise DataError unless it is 3 (or 1-3 if ``allow_short``) distinct axes of XYZ."""
    o = str(order).upper()
    ok_len = 1 <= len(o) <= 3 if allow_short else len(o) == 3
    if not ok_len or any(a not in AXES for a in o) or len(set(o)) != len(o):
        raise DataError(f"{where}: {order!r} is not an order of distinct axes X, Y, Z (e.g. 'ZXY')")
    return o


def axis_rotation(angle: np.ndarray, axis: str) -> np.ndarray:
    """Right-handed rotation matrices [..., 3, 3] by ``angle`` [...] (radians) about ``axis`` in X, Y, Z."""
    a = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(a), np.sin(a)
    i = AXES.index(axis)
    j, k = (i + 1) % 3, (i + 2) % 3
    out = np.zeros((*a.shape, 3, 3))
    out[..., i, i] = 1.0
    out[..., j, j] = c
    out[..., k, k] = c
    out[..., j, k] = -s
    out[..., k, j] = s
    return out


def euler_to_matrix(angles: np.ndarray, order: str, *, degrees: bool = False) -> np.ndarray:
    """Intrinsic Euler angles [..., len(order)] -> rotation matrices [..., 3, 3].

    ``angles[..., i]`` is the angle about axis ``order[i]`` and ``R = R_order[0] R_order[1] R_order[2]``.
    ``order`` may have 1 to 3 distinct axes (a BVH joint may declare fewer than three rotation channels).
    """
    o = check_order(order, allow_short=True)
    a = np.asarray(angles, dtype=np.float64)
    if a.shape[-1:] != (len(o),):
        raise DataError(f"Euler angles for order {o} need a last axis of size {len(o)}, got shape {a.shape}")
    if degrees:
        a = np.deg2rad(a)
    out = axis_rotation(a[..., 0], o[0])
    for i in range(1, len(o)):
        out = out @ axis_rotation(a[..., i], o[i])
    return out


def matrix_to_euler(matrices: np.ndarray, order: str, *, degrees: bool = False) -> np.ndarray:
    """Rotation matrices [..., 3, 3] -> intrinsic Euler angles [..., 3] in ``order`` (3 distinct axes).

    With ``R = R_i(a) R_j(b) R_k(c)`` and ``s = +1`` for the cyclic orders (XYZ, YZX, ZXY), ``-1`` otherwise:
    ``sin b = s R[i, k]``, ``tan a = -s R[j, k] / R[k, k]``, ``tan c = -s R[i, j] / R[i, i]``. The middle angle
    lies in [-90, 90] degrees; at gimbal lock (``cos b ~ 0``) ``c = 0`` and ``a`` carries the whole rotation.
    """
    o = check_order(order)
    m = np.asarray(matrices, dtype=np.float64)
    i, j, k = (AXES.index(a) for a in o)
    s = 1.0 if (j - i) % 3 == 1 else -1.0
    cos_b = np.hypot(m[..., i, i], m[..., i, j])
    b = np.arctan2(s * m[..., i, k], cos_b)
    a = np.arctan2(-s * m[..., j, k], m[..., k, k])
    c = np.arctan2(-s * m[..., i, j], m[..., i, i])
    locked = cos_b < 1e-9
    if np.any(locked):
        a = np.where(locked, np.arctan2(s * m[..., k, j], m[..., j, j]), a)
        c = np.where(locked, 0.0, c)
    out = np.stack([a, b, c], axis=-1)
    return np.rad2deg(out) if degrees else out


def matrix_to_quaternion(matrices: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] -> unit quaternions [..., 4] as (w, x, y, z) with w >= 0.

    Each quaternion is computed from the largest of ``4w^2, 4x^2, 4y^2, 4z^2`` (Shepperd's method), so
    no branch divides by a small number.
    """
    m = np.asarray(matrices, dtype=np.float64)
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    cands = np.stack([
        np.stack([1 + tr, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
        np.stack([m[..., 2, 1] - m[..., 1, 2], 1 + 2 * m[..., 0, 0] - tr, m[..., 0, 1] + m[..., 1, 0],
                  m[..., 0, 2] + m[..., 2, 0]], -1),
        np.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 + 2 * m[..., 1, 1] - tr,
                  m[..., 1, 2] + m[..., 2, 1]], -1),
        np.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1],
                  1 + 2 * m[..., 2, 2] - tr], -1),
    ], axis=-2)  # row r is 4 q_r q (up to sign)
    diag = np.stack([1 + tr, 1 + 2 * m[..., 0, 0] - tr, 1 + 2 * m[..., 1, 1] - tr, 1 + 2 * m[..., 2, 2] - tr], -1)
    best = np.argmax(diag, axis=-1)
    q = np.take_along_axis(cands, best[..., None, None], axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def quaternion_to_matrix(quaternions: np.ndarray) -> np.ndarray:
    """Quaternions [..., 4] (w, x, y, z), normalised here -> rotation matrices [..., 3, 3]."""
    q = np.asarray(quaternions, dtype=np.float64)
    w, x, y, z = np.moveaxis(q / np.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], axis=-2)


def slerp(q0: np.ndarray, q1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions [..., 4] along the shorter arc; ``w`` [...] in [0, 1].

    ``slerp = (sin((1-w) th) q0 + sin(w th) q1) / sin th`` with ``cos th = |q0 . q1|``; nearly equal
    quaternions (th < 1e-6) fall back to normalised linear interpolation.
    """
    q0 = np.asarray(q0, dtype=np.float64)
    q1 = np.asarray(q1, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    th = np.arccos(np.clip(np.abs(dot), 0.0, 1.0))
    sin_th = np.sin(th)
    small = sin_th < 1e-6
    safe = np.where(small, 1.0, sin_th)
    k0 = np.where(small, 1.0 - w, np.sin((1.0 - w) * th) / safe)
    k1 = np.where(small, w, np.sin(w * th) / safe)
    out = k0 * q0 + k1 * q1
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def interpolate_rotations(rotations: np.ndarray, times: np.ndarray, new_times: np.ndarray) -> np.ndarray:
    """Slerp rotation matrices [F, ..., 3, 3] sampled at ``times`` [F] onto ``new_times`` [F'] (inside the range)."""
    t = np.asarray(times, dtype=np.float64)
    nt = np.asarray(new_times, dtype=np.float64)
    idx = np.clip(np.searchsorted(t, nt, side="right") - 1, 0, t.size - 2)
    w = np.clip((nt - t[idx]) / (t[idx + 1] - t[idx]), 0.0, 1.0)
    q = matrix_to_quaternion(rotations)
    w = w.reshape((-1,) + (1,) * (q.ndim - 2))
    return quaternion_to_matrix(slerp(q[idx], q[idx + 1], np.broadcast_to(w, q[idx].shape[:-1])))


def _swing(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Minimal rotations [..., 3, 3] taking the directions of ``src`` [..., 3] onto those of ``dst`` [..., 3].

    Rodrigues with ``v = a x b``, ``c = a . b``: ``R = I + [v]x + [v]x^2 / (1 + c)``; antiparallel pairs get
    the half turn about an axis perpendicular to ``a``; a zero vector gives the identity.
    """
    a = np.broadcast_to(np.asarray(src, dtype=np.float64), np.broadcast_shapes(np.shape(src), np.shape(dst)))
    b = np.broadcast_to(np.asarray(dst, dtype=np.float64), a.shape)
    na = np.linalg.norm(a, axis=-1, keepdims=True)
    nb = np.linalg.norm(b, axis=-1, keepdims=True)
    degenerate = ((na < 1e-300) | (nb < 1e-300))[..., 0]
    a = a / np.where(na < 1e-300, 1.0, na)
    b = b / np.where(nb < 1e-300, 1.0, nb)
    v = np.cross(a, b)
    c = np.sum(a * b, axis=-1)
    vx = np.zeros((*v.shape[:-1], 3, 3))
    vx[..., 0, 1], vx[..., 0, 2] = -v[..., 2], v[..., 1]
    vx[..., 1, 0], vx[..., 1, 2] = v[..., 2], -v[..., 0]
    vx[..., 2, 0], vx[..., 2, 1] = -v[..., 1], v[..., 0]
    opposite = c < -1.0 + 1e-12
    denom = np.where(opposite, 1.0, 1.0 + c)[..., None, None]
    out = np.eye(3) + vx + vx @ vx / denom
    if np.any(opposite):  # half turn about u perpendicular to a: R = 2 u u' - I
        helper = np.where(np.abs(a[..., :1]) < 0.9, np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
        u = np.cross(a, helper)
        u = u / np.linalg.norm(u, axis=-1, keepdims=True)
        half = 2.0 * u[..., :, None] * u[..., None, :] - np.eye(3)
        out = np.where(opposite[..., None, None], half, out)
    return np.where(degenerate[..., None, None], np.eye(3), out)


def _kabsch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Rotations [..., 3, 3] minimising ``sum_c |R src_c - dst_c|^2``; src [k, 3] (fixed), dst [..., k, 3].

    ``H = sum_c src_c dst_c' = U S V'``, ``R = V diag(1, 1, det(V U')) U'`` (no reflection).
    """
    h = np.einsum("ci,...cj->...ij", src, dst)
    u, _, vt = np.linalg.svd(h)
    v = np.swapaxes(vt, -1, -2)
    ut = np.swapaxes(u, -1, -2)
    d = np.sign(np.linalg.det(v @ ut))
    d = np.where(d == 0, 1.0, d)
    v = v.copy()
    v[..., :, 2] *= d[..., None]
    return v @ ut


# ----------------------------------------------------------------------------------------------- skeleton
@dataclass(frozen=True, eq=False)
class Skeleton:
    """A joint hierarchy with rest offsets (compared by identity; use :meth:`same_as` for equality).

    Attributes:
        names: J unique joint names.
        parents: J parent indices, ``parents[0] == -1`` and ``0 <= parents[j] < j`` for j >= 1.
        offsets: float64 [J, 3], each joint's rest position in its parent's frame (the root's: in the world).
        end_sites: joint index -> float64 [3] offset of that joint's BVH "End Site" (a tip with no motion).
        rotation_orders: the Euler order each joint's rotations are written in (3 distinct axes); empty means
            ``"ZXY"`` for every joint.
    """

    names: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray
    end_sites: Mapping[int, np.ndarray] = field(default_factory=dict)
    rotation_orders: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        parents = tuple(int(p) for p in self.parents)
        offsets = np.array(self.offsets, dtype=np.float64)
        j = len(names)
        if j == 0:
            raise DataError("skeleton: it has no joints")
        if len(set(names)) != j:
            dup = sorted({n for n in names if names.count(n) > 1})
            raise DataError(f"skeleton: joint names must be unique; repeated: {', '.join(dup)}")
        if len(parents) != j or parents[0] != -1 or any(not 0 <= p < i for i, p in enumerate(parents) if i):
            raise DataError("skeleton: parents must list -1 for joint 0 and an earlier joint for every other joint")
        if offsets.shape != (j, 3) or not np.isfinite(offsets).all():
            raise DataError(f"skeleton: offsets must be finite with shape [{j}, 3], got {offsets.shape}")
        ends = {}
        for key, value in dict(self.end_sites).items():
            k = int(key)
            v = np.array(value, dtype=np.float64)
            if not 0 <= k < j or v.shape != (3,) or not np.isfinite(v).all():
                raise DataError(f"skeleton: end site of joint {key!r} must be a finite [3] offset of a joint")
            ends[k] = v
        orders = tuple(check_order(o, where=f"skeleton joint {names[i]}") for i, o in
                       enumerate(self.rotation_orders or (DEFAULT_ORDER,) * j))
        if len(orders) != j:
            raise DataError(f"skeleton: rotation_orders must list one order per joint ({j}), got {len(orders)}")
        offsets.setflags(write=False)
        for v in ends.values():
            v.setflags(write=False)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "parents", parents)
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "end_sites", dict(sorted(ends.items())))
        object.__setattr__(self, "rotation_orders", orders)

    # ------------------------------------------------------------------ structure
    @property
    def num_joints(self) -> int:
        """J."""
        return len(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"Skeleton({self.num_joints} joints, root={self.names[0]!r}, size={self.size:.4g})"

    def index(self, name: str) -> int:
        """The index of joint ``name`` (a DataError listing the joints if there is none)."""
        try:
            return self.names.index(name)
        except ValueError:
            raise DataError(f"skeleton has no joint {name!r}; joints: {', '.join(self.names)}") from None

    def indices(self, names: Iterable[str]) -> np.ndarray:
        """Indices (int64 array) of ``names``, in the order given."""
        return np.array([self.index(n) for n in names], dtype=np.int64)

    @cached_property
    def children(self) -> tuple[tuple[int, ...], ...]:
        """``children[j]``: the joints whose parent is j, in index order."""
        out: list[list[int]] = [[] for _ in self.names]
        for j, p in enumerate(self.parents[1:], start=1):
            out[p].append(j)
        return tuple(tuple(c) for c in out)

    def rest_positions(self) -> np.ndarray:
        """Joint positions [J, 3] in the rest pose (all rotations identity): cumulative offsets."""
        pos = np.zeros((self.num_joints, 3))
        for j, p in enumerate(self.parents):
            pos[j] = self.offsets[j] + (pos[p] if p >= 0 else 0.0)
        return pos

    def bone_lengths(self) -> np.ndarray:
        """``|offsets[j]|`` for every joint [J]; the root's entry is 0 (it has no bone)."""
        lengths = np.linalg.norm(self.offsets, axis=-1)
        lengths[0] = 0.0
        return lengths

    @cached_property
    def size(self) -> float:
        """The skeleton's extent, independent of pose: the longest path between two joints along bones."""
        lengths = self.bone_lengths()
        down = np.zeros(self.num_joints)  # longest bone path from j down to a descendant
        best = 0.0
        for j in range(self.num_joints - 1, -1, -1):
            branch = sorted((down[c] + lengths[c] for c in self.children[j]), reverse=True)
            if branch:
                down[j] = branch[0]
                best = max(best, branch[0] + (branch[1] if len(branch) > 1 else 0.0))
        return float(best)

    def chain_length(self, joint: int | str) -> float:
        """Sum of bone lengths from the root down to ``joint`` (e.g. hip-to-ankle leg length)."""
        j = self.index(joint) if isinstance(joint, str) else int(joint)
        lengths = self.bone_lengths()
        total = 0.0
        while j > 0:
            total += float(lengths[j])
            j = self.parents[j]
        return total

    def same_as(self, other: Skeleton, *, rtol: float = 1e-6) -> bool:
        """Same names, parents and offsets (within ``rtol * size``); end sites and orders are not compared."""
        if self.names != other.names or self.parents != other.parents:
            return False
        tol = rtol * max(self.size, other.size, 1e-12)
        return bool(np.all(np.abs(self.offsets - other.offsets) <= tol))

    # ------------------------------------------------------------------ derived skeletons
    def subset(self, joint_names: Sequence[str]) -> Skeleton:
        """The skeleton of the kept joints, in this skeleton's order.

        Each kept joint's parent is its nearest kept ancestor and its offset is recomputed from the rest
        pose, ``rest[j] - rest[new parent]`` (rest frames are all aligned with the world), so FK of the subset
        at rest gives the same positions for the kept joints; in motion, the kept joints' positions are those
        of the full skeleton's FK (select them with :meth:`indices`), and the subset's bones keep constant
        length whenever the dropped joints between two kept ones do not bend. Exactly one kept joint must have
        no kept ancestor: it becomes the root (its offset is its rest position). End sites are kept for joints
        that had one.
        """
        keep = set(self.indices(joint_names).tolist())
        if len(keep) != len(joint_names):
            raise DataError("skeleton.subset: joint names are repeated")
        order = sorted(keep)
        new_index = {old: new for new, old in enumerate(order)}
        rest = self.rest_positions()
        parents, offsets = [], []
        for j in order:
            p = self.parents[j]
            while p >= 0 and p not in keep:
                p = self.parents[p]
            if p < 0 and j != order[0]:
                raise DataError(f"skeleton.subset: joint {self.names[j]!r} has no kept ancestor; keep a common "
                                f"ancestor such as {self.names[0]!r}")
            parents.append(-1 if p < 0 else new_index[p])
            offsets.append(rest[j] - (rest[p] if p >= 0 else 0.0))
        ends = {new_index[j]: v for j, v in self.end_sites.items() if j in keep}
        return Skeleton(tuple(self.names[j] for j in order), tuple(parents), np.array(offsets), ends,
                        tuple(self.rotation_orders[j] for j in order))

    def with_rest_positions(self, positions: np.ndarray, *, rtol: float = 1e-4) -> Skeleton:
        """The same hierarchy whose rest pose is the given pose: ``offsets[j] = positions[j] - positions[parent]``.

        ``positions`` [J, 3] must be a pose of this skeleton (every bone length within ``rtol * size``), e.g. a
        T-pose frame of a rig whose zero-rotation pose is not one. :meth:`subset` and the swing/Kabsch fits of
        :func:`positions_to_rotations` are then taken relative to that pose. End sites are dropped (they were
        expressed in the old rest frames).
        """
        p = np.asarray(positions, dtype=np.float64)
        if p.shape != (self.num_joints, 3) or not np.isfinite(p).all():
            raise DataError(f"skeleton.with_rest_positions: need finite positions [{self.num_joints}, 3], "
                            f"got shape {p.shape}")
        offsets = p - np.concatenate([np.zeros((1, 3)), p[list(self.parents[1:])]])
        lengths = np.linalg.norm(offsets, axis=-1)
        lengths[0] = 0.0
        worst = int(np.argmax(np.abs(lengths - self.bone_lengths())))
        if abs(lengths[worst] - self.bone_lengths()[worst]) > rtol * max(self.size, 1e-300):
            raise DataError(f"skeleton.with_rest_positions: the pose changes the bone of {self.names[worst]!r} "
                            "(it is not a pose of this skeleton)")
        return Skeleton(self.names, self.parents, offsets, {}, self.rotation_orders)

    def scaled(self, factor: float) -> Skeleton:
        """The same skeleton with every offset multiplied by ``factor`` (> 0), e.g. 0.01 for cm -> m."""
        f = float(factor)
        if not (np.isfinite(f) and f > 0):
            raise DataError(f"skeleton.scaled: factor must be > 0, got {factor!r}")
        return Skeleton(self.names, self.parents, self.offsets * f, {k: v * f for k, v in self.end_sites.items()},
                        self.rotation_orders)

    def to_dict(self) -> dict:
        """A JSON-serialisable description (inverse of :meth:`from_dict`)."""
        return {
            "names": list(self.names),
            "parents": list(self.parents),
            "offsets": self.offsets.tolist(),
            "end_sites": {str(k): v.tolist() for k, v in self.end_sites.items()},
            "rotation_orders": list(self.rotation_orders),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> Skeleton:
        """The skeleton described by :meth:`to_dict`'s output."""
        try:
            return cls(tuple(d["names"]), tuple(d["parents"]), np.asarray(d["offsets"], dtype=np.float64),
                       {int(k): v for k, v in d.get("end_sites", {}).items()}, tuple(d.get("rotation_orders", ())))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"skeleton description is malformed ({exc})") from None

    # ------------------------------------------------------------------ kinematics
    def global_transforms(self, rotations: np.ndarray, translations: np.ndarray | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
        """Forward kinematics: (global rotations [..., J, 3, 3], global positions [..., J, 3]).

        Args:
            rotations: local rotation matrices [..., J, 3, 3].
            translations: None, the root translation [..., 3], or per-joint translations [..., J, 3] added to
                the offsets (BVH position channels).
        """
        r = np.asarray(rotations, dtype=np.float64)
        n = self.num_joints
        if r.shape[-3:] != (n, 3, 3):
            raise DataError(f"rotations must have shape [..., {n}, 3, 3] for this skeleton, got {r.shape}")
        batch = r.shape[:-3]
        local = np.broadcast_to(self.offsets, (*batch, n, 3)).copy()
        if translations is not None:
            t = np.asarray(translations, dtype=np.float64)
            if t.shape == (*batch, 3):
                local[..., 0, :] += t
            elif t.shape == (*batch, n, 3):
                local += t
            else:
                raise DataError(f"translations must have shape {(*batch, 3)} (root) or {(*batch, n, 3)}, "
                                f"got {t.shape}")
        # joint-major contiguous copies: per-joint slices are then contiguous (several times faster)
        r_j = np.ascontiguousarray(np.moveaxis(r, -3, 0))
        local_j = np.ascontiguousarray(np.moveaxis(local, -2, 0))
        glob = np.empty_like(r_j)
        pos = np.empty_like(local_j)
        glob[0] = r_j[0]
        pos[0] = local_j[0]
        for j in range(1, n):
            p = self.parents[j]
            np.matmul(glob[p], r_j[j], out=glob[j])
            pos[j] = pos[p] + np.einsum("...ik,...k->...i", glob[p], local_j[j])
        return np.moveaxis(glob, 0, -3), np.moveaxis(pos, 0, -2)

    def forward_kinematics(self, rotations: np.ndarray, translations: np.ndarray | None = None) -> np.ndarray:
        """Global joint positions [..., J, 3] from local rotations [..., J, 3, 3] (see :meth:`global_transforms`)."""
        return self.global_transforms(rotations, translations)[1]

    @cached_property
    def _ik_plan(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """Per joint: ("leaf", ()), ("swing", (child,)) or ("kabsch", children) from its children's offsets."""
        scale = max(float(np.linalg.norm(self.offsets[1:], axis=-1).max(initial=0.0)), 1e-300)
        plan = []
        for j in range(self.num_joints):
            kids = tuple(c for c in self.children[j] if np.linalg.norm(self.offsets[c]) > 1e-9 * scale)
            if not kids:
                plan.append(("leaf", ()))
                continue
            sv = np.linalg.svd(self.offsets[list(kids)], compute_uv=False)
            if len(kids) >= 2 and sv[1] > _RANK_TOL * sv[0]:
                plan.append(("kabsch", kids))
            else:
                longest = max(kids, key=lambda c: float(np.linalg.norm(self.offsets[c])))
                plan.append(("swing", (longest,)))
        return tuple(plan)


def positions_to_rotations(skeleton: Skeleton, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse kinematics: joint positions [..., J, 3] -> (local rotations [..., J, 3, 3], root translation [..., 3]).

    Per joint j (children c with rest offsets o_c and observed vectors d_c = p_c - p_j), its global rotation
    G_j is: the parent's for a leaf; ``swing(G_parent o_c -> d_c) G_parent`` (minimal rotation relative to the
    parent's frame) when the children's offsets span one direction (the longest child is used); otherwise
    ``argmin_R sum_c |R o_c - d_c|^2`` (Kabsch). Local rotations are ``G_parent' G_j``; the root translation is
    ``p_0 - offsets[0]``. For positions produced by FK of this skeleton, FK of the result reproduces them
    (up to round-off); for other positions, it restores the rest bone lengths with the fitted directions.
    """
    p = np.asarray(positions, dtype=np.float64)
    n = skeleton.num_joints
    if p.shape[-2:] != (n, 3):
        raise DataError(f"positions must have shape [..., {n}, 3] for this skeleton, got {p.shape}")
    if not np.isfinite(p).all():
        raise DataError("positions contain NaN or inf")
    batch = p.shape[:-2]
    pj = np.ascontiguousarray(np.moveaxis(p, -2, 0))  # joint-major [J, ..., 3]: contiguous per-joint slices
    glob = np.empty((n, *batch, 3, 3))
    local = np.empty_like(glob)
    identity = np.broadcast_to(np.eye(3), (*batch, 3, 3))
    for j, (kind, kids) in enumerate(skeleton._ik_plan):
        parent = skeleton.parents[j]
        g_parent = glob[parent] if parent >= 0 else identity
        if kind == "leaf":
            glob[j] = g_parent
        elif kind == "swing":
            c = kids[0]
            src = np.einsum("...ik,k->...i", g_parent, skeleton.offsets[c])
            np.matmul(_swing(src, pj[c] - pj[j]), g_parent, out=glob[j])
        else:
            glob[j] = _kabsch(skeleton.offsets[list(kids)], np.moveaxis(pj[list(kids)] - pj[j], 0, -2))
        np.matmul(np.swapaxes(g_parent, -1, -2), glob[j], out=local[j])
    local = np.moveaxis(local, 0, -3)
    return local, p[..., 0, :] - skeleton.offsets[0]
