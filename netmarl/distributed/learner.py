"""Agent i's share of the Q-learner: its networks, optimiser, replay view and one learning step.

The simulator's QLearner holds all N agents on a leading axis. Agent i's process keeps the same
arrays with an agent axis of size 1 (leaves [1, ...]), so the simulator's own functions (double-Q TD,
per-agent clipping, Adam, gradient tracking) run unchanged on its row. A learning step splits where
the simulator multiplies by W: (1) δ_i on the shared minibatch (jitted), (2) K neighbour exchanges,
Δ̂_i = N · z_i⁽ᴷ⁾ (communicator; with algo.comm.exchange=async one push-sum epoch over the same K
graphs, z_i = s_i / w_i), (3) the gradient of mean (δ_i + sg(Δ̂_i − δ_i))² and the optimiser
(jitted; with gradient tracking the tracker and parameters are mixed through the communicator).
Random draws are the simulator's: the agent draws the joint [N, ...] values from the shared key and
keeps row i, so per-agent parameters equal the simulator's row i to float tolerance.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import io_callback

from netmarl.algos.value.learner import (LearnerState, QLearner, RewardStats, clip_by_agent_norm,
                                         update_reward_stats)
from netmarl.comm import GraphSchedule, is_connected, with_gradient_tracking
from netmarl.comm.mpi import PeerFailure, PeerTimeout, allreduce_sum
from netmarl.nets.agents import apply_agents

Array = jax.Array


class AgentEpisode(NamedTuple):
    """Agent i's view of one padded episode (batched: leading axes)."""

    obs: Array  # [T+1, 1, O] its observations
    avail: Array  # [T+1, 1, A] bool, its available actions
    action: Array  # [T, 1] int32, its actions
    reward: Array  # [T, 1] its reward share
    team_reward: Array  # [T] the team reward R (for 'equal' shares and reward statistics)
    terminated: Array  # [T] bool
    filled: Array  # [T] bool


class AgentState(NamedTuple):
    """Row i of the simulator's LearnerState (no mixer: networked agents decompose additively)."""

    params: object  # leaves [1, ...]
    target_params: object
    opt_state: object  # the agent optimiser's state on [1, ...] leaves
    updates: Array  # [] int32
    reward_stats: RewardStats
    graph_key: Array  # [2] uint32, the same on every agent


class AgentMetrics(NamedTuple):
    """One update of agent i. Σ_i loss and mean_i q_taken equal the simulator's metrics."""

    loss: Array  # [] mean over filled transitions of (δ_i + sg(Δ̂_i − δ_i))² = mean Δ̂_i²
    q_taken: Array  # [] mean Q_i(o_i, a_i)
    grad_sq: Array  # [] squared norm of agent i's gradient before clipping
    mean_degree: Array  # [] mean degree of the step's realised graphs (all agents agree)
    connected: Array  # [] fraction of the step's graphs that are connected
    floats_sent: Array  # [] floats this agent sent in the update
    jtd_error: Array  # [] ‖Δ̂_i − Σ_j δ_j‖ / ‖Σ_j δ_j‖ (algo.comm.log_jtd_error; else 0)


class _OneAgent(QLearner):
    """The learner's functions on agent `index`'s column (agent axis of size 1)."""

    def __init__(self, learner: QLearner, index: int):  # noqa: D107 - shares the learner's parts
        self.__dict__.update(learner.__dict__)
        self.index = index

    def prepare_obs(self, obs: Array) -> Array:
        """Appends agent i's one-hot id (of N) under parameter sharing / GT. [..., 1, O]."""
        if not self.append_ids:
            return obs
        ids = jnp.broadcast_to(jax.nn.one_hot(self.index, self.num_agents, dtype=obs.dtype),
                               (*obs.shape[:-1], self.num_agents))
        return jnp.concatenate([obs, ids], -1)

    def initial_hidden(self) -> Array:
        return jnp.zeros((1, self.net.hidden_dim))


class AgentLearner:
    """Agent `index` of `learner` (a QLearner with per-agent parameters, team_td dvdn or iql).

    `comm` (set by the runtime, replaced after a repair) is the communicator of the live agents;
    neighbour exchanges inside jitted code (gradient tracking) reach it through `io_callback`, and a
    peer failure met there is re-raised after the jitted call returns."""

    def __init__(self, learner: QLearner, index: int):
        if learner.config.shared_params or learner.mixer is not None or learner.pairwise:
            raise ValueError(f"the MPI runtime runs per-agent learners (dvdn, dvdn_gt, iql); "
                             f"algo {learner.config.name!r} needs a central learner")
        self.learner, self.index, self.view = learner, index, _OneAgent(learner, index)
        self.config, self.num_agents = learner.config, learner.num_agents
        self.comm, self.failure = None, None
        self.tx = self.make_tx(self._mix_callback)
        self.init = jax.jit(self._init)
        self.act = jax.jit(jax.vmap(self._act, (None, 0, 0, 0, None, 0)))
        self.deltas = jax.jit(self._deltas, static_argnums=2)
        self.grad = jax.jit(self._grad)
        self.apply = jax.jit(self._apply)

    # --- state ------------------------------------------------------------------------------------

    def _init(self, key: Array) -> AgentState:
        """Row i of the simulator's initial LearnerState (the joint init, then a slice)."""
        full: LearnerState = self.learner.init(key)
        params = jax.tree.map(lambda x: x[self.index:self.index + 1], full.params)
        return AgentState(params, params, self.tx.init(params), full.updates, full.reward_stats,
                          full.graph_key)

    def make_tx(self, mix) -> optax.GradientTransformation:
        """The simulator's per-agent optimiser chain, mixing through `mix` (gradient tracking)."""
        c = self.config
        clip = clip_by_agent_norm(c.grad_clip) if c.grad_clip > 0 else optax.identity()
        step = optax.sgd(c.lr) if c.optimizer == "sgd" else optax.adam(c.lr)
        if c.gradient_tracking:
            step = optax.sgd(c.lr) if c.gt_optimizer == "sgd" else optax.adam(c.lr)
            step = with_gradient_tracking(step, c.gt_combine == "atc", mix=mix)
        return optax.chain(clip, step)

    def _mix_callback(self, tree, weights):
        """Σ_j α_ij x_j through the communicator, from jitted code (an ordered io_callback)."""
        shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)
        return io_callback(self._host_mix, shapes, tree, weights, ordered=True)

    def _host_mix(self, tree, weights):
        if self.failure is None:
            try:
                return self.comm.mix(tree, weights)
            except (PeerFailure, PeerTimeout) as error:  # raised again after the jitted call
                self.failure = error
        return jax.tree.map(np.asarray, tree)  # the step is discarded: the runtime repeats it

    # --- acting -----------------------------------------------------------------------------------

    def _act(self, params, obs: Array, h: Array, avail: Array, epsilon: Array, key: Array):
        """One env: obs [O], h [1, H], avail [A], key (the step's chain key) ->
        (action [] int32, h', next chain key). The ε-greedy draws are the joint ones, row i."""
        key, k_act, _ = jax.random.split(key, 3)  # as collect_episode: (key, k_act, k_env)
        q, h = apply_agents(self.view.net, params, self.view.prepare_obs(obs[None]), h, False)
        greedy = jnp.argmax(jnp.where(avail, q[0], -jnp.inf))
        joint_avail = jnp.ones((self.num_agents, avail.shape[-1]), bool).at[self.index].set(avail)
        explore, random = self.learner.exploration(k_act, joint_avail, epsilon)
        action = jnp.where(explore[self.index], random[self.index], greedy).astype(jnp.int32)
        return action, h, key

    def initial_hidden(self, envs: int) -> np.ndarray:
        return np.zeros((envs, 1, self.learner.net.hidden_dim), np.float32)

    # --- learning ---------------------------------------------------------------------------------

    def _deltas(self, state: AgentState, batch: AgentEpisode, schedule: GraphSchedule | None):
        """Reward statistics, δ_i [B, T], the step's weights Ws [K, N', N'] and their statistics."""
        stats = update_reward_stats(state.reward_stats, batch.team_reward, batch.filled)
        state = state._replace(reward_stats=stats)
        delta = self.view.deltas(state.params, state.target_params, stats, batch)[0][..., 0]
        weights = None
        if schedule is not None:
            weights = schedule.sample_rounds(state.graph_key, state.updates, self.config.comm.rounds)
        return state, delta, weights, _graph_stats(weights)

    def _loss(self, params, state: AgentState, batch: AgentEpisode, team: Array):
        delta, q_taken, _, _, _ = self.view.deltas(params, state.target_params, state.reward_stats,
                                                   batch)
        delta, q_taken = delta[..., 0], q_taken[..., 0]  # [B, T]
        mask = batch.filled.astype(jnp.float32)
        n = jnp.maximum(mask.sum(), 1.0)
        per_step = jnp.square(delta + jax.lax.stop_gradient(team - delta))
        return (per_step * mask).sum() / n, (q_taken * mask).sum() / n

    def _grad(self, state: AgentState, batch: AgentEpisode, team: Array):
        (loss, q_taken), grads = jax.value_and_grad(self._loss, has_aux=True)(
            state.params, state, batch, team)
        return grads, loss, q_taken, jnp.square(optax.tree.norm(grads))

    def _apply(self, state: AgentState, grads, weights):
        """The optimiser (clip + Adam, or clip + tracking + step + mixing with W⁽¹⁾) and the
        periodic target update."""
        updates, opt_state = self.tx.update(grads, state.opt_state, state.params, weights=weights)
        return self.update_target(state._replace(params=optax.apply_updates(state.params, updates),
                                                 opt_state=opt_state, updates=state.updates + 1))

    def update_target(self, state: AgentState) -> AgentState:
        """As QLearner.update_target, on agent i's networks."""
        due = state.updates % self.config.target_update_interval == 0
        tau = jnp.where(due, self.config.target_tau, 0.0)
        return state._replace(target_params=optax.incremental_update(state.params,
                                                                     state.target_params, tau))

    def learn(self, state: AgentState, batch: AgentEpisode, schedule):
        """One update: δ_i, K consensus rounds through `self.comm`, gradient, optimiser, target.

        `schedule`: the live agents' GraphSchedule (None for IQL). Returns (state, AgentMetrics);
        raises PeerFailure (state unchanged) if a neighbour failed."""
        sent0 = self.comm.floats_sent
        new, delta, weights, (degree, connected) = self.deltas(state, batch, schedule)
        team, jtd = delta, np.float32(0.0)
        if weights is not None:
            team = self.team_td(np.asarray(delta), np.asarray(weights), int(state.updates))
            if self.config.comm.log_jtd_error:
                jtd = self.jtd_error(np.asarray(delta), team, np.asarray(batch.filled))
        grads, loss, q_taken, grad_sq = self.grad(new, batch, team)
        w0 = None if weights is None else weights[0]
        new = jax.block_until_ready(self.apply(new, grads, w0))  # its mixes (callbacks) are done
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure
        return new, AgentMetrics(loss, q_taken, grad_sq, degree, connected,
                                 np.float32(self.comm.floats_sent - sent0), jtd)

    def team_td(self, delta: np.ndarray, weights: np.ndarray, epoch: int) -> np.ndarray:
        """Δ̂_i = N′ z_i [B, T]: K synchronous rounds z_i ← Σ_j α_ij z_j (weights Ws [K, N′, N′]), or
        with algo.comm.exchange=async the push-sum estimate of the mean over the same K graphs."""
        if self.config.comm.exchange == "async":
            z = self.comm.average(delta, weights, epoch)
        else:
            z = delta
            for w in weights:
                z = self.comm.mix(z, w)
        return np.float32(weights.shape[-1]) * z

    def jtd_error(self, delta: np.ndarray, team: np.ndarray, filled: np.ndarray) -> np.float32:
        """‖Δ̂_i − Σ_j δ_j‖ / ‖Σ_j δ_j‖ over the filled transitions (the simulator's jtd_error, agent
        i's term); the exact Σ_j δ_j comes from one blocking all-reduce over the live agents."""
        total = allreduce_sum(self.comm.comm, delta.ravel(), self.comm.timeout,
                              f"agent {self.index}: exact joint TD (algo.comm.log_jtd_error)")
        total, mask = total.reshape(delta.shape).astype(np.float64), filled.astype(np.float64)
        error = np.sqrt((np.square(team - total) * mask).sum())
        return np.float32(error / max(np.sqrt((np.square(total) * mask).sum()), 1e-8))


def _graph_stats(weights) -> tuple[Array, Array]:
    """Mean degree and connected fraction of realised graphs Ws [K, N, N] (as the simulator logs)."""
    if weights is None:
        return jnp.float32(0.0), jnp.float32(0.0)
    adj = (weights > 0) & ~jnp.eye(weights.shape[-1], dtype=bool)
    return adj.sum(-1).mean(-1).mean(), jax.vmap(is_connected)(adj).mean()
