"""Small shared helpers for the learner tests."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from netmarl.config import AlgoConfig, EnvConfig, RunConfig, TrainConfig
from netmarl.nets.agents import apply_agents
from netmarl.train.runner import Trainer


def matrix_config(game: str, team_td: str, steps: int = 5000, **algo) -> TrainConfig:
    """One-step matrix game, uniform exploration throughout (the lecture's fitting setting)."""
    defaults = dict(name=team_td, team_td=team_td, agent="mlp", hidden=32, lr=5e-3, eps_start=1.0,
                    eps_finish=1.0, buffer_size=1024, batch_size=256, target_update_interval=1)
    return TrainConfig(algo=AlgoConfig(**{**defaults, **algo}), env=EnvConfig(f"matrix:{game}"),
                       run=RunConfig(total_steps=steps, eval_interval=steps, eval_episodes=4,
                                     progress=False))


def train_steps(config: TrainConfig):
    """Trains with the jitted chunk function only (no run directory): (trainer, carry of seed 0)."""
    trainer = Trainer(config)
    carry, _ = trainer.run_chunk(trainer.init_seeds(), jnp.int32(config.run.total_steps))
    return trainer, jax.tree.map(lambda x: x[0], carry)


def joint_q_table(trainer: Trainer, carry) -> np.ndarray:
    """Q_tot(a_1, a_2) [A, A] at the first step of a matrix game (sum, or the QMIX mixer)."""
    env, learner = trainer.env, trainer.learner
    _, ts = env.reset(jax.random.key(0))
    q, _ = apply_agents(learner.net, carry.learner.params, learner.prepare_obs(ts.obs),
                        learner.initial_hidden(), learner.config.shared_params)
    table = np.zeros((env.num_actions,) * env.num_agents)
    for joint in itertools.product(range(env.num_actions), repeat=env.num_agents):
        q_joint = q[jnp.arange(env.num_agents), jnp.array(joint)]
        if learner.mixer is None:
            table[joint] = float(q_joint.sum())
        else:
            table[joint] = float(learner.mixer.apply(carry.learner.mixer_params, q_joint, ts.state))
    return table
