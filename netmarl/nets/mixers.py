"""Mixers Q_tot = f(Q_1..Q_N; s). QMIX's monotone hypernetwork mixer (Rashid et al., 2018).

    Q_tot = w2(s)ᵀ g(W1(s)ᵀ q + b1(s)) + b2(s),  W1, w2 >= 0 (absolute values), g = ELU or ReLU

Non-negative mixing weights make ∂Q_tot/∂Q_i >= 0, so per-agent greedy actions are jointly greedy.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


class Mixer(NamedTuple):
    """`apply(params, q [N], state [S]) -> q_tot []`."""

    init: Callable  # (key, num_agents, state_dim) -> params
    apply: Callable


class _QMix(nn.Module):
    embed: int
    hyper_hidden: int
    activation: str

    @nn.compact
    def __call__(self, q, state):
        n = q.shape[-1]

        def hyper(out, name):  # EPyMARL's hypernet_layers=2, or one linear layer if hyper_hidden=0
            x = state if self.hyper_hidden == 0 else nn.relu(nn.Dense(self.hyper_hidden, name=f"{name}_0")(state))
            return nn.Dense(out, name=f"{name}_1")(x)

        w1 = jnp.abs(hyper(n * self.embed, "w1")).reshape(n, self.embed)  # [N, E]
        b1 = nn.Dense(self.embed, name="b1")(state)  # [E]
        act = nn.elu if self.activation == "elu" else nn.relu
        hidden = act(q @ w1 + b1)  # [E]
        w2 = jnp.abs(hyper(self.embed, "w2"))  # [E]
        b2 = nn.Dense(1, name="b2_1")(nn.relu(nn.Dense(self.embed, name="b2_0")(state)))[0]
        return hidden @ w2 + b2


def make_qmix(embed: int = 32, hyper_hidden: int = 64, activation: str = "elu") -> Mixer:
    """QMIX mixer with mixing embedding size `embed` and hypernetwork width `hyper_hidden` (0: the
    W1 and w2 hypernetworks are single linear layers, as in the original QMIX)."""
    if activation not in ("elu", "relu"):
        raise ValueError(f"QMIX activation {activation!r} is not known; accepted: elu, relu")
    if hyper_hidden < 0:
        raise ValueError(f"QMIX hyper_hidden {hyper_hidden} must be >= 0 (0: one-layer hypernetworks)")
    module = _QMix(embed, hyper_hidden, activation)
    return Mixer(lambda key, n, s: module.init(key, jnp.zeros(n), jnp.zeros(s)), module.apply)
