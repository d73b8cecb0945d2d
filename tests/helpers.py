"""Small shared helpers for the learner tests."""
import jax
import jax.numpy as jnp
import numpy as np

from netmarl.config import AlgoConfig, EnvConfig, RunConfig, TrainConfig
from netmarl.results.qtables import q_tables
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
    """Q_tot(a_1, a_2) [A, A] at the first step of a matrix game (sum, or the mixer's Q_tot)."""
    return np.asarray(q_tables(trainer.learner, carry.learner, trainer.env, jax.random.key(0)).q_tot)
