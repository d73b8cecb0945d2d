"""Training protocols: i.i.d. transition replay, PairVDN's shuffled epoch pass, warm-up, SGD, and
time limits treated as terminal."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netmarl.algos.value.learner import QLearner
from netmarl.config import AlgoConfig, EnvConfig, RunConfig, TrainConfig
from netmarl.envs import make
from netmarl.train.replay import (add_episodes, init_replay, sample_transitions, shuffled_pass,
                                  stored_transitions, transitions_at)
from netmarl.train.rollout import collect_episode
from netmarl.train.runner import Trainer, _zero_stats

ENV = make("lbf:Foraging-5x5-2p-1f", max_steps=6)


def _replay(episodes: int = 4, capacity: int = 8, **algo):
    learner = QLearner(AlgoConfig(agent="mlp", hidden=8, **algo), ENV)
    params = learner.init(jax.random.key(0)).params
    play = jax.vmap(collect_episode, (None, None, None, None, 0))
    batch = play(ENV, learner, params, jnp.float32(1.0), jax.random.split(jax.random.key(1), episodes))
    replay = init_replay(jax.tree.map(lambda x: jnp.zeros_like(x[0]), batch), capacity)
    return add_episodes(replay, batch), batch


def test_sampled_transitions_are_stored_steps_with_their_next_observation():
    replay, episodes = _replay()
    batch = sample_transitions(replay, jax.random.key(2), 10)
    assert batch.obs.shape[:2] == (10, 2) and batch.action.shape[:2] == (10, 1)
    assert bool(batch.filled.all())  # never a padding step or an empty slot
    obs, nxt = np.asarray(episodes.obs), np.asarray(batch.obs)
    for b in range(10):  # each (o_t, o_t+1) pair is consecutive in some stored episode
        assert any(np.array_equal(nxt[b, 0], obs[e, t]) and np.array_equal(nxt[b, 1], obs[e, t + 1])
                   for e in range(4) for t in range(obs.shape[1] - 1))


def test_shuffled_pass_visits_every_stored_transition_once_and_drops_the_partial_batch():
    replay, _ = _replay()
    stored = int(stored_transitions(replay).sum())
    order, batches = shuffled_pass(replay, jax.random.key(3), 5)
    assert int(batches) == stored // 5
    visited = np.asarray(order[: int(batches) * 5])
    assert len(set(visited.tolist())) == len(visited)
    assert bool(stored_transitions(replay).ravel()[visited].all())
    other, _ = shuffled_pass(replay, jax.random.key(4), 5)
    assert not np.array_equal(order[:stored], other[:stored])  # a fresh permutation per epoch
    assert transitions_at(replay, jnp.asarray(visited[:5])).obs.shape[:2] == (5, 2)


def test_time_limit_as_terminal_when_asked():
    learner = QLearner(AlgoConfig(agent="mlp", hidden=8, bootstrap_truncation=False), ENV)
    params = learner.init(jax.random.key(0)).params
    episode = collect_episode(ENV, learner, params, jnp.float32(1.0), jax.random.key(5))
    last = int(episode.filled.sum()) - 1
    assert bool(episode.terminated[last])  # ended by food collected or by the time limit


def test_epoch_pass_runs_one_pass_per_iteration_after_the_warm_up():
    config = TrainConfig(
        algo=AlgoConfig(agent="mlp", hidden=8, batch_size=4, buffer_size=8, replay_unit="transition",
                        epoch_pass=True, learn_start=30, optimizer="sgd", lr=1e-3, grad_clip=0.0,
                        target_tau=0.01, target_update_interval=1),
        env=EnvConfig("lbf:Foraging-5x5-2p-1f", {"max_steps": 6}), run=RunConfig(progress=False))
    trainer = Trainer(config)
    carry = jax.tree.map(lambda x: x[0], trainer.init_seeds())
    iteration = jax.jit(trainer.iteration)  # one compile instead of 12 op-by-op iterations (2x faster)
    seen = []
    for _ in range(12):
        before = int(carry.env_steps)
        carry, stats = iteration(carry, _zero_stats())
        stored = int(stored_transitions(carry.replay).sum())
        seen.append((before, int(stats.updates), stored))
        assert int(stats.updates) == (0 if before < 30 else stored // 4), seen  # warm-up, then a pass
    assert seen[-1][1] > 0


@pytest.mark.parametrize("change,message", [
    (dict(agent="gru"), "feed-forward"), (dict(replay_unit="step"), "accepted: episode, transition"),
    (dict(replay_unit="episode", epoch_pass=True), "epoch_pass"), (dict(optimizer="rmsprop"), "adam, sgd")])
def test_protocol_options_are_checked(change, message):
    with pytest.raises(ValueError, match=message):
        QLearner(AlgoConfig(**{**dict(agent="mlp", replay_unit="transition"), **change}), ENV)


def test_eval_options_change_only_the_evaluation_environment():
    config = TrainConfig(algo=AlgoConfig(agent="mlp"),
                         env=EnvConfig("lbf:Foraging-5x5-2p-1f", {"max_steps": 6}, {"max_steps": 20}),
                         run=RunConfig(progress=False))
    trainer = Trainer(config)
    assert trainer.env.max_steps == 6 and trainer.eval_env.max_steps == 20
    assert trainer.eval_env.obs_dim == trainer.env.obs_dim
