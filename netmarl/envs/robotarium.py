"""Robotarium-style dynamics in pure JAX: GRITSbot unicycles, the MARBLER waypoint controller, a
collision-avoidance safety barrier that works, violation accounting and pillow rendering.

One MARBLER env step (specs/marbler.md; MARBLER `roboEnv.step` + `utilities/controller.py`):
  1. each robot's discrete action moves its waypoint (goal) by its step size (`waypoints`);
  2. for `update_frequency` sub-steps of dt = 0.033 s the robots drive to their waypoints. Every
     `control_period` sub-steps (default 1 = the real Robotarium; MARBLER trains with 15) the
     controller is re-evaluated from the current poses and its command held until the next one:
       si point  s_i = p_i + l (cos th_i, sin th_i)             (l = 0.05, `uni_to_si_states`)
       dxi_i     = clip_norm(goal_i - s_i, 0.15)                (si position controller, gain 1)
       dxi       = barrier(dxi, s)      (QP below; the "safe" certificate, r = 0.2, gain 100)
       (v, w)_i  = (c dx + s dy, (-s dx + c dy) / l), |w| <= pi (`si_to_uni_dyn`)
     and every sub-step clips |v| <= 0.2, |w| <= 3.64 and each wheel to 12.5 rad/s before the Euler
     update x += dt cos th v, y += dt sin th v, th += dt w (wrapped with atan2).
  3. after each sub-step: boundary violations (centres outside [-1.6, 1.6] x [-1, 1]) and collisions
     (points 0.025 ahead of two robots closer than 0.135) are counted.

The barrier QP (MARBLER's `create_single_integrator_barrier_certificate2`):
    min_u sum_i |u_i - dxi_i|^2   s.t.  -2 e_ij . (u_i - u_j) <= g(h_ij)  for every pair i < j,
    e_ij = s_i - s_j,  h_ij = |e_ij|^2 - r^2,  g(h) = 100 h^3 (h >= 0) or 1e6 h^3 (h < 0),
after scaling each |dxi_i| to at most 0.2. It is solved with Hildreth's dual coordinate ascent
(exact projections onto one half-space at a time, `qp_sweeps` sweeps over the pairs, dual variables
warm-started from the previous sub-step): exact for two robots after one sweep, and converging to
the QP's solution for more.
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from netmarl.envs.core import Array

# Robotarium constants (rps `robotarium_abc.py`)
ARENA = (-1.6, 1.6, -1.0, 1.0)  # x_min, x_max, y_min, y_max (m)
TIME_STEP = 0.033  # s per sub-step
MAX_LINEAR_VELOCITY = 0.2  # m/s
WHEEL_RADIUS = 0.016  # m
BASE_LENGTH = 0.105  # m
ROBOT_DIAMETER = 0.11  # m
MAX_WHEEL_VELOCITY = MAX_LINEAR_VELOCITY / WHEEL_RADIUS  # 12.5 rad/s
MAX_ANGULAR_VELOCITY = 2 * (WHEEL_RADIUS / ROBOT_DIAMETER) * (MAX_LINEAR_VELOCITY / WHEEL_RADIUS)  # 3.64
COLLISION_OFFSET = 0.025  # m, collision circles sit this far ahead of the centre
COLLISION_DIAMETER = 0.135  # m
# MARBLER's controller (`Controller("safe")`): rps defaults except the barrier's safety radius
PROJECTION_DISTANCE = 0.05  # m, single-integrator point ahead of the unicycle
SI_GAIN, SI_VELOCITY_LIMIT = 1.0, 0.15
SI_TO_UNI_ANGULAR_LIMIT = np.pi
BARRIER_SAFETY_RADIUS, BARRIER_GAIN, UNSAFE_BARRIER_GAIN, BARRIER_MAGNITUDE = 0.2, 100.0, 1e6, 0.2


class SimReport(NamedTuple):
    """What happened during the sub-steps of one env step (or an episode, when accumulated)."""

    boundary: Array  # [] int32, robot-sub-steps with a robot centre outside the arena
    collision: Array  # [] int32, pair-sub-steps with two collision circles closer than 0.135 m
    min_distance: Array  # [] float32, smallest collision-circle distance seen (m)

    @property
    def violated(self) -> Array:
        return (self.boundary + self.collision) > 0

    @staticmethod
    def empty() -> SimReport:
        return SimReport(jnp.int32(0), jnp.int32(0), jnp.float32(np.inf))

    def merge(self, other: SimReport) -> SimReport:
        return SimReport(self.boundary + other.boundary, self.collision + other.collision,
                         jnp.minimum(self.min_distance, other.min_distance))


@dataclasses.dataclass(frozen=True)
class Robotarium:
    """The simulator settings of one task (hashable, static under jit).

    Args:
      update_frequency: sub-steps of 0.033 s per env step (MARBLER's `update_frequency`).
      control_period: the controller and barrier are re-evaluated every this many sub-steps and
        held in between. 1 (default) is the real Robotarium (MARBLER's `robotarium: True`); MARBLER
        trains with 15 (`iterations % 15 == 0`), an open-loop hold under which the barrier cannot
        guarantee safety (robots turn and drift during the hold).
      barrier: apply the safety barrier (MARBLER's `barrier_certificate: safe`); False = no filter.
      qp_sweeps: Hildreth sweeps over the robot pairs per barrier evaluation; the dual variables
        are warm-started from the previous evaluation of the same env step.
    """

    update_frequency: int = 30
    control_period: int = 1
    barrier: bool = True
    qp_sweeps: int = 3

    def __post_init__(self):
        for name in ("update_frequency", "control_period", "qp_sweeps"):
            if getattr(self, name) < 1:
                raise ValueError(f"Robotarium {name}={getattr(self, name)} must be a positive integer")

    def simulate(self, poses: Array, goals: Array) -> tuple[Array, SimReport]:
        """Drives robots at `poses` [N, 3] (x, y, theta) towards `goals` [N, 2] for one env step.

        Returns the new poses [N, 3] and the step's `SimReport`.
        """
        assert poses.ndim == 2 and poses.shape[1] == 3 and goals.shape == (poses.shape[0], 2)
        n = poses.shape[0]

        def evaluate(hold):  # one controller evaluation, held for `hold` sub-steps
            def run(carry, _):
                poses, lam, report = carry
                dxu, lam = self.command(poses, goals, lam)
                poses, chunk = jax.lax.scan(lambda p, _: substep(p, dxu), poses, None, length=hold)
                report = report.merge(SimReport(chunk.boundary.sum(), chunk.collision.sum(),
                                                chunk.min_distance.min()))
                return (poses, lam, report), None
            return run

        full, rest = divmod(self.update_frequency, self.control_period)
        carry = (poses, jnp.zeros(n * (n - 1) // 2, poses.dtype), SimReport.empty())
        carry, _ = jax.lax.scan(evaluate(self.control_period), carry, None, length=full)
        if rest:
            carry, _ = evaluate(rest)(carry, None)
        return carry[0], carry[2]

    def command(self, poses: Array, goals: Array, lam: Array) -> tuple[Array, Array]:
        """Unicycle command (v, w) [N, 2] of MARBLER's safe position controller, and the barrier's
        dual variables [N (N - 1) / 2] (warm start for the next evaluation)."""
        si = si_points(poses)
        dxi = clip_norm(SI_GAIN * (goals - si), SI_VELOCITY_LIMIT)
        if self.barrier:
            dxi, lam = barrier_filter(dxi, si, self.qp_sweeps, lam)
        return si_to_unicycle(dxi, poses), lam


def si_points(poses: Array) -> Array:
    """[N, 2] single-integrator points PROJECTION_DISTANCE ahead of each robot."""
    heading = jnp.stack([jnp.cos(poses[:, 2]), jnp.sin(poses[:, 2])], -1)
    return poses[:, :2] + PROJECTION_DISTANCE * heading


def clip_norm(v: Array, limit: float) -> Array:
    """Scales each row of v [N, 2] to norm at most `limit`."""
    norm = jnp.linalg.norm(v, axis=-1, keepdims=True)
    return v * jnp.minimum(1.0, limit / jnp.maximum(norm, 1e-12))


def si_to_unicycle(dxi: Array, poses: Array) -> Array:
    """[N, 2] (v, w) that moves each robot's si point with velocity dxi [N, 2]."""
    c, s = jnp.cos(poses[:, 2]), jnp.sin(poses[:, 2])
    v = c * dxi[:, 0] + s * dxi[:, 1]
    w = (-s * dxi[:, 0] + c * dxi[:, 1]) / PROJECTION_DISTANCE
    return jnp.stack([v, jnp.clip(w, -SI_TO_UNI_ANGULAR_LIMIT, SI_TO_UNI_ANGULAR_LIMIT)], -1)


def pair_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Static index arrays (i, j), i < j, of the N (N - 1) / 2 robot pairs."""
    pairs = np.array(list(itertools.combinations(range(n), 2)), np.int32).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]


def barrier_filter(dxi: Array, si: Array, sweeps: int, lam: Array | None = None) -> tuple[Array, Array]:
    """The safe single-integrator velocities [N, 2] closest to dxi [N, 2] (module docstring QP),
    and the dual variables lam [M] (M = N (N - 1) / 2 pairs; pass them back in to warm-start).

    Hildreth's method: u = dxi - A^T lam with lam >= 0; one pair k at a time,
    lam_k <- max(0, lam_k + (a_k . u - b_k) / |a_k|^2), where |a_k|^2 = 8 |e_k|^2.
    """
    n = dxi.shape[0]
    ii, jj = pair_indices(n)
    lam = jnp.zeros(len(ii), dxi.dtype) if lam is None else lam
    if n < 2:
        return dxi, lam
    e = si[ii] - si[jj]  # [M, 2]
    h = (e ** 2).sum(-1) - BARRIER_SAFETY_RADIUS ** 2
    b = jnp.where(h >= 0, BARRIER_GAIN, UNSAFE_BARRIER_GAIN) * h ** 3  # [M]
    norm2 = jnp.maximum(8.0 * (e ** 2).sum(-1), 1e-12)
    u0 = clip_norm(dxi, BARRIER_MAGNITUDE)
    u0 = u0 - jnp.zeros_like(u0).at[ii].add(-2.0 * lam[:, None] * e).at[jj].add(2.0 * lam[:, None] * e)

    def sweep(_, carry):
        u, lam = carry
        for k in range(len(ii)):  # unrolled: M <= 15 for MARBLER's teams
            i, j = ii[k], jj[k]
            violation = -2.0 * e[k] @ (u[i] - u[j]) - b[k]
            new = jnp.maximum(0.0, lam[k] + violation / norm2[k])
            delta = new - lam[k]  # u -= delta * a_k, a_k = (-2e at i, +2e at j)
            u = u.at[i].add(2.0 * delta * e[k]).at[j].add(-2.0 * delta * e[k])
            lam = lam.at[k].set(new)
        return u, lam

    return jax.lax.fori_loop(0, sweeps, sweep, (u0, lam))


def threshold(dxu: Array) -> Array:
    """Robotarium actuator limits on (v, w) [N, 2]: |v| <= 0.2, |w| <= 3.64, wheels <= 12.5 rad/s."""
    v = jnp.clip(dxu[:, 0], -MAX_LINEAR_VELOCITY, MAX_LINEAR_VELOCITY)
    w = jnp.clip(dxu[:, 1], -MAX_ANGULAR_VELOCITY, MAX_ANGULAR_VELOCITY)
    left = (2 * v - BASE_LENGTH * w) / (2 * WHEEL_RADIUS)
    right = (2 * v + BASE_LENGTH * w) / (2 * WHEEL_RADIUS)
    left = jnp.clip(left, -MAX_WHEEL_VELOCITY, MAX_WHEEL_VELOCITY)
    right = jnp.clip(right, -MAX_WHEEL_VELOCITY, MAX_WHEEL_VELOCITY)
    return jnp.stack([WHEEL_RADIUS / 2 * (left + right), WHEEL_RADIUS / BASE_LENGTH * (right - left)], -1)


def unicycle_step(poses: Array, dxu: Array) -> Array:
    """One Euler step of dt = 0.033 s of unicycles [N, 3] under thresholded commands dxu [N, 2]."""
    v, w = threshold(dxu).T
    th = poses[:, 2]
    x = poses[:, 0] + TIME_STEP * jnp.cos(th) * v
    y = poses[:, 1] + TIME_STEP * jnp.sin(th) * v
    th = th + TIME_STEP * w
    return jnp.stack([x, y, jnp.arctan2(jnp.sin(th), jnp.cos(th))], -1)


def check(poses: Array) -> SimReport:
    """Violations of one configuration [N, 3] (rps `_validate`)."""
    x, y = poses[:, 0], poses[:, 1]
    outside = (x < ARENA[0]) | (x > ARENA[1]) | (y < ARENA[2]) | (y > ARENA[3])
    n = poses.shape[0]
    if n < 2:
        return SimReport(outside.sum(dtype=jnp.int32), jnp.int32(0), jnp.float32(np.inf))
    ii, jj = pair_indices(n)
    heading = jnp.stack([jnp.cos(poses[:, 2]), jnp.sin(poses[:, 2])], -1)
    centre = poses[:, :2] + COLLISION_OFFSET * heading
    dist = jnp.linalg.norm(centre[ii] - centre[jj], axis=-1)
    return SimReport(outside.sum(dtype=jnp.int32), (dist <= COLLISION_DIAMETER).sum(dtype=jnp.int32),
                     dist.min().astype(jnp.float32))


def substep(poses: Array, dxu: Array) -> tuple[Array, SimReport]:
    """Advances one sub-step and checks the new configuration."""
    poses = unicycle_step(poses, dxu)
    return poses, check(poses)


def waypoints(poses: Array, actions: Array, step: Array, bounds=(-1.4, 1.4, -0.9, 0.9)) -> Array:
    """MARBLER goal positions [N, 2]: actions [N] in {0: -x, 1: +x, 2: -y, 3: +y, 4: stay} move the
    robot's current (x, y) by its step size step [N] (m); the goal is clipped to `bounds`."""
    delta = jnp.array([[-1, 0], [1, 0], [0, -1], [0, 1], [0, 0]], jnp.float32)[actions]
    goal = poses[:, :2] + delta * step[:, None]
    lo = jnp.array([bounds[0], bounds[2]], jnp.float32)
    hi = jnp.array([bounds[1], bounds[3]], jnp.float32)
    return jnp.clip(goal, lo, hi)


def grid_spawn(key: Array, n: int, spacing: float, width: float, height: float) -> Array:
    """n distinct points [n, 2] of a `spacing` grid over a width x height box centred on the
    origin (rps `generate_initial_conditions`: grid cells 1 .. nx*ny, x = (c // ny) s - w/2,
    y = (c % ny) s - h/2)."""
    nx, ny = int(np.floor(width / spacing)), int(np.floor(height / spacing))
    if nx * ny < n:
        raise ValueError(f"grid_spawn: {n} robots do not fit a {width}x{height} box at spacing {spacing}")
    cells = jax.random.choice(key, nx * ny, (n,), replace=False) + 1
    return jnp.stack([(cells // ny) * spacing - width / 2, (cells % ny) * spacing - height / 2],
                     -1).astype(jnp.float32)


# --- rendering ---------------------------------------------------------------------------------

PIXELS_PER_METRE = 200
MARGIN = 0.1  # m of floor drawn around the arena


def to_pixels(x, y) -> tuple[float, float]:
    """World (x, y) in metres to image (column, row) pixels (y up)."""
    return ((x - ARENA[0] + MARGIN) * PIXELS_PER_METRE, (ARENA[3] + MARGIN - y) * PIXELS_PER_METRE)


def render_arena(poses: np.ndarray, colours, rects=(), circles=(), labels=None) -> np.ndarray:
    """Draws the arena, zones and robots.

    Args:
      poses: [N, 3] robot poses; colours: N RGB tuples.
      rects: (x0, y0, x1, y1, rgb) world rectangles; circles: (x, y, radius, rgb, outline_only).
      labels: optional N strings drawn on the robots (default: their indices).
    Returns:
      [H, W, 3] uint8 image (H = 440, W = 680 pixels).
    """
    from PIL import Image, ImageDraw

    width = int((ARENA[1] - ARENA[0] + 2 * MARGIN) * PIXELS_PER_METRE)
    height = int((ARENA[3] - ARENA[2] + 2 * MARGIN) * PIXELS_PER_METRE)
    image = Image.new("RGB", (width, height), (60, 60, 60))
    draw = ImageDraw.Draw(image)
    draw.rectangle([*to_pixels(ARENA[0], ARENA[3]), *to_pixels(ARENA[1], ARENA[2])], fill=(240, 240, 235))
    for x0, y0, x1, y1, rgb in rects:
        draw.rectangle([*to_pixels(x0, y1), *to_pixels(x1, y0)], fill=rgb)
    for x, y, r, rgb, outline in circles:
        box = [*to_pixels(x - r, y + r), *to_pixels(x + r, y - r)]
        draw.ellipse(box, outline=rgb, width=2) if outline else draw.ellipse(box, fill=rgb)
    radius = ROBOT_DIAMETER / 2
    for i, (x, y, th) in enumerate(np.asarray(poses, np.float64)):
        draw.ellipse([*to_pixels(x - radius, y + radius), *to_pixels(x + radius, y - radius)],
                     fill=tuple(colours[i]), outline=(20, 20, 20))
        tip = to_pixels(x + radius * np.cos(th), y + radius * np.sin(th))
        draw.line([to_pixels(x, y), tip], fill=(20, 20, 20), width=2)
        text = str(i) if labels is None else labels[i]
        draw.text(to_pixels(x, y - 1.6 * radius), text, fill=(20, 20, 20), anchor="mm")
    return np.asarray(image, dtype=np.uint8)
