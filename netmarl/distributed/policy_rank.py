"""DG-MAPPO as real processes: the environment rank's and agent i's phases (docs/deployment.md).

    mpirun -n 4 --oversubscribe netmarl agent algo=dg_mappo env=... run.id=x

The environment rank is `EnvProcess` with the policy family's differences (`PolicyEnvProcess`):
every step's rows carry an "episode still running" flag (agents send no D-GAT messages for finished
episodes: nothing reads them), the tail's team column is Σ_j r_j (what the policy learner sums), an
iteration is always `epochs × minibatches` updates, and the team's record is rebuilt from the
agents' terms of PolicyMetrics. `PolicyAgentProcess` is agent i: per step it draws the step's graph
from the shared acting key (as collect_episode does), runs K D-GAT hops with its neighbours, acts
and sends its action; per iteration it learns from its view of the episodes (policy_learner.py).
Results in runs/<id>/agent_<i>/ as for DVDN's agents; summary.json counts the floats it sent.
"""
from __future__ import annotations

import functools
import os
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from netmarl.distributed.dgat_exchange import HopExchange
from netmarl.distributed.env_rank import EnvCarry, EnvProcess, EnvStats, eval_keys, initial_keys
from netmarl.distributed.policy_learner import AGENT_TERMS, WHOLE, AgentBatch, AgentPolicy

SUMMED = AGENT_TERMS + WHOLE
_NO_REPAIR = ("{who}: a peer failed; DG-MAPPO's processes do not continue without it (ULFM repair "
              "is implemented for dvdn, dvdn_gt and iql only)")


class PolicyEnvProcess(EnvProcess):
    """The environment rank of a DG-MAPPO deployment (see the module docstring)."""

    alive_column = True
    sums = len(SUMMED)

    def team_reward(self, ts) -> np.ndarray:
        return np.asarray(jnp.sum(ts.reward, -1))

    def regroup(self) -> None:
        raise RuntimeError(_NO_REPAIR.format(who="environment rank"))

    def updates(self, carry: EnvCarry, stored: int) -> int:
        p = self.config.algo.policy
        return p.epochs * p.minibatches

    def team_metrics(self, stats: EnvStats, rows: np.ndarray) -> dict:
        """The simulator's chunk means (PolicyMetrics but disagreement, which needs every ψ) from the
        agents' rows [N', len(SUMMED) + U]: terms summed over agents, whole values averaged."""
        per_update, k = max(stats.updates, 1.0), len(AGENT_TERMS)
        out = {"train_return": stats.return_sum / max(stats.episodes, 1.0)}
        out |= {name: float(rows[:, j].sum()) / per_update for j, name in enumerate(AGENT_TERMS)}
        out |= {name: float(rows[:, k + j].mean()) / per_update for j, name in enumerate(WHOLE)}
        out["grad_norm"] = float(np.sqrt(rows[:, len(SUMMED):].sum(0)).sum()) / per_update
        return out


class PolicyCarry(NamedTuple):
    """Agent i's share of the simulator's Carry (the policy family keeps no buffer)."""

    learner: object  # PolicyState, row i (actor / critic leaves [1, ...], ψ leaves [K, 1, ...])
    key: jax.Array  # [2] uint32, the training key stream (the same on every rank)
    eval_key: jax.Array
    env_steps: np.ndarray  # [] int32
    episodes: np.ndarray  # [] int32


@functools.partial(jax.jit, static_argnums=1)
def _keys(key: jax.Array, num_envs: int):
    """As Trainer.iteration: (next key, episode keys [E], learning key)."""
    key, k_collect, k_learn = jax.random.split(key, 3)
    return key, jax.random.split(k_collect, num_envs), k_learn


@jax.jit
def _chains(keys: jax.Array) -> jax.Array:
    """Each episode's step-key chain: (key_reset, key) = split(key), as collect_episode."""
    return jax.vmap(jax.random.split)(keys)[:, 1]


class PolicyAgentProcess:
    """Agent `agent.index` of a DG-MAPPO deployment; `world` connects it to the others."""

    def __init__(self, config, env, agent: AgentPolicy, world, run):
        self.config, self.env, self.agent, self.world, self.run = config, env, agent, world, run
        self.index = agent.index
        self.tic = time.perf_counter()
        agent.exchange = HopExchange(world.agents_comm, self.index, env.num_agents, world.timeout)
        agent.comm = world.communicator
        (run.path / "pid").write_text(str(os.getpid()))

    def regroup(self) -> None:
        raise RuntimeError(_NO_REPAIR.format(who=f"agent {self.index}"))

    def initial(self):
        k_learner, k_train, k_eval = initial_keys(self.config.run.seed)
        carry = PolicyCarry(self.agent.init(k_learner), k_train, k_eval, np.int32(0), np.int32(0))
        return carry, {"terms": [], "grad_sq": []}

    # --- one episode per environment, in lock step with the environment rank -------------------

    def episodes(self, params, keys: jax.Array, greedy: bool) -> AgentBatch:
        """Acts in len(keys) episodes (D-GAT hops with the neighbours at every step); its view."""
        num, steps = keys.shape[0], self.env.max_steps
        o, a = self.env.obs_dim, self.env.num_actions
        chain, h = _chains(keys), self.agent.initial_hidden(num)
        obs, avail, actions, graphs = [], [], [], []
        for t in range(steps + 1):
            row = self.world.scatter(None, (num, o + a + 1))
            obs.append(row[:, :o])
            avail.append(row[:, o:o + a] > 0.5)
            graph, k_act, chain = self.agent.graphs(chain)
            graphs.append(np.asarray(graph))
            if t == steps:  # the bootstrap observation's graph, from the last chain key
                break
            o_hat, _, _ = self.agent.hops(params, obs[-1], graphs[-1], row[:, -1] > 0.5)
            action, h = self.agent.act[greedy](params, jnp.asarray(obs[-1]), o_hat, h,
                                               jnp.asarray(avail[-1]), k_act)
            actions.append(np.asarray(action))
            self.world.gather(actions[-1], (num,), np.int32)
        tail = self.world.scatter(None, (num, steps, 4))
        return AgentBatch(obs=np.stack(obs, 1)[:, :, None], avail=np.stack(avail, 1)[:, :, None],
                          action=np.stack(actions, 1)[:, :, None], reward=tail[..., 0:1],
                          team=tail[..., 1], terminated=tail[..., 2] > 0.5,
                          filled=tail[..., 3] > 0.5, graph=np.stack(graphs, 1))

    # --- phases ----------------------------------------------------------------------------------

    def iterate(self, state):
        carry, sums = state
        key, collect, learn = _keys(carry.key, self.config.run.num_envs)
        self.agent.exchange.purpose = "act"
        batch = self.episodes(carry.learner.params, collect, greedy=False)
        self.agent.exchange.purpose = "learn"
        learner, terms, grad_sq = self.agent.learn(carry.learner, batch, learn, carry.env_steps)
        carry = PolicyCarry(learner, key, carry.eval_key,
                            np.int32(carry.env_steps + batch.filled.sum()),
                            np.int32(carry.episodes + self.config.run.num_envs))
        return carry, {"terms": sums["terms"] + terms, "grad_sq": sums["grad_sq"] + grad_sq}

    def evaluate(self, state, point: int):
        """Greedy evaluation episodes (the environment rank records the returns), its metrics."""
        carry, sums = state
        self.agent.exchange.purpose = "eval"
        self.episodes(carry.learner.params,
                      eval_keys(carry.eval_key, point, self.config.run.eval_episodes), greedy=True)
        terms = np.sum(sums["terms"], 0) if sums["terms"] else np.zeros(len(SUMMED))
        self.world.gather(np.array([*terms, *sums["grad_sq"]], np.float64),
                          (len(SUMMED) + len(sums["grad_sq"]),), np.float64)
        record = {"point": point, "seed": self.config.run.seed, "agent": self.index,
                  "env_steps": int(carry.env_steps), "episodes": int(carry.episodes),
                  "updates": int(carry.learner.updates)}
        if point > 0:
            per_update = max(len(sums["grad_sq"]), 1)
            record |= {name: float(v) / per_update for name, v in zip(SUMMED, terms)}
            record["grad_norm"] = float(np.sqrt(sums["grad_sq"]).sum()) / per_update
        self.run.truncate_metrics(point - 1)
        self.run.append_metrics([record])
        self.run.save_checkpoint(carry, point, {"elapsed": time.perf_counter() - self.tic})
        return carry, {"terms": [], "grad_sq": []}

    def env_steps(self, state) -> int:
        return int(state[0].env_steps)

    def finish(self, state) -> None:
        """final_params.npz (its actor, critic and ψ: leaves without the agent axis) and
        summary.json with the floats it sent: D-GAT hop messages (acting, evaluation, learning)
        and ψ averaging."""
        carry = state[0]
        params = carry.learner.params
        rows = {"actor": params["actor"], "critic": params["critic"],
                "dgat": jax.tree.map(lambda x: x[:, 0][None], params["dgat"])}  # [1, K, ...]
        flat = jax.tree_util.tree_flatten_with_path(rows)[0]
        np.savez(self.run.path / "final_params.npz",
                 **{jax.tree_util.keystr(path): np.asarray(leaf[0]) for path, leaf in flat})
        exchange, steps = self.agent.exchange, max(int(carry.env_steps), 1)
        floats = {**{f"dgat_{k}": v for k, v in exchange.floats.items()},
                  "psi_averaging": int(self.world.communicator.floats_sent)}
        self.run.write_json("summary.json", {
            "agent": self.index, "updates": int(carry.learner.updates),
            "env_steps": int(carry.env_steps), "episodes": int(carry.episodes),
            "live_agents": self.world.agents, "floats_sent": floats,
            "floats_sent_per_env_step": (sum(floats.values()) - floats["dgat_eval"]) / steps,
            "wall_time_s": time.perf_counter() - self.tic})
        exchange.free()
