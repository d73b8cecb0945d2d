"""Mixed strategies (QMIX, QPLEX, QTRAN): IGM on random inputs, QTRAN's losses by hand, and the
contract of every registered mixer and mixed team-TD (jit, vmap, determinism, gradients, no recompile)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netmarl.algos.value.mixed import MixInputs, greedy_actions, qtran_terms
from netmarl.algos.value.team_td import TEAM_TDS
from netmarl.config import MixerConfig
from netmarl.nets.mixers import MIXERS, Mixer, make_mixer
from netmarl.results.qtables import joint_actions

N, A, S = 3, 4, 5
MIXED = [name for name, t in TEAM_TDS.items() if t.loss is not None]


def _random_inputs(key, p_avail: float = 0.6):
    """q [N, A], state [S] and avail [N, A] (each action available w.p. p_avail, action 0 always)."""
    k_q, k_s, k_a = jax.random.split(key, 3)
    q = 3.0 * jax.random.normal(k_q, (N, A))
    avail = jax.random.bernoulli(k_a, p_avail, (N, A)).at[:, 0].set(True)
    return q, jax.random.normal(k_s, (S,)), avail


# QMIX is IGM by its non-negative weights (a monotone function of the utilities) and is `slow` here
# to keep the default suite within budget; QPLEX, whose IGM rests on A_tot <= 0, runs by default
@pytest.mark.parametrize("name", [pytest.param("qmix", marks=pytest.mark.slow), "qplex"])
def test_igm_greedy_joint_action_of_q_tot_is_the_tuple_of_individual_greedy_actions(name):
    """On 64 random (parameters, utilities, state, availability) draws — half with every action
    available — the argmax of Q_tot over the available joint actions is (argmax_u Q_i(u))_i."""
    mixer = make_mixer(name, MixerConfig(), A)
    joints = joint_actions(N, A)  # [A^N, N]

    def check(key):
        k_p, k_in = jax.random.split(key)
        params = mixer.init(k_p, N, S)
        q, state, avail = _random_inputs(k_in, jnp.where(jax.random.uniform(k_p) < 0.5, 1.0, 0.6))
        q_tot = jax.vmap(lambda a: mixer.apply(params, q, a, avail, state))(joints)
        ok = avail[jnp.arange(N), joints].all(-1)  # [A^N] joint action available
        best = joints[jnp.argmax(jnp.where(ok, q_tot, -jnp.inf))]
        return best, greedy_actions(q, avail)

    best, greedy = jax.jit(jax.vmap(check))(jax.random.split(jax.random.key(1), 64))
    np.testing.assert_array_equal(best, greedy)


def test_qplex_stop_adv_grad_keeps_q_tot_and_routes_the_gradient_through_the_chosen_utilities():
    """The original's form Σ_i Q_i(a_i) + Σ_i (λ_i − 1) sg A_i has the same value as Σ_i V_i + Σ_i λ_i A_i;
    its gradient reaches each agent's utilities only at the taken action (w_i(s) > 0 there)."""
    plain = make_mixer("qplex", MixerConfig(stop_adv_grad=False), A)
    original = make_mixer("qplex", MixerConfig(stop_adv_grad=True), A)
    params = plain.init(jax.random.key(0), N, S)
    q, state, avail = _random_inputs(jax.random.key(1), 1.0)
    a = jnp.array([1, 3, 0]) if int(greedy_actions(q, avail)[0]) != 1 else jnp.array([2, 3, 0])
    np.testing.assert_allclose(original.apply(params, q, a, avail, state),
                               plain.apply(params, q, a, avail, state), rtol=1e-6)
    grad = jax.grad(lambda u: original.apply(params, u, a, avail, state))(q)
    taken = jax.nn.one_hot(a, A, dtype=bool)
    assert np.all(np.asarray(grad)[~np.asarray(taken)] == 0) and np.all(np.asarray(grad)[np.asarray(taken)] > 0)
    grad_plain = jax.grad(lambda u: plain.apply(params, u, a, avail, state))(q)
    assert np.any(np.asarray(grad_plain)[~np.asarray(taken)] != 0)  # the plain form also moves V_i


def _table_mixer(q_jt: np.ndarray, v: float) -> Mixer:
    """A QTRAN 'network' that is a table: Q_jt(s, a) = q_jt[a], V_jt(s) = v (no parameters)."""
    table = jnp.asarray(q_jt)
    return Mixer(None, lambda p, q, a, avail, s: table[tuple(a)], lambda p, s: jnp.float32(v))


def _inputs(q, a_tm1, r_t=0.0, discount_t=0.0, a_t=(0, 0)):
    q = jnp.asarray(q, jnp.float32)
    avail = jnp.ones_like(q, bool)
    return MixInputs(q, jnp.asarray(a_tm1), avail, jnp.zeros(1), jnp.float32(r_t), jnp.float32(discount_t),
                     q, jnp.asarray(a_t), avail, jnp.zeros(1))


def test_qtran_losses_by_hand():
    """q = [[1, 0], [0, 2]]: greedy ū = (A, B), Q′(ū) = 3; V_jt = 1; Q_jt = [[5, 4], [1, 2]].
    L_opt = (Q′(ū) − Q_jt(ū) + V)² = (3 − 4 + 1)² = 0 for every taken action.
    Taken (B, A): Q′ = 0, 0 − 1 + 1 = 0 → L_nopt = 0; taken (A, A): Q′ = 1, 1 − 5 + 1 = −3 → 9;
    taken (B, B): Q′ = 2, 2 − 2 + 1 = 1 ≥ 0 → 0. L_td with r = 2, γ' = 0.5, a* = (A, B):
    (2 + 0.5 · 4 − Q_jt(a))² = (4 − 5)² = 1 for (A, A)."""
    mixer, q = _table_mixer(np.array([[5.0, 4.0], [1.0, 2.0]]), 1.0), [[1.0, 0.0], [0.0, 2.0]]
    for taken, nopt in (((1, 0), 0.0), ((0, 0), 9.0), ((1, 1), 0.0)):
        _, l_opt, l_nopt = qtran_terms(mixer, {}, {}, _inputs(q, taken))
        assert float(l_opt) == 0.0 and float(l_nopt) == nopt
    l_td, _, _ = qtran_terms(mixer, {}, {}, _inputs(q, (0, 0), 2.0, 0.5, (0, 1)))
    assert float(l_td) == 1.0
    # V_jt = 2 breaks the optimality constraint: L_opt = (3 − 4 + 2)² = 1
    _, l_opt, _ = qtran_terms(_table_mixer(np.array([[5.0, 4.0], [1.0, 2.0]]), 2.0), {}, {}, _inputs(q, (0, 0)))
    assert float(l_opt) == 1.0


def test_qtran_zero_constraint_losses_make_the_utilities_greedy_action_optimal_for_q_jt():
    """QTRAN's Theorem 1 on random tables: Q_jt(u) = Q′(u) + V − slack(u) with slack ≥ 0, slack(ū) = 0
    gives L_opt = L_nopt = 0 for every u and argmax_u Q_jt = ū; raising one other Q_jt(u) above
    Q_jt(ū) makes that u's L_nopt positive."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.normal(size=(2, 3)).astype(np.float32)
        greedy = tuple(q.argmax(1))
        q_prime = q[0][:, None] + q[1][None, :]
        slack = rng.uniform(0.1, 2.0, (3, 3))
        slack[greedy] = 0.0
        v = float(rng.normal())
        q_jt = q_prime + v - slack
        assert np.unravel_index(q_jt.argmax(), q_jt.shape) == greedy
        for u in np.ndindex(3, 3):
            _, l_opt, l_nopt = qtran_terms(_table_mixer(q_jt, v), {}, {}, _inputs(q, u))
            assert float(l_opt) < 1e-10 and float(l_nopt) < 1e-10
        other = next(u for u in np.ndindex(3, 3) if u != greedy)
        bad = q_jt.copy()
        bad[other] = q_jt[greedy] + 1.0
        _, _, l_nopt = qtran_terms(_table_mixer(bad, v), {}, {}, _inputs(q, other))
        assert float(l_nopt) > 0.0


@pytest.mark.parametrize("name", list(MIXERS))
def test_mixer_contract(name):
    """init/apply jit and vmap over a batch, are deterministic, give a scalar Q_tot with finite
    gradients in the utilities and the parameters; unknown names are refused with the list."""
    mixer = make_mixer(name, MixerConfig(), A)
    params = mixer.init(jax.random.key(0), N, S)
    q, state, avail = _random_inputs(jax.random.key(1))
    a = jnp.tile(greedy_actions(q, avail), (7, 1))
    batch = jax.vmap(mixer.apply, (None, None, 0, None, None))
    out = jax.jit(batch)(params, q, a, avail, state)
    assert out.shape == (7,) and np.all(np.isfinite(out)) and np.all(out == out[0])
    np.testing.assert_array_equal(out, jax.jit(batch)(params, q, a, avail, state))
    grads = jax.grad(lambda p, q: mixer.apply(p, q, a[0], avail, state), (0, 1))(params, q)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    with pytest.raises(ValueError, match="accepted: qmix"):
        make_mixer("nope", MixerConfig(), A)


@pytest.mark.parametrize("name", MIXED)
def test_mixed_loss_contract(name):
    """Every mixed strategy's loss: a finite scalar per transition, jit and vmap over a batch,
    deterministic, with finite gradients that reach the utilities and the mixer's parameters."""
    t = TEAM_TDS[name]
    mixer, config = make_mixer(t.mixer, MixerConfig(), A), MixerConfig()
    params = mixer.init(jax.random.key(0), N, S)
    q, state, avail = _random_inputs(jax.random.key(1))
    a = greedy_actions(-q, avail)  # not the greedy joint action
    x = MixInputs(q, a, avail, state, jnp.float32(1.0), jnp.float32(0.9), q, greedy_actions(q, avail), avail, state)
    xs = jax.tree.map(lambda v: jnp.stack([v, v]), x)

    def total(p, q_tm1):
        return jax.vmap(lambda x: t.loss(mixer, config, p, params, x))(xs._replace(q_tm1=q_tm1)).sum()

    grad = jax.jit(jax.value_and_grad(total, (0, 1)))
    value, (g_params, g_q) = grad(params, xs.q_tm1)
    assert value.shape == () and np.isfinite(value) and value == grad(params, xs.q_tm1)[0]
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(g_params))
    assert np.abs(g_q).sum() > 0 and max(np.abs(g).max() for g in jax.tree.leaves(g_params)) > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", MIXED)
def test_mixed_team_td_contract(name):
    """Every mixed strategy trains through the runner: two chunks over 2 vmapped seeds without
    recompiling, the carry's structure and dtypes unchanged, finite metrics, parameters moved,
    and the same key gives the same parameters."""
    from tests.helpers import matrix_config
    from netmarl.train.runner import Trainer

    config = matrix_config("climbing", name, steps=64, shared_params=True, hidden=8, batch_size=8,
                           buffer_size=32)
    config.run.seeds, config.algo.mixer.embed = 2, 8
    trainer = Trainer(config)
    start = trainer.init_seeds()
    carry, stats = trainer.run_chunk(start, jnp.int32(32))
    carry, stats = trainer.run_chunk(carry, jnp.int32(64))
    assert trainer.run_chunk._cache_size() == 1
    assert jax.tree.structure(carry) == jax.tree.structure(start)
    assert [x.dtype for x in jax.tree.leaves(carry)] == [x.dtype for x in jax.tree.leaves(start)]
    assert np.all(np.isfinite(np.asarray(stats.learn.loss))) and np.all(np.asarray(stats.updates) > 0)
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: np.abs(a - b).max(), carry.learner.mixer_params,
                                         start.learner.mixer_params))
    assert max(moved) > 0
    again, _ = trainer.run_chunk(trainer.run_chunk(trainer.init_seeds(), jnp.int32(32))[0], jnp.int32(64))
    for x, y in zip(jax.tree.leaves(again.learner), jax.tree.leaves(carry.learner)):
        np.testing.assert_array_equal(x, y)


def test_qmix_init_is_pytorchs_linear_default_or_flaxs():
    """`torch` (the default, EPyMARL's): every kernel and bias U(±1/sqrt(fan_in)); `lecun`: Flax's
    default (zero biases). The torch init's mixing weights are ~3x smaller per layer, so Q_tot's
    slope in the utilities starts several times smaller (what QMIX on mpe-spread needed,
    docs/results/jaxmarl_learning.md)."""
    from netmarl.nets.mixers import make_qmix
    state_dim = 54
    torch = make_qmix(init="torch").init(jax.random.key(0), N, state_dim)["params"]
    for name, layer in torch.items():
        fan_in = layer["kernel"].shape[0]
        for leaf in (layer["kernel"], layer["bias"]):
            assert np.abs(leaf).max() <= 1.0 / np.sqrt(fan_in) and np.any(leaf), name
        if layer["kernel"].size >= 1000:  # the uniform's std, 1/sqrt(3 fan_in)
            assert np.std(layer["kernel"]) == pytest.approx(1.0 / np.sqrt(3 * fan_in), rel=0.1), name
    lecun = make_qmix(init="lecun").init(jax.random.key(0), N, state_dim)["params"]
    assert all(not np.any(layer["bias"]) for layer in lecun.values())
    assert np.std(lecun["w1_1"]["kernel"]) == pytest.approx(1.0 / np.sqrt(64), rel=0.2)
    with pytest.raises(ValueError, match="QMIX init 'xavier' is not known; accepted: torch, lecun"):
        make_qmix(init="xavier")
