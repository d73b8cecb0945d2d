"""Matrix games as environments: one-step (episode_length=1) or repeated.

Common-payoff games give the team reward R = M[a_1, ..., a_N], shared equally (r_i = R / N). The
stag hunt is symmetric but not common-payoff: player i receives M[a_i, a_other]; the team reward is
the sum of the two. Observations (and the global state) are a constant 1 (so that state-conditioned
networks such as QMIX's hypernetworks see a non-zero input), the one-hot previous joint action
[N * A] and the elapsed fraction of the episode t / T: identical for every agent.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from netmarl.envs.core import Array, Box, Environment, make_timestep

# name -> (payoff matrix, common payoff?). Sources: the MARL-book lecture (linear, monotonic,
# climbing, penalty, stag hunt) and the textbook section on value decomposition (additive, coordination).
GAMES: dict[str, tuple[list[list[float]], bool]] = {
    "linear": ([[1, 5], [5, 9]], True),
    "monotonic": ([[0, 0], [0, 10]], True),
    "climbing": ([[11, -30, 0], [-30, 7, 0], [0, 6, 5]], True),
    "penalty": ([[None, 0, 10], [0, 2, 0], [10, 0, None]], True),  # None -> -k
    "stag-hunt": ([[4, 0], [3, 2]], False),
    "additive": ([[0, 1, 2], [1, 2, 3], [2, 3, 4]], True),
    "coordination": ([[6, 4, 2], [4, 3, 1], [2, 1, 8]], True),
}


class MatrixState(NamedTuple):
    prev_actions: Array  # [N] int32, previous joint action (-1 before the first step)
    step: Array  # [] int32


@dataclasses.dataclass(frozen=True)
class MatrixGame(Environment):
    """An N-player normal-form game played for `episode_length` rounds.

    Args:
      payoffs: per-agent payoff tables as nested tuples, shape [N, A_1, ..., A_N] (N action axes;
        agents may have different action counts A_i: a heterogeneous game).
      episode_length: rounds per episode (1 = one-step game).
      game: a display name.
    """

    payoffs: tuple
    episode_length: int = 1
    game: str = "custom"

    def __post_init__(self):
        table = np.asarray(self.payoffs, np.float32)
        n = table.shape[0]
        if table.ndim != n + 1:
            raise ValueError(f"matrix game payoffs must have shape [N, A_1, ..., A_N] with N action "
                             f"axes, got {table.shape}")
        if self.episode_length < 1:
            raise ValueError(f"episode_length={self.episode_length} must be >= 1")

    @property
    def table(self) -> np.ndarray:
        """[N, A_1, ..., A_N] float32 per-agent payoffs."""
        return np.asarray(self.payoffs, np.float32)

    @property
    def num_agents(self) -> int:
        return self.table.shape[0]

    @property
    def num_actions(self) -> int:
        return max(self.table.shape[1:])

    @property
    def agent_num_actions(self) -> tuple[int, ...]:
        return tuple(self.table.shape[1:])

    @property
    def obs_dim(self) -> int:
        return self.num_agents * self.num_actions + 2

    @property
    def state_dim(self) -> int:
        return self.obs_dim

    @property
    def max_steps(self) -> int:
        return self.episode_length

    @property
    def name(self) -> str:
        return f"matrix:{self.game}"

    @property
    def observation_space(self) -> Box:
        return Box(0.0, 1.0, (self.obs_dim,))

    def _reset(self, key: Array):
        del key
        state = MatrixState(jnp.full(self.num_agents, -1, jnp.int32), jnp.int32(0))
        return state, self._timestep(state, jnp.zeros(self.num_agents), False)

    def _step(self, key: Array, state: MatrixState, actions: Array):
        del key
        reward = jnp.asarray(self.table)[(slice(None), *actions)]  # [N]
        state = MatrixState(actions, state.step + 1)
        return state, self._timestep(state, reward, state.step >= self.episode_length)

    def _timestep(self, state: MatrixState, reward: Array, terminated):
        onehot = jax.nn.one_hot(state.prev_actions, self.num_actions).ravel()  # -1 -> zeros
        obs = jnp.concatenate([jnp.ones(1), onehot, (state.step / self.episode_length)[None]])
        avail = jnp.arange(self.num_actions) < jnp.asarray(self.agent_num_actions)[:, None]
        return make_timestep(jnp.tile(obs, (self.num_agents, 1)), obs, avail, reward,
                             terminated, False)


def make_matrix(game: str, episode_length: int = 1, k: float = 100.0) -> MatrixGame:
    """Builds a named game; `penalty` takes k (also as `penalty-<k>`); `cycle-<game>-<N>` is the
    N-player common-payoff game R(a) = Σ_i M[a_i, a_(i+1) mod N] of a common-payoff 2-player game M
    (pairwise terms around a cycle: what PairVDN represents exactly and VDN cannot)."""
    if game.startswith("cycle-"):
        return _cycle_game(game, episode_length, k)
    if game.startswith("penalty-"):
        game, k = "penalty", float(game.removeprefix("penalty-"))
    if game not in GAMES:
        raise ValueError(f"unknown matrix game {game!r}; accepted: {', '.join(sorted(GAMES))} "
                         "(penalty also as penalty-<k>)")
    matrix, common = GAMES[game]
    table = np.array([[-k if v is None else v for v in row] for row in matrix], np.float32)
    if common:
        n = table.ndim
        payoffs = np.broadcast_to(table / n, (n, *table.shape))
    else:  # symmetric two-player game: player 2 sees the transposed table
        payoffs = np.stack([table, table.T])
    name = game if game != "penalty" else f"penalty-{k:g}"
    return MatrixGame(_to_tuple(payoffs), episode_length, name)


def _cycle_game(game: str, episode_length: int, k: float) -> MatrixGame:
    base, _, n = game[len("cycle-"):].rpartition("-")
    if not n.isdigit() or int(n) < 2 or base not in GAMES or not GAMES[base][1]:
        common = ", ".join(g for g, (_, c) in GAMES.items() if c)
        raise ValueError(f"matrix game {game!r}: expected cycle-<game>-<N> with N >= 2 and a "
                         f"common-payoff game among {common}")
    pair = np.asarray(make_matrix(base, k=k).table[0] * 2)  # the 2-player payoff M
    n, a = int(n), pair.shape[0]
    joint = np.indices((a,) * n)  # [N, A, ..., A]: joint[i] = a_i
    team = sum(pair[joint[i], joint[(i + 1) % n]] for i in range(n))
    payoffs = np.broadcast_to(team / n, (n, *team.shape))
    return MatrixGame(_to_tuple(payoffs), episode_length, game)


def _to_tuple(x: np.ndarray):
    return tuple(_to_tuple(v) for v in x) if x.ndim else float(x)
