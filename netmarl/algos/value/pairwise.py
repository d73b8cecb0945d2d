"""PairVDN's pairwise decomposition on a cycle and its exact maximisation (specs/pairvdn_boxjump.md §2).

The joint value is a sum of pair terms around a directed cycle over the agents (in local order)::

    Q_tot(a) = Σ_{i=0}^{N-1} G_i[a_i, a_{(i+1) mod N}],        G = grids [N, A, A]

Maximising it is a max-plus matrix chain: with (X ⊗ Y)[p, r] = max_q X[p, q] + Y[q, r],
max_a Q_tot(a) = max_p (G_0 ⊗ G_1 ⊗ … ⊗ G_{N-1})[p, p] (the max-plus trace), O(N·A³) time.
Pure functions; leading batch axes are handled by vmap.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def pair_q_tot(grids: Array, actions: Array) -> Array:
    """Q_tot of one joint action: Σ_i grids[i, a_i, a_{i+1 mod N}] (spec §2.2 "Evaluate").

    Args:
      grids: [..., N, A, A] pair values; entry [i, p, q] = Q_i(a_i = p, a_{i+1} = q).
      actions: [..., N] integer actions in local (cycle) order.
    Returns:
      [...] the joint value.

    Example:
      >>> g = jnp.zeros((3, 2, 2)).at[:, 1, 1].set(1.0)
      >>> float(pair_q_tot(g, jnp.array([1, 1, 1])))
      3.0
    """
    assert grids.ndim >= 3 and grids.shape[-1] == grids.shape[-2], f"grids {grids.shape} not [..., N, A, A]"
    assert actions.shape == grids.shape[:-2], f"actions {actions.shape} vs grids {grids.shape}"
    nxt = jnp.roll(actions, -1, axis=-1)
    picked = jnp.take_along_axis(grids, actions[..., None, None], axis=-2)[..., 0, :]  # [..., N, A]
    return jnp.take_along_axis(picked, nxt[..., None], axis=-1)[..., 0].sum(-1)


def cyclic_max_plus(grids: Array) -> tuple[Array, Array]:
    """Exact argmax and max of Q_tot on one cycle by dynamic programming (spec §2.3).

    D_n[a0, b] = max_c D_{n-1}[a0, c] + G_{n-1}[c, b] with D_1 = G_0 (a `lax.scan`, back-pointers
    kept), closed by score[a0] = max_c D_{N-1}[a0, c] + G_{N-1}[c, a0]; then a0* = argmax score and
    the actions are read back along the pointers. Ties go to the first index (`jnp.argmax`), as in
    the reference implementation.

    Args:
      grids: [N, A, A] pair values in local order, N >= 2 (a batch: vmap, or use `pair_max`).
    Returns:
      (actions [N] int32, the greedy joint action; value [] = Q_tot(actions) = max_a Q_tot(a)).

    Example:
      >>> g = jnp.zeros((2, 2, 2)).at[0, 0, 1].set(2.0).at[1, 1, 0].set(1.0)
      >>> a, v = cyclic_max_plus(g)
      >>> a.tolist(), float(v)
      ([0, 1], 3.0)
    """
    n, a, a2 = grids.shape
    if n < 2 or a != a2:
        raise ValueError(f"cyclic_max_plus needs grids [N >= 2, A, A], got shape {grids.shape}")

    def forward(table, grid):  # table [start, current] -> [start, next]
        cand = table[:, :, None] + grid[None, :, :]  # [start, current c, next b]
        return cand.max(1), cand.argmax(1).astype(jnp.int32)

    table, back = jax.lax.scan(forward, grids[0], grids[1:-1])  # back [N-2, start, b] -> a_{n-1}
    closing = table + grids[-1].T  # [a0, c] = D_{N-1}[a0, c] + G_{N-1}[c, a0]
    score, last = closing.max(1), closing.argmax(1).astype(jnp.int32)
    a0 = jnp.argmax(score).astype(jnp.int32)

    def backward(a_next, pointers):  # pointers [start, b]: a_i = P[a0, i+1, a_{i+1}]
        a_i = pointers[a0, a_next]
        return a_i, a_i

    _, middle = jax.lax.scan(backward, last[a0], back, reverse=True)  # a_1 .. a_{N-2}
    actions = jnp.concatenate([a0[None], middle, last[a0][None]])
    return actions, score[a0]


def pair_max(grids: Array) -> tuple[Array, Array]:
    """`cyclic_max_plus` over any leading batch axes: grids [..., N, A, A] -> ([..., N], [...])."""
    fn = cyclic_max_plus
    for _ in range(grids.ndim - 3):
        fn = jax.vmap(fn)
    return fn(grids)
