"""What the critic sees: the registered critic inputs of the actor-critic family.

Each input is a function of one time step, `fn(obs [N, O], state [S], actions [N]) -> [N, C]` (row i
is agent i's critic input; `actions` is the joint action of the step, read only by action-value
inputs), with `dim(env, O) -> C`. `obs` is what the agents see (inputs.py: o, or DG-MAPPO's õ):

    local         o_i                              V(h_i)          IA2C, IPPO
    state         s (the env's global state)       V(h_i, z = s)   MAA2C, MAPPO
    joint_obs     [o_1 … o_N]                      V(h_i, z = o)   MAA2C / MAPPO on the joint observation
    joint_action  [s, o_i, onehot(a_−i)]           Q(h_i, z, ⟨·, a_−i⟩) [A]: one output per own action a_i
                                                                   COMA, Pareto-AC

The action-value input leaves agent i's own action out (its slot of the one-hot joint action is
zero), so one pass gives Q_i for every a_i: COMA's counterfactual baseline needs no extra pass, and
Pareto-AC enumerates only the others' joint actions (`others_onehot`).
"""
from __future__ import annotations

import itertools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from netmarl.envs.core import Environment

Array = jax.Array


class CriticInput(NamedTuple):
    fn: Callable  # (obs [N, O], state [S], actions [N]) -> [N, C]
    dim: Callable  # (env, O) -> C, with O the size of what the agents see (agent_input: o or õ)
    action_value: bool  # the critic outputs Q_i(., a_-i)[a_i] for every a_i (else one value V_i)


def local(obs: Array, state: Array, actions: Array) -> Array:
    """o_i: each agent's own observation. -> [N, O]"""
    del state, actions
    return obs


def global_state(obs: Array, state: Array, actions: Array) -> Array:
    """s: the environment's global state, the same for every agent. -> [N, S]"""
    del actions
    return jnp.broadcast_to(state, (obs.shape[0], state.shape[0]))


def joint_obs(obs: Array, state: Array, actions: Array) -> Array:
    """[o_1, …, o_N]: the joint observation, the same for every agent. -> [N, N·O]"""
    del state, actions
    return jnp.broadcast_to(obs.reshape(-1), (obs.shape[0], obs.size))


def others_onehot_of(actions: Array, num_actions: int) -> Array:
    """Row i: the one-hot joint action with agent i's own slot zeroed. [N] -> [N, N·A]"""
    n = actions.shape[0]
    onehot = jax.nn.one_hot(actions, num_actions)  # [N, A]
    others = jnp.where(jnp.eye(n, dtype=bool)[:, :, None], 0.0, onehot[None])  # [N, N, A]
    return others.reshape(n, n * num_actions)


def joint_action_rows(obs: Array, state: Array, others: Array) -> Array:
    """[s, o_i, onehot(a_−i)] per agent from the others' one-hot actions others [N, N·A]."""
    n = obs.shape[0]
    return jnp.concatenate([jnp.broadcast_to(state, (n, state.shape[0])), obs, others], -1)


def joint_action(obs: Array, state: Array, actions: Array, num_actions: int) -> Array:
    """[s, o_i, onehot(a_−i)]: input of the action-value critic. -> [N, S + O + N·A]"""
    return joint_action_rows(obs, state, others_onehot_of(actions, num_actions))


CRITIC_INPUTS: dict[str, Callable[[Environment], CriticInput]] = {
    "local": lambda env: CriticInput(local, lambda e, o: o, False),
    "state": lambda env: CriticInput(global_state, lambda e, o: e.state_dim, False),
    "joint_obs": lambda env: CriticInput(joint_obs, lambda e, o: e.num_agents * o, False),
    "joint_action": lambda env: CriticInput(
        lambda o, s, a: joint_action(o, s, a, env.num_actions),
        lambda e, o: e.state_dim + o + e.num_agents * e.num_actions, True),
}


def others_joint_actions(num_agents: int, num_actions: int) -> tuple[np.ndarray, np.ndarray]:
    """Every joint action of the others, for each agent: exact enumeration for Pareto-AC.

    Returns (onehot [N, M, N·A]: row (i, m) is the one-hot joint action m of the agents j ≠ i with
    agent i's slot zero, and actions [N, M, N] int: the same joint actions, agent i's entry 0),
    M = A^(N−1). The enumeration grows as A^(N−1): 36 joint actions for 3 LBF agents (A = 6),
    7,776 for 6 agents, 10⁷ for 10; `algo.policy.max_joint_actions` bounds it.
    """
    n, a = num_agents, num_actions
    combos = np.array(list(itertools.product(range(a), repeat=n - 1)), np.int32).reshape(-1, n - 1)
    actions = np.zeros((n, len(combos), n), np.int32)
    for i in range(n):
        actions[i][:, [j for j in range(n) if j != i]] = combos
    onehot = np.eye(a, dtype=np.float32)[actions]  # [N, M, N, A]
    onehot[np.arange(n), :, np.arange(n)] = 0.0
    return onehot.reshape(n, len(combos), n * a), actions
