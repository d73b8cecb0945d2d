"""Level-Based Foraging in pure JAX, with the exact rules of `lbforaging==2.0.0` (specs/lbf.md).

Rules in brief (P players, F foods, grid R x C):
- actions NONE=0, NORTH=1, SOUTH=2, WEST=3, EAST=4, LOAD=5; an invalid action becomes NONE;
- a player moves iff no other player targets the same cell (staying players target their own cell);
- every LOADing player orthogonally adjacent to a food joins it; the food is collected iff the
  joiners' levels sum to at least its level; joiner i gets level_i * food / (sum_levels * spawned);
- the episode ends when every food is collected (termination) or after `max_steps` (truncation).
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from netmarl.envs.core import Array, Box, Environment, TimeStep, make_timestep

NONE, NORTH, SOUTH, WEST, EAST, LOAD = range(6)
ACTION_NAMES = ("NONE", "NORTH", "SOUTH", "WEST", "EAST", "LOAD")
_DELTAS = jnp.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1], [0, 0]], jnp.int32)  # [6, 2]
RULES = ("v3", "paper")


class LBFState(NamedTuple):
    """The full state of one LBF episode."""

    pos: Array  # [P, 2] int32, (row, col) of each player
    level: Array  # [P] int32, player levels
    food_pos: Array  # [F, 2] int32, (row, col) of each food slot
    food_level: Array  # [F] int32, 0 once collected (or if it could not be spawned)
    food_spawned: Array  # [] float32, total food level spawned this episode (reward normaliser)
    step: Array  # [] int32, env steps taken this episode


@dataclasses.dataclass(frozen=True)
class LBF(Environment):
    """Level-Based Foraging (vector observations).

    Args:
      rows, cols: grid size.
      num_players: P; num_food: F (maximum number of foods spawned).
      sight: observation radius in cells; `rows` for full observability (the package's default).
      force_coop: every food gets the maximum level (tasks ending in `-coop`).
      rules: "v3" (lbforaging 2.0.0) or "paper" (v1/v2: non-coop food level in [1, max - 1]).
      max_steps: time limit in env steps.
      time_limit_truncation: report the time limit as truncation (True) or, as the package does, as
        an ordinary end of episode (False: terminated, so learners do not bootstrap).
      penalty: reward subtracted from every joiner of a failed LOAD.
      action_mask: report the valid actions as `avail` (True), or every action as available (False:
        what EPyMARL's gymma wrapper reports; an invalid action still becomes NONE either way).
      normalize_reward: divide rewards so that collecting every food sums to 1.
    """

    rows: int = 10
    cols: int = 10
    num_players: int = 3
    num_food: int = 3
    sight: int = 10
    force_coop: bool = False
    rules: str = "v3"
    max_steps: int = 50
    time_limit_truncation: bool = True
    penalty: float = 0.0
    action_mask: bool = True
    normalize_reward: bool = True
    min_player_level: int = 1
    max_player_level: int = 2
    min_food_level: int = 1
    max_food_level: int | None = None

    def __post_init__(self):
        _check_lbf_args(self)

    num_actions = 6

    @property
    def num_agents(self) -> int:
        return self.num_players

    @property
    def obs_dim(self) -> int:
        return 3 * (self.num_food + self.num_players)

    @property
    def state_dim(self) -> int:
        return 3 * (self.num_food + self.num_players) + 1

    @property
    def name(self) -> str:
        coop = "-coop" if self.force_coop else ""
        sight = f"-{self.sight}s" if self.sight != self.rows else ""
        return (f"lbf:Foraging{sight}-{self.rows}x{self.cols}-{self.num_players}p-"
                f"{self.num_food}f{coop}[{self.rules}]")

    @property
    def observation_space(self) -> Box:
        """Per-agent observation space, with the package's bounds."""
        max_food = self.max_food_level or min(3, self.num_players) * self.max_player_level
        low = [-1, -1, 0] * (self.num_food + self.num_players)
        high = ([self.cols - 1, self.rows - 1, max_food] * self.num_food
                + [self.cols - 1, self.rows - 1, self.max_player_level] * self.num_players)
        return Box(tuple(low), tuple(high), (self.obs_dim,))

    # --- reset -------------------------------------------------------------------------------------

    def _reset(self, key: Array):
        key_pos, key_level, key_food = jax.random.split(key, 3)
        # P distinct cells uniformly (top-k of i.i.d. uniforms: same law as the package's sampler)
        cells = jax.lax.top_k(jax.random.uniform(key_pos, (self.rows * self.cols,)), self.num_players)[1]
        pos = jnp.stack([cells // self.cols, cells % self.cols], -1).astype(jnp.int32)
        level = jax.random.randint(
            key_level, (self.num_players,), self.min_player_level, self.max_player_level + 1)
        food_pos, food_level = self._spawn_food(key_food, pos, level)
        state = LBFState(pos, level.astype(jnp.int32), food_pos, food_level,
                         food_level.sum().astype(jnp.float32), jnp.int32(0))
        return state, self._timestep(state, jnp.zeros(self.num_players), False, False)

    def _food_level_bounds(self, level: Array) -> tuple[Array, Array]:
        """Inclusive [low, high] bounds of a food's level for these player levels."""
        if self.max_food_level is None:
            high = jnp.sort(level)[:3].sum()
        else:
            high = jnp.int32(self.max_food_level)
        if self.force_coop:
            return high, high
        low = jnp.int32(self.min_food_level)
        if self.rules == "paper":  # v1/v2 drew randint(low, high) with an exclusive upper bound
            high = jnp.where(low == high, high, high - 1)
        return low, high

    def _spawn_food(self, key: Array, pos: Array, level: Array) -> tuple[Array, Array]:
        """Places foods one by one uniformly on valid cells (the package's rejection sampler)."""
        low, high = self._food_level_bounds(level)
        rr, cc = jnp.meshgrid(jnp.arange(self.rows), jnp.arange(self.cols), indexing="ij")
        interior = (rr >= 1) & (rr <= self.rows - 2) & (cc >= 1) & (cc <= self.cols - 2)
        free = interior & ~_grid_of(pos, jnp.ones(self.num_players, bool), (self.rows, self.cols))

        def place(free, draw):
            u, level_draw = draw  # [R*C] uniforms pick a uniform free cell; one draw for the level
            cell = jnp.argmax(jnp.where(free.ravel(), u, -1.0))
            ok = free.any()
            r, c = cell // self.cols, cell % self.cols
            food_level = jnp.where(ok, low + jnp.floor(level_draw * (high - low + 1)).astype(jnp.int32), 0)
            near = ((jnp.abs(rr - r) <= 1) & (jnp.abs(cc - c) <= 1)) | (
                (rr == r) & (jnp.abs(cc - c) <= 2)) | ((cc == c) & (jnp.abs(rr - r) <= 2))
            return free & ~(near & ok), (jnp.stack([r, c]).astype(jnp.int32), food_level)

        k_cell, k_level = jax.random.split(key)
        draws = (jax.random.uniform(k_cell, (self.num_food, self.rows * self.cols)),
                 jax.random.uniform(k_level, (self.num_food,)))
        _, (food_pos, food_level) = jax.lax.scan(place, free, draws)
        return food_pos, food_level.astype(jnp.int32)

    # --- step --------------------------------------------------------------------------------------

    def _step(self, key: Array, state: LBFState, actions: Array):
        del key  # LBF transitions are deterministic
        avail = self.avail_actions(state)
        actions = jnp.where(avail[jnp.arange(self.num_players), actions], actions, NONE)
        pos = _resolve_moves(state.pos, actions)
        reward, food_level = self._load(state._replace(pos=pos), actions == LOAD)
        step = state.step + 1
        state = state._replace(pos=pos, food_level=food_level, step=step)
        all_collected = food_level.sum() == 0
        time_up = step >= self.max_steps
        if self.time_limit_truncation:
            terminated, truncated = all_collected, time_up & ~all_collected
        else:
            terminated, truncated = all_collected | time_up, jnp.bool_(False)
        return state, self._timestep(state, reward, terminated, truncated)

    def _load(self, state: LBFState, loading: Array) -> tuple[Array, Array]:
        """Resolves LOAD actions: returns (per-player rewards [P], remaining food levels [F])."""
        dist = jnp.abs(state.pos[:, None, :] - state.food_pos[None, :, :]).sum(-1)  # [P, F]
        joins = loading[:, None] & (dist == 1) & (state.food_level[None, :] > 0)  # [P, F]
        join_level = (joins * state.level[:, None]).sum(0)  # [F]
        collected = joins.any(0) & (join_level >= state.food_level)  # [F]
        gain = (state.level[:, None] * state.food_level[None, :]).astype(jnp.float32)  # [P, F]
        if self.normalize_reward:
            gain = gain / (jnp.maximum(join_level, 1) * state.food_spawned)[None, :]
        per_food = jnp.where(collected[None, :], gain, -self.penalty)
        reward = jnp.where(joins, per_food, 0.0).sum(1)
        return reward, jnp.where(collected, 0, state.food_level)

    def avail_actions(self, state: LBFState) -> Array:
        """[P, 6] bool: moves inside the grid onto food-free cells; LOAD next to a food."""
        field = self.field(state)
        r, c = state.pos[:, 0], state.pos[:, 1]
        rmax, cmax = self.rows - 1, self.cols - 1
        north = (r > 0) & (field[jnp.maximum(r - 1, 0), c] == 0)
        south = (r < rmax) & (field[jnp.minimum(r + 1, rmax), c] == 0)
        west = (c > 0) & (field[r, jnp.maximum(c - 1, 0)] == 0)
        east = (c < cmax) & (field[r, jnp.minimum(c + 1, cmax)] == 0)
        # The package clamps indices at the border (so a border player "looks" at its own cell).
        adjacent_food = (field[jnp.maximum(r - 1, 0), c] + field[jnp.minimum(r + 1, rmax), c]
                         + field[r, jnp.maximum(c - 1, 0)] + field[r, jnp.minimum(c + 1, cmax)])
        return jnp.stack([jnp.ones_like(north), north, south, west, east, adjacent_food > 0], -1)

    def field(self, state: LBFState) -> Array:
        """[R, C] int32 grid of food levels (the package's `env.field`)."""
        grid = jnp.zeros((self.rows, self.cols), jnp.int32)
        return grid.at[state.food_pos[:, 0], state.food_pos[:, 1]].add(state.food_level)

    # --- observations ------------------------------------------------------------------------------

    def _timestep(self, state: LBFState, reward, terminated, truncated) -> TimeStep:
        obs = jax.vmap(self._observe, in_axes=(None, 0))(state, jnp.arange(self.num_players))
        avail = self.avail_actions(state) if self.action_mask else jnp.ones((self.num_players, 6), bool)
        return make_timestep(obs, self.global_state(state), avail, reward, terminated, truncated)

    def _observe(self, state: LBFState, i: Array) -> Array:
        """Agent i's vector observation [3F + 3P] (package layout: foods, then self, then others)."""
        me = state.pos[i]
        origin = jnp.maximum(me - self.sight, 0)
        limit = jnp.minimum(me + self.sight, jnp.array([self.rows - 1, self.cols - 1]))
        food_seen = (state.food_level > 0) & jnp.all(
            (state.food_pos >= origin) & (state.food_pos <= limit), -1)
        food_order = state.food_pos[:, 0] * self.cols + state.food_pos[:, 1]  # row-major
        foods = _pack(state.food_pos - origin, state.food_level, food_seen, food_order)
        rel = state.pos - origin
        seen = jnp.all((rel >= 0) & (rel <= 2 * self.sight), -1)
        order = jnp.where(jnp.arange(self.num_players) == i, -1, jnp.arange(self.num_players))
        players = _pack(rel, state.level, seen, order)
        return jnp.concatenate([foods, players]).astype(jnp.float32)

    def global_state(self, state: LBFState) -> Array:
        """[3F + 3P + 1]: absolute (row, col, level) of every food (-1, -1, 0 once collected) and
        every player, in slot order, then the elapsed fraction of the time limit."""
        alive = state.food_level > 0
        foods = jnp.where(alive[:, None], jnp.c_[state.food_pos, state.food_level], jnp.array([-1, -1, 0]))
        players = jnp.c_[state.pos, state.level]
        t = state.step / self.max_steps
        return jnp.concatenate([foods.ravel(), players.ravel(), t[None]]).astype(jnp.float32)

    def render(self, state: LBFState) -> np.ndarray:
        from netmarl.envs.render import render_grid
        return render_grid(self.rows, self.cols, np.asarray(state.pos), np.asarray(state.level),
                           np.asarray(state.food_pos), np.asarray(state.food_level),
                           self.sight if self.sight < max(self.rows, self.cols) else None)


def _pack(coords: Array, levels: Array, seen: Array, order: Array) -> Array:
    """Entries [K, 3] = (row, col, level), seen ones first in `order`, unseen as (-1, -1, 0).

    Ranks by pairwise comparison and places entries with a one-hot (K is small; faster than argsort).
    """
    key = jnp.where(seen, order, order.max() + 1 + jnp.arange(order.shape[0]))
    rank = (key[None, :] < key[:, None]).sum(1)  # [K], distinct keys -> a permutation
    place = jax.nn.one_hot(rank, key.shape[0], dtype=jnp.int32)  # [K (entry), K (slot)]
    entries = jnp.where(seen[:, None], jnp.c_[coords, levels], jnp.array([-1, -1, 0]))
    return (place.T @ entries).ravel()


def _resolve_moves(pos: Array, actions: Array) -> Array:
    """Moves every player whose target cell no other player targets (staying = own cell)."""
    target = pos + _DELTAS[actions]
    clash = jnp.all(target[:, None, :] == target[None, :, :], -1).sum(1) > 1
    return jnp.where(clash[:, None], pos, target)


def _grid_of(pos: Array, mask: Array, shape: tuple[int, int]) -> Array:
    """[R, C] bool grid with True at the masked positions."""
    return jnp.zeros(shape, bool).at[pos[:, 0], pos[:, 1]].max(mask)


def _check_lbf_args(env: LBF) -> None:
    """Refuses a task that cannot be laid out or solved, naming the value and the limit."""
    if env.rules not in RULES:
        raise ValueError(f"LBF rules={env.rules!r} is not known; accepted: {', '.join(RULES)}")
    for field in ("rows", "cols", "num_players", "num_food", "sight", "max_steps"):
        if getattr(env, field) < 1:
            raise ValueError(f"LBF {field}={getattr(env, field)} must be a positive integer")
    grid = f"{env.rows}x{env.cols}"
    if env.rows < 3 or env.cols < 3:
        raise ValueError(f"LBF grid {grid} is too small: foods need an interior (>= 3x3)")
    if env.num_players + env.num_food > env.rows * env.cols:
        raise ValueError(f"LBF: {env.num_players} players and {env.num_food} food need "
                         f"{env.num_players + env.num_food} cells; a {grid} grid has {env.rows * env.cols}")
    if not food_fits(env.rows - 2, env.cols - 2, env.num_food):
        raise ValueError(f"LBF: {env.num_food} food do not fit a {grid} grid: food lies in the "
                         f"{env.rows - 2}x{env.cols - 2} interior, no two within one cell (or two in a "
                         f"row or column) of each other; at most {max_food_count(env.rows - 2, env.cols - 2)} fit")
    if env.sight > max(env.rows, env.cols):
        raise ValueError(f"LBF sight={env.sight} exceeds the {grid} grid; accepted: 1 .. "
                         f"{max(env.rows, env.cols)} (the largest sees everything)")
    if not 1 <= env.min_player_level <= env.max_player_level:
        raise ValueError(f"LBF player levels [{env.min_player_level}, {env.max_player_level}] "
                         "must satisfy 1 <= min <= max")
    _check_food_levels(env)
    if env.penalty < 0:
        raise ValueError(f"LBF penalty={env.penalty} must be >= 0 (it is subtracted from failed loaders)")


def _check_food_levels(env: LBF) -> None:
    """A food's level must be reachable by the players that can stand next to it (at most 4)."""
    if env.min_food_level < 1:
        raise ValueError(f"LBF min_food_level={env.min_food_level} must be >= 1")
    if env.max_food_level is None:  # the level is capped by the three lowest players' levels
        return
    if env.max_food_level < env.min_food_level:
        raise ValueError(f"LBF food levels [{env.min_food_level}, {env.max_food_level}] must satisfy "
                         "min_food_level <= max_food_level")
    loaders = min(env.num_players, 4)
    strongest = loaders * env.max_player_level
    lowest = env.max_food_level if env.force_coop else env.min_food_level
    if lowest > strongest:
        raise ValueError(f"LBF: food of level {lowest} can never be loaded: at most {loaders} players (one "
                         f"per side) of level <= max_player_level={env.max_player_level} load it, "
                         f"a total of {strongest}")


def _food_blocks(r: int, c: int, h: int, w: int) -> set[tuple[int, int]]:
    """Cells where no other food may lie once one lies at (r, c) (the spawner's rule)."""
    near = {(r + i, c + j) for i in (-1, 0, 1) for j in (-1, 0, 1)}
    near |= {(r, c - 2), (r, c + 2), (r - 2, c), (r + 2, c)}
    return {(i, j) for i, j in near if 0 <= i < h and 0 <= j < w}


def max_food_count(h: int, w: int, stop_at: int | None = None, budget: int = 200_000) -> int:
    """The most foods that fit an empty h x w interior (exact search; stops early at `stop_at`,
    or after `budget` search nodes with the best count found)."""
    cells, best, nodes = [(i, j) for i in range(h) for j in range(w)], [0], [0]

    def search(start: int, blocked: frozenset, placed: int) -> None:
        nodes[0] += 1
        best[0] = max(best[0], placed)
        free = [k for k in range(start, len(cells)) if cells[k] not in blocked]
        rows_left = (h - cells[free[0]][0] + 1) // 2 if free else 0
        if (stop_at and best[0] >= stop_at) or nodes[0] > budget or not free or \
                placed + rows_left * ((w + 1) // 2) <= best[0]:
            return
        k = free[0]
        search(k + 1, blocked | _food_blocks(*cells[k], h, w), placed + 1)
        search(k + 1, blocked | {cells[k]}, placed)

    search(0, frozenset(), 0)
    return best[0]


def food_fits(h: int, w: int, num_food: int) -> bool:
    """Whether `num_food` foods can lie together in an h x w interior."""
    return max_food_count(h, w, stop_at=num_food) >= num_food
