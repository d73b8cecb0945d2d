"""Contract tests over the environment registry, matrix-game payoffs and input validation."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netmarl.envs import GAMES, PRESETS, make, step_autoreset
from netmarl.envs.render import save_gif

# Every registered family and preset is covered: a new entry must be added here to pass
# test_every_registered_env_is_covered.
CONTRACT_ENVS = ["lbf-easy", "lbf-tiny", "lbf:Foraging-2s-8x8-2p-2f-coop",
                 *(f"matrix:{g}" for g in GAMES), "boxjump",
                 "marbler-arctic", "marbler-material", "marbler-pcp", "marbler-warehouse",
                 "mpe-spread", "mpe-speaker-listener", "mpe-reference", "mpe-adversary", "mpe-tag",
                 "jaxmarl:switch_riddle", "smax:3m"]
# Compiling smax:MMM2 takes 30-60 s on the shared 2-core machines: its tests run with the slow ones.
SLOW_COMPILE_ENVS = ["smax:MMM2"]
# lbf-easy's and boxjump's code with other sizes and options: their contract runs with the slow tests
# (issue 20's budget), PettingZoo's API test (tests/test_interop.py) in the default suite.
PRESET_VARIANTS = ["lbf-medium", "lbf-hard", "boxjump-paper"]


def slow(names: list[str]) -> list:
    return [pytest.param(name, marks=pytest.mark.slow) for name in names]


def test_every_registered_env_is_covered():
    assert set(PRESETS) <= set(CONTRACT_ENVS + SLOW_COMPILE_ENVS + PRESET_VARIANTS)
    assert {name.split(":")[0] for name in CONTRACT_ENVS if ":" in name} >= {"lbf", "matrix"}
    assert {"boxjump-paper", "boxjump"} <= set(PRESETS)


@pytest.mark.parametrize("name", CONTRACT_ENVS + slow(SLOW_COMPILE_ENVS + PRESET_VARIANTS))
def test_contract_vmap_1024_jit_determinism(name):
    env = make(name)
    n, a = env.num_agents, env.num_actions

    @jax.jit
    def run(key):
        """10 auto-reset steps of 1,024 environments with random valid actions."""
        state, ts = jax.vmap(env.reset)(jax.random.split(key, 1024))

        def body(carry, key):
            state, ts = carry
            k_act, k_env = jax.random.split(key)
            logits = jnp.where(ts.avail, 0.0, -jnp.inf)
            actions = jax.random.categorical(k_act, logits)
            out = jax.vmap(step_autoreset, in_axes=(None, 0, 0, 0))(
                env, jax.random.split(k_env, 1024), state, actions)
            return (out.state, out.current), out.transition

        _, transitions = jax.lax.scan(body, (state, ts), jax.random.split(key, 10))
        return ts, transitions

    ts0, tr = run(jax.random.key(0))
    assert ts0.obs.shape == (1024, n, env.obs_dim) and ts0.obs.dtype == jnp.float32
    assert ts0.state.shape == (1024, env.state_dim)
    # the global state (centralised critics, mixers) is finite and changes within the 10 steps: not
    # necessarily in the first, since MPE (JaxMARL and mpe2 alike) moves positions with the velocity
    # before the step's force, and simple_adversary's observations hold positions only, so its first
    # step from rest (zero velocities) changes no observation
    assert np.isfinite(np.asarray(tr.state)).all() and np.any(np.asarray(tr.state != ts0.state[None]))
    assert ts0.avail.shape == (1024, n, a) and ts0.avail.dtype == jnp.bool_
    assert tr.reward.shape == (10, 1024, n) and tr.team_reward.shape == (10, 1024)
    np.testing.assert_allclose(tr.reward.sum(-1), tr.team_reward, rtol=1e-5, atol=1e-6)
    assert not bool(jnp.any(tr.terminated & tr.truncated))
    again = run(jax.random.key(0))
    for x, y in zip(jax.tree.leaves((ts0, tr)), jax.tree.leaves(again)):
        np.testing.assert_array_equal(x, y)
    space = env.observation_space
    assert all(space.contains(o) for o in np.asarray(ts0.obs[:8]).reshape(-1, env.obs_dim))


@pytest.mark.parametrize("game", sorted(GAMES))
def test_matrix_payoffs_exact(game):
    env = make(f"matrix:{game}")
    matrix, common = GAMES[game]
    matrix = np.array([[-100.0 if v is None else v for v in row] for row in matrix])
    for joint in itertools.product(range(env.num_actions), repeat=env.num_agents):
        state, _ = env.reset(jax.random.key(0))
        _, ts = env.step(jax.random.key(1), state, jnp.array(joint))
        assert bool(ts.terminated)
        if common:
            assert float(ts.team_reward) == matrix[joint]
            np.testing.assert_allclose(ts.reward, matrix[joint] / 2)  # equal shares
        else:  # stag hunt: symmetric, each player scores its own row
            np.testing.assert_array_equal(ts.reward, [matrix[joint], matrix[joint[::-1]]])


def test_penalty_k_and_repeated_game():
    env = make("matrix:penalty-50")
    state, _ = env.reset(jax.random.key(0))
    assert float(env.step(None, state, jnp.array([0, 0]))[1].team_reward) == -50.0
    assert float(make("matrix:penalty", k=7).step(None, state, jnp.array([2, 2]))[1].team_reward) == -7.0
    env = make("matrix:climbing", episode_length=3)
    state, ts = env.reset(jax.random.key(0))
    for t, joint in enumerate([(0, 0), (1, 1), (2, 2)]):
        state, ts = env.step(None, state, jnp.array(joint))
        assert bool(ts.terminated) == (t == 2)
        np.testing.assert_array_equal(ts.obs[0, 1:7], np.eye(3)[list(joint)].ravel())  # last joint action
    assert float(ts.team_reward) == 5.0


@pytest.mark.parametrize("name,message", [
    ("lbf:Foraging-10x10-3p", "accepted: Foraging"),
    ("lbf:Foraging-10x10-3p-3f-v3", "drop the version suffix"),
    ("nope", "accepted: presets lbf-easy"),
    ("mpe:spread", "family in lbf, matrix"),
    ("matrix:chicken", "accepted: additive"),
])
def test_unknown_names_list_valid_ones(name, message):
    with pytest.raises(ValueError, match=message):
        make(name)


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="rules='v4' is not known; accepted: v3, paper"):
        make("lbf-easy", rules="v4")
    with pytest.raises(ValueError, match=r"unknown environment option\(s\) \['sigh'\]"):
        make("lbf-easy", sigh=3)
    with pytest.raises(ValueError, match="12 players and 1 food need 13 cells; a 3x3 grid has 9"):
        make("lbf:Foraging-3x3-12p-1f")


def test_bad_actions_raise_clear_errors():
    env = make("lbf-easy")
    state, _ = env.reset(jax.random.key(0))
    with pytest.raises(ValueError, match=r"shape \(3,\).*got shape \(2,\)"):
        env.step(jax.random.key(1), state, jnp.array([0, 1]))
    with pytest.raises(ValueError, match=r"action\(s\) \[6\] of agent\(s\) \[1\] out of range; accepted: integers in \[0, 5\]"):
        env.step(jax.random.key(1), state, jnp.array([0, 6, 1]))
    with pytest.raises(ValueError, match="must be integers"):
        env.step(jax.random.key(1), state, jnp.array([0.0, 1.0, 2.0]))


def test_render_and_gif(tmp_path):
    env = make("lbf-medium")
    state, _ = env.reset(jax.random.key(0))
    frames = [env.render(state)]
    state, _ = env.step(jax.random.key(1), state, jnp.array([1, 2, 3]))
    frames.append(env.render(state))
    assert frames[0].shape == (400, 400, 3) and frames[0].dtype == np.uint8
    assert len(np.unique(frames[0].reshape(-1, 3), axis=0)) > 4  # grid, foods and agent colours drawn
    save_gif(frames, tmp_path / "episode.gif")
    assert (tmp_path / "episode.gif").stat().st_size > 0


def test_register_family_and_preset():
    from netmarl.envs import FAMILIES, PRESETS, make_matrix, register, register_preset
    register("mygames", lambda task, **options: make_matrix(task, **options), "matrix game names")
    register_preset("my-climb", "mygames:climbing", episode_length=2)
    try:
        env = make("my-climb")
        assert env.episode_length == 2 and env.num_actions == 3
        with pytest.raises(ValueError, match="already registered"):
            register("mygames", make_matrix, "again")
    finally:
        FAMILIES.pop("mygames")
        PRESETS.pop("my-climb")
