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

from netmarl.algos.value.learner import LearnerState, LearnMetrics, QLearner
from netmarl.config import TrainConfig
from netmarl.envs import make, select_tree
from netmarl.train.replay import ReplayState, add_episodes, init_replay, sample_episodes
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

    episodes: Array
    return_sum: Array
    updates: Array
    loss_sum: Array
    td_abs_sum: Array
    q_sum: Array
    grad_norm_sum: Array


def _zero_stats() -> ChunkStats:
    return ChunkStats(*(jnp.float32(0.0) for _ in ChunkStats._fields))


class Trainer:
    """Static parts of a run (environment, learner, sizes); all state lives in a Carry."""

    def __init__(self, config: TrainConfig):
        self.config = config
        self.env = make(config.env.name, **config.env.options)
        self.learner = QLearner(config.algo, self.env)
        _check_run(config)
        if config.run.seed_mode == "vmap":
            self.run_chunk = jax.jit(self._run_chunk_vmapped)
        else:
            self.run_chunk = functools.partial(_loop_over_seeds, jax.jit(self._run_chunk_one), (0, None))
        self.evaluate = jax.jit(self._seeds(self._evaluate, (0, None)))

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
        """Collect `num_envs` episodes, store them, learn. An inactive seed is left unchanged
        (masked cheaply: the replay write re-writes old slots, small leaves are selected)."""
        key, k_collect, k_learn = jax.random.split(carry.key, 3)
        epsilon = self.learner.epsilon(carry.env_steps)
        collect = jax.vmap(collect_episode, (None, None, None, None, 0))
        episodes = collect(self.env, self.learner, carry.learner.params, epsilon,
                           jax.random.split(k_collect, self.config.run.num_envs))
        replay = add_episodes(carry.replay, episodes, active)
        learner, metrics, updates = self.learn_steps(carry.learner, replay, k_learn)
        new_carry = Carry(learner, replay, key, carry.eval_key,
                          carry.env_steps + episodes.filled.sum(dtype=jnp.int32),
                          carry.episodes + self.config.run.num_envs)
        new_stats = ChunkStats(stats.episodes + self.config.run.num_envs,
                               stats.return_sum + episode_return(episodes).sum(),
                               stats.updates + updates, stats.loss_sum + metrics.loss,
                               stats.td_abs_sum + metrics.td_abs, stats.q_sum + metrics.q_taken,
                               stats.grad_norm_sum + metrics.grad_norm)
        masked = select_tree(active, new_carry._replace(replay=None), carry._replace(replay=None))
        return masked._replace(replay=replay), select_tree(active, new_stats, stats)

    def learn_steps(self, learner: LearnerState, replay: ReplayState, key: Array):
        """`updates_per_iteration` updates, kept only once the buffer holds a minibatch.

        Returns (learner, summed LearnMetrics, number of updates kept). A select rather than a
        `lax.cond`: a cond would copy the replay buffer into its operands on every iteration.
        """
        algo = self.config.algo

        def update(learner, key):
            batch = sample_episodes(replay, key, algo.batch_size)
            return self.learner.learn(learner, batch)

        keys = jax.random.split(key, algo.updates_per_iteration)
        updated, metrics = jax.lax.scan(update, learner, keys)
        ready = replay.size >= algo.batch_size
        metrics = LearnMetrics(*(jnp.where(ready, m.sum(), 0.0) for m in metrics))
        return select_tree(ready, updated, learner), metrics, ready * jnp.float32(len(keys))

    def _run_chunk_one(self, carry: Carry, until: Array) -> tuple[Carry, ChunkStats]:
        """One seed: iterates until at least `until` env steps have been collected."""
        return jax.lax.while_loop(lambda c: c[0].env_steps < until,
                                  lambda c: self.iteration(*c), (carry, _zero_stats()))

    def _run_chunk_vmapped(self, carry: Carry, until: Array) -> tuple[Carry, ChunkStats]:
        """All seeds (leading axis): iterate while any seed is short of `until`; seeds that are
        done are masked. (A while_loop inside vmap would select the whole replay buffer per step.)"""
        stats = jax.vmap(lambda _: _zero_stats())(carry.env_steps)
        body = lambda c: jax.vmap(self.iteration)(*c, c[0].env_steps < until)  # noqa: E731
        return jax.lax.while_loop(lambda c: jnp.any(c[0].env_steps < until), body, (carry, stats))

    def _evaluate(self, carry: Carry, point: Array) -> Array:
        """Greedy team returns [eval_episodes] at evaluation point `point`."""
        key = jax.random.fold_in(carry.eval_key, point)
        return evaluate(self.env, self.learner, carry.learner.params, key,
                        self.config.run.eval_episodes)

    def seed_keys(self) -> Array:
        """[seeds, 2] uint32 keys of the configured seeds."""
        run = self.config.run
        return jnp.stack([jax.random.PRNGKey(run.seed + s) for s in range(run.seeds)])

    def init_seeds(self) -> Carry:
        return jax.jit(self._seeds(self.init, 0))(self.seed_keys())


def _loop_over_seeds(fn, in_axes, *args):
    """The seed-loop fallback: calls `fn` per seed and stacks the results."""
    seeds = jax.tree.leaves(args[0])[0].shape[0]
    outs = []
    for s in range(seeds):
        sliced = [jax.tree.map(lambda x: x[s], a) if ax == 0 else a for a, ax in zip(args, _axes(in_axes, len(args)))]
        outs.append(fn(*sliced))
    return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)


def _axes(in_axes, n):
    return in_axes if isinstance(in_axes, tuple) else (in_axes,) * n


def _check_run(config: TrainConfig) -> None:
    run = config.run
    if run.seed_mode not in ("vmap", "loop"):
        raise ValueError(f"run.seed_mode={run.seed_mode!r}; accepted: vmap, loop")
    for name in ("total_steps", "seeds", "num_envs", "eval_interval", "eval_episodes"):
        if getattr(run, name) < 1:
            raise ValueError(f"run.{name}={getattr(run, name)} must be a positive integer")
