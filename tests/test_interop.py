"""netmarl environments for other libraries (netmarl/envs/interop.py): PettingZoo's own API and seed
tests over every registered environment, the Gymnasium vector env against the native env step by
step, seeding, and errors on bad input."""
import subprocess
import sys
import warnings

import jax
import numpy as np
import pytest

pytest.importorskip("pettingzoo", reason="the interop extra: pip install 'netmarl[interop]'")
from pettingzoo.test import parallel_api_test, parallel_seed_test  # noqa: E402

from netmarl.envs import make, step_autoreset, to_pettingzoo, to_vector  # noqa: E402
from tests.test_envs import CONTRACT_ENVS, PRESET_VARIANTS, SLOW_COMPILE_ENVS, slow  # noqa: E402  (every env)

CYCLES = 30  # steps per episode of PettingZoo's tests (two episodes each); episodes may end sooner


@pytest.mark.parametrize("name", CONTRACT_ENVS + PRESET_VARIANTS + slow(SLOW_COMPILE_ENVS))
def test_pettingzoo_api_and_seed_tests_pass(name):
    native = make(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the API test reports most of its findings as warnings
        parallel_api_test(to_pettingzoo(native), num_cycles=CYCLES)
        parallel_seed_test(lambda: to_pettingzoo(native), num_cycles=CYCLES)
    env = to_pettingzoo(native)
    obs, _ = env.reset(seed=3)
    # the first observation is the native env's, with a reset key split from PRNGKey(seed)
    _, ts = native.reset(jax.random.split(jax.random.PRNGKey(3))[1])
    rng = np.random.default_rng(0)
    for _ in range(5):
        for i, agent in enumerate(env.possible_agents):
            assert env.observation_space(agent).contains(obs[agent]), (agent, obs[agent])
            o, a = native.agent_obs_dims[i], native.agent_num_actions[i]
            np.testing.assert_array_equal(obs[agent]["observation"], np.asarray(ts.obs)[i, :o])
            np.testing.assert_array_equal(obs[agent]["action_mask"], np.asarray(ts.avail)[i, :a])
        assert env.state().shape == (native.state_dim,)
        actions = {a: int(rng.choice(np.flatnonzero(obs[a]["action_mask"]))) for a in env.agents}
        obs, rewards, *_ = env.step(actions)
        ts = env._ts
        assert sum(rewards.values()) == pytest.approx(float(ts.team_reward), rel=1e-5, abs=1e-6)
        if not env.agents:
            break


def tiny():
    """A 5-step LBF; the tests below share its compiled functions (3 copies in vector envs)."""
    return make("lbf-tiny", max_steps=5)


def test_vector_env_equals_native_env_step_by_step():
    """3 copies of a 5-step LBF: every output equals the native env stepped with the documented
    keys (copy e: split(PRNGKey(seed), 3)[e]; each call splits off the key it uses)."""
    native = tiny()
    envs = to_vector(native, 3)
    obs, _ = envs.reset(seed=7)
    chains = list(jax.random.split(jax.random.PRNGKey(7), 3))
    states = []
    for e in range(3):
        chains[e], k = jax.random.split(chains[e])
        state, ts = native.reset(k)
        states.append(state)
        _assert_obs(obs, e, ts)
    envs.action_space.seed(0)
    ended = 0
    for t in range(12):
        actions = envs.action_space.sample()
        obs, rewards, terminated, truncated, infos = envs.step(actions)
        for e in range(3):
            chains[e], k = jax.random.split(chains[e])
            out = step_autoreset(native, k, states[e], actions[e])
            states[e] = out.state
            _assert_obs(obs, e, out.current)
            assert rewards[e] == out.transition.team_reward
            assert terminated[e] == out.transition.terminated and truncated[e] == out.transition.truncated
            np.testing.assert_array_equal(infos["agent_rewards"][e], out.transition.reward)
            assert infos["_final_obs"][e] == out.transition.done
            if out.transition.done:  # SAME_STEP: obs starts the next episode, final_obs ends this one
                _assert_obs(infos["final_obs"], e, out.transition)
                ended += 1
    assert ended >= 6  # every copy ended at least two 5-step episodes


def _assert_obs(obs: dict, e: int, ts) -> None:
    np.testing.assert_array_equal(obs["observation"][e], ts.obs)
    np.testing.assert_array_equal(obs["action_mask"][e], np.asarray(ts.avail, np.int8))
    np.testing.assert_array_equal(obs["state"][e], ts.state)


def test_vector_env_seeding_and_spaces():
    native = tiny()
    a, b = to_vector(native, 3), to_vector(native, 3)
    first, _ = a.reset(seed=11)
    np.testing.assert_array_equal(first["observation"], b.reset(seed=11)[0]["observation"])
    assert not np.array_equal(first["observation"], b.reset(seed=12)[0]["observation"])
    again, _ = a.reset()  # no seed: the key stream goes on, a new episode
    assert not np.array_equal(first["observation"], again["observation"])
    listed, _ = b.reset(seed=[5, 6, 7])  # one seed per copy: copy e uses PRNGKey(seed_e)
    _, ts = native.reset(jax.random.split(jax.random.PRNGKey(6))[1])
    np.testing.assert_array_equal(listed["observation"][1], ts.obs)
    assert a.observation_space.contains(first) and a.metadata["autoreset_mode"].value == "SameStep"
    actions = np.stack([a.single_action_space.sample() for _ in range(3)])
    for env in (a, b):
        env.reset(seed=1)
    np.testing.assert_array_equal(a.step(actions)[1], b.step(actions)[1])


def test_render():
    env = to_pettingzoo(tiny(), render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    envs = to_vector(tiny(), 3, render_mode="rgb_array")
    envs.reset(seed=0)
    frames = envs.render()
    assert len(frames) == 3 and frames[0].shape == frame.shape
    assert to_pettingzoo(make("matrix:climbing")).metadata["render_modes"] == []


def test_bad_input_is_named():
    native = tiny()
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match=f"num_envs={bad!r} must be a positive integer"):
            to_vector(native, bad)
    with pytest.raises(TypeError, match=r"got str 'lbf-tiny'; build one with netmarl.envs.make"):
        to_pettingzoo("lbf-tiny")
    with pytest.raises(ValueError, match=r"render_mode='human' is not supported .* accepted: None$"):
        to_pettingzoo(make("matrix:climbing"), render_mode="human")
    envs = to_vector(native, 3)
    with pytest.raises(RuntimeError, match="call reset"):
        envs.step(np.zeros((3, 2), np.int64))
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(3, 2\) \(num_envs, num_agents\), got int64 of shape \(2,\)"):
        envs.step(np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=r"action\(s\) \[6\] at \(env, agent\) \[\(1, 0\)\] out of range"):
        envs.step(np.array([[0, 0], [6, 0], [0, 0]]))
    with pytest.raises(ValueError, match="a list of num_envs = 3 integers"):
        envs.reset(seed=[1, 2])
    env = to_pettingzoo(native)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step({"agent_0": 0, "agent_1": 0})
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"missing \['agent_1'\], unknown or finished \['agent_7'\]"):
        env.step({"agent_0": 0, "agent_7": 0})
    with pytest.raises(ValueError, match=r"action\(s\) \[9\] of agent\(s\) \[1\] out of range"):
        env.step({"agent_0": 0, "agent_1": 9})
    with pytest.raises(KeyError, match="unknown agent 'agent_9'"):
        env.action_space("agent_9")


def test_import_netmarl_does_not_import_pettingzoo_gymnasium_loggers_or_cluster_engines():
    """Optional packages load only when used: importing netmarl, its CLI, the reproduction and its
    backends (netmarl/backends.py) must not import them (start-up time)."""
    code = ("import sys, netmarl, netmarl.envs, netmarl.train.loop, netmarl.cli, netmarl.reproduce, "
            "netmarl.backends; sys.exit(any(m in sys.modules for m in ('pettingzoo', 'gymnasium', "
            "'netmarl.envs.interop', 'tensorboard', 'wandb', 'ray', 'submitit')))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
