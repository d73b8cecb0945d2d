"""Box Jump (PairVDN, Buzzard 2025) in pure JAX: 1x1 boxes that walk and jump to stack up high.

Two versions (specs/pairvdn_boxjump.md §5):
- "paper": the 2024 environment behind the paper's Table 1 (`reward_scheme=2`): spawn 0.5 above
  the floor with a one-step random horizontal push, heights in units of 1/15, running maximum
  starting at -1 (so every return includes +1), observation 12 + N.
- "v0": the public 2025 environment (`reward_mode="highest"`): spawn on the floor with random x
  jitter, heights in boxes, a fall penalty of 20 / T per fallen box per step, an elapsed-time
  feature, observation 13 + N.

Actions: 0 no-op, 1 left, 2 right (force 10 unless already faster than 2 that way), 3 jump (force
250 for one step if the box's |vy| stayed below 0.5 for its last 10 steps). Every agent receives
(best - previous best) / N; an episode has T + 1 steps, the last one truncated with zero reward.
Physics: `boxjump_physics` (a Box2D-style solver, calibrated against Box2D in tests/test_boxjump.py).
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from netmarl.envs.boxjump_physics import Bodies, Manifolds, empty_manifolds, physics_step
from netmarl.envs.core import Array, Box, Environment, TimeStep, make_timestep

NOOP, LEFT, RIGHT, JUMP = range(4)
VERSIONS = ("paper", "v0")
FLOOR_Y = 15.0
SPACING = 1.5
MOVE_FORCE, JUMP_FORCE, MAX_HOR_SPD = 10.0, 250.0, 2.0
HISTORY = 10  # steps of |vy| < JUMP_STILL before a jump is allowed
JUMP_STILL = 0.5
SPAWN_PUSH = 150.0  # paper: one-step horizontal force U(-150, 150)
SPAWN_JITTER = 0.5  # v0: x offset U(-0.5, 0.5)
NUM_BODY_FEATURES = 11  # per-agent features that enter the global state


class BoxJumpState(NamedTuple):
    """The full state of one Box Jump episode (N boxes)."""

    bodies: Bodies  # positions, angles and velocities of the N boxes
    contacts: Manifolds  # last step's contacts and impulses (for warm starting)
    push: Array  # [N, 2] float32, force applied during the next step only (the paper's spawn push)
    speed_hist: Array  # [N, 10] float32, |vy| at the start of the last 10 steps (newest last)
    hist_len: Array  # [] int32, valid entries of speed_hist (cleared at reset)
    highest: Array  # [] float32, best height so far (version units; -1 or 0 at reset)
    t: Array  # [] int32, env steps taken


@dataclasses.dataclass(frozen=True)
class BoxJump(Environment):
    """Box Jump with N boxes.

    Args:
      num_boxes: N agents (>= 2).
      version: "paper" (2024, Table 1) or "v0" (public 2025).
      fixed_rotation: boxes cannot rotate (the paper's easier "no rotation" variant).
      max_timestep: T; an episode lasts T + 1 env steps (the last is truncated, zero reward).
      agent_one_hot: append a one-hot agent id (length N) to every observation (the paper's setting).
      penalty_fall: v0 only; a fallen box costs penalty_fall / T per step.
      vel_iters, pos_iters: Jacobi sweeps of the contact solver (Box2D runs 30 Gauss-Seidel sweeps
        of each; these defaults reproduce the calibration numbers and random-policy returns).
    """

    num_boxes: int = 16
    version: str = "paper"
    fixed_rotation: bool = False
    max_timestep: int = 400
    agent_one_hot: bool = True
    penalty_fall: float = 20.0
    vel_iters: int = 10
    pos_iters: int = 4

    num_actions = 4

    def __post_init__(self):
        if self.version not in VERSIONS:
            raise ValueError(f"BoxJump version={self.version!r} is not known; accepted: {', '.join(VERSIONS)}")
        for field in ("max_timestep", "vel_iters", "pos_iters"):
            if getattr(self, field) < 1:
                raise ValueError(f"BoxJump {field}={getattr(self, field)} must be a positive integer")
        if self.num_boxes < 2:
            raise ValueError(f"BoxJump num_boxes={self.num_boxes} must be at least 2")
        if self.penalty_fall < 0:
            raise ValueError(f"BoxJump penalty_fall={self.penalty_fall} must be >= 0 (a fallen box's cost)")

    @property
    def num_agents(self) -> int:
        return self.num_boxes

    @property
    def max_steps(self) -> int:
        return self.max_timestep + 1

    @property
    def _extra(self) -> int:
        return 1 if self.version == "paper" else 2  # highest (+ elapsed time in v0)

    @property
    def obs_dim(self) -> int:
        return NUM_BODY_FEATURES + self._extra + (self.num_boxes if self.agent_one_hot else 0)

    @property
    def state_dim(self) -> int:
        return NUM_BODY_FEATURES * self.num_boxes + self._extra

    @property
    def height_unit(self) -> float:
        return FLOOR_Y if self.version == "paper" else 1.0

    @property
    def name(self) -> str:
        fixed = "-fixed" if self.fixed_rotation else ""
        return f"boxjump:{self.version}-{self.num_boxes}{fixed}[T={self.max_timestep}]"

    @property
    def observation_space(self) -> Box:
        """Per-agent observation space (positions, velocities and heights are unbounded)."""
        inf = np.inf
        low = [-inf] * 4 + [-0.5, -inf, 0, 0, 0, -inf, 0, -1.0] + [0.0] * (self.obs_dim - 12)
        high = [inf] * 4 + [0.5, inf, 1, 1, 1, inf, 1, inf] + [1.0] * (self.obs_dim - 12)
        return Box(tuple(low), tuple(high), (self.obs_dim,))

    # --- reset and step ------------------------------------------------------------------------

    def _reset(self, key: Array):
        n = self.num_boxes
        x = FLOOR_Y - SPACING * (n - 1) / 2 + SPACING * jnp.arange(n, dtype=jnp.float32)
        push = jnp.zeros((n, 2), jnp.float32)
        if self.version == "paper":
            push = push.at[:, 0].set(jax.random.uniform(key, (n,), minval=-SPAWN_PUSH, maxval=SPAWN_PUSH))
            y = FLOOR_Y - 1.0
        else:
            x = x + jax.random.uniform(key, (n,), minval=-SPAWN_JITTER, maxval=SPAWN_JITTER)
            y = FLOOR_Y - 0.5
        zeros = jnp.zeros(n, jnp.float32)
        bodies = Bodies(jnp.stack([x, jnp.full(n, y, jnp.float32)], -1), zeros, jnp.zeros((n, 2)), zeros)
        highest = jnp.float32(-1.0 if self.version == "paper" else 0.0)
        state = BoxJumpState(bodies, empty_manifolds(n), push, jnp.zeros((n, HISTORY), jnp.float32),
                             jnp.int32(0), highest, jnp.int32(0))
        return state, self._timestep(state, jnp.zeros(n, bool), highest, jnp.zeros(n), False)

    def _step(self, key: Array, state: BoxJumpState, actions: Array):
        del key  # transitions are deterministic
        bodies = state.bodies
        hist = jnp.roll(state.speed_hist, -1, axis=1).at[:, -1].set(jnp.abs(bodies.vel[:, 1]))
        hist_len = jnp.minimum(state.hist_len + 1, HISTORY)
        can_jump = (hist_len >= HISTORY) & (hist.max(1) < JUMP_STILL)
        height = self.heights(bodies)
        best = jnp.maximum(state.highest, height.max())
        reward = jnp.full(self.num_boxes, (best - state.highest) / self.num_boxes)
        if self.version == "v0":
            reward = jnp.where(height < -0.001, -self.penalty_fall / self.max_timestep, reward)
        force = self.action_forces(bodies, actions, can_jump) + state.push
        bodies, contacts = physics_step(bodies, state.contacts, force, self.fixed_rotation,
                                        self.vel_iters, self.pos_iters)
        t = state.t + 1
        truncated = t > self.max_timestep
        reward = jnp.where(truncated, 0.0, reward)
        new = BoxJumpState(bodies, contacts, jnp.zeros_like(state.push), hist, hist_len, best, t)
        # observations: post-step positions, the pre-step running maximum (spec §5.6 step 6)
        return new, self._timestep(new, can_jump, state.highest, reward, truncated)

    def action_forces(self, bodies: Bodies, actions: Array, can_jump: Array) -> Array:
        """[N, 2] forces of the actions (spec §5.2); a blocked move or jump applies nothing."""
        vx = bodies.vel[:, 0]
        fx = (jnp.where((actions == LEFT) & (vx >= -MAX_HOR_SPD), -MOVE_FORCE, 0.0)
              + jnp.where((actions == RIGHT) & (vx <= MAX_HOR_SPD), MOVE_FORCE, 0.0))
        fy = jnp.where((actions == JUMP) & can_jump, -JUMP_FORCE, 0.0)
        return jnp.stack([fx, fy], -1)

    def heights(self, bodies: Bodies) -> Array:
        """[N] bottom-edge height above the floor in version units (rotation ignored)."""
        return (FLOOR_Y - bodies.pos[:, 1] - 0.5) / self.height_unit

    # --- observations --------------------------------------------------------------------------

    def _timestep(self, state: BoxJumpState, can_jump, highest, reward, truncated) -> TimeStep:
        body = self.body_features(state.bodies, can_jump)  # [N, 11]
        extra = [highest[None]]
        if self.version == "v0":
            extra.append((state.t / self.max_timestep).astype(jnp.float32)[None])
        extra = jnp.concatenate(extra)
        parts = [body, jnp.broadcast_to(extra, (self.num_boxes, extra.shape[0]))]
        if self.agent_one_hot:
            parts.append(jnp.eye(self.num_boxes, dtype=jnp.float32))
        global_state = jnp.concatenate([body.ravel(), extra])
        avail = jnp.ones((self.num_boxes, self.num_actions), bool)
        return make_timestep(jnp.concatenate(parts, -1), global_state, avail, reward, False, truncated)

    def body_features(self, bodies: Bodies, can_jump: Array) -> Array:
        """[N, 11]: position, velocity, quarter-turn angle, spin, 4 neighbour distances, can_jump."""
        x, y = bodies.pos[:, 0], bodies.pos[:, 1]
        vx, vy = bodies.vel[:, 0], bodies.vel[:, 1]
        if self.version == "paper":
            cols = [x / 30.0, y / 20.0, vx / 40.0, vy / 40.0]
        else:
            height = self.heights(bodies)
            cols = [2.0 * x / 30.0 - 1.0, jnp.where(height < -0.001, -1.0, height), vx * 0.5, vy * 0.125]
        quarter = jnp.mod(bodies.angle / (np.pi / 2) + 0.5, 1.0) - 0.5
        left, right, above, below = neighbour_distances(x, y)
        cols += [quarter, bodies.omega * 0.5, left, right, above, below, can_jump.astype(jnp.float32)]
        return jnp.stack(cols, -1).astype(jnp.float32)

    def render(self, state: BoxJumpState) -> np.ndarray:
        from netmarl.envs.boxjump_render import render_boxes
        return render_boxes(np.asarray(state.bodies.pos), np.asarray(state.bodies.angle),
                            float(state.highest) * self.height_unit)


def neighbour_distances(x: Array, y: Array) -> tuple[Array, Array, Array, Array]:
    """Centre-to-centre distances to the nearest box left/right (same row, /30) and above/below
    (same column, /20; below defaults to the floor) — spec §5.5 fields 6-9. x, y [N] -> 4 x [N]."""
    dx, dy = x[None, :] - x[:, None], y[None, :] - y[:, None]  # [i, j] = other j minus self i
    row, col = jnp.abs(dy) < 0.9, jnp.abs(dx) < 0.9
    big = jnp.float32(1e9)
    left = jnp.min(jnp.where(row & (dx < 0), -dx, big), 1)
    right = jnp.min(jnp.where(row & (dx > 0), dx, big), 1)
    above = jnp.min(jnp.where(col & (dy < 0), -dy, big), 1)
    below = jnp.min(jnp.where(col & (dy > 0), dy, big), 1)
    return (jnp.where(left < big, left / 30.0, 1.0), jnp.where(right < big, right / 30.0, 1.0),
            jnp.where(above < big, above / 20.0, 1.0),
            jnp.where(below < big, below, FLOOR_Y - y) / 20.0)
