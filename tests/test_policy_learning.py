"""Learning checks of the actor-critic family: IPPO and MAPPO solve lbf-tiny (default suite); Pareto-AC selects the
Pareto-optimal equilibrium of the climbing game where A2C with a centralised V does not."""
import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netmarl.cli import compose
from netmarl.train.runner import Trainer

LBF_STEPS = 40_000


def _train(overrides: list[str], steps: int):
    trainer = Trainer(compose([*overrides, f"steps={steps}", "run.progress=false"]))
    carry, _ = trainer.run_chunk(trainer.init_seeds(), jnp.int32(steps))
    return trainer, carry


# Issue 21's acceptance: IPPO and MAPPO each solve lbf-tiny in a default-suite check under 30 s
@pytest.mark.users_compiler  # long-running: compiled as users compile (conftest.py)
@pytest.mark.parametrize("algo", ["ippo_ns", "mappo_ns"])
def test_ppo_solves_lbf_tiny(algo):
    """The training (stochastic-policy) return over the last 4k of 40k env steps is >= 0.9 on
    lbf-tiny (Foraging-5x5-2p-1f-coop, T = 50; 1.0 = the food is loaded), 2 vmapped seeds,
    EPyMARL's ippo_ns / mappo_ns settings except the entropy coefficient (0.001 instead of 0.01) and
    the critic's hard target copy every 20 iterations instead of 200 (40k steps are 80 iterations of
    10 episodes or more: with 200 the target would barely move; the configs had 20 when the check was
    calibrated).

    Calibration (20 seeds, 40k steps, docs/results/test_calibration.md):
      ippo_ns  0.998 +- 0.002, min 0.994;  mappo_ns 0.998 +- 0.003, min 0.989;
      broken (lr 1e-30, parameters frozen at init): 0.051 +- 0.030, max 0.125 (both algorithms).
    At 32k steps the minimum was 0.952 / 0.968, too close to a useful threshold, hence 40k.

    Why not the greedy evaluation return: PPO learns a stochastic policy and is judged by it; its
    argmax is not what was optimised and loops in some states (greedy return on the same 20 seeds:
    ippo_ns 0.706, min 0.50; mappo_ns 0.723, min 0.53), so a greedy threshold would either fail
    correct learners or be too low to tell them from broken ones."""
    trainer = Trainer(compose([f"algo={algo}", "env=lbf-tiny", "seeds=2", "algo.policy.entropy_coef=0.001",
                               "algo.target_update_interval=20", f"steps={LBF_STEPS}", "run.progress=false"]))
    carry, _ = trainer.run_chunk(trainer.init_seeds(), jnp.int32(LBF_STEPS - 4000))
    _, stats = trainer.run_chunk(carry, jnp.int32(LBF_STEPS))
    returns = np.asarray(stats.return_sum / stats.episodes)  # [seeds]
    assert returns.min() >= 0.9, returns


def _greedy_joints(trainer, carry) -> collections.Counter:
    _, ts = trainer.env.reset(jax.random.key(0))
    act = jax.vmap(lambda p: trainer.learner.act(p, ts.obs, trainer.learner.initial_hidden(), ts.avail,
                                                 0.0, jax.random.key(0))[0])
    return collections.Counter(tuple(int(a) for a in row) for row in np.asarray(act(carry.learner.params)))


@pytest.mark.slow
def test_pareto_ac_selects_the_climbing_optimum_where_centralised_a2c_does_not():
    """The lecture's figure: 10 seeds each, 20k env steps, each agent learning from its own payoff.
    Pareto-AC's greedy joint action is (A, A) = 11 in >= 8 of 10 seeds; MAA2C's is (B, B) = 7 in >= 8
    (docs/results/actor_critic_matrix.md has the full runs and curves).

    Calibration (seeds 0-9, 20k steps): Pareto-AC (A, A) x 10; MAA2C (entropy 0.1) (B, B) x 10."""
    common = ["env=matrix-climbing", "seeds=10", "run.seed_mode=loop", "algo.reward_shares=env"]
    pac = _greedy_joints(*_train(["algo=pac", *common, "algo.policy.entropy_anneal_steps=16000"], 20_000))
    assert pac[(0, 0)] >= 8, pac
    a2c = _greedy_joints(*_train(["algo=maa2c", *common, *MAA2C_CLIMBING], 20_000))
    assert a2c[(1, 1)] >= 8, a2c


# EPyMARL's maa2c entropy coefficient 0.01 ends at (C, C) x 5, (B, B) x 4, (C, B) x 1 (10 seeds):
# the policies turn deterministic before climbing from (C, C) to (B, B); with 0.1: (B, B) x 10.
MAA2C_CLIMBING = ["algo.policy.entropy_coef=0.1"]
