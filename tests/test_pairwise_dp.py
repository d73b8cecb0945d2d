"""The cyclic max-plus DP of PairVDN (spec §2.3) against brute force and a port of the repo's tables."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netmarl.algos.value.pairwise import cyclic_max_plus, pair_max, pair_q_tot


def brute_force(grids: np.ndarray) -> float:
    """max over all A^N joint actions of Σ_i grids[i, a_i, a_{i+1 mod N}]."""
    n, a, _ = grids.shape
    return max(sum(grids[i, j[i], j[(i + 1) % n]] for i in range(n))
               for j in itertools.product(range(a), repeat=n))


def table_dp(grids: np.ndarray) -> tuple[list[int], float]:
    """The spec's D[a0, n, b] / P[a0, n, b] tables, step by step (first-index ties)."""
    n, a, _ = grids.shape
    D, P = np.zeros((a, n, a)), np.zeros((a, n, a), int)
    D[:, 1, :], P[:, 1, :] = grids[0], np.arange(a)[:, None]
    for k in range(2, n):
        cand = D[:, k - 1, :, None] + grids[k - 1][None]  # [a0, c, b]
        D[:, k, :], P[:, k, :] = cand.max(1), cand.argmax(1)
    closing = D[:, n - 1, :] + grids[n - 1].T  # [a0, c]
    score, ans = closing.max(1), closing.argmax(1)
    a0 = int(score.argmax())
    actions = [0] * n
    actions[n - 1] = int(ans[a0])
    for i in range(n - 2, -1, -1):
        actions[i] = int(P[a0, i + 1, actions[i + 1]])
    return actions, float(score[a0])


# One compiled function per (N, A) shape; integer grids in [0, 3) make many ties.
CASES = [(n, a) for n in range(2, 7) for a in range(2, 5)]


@pytest.mark.parametrize("n,a", CASES)
def test_dp_equals_brute_force_with_ties(n, a):
    rng = np.random.default_rng(100 * n + a)
    batch = np.concatenate([rng.integers(0, 3, (6, n, a, a)), rng.normal(size=(2, n, a, a))]).astype(np.float32)
    actions, values = jax.jit(pair_max)(jnp.asarray(batch))
    q_at_argmax = pair_q_tot(jnp.asarray(batch), actions)
    for b, grids in enumerate(batch):
        best = brute_force(grids.astype(np.float64))
        np.testing.assert_allclose(float(values[b]), best, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(float(q_at_argmax[b]), float(values[b]), rtol=1e-5, atol=1e-5)
        if b < 6:  # integer grids: exact, and the same argmax as the repo's tables
            ref_actions, ref_value = table_dp(grids.astype(np.float64))
            assert actions[b].tolist() == ref_actions and float(values[b]) == ref_value


def test_first_index_ties_and_hand_example():
    # all-zero grids: every joint action ties -> all zeros (first index everywhere)
    actions, value = cyclic_max_plus(jnp.zeros((4, 3, 3)))
    assert actions.tolist() == [0, 0, 0, 0] and float(value) == 0.0
    # N = 2: value = max_{a,b} G0[a,b] + G1[b,a]; G0[1,0] = 5, G1[0,1] = -1 -> 4 beats G0[0,0]+G1[0,0] = 3
    g = jnp.array([[[3.0, 0.0], [5.0, 0.0]], [[0.0, -1.0], [0.0, 0.0]]])
    actions, value = cyclic_max_plus(g)
    assert actions.tolist() == [1, 0] and float(value) == 4.0
    assert float(pair_q_tot(g, actions)) == 4.0


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"N >= 2.*\(1, 3, 3\)"):
        cyclic_max_plus(jnp.zeros((1, 3, 3)))
    with pytest.raises(ValueError, match=r"got shape \(4, 2, 3\)"):
        cyclic_max_plus(jnp.zeros((4, 2, 3)))
