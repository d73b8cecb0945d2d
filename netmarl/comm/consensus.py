"""Consensus: the one communication primitive, W @ x over the agent axis (specs/distributed.md).

In simulation every agent lives in one process and a consensus round is a product with the round's
weight matrix W [N, N] (row i = agent i's weights, non-zero only on its neighbours and itself):

    z_i ← Σ_j α_ij z_j      for every agent i at once,   z ← W z.

`consensus` is exactly N `neighbor_allreduce` calls in parallel, one per row of W: the MPI backend
implements `neighbor_allreduce` for its own agent with values received from its neighbours, and
must match `consensus`'s row i to float tolerance.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array
PyTree = Any


def _check_weights(weights: Array, ndim: int) -> None:
    if weights.ndim != ndim or weights.shape[-1] != weights.shape[-2]:
        kind = "[N, N]" if ndim == 2 else "[K, N, N]"
        raise ValueError(f"weights must be {kind}, got shape {weights.shape}")


def _mix_leaf(weights: Array, leaf: Array) -> Array:
    """W [N, N] @ leaf [N, ...] over the leading axis -> [N, ...]."""
    if leaf.ndim == 0 or leaf.shape[0] != weights.shape[0]:
        raise ValueError(f"leaf of shape {leaf.shape} has no leading agent axis of size {weights.shape[0]}")
    mixed = jnp.tensordot(weights, leaf, axes=(1, 0), precision=jax.lax.Precision.HIGHEST)
    return mixed.astype(leaf.dtype)


def consensus(x: PyTree, weights: Array) -> PyTree:
    """One consensus round: z_i = Σ_j α_ij x_j for every agent i, on every leaf of a pytree.

    Args:
      x: array [N, ...] or pytree whose leaves all have the leading agent axis N.
      weights: W [N, N], row-stochastic (Metropolis weights are also symmetric).

    Returns:
      W @ x over the agent axis, same structure, shapes and dtypes as `x`.

    Example:
      >>> consensus(jnp.array([0., 3.]), jnp.full((2, 2), 0.5))
      Array([1.5, 1.5], dtype=float32)
    """
    weights = jnp.asarray(weights)
    _check_weights(weights, 2)
    return jax.tree.map(lambda leaf: _mix_leaf(weights, leaf), x)


def consensus_rounds(x: PyTree, weights: Array) -> PyTree:
    """K consensus rounds in order: z⁽ᴷ⁾ = W⁽ᴷ⁾ ⋯ W⁽¹⁾ x (specs/dvdn.md, eq. 2).

    Args:
      x: array [N, ...] or pytree of such arrays (z⁽⁰⁾).
      weights: Ws [K, N, N]; Ws[k − 1] = W⁽ᵏ⁾ is applied in round k. K = 0 returns x.

    Returns:
      z⁽ᴷ⁾, same structure as `x`.
    """
    weights = jnp.asarray(weights)
    _check_weights(weights, 3)
    z, _ = jax.lax.scan(lambda z, w: (consensus(z, w), None), x, weights)
    return z


def neighbor_allreduce(x_i: PyTree, self_weight: Array | float, neighbor_values: PyTree,
                       neighbor_weights: Array) -> PyTree:
    """Agent i's side of one round: α_ii x_i + Σ_m α_{i j_m} x_{j_m} over its M neighbours j_m.

    The per-agent form that an MPI backend implements (x_{j_m} arrive from the neighbours);
    `consensus(x, W)` is exactly N of these in parallel, with self_weight = W[i, i] and
    neighbor_weights = W[i, j_m].

    Args:
      x_i: agent i's value, array [...] or pytree.
      self_weight: α_ii, scalar.
      neighbor_values: the neighbours' values, same structure as x_i with leaves [M, ...].
      neighbor_weights: [α_{i j_1}, …, α_{i j_M}], [M].

    Returns:
      Σ_j α_ij x_j, same structure and shapes as `x_i`.
    """
    neighbor_weights = jnp.asarray(neighbor_weights)
    assert neighbor_weights.ndim == 1, f"neighbor_weights must be [M], got {neighbor_weights.shape}"

    def reduce(own: Array, others: Array) -> Array:
        assert others.shape == (neighbor_weights.shape[0], *own.shape), (others.shape, own.shape)
        received = jnp.tensordot(neighbor_weights, others, axes=(0, 0),
                                 precision=jax.lax.Precision.HIGHEST)
        return (self_weight * own + received).astype(own.dtype)

    return jax.tree.map(reduce, x_i, neighbor_values)


def jtd_estimate(delta: Array, weights: Array) -> Array:
    """Network-estimated joint TD: Δ̂ = N · W⁽ᴷ⁾ ⋯ W⁽¹⁾ δ (specs/dvdn.md, eq. 2 and 4a).

    Each agent's estimate of Σ_j δ_j after K consensus rounds on its TD. With doubly-stochastic W
    the mean of Δ̂ is exactly Σ_j δ_j, and Δ̂_i → Σ_j δ_j as K grows on connected graphs. Matches the
    team-TD signature `fn(delta [N], weights) -> [N]` of netmarl/algos/value/team_td.py.

    Args:
      delta: per-agent TD errors δ [N] (or [N, ...], e.g. one column per transition).
      weights: Ws [K, N, N].

    Returns:
      Δ̂ [N] (same shape as `delta`).

    Example:
      >>> jtd_estimate(jnp.array([1., 2., 3.]), jnp.full((1, 3, 3), 1 / 3))
      Array([6., 6., 6.], dtype=float32)
    """
    delta = jnp.asarray(delta)
    return delta.shape[0] * consensus_rounds(delta, weights)
