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
    """Contact manifolds of the P = K + N pair slots: the K nearest box pairs, then box-floor pairs.

    Structure of arrays: the slot axis P is last, so a batch of envs gives long minor axes."""

    pair: Array  # [P] int32, pair id: index into np.triu_indices(N, 1), or (number of box pairs + box)
    flip: Array  # [P] bool, the reference face is on body b (else on body a)
    local_normal: Array  # [xy 2, P] reference face normal, in the reference body's frame
    local_plane: Array  # [xy 2, P] reference face midpoint, in the reference body's frame
    local_points: Array  # [xy 2, point 2, P] clip points, in the incident body's frame
    active: Array  # [point 2, P] bool
    ids: Array  # [point 2, P] int32 contact feature ids (for warm starting)
    impulse: Array  # [(normal, tangent) 2, point 2, P] accumulated impulses of the last solve


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
        """x [C, N + 1] -> (x[:, ia], x[:, ib]), each [C, P]."""
        both = x[:, self.index]
        return both[:, :self.p], both[:, self.p:]

    def add(self, x: Array, on_a: Array, on_b: Array) -> Array:
        """x [C, N + 1] plus the pair terms on_a, on_b [C, P] summed onto bodies a and b."""
        return x.at[:, self.index].add(jnp.concatenate([on_a, on_b], 1))


def _rotate(c, s, x, y):
    """R(θ) (x, y) for cos θ, sin θ and vector components, all broadcasting arrays."""
    return c * x - s * y, s * x + c * y


def _pick(table, index: Array) -> Array:
    """table[index[p], p] for a table [4, P] (or [4]) and indices [P], by selects (exact)."""
    out = table[3]
    for i in (2, 1, 0):
        out = jnp.where(index == i, table[i], out)
    return out


def _vertices(box) -> tuple[Array, Array]:
    """World corners (x, y), each [4, P], of boxes (cx, cy, cos, sin, hx, hy), each [P]."""
    cx, cy, c, s, hx, hy = box
    x, y = _rotate(c, s, _CORNERS[:, :1] * hx, _CORNERS[:, 1:] * hy)
    return cx + x, cy + y


def _face_normals(c: Array, s: Array) -> tuple[Array, Array]:
    """World face normals (x, y), each [4, P], of boxes with cos, sin [P]."""
    return _rotate(c, s, _LOCAL_NORMALS[:, :1], _LOCAL_NORMALS[:, 1:])


def _max_separation(box1, box2) -> tuple[Array, Array]:
    """Box2D's b2FindMaxSeparation: the face [P] of box 1 along which box 2 is most separated, and
    that separation [P]; boxes as in `_vertices`."""
    nx, ny = _face_normals(box1[2], box1[3])
    v1x, v1y = _vertices(box1)
    v2x, v2y = _vertices(box2)
    sep = (nx[:, None] * (v2x[None] - v1x[:, None]) + ny[:, None] * (v2y[None] - v1y[:, None])).min(1)  # [4, P]
    return sep.max(0), jnp.argmax(sep, 0)


def _clip(p, q, normal, offset):
    """Box2D's b2ClipSegmentToLine: keeps the part of segment pq with normal·x <= offset (points and
    normal as (x, y) pairs of [P] arrays)."""
    d0 = normal[0] * p[0] + normal[1] * p[1] - offset
    d1 = normal[0] * q[0] + normal[1] * q[1] - offset
    ratio = d0 / jnp.where(d0 == d1, 1.0, d0 - d1)
    cut = [pi + ratio * (qi - pi) for pi, qi in zip(p, q)]
    first = [jnp.where(d0 <= 0, pi, qi) for pi, qi in zip(p, q)]
    second = [jnp.where((d0 <= 0) & (d1 <= 0), qi, ci) for qi, ci in zip(q, cut)]
    count = (d0 <= 0).astype(jnp.int32) + (d1 <= 0) + (d0 * d1 < 0)
    return first, second, count >= 2


def _reference_face(box1, edge):
    """Local normal, local face end points v11, v12 and world tangent of face `edge` [P] of box 1."""
    _, _, c1, s1, h1x, h1y = box1
    local_normal = (_pick(_LOCAL_NORMALS[:, 0], edge), _pick(_LOCAL_NORMALS[:, 1], edge))
    v11 = (_pick(_CORNERS[:, 0], edge) * h1x, _pick(_CORNERS[:, 1], edge) * h1y)
    v12 = (_pick(_CORNERS[:, 0], (edge + 1) % 4) * h1x, _pick(_CORNERS[:, 1], (edge + 1) % 4) * h1y)
    dx, dy = v12[0] - v11[0], v12[1] - v11[1]
    tx, ty = _rotate(c1, s1, dx, dy)
    length = jnp.sqrt(dx * dx + dy * dy)
    return local_normal, v11, v12, (tx / length, ty / length)


def _collide(box_a, box_b):
    """Box2D's b2CollidePolygons for P box pairs (cx, cy, cos, sin, hx, hy), each [P].

    Returns (flip, local normal, local plane point, local clip points, active, ids) as in `Manifolds`.
    """
    sep_a, edge_a = _max_separation(box_a, box_b)
    sep_b, edge_b = _max_separation(box_b, box_a)
    flip = sep_b > sep_a + 0.1 * LINEAR_SLOP
    box1 = [jnp.where(flip, b, a) for a, b in zip(box_a, box_b)]
    box2 = [jnp.where(flip, a, b) for a, b in zip(box_a, box_b)]
    edge = jnp.where(flip, edge_b, edge_a)
    local_normal, v11, v12, tangent = _reference_face(box1, edge)
    nx, ny = _rotate(box1[2], box1[3], *local_normal)
    fx, fy = _face_normals(box2[2], box2[3])
    incident = jnp.argmin(fx * nx + fy * ny, 0)
    vx, vy = _vertices(box2)
    p = (_pick(vx, incident), _pick(vy, incident))
    q = (_pick(vx, (incident + 1) % 4), _pick(vy, (incident + 1) % 4))
    w11, w12 = (_rotate(box1[2], box1[3], *v) for v in (v11, v12))
    w11, w12 = (box1[0] + w11[0], box1[1] + w11[1]), (box1[0] + w12[0], box1[1] + w12[1])
    neg = (-tangent[0], -tangent[1])
    p, q, ok1 = _clip(p, q, neg, neg[0] * w11[0] + neg[1] * w11[1] + 2 * SKIN)
    p, q, ok2 = _clip(p, q, tangent, tangent[0] * w12[0] + tangent[1] * w12[1] + 2 * SKIN)
    px, py = jnp.stack([p[0], q[0]]), jnp.stack([p[1], q[1]])  # [2, P] world
    sep = px * nx + py * ny - (nx * w11[0] + ny * w11[1])
    active = ok1 & ok2 & (sep <= 2 * SKIN) & (jnp.maximum(sep_a, sep_b) <= 2 * SKIN)
    dx, dy = px - box2[0], py - box2[1]
    local_points = jnp.stack([dx * box2[2] + dy * box2[3], dy * box2[2] - dx * box2[3]])  # R2ᵀ (x - c2)
    ids = flip * 100 + edge * 10 + incident + np.arange(2)[:, None] * 1000
    plane = jnp.stack([0.5 * (v11[0] + v12[0]), 0.5 * (v11[1] + v12[1])])
    return flip, jnp.stack(local_normal), plane, local_points, active, ids.astype(jnp.int32)


def _broadphase(pos: Array) -> Array:
    """[K + N] pair ids: the K box pairs with the nearest centres, then the N box-floor pairs."""
    n = pos.shape[0]
    a, b = np.triu_indices(n, 1)
    k = box_pair_slots(n)
    if k == len(a):
        nearest = jnp.arange(k, dtype=jnp.int32)
    else:
        diff = pos[a] - pos[b]
        nearest = jax.lax.top_k(-(diff[:, 0] ** 2 + diff[:, 1] ** 2), k)[1].astype(jnp.int32)
    return jnp.concatenate([nearest, len(a) + jnp.arange(n, dtype=jnp.int32)])


def _warm_impulses(pair, active, ids, previous: Manifolds, k: int) -> Array:
    """Last step's impulses [2, 2, P] where the same pair keeps a contact point with the same id.

    A box pair may move between the K box slots (pair ids are unique per step); a floor slot always
    holds the same pair, or none in `empty_manifolds`."""
    same = pair[:k, None] == previous.pair[None, :k]  # [K new, K old]
    old = jnp.concatenate([jnp.argmax(same, 1), jnp.arange(k, pair.shape[0])])  # [P]
    found = jnp.concatenate([same.any(1), pair[k:] == previous.pair[k:]])
    old_ids = jnp.where(previous.active, previous.ids, -1)[:, old]  # [2, P]
    return jnp.where(active & found & (old_ids == ids), previous.impulse[:, :, old], 0.0)


def find_contacts(frames: Array, previous: Manifolds) -> tuple[Manifolds, _Slots]:
    """New manifolds for the broadphase's pair slots, from body frames [4, N + 1] (`body_frames`);
    impulses carried over where the same pair keeps a contact point with the same feature id."""
    n = frames.shape[1] - 1
    pair = _broadphase(frames[:2, :n].T)
    slots = _Slots(pair, n)
    a, b = slots.ab(frames)
    half_a = np.where(slots.floor[None], np.float32(FLOOR_HALF)[:, None], np.float32(HALF))  # [2, P]
    half_b = np.full_like(half_a, HALF)
    flip, local_normal, plane, points, active, ids = _collide((*a, *half_a), (*b, *half_b))
    impulse = _warm_impulses(pair, active, ids, previous, slots.k)
    return Manifolds(pair, flip, local_normal, plane, points, active, ids, impulse), slots


def empty_manifolds(n: int) -> Manifolds:
    p = box_pair_slots(n) + n
    return Manifolds(jnp.full(p, -1, jnp.int32), jnp.zeros(p, bool), jnp.zeros((2, p)), jnp.zeros((2, p)),
                     jnp.zeros((2, 2, p)), jnp.zeros((2, p), bool), jnp.zeros((2, p), jnp.int32),
                     jnp.zeros((2, 2, p)))


class _Geometry(NamedTuple):
    normal: tuple  # (x, y), each [P], from body a to body b
    ra: tuple  # (x, y), each [point 2, P], contact points relative to body a's centre
    rb: tuple  # (x, y), each [point 2, P], relative to body b's centre
    sep: Array  # [point 2, P] separation (negative = penetration beyond the skins)


def _pose(bodies: Bodies) -> Array:
    """[3, N + 1] rows (x, y, angle) with the floor appended as body N."""
    pose = jnp.stack([bodies.pos[:, 0], bodies.pos[:, 1], bodies.angle])
    return jnp.concatenate([pose, np.array([[FLOOR_CENTRE[0]], [FLOOR_CENTRE[1]], [0.0]], np.float32)], 1)


def body_frames(bodies: Bodies) -> Array:
    """[4, N + 1] rows (x, y, cos angle, sin angle) of the boxes, the floor appended as body N."""
    return _with_rotation(_pose(bodies))


def _with_rotation(pose: Array) -> Array:
    """Poses [3, N + 1] -> [4, N + 1] rows (x, y, cos angle, sin angle)."""
    return jnp.stack([pose[0], pose[1], jnp.cos(pose[2]), jnp.sin(pose[2])])


def _geometry(frames: Array, m: Manifolds, slots: _Slots) -> _Geometry:
    """World normal, lever arms and separations from body frames [4, N + 1] (`_with_rotation`)
    (b2PositionSolverManifold)."""
    a, b = slots.ab(frames)
    ref, inc = jnp.where(m.flip, b, a), jnp.where(m.flip, a, b)  # [4, P]
    nx, ny = _rotate(ref[2], ref[3], m.local_normal[0], m.local_normal[1])
    plane_x, plane_y = _rotate(ref[2], ref[3], m.local_plane[0], m.local_plane[1])
    plane_x, plane_y = ref[0] + plane_x, ref[1] + plane_y
    clip_x, clip_y = _rotate(inc[2], inc[3], m.local_points[0], m.local_points[1])  # [2, P]
    clip_x, clip_y = inc[0] + clip_x, inc[1] + clip_y
    raw = (clip_x - plane_x) * nx + (clip_y - plane_y) * ny
    point_x, point_y = clip_x - 0.5 * raw * nx, clip_y - 0.5 * raw * ny  # midpoint of the two skins
    normal = (jnp.where(m.flip, -nx, nx), jnp.where(m.flip, -ny, ny))
    return _Geometry(normal, (point_x - a[0], point_y - a[1]), (point_x - b[0], point_y - b[1]), raw - 2 * SKIN)


def _split_counts(active: Array, slots: _Slots) -> tuple[Array, Array]:
    """Number of active contact points (at least 1) of bodies a and b per slot [P]: the
    mass-splitting factors."""
    per_pair = active.sum(0).astype(jnp.float32)[None]
    a, b = slots.ab(jnp.maximum(slots.add(jnp.zeros((1, slots.n + 1)), per_pair, per_pair), 1.0))
    return a[0], b[0]


def _apply(state: Array, px: Array, py: Array, g: _Geometry, inv_m, inv_i, slots: _Slots) -> Array:
    """Adds impulses (px, py) [2, P] (acting on b, opposite on a) to linear and angular terms of
    bodies [3, N + 1] (velocities (vx, vy, omega) or poses (x, y, angle)).

    inv_m, inv_i: per-slot inverse masses / inertias of bodies (a, b), each a pair of [P] arrays."""
    tx, ty = px.sum(0), py.sum(0)
    ta, tb = (g.ra[0] * py - g.ra[1] * px).sum(0), (g.rb[0] * py - g.rb[1] * px).sum(0)
    on_a = jnp.stack([-inv_m[0] * tx, -inv_m[0] * ty, -inv_i[0] * ta])
    on_b = jnp.stack([inv_m[1] * tx, inv_m[1] * ty, inv_i[1] * tb])
    return slots.add(state, on_a, on_b)


def _effective_masses(g: _Geometry, inv_m, inv_i, counts):
    """Split effective masses [2, P] of the normal and tangent constraints."""
    ka, kb = counts[0] * inv_m[0], counts[1] * inv_m[1]
    ia_k, ib_k = counts[0] * inv_i[0], counts[1] * inv_i[1]
    mass = lambda dx, dy: 1.0 / jnp.maximum(  # noqa: E731
        ka + kb + ia_k * (g.ra[0] * dy - g.ra[1] * dx) ** 2 + ib_k * (g.rb[0] * dy - g.rb[1] * dx) ** 2, 1e-9)
    nx, ny = g.normal
    return mass(nx, ny), mass(ny, -nx)


def _solve_velocities(state, m: Manifolds, g: _Geometry, inv_m, inv_i, mu, iters: int, slots, counts):
    """Warm start, then `iters` Jacobi sweeps of friction + normal impulses with mass splitting on
    velocities [3, N + 1] (vx, vy, omega); `counts` from `_split_counts`, friction mu [P]."""
    (nx, ny), (rax, ray), (rbx, rby) = g.normal, g.ra, g.rb
    tx, ty = ny, -nx
    mass_n, mass_t = _effective_masses(g, inv_m, inv_i, counts)
    act = m.active.astype(jnp.float32)
    lam = m.impulse * act
    state = _apply(state, lam[0] * nx + lam[1] * tx, lam[0] * ny + lam[1] * ty, g, inv_m, inv_i, slots)

    def sweep(carry, _):
        state, lam = carry
        a, b = slots.ab(state)  # [3, P] (vx, vy, omega) of bodies a and b
        dvx = b[0] - b[2] * rby - a[0] + a[2] * ray  # [2, P]
        dvy = b[1] + b[2] * rbx - a[1] - a[2] * rax
        lam_t = jnp.clip(lam[1] - mass_t * (dvx * tx + dvy * ty), -mu * lam[0], mu * lam[0])
        lam_n = jnp.maximum(lam[0] - mass_n * (dvx * nx + dvy * ny), 0.0)
        new = jnp.stack([lam_n, lam_t]) * act
        dn, dt = new[0] - lam[0], new[1] - lam[1]
        state = _apply(state, dn * nx + dt * tx, dn * ny + dt * ty, g, inv_m, inv_i, slots)
        return (state, new), None

    (state, lam), _ = jax.lax.scan(sweep, (state, lam), None, length=iters)
    return state, lam


def _solve_positions(pose, m: Manifolds, inv_m, inv_i, iters: int, slots: _Slots, counts):
    """`iters` Jacobi sweeps of Box2D's position correction C = clamp(β (s + slop), -0.2, 0) on
    poses [3, N + 1] (x, y, angle); `counts` from `_split_counts`."""
    act = m.active.astype(jnp.float32)

    def sweep(pose, _):
        g = _geometry(_with_rotation(pose), m, slots)
        (nx, ny), (rax, ray), (rbx, rby) = g.normal, g.ra, g.rb
        c = jnp.clip(BAUMGARTE * (g.sep + LINEAR_SLOP), -MAX_CORRECTION, 0.0)
        rna, rnb = rax * ny - ray * nx, rbx * ny - rby * nx
        kk = (counts[0] * (inv_m[0] + inv_i[0] * rna ** 2) + counts[1] * (inv_m[1] + inv_i[1] * rnb ** 2))
        impulse = jnp.where(kk > 0, -c / jnp.maximum(kk, 1e-9), 0.0) * act
        return _apply(pose, impulse * nx, impulse * ny, g, inv_m, inv_i, slots), None

    return jax.lax.scan(sweep, pose, None, length=iters)[0]


def _integrate(state: Array, fixed_rotation: bool) -> Array:
    """Velocities [3, N + 1] limited to Box2D's maximum translation and rotation per step."""
    vx, vy, omega = state
    step = jnp.sqrt((DT * vx) ** 2 + (DT * vy) ** 2)
    scale = jnp.minimum(1.0, MAX_TRANSLATION / jnp.maximum(step, 1e-9))
    omega = jnp.clip(omega, -MAX_ROTATION / DT, MAX_ROTATION / DT)
    if fixed_rotation:
        omega = jnp.zeros_like(omega)
    return jnp.stack([vx * scale, vy * scale, omega])


def physics_step(bodies: Bodies, manifolds: Manifolds, force: Array, fixed_rotation: bool,
                 vel_iters: int, pos_iters: int) -> tuple[Bodies, Manifolds]:
    """One Box2D-style world step; `force` [N, 2] acts on the box centres for this step only."""
    n = bodies.pos.shape[0]
    pose = _pose(bodies)
    frames = _with_rotation(pose)
    m, slots = find_contacts(frames, manifolds)
    inv_m = ((~slots.floor).astype(np.float32), np.ones(len(slots.floor), np.float32))  # bodies a, b
    inv_i = tuple(x * np.float32(0.0 if fixed_rotation else INV_INERTIA) for x in inv_m)
    friction = np.where(slots.floor, np.sqrt(BOX_FRICTION * FLOOR_FRICTION), BOX_FRICTION).astype(np.float32)
    vel = jnp.concatenate([bodies.vel.T + DT * (force.T + np.array([[0.0], [GRAVITY]], np.float32)),
                           bodies.omega[None] / (1.0 + DT * ANGULAR_DAMPING)])
    vel = jnp.concatenate([vel, jnp.zeros((3, 1))], 1)  # [3, N + 1], the floor last
    g, counts = _geometry(frames, m, slots), _split_counts(m.active, slots)
    state, lam = _solve_velocities(vel, m, g, inv_m, inv_i, friction, vel_iters, slots, counts)
    state = _integrate(state, fixed_rotation)
    pose = _solve_positions(pose + DT * state, m, inv_m, inv_i, pos_iters, slots, counts)
    new = Bodies(pose[:2, :n].T, pose[2, :n], state[:2, :n].T, state[2, :n])
    return new, m._replace(impulse=lam)
