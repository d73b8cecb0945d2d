"""D-GAT (netmarl/nets/dgat.py) against the DG-MAPPO seed's equations 7–11."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netmarl.comm import degree_weights, erdos_renyi, line, metropolis_weights, ring
from netmarl.nets import dgat as D

N, DIM, WIDTH = 6, 5, 8


def _setup(seed: int, hops: int = 3):
    k_p, k_o = jax.random.split(jax.random.key(seed))
    return D.init_dgat(k_p, N, DIM, WIDTH, hops), jax.random.normal(k_o, (N, DIM))


def test_scores_are_gatv2_per_agent():
    """e_ij = q^iᵀ LeakyReLU(W^i [h^i ‖ h^j]) (eq. 7), against a loop over pairs."""
    params, h = _setup(0)
    w, q = np.asarray(params.w[0]), np.asarray(params.q[0])
    loop = np.array([[q[i] @ np.asarray(jax.nn.leaky_relu(w[i] @ np.concatenate([h[i], h[j]]), 0.2))
                      for j in range(N)] for i in range(N)])
    np.testing.assert_allclose(D.scores(params.w[0], params.q[0], D.received(h)), loop, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_attention_sums_to_one_on_each_neighbourhood_and_is_zero_off_graph(seed):
    params, h = _setup(seed)
    adj = erdos_renyi(N, jax.random.key(seed + 10), prob=0.4)
    alpha = np.asarray(D.attention(params.w[0], params.q[0], D.received(h), adj))
    closed = np.asarray(adj) | np.eye(N, dtype=bool)
    np.testing.assert_allclose(alpha.sum(-1), 1.0, rtol=1e-6)
    assert (alpha[~closed] == 0).all() and (alpha[closed] > 0).all()


@pytest.mark.parametrize("hops", [1, 2, 3])
def test_k_hops_carry_information_exactly_k_hops_on_a_path(hops):
    """∂ô^i/∂o^j ≠ 0 iff |i − j| ≤ K on the path 0 – 1 – … – 5."""
    params, obs = _setup(3, hops)
    jac = jax.jacobian(lambda o: D.dgat(params, o, line(N))[0])(obs)  # [N, D, N, D]
    reaches = np.abs(np.asarray(jac)).sum((1, 3)) > 0
    distance = np.abs(np.arange(N)[:, None] - np.arange(N)[None])
    np.testing.assert_array_equal(reaches, distance <= hops)


def test_hops_may_use_a_different_graph_each():
    params, obs = _setup(4, 2)
    adj = jnp.stack([line(N), jnp.zeros((N, N), bool)])  # hop 2: nobody talks
    jac = jax.jacobian(lambda o: D.dgat(params, o, adj)[0])(obs)
    reaches = np.abs(np.asarray(jac)).sum((1, 3)) > 0
    np.testing.assert_array_equal(reaches, np.abs(np.arange(N)[:, None] - np.arange(N)[None]) <= 1)


def test_an_agent_computes_its_row_from_its_neighbours_messages():
    """hop_row (what one MPI agent computes) equals row i of the batched hop."""
    params, h = _setup(5)
    adj = np.asarray(ring(N))
    h_next, alpha = D.hop(params.w[0], params.q[0], h, adj)
    for i in range(N):
        neighbours = np.flatnonzero(adj[i])
        row, a_row = D.hop_row(params.w[0, i], params.q[0, i], h[i], h[neighbours])
        np.testing.assert_allclose(row, h_next[i], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a_row, alpha[i, np.concatenate([[i], neighbours])], rtol=1e-5)


def test_neighbour_averaging_preserves_the_mean():
    """Metropolis weights (doubly stochastic) keep the plain mean of ψ on any graph; the seed's
    c(i, j) = 1/|N^i| (eq. 10) keeps the degree-weighted mean, the plain mean on a regular graph."""
    params, _ = _setup(6)
    adj = erdos_renyi(N, jax.random.key(7), prob=0.5)
    mixed = D.neighbour_average(params, metropolis_weights(adj))
    for before, after in zip(params, mixed):
        np.testing.assert_allclose(after.mean(1), before.mean(1), atol=1e-6)
    pi = 1.0 + np.asarray(adj).sum(-1)
    mixed = D.neighbour_average(params, degree_weights(adj))
    for before, after in zip(params, mixed):
        np.testing.assert_allclose(np.tensordot(pi, np.moveaxis(after, 1, 0), 1),
                                   np.tensordot(pi, np.moveaxis(before, 1, 0), 1), rtol=1e-5, atol=1e-5)
    mixed = D.neighbour_average(params, degree_weights(ring(N)))
    for before, after in zip(params, mixed):
        np.testing.assert_allclose(after.mean(1), before.mean(1), atol=1e-6)


def test_repeated_averaging_on_a_connected_graph_reaches_agreement():
    params, _ = _setup(8)
    weights = degree_weights(ring(N))
    start = float(D.disagreement(params))
    for _ in range(200):
        params = D.neighbour_average(params, weights)
    assert start > 0.1 and float(D.disagreement(params)) < 1e-8 * start


def test_degree_weights_are_the_seeds_eq_10():
    adj = np.asarray(line(4))
    expected = np.array([[1 / 2, 1 / 2, 0, 0], [1 / 3, 1 / 3, 1 / 3, 0], [0, 1 / 3, 1 / 3, 1 / 3],
                         [0, 0, 1 / 2, 1 / 2]])
    np.testing.assert_allclose(degree_weights(adj), expected, rtol=1e-6)


def test_consensus_loss_is_eq_11_and_moves_only_the_own_representation():
    h = jax.random.normal(jax.random.key(9), (N, DIM))
    adj = np.asarray(ring(N))
    closed = adj | np.eye(N, dtype=bool)
    expected = [np.mean([((h[i] - h[j]) ** 2).mean() for j in np.flatnonzero(closed[i])]) for i in range(N)]
    np.testing.assert_allclose(D.consensus_loss(h, adj), expected, rtol=1e-5)
    assert np.allclose(D.consensus_loss(jnp.ones((N, DIM)), adj), 0.0)
    jac = np.asarray(jax.jacobian(lambda x: D.consensus_loss(x, adj))(h))  # [N, N, D]
    off = ~np.eye(N, dtype=bool)
    assert (jac[off] == 0).all() and np.abs(jac[~off]).sum() > 0


def test_dgat_jits_vmaps_and_is_deterministic():
    params, obs = _setup(10)
    batch = jax.random.normal(jax.random.key(11), (4, N, DIM))
    fn = jax.jit(jax.vmap(lambda o: D.dgat(params, o, ring(N))))
    o_hat, alphas = fn(batch)
    assert o_hat.shape == (4, N, DIM) and alphas.shape == (4, 3, N, N)
    np.testing.assert_array_equal(o_hat, fn(batch)[0])
    np.testing.assert_allclose(o_hat[1], D.dgat(params, batch[1], ring(N))[0], rtol=1e-5, atol=1e-6)
    assert 0 < float(D.attention_entropy(alphas)) <= np.log(3) + 1e-6  # 3 = ring's closed neighbourhood


def test_message_floats_count_hops_and_parameters():
    params, _ = _setup(12)
    adj = np.asarray(line(N))
    psi = WIDTH * 2 * DIM * 3 + WIDTH * 3
    np.testing.assert_array_equal(D.message_floats(DIM, 3, adj), adj.sum(-1) * 3 * DIM)
    np.testing.assert_array_equal(D.message_floats(DIM, 3, adj, params), adj.sum(-1) * (3 * DIM + psi))


def test_local_gradients_train_only_the_own_parameters():
    """With messages as received values, agent i's output trains ψ^i only, and equals the plain one."""
    params, obs = _setup(13)
    adj = ring(N)
    np.testing.assert_allclose(D.dgat(params, obs, adj, local=True)[0], D.dgat(params, obs, adj)[0],
                               rtol=1e-6)
    for i in (0, 3):
        grads = jax.grad(lambda p: D.dgat(p, obs, adj, local=True)[0][i].sum())(params)
        per_agent = np.abs(np.asarray(grads.w)).sum((0, 2, 3)) + np.abs(np.asarray(grads.q)).sum((0, 2))
        assert per_agent[i] > 0 and (np.delete(per_agent, i) == 0).all(), per_agent
        plain = jax.grad(lambda p: D.dgat(p, obs, adj)[0][i].sum())(params)
        assert (np.abs(np.asarray(plain.w)).sum((0, 2, 3)) > 0).sum() > 1  # neighbours' ψ do matter
