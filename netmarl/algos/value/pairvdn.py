"""PairVDN (Buzzard 2025; specs/pairvdn_boxjump.md §2): pairwise value decomposition over a cycle.

    Q_tot(s, a) = Σ_i Q(o_i, o_{i⁺})[a_i, a_{i⁺}],   i⁺ = (i + 1) mod N

One shared pairwise head maps [o_i ; o_{i⁺}] (each with its one-hot id) to an A×A grid. Unlike VDN
and QMIX, Q_tot is not monotonic in each agent's utility, so the greedy joint action is not a
per-agent argmax: it is the exact cyclic max-plus DP (`pairwise.cyclic_max_plus`, O(N·A³)), used both
to act and to form the TD target

    y = Σ_i r_i + γ (1 − terminated) Q_tot(s', a*; θ⁻),   a* = DP argmax (online grids with double Q,
                                                              the target's own grids without: the paper)
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from netmarl.algos.value.learner import LearnerState, LearnMetrics, QLearner
from netmarl.algos.value.pairwise import cyclic_max_plus, pair_q_tot
from netmarl.config import AlgoConfig
from netmarl.envs.core import Environment
from netmarl.nets.agents import apply_agents, make_agent_net, with_agent_ids
from netmarl.train.replay import Episode

Array = jax.Array
_UNAVAILABLE = -1e9  # added to grid entries that pair an unavailable action


class PairLearner(QLearner):
    """The Q-learner with a pairwise head and DP action selection (algo.team_td = pairvdn)."""

    pairwise = True

    def __init__(self, config: AlgoConfig, env: Environment):
        if not config.shared_params or config.agent != "mlp" or env.num_agents < 2:
            raise ValueError(f"pairvdn needs algo.shared_params=true and algo.agent=mlp (one pairwise "
                             f"feed-forward head for every pair) and >= 2 agents; got shared_params="
                             f"{config.shared_params}, agent={config.agent!r}, {env.num_agents} agents")
        super().__init__(config, env)
        self.mixer = None
        self.net = make_agent_net("mlp", env.num_actions ** 2, config.hidden, config.layers,
                                  config.agent_init)
        self.obs_dim = 2 * (env.obs_dim + env.num_agents)  # [o_i, id_i ; o_i⁺, id_i⁺]

    def prepare_obs(self, obs: Array) -> Array:
        """Pair inputs: [..., N, O] -> [..., N, 2 (O + N)], row i = [o_i, id_i, o_i⁺, id_i⁺]."""
        obs = with_agent_ids(obs)
        return jnp.concatenate([obs, jnp.roll(obs, -1, axis=-2)], -1)

    def grids(self, params, obs: Array, avail: Array) -> Array:
        """Pair grids of one step: obs [N, O], avail [N, A] -> [N, A, A] (unavailable pairs ≈ −∞)."""
        q, _ = apply_agents(self.net, params, self.prepare_obs(obs), self.initial_hidden(), True)
        a = self.num_actions
        ok = avail[:, :, None] & jnp.roll(avail, -1, axis=0)[:, None, :]
        return jnp.where(ok, q.reshape(-1, a, a), _UNAVAILABLE)

    def act(self, params, obs: Array, h: Array, avail: Array, epsilon: Array, key: Array):
        """Greedy joint action by the cyclic DP, then ε-greedy per agent over available actions."""
        greedy, _ = cyclic_max_plus(self.grids(params, obs, avail))
        explore, random = self.exploration(key, avail, epsilon)
        return jnp.where(explore, random, greedy).astype(jnp.int32), h

    def joint_td(self, params, target_params, obs: Array, avail: Array, a_tm1: Array, r_t: Array,
                discount_t: Array) -> tuple[Array, Array]:
        """Joint TD of one transition: obs/avail [2, N, ...] (o_tm1, o_t) -> (δ_tot [], Q_tot [])."""
        g_tm1 = self.grids(params, obs[0], avail[0])
        g_t_target = self.grids(target_params, obs[1], avail[1])
        if self.config.double_q:
            a_star, _ = cyclic_max_plus(self.grids(params, obs[1], avail[1]))
            v_t = pair_q_tot(g_t_target, a_star)
        else:
            _, v_t = cyclic_max_plus(g_t_target)
        q_tot = pair_q_tot(g_tm1, a_tm1)
        return r_t.sum() + discount_t * jax.lax.stop_gradient(v_t) - q_tot, q_tot

    def loss(self, trainable, state: LearnerState, batch: Episode, weights):
        """Mean squared joint TD over the filled transitions of a batch of episodes [B, T, ...]."""
        del weights
        params = trainable["agents"]
        pairs = lambda x: jnp.stack([x[:, :-1], x[:, 1:]], 2)  # noqa: E731  [B, T, 2, ...]
        r_t = self.reward_shares(batch.reward, state.reward_stats)
        discount_t = self.config.gamma * (1.0 - batch.terminated)
        td = jax.vmap(jax.vmap(self.joint_td, (None, None, 0, 0, 0, 0, 0)), (None, None, 0, 0, 0, 0, 0))
        delta, q_tot = td(params, state.target_params, pairs(batch.obs), pairs(batch.avail),
                          batch.action, r_t, discount_t)
        mask = batch.filled.astype(jnp.float32)
        n = jnp.maximum(mask.sum(), 1.0)
        zero = jnp.float32(0.0)
        metrics = LearnMetrics(loss=(jnp.square(delta) * mask).sum() / n,
                               td_abs=(jnp.abs(delta) * mask).sum() / n,
                               q_taken=(q_tot / self.num_agents * mask).sum() / n, grad_norm=zero,
                               jtd_error=zero, disagreement=zero, mean_degree=zero, connected=zero,
                               floats_sent=zero)
        return metrics.loss, metrics


def make_learner(config: AlgoConfig, env: Environment) -> QLearner:
    """The learner of an algorithm config: PairLearner for team_td = pairvdn, else QLearner."""
    return (PairLearner if config.team_td == "pairvdn" else QLearner)(config, env)
