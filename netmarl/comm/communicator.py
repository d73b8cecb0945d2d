"""Communicators: the one primitive networked agents use, `neighbor_allreduce`, with two backends.

specs/distributed.md. For consensus round k with the dense row-stochastic weights W⁽ᵏ⁾ [N, N] (drawn
identically on every process from the graph schedule), agent i computes

    mix(x, W)_i = Σ_j α_ij x_j = α_ii x_i + Σ_{j ∈ src_i} α_ij x_j,   src_i = {j ≠ i: α_ij > 0}

and sends x_i to dst_i = {j ≠ i: α_ji > 0} (for symmetric Metropolis weights src_i = dst_i).

- `LocalCommunicator` (simulation, the default): every agent in one process, x stacked on the agent
  axis [N, ...]; `mix` is `consensus(x, W)` = W @ x, all agents' neighbour all-reduces at once.
- `netmarl.comm.mpi.MPICommunicator` (deployment): one agent per process, x is its own value; `mix`
  calls `neighbor_allreduce` with row i of W over MPI (imported lazily: the package works without
  mpi4py).

Both give the same numbers: the MPI backend accumulates α_ij x_j in agent order j with fused
multiply-adds, as XLA's W @ x does on CPU (bit-identical for one consensus round).
"""
from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import jax
import numpy as np

from netmarl.comm.consensus import consensus

PyTree = Any


class RowWeights(NamedTuple):
    """Agent i's view of one round's W [N, N]: what it receives, with which weights, and whom it sends to."""

    self_weight: float  # α_ii
    src_weights: dict[int, float]  # {j: α_ij} over in-neighbours j ≠ i with α_ij > 0
    dst: list[int]  # out-neighbours j ≠ i with α_ji > 0 (they need x_i)


def row_weights(weights, agent: int) -> RowWeights:
    """Splits round weights W [N, N] (host array) into agent `agent`'s RowWeights."""
    w = np.asarray(weights, np.float32)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"weights must be [N, N], got shape {w.shape}")
    if not 0 <= agent < w.shape[0]:
        raise ValueError(f"agent {agent} is not in 0..{w.shape[0] - 1}")
    src = {j: float(w[agent, j]) for j in range(w.shape[0]) if j != agent and w[agent, j] > 0}
    dst = [j for j in range(w.shape[0]) if j != agent and w[j, agent] > 0]
    return RowWeights(float(w[agent, agent]), src, dst)


class Communicator(Protocol):
    """What the algorithms need from a network: one weighted neighbour exchange per round."""

    num_agents: int

    def mix(self, x: PyTree, weights) -> PyTree:
        """Σ_j α_ij x_j for this process's agent(s); weights W [N, N], the round's full matrix."""


class LocalCommunicator:
    """All N agents in one process (the simulator): x leaves [N, ...], mix = W @ x (jittable)."""

    def __init__(self, num_agents: int):
        self.num_agents = num_agents

    def mix(self, x: PyTree, weights) -> PyTree:
        return consensus(x, weights)

    def neighbor_allreduce(self, x: PyTree, agent: int, self_weight: float,
                           src_weights: dict[int, float]) -> PyTree:
        """Agent `agent`'s row only, from the stacked x [N, ...]: α_ii x_i + Σ_j α_ij x_j."""
        def reduce(leaf):
            terms = {agent: self_weight, **src_weights}
            return sum(w * leaf[j] for j, w in sorted(terms.items()))

        return jax.tree.map(reduce, x)


def flatten(tree: PyTree) -> tuple[np.ndarray, Any]:
    """Packs a pytree's leaves into one float32 host buffer [D] (one message per round)."""
    leaves, treedef = jax.tree.flatten(tree)
    shapes = [(np.shape(leaf), np.asarray(leaf).dtype) for leaf in leaves]
    buffer = np.concatenate([np.asarray(leaf, np.float32).ravel() for leaf in leaves]) if leaves \
        else np.zeros(0, np.float32)
    return buffer, (treedef, shapes)


def unflatten(buffer: np.ndarray, spec) -> PyTree:
    """Inverse of `flatten`: buffer [D] -> the pytree (leaves as host arrays of their dtypes)."""
    treedef, shapes = spec
    leaves, start = [], 0
    for shape, dtype in shapes:
        size = int(np.prod(shape, dtype=np.int64))
        leaves.append(np.asarray(buffer[start:start + size].reshape(shape), dtype))
        start += size
    return jax.tree.unflatten(treedef, leaves)


def weighted_sum(own: np.ndarray, agent: int, self_weight: float, received: dict[int, np.ndarray],
                 src_weights: dict[int, float]) -> np.ndarray:
    """α_ii x_i + Σ_j α_ij x_j, float32, bit-identical to XLA's W @ x on CPU.

    XLA accumulates the dot in agent order j with fused multiply-adds, acc ← fma(α_ij, x_j, acc);
    an fma of float32 operands is computed exactly in float64 and rounded once to float32."""
    terms = {agent: (self_weight, own), **{j: (src_weights[j], received[j]) for j in src_weights}}
    acc = np.zeros(own.shape, np.float32)
    for j in sorted(terms):
        w, x = terms[j]
        acc = (np.float64(np.float32(w)) * x.astype(np.float32).astype(np.float64)
               + acc.astype(np.float64)).astype(np.float32)
    return acc
