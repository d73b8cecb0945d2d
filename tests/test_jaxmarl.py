"""The JaxMARL adapter: lazy import, option checks, padding, controlled agents, episode ends, no
recompilation. (Contract tests over the registered JaxMARL envs live in test_envs.py.)"""
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netmarl.envs import make
from netmarl.envs.jaxmarl import JaxMARLState

pytest.importorskip("jaxmarl")


def test_import_netmarl_does_not_import_jaxmarl():
    code = ("import sys, netmarl, netmarl.envs, netmarl.cli; "
            "sys.exit('jaxmarl' in sys.modules or 'netmarl.envs.smax_medivac' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("name,options,message", [
    ("jaxmarl:MPE_nope", {}, "unknown JaxMARL environment 'MPE_nope'; accepted: MPE_simple_v3"),
    ("jaxmarl:MPE_simple_spread_v3", {"num_agent": 4},
     r"unknown environment option\(s\) \['num_agent'\]; accepted: num_agents, num_landmarks"),
    ("jaxmarl:MPE_simple_spread_v3", {"team_reward": "max"}, "team_reward='max' is not known; accepted: sum, mean"),
    ("jaxmarl:MPE_simple_tag_v3", {"controlled": "adversary_9"},
     r"controlled agent\(s\) \['adversary_9'\] do not exist; accepted: adversary_0"),
    ("jaxmarl:MPE_simple_world_comm_v3", {}, "has action space Box; accepted: Discrete"),
    ("jaxmarl:hanabi", {}, "pass the option time_limit="),
    ("jaxmarl:MPE_simple_spread_v3", {"num_agents": [3]}, "must be a number, string or bool"),
    ("smax:4m", {}, "unknown SMAX map '4m'; accepted: 3m, 8m"),
    ("smax:3m", {"attack_mode": "weakest"}, "attack_mode='weakest' is not known; accepted: closest, random"),
    ("smax:3m", {"scenario": 1}, r"unknown environment option\(s\) \['scenario'\]; accepted: max_steps"),
    ("smax:3m", {"max_steps": 0}, "max_steps=0 must be a positive integer"),
])
def test_bad_names_and_options_are_named(name, options, message):
    with pytest.raises(ValueError, match=message):
        make(name, **options)


def test_heterogeneous_padding_and_mask():
    env = make("mpe-speaker-listener")  # speaker: 3 obs, 3 actions; listener: 11 obs, 5 actions
    assert env.agents == ("speaker_0", "listener_0")
    assert env.agent_obs_dims == (3, 11) and env.agent_num_actions == (3, 5) and not env.homogeneous
    np.testing.assert_array_equal(env.obs_mask.sum(1), [3, 11])
    state, ts = env.reset(jax.random.key(0))
    assert ts.obs.shape == (2, 11) and not ts.obs[0, 3:].any()
    np.testing.assert_array_equal(ts.avail, [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    # the speaker sees the goal landmark's colour: 0.65 at the goal index, 0.15 elsewhere
    np.testing.assert_allclose(ts.obs[0, :3], np.where(np.arange(3) == state.inner.goal, 0.65, 0.15))
    assert ts.state.shape == (14,)  # both unpadded observations
    with pytest.raises(ValueError, match=r"action\(s\) \[4\] of agent\(s\) \[0\] out of range"):
        env.step(jax.random.key(1), state, jnp.array([4, 0]))


def test_controlled_side_and_time_limit():
    env = make("mpe-tag")  # three predators trained, the prey random
    assert env.agents == ("adversary_0", "adversary_1", "adversary_2") and env.others == ("agent_0",)
    assert env.state_dim == 3 * 16 + 14
    state, ts = env.reset(jax.random.key(0))
    step = jax.jit(env.step)
    for t in range(1, 26):
        state, ts = step(jax.random.key(t), state, jnp.zeros(3, jnp.int32))
        assert bool(ts.truncated) == (t == 25) and not bool(ts.terminated)  # PettingZoo's 25 cycles
    assert step._cache_size() == 1  # one compilation for every step
    assert make("mpe-tag") == env and hash(make("mpe-tag")) == hash(env)  # jit caches are shared


def test_smax_won_terminates_with_bonus():
    env = make("smax:3m", enemy_shoots=False)
    state, ts = env.reset(jax.random.key(0))
    assert env.max_steps == 60 and ts.info == {"won": False} and ts.state.shape == (72,)
    smax = state.inner.state
    # put every enemy within range of one marine, each with 1 health left: one volley wins
    pos = smax.unit_positions.at[3:].set(smax.unit_positions[0] + jnp.array([[3.0, 0], [3, 1], [3, -1]]))
    state = JaxMARLState(state.inner.replace(state=smax.replace(
        unit_positions=pos, unit_health=smax.unit_health.at[3:].set(1.0))), state.t)
    _, ts = env.step(jax.random.key(1), state, jnp.array([5, 6, 7]))  # ally i shoots enemy i
    assert bool(ts.terminated) and not bool(ts.truncated) and bool(ts.info["won"])
    # SMAX reward: health lost by the enemy team as a fraction (3 x 1 / (3 x 45)) + 1 for the win;
    # every ally gets it, the adapter splits it into equal shares
    np.testing.assert_allclose(ts.team_reward, 3 / 135 + 1.0, rtol=1e-5)
    np.testing.assert_allclose(ts.reward, ts.team_reward / 3, rtol=1e-6)


# MMM (medivac units, seven unit types) compiles a larger env: `slow`, 3m runs in the default suite
@pytest.mark.parametrize("name", ["smax:3m", pytest.param("smax:MMM", marks=pytest.mark.slow)])
def test_smax_global_state_is_scaled_like_the_observations(name):
    """SMAX's raw world state has positions in 0-32 and a weapon cooldown that falls without bound;
    ours scales positions by the map and clips the relative cooldown to [0, 1], keeping the rest."""
    env = make(name)
    state, ts = env.reset(jax.random.key(0))
    step = jax.jit(env.step)
    units = state.inner.state.unit_types.shape[0]  # allies and enemies
    for t in range(40):  # random available actions: units fire, wait and die
        a = jax.random.categorical(jax.random.key(100 + t), jnp.where(ts.avail, 0.0, -jnp.inf))
        state, ts = step(jax.random.key(t), state, a)
        if bool(ts.terminated | ts.truncated):
            break
        raw = env.inner.get_world_state(state.inner)
        ours = np.asarray(ts.state)
        assert ours.shape == raw.shape and np.all(np.abs(ours[:-units]) <= 1.0)  # all but the types
        per_unit, raw_unit = ours[:-2 * units].reshape(units, -1), np.asarray(raw[:-2 * units]).reshape(units, -1)
        keep = [0, *range(4, per_unit.shape[1])]  # health and type one-hot unchanged
        np.testing.assert_array_equal(per_unit[:, keep], raw_unit[:, keep])
        np.testing.assert_array_equal(ours[-2 * units:], raw[-2 * units:])  # teams, types
        smax = state.inner.state
        np.testing.assert_allclose(per_unit[:, 1:3], np.asarray(smax.unit_positions / 32.0)
                                   * np.asarray(smax.unit_alive)[:, None], rtol=1e-6)
    state, ts = env.reset(jax.random.key(1))
    stop = jnp.full(ts.avail.shape[0], 4, jnp.int32)  # SMAX's stop action: allies never fire
    for t in range(10):
        state, ts = step(jax.random.key(t), state, stop)
    assert np.asarray(env.inner.get_world_state(state.inner)).min() < -1.0  # the raw cooldown
    assert np.asarray(ts.state)[:-units].min() >= 0.0


def test_render_mpe_and_smax(tmp_path):
    from netmarl.envs.render import save_gif
    frames = []
    for name in ("mpe-spread", "smax:3m"):
        env = make(name)
        state, _ = env.reset(jax.random.key(0))
        frame = env.render(state)
        assert frame.shape == (400, 400, 3) and frame.dtype == np.uint8
        assert len(np.unique(frame.reshape(-1, 3), axis=0)) >= 3  # background and two kinds of disc
        frames.append(frame)
    save_gif(frames, tmp_path / "episode.gif")
    assert (tmp_path / "episode.gif").stat().st_size > 0
    with pytest.raises(NotImplementedError, match="no renderer"):
        env = make("jaxmarl:switch_riddle")
        env.render(env.reset(jax.random.key(0))[0])


class _Attack:
    """Every ally takes its lowest available attack action (5 + enemy), else a random move."""

    class config:  # noqa: N801 - what collect_episode reads of a learner's config
        bootstrap_truncation = True

    def initial_hidden(self):
        return jnp.zeros((3, 1))

    def act(self, params, obs, h, avail, epsilon, key):
        first = 5 + jnp.argmax(avail[:, 5:], -1)
        move = jax.random.categorical(key, jnp.where(avail[:, :5], 0.0, -jnp.inf))
        return jnp.where(avail[:, 5:].any(-1), first, move).astype(jnp.int32), h


def test_evaluation_reports_smax_win_rate():
    """evaluate(..., outcomes=True) sums each episode's info: "won" is 1 exactly for the episodes
    whose return holds the +1 win bonus on top of the enemy's whole health (return 2)."""
    from netmarl.train.rollout import episode_outcomes, evaluate
    env = make("smax:3m", enemy_shoots=False)
    returns, outcomes = jax.jit(lambda k: evaluate(env, _Attack(), None, k, 8, outcomes=True))(
        jax.random.key(0))
    np.testing.assert_array_equal(outcomes["won"], 1.0)  # unopposed focused fire wins every battle
    np.testing.assert_allclose(returns, 2.0, rtol=1e-5)
    returns, outcomes = jax.jit(lambda k: evaluate(make("smax:3m"), _Attack(), None, k, 8, 1.0,
                                                   outcomes=True))(jax.random.key(1))  # ε = 1: random
    assert set(np.asarray(outcomes["won"]).tolist()) <= {0.0, 1.0}
    np.testing.assert_array_equal(outcomes["won"] == 1, np.asarray(returns) > 1.5)
    assert episode_outcomes(None, jnp.ones((2, 5), bool)) == {}  # environments without info


def test_eval_summary_reports_outcome_rates():
    """`netmarl eval`'s summary: each outcome's rate overall and per seed (SMAX's win rate)."""
    from netmarl.train.evaluate import summarise
    out = summarise(np.array([[2.0, 1.0], [2.0, 2.0]]), {"won": np.array([[1.0, 0.0], [1.0, 1.0]])})
    assert out["mean_won"] == 0.75 and [s["won"] for s in out["per_seed"]] == [0.5, 1.0]
    assert out["mean_return"] == 1.75 and "mean_won" not in summarise(np.zeros((1, 2)))
