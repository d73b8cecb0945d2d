"""One iteration of the actor-critic learner: advantages and targets once, then the updates.

    batch, state = prepare_batch(learner, state, episodes, key)    # A, y, log π_old, critic inputs
    state, metrics = update_epochs(learner, state, batch, key, β)  # epochs × minibatches updates

`learner` is a PolicyLearner (netmarl/algos/policy/learner.py); these are its learning steps, kept
apart so each stays small.
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from netmarl.algos.policy.inputs import masked_mean
from netmarl.algos.policy.pieces import entropy, n_step_returns
from netmarl.algos.value.learner import RewardStats, update_reward_stats
from netmarl.nets.agents import apply_sequence
from netmarl.train.seed_axis import max_over_seeds
from netmarl.train.replay import Episode

Array = jax.Array


class PolicyState(NamedTuple):
    params: Any  # {"actor": ..., "critic": ...}, leaves [N, ...] (or unbatched when shared)
    target_critic: Any
    opt_state: Any
    updates: Array  # [] int32, gradient updates done (epochs × minibatches per iteration)
    reward_stats: RewardStats  # running statistics of the team reward (standardise_rewards)
    value_stats: RewardStats  # running statistics of the critic targets (value_norm)


class PolicyMetrics(NamedTuple):
    loss: Array  # [] policy loss
    critic_loss: Array  # [] squared error of the critic (standardised units with value_norm)
    entropy: Array  # [] mean policy entropy (nats)
    advantage: Array  # [] mean |A|
    value: Array  # [] mean critic estimate of the taken step (V, or Q of the taken joint action)
    grad_norm: Array  # [] global gradient norm before clipping
    clip_frac: Array  # [] fraction of samples whose PPO ratio is outside [1 − ε, 1 + ε]
    entropy_coef: Array  # [] the entropy coefficient used
    # communicating agents (agent_input=dgat, DG-MAPPO); 0 otherwise
    consensus: Array  # [] consensus regulariser before α (eq. 11): disagreement of the agents' ô
    attention_entropy: Array  # [] mean entropy of the D-GAT attention rows (nats)
    floats_sent: Array  # [] floats an agent sends per env step (hop features; ψ adds per update)
    mean_degree: Array  # [] mean degree of the steps' communication graphs
    disagreement: Array  # [] mean_i ‖ψ^i − ψ̄‖² after the update's neighbour averaging


class Batch(NamedTuple):
    """What the updates read (leaves [K, ...], K episodes)."""

    episode: Episode
    critic_in: Array  # [K, T+1, N, C] critic inputs (with the taken / bootstrap joint actions)
    actions: Array  # [K, T+1, N] taken actions; sampled from π where none was taken (after the end)
    logp_old: Array  # [K, T, N] log π_old(a_i | h_i) of the collecting policy
    adv: Array  # [K, T, N] advantages
    target: Array  # [K, T, N] critic targets (reward units)


def _over(fn, *axes):
    """vmaps `fn` over leading axes, innermost last: _over(f, 0, 0) = vmap(vmap(f))."""
    for axis in reversed(axes):
        fn = jax.vmap(fn, axis)
    return fn


def prepare_batch(learner, state: PolicyState, episodes: Episode, key: Array):
    """Advantages and critic targets of K episodes with the collecting networks (computed once)."""
    x, _ = jax.vmap(learner.views, (None, 0))(state.params, episodes)  # [K, T+1, N, D]
    logits = jax.vmap(learner.logits_sequence, (None, 0, 0))(state.params["actor"], x,
                                                             episodes.avail)  # [K, T+1, N, A]
    has_action = jnp.pad(episodes.filled, ((0, 0), (0, 1)))[..., None]  # [K, T+1, 1]
    taken = jnp.pad(episodes.action, ((0, 0), (0, 1), (0, 0)))
    actions = jnp.where(has_action, taken, jax.random.categorical(key, logits))
    logp = jax.nn.log_softmax(logits)
    logp_old = jnp.take_along_axis(logp[:, :-1], episodes.action[..., None], -1)[..., 0]
    x = jax.vmap(learner.critic_inputs)(x, episodes, actions)
    r = learner.rewards(episodes.reward, state.reward_stats)  # [K, T, N]
    discount = learner.config.gamma * (1.0 - episodes.terminated)  # [K, T]
    if learner.advantage.kind == "v":
        adv, target = _state_value(learner, state, x, r, discount, episodes.filled)
    else:
        adv, target = _action_value(learner, state, episodes, x, jnp.exp(logp), actions, r, discount)
    if learner.config.policy.value_norm:
        state = state._replace(value_stats=update_value_stats(state.value_stats, target, episodes.filled))
    return Batch(episodes, x, actions, logp_old, adv, target), state


def update_value_stats(stats: RewardStats, target: Array, filled: Array) -> RewardStats:
    """Merges critic targets [K, T, N] (where `filled` [K, T]) into the value normaliser: one pooled
    statistic ([] stats) or each agent's own ([N] stats, value_norm_scope=agent)."""
    if stats.mean.ndim:
        return jax.vmap(update_reward_stats, (0, 2, None))(stats, target, filled)
    mask = jnp.broadcast_to(filled[..., None], target.shape)
    return update_reward_stats(stats, target.reshape(target.shape[0], -1), mask.reshape(target.shape[0], -1))


def _state_value(learner, state: PolicyState, x, r, discount, filled):
    """(adv, target) [K, T, N] from a state-value critic (td: bootstrap from the target critic)."""
    critic = jax.vmap(learner.critic_sequence, (None, 0, None))
    v = critic(state.params["critic"], x, state.value_stats)[..., 0]  # [K, T+1, N]
    v_boot = critic(state.target_critic, x, state.value_stats)[..., 0]
    p = learner.config.policy
    fn = functools.partial(learner.advantage.fn, n=p.n_step, lambda_=p.gae_lambda)
    per_agent = jax.vmap(fn, (1, None, 1, 1, None), 1)  # agents are the last axis
    return jax.vmap(per_agent)(r, discount, v, v_boot, filled)


def _action_value(learner, state: PolicyState, episodes, x, pi, actions, r, discount):
    """(adv, target) [K, T, N] from an action-value critic (COMA, Pareto-AC): A from the online
    critic's table, targets n-step bootstrapped from the target critic's value of the same kind."""
    if learner.advantage.others == "taken":
        critic = jax.vmap(learner.critic_sequence, (None, 0, None))
        table = lambda params: critic(params, x, state.value_stats)[..., None]  # noqa: E731
    else:
        q_all = jax.vmap(learner.q_all_others, (None, 0, None))
        table = lambda params: q_all(params, episodes, state.value_stats)  # noqa: E731
    fn = _over(learner.advantage.fn, 0, 0, 0)  # over episodes, time and agents
    adv, _ = fn(table(state.params["critic"]), pi, actions)
    _, boot = fn(table(state.target_critic), pi, actions)  # [K, T+1, N]
    returns = functools.partial(n_step_returns, n=learner.config.policy.n_step)
    target = jax.vmap(jax.vmap(returns, (1, None, 1, None), 1))(r, discount, boot, episodes.filled)
    return adv[:, :-1], target


def update_epochs(learner, state: PolicyState, batch: Batch, key: Array, coef: Array):
    """`epochs` shuffled passes over the K episodes in `minibatches` minibatches (one update each),
    on the shortest prefix of the T steps (of `length_buckets` lengths) that holds every episode.
    Returns (state, PolicyMetrics summed over the updates)."""
    lengths = bucket_lengths(batch.adv.shape[1], learner.config.policy.length_buckets)
    if len(lengths) == 1:
        return _update_epochs(learner, state, batch, key, coef)
    # `filled` is a prefix of each episode's steps; vmapped seeds share one bucket (the longest
    # over them), else the switch would run every bucket's update (netmarl/train/seed_axis.py)
    longest = max_over_seeds(batch.episode.filled.sum(1).max())
    branches = [functools.partial(_on_prefix, learner, t) for t in lengths]
    return jax.lax.switch(jnp.searchsorted(jnp.array(lengths), longest), branches, state, batch, key, coef)


def bucket_lengths(horizon: int, buckets: int) -> list[int]:
    """The step counts the updates may run on: ceil(T·b/B) for b = 1 … B (algo.policy.length_buckets)."""
    return sorted({-(-horizon * b // buckets) for b in range(1, buckets + 1)})


def _on_prefix(learner, length: int, state: PolicyState, batch: Batch, key: Array, coef: Array):
    return _update_epochs(learner, state, time_prefix(batch, batch.adv.shape[1], length), key, coef)


def time_prefix(tree, horizon: int, length: int):
    """The first `length` steps of every episode: leaves [K, T, ...] -> [K, length, ...] and
    [K, T+1, ...] -> [K, length + 1, ...] (their last step is the bootstrap step); others as they are."""
    cut = {horizon: length, horizon + 1: length + 1}
    return jax.tree.map(lambda x: x[:, :cut[x.shape[1]]] if x.ndim > 1 and x.shape[1] in cut else x, tree)


def _update_epochs(learner, state: PolicyState, batch: Batch, key: Array, coef: Array):
    p = learner.config.policy
    k = batch.adv.shape[0]

    def update(batch, state, xs):
        idx, k_average = xs
        mb = jax.tree.map(lambda x: x[idx], batch)
        grads, metrics = jax.grad(_loss, has_aux=True)(state.params, learner, mb, state.value_stats, coef)
        updates, opt_state = learner.tx.update(grads, state.opt_state, state.params)
        params, disagreement = learner.average(optax.apply_updates(state.params, updates), k_average)
        state = state._replace(params=params, opt_state=opt_state, updates=state.updates + 1)
        return state, metrics._replace(grad_norm=optax.tree.norm(grads), disagreement=disagreement)

    def epoch(state, key):
        current = refreshed(learner, state, batch) if p.refresh_advantages else batch
        order = jax.random.permutation(key, k) if p.minibatches > 1 else jnp.arange(k)
        k_average = jax.random.split(jax.random.fold_in(key, 1), p.minibatches)
        return jax.lax.scan(functools.partial(update, current), state,
                            (order.reshape(p.minibatches, k // p.minibatches), k_average))

    state, metrics = jax.lax.scan(epoch, state, jax.random.split(key, p.epochs))
    return state, jax.tree.map(jnp.sum, metrics)


def refreshed(learner, state: PolicyState, batch: Batch) -> Batch:
    """A = G⁽ⁿ⁾ − V with the critic as it is now (EPyMARL's ppo_learner, before every epoch); the
    targets G⁽ⁿ⁾, bootstrapped from the target critic, stay the iteration's."""
    critic = jax.vmap(learner.critic_sequence, (None, 0, None))
    v = critic(state.params["critic"], batch.critic_in, state.value_stats)[..., 0]  # [K, T+1, N]
    return batch._replace(adv=batch.target - v[:, :-1])


def _loss(params, learner, mb: Batch, value_stats: RewardStats, coef: Array):
    """Policy loss − β entropy + critic loss, means over the filled steps of every agent."""
    ep, p = mb.episode, learner.config.policy
    x, stats = jax.vmap(learner.views, (None, 0))(params, ep)  # [K, T+1, N, D], [K, T+1]
    logits = jax.vmap(learner.logits_sequence, (None, 0, 0))(params["actor"], x, ep.avail)[:, :-1]
    logp = jnp.take_along_axis(jax.nn.log_softmax(logits), ep.action[..., None], -1)[..., 0]
    ent = _over(entropy, 0, 0, 0)(logits, ep.avail[:, :-1])
    pg = _over(functools.partial(learner.policy_loss, clip_eps=p.clip_eps), 0, 0, 0)(
        logp, mb.logp_old, mb.adv)
    shared = learner.shared
    critic_in = jax.vmap(learner.critic_inputs)(x, ep, mb.actions) if learner.inputs.trainable else mb.critic_in
    out = jax.vmap(apply_sequence, (None, None, 0, None))(learner.critic, params["critic"], critic_in,
                                                          shared)[:, :-1]  # [K, T, N, out]
    pred = (out[..., 0] if out.shape[-1] == 1 else
            jnp.take_along_axis(out, mb.actions[:, :-1, :, None], -1)[..., 0])
    target = mb.target
    if p.value_norm:
        target = learner.normalise_targets(target, value_stats)
    mask = jnp.broadcast_to(ep.filled[..., None], mb.adv.shape).astype(jnp.float32)
    mean = lambda v: (v * mask).sum() / jnp.maximum(mask.sum(), 1.0)  # noqa: E731
    critic_loss = mean(jnp.square(pred - jax.lax.stop_gradient(target)))
    ratio = jnp.exp(logp - mb.logp_old)
    metrics = PolicyMetrics(
        loss=mean(pg), critic_loss=critic_loss, entropy=mean(ent), advantage=mean(jnp.abs(mb.adv)),
        value=mean(learner._denormalise(pred, value_stats, trailing=0)), grad_norm=jnp.float32(0.0),
        clip_frac=mean((jnp.abs(ratio - 1.0) > p.clip_eps).astype(jnp.float32)), entropy_coef=coef,
        consensus=masked_mean(stats.consensus, ep.filled),
        attention_entropy=masked_mean(stats.attention_entropy, ep.filled),
        floats_sent=masked_mean(stats.floats_sent, ep.filled),
        mean_degree=masked_mean(stats.mean_degree, ep.filled), disagreement=jnp.float32(0.0))
    penalty = learner.inputs.penalty(stats, ep.filled)  # DG-MAPPO's consensus regulariser (eq. 11)
    return metrics.loss - coef * metrics.entropy + critic_loss + penalty, metrics

