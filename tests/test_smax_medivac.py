"""SMAX combat and the medivac, from hand-placed states: healing (targeted and autocast, energy,
the health cap), who may target a flying unit, weapon cooldowns, unit death, winning and losing.

Units of MMM (both sides): 0-1 marauders, 2-8 marines, 9 medivac; enemies 10-19 in the same order.
One env step is 8 world steps of 1/16 s: a medivac heals 12.6 x 0.5 = 6.3 health per env step.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netmarl.envs import make
from netmarl.envs.jaxmarl import JaxMARLState

pytest.importorskip("jaxmarl")
STOP, MOVE_UP = 4, 0


@pytest.fixture(scope="module")
def mmm():
    env = make("smax:MMM", enemy_shoots=False)
    return env, jax.jit(env.step)


def arrange(env, positions: dict, health: dict | None = None, **fields):
    """A reset state with the given units moved / damaged; all others far apart on their sides."""
    state, _ = env.reset(jax.random.key(0))
    smax = state.inner.state
    n, na = smax.unit_positions.shape[0], env.inner.num_allies
    x = jnp.where(jnp.arange(n) < na, 4.0, 28.0)
    pos = jnp.stack([x, 2.0 + 2.8 * (jnp.arange(n) % na)], axis=1)
    for i, p in positions.items():
        pos = pos.at[i].set(jnp.array(p, jnp.float32))
    hp = smax.unit_health
    for i, h in (health or {}).items():
        hp = hp.at[i].set(h)
    smax = smax.replace(unit_positions=pos, unit_health=hp, **fields)
    return JaxMARLState(state.inner.replace(state=smax), state.t)


def actions(n, **per_unit):
    a = np.full(n, STOP)
    for i, v in per_unit.items():
        a[int(i[1:])] = v
    return jnp.asarray(a, jnp.int32)


def test_targeted_heal_energy_and_avail(mmm):
    env, step = mmm
    state = arrange(env, {2: (10.0, 16.0), 9: (11.0, 16.0)}, {2: 20.0})
    avail = env.avail(state.inner)[9]  # the medivac's row: heal slots are allies 0..9
    np.testing.assert_array_equal(np.flatnonzero(avail), [0, 1, 2, 3, STOP, 5 + 2])  # moves, stop, the hurt marine
    state, ts = step(jax.random.key(1), state, actions(10, u9=5 + 2))
    smax = state.inner.state
    np.testing.assert_allclose(smax.unit_health[2], 20.0 + 6.3, rtol=1e-5)
    np.testing.assert_allclose(smax.unit_energy[9], 50.0 - 6.3 / 3 + 0.7875 * 0.5, rtol=1e-5)
    assert float(smax.unit_energy[0]) == 0.0


def test_autocast_when_stopped_not_when_moving_and_caps(mmm):
    env, step = mmm
    hurt = {2: 20.0, 3: 44.0}  # marine 3 is nearly full: it gets only 1 health (cap 45)
    state = arrange(env, {2: (10.0, 16.0), 3: (10.0, 17.0), 9: (11.0, 16.5)}, hurt)
    stopped, _ = step(jax.random.key(1), state, actions(10))
    # autocast heals the lowest health fraction first: marine 2 (20/45) before marine 3 (44/45)
    np.testing.assert_allclose(stopped.inner.state.unit_health[2:4], [26.3, 44.0], rtol=1e-5)
    moving, _ = step(jax.random.key(1), state, actions(10, u9=MOVE_UP))
    np.testing.assert_allclose(moving.inner.state.unit_health[2:4], [20.0, 44.0])
    capped, _ = step(jax.random.key(1), arrange(env, {3: (10.0, 17.0), 9: (11.0, 16.5)}, {3: 44.0}),
                     actions(10))
    assert float(capped.inner.state.unit_health[3]) == 45.0
    starved = arrange(env, {2: (10.0, 16.0), 9: (11.0, 16.0)}, {2: 20.0})
    inner = starved.inner.state
    starved = JaxMARLState(starved.inner.replace(state=inner.replace(
        unit_energy=inner.unit_energy.at[9].set(1.0))), starved.t)
    out, _ = step(jax.random.key(1), starved, actions(10))  # 1 energy + regen buys ~4 health
    assert 22.9 < float(out.inner.state.unit_health[2]) < 24.2


def test_marauders_cannot_target_the_medivac(mmm):
    env, step = mmm
    # enemy medivac (unit 19) 3 away from our marauder 0 and marine 2; nothing else in range
    state = arrange(env, {0: (10.0, 16.0), 2: (10.0, 17.0), 19: (13.0, 16.5)})
    avail = env.avail(state.inner)
    assert not avail[0, 5 + 9] and avail[2, 5 + 9]  # target slot 9 = enemy unit 19
    state, _ = step(jax.random.key(1), state, actions(10, u0=5 + 9))
    assert float(state.inner.state.unit_health[19]) == 150.0  # the marauder's order does nothing
    state, _ = step(jax.random.key(1), state, actions(10, u2=5 + 9))
    assert float(state.inner.state.unit_health[19]) == 150.0 - 9.0  # a marine's shot lands


def test_cooldown_death_and_losing():
    env = make("smax:3m", enemy_shoots=False)
    step = jax.jit(env.step)
    state = arrange(env, {0: (10.0, 16.0), 3: (13.0, 16.0)})
    healths = []
    for t in range(2):
        state, ts = step(jax.random.key(t), state, jnp.array([5, STOP, STOP]))  # marine 0 shoots enemy 0
        healths.append(float(state.inner.state.unit_health[3]))
        assert float(state.inner.state.unit_weapon_cooldowns[0]) > 0  # it just fired: cooling down
    # cooldown 0.61 s (+ U[-1/16, 2/16]) > one env step of 0.5 s: exactly one shot per env step
    assert healths == [36.0, 27.0]
    state = arrange(env, {0: (10.0, 16.0), 3: (13.0, 16.0)}, {3: 5.0})
    assert env.avail(state.inner)[0, 5]
    state, ts = step(jax.random.key(0), state, jnp.array([5, STOP, STOP]))
    assert not bool(state.inner.state.unit_alive[3]) and not env.avail(state.inner)[0, 5]
    assert not bool(ts.done)  # two enemies left
    state = arrange(env, {}, {0: 0.0, 1: 0.0, 2: 0.0},
                    unit_alive=jnp.array([False, False, False, True, True, True]))
    state, ts = step(jax.random.key(0), state, jnp.array([STOP, STOP, STOP]))
    assert bool(ts.terminated) and not bool(ts.info["won"])
    np.testing.assert_array_equal(env.avail(state.inner)[:, :5], [[0, 0, 0, 0, 1]] * 3)  # dead: stop only
