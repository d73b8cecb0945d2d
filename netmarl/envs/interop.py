"""netmarl environments for other libraries: a PettingZoo ParallelEnv and a Gymnasium vector env.

    env = to_pettingzoo(make("lbf-easy"))             # pettingzoo.ParallelEnv, one episode at a time
    obs, infos = env.reset(seed=0)
    obs, rewards, terminations, truncations, infos = env.step({a: 0 for a in env.agents})

    envs = to_vector(make("lbf-easy"), num_envs=64)   # gymnasium.vector.VectorEnv, jitted and vmapped
    obs, infos = envs.reset(seed=0)
    obs, rewards, terminations, truncations, infos = envs.step(envs.action_space.sample())

This module imports pettingzoo and gymnasium (the `interop` extra); `netmarl.envs` imports it only when
`to_pettingzoo` or `to_vector` is first used, so `import netmarl` does not pay for them.

PettingZoo (`to_pettingzoo`): agents are named as the environment names them (JaxMARL's agent names),
else agent_0 .. agent_{N-1}. Agent i observes {"observation": float32 [O_i], "action_mask": int8 [A_i]}
(its unpadded observation and its available actions), acts in Discrete(A_i), and receives its reward
share r_i (the team reward is their sum). Every agent ends together (the whole team's episode ends);
`state()` is the global state [S]. The environment's outcome info (e.g. {"won": ...} of SMAX) is in
every agent's info.

Gymnasium vector (`to_vector`): E copies stepped by one jitted, vmapped function, with netmarl's
agent axis kept as an array axis: observations {"observation": [E, N, O], "action_mask": [E, N, A]
int8, "state": [E, S]}, actions [E, N] (MultiDiscrete of each agent's A_i), rewards [E] (team
rewards), terminations and truncations [E]. Autoreset mode SAME_STEP: a copy whose episode ends is
reset within the same step; the returned observation starts its next episode and
`infos["final_obs"]` (the observation dict, [E, ...] for every copy, the true last observation of the
ended ones, marked by `infos["_final_obs"]` [E]) holds where it ended. `infos["agent_rewards"]` [E, N]
holds the reward shares.

Seeding (both): reset(seed=s) starts the key stream PRNGKey(s) (the vector env: copy e uses
split(PRNGKey(s), E)[e], or PRNGKey(s_e) for a list of E seeds); reset() without a seed continues the
stream (which starts from seed 0). Each reset and step splits the current key into (next key, the key
it uses), so a run is a pure function of the seed and the actions, as everywhere in netmarl.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space
from pettingzoo import ParallelEnv

from netmarl.envs.core import Environment, TimeStep, step_autoreset


def to_pettingzoo(env: Environment, render_mode: str | None = None) -> PettingZooEnv:
    """A PettingZoo `ParallelEnv` playing `env` (a netmarl Environment, e.g. `make("lbf-easy")`).

    `render_mode`: None or "rgb_array" (environments that have a renderer; `render()` then returns
    an RGB image [H, W, 3] uint8 of the current state)."""
    return PettingZooEnv(_checked_env(env, "to_pettingzoo"), render_mode)


def to_vector(env: Environment, num_envs: int, render_mode: str | None = None) -> VectorEnv:
    """A Gymnasium `VectorEnv` of `num_envs` copies of `env` (autoreset mode SAME_STEP)."""
    env = _checked_env(env, "to_vector")
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise ValueError(f"to_vector: num_envs={num_envs!r} must be a positive integer (the number "
                         "of environment copies stepped together)")
    return VectorEnv(env, int(num_envs), render_mode)


def agent_names(env: Environment) -> tuple[str, ...]:
    """The names of `env`'s agents in agent-axis order (JaxMARL's own names, else agent_<i>)."""
    names = getattr(env, "agents", None)
    if isinstance(names, (tuple, list)) and len(names) == env.num_agents:
        return tuple(str(n) for n in names)
    return tuple(f"agent_{i}" for i in range(env.num_agents))


def observation_bounds(env: Environment) -> tuple[np.ndarray, np.ndarray]:
    """(low, high), float32 [O] each: the bounds of `env.observation_space` (unbounded if none)."""
    space = getattr(env, "observation_space", None)
    low, high = (-np.inf, np.inf) if space is None else (space.low, space.high)
    shape = (env.obs_dim,)
    return (np.broadcast_to(np.asarray(low, np.float32), shape).copy(),
            np.broadcast_to(np.asarray(high, np.float32), shape).copy())


def render_modes(env: Environment) -> list[str]:
    """["rgb_array"] if `env` has a renderer, else []."""
    return ["rgb_array"] if type(env).render is not Environment.render else []


def _checked_env(env: Any, caller: str) -> Environment:
    if not isinstance(env, Environment):
        hint = f"; build one with netmarl.envs.make({env!r})" if isinstance(env, str) else ""
        raise TypeError(f"{caller}: expected a netmarl Environment (e.g. make('lbf-easy')), got "
                        f"{type(env).__name__} {env!r}"[:300] + hint)
    return env


def _checked_render_mode(env: Environment, render_mode: str | None) -> str | None:
    accepted = render_modes(env)
    if render_mode is not None and render_mode not in accepted:
        raise ValueError(f"render_mode={render_mode!r} is not supported by {env.name}; accepted: "
                         f"{', '.join(['None', *accepted])}")
    return render_mode


def _new_key(seed: Any) -> jax.Array:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed={seed!r} must be an integer or None")
    return jax.random.PRNGKey(int(seed))


# --- PettingZoo ------------------------------------------------------------------------------------


class PettingZooEnv(ParallelEnv):
    """A netmarl Environment as a PettingZoo `ParallelEnv` (see the module docstring).

    Attributes: `env` (the netmarl Environment), `possible_agents`, `agents` (empty between
    episodes), `render_mode`, `state_space` (Box [S])."""

    def __init__(self, env: Environment, render_mode: str | None = None):
        self.env = env
        self.metadata = {"name": env.name, "render_modes": render_modes(env), "is_parallelizable": True}
        self.render_mode = _checked_render_mode(env, render_mode)
        self.possible_agents = list(agent_names(env))
        self.agents: list[str] = []
        low, high = observation_bounds(env)
        dims, counts = env.agent_obs_dims, env.agent_num_actions
        self._obs_spaces = {a: spaces.Dict({
            "observation": spaces.Box(low[:o], high[:o], (o,), np.float32),
            "action_mask": spaces.Box(0, 1, (n,), np.int8)})
            for a, o, n in zip(self.possible_agents, dims, counts)}
        self._action_spaces = {a: spaces.Discrete(n) for a, n in zip(self.possible_agents, counts)}
        self.state_space = spaces.Box(-np.inf, np.inf, (env.state_dim,), np.float32)
        self._key, self._state, self._ts = jax.random.PRNGKey(0), None, None

    def observation_space(self, agent: str) -> spaces.Dict:
        return self._obs_spaces[self._known(agent)]

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._action_spaces[self._known(agent)]

    def reset(self, seed: int | None = None, options: dict | None = None):
        """Starts an episode: (observations, infos) per agent. `options` are not used (environment
        options are given to `make`)."""
        if seed is not None:
            self._key = _new_key(seed)
        self._key, k_reset = jax.random.split(self._key)
        self._state, ts = self.env.reset(k_reset)
        self._ts = jax.device_get(ts)
        self.agents = list(self.possible_agents)
        return self._observations(), self._infos()

    def step(self, actions: dict):
        """One joint step with an action for every live agent: (observations, rewards,
        terminations, truncations, infos), dicts over the agents that were live."""
        joint = self._joint_actions(actions)
        self._key, k_step = jax.random.split(self._key)
        self._state, ts = self.env.step(k_step, self._state, joint)  # checks the actions
        self._ts = ts = jax.device_get(ts)
        live = self.agents
        rewards = {a: float(ts.reward[i]) for i, a in enumerate(self.possible_agents)}
        terminations = dict.fromkeys(live, bool(ts.terminated))
        truncations = dict.fromkeys(live, bool(ts.truncated))
        out = self._observations(), rewards, terminations, truncations, self._infos()
        if ts.terminated or ts.truncated:
            self.agents = []
        return out

    def state(self) -> np.ndarray:
        """The global state [S] float32 of the current step."""
        self._started("state()")
        return np.asarray(self._ts.state)

    def render(self) -> np.ndarray | None:
        """An RGB image [H, W, 3] uint8 of the current state (render_mode="rgb_array"), else None."""
        if self.render_mode is None:
            gymnasium.logger.warn(f"{self.env.name}: render() called without a render_mode; make "
                                  "the env with render_mode='rgb_array'")
            return None
        self._started("render()")
        return np.asarray(self.env.render(self._state), np.uint8)

    def close(self) -> None:
        """Nothing to release (the environment is a pure function)."""

    def _known(self, agent: str) -> str:
        if agent not in self._action_spaces:
            raise KeyError(f"{self.env.name}: unknown agent {agent!r}; accepted: "
                           f"{', '.join(self.possible_agents)}")
        return agent

    def _started(self, what: str) -> None:
        if self._ts is None:
            raise RuntimeError(f"{self.env.name}: call reset() before {what}")

    def _joint_actions(self, actions: dict) -> np.ndarray:
        """The joint action [N] of a dict over the live agents; names missing or extra ones."""
        if not self.agents:
            raise RuntimeError(f"{self.env.name}: the episode is over (or not started); call reset()")
        if not isinstance(actions, dict):
            raise ValueError(f"{self.env.name}: actions must be a dict agent -> action, got "
                             f"{type(actions).__name__}")
        missing = [a for a in self.agents if a not in actions]
        extra = [a for a in actions if a not in self.agents]
        if missing or extra:
            raise ValueError(f"{self.env.name}: actions must name every live agent once; missing "
                             f"{missing}, unknown or finished {extra}; live agents: {self.agents}")
        return np.asarray([actions[a] for a in self.possible_agents])

    def _observations(self) -> dict:
        ts, dims, counts = self._ts, self.env.agent_obs_dims, self.env.agent_num_actions
        return {a: {"observation": np.asarray(ts.obs[i, :dims[i]], np.float32),
                    "action_mask": np.asarray(ts.avail[i, :counts[i]], np.int8)}
                for i, a in enumerate(self.possible_agents)}

    def _infos(self) -> dict:
        info = {} if self._ts.info is None else {k: np.asarray(v).item() for k, v in self._ts.info.items()}
        return {a: dict(info) for a in self.possible_agents}


# --- Gymnasium vector env --------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=0)
def _reset_batch(env: Environment, keys: jax.Array):
    """Resets every copy: (next keys [E, 2], states, TimeSteps [E, ...])."""
    def one(key):
        key, k_reset = jax.random.split(key)
        return key, *env.reset(k_reset)

    return jax.vmap(one)(keys)


@functools.partial(jax.jit, static_argnums=0)
def _step_batch(env: Environment, keys: jax.Array, state, actions: jax.Array):
    """Steps every copy [E, N] and resets those whose episode ended (core.step_autoreset):
    (next keys [E, 2], AutoResetStep with leaves [E, ...])."""
    def one(key, state, actions):
        key, k_step = jax.random.split(key)
        return key, step_autoreset(env, k_step, state, actions)

    return jax.vmap(one)(keys, state, actions)


class VectorEnv(gymnasium.vector.VectorEnv):
    """`num_envs` copies of a netmarl Environment as a Gymnasium VectorEnv (module docstring)."""

    def __init__(self, env: Environment, num_envs: int, render_mode: str | None = None):
        self.env, self.num_envs = env, num_envs
        self.metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": render_modes(env)}
        self.render_mode = _checked_render_mode(env, render_mode)
        n, o, a = env.num_agents, env.obs_dim, env.num_actions
        low, high = observation_bounds(env)
        self.single_observation_space = spaces.Dict({
            "observation": spaces.Box(np.broadcast_to(low, (n, o)), np.broadcast_to(high, (n, o)),
                                      (n, o), np.float32),
            "action_mask": spaces.Box(0, 1, (n, a), np.int8),
            "state": spaces.Box(-np.inf, np.inf, (env.state_dim,), np.float32)})
        self.single_action_space = spaces.MultiDiscrete(np.asarray(env.agent_num_actions))
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._keys = jax.random.split(jax.random.PRNGKey(0), num_envs)
        self._state = None

    def reset(self, *, seed: int | Sequence[int] | None = None, options: dict | None = None):
        """Resets every copy: (observations, infos). `options` are not used."""
        if seed is not None:
            self._keys = self._seed_keys(seed)
        self._keys, self._state, ts = _reset_batch(self.env, self._keys)
        return _observations(jax.device_get(ts)), {}

    def step(self, actions):
        """One step of every copy with actions [E, N]: (observations, team rewards [E],
        terminations [E], truncations [E], infos)."""
        if self._state is None:
            raise RuntimeError(f"{self.env.name}: call reset() before step()")
        self._keys, out = _step_batch(self.env, self._keys, self._state, self._checked(actions))
        self._state = out.state
        transition, current = jax.device_get((out.transition, out.current))
        done = np.logical_or(transition.terminated, transition.truncated)
        infos = {"agent_rewards": transition.reward, "_agent_rewards": np.ones_like(done),
                 "final_obs": _observations(transition), "_final_obs": done}
        infos |= {k: np.asarray(v) for k, v in (transition.info or {}).items()}
        return (_observations(current), np.asarray(transition.team_reward), transition.terminated,
                transition.truncated, infos)

    def render(self) -> tuple[np.ndarray, ...] | None:
        """One RGB image [H, W, 3] uint8 per copy (render_mode="rgb_array"), else None."""
        if self.render_mode is None or self._state is None:
            return None
        return tuple(np.asarray(self.env.render(jax.tree.map(lambda x, e=e: x[e], self._state)))
                     for e in range(self.num_envs))

    def _seed_keys(self, seed) -> jax.Array:
        """[E, 2] keys: split(PRNGKey(seed), E), or PRNGKey(seed_e) for a list of E seeds."""
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            return jax.random.split(_new_key(seed), self.num_envs)
        seeds = list(seed) if isinstance(seed, (list, tuple, np.ndarray)) else None
        if seeds is None or len(seeds) != self.num_envs:
            raise ValueError(f"seed={seed!r}: expected an integer, None, or a list of num_envs = "
                             f"{self.num_envs} integers")
        return jnp.stack([_new_key(s) for s in seeds])

    def _checked(self, actions) -> jax.Array:
        """actions as int32 [E, N]; a wrong shape, dtype or value is named."""
        values = np.asarray(actions)
        shape = (self.num_envs, self.env.num_agents)
        if values.shape != shape or not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f"{self.env.name}: actions must be integers of shape {shape} (num_envs, "
                             f"num_agents), got {values.dtype} of shape {values.shape}")
        counts = np.asarray(self.env.agent_num_actions)
        bad = (values < 0) | (values >= counts)
        if bad.any():
            rows, cols = np.nonzero(bad)
            raise ValueError(f"{self.env.name}: action(s) {values[bad].tolist()} at (env, agent) "
                             f"{list(zip(rows.tolist(), cols.tolist()))} out of range; agent i takes "
                             f"integers in [0, n_i - 1] with n = {counts.tolist()}")
        return jnp.asarray(values, jnp.int32)


def _observations(ts: TimeStep) -> dict:
    """The observation dict of a batch of TimeSteps (numpy leaves [E, ...])."""
    return {"observation": np.asarray(ts.obs, np.float32), "action_mask": np.asarray(ts.avail, np.int8),
            "state": np.asarray(ts.state, np.float32)}
