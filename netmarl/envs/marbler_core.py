"""What the four MARBLER tasks share: waypoint actions, the Robotarium step, violations, timesteps.

A task subclasses `MarblerEnv` and implements:
  - `_init(key) -> state`            (a NamedTuple with fields `poses`, `step`, `report`, ...),
  - `step_sizes(state) -> [N]`       (m the waypoint moves per action, by robot and terrain),
  - `_update(state, actions) -> (state, reward [N], done [])` on the post-move state,
  - `observe(state) -> [N, O]`, `global_state(state) -> [S]`,
  - `success(state) -> []` bool and `render(state)`.

Step order (MARBLER `roboEnv.step` then the scenario's `step`): waypoints from the current poses,
`update_frequency` Robotarium sub-steps, then the task update. A violation (collision or a robot
outside the arena) during the sub-steps replaces the reward by the task's penalty and ends the
episode (terminated), as MARBLER's `penalize_violations: True`; reaching the task's goal ends it
too (terminated); the time limit `max_steps` truncates it.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from netmarl.envs.core import Array, Box, Environment, TimeStep, make_timestep
from netmarl.envs.robotarium import Robotarium, SimReport, waypoints

LEFT, RIGHT, DOWN_Y, UP_Y, STAY = range(5)  # MARBLER's order: left, right, up (-y), down (+y), no-op
ACTION_NAMES = ("-x", "+x", "-y", "+y", "stay")
WAYPOINT_BOUNDS = (-1.4, 1.4, -0.9, 0.9)  # MARBLER's LEFT, RIGHT, UP, DOWN config values
_LENGTHS = ("_step", "_radius", "_capacity", "_width", "_dist")  # option names that must be > 0


@dataclasses.dataclass(frozen=True)
class MarblerEnv(Environment):
    """Base class of the MARBLER tasks (subclasses add their own fields, all with defaults).

    Shared fields (declared by every subclass, since dataclass defaults cannot precede them):
      max_steps: episode time limit in env steps.
      update_frequency: Robotarium sub-steps (0.033 s) per env step.
      violation_penalty: reward when a collision or boundary violation ends the episode.
      penalize_violations: False keeps the episode running after violations (counted only).
      barrier: the collision-avoidance barrier (MARBLER's `barrier_certificate: safe`).
      control_period: sub-steps between controller evaluations (1 = the real Robotarium, the
        default; MARBLER trains with 15, under which the barrier cannot guarantee safety).
    """

    num_actions = 5

    @property
    def robotarium(self) -> Robotarium:
        return Robotarium(self.update_frequency, self.control_period, self.barrier)

    @property
    def obs_dim(self) -> int:
        return int(jax.eval_shape(lambda k: self.observe(self._init(k)), jax.random.key(0)).shape[-1])

    @property
    def state_dim(self) -> int:
        return int(jax.eval_shape(lambda k: self.global_state(self._init(k)), jax.random.key(0)).shape[-1])

    @property
    def observation_space(self) -> Box:
        return Box(-np.inf, np.inf, (self.obs_dim,))

    def _check_common(self) -> None:
        """Positive counts and lengths, and a layout whose robots fit their spawn areas."""
        for name in ("max_steps", "update_frequency", "control_period"):
            if getattr(self, name) < 1:
                raise ValueError(f"{self.name}: {name}={getattr(self, name)} must be a positive integer")
        for f in dataclasses.fields(self):
            if f.name.endswith(_LENGTHS) and not getattr(self, f.name) > 0:
                raise ValueError(f"{self.name}: {f.name}={getattr(self, f.name)} must be > 0 (a length "
                                 "in metres or a capacity)")

    def _check_layout(self) -> None:
        """Traces a reset: robots that cannot be spawned are refused up front, not at run time."""
        try:
            jax.eval_shape(self._init, jax.random.key(0))
        except ValueError as error:
            raise ValueError(f"{self.name}: cannot lay out the task: {error}") from None

    # --- protocol ----------------------------------------------------------------------------------

    def _reset(self, key: Array):
        state = self._init(key)
        zeros = jnp.zeros(self.num_agents, jnp.float32)
        return state, self._timestep(state, zeros, False, False)

    def _step(self, key: Array, state, actions: Array):
        del key  # MARBLER transitions are deterministic given the actions
        goals = waypoints(state.poses, actions, self.step_sizes(state), WAYPOINT_BOUNDS)
        poses, report = self.robotarium.simulate(state.poses, goals)
        state, reward, done = self._update(state._replace(poses=poses), actions)
        step = state.step + 1
        state = state._replace(step=step, report=state.report.merge(report))
        violated = report.violated & self.penalize_violations
        reward = jnp.where(violated, self.penalty_shares(), reward)
        terminated = violated | done
        truncated = (step >= self.max_steps) & ~terminated
        return state, self._timestep(state, reward, terminated, truncated)

    def penalty_shares(self) -> Array:
        """[N] reward shares on a violation: the team penalty split equally (tasks with individual
        rewards override this)."""
        return jnp.full(self.num_agents, self.violation_penalty / self.num_agents, jnp.float32)

    def _timestep(self, state, reward, terminated, truncated) -> TimeStep:
        avail = jnp.ones((self.num_agents, self.num_actions), bool)
        return make_timestep(self.observe(state), self.global_state(state), avail, reward,
                             terminated, truncated)

    def time_feature(self, state) -> Array:
        """[1] elapsed fraction of the time limit (global state only)."""
        return (state.step / self.max_steps).astype(jnp.float32)[None]

    def shared(self, team_reward: Array) -> Array:
        """[N] equal shares of a team reward (MARBLER gives every agent the same scalar; netmarl's
        team reward is the sum of the shares, so each share is team / N)."""
        return jnp.full(self.num_agents, team_reward / self.num_agents, jnp.float32)


def initial_report() -> SimReport:
    return SimReport.empty()


def others_first(n: int) -> np.ndarray:
    """[N, N - 1] static index table: row i lists the other agents in index order (MARBLER's
    neighbour order when `num_neighbors >= N - 1`)."""
    return np.array([[j for j in range(n) if j != i] for i in range(n)], np.int32).reshape(n, n - 1)


def with_neighbours(blocks: Array) -> Array:
    """[N, N * B]: agent i's own block [B] followed by the other agents' blocks in index order."""
    n = blocks.shape[0]
    order = np.concatenate([np.arange(n)[:, None], others_first(n)], axis=1)  # [N, N]
    return blocks[order].reshape(n, -1)


def spawn_strip(key: Array, n: int, spacing: float, width: float, height: float, thresh: float,
                left: bool) -> Array:
    """MARBLER `generate_initial_locations` [n, 3]: a grid spawn of width x height, heading 0,
    shifted to x in [thresh - width, thresh] (left=True) or to its mirror image (left=False)."""
    from netmarl.envs.robotarium import grid_spawn

    xy = grid_spawn(key, n, spacing, width, height)
    shift = -(width / 2 - thresh) if left else (width / 2 - thresh)
    x = xy[:, 0] + shift
    return jnp.stack([x, xy[:, 1], jnp.zeros(n, jnp.float32)], -1)
