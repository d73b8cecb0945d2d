"""Hand-derived unit tests of the learner's maths and contract tests over the team-TD registry."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netmarl.algos.value.learner import QLearner, clip_by_agent_norm
from netmarl.algos.value.team_td import TEAM_TDS, surrogate_loss
from netmarl.config import AlgoConfig
from netmarl.envs import make


def _learner(**algo):
    return QLearner(AlgoConfig(agent="mlp", **algo), make("matrix:linear"))


def test_agent_td_double_q_and_truncation():
    learner = _learner(gamma=0.5)
    q_tm1 = jnp.array([[1.0, 2.0], [3.0, 4.0]])  # [N=2, A=2]
    a_tm1 = jnp.array([1, 0])
    r_t = jnp.array([1.0, 0.5])
    q_t = jnp.array([[0.0, 10.0], [7.0, 0.0]])  # online: selects a* = (1, 0)
    q_t_target = jnp.array([[4.0, 2.0], [6.0, 8.0]])  # target evaluates a*: (2, 6)
    avail = jnp.ones((2, 2), bool)
    # truncated (not terminated): discount 0.5 -> δ = r + 0.5·(2, 6) − (2, 3) = (0, 0.5)
    delta, q_taken, v_t = learner.agent_td(q_tm1, a_tm1, r_t, jnp.float32(0.5), q_t, q_t_target, avail)
    np.testing.assert_allclose(delta, [0.0, 0.5])
    np.testing.assert_allclose(q_taken, [2.0, 3.0])
    np.testing.assert_allclose(v_t, [2.0, 6.0])
    # terminated: no bootstrap -> δ = r − Q = (−1, −2.5)
    delta, _, _ = learner.agent_td(q_tm1, a_tm1, r_t, jnp.float32(0.0), q_t, q_t_target, avail)
    np.testing.assert_allclose(delta, [-1.0, -2.5])
    # unavailable actions are never selected: mask agent 0's action 1 -> a* = 0, target value 4
    avail = jnp.array([[True, False], [True, True]])
    _, _, v_t = learner.agent_td(q_tm1, a_tm1, r_t, jnp.float32(0.5), q_t, q_t_target, avail)
    np.testing.assert_allclose(v_t, [4.0, 6.0])


def test_vdn_surrogate_gradient_is_the_joint_td_gradient():
    """∇_q Σ_i (δ_i + sg(Σδ − δ_i))² = ∇_q (Σδ)² for δ_i = y_i − q_i; IQL gives ∇ Σ δ_i²."""
    y = jnp.array([1.0, 2.0, -0.5])
    vdn, iql = TEAM_TDS["vdn"].fn, TEAM_TDS["iql"].fn
    grad = jax.grad(lambda q: surrogate_loss(y - q, vdn(y - q)))(jnp.zeros(3))
    np.testing.assert_allclose(grad, jax.grad(lambda q: jnp.sum(y - q) ** 2)(jnp.zeros(3)))
    np.testing.assert_allclose(grad, -2 * 2.5 * np.ones(3))  # Σy = 2.5
    grad = jax.grad(lambda q: surrogate_loss(y - q, iql(y - q)))(jnp.zeros(3))
    np.testing.assert_allclose(grad, -2 * y)


@pytest.mark.parametrize("name", [n for n, t in TEAM_TDS.items() if t.fn is not None])
def test_team_td_contract(name):
    """Every decomposed strategy: [N] -> [N], jit and vmap over a batch, deterministic."""
    fn = TEAM_TDS[name].fn
    delta = jax.random.normal(jax.random.key(0), (7, 4))
    weights = jnp.full((1, 4, 4), 0.25) if TEAM_TDS[name].uses_graph else None
    out = jax.jit(jax.vmap(fn, (0, None)))(delta, weights)
    assert out.shape == (7, 4)
    np.testing.assert_array_equal(out, jax.vmap(fn, (0, None))(delta, weights))
    # every strategy estimates the joint TD or the own TD: the sum over agents is N·Σδ or Σδ
    assert np.allclose(out.sum(-1), delta.sum(-1)) or np.allclose(out.sum(-1), 4 * delta.sum(-1), atol=1e-5)


def test_per_agent_clipping_and_epsilon_schedule():
    grads = {"w": jnp.array([[3.0, 4.0], [0.3, 0.4]])}  # agent norms 5 and 0.5
    clipped, _ = clip_by_agent_norm(1.0).update(grads, None)
    np.testing.assert_allclose(clipped["w"], [[0.6, 0.8], [0.3, 0.4]], rtol=1e-6)
    learner = _learner(eps_start=1.0, eps_finish=0.1, eps_anneal_steps=100)
    np.testing.assert_allclose([learner.epsilon(s) for s in (0, 50, 100, 1000)], [1.0, 0.55, 0.1, 0.1], rtol=1e-6)


def test_reward_standardisation_keeps_shares_summing_to_the_standardised_team_reward():
    from netmarl.algos.value.learner import RewardStats
    learner = _learner(standardise_rewards=True)
    stats = RewardStats(jnp.float32(100.0), jnp.float32(2.0), jnp.float32(4.0))
    r = jnp.array([[1.0, 3.0]])  # team reward 4 -> (4 − 2) / 2 = 1
    np.testing.assert_allclose(learner.reward_shares(r, stats).sum(-1), [1.0], rtol=1e-5)
    equal = _learner(reward_shares="equal")
    np.testing.assert_allclose(equal.reward_shares(r, stats), [[2.0, 2.0]])
    # team: every agent learns from the whole team reward R = 4 (the DVDN seed's R̄) ...
    team = _learner(reward_shares="team")
    np.testing.assert_allclose(team.reward_shares(r, stats), [[4.0, 4.0]])
    # ... standardised as R itself: (4 − 2) / 2 = 1 for every agent
    team_std = _learner(reward_shares="team", standardise_rewards=True)
    np.testing.assert_allclose(team_std.reward_shares(r, stats), [[1.0, 1.0]], rtol=1e-5)
    with pytest.raises(ValueError, match="reward_shares='none'.*accepted: env, equal, team"):
        _learner(reward_shares="none")


@pytest.mark.parametrize("kind", ["mlp", "gru"])
def test_agent_init_torch_is_pytorchs_default_and_lecun_flaxs(kind):
    """algo.agent_init=torch (EPyMARL's agents): every Dense kernel and bias U(±1/sqrt(fan_in)), every
    GRU weight and bias U(±1/sqrt(hidden)), as PyTorch's nn.Linear / nn.GRUCell; lecun (the default):
    Flax's, zero biases."""
    from netmarl.nets.agents import make_agent_net
    obs_dim, hidden = 30, 64
    torch = make_agent_net(kind, 6, hidden, 2, "torch").init(jax.random.key(0), obs_dim)["params"]
    for path, leaf in jax.tree_util.tree_flatten_with_path(torch)[0]:
        names = jax.tree_util.keystr(path)
        fan_in = obs_dim if "Dense_0" in names else hidden
        bound = fan_in ** -0.5
        leaf = np.asarray(leaf)
        assert np.abs(leaf).max() <= bound and np.abs(leaf).max() > 0.8 * bound, (names, bound)
    lecun = make_agent_net(kind, 6, hidden, 2).init(jax.random.key(0), obs_dim)["params"]
    assert jax.tree.structure(lecun) == jax.tree.structure(torch)
    assert not np.asarray(lecun["Dense_0"]["bias"]).any()
    with pytest.raises(ValueError, match="unknown agent network init 'xavier'; accepted: lecun, torch"):
        make_agent_net(kind, 6, init="xavier")
