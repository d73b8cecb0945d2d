"""Particle tasks: netmarl's JaxMARL-backed MPE against PettingZoo's MPE (the `mpe2` package).

Each episode starts from mpe2's reset; its world (positions, velocities, goals) is injected into
the JaxMARL state, and then both are stepped with the same random discrete actions for 25 steps
without re-synchronising: observations, rewards and entity positions must agree to float32
tolerance at every step (mpe2 computes in float64). 40 episodes = 1,000 steps per task in the
default suite; 10,000 in the slow version. Differences JaxMARL makes on purpose are listed in
docs/environments.md; the assertions below cover everything else.
"""
import importlib
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netmarl.envs import make
from netmarl.envs.jaxmarl import JaxMARLState

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
mpe2 = pytest.importorskip("mpe2")

# netmarl env id -> (mpe2 module name, its constructor arguments)
TASKS = {
    "jaxmarl:MPE_simple_spread_v3": ("simple_spread_v3", {"N": 3, "local_ratio": 0.5}),
    "jaxmarl:MPE_simple_speaker_listener_v4": ("simple_speaker_listener_v4", {}),
    "jaxmarl:MPE_simple_reference_v3": ("simple_reference_v3", {"local_ratio": 0.5}),
    "jaxmarl:MPE_simple_adversary_v3": ("simple_adversary_v3", {"N": 2}),
    "jaxmarl:MPE_simple_tag_v3": ("simple_tag_v3", {"num_good": 1, "num_adversaries": 3,
                                                    "num_obstacles": 2}),
}


def _goal(task: str, world):
    """The JaxMARL `goal` field of the mpe2 world (None where the task has none)."""
    index = lambda landmark: world.landmarks.index(landmark)  # noqa: E731
    if "speaker" in task:
        return jnp.int32(index(world.agents[0].goal_b))
    if "reference" in task:  # JaxMARL goal[j]: the landmark agent j must reach = the other's goal_b
        return jnp.array([index(world.agents[1].goal_b), index(world.agents[0].goal_b)], jnp.int32)
    if "adversary" in task:
        return jnp.int32(index(world.agents[1].goal_a))
    return None


def _inject(env, task: str, world) -> JaxMARLState:
    entities = world.agents + world.landmarks
    template, _ = env.reset(jax.random.key(0))
    inner = template.inner.replace(
        p_pos=jnp.array([e.state.p_pos for e in entities], jnp.float32),
        p_vel=jnp.array([e.state.p_vel for e in entities], jnp.float32),
        c=jnp.array([a.state.c for a in world.agents], jnp.float32).reshape(template.inner.c.shape),
        goal=_goal(task, world))
    return JaxMARLState(inner, jnp.int32(0))


def run_conformance(task: str, episodes: int, seed: int = 0) -> int:
    """Steps mpe2 and netmarl side by side; returns the number of compared steps."""
    module, kwargs = TASKS[task]
    ref = importlib.import_module(f"mpe2.{module}").parallel_env(max_cycles=25, continuous_actions=False, **kwargs)
    env = make(task)
    step = jax.jit(env._step)
    rng, compared = np.random.default_rng(seed), 0
    for episode in range(episodes):
        ref_obs, _ = ref.reset(seed=seed * 10_000 + episode)
        world = ref.unwrapped.world
        state = _inject(env, task, world)
        for t in range(25):
            actions = {a: int(rng.integers(ref.action_space(a).n)) for a in ref.agents}
            ref_obs, ref_rew, _, ref_trunc, _ = ref.step(actions)
            state, ts = step(jax.random.key(t), state, jnp.array([actions[a] for a in env.agents]))
            (obs, reward, truncated), p_pos = jax.device_get((ts.obs, ts.reward, ts.truncated)), np.asarray(
                state.inner.p_pos)  # compared on the host: no device op per comparison
            for i, a in enumerate(env.agents):
                d = env.agent_obs_dims[i]
                np.testing.assert_allclose(obs[i, :d], ref_obs[a], rtol=1e-4, atol=1e-4,
                                           err_msg=f"{task} obs of {a}, episode {episode} step {t}")
            np.testing.assert_allclose(reward, [ref_rew[a] for a in env.agents], rtol=1e-4,
                                       atol=1e-4, err_msg=f"{task} rewards, episode {episode} step {t}")
            positions = np.array([e.state.p_pos for e in world.agents + world.landmarks])
            np.testing.assert_allclose(p_pos, positions, rtol=1e-4, atol=1e-4)
            assert bool(truncated) == all(ref_trunc.values()) == (t == 24)
            compared += 1
    return compared


@pytest.mark.parametrize("task", list(TASKS))
def test_mpe_matches_mpe2_1000_steps(task):
    assert run_conformance(task, episodes=40) == 1000


@pytest.mark.slow
@pytest.mark.parametrize("task", list(TASKS))
def test_mpe_matches_mpe2_10000_steps(task):
    assert run_conformance(task, episodes=400, seed=1) == 10_000
