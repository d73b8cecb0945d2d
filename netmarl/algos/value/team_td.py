"""Team-TD strategies: how each agent forms the TD error it learns from (specs/dvdn.md).

Every decomposed strategy maps the per-agent TD errors δ [N] of one transition (and, for networked
agents, the round's consensus weights) to each agent's estimate of the joint TD Δ̂ [N]. The learner
then minimises, for every agent i,

    ℓ_i = (δ_i + sg(Δ̂_i − δ_i))²,   whose gradient is 2 Δ̂_i ∇δ_i,

so IQL (Δ̂_i = δ_i), VDN (Δ̂_i = Σ_j δ_j) and DVDN (Δ̂_i from consensus) are one learner. A mixed
strategy (QMIX, QPLEX, QTRAN) instead learns through a mixing network over the agents' utilities,
with its loss from algos/value/mixed.py.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from netmarl.algos.value.mixed import mixed_td, qtran_td
from netmarl.comm import jtd_estimate

Array = jax.Array


def iql(delta: Array, weights: Array | None = None) -> Array:
    """Independent learners: each agent's team TD is its own TD. δ [N] -> [N]."""
    del weights
    return delta


def vdn(delta: Array, weights: Array | None = None) -> Array:
    """Value decomposition: every agent uses the exact joint TD Σ_j δ_j. δ [N] -> [N]."""
    del weights
    return jnp.broadcast_to(delta.sum(), delta.shape)


class TeamTD(NamedTuple):
    """A registered strategy: `fn(delta [N], weights) -> [N]`, or `fn=None` for a mixer strategy
    (a mixer of nets/mixers.MIXERS with its `loss`; "pairwise": PairVDN's cycle of pair grids)."""

    fn: Callable | None
    mixer: str | None  # name of the mixing network for mixed strategies (see nets/mixers.py)
    uses_graph: bool  # draws consensus weights from the communication graph schedule
    loss: Callable | None = None  # a mixed strategy's per-transition loss (algos/value/mixed.py)


def dvdn(delta: Array, weights: Array) -> Array:
    """Networked agents: K consensus rounds on the TDs, Δ̂ = N · W⁽ᴷ⁾⋯W⁽¹⁾ sg(δ) (specs/dvdn.md eq. 2).

    δ [N], weights Ws [K, N, N] (one fresh graph per round) -> [N]."""
    return jtd_estimate(jax.lax.stop_gradient(delta), weights)


TEAM_TDS: dict[str, TeamTD] = {
    "iql": TeamTD(iql, None, False),
    "vdn": TeamTD(vdn, None, False),
    "dvdn": TeamTD(dvdn, None, True),
    "qmix": TeamTD(None, "qmix", False, mixed_td),
    # QPLEX: duplex dueling, Q_tot = Σ V_i(s) + Σ λ_i(s, a) A_i(s, a_i) (nets/mixers.py)
    "qplex": TeamTD(None, "qplex", False, mixed_td),
    # QTRAN-base: Q_jt, V_jt and the factorised Σ Q_i tied by L_td, L_opt, L_nopt (mixed.py)
    "qtran": TeamTD(None, "qtran", False, qtran_td),
    # PairVDN: Q_tot = Σ_i Q(o_i, o_i+1)[a_i, a_i+1] over a cycle (algos/value/pairvdn.py)
    "pairvdn": TeamTD(None, "pairwise", False),
}


def get_team_td(name: str) -> TeamTD:
    if name not in TEAM_TDS:
        raise ValueError(f"unknown team_td {name!r}; accepted: {', '.join(TEAM_TDS)}")
    return TEAM_TDS[name]


def surrogate_loss(delta: Array, team: Array) -> Array:
    """Σ_i (δ_i + sg(Δ̂_i − δ_i))² for one transition: value Σ Δ̂_i², gradient 2 Σ_i Δ̂_i ∇δ_i."""
    return jnp.sum(jnp.square(delta + jax.lax.stop_gradient(team - delta)))
