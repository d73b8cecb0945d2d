"""Agent Q-networks behind a tiny init/apply interface, stacked on the agent axis.

    net = make_agent_net("gru", num_actions, hidden=64)          # init="torch": EPyMARL's init
    params = init_agents(net, key, obs_dim, num_agents, shared=False)  # leaves [N, ...]
    q, h = apply_agents(net, params, obs [N, O], h [N, H], shared=False)            # q [N, A]

With `shared=True` one parameter set serves every agent (leaves without the N axis); the caller
appends one-hot agent ids to the observations so that the shared function can still tell agents apart.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


class AgentNet(NamedTuple):
    """A Q-network for one agent: `apply(params, obs [O], h [H]) -> (q [A], h' [H])`."""

    init: Callable  # (key, obs_dim) -> params
    apply: Callable  # (params, obs [O], h [H]) -> (q [A], h [H])
    hidden_dim: int  # size H of the recurrent state (MLPs carry a dummy state of size 1)
    recurrent: bool


INITS = ("lecun", "torch")  # Flax's default | PyTorch's (EPyMARL's): U(±1/sqrt(fan_in)), biases too


def _uniform(bound: float):
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


def _dense(features: int, fan_in: int, init: str, name: str) -> nn.Dense:
    """Flax's default Dense (lecun normal kernel, zero bias) or PyTorch's nn.Linear init (kernel and
    bias U(±1/sqrt(fan_in))). netmarl/nets/mixers.py has the QMIX mixer's twin, which draws the same
    law but its bias as a kernel row: merging them would change one family's committed initial values."""
    if init == "lecun":
        return nn.Dense(features, name=name)
    bound = fan_in ** -0.5
    return nn.Dense(features, kernel_init=_uniform(bound), bias_init=_uniform(bound), name=name)


class _MLP(nn.Module):
    hidden: int
    layers: int
    num_actions: int
    init_scheme: str = "lecun"  # (`init` would shadow Module.init)

    @nn.compact
    def __call__(self, obs, h):
        x = obs
        for i in range(self.layers):
            x = nn.relu(_dense(self.hidden, x.shape[-1], self.init_scheme, f"Dense_{i}")(x))
        return _dense(self.num_actions, x.shape[-1], self.init_scheme, f"Dense_{self.layers}")(x), h


class _GRU(nn.Module):
    """EPyMARL's RNN agent: Dense-ReLU, GRU cell, Dense to Q-values."""

    hidden: int
    num_actions: int
    init_scheme: str = "lecun"

    @nn.compact
    def __call__(self, obs, h):
        x = nn.relu(_dense(self.hidden, obs.shape[-1], self.init_scheme, "Dense_0")(obs))
        if self.init_scheme == "lecun":
            cell = nn.GRUCell(self.hidden, name="GRUCell_0")
        else:  # PyTorch's GRUCell: every weight and bias U(±1/sqrt(hidden))
            u = _uniform(self.hidden ** -0.5)
            cell = nn.GRUCell(self.hidden, kernel_init=u, recurrent_kernel_init=u, bias_init=u,
                              name="GRUCell_0")
        h, x = cell(h, x)
        return _dense(self.num_actions, self.hidden, self.init_scheme, "Dense_1")(x), h


def _wrap(module: nn.Module, hidden_dim: int, recurrent: bool) -> AgentNet:
    def init(key, obs_dim: int):
        return module.init(key, jnp.zeros(obs_dim), jnp.zeros(hidden_dim))

    return AgentNet(init, module.apply, hidden_dim, recurrent)


# name -> constructor(num_actions, hidden, layers, init)
AGENT_NETS: dict[str, Callable[[int, int, int, str], AgentNet]] = {
    "mlp": lambda a, hidden, layers, init: _wrap(_MLP(hidden, layers, a, init), 1, False),
    "gru": lambda a, hidden, layers, init: _wrap(_GRU(hidden, a, init), hidden, True),
}


def make_agent_net(kind: str, num_actions: int, hidden: int = 64, layers: int = 2,
                   init: str = "lecun") -> AgentNet:
    """An agent network by name: "mlp" (`layers` ReLU layers of `hidden` units) or "gru"; `init`:
    lecun (Flax's default) or torch (PyTorch's nn.Linear / nn.GRUCell, as EPyMARL's agents)."""
    if kind not in AGENT_NETS:
        raise ValueError(f"unknown agent network {kind!r}; accepted: {', '.join(AGENT_NETS)}")
    if init not in INITS:
        raise ValueError(f"unknown agent network init {init!r}; accepted: {', '.join(INITS)}")
    if hidden < 1 or layers < 1:
        raise ValueError(f"agent network sizes must be positive, got hidden={hidden}, layers={layers}")
    return AGENT_NETS[kind](num_actions, hidden, layers, init)


def init_agents(net: AgentNet, key: Array, obs_dim: int, num_agents: int, shared: bool):
    """Parameters for N agents: leaves [N, ...] (independent) or one set (shared)."""
    if shared:
        return net.init(key, obs_dim)
    return jax.vmap(net.init, in_axes=(0, None))(jax.random.split(key, num_agents), obs_dim)


def apply_agents(net: AgentNet, params, obs: Array, h: Array, shared: bool):
    """Q-values of every agent: obs [N, O], h [N, H] -> (q [N, A], h [N, H])."""
    return jax.vmap(net.apply, in_axes=(None if shared else 0, 0, 0))(params, obs, h)


def apply_sequence(net: AgentNet, params, inputs: Array, shared: bool) -> Array:
    """Outputs along one episode: inputs [T+1, N, D] -> [T+1, N, A] (a GRU unrolled from zero; a
    feed-forward net applies to all time steps in one batched call)."""
    h0 = jnp.zeros((inputs.shape[1], net.hidden_dim))

    def step(h, x):
        out, h = apply_agents(net, params, x, h, shared)
        return h, out

    if not net.recurrent:
        return jax.vmap(step, (None, 0))(h0, inputs)[1]
    return jax.lax.scan(step, h0, inputs)[1]


def with_agent_ids(obs: Array) -> Array:
    """Appends one-hot agent ids: [..., N, O] -> [..., N, O + N].

    Written as zero-padding plus a padded identity (the same values, exactly) rather than a
    concatenation: XLA fused the concatenation of a replay minibatch with the buffer's write and
    copied the whole observation buffer (55 MB at EPyMARL's settings) twice per training iteration,
    doubling a VDN (PS) run with GRU agents (docs/results/epymarl_gru_side_by_side.md)."""
    n, o = obs.shape[-2], obs.shape[-1]
    ids = jnp.pad(jnp.eye(n, dtype=obs.dtype), ((0, 0), (o, 0)))  # [N, O + N]: zeros, then the one-hot
    return jnp.pad(obs, [(0, 0)] * (obs.ndim - 1) + [(0, n)]) + ids
