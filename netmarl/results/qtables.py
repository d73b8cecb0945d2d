"""The learned value tables of a Q-learner at one state: utilities, Q_tot of every joint action, and
the greedy joint action — read from a learner state or from a run's checkpoint (all seeds).

    tables = checkpoint_q_tables("runs/<id>")     # QTables with a leading seed axis
    tables.q_tot[s]                                # [A, ..., A] Q_tot of seed s at the first state

Q_tot is what the algorithm's loss fits: Σ_i Q_i(a_i) for IQL and VDN (for IQL only a sum, which
it never trains), the mixer's Q_tot(s, a) for QMIX and QPLEX, Q_jt(s, a) for QTRAN (whose agents act
on Σ_i Q_i) and Σ_i G_i[a_i, a_i+1] for PairVDN (whose `utilities` are its pair grids [N, A, A]).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from netmarl.algos.value.learner import LearnerState, QLearner
from netmarl.algos.value.pairwise import pair_q_tot
from netmarl.envs.core import Environment
from netmarl.nets.agents import apply_agents
from netmarl.nets.mixers import chosen

Array = jax.Array


class QTables(NamedTuple):
    utilities: Array  # [N, A] Q_i(o_i, u) (PairVDN: pair grids [N, A, A])
    q_tot: Array  # [A, ..., A] (N axes) Q_tot(s, a) of every joint action
    greedy: Array  # [N] int32, the joint action the greedy agents take


def joint_actions(num_agents: int, num_actions: int) -> Array:
    """Every joint action in row-major order: [A^N, N] int32."""
    return jnp.indices((num_actions,) * num_agents).reshape(num_agents, -1).T.astype(jnp.int32)


def q_tables(learner: QLearner, state: LearnerState, env: Environment, key: Array) -> QTables:
    """The tables of one seed at the state `env.reset(key)` (recurrent agents from a zero state)."""
    _, ts = env.reset(key)
    n, a = learner.num_agents, learner.num_actions
    joints = joint_actions(n, a)
    greedy, _ = learner.act(state.params, ts.obs, learner.initial_hidden(), ts.avail, jnp.float32(0.0), key)
    if learner.pairwise:
        grids = learner.grids(state.params, ts.obs, ts.avail)
        return QTables(grids, jax.vmap(pair_q_tot, (None, 0))(grids, joints).reshape((a,) * n), greedy)
    q, _ = apply_agents(learner.net, state.params, learner.prepare_obs(ts.obs), learner.initial_hidden(),
                        learner.config.shared_params)
    if learner.mixer is None:
        q_tot = jax.vmap(lambda u: chosen(q, u).sum())(joints)
    else:
        q_tot = jax.vmap(lambda u: learner.mixer.apply(state.mixer_params, q, u, ts.avail, ts.state))(joints)
    return QTables(q, q_tot.reshape((a,) * n), greedy)


def checkpoint_q_tables(path: str) -> QTables:
    """The tables of every seed of a run's latest checkpoint (leaves with a leading seed axis)."""
    from netmarl.train.evaluate import load_run

    trainer, carry, _ = load_run(path)
    one = lambda s: q_tables(trainer.learner, s, trainer.env, jax.random.key(0))  # noqa: E731
    return jax.tree.map(np.asarray, jax.jit(jax.vmap(one))(carry.learner))
