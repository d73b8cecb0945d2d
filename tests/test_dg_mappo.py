"""DG-MAPPO (algo=dg_mappo): the actor-critic learner with the D-GAT agent input
(netmarl/algos/policy/inputs.py); the D-GAT equations themselves are in test_dgat.py."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netmarl.cli import compose
from netmarl.comm import is_connected
from netmarl.nets.dgat import disagreement
from netmarl.train.runner import Trainer

# three agents (a graph that can change), one-step episodes with non-zero team rewards (the critic
# learns in one iteration), small nets: one compile shared by the tests
TINY = ["algo=dg_mappo", "env=matrix:cycle-climbing-3", "algo.agent=mlp",
        "algo.hidden=8", "algo.dgat.width=8", "algo.policy.epochs=2", "run.num_envs=2", "run.progress=false"]


# agents that see different observations (on a matrix game every ô is the same, so eq. 11 is 0)
LBF = ["env=lbf:Foraging-6x6-3p-1f", "env.options.max_steps=3"]


def _iteration(*overrides):
    trainer = Trainer(compose([*TINY, *overrides]))
    carry = jax.tree.map(lambda x: x[0], trainer.init_seeds())
    new, stats = jax.jit(trainer.iteration)(carry, trainer.zero_stats())
    return trainer, carry, new, stats


def test_one_iteration_trains_every_part_and_averages_psi():
    """Actor, critic and ψ all move; after the update's neighbour averaging over a connected graph
    the agents' ψ are closer than independent local steps leave them; diagnostics are logged."""
    trainer, carry, new, stats = _iteration()
    params, before = new.learner.params, carry.learner.params
    for part in ("actor", "critic", "dgat"):
        assert any(not np.allclose(x, y) for x, y in zip(jax.tree.leaves(params[part]),
                                                         jax.tree.leaves(before[part]))), part
    learn = stats.learn
    updates = float(stats.updates)
    assert updates == 2 and all(np.isfinite(float(v)) for v in learn)
    assert float(learn.floats_sent) > 0 and 0 < float(learn.mean_degree) / updates <= 2
    assert float(learn.attention_entropy) > 0
    _, _, alone, _ = _iteration("algo.dgat.averaging=none")
    assert float(disagreement(params["dgat"])) < float(disagreement(alone.learner.params["dgat"]))


def test_episodes_carry_the_graphs_the_agents_acted_on():
    trainer = Trainer(compose([*TINY, "run.num_envs=16"]))
    carry = jax.tree.map(lambda x: x[0], trainer.init_seeds())
    episodes = jax.jit(trainer.collect)(carry)
    graph = np.asarray(episodes.graph)  # [E, T+1, N, N]
    assert graph.shape == (16, 2, 3, 3) and graph.dtype == bool
    assert (graph == np.swapaxes(graph, -1, -2)).all() and not graph[..., np.arange(3), np.arange(3)].any()
    assert np.asarray(is_connected(graph)).all()  # comm.connected=true
    assert len({g.tobytes() for g in graph.reshape(-1, 3, 3)}) > 1  # links drop from step to step
    learner = trainer.learner
    key = jax.random.key(3)
    np.testing.assert_array_equal(learner.graph(key), learner.graph(key))  # a pure function of the key


# 20-25 s (two compiles): slow; test_one_iteration_trains_every_part_and_averages_psi keeps the
# regulariser's path in the default suite
@pytest.mark.slow
def test_the_consensus_weight_scales_the_regulariser_only():
    """α_consensus = 0 (the ablation) leaves the logged disagreement of ô but drops its gradient: in a
    single update (one epoch) ψ moves differently and the actor the same, to float rounding."""
    _, carry, with_reg, _ = _iteration(*LBF, "algo.policy.epochs=1")
    _, _, without, stats = _iteration(*LBF, "algo.policy.epochs=1", "algo.dgat.alpha_consensus=0")
    assert float(stats.learn.consensus) > 0
    assert not np.allclose(with_reg.learner.params["dgat"].w, without.learner.params["dgat"].w)
    np.testing.assert_allclose(with_reg.learner.params["actor"]["params"]["Dense_0"]["kernel"],
                               without.learner.params["actor"]["params"]["Dense_0"]["kernel"], atol=1e-6)


@pytest.mark.parametrize("override,message", [
    ("algo.shared_params=true", "own D-GAT"), ("algo.policy.critic_input=joint_action", "state-value"),
    ("algo.dgat.averaging=mean", "accepted: degree, metropolis, none"), ("algo.dgat.hops=-1", "algo.dgat.hops"),
])
def test_bad_dg_mappo_settings_are_refused(override, message):
    overrides = [*TINY, override] + (["algo.policy.advantage=coma"] if "joint_action" in override else [])
    with pytest.raises(ValueError, match=message):
        Trainer(compose(overrides))


def test_a_recurrent_actor_with_a_recurrent_critic_is_refused_naming_the_hang():
    with pytest.raises(ValueError, match="critic_net=mlp"):
        Trainer(compose([*TINY, "algo.agent=gru", "algo.policy.critic_net=gru"]))


def test_the_shipped_config_is_the_seeds_table_2():
    config = compose(["algo=dg_mappo"]).algo
    assert (config.lr, config.policy.entropy_coef, config.grad_clip, config.hidden) == (5e-4, 1e-3, 10.0, 128)
    assert (config.policy.gae_lambda, config.dgat.alpha_consensus, config.dgat.hops) == (0.95, 20.0, 0)
    assert config.policy.agent_input == "dgat" and not config.shared_params
    assert jnp.isclose(config.gamma, 0.98) and config.policy.clip_eps == 0.05


def test_table_3_presets_compose_on_known_maps():
    """experiment=dg-mappo-<map>: one preset per row of the seed's Table 3, each on a SMAC map we
    have, with the row's epochs and clip (3s5z_vs_3s6z is the one row with clip 0.2)."""
    from pathlib import Path

    from netmarl.envs.smax import SMAC_MAPS
    presets = sorted((Path(__file__).parents[1] / "netmarl/conf/experiment").glob("dg-mappo-*.yaml"))
    assert len(presets) == 10
    for preset in presets:
        config = compose(["algo=dg_mappo", f"experiment={preset.stem}"])
        assert config.env.name.removeprefix("smax:") in SMAC_MAPS
        assert config.algo.policy.epochs in (5, 10) and config.algo.policy.agent_input == "dgat"
        assert config.algo.policy.clip_eps == (0.2 if "3s5z" in preset.stem else 0.05)


def test_psi_gradients_are_clipped_per_agent():
    """ψ's leaves are [K, N, ...] (agent on axis 1): each agent's gradient is clipped on its own norm
    over all its hops, never by the other agents' (a process only has its own)."""
    from netmarl.algos.value.learner import clip_by_agent_norm
    scale = jnp.array([10.0, 0.1, 1.0])[None, :, None]  # agent norms over 2 hops x 4: 56.6, 0.57, 5.7
    clipped, _ = clip_by_agent_norm(1.0, axis=1).update({"w": jnp.ones((2, 3, 4)) * scale}, None)
    norms = np.linalg.norm(np.moveaxis(np.asarray(clipped["w"]), 1, 0).reshape(3, -1), axis=1)
    np.testing.assert_allclose(norms, [1.0, 0.1 * np.sqrt(8), 1.0], rtol=1e-6)


def test_agent_processes_update_on_the_simulators_bucket():
    """algo.policy.length_buckets under MPI: agent i cuts its episodes and targets to the bucket the
    simulator's update_epochs picks (the shortest ceil(T·b/B) holding the longest episode)."""
    from netmarl.algos.policy.learner import PolicyLearner
    from netmarl.distributed.policy_learner import AgentBatch, AgentPolicy, Targets
    from netmarl.envs import make
    env = make("jaxmarl:MPE_simple_spread_v3", time_limit=8)
    config = compose(["algo=dg_mappo", "env=jaxmarl:MPE_simple_spread_v3", "algo.policy.length_buckets=4"])
    agent = AgentPolicy(PolicyLearner(config.algo, env), index=1, num_envs=2)
    k, t, n = 2, 8, env.num_agents
    filled = np.arange(t) < np.array([[5], [3]])  # the longest episode: 5 steps -> bucket 6 of 2, 4, 6, 8
    batch = AgentBatch(np.zeros((k, t + 1, 1, env.obs_dim)), np.ones((k, t + 1, 1, env.num_actions), bool),
                       np.zeros((k, t, 1), np.int32), np.zeros((k, t, 1)), np.zeros((k, t)),
                       np.zeros((k, t), bool), filled, np.zeros((k, t + 1, n, n), bool))
    targets = Targets(*(np.zeros((k, t, 1)) for _ in Targets._fields))
    cut, cut_targets = agent._prefix(batch, targets)
    assert cut.obs.shape[1] == cut.graph.shape[1] == 7 and cut.filled.shape == (2, 6)
    assert all(x.shape == (2, 6, 1) for x in cut_targets)
    np.testing.assert_array_equal(cut.filled, filled[:, :6])
