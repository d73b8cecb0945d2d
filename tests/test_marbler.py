"""MARBLER robot tasks: Robotarium dynamics and barrier, scripted solutions of the four tasks,
heterogeneity features, jit/vmap/determinism. The presets are built once (module scope) and states are
edited with `_replace` rather than building new envs, so each task compiles its step only once."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netmarl.envs import make
from netmarl.envs.marbler import DOWN_Y, LEFT, RIGHT, STAY, UP_Y
from netmarl.envs.render import save_gif
from netmarl.envs.robotarium import COLLISION_DIAMETER, Robotarium, SimReport, si_points

ENVS = {name: make(f"marbler-{name}") for name in ("arctic", "material", "pcp", "warehouse")}


def toward(poses: np.ndarray, targets: np.ndarray, tol: float = 0.06) -> np.ndarray:
    """Greedy waypoint policy [N]: step along the axis with the larger error, STAY within tol."""
    err = np.asarray(targets) - np.asarray(poses)[:, :2]
    x_axis = np.abs(err[:, 0]) >= np.abs(err[:, 1])
    act = np.where(x_axis, np.where(err[:, 0] > 0, RIGHT, LEFT), np.where(err[:, 1] > 0, UP_Y, DOWN_Y))
    return np.where(np.abs(err).max(1) < tol, STAY, act).astype(np.int32)


def run(env, state, policy, steps: int):
    """Steps `env` from `state` with `policy(state) -> actions [N]` until done; returns
    (final state, rewards [T, N], last TimeStep)."""
    rewards = []
    for t in range(steps):
        state, ts = env.step(jax.random.key(t), state, jnp.asarray(policy(state)))
        rewards.append(np.asarray(ts.reward))
        if bool(ts.done):
            break
    return state, np.array(rewards), ts


# --- dynamics ------------------------------------------------------------------------------------

def test_robot_reaches_waypoint():
    sim = jax.jit(Robotarium(update_frequency=30).simulate)
    goal = jnp.array([[0.2, 0.0]])
    # facing the goal: the si point 0.05 ahead has 0.15 m to go; at gain 1 (speed = error once below
    # the 0.15 m/s cap) the error decays as 0.15 exp(-t), t = 30 x 0.033 s = 0.99 s per env step:
    # 0.056, 0.021, 0.0077 m, so within 1 cm after 3 env steps (not 2)
    poses = jnp.array([[0.0, 0.0, 0.0]])
    errors = []
    for _ in range(3):
        poses, report = sim(poses, goal)
        errors.append(float(jnp.linalg.norm(si_points(poses) - goal)))
        assert int(report.boundary) == 0
    np.testing.assert_allclose(errors, 0.15 * np.exp(-0.99 * np.arange(1, 4)), rtol=0.05)
    assert errors[1] > 0.01 > errors[2]
    assert abs(float(poses[0, 2])) < 1e-3  # no turning needed
    # facing +y: it turns while driving and is within 1 cm after 4 env steps
    poses = jnp.array([[0.0, 0.0, np.pi / 2]])
    for _ in range(4):
        poses, _ = sim(poses, goal)
    assert float(jnp.linalg.norm(si_points(poses) - goal)) < 0.01


@pytest.mark.parametrize("barrier", [True, False])
def test_head_on_barrier_prevents_collisions(barrier):
    sim = jax.jit(Robotarium(update_frequency=30, barrier=barrier).simulate)
    poses = jnp.array([[-0.5, 0.0, 0.0], [0.5, 0.0, np.pi]])  # facing each other, 1 m apart
    goals = jnp.array([[0.5, 0.0], [-0.5, 0.0]])  # each drives to the other's start
    total = SimReport.empty()
    for _ in range(12):
        poses, report = sim(poses, goals)
        total = total.merge(report)
    if barrier:
        assert int(total.collision) == 0
        assert float(total.min_distance) > COLLISION_DIAMETER + 0.1  # measured: 0.295 m
    else:
        assert int(total.collision) > 0 and float(total.min_distance) < 0.01
        assert float(poses[0, 0]) > 0.4  # drove through each other to the goal


def test_collision_ends_episode_with_penalty_when_barrier_off():
    env = make("marbler-warehouse", barrier=False)
    state, _ = env.reset(jax.random.key(0))
    poses = np.array([[-0.15, 0.0, 0.0], [0.15, 0.0, np.pi]] + [[-1.0 + 0.5 * i, 0.7, 0.0] for i in range(4)])
    state = state._replace(poses=jnp.asarray(poses, jnp.float32))
    actions = jnp.array([RIGHT, LEFT, STAY, STAY, STAY, STAY])
    new, ts = env.step(jax.random.key(1), state, actions)
    assert int(new.report.collision) > 0 and bool(ts.terminated) and not bool(ts.truncated)
    np.testing.assert_allclose(ts.reward, -5.0)  # MARBLER Warehouse: -5 for every robot
    safe = ENVS["warehouse"]  # same situation, barrier on: no violation, no penalty
    new, ts = safe.step(jax.random.key(1), state, actions)
    assert int(new.report.collision) == 0 and not bool(ts.done)


# --- tasks ---------------------------------------------------------------------------------------

def test_warehouse_scripted_deliveries_and_individual_rewards():
    env = ENVS["warehouse"]
    state, ts = env.reset(jax.random.key(3))
    assert ts.obs.shape == (6, 20) and ts.state.shape == (25,)
    np.testing.assert_array_equal(ts.obs[:, -2:], [[1, 0], [0, 1]] * 3)  # green = even index
    green = env.green

    def policy(s):
        loaded = np.asarray(s.loaded)
        x = np.where(loaded, -1.3, 1.3)
        y = np.where(loaded == green, 0.5, -0.5)  # green: load y<0, unload y>0; red: the opposite
        lane = 0.12 * (np.arange(6) - 2.5)  # spread robots so they do not queue on one point
        return toward(s.poses, np.c_[x, y + lane])

    state, rewards, ts = run(env, state, policy, env.max_steps)
    assert bool(ts.truncated) and not bool(ts.terminated) and rewards.shape == (100, 6)
    assert int(state.report.collision) == 0 and int(state.report.boundary) == 0
    loads = (rewards == 1.0).sum(0)
    unloads = (rewards == 3.0).sum(0)
    assert set(np.unique(rewards)) <= {0.0, 1.0, 3.0}  # individual rewards, no time penalty
    np.testing.assert_array_equal(unloads, np.asarray(state.deliveries))
    assert np.all(loads - unloads == np.asarray(state.loaded))  # alternate load, unload, load, ...
    assert unloads.sum() >= 6 and bool(env.success(state))


def test_pcp_scripted_capture_all_prey():
    env = ENVS["pcp"]
    state, ts = env.reset(jax.random.key(4))
    assert ts.obs.shape == (4, 24) and ts.state.shape == (37,)
    radii = np.array([[0.45, 0], [0.45, 0], [0, 0.25], [0, 0.25]])
    np.testing.assert_allclose(ts.obs[0].reshape(4, 6)[:, 4:], radii)  # own, then the others
    np.testing.assert_allclose(ts.obs[3].reshape(4, 6)[:, 4:], radii[[3, 0, 1, 2]])
    assert np.all(np.asarray(state.poses)[:, 0] <= -0.5) and np.all(np.asarray(state.prey)[:, 0] >= 0.5)

    def policy(s):
        poses, prey = np.asarray(s.poses), np.asarray(s.prey)
        sensed, captured = np.asarray(s.sensed), np.asarray(s.captured)
        targets, acts = [], []
        for i in range(4):
            want = ~sensed & ~captured if i < 2 else sensed & ~captured
            if not want.any():
                want = ~captured
            d = np.linalg.norm(prey - poses[i, :2], axis=1) + 1e3 * ~want
            d = d + 1e-3 * np.arange(6) * (i % 2)  # the two robots of a kind break ties differently
            targets.append(prey[np.argmin(d)] + (0.0, 0.08 * (-1) ** i))
        acts = toward(poses, np.array(targets), tol=0.12)
        return acts

    state, rewards, ts = run(env, state, policy, env.max_steps)
    steps = len(rewards)
    assert bool(ts.terminated) and bool(env.success(state)) and steps < env.max_steps
    assert int(state.report.collision) == 0 and int(state.report.boundary) == 0
    # +1 per sensed, +5 per captured, -0.05 per step: team return = 6 + 30 - 0.05 T
    np.testing.assert_allclose(rewards.sum(), 36 - 0.05 * steps, atol=1e-4)
    np.testing.assert_allclose(rewards, np.repeat(rewards[:, :1], 4, 1))  # equal shares


def test_pcp_capture_needs_sensing_and_noop():
    env = ENVS["pcp"]
    state, _ = env.reset(jax.random.key(0))
    prey = np.array([[0.0, 0.0]] + [[1.3, 0.8 - 0.3 * k] for k in range(5)], np.float32)
    poses = np.array([[-1.3, -0.8, 0], [-1.3, 0.8, 0], [0.1, 0.0, 0], [-0.9, 0.0, 0]], np.float32)
    state = state._replace(poses=jnp.asarray(poses), prey=jnp.asarray(prey))
    # capture robot 2 is 0.1 m from prey 0 and does nothing, but the prey is not sensed yet
    state, ts = env.step(jax.random.key(0), state, jnp.array([STAY] * 4))
    assert not bool(state.captured[0]) and float(ts.team_reward) == pytest.approx(-0.05)
    # predator 0 drives next to the prey while robot 2 moves: sensed (+1), not captured
    state = state._replace(poses=state.poses.at[0].set(jnp.array([-0.3, 0.0, 0.0])))
    state, ts = env.step(jax.random.key(0), state, jnp.array([STAY, STAY, UP_Y, STAY]))
    assert bool(state.sensed[0]) and not bool(state.captured[0])
    assert float(ts.team_reward) == pytest.approx(1 - 0.05)
    state, ts = env.step(jax.random.key(0), state, jnp.array([LEFT, STAY, STAY, STAY]))
    assert bool(state.captured[0]) and float(ts.team_reward) == pytest.approx(5 - 0.05)


def test_material_scripted_delivery():
    env = ENVS["material"]
    state, ts = env.reset(jax.random.key(5))
    assert ts.obs.shape == (4, 7) and ts.state.shape == (19,)
    np.testing.assert_allclose(ts.obs[:, 5:], [[5, 0.45], [5, 0.45], [15, 0.15], [15, 0.15]])
    assert np.all(np.asarray(state.poses)[:, 0] < -0.85)  # spawn in the drop-off strip
    state = state._replace(zone_load=jnp.array([40.0, 10.0]))  # a small job (default ~100 + 20)

    def policy(s):
        loaded, z = np.asarray(s.load) > 0, np.asarray(s.zone_load)
        source = np.where((np.arange(4) == 0) & (z[1] > 0), 1.35, 0.0)  # robot 0 serves zone 2
        lane = np.array([0.6, -0.6, 0.2, -0.2])
        tx = np.where(loaded, -1.25, source)
        ty = np.where(loaded, lane, np.where(source > 0, 0.3, lane / 4))
        return toward(s.poses, np.c_[tx, ty], tol=0.05 + 0.04 * (np.arange(4) < 2))

    state, rewards, ts = run(env, state, policy, env.max_steps)
    steps = len(rewards)
    assert bool(ts.terminated) and bool(env.success(state)) and steps < env.max_steps
    assert int(state.report.collision) == 0 and int(state.report.boundary) == 0
    # 50 units loaded (x 0.025) and unloaded (x 0.075), -0.1 per step
    np.testing.assert_allclose(rewards.sum(), 50 * 0.1 - 0.1 * steps, atol=1e-4)
    assert float(state.delivered) == 50.0


def test_material_fast_robots_move_further():
    env = ENVS["material"]
    state, _ = env.reset(jax.random.key(6))
    new, _ = env.step(jax.random.key(0), state, jnp.array([RIGHT] * 4))
    moved = np.asarray(new.poses - state.poses)[:, 0]
    assert moved[:2].min() > 0.25 and moved[2:].max() < 0.15  # 0.45 vs 0.15 m waypoints


def test_arctic_scripted_transport():
    env = ENVS["arctic"]
    state, ts = env.reset(jax.random.key(7))
    assert ts.obs.shape == (4, 32) and ts.state.shape == (115,)
    np.testing.assert_array_equal(ts.obs[:, -3:], [[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    np.testing.assert_allclose(state.poses, [[-0.3, -0.8, np.pi / 2], [0.3, -0.8, np.pi / 2],
                                             [-0.9, -0.8, np.pi / 2], [0.9, -0.8, np.pi / 2]], atol=1e-6)
    grid = np.asarray(state.grid)
    gc = int(state.goal_col)
    assert (grid[:2, gc - 1:gc + 1] == 3).all() and (grid == 3).sum() == 4 and (grid[7, 1:11] == 0).all()
    gx = gc * 0.25 - 1.5
    # drones first climb, then park on the side away from the goal; the ice robot (left) and the
    # water robot (right) drive along the ground row to the two goal columns, then straight up
    park = 1.3 if gx < 0 else -1.3
    legs = [[(-0.3, -0.2), (park, -0.2)], [(0.3, 0.3), (park, 0.3)],
            [(gx - 0.125, -0.85), (gx - 0.125, 0.85)], [(gx + 0.125, -0.85), (gx + 0.125, 0.85)]]
    leg = [0] * 4

    def policy(s):
        poses = np.asarray(s.poses)
        for i in range(4):
            if leg[i] + 1 < len(legs[i]) and np.abs(poses[i, :2] - legs[i][leg[i]]).max() < 0.08:
                leg[i] += 1
        return toward(poses, np.array([legs[i][leg[i]] for i in range(4)]))

    def expected(s):  # the reward formula, recomputed on the host
        poses = np.asarray(s.poses)
        tile, reached = np.asarray(s.tile), np.asarray(s.reached)
        d2 = ((poses[2:, :2] - [gx, 0.5]) ** 2).sum(1)
        return (-0.05 * ~reached[2:] - 0.075 * d2 * (tile[2:] != 3)).sum()

    rewards = []
    for t in range(env.max_steps):
        state, ts = env.step(jax.random.key(t), state, jnp.asarray(policy(state)))
        rewards.append(float(ts.team_reward))
        assert float(ts.team_reward) == pytest.approx(expected(state), abs=1e-5)
        if bool(ts.done):
            break
    assert bool(ts.terminated) and bool(env.success(state)) and len(rewards) < env.max_steps
    assert int(state.report.collision) == 0 and int(state.report.boundary) == 0


def test_arctic_step_size_follows_terrain():
    env = ENVS["arctic"]
    state, _ = env.reset(jax.random.key(8))
    sizes = lambda tiles: np.asarray(env.step_sizes(state._replace(tile=jnp.array(tiles))))
    np.testing.assert_allclose(sizes([0, 1, 1, 1]), [0.3, 0.3, 0.3, 0.1])  # ice robot fast on ice
    np.testing.assert_allclose(sizes([2, 2, 2, 2]), [0.3, 0.3, 0.2, 0.3])  # water robot fast on water
    np.testing.assert_allclose(sizes([0, 3, 0, 3]), [0.3, 0.3, 0.2, 0.2])  # ground and goal: normal


# --- protocol ------------------------------------------------------------------------------------

def test_jit_vmap_determinism():
    """PCP only: the registry contract test (tests/test_envs.py) runs all four presets through jit,
    vmap over 1,024 envs and determinism; this checks whole states and that keys matter."""
    env = ENVS["pcp"]

    @jax.jit
    def rollout(key):
        state, ts = jax.vmap(env.reset)(jax.random.split(key, 3))

        def body(state, k):
            actions = jax.random.randint(k, (3, env.num_agents), 0, 5)
            state, ts = jax.vmap(env.step)(jax.random.split(k, 3), state, actions)
            return state, (ts.obs, ts.team_reward, ts.done)

        return jax.lax.scan(body, state, jax.random.split(key, 4))

    (s1, out1), (s2, out2) = rollout(jax.random.key(1)), rollout(jax.random.key(1))
    for a, b in zip(jax.tree.leaves((s1, out1)), jax.tree.leaves((s2, out2))):
        np.testing.assert_array_equal(a, b)
    assert out1[0].shape == (4, 3, env.num_agents, env.obs_dim)
    assert not np.array_equal(out1[0][0, 0], out1[0][0, 1])  # different keys, different episodes


@pytest.mark.parametrize("name", sorted(ENVS))
def test_render(name, tmp_path):
    env = ENVS[name]
    state, _ = env.reset(jax.random.key(2))
    frames = [env.render(state)]
    state, _ = env.step(jax.random.key(3), state, jnp.zeros(env.num_agents, jnp.int32))
    frames.append(env.render(state))
    assert frames[0].shape == (440, 680, 3) and frames[0].dtype == np.uint8
    assert len(np.unique(frames[0].reshape(-1, 3), axis=0)) > 5  # arena, zones and robots drawn
    save_gif(frames, tmp_path / f"{name}.gif")
    assert (tmp_path / f"{name}.gif").stat().st_size > 0


def test_bad_names_and_options():
    with pytest.raises(ValueError, match="accepted: arctic, material, pcp, warehouse"):
        make("marbler:arctics")
    with pytest.raises(ValueError, match=r"unknown environment option\(s\) \['barier'\]"):
        make("marbler-pcp", barier=False)
    with pytest.raises(ValueError, match="update_frequency=0 must be a positive integer"):
        make("marbler-warehouse", update_frequency=0)
