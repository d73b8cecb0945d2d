"""One on-policy actor-critic learner for the whole family (IA2C, MAA2C, COMA, Pareto-AC, IPPO, MAPPO).

Each iteration learns from the K = run.num_envs whole episodes just collected with the current
stochastic policies π(a_i | h_i; φ_i) (EPyMARL's protocol). Per agent i and step t:

    A_i,t, y_i,t = advantage(rewards, critic values)     (pieces.ADVANTAGES, critic from critics.py)
    L(φ_i) = policy_loss(log π(a_i,t | h_i,t), A_i,t) − β H(π(· | h_i,t))        (pieces.POLICY_LOSSES)
    L(θ_i) = (y_i,t − V_i,t)²   or   (y_i,t − Q_i,t(⟨a_i,t, a_−i,t⟩))²

with `epochs` passes over the episodes in `minibatches` minibatches of whole episodes (A2C: one of
each). Targets bootstrap from a target critic θ⁻ (n-step; GAE uses the online critic); time-limit
truncation bootstraps, termination does not. The algorithms differ only in algo.policy's three
pieces (critic_input, advantage, policy_loss) and parameter sharing.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from netmarl.algos.policy.critics import CRITIC_INPUTS, others_joint_actions
from netmarl.algos.policy.inputs import AGENT_INPUTS, InputStats
from netmarl.algos.policy.pieces import ADVANTAGES, MASKED, POLICY_LOSSES, lookup
from netmarl.algos.policy.update import PolicyState, prepare_batch, update_epochs
from netmarl.algos.value.learner import (RewardStats, clip_by_agent_norm, exploration_draws,
                                         update_reward_stats)
from netmarl.config import AlgoConfig, check
from netmarl.envs.core import Environment
from netmarl.nets.dgat import disagreement
from netmarl.nets.agents import apply_agents, apply_sequence, init_agents, make_agent_net, with_agent_ids
from netmarl.train.replay import Episode

Array = jax.Array


def value_scale(stats: RewardStats, trailing: int) -> tuple[Array, Array]:
    """(mean, std) of the critic targets, shaped to broadcast over [..., N] + `trailing` axes: scalars
    when pooled ([] stats), [N, 1, ...] per agent ([N] stats)."""
    shape = stats.mean.shape + (1,) * (trailing if stats.mean.ndim else 0)
    return stats.mean.reshape(shape), jnp.sqrt(stats.var + 1e-8).reshape(shape)


def output_layer(layers: dict) -> str:
    """The name of a network's output layer: its last Dense."""
    return max((k for k in layers if k.startswith("Dense_")), key=lambda k: int(k.split("_")[1]))


def scale_output(params, scale: float):
    """Scales the output layer's weights (the last Dense): the actors start near-uniform (0.01) and the
    critics at zero (0), so no advantage is noise from a random critic before the first reward (the
    small policy head of common PPO implementations; algo.policy.small_heads=false keeps the init)."""
    layers = params["params"]
    last = output_layer(layers)
    out = dict(layers[last], kernel=layers[last]["kernel"] * scale)
    return {**params, "params": {**layers, last: out}}


class PolicyLearner:
    """The learner's static parts (actor, critic, pieces, optimiser); its state is a PolicyState."""

    def __init__(self, config: AlgoConfig, env: Environment):
        p = config.policy
        self.critic_input = lookup(CRITIC_INPUTS, p.critic_input, "algo.policy.critic_input")(env)
        self.inputs = lookup(AGENT_INPUTS, p.agent_input, "algo.policy.agent_input")(config, env)
        self.advantage = lookup(ADVANTAGES, p.advantage, "algo.policy.advantage")
        self.policy_loss = lookup(POLICY_LOSSES, p.policy_loss, "algo.policy.policy_loss")
        _check_policy(config, env, self.critic_input.action_value, self.advantage.kind)
        self.config, self.shared = config, config.shared_params
        self.num_agents, self.num_actions = env.num_agents, env.num_actions
        ids = env.num_agents if self.shared else 0
        self.actor_dim = self.inputs.dim + ids
        self.critic_dim = self.critic_input.dim(env, self.inputs.dim) + ids
        self.actor = make_agent_net(config.agent, env.num_actions, config.hidden, config.layers,
                                    config.agent_init)
        outputs = env.num_actions if self.critic_input.action_value else 1
        self.critic = make_agent_net(p.critic_net, outputs, config.hidden, config.layers, config.agent_init)
        self.others = None
        if self.advantage.others == "all":
            self.others = others_joint_actions(env.num_agents, env.num_actions)
        self.tx = self._optimiser()

    def _optimiser(self) -> optax.GradientTransformation:
        c = self.config
        step = {"sgd": optax.sgd, "adam": optax.adam}[c.optimizer]
        def part(lr, axis=0):  # D-GAT's ψ leaves [K, N, ...] have the agent on axis 1
            clip = (optax.clip_by_global_norm(c.grad_clip) if c.shared_params
                    else clip_by_agent_norm(c.grad_clip, axis))
            return optax.chain(clip, step(lr)) if c.grad_clip > 0 else step(lr)

        parts = {"actor": part(c.lr), "critic": part(c.lr), "dgat": part(c.dgat.lr or c.lr, 1)}
        return optax.multi_transform(parts, lambda params: {name: name for name in params})

    # --- state and acting ----------------------------------------------------------------------------

    def init(self, key: Array) -> PolicyState:
        k_actor, k_critic = jax.random.split(key)
        n = self.num_agents
        params = {"actor": init_agents(self.actor, k_actor, self.actor_dim, n, self.shared),
                  "critic": init_agents(self.critic, k_critic, self.critic_dim, n, self.shared)}
        if self.config.policy.small_heads:
            params = {"actor": scale_output(params["actor"], 0.01), "critic": scale_output(params["critic"], 0.0)}
        if self.inputs.trainable:
            params["dgat"] = self.inputs.init(jax.random.fold_in(key, 2))
        stats = RewardStats(jnp.float32(1e-4), jnp.float32(0.0), jnp.float32(1.0))
        value_stats = stats  # [] pooled over agents, or [N] with value_norm_scope=agent
        if self.config.policy.value_norm_scope == "agent":
            value_stats = jax.tree.map(lambda x: jnp.full((n,), x), stats)
        return PolicyState(params, params["critic"], self.tx.init(params), jnp.int32(0), stats, value_stats)

    def initial_hidden(self) -> Array:
        """[N, H] zero recurrent state of the actors."""
        return jnp.zeros((self.num_agents, self.actor.hidden_dim))

    def epsilon(self, env_steps: Array) -> Array:
        """No ε-greedy exploration (the policies are stochastic): 0 (logged by the runner)."""
        return jnp.zeros_like(env_steps, jnp.float32)

    def graph(self, key: Array):
        """The communication graph of one env step ([N, N] bool, from the step's acting key), or None
        for agents that do not communicate; the rollout stores it in the episode."""
        return self.inputs.graph(key)

    def _logits(self, params, obs: Array, h: Array, avail: Array, graph):
        x = self.inputs.apply(params.get("dgat"), obs, graph)
        x = with_agent_ids(x) if self.shared else x
        logits, h = apply_agents(self.actor, params["actor"], x, h, self.shared)
        return jnp.where(avail, logits, MASKED), h

    def act(self, params, obs: Array, h: Array, avail: Array, epsilon: Array, key: Array, graph=None):
        """Evaluation: the most probable action (with algo.policy.eval_sample: a ~ π), ε-greedy (ε = 1:
        uniform over available actions). obs [N, O], h [N, H], avail [N, A], graph [N, N]
        (communicating agents; None: drawn from `key`) -> (actions [N] int32, h')."""
        logits, h = self._logits(params, obs, h, avail, self._graph(graph, key))
        explore, random = exploration_draws(key, avail, epsilon)
        if self.config.policy.eval_sample:
            chosen = jax.random.categorical(jax.random.fold_in(key, 1), logits)
        else:
            chosen = jnp.argmax(logits, -1)
        return jnp.where(explore, random, chosen).astype(jnp.int32), h

    def sample(self, params, obs: Array, h: Array, avail: Array, epsilon: Array, key: Array, graph=None):
        """Training: a ~ π(· | h_i) (ε unused). -> (actions [N] int32, h')."""
        del epsilon
        logits, h = self._logits(params, obs, h, avail, self._graph(graph, key))
        return jax.random.categorical(key, logits).astype(jnp.int32), h

    def entropy_coef(self, env_steps: Array) -> Array:
        """β: constant, or linear from entropy_start to entropy_coef over entropy_anneal_steps."""
        p = self.config.policy
        if p.entropy_start is None:
            return jnp.float32(p.entropy_coef)
        frac = jnp.clip(env_steps / max(p.entropy_anneal_steps, 1), 0.0, 1.0)
        return p.entropy_start + frac * (p.entropy_coef - p.entropy_start)

    # --- sequences -------------------------------------------------------------------------------------

    def _graph(self, graph, key: Array):
        return self.graph(key) if graph is None else graph

    def views(self, params, episode: Episode) -> tuple[Array, InputStats]:
        """What the agents see over one episode: (x [T+1, N, D], per-step input stats [T+1])."""
        return self.inputs.sequence(params.get("dgat"), episode.obs, episode.graph)

    def logits_sequence(self, actor_params, x: Array, avail: Array) -> Array:
        """x [T+1, N, D] (`views`), avail [T+1, N, A] -> masked logits [T+1, N, A]."""
        x = with_agent_ids(x) if self.shared else x
        return jnp.where(avail, apply_sequence(self.actor, actor_params, x, self.shared), MASKED)

    def critic_inputs(self, x: Array, episode: Episode, actions: Array) -> Array:
        """[T+1, N, C] critic inputs of one episode from its views x and joint actions [T+1, N]."""
        x = jax.vmap(self.critic_input.fn)(x, episode.state, actions)
        return with_agent_ids(x) if self.shared else x

    def critic_sequence(self, critic_params, x: Array, value_stats: RewardStats) -> Array:
        """Critic outputs in reward units: x [T+1, N, C] -> [T+1, N, 1 or A]."""
        out = apply_sequence(self.critic, critic_params, x, self.shared)
        return self._denormalise(out, value_stats)

    def _denormalise(self, out: Array, stats: RewardStats, trailing: int = 1) -> Array:
        """Critic outputs in reward units; `out` [..., N] + `trailing` axes (critic outputs [..., N, C]:
        1; per-agent values [..., N]: 0)."""
        if not self.config.policy.value_norm:
            return out
        mean, std = value_scale(stats, trailing)
        return out * std + mean

    def normalise_targets(self, target: Array, stats: RewardStats) -> Array:
        """Critic targets [..., N] (reward units) in the critic's standardised units."""
        mean, std = value_scale(stats, 0)
        return (target - mean) / std

    def q_all_others(self, critic_params, episode: Episode, value_stats: RewardStats) -> Array:
        """Q_i for every own action and every joint action of the others (Pareto-AC, exact):
        one episode -> [T+1, N, A, M]; others' unavailable joint actions are −∞."""
        onehot, actions = (jnp.asarray(x) for x in self.others)  # [N, M, N·A], [N, M, N]

        n, eye = self.num_agents, jnp.eye(self.num_agents, dtype=bool)

        def one_step(obs, state, avail):
            rows = jax.vmap(lambda o: jnp.concatenate([jnp.broadcast_to(state, (n, state.shape[0])), obs, o],
                                                      -1), 1)(onehot)  # [M, N, C]
            rows = with_agent_ids(rows) if self.shared else rows
            h = jnp.zeros((n, self.critic.hidden_dim))
            q = jax.vmap(lambda x: apply_agents(self.critic, critic_params, x, h, self.shared)[0])(rows)
            ok = (avail[jnp.arange(n), actions] | eye[:, None, :]).all(-1)  # the others' actions [N, M]
            return jnp.where(ok[:, None, :], jnp.moveaxis(q, 0, -1), -jnp.inf)  # [N, A, M]

        return self._denormalise(jax.vmap(one_step)(episode.obs, episode.state, episode.avail), value_stats)

    # --- learning --------------------------------------------------------------------------------------

    def rewards(self, reward: Array, stats: RewardStats) -> Array:
        """Each agent's learning reward [..., N]: env shares, R / N (equal) or R (team), standardised
        by the running team-reward statistics when configured."""
        mode, n = self.config.reward_shares, self.num_agents
        team = reward.sum(-1, keepdims=True)
        r = {"env": reward, "equal": jnp.broadcast_to(team / n, reward.shape),
             "team": jnp.broadcast_to(team, reward.shape)}[mode]
        if self.config.standardise_rewards:
            r = (r - stats.mean * (1.0 if mode == "team" else 1.0 / n)) / jnp.sqrt(stats.var + 1e-8)
        return r

    def learn(self, state: PolicyState, episodes: Episode, key: Array, env_steps: Array):
        """One iteration's updates on K episodes [K, ...]: returns (state, summed PolicyMetrics)."""
        k_batch, k_epochs = jax.random.split(key)
        state = state._replace(reward_stats=update_reward_stats(
            state.reward_stats, episodes.reward.sum(-1), episodes.filled))
        batch, state = prepare_batch(self, state, episodes, k_batch)
        state, metrics = update_epochs(self, state, batch, k_epochs, self.entropy_coef(env_steps))
        return self.update_target(state), metrics

    def average(self, params, key: Array):
        """After every update: D-SGD's neighbour averaging of communicating agents' ψ (eq. 9), over a
        graph drawn from `key`. -> (params, disagreement of ψ after it; 0 without communication)."""
        if not self.inputs.trainable:
            return params, jnp.float32(0.0)
        dgat = self.inputs.average(params["dgat"], key)
        return {**params, "dgat": dgat}, disagreement(dgat)

    def update_target(self, state: PolicyState) -> PolicyState:
        """Every `target_update_interval` iterations: θ⁻ ← τ θ + (1 − τ) θ⁻ (τ = 1: hard copy)."""
        p, c = self.config.policy, self.config
        iteration = state.updates // (p.epochs * p.minibatches)
        tau = jnp.where(iteration % c.target_update_interval == 0, c.target_tau, 0.0)
        return state._replace(target_critic=optax.incremental_update(
            state.params["critic"], state.target_critic, tau))


def _check_policy(c: AlgoConfig, env: Environment, action_value: bool, kind: str) -> None:
    p = c.policy
    if c.shared_params and not env.homogeneous:
        raise ValueError(f"algo.shared_params needs homogeneous agents, but {env.name} has observation "
                         f"sizes {list(env.agent_obs_dims)} and action counts {list(env.agent_num_actions)}")
    if action_value != (kind == "q"):
        raise ValueError(f"algo.policy.advantage={p.advantage!r} and algo.policy.critic_input="
                         f"{p.critic_input!r} do not fit: coma and pareto need the action-value critic "
                         "(critic_input=joint_action), td and gae a state-value critic (local, state, joint_obs)")
    check(c, "algo.")  # types, ranges and choices of single fields (netmarl/config.py)
    if c.agent == "gru" and p.critic_net == "gru":
        raise ValueError("algo.agent=gru with algo.policy.critic_net=gru: initialising the two recurrent "
                         "networks in one compiled program never returns under jaxlib 0.10.2 on CPU (a "
                         "runtime hang, docs/algorithms.md); use algo.policy.critic_net=mlp or algo.agent=mlp")
    if p.refresh_advantages and (p.advantage != "td" or p.agent_input != "local"):
        raise ValueError(f"algo.policy.refresh_advantages recomputes A = G - V with the current critic "
                         f"before every epoch: needs algo.policy.advantage=td (got {p.advantage!r}) and "
                         f"agent_input=local (got {p.agent_input!r}: D-GAT's critic inputs change with ψ)")
    if p.agent_input == "dgat" and (c.shared_params or action_value):
        raise ValueError("algo.policy.agent_input=dgat (DG-MAPPO) gives every agent its own D-GAT "
                         "parameters ψ^i and a state-value critic: needs algo.shared_params=false (got "
                         f"{c.shared_params}) and critic_input local, state or joint_obs (got {p.critic_input!r})")
    if p.advantage == "pareto":
        joint = env.num_actions ** (env.num_agents - 1)
        if p.critic_net != "mlp" or joint > p.max_joint_actions:
            raise ValueError(f"advantage=pareto enumerates the others' {joint} joint actions with a "
                             f"feed-forward critic: needs algo.policy.critic_net=mlp (got {p.critic_net!r}) "
                             f"and at most algo.policy.max_joint_actions={p.max_joint_actions} joint actions")
