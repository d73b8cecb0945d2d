"""DVDN and DVDN (GT) in the learner: the invariants of specs/dvdn.md, errors, and a smoke run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netmarl.algos.value.learner import QLearner
from netmarl.config import AlgoConfig, CommConfig, EnvConfig, RunConfig, TrainConfig
from netmarl.envs import make
from netmarl.train.rollout import collect_episode
from netmarl.train.runner import Trainer

ENV = make("lbf:Foraging-5x5-3p-1f", max_steps=8)
COMPLETE = CommConfig(topology="complete", p_drop=0.0, rounds=1)  # W = 11ᵀ/N every round


def _batch(learner, params, n=6):
    keys = jax.random.split(jax.random.key(3), n)
    play = jax.vmap(collect_episode, (None, None, None, None, 0))
    batch = play(ENV, learner, params, jnp.float32(1.0), keys)
    return batch._replace(reward=batch.reward + 0.1)  # non-zero rewards everywhere


def _grads(learner, state, batch, weights):
    trainable = {"agents": state.params, "mixer": state.mixer_params}
    return jax.grad(learner.loss, has_aux=True)(trainable, state, batch, weights)[0]["agents"]


def _algo(**kw):
    return AlgoConfig(agent="mlp", hidden=16, **kw)


def test_dvdn_on_complete_graph_has_vdn_gradients():
    dvdn, vdn = QLearner(_algo(team_td="dvdn", comm=COMPLETE), ENV), QLearner(_algo(team_td="vdn"), ENV)
    state = dvdn.init(jax.random.key(0))
    batch = _batch(dvdn, state.params)
    weights = dvdn.schedule.sample_rounds(state.graph_key, 0, 1)
    np.testing.assert_allclose(weights[0], np.full((3, 3), 1 / 3), rtol=1e-6)
    for g_dvdn, g_vdn in zip(jax.tree.leaves(_grads(dvdn, state, batch, weights)),
                             jax.tree.leaves(_grads(vdn, state, batch, None))):
        np.testing.assert_allclose(g_dvdn, g_vdn, rtol=1e-4, atol=1e-6)


def test_dvdn_without_communication_has_iql_gradients_times_n():
    """W = I: Δ̂_i = N·δ_i, so the gradient is N times IQL's (the same direction; Adam is invariant)."""
    dvdn, iql = QLearner(_algo(team_td="dvdn", comm=COMPLETE), ENV), QLearner(_algo(team_td="iql"), ENV)
    state = dvdn.init(jax.random.key(1))
    batch = _batch(dvdn, state.params)
    alone = jnp.eye(3)[None]
    for g_dvdn, g_iql in zip(jax.tree.leaves(_grads(dvdn, state, batch, alone)),
                             jax.tree.leaves(_grads(iql, state, batch, None))):
        np.testing.assert_allclose(g_dvdn, 3 * g_iql, rtol=1e-4, atol=1e-6)


def test_gradient_tracking_on_complete_graph_is_sgd_on_the_average_loss():
    eta = 0.05
    algo = _algo(team_td="dvdn", comm=COMPLETE, gradient_tracking=True, lr=eta, grad_clip=1e9,
                 target_update_interval=1000)
    learner = QLearner(algo, ENV)
    state = learner.init(jax.random.key(2))
    batch = _batch(learner, state.params)
    shared = jax.tree.map(lambda x: x[0], state.params)
    learn = jax.jit(learner.learn)
    for _ in range(3):
        weights = learner.schedule.sample_rounds(state.graph_key, state.updates, 1)
        g = _grads(learner, state, batch, weights)  # per-agent gradients at the shared point
        shared = jax.tree.map(lambda w, gi: w - eta * gi.mean(0), shared, g)
        state, metrics = learn(state, batch)
        for leaf, ref in zip(jax.tree.leaves(state.params), jax.tree.leaves(shared)):
            np.testing.assert_allclose(leaf, np.broadcast_to(ref, leaf.shape), rtol=2e-4, atol=1e-6)
        assert float(metrics.disagreement) < 1e-6 and float(metrics.jtd_error) < 1e-5


@pytest.mark.parametrize("change,message", [
    (dict(comm=CommConfig(p_drop=1.0)), "p_drop"),
    (dict(gradient_tracking=True, shared_params=True), "separate parameters"),
    (dict(comm=CommConfig(topology="torus")), "torus"),
    (dict(gt_optimizer="rmsprop"), "accepted: sgd, adam"),
])
def test_impossible_requests_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        QLearner(_algo(team_td="dvdn", **change), ENV)


def test_connected_request_on_disconnected_user_graph():
    adjacency = [[0, 1, 0], [1, 0, 0], [0, 0, 0]]
    from netmarl.comm import make_schedule
    with pytest.raises(ValueError, match="connected"):
        make_schedule("user", 3, connected=True, adjacency=adjacency)


@pytest.mark.parametrize("algo", ["dvdn", "dvdn_gt"])
def test_networked_runs_log_their_diagnostics(algo):
    gt = algo == "dvdn_gt"
    config = TrainConfig(
        algo=_algo(name=algo, team_td="dvdn", gradient_tracking=gt, lr=0.05 if gt else 5e-4,
                   buffer_size=32, batch_size=8, comm=CommConfig(p_drop=0.5, rounds=2)),
        env=EnvConfig("lbf:Foraging-5x5-3p-1f", {"max_steps": 8}),
        run=RunConfig(seeds=2, progress=False))
    trainer = Trainer(config)
    carry, stats = trainer.run_chunk(trainer.init_seeds(), jnp.int32(400))
    per_update = np.asarray(stats.updates)
    degree = np.asarray(stats.learn.mean_degree) / per_update
    assert np.all((degree > 0) & (degree <= 2)) and np.allclose(np.asarray(stats.learn.connected) / per_update, 1)
    assert np.all(np.asarray(stats.learn.jtd_error) > 0)  # one round on sparse graphs is inexact
    # per round each agent sends one TD per sampled transition (8 episodes x 8 steps) per neighbour
    sent = np.asarray(stats.learn.floats_sent) / per_update
    td_floats = 2 * 64 * degree  # rounds=2
    if gt:
        assert np.all(sent > td_floats)  # plus parameters and trackers
    else:
        np.testing.assert_allclose(sent, td_floats, rtol=0.05)
    if gt:  # agents start equal and stay close under tracking
        assert np.all(np.asarray(stats.learn.disagreement) / per_update < 1.0)


def test_heterogeneous_agents_refuse_gradient_tracking_and_sharing_but_run_dvdn():
    from netmarl.envs.matrix import MatrixGame, _to_tuple
    # Agent 0 has 2 actions, agent 1 has 3, agent 2 has 2: a heterogeneous 3-player game.
    payoffs = np.random.default_rng(0).integers(0, 5, (3, 2, 3, 2)).astype(float)
    env = MatrixGame(_to_tuple(payoffs), game="hetero")
    assert not env.homogeneous and env.agent_num_actions == (2, 3, 2)
    for change, name in ((dict(gradient_tracking=True), "gradient_tracking"),
                         (dict(shared_params=True), "shared_params")):
        with pytest.raises(ValueError, match=rf"{name} needs homogeneous agents.*\[2, 3, 2\]"):
            QLearner(_algo(team_td="dvdn", **change), env)
    learner = QLearner(_algo(team_td="dvdn"), env)  # separate parameters: fine
    params = learner.init(jax.random.key(0)).params
    episode = collect_episode(env, learner, params, jnp.float32(1.0), jax.random.key(1))
    assert np.all(np.asarray(episode.action) < np.array([2, 3, 2]))  # only available actions
    with pytest.raises(ValueError, match=r"action\(s\) \[2\] of agent\(s\) \[0\]"):
        env.step(jax.random.key(0), env.reset(jax.random.key(0))[0], np.array([2, 0, 0]))
