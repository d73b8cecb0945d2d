"""Evaluating and rendering a finished (or running) run from its directory."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from netmarl.config import TrainConfig
from netmarl.envs.adapters import is_host
from netmarl.envs.render import save_gif
from netmarl.results.rundir import RunDir
from netmarl.train.runner import Carry, Trainer, make_trainer


FINAL_POINT = 10**6  # the evaluation-key index of final evaluations (no training run reaches it)


def eval_config(config: TrainConfig, episodes: int, env_options: dict | None = None) -> TrainConfig:
    """`config` set up for evaluation: `episodes` episodes, no progress bar, and `env_options`
    overriding the evaluation environment's options (e.g. {"max_timestep": 1000})."""
    env = config.env
    if env_options:
        env = dataclasses.replace(env, eval_options={**env.eval_options, **env_options})
    return dataclasses.replace(config, env=env, run=dataclasses.replace(
        config.run, progress=False, eval_episodes=episodes))


def load_run(path: str, eval_episodes: int | None = None,
             env_options: dict | None = None) -> tuple[Trainer, Carry, dict]:
    """The trainer and the latest checkpointed carry of a run directory."""
    run = RunDir.open(path)
    config = run.read_config()
    trainer = make_trainer(eval_config(config, eval_episodes or config.run.eval_episodes, env_options))
    carry, meta = run.load_checkpoint(trainer.init_seeds())
    return trainer, carry, meta


def summarise(returns: np.ndarray, outcomes: dict | None = None) -> dict:
    """Team returns [seeds, episodes] -> mean, and per seed the mean, population std and returns;
    each episode outcome {name: [seeds, episodes]} (e.g. SMAX's "won") adds its rate overall
    (`mean_<name>`) and per seed (`<name>`)."""
    outcomes = {k: np.asarray(v) for k, v in (outcomes or {}).items()}
    per_seed = [{"mean": float(r.mean()), "std": float(r.std()),
                 **{k: float(v[i].mean()) for k, v in outcomes.items()}, "returns": r.tolist()}
                for i, r in enumerate(returns)]
    return {"mean_return": float(returns.mean()),
            **{f"mean_{k}": float(v.mean()) for k, v in outcomes.items()}, "per_seed": per_seed}


def random_policy_returns(config: TrainConfig, episodes: int, env_options: dict | None = None) -> dict:
    """The uniformly random policy's team returns (ε = 1 over available actions) for the seeds of
    `config`, on its evaluation environment with `env_options`: the "Random" row of a table."""
    trainer = make_trainer(eval_config(config, episodes, env_options))
    returns = trainer.evaluate(trainer.init_seeds(), jnp.int32(FINAL_POINT), epsilon=1.0)
    return {"episodes": episodes, "env_options": env_options or {}, **summarise(np.asarray(returns))}


def evaluate_run(path: str, episodes: int, render: str | None = None, seed_index: int = 0,
                 env_options: dict | None = None) -> dict:
    """Greedy team returns of every seed (and the rate of each episode outcome, e.g. SMAX's "won");
    optionally a GIF of one greedy episode."""
    if episodes < 1:
        raise ValueError(f"--episodes {episodes} must be positive")
    if render and is_host(RunDir.open(path).read_config().env.name):
        raise ValueError("--render needs a netmarl JAX environment; this run trained on a host-stepped "
                         "Gymnasium / PettingZoo env (render it with that library's own tools)")
    trainer, carry, meta = load_run(path, episodes, env_options)
    returns, outcomes = trainer.evaluate_outcomes(carry, jnp.int32(FINAL_POINT))
    returns = np.asarray(returns)
    result = {"run": path, "checkpoint_point": meta["point"], "episodes": episodes,
              "env_options": env_options or {}, **summarise(returns, outcomes)}
    if render:
        seeds = returns.shape[0]
        if not 0 <= seed_index < seeds:
            raise ValueError(f"--seed-index {seed_index} out of range; the run has seeds 0..{seeds - 1}")
        params = jax.tree.map(lambda x: x[seed_index], carry.learner.params)
        frames, ret = render_episode(trainer, params, jax.random.PRNGKey(seed_index))
        save_gif(frames, render)
        result["render"] = {"path": render, "frames": len(frames), "return": ret}
    return result


def render_episode(trainer: Trainer, params, key) -> tuple[list[np.ndarray], float]:
    """Plays one greedy episode on the host, rendering every state: (frames, team return)."""
    env, learner = trainer.eval_env, trainer.learner
    act = jax.jit(lambda p, obs, h, avail, k: learner.act(p, obs, h, avail, jnp.float32(0.0), k))
    reset, step = jax.jit(env.reset), jax.jit(env.step)  # one compile each, not one per primitive
    key, k_reset = jax.random.split(key)
    state, ts = reset(k_reset)
    h, frames, total = learner.initial_hidden(), [env.render(state)], 0.0
    for _ in range(env.max_steps):
        key, k_act, k_step = jax.random.split(key, 3)
        actions, h = act(params, ts.obs, h, ts.avail, k_act)
        state, ts = step(k_step, state, actions)
        frames.append(env.render(state))
        total += float(ts.team_reward)
        if bool(ts.done):
            break
    return frames, total
