"""A training run as a pure function of (config, key), executed in jitted chunks.

    trainer = Trainer(config)
    carry = trainer.init(seed_keys)                   # leaves [seeds, ...]
    carry, stats = trainer.run_chunk(carry, until)    # jitted: iterate until env_steps >= until
    returns = trainer.evaluate(carry)                 # greedy returns [seeds, eval_episodes]

One iteration collects one episode in each of `num_envs` environments (ε-greedy), adds them to the
replay buffer and, once the buffer holds a minibatch, performs `updates_per_iteration` learner updates.
Seeds are a vmapped leading axis (or a Python loop over seeds: `run.seed_mode=loop`). The host loop
between chunks (train/loop.py) evaluates, logs, checkpoints and advances the progress bar.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from netmarl.algos.value.learner import LearnerState, LearnMetrics
from netmarl.algos.value.pairvdn import make_learner
from netmarl.config import TrainConfig, check
from netmarl.envs import make, select_tree
from netmarl.train.replay import (Episode, ReplayState, add_episodes, add_episodes_seeds, init_replay,
                                  sample_episodes, sample_transitions, shuffled_pass, stored_transitions,
                                  transitions_at)
from netmarl.train.rollout import collect_episode, episode_return, evaluate

Array = jax.Array


class Carry(NamedTuple):
    """Everything a run needs to continue: checkpointing it makes the run resumable."""

    learner: LearnerState
    replay: ReplayState
    key: Array  # [2] uint32, the training key stream
    eval_key: Array  # [2] uint32, fixed; evaluation point k uses fold_in(eval_key, k)
    env_steps: Array  # [] int32, env steps collected (episode steps, not padding)
    episodes: Array  # [] int32, episodes collected


class ChunkStats(NamedTuple):
    """Sums over a chunk (divide by `episodes` / `updates` for means)."""

    episodes: Array  # []
    return_sum: Array  # [] sum of training episodes' team returns
    updates: Array  # []
    learn: LearnMetrics  # sums of the learner's metrics over the updates


def _zero_stats() -> ChunkStats:
    zero = jnp.float32(0.0)
    return ChunkStats(zero, zero, zero, LearnMetrics(*(zero for _ in LearnMetrics._fields)))


class Trainer:
    """Static parts of a run (environment, learner, sizes); all state lives in a Carry."""

    def __init__(self, config: TrainConfig):
        _check_run(config)
        self.config = config
        self.env = make(config.env.name, **config.env.options)
        self.eval_env = make(config.env.name, **{**config.env.options, **config.env.eval_options})
        self.learner = make_learner(config.algo, self.env)
        if config.run.seed_mode == "vmap":
            self.run_chunk = jax.jit(self._run_chunk_vmapped)
        else:
            self.run_chunk = functools.partial(_loop_over_seeds, jax.jit(self._run_chunk_one), (0, None))
        self._evaluate_seeds = jax.jit(self._seeds(self._evaluate, (0, None, None)))

    def evaluate(self, carry: Carry, point: Array, epsilon: float = 0.0) -> Array:
        """Team returns [seeds, eval_episodes] at evaluation point `point`: greedy (ε = 0) by
        default; ε = 1 is the uniformly random policy over available actions."""
        return self._evaluate_seeds(carry, point, jnp.float32(epsilon))

    def _seeds(self, fn, in_axes):
        """Maps `fn` over the leading seed axis: vmap, or a loop of per-seed calls (fallback)."""
        if self.config.run.seed_mode == "vmap":
            return jax.vmap(fn, in_axes)
        return functools.partial(_loop_over_seeds, fn, in_axes)

    # --- pure functions of one seed ------------------------------------------------------------

    def init(self, key: Array) -> Carry:
        """The initial carry of one seed (vmap it over seed keys)."""
        k_learner, k_train, k_eval = jax.random.split(key, 3)
        learner = self.learner.init(k_learner)
        example = collect_episode(self.env, self.learner, learner.params, jnp.float32(1.0), key)
        replay = init_replay(jax.tree.map(jnp.zeros_like, example), self.config.algo.buffer_size)
        return Carry(learner, replay, k_train, k_eval, jnp.int32(0), jnp.int32(0))

    def iteration(self, carry: Carry, stats: ChunkStats, active: Array = True):
        """One seed: collect `num_envs` episodes, store them, learn."""
        episodes = self.collect(carry)
        replay = add_episodes(carry.replay, episodes, active)
        return self.advance(carry, replay, episodes, stats, active)

    def collect(self, carry: Carry) -> Episode:
        """`num_envs` ε-greedy episodes (leaves [E, ...]) with the current parameters."""
        _, k_collect, _ = _iteration_keys(carry.key)
        collect = jax.vmap(collect_episode, (None, None, None, None, 0))
        return collect(self.env, self.learner, carry.learner.params,
                       self.learner.epsilon(carry.env_steps),
                       jax.random.split(k_collect, self.config.run.num_envs))

    def advance(self, carry: Carry, replay: ReplayState, episodes: Episode, stats: ChunkStats,
                active: Array):
        """Learns from the updated buffer and counts; an inactive seed is left unchanged (its small
        leaves are selected; its replay write was already a no-op)."""
        key, _, k_learn = _iteration_keys(carry.key)
        learner, metrics, updates = self.learn_steps(carry.learner, replay, k_learn, carry.env_steps)
        num = self.config.run.num_envs
        new_carry = Carry(learner, None, key, carry.eval_key,
                          carry.env_steps + episodes.filled.sum(dtype=jnp.int32), carry.episodes + num)
        new_stats = ChunkStats(stats.episodes + num, stats.return_sum + episode_return(episodes).sum(),
                               stats.updates + updates, jax.tree.map(jnp.add, stats.learn, metrics))
        masked = select_tree(active, new_carry, carry._replace(replay=None))
        return masked._replace(replay=replay), select_tree(active, new_stats, stats)

    def learn_steps(self, learner: LearnerState, replay: ReplayState, key: Array, env_steps: Array):
        """This iteration's updates, kept only once learning has started (a minibatch is stored and
        `learn_start` env steps were collected).

        Returns (learner, summed LearnMetrics, number of updates kept). A select rather than a
        `lax.cond`: a cond would copy the replay buffer into its operands on every iteration.
        """
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

    def _run_chunk_one(self, carry: Carry, until: Array) -> tuple[Carry, ChunkStats]:
        """One seed: iterates until at least `until` env steps have been collected."""
        return jax.lax.while_loop(lambda c: c[0].env_steps < until,
                                  lambda c: self.iteration(*c), (carry, _zero_stats()))

    def _run_chunk_vmapped(self, carry: Carry, until: Array) -> tuple[Carry, ChunkStats]:
        """All seeds (leading axis): iterate while any seed is short of `until`; seeds that are
        done are masked. (A while_loop inside vmap would select the whole replay buffer per step.)"""
        def body(c):
            carry, stats = c
            active = carry.env_steps < until
            episodes = jax.vmap(self.collect)(carry)
            replay = add_episodes_seeds(carry.replay, episodes, active)
            return jax.vmap(self.advance)(carry, replay, episodes, stats, active)

        stats = jax.vmap(lambda _: _zero_stats())(carry.env_steps)
        return jax.lax.while_loop(lambda c: jnp.any(c[0].env_steps < until), body, (carry, stats))

    def _evaluate(self, carry: Carry, point: Array, epsilon: Array) -> Array:
        """ε-greedy team returns [eval_episodes] at evaluation point `point`."""
        key = jax.random.fold_in(carry.eval_key, point)
        return evaluate(self.eval_env, self.learner, carry.learner.params, key,
                        self.config.run.eval_episodes, epsilon)

    def seed_keys(self, first: int | None = None) -> Array:
        """[seeds, 2] uint32 keys of seeds first, first + 1, ... (default: the configured run.seed)."""
        run = self.config.run
        first = run.seed if first is None else first
        return jnp.stack([jax.random.PRNGKey(first + s) for s in range(run.seeds)])

    def init_seeds(self, first: int | None = None) -> Carry:
        return jax.jit(self._seeds(self.init, 0))(self.seed_keys(first))


def _iteration_keys(key: Array) -> Array:
    """[3, 2]: the next training key, the collection key and the learning key of an iteration."""
    return jax.random.split(key, 3)


def _loop_over_seeds(fn, in_axes, *args):
    """The seed-loop fallback: calls `fn` per seed and stacks the results."""
    seeds = jax.tree.leaves(args[0])[0].shape[0]
    axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
    outs = []
    for s in range(seeds):
        sliced = [jax.tree.map(lambda x: x[s], a) if ax == 0 else a for a, ax in zip(args, axes)]
        outs.append(fn(*sliced))
    return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)


def _check_run(config: TrainConfig) -> None:
    check(config)  # types and ranges of every field (netmarl/config.py)
    comm = config.algo.comm
    if comm.exchange != "sync" or comm.loss != 0.0:
        raise ValueError(f"algo.comm.exchange={comm.exchange!r} with algo.comm.loss={comm.loss} is for "
                         "the MPI runtime (netmarl agent); the in-process simulator exchanges no "
                         "messages and accepts only algo.comm.exchange=sync, algo.comm.loss=0")
    if config.algo.buffer_size % config.run.num_envs:
        raise ValueError(f"algo.buffer_size={config.algo.buffer_size} must be a multiple of "
                         f"run.num_envs={config.run.num_envs} (episodes are written in blocks of num_envs)")
