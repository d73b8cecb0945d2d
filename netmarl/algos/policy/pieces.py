"""The registered pieces of the actor-critic family: returns, advantages and policy losses.

Every piece is an unbatched function of named arrays in rlax's style (time axis T for one agent of
one episode, or one agent at one step), vmapped by the learner over episodes and agents. Episodes are
padded to T steps: `filled_t` marks real steps, and a return never reaches past an episode's end
(its last step bootstraps from the value of the true next observation; `discount_t` is 0 where the
episode terminated, so a time-limit truncation bootstraps).

    V-critic advantages (ADVANTAGES[name].kind == "v"):   fn(r_t, discount_t, v, v_boot, filled_t,
                                                              n, lambda_) -> (adv [T], target [T])
    Q-critic advantages (kind == "q"):                     fn(q [A, M], pi [A], a) -> (adv [], q_a [])
    policy losses (POLICY_LOSSES):                         fn(logp, logp_old, adv, clip_eps) -> loss
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array
MASKED = -1e9  # logit of an unavailable action (finite, so that 0 · log 0 has finite gradients)


# --- returns ---------------------------------------------------------------------------------------

def n_step_returns(r_t: Array, discount_t: Array, v_t: Array, filled_t: Array, n: int) -> Array:
    """n-step returns of one agent's episode, cut at the episode's end.

        G⁽ⁿ⁾_t = r_t + d_t G⁽ⁿ⁻¹⁾_{t+1}   (G⁽⁰⁾_t = v_t; at the last step of the episode G_{t+1} = v_{t+1})

    so G_t = Σ_{k<m} (Π_{j<k} d_{t+j}) r_{t+k} + (Π_{j<m} d_{t+j}) v_{t+m}, m = min(n, steps left).

    Args: r_t [T] rewards, discount_t [T] γ(1 − terminated), v_t [T+1] values of observations 0..T
      (the bootstrap values), filled_t [T] real steps, n >= 1.
    Returns: [T] returns (meaningless where not filled).
    """
    assert r_t.ndim == 1 and v_t.shape == (r_t.shape[0] + 1,) and n >= 1
    next_filled = jnp.append(filled_t[1:], False)
    g = v_t[:-1]
    for _ in range(n):
        g = r_t + discount_t * jnp.where(next_filled, jnp.append(g[1:], 0.0), v_t[1:])
    return g


def gae(r_t: Array, discount_t: Array, v_t: Array, filled_t: Array, lambda_: float) -> Array:
    """Generalised advantage estimation (Schulman et al. 2016) of one agent's episode.

        δ_t = r_t + d_t v_{t+1} − v_t,   A_t = δ_t + d_t λ A_{t+1}   (A_{t+1} = 0 after the last step)

    Args: r_t [T], discount_t [T], v_t [T+1], filled_t [T], lambda_ in [0, 1].
    Returns: advantages [T].
    """
    assert r_t.ndim == 1 and v_t.shape == (r_t.shape[0] + 1,)
    delta = r_t + discount_t * v_t[1:] - v_t[:-1]
    next_filled = jnp.append(filled_t[1:], False)

    def back(a_next, x):
        delta_t, d_t, nf_t = x
        a = delta_t + d_t * lambda_ * jnp.where(nf_t, a_next, 0.0)
        return a, a

    _, adv = jax.lax.scan(back, jnp.float32(0.0), (delta, discount_t, next_filled), reverse=True)
    return adv


# --- advantages ------------------------------------------------------------------------------------

def td_advantage(r_t, discount_t, v, v_boot, filled_t, n: int, lambda_: float):
    """n-step TD advantage (the lecture's A2C with n = 1): target G⁽ⁿ⁾_t bootstrapped from v_boot (the
    target critic), A_t = G⁽ⁿ⁾_t − v_t. v, v_boot [T+1] -> (adv [T], target [T])."""
    del lambda_
    target = n_step_returns(r_t, discount_t, v_boot, filled_t, n)
    return target - v[:-1], target


def gae_advantage(r_t, discount_t, v, v_boot, filled_t, n: int, lambda_: float):
    """GAE(λ) from the online critic v; the critic target is the λ-return A_t + v_t."""
    del v_boot, n
    adv = gae(r_t, discount_t, v, filled_t, lambda_)
    return adv, adv + v[:-1]


def coma_advantage(q: Array, pi: Array, a: Array):
    """COMA's counterfactual advantage of one agent (Foerster et al. 2018; the lecture):

        Adv_i = Q(h_i, z, a) − Σ_{a'_i} π(a'_i | h_i) Q(h_i, z, ⟨a'_i, a_−i⟩)

    Args: q [A, 1]: Q_i(h_i, z, ⟨·, a_−i⟩) with the others' taken actions a_−i; pi [A]; a [] int.
    Returns: (advantage [], Q of the taken joint action []).
    """
    q = q[:, 0]
    return q[a] - jnp.dot(pi, q), q[a]


def pareto_advantage(q: Array, pi: Array, a: Array):
    """Pareto actor-critic's advantage (Christianos et al. 2023; the lecture): the others are assumed
    to play the joint action that is best for agent i,

        a⁺_−i(a_i) = argmax_{a_−i} Q(h_i, z, ⟨a_i, a_−i⟩),   Q⁺(a_i) = Q(h_i, z, ⟨a_i, a⁺_−i(a_i)⟩)
        Adv_i = Q⁺(a_i) − V⁺,   V⁺ = Σ_{a'_i} π(a'_i | h_i) Q⁺(a'_i)

    (V⁺ is computed exactly from the critic instead of by a second, state-value network.)

    Args: q [A, M]: Q_i for every own action and each of the M = A^(N−1) joint actions of the others.
    Returns: (advantage [], Q⁺(a_i) []).
    """
    best = q.max(1)
    return best[a] - jnp.dot(pi, best), best[a]


class Advantage(NamedTuple):
    """A registered advantage: `kind` "v" (state-value critic, time-recursive fn) or "q" (action-value
    critic, per-step fn); `others` the others' joint actions the Q table holds: taken | all."""

    fn: Callable
    kind: str
    others: str | None = None


ADVANTAGES: dict[str, Advantage] = {
    "td": Advantage(td_advantage, "v"),
    "gae": Advantage(gae_advantage, "v"),
    "coma": Advantage(coma_advantage, "q", "taken"),
    "pareto": Advantage(pareto_advantage, "q", "all"),
}


# --- policy losses ---------------------------------------------------------------------------------

def a2c_loss(logp: Array, logp_old: Array, adv: Array, clip_eps: float) -> Array:
    """Policy-gradient loss −sg(A) log π(a | h) of one sample []."""
    del logp_old, clip_eps
    return -jax.lax.stop_gradient(adv) * logp


def ppo_clip_loss(logp: Array, logp_old: Array, adv: Array, clip_eps: float) -> Array:
    """PPO's clipped surrogate (Schulman et al. 2017) of one sample [], ρ = π / π_old:

        −min(ρ A, clip(ρ, 1 − ε, 1 + ε) A)
    """
    adv = jax.lax.stop_gradient(adv)
    ratio = jnp.exp(logp - jax.lax.stop_gradient(logp_old))
    return -jnp.minimum(ratio * adv, jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * adv)


POLICY_LOSSES: dict[str, Callable] = {"a2c": a2c_loss, "ppo": ppo_clip_loss}


def entropy(logits: Array, avail: Array) -> Array:
    """Entropy of the softmax policy over the available actions: logits, avail [A] -> []."""
    logp = jax.nn.log_softmax(jnp.where(avail, logits, MASKED))
    return -jnp.sum(jnp.where(avail, jnp.exp(logp) * logp, 0.0))


def lookup(registry: dict, name: str, what: str):
    """registry[name], or an error naming the accepted names."""
    if name not in registry:
        raise ValueError(f"unknown {what} {name!r}; accepted: {', '.join(registry)}")
    return registry[name]
