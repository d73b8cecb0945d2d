"""netmarl LBF against the real lbforaging==2.0.0 package, step by step, and spawn statistics."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from lbforaging.foraging.environment import Action

from netmarl.envs import make
from netmarl.envs.lbf import LOAD
from tests.lbf_oracle import load_state, package_env, positions

# Task shapes: full and partial sight, coop and non-coop, 2-4 agents, penalties, both rule variants.
TASKS = [
    ("lbf:Foraging-5x5-2p-1f", {}),
    ("lbf:Foraging-2s-8x8-3p-2f-coop", {}),
    ("lbf:Foraging-6x6-4p-3f", {"rules": "paper"}),
    ("lbf:Foraging-2s-10x10-4p-3f", {}),
    ("lbf:Foraging-1s-7x7-3p-2f", {}),
    ("lbf:Foraging-12x12-3p-5f-pen", {}),
]
# 4 agents and partial sight are in the other tasks: this one runs with the `slow` tests
SLOW_TASKS = {"lbf:Foraging-2s-10x10-4p-3f"}
EPISODES, STEPS = 180, 30  # per task: 180 random start states, each with 30 random actions


@functools.partial(jax.jit, static_argnums=0)
def rollouts(env, key):
    """Random start states (random progress, some foods gone) and LOAD-heavy random actions."""
    k_reset, k_step, k_drop, k_act = jax.random.split(key, 4)
    state, ts0 = jax.vmap(env.reset)(jax.random.split(k_reset, EPISODES))
    state = state._replace(step=jax.random.randint(k_step, (EPISODES,), 0, env.max_steps - 5))
    drop = jax.random.bernoulli(k_drop, 0.2, state.food_level.shape)
    state = state._replace(food_level=jnp.where(drop, 0, state.food_level))
    probs = jnp.array([1, 1, 1, 1, 1, 2.5]) / 7.5
    actions = jax.random.choice(k_act, 6, (STEPS, EPISODES, env.num_agents), p=probs)
    start_ts = jax.vmap(env._timestep, in_axes=(0, None, None, None))(state, jnp.zeros(env.num_agents), False, False)

    def body(state, a):
        state, ts = jax.vmap(env.step)(jax.random.split(key, EPISODES), state, a)
        return state, (state, ts)

    _, (states, ts) = jax.lax.scan(body, state, actions)
    fields = jax.vmap(jax.vmap(env.field))(states)
    return state, start_ts, actions, states, ts, fields


def _at(tree, *idx):
    return jax.tree.map(lambda x: x[idx], tree)


@pytest.mark.parametrize("task,options", [pytest.param(t, o, id=t, marks=[pytest.mark.slow] * (t in SLOW_TASKS))
                                          for t, o in TASKS])
def test_step_by_step_equals_package(task, options):
    env = make(task, **options)
    penv = package_env(env)
    start, start_ts, actions, states, ts, fields = jax.device_get(rollouts(env, jax.random.key(len(task))))
    compared = attempts = collected = 0
    for e in range(EPISODES):
        load_state(penv, env, _at(start, e))  # numpy state: no device work in the loop
        np.testing.assert_array_equal(np.stack(penv._make_gym_obs()), np.asarray(start_ts.obs[e]))
        for t in range(STEPS):
            obs, rewards, done, truncated, _ = penv.step(tuple(int(a) for a in actions[t, e]))
            s, step_ts = _at(states, t, e), _at(ts, t, e)
            where = f"{task} episode {e} step {t}"
            np.testing.assert_array_equal(positions(penv), s.pos, err_msg=where)
            np.testing.assert_array_equal(penv.field, fields[t, e], err_msg=where)
            np.testing.assert_allclose(rewards, step_ts.reward, rtol=1e-6, atol=1e-7, err_msg=where)
            np.testing.assert_array_equal(np.stack(obs), step_ts.obs, err_msg=where)
            assert done == bool(step_ts.terminated | step_ts.truncated), where
            assert not truncated  # the package never reports truncation
            avail = np.array([[Action(a) in penv._valid_actions[p] for a in range(6)] for p in penv.players])
            np.testing.assert_array_equal(avail, step_ts.avail, err_msg=where)
            compared += 1
            attempts += int(np.any((actions[t, e] == LOAD) & np.asarray(_at(ts, t - 1, e).avail[:, LOAD]
                                                                    if t else start_ts.avail[e, :, LOAD])))
            collected += int(np.any(np.asarray(rewards) > 0))
            if done:
                break
    assert compared >= EPISODES * 5 and attempts > 20, (compared, attempts)
    assert collected > 0 or env.force_coop, "no food was collected: the test exercised too little"


def test_coop_collection_and_failed_load_equal_package():
    """Hand-made states: three players load a level-4 food (success), then two try (failure)."""
    env = make("lbf:Foraging-2s-8x8-3p-2f-coop", penalty=0.5)
    penv = package_env(env)
    state, _ = env.reset(jax.random.key(0))
    state = state._replace(
        pos=jnp.array([[2, 3], [3, 2], [4, 3]]), level=jnp.array([1, 2, 1]),
        food_pos=jnp.array([[3, 3], [6, 6]]), food_level=jnp.array([4, 4]),
        food_spawned=jnp.float32(8.0), step=jnp.int32(0))
    for actions, expected in [((LOAD, LOAD, 0), [-0.5, -0.5, 0]), ((LOAD, LOAD, LOAD), [0.125, 0.25, 0.125])]:
        load_state(penv, env, state)
        _, rewards, *_ = penv.step(actions)
        next_state, ts = env.step(jax.random.key(1), state, jnp.array(actions))
        np.testing.assert_allclose(rewards, expected, rtol=1e-6)  # worked by hand: level * 4 / (4 * 8)
        np.testing.assert_allclose(ts.reward, expected, rtol=1e-6)
        np.testing.assert_array_equal(penv.field, np.asarray(env.field(next_state)))


def test_truncation_flag_separates_time_limit():
    env = make("lbf:Foraging-5x5-2p-1f")
    state, _ = env.reset(jax.random.key(0))
    state = state._replace(step=jnp.int32(env.max_steps - 1))
    _, ts = env.step(jax.random.key(1), state, jnp.array([0, 0]))
    assert bool(ts.truncated) and not bool(ts.terminated)
    package_like = make("lbf:Foraging-5x5-2p-1f", time_limit_truncation=False)
    _, ts = package_like.step(jax.random.key(1), state, jnp.array([0, 0]))
    assert bool(ts.terminated) and not bool(ts.truncated)


def test_unmasked_actions_change_avail_only():
    """action_mask=False (EPyMARL's gymma view): every action reported available, the same
    transitions (an invalid action still becomes NONE), observations and rewards."""
    masked, unmasked = make("lbf:Foraging-5x5-2p-1f"), make("lbf:Foraging-5x5-2p-1f", action_mask=False)
    key = jax.random.key(3)
    state, ts = masked.reset(key)
    _, ts_u = unmasked.reset(key)
    assert not np.asarray(ts.avail).all() and np.asarray(ts_u.avail).all()
    for t in range(8):  # random actions, invalid ones included
        actions = jax.random.randint(jax.random.fold_in(key, t), (2,), 0, 6)
        state_m, ts = masked.step(key, state, actions)
        state_u, ts_u = unmasked.step(key, state, actions)
        jax.tree.map(np.testing.assert_array_equal, state_m, state_u)
        np.testing.assert_array_equal(ts.obs, ts_u.obs)
        np.testing.assert_array_equal(ts.reward, ts_u.reward)
        state = state_m


def _package_spawns(penv, n):
    players, foods = [], []
    for seed in range(n):
        penv.reset(seed=seed)
        players.append([(*p.position, p.level) for p in penv.players])
        rows, cols = np.nonzero(penv.field)
        foods.append(np.c_[rows, cols, penv.field[rows, cols]])
    return np.array(players), foods


def _netmarl_spawns(env, n):
    state, _ = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(7), n))
    players = np.concatenate([np.asarray(state.pos), np.asarray(state.level)[..., None]], -1)
    foods = [np.c_[fp[fl > 0], fl[fl > 0]] for fp, fl in zip(np.asarray(state.food_pos), np.asarray(state.food_level))]
    return players, foods


def _same_distribution(a, b, name):
    """Chi-square test of homogeneity on two samples of a discrete statistic."""
    values = np.union1d(a, b)
    table = np.array([[np.sum(a == v) for v in values], [np.sum(b == v) for v in values]])
    table = table[:, table.sum(0) > 0]
    if table.shape[1] < 2:
        np.testing.assert_array_equal(np.unique(a), np.unique(b), err_msg=name)
        return
    p = stats.chi2_contingency(table).pvalue
    assert p > 1e-3, f"{name}: distributions differ (chi-square p = {p:.2g})"


def _min_food_gap(foods):
    """Smallest Chebyshev distance between two foods of one episode (inf with one food)."""
    gaps = [np.abs(f[:, None, :2] - f[None, :, :2]).max(-1) + 99 * np.eye(len(f)) for f in foods]
    return np.array([g.min() for g in gaps])


class _V1Package:
    """The package with the v1/v2 food-level draw (randint(low, high), exclusive upper bound)."""

    @staticmethod
    def patch(penv):
        rng = penv.np_random
        original = rng.integers

        def exclusive_food_draw(low, high=None, *args, **kwargs):
            if high is not None and high - low > 1 and low == penv.min_food_level[0] and not args:
                return original(low, high - 1, **kwargs)
            return original(low, high, *args, **kwargs)

        return exclusive_food_draw


@pytest.mark.parametrize("task,options", [
    ("lbf:Foraging-8x8-3p-3f", {}), ("lbf:Foraging-6x6-2p-2f-coop", {}), ("lbf:Foraging-8x8-4p-3f", {})])
def test_spawn_distribution_matches_package(task, options):
    env = make(task, **options)
    n = 1500
    p_players, p_foods = _package_spawns(package_env(env), n)
    n_players, n_foods = _netmarl_spawns(env, n)
    _same_distribution(p_players[..., 2].ravel(), n_players[..., 2].ravel(), "player levels")
    _same_distribution(p_players[..., 0].ravel(), n_players[..., 0].ravel(), "player rows")
    _same_distribution(np.concatenate(p_foods)[:, 2], np.concatenate(n_foods)[:, 2], "food levels")
    _same_distribution(np.concatenate(p_foods)[:, 0], np.concatenate(n_foods)[:, 0], "food rows")
    _same_distribution(np.array([len(f) for f in p_foods]), np.array([len(f) for f in n_foods]), "food count")
    _same_distribution(_min_food_gap(p_foods), _min_food_gap(n_foods), "food spacing")
    for foods in n_foods:  # the package's hard spacing rules, checked on every netmarl spawn
        d = np.abs(foods[:, None, :2] - foods[None, :, :2])
        off = ~np.eye(len(foods), dtype=bool)
        assert np.all(d.max(-1)[off] >= 2)
        assert not np.any(off & ((d[..., 0] == 0) | (d[..., 1] == 0)) & (d.sum(-1) <= 2))
        assert np.all((foods[:, :2] >= 1) & (foods[:, :2] <= env.rows - 2))


def test_paper_rules_food_levels():
    """`paper`: non-coop food levels in [1, max - 1] where max = sum of the 3 lowest player levels."""
    env = make("lbf:Foraging-8x8-3p-3f", rules="paper")
    state, _ = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(3), 3000))
    top = np.sort(np.asarray(state.level), -1)[:, :3].sum(-1)
    levels = np.asarray(state.food_level)
    assert np.all((levels >= 1) & (levels <= top[:, None] - 1))
    # every admissible level occurs (uniform draw), e.g. max 6 -> levels 1..5
    assert set(np.unique(levels[top == 6])) == {1, 2, 3, 4, 5}
    v3 = make("lbf:Foraging-8x8-3p-3f")
    state, _ = jax.jit(jax.vmap(v3.reset))(jax.random.split(jax.random.key(3), 3000))
    top = np.sort(np.asarray(state.level), -1)[:, :3].sum(-1)
    assert np.any(np.asarray(state.food_level) == top[:, None])  # v3 reaches the maximum
    coop = make("lbf:Foraging-8x8-3p-3f-coop", rules="paper")
    state, _ = jax.jit(jax.vmap(coop.reset))(jax.random.split(jax.random.key(3), 500))
    top = np.sort(np.asarray(state.level), -1)[:, :3].sum(-1)
    np.testing.assert_array_equal(np.asarray(state.food_level), np.broadcast_to(top[:, None], (500, 3)))
