"""MARBLER Arctic Transport: drones scout a random ice/water terrain so that an ice robot and a water
robot can reach the goal. Original config (specs/marbler.md; MARBLER `ArcticTransport/*`).

Terrain: an 8 x 12 grid of 0.25 m cells over x in [-1.5, 1.5], y in [-1, 1] (row 0 at the top),
each cell uniform in {0 ground, 1 ice, 2 water} at reset; a 2 x 2 goal block (3) in the top two rows
at a random column pair (c - 1, c), c uniform in 1 .. 11; the bottom row's columns 1 .. 10 are ground.
Robots 0, 1 are drones (move 0.3 m per action on any tile), robot 2 the ice robot (0.3 on ice, 0.2
elsewhere), robot 3 the water robot (0.3 on water, 0.1 on ice, 0.2 on ground or goal); the step size
follows the tile under the robot at the start of the step. Robots start at fixed poses facing +y.
Team reward per step, for each ground robot: -0.05 until it has reached a goal tile, and
-0.075 * (distance to the goal point)^2 while it is not on a goal tile. The goal point is the
bottom-centre of the goal block. The episode ends when both ground robots have reached the goal
(terminated), on a violation (team reward -30, terminated) or after 60 steps (truncated).
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from netmarl.envs.core import Array
from netmarl.envs.marbler_core import MarblerEnv, initial_report
from netmarl.envs.robotarium import SimReport, render_arena

ROWS, COLS, CELL = 8, 12, 0.25
GROUND, ICE, WATER, GOAL = range(4)
DRONE, ICE_ROBOT, WATER_ROBOT = range(3)
CLASSES = (DRONE, DRONE, ICE_ROBOT, WATER_ROBOT)
START = ((-0.3, -0.8), (0.3, -0.8), (-0.9, -0.8), (0.9, -0.8))
# MARBLER's order of the other robots in each observation
OTHERS = np.array([[1, 2, 3], [0, 2, 3], [3, 0, 1], [2, 0, 1]], np.int32)
TILE_COLOURS = {GROUND: (215, 200, 170), ICE: (200, 235, 250), WATER: (90, 140, 220), GOAL: (240, 200, 60)}


class ArcticState(NamedTuple):
    """The state of one Arctic Transport episode (4 robots)."""

    poses: Array  # [4, 3] float32, (x, y, theta)
    grid: Array  # [8, 12] int32, terrain (0 ground, 1 ice, 2 water, 3 goal)
    goal_col: Array  # [] int32, the goal block covers columns goal_col - 1 and goal_col
    tile: Array  # [4] int32, terrain under each robot (after the last move)
    reached: Array  # [4] bool, the robot has stood on a goal tile
    step: Array  # [] int32, env steps taken
    report: SimReport  # violations accumulated this episode


@dataclasses.dataclass(frozen=True)
class ArcticTransport(MarblerEnv):
    """MARBLER Arctic Transport (2 drones, an ice robot and a water robot; 60 steps).

    Observation of robot i: own (x, y); the other robots' (x, y) in MARBLER's order; the goal
    point (x, y); the tile under it; drone 0's and drone 1's 3 x 3 terrain patches around their
    cells (padded with -1, shared with everyone); its class one-hot (drone, ice, water): 32.
    Global state: every (x, y, theta), the whole grid, the goal point, reached flags, time: 115.
    """

    normal_step: float = 0.2
    fast_step: float = 0.3
    slow_step: float = 0.1
    not_reached_penalty: float = -0.05
    dist_multiplier: float = -0.075
    max_steps: int = 60
    update_frequency: int = 36
    violation_penalty: float = -30.0
    penalize_violations: bool = True
    barrier: bool = True
    control_period: int = 1

    def __post_init__(self):
        self._check_common()

    num_agents = 4

    @property
    def name(self) -> str:
        return "marbler:arctic"

    def _init(self, key: Array) -> ArcticState:
        k_grid, k_goal = jax.random.split(key)
        grid = jax.random.randint(k_grid, (ROWS, COLS), 0, 3)
        goal_col = jax.random.randint(k_goal, (), 1, COLS)
        cols = jnp.arange(COLS)
        goal = (jnp.arange(ROWS)[:, None] < 2) & ((cols == goal_col) | (cols == goal_col - 1))[None, :]
        grid = jnp.where(goal, GOAL, grid)
        grid = grid.at[ROWS - 1, 1:COLS - 1].set(GROUND).astype(jnp.int32)
        poses = jnp.array([[x, y, np.pi / 2] for x, y in START], jnp.float32)
        state = ArcticState(poses, grid, goal_col.astype(jnp.int32), jnp.zeros(4, jnp.int32),
                            jnp.zeros(4, bool), jnp.int32(0), initial_report())
        return state._replace(tile=self.tiles(state))

    def cells(self, poses: Array) -> Array:
        """[N, 2] (row, col) of each robot (MARBLER `get_cell_from_pose`, clipped to the grid)."""
        row = jnp.clip(jnp.floor((1.0 - poses[:, 1]) / CELL), 0, ROWS - 1)
        col = jnp.clip(jnp.floor((poses[:, 0] + 1.5) / CELL), 0, COLS - 1)
        return jnp.stack([row, col], -1).astype(jnp.int32)

    def tiles(self, state: ArcticState) -> Array:
        cell = self.cells(state.poses)
        return state.grid[cell[:, 0], cell[:, 1]]

    def goal_point(self, state: ArcticState) -> Array:
        """[2] MARBLER's `get_pose_from_cell([1, goal_col])`."""
        return jnp.stack([state.goal_col * CELL - 1.5, jnp.float32(-CELL + 0.75)]).astype(jnp.float32)

    def step_sizes(self, state: ArcticState) -> Array:
        n, f, s = self.normal_step, self.fast_step, self.slow_step
        table = jnp.array([[f, f, f, f],  # drone: any tile   (ground, ice, water, goal)
                           [n, f, n, n],  # ice robot
                           [n, s, f, n]], jnp.float32)  # water robot
        return table[jnp.array(CLASSES), state.tile]

    def _update(self, state: ArcticState, actions: Array):
        tile = self.tiles(state)
        reached = state.reached | (tile == GOAL)
        ground = jnp.array([c != DRONE for c in CLASSES])
        dist2 = ((state.poses[:, :2] - self.goal_point(state)) ** 2).sum(-1)
        per_robot = (self.not_reached_penalty * ~reached
                     + self.dist_multiplier * dist2 * (tile != GOAL))
        team = jnp.where(ground, per_robot, 0.0).sum()
        state = state._replace(tile=tile, reached=reached)
        return state, self.shared(team), jnp.all(reached | ~ground)

    def success(self, state: ArcticState) -> Array:
        return state.reached[2] & state.reached[3]

    def patches(self, state: ArcticState) -> Array:
        """[2, 9] the drones' 3 x 3 terrain patches around their cells (row-major, -1 off-grid)."""
        padded = jnp.pad(state.grid, 1, constant_values=-1)
        cell = self.cells(state.poses[:2])
        take = lambda rc: jax.lax.dynamic_slice(padded, (rc[0], rc[1]), (3, 3)).ravel()
        return jax.vmap(take)(cell)

    def observe(self, state: ArcticState) -> Array:
        xy = state.poses[:, :2]
        goal = jnp.broadcast_to(self.goal_point(state), (4, 2))
        shared = jnp.broadcast_to(self.patches(state).ravel(), (4, 18))
        one_hot = jnp.asarray(np.eye(3)[list(CLASSES)], jnp.float32)
        parts = [xy, xy[OTHERS].reshape(4, 6), goal, state.tile[:, None], shared, one_hot]
        return jnp.concatenate([p.astype(jnp.float32) for p in parts], -1)

    def global_state(self, state: ArcticState) -> Array:
        parts = [state.poses.ravel(), state.grid.ravel(), self.goal_point(state), state.reached,
                 self.time_feature(state)]
        return jnp.concatenate([p.astype(jnp.float32) for p in parts])

    def render(self, state: ArcticState) -> np.ndarray:
        grid = np.asarray(state.grid)
        rects = [(c * CELL - 1.5, 1.0 - (r + 1) * CELL, (c + 1) * CELL - 1.5, 1.0 - r * CELL,
                  TILE_COLOURS[int(grid[r, c])]) for r in range(ROWS) for c in range(COLS)]
        colours = [(120, 120, 120), (120, 120, 120), (250, 250, 250), (30, 60, 160)]
        labels = ["D0", "D1", "ice", "wat"]
        return render_arena(np.asarray(state.poses), colours, rects=rects, labels=labels)
