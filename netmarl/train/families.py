"""The two learner families behind the one runner: how each collects, stores and learns.

A family is the small, family-specific "collect + learn" part of an iteration; the Trainer
(train/runner.py) owns everything else (carry, keys, chunks, seeds, evaluation):

    family.learner                                   init / act (evaluation) / initial_hidden / epsilon
    family.init_buffer(learner_state, key)           -> buffer (ReplayState, or () on-policy)
    family.behaviour(env_steps)                      -> (actor, ε): who acts when collecting
    family.collect(learner_state, env_steps, key)    -> Episode [num_envs, ...]
    family.store(buffer, episodes, active)           -> buffer (store_seeds: leaves [S, ...])
    family.learn(learner_state, buffer, episodes, key, env_steps) -> (state, summed metrics, updates)
    family.metrics                                   the NamedTuple type of its metrics

ValueFamily: ε-greedy episodes into a replay buffer, minibatches sampled from it (algos/value).
PolicyFamily: episodes sampled from the stochastic policies, learnt from once, then dropped (algos/policy).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from netmarl.algos.policy.learner import PolicyLearner
from netmarl.algos.policy.update import PolicyMetrics
from netmarl.algos.value.learner import LearnerState, LearnMetrics
from netmarl.algos.value.pairvdn import make_learner
from netmarl.config import TrainConfig
from netmarl.envs import select_tree
from netmarl.envs.core import Environment
from netmarl.train.replay import (Episode, ReplayState, add_episodes, add_episodes_seeds, init_replay,
                                  sample_episodes, sample_transitions, shuffled_pass, stored_transitions,
                                  transitions_at)
from netmarl.train.rollout import collect_episode, step_graph

Array = jax.Array
FAMILIES = ("value", "policy")


def make_family(config: TrainConfig, env: Environment):
    """The family named by algo.family."""
    family = config.algo.family
    if family not in FAMILIES:
        raise ValueError(f"algo.family={family!r}; accepted: {', '.join(FAMILIES)}")
    return ValueFamily(config, env) if family == "value" else PolicyFamily(config, env)


def blank_episode(env: Environment, learner) -> Episode:
    """An all-zero episode with the shapes and dtypes `collect_episode` gives (one episode, T =
    env.max_steps): the replay buffer's template, built without stepping `env` (which may be a
    host-stepped HostEnv)."""
    t, n, a = env.max_steps, env.num_agents, env.num_actions
    zeros = lambda *shape, dtype=jnp.float32: jnp.zeros(shape, dtype)  # noqa: E731
    graph = None if step_graph(learner, jax.random.PRNGKey(0)) is None else zeros(t + 1, n, n, dtype=bool)
    return Episode(obs=zeros(t + 1, n, env.obs_dim), state=zeros(t + 1, env.state_dim),
                   avail=zeros(t + 1, n, a, dtype=bool), action=zeros(t, n, dtype=jnp.int32),
                   reward=zeros(t, n), terminated=zeros(t, dtype=bool), filled=zeros(t, dtype=bool),
                   graph=graph)


def _collect(env: Environment, actor, epsilon: Array, params, key: Array, num_envs: int) -> Episode:
    """`num_envs` episodes (leaves [E, ...]) played by `actor` (anything with act / initial_hidden)."""
    collect = jax.vmap(collect_episode, (None, None, None, None, 0))
    return collect(env, actor, params, epsilon, jax.random.split(key, num_envs))


class ValueFamily:
    """The Q-learner with an episode (or transition) replay buffer."""

    metrics = LearnMetrics

    def __init__(self, config: TrainConfig, env: Environment):
        self.config, self.env = config, env
        self.learner = make_learner(config.algo, env)

    def init_buffer(self, learner: LearnerState, key: Array) -> ReplayState:
        return init_replay(blank_episode(self.env, self.learner), self.config.algo.buffer_size)

    def behaviour(self, env_steps: Array):
        """The ε-greedy learner, at the schedule's ε."""
        return self.learner, self.learner.epsilon(env_steps)

    def collect(self, learner: LearnerState, env_steps: Array, key: Array) -> Episode:
        """ε-greedy episodes with the current parameters."""
        return _collect(self.env, *self.behaviour(env_steps), learner.params, key, self.config.run.num_envs)

    def store(self, replay: ReplayState, episodes: Episode, active: Array) -> ReplayState:
        return add_episodes(replay, episodes, active)

    def store_seeds(self, replay: ReplayState, episodes: Episode, active: Array) -> ReplayState:
        return add_episodes_seeds(replay, episodes, active)

    def learn(self, learner: LearnerState, replay: ReplayState, episodes: Episode, key: Array,
              env_steps: Array):
        """This iteration's updates, kept only once learning has started (a minibatch is stored and
        `learn_start` env steps were collected).

        Returns (learner, summed LearnMetrics, number of updates kept). A select rather than a
        `lax.cond`: a cond would copy the replay buffer into its operands on every iteration.
        """
        del episodes
        algo = self.config.algo
        if algo.epoch_pass:
            updated, metrics, count = self._epoch_pass(learner, replay, key)
        else:
            updated, metrics = jax.lax.scan(lambda lrn, k: self.learner.learn(lrn, self._sample(replay, k)),
                                            learner, jax.random.split(key, algo.updates_per_iteration))
            metrics, count = jax.tree.map(lambda m: m.sum(), metrics), algo.updates_per_iteration
        stored = replay.size if algo.replay_unit == "episode" else stored_transitions(replay).sum()
        ready = (stored >= algo.batch_size) & (env_steps >= algo.learn_start)
        metrics = LearnMetrics(*(jnp.where(ready, m, 0.0) for m in metrics))
        return select_tree(ready, updated, learner), metrics, ready * jnp.float32(count)

    def _sample(self, replay: ReplayState, key: Array) -> Episode:
        """A minibatch: `batch_size` episodes, or transitions (length-1 episodes)."""
        algo = self.config.algo
        sample = sample_episodes if algo.replay_unit == "episode" else sample_transitions
        return sample(replay, key, algo.batch_size)

    def _epoch_pass(self, learner: LearnerState, replay: ReplayState, key: Array):
        """One shuffled pass over the stored transitions in whole minibatches (PairVDN's epoch)."""
        size = self.config.algo.batch_size
        order, batches = shuffled_pass(replay, key, size)

        def update(b, carry):
            learner, total = carry
            batch = transitions_at(replay, jax.lax.dynamic_slice(order, (b * size,), (size,)))
            learner, metrics = self.learner.learn(learner, batch)
            return learner, jax.tree.map(jnp.add, total, metrics)

        zero = LearnMetrics(*(jnp.float32(0.0) for _ in LearnMetrics._fields))
        learner, metrics = jax.lax.fori_loop(0, batches, update, (learner, zero))
        return learner, metrics, batches


class _Sampling(NamedTuple):
    """The policy learner seen by `collect_episode` when training: actions sampled from π."""

    learner: PolicyLearner

    @property
    def config(self):
        return self.learner.config

    def act(self, *args):
        return self.learner.sample(*args)

    def graph(self, key: Array):
        return self.learner.graph(key)

    def initial_hidden(self) -> Array:
        return self.learner.initial_hidden()


class PolicyFamily:
    """The on-policy actor-critic learner: no buffer, each iteration learns from its own episodes."""

    metrics = PolicyMetrics

    def __init__(self, config: TrainConfig, env: Environment):
        self.config, self.env = config, env
        self.learner = PolicyLearner(config.algo, env)
        policy = config.algo.policy
        if config.run.num_envs % policy.minibatches:
            raise ValueError(f"algo.policy.minibatches={policy.minibatches} must divide run.num_envs="
                             f"{config.run.num_envs} (minibatches are whole episodes)")

    def init_buffer(self, learner, key: Array) -> tuple:
        return ()

    def behaviour(self, env_steps: Array):
        """The policies, sampling (no ε)."""
        return _Sampling(self.learner), jnp.zeros_like(env_steps, jnp.float32)

    def collect(self, learner, env_steps: Array, key: Array) -> Episode:
        """Episodes with actions sampled from the current policies."""
        return _collect(self.env, *self.behaviour(env_steps), learner.params, key, self.config.run.num_envs)

    def store(self, buffer, episodes: Episode, active: Array) -> tuple:
        return buffer

    store_seeds = store

    def learn(self, learner, buffer, episodes: Episode, key: Array, env_steps: Array):
        learner, metrics = self.learner.learn(learner, episodes, key, env_steps)
        p = self.config.algo.policy
        return learner, metrics, jnp.float32(p.epochs * p.minibatches)
