"""Losses of the mixed strategies: one joint TD through a mixing network (nets/mixers.py).

A mixed strategy's loss is a function of one transition, `loss(mixer, mixer_config, params,
target_params, x: MixInputs) -> []`, vmapped over batch and time by `mixed_loss`:

- `mixed_td` (QMIX, QPLEX): the squared TD of Q_tot,
      (R + γ (1 − terminated) Q_tot(s', a*; θ⁻) − Q_tot(s, a; θ))²,   a*_i = argmax_u Q_i(o'_i, u)
- `qtran_td` (QTRAN-base, Son et al. 2019, eqs. 6–8): with Q′(s, a) = Σ_i Q_i(o_i, a_i) and
  ā = (argmax_u Q_i(o_i, u))_i the greedy joint action of the utilities,
      L_td   = (R + γ (1 − terminated) Q_jt(s', a*; θ⁻) − Q_jt(s, a))²
      L_opt  = (Q′(s, ā) − sg Q_jt(s, ā) + V_jt(s))²
      L_nopt = (min(Q′(s, a) − sg Q_jt(s, a) + V_jt(s), 0))²
      L = L_td + λ_opt L_opt + λ_nopt L_nopt   (λ: algo.mixer.opt_weight, nopt_weight)
  L_opt = L_nopt = 0 for all a makes argmax_a Q_jt = ā (QTRAN's Theorem 1). Q_jt learns only from
  L_td; the utilities and V_jt only from L_opt and L_nopt. (QTRAN-alt's counterfactual L_nopt is
  not implemented.)
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from netmarl.nets.mixers import Mixer, chosen

Array = jax.Array


class MixInputs(NamedTuple):
    """One transition as the mixers see it."""

    q_tm1: Array  # [N, A] online utilities at s
    a_tm1: Array  # [N] int32 taken joint action
    avail_tm1: Array  # [N, A] bool
    s_tm1: Array  # [S] global state
    r_t: Array  # [] team reward R (sum of the reward shares)
    discount_t: Array  # [] γ (1 − terminated)
    q_t: Array  # [N, A] target utilities at s'
    a_t: Array  # [N] int32 bootstrap joint action a* (double Q: selected by the online utilities)
    avail_t: Array  # [N, A] bool
    s_t: Array  # [S]


def greedy_actions(q: Array, avail: Array) -> Array:
    """Per-agent greedy available actions: q, avail [..., N, A] -> [..., N] int32."""
    return jnp.argmax(jnp.where(avail, q, -jnp.inf), -1).astype(jnp.int32)


def mixed_td(mixer: Mixer, config, params, target_params, x: MixInputs) -> Array:
    """Squared TD of Q_tot for one transition (QMIX, QPLEX). Returns []."""
    del config
    q_tot = mixer.apply(params, x.q_tm1, x.a_tm1, x.avail_tm1, x.s_tm1)
    v_tot = mixer.apply(target_params, x.q_t, x.a_t, x.avail_t, x.s_t)
    return jnp.square(x.r_t + x.discount_t * jax.lax.stop_gradient(v_tot) - q_tot)


def qtran_terms(mixer: Mixer, params, target_params, x: MixInputs) -> tuple[Array, Array, Array]:
    """QTRAN-base's (L_td, L_opt, L_nopt) for one transition (module docstring). Each []."""
    q_jt = mixer.apply(params, x.q_tm1, x.a_tm1, x.avail_tm1, x.s_tm1)
    y = x.r_t + x.discount_t * mixer.apply(target_params, x.q_t, x.a_t, x.avail_t, x.s_t)
    greedy = greedy_actions(x.q_tm1, x.avail_tm1)
    q_jt_opt = mixer.apply(params, x.q_tm1, greedy, x.avail_tm1, x.s_tm1)
    v_jt = mixer.value(params, x.s_tm1)
    sg = jax.lax.stop_gradient
    l_opt = jnp.square(chosen(x.q_tm1, greedy).sum() - sg(q_jt_opt) + v_jt)
    l_nopt = jnp.square(jnp.minimum(chosen(x.q_tm1, x.a_tm1).sum() - sg(q_jt) + v_jt, 0.0))
    return jnp.square(sg(y) - q_jt), l_opt, l_nopt


def qtran_td(mixer: Mixer, config, params, target_params, x: MixInputs) -> Array:
    """QTRAN-base's loss L_td + λ_opt L_opt + λ_nopt L_nopt for one transition. Returns []."""
    l_td, l_opt, l_nopt = qtran_terms(mixer, params, target_params, x)
    return l_td + config.opt_weight * l_opt + config.nopt_weight * l_nopt


def mixed_loss(loss, mixer: Mixer, config, params, target_params, q: Array, q_target: Array,
               batch, r_t: Array, discount_t: Array, double_q: bool) -> Array:
    """Per-transition losses [B, T] of a batch of episodes.

    Args: loss: a mixed strategy's loss (above); q / q_target [B, T+1, N, A] online / target
      utilities; batch: the Episode (action [B, T, N], avail [B, T+1, N, A], state [B, T+1, S]);
      r_t [B, T, N] reward shares; discount_t [B, T]; double_q: select a* with the online utilities.
    """
    a_t = greedy_actions(q[:, 1:] if double_q else q_target[:, 1:], batch.avail[:, 1:])
    x = MixInputs(q[:, :-1], batch.action, batch.avail[:, :-1], batch.state[:, :-1], r_t.sum(-1),
                  discount_t, q_target[:, 1:], a_t, batch.avail[:, 1:], batch.state[:, 1:])
    one = lambda x: loss(mixer, config, params, target_params, x)  # noqa: E731
    return jax.vmap(jax.vmap(one))(x)
