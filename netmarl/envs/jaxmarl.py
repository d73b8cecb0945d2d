"""JaxMARL environments as netmarl environments: one adapter for any JaxMARL `MultiAgentEnv`.

    make("jaxmarl:MPE_simple_spread_v3")                 # any id in jaxmarl.registered_envs
    make("jaxmarl:MPE_simple_spread_v3", num_agents=5)   # options go to the JaxMARL constructor
    make("smax:3m")                                      # SMAX battles: netmarl/envs/smax.py

jaxmarl is imported lazily (when the first such environment is built), so `import netmarl` and the
CLI's start-up never pay for it.

How a JaxMARL env maps onto the protocol of core.py:
- agent axis: the order of `env.agents`; the dicts keyed by agent name become [N, ...] arrays.
- obs [N, O]: each agent's flattened observation, zero-padded to O = the largest one. Agent i's first
  `agent_obs_dims[i]` entries are meaningful; `obs_mask` [N, O] marks them (speaker-listener:
  the speaker sees 3 numbers, the listener 11).
- actions: Discrete action spaces only; agent i takes 0 .. agent_num_actions[i] - 1 of A = the
  largest count. avail [N, A] comes from the env's `get_avail_actions` where it has one (SMAX),
  else it is every action the agent has.
- state [S]: the env's "world_state" (SMAX: scaled as its observations, `SMAXEnv.global_state`), else
  all agents' unpadded observations concatenated.
- reward [N]: `team_reward="sum"` keeps each agent's own reward (team reward = their sum, as
  EPyMARL's default for MPE); `"mean"` is for envs that give every agent the team's reward (SMAX):
  each agent gets r_i / N, so the team reward is that common reward, counted once.
- done: the adapter calls `step_env` (no auto-reset: core.step_autoreset does that) and counts env
  steps itself. truncated = t >= max_steps (the env's own `max_steps`); terminated = the env's done
  flag before that. MPE's own flag fires one step late (it tests the step count before adding one);
  counting ourselves ends MPE episodes after max_steps = 25 steps, as PettingZoo's max_cycles does.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import sys
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from netmarl.envs.core import Array, Box, Environment, make_timestep

TEAM_REWARDS = ("sum", "mean")


def import_jaxmarl():
    """The jaxmarl package, imported on first use. Its import prints two lines about optional
    environments; one of its own imports resets sys.stdout, so they are silenced at the fd level."""
    if "jaxmarl" in sys.modules:
        return sys.modules["jaxmarl"]
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        import jaxmarl
        sys.stdout.flush()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
    return jaxmarl


class JaxMARLState(NamedTuple):
    inner: Any  # the JaxMARL env's state
    t: Array  # [] int32, env steps taken in this episode


@dataclasses.dataclass(frozen=True)
class JaxMARLEnv(Environment):
    """A JaxMARL `MultiAgentEnv` with netmarl's protocol (see the module docstring).

    Args:
      env_id: a JaxMARL id (`jaxmarl.registered_envs`), e.g. "MPE_simple_spread_v3".
      options: sorted (name, value) pairs passed to `jaxmarl.make` (hashable values only).
      team_reward: "sum" or "mean": how per-agent rewards make the team reward.
      time_limit: env steps per episode (truncation); None = the env's own `max_steps` (or, for
        Coin Game, num_inner_steps * num_outer_steps). Envs with neither need it (Hanabi).
      controlled: the JaxMARL agents netmarl controls, in agent-axis order (empty = all); the
        others act uniformly at random (e.g. the prey of simple_tag, the adversary of
        simple_adversary). The global state still holds every agent's observation.
    """

    env_id: str
    options: tuple = ()
    team_reward: str = "sum"
    time_limit: int | None = None
    controlled: tuple[str, ...] = ()

    def __post_init__(self):
        unknown = sorted(set(self.controlled) - set(self.inner.agents))
        if unknown:
            raise ValueError(f"{self.name}: controlled agent(s) {unknown} do not exist; accepted: "
                             f"{', '.join(self.inner.agents)}")
        if self.team_reward not in TEAM_REWARDS:
            raise ValueError(f"{self.name}: team_reward={self.team_reward!r} is not known; "
                             f"accepted: {', '.join(TEAM_REWARDS)}")
        for agent in self.agents:
            space = self.inner.action_space(agent)
            if not hasattr(space, "n"):
                raise ValueError(f"{self.name}: agent {agent!r} has action space {type(space).__name__}; "
                                 "accepted: Discrete action spaces only")
        if self.time_limit is not None and self.time_limit < 1:
            raise ValueError(f"{self.name}: time_limit={self.time_limit} must be a positive integer")
        if self.time_limit is None and _own_limit(self.inner) is None:
            raise ValueError(f"{self.name} has no time limit of its own (no max_steps); "
                             "pass the option time_limit=<env steps per episode>")

    def build(self):
        """Constructs the wrapped JaxMARL env (subclasses build their own)."""
        return import_jaxmarl().make(self.env_id, **dict(self.options))

    @functools.cached_property
    def inner(self):
        """The wrapped JaxMARL env, built once per adapter object."""
        return self.build()

    @property
    def agents(self) -> tuple[str, ...]:
        """The controlled agents, in agent-axis order."""
        return self.controlled or tuple(self.inner.agents)

    @property
    def others(self) -> tuple[str, ...]:
        """The JaxMARL agents netmarl does not control (they act uniformly at random)."""
        return tuple(a for a in self.inner.agents if a not in self.agents)

    @property
    def num_agents(self) -> int:
        return len(self.agents)

    @property
    def agent_obs_dims(self) -> tuple[int, ...]:
        return tuple(int(np.prod(self.inner.observation_space(a).shape)) for a in self.agents)

    @property
    def agent_num_actions(self) -> tuple[int, ...]:
        return tuple(int(self.inner.action_space(a).n) for a in self.agents)

    @property
    def obs_dim(self) -> int:
        return max(self.agent_obs_dims)

    @property
    def num_actions(self) -> int:
        return max(self.agent_num_actions)

    @functools.cached_property
    def state_dim(self) -> int:
        obs, _ = jax.eval_shape(self.inner.reset, jax.random.key(0))
        if "world_state" in obs:
            return int(np.prod(obs["world_state"].shape))
        return sum(int(np.prod(obs[a].shape)) for a in self.inner.agents)

    @property
    def max_steps(self) -> int:
        return self.time_limit or _own_limit(self.inner)

    @property
    def obs_mask(self) -> np.ndarray:
        """[N, O] bool: the meaningful (unpadded) entries of each agent's observation."""
        return np.arange(self.obs_dim) < np.asarray(self.agent_obs_dims)[:, None]

    @property
    def name(self) -> str:
        return f"jaxmarl:{self.env_id}"

    @property
    def observation_space(self) -> Box:
        return Box(-np.inf, np.inf, (self.obs_dim,))

    def _reset(self, key: Array):
        obs, inner = self.inner.reset(key)
        state = JaxMARLState(_strong(inner), jnp.int32(0))
        zero = jnp.zeros(self.num_agents)
        return state, self._timestep(obs, inner, zero, jnp.bool_(False), jnp.bool_(False))

    def _step(self, key: Array, state: JaxMARLState, actions: Array):
        act = {a: actions[i] for i, a in enumerate(self.agents)}
        if self.others:
            key, k_others = jax.random.split(key)
            for k, a in zip(jax.random.split(k_others, len(self.others)), self.others):
                act[a] = jax.random.randint(k, (), 0, self.inner.action_space(a).n)
        obs, inner, rewards, dones, _ = self.inner.step_env(key, state.inner, act)
        t = state.t + 1
        reward = jnp.stack([jnp.asarray(rewards[a], jnp.float32) for a in self.agents])
        if self.team_reward == "mean":
            reward = reward / self.num_agents
        terminal = self.terminal(inner, dones["__all__"], t)
        truncated = (t >= self.max_steps) & ~terminal
        return JaxMARLState(_strong(inner), t), self._timestep(obs, inner, reward, terminal, truncated)

    def terminal(self, inner, done: Array, t: Array) -> Array:
        """[] bool: the episode ended in a terminal state (the env's done flag before the limit)."""
        return done & (t < self.max_steps)

    def info(self, inner, terminal: Array):
        """The TimeStep's `info` (None: nothing to report; subclasses report outcomes)."""
        return None

    def _timestep(self, obs: dict, inner, reward: Array, terminal: Array, truncated: Array):
        flat = {a: obs[a].reshape(-1).astype(jnp.float32) for a in self.inner.agents}
        padded = jnp.stack([jnp.pad(flat[a], (0, self.obs_dim - flat[a].shape[0])) for a in self.agents])
        return make_timestep(padded, self.global_state(obs, inner, flat), self.avail(inner), reward,
                             terminal, truncated, self.info(inner, terminal))

    def global_state(self, obs: dict, inner, flat: dict) -> Array:
        """[S]: the env's "world_state" if it has one, else every agent's unpadded observation."""
        if "world_state" in obs:
            return obs["world_state"].reshape(-1).astype(jnp.float32)
        return jnp.concatenate([flat[a] for a in self.inner.agents])

    def avail(self, inner) -> Array:
        """[N, A] bool available actions."""
        own = jnp.arange(self.num_actions) < jnp.asarray(self.agent_num_actions)[:, None]
        if not _has_avail(type(self.inner)):
            return own
        masks = self.inner.get_avail_actions(inner)
        rows = [jnp.pad(jnp.asarray(masks[a], bool), (0, self.num_actions - masks[a].shape[0]))
                for a in self.agents]
        return jnp.stack(rows) & own

    def render(self, state: JaxMARLState) -> np.ndarray:
        from netmarl.envs.jaxmarl_render import render_jaxmarl
        return render_jaxmarl(self, state.inner)


def _strong(tree):
    """`tree` with every leaf strongly typed: JaxMARL states mix weak and strong types between
    reset and step, which would recompile a jitted step on its second call."""
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.asarray(x).dtype), tree)


def _own_limit(inner) -> int | None:
    if hasattr(inner, "max_steps"):
        return int(inner.max_steps)
    if hasattr(inner, "num_inner_steps"):  # Coin Game: the outer (meta) episode
        return int(inner.num_inner_steps * inner.num_outer_steps)
    return None


def _has_avail(cls) -> bool:
    base = import_jaxmarl().environments.multi_agent_env.MultiAgentEnv
    return cls.get_avail_actions is not base.get_avail_actions


def constructor_options(cls) -> list[str]:
    """The named constructor arguments of a JaxMARL env class and of the bases its **kwargs reach."""
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        names += [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                  and p.name != "self" and p.name not in names]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


def make_jaxmarl(env_id: str, team_reward: str = "sum", time_limit: int | None = None,
                 controlled: tuple[str, ...] | str = (), **options) -> JaxMARLEnv:
    """Builds `jaxmarl:<env_id>`; options are checked against the JaxMARL constructor's arguments."""
    jaxmarl = import_jaxmarl()
    if env_id not in jaxmarl.registered_envs:
        raise ValueError(f"unknown JaxMARL environment {env_id!r}; accepted: "
                         f"{', '.join(jaxmarl.registered_envs)}")
    accepted = constructor_options(type(jaxmarl.make(env_id)))
    check_options(f"jaxmarl:{env_id}", options, accepted + ["team_reward", "time_limit", "controlled"])
    controlled = tuple(controlled.split(",")) if isinstance(controlled, str) else tuple(controlled)
    return JaxMARLEnv(env_id, tuple(sorted(options.items())), team_reward, time_limit, controlled)


def check_options(name: str, options: dict, accepted: list[str]) -> None:
    """Raises a ValueError naming unknown or unhashable options and the accepted names."""
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"{name}: unknown environment option(s) {unknown}; accepted: {', '.join(accepted)}")
    for key, value in options.items():
        try:
            hash(value)
        except TypeError:
            raise ValueError(f"{name}: option {key}={value!r} must be a number, string or bool "
                             "(hashable: the environment is a static argument of jit)") from None
