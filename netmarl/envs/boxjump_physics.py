"""A small 2D rigid-body solver for Box Jump's unit boxes, modelled on Box2D 2.3 (pure JAX).

One `physics_step` is Box2D's `world.Step(dt, vel_iters, pos_iters)` for N dynamic 1x1 boxes (mass 1)
and one static floor box, in screen coordinates (+y down, gravity +10):

1. contact manifolds from the current positions: Box2D's polygon collision (separating axis on both
   boxes, incident edge clipped against the reference face's side planes, polygon skin radius
   0.01 each), up to 2 points per pair, for every box-floor pair and the K = min(N(N-1)/2, 2N) box
   pairs with the nearest centres (a fixed-size broadphase);
2. velocities: gravity and forces, angular damping; warm start with last step's impulses (matched
   per pair slot and contact feature id), then `vel_iters` sweeps of sequential-impulse contact
   constraints with Coulomb friction (geometric-mean friction);
3. positions: semi-implicit Euler with Box2D's maximum translation/rotation per step;
4. `pos_iters` sweeps of Box2D's non-linear position correction (Baumgarte 0.2, slop 0.005,
   maximum correction 0.2).

Deliberate difference: the sweeps are **Jacobi with mass splitting** (each body's inverse mass is
scaled by its number of active contact points, and all impulses of a sweep are applied together)
instead of Box2D's Gauss-Seidel order, so every sweep is a few dense array operations that vmap well.
Bodies never sleep. See docs/environments.md for the calibration against Box2D.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

DT = 1.0 / 40.0  # s per env step (one physics step, no substeps)
GRAVITY = 10.0  # +y is down
HALF = 0.5  # box half-extent
INV_INERTIA = 6.0  # 1 / (m (w^2 + h^2) / 12) for a 1x1 box of mass 1
ANGULAR_DAMPING = 1.0
BOX_FRICTION, FLOOR_FRICTION = 0.8, 0.2
FLOOR_CENTRE, FLOOR_HALF = (0.0, 20.0), (30.0, 5.0)  # top surface y = 15, x in [-30, 30]
SKIN = 0.01  # b2_polygonRadius = 2 * linearSlop, per polygon
LINEAR_SLOP, BAUMGARTE, MAX_CORRECTION = 0.005, 0.2, 0.2
MAX_TRANSLATION, MAX_ROTATION = 2.0, 0.5 * np.pi  # per step
_LOCAL_NORMALS = np.array([[0.0, -1.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], np.float32)  # [4, 2]
_CORNERS = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], np.float32)  # [4, 2], x half


class Bodies(NamedTuple):
    """Kinematic state of the N boxes (the floor is implicit)."""

    pos: Array  # [N, 2] float32, centre (x, y), y down
    angle: Array  # [N] float32, radians
    vel: Array  # [N, 2] float32
    omega: Array  # [N] float32, rad/s


class Manifolds(NamedTuple):
    """Contact manifolds of the P = K + N pair slots: the K nearest box pairs, then box-floor pairs."""

    pair: Array  # [P] int32, pair id: index into np.triu_indices(N, 1), or (number of box pairs + box)
    flip: Array  # [P] bool, the reference face is on body b (else on body a)
    local_normal: Array  # [P, 2] reference face normal, in the reference body's frame
    local_plane: Array  # [P, 2] reference face midpoint, in the reference body's frame
    local_points: Array  # [P, 2, 2] clip points, in the incident body's frame
    active: Array  # [P, 2] bool
    ids: Array  # [P, 2] int32 contact feature ids (for warm starting)
    impulse: Array  # [P, 2, 2] accumulated (normal, tangent) impulses of the last solve


def box_pair_slots(n: int) -> int:
    """K, the number of box-pair slots: every pair up to N = 5, else the 2N nearest pairs (boxes in
    contact are at most sqrt(2) apart; a planar pile of unit boxes has fewer than 2N contacts)."""
    return min(n * (n - 1) // 2, 2 * n)


def pair_bodies(pair: Array, n: int) -> tuple[Array, Array]:
    """Body indices (a, b) of pair ids [P]; body n is the floor (always body a of a floor pair)."""
    a, b = np.triu_indices(n, 1)
    a = np.concatenate([a, np.full(n, n)]).astype(np.int32)
    b = np.concatenate([b, np.arange(n)]).astype(np.int32)
    return jnp.asarray(a)[pair], jnp.asarray(b)[pair]


class _Slots:
    """Body indices of the pair slots, stacked [2P] (bodies a of all slots, then bodies b), so a
    solver sweep is one gather and one scatter-add. Slots [0, K) are box pairs, [K, K + N) floor."""

    def __init__(self, pair: Array, n: int):
        self.index = jnp.concatenate(pair_bodies(pair, n))  # [2P] int32 into bodies [N + 1]
        self.n, self.p, self.k = n, pair.shape[0], pair.shape[0] - n
        self.floor = np.r_[np.zeros(self.k, bool), np.ones(n, bool)]  # [P] body a is the floor

    def ab(self, x: Array) -> tuple[Array, Array]:
        """x [N + 1, ...] -> (x[ia], x[ib]), each [P, ...]."""
        both = x[self.index]
        return both[:self.p], both[self.p:]

    def add(self, x: Array, on_a: Array, on_b: Array) -> Array:
        """x [N + 1, ...] plus the pair terms on_a, on_b [P, ...] summed onto bodies a and b."""
        return x.at[self.index].add(jnp.concatenate([on_a, on_b]))


def _rot(angle: Array) -> Array:
    c, s = jnp.cos(angle), jnp.sin(angle)
    return jnp.stack([jnp.stack([c, -s], -1), jnp.stack([s, c], -1)], -2)  # [..., 2, 2]


def _cross_sv(w: Array, r: Array) -> Array:
    """w × r for a scalar w and vectors r [..., 2]."""
    return jnp.stack([-w * r[..., 1], w * r[..., 0]], -1)


def _cross_vv(r: Array, p: Array) -> Array:
    return r[..., 0] * p[..., 1] - r[..., 1] * p[..., 0]


def _pick(table: Array, index: Array) -> Array:
    """table[index] for a small leading axis, by one-hot (vmaps without gathers)."""
    onehot = jax.nn.one_hot(index, table.shape[0], dtype=table.dtype)
    return jnp.tensordot(onehot, table, axes=(0, 0))


def _max_separation(c1, r1, h1, c2, r2, h2) -> tuple[Array, Array]:
    """Box2D's b2FindMaxSeparation: the face of box 1 along which box 2 is most separated."""
    normals = _LOCAL_NORMALS @ r1.T  # [4, 2] world
    verts1 = c1 + (_CORNERS * h1) @ r1.T
    verts2 = c2 + (_CORNERS * h2) @ r2.T
    sep = jnp.einsum("ik,ijk->ij", normals, verts2[None, :, :] - verts1[:, None, :]).min(1)  # [4]
    return sep.max(), jnp.argmax(sep)


def _clip(p: Array, q: Array, normal: Array, offset: Array) -> tuple[Array, Array, Array]:
    """Box2D's b2ClipSegmentToLine: keeps the part of segment pq with normal·x <= offset."""
    d0, d1 = normal @ p - offset, normal @ q - offset
    cut = p + (d0 / jnp.where(d0 == d1, 1.0, d0 - d1)) * (q - p)
    first = jnp.where(d0 <= 0, p, q)
    second = jnp.where((d0 <= 0) & (d1 <= 0), q, cut)
    count = (d0 <= 0).astype(jnp.int32) + (d1 <= 0) + (d0 * d1 < 0)
    return first, second, count >= 2


def _collide(c_a, angle_a, h_a, c_b, angle_b, h_b):
    """Box2D's b2CollidePolygons for two boxes (centres c, angles, half-extents h [2]).

    Returns (flip, local normal [2], local plane point [2], local clip points [2, 2], active [2],
    ids [2]) as stored in `Manifolds`.
    """
    r_a, r_b = _rot(angle_a), _rot(angle_b)
    sep_a, edge_a = _max_separation(c_a, r_a, h_a, c_b, r_b, h_b)
    sep_b, edge_b = _max_separation(c_b, r_b, h_b, c_a, r_a, h_a)
    flip = sep_b > sep_a + 0.1 * LINEAR_SLOP
    sel = lambda x, y: jnp.where(flip, y, x)  # noqa: E731
    c1, r1, h1, c2, r2, h2 = sel(c_a, c_b), sel(r_a, r_b), sel(h_a, h_b), sel(c_b, c_a), sel(r_b, r_a), sel(h_b, h_a)
    edge = sel(edge_a, edge_b)
    local_normal = _pick(jnp.asarray(_LOCAL_NORMALS), edge)
    normal = r1 @ local_normal
    incident = jnp.argmin((_LOCAL_NORMALS @ r2.T) @ normal)
    verts2 = c2 + (_CORNERS * h2) @ r2.T
    p, q = _pick(verts2, incident), _pick(verts2, (incident + 1) % 4)
    v11 = _pick(jnp.asarray(_CORNERS), edge) * h1
    v12 = _pick(jnp.asarray(_CORNERS), (edge + 1) % 4) * h1
    tangent = r1 @ (v12 - v11) / jnp.linalg.norm(v12 - v11)
    w11, w12 = c1 + r1 @ v11, c1 + r1 @ v12
    p, q, ok1 = _clip(p, q, -tangent, -tangent @ w11 + 2 * SKIN)
    p, q, ok2 = _clip(p, q, tangent, tangent @ w12 + 2 * SKIN)
    points = jnp.stack([p, q])  # [2, 2] world
    sep = points @ normal - normal @ w11
    active = ok1 & ok2 & (sep <= 2 * SKIN) & (jnp.maximum(sep_a, sep_b) <= 2 * SKIN)
    local_points = (points - c2) @ r2  # R2ᵀ (x - c2), row form
    ids = flip * 100 + edge * 10 + incident + jnp.arange(2) * 1000
    return flip, local_normal, 0.5 * (v11 + v12), local_points, active, ids.astype(jnp.int32)


def _extended(bodies: Bodies) -> tuple[Array, Array]:
    """Positions [N + 1, 2] and angles [N + 1] with the floor appended as body N."""
    pos = jnp.concatenate([bodies.pos, jnp.asarray([FLOOR_CENTRE], jnp.float32)])
    return pos, jnp.concatenate([bodies.angle, jnp.zeros(1, jnp.float32)])


def _broadphase(pos: Array) -> Array:
    """[K + N] pair ids: the K box pairs with the nearest centres, then the N box-floor pairs."""
    n = pos.shape[0]
    a, b = np.triu_indices(n, 1)
    k = box_pair_slots(n)
    if k == len(a):
        nearest = jnp.arange(k, dtype=jnp.int32)
    else:
        diff = jnp.tensordot(np.eye(n, dtype=np.float32)[a] - np.eye(n, dtype=np.float32)[b], pos, axes=(1, 0))
        nearest = jax.lax.top_k(-(diff ** 2).sum(-1), k)[1].astype(jnp.int32)
    return jnp.concatenate([nearest, len(a) + jnp.arange(n, dtype=jnp.int32)])


def find_contacts(bodies: Bodies, previous: Manifolds) -> tuple[Manifolds, _Slots]:
    """New manifolds for the broadphase's pair slots; impulses carried over where the same pair
    keeps a contact point with the same feature id."""
    n = bodies.pos.shape[0]
    pair = _broadphase(bodies.pos)
    slots = _Slots(pair, n)
    pos, angle = _extended(bodies)
    half_a = np.where(slots.floor[:, None], np.float32(FLOOR_HALF), np.float32(HALF))
    (pos_a, angle_a), (pos_b, angle_b) = _split_pose(*slots.ab(_pose(pos, angle)))
    out = jax.vmap(_collide)(pos_a, angle_a, half_a, pos_b, angle_b, np.full((len(half_a), 2), HALF, np.float32))
    flip, local_normal, local_plane, local_points, active, ids = out
    same = (pair[:, None] == previous.pair[None, :]).astype(jnp.float32)  # [P new, P old]
    old_ids = jnp.where(previous.active, previous.ids, -1)
    matched = jnp.einsum("po,ok->pk", same, (old_ids + 1).astype(jnp.float32)) - 1  # [P, 2]
    impulse = jnp.einsum("po,okj->pkj", same, previous.impulse)
    keep = (active & (matched == ids))[..., None]
    return Manifolds(pair, flip, local_normal, local_plane, local_points, active, ids,
                     jnp.where(keep, impulse, 0.0)), slots


def empty_manifolds(n: int) -> Manifolds:
    p = box_pair_slots(n) + n
    return Manifolds(jnp.full(p, -1, jnp.int32), jnp.zeros(p, bool), jnp.zeros((p, 2)), jnp.zeros((p, 2)),
                     jnp.zeros((p, 2, 2)), jnp.zeros((p, 2), bool), jnp.zeros((p, 2), jnp.int32),
                     jnp.zeros((p, 2, 2)))


class _Geometry(NamedTuple):
    normal: Array  # [P, 2] from body a to body b
    ra: Array  # [P, 2, 2] contact points relative to body a's centre
    rb: Array  # [P, 2, 2] relative to body b's centre
    sep: Array  # [P, 2] separation (negative = penetration beyond the skins)


def _pose(pos: Array, angle: Array) -> Array:
    """[N + 1, 3] rows (x, y, angle), or (vx, vy, omega) for velocities: one array to gather."""
    return jnp.concatenate([pos, angle[:, None]], -1)


def _split_pose(*poses: Array) -> list[tuple[Array, Array]]:
    return [(x[:, :2], x[:, 2]) for x in poses]


def _geometry(pose: Array, m: Manifolds, slots: _Slots) -> _Geometry:
    """World normal, lever arms and separations from current transforms [N + 1, 3]
    (b2PositionSolverManifold)."""
    (pos_a, angle_a), (pos_b, angle_b) = _split_pose(*slots.ab(pose))
    rot_a, rot_b = _rot(angle_a), _rot(angle_b)
    c_ref, c_inc = jnp.where(m.flip[:, None], pos_b, pos_a), jnp.where(m.flip[:, None], pos_a, pos_b)
    r_ref = jnp.where(m.flip[:, None, None], rot_b, rot_a)
    r_inc = jnp.where(m.flip[:, None, None], rot_a, rot_b)
    normal = jnp.einsum("pij,pj->pi", r_ref, m.local_normal)
    plane = c_ref + jnp.einsum("pij,pj->pi", r_ref, m.local_plane)
    clip = c_inc[:, None] + jnp.einsum("pij,pkj->pki", r_inc, m.local_points)  # [P, 2, 2]
    raw = jnp.einsum("pki,pi->pk", clip - plane[:, None], normal)
    point = clip - 0.5 * raw[..., None] * normal[:, None]  # midpoint of the two skins' surfaces
    normal = jnp.where(m.flip[:, None], -normal, normal)
    return _Geometry(normal, point - pos_a[:, None], point - pos_b[:, None], raw - 2 * SKIN)


def _split_counts(active: Array, slots: _Slots) -> tuple[Array, Array]:
    """Number of active contact points (at least 1) of bodies a and b per slot [P]: the
    mass-splitting factors."""
    per_pair = active.sum(1).astype(jnp.float32)
    return slots.ab(jnp.maximum(slots.add(jnp.zeros(slots.n + 1), per_pair, per_pair), 1.0))


def _apply(state: Array, impulse: Array, g: _Geometry, inv_m, inv_i, slots: _Slots) -> Array:
    """Adds impulses [P, 2, 2] (acting on b, opposite on a) to linear and angular terms of bodies
    [N + 1, 3] (velocities (vx, vy, omega) or poses (x, y, angle)).

    inv_m, inv_i: per-slot inverse masses / inertias of bodies (a, b), each a pair of [P] arrays."""
    total = impulse.sum(1)
    on_a = jnp.concatenate([-inv_m[0][:, None] * total, -inv_i[0][:, None] * _cross_vv(g.ra, impulse).sum(1,
                            keepdims=True)], -1)
    on_b = jnp.concatenate([inv_m[1][:, None] * total, inv_i[1][:, None] * _cross_vv(g.rb, impulse).sum(1,
                            keepdims=True)], -1)
    return slots.add(state, on_a, on_b)


def _solve_velocities(state, m: Manifolds, g: _Geometry, inv_m, inv_i, mu, iters: int, slots, counts):
    """Warm start, then `iters` Jacobi sweeps of friction + normal impulses with mass splitting on
    velocities [N + 1, 3] (vx, vy, omega); `counts` from `_split_counts`."""
    tangent = jnp.stack([g.normal[:, 1], -g.normal[:, 0]], -1)[:, None]  # [P, 1, 2]
    normal = g.normal[:, None]
    k_a, k_b = (k[:, None] for k in counts)
    ka, kb = k_a * inv_m[0][:, None], k_b * inv_m[1][:, None]
    ia_k, ib_k = k_a * inv_i[0][:, None], k_b * inv_i[1][:, None]
    mass = lambda d: 1.0 / jnp.maximum(  # noqa: E731
        ka + kb + ia_k * _cross_vv(g.ra, d) ** 2 + ib_k * _cross_vv(g.rb, d) ** 2, 1e-9)
    mass_n, mass_t = mass(normal), mass(tangent)
    act = m.active.astype(jnp.float32)
    lam = m.impulse * act[..., None]
    state = _apply(state, lam[..., :1] * normal + lam[..., 1:] * tangent, g, inv_m, inv_i, slots)

    def sweep(carry, _):
        state, lam = carry
        (vel_a, omega_a), (vel_b, omega_b) = _split_pose(*slots.ab(state))
        dv = (vel_b[:, None] + _cross_sv(omega_b[:, None], g.rb)
              - vel_a[:, None] - _cross_sv(omega_a[:, None], g.ra))  # [P, 2, 2]
        lam_t = jnp.clip(lam[..., 1] - mass_t * (dv * tangent).sum(-1), -mu * lam[..., 0], mu * lam[..., 0])
        lam_n = jnp.maximum(lam[..., 0] - mass_n * (dv * normal).sum(-1), 0.0)
        new = jnp.stack([lam_n, lam_t], -1) * act[..., None]
        delta = new - lam
        state = _apply(state, delta[..., :1] * normal + delta[..., 1:] * tangent, g, inv_m, inv_i, slots)
        return (state, new), None

    (state, lam), _ = jax.lax.scan(sweep, (state, lam), None, length=iters)
    return state, lam


def _solve_positions(pose, m: Manifolds, inv_m, inv_i, iters: int, slots: _Slots, counts):
    """`iters` Jacobi sweeps of Box2D's position correction C = clamp(β (s + slop), -0.2, 0) on
    poses [N + 1, 3] (x, y, angle); `counts` from `_split_counts`."""
    k_a, k_b = (k[:, None] for k in counts)
    act = m.active.astype(jnp.float32)

    def sweep(pose, _):
        g = _geometry(pose, m, slots)
        c = jnp.clip(BAUMGARTE * (g.sep + LINEAR_SLOP), -MAX_CORRECTION, 0.0)
        rna, rnb = _cross_vv(g.ra, g.normal[:, None]), _cross_vv(g.rb, g.normal[:, None])
        kk = (k_a * (inv_m[0][:, None] + inv_i[0][:, None] * rna ** 2)
              + k_b * (inv_m[1][:, None] + inv_i[1][:, None] * rnb ** 2))
        impulse = jnp.where(kk > 0, -c / jnp.maximum(kk, 1e-9), 0.0) * act
        return _apply(pose, impulse[..., None] * g.normal[:, None], g, inv_m, inv_i, slots), None

    return jax.lax.scan(sweep, pose, None, length=iters)[0]


def physics_step(bodies: Bodies, manifolds: Manifolds, force: Array, fixed_rotation: bool,
                 vel_iters: int, pos_iters: int) -> tuple[Bodies, Manifolds]:
    """One Box2D-style world step; `force` [N, 2] acts on the box centres for this step only."""
    n = bodies.pos.shape[0]
    m, slots = find_contacts(bodies, manifolds)
    inv_m = ((~slots.floor).astype(np.float32), np.ones(len(slots.floor), np.float32))  # bodies a, b
    inv_i = tuple(x * np.float32(0.0 if fixed_rotation else INV_INERTIA) for x in inv_m)
    friction = np.where(slots.floor, np.sqrt(BOX_FRICTION * FLOOR_FRICTION), BOX_FRICTION)[:, None]
    pose = _pose(*_extended(bodies))
    vel = jnp.concatenate([bodies.vel + DT * (force + jnp.array([0.0, GRAVITY])), jnp.zeros((1, 2))])
    omega = jnp.concatenate([bodies.omega / (1.0 + DT * ANGULAR_DAMPING), jnp.zeros(1)])
    g, counts = _geometry(pose, m, slots), _split_counts(m.active, slots)
    state, lam = _solve_velocities(_pose(vel, omega), m, g, inv_m, inv_i, friction, vel_iters, slots, counts)
    vel, omega = state[:, :2], state[:, 2]
    step = DT * vel
    vel = vel * jnp.minimum(1.0, MAX_TRANSLATION / jnp.maximum(jnp.linalg.norm(step, axis=-1), 1e-9))[:, None]
    omega = jnp.clip(omega, -MAX_ROTATION / DT, MAX_ROTATION / DT)
    if fixed_rotation:
        omega = jnp.zeros_like(omega)
    pose = _solve_positions(pose + DT * _pose(vel, omega), m, inv_m, inv_i, pos_iters, slots, counts)
    new = Bodies(pose[:n, :2], pose[:n, 2], vel[:n], omega[:n])
    return new, m._replace(impulse=lam)
