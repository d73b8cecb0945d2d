"""HostEnv: the real lbforaging package through the adapter, a fake PettingZoo env, action checks."""
import gymnasium
import jax
import numpy as np
import pytest
from gymnasium import spaces

import lbforaging  # noqa: F401  (registers the Foraging-*-v3 ids)
from netmarl.envs import make
from netmarl.envs.adapters import HostEnv, lbforaging_avail
from netmarl.envs.lbf import LOAD
from tests.lbf_oracle import load_state, package_env

DTYPES = dict(obs=np.float32, state=np.float32, avail=np.bool_, reward=np.float32,
              team_reward=np.float32, terminated=np.bool_, truncated=np.bool_)


def check_format(ts, n, a, o, s):
    shapes = dict(obs=(n, o), state=(s,), avail=(n, a), reward=(n,), team_reward=(),
                  terminated=(), truncated=())
    for field, dtype in DTYPES.items():
        value = getattr(ts, field)
        assert isinstance(value, np.ndarray), field
        assert value.dtype == dtype and value.shape == shapes[field], (field, value.dtype, value.shape)
    np.testing.assert_allclose(ts.team_reward, ts.reward.sum(), rtol=1e-6)


def test_lbforaging_shapes_dtypes_and_team_reward():
    env = HostEnv.from_gymnasium(gymnasium.make("Foraging-8x8-2p-2f-v3").unwrapped)
    assert (env.num_agents, env.num_actions, env.obs_dim, env.state_dim) == (2, 6, 12, 24)
    ts = env.reset(seed=3)
    check_format(ts, 2, 6, 12, 24)
    assert ts.avail.all() and not ts.done  # the package gives no masks: all True without avail_fn
    np.testing.assert_array_equal(ts.state, ts.obs.ravel())  # no state(): concatenated observations
    rng = np.random.default_rng(0)
    for _ in range(50):
        ts = env.step(rng.integers(0, 6, 2))
        check_format(ts, 2, 6, 12, 24)
        np.testing.assert_array_equal(ts.state, ts.obs.ravel())
        if ts.done:
            break
    assert bool(ts.done) and not ts.truncated  # the package's flags pass through without time_limit
    with pytest.raises(NotImplementedError, match="render_mode='rgb_array'"):
        env.render()


def test_lbforaging_package_equals_netmarl_episode_by_episode():
    env = make("lbf:Foraging-8x8-3p-2f")
    penv = package_env(env)
    host = HostEnv.from_gymnasium(penv, time_limit=env.max_steps, avail_fn=lbforaging_avail)
    rng = np.random.default_rng(1)
    collected = terminated = 0
    for episode in range(12):
        state, ts = env.reset(jax.random.key(episode))
        host.reset(seed=episode)
        load_state(penv, env, state)
        np.testing.assert_array_equal(np.stack(penv._make_gym_obs()), ts.obs)
        np.testing.assert_array_equal(lbforaging_avail(penv), ts.avail)
        for t in range(env.max_steps):
            # Random actions, LOAD-heavy next to food, so that foods get collected.
            actions = rng.integers(0, 6, env.num_agents)
            actions = np.where(np.asarray(ts.avail[:, LOAD]) & (rng.random(env.num_agents) < 0.8),
                               LOAD, actions)
            state, ts = env.step(jax.random.key(t), state, actions)
            hts = host.step(actions)
            where = f"episode {episode} step {t}"
            np.testing.assert_array_equal(hts.obs, ts.obs, err_msg=where)
            np.testing.assert_allclose(hts.reward, ts.reward, rtol=1e-6, atol=1e-7, err_msg=where)
            np.testing.assert_allclose(hts.team_reward, ts.team_reward, rtol=1e-6, err_msg=where)
            np.testing.assert_array_equal(hts.avail, ts.avail, err_msg=where)
            assert bool(hts.done) == bool(ts.terminated | ts.truncated), where
            if not (t + 1 == env.max_steps and ts.terminated):  # the one step the flags can't split
                assert (bool(hts.terminated), bool(hts.truncated)) == (bool(ts.terminated),
                                                                       bool(ts.truncated)), where
            collected += int((hts.reward > 0).any())
            if hts.done:
                break
        terminated += int(hts.terminated)
    assert collected > 0 and terminated > 0, "no food collected or no episode ended by collection"


class FakeParallelEnv:
    """A PettingZoo-style ParallelEnv, two agents, 3 actions. Agent "b" may not use action 2 while
    t < 2; rewards are action + 10 * (agent is "b"); "a" terminates at step 2 (then leaves) and "b"
    is truncated at step 3."""

    possible_agents = ["a", "b"]
    state_space = spaces.Box(-1.0, 10.0, (3,))

    def __init__(self, render_mode=None):
        self.render_mode, self.agents, self.t, self.seed, self.sent = render_mode, [], 0, None, []

    def observation_space(self, agent):
        return spaces.Box(0.0, 10.0, (2, 2))

    def action_space(self, agent):
        return spaces.Discrete(3)

    def state(self):
        return np.array([self.t, -1.0, len(self.agents)])

    def reset(self, seed=None, options=None):
        self.agents, self.t, self.seed = list(self.possible_agents), 0, seed
        return self._obs(), self._infos()

    def step(self, actions):
        assert set(actions) == set(self.agents), (actions, self.agents)
        self.sent.append(dict(actions))
        self.t += 1
        rewards = {a: float(actions[a]) + 10.0 * (a == "b") for a in self.agents}
        terms = {a: a == "a" and self.t >= 2 for a in self.agents}
        truncs = {a: self.t >= 3 for a in self.agents}
        obs, infos = self._obs(), self._infos()
        self.agents = [a for a in self.agents if not (terms[a] or truncs[a])]
        return obs, rewards, terms, truncs, infos

    def render(self):
        return np.zeros((4, 5, 3), np.uint8)

    def _obs(self):
        return {a: np.full((2, 2), self.t + i, np.float32) for i, a in enumerate(self.agents)}

    def _infos(self):
        return {"a": {}, "b": {"action_mask": np.array([1, 1, self.t >= 2], np.int8)}}


def test_fake_pettingzoo_masks_rewards_state_and_agents_leaving():
    fake = FakeParallelEnv(render_mode="rgb_array")
    env = HostEnv.from_pettingzoo(fake)
    assert env.agents == ("a", "b")
    assert (env.num_agents, env.num_actions, env.obs_dim, env.state_dim) == (2, 3, 4, 3)
    ts = env.reset(seed=7)
    assert fake.seed == 7
    check_format(ts, 2, 3, 4, 3)
    np.testing.assert_array_equal(ts.avail, [[True, True, True], [True, True, False]])
    np.testing.assert_array_equal(ts.obs, [[0] * 4, [1] * 4])
    np.testing.assert_array_equal(ts.state, [0, -1, 2])  # the env's own state()
    ts = env.step([2, 1])
    check_format(ts, 2, 3, 4, 3)
    np.testing.assert_array_equal(ts.reward, [2, 11])  # per-agent rewards are used as given
    assert ts.team_reward == 13 and not ts.done
    ts = env.step(np.array([1, 2]))  # "a" terminates; "b"'s action 2 is now available
    np.testing.assert_array_equal(ts.avail, [[True, True, True], [True, True, True]])
    assert not ts.done and ts.team_reward == 13
    ts = env.step([0, 0])  # "a" has left: zero obs and reward, its action is not sent
    assert fake.sent[-1] == {"b": 0}
    np.testing.assert_array_equal(ts.obs[0], 0)
    np.testing.assert_array_equal(ts.reward, [0, 10])
    np.testing.assert_array_equal(ts.state, [3, -1, 0])  # state() after everyone left
    assert bool(ts.truncated) and not ts.terminated
    assert env.render().shape == (4, 5, 3)


class TeamRewardEnv:
    """A Gymnasium-style Tuple env, 3 agents, with one scalar team reward and info masks [N, A]."""

    action_space = spaces.Tuple([spaces.Discrete(4)] * 3)
    observation_space = spaces.Tuple([spaces.Box(0.0, 1.0, (5,))] * 3)

    def reset(self, seed=None):
        self.t = 0
        return tuple(np.zeros(5) for _ in range(3)), {"action_mask": np.eye(3, 4, dtype=bool)}

    def step(self, actions):
        self.t += 1
        obs = tuple(np.full(5, a / 4) for a in actions)
        return obs, 3.0 * sum(actions), self.t == 2, self.t == 2, {}


def test_team_reward_is_shared_and_flags_pass_through():
    env = HostEnv.from_gymnasium(TeamRewardEnv())
    ts = env.reset()
    check_format(ts, 3, 4, 5, 15)
    np.testing.assert_array_equal(ts.avail, np.eye(3, 4, dtype=bool))
    ts = env.step([1, 2, 3])
    check_format(ts, 3, 4, 5, 15)
    np.testing.assert_allclose(ts.reward, [6, 6, 6])  # R / N each
    assert ts.team_reward == 18 and ts.avail.all() and not ts.done
    ts = env.step([0, 0, 1])
    assert bool(ts.terminated) and bool(ts.truncated)  # both reported, unchanged
    env = HostEnv.from_gymnasium(TeamRewardEnv(), time_limit=1)
    env.reset()
    ts = env.step([0, 0, 0])
    assert bool(ts.truncated) and not ts.terminated


@pytest.mark.parametrize("actions,match", [
    ([0, 1], r"actions \[0, 1\] have shape \(2,\); accepted: 3 integers in \[0, 5\]"),
    ([[0, 1, 2]], r"actions \[\[0, 1, 2\]\] have shape \(1, 3\)"),
    ([0, 6, -1], r"action\(s\) \[6, -1\] out of range; accepted: 3 integers in \[0, 5\]"),
    ([0.0, 1.5, 2.0], r"actions \[0.0, 1.5, 2.0\] have dtype float64"),
    (np.array([True, False, True]), r"actions \[True, False, True\] have dtype bool"),
])
def test_bad_actions_raise_naming_the_value(actions, match):
    env = HostEnv.from_gymnasium(package_env(make("lbf:Foraging-5x5-3p-1f")))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(actions)


def test_bad_spaces_and_rewards_raise():
    class Bad(TeamRewardEnv):
        action_space = spaces.Tuple([spaces.Discrete(4), spaces.Discrete(5), spaces.Discrete(4)])
    with pytest.raises(ValueError, match="same A for every agent"):
        HostEnv.from_gymnasium(Bad())
    with pytest.raises(ValueError, match="accepted: Tuple spaces"):
        HostEnv.from_gymnasium(gymnasium.make("CartPole-v1"))

    class WrongRewards(TeamRewardEnv):
        def step(self, actions):
            return super().step(actions)[0], [1.0, 2.0], False, False, {}
    env = HostEnv.from_gymnasium(WrongRewards())
    env.reset()
    with pytest.raises(ValueError, match=r"rewards of shape \(2,\)"):
        env.step([0, 0, 0])
