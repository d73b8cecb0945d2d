"""Acting in the environment: one padded episode per environment, for training or evaluation."""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from netmarl.algos.value.learner import QLearner
from netmarl.envs.core import Environment, TimeStep
from netmarl.train.replay import Episode

Array = jax.Array


class _ActCarry(NamedTuple):
    env_state: object
    ts: TimeStep  # the current time step (what the agents act on)
    h: Array  # [N, H] recurrent state
    alive: Array  # [] bool, the episode has not ended yet
    key: Array


def collect_episode(env: Environment, learner: QLearner, params, epsilon: Array, key: Array) -> Episode:
    """Plays one episode of T = env.max_steps steps (padded after it ends) with ε-greedy agents."""
    key_reset, key = jax.random.split(key)
    env_state, ts = env.reset(key_reset)
    first = _ActCarry(env_state, ts, learner.initial_hidden(), jnp.bool_(True), key)

    def step(carry: _ActCarry, _):
        key, k_act, k_env = jax.random.split(carry.key, 3)
        actions, h = learner.act(params, carry.ts.obs, carry.h, carry.ts.avail, epsilon, k_act)
        env_state, ts = env.step(k_env, carry.env_state, actions)
        record = (ts, actions, carry.alive)
        return _ActCarry(env_state, ts, h, carry.alive & ~ts.done, key), record

    _, (ts_seq, actions, filled) = jax.lax.scan(step, first, None, length=env.max_steps)
    cat = lambda x0, xs: jnp.concatenate([x0[None], xs])  # noqa: E731
    terminated = ts_seq.terminated
    if not learner.config.bootstrap_truncation:  # the time limit counts as terminal (no bootstrap)
        terminated = terminated | ts_seq.truncated
    return Episode(obs=cat(ts.obs, ts_seq.obs), state=cat(ts.state, ts_seq.state),
                   avail=cat(ts.avail, ts_seq.avail), action=actions, reward=ts_seq.reward,
                   terminated=terminated, filled=filled)


def episode_return(episode: Episode) -> Array:
    """Team return of a padded episode (leaves [..., T, ...]) -> [...]."""
    return (episode.reward.sum(-1) * episode.filled).sum(-1)


def evaluate(env: Environment, learner: QLearner, params, key: Array, episodes: int,
             epsilon: Array = 0.0) -> Array:
    """Team returns [episodes] of the ε-greedy policy (greedy by default), episodes in parallel."""
    play = jax.vmap(collect_episode, (None, None, None, None, 0))
    batch = play(env, learner, params, jnp.asarray(epsilon, jnp.float32), jax.random.split(key, episodes))
    return episode_return(batch)
