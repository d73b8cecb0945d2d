"""What the agents see: the registered agent inputs of the actor-critic family (algo.policy.agent_input).

    local   x_i = o_i                  every algorithm but DG-MAPPO; no parameters, no messages
    dgat    x_i = õ_i = [o_i ‖ ô_i]    DG-MAPPO (seeds/dg_mappo_distributed_graph_attention.txt, eq. 13):
                                       ô_i from K hops of distributed graph attention (nets/dgat.py) over
                                       the step's communication graph, with agent i's own ψ^i

Actors read x_i; critics read their critic input (critics.py) built on x in place of o. An input
owns its parameters (none for `local`), the graph of each env step (a pure function of the step's
acting key, stored in the episode so that learning sees the graphs acting saw), its extra loss
(DG-MAPPO's consensus regulariser, eq. 11) and the averaging of its parameters after every update
(D-SGD's neighbour averaging, eq. 9–10).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from netmarl.comm import degree_weights, make_schedule, metropolis_weights
from netmarl.config import AlgoConfig
from netmarl.envs.core import Environment
from netmarl.nets import dgat as D

Array = jax.Array


class InputStats(NamedTuple):
    """Per-step diagnostics of the agent input over an episode, leaves [T+1] (zero for `local`)."""

    consensus: Array  # mean over agents of (1/|N^i|) Σ_{j ∈ N^i} MSE(ĥ^i, ĥ^j) (eq. 11 without α)
    attention_entropy: Array  # mean entropy of the attention rows over hops and agents (nats)
    floats_sent: Array  # mean floats an agent sends in the step (hop features to its neighbours)
    mean_degree: Array  # mean degree of the step's graph


def masked_mean(x: Array, filled: Array) -> Array:
    """Mean of per-step values x [..., T+1] over the filled steps (filled [..., T])."""
    mask = jnp.pad(filled, [(0, 0)] * (filled.ndim - 1) + [(0, 1)]).astype(jnp.float32)
    return (x * mask).sum() / jnp.maximum(mask.sum(), 1.0)


class LocalInput:
    """x_i = o_i."""

    trainable = False

    def __init__(self, config: AlgoConfig, env: Environment):
        self.dim = env.obs_dim

    def init(self, key: Array):
        return None

    def graph(self, key: Array):
        return None

    def apply(self, params, obs: Array, graph) -> Array:
        """obs [N, O] -> x [N, O]."""
        return obs

    def sequence(self, params, obs: Array, graph) -> tuple[Array, InputStats]:
        """obs [T+1, N, O] -> (x [T+1, N, O], zero stats [T+1])."""
        return obs, InputStats(*(jnp.zeros(obs.shape[0]) for _ in InputStats._fields))

    def penalty(self, stats: InputStats, filled: Array) -> Array:
        """The input's extra loss (none)."""
        return jnp.float32(0.0)

    def average(self, params, key: Array):
        return params


class DGATInput:
    """x_i = [o_i ‖ ô_i], ô from K D-GAT hops (K = algo.dgat.hops, 0: the number of agents)."""

    trainable = True

    def __init__(self, config: AlgoConfig, env: Environment):
        c, g = config.dgat, config.comm
        self.config, self.obs_dim = c, env.obs_dim
        self.hops = c.hops or env.num_agents
        self.dim = 2 * env.obs_dim
        self.schedule = make_schedule(g.topology, env.num_agents, g.p_drop, g.connected, g.mode,
                                      g.num_edges, g.seed)

    def init(self, key: Array) -> D.DGATParams:
        return D.init_dgat(key, self.schedule.num_agents, self.obs_dim, self.config.width, self.hops)

    def graph(self, key: Array) -> Array:
        """The communication graph of one env step, [N, N] bool, from the step's acting key."""
        return self.schedule.sample_graph(jax.random.fold_in(key, 0x6A7), 0)

    def apply(self, params: D.DGATParams, obs: Array, graph: Array) -> Array:
        """obs [N, O], graph [N, N] -> õ [N, 2·O] (messages as received values: local gradients)."""
        o_hat, _ = D.dgat(params, obs, graph, self.config.activation, local=True)
        return jnp.concatenate([obs, o_hat], -1)

    def sequence(self, params: D.DGATParams, obs: Array, graph: Array) -> tuple[Array, InputStats]:
        """obs [T+1, N, O], graph [T+1, N, N] -> (õ [T+1, N, 2·O], per-step stats [T+1])."""
        def step(o, g):
            o_hat, alphas = D.dgat(params, o, g, self.config.activation, local=True)
            stats = InputStats(D.consensus_loss(o_hat, g).mean(), D.attention_entropy(alphas),
                               D.message_floats(self.obs_dim, self.hops, g).mean(), g.sum(-1).mean())
            return o_hat, stats

        o_hat, stats = jax.vmap(step)(obs, graph)
        return jnp.concatenate([obs, o_hat], -1), stats

    def penalty(self, stats: InputStats, filled: Array) -> Array:
        """α_consensus × the consensus regulariser (eq. 11), mean over the filled steps and agents."""
        return self.config.alpha_consensus * masked_mean(stats.consensus, filled)

    def average(self, params: D.DGATParams, key: Array) -> D.DGATParams:
        """D-SGD's averaging step (eq. 9) over the update's graph, drawn from `key`."""
        if self.config.averaging == "none":
            return params
        adj = self.schedule.sample_graph(key, 0)
        weights = degree_weights(adj) if self.config.averaging == "degree" else metropolis_weights(adj)
        return D.neighbour_average(params, weights)


AGENT_INPUTS = {"local": LocalInput, "dgat": DGATInput}
