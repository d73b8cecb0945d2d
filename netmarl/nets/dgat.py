"""Distributed graph attention, D-GAT (seeds/dg_mappo_distributed_graph_attention.txt, §3.1).

Every agent i holds its own attention parameters ψ^i = {W_k^i, q_k^i : k = 1 … K}, one pair per hop.
Hop k updates every agent's feature h^i [D] from its closed neighbourhood N^i (its neighbours in the
round's graph and itself) with GATv2 scoring (eq. 7) and σ-aggregation (eq. 8):

    e_ij  = q_k^iᵀ LeakyReLU(W_k^i [h^i ‖ h^j])                    j ∈ N^i
    α_ij  = exp(e_ij) / Σ_{j' ∈ N^i} exp(e_ij'),   α_ij = 0 for j ∉ N^i
    h'^i  = σ(Σ_{j ∈ N^i} α_ij h^j)

h_0^i = o^i, and after K hops (default: the number of agents, so information crosses any connected
graph) ô^i = h_K^i is agent i's inference of the global state; DG-MAPPO's actor and critic see
õ^i = [o^i ‖ ô^i] (eq. 13). Eq. 8 aggregates the neighbours' features without a value projection and
we follow it, so D = O throughout. Agent i computes its row from what its neighbours sent (h^j of the
previous hop) and its own ψ^i only: `dgat` evaluates all N rows at once, and an MPI agent evaluates
its own row with `hop_row` (the same arithmetic).

Training (eq. 9–11): a local gradient step on ψ^i, then neighbour averaging ψ^i ← Σ_j c(i, j) ψ^j with
c(i, j) = 1 / |N^i| (`netmarl.comm.degree_weights`, one `consensus` call), and the consensus
regulariser α_consensus · (1/|N^i|) Σ_{j ∈ N^i} MSE(ĥ^i, ĥ^j) with the neighbours' ĥ^j as received
values (no gradient flows into another agent's parameters).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from netmarl.comm.consensus import consensus

Array = jax.Array
ACTIVATIONS = {"elu": jax.nn.elu, "tanh": jnp.tanh, "relu": jax.nn.relu}


class DGATParams(NamedTuple):
    """ψ of every agent, stacked on the agent axis N (K hops, features D, attention width D')."""

    w: Array  # W [K, N, D', 2D]: row i projects [h^i ‖ h^j]
    q: Array  # q [K, N, D']: agent i's scoring vector


def init_dgat(key: Array, num_agents: int, dim: int, width: int, hops: int) -> DGATParams:
    """Glorot-uniform W and q for N agents and K hops, each agent's drawn independently."""
    k_w, k_q = jax.random.split(key)
    glorot = jax.nn.initializers.glorot_uniform(in_axis=-1, out_axis=-2)
    w = glorot(k_w, (hops, num_agents, width, 2 * dim))
    q = glorot(k_q, (hops, num_agents, 1, width))[:, :, 0]
    return DGATParams(w, q)


def closed_neighbourhood(adj: Array) -> Array:
    """N^i including i: adj [N, N] bool -> [N, N] bool with a true diagonal."""
    return jnp.asarray(adj, bool) | jnp.eye(adj.shape[-1], dtype=bool)


def received(h: Array, local: bool = False) -> Array:
    """What each agent aggregates: h [N, D] -> views [N, N, D], row i = the features agent i holds
    (its own h^i on the diagonal, its neighbours' h^j as sent). With `local`, the neighbours' are
    received values (stop-gradient): a loss of agent i then trains only ψ^i, as a local D-SGD step
    computed by agent i alone does; its own path through the hops keeps its gradient."""
    views = jnp.broadcast_to(h[None], (h.shape[0], *h.shape))
    if not local:
        return views
    eye = jnp.eye(h.shape[0], dtype=bool)[:, :, None]
    return jnp.where(eye, h[:, None], jax.lax.stop_gradient(views))


def scores(w_k: Array, q_k: Array, views: Array) -> Array:
    """Eq. 7 for every pair: W [N, D', 2D], q [N, D'], views [N, N, D] (`received`) -> e [N, N]."""
    dim = views.shape[-1]
    n = views.shape[0]
    own = jnp.einsum("ipc,ic->ip", w_k[:, :, :dim], views[jnp.arange(n), jnp.arange(n)])  # W_own^i h^i
    other = jnp.einsum("ipc,ijc->ijp", w_k[:, :, dim:], views)  # W_other^i h^j [N, N, D']
    return jnp.einsum("ijp,ip->ij", jax.nn.leaky_relu(own[:, None] + other, 0.2), q_k)


def attention(w_k: Array, q_k: Array, views: Array, adj: Array) -> Array:
    """Eq. 8's weights: softmax of the scores over each closed neighbourhood, 0 off the graph.
    -> α [N, N], rows summing to one."""
    mask = closed_neighbourhood(adj)
    e = jnp.where(mask, scores(w_k, q_k, views), -jnp.inf)
    return jnp.where(mask, jax.nn.softmax(e, axis=-1), 0.0)


def hop(w_k: Array, q_k: Array, h: Array, adj: Array, activation: str = "elu",
        local: bool = False) -> tuple[Array, Array]:
    """One D-GAT layer for every agent: h [N, D] -> (h' [N, D], α [N, N])."""
    views = received(h, local)
    alpha = attention(w_k, q_k, views, adj)
    return ACTIVATIONS[activation](jnp.einsum("ij,ijc->ic", alpha, views)), alpha


def hop_row(w_i: Array, q_i: Array, h_i: Array, h_neighbours: Array,
            activation: str = "elu") -> tuple[Array, Array]:
    """Agent i's side of one hop, from its own feature and the M features its neighbours sent.
    W [D', 2D], q [D'], h_i [D], h_neighbours [M, D] -> (h'^i [D], α [1 + M]: self first)."""
    h = jnp.concatenate([h_i[None], h_neighbours])  # [1 + M, D]
    own = w_i[:, :h_i.shape[-1]] @ h_i
    e = jax.nn.leaky_relu(own[None] + h @ w_i[:, h_i.shape[-1]:].T, 0.2) @ q_i
    alpha = jax.nn.softmax(e)
    return ACTIVATIONS[activation](alpha @ h), alpha


def dgat(params: DGATParams, obs: Array, adj: Array, activation: str = "elu",
         local: bool = False) -> tuple[Array, Array]:
    """K hops from h_0 = o: obs [N, D], adj [N, N] or per hop [K, N, N] -> (ô [N, D], α [K, N, N]).
    `local`: gradients stay with their agent (see `received`); the values are the same."""
    hops = params.w.shape[0]
    adj = jnp.broadcast_to(jnp.asarray(adj, bool), (hops, *obs.shape[:1] * 2))

    def layer(h, xs):
        w_k, q_k, adj_k = xs
        return hop(w_k, q_k, h, adj_k, activation, local)

    o_hat, alphas = jax.lax.scan(layer, obs, (params.w, params.q, adj))
    return o_hat, alphas


def neighbour_average(params: DGATParams, weights: Array) -> DGATParams:
    """Eq. 9's averaging step ψ^i ← Σ_j c(i, j) ψ^j: one consensus round over the agent axis
    (weights C [N, N], e.g. `degree_weights(adj)`)."""
    return DGATParams(*(jnp.moveaxis(consensus(jnp.moveaxis(x, 1, 0), weights), 0, 1) for x in params))


def consensus_loss(o_hat: Array, adj: Array) -> Array:
    """Eq. 11 without α: (1/|N^i|) Σ_{j ∈ N^i} MSE(ĥ^i, ĥ^j) per agent, the neighbours' ĥ^j taken as
    received values (stop-gradient). o_hat [..., N, D], adj [N, N] -> [..., N]."""
    mask = closed_neighbourhood(adj)
    received = jax.lax.stop_gradient(o_hat)
    mse = ((o_hat[..., :, None, :] - received[..., None, :, :]) ** 2).mean(-1)  # [..., N, N]
    return jnp.where(mask, mse, 0.0).sum(-1) / mask.sum(-1)


# --- diagnostics, logged per chunk as DVDN's are --------------------------------------------------


def disagreement(params: DGATParams) -> Array:
    """Mean over W and q of mean_i ‖ψ^i − ψ̄‖² (agent axis 1): 0 iff all agents agree."""
    def leaf(x):
        return ((x - x.mean(1, keepdims=True)) ** 2).sum(axis=tuple(a for a in range(x.ndim) if a != 1)).mean()
    return jnp.mean(jnp.stack([leaf(x) for x in params]))


def attention_entropy(alphas: Array) -> Array:
    """Mean entropy of the attention rows α [..., N, N] (0·log 0 = 0)."""
    return -jnp.where(alphas > 0, alphas * jnp.log(jnp.where(alphas > 0, alphas, 1.0)), 0.0).sum(-1).mean()


def message_floats(dim: int, hops: int, adj: Array, params: DGATParams | None = None) -> Array:
    """Floats agent i sends per environment step: its feature h^i to each neighbour at each hop
    (K · D · d_i), plus, when `params` are given, ψ^i to each neighbour for the averaging step.
    -> [N]"""
    degree = jnp.asarray(adj, bool).sum(-1)
    psi = 0 if params is None else sum(x[:, 0].size for x in params)
    return degree * (hops * dim + psi)
