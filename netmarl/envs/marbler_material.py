"""MARBLER Material Transport: fast small and slow large robots move material from two zones to a
drop-off strip. Original config (specs/marbler.md; MARBLER `MaterialTransport/{config.yaml,*.py}`).

Zone 1 is the disc of radius 0.35 at the origin with int(N(100, 10)) units, zone 2 the strip
x > 1.5 - 0.5 with int(N(20, 4)) units, the drop-off the strip x < -1.5 + 0.5. Robots 0, 1 move
0.45 m per action and carry 5 units; robots 2, 3 move 0.15 m and carry 15. After each move, robots
are processed in index order: a loaded robot in the drop-off unloads (+0.075 per unit); an empty
robot in zone 2 (else zone 1) loads min(capacity, what is left) (+0.025 per unit). Every step costs
0.1. Team reward; the episode ends when everything is delivered (terminated), on a violation (team
reward -6, terminated) or after 70 steps (truncated).
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from netmarl.envs.core import Array
from netmarl.envs.marbler_core import MarblerEnv, initial_report, spawn_strip
from netmarl.envs.robotarium import SimReport, render_arena


class MaterialState(NamedTuple):
    """The state of one Material Transport episode (N robots)."""

    poses: Array  # [N, 3] float32, (x, y, theta)
    load: Array  # [N] float32, units carried by each robot
    zone_load: Array  # [2] float32, units left in zone 1 and zone 2
    delivered: Array  # [] float32, units unloaded so far
    step: Array  # [] int32, env steps taken
    report: SimReport  # violations accumulated this episode


@dataclasses.dataclass(frozen=True)
class MaterialTransport(MarblerEnv):
    """MARBLER Material Transport (2 fast + 2 slow robots, 70 steps).

    Observation of robot i (MARBLER layout): [x, y, load, zone-1 load, zone-2 load] then, with
    capability_aware, its [capacity, step size]: 7 (5 without). Loads are in units (not scaled).
    Global state: every (x, y, theta), every load, both zone loads, elapsed time: 4N + 3.
    """

    num_fast: int = 2
    num_slow: int = 2
    fast_step: float = 0.45
    slow_step: float = 0.15
    small_capacity: float = 5.0
    large_capacity: float = 15.0
    zone1_load: tuple[float, float] = (100.0, 10.0)  # normal (mean, std) at reset, truncated to int
    zone2_load: tuple[float, float] = (20.0, 4.0)
    zone1_radius: float = 0.35
    end_goal_width: float = 0.5
    load_multiplier: float = 0.025
    unload_multiplier: float = 0.075
    time_penalty: float = -0.1
    start_dist: float = 0.3
    capability_aware: bool = True
    max_steps: int = 70
    update_frequency: int = 74
    violation_penalty: float = -6.0
    penalize_violations: bool = True
    barrier: bool = True
    control_period: int = 1

    def __post_init__(self):
        self._check_common()
        if self.num_fast < 0 or self.num_slow < 0 or self.num_fast + self.num_slow < 1:
            raise ValueError(f"MaterialTransport needs robots; got num_fast={self.num_fast}, "
                             f"num_slow={self.num_slow}")

    @property
    def num_agents(self) -> int:
        return self.num_fast + self.num_slow

    @property
    def name(self) -> str:
        return f"marbler:material[{self.num_fast}+{self.num_slow}]"

    @property
    def capabilities(self) -> np.ndarray:
        """[N, 2] (capacity in units, step size in m) of every robot."""
        fast = [[self.small_capacity, self.fast_step]] * self.num_fast
        slow = [[self.large_capacity, self.slow_step]] * self.num_slow
        return np.array(fast + slow, np.float32)

    def _init(self, key: Array) -> MaterialState:
        k_pos, k_zone = jax.random.split(key)
        # spawn in the drop-off strip: width 0.5 ending at x = LEFT + 0.5 = -0.9
        poses = spawn_strip(k_pos, self.num_agents, self.start_dist, self.end_goal_width, 1.8,
                            -1.4 + self.end_goal_width, left=True)
        mean = jnp.array([self.zone1_load[0], self.zone2_load[0]], jnp.float32)
        std = jnp.array([self.zone1_load[1], self.zone2_load[1]], jnp.float32)
        zone = jnp.maximum(jnp.trunc(mean + std * jax.random.normal(k_zone, (2,))), 0.0)
        return MaterialState(poses, jnp.zeros(self.num_agents, jnp.float32), zone, jnp.float32(0),
                             jnp.int32(0), initial_report())

    def step_sizes(self, state: MaterialState) -> Array:
        return jnp.asarray(self.capabilities[:, 1])

    def _update(self, state: MaterialState, actions: Array):
        x, y = state.poses[:, 0], state.poses[:, 1]
        in_drop = x < -1.5 + self.end_goal_width
        in_zone2 = x > 1.5 - self.end_goal_width
        in_zone1 = jnp.hypot(x, y) <= self.zone1_radius
        capacity = jnp.asarray(self.capabilities[:, 0])

        def robot(carry, inputs):  # MARBLER's loop over robots, in index order
            zone, reward = carry
            load, drop, z1, z2, cap = inputs
            unload = (load > 0) & drop
            source = jnp.where(z2, 1, 0)
            can_load = (load <= 0) & (z2 | z1)
            taken = jnp.where(can_load, jnp.minimum(cap, zone[source]), 0.0)
            zone = zone.at[source].add(-taken)
            reward = reward + jnp.where(unload, load * self.unload_multiplier, 0.0)
            reward = reward + taken * self.load_multiplier
            new_load = jnp.where(unload, 0.0, load + taken)
            return (zone, reward), (new_load, jnp.where(unload, load, 0.0))

        inputs = (state.load, in_drop, in_zone1, in_zone2, capacity)
        (zone, reward), (load, dropped) = jax.lax.scan(robot, (state.zone_load, jnp.float32(0)), inputs)
        team = reward + self.time_penalty
        state = state._replace(load=load, zone_load=zone, delivered=state.delivered + dropped.sum())
        done = (zone.sum() <= 0) & (load.sum() <= 0)
        return state, self.shared(team), done

    def success(self, state: MaterialState) -> Array:
        return (state.zone_load.sum() <= 0) & (state.load.sum() <= 0)

    def observe(self, state: MaterialState) -> Array:
        n = self.num_agents
        parts = [state.poses[:, :2], state.load[:, None], jnp.broadcast_to(state.zone_load, (n, 2))]
        if self.capability_aware:
            parts.append(jnp.asarray(self.capabilities))
        return jnp.concatenate(parts, -1)

    def global_state(self, state: MaterialState) -> Array:
        return jnp.concatenate([state.poses.ravel(), state.load, state.zone_load, self.time_feature(state)])

    def render(self, state: MaterialState) -> np.ndarray:
        w = self.end_goal_width
        zone = np.asarray(state.zone_load)
        rects = [(-1.6, -1.0, -1.5 + w, 1.0, (200, 225, 200)),
                 (1.5 - w, -1.0, 1.6, 1.0, (235, 215, 180) if zone[1] > 0 else (225, 225, 225))]
        circles = [(0.0, 0.0, self.zone1_radius, (235, 215, 180) if zone[0] > 0 else (225, 225, 225), False)]
        colours = [(60, 110, 200)] * self.num_fast + [(120, 70, 40)] * self.num_slow
        labels = [f"{i}:{int(l)}" for i, l in enumerate(np.asarray(state.load))]
        return render_arena(np.asarray(state.poses), colours, rects=rects, circles=circles, labels=labels)
