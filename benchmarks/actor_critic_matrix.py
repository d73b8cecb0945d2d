"""Equilibrium selection in the lecture's matrix games: centralised A2C against Pareto actor-critic.

    python benchmarks/actor_critic_matrix.py [--seeds 10] [--steps 20000] [--dir runs/actor_critic_matrix]

Trains `maa2c` (A2C with a centralised state-value critic) and `pac` (Pareto-AC) on the one-step
climbing and stag-hunt games (conf/env/matrix-*.yaml) through the ordinary runner (`netmarl train`,
seeds vmapped), reads every seed's final greedy joint action from its checkpoint, and writes
docs/results/actor_critic_matrix.md with the learning curves (docs/results/actor_critic_matrix.png).
Runs that exist are resumed (finished ones are only read).
"""
from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path

import jax
import numpy as np

from netmarl.cli import compose
from netmarl.envs import make
from netmarl.results.table import load_curves, plot
from netmarl.train.evaluate import load_run
from netmarl.train.loop import resume, train

GAMES = {"climbing": "ABC", "stag-hunt": "AB"}
ALGOS = ["maa2c", "pac"]
# The lecture's setting: each agent learns from its own payoff (matrix games share R equally; the
# stag hunt pays each player its own entry), Pareto-AC's entropy annealed over 80 % of the budget
# (EPyMARL: 80 % of t_max).
# Seeds run one after another (run.seed_mode=loop): 10 vmapped seeds of these tiny games hung in a
# futex wait inside XLA on this machine's jax (DESIGN.md's known vmapped-seed deadlock).
SHARED = ["algo.reward_shares=env", "run.seed_mode=loop"]
# A2C's entropy bonus 0.1 (EPyMARL's maa2c: 0.01, with which 10 seeds ended at (C, C) x 5, (B, B) x 4,
# (C, B) x 1: its policies turn deterministic before they climb from (C, C) to (B, B)).
MAA2C_ENTROPY = ["algo.policy.entropy_coef=0.1"]


def overrides(game: str, algo: str, seeds: int, steps: int, root: Path) -> list[str]:
    extra = ([f"algo.policy.entropy_anneal_steps={int(0.8 * steps)}"] if algo == "pac" else
             MAA2C_ENTROPY)
    return [f"algo={algo}", f"env=matrix-{game}", f"seeds={seeds}", f"steps={steps}",
            f"run.eval_interval={steps // 20}", "run.eval_episodes=1", f"run.dir={root}",
            f"id={game}_{algo}", "run.progress=false", *SHARED, *extra]


def greedy_joint_actions(path: Path) -> list[tuple[int, ...]]:
    """Every seed's greedy joint action at the start of the game (its final checkpoint)."""
    trainer, carry, _ = load_run(str(path))
    _, ts = trainer.env.reset(jax.random.key(0))
    act = jax.vmap(lambda p: trainer.learner.act(p, ts.obs, trainer.learner.initial_hidden(), ts.avail,
                                                 0.0, jax.random.key(0))[0])
    return [tuple(int(a) for a in row) for row in np.asarray(act(carry.learner.params))]


def run_cell(game: str, algo: str, seeds: int, steps: int, root: Path) -> Path:
    path = root / f"{game}_{algo}"
    if (path / "summary.json").exists():
        return path
    if path.exists():
        return resume(str(path)).path
    return train(compose(overrides(game, algo, seeds, steps, root))).path


def report(root: Path, seeds: int, steps: int, out: Path, wall: float) -> str:
    lines = ["# Equilibrium selection: centralised A2C against Pareto actor-critic", "",
             "The lecture (`seeds/marl_book_lecture_deep_marl_part1.txt`, \"Pareto Actor-Critic for",
             "Equilibrium Selection\"): A2C with a centralised state-value critic converges to the",
             "Pareto-dominated equilibrium (B, B) = 7 of the climbing game; Pareto-AC, which assumes the",
             "others play the joint action best for it, a⁺_−i = argmax_{a_−i} Q(h_i, z, ⟨a_i, a_−i⟩), converges",
             "to the Pareto-optimal (A, A) = 11. The stag hunt's Pareto-optimal equilibrium is (A, A) = 4",
             "per player (the risk-dominant one (B, B) = 2).", "",
             f"Command: `python benchmarks/actor_critic_matrix.py --seeds {seeds} --steps {steps}` "
             f"({steps:,} env steps per seed, {seeds} seeds per cell, one after another; {wall:.0f} s of training "
             "on this shared machine, re-runs only read the runs). Algorithms: `algo=maa2c` and `algo=pac` "
             f"with EPyMARL's defaults and `{' '.join(SHARED)}` (each agent learns from its own payoff); "
             "Pareto-AC's entropy bonus anneals from 20 to 0.01 over 80 % of the budget; MAA2C's entropy "
             "coefficient is 0.1 (with EPyMARL's 0.01, 10 seeds ended at (C, C) × 5, (B, B) × 4, (C, B) × 1).",
             "",
             "| game | algorithm | final greedy joint actions over seeds | payoff per agent | seeds at the "
             "Pareto optimum (A, A) |", "|---|---|---|---|---|"]
    for game, names in GAMES.items():
        table = make(f"matrix:{game}").table  # [N, A, A]
        for algo in ALGOS:
            joints = greedy_joint_actions(root / f"{game}_{algo}")
            counts = collections.Counter("(" + ", ".join(names[a] for a in j) + ")" for j in joints)
            payoff = np.mean([table[0][j] for j in joints]) * (2 if game == "climbing" else 1)
            listed = ", ".join(f"{k} × {v}" for k, v in counts.most_common())
            optimum = sum(j == (0, 0) for j in joints)
            lines.append(f"| {game} | {algo} | {listed} | {payoff:.2f} | {optimum} / {len(joints)} |")
    lines += ["", "Payoff per agent: the climbing game is common-payoff (the table's entry R, e.g. 11; the",
              "environment shares R / 2 to each agent, the greedy return is R); the stag hunt pays each",
              "player its own entry (the greedy return is the sum of the two).", "",
              f"![learning curves]({out.with_suffix('.png').name})", "",
              "Learning curves: greedy team return (mean over seeds, 95 % bootstrap band) against env steps,",
              "as in the lecture's figure."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--dir", default="runs/actor_critic_matrix")
    parser.add_argument("--out", default="docs/results/actor_critic_matrix.md")
    args = parser.parse_args()
    root, out = Path(args.dir), Path(args.out)
    tic = time.perf_counter()
    paths = [run_cell(g, a, args.seeds, args.steps, root) for g in GAMES for a in ALGOS]
    wall = time.perf_counter() - tic
    plot(load_curves(paths), out.with_suffix(".png"))
    out.write_text(report(root, args.seeds, args.steps, out, wall))
    print(f"written: {out}, {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
