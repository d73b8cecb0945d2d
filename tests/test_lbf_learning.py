"""Short learning runs on a small cooperative LBF task, with thresholds a broken learner fails."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netmarl.config import AlgoConfig, CommConfig, EnvConfig, RunConfig, TrainConfig
from netmarl.train.rollout import collect_episode, episode_return
from netmarl.train.runner import Trainer

# lbf-tiny: 5x5 grid, 2 agents, 1 food that needs both agents (coop); 25-step episodes. gamma 0.9:
# with 0.99 the action gaps on a 5x5 grid are ~1 % of the values and feed-forward agents need
# millions of steps (see the issue note); 0.9 keeps the test within its time budget.
ENV = EnvConfig("lbf-tiny", {"max_steps": 25})
ALGO = dict(agent="mlp", gamma=0.9, lr=1e-3, eps_anneal_steps=30_000, target_update_interval=50)


def _learning_curve(team_td: str, steps: int) -> np.ndarray:
    """Mean greedy return over 2 seeds (32 episodes each) at 10 evaluation points."""
    config = TrainConfig(algo=AlgoConfig(name=team_td, team_td=team_td, **ALGO), env=ENV,
                         run=RunConfig(total_steps=steps, seeds=2, eval_episodes=32, progress=False))
    trainer = Trainer(config)
    carry, curve = trainer.init_seeds(), []
    for point in range(1, 11):
        carry, _ = trainer.run_chunk(carry, jnp.int32(point * steps // 10))
        curve.append(float(trainer.evaluate(carry, jnp.int32(point)).mean()))
    return np.array(curve)


def test_random_policy_scores_below_0_1():
    trainer = Trainer(TrainConfig(algo=AlgoConfig(**ALGO), env=ENV))
    params = trainer.learner.init(jax.random.PRNGKey(0)).params
    play = jax.vmap(lambda k: episode_return(collect_episode(trainer.env, trainer.learner, params,
                                                            jnp.float32(1.0), k)))
    assert float(play(jax.random.split(jax.random.PRNGKey(1), 2000)).mean()) < 0.1


@pytest.mark.slow
@pytest.mark.parametrize("team_td,steps", [("vdn", 200_000), ("iql", 300_000)])
def test_vdn_and_iql_learn_small_coop_lbf(team_td, steps):
    curve = _learning_curve(team_td, steps)
    assert curve[0] < 0.2, curve  # not solved before training
    assert curve.max() >= 0.8, curve  # the paper's metric: maximum over evaluation points


# Networked agents on a 3-agent task: Foraging-5x5-3p-1f-coop (one food that needs all three agents),
# 25-step episodes, gamma 0.9, lr 1e-3, epsilon annealed over 80k steps, 8 envs per iteration, 4
# updates each, standardised rewards, 200k steps, 6 seeds. Calibrated 2026-12-02 (mean over 6 seeds of
# the greedy return, max over 10 evaluation points; untrained greedy ~0.02):
#   seeds 0-5 (the test):  DVDN 0.885, IQL 0.823, VDN 0.870 (per-seed minima 0.84 / 0.75 / 0.75)
#   seeds 6-11 (a check):  DVDN 0.906, IQL 0.870
# so DVDN leads IQL by 0.04-0.06 on both seed sets; the test asks for 0.02. With epsilon annealed over
# 30k steps instead, the order depended on the seeds (a DVDN seed could miss the joint LOAD for good:
# seeds 3-5 gave DVDN 0.56, IQL 0.78); 80k steps of exploration removed those all-or-nothing seeds.
# On Foraging-6x6-3p-2f IQL matches DVDN (docs/results/dvdn_lbf.md).
NET_ENV = EnvConfig("lbf:Foraging-5x5-3p-1f-coop", {"max_steps": 25})
NET_ALGO = dict(agent="mlp", gamma=0.9, lr=1e-3, eps_anneal_steps=80_000, target_update_interval=50,
                updates_per_iteration=4, standardise_rewards=True)


def _net_curve(name: str, **algo) -> np.ndarray:
    """Mean greedy return over 6 seeds (32 episodes each) at 10 evaluation points, 200k steps."""
    config = TrainConfig(algo=AlgoConfig(name=name, team_td=name, **NET_ALGO, **algo), env=NET_ENV,
                         run=RunConfig(total_steps=200_000, seeds=6, num_envs=8, eval_episodes=32,
                                       progress=False))
    trainer = Trainer(config)
    carry, curve = trainer.init_seeds(), []
    for point in range(1, 11):
        carry, _ = trainer.run_chunk(carry, jnp.int32(point * 20_000))
        curve.append(float(trainer.evaluate(carry, jnp.int32(point)).mean()))
    return np.array(curve)


@pytest.mark.slow
def test_dvdn_with_one_round_and_half_the_links_down_beats_iql_and_nears_vdn():
    dvdn = _net_curve("dvdn", comm=CommConfig(p_drop=0.5, rounds=1, connected=True))
    iql, vdn = _net_curve("iql"), _net_curve("vdn")
    assert dvdn.max() >= 0.75, dvdn  # far above the untrained policy (0.02)
    assert dvdn.max() >= iql.max() + 0.02, (dvdn, iql)  # beats IQL's maximum average return
    assert dvdn.max() >= vdn.max() - 0.1, (dvdn, vdn)  # within reach of exact VDN
