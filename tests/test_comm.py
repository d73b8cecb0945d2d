"""Graphs, Metropolis weights, consensus and gradient tracking (specs/dvdn.md invariants 1, 4, 5, 6)."""
import collections

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from netmarl.comm import (
    TOPOLOGIES,
    GraphSchedule,
    build_topology,
    consensus,
    consensus_rounds,
    gradient_tracking,
    is_connected,
    jtd_estimate,
    make_schedule,
    mean_degree,
    metropolis_weights,
    mix_params,
    neighbor_allreduce,
    ring,
    with_gradient_tracking,
)

KEY = jax.random.key(0)
NUM_AGENTS = (3, 6)  # several N; kept tiny (one compile per topology and N)
OPTIONS = {"random_geometric": {"radius": 0.8}, "erdos_renyi": {"prob": 0.7}}
RING = make_schedule("ring", 5, p_drop=0.5, connected=True)  # shared by several tests
RING_ROUNDS = jax.jit(RING.sample_rounds, static_argnums=2)  # (key, step, K) -> [K, 5, 5], one compile


def topology_options(name: str, n: int) -> dict:
    return {"adjacency": np.asarray(ring(n))} if name == "user" else OPTIONS.get(name, {})


def bfs_connected(adj: np.ndarray) -> bool:
    """Oracle: breadth-first search from agent 0."""
    seen, queue = {0}, collections.deque([0])
    while queue:
        for j in np.flatnonzero(adj[queue.popleft()]):
            if j not in seen:
                seen.add(int(j))
                queue.append(int(j))
    return len(seen) == len(adj)


def assert_metropolis(adj: np.ndarray, w: np.ndarray) -> None:
    """Invariant 1: symmetric, non-negative, doubly stochastic, zero off the realised graph."""
    np.testing.assert_array_equal(adj, np.swapaxes(adj, -1, -2))
    assert not np.diagonal(adj, axis1=-2, axis2=-1).any()
    np.testing.assert_array_equal(w, np.swapaxes(w, -1, -2))
    assert (w >= 0).all()
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(w.sum(-2), 1.0, atol=1e-6)
    off_graph = ~adj & ~np.eye(adj.shape[-1], dtype=bool)
    assert (w[off_graph] == 0).all()


# ----------------------------------------------------------------------------- registry contract
def test_unknown_topology_lists_accepted_names():
    with pytest.raises(ValueError, match="unknown topology 'torus'.*complete.*erdos_renyi"):
        build_topology("torus", 4)


@pytest.mark.parametrize("n", NUM_AGENTS)
@pytest.mark.parametrize("name", list(TOPOLOGIES))
def test_contract_every_topology(name, n):
    schedule = make_schedule(name, n, p_drop=0.5, connected=False, **topology_options(name, n))
    base = np.asarray(schedule.base)
    assert base.shape == (n, n) and base.dtype == bool and not base.diagonal().any()
    np.testing.assert_array_equal(base, base.T)

    # One flat vmap over 3 keys x 8 rounds (one compile per topology and N).
    keys, rounds = jnp.repeat(jax.random.split(KEY, 3), 8), jnp.tile(jnp.arange(8), 3)
    sample = jax.jit(jax.vmap(schedule.sample))
    adj, w = (np.asarray(a).reshape(3, 8, n, n) for a in sample(keys, rounds))
    assert w.dtype == np.float32
    assert_metropolis(adj, w)
    assert not (adj & ~base).any()  # only base links
    # Determinism: a graph depends only on its (key, round), not on the call or the batch position.
    perm = np.random.default_rng(0).permutation(24)
    adj_p, w_p = sample(keys[perm], rounds[perm])
    np.testing.assert_array_equal(adj_p, adj.reshape(24, n, n)[perm])
    np.testing.assert_array_equal(w_p, w.reshape(24, n, n)[perm])
    if schedule.num_base_edges >= 2:  # different rounds / keys -> different graphs
        assert len({a.tobytes() for a in adj[0]}) > 1
        assert len({a.tobytes() for a in adj[:, 0]}) > 1


def test_base_topologies_by_hand():
    # line 0-1-2, star centre 0, grid N = 6 -> 2 x 3: 0-1-2 / 3-4-5 with columns 0-3, 1-4, 2-5.
    np.testing.assert_array_equal(build_topology("line", 3), [[0, 1, 0], [1, 0, 1], [0, 1, 0]])
    np.testing.assert_array_equal(build_topology("star", 3), [[0, 1, 1], [1, 0, 0], [1, 0, 0]])
    grid = np.asarray(build_topology("grid", 6))
    assert grid.sum() // 2 == 7 and grid[0, 3] and grid[2, 5] and not grid[2, 3]
    assert np.asarray(build_topology("complete", 4)).sum() == 12  # 4 · 3 directed entries
    np.testing.assert_array_equal(build_topology("ring", 2), [[0, 1], [1, 0]])
    np.testing.assert_allclose(mean_degree(build_topology("ring", 5)), 2.0)


def test_metropolis_three_node_line_by_hand():
    # Degrees (1, 2, 1): α_01 = α_12 = 1 / (1 + max(1, 2)) = 1/3; α_00 = α_22 = 1 − 1/3 = 2/3;
    # α_11 = 1 − 1/3 − 1/3 = 1/3; α_02 = 0 (no link).
    w = metropolis_weights(build_topology("line", 3))
    np.testing.assert_allclose(w, [[2 / 3, 1 / 3, 0], [1 / 3, 1 / 3, 1 / 3], [0, 1 / 3, 2 / 3]], rtol=1e-6)
    # Complete graph: α_ij = 1 / (1 + (N − 1)) = 1/N everywhere, i.e. W = 11ᵀ/N.
    np.testing.assert_allclose(metropolis_weights(build_topology("complete", 4)), np.full((4, 4), 0.25))


# ----------------------------------------------------------------------------- graph schedules
def test_is_connected_matches_bfs_oracle():
    schedule = make_schedule("complete", 6, p_drop=0.6, connected=False)
    adj = np.asarray(jax.vmap(schedule.sample_graph, (None, 0))(KEY, jnp.arange(200)))
    got = np.asarray(jax.jit(jax.vmap(is_connected))(adj))
    want = np.array([bfs_connected(a) for a in adj])
    np.testing.assert_array_equal(got, want)
    assert 0 < want.sum() < len(want)  # both cases occur


def test_connected_schedule_only_gives_connected_graphs():
    # Complete N = 6 with p_drop = 0.75: most raw draws are disconnected, so most rounds redraw.
    schedule = make_schedule("complete", 6, p_drop=0.75, connected=True)
    adj = np.asarray(jax.jit(jax.vmap(schedule.sample_graph, (None, 0)))(KEY, jnp.arange(300)))
    assert all(bfs_connected(a) for a in adj)
    assert len({a.tobytes() for a in adj}) > 100  # not stuck on the base-graph fallback
    assert adj.sum() / 2 / 300 < 7  # few links kept (the base has 15): truly sparse graphs


def test_dropout_frequency_matches_one_minus_p_drop():
    # Complete N = 6: 15 links x 400 rounds = 6,000 Bernoulli(0.7) draws; sd = √(0.21 / 6000) ≈ 0.006.
    schedule = make_schedule("complete", 6, p_drop=0.3, connected=False)
    adj = np.asarray(jax.jit(jax.vmap(schedule.sample_graph, (None, 0)))(KEY, jnp.arange(400)))
    kept = adj[:, np.triu_indices(6, 1)[0], np.triu_indices(6, 1)[1]].mean()
    assert abs(kept - 0.7) < 0.025
    assert abs(np.asarray(mean_degree(adj)).mean() - 0.7 * 5) < 0.15  # E[degree] = (1 − p) (N − 1)


def test_edges_mode_draws_exactly_e_edges():
    schedule = make_schedule("complete", 5, mode="edges", num_edges=6, connected=True)
    adj = np.asarray(jax.jit(jax.vmap(schedule.sample_graph, (None, 0)))(KEY, jnp.arange(100)))
    assert (adj.sum((1, 2)) == 12).all() and all(bfs_connected(a) for a in adj)
    assert len({a.tobytes() for a in adj}) > 10


def test_sample_rounds_are_consecutive_rounds():
    ws = RING_ROUNDS(KEY, 3, 6)  # step 3 with K = 6: consensus rounds 18, …, 23
    assert ws.shape == (6, 5, 5)
    np.testing.assert_array_equal(ws[2], jax.jit(RING.sample)(KEY, 20)[1])
    assert len({np.asarray(w).tobytes() for w in ws}) > 1  # fresh graphs within a step
    assert hash(RING) == hash(make_schedule("ring", 5, p_drop=0.5))  # static-arg friendly


@pytest.mark.parametrize("p_drop", [-0.1, 1.0, 1.5])
def test_bad_p_drop_raises_naming_value(p_drop):
    with pytest.raises(ValueError, match=f"p_drop must be in \\[0, 1\\), got {p_drop}"):
        make_schedule("ring", 4, p_drop=p_drop)


def test_validation_errors():
    two_pairs = [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]
    with pytest.raises(ValueError, match="disconnected"):
        make_schedule("user", 4, connected=True, adjacency=two_pairs)
    make_schedule("user", 4, connected=False, adjacency=two_pairs)  # allowed: joint connectivity
    with pytest.raises(ValueError, match="num_edges <= 4"):
        make_schedule("ring", 4, mode="edges", num_edges=5)
    with pytest.raises(ValueError, match="num_edges >= N - 1"):
        make_schedule("ring", 4, mode="edges", num_edges=2, connected=True)
    with pytest.raises(ValueError, match="only used with mode='edges'"):
        make_schedule("ring", 4, num_edges=2)
    with pytest.raises(ValueError, match="unknown graph mode"):
        make_schedule("ring", 4, mode="push")
    with pytest.raises(ValueError, match="symmetric"):
        GraphSchedule(((False, True), (False, False)))
    with pytest.raises(ValueError, match="zero diagonal"):
        GraphSchedule(((True, True), (True, False)))
    with pytest.raises(ValueError, match="square"):
        make_schedule("user", 2, adjacency=[[0, 1, 0], [1, 0, 1]])
    with pytest.raises(ValueError, match="num_agents=3"):
        make_schedule("user", 3, adjacency=[[0, 1], [1, 0]])


# ----------------------------------------------------------------------------- consensus
def test_consensus_preserves_mean_and_converges_on_ring():
    n, rounds = 8, 200
    schedule = make_schedule("ring", n, p_drop=0.5, connected=True)
    ws = jax.jit(schedule.sample_rounds, static_argnums=2)(KEY, 0, rounds)
    delta = jax.random.normal(jax.random.key(1), (n,))
    z = jax.jit(consensus_rounds)(delta, ws[:3])
    np.testing.assert_allclose(z.mean(), delta.mean(), atol=1e-6)  # invariant 4: mean kept
    estimate = jax.jit(jtd_estimate)(delta, ws)  # N · z⁽²⁰⁰⁾ -> Σ δ
    assert np.abs(estimate - delta.sum()).max() < 1e-3


def test_consensus_on_pytrees_and_round_order():
    # W1 averages agents 0, 1; W2 averages agents 1, 2. x = (3, 0, 6):
    # W1 x = (1.5, 1.5, 6), then W2 -> (1.5, 3.75, 3.75); W2 first would give (3, 3, 3).
    w1 = jnp.array([[0.5, 0.5, 0], [0.5, 0.5, 0], [0, 0, 1]])
    w2 = jnp.array([[1, 0, 0], [0, 0.5, 0.5], [0, 0.5, 0.5]])
    x = {"a": jnp.array([3.0, 0.0, 6.0]), "b": jnp.array([[3.0], [0.0], [6.0]])}
    z = consensus_rounds(x, jnp.stack([w1, w2]))
    np.testing.assert_allclose(z["a"], [1.5, 3.75, 3.75])
    np.testing.assert_allclose(z["b"][:, 0], [1.5, 3.75, 3.75])
    np.testing.assert_allclose(consensus(x, w1)["a"], [1.5, 1.5, 6.0])
    np.testing.assert_allclose(jtd_estimate(x["a"], jnp.zeros((0, 3, 3))), [9.0, 0.0, 18.0])  # K = 0
    with pytest.raises(ValueError, match="leading agent axis"):
        consensus(jnp.ones((2, 4)), w1)


def test_complete_graph_gives_exact_joint_td():
    # W = 11ᵀ/N: one round gives every agent the mean, so Δ̂_i = Σ_j δ_j (DVDN = VDN).
    delta = jnp.array([1.0, -2.0, 4.0, 0.5])
    ws = metropolis_weights(build_topology("complete", 4))[None]
    np.testing.assert_allclose(jtd_estimate(delta, ws), np.full(4, 3.5), rtol=1e-6)


def test_neighbor_allreduce_equals_row_of_w():
    w = np.asarray(RING_ROUNDS(KEY, 0, 6)[0])
    adj = (w > 0) & ~np.eye(5, dtype=bool)
    x = jax.random.normal(jax.random.key(3), (5, 2, 3))
    full = np.asarray(consensus(x, jnp.asarray(w)))
    for i in range(5):
        nbrs = np.flatnonzero(adj[i])
        got = neighbor_allreduce(x[i], w[i, i], x[nbrs], w[i, nbrs])
        np.testing.assert_allclose(got, full[i], rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- gradient tracking
def quadratic_grads(params, hess, b):
    """Per-agent ∇f_i for f_i(ω) = ½ ωᵀ H_i ω − b_iᵀ ω. params [N, D], hess [N, D, D], b [N, D]."""
    return jnp.einsum("nij,nj->ni", hess, params) - b


def run_steps(tx, params, weights, hess, b):
    state, update = tx.init(params), jax.jit(tx.update)
    history = []
    for w in weights:
        grads = quadratic_grads(params, hess, b)
        updates, state = update(grads, state, params, weights=w)
        params = optax.apply_updates(params, updates)
        history.append((params, grads, state))
    return history


def test_gt_matches_equation_4_by_hand():
    # N = 2, scalar ω⁰ = 1 for both, f_i = ½ (ω − b_i)², b = (0, 2), η = 0.1, W = 11ᵀ/2.
    # k = 1: g¹ = (1, −1); z¹ = W·0 + g¹ − 0 = (1, −1); ω¹ = W ω⁰ − η z¹ = (0.9, 1.1).
    # k = 2: g² = (0.9, −0.9); z² = W z¹ + g² − g¹ = (0, 0) + (−0.1, 0.1); ω² = 1.0 − 0.1 z² = (1.01, 0.99).
    w = jnp.full((2, 2), 0.5)
    hist = run_steps(with_gradient_tracking(optax.sgd(0.1)), jnp.ones((2, 1)), [w, w],
                     jnp.ones((2, 1, 1)), jnp.array([[0.0], [2.0]]))
    np.testing.assert_allclose(hist[0][0][:, 0], [0.9, 1.1], rtol=1e-6)
    np.testing.assert_allclose(hist[1][2][0].tracker[:, 0], [-0.1, 0.1], rtol=1e-5)
    np.testing.assert_allclose(hist[1][0][:, 0], [1.01, 0.99], rtol=1e-6)


def test_gt_chain_matches_recurrence_oracle_with_pytrees():
    # Oracle loop of eq. 4c–4d on a dropout ring, params as a two-leaf pytree.
    n, eta = 5, 0.05
    ws = RING_ROUNDS(KEY, 0, 6)
    grads = jax.random.normal(jax.random.key(4), (6, n, 3))  # arbitrary per-step gradients
    tx = optax.chain(gradient_tracking(), optax.sgd(eta), mix_params())
    params = {"w": jax.random.normal(jax.random.key(5), (n, 2)), "b": jnp.zeros((n,))}
    state = jax.jit(tx.init)(params)
    update = jax.jit(tx.update)
    omega = np.concatenate([params["w"], params["b"][:, None]], 1)
    z, g_prev = np.zeros((n, 3)), np.zeros((n, 3))
    for w, g in zip(np.asarray(ws), np.asarray(grads)):
        updates, state = update({"w": g[:, :2], "b": g[:, 2]}, state, params, weights=w)
        params = optax.apply_updates(params, updates)
        z = w @ z + g - g_prev
        omega, g_prev = w @ omega - eta * z, g
        np.testing.assert_allclose(params["w"], omega[:, :2], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(params["b"], omega[:, 2], rtol=1e-5, atol=1e-6)
        # Mean tracker = mean gradient after every step (doubly-stochastic W).
        np.testing.assert_allclose(state[0].tracker["w"].mean(0), g[:, :2].mean(0), atol=1e-5)


def test_gt_mean_tracker_equals_mean_gradient_with_adam():
    n = 5
    ws = RING_ROUNDS(KEY, 1, 6)
    hess = jnp.eye(2) * jnp.arange(1.0, n + 1)[:, None, None]
    b = jax.random.normal(jax.random.key(6), (n, 2))
    for params, grads, state in run_steps(with_gradient_tracking(optax.adam(0.1)),
                                          jnp.zeros((n, 2)), ws, hess, b):
        np.testing.assert_allclose(state[0].tracker.mean(0), grads.mean(0), atol=1e-5)


def test_gt_complete_graph_emulates_parameter_sharing():
    # Invariant 5 (specs/dvdn.md) on W = 11ᵀ/N, per-agent quadratics, SGD on f̄ = mean_i f_i as oracle.
    n, eta, steps = 3, 0.1, 40
    w = jnp.full((n, n), 1.0 / n)
    b = jax.random.normal(jax.random.key(7), (n, 2))
    omega0 = jnp.tile(jnp.array([[1.0, -1.0]]), (n, 1))
    hess_i = jax.random.normal(jax.random.key(8), (n, 2, 2))
    hess_i = jnp.einsum("nij,nkj->nik", hess_i, hess_i) / 2 + jnp.eye(2)  # distinct SPD Hessians
    hess_common = jnp.tile(jnp.diag(jnp.array([1.0, 2.0])), (n, 1, 1))

    def sgd_on_average(hess):
        x, out = omega0[0], []
        for _ in range(steps):
            x = x - eta * (jnp.einsum("nij,j->ni", hess, x) - b).mean(0)
            out.append(x)
        return out

    # Adapt-then-combine: all agents equal and equal to SGD on f̄ after EVERY step, any Hessians.
    atc = run_steps(with_gradient_tracking(optax.sgd(eta), adapt_then_combine=True), omega0,
                    [w] * steps, hess_i, b)
    for (params, _, _), want in zip(atc, sgd_on_average(hess_i)):
        np.testing.assert_allclose(params, np.tile(want, (n, 1)), rtol=1e-5, atol=1e-5)
    # Eq. 4d as printed: the agents separate at step 1 (z¹ = g¹ differs, see the hand test) but their
    # mean follows SGD on f̄ exactly (shared Hessian), and they re-agree geometrically.
    cta = run_steps(with_gradient_tracking(optax.sgd(eta)), omega0, [w] * steps, hess_common, b)
    for (params, _, _), want in zip(cta, sgd_on_average(hess_common)):
        np.testing.assert_allclose(params.mean(0), want, rtol=1e-5, atol=1e-5)
    assert np.ptp(cta[0][0], axis=0).max() > 0.01
    np.testing.assert_allclose(cta[-1][0], np.tile(sgd_on_average(hess_common)[-1], (n, 1)), atol=1e-5)
