"""The environment protocol shared by every netmarl environment.

An environment is an immutable (hashable) description of a task with two pure functions::

    reset(key)                    -> (EnvState, TimeStep)
    step(key, state, actions [N]) -> (EnvState, TimeStep)

All per-agent arrays carry a leading agent axis N. Both functions are jittable and vmappable; the
environment object itself is a static argument (a frozen dataclass), never part of a carry.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Discrete:
    """A discrete space {0, ..., n - 1}."""

    n: int

    def contains(self, x) -> bool:
        x = np.asarray(x)
        return bool(np.issubdtype(x.dtype, np.integer) and np.all((x >= 0) & (x < self.n)))


@dataclasses.dataclass(frozen=True)
class Box:
    """A box [low, high] of the given shape (bounds may be scalars or arrays as tuples)."""

    low: Any
    high: Any
    shape: tuple[int, ...]
    dtype: Any = np.float32

    def contains(self, x) -> bool:
        x = np.asarray(x)
        return x.shape == self.shape and bool(np.all((x >= self.low) & (x <= self.high)))


class TimeStep(NamedTuple):
    """What the agents see after a reset or a step.

    Shapes: N agents, A actions, O per-agent observation size, S global-state size.
    """

    obs: Array  # [N, O] float32, per-agent observations
    state: Array  # [S] float32, global state for centralised critics and mixers
    avail: Array  # [N, A] bool, actions that are valid in the current state
    reward: Array  # [N] float32, per-agent reward shares; sum(reward) == team_reward
    team_reward: Array  # [] float32
    terminated: Array  # [] bool, the episode ended in a terminal state (do not bootstrap)
    truncated: Array  # [] bool, the episode hit its time limit (bootstrap from obs)
    info: Any = None  # optional episode outcome, a dict of [] arrays with a fixed structure per env
    #   (e.g. {"won": bool} for SMAX battles, true on the step that ends a won episode); None for
    #   environments with nothing to report. Replay does not store it; evaluation may sum it.

    @property
    def done(self) -> Array:
        """The episode is over, for either reason."""
        return jnp.logical_or(self.terminated, self.truncated)


def make_timestep(obs, state, avail, reward, terminated, truncated, info=None) -> TimeStep:
    """Builds a TimeStep with canonical dtypes; the team reward is the sum of the shares."""
    reward = jnp.asarray(reward, jnp.float32)
    return TimeStep(
        obs=jnp.asarray(obs, jnp.float32),
        state=jnp.asarray(state, jnp.float32),
        avail=jnp.asarray(avail, bool),
        reward=reward,
        team_reward=reward.sum(),
        terminated=jnp.asarray(terminated, bool),
        truncated=jnp.asarray(truncated, bool),
        info=info,
    )


class AgentSpaces:
    """Per-agent spaces from `num_agents`, `obs_dim` and `num_actions` (shared by `Environment` and
    the host-stepped `adapters.HostEnv`; the learners read them)."""

    num_agents: int
    num_actions: int
    obs_dim: int

    @property
    def agent_obs_dims(self) -> tuple[int, ...]:
        """Per-agent observation sizes [N] (default: all O)."""
        return (self.obs_dim,) * self.num_agents

    @property
    def agent_num_actions(self) -> tuple[int, ...]:
        """Per-agent action counts [N] (default: all A)."""
        return (self.num_actions,) * self.num_agents

    @property
    def homogeneous(self) -> bool:
        """Every agent has the same observation and action spaces (parameters can be shared)."""
        return len(set(self.agent_obs_dims)) == 1 and len(set(self.agent_num_actions)) == 1


class Environment(AgentSpaces):
    """Base class: subclasses are frozen dataclasses implementing `_reset` and `_step`.

    Attributes every subclass defines: `num_agents` (N), `num_actions` (A), `obs_dim` (O),
    `state_dim` (S) and `max_steps` (episode length limit, in env steps).

    Heterogeneous agents keep the shared shapes: agent i's observation has `agent_obs_dims[i]` <= O
    meaningful entries (zero-padded to O) and its actions are 0 .. `agent_num_actions[i]` - 1 <= A
    (the rest are never available). Homogeneous environments keep the defaults.
    """

    num_agents: int
    num_actions: int
    obs_dim: int
    state_dim: int
    max_steps: int

    def reset(self, key: Array):
        """Starts an episode: returns (EnvState, TimeStep) with zero reward and no done flag."""
        return _jit_reset(self, key)

    def step(self, key: Array, state, actions):
        """Advances one step with joint actions `actions` [N] (integers in [0, A))."""
        return _jit_step(self, key, state, self.check_actions(actions))

    def check_actions(self, actions) -> Array:
        """Checks the shape always, and the values whenever they are concrete (outside jit).

        Under jit the values cannot be inspected; learners produce them by argmax over [A], so they
        are in range by construction.
        """
        shape = tuple(np.shape(actions))
        if shape != (self.num_agents,):
            raise ValueError(
                f"{self.name}: actions must have shape ({self.num_agents},) (one integer per agent), "
                f"got shape {shape}; vmap the env to step a batch"
            )
        if not isinstance(actions, jax.core.Tracer):
            values = np.asarray(actions)
            if not np.issubdtype(values.dtype, np.integer):
                raise ValueError(f"{self.name}: actions must be integers, got dtype {values.dtype}")
            counts = np.asarray(self.agent_num_actions)
            bad = (values < 0) | (values >= counts)
            if bad.any():
                accepted = (f"integers in [0, {self.num_actions - 1}]" if self.homogeneous else
                            f"agent i takes integers in [0, n_i - 1] with n = {list(counts)}")
                raise ValueError(f"{self.name}: action(s) {values[bad].tolist()} of agent(s) "
                                 f"{np.flatnonzero(bad).tolist()} out of range; accepted: {accepted}")
        return jnp.asarray(actions, jnp.int32)

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def action_space(self) -> Discrete:
        """Per-agent action space."""
        return Discrete(self.num_actions)

    def render(self, state) -> np.ndarray:
        """An RGB image [H, W, 3] uint8 of one (unbatched) state."""
        raise NotImplementedError(f"{self.name} has no renderer")


# Compiled once per environment (environments are hashable), so eager calls are fast too; inside an
# outer jit or vmap these are inlined like any other function.
@functools.partial(jax.jit, static_argnums=0)
def _jit_reset(env: Environment, key: Array):
    return env._reset(key)


@functools.partial(jax.jit, static_argnums=0)
def _jit_step(env: Environment, key: Array, state, actions: Array):
    return env._step(key, state, actions)


class AutoResetStep(NamedTuple):
    """Result of `step_autoreset`.

    `transition` is the true outcome of the step (its obs is the real next observation, needed to
    bootstrap on truncation); `current` is what the agents act on next: the same as `transition`,
    or the first TimeStep of a fresh episode when the step ended the episode.
    """

    state: Any
    transition: TimeStep
    current: TimeStep


def step_autoreset(env: Environment, key: Array, state, actions) -> AutoResetStep:
    """Steps `env` and starts a new episode (with a key split from `key`) when it ends."""
    key_step, key_reset = jax.random.split(key)
    next_state, transition = env.step(key_step, state, actions)
    reset_state, reset_ts = env.reset(key_reset)
    done = transition.done
    return AutoResetStep(
        state=select_tree(done, reset_state, next_state),
        transition=transition,
        current=select_tree(done, reset_ts, transition),
    )


def select_tree(pred: Array, on_true, on_false):
    """`jnp.where(pred, a, b)` leaf by leaf over two pytrees of the same structure."""
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)
