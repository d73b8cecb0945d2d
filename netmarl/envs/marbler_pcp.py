"""MARBLER Predator-Capture-Prey: predators sense static prey, capture robots capture sensed prey.
Original config (specs/marbler.md; MARBLER `PredatorCapturePrey/{config.yaml,*.py}`).

Robots 0 .. P-1 are predators (sense radius 0.45, cannot capture), the rest are capture robots
(capture radius 0.25, cannot sense). After each move: an uncaptured prey becomes *sensed* (for good)
when a predator is within its sense radius; a sensed prey is *captured* when a capture robot within
its capture radius chose the no-op action (4) this step. Team reward: +1 per newly sensed prey,
+5 per newly captured prey, -0.05 every step; it ends when every prey is captured (terminated),
on a violation (team reward -5, terminated) or at the time limit (80 steps, truncated).
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from netmarl.envs.core import Array
from netmarl.envs.marbler_core import STAY, MarblerEnv, initial_report, spawn_strip, with_neighbours
from netmarl.envs.robotarium import SimReport, render_arena

NOT_SEEN = -5.0  # MARBLER's prey coordinate when no prey is in range


class PCPState(NamedTuple):
    """The state of one Predator-Capture-Prey episode (N robots, P prey)."""

    poses: Array  # [N, 3] float32, (x, y, theta)
    prey: Array  # [P, 2] float32, static prey positions
    sensed: Array  # [P] bool
    captured: Array  # [P] bool
    step: Array  # [] int32, env steps taken
    report: SimReport  # violations accumulated this episode


@dataclasses.dataclass(frozen=True)
class PredatorCapturePrey(MarblerEnv):
    """MARBLER PCP (2 predators + 2 capture robots, 6 prey, 80 steps).

    Observation of robot i: blocks [x, y, nearest uncaptured prey within its sense radius (x, y) or
    (-5, -5), sense radius, capture radius] of itself, then of the other robots in index order
    (`num_neighbors: 3` = everyone): 6N = 24 (4N = 16 with capability_aware=False).
    Global state: every (x, y, theta), prey (x, y), sensed and captured flags, elapsed time.
    """

    num_predators: int = 2
    num_capture: int = 2
    num_prey: int = 6
    sense_radius: float = 0.45
    capture_radius: float = 0.25
    max_steps: int = 80
    update_frequency: int = 29
    step_dist: float = 0.2
    sense_reward: float = 1.0
    capture_reward: float = 5.0
    time_penalty: float = -0.05
    start_dist: float = 0.3
    capability_aware: bool = True
    violation_penalty: float = -5.0
    penalize_violations: bool = True
    barrier: bool = True
    control_period: int = 1

    def __post_init__(self):
        self._check_common()
        if self.num_predators < 1 or self.num_capture < 1 or self.num_prey < 1:
            raise ValueError(f"PCP needs >= 1 predator, capture robot and prey; got "
                             f"{self.num_predators}, {self.num_capture}, {self.num_prey}")

    @property
    def num_agents(self) -> int:
        return self.num_predators + self.num_capture

    @property
    def name(self) -> str:
        return f"marbler:pcp[{self.num_predators}+{self.num_capture},prey={self.num_prey}]"

    @property
    def radii(self) -> np.ndarray:
        """[N, 2] (sense radius, capture radius) of every robot."""
        predator = [[self.sense_radius, 0.0]] * self.num_predators
        capture = [[0.0, self.capture_radius]] * self.num_capture
        return np.array(predator + capture, np.float32)

    def _init(self, key: Array) -> PCPState:
        k_robots, k_prey = jax.random.split(key)
        # robots left of x = -0.5, prey right of x = 0.5 (MARBLER: width 0.9, height 1.8)
        poses = spawn_strip(k_robots, self.num_agents, self.start_dist, 0.9, 1.8, -0.5, left=True)
        prey = spawn_strip(k_prey, self.num_prey, self.step_dist, 0.9, 1.8, -0.5, left=False)[:, :2]
        p = self.num_prey
        return PCPState(poses, prey, jnp.zeros(p, bool), jnp.zeros(p, bool), jnp.int32(0),
                        initial_report())

    def step_sizes(self, state: PCPState) -> Array:
        return jnp.full(self.num_agents, self.step_dist, jnp.float32)

    def distances(self, state: PCPState) -> Array:
        """[N, P] robot-to-prey distances."""
        return jnp.linalg.norm(state.poses[:, None, :2] - state.prey[None, :, :], axis=-1)

    def _update(self, state: PCPState, actions: Array):
        dist = self.distances(state)
        radii = jnp.asarray(self.radii)
        alive = ~state.captured
        sensed = state.sensed | (alive & jnp.any(dist <= radii[:, :1], axis=0))
        capturing = (actions == STAY)[:, None] & (dist <= radii[:, 1:])  # [N, P]
        captured = state.captured | (sensed & alive & jnp.any(capturing, axis=0))
        new_sensed = (sensed & ~state.sensed).sum()
        new_captured = (captured & ~state.captured).sum()
        team = self.sense_reward * new_sensed + self.capture_reward * new_captured + self.time_penalty
        state = state._replace(sensed=sensed, captured=captured)
        return state, self.shared(team), jnp.all(captured)

    def success(self, state: PCPState) -> Array:
        return jnp.all(state.captured)

    def observe(self, state: PCPState) -> Array:
        dist = self.distances(state)  # [N, P]
        radii = jnp.asarray(self.radii)
        visible = ~state.captured[None, :] & (dist <= radii[:, :1])
        nearest = jnp.argmin(jnp.where(visible, dist, jnp.inf), axis=1)  # [N]
        seen = jnp.where(visible.any(1)[:, None], state.prey[nearest], NOT_SEEN)  # [N, 2]
        parts = [state.poses[:, :2], seen] + ([radii] if self.capability_aware else [])
        return with_neighbours(jnp.concatenate(parts, -1))

    def global_state(self, state: PCPState) -> Array:
        return jnp.concatenate([state.poses.ravel(), state.prey.ravel(), state.sensed.astype(jnp.float32),
                                state.captured.astype(jnp.float32), self.time_feature(state)])

    def render(self, state: PCPState) -> np.ndarray:
        circles = []
        for (x, y), s, c in zip(np.asarray(state.prey), np.asarray(state.sensed), np.asarray(state.captured)):
            colour = (150, 150, 150) if c else (230, 150, 30) if s else (120, 60, 160)
            circles.append((float(x), float(y), 0.04, colour, False))
        poses = np.asarray(state.poses)
        for (x, y, _), (sense, capture) in zip(poses, self.radii):
            radius, colour = (sense, (60, 110, 200)) if sense > 0 else (capture, (200, 60, 60))
            circles.append((float(x), float(y), float(radius), colour, True))
        colours = [(60, 110, 200)] * self.num_predators + [(200, 60, 60)] * self.num_capture
        return render_arena(poses, colours, circles=circles)
