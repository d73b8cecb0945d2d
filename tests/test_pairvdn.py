"""PairVDN in the learner: a payoff no monotonic decomposition represents, and its errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netmarl.algos.value.learner import QLearner
from netmarl.algos.value.pairvdn import PairLearner
from netmarl.config import AlgoConfig
from netmarl.envs import GAMES, make
from tests.helpers import joint_q_table, matrix_config, train_steps

GAME = "cycle-climbing-3"  # R(a) = Σ_i climbing[a_i, a_i+1] over a 3-cycle: optimum (A, A, A) = 33


def _greedy(trainer, carry) -> tuple[int, ...]:
    _, ts = trainer.env.reset(jax.random.key(0))
    actions, _ = trainer.learner.act(carry.learner.params, ts.obs, trainer.learner.initial_hidden(),
                                     ts.avail, jnp.float32(0.0), jax.random.key(1))
    return tuple(int(a) for a in actions)


def test_cycle_game_payoffs():
    table = np.asarray(make(f"matrix:{GAME}").table).sum(0)
    assert table[0, 0, 0] == 33 and table[2, 2, 2] == 15 and table.max() == 33
    climbing = np.array(GAMES["climbing"][0])
    assert table[0, 1, 2] == climbing[0, 1] + climbing[1, 2] + climbing[2, 0]


@pytest.mark.users_compiler  # long-running: compiled as users compile (tests/compiler.py)
def test_pairvdn_finds_the_optimum_of_a_pairwise_cycle_game_where_vdn_does_not():
    """Calibrated (docs/results/test_calibration.md, 40 seeds): PairVDN's max |Q_tot − R| is
    0.064 ± 0.115 (worst 0.557; VDN ≥ 56.6, frozen ≥ 52.8): threshold 1.0, z = 8.2; its greedy joint
    action is (A, A, A) on every seed (a frozen learner's 1 time in 20, which the fit catches)."""
    pair_trainer, pair_carry = train_steps(matrix_config(GAME, "pairvdn", steps=4000, shared_params=True))
    vdn_trainer, vdn_carry = train_steps(matrix_config(GAME, "vdn", steps=4000))
    table = np.asarray(pair_trainer.env.table).sum(0)
    assert np.abs(joint_q_table(pair_trainer, pair_carry) - table).max() < 1.0
    assert _greedy(pair_trainer, pair_carry) == (0, 0, 0) and table[0, 0, 0] == 33
    vdn_joint = _greedy(vdn_trainer, vdn_carry)
    assert table[vdn_joint] <= 15, vdn_joint  # VDN's marginal fit prefers the safe actions


@pytest.mark.parametrize("change,message", [(dict(shared_params=False), "shared_params=true"),
                                            (dict(shared_params=True, agent="gru"), "agent=mlp")])
def test_pairvdn_refuses_what_it_cannot_do(change, message):
    with pytest.raises(ValueError, match=message):
        PairLearner(AlgoConfig(team_td="pairvdn", **change), make(f"matrix:{GAME}"))


def test_plain_learner_refuses_pairvdn():
    with pytest.raises(ValueError, match="make_learner"):
        QLearner(AlgoConfig(team_td="pairvdn", shared_params=True, agent="mlp"), make(f"matrix:{GAME}"))


@pytest.mark.parametrize("double_q", [True, False])
def test_joint_td_matches_brute_force(double_q):
    """δ = Σr + γ Q_tot(s', a*; θ⁻) − Q_tot(s, a; θ), a* by brute force over the 2³ joint actions."""
    import itertools

    learner = PairLearner(AlgoConfig(team_td="pairvdn", shared_params=True, agent="mlp",
                                     double_q=double_q), make(f"matrix:{GAME}"))
    rng = np.random.default_rng(0)
    online, target = (jnp.asarray(rng.normal(size=(2, 3, 3, 3)), jnp.float32) for _ in range(2))
    learner.grids = lambda params, obs, avail: params[obs[0, 0].astype(jnp.int32)]  # step index
    obs = jnp.zeros((2, 3, 1)).at[1].set(1.0)  # o_tm1 -> grids[0], o_t -> grids[1]
    avail = jnp.ones((2, 3, 3), bool)
    a_tm1, r_t = jnp.array([2, 0, 1]), jnp.array([0.5, -1.0, 0.25])
    delta, q_tot = learner.joint_td(online, target, obs, avail, a_tm1, r_t, jnp.float32(0.9))

    def total(g, a):
        return sum(float(g[i, a[i], a[(i + 1) % 3]]) for i in range(3))

    joints = list(itertools.product(range(3), repeat=3))
    if double_q:
        v = total(target[1], max(joints, key=lambda a: total(online[1], a)))
    else:
        v = max(total(target[1], a) for a in joints)
    assert float(q_tot) == pytest.approx(total(online[0], [2, 0, 1]), rel=1e-5)
    assert float(delta) == pytest.approx(-0.25 + 0.9 * v - total(online[0], [2, 0, 1]), rel=1e-5)


def test_paper_qmix_mixer_has_the_papers_parameter_count():
    """specs/pairvdn_boxjump.md §4.1: the QMIX-16 hypernetworks for Box Jump N = 16 (state 177) have
    54,129 parameters: one-layer W1/b1/w2 hypernetworks (algo.mixer.hyper_hidden=0), two-layer b2."""
    from netmarl.nets.mixers import make_qmix

    mixer = make_qmix(embed=16, hyper_hidden=0, activation="relu")
    params = mixer.init(jax.random.PRNGKey(0), 16, 177)
    assert sum(x.size for x in jax.tree.leaves(params)) == 54_129
    with pytest.raises(ValueError, match="hyper_hidden -1"):
        make_qmix(hyper_hidden=-1)
