"""Calibrates the default suite's learning checks: each check's statistic over many seeds, for the
correct learner and for broken ones, so that thresholds are set where a correct learner fails with
probability < 1/1000 and a broken one always fails (docs/testing.md).

    python benchmarks/calibrate_tests.py [--seeds 100]     # -> docs/results/test_calibration.md

A check's margin is reported as z = (threshold - mean) / sd over seeds (one-sided normal tail:
z > 3.1 is P < 1e-3), next to the worst seed; broken variants: the same training with a learning
rate of 1e-30 (gradients that do nothing) and with the wrong team TD.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from netmarl.cli import compose  # noqa: E402
from netmarl.config import MixerConfig  # noqa: E402
from netmarl.results.qtables import q_tables  # noqa: E402
from netmarl.train.runner import Trainer  # noqa: E402
from tests.helpers import joint_q_table, matrix_config  # noqa: E402
from tests.test_matrix_learning import CLIMBING, LINEAR, MONOTONIC, least_squares_sum  # noqa: E402
from tests.test_policy_learning import LBF_STEPS  # noqa: E402



VDN_MONOTONIC = least_squares_sum(MONOTONIC)  # [[-2.5, 2.5], [2.5, 7.5]]
VDN_CLIMBING = least_squares_sum(CLIMBING)
CYCLE = "cycle-climbing-3"


class Check(NamedTuple):
    test: str  # the test that uses it
    game: str
    team_td: str
    algo: dict  # other algorithm settings of the test
    statistic: Callable  # (trainer, carry of one seed) -> float (an error; pass: below threshold)
    threshold: float
    wrong_team_td: str  # a broken credit assignment the check must catch


def _table_error(target):
    return lambda trainer, carry: float(np.abs(joint_q_table(trainer, carry) - target).max())


def _greedy_miss(joint):
    """0 if the greedy joint action of Q_tot is `joint`, else 1."""
    def statistic(trainer, carry):
        _, ts = trainer.env.reset(jax.random.key(0))
        actions, _ = trainer.learner.act(carry.learner.params, ts.obs, trainer.learner.initial_hidden(),
                                         ts.avail, jnp.float32(0.0), jax.random.key(1))
        return float(tuple(int(a) for a in actions) != joint)
    return statistic


def _qtran_greedy_miss(trainer, carry):
    """0 if the utilities' greedy joint action (QTRAN's decentralised choice) is (A, A), else 1."""
    tables = q_tables(trainer.learner, carry.learner, trainer.env, jax.random.key(0))
    return float(tuple(int(a) for a in np.asarray(tables.greedy)) != (0, 0))


def _game_table_error(trainer, carry):
    """max |Q_tot − R| over the joint actions of a common-payoff game with a summed table (PairVDN)."""
    return float(np.abs(joint_q_table(trainer, carry) - np.asarray(trainer.env.table).sum(0)).max())


def _q11_error(trainer, carry):
    return float(abs(joint_q_table(trainer, carry)[1, 1] - MONOTONIC[1, 1]))


QTRAN = {"steps": 2000, "shared_params": True, "batch_size": 64, "mixer": MixerConfig(embed=64)}

CHECKS = {
    "vdn fits linear (max |Q_tot - R|)": Check(
        "test_matrix_learning::test_vdn_fits_the_linear_game_exactly", "linear", "vdn", {},
        _table_error(LINEAR), 0.2, "iql"),
    "qmix fits monotonic (|Q_tot(B,B) - 10|)": Check(
        "test_matrix_learning::test_qmix_recovers_monotonic_game_where_vdn_cannot", "monotonic", "qmix",
        {}, _q11_error, 0.5, "vdn"),
    "vdn on monotonic = least squares (max |Q_tot - LS|)": Check(
        "test_matrix_learning::test_qmix_recovers_monotonic_game_where_vdn_cannot", "monotonic", "vdn",
        {}, _table_error(VDN_MONOTONIC), 1.0, "iql"),
    "vdn on climbing: greedy (C,C) (miss)": Check(
        "test_matrix_learning::test_vdn_misses_the_climbing_optimum", "climbing", "vdn", {},
        _greedy_miss((2, 2)), 0.5, "iql"),
    "vdn on climbing = least squares (max |Q_tot - LS|)": Check(
        "test_matrix_learning::test_vdn_misses_the_climbing_optimum", "climbing", "vdn", {},
        _table_error(VDN_CLIMBING), 4.0, "iql"),
    "pairvdn fits cycle-climbing-3 (max |Q_tot - R|)": Check(
        "test_pairvdn::test_pairvdn_finds_the_optimum_of_a_pairwise_cycle_game_where_vdn_does_not",
        CYCLE, "pairvdn", {"steps": 4000, "shared_params": True}, _game_table_error, 1.0, "vdn"),
    "pairvdn on cycle-climbing-3: greedy (A,A,A) (miss)": Check(
        "test_pairvdn::test_pairvdn_finds_the_optimum_of_a_pairwise_cycle_game_where_vdn_does_not",
        "cycle-climbing-3", "pairvdn", {"steps": 4000, "shared_params": True}, _greedy_miss((0, 0, 0)),
        0.5, "vdn"),
    "qtran fits climbing (max |Q_jt - R|)": Check(
        "test_matrix_learning::test_qtran_recovers_the_climbing_optimum_where_vdn_and_qmix_cannot",
        "climbing", "qtran", QTRAN, _table_error(CLIMBING), 0.5, "vdn"),
    "qtran on climbing: greedy (A,A) (miss)": Check(
        "test_matrix_learning::test_qtran_recovers_the_climbing_optimum_where_vdn_and_qmix_cannot",
        "climbing", "qtran", QTRAN, _qtran_greedy_miss, 0.5, "vdn"),
}


def per_seed(check: Check, seeds: int, **change) -> np.ndarray:
    """The check's statistic for seeds 0 .. seeds-1 (vmapped), with `change` to the algorithm."""
    algo = {**check.algo, **change}
    team_td = algo.pop("team_td", check.team_td)
    if team_td not in ("pairvdn", "qtran"):
        algo.pop("shared_params", None)
    if team_td not in ("qmix", "qplex", "qtran"):
        algo.pop("mixer", None)
    config = matrix_config(check.game, team_td, **algo)
    config = dataclasses.replace(config, run=dataclasses.replace(config.run, seeds=seeds))
    trainer = Trainer(config)
    carry, _ = trainer.run_chunk(trainer.init_seeds(), jnp.int32(config.run.total_steps))
    return np.array([check.statistic(trainer, jax.tree.map(lambda x, s=s: x[s], carry))
                     for s in range(seeds)])


def row(name: str, check: Check, seeds: int) -> str:
    good = per_seed(check, seeds)
    frozen = per_seed(check, min(seeds, 20), lr=1e-30)
    wrong = per_seed(check, min(seeds, 20), team_td=check.wrong_team_td)
    z = (check.threshold - good.mean()) / good.std() if good.std() > 1e-6 else None
    z_text = "— (no spread)" if z is None else f"{z:.1f}"
    return (f"| {name} | < {check.threshold:g} | {good.mean():.3f} ± {good.std():.3f} | {good.max():.3f} | "
            f"{(good < check.threshold).mean():.0%} | {z_text} | {frozen.min():.3f} "
            f"({(frozen < check.threshold).mean():.0%}) | {check.wrong_team_td}: {wrong.min():.3f} "
            f"({(wrong < check.threshold).mean():.0%}) | `{check.test}` |")


PPO_THRESHOLD = 0.9  # tests/test_policy_learning.py::test_ppo_solves_lbf_tiny


def ppo_training_return(algo: str, seeds: int, *overrides: str) -> np.ndarray:
    """test_ppo_solves_lbf_tiny's statistic for seeds 0 .. seeds-1 (vmapped): the training return
    (sum / episodes) over the last 4k of LBF_STEPS env steps on lbf-tiny."""
    trainer = Trainer(compose([f"algo={algo}", "env=lbf-tiny", f"seeds={seeds}", "algo.policy.entropy_coef=0.001",
                               "algo.target_update_interval=20", f"steps={LBF_STEPS}", "run.progress=false",
                               *overrides]))
    carry, _ = trainer.run_chunk(trainer.init_seeds(), jnp.int32(LBF_STEPS - 4000))
    _, stats = trainer.run_chunk(carry, jnp.int32(LBF_STEPS))
    return np.asarray(stats.return_sum / stats.episodes)


def ppo_row(algo: str, seeds: int) -> str:
    good = ppo_training_return(algo, seeds)
    frozen = ppo_training_return(algo, min(seeds, 20), "algo.lr=1e-30")
    z = (good.mean() - PPO_THRESHOLD) / max(good.std(), 1e-6)
    return (f"| {algo} on lbf-tiny (training return, last 4k of {LBF_STEPS // 1000}k steps) | >= {PPO_THRESHOLD:g} "
            f"| {good.mean():.3f} ± {good.std():.3f} | {good.min():.3f} | {(good >= PPO_THRESHOLD).mean():.0%} "
            f"| {z:.1f} | {frozen.max():.3f} ({(frozen >= PPO_THRESHOLD).mean():.0%}) | — "
            "| `test_policy_learning::test_ppo_solves_lbf_tiny` |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--out", default="docs/results/test_calibration.md")
    parser.add_argument("--only", default="", help="only the checks whose name contains this (prints, "
                        "does not write --out)")
    args = parser.parse_args()
    tic = time.perf_counter()
    rows = [row(name, check, args.seeds) for name, check in CHECKS.items() if args.only in name]
    rows += [ppo_row(algo, args.seeds) for algo in ("ippo_ns", "mappo_ns") if args.only in algo]
    if args.only:
        print("\n".join(rows))
        return
    head = ("| check (statistic) | pass if | correct: mean ± sd | worst seed | correct seeds passing | "
            "z | lr 1e-30: best (passing) | wrong team TD: best (passing) | test |\n"
            "|---|---|---|---|---|---|---|---|---|")
    text = (f"# Calibration of the default suite's learning checks\n\n"
            f"`python benchmarks/calibrate_tests.py --seeds {args.seeds}` ({time.strftime('%Y-%m-%d')}, "
            f"{time.perf_counter() - tic:.0f} s). Correct learner: {args.seeds} seeds (vmapped); broken "
            f"learners: {min(args.seeds, 20)} seeds each. z = (threshold − mean) / sd: the one-sided "
            "normal tail is < 1e-3 for z > 3.1. For the 0/1 statistics (greedy joint action missed) z "
            "is not meaningful: the worst seed and the passing fraction say it. A test is the "
            "conjunction of its rows: where a broken learner passes a greedy-action row (a frozen "
            "learner picks the right joint action by chance; IQL shares VDN's row means), the same "
            "test's fit row fails it on every seed. For the PPO rows higher is better: z = (mean − "
            "threshold) / sd, worst seed = the lowest, and the broken column gives the best frozen seed.\n\n" + head + "\n"
            + "\n".join(rows) + "\n")
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
