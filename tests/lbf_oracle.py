"""Drives the real lbforaging 2.0.0 package from netmarl LBF states (the conformance oracle)."""
from __future__ import annotations

import numpy as np
from lbforaging.foraging.environment import ForagingEnv

from netmarl.envs.lbf import LBF


def package_env(env: LBF) -> ForagingEnv:
    """The package's env with the same task parameters as `env`."""
    penv = ForagingEnv(
        players=env.num_players, min_player_level=env.min_player_level,
        max_player_level=env.max_player_level, min_food_level=env.min_food_level,
        max_food_level=env.max_food_level, field_size=(env.rows, env.cols),
        max_num_food=env.num_food, sight=env.sight, max_episode_steps=env.max_steps,
        force_coop=env.force_coop, normalize_reward=env.normalize_reward, penalty=env.penalty)
    penv.reset(seed=0)
    return penv


def load_state(penv: ForagingEnv, env: LBF, state) -> None:
    """Overwrites the package env's state with a netmarl state (specs/lbf.md, 'Conformance')."""
    field = np.zeros((env.rows, env.cols), np.int32)
    np.add.at(field, tuple(np.asarray(state.food_pos).T), np.asarray(state.food_level))
    penv.field = field
    for player, (r, c), level in zip(penv.players, np.asarray(state.pos), np.asarray(state.level)):
        player.position = (int(r), int(c))
        player.level = int(level)
        player.reward = 0
    penv.current_step = int(state.step)
    penv._food_spawned = float(state.food_spawned)
    penv._game_over = False
    penv._gen_valid_moves()


def positions(penv: ForagingEnv) -> np.ndarray:
    return np.array([p.position for p in penv.players], np.int32)
