"""Training on host-stepped environments: Gymnasium and PettingZoo envs stepped in Python
(netmarl/envs/adapters.py), acting and learning jitted.

    netmarl train algo=vdn env=gym:lbforaging:Foraging-8x8-2p-2f-coop-v3 seeds=2
    netmarl train algo=mappo env=pettingzoo:mpe2.simple_spread_v3

`HostTrainer` is the `Trainer` (train/runner.py) with its two env-stepping parts replaced: collecting an
iteration's episodes and evaluating. The carry, keys, replay, learning, host loop, checkpoints and
results are the same code. So are the keys, step for step: an episode's key gives the reset seed of its
env (`reset_seed`) and then its acting keys as in `rollout.play_episode`; a run is a function of
(config, seed) for any env that is deterministic given `reset(seed)`, and a killed run resumes exactly
(the carry holds no env state: every episode starts from a seeded reset).

Per iteration, the seeds' `num_envs` envs each play one episode, together: per env step one jitted
act over [seeds, E], then every live env steps on the host; finished envs wait, padded, until all
episodes have ended. Seeds are always batched this way (run.seed_mode only affects initialisation).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from netmarl.envs.adapters import HostEnv, make_host
from netmarl.train.families import blank_episode
from netmarl.train.replay import Episode
from netmarl.train.rollout import episode_return, step_graph
from netmarl.train.runner import Carry, ChunkStats, Trainer, _iteration_keys

Array = jax.Array


def reset_seed(key: Array) -> Array:
    """The integer seed, in [0, 2**31 - 1), with which a host env is reset for the episode of `key`
    (the native rollout resets with the key itself)."""
    return jax.random.randint(key, (), 0, 2**31 - 1)


def _act(actor, params, obs: Array, h: Array, avail: Array, epsilon: Array, key: Array):
    """One episode's step, keyed as in `rollout.play_episode`: -> (actions [N], h', next key, graph)."""
    key, k_act, _ = jax.random.split(key, 3)
    graph = step_graph(actor, k_act)
    actions, h = actor.act(params, obs, h, avail, epsilon, k_act, *(() if graph is None else (graph,)))
    return actions, h, key, graph


@jax.jit
def _start(episode_keys: Array) -> tuple[Array, Array]:
    """Episode keys [S, B, 2] -> (reset seeds [S, B], first acting keys [S, B, 2])."""
    split = jax.vmap(jax.vmap(jax.random.split))(episode_keys)  # [S, B, 2, 2]
    return jax.vmap(jax.vmap(reset_seed))(split[:, :, 0]), split[:, :, 1]


def _blank(shape: tuple[int, int], template: Episode) -> dict[str, np.ndarray]:
    """Numpy Episode fields [S, B, T(+1), ...] of all-padding episodes shaped as `template` (one
    episode), available actions all True (a padded step never meets an empty action set), plus the
    `truncated` flags [S, B, T]."""
    fields = {k: np.zeros((*shape, *x.shape), x.dtype) for k, x in template._asdict().items()
              if x is not None}
    fields["avail"][:] = True
    fields["truncated"] = np.zeros_like(fields["terminated"])
    return fields


def _record(ep: dict, index: tuple, t: int, ts) -> None:
    """Writes the time step that follows step t - 1 (t = 0: the reset) of episode `index` = (s, b)."""
    ep["obs"][index][t], ep["state"][index][t], ep["avail"][index][t] = ts.obs, ts.state, ts.avail
    if t > 0:
        ep["reward"][index][t - 1] = ts.reward
        ep["terminated"][index][t - 1], ep["truncated"][index][t - 1] = ts.terminated, ts.truncated
        ep["filled"][index][t - 1] = True


class Actor:
    """An actor's jitted host-rollout functions on envs like `env`, over [seeds, B] episodes: `step`
    (`_act`; params and ε per seed) and `graphs` (the acting graphs of the next step's keys, for
    actors that communicate); `template` is one blank episode (families.blank_episode)."""

    def __init__(self, actor, env: HostEnv):
        over_episodes = jax.vmap(functools.partial(_act, actor), (None, 0, 0, 0, None, 0))
        self.step = jax.jit(jax.vmap(over_episodes, (0, 0, 0, 0, 0, 0)))
        self.template = blank_episode(env, actor)
        next_graph = lambda k: step_graph(actor, jax.random.split(k, 3)[1])  # noqa: E731
        self.graphs = jax.jit(jax.vmap(jax.vmap(next_graph)))


def play_host(envs: list[list[HostEnv]], actor: Actor, params, epsilon: Array, episode_keys: Array,
              h0: Array, bootstrap_truncation: bool) -> Episode:
    """One episode in each env of `envs` [S][B] (all with the same spaces and T = max_steps).

    params and ε [S] per seed; episode_keys [S, B, 2];
    h0 [N, H] the actors' initial recurrent state. Returns an Episode of jnp arrays [S, B, ...] laid
    out as `rollout.collect_episode`'s (padding differs: zeros, all actions available).
    """
    shape, env = (len(envs), len(envs[0])), envs[0][0]
    seeds, keys = _start(episode_keys)
    ep = _blank(shape, actor.template)
    for s, b in np.ndindex(shape):
        _record(ep, (s, b), 0, envs[s][b].reset(seed=int(seeds[s, b])))
    alive, h = np.ones(shape, bool), jnp.broadcast_to(h0, (*shape, *h0.shape))
    for t in range(env.max_steps):
        actions, h, keys, graph = actor.step(params, ep["obs"][:, :, t], h, ep["avail"][:, :, t],
                                             epsilon, keys)
        actions = np.asarray(actions)
        ep["action"][:, :, t] = actions
        if graph is not None:
            ep["graph"][:, :, t] = np.asarray(graph)
        for s, b in zip(*np.nonzero(alive)):
            ts = envs[s][b].step(actions[s, b])
            _record(ep, (s, b), t + 1, ts)
            alive[s, b] = not ts.done
        if not alive.any():
            break
    if "graph" in ep:  # the graph of the step after the last one played (its bootstrap observation)
        ep["graph"][:, :, t + 1] = np.asarray(actor.graphs(keys))
    if not bootstrap_truncation:  # the time limit counts as terminal (no bootstrap)
        ep["terminated"] |= ep["truncated"]
    return Episode(**{k: jnp.asarray(v) for k, v in ep.items() if k != "truncated"})


class HostTrainer(Trainer):
    """The Trainer on a host-stepped env (`gym:<id>` or `pettingzoo:<module>`; see the module doc)."""

    make_env = staticmethod(make_host)

    def __init__(self, config):
        super().__init__(config)
        self.run_chunk = self._run_chunk_host  # (the jitted chunk set by Trainer is never compiled)
        self._pools = {"train": [], "eval": []}
        # the carry and stats are donated: the replay buffer is updated in place, not copied per iteration
        self._store_and_advance = jax.jit(self.store_and_advance, donate_argnums=(0, 1))
        self._act_train = Actor(self.family.behaviour(jnp.int32(0))[0], self.env)
        self._act_eval = Actor(self.learner, self.eval_env)
        self._eval_keys = jax.jit(jax.vmap(lambda k, point, n: jax.random.split(
            jax.random.fold_in(k, point), n), (0, None, None)), static_argnums=2)
        self._train_keys = jax.jit(jax.vmap(lambda k, n: jax.random.split(_iteration_keys(k)[1], n),
                                            (0, None)), static_argnums=1)
        self._epsilon = jax.jit(jax.vmap(lambda steps: self.family.behaviour(steps)[1]))

    def _run_chunk_host(self, carry: Carry, until: Array) -> tuple[Carry, ChunkStats]:
        """All seeds: host-stepped iterations until every seed has `until` env steps."""
        stats = jax.vmap(lambda _: self.zero_stats())(carry.env_steps)
        while np.any(np.asarray(carry.env_steps) < int(until)):
            episodes = play_host(self._envs("train", self.config.run.num_envs), self._act_train,
                                 carry.learner.params, self._epsilon(carry.env_steps),
                                 self._train_keys(carry.key, self.config.run.num_envs),
                                 self.learner.initial_hidden(), self._bootstrap)
            carry, stats = self._store_and_advance(carry, stats, episodes, until)
        return carry, stats

    def evaluate_outcomes(self, carry: Carry, point: Array, epsilon: float = 0.0):
        """Team returns [seeds, eval_episodes] of the ε-greedy policy (greedy by default), played on
        the host; no outcomes ({}: host envs report none)."""
        episodes = self.config.run.eval_episodes
        seeds = carry.env_steps.shape[0]
        batch = play_host(self._envs("eval", episodes), self._act_eval, carry.learner.params,
                          jnp.full((seeds,), epsilon, jnp.float32),
                          self._eval_keys(carry.eval_key, point, episodes),
                          self.learner.initial_hidden(), self._bootstrap)
        return episode_return(batch), {}

    @property
    def _bootstrap(self) -> bool:
        return bool(self.learner.config.bootstrap_truncation)

    def _envs(self, kind: str, count: int) -> list[list[HostEnv]]:
        """[seeds][count] envs of the kind ("train" or "eval"), made once and reused."""
        template = self.env if kind == "train" else self.eval_env
        pool, need = self._pools[kind], self.config.run.seeds * count
        options = {**self.config.env.options, **(self.config.env.eval_options if kind == "eval" else {})}
        while len(pool) < need:
            pool.append(template if not pool else self.make_env(self.config.env.name, **options))
        return [pool[s * count:(s + 1) * count] for s in range(self.config.run.seeds)]
