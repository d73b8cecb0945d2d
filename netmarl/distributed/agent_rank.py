"""An agent rank: acts on its observations, keeps its replay view, learns with its neighbours.

Mirrors `Trainer` for agent i: the same key stream as the environment rank, an episode replay of
its own column of every episode (same capacity, same insertion order, so the shared sampling key
picks the same episodes on every agent and the TDs line up), and `updates_per_iteration` learning
steps once the buffer holds a minibatch. Results in runs/<id>/agent_<i>/: metrics.jsonl (its own
learning metrics), checkpoints/ (its AgentCarry), final_params.npz and summary.json.

Test hook (tests/test_mpi.py, not a feature): with NETMARL_TEST_HANG=<agent>:<update> in the
environment, that agent sleeps forever just before that learning update, as a hung peer would.
"""
from __future__ import annotations

import os
import sys
import time
from typing import NamedTuple

import jax
import numpy as np

from netmarl.comm.pushsum import PushSumCommunicator
from netmarl.config import TrainConfig
from netmarl.distributed.env_rank import eval_keys, initial_keys, iteration_keys
from netmarl.distributed.learner import AgentEpisode, AgentLearner, AgentMetrics, AgentState
from netmarl.envs.core import Environment
from netmarl.results.rundir import RunDir
from netmarl.train.replay import ReplayState, add_episodes, init_replay, sample_episodes


class AgentCarry(NamedTuple):
    """Agent i's share of the simulator's Carry."""

    learner: AgentState
    replay: ReplayState  # leaves [C, ...] of AgentEpisode
    key: jax.Array  # [2] uint32, the training key stream (the same on every rank)
    eval_key: jax.Array
    env_steps: np.ndarray  # [] int32
    episodes: np.ndarray  # [] int32


class AgentProcess:
    """Agent `index` of a deployment: `world` connects it to the environment rank and its peers."""

    def __init__(self, config: TrainConfig, env: Environment, learner: AgentLearner, world,
                 run: RunDir):
        self.config, self.env, self.agent, self.world, self.run = config, env, learner, world, run
        self.index = learner.index
        algo = config.algo
        self._add = jax.jit(add_episodes)
        self._sample = jax.jit(sample_episodes, static_argnums=2)
        self._replay = jax.jit(init_replay, static_argnums=1)
        self._chains = jax.jit(lambda keys: jax.vmap(jax.random.split)(keys)[:, 1])
        self.epsilon = jax.jit(learner.learner.epsilon)
        self.batch_size, self.updates_per_iteration = algo.batch_size, algo.updates_per_iteration
        self.tic = time.perf_counter()
        self.regroup()
        (run.path / "pid").write_text(str(os.getpid()))

    def regroup(self) -> None:
        """(Again after a repair:) exchanges go through the live agents' communicator."""
        self.agent.comm, self.agent.failure = self.world.communicator, None

    def initial(self):
        k_learner, k_train, k_eval = initial_keys(self.config.run.seed)
        steps, o, a = self.env.max_steps, self.env.obs_dim, self.env.num_actions
        example = AgentEpisode(np.zeros((steps + 1, 1, o), np.float32),
                               np.zeros((steps + 1, 1, a), bool), np.zeros((steps, 1), np.int32),
                               np.zeros((steps, 1), np.float32), np.zeros(steps, np.float32),
                               np.zeros(steps, bool), np.zeros(steps, bool))
        replay = self._replay(example, self.config.algo.buffer_size)
        carry = AgentCarry(self.agent.init(k_learner), replay, k_train, k_eval, np.int32(0),
                           np.int32(0))
        return carry, _zero_sums()

    # --- one episode per environment, in lock step with the environment rank -------------------

    def episodes(self, params, keys: jax.Array, epsilon) -> AgentEpisode:
        """Acts in len(keys) episodes; returns its view of them (leaves [E, ...])."""
        num, steps = keys.shape[0], self.env.max_steps
        o, a = self.env.obs_dim, self.env.num_actions
        chain = self._chains(keys)  # (key_reset, key) = split(key) as collect_episode
        h = self.agent.initial_hidden(num)
        obs, avail, actions = [], [], []
        for t in range(steps + 1):
            row = self.world.scatter(None, (num, o + a))
            obs.append(row[:, :o])
            avail.append(row[:, o:] > 0.5)
            if t == steps:
                break
            action, h, chain = self.agent.act(params, obs[-1], h, avail[-1], epsilon, chain)
            actions.append(np.asarray(action))
            self.world.gather(actions[-1], (num,), np.int32)
        tail = self.world.scatter(None, (num, steps, 4))
        return AgentEpisode(obs=np.stack(obs, 1)[:, :, None], avail=np.stack(avail, 1)[:, :, None],
                            action=np.stack(actions, 1)[:, :, None], reward=tail[..., 0:1],
                            team_reward=tail[..., 1], terminated=tail[..., 2] > 0.5,
                            filled=tail[..., 3] > 0.5)

    # --- phases ----------------------------------------------------------------------------------

    def iterate(self, state):
        carry, sums = state
        key, collect, learn = iteration_keys(carry.key, self.config.run.num_envs,
                                             self.updates_per_iteration)
        episodes = self.episodes(carry.learner.params, collect, self.epsilon(carry.env_steps))
        replay = self._add(carry.replay, episodes)
        learner = carry.learner
        if int(replay.size) >= self.batch_size and int(carry.env_steps) >= self.config.algo.learn_start:
            for k in np.asarray(learn):
                _test_hang(self.index, int(learner.updates))
                batch = self._sample(replay, k, self.batch_size)
                learner, metrics = self.agent.learn(learner, batch, self.world.schedule)
                sums = _add_metrics(sums, metrics)
        carry = AgentCarry(learner, replay, key, carry.eval_key,
                           np.int32(carry.env_steps + episodes.filled.sum()),
                           np.int32(carry.episodes + self.config.run.num_envs))
        return carry, sums

    def evaluate(self, state, point: int):
        """Greedy evaluation episodes (the environment rank records the returns), its metrics."""
        carry, sums = state
        self.episodes(carry.learner.params,
                      eval_keys(carry.eval_key, point, self.config.run.eval_episodes),
                      np.float32(0.0))
        totals = np.array([*(sums[k] for k in SUMMED), *sums["grad_sq"]], np.float64)
        self.world.gather(totals, (totals.size,), np.float64)
        record = {"point": point, "seed": self.config.run.seed, "agent": self.index,
                  "env_steps": int(carry.env_steps), "episodes": int(carry.episodes),
                  "updates": int(carry.learner.updates), "agents": self.world.agents}
        if point > 0:
            per_update = max(len(sums["grad_sq"]), 1)
            logged = SUMMED if self.config.algo.comm.log_jtd_error else SUMMED[:-1]
            record |= {k: float(sums[k]) / per_update for k in logged}
            record["grad_norm"] = float(np.sqrt(sums["grad_sq"]).sum()) / per_update
        self.run.truncate_metrics(point - 1)
        self.run.append_metrics([record])
        self.run.save_checkpoint(carry, point, {"elapsed": time.perf_counter() - self.tic})
        return carry, _zero_sums()

    def env_steps(self, state) -> int:
        return int(state[0].env_steps)

    def finish(self, state) -> None:
        """final_params.npz (its parameters, leaves without the agent axis) and summary.json
        (with push-sum: its message counts). Collective over the agents with exchange=async."""
        carry = state[0]
        comm = self.world.communicator
        if isinstance(comm, PushSumCommunicator):
            comm.close()
        flat = jax.tree_util.tree_flatten_with_path(carry.learner.params)[0]
        np.savez(self.run.path / "final_params.npz",
                 **{jax.tree_util.keystr(path): np.asarray(leaf[0]) for path, leaf in flat})
        self.run.write_json("summary.json", {
            "agent": self.index, "updates": int(carry.learner.updates),
            "env_steps": int(carry.env_steps), "episodes": int(carry.episodes),
            "live_agents": self.world.agents, "failures": self.world.failures,
            "floats_sent": int(comm.floats_sent), "exchange": self.config.algo.comm.exchange,
            **({"messages": comm.counts} if isinstance(comm, PushSumCommunicator) else {}),
            "wall_time_s": time.perf_counter() - self.tic})


# Per-update metrics summed over a chunk, in the order sent to the environment rank (then the
# squared gradient norm of every update).
SUMMED = ("loss", "q_taken", "mean_degree", "connected", "floats_sent", "jtd_error")


def _zero_sums() -> dict:
    return {**{k: 0.0 for k in SUMMED}, "grad_sq": []}


def _add_metrics(sums: dict, m: AgentMetrics) -> dict:
    out = {k: sums[k] + float(getattr(m, k)) for k in SUMMED}
    return out | {"grad_sq": [*sums["grad_sq"], float(m.grad_sq)]}


def _test_hang(agent: int, update: int) -> None:
    """The test hook of the module docstring: NETMARL_TEST_HANG=<agent>:<update>."""
    spec = os.environ.get("NETMARL_TEST_HANG", "")
    if spec and [int(v) for v in spec.split(":")] == [agent, update]:
        print(f"netmarl agent: agent {agent}: NETMARL_TEST_HANG: hanging before update {update}",
              file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
