"""A training run as a pure function of (config, key), executed in jitted chunks.

    trainer = Trainer(config)
    carry = trainer.init(seed_keys)                   # leaves [seeds, ...]
    carry, stats = trainer.run_chunk(carry, until)    # jitted: iterate until env_steps >= until
    returns = trainer.evaluate(carry)                 # greedy returns [seeds, eval_episodes]

One iteration collects one episode in each of `num_envs` environments and learns; what collecting,
storing and learning mean is the learner family's (train/families.py, algo.family): the Q-learner
(ε-greedy episodes into a replay buffer, `updates_per_iteration` minibatch updates once it holds a
minibatch) or the actor-critic learner (episodes sampled from the policies, learnt from on-policy).
Seeds are a vmapped leading axis (or a Python loop over seeds: `run.seed_mode=loop`). The host loop
between chunks (train/loop.py) evaluates, logs, checkpoints and advances the progress bar.
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from netmarl.algos.value.learner import LearnMetrics
from netmarl.config import TrainConfig, check
from netmarl.envs import make, select_tree
from netmarl.train.families import make_family
from netmarl.train.replay import Episode
from netmarl.train.rollout import episode_return, evaluate
from netmarl.train.seed_axis import SEED_AXIS

Array = jax.Array


class Carry(NamedTuple):
    """Everything a run needs to continue: checkpointing it makes the run resumable."""

    learner: Any  # the family's learner state: LearnerState (value) | PolicyState (policy)
    replay: Any  # the family's buffer: ReplayState (value) | () (policy: on-policy, no buffer)
    key: Array  # [2] uint32, the training key stream
    eval_key: Array  # [2] uint32, fixed; evaluation point k uses fold_in(eval_key, k)
    env_steps: Array  # [] int32, env steps collected (episode steps, not padding)
    episodes: Array  # [] int32, episodes collected


class ChunkStats(NamedTuple):
    """Sums over a chunk (divide by `episodes` / `updates` for means)."""

    episodes: Array  # []
    return_sum: Array  # [] sum of training episodes' team returns
    updates: Array  # []
    learn: Any  # sums of the learner's metrics over the updates (the family's metrics NamedTuple)


def _zero_stats(metrics=LearnMetrics) -> ChunkStats:
    zero = jnp.float32(0.0)
    return ChunkStats(zero, zero, zero, metrics(*(zero for _ in metrics._fields)))


class Trainer:
    """Static parts of a run (environment, learner family, sizes); all state lives in a Carry."""

    make_env = staticmethod(make)  # environment id and options -> environment (HostTrainer: a HostEnv)

    def __init__(self, config: TrainConfig):
        _check_run(config)
        self.config = config
        self.env = self.make_env(config.env.name, **config.env.options)
        self.eval_env = self.make_env(config.env.name, **{**config.env.options, **config.env.eval_options})
        self.family = make_family(config, self.env)
        self.learner = self.family.learner
        if config.run.seed_mode == "vmap":
            self.run_chunk = jax.jit(self._run_chunk_vmapped)
        else:
            self.run_chunk = functools.partial(_loop_over_seeds, jax.jit(self._run_chunk_one), (0, None))
        self._evaluate_seeds = jax.jit(self._seeds(self._evaluate, (0, None, None)))

    def evaluate(self, carry: Carry, point: Array, epsilon: float = 0.0) -> Array:
        """Team returns [seeds, eval_episodes] at evaluation point `point`: greedy (ε = 0) by
        default; ε = 1 is the uniformly random policy over available actions."""
        return self.evaluate_outcomes(carry, point, epsilon)[0]

    def evaluate_outcomes(self, carry: Carry, point: Array, epsilon: float = 0.0):
        """`evaluate`, and the episodes' outcomes {name: [seeds, eval_episodes]} (e.g. SMAX's "won";
        {} for environments without info), from the same episodes."""
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
        buffer = self.family.init_buffer(learner, key)
        return Carry(learner, buffer, k_train, k_eval, jnp.int32(0), jnp.int32(0))

    def iteration(self, carry: Carry, stats: ChunkStats, active: Array = True):
        """One seed: collect `num_envs` episodes, store them, learn."""
        episodes = self.collect(carry)
        replay = self.family.store(carry.replay, episodes, active)
        return self.advance(carry, replay, episodes, stats, active)

    def collect(self, carry: Carry) -> Episode:
        """`num_envs` episodes (leaves [E, ...]) with the current parameters."""
        _, k_collect, _ = _iteration_keys(carry.key)
        return self.family.collect(carry.learner, carry.env_steps, k_collect)

    def advance(self, carry: Carry, replay, episodes: Episode, stats: ChunkStats, active: Array):
        """Learns from the updated buffer (or the episodes) and counts; an inactive seed is left
        unchanged (its small leaves are selected; its replay write was already a no-op)."""
        key, _, k_learn = _iteration_keys(carry.key)
        learner, metrics, updates = self.family.learn(carry.learner, replay, episodes, k_learn,
                                                      carry.env_steps)
        num = self.config.run.num_envs
        new_carry = Carry(learner, None, key, carry.eval_key,
                          carry.env_steps + episodes.filled.sum(dtype=jnp.int32), carry.episodes + num)
        new_stats = ChunkStats(stats.episodes + num, stats.return_sum + episode_return(episodes).sum(),
                               stats.updates + updates, jax.tree.map(jnp.add, stats.learn, metrics))
        masked = select_tree(active, new_carry, carry._replace(replay=None))
        return masked._replace(replay=replay), select_tree(active, new_stats, stats)

    def _run_chunk_one(self, carry: Carry, until: Array) -> tuple[Carry, ChunkStats]:
        """One seed: iterates until at least `until` env steps have been collected."""
        return jax.lax.while_loop(lambda c: c[0].env_steps < until,
                                  lambda c: self.iteration(*c), (carry, self.zero_stats()))

    def _run_chunk_vmapped(self, carry: Carry, until: Array) -> tuple[Carry, ChunkStats]:
        """All seeds (leading axis): iterate while any seed is short of `until`; seeds that are
        done are masked. (A while_loop inside vmap would select the whole replay buffer per step.)"""
        def body(c):
            return self.store_and_advance(*c, jax.vmap(self.collect)(c[0]), until)

        stats = jax.vmap(lambda _: self.zero_stats())(carry.env_steps)
        return jax.lax.while_loop(lambda c: jnp.any(c[0].env_steps < until), body, (carry, stats))

    def store_and_advance(self, carry: Carry, stats: ChunkStats, episodes: Episode, until: Array):
        """All seeds (leading axis): stores the seeds' episodes (leaves [seeds, E, ...]) and learns;
        seeds that already reached `until` env steps are left unchanged."""
        active = carry.env_steps < until
        replay = self.family.store_seeds(carry.replay, episodes, active)
        return jax.vmap(self.advance, axis_name=SEED_AXIS)(carry, replay, episodes, stats, active)

    def zero_stats(self) -> ChunkStats:
        return _zero_stats(self.family.metrics)

    def _evaluate(self, carry: Carry, point: Array, epsilon: Array):
        """ε-greedy team returns [eval_episodes] at evaluation point `point`, and their outcomes."""
        key = jax.random.fold_in(carry.eval_key, point)
        return evaluate(self.eval_env, self.learner, carry.learner.params, key,
                        self.config.run.eval_episodes, epsilon, outcomes=True)

    def seed_keys(self, first: int | None = None) -> Array:
        """[seeds, 2] uint32 keys of seeds first, first + 1, ... (default: the configured run.seed)."""
        run = self.config.run
        first = run.seed if first is None else first
        return jnp.stack([jax.random.PRNGKey(first + s) for s in range(run.seeds)])

    def init_seeds(self, first: int | None = None) -> Carry:
        return jax.jit(self._seeds(self.init, 0))(self.seed_keys(first))


def make_trainer(config: TrainConfig) -> Trainer:
    """The Trainer of `config`: the jitted one, or the HostTrainer (train/host.py) for a host-stepped
    Gymnasium / PettingZoo env (`env=gym:<id>`, `env=pettingzoo:<module>`)."""
    from netmarl.envs.adapters import is_host
    if is_host(config.env.name):
        from netmarl.train.host import HostTrainer
        return HostTrainer(config)
    return Trainer(config)


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
    if config.algo.family == "value" and config.algo.buffer_size % config.run.num_envs:
        raise ValueError(f"algo.buffer_size={config.algo.buffer_size} must be a multiple of "
                         f"run.num_envs={config.run.num_envs} (episodes are written in blocks of num_envs)")
