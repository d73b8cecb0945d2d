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
    return play_episode(env, learner, params, epsilon, key)[0]


def play_episode(env: Environment, learner: QLearner, params, epsilon: Array, key: Array):
    """`collect_episode`, and the environment's per-step info (TimeStep.info, leaves [T]; None for
    environments that report nothing)."""
    key_reset, key = jax.random.split(key)
    env_state, ts = env.reset(key_reset)
    first = _ActCarry(env_state, ts, learner.initial_hidden(), jnp.bool_(True), key)

    def step(carry: _ActCarry, _):
        key, k_act, k_env = jax.random.split(carry.key, 3)
        graph = step_graph(learner, k_act)
        actions, h = learner.act(params, carry.ts.obs, carry.h, carry.ts.avail, epsilon, k_act,
                                 *(() if graph is None else (graph,)))
        env_state, ts = env.step(k_env, carry.env_state, actions)
        record = (ts, actions, carry.alive, graph)
        return _ActCarry(env_state, ts, h, carry.alive & ~ts.done, key), record

    last, (ts_seq, actions, filled, graphs) = jax.lax.scan(step, first, None, length=env.max_steps)
    cat = lambda x0, xs: jnp.concatenate([x0[None], xs])  # noqa: E731
    terminated = ts_seq.terminated
    if not learner.config.bootstrap_truncation:  # the time limit counts as terminal (no bootstrap)
        terminated = terminated | ts_seq.truncated
    if graphs is not None:  # the bootstrap observation's graph, from the last carry's key
        graphs = jnp.concatenate([graphs, step_graph(learner, jax.random.split(last.key, 3)[1])[None]])
    episode = Episode(obs=cat(ts.obs, ts_seq.obs), state=cat(ts.state, ts_seq.state),
                      avail=cat(ts.avail, ts_seq.avail), action=actions, reward=ts_seq.reward,
                      terminated=terminated, filled=filled, graph=graphs)
    return episode, ts_seq.info


def step_graph(learner, key: Array):
    """The step's communication graph [N, N] of a learner whose agents communicate (DG-MAPPO), drawn
    from the step's acting key; None for the others."""
    draw = getattr(learner, "graph", None)
    return None if draw is None else draw(key)


def episode_return(episode: Episode) -> Array:
    """Team return of a padded episode (leaves [..., T, ...]) -> [...]."""
    return (episode.reward.sum(-1) * episode.filled).sum(-1)


def episode_outcomes(info, filled: Array) -> dict[str, Array]:
    """Per-episode sums of the environment's info over the filled steps: {"won": [...]} is 1 for a
    won SMAX battle, 0 otherwise; {} for environments without info. info leaves [..., T]."""
    if info is None:
        return {}
    return {name: (jnp.asarray(value, jnp.float32) * filled).sum(-1) for name, value in info.items()}


def evaluate(env: Environment, learner: QLearner, params, key: Array, episodes: int,
             epsilon: Array = 0.0, outcomes: bool = False):
    """Team returns [episodes] of the ε-greedy policy (greedy by default), episodes in parallel;
    with `outcomes`, (returns, episode_outcomes {name: [episodes]})."""
    play = jax.vmap(play_episode, (None, None, None, None, 0))
    batch, info = play(env, learner, params, jnp.asarray(epsilon, jnp.float32),
                       jax.random.split(key, episodes))
    returns = episode_return(batch)
    return (returns, episode_outcomes(info, batch.filled)) if outcomes else returns
