"""The environment rank: plays the episodes, asks the agents for actions, writes the team's results.

It mirrors `Trainer` exactly: the same key stream (`split(key, 3)` per iteration, `split(k_collect,
num_envs)` per episode, `(key, k_act, k_env)` per step) and the same counters, so the joint
trajectory equals the simulator's. Per step it scatters each agent's observation and action mask
[E, O + A] and gathers the actions [E]; after an episode it scatters each agent's tail
[E, T, 4] = (its reward share, team reward, terminated, filled). A dead agent (after a repair) takes
the first available action. Results: runs/<id>/metrics.jsonl, checkpoints/, summary.json, as
`netmarl train` writes them (so `netmarl table runs/<id>` reads a deployment run), and the other
loggers of `run.loggers`; progress goes to `netmarl train`'s progress bar.
"""
from __future__ import annotations

import functools
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from netmarl.algos.value.learner import QLearner
from netmarl.config import TrainConfig
from netmarl.envs.core import Environment
from netmarl.results.loggers import Loggers
from netmarl.results.rundir import RunDir
from netmarl.train.runner import _iteration_keys


@functools.partial(jax.jit, static_argnums=(1, 2))
def iteration_keys(key: jax.Array, num_envs: int, updates: int):
    """As Trainer: (next key, episode keys [E], learning keys [U]) of one iteration."""
    key, k_collect, k_learn = _iteration_keys(key)
    return key, jax.random.split(k_collect, num_envs), jax.random.split(k_learn, updates)


@functools.partial(jax.jit, static_argnums=2)
def eval_keys(eval_key: jax.Array, point, episodes: int) -> jax.Array:
    """As Trainer._evaluate: the episode keys [E] of evaluation point `point`."""
    return jax.random.split(jax.random.fold_in(eval_key, point), episodes)


@jax.jit
def initial_keys(seed) -> jax.Array:
    """As Trainer.init: (k_learner, k_train, k_eval) [3, 2] of run seed `seed`."""
    return jax.random.split(jax.random.PRNGKey(seed), 3)


SUMS = 6  # per-chunk sums every agent sends before its squared gradient norms (agent_rank.SUMMED)


class EnvCarry(NamedTuple):
    """The environment rank's share of the simulator's Carry (counters and keys)."""

    key: jax.Array  # [2] uint32, training key stream
    eval_key: jax.Array  # [2] uint32
    env_steps: np.ndarray  # [] int32
    episodes: np.ndarray  # [] int32
    stored: np.ndarray  # [] int32, episodes in every agent's replay view
    updates: np.ndarray  # [] int32, learner updates done (as every agent counts them)


class EnvStats(NamedTuple):
    episodes: float
    return_sum: float
    updates: float


class EnvProcess:
    """Runs the environment for the live agents of `world`."""

    def __init__(self, config: TrainConfig, env: Environment, learner: QLearner, world, run: RunDir,
                 log=None, progress=None):
        """`log`: the run's Loggers (default: metrics.jsonl only); `progress`: the update function of
        `train.loop.progress_bar`, called with the env steps after each iteration and with the
        record at each evaluation point (default: none)."""
        self.config, self.env, self.learner, self.world, self.run = config, env, learner, world, run
        self.log = log or Loggers(["jsonl"], run, {})
        self.progress = progress or (lambda env_steps, records=None: None)
        self._reset = jax.jit(jax.vmap(self._reset_one))
        self._step = jax.jit(jax.vmap(self._step_one))
        self.epsilon = jax.jit(learner.epsilon)
        self.tic = time.perf_counter()

    def initial(self):
        _, k_train, k_eval = initial_keys(self.config.run.seed)
        zero = np.int32(0)
        return EnvCarry(k_train, k_eval, zero, zero, zero, zero), EnvStats(0.0, 0.0, 0.0)

    # --- one episode per environment, in lock step with the agents --------------------------------

    def _reset_one(self, key):
        key_reset, key = jax.random.split(key)
        state, ts = self.env.reset(key_reset)
        return state, ts, key

    def _step_one(self, state, key, actions):
        key, _, k_env = jax.random.split(key, 3)
        state, ts = self.env.step(k_env, state, actions)
        return state, ts, key

    def episodes(self, keys: jax.Array) -> tuple[np.ndarray, int]:
        """Plays len(keys) episodes with the agents: (team returns [E], env steps played)."""
        state, ts, chain = self._reset(keys)
        num, steps = keys.shape[0], self.env.max_steps
        alive = np.ones(num, bool)
        tail = np.zeros((num, steps, self.env.num_agents, 4), np.float32)
        for t in range(steps + 1):
            obs, avail = np.asarray(ts.obs), np.asarray(ts.avail)
            flag = [alive[:, None].astype(np.float32)] if self.alive_column else []
            self.world.scatter({i: np.concatenate([obs[:, i], avail[:, i], *flag], -1) for i in
                                self.world.agents}, (num, obs.shape[-1] + avail.shape[-1] + len(flag)))
            if t == steps:
                break
            got = self.world.gather(None, (num,), np.int32)
            actions = np.argmax(avail, -1).astype(np.int32)  # dead agents: first available action
            for i, row in got.items():
                actions[:, i] = row
            state, ts, chain = self._step(state, chain, jnp.asarray(actions))
            reward, done = np.asarray(ts.reward), np.asarray(ts.done)
            tail[:, t, :, 0] = reward
            tail[:, t, :, 1] = self.team_reward(ts)[:, None]
            ended = np.asarray(ts.terminated)
            if not self.config.algo.bootstrap_truncation:  # as collect_episode: time limit = terminal
                ended = ended | np.asarray(ts.truncated)
            tail[:, t, :, 2] = ended[:, None]
            tail[:, t, :, 3] = alive[:, None]
            alive = alive & ~done
        self.world.scatter({i: tail[:, :, i] for i in self.world.agents}, (num, steps, 4))
        team = tail[:, :, 0, 1]
        return (team * tail[:, :, 0, 3]).sum(-1), int(tail[:, :, 0, 3].sum())

    # --- phases ----------------------------------------------------------------------------------

    def iterate(self, state):
        (carry, stats), algo = state, self.config.algo
        num = self.config.run.num_envs
        key, collect, _ = iteration_keys(carry.key, num, algo.updates_per_iteration)
        returns, steps = self.episodes(collect)
        stored = min(int(carry.stored) + num, algo.buffer_size)
        updates = self.updates(carry, stored)
        carry = EnvCarry(key, carry.eval_key, np.int32(carry.env_steps + steps),
                         np.int32(carry.episodes + num), np.int32(stored),
                         np.int32(carry.updates + updates))
        self.progress(carry.env_steps)
        return carry, EnvStats(stats.episodes + num, stats.return_sum + float(returns.sum()),
                               stats.updates + updates)

    def evaluate(self, state, point: int):
        """Greedy episodes at evaluation point `point`, the agents' chunk metrics, one record."""
        carry, stats = state
        returns, _ = self.episodes(eval_keys(carry.eval_key, point, self.config.run.eval_episodes))
        size = self.sums + int(stats.updates)
        got = self.world.gather(None, (size,), np.float64)
        record = {"point": point, "seed": self.config.run.seed, "env_steps": int(carry.env_steps),
                  "episodes": int(carry.episodes), "updates": int(carry.updates),
                  "epsilon": float(self.epsilon(carry.env_steps)),
                  "eval_return": float(returns.mean()), "eval_return_std": float(returns.std()),
                  "eval_returns": returns.tolist(), "agents": self.world.agents}
        if point > 0:
            record.update(self.team_metrics(stats, np.stack(list(got.values()))))
        elapsed = time.perf_counter() - self.tic
        self.run.truncate_metrics(point - 1)  # a repeated phase (after a repair) replaces its record
        self.log.write([record | {"elapsed_s": elapsed}])
        self.run.save_checkpoint(carry, point, {"elapsed": elapsed})
        self.progress(carry.env_steps, [record])
        return carry, EnvStats(0.0, 0.0, 0.0)

    def env_steps(self, state) -> int:
        return int(state[0].env_steps)

    # --- what differs between the families (PolicyEnvProcess overrides) ---------------------------

    alive_column = False  # per-step rows [E, O + A (+ 1: the episode is still running)]
    sums = SUMS

    def team_reward(self, ts) -> np.ndarray:
        """The tail's team-reward column [E] (the Q-learner's R)."""
        return np.asarray(ts.team_reward)

    def updates(self, carry: EnvCarry, stored: int) -> int:
        """Learner updates of this iteration: once a minibatch is stored and learning started."""
        algo = self.config.algo
        ready = stored >= algo.batch_size and int(carry.env_steps) >= algo.learn_start
        return algo.updates_per_iteration if ready else 0

    def team_metrics(self, stats: EnvStats, rows: np.ndarray) -> dict:
        return _team_metrics(stats, rows, self.config.algo.comm.log_jtd_error)



def _team_metrics(stats: EnvStats, rows: np.ndarray, jtd_error: bool) -> dict:
    """The simulator's chunk means from the agents' sums rows [N', SUMS + U]: (loss, q_taken,
    mean_degree, connected, floats_sent, jtd_error, squared grad norm per update)."""
    per_update = max(stats.updates, 1.0)
    grad_norm = np.sqrt(rows[:, SUMS:].sum(0)).sum() if rows.shape[1] > SUMS else 0.0
    metrics = {"train_return": stats.return_sum / max(stats.episodes, 1.0),
               "loss": rows[:, 0].sum() / per_update, "q_taken": rows[:, 1].mean() / per_update,
               "grad_norm": float(grad_norm) / per_update, "mean_degree": rows[0, 2] / per_update,
               "connected": rows[0, 3] / per_update, "floats_sent": rows[:, 4].mean() / per_update}
    if jtd_error:  # the simulator's mean over agents of each agent's relative error
        metrics["jtd_error"] = rows[:, 5].mean() / per_update
    return metrics
