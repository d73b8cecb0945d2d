"""Agent i's share of DG-MAPPO's learner: its actor, critic and D-GAT ψ^i, one iteration of PPO.

The simulator's PolicyLearner holds all N agents on an agent axis; agent i's process keeps row i of
the same PolicyState with an agent axis of size 1 (actor and critic leaves [1, ...], ψ leaves
[K, 1, ...]), so the simulator's own functions (actor and critic sequences, GAE, PPO's loss pieces,
the optimiser with per-agent clipping, the target update) run unchanged on it. Where the simulator
reads other agents it receives messages instead:

- D-GAT (eqs. 7–8): before every forward pass the K hops run with neighbour messages
  (dgat_exchange.forward); the loss then recomputes agent i's own path with the received features as
  constants, as the simulator's `local=True` does (no gradient crosses agents).
- The consensus regulariser (eq. 11) reads the neighbours' ô^j: one more message after the last hop.
- Neighbour averaging (eq. 9): ψ^i ← Σ_j c(i, j) ψ^j through the communicator (one packed buffer).

The simulator's losses are means over every agent's filled steps, so agent i's terms are divided by
N × its own count (the same gradient); the team's metrics are the sums of the agents' terms.
Random draws are the simulator's: the joint categorical draw [N, A] from the shared key, row i.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from netmarl.algos.policy.learner import PolicyLearner
from netmarl.algos.policy.pieces import entropy
from netmarl.algos.policy.update import (PolicyState, _over, _state_value, bucket_lengths, time_prefix,
                                         update_value_stats)
from netmarl.algos.value.learner import update_reward_stats
from netmarl.comm import degree_weights, metropolis_weights
from netmarl.distributed.dgat_exchange import HopExchange, closed_rows, forward, own_views, hop_rows
from netmarl.nets.agents import apply_agents, apply_sequence
from netmarl.nets.dgat import message_floats

Array = jax.Array


class AgentBatch(NamedTuple):
    """Agent i's view of K padded episodes (leaves [K, ...])."""

    obs: Array  # [K, T+1, 1, O] its observations
    avail: Array  # [K, T+1, 1, A] bool
    action: Array  # [K, T, 1] int32, its actions
    reward: Array  # [K, T, 1] its reward share
    team: Array  # [K, T] the team reward Σ_j r_j
    terminated: Array  # [K, T] bool
    filled: Array  # [K, T] bool
    graph: Array  # [K, T+1, N, N] bool, each step's communication graph (drawn from the acting key)


class Targets(NamedTuple):
    """What an iteration's updates read besides the episodes (computed once, as prepare_batch)."""

    adv: Array  # [K, T, 1]
    target: Array  # [K, T, 1]
    logp_old: Array  # [K, T, 1]


# The per-update sums agent i sends to the environment rank: its terms of the team means (summed over
# agents there), then values every agent computes whole (averaged there), then ‖g_i‖² per update.
AGENT_TERMS = ("loss", "critic_loss", "entropy", "advantage", "value", "clip_frac", "consensus",
               "attention_entropy")
WHOLE = ("entropy_coef", "floats_sent", "mean_degree")


class AgentPolicy:
    """Agent `index` of a DG-MAPPO PolicyLearner; `exchange` (HopExchange) and `comm` (the ψ
    averaging's communicator) are set by the runtime."""

    def __init__(self, learner: PolicyLearner, index: int, num_envs: int):
        self.learner, self.index, self.num_agents = learner, index, learner.num_agents
        self.num_envs = num_envs  # K episodes per iteration (run.num_envs)
        self.config, self.inputs = learner.config, learner.inputs
        self.activation = learner.inputs.config.activation
        self.exchange: HopExchange | None = None
        self.comm = None
        self.init = jax.jit(self._init)
        self.graphs = jax.jit(jax.vmap(self._graph_step))
        self.act = {greedy: jax.jit(jax.vmap(functools.partial(self._act, greedy=greedy),
                                             (None, 0, 0, 0, 0, 0))) for greedy in (False, True)}
        self.prepare = jax.jit(self._prepare)
        self.update_value_stats = jax.jit(update_value_stats)
        self.grad = jax.jit(self._grad)
        self.apply = jax.jit(self._apply)
        self.epoch_keys = jax.jit(self._epoch_keys)
        self.average_weights = jax.jit(self._average_weights)

    # --- state ------------------------------------------------------------------------------------

    def _init(self, key: Array) -> PolicyState:
        """Row i of the simulator's initial PolicyState (the joint init, then a slice)."""
        full = self.learner.init(key)
        i = self.index
        params = {"actor": jax.tree.map(lambda x: x[i:i + 1], full.params["actor"]),
                  "critic": jax.tree.map(lambda x: x[i:i + 1], full.params["critic"]),
                  "dgat": jax.tree.map(lambda x: x[:, i:i + 1], full.params["dgat"])}
        value_stats = full.value_stats  # per agent ([N]: row i, value_norm_scope=agent) or unused
        if value_stats.mean.ndim:
            value_stats = jax.tree.map(lambda x: x[i:i + 1], value_stats)
        return PolicyState(params, params["critic"], self.learner.tx.init(params), full.updates,
                           full.reward_stats, value_stats)

    # --- acting -----------------------------------------------------------------------------------

    def _graph_step(self, chain: Array):
        """One env's step keys as collect_episode splits them: chain key [2] -> (graph [N, N],
        k_act [2], next chain key [2])."""
        key, k_act, _ = jax.random.split(chain, 3)
        return self.inputs.graph(k_act), k_act, key

    def _act(self, params, obs: Array, o_hat: Array, h: Array, avail: Array, k_act: Array,
             greedy: bool):
        """One env: obs, ô [O], h [1, H], avail [A] -> (action [] int32, h'). Training samples the
        joint categorical draw from k_act and keeps row i; evaluation takes the most probable."""
        x = jnp.concatenate([obs, o_hat])[None]
        logits, h = apply_agents(self.learner.actor, params["actor"], x, h, False)
        logits = jnp.where(avail, logits[0], -1e9)
        if greedy:
            return jnp.argmax(logits).astype(jnp.int32), h
        joint = jnp.broadcast_to(logits, (self.num_agents, logits.shape[-1]))
        return jax.random.categorical(k_act, joint)[self.index].astype(jnp.int32), h

    def initial_hidden(self, envs: int) -> np.ndarray:
        return np.zeros((envs, 1, self.learner.actor.hidden_dim), np.float32)

    def hops(self, params, obs: np.ndarray, graphs: np.ndarray, valid: np.ndarray, final=False):
        """`dgat_exchange.forward` with agent i's ψ (obs [M, O], graphs [M, N, N], valid [M])."""
        return forward(self.exchange, params["dgat"], obs, graphs, valid, self.activation, final)

    # --- learning ---------------------------------------------------------------------------------

    def learn(self, state: PolicyState, batch: AgentBatch, key: Array, env_steps) -> tuple:
        """One iteration (PolicyLearner.learn for row i): -> (state, [per-update sums], [‖g_i‖²])."""
        _, k_epochs = jax.random.split(key)
        state = state._replace(reward_stats=update_reward_stats(state.reward_stats, batch.team,
                                                                batch.filled))
        x = self.views(state.params, batch)
        targets = self.prepare(state, x, batch)
        if self.config.policy.value_norm:  # agent i's own normaliser (value_norm_scope=agent)
            state = state._replace(value_stats=self.update_value_stats(state.value_stats, targets.target,
                                                                       batch.filled))
        coef = self.learner.entropy_coef(jnp.asarray(env_steps))
        batch, targets = self._prefix(batch, targets)
        orders, k_average = self.epoch_keys(k_epochs)
        sums, grad_sq = [], []
        for order, keys in zip(np.asarray(orders), np.asarray(k_average)):
            for idx, k_avg in zip(order, keys):
                pick = lambda x: x[idx]  # noqa: E731
                state, terms, g2 = self.update(state, jax.tree.map(pick, batch),
                                               jax.tree.map(pick, targets), coef, k_avg)
                sums.append(terms)
                grad_sq.append(g2)
        return self.learner.update_target(state), sums, grad_sq

    def _prefix(self, batch: AgentBatch, targets: Targets) -> tuple[AgentBatch, Targets]:
        """As update_epochs: the updates' steps, the shortest bucket holding every episode (every
        agent computes the same one: the episodes' `filled` is the team's)."""
        horizon = batch.filled.shape[1]
        lengths = bucket_lengths(horizon, self.config.policy.length_buckets)
        length = lengths[int(np.searchsorted(lengths, np.asarray(batch.filled).sum(1).max()))]  # as the simulator
        return time_prefix(batch, horizon, length), time_prefix(targets, horizon, length)

    def _epoch_keys(self, key: Array):
        """As update_epochs: (orders [E, M, K / M] of the episodes, averaging keys [E, M, 2])."""
        p = self.config.policy

        def epoch(key):
            k = self.num_envs
            order = jax.random.permutation(key, k) if p.minibatches > 1 else jnp.arange(k)
            return (order.reshape(p.minibatches, k // p.minibatches),
                    jax.random.split(jax.random.fold_in(key, 1), p.minibatches))

        return jax.vmap(epoch)(jax.random.split(key, p.epochs))

    def views(self, params, batch: AgentBatch) -> Array:
        """x = [o ‖ ô] [K, T+1, 1, 2·O] with neighbour messages (the prepare pass)."""
        obs, graphs, valid = _rows(batch)
        o_hat, _, _ = self.hops(params, obs, graphs, valid)
        return jnp.concatenate([batch.obs, jnp.reshape(o_hat, batch.obs.shape)], -1)

    def _prepare(self, state: PolicyState, x: Array, batch: AgentBatch) -> Targets:
        """prepare_batch on agent i's row: log π_old, then GAE (or TD) advantages and targets."""
        logits = jax.vmap(self.learner.logits_sequence, (None, 0, 0))(state.params["actor"], x,
                                                                       batch.avail)
        logp = jax.nn.log_softmax(logits)
        logp_old = jnp.take_along_axis(logp[:, :-1], batch.action[..., None], -1)[..., 0]
        r = self.rewards(batch, state)
        discount = self.config.gamma * (1.0 - batch.terminated)
        adv, target = _state_value(self.learner, state, x, r, discount, batch.filled)
        return Targets(adv, target, logp_old)

    def rewards(self, batch: AgentBatch, state: PolicyState) -> Array:
        """PolicyLearner.rewards for agent i: [K, T, 1] from its share and the team reward."""
        mode, n = self.config.reward_shares, self.num_agents
        team = batch.team[..., None]
        r = {"env": batch.reward, "equal": team / n, "team": team}[mode]
        if self.config.standardise_rewards:
            stats = state.reward_stats
            r = (r - stats.mean * (1.0 if mode == "team" else 1.0 / n)) / jnp.sqrt(stats.var + 1e-8)
        return r

    def update(self, state: PolicyState, mb: AgentBatch, targets: Targets, coef, k_average):
        """One PPO update: hops with messages, gradient of agent i's terms, Adam, ψ averaging."""
        obs, graphs, valid = _rows(mb)
        _, received, final = self.hops(state.params, obs, graphs, valid, final=True)
        shape = (*mb.obs.shape[:2], *received.shape[2:])  # [k, T+1, N, O]
        received = received.reshape(received.shape[0], *shape)
        grads, terms, g2 = self.grad(state.params, mb, targets, received, final.reshape(shape), coef,
                                     state.value_stats)
        state = self.apply(state, grads)
        if self.inputs.config.averaging != "none":
            mixed = self.comm.mix(state.params["dgat"], np.asarray(self.average_weights(k_average)))
            state = state._replace(params={**state.params, "dgat": jax.tree.map(jnp.asarray, mixed)})
        return state, np.asarray(terms, np.float64), float(g2)

    def _average_weights(self, key: Array) -> Array:
        """C [N, N] of the update's averaging graph (eq. 10: 1/|N^i|, or Metropolis)."""
        adj = self.inputs.schedule.sample_graph(key, 0)
        return degree_weights(adj) if self.inputs.config.averaging == "degree" else metropolis_weights(adj)

    def _grad(self, params, mb: AgentBatch, targets: Targets, received, final, coef, value_stats):
        (_, terms), grads = jax.value_and_grad(self._loss, has_aux=True)(params, mb, targets, received,
                                                                        final, coef, value_stats)
        return grads, terms, jnp.square(optax.tree.norm(grads))

    def _apply(self, state: PolicyState, grads) -> PolicyState:
        updates, opt_state = self.learner.tx.update(grads, state.opt_state, state.params)
        return state._replace(params=optax.apply_updates(state.params, updates), opt_state=opt_state,
                              updates=state.updates + 1)

    def _loss(self, params, mb: AgentBatch, targets: Targets, received, final, coef, value_stats):
        """Agent i's terms of update.py's `_loss` (each a sum over its filled steps / (N × count)):
        PPO − β entropy + critic loss + α consensus. -> (loss, [AGENT_TERMS..., WHOLE...]).
        With value_norm the critic predicts targets standardised by agent i's own statistics."""
        x, o_hat, alphas = self._own_path(params["dgat"], mb, received)
        learner, p = self.learner, self.config.policy
        logits = jax.vmap(learner.logits_sequence, (None, 0, 0))(params["actor"], x, mb.avail)[:, :-1]
        logp = jnp.take_along_axis(jax.nn.log_softmax(logits), mb.action[..., None], -1)[..., 0]
        ent = _over(entropy, 0, 0, 0)(logits, mb.avail[:, :-1])
        pg = _over(functools.partial(learner.policy_loss, clip_eps=p.clip_eps), 0, 0, 0)(
            logp, targets.logp_old, targets.adv)
        pred = jax.vmap(apply_sequence, (None, None, 0, None))(learner.critic, params["critic"], x,
                                                              False)[:, :-1, :, 0]  # [k, T, 1]
        target = learner.normalise_targets(targets.target, value_stats) if p.value_norm else targets.target
        mask = jnp.broadcast_to(mb.filled[..., None], targets.adv.shape).astype(jnp.float32)
        mean = lambda v: (v * mask).sum() / jnp.maximum(mask.sum() * self.num_agents, 1.0)  # noqa: E731
        critic_loss = mean(jnp.square(pred - jax.lax.stop_gradient(target)))
        step_mask = jnp.pad(mb.filled, ((0, 0), (0, 1))).astype(jnp.float32)  # [k, T+1]
        per_step = lambda v: (v * step_mask).sum() / jnp.maximum(step_mask.sum(), 1.0)  # noqa: E731
        consensus = per_step(_consensus(o_hat, final, mb.graph, self.index)) / self.num_agents
        att = per_step(_row_entropy(alphas).mean(0)) / self.num_agents
        ratio = jnp.exp(logp - targets.logp_old)
        terms = jnp.stack([mean(pg), critic_loss, mean(ent), mean(jnp.abs(targets.adv)),
                           mean(learner._denormalise(pred, value_stats, trailing=0)),
                           mean((jnp.abs(ratio - 1.0) > p.clip_eps).astype(jnp.float32)), consensus,
                           att, coef, *_graph_stats(mb, self.inputs)])
        loss = terms[0] - coef * terms[2] + critic_loss + self.inputs.config.alpha_consensus * consensus
        return loss, terms

    def _own_path(self, psi, mb: AgentBatch, received):
        """Agent i's K hops with the received features as constants: -> (x [k, T+1, 1, 2·O],
        ô [k, T+1, O], α [K, k, T+1, N])."""
        obs = mb.obs[:, :, 0]
        closed = jax.vmap(closed_rows, (0, None))(mb.graph, self.index)  # [k, T+1, N]

        def layer(h, xs):
            w, q, recv = xs
            rows = lambda a: a.reshape(-1, *a.shape[2:])  # noqa: E731
            h_new, alpha = hop_rows(w[0], q[0], rows(h), rows(recv), rows(closed), self.index,
                                    self.activation)
            return h_new.reshape(h.shape), alpha.reshape(closed.shape)

        o_hat, alphas = jax.lax.scan(layer, obs, (psi.w, psi.q, received))
        return jnp.concatenate([mb.obs, o_hat[:, :, None]], -1), o_hat, alphas


def _rows(batch: AgentBatch):
    """(obs [M, O], graphs [M, N, N], valid [M]) of every (episode, step) row, M = K (T+1); valid:
    the filled steps and each episode's bootstrap step (messages elsewhere are never read)."""
    filled = np.asarray(batch.filled)
    valid = np.pad(filled, ((0, 0), (0, 1))) | np.pad(filled, ((0, 0), (1, 0)))
    obs = np.asarray(batch.obs)
    graph = np.asarray(batch.graph)
    return obs.reshape(-1, obs.shape[-1]), graph.reshape(-1, *graph.shape[2:]), valid.reshape(-1)


def _consensus(o_hat: Array, final: Array, graph: Array, index: int) -> Array:
    """Eq. 11 for agent i per step: (1/|N^i|) Σ_{j ∈ N^i} MSE(ô^i, ô^j), the neighbours' ô^j
    received (constants). o_hat [k, T+1, O], final [k, T+1, N, O] -> [k, T+1]."""
    closed = jax.vmap(closed_rows, (0, None))(graph, index)
    views = jax.vmap(own_views, (0, 0, None))(jax.lax.stop_gradient(o_hat), final, index)
    mse = ((o_hat[:, :, None] - views) ** 2).mean(-1)
    return jnp.where(closed, mse, 0.0).sum(-1) / closed.sum(-1)


def _row_entropy(alphas: Array) -> Array:
    """Entropy of agent i's attention rows α [..., N] (0 · log 0 = 0) -> [...]."""
    return -jnp.where(alphas > 0, alphas * jnp.log(jnp.where(alphas > 0, alphas, 1.0)), 0.0).sum(-1)


def _graph_stats(mb: AgentBatch, inputs) -> list[Array]:
    """The simulator's floats_sent and mean_degree means over the filled steps (graph only)."""
    mask = jnp.pad(mb.filled, ((0, 0), (0, 1))).astype(jnp.float32)
    per_step = lambda v: (v * mask).sum() / jnp.maximum(mask.sum(), 1.0)  # noqa: E731
    floats = jax.vmap(jax.vmap(lambda g: message_floats(inputs.obs_dim, inputs.hops, g).mean()))
    return [per_step(floats(mb.graph)), per_step(mb.graph.sum(-1).mean(-1))]
