"""MARBLER Warehouse: robots of two colours shuttle packages between coloured zones (individual
rewards). Original config (specs/marbler.md; MARBLER `Warehouse/{config.yaml,warehouse.py}`).

Green robots (even indices) load in the bottom-right (x > 1.5 - goal_width, y <= 0) and unload in
the top-left (x < -1.5 + goal_width, y > 0); red robots (odd indices) load top-right (y > 0) and
unload bottom-left (y <= 0). A robot holds at most one package. Each step, after moving, every robot
that is loaded and in its unload zone earns `unload_reward` (3) and is unloaded, and every robot that
is empty and in its load zone earns `load_reward` (1) and is loaded. Violations cost every robot
`violation_penalty` (-5) and end the episode; otherwise the episode runs to the time limit.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from netmarl.envs.core import Array
from netmarl.envs.marbler_core import MarblerEnv, initial_report, with_neighbours
from netmarl.envs.robotarium import SimReport, grid_spawn, render_arena

GREEN, RED = (60, 170, 80), (210, 70, 60)


class WarehouseState(NamedTuple):
    """The state of one Warehouse episode (N robots)."""

    poses: Array  # [N, 3] float32, (x, y, theta)
    loaded: Array  # [N] bool, carrying a package
    deliveries: Array  # [N] int32, packages unloaded by each robot this episode
    step: Array  # [] int32, env steps taken
    report: SimReport  # violations accumulated this episode


@dataclasses.dataclass(frozen=True)
class Warehouse(MarblerEnv):
    """MARBLER Warehouse (6 robots, 100 steps, individual rewards).

    Observation of robot i: [x, y, loaded] of itself, then of the others in index order
    (MARBLER's `num_neighbors: 5` = everyone), then its colour one-hot (green, red): 3N + 2 = 20.
    Global state: every (x, y, theta), every loaded flag, the elapsed time fraction: 4N + 1.
    """

    num_robots: int = 6
    max_steps: int = 100
    update_frequency: int = 29
    step_dist: float = 0.2
    load_reward: float = 1.0
    unload_reward: float = 3.0
    goal_width: float = 0.5
    start_dist: float = 0.6
    violation_penalty: float = -5.0  # per robot
    penalize_violations: bool = True
    barrier: bool = True
    control_period: int = 1

    def __post_init__(self):
        self._check_common()
        if self.num_robots < 2:
            raise ValueError(f"Warehouse num_robots={self.num_robots} must be at least 2")

    @property
    def num_agents(self) -> int:
        return self.num_robots

    @property
    def name(self) -> str:
        return f"marbler:warehouse[N={self.num_robots}]"

    @property
    def green(self) -> np.ndarray:
        """[N] bool: even-indexed robots are green (MARBLER: `i % 2 == 0`)."""
        return np.arange(self.num_robots) % 2 == 0

    def _init(self, key: Array) -> WarehouseState:
        k_xy, k_th = jax.random.split(key)
        xy = grid_spawn(k_xy, self.num_robots, self.start_dist, 2.8, 1.8)  # RIGHT-LEFT x DOWN-UP
        th = jax.random.uniform(k_th, (self.num_robots,), minval=-np.pi, maxval=np.pi)
        n = self.num_robots
        return WarehouseState(jnp.c_[xy, th], jnp.zeros(n, bool), jnp.zeros(n, jnp.int32),
                              jnp.int32(0), initial_report())

    def step_sizes(self, state: WarehouseState) -> Array:
        return jnp.full(self.num_robots, self.step_dist, jnp.float32)

    def zones(self, state: WarehouseState) -> tuple[Array, Array]:
        """([N] in own load zone, [N] in own unload zone) at the current poses."""
        x, y = state.poses[:, 0], state.poses[:, 1]
        green = jnp.asarray(self.green)
        load = (x > 1.5 - self.goal_width) & jnp.where(green, y <= 0, y > 0)
        unload = (x < -1.5 + self.goal_width) & jnp.where(green, y > 0, y <= 0)
        return load, unload

    def _update(self, state: WarehouseState, actions: Array):
        in_load, in_unload = self.zones(state)
        unloads = state.loaded & in_unload
        loads = ~state.loaded & in_load
        reward = self.unload_reward * unloads + self.load_reward * loads
        state = state._replace(loaded=(state.loaded & ~unloads) | loads,
                               deliveries=state.deliveries + unloads)
        return state, reward.astype(jnp.float32), jnp.bool_(False)

    def penalty_shares(self) -> Array:
        return jnp.full(self.num_robots, self.violation_penalty, jnp.float32)

    def success(self, state: WarehouseState) -> Array:
        """Every robot has delivered at least one package (the task itself has no goal)."""
        return jnp.all(state.deliveries > 0)

    def observe(self, state: WarehouseState) -> Array:
        blocks = jnp.c_[state.poses[:, :2], state.loaded.astype(jnp.float32)]  # [N, 3]
        colour = jnp.asarray(np.stack([self.green, ~self.green], -1), jnp.float32)  # [N, 2]
        return jnp.concatenate([with_neighbours(blocks), colour], -1)

    def global_state(self, state: WarehouseState) -> Array:
        return jnp.concatenate([state.poses.ravel(), state.loaded.astype(jnp.float32),
                                self.time_feature(state)])

    def render(self, state: WarehouseState) -> np.ndarray:
        w = self.goal_width
        light_g, light_r = (190, 230, 195), (240, 195, 190)
        rects = [(1.5 - w, -1.0, 1.6, 0.0, light_g), (1.5 - w, 0.0, 1.6, 1.0, light_r),
                 (-1.6, 0.0, -1.5 + w, 1.0, light_g), (-1.6, -1.0, -1.5 + w, 0.0, light_r)]
        colours = [GREEN if g else RED for g in self.green]
        labels = [f"{i}{'*' if l else ''}" for i, l in enumerate(np.asarray(state.loaded))]
        return render_arena(np.asarray(state.poses), colours, rects=rects, labels=labels)
