"""Determinism, seeds (vmap = loop), kill-and-resume equivalence, run directory, bad input."""
import dataclasses
import json

import jax
import numpy as np
import pytest

from netmarl.config import AlgoConfig, EnvConfig, PolicyConfig, RunConfig, TrainConfig
from netmarl.train.evaluate import evaluate_run, load_run
from netmarl.train.loop import resume, train

TINY_ENV = EnvConfig("lbf:Foraging-5x5-2p-1f", {"max_steps": 10})
TINY_ALGO = AlgoConfig(agent="gru", hidden=16, buffer_size=64, batch_size=8, eps_anneal_steps=1000,
                       target_update_interval=10)
# MAPPO-like: GRU actor, state critic, PPO with 2 epochs of 2 minibatches (shuffled), 4 envs
TINY_POLICY = AlgoConfig(name="mappo", family="policy", agent="gru", hidden=16, reward_shares="team",
                         target_update_interval=1, target_tau=0.01, standardise_rewards=True,
                         policy=PolicyConfig(critic_input="state", policy_loss="ppo", epochs=2,
                                             minibatches=2, value_norm=True))


def tiny(tmp_path, run_id, algo=TINY_ALGO, **run) -> TrainConfig:
    defaults = dict(total_steps=1500, eval_interval=500, eval_episodes=4, seeds=2, dir=str(tmp_path),
                    id=run_id, progress=False, num_envs=1 if algo.family == "value" else 4)
    return TrainConfig(algo=algo, env=TINY_ENV, run=RunConfig(**{**defaults, **run}))


def _params(path):
    _, carry, _ = load_run(str(path))
    return jax.tree.leaves(carry.learner.params)


def _same_metrics(a, b):
    # elapsed_s is wall-clock time, the one field that may differ between identical runs
    strip = lambda records: [{k: v for k, v in r.items() if k != "elapsed_s"} for r in records]  # noqa: E731
    assert strip(a) == strip(b)


def test_same_seed_same_metrics_and_run_directory(tmp_path):
    a = train(tiny(tmp_path, "a"))
    b = train(tiny(tmp_path, "b"))
    _same_metrics(a.metrics(), b.metrics())
    assert len(a.metrics()) == 2 * 4  # evaluation points 0..3, two seeds
    for name in ("config.json", "metrics.jsonl", "summary.json", "marl_eval.json"):
        assert (a.path / name).is_file(), name
    export = json.loads((a.path / "marl_eval.json").read_text())
    runs = export["lbf"]["lbf:Foraging-5x5-2p-1f"]["vdn"]
    assert set(runs) == {"seed_0", "seed_1"} and len(runs["seed_0"]["step_3"]["return"]) == 4
    assert sorted(c.name for c in (a.path / "checkpoints").iterdir()) == ["2", "3"]  # the last two


def test_vmapped_seeds_equal_looped_seeds(tmp_path):
    """The 2-seed canary: vmapped seeds run, and equal a plain loop over seeds."""
    vmapped = train(tiny(tmp_path, "v", seed_mode="vmap"))
    looped = train(tiny(tmp_path, "l", seed_mode="loop"))
    for x, y in zip(vmapped.metrics(), looped.metrics()):
        assert x["env_steps"] == y["env_steps"] and x["episodes"] == y["episodes"]
        np.testing.assert_allclose(x["eval_returns"], y["eval_returns"], atol=1e-6)
        np.testing.assert_allclose(x.get("loss", 0), y.get("loss", 0), rtol=1e-4, atol=1e-6)
    for x, y in zip(_params(vmapped.path), _params(looped.path)):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


# the policy family's twin (20-25 s of compiles) is `slow`; the value run and the SIGKILL fuzz of
# tests/test_robustness.py keep kill-and-resume in the default suite (issue 20's budget)
@pytest.mark.parametrize("algo", [TINY_ALGO, pytest.param(TINY_POLICY, marks=pytest.mark.slow)],
                         ids=["value", "policy"])
def test_killed_and_resumed_run_equals_uninterrupted(tmp_path, algo):
    whole = train(tiny(tmp_path, "whole", algo))
    first = train(tiny(tmp_path, "part", algo), stop_after=1)  # as if killed after evaluation point 1
    assert not (first.path / "summary.json").exists()
    with open(first.path / "metrics.jsonl", "a") as f:  # a line written after the last checkpoint
        f.write(json.dumps({"point": 2, "seed": 0}) + "\n")
    resumed = resume(str(first.path))
    _same_metrics(whole.metrics(), resumed.metrics())
    for x, y in zip(_params(whole.path), _params(resumed.path)):
        np.testing.assert_array_equal(x, y)


def test_eval_and_render(tmp_path):
    run = train(tiny(tmp_path, "e", total_steps=500))  # the file's shapes: no new compile
    result = evaluate_run(str(run.path), episodes=8, render=str(tmp_path / "ep.gif"), seed_index=1)
    assert len(result["per_seed"]) == 2 and result["episodes"] == 8
    assert (tmp_path / "ep.gif").stat().st_size > 0 and result["render"]["frames"] >= 2


def test_bad_input_is_named(tmp_path):
    with pytest.raises(ValueError, match="unknown team_td 'vdnn'; accepted: iql, vdn"):
        train(dataclasses.replace(tiny(tmp_path, "b1"), algo=AlgoConfig(team_td="vdnn")))
    run = train(tiny(tmp_path, "b2", total_steps=500))  # the file's shapes: no new compile
    with pytest.raises(FileExistsError, match="already exists"):
        train(tiny(tmp_path, "b2", total_steps=500))
    for f in (run.path / "checkpoints").rglob("*"):
        if f.is_file() and "meta" not in f.name and f.stat().st_size > 0:
            f.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt or does not match"):
        load_run(str(run.path))
    with pytest.raises(FileNotFoundError, match="not a netmarl run directory"):
        resume(str(tmp_path / "nowhere"))
