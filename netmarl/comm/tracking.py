"""Gradient tracking (DVDN (GT), specs/dvdn.md eq. 4c–4d) as composable optax transformations.

Every leaf of params, grads and state is stacked on a leading agent axis [N, ...]; the round's
consensus weights W [N, N] arrive as the keyword-only extra argument `weights=`. For training step k,
with g_i⁽ᵏ⁾ the local gradient at ω_i⁽ᵏ⁻¹⁾ and z⁽⁰⁾ = g⁽⁰⁾ = 0:

    (4c) z_i⁽ᵏ⁾ = Σ_j α_ij⁽ᵏ⁾ z_j⁽ᵏ⁻¹⁾ + g_i⁽ᵏ⁾ − g_i⁽ᵏ⁻¹⁾        gradient_tracking()
    (4d) ω_i⁽ᵏ⁾ = Σ_j α_ij⁽ᵏ⁾ ω_j⁽ᵏ⁻¹⁾ − η z_i⁽ᵏ⁾                  sgd(η) then mix_params()

The parameter mixing Σ_j α_ij ω_j − ω_i is NOT scaled by the learning rate, so it cannot live
before the optimizer: `gradient_tracking()` replaces the gradient by the tracker z, the optimizer
turns z into −η z, and `mix_params()` (last in the chain) adds W ω − ω:

    tx = optax.chain(gradient_tracking(), optax.sgd(eta), mix_params())   # eq. 4 as printed
    tx = optax.chain(gradient_tracking(), optax.adam(lr), mix_params())   # Adam on the tracker
    updates, state = tx.update(grads, state, params, weights=W)
    params = optax.apply_updates(params, updates)

Element-wise optimizers (sgd, adam) act per agent on the stacked leaves. Anything that couples leaves
(e.g. `clip_by_global_norm`) must be applied per agent (vmapped) on g_i before `gradient_tracking`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import optax

from netmarl.comm.consensus import consensus

Mix = Callable[[Any, Any], Any]  # (pytree, weights W [N, N]) -> Σ_j α_ij x_j per agent


class GTState(NamedTuple):
    """Gradient-tracking state, leaves stacked like the params."""

    tracker: optax.Updates  # z⁽ᵏ⁻¹⁾, leaves [N, ...]: each agent's estimate of the mean gradient
    prev_grad: optax.Updates  # g⁽ᵏ⁻¹⁾, leaves [N, ...]: each agent's previous local gradient


def gradient_tracking(mix: Mix = consensus) -> optax.GradientTransformationExtraArgs:
    """Replaces each agent's gradient g_i by its tracker z_i (eq. 4c).

        z_i⁽ᵏ⁾ = Σ_j α_ij⁽ᵏ⁾ z_j⁽ᵏ⁻¹⁾ + g_i⁽ᵏ⁾ − g_i⁽ᵏ⁻¹⁾,   z⁽⁰⁾ = g⁽⁰⁾ = 0.

    With doubly-stochastic W the agents' mean tracker equals their mean gradient after every step:
    (1/N) Σ_i z_i⁽ᵏ⁾ = (1/N) Σ_i g_i⁽ᵏ⁾.

    `update(grads, state, params=None, *, weights)`: grads leaves [N, ...], weights W [N, N].
    Returns (z⁽ᵏ⁾, GTState(z⁽ᵏ⁾, g⁽ᵏ⁾)). Follow it with an optimizer and `mix_params()`.
    `mix(tree, weights)` computes Σ_j α_ij tree_j: `consensus` over the stacked agent axis in
    simulation, a communicator's neighbour exchange for one agent's [1, ...] leaves in deployment.
    """
    def init_fn(params: optax.Params) -> GTState:
        zeros = optax.tree_utils.tree_zeros_like(params)
        return GTState(tracker=zeros, prev_grad=zeros)

    def update_fn(updates: optax.Updates, state: GTState, params: optax.Params | None = None, *,
                  weights: jax.Array, **extra_args) -> tuple[optax.Updates, GTState]:
        del params, extra_args
        mixed = mix(state.tracker, weights)
        tracker = jax.tree.map(lambda z, g, g_prev: z + g - g_prev, mixed, updates, state.prev_grad)
        return tracker, GTState(tracker=tracker, prev_grad=updates)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def mix_params(adapt_then_combine: bool = False,
               mix: Mix = consensus) -> optax.GradientTransformationExtraArgs:
    """Adds the parameter consensus to the (already scaled) updates u; put it LAST in the chain.

    Default (eq. 4d as specified, combine-then-adapt):
        u_i ← u_i + Σ_j α_ij ω_j − ω_i,   so ω_i ← Σ_j α_ij ω_j + u_i   (u_i = −η z_i with sgd).
    adapt_then_combine=True (the diffusion "ATC" variant):
        u_i ← Σ_j α_ij (ω_j + u_j) − ω_i, so ω_i ← Σ_j α_ij (ω_j + u_j).

    Only the ATC variant keeps the agents' parameters exactly equal on the complete graph with
    W = 11ᵀ/N (it then equals SGD on the average loss from the first step, invariant 5 of
    specs/dvdn.md). With eq. 4d, z⁽¹⁾ = g⁽¹⁾ differs across agents, so the agents separate at
    step 1 and are only driven back together over later steps; the mean parameter follows SGD on the
    average loss when the local losses share their Hessian (e.g. quadratics differing in the
    linear term).

    `update(updates, state, params, *, weights)`: params required, weights W [N, N].
    """
    def init_fn(params: optax.Params) -> optax.EmptyState:
        del params
        return optax.EmptyState()

    def update_fn(updates: optax.Updates, state: optax.EmptyState,
                  params: optax.Params | None = None, *, weights: jax.Array,
                  **extra_args) -> tuple[optax.Updates, optax.EmptyState]:
        del extra_args
        if params is None:
            raise ValueError("mix_params needs params: call update(updates, state, params, weights=W)")
        if adapt_then_combine:
            target = mix(optax.apply_updates(params, updates), weights)
            return jax.tree.map(lambda t, w: t - w, target, params), state
        mixed = mix(params, weights)
        return jax.tree.map(lambda u, m, w: u + (m - w), updates, mixed, params), state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def with_gradient_tracking(optimizer: optax.GradientTransformation, adapt_then_combine: bool = False,
                           mix: Mix = consensus) -> optax.GradientTransformationExtraArgs:
    """`optax.chain(gradient_tracking(), optimizer, mix_params(adapt_then_combine))`.

    With `optimizer = optax.sgd(eta)` this is eq. 4c–4d exactly; `optax.adam(lr)` runs Adam on the
    tracker. Call `update(grads, state, params, weights=W)`.
    """
    return optax.chain(gradient_tracking(mix), optimizer, mix_params(adapt_then_combine, mix))
