"""The lbforaging package trained through netmarl's host-stepped path, beside netmarl's own LBF and
EPyMARL on the same package env: learning curves and env-steps/s, measured in one run (issue 24).

    make host-side-by-side EPYMARL=/path/to/epymarl
    python benchmarks/host_env_side_by_side.py --epymarl ../shared/reference/epymarl [--seeds 5]
        [--steps 300000] [--interval 25000] [--episodes 32] [--task Foraging-8x8-2p-2f-coop]

Every run uses EPyMARL's `vdn` settings with MLP agents (benchmarks/side_by_side_lib.py: one env,
one update per episode, the same seeds and env-step budget), one process per run pinned to one core,
two runs at a time, the systems interleaved so that all run under the same load:
    epymarl  EPyMARL's vdn on lbforaging:<task>-v3 (the package env, stepped by EPyMARL)
    host     netmarl on the same package env, host-stepped: env=gym:lbforaging:<task>-v3
    native   netmarl on its own LBF: env=lbf:<task> (the package's v3 rules, jitted)
and one more netmarl run, `host-vmapped`: all seeds vmapped in one process on one core (a user with
many seeds). Writes docs/results/host_env_side_by_side.{md,json,png}: the mean greedy return with its
95 % bootstrap CI over seeds at each evaluation point, the verdict (the host path's final and maximum
returns inside or above the native env's CI), and env-steps/s over the whole run (start-up,
compilation, evaluation included) and in steady state, with the ratios to EPyMARL.

Resumable: a run with a result.json under --runs is not run again.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

from epymarl_side_by_side import (Job, ensure_epymarl, netmarl_env, run_all, run_epymarl,  # noqa: E402
                                  run_logged)
from side_by_side_lib import (Budget, RunResult, Setting, epymarl_args, native_env,  # noqa: E402
                              netmarl_overrides, package_env, parse_netmarl)
from side_by_side_report import load as load_results, runs_of  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SETTING = Setting("vdn", "mlp")
KINDS = ("epymarl", "host", "native")


def run_one(job: Job, budget: Budget, args, core: int) -> dict:
    """Runs one job in its (fresh) directory; returns {"runs": its RunResults (one per seed)}."""
    shutil.rmtree(job.path, ignore_errors=True)
    job.path.mkdir(parents=True)
    if job.kind == "epymarl":
        return run_epymarl(job.path, epymarl_args(SETTING, budget, job.seed, args.task), budget.interval,
                           args, core)
    seeds = args.seeds if job.kind == "host-vmapped" else 1
    env = native_env(args.task) if job.kind == "native" else package_env(args.task)
    overrides = netmarl_overrides(SETTING, budget, job.seed, str(job.path / "run"), seeds=seeds, env=env)
    run_logged([sys.executable, "-m", "netmarl.cli", "train", *overrides], ROOT, netmarl_env(), core,
               job.path / "console.log")
    return {"runs": [r.to_json() for r in parse_netmarl(job.path, budget.interval)]}


def plan(args) -> list[Job]:
    """Every run, the systems interleaved seed by seed, then the vmapped-seeds run (one core)."""
    jobs = [Job(kind, SETTING, seed, args.runs / f"{kind}-s{seed}") for seed in range(args.seeds)
            for kind in KINDS]
    return jobs + [Job("host-vmapped", SETTING, 0, args.runs / "host-vmapped")]


def load(jobs: list[Job]) -> dict[str, list[RunResult]]:
    """kind -> the finished runs' results (one per seed)."""
    done = load_results(jobs)
    return {kind: runs_of(done, kind, SETTING) for kind in {j.kind for j in jobs}
            if runs_of(done, kind, SETTING)}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epymarl", help="EPyMARL's folder (with src/main.py)")
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv-epymarl", help="EPyMARL's venv")
    parser.add_argument("--task", default="Foraging-8x8-2p-2f-coop", help="lbforaging task, no -v3")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=300_000, help="env steps per run")
    parser.add_argument("--interval", type=int, default=25_000, help="env steps between evaluations")
    parser.add_argument("--episodes", type=int, default=32, help="greedy episodes per evaluation")
    parser.add_argument("--cores", default="0,1", help="CPU cores to pin runs to")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "host_env_side_by_side")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "host_env_side_by_side.md")
    parser.add_argument("--report-only", action="store_true", help="write the report from finished runs")
    args = parser.parse_args(argv)
    args.cores = [int(c) for c in args.cores.split(",")]
    if args.seeds < 2:
        parser.error(f"--seeds {args.seeds}: at least 2 are needed for a confidence interval")
    return args


def main(argv=None) -> None:
    from host_env_report import write_report

    args = parse_args(argv)
    budget = Budget(args.steps, args.interval, args.episodes)
    jobs = plan(args)
    if not args.report_only:
        ensure_epymarl(args)
        run_all(jobs, budget, args, runner=run_one)
    print(f"wrote {write_report(load(jobs), budget, args)}")


if __name__ == "__main__":
    main()
