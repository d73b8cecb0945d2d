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
import json
import os
import queue
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

from epymarl_side_by_side import ensure_epymarl, netmarl_env, run_logged  # noqa: E402
from side_by_side_lib import (Budget, RunResult, Setting, epymarl_args, native_env,  # noqa: E402
                              netmarl_overrides, package_env, parse_epymarl, parse_netmarl)

ROOT = Path(__file__).resolve().parents[1]
SETTING = Setting("vdn", "mlp")
KINDS = ("epymarl", "host", "native")


def run_one(kind: str, seed: int, path: Path, budget: Budget, args) -> list[dict]:
    """Runs one job in its (fresh) directory `path`; returns its RunResults (one per seed) as JSON."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    if kind == "epymarl":
        shutil.copytree(args.epymarl, path / "epymarl", ignore=shutil.ignore_patterns("results"))
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        cmd = [str(args.venv / "bin" / "python"), "src/main.py",
               *epymarl_args(SETTING, budget, seed, args.task)]
        run_logged(cmd, path / "epymarl", env, args.core, path / "console.log")
        shutil.rmtree(path / "epymarl" / "src")  # keep only its results
        return [parse_epymarl(path, budget.interval).to_json()]
    seeds = args.seeds if kind == "host-vmapped" else 1
    env = native_env(args.task) if kind == "native" else package_env(args.task)
    overrides = netmarl_overrides(SETTING, budget, seed, str(path / "run"), seeds=seeds, env=env)
    run_logged([sys.executable, "-m", "netmarl.cli", "train", *overrides], ROOT, netmarl_env(),
               args.core, path / "console.log")
    return [r.to_json() for r in parse_netmarl(path, budget.interval)]


def run_all(jobs: list[tuple[str, int, Path]], budget: Budget, args) -> None:
    """The unfinished jobs, one per core at a time; a failed job is reported and left unfinished."""
    todo = [j for j in jobs if not (j[2] / "result.json").exists()]
    print(f"{len(jobs) - len(todo)} of {len(jobs)} runs already done; running {len(todo)}", flush=True)
    cores: queue.Queue = queue.Queue()
    for core in args.cores:
        cores.put(core)

    def execute(job) -> None:
        kind, seed, path = job
        core = cores.get()
        try:
            tic, load = time.perf_counter(), os.getloadavg()[0]
            runs = run_one(kind, seed, path, budget, argparse.Namespace(**{**vars(args), "core": core}))
            (path / "result.json").write_text(json.dumps({"runs": runs, "load_at_start": load}))
            print(f"done {path.name} in {time.perf_counter() - tic:.0f} s (load {load:.1f})", flush=True)
        except Exception as error:  # noqa: BLE001 - one failed run must not stop the others
            print(f"FAILED {path.name}: {error}", flush=True)
        finally:
            cores.put(core)

    with ThreadPoolExecutor(len(args.cores)) as pool:
        list(pool.map(execute, todo))


def plan(args) -> list[tuple[str, int, Path]]:
    jobs = [(kind, seed, args.runs / f"{kind}-s{seed}") for seed in range(args.seeds) for kind in KINDS]
    return jobs + [("host-vmapped", 0, args.runs / "host-vmapped")]


def load(jobs) -> dict[str, list[RunResult]]:
    """kind -> the finished runs' results (one per seed)."""
    out: dict[str, list[RunResult]] = {}
    for kind, _, path in jobs:
        if (path / "result.json").exists():
            runs = json.loads((path / "result.json").read_text())["runs"]
            out.setdefault(kind, []).extend(RunResult.from_json(r) for r in runs)
    return out


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
        run_all(jobs, budget, args)
    print(f"wrote {write_report(load(jobs), budget, args)}")


if __name__ == "__main__":
    main()
