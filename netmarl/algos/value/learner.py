"""One Q-learner for the whole value-decomposition family (IQL, VDN, VDN (PS), QMIX, QPLEX, QTRAN, DVDN).

Per agent and transition (double Q, target network ω⁻; specs/dvdn.md):

    a*_i = argmax_{u available} Q_i(o'_i, u; ω_i)
    δ_i  = r_i + γ (1 − terminated) Q_i(o'_i, a*_i; ω⁻_i) − Q_i(o_i, a_i; ω_i)

A decomposed team-TD strategy turns δ [N] into Δ̂ [N] and each agent minimises (δ_i + sg(Δ̂_i − δ_i))²;
a mixed strategy (QMIX, QPLEX) minimises the squared TD of Q_tot = mix(Q_1..Q_N; s, a), or its own
loss (QTRAN; algos/value/mixed.py). Time-limit truncation bootstraps (only `terminated` zeroes the
discount).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from netmarl.algos.value.mixed import greedy_actions, mixed_loss
from netmarl.algos.value.team_td import get_team_td, surrogate_loss
from netmarl.comm import is_connected, make_schedule, with_gradient_tracking
from netmarl.config import AlgoConfig, check
from netmarl.envs.core import Environment
from netmarl.nets.agents import (AgentNet, apply_agents, apply_sequence, init_agents, make_agent_net,
                                 with_agent_ids)
from netmarl.nets.mixers import make_mixer
from netmarl.train.replay import Episode

Array = jax.Array


class RewardStats(NamedTuple):
    """Running mean and variance of the team reward (Chan et al. parallel update)."""

    count: Array  # []
    mean: Array  # []
    var: Array  # []


class LearnerState(NamedTuple):
    params: Any  # agent parameters, leaves [N, ...] (or unbatched when shared)
    target_params: Any
    mixer_params: Any  # {} without a mixer
    target_mixer_params: Any
    opt_state: Any
    updates: Array  # [] int32, learner updates done
    reward_stats: RewardStats
    graph_key: Array  # [2] uint32, key of the communication graph schedule (fixed)


class LearnMetrics(NamedTuple):
    loss: Array  # [] mean loss over filled transitions
    td_abs: Array  # [] mean |Σ_i δ_i| (the joint TD), a progress signal comparable across strategies
    q_taken: Array  # [] mean Q_i(o_i, a_i)
    grad_norm: Array  # [] global gradient norm before clipping
    jtd_error: Array  # [] ‖Δ̂_i − Σδ‖ / ‖Σδ‖ over the batch, mean over agents (0 without a graph)
    disagreement: Array  # [] RMS distance of agents' parameters from their mean (networked agents)
    mean_degree: Array  # [] mean degree of the step's realised graphs
    connected: Array  # [] fraction of the step's realised graphs that are connected
    floats_sent: Array  # [] floats each agent sends per update (TD vectors, and GT's ω and z)


def exploration_draws(key: Array, avail: Array, epsilon: Array) -> tuple[Array, Array]:
    """ε-greedy draws of one step: (explore [N] bool w.p. ε, a uniform available action [N])."""
    k_explore, k_random = jax.random.split(key)
    random = jax.random.categorical(k_random, jnp.where(avail, 0.0, -jnp.inf))
    explore = jax.random.uniform(k_explore, (avail.shape[0],)) < epsilon
    return explore, random


# algo.reward_shares -> the fraction of the team reward R in one agent's reward, for N agents (with
# `env`, on average: the environment's own per-agent rewards sum to R).
REWARD_SHARES = {"env": lambda n: 1.0 / n, "equal": lambda n: 1.0 / n, "team": lambda n: 1.0}


def clip_by_agent_norm(max_norm: float, axis: int = 0) -> optax.GradientTransformation:
    """Clips each agent's gradient (slice i of every leaf along the agent axis `axis`: [N, ...], or
    D-GAT's [K, N, ...] with axis 1) to norm `max_norm` separately."""

    def update(grads, state, params=None):
        del params
        sq = sum(jnp.sum(jnp.square(jnp.moveaxis(g, axis, 0)).reshape(g.shape[axis], -1), 1)
                 for g in jax.tree.leaves(grads))
        scale = jnp.minimum(1.0, max_norm / jnp.maximum(jnp.sqrt(sq), 1e-12))  # [N]
        shape = lambda g: [-1 if a == axis else 1 for a in range(g.ndim)]  # noqa: E731
        return jax.tree.map(lambda g: g * scale.reshape(shape(g)), grads), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


class QLearner:
    """The learner's static parts (networks, optimiser, strategy); its state is a LearnerState."""

    pairwise = False  # acts and learns with PairVDN's pair grids (the PairLearner subclass)

    def __init__(self, config: AlgoConfig, env: Environment):
        _check_algo(config)
        if (config.shared_params or config.gradient_tracking) and not env.homogeneous:
            what = "algo.gradient_tracking" if config.gradient_tracking else "algo.shared_params"
            raise ValueError(f"{what} needs homogeneous agents (one function for all), but {env.name} "
                             f"has observation sizes {list(env.agent_obs_dims)} and action counts "
                             f"{list(env.agent_num_actions)}; use separate parameters (algo=dvdn, vdn)")
        self.config = config
        self.num_agents, self.num_actions = env.num_agents, env.num_actions
        self.append_ids = config.shared_params or config.gradient_tracking  # homogeneous agents
        self.obs_dim = env.obs_dim + (env.num_agents if self.append_ids else 0)
        self.state_dim = env.state_dim
        self.team_td = get_team_td(config.team_td)
        self.schedule = None
        if self.team_td.uses_graph or config.gradient_tracking:
            c = config.comm
            self.schedule = make_schedule(c.topology, env.num_agents, c.p_drop, c.connected, c.mode,
                                          c.num_edges, c.seed)
        self.net: AgentNet = make_agent_net(config.agent, env.num_actions, config.hidden, config.layers,
                                             config.agent_init)
        if self.team_td.mixer == "pairwise" and not self.pairwise:
            raise ValueError("team_td=pairvdn needs the pairwise learner: build learners with "
                             "netmarl.algos.value.pairvdn.make_learner")
        self.mixer = None
        if self.team_td.loss is not None:  # a mixed strategy
            self.mixer = make_mixer(self.team_td.mixer, config.mixer, env.num_actions)
        self.tx = self._optimiser()

    def _optimiser(self) -> optax.GradientTransformation:
        c = self.config
        by_name = {"sgd": optax.sgd, "adam": optax.adam}
        step = by_name[c.optimizer](c.lr)
        if c.gradient_tracking:  # eq. 4c-4d: track the average gradient, then mix parameters
            step = with_gradient_tracking(by_name[c.gt_optimizer](c.lr), c.gt_combine == "atc")
        clip_agents = optax.clip_by_global_norm if c.shared_params else clip_by_agent_norm
        if c.grad_clip <= 0:  # no clipping
            clip_agents = clip_mixer = lambda _: optax.identity()  # noqa: E731
        else:
            clip_mixer = optax.clip_by_global_norm
        agents = optax.chain(clip_agents(c.grad_clip), step)
        mixer = optax.chain(clip_mixer(c.grad_clip), by_name[c.optimizer](c.lr))
        return optax.multi_transform({"agents": agents, "mixer": mixer},
                                     {"agents": "agents", "mixer": "mixer"})

    # --- state -------------------------------------------------------------------------------------

    def init(self, key: Array) -> LearnerState:
        k_agents, k_mixer = jax.random.split(key)
        params = init_agents(self.net, k_agents, self.obs_dim, self.num_agents,
                             self.config.shared_params)
        if self.config.gradient_tracking:  # every agent starts from the same ω⁽⁰⁾ (specs/dvdn.md)
            params = jax.tree.map(lambda x: jnp.broadcast_to(x[:1], x.shape), params)
        mixer_params = (self.mixer.init(k_mixer, self.num_agents, self.state_dim)
                        if self.mixer else {})
        opt_state = self.tx.init({"agents": params, "mixer": mixer_params})
        stats = RewardStats(jnp.float32(1e-4), jnp.float32(0.0), jnp.float32(1.0))
        # the same on every agent of a run (they share the run's seed), different across seeds
        graph_key = jax.random.fold_in(key, self.config.comm.seed)
        return LearnerState(params, params, mixer_params, mixer_params, opt_state, jnp.int32(0), stats,
                            graph_key)

    def initial_hidden(self) -> Array:
        """[N, H] zero recurrent state for the start of an episode."""
        return jnp.zeros((self.num_agents, self.net.hidden_dim))

    def prepare_obs(self, obs: Array) -> Array:
        """Appends agent ids under parameter sharing. [..., N, O] -> [..., N, O']."""
        return with_agent_ids(obs) if self.append_ids else obs

    # --- acting ------------------------------------------------------------------------------------

    def act(self, params, obs: Array, h: Array, avail: Array, epsilon: Array, key: Array):
        """ε-greedy joint action over available actions: obs [N, O], h [N, H], avail [N, A] ->
        (actions [N] int32, h' [N, H])."""
        q, h = apply_agents(self.net, params, self.prepare_obs(obs), h, self.config.shared_params)
        greedy = jnp.argmax(jnp.where(avail, q, -jnp.inf), -1)
        explore, random = self.exploration(key, avail, epsilon)
        return jnp.where(explore, random, greedy).astype(jnp.int32), h

    def exploration(self, key: Array, avail: Array, epsilon: Array) -> tuple[Array, Array]:
        """The joint ε-greedy draws of one step: (explore [N] bool, uniform random action [N]).

        Row i depends only on the key and avail[i] (Gumbel noise drawn for all [N, A] at once), so
        a networked agent computes the joint draws from the shared key and keeps its own row.
        """
        return exploration_draws(key, avail, epsilon)

    def epsilon(self, env_steps: Array) -> Array:
        """Linear ε schedule in env steps."""
        c = self.config
        frac = jnp.clip(env_steps / max(c.eps_anneal_steps, 1), 0.0, 1.0)
        return c.eps_start + frac * (c.eps_finish - c.eps_start)

    # --- learning ----------------------------------------------------------------------------------

    def q_sequence(self, params, obs: Array) -> Array:
        """Q-values along one episode: obs [T+1, N, O] -> q [T+1, N, A] (GRU unrolled from zero)."""
        return apply_sequence(self.net, params, self.prepare_obs(obs), self.config.shared_params)

    def agent_td(self, q_tm1: Array, a_tm1: Array, r_t: Array, discount_t: Array, q_t: Array,
                 q_t_target: Array, avail_t: Array):
        """Per-agent double-Q TD for one transition.

        Args: q_tm1 [N, A], a_tm1 [N], r_t [N], discount_t [], q_t / q_t_target [N, A] (online /
          target at the next observation), avail_t [N, A].
        Returns: (δ [N], Q_i(o_i, a_i) [N], bootstrap values Q⁻_i(o'_i, a*_i) [N]).
        """
        a_star = greedy_actions(q_t if self.config.double_q else q_t_target, avail_t)
        v_t = jnp.take_along_axis(q_t_target, a_star[:, None], -1)[:, 0]
        q_taken = jnp.take_along_axis(q_tm1, a_tm1[:, None], -1)[:, 0]
        delta = r_t + discount_t * jax.lax.stop_gradient(v_t) - q_taken
        return delta, q_taken, v_t

    def loss(self, trainable, state: LearnerState, batch: Episode, weights):
        """Mean loss over the filled transitions of a batch of episodes [B, ...]."""
        q, q_target = self.q_batch(trainable["agents"], state.target_params, batch)
        delta, q_taken, _, r_t, discount_t = self._deltas(q, q_target, state.reward_stats, batch)
        team = jnp.zeros_like(delta)
        if self.mixer is None:
            team = jax.vmap(jax.vmap(self.team_td.fn, (0, None)), (0, None))(delta, weights)
            per_step = jax.vmap(jax.vmap(surrogate_loss))(delta, team)
        else:
            per_step = mixed_loss(self.team_td.loss, self.mixer, self.config.mixer, trainable["mixer"],
                                  state.target_mixer_params, q, q_target, batch, r_t, discount_t,
                                  self.config.double_q)
        mask = batch.filled.astype(jnp.float32)
        n = jnp.maximum(mask.sum(), 1.0)
        zero = jnp.float32(0.0)
        metrics = LearnMetrics(
            loss=(per_step * mask).sum() / n,
            td_abs=(jnp.abs(delta.sum(-1)) * mask).sum() / n,
            q_taken=(q_taken.mean(-1) * mask).sum() / n,
            grad_norm=zero, jtd_error=_jtd_error(delta, team, mask) if weights is not None else zero,
            disagreement=zero, mean_degree=zero, connected=zero, floats_sent=zero)
        return metrics.loss, metrics

    def deltas(self, params, target_params, stats: RewardStats, batch: Episode):
        """Per-agent double-Q TDs of a batch of episodes [B, ...] (agent axis N, or 1 for one agent).

        Returns (δ, Q_i(o_i, a_i), Q⁻_i(o'_i, a*_i), r_t) each [B, T, N], and discount_t [B, T].
        """
        return self._deltas(*self.q_batch(params, target_params, batch), stats, batch)

    def q_batch(self, params, target_params, batch: Episode) -> tuple[Array, Array]:
        """Online and target utilities of a batch of episodes: ([B, T+1, N, A], [B, T+1, N, A])."""
        q_seq = jax.vmap(self.q_sequence, (None, 0))
        return q_seq(params, batch.obs), q_seq(target_params, batch.obs)

    def _deltas(self, q: Array, q_target: Array, stats: RewardStats, batch: Episode):
        """`deltas` from the utilities q, q_target [B, T+1, N, A]."""
        r_t = self.reward_shares(batch.reward, stats, getattr(batch, "team_reward", None))
        discount_t = self.config.gamma * (1.0 - batch.terminated)
        td = jax.vmap(jax.vmap(self.agent_td))  # over batch and time
        delta, q_taken, v_t = td(q[:, :-1], batch.action, r_t, discount_t, q[:, 1:],
                                 q_target[:, 1:], batch.avail[:, 1:])
        return delta, q_taken, v_t, r_t, discount_t

    def reward_shares(self, reward: Array, stats: RewardStats, team: Array | None = None) -> Array:
        """Per-agent rewards used in the TDs (standardised if configured). [..., N].

        `algo.reward_shares`: env, the environment's per-agent rewards (Σ_i r_i = R); equal, R/N for
        every agent (Σ_i r_i = R); team, R for every agent (the DVDN seed's R̄ in every δ_i, and
        EPyMARL's common reward for independent learners). `team` [...]: the team reward R, by
        default Σ_i reward_i (a networked agent, which holds only its own column of `reward`, passes
        the R it observed)."""
        fraction = REWARD_SHARES[self.config.reward_shares](self.num_agents)  # of R, per agent
        if self.config.reward_shares != "env":
            total = reward.sum(-1, keepdims=True) if team is None else team[..., None]
            reward = jnp.broadcast_to(total * fraction, reward.shape)
        if self.config.standardise_rewards:  # centred on one agent's mean share, scaled by R's std
            reward = (reward - stats.mean * fraction) / jnp.sqrt(stats.var + 1e-8)
        return reward

    def learn(self, state: LearnerState, batch: Episode):
        """One update on a minibatch of episodes, then the periodic target update.

        Networked agents draw this step's K consensus graphs from the schedule (pure in the graph
        key and the update count); gradient tracking mixes with the first of them."""
        state = state._replace(reward_stats=_update_stats(state.reward_stats, batch))
        weights = None
        if self.schedule is not None:
            weights = self.schedule.sample_rounds(state.graph_key, state.updates,
                                                  self.config.comm.rounds)
        trainable = {"agents": state.params, "mixer": state.mixer_params}
        grads, metrics = jax.grad(self.loss, has_aux=True)(trainable, state, batch, weights)
        updates, opt_state = self.tx.update(
            grads, state.opt_state, trainable, weights=None if weights is None else weights[0])
        trainable = optax.apply_updates(trainable, updates)
        state = state._replace(params=trainable["agents"], mixer_params=trainable["mixer"],
                               opt_state=opt_state, updates=state.updates + 1)
        metrics = metrics._replace(grad_norm=optax.tree.norm(grads),
                                   **self._graph_metrics(state, weights, batch.filled.size))
        return self.update_target(state), metrics

    def _graph_metrics(self, state: LearnerState, weights, transitions: int) -> dict:
        """Diagnostics of networked agents: disagreement, graphs' degree and connectivity, and the
        communication cost: per round, one TD per sampled transition to each neighbour; with
        gradient tracking also the parameters and the tracker, once per update."""
        if weights is None:
            return {}
        adj = (weights > 0) & ~jnp.eye(self.num_agents, dtype=bool)  # realised graphs [K, N, N]
        degree = adj.sum(-1).mean(-1)  # [K]
        leaves = jax.tree.leaves(state.params)
        spread = [jnp.mean(jnp.square(x - x.mean(0))) for x in leaves]
        sent = degree.sum() * transitions
        if self.config.gradient_tracking:
            sent += degree[0] * 2 * sum(x[0].size for x in leaves)
        return {"disagreement": jnp.sqrt(sum(spread) / len(spread)), "mean_degree": degree.mean(),
                "connected": jax.vmap(is_connected)(adj).mean(), "floats_sent": sent}

    def update_target(self, state: LearnerState) -> LearnerState:
        """Every `target_update_interval` updates: ω⁻ ← τ ω + (1 − τ) ω⁻ (τ = 1: hard copy)."""
        due = state.updates % self.config.target_update_interval == 0
        tau = jnp.where(due, self.config.target_tau, 0.0)
        return state._replace(target_params=optax.incremental_update(state.params, state.target_params, tau),
                              target_mixer_params=optax.incremental_update(
                                  state.mixer_params, state.target_mixer_params, tau))


def _jtd_error(delta: Array, team: Array, mask: Array) -> Array:
    """‖Δ̂_i − Σ_j δ_j‖ / ‖Σ_j δ_j‖ over the filled transitions, averaged over agents.
    (A ratio of norms: per-transition ratios explode where Σδ is near 0.)"""
    total = delta.sum(-1, keepdims=True)  # [B, T, 1]
    err = jnp.sqrt((jnp.square(team - total) * mask[..., None]).sum((0, 1)))  # [N]
    return (err / jnp.maximum(jnp.sqrt((jnp.square(total[..., 0]) * mask).sum()), 1e-8)).mean()


def _update_stats(stats: RewardStats, batch: Episode) -> RewardStats:
    """Merges the batch's filled team rewards into the running mean and variance."""
    return update_reward_stats(stats, batch.reward.sum(-1), batch.filled)


def update_reward_stats(stats: RewardStats, r: Array, filled: Array) -> RewardStats:
    """Merges team rewards r [B, T] (where `filled` [B, T]) into the running mean and variance."""
    mask = filled.astype(jnp.float32)
    count = mask.sum()
    mean = (r * mask).sum() / jnp.maximum(count, 1.0)
    var = (jnp.square(r - mean) * mask).sum() / jnp.maximum(count, 1.0)
    total = stats.count + count
    d = mean - stats.mean
    new_mean = stats.mean + d * count / total
    m2 = stats.var * stats.count + var * count + d * d * stats.count * count / total
    return RewardStats(total, new_mean, m2 / total)


def _check_algo(c: AlgoConfig) -> None:
    """Cross-field rules; types, ranges and choices of single fields are checked by config.check."""
    check(c, "algo.")
    if c.gradient_tracking and c.shared_params:
        raise ValueError("algo.gradient_tracking needs separate parameters per agent "
                         "(algo.shared_params=false): it emulates sharing without a server")
    if c.replay_unit == "transition" and c.agent != "mlp":
        raise ValueError(f"algo.replay_unit=transition needs feed-forward agents (algo.agent=mlp), "
                         f"got algo.agent={c.agent!r}: recurrent agents learn from whole episodes")
    if c.epoch_pass and c.replay_unit != "transition":
        raise ValueError("algo.epoch_pass=true needs algo.replay_unit=transition")
    if c.replay_unit == "episode" and c.batch_size > c.buffer_size:
        raise ValueError(f"algo.batch_size={c.batch_size} exceeds algo.buffer_size={c.buffer_size}")
