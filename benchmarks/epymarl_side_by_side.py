"""EPyMARL and netmarl side by side: learning curves and throughput, measured in one run.

    make side-by-side EPYMARL=/path/to/epymarl [SIDE_BY_SIDE_ARGS=--quick]
    python benchmarks/epymarl_side_by_side.py --epymarl /path/to/epymarl [--quick] [--seeds 5] ...

Runs EPyMARL (its `vdn`, `vdn_ns` and `iql` configs by default; `qmix` and the actor-critic configs
`ia2c`, `maa2c`, `coma`, `ippo`, `mappo`, `pac_ns` with --algos; MLP and GRU agents) and netmarl at the
same settings (benchmarks/side_by_side_lib.py) on lbforaging's Foraging-10x10-3p-3f-v3, same seeds,
same env-step budget, one process per run pinned to one core (two runs at a time on two cores, the
two systems interleaved so that both run under the same load); then netmarl's configuration for a
user with many seeds (one process per core, each vmapping several seeds), every setting's floor
(its matrix products over this core's matmul speed) and, for the value family, a profile of where
a netmarl run's time goes. Writes docs/results/epymarl_side_by_side.{md,csv,json} and a plot
(benchmarks/side_by_side_report.py).

Resumable: every run has its directory under --runs; a run with a result.json is not run again,
an unfinished one is started afresh. `--archive DIR` also keeps each finished run's result.json in
DIR/<run>/ (small; commit it) and takes finished runs from there, so a benchmark spread over machines
or sessions resumes where the archive is, and its report regenerates from it with --report-only.
`--quick`: 2 seeds x 100k env steps, MLP agents only.
Hand-written notes on a report go in `<report>.notes.md` beside it (e.g.
docs/results/epymarl_side_by_side.notes.md); every regeneration includes them under "Notes".
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

from side_by_side_lib import (ALGOS, AGENTS, DEFAULT_ALGOS, LBF_TASK, TASKS, Budget, Setting,  # noqa: E402
                              epymarl_args, make_setting, netmarl_overrides, parse_epymarl, parse_netmarl,
                              task_spec)
from side_by_side_report import write_report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
os.environ.setdefault("XLA_FLAGS", XLA_FLAGS)  # for the provenance lines; every netmarl run sets it
GET_EPYMARL = ("EPyMARL is needed: pass --epymarl (make side-by-side EPYMARL=<path>) with the path "
               "of an EPyMARL checkout, e.g. the shared reference copy ../shared/reference/epymarl "
               "(upstream commit cbc38c0; see its README), or clone "
               "https://github.com/uoe-agents/epymarl and check out cbc38c0")



class Job(NamedTuple):
    """One process (or, for `many-seeds`, one process per core) of the benchmark."""

    kind: str  # epymarl | netmarl | profile | many-seeds
    setting: Setting
    seed: int
    path: Path  # the job's directory; result.json in it marks the job as done

    @property
    def cores(self) -> int:
        return 2 if self.kind == "many-seeds" else 1


def plan(settings: list[Setting], seeds: int, runs: Path, many_seeds: list[Setting]) -> list[Job]:
    """All jobs, single-core ones first, EPyMARL and netmarl runs interleaved."""
    jobs = []
    for setting in settings:
        for seed in range(seeds):
            for kind in ("epymarl", "netmarl"):
                jobs.append(Job(kind, setting, seed, runs / f"{kind}-{setting.name}-s{seed}"))
    jobs += [Job("profile", s, 0, runs / f"profile-{s.name}") for s in settings]  # policy: the floor only
    jobs += [Job("many-seeds", s, 100, runs / f"many-seeds-{s.name}") for s in many_seeds]
    return jobs


# --- running one job --------------------------------------------------------------------------------

def run_logged(cmd: list[str], cwd: Path, env: dict, core: int, log: Path) -> float:
    """Runs `cmd` pinned to `core`, writing each output line to `log` prefixed by the seconds since
    the start; returns the wall time. Raises on a non-zero exit."""
    tic = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(["taskset", "-c", str(core), *cmd], cwd=cwd, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1)
        for line in proc.stdout:
            out.write(f"{time.perf_counter() - tic:.3f}\t{line.rstrip()}\n")
            out.flush()  # the log shows the run's progress as it happens
        code = proc.wait()
    wall = time.perf_counter() - tic
    (log.parent / "wall.json").write_text(json.dumps({"wall_s": wall, "returncode": code}))
    if code:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(cmd[:3])} ... exited with {code} (log {log}):\n{tail}")
    return wall


def netmarl_env(cache: str = "off") -> dict:
    """A netmarl process's environment; `cache`: its compilation cache directory, or off (compile all)."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    return {**env, "XLA_FLAGS": XLA_FLAGS, "JAX_PLATFORMS": "cpu", "OMP_NUM_THREADS": "1",
            "NETMARL_COMPILATION_CACHE": cache,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def setting_cache(job: Job, args) -> tuple[str, str]:
    """The compilation cache the netmarl runs of one setting share, as a user's runs share theirs
    (netmarl/_xla_cache.py), and its state for this run: cold (empty: this run compiles) or warm."""
    path = args.runs / "xla_cache" / job.setting.name
    state = "warm" if path.is_dir() and any(path.iterdir()) else "cold"
    return str(path), state


def run_epymarl(path: Path, epymarl_argv: list[str], interval: int, args, core: int) -> dict:
    """One EPyMARL run in `path` (a copy of EPyMARL's folder, its sources removed afterwards, its
    results kept), pinned to `core`; returns {"runs": [its RunResult]}."""
    shutil.copytree(args.epymarl, path / "epymarl", ignore=shutil.ignore_patterns("results"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [str(args.venv / "bin" / "python"), "src/main.py", *epymarl_argv]
    run_logged(cmd, path / "epymarl", env, core, path / "console.log")
    shutil.rmtree(path / "epymarl" / "src")  # keep only its results
    return {"runs": [parse_epymarl(path, interval).to_json()]}


def run_job(job: Job, budget: Budget, args, core: int) -> dict:
    """Runs one job in its (fresh) directory; returns what its result.json holds."""
    shutil.rmtree(job.path, ignore_errors=True)
    job.path.mkdir(parents=True)
    log = job.path / "console.log"
    if job.kind == "epymarl":
        return run_epymarl(job.path, epymarl_args(job.setting, budget, job.seed, args.task), budget.interval,
                           args, core)
    overrides = netmarl_overrides(job.setting, budget, job.seed, str(job.path / "run"),
                                  env=list(task_spec(args.task).netmarl_env))
    if job.kind == "netmarl":
        cache, state = setting_cache(job, args)
        run_logged([sys.executable, "-m", "netmarl.cli", "train", *overrides], ROOT, netmarl_env(cache), core, log)
        return {"runs": [r.to_json() for r in parse_netmarl(job.path, budget.interval)], "cache": state}
    if job.kind == "profile":
        out = job.path / "profile.json"
        run_logged([sys.executable, str(ROOT / "benchmarks" / "side_by_side_profile.py"), "--out",
                    str(out), "--", *overrides], ROOT, netmarl_env(), core, log)
        return json.loads(out.read_text())
    return run_many_seeds(job, budget, args)


def run_many_seeds(job: Job, budget: Budget, args) -> dict:
    """netmarl for a user with many seeds: one process per core, each vmapping --vmap-seeds seeds;
    aggregate env steps/s = all seeds' env steps / the wall time until both processes are done."""
    def one(slot: tuple[int, int]) -> list[dict]:
        index, core = slot
        part = job.path / f"core{core}"
        part.mkdir()
        first = job.seed + index * args.vmap_seeds
        overrides = netmarl_overrides(job.setting, budget, first, str(part / "run"), seeds=args.vmap_seeds)
        run_logged([sys.executable, "-m", "netmarl.cli", "train", *overrides], ROOT, netmarl_env(), core,
                   part / "console.log")
        return [r.to_json() for r in parse_netmarl(part, budget.interval)]

    tic = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        runs = [r for rs in pool.map(one, enumerate(args.cores)) for r in rs]
    wall = time.perf_counter() - tic
    return {"runs": runs, "processes": len(args.cores), "vmap_seeds": args.vmap_seeds, "wall_s": wall,
            "aggregate_rate": sum(r["env_steps"] for r in runs) / wall}


# --- the pool ---------------------------------------------------------------------------------------

def run_all(jobs: list[Job], budget: Budget, args, runner=None) -> None:
    """Runs the unfinished jobs: single-core ones two at a time (one per core), then the two-core
    ones alone. A failed job is reported and left unfinished (the next invocation retries it).
    `runner(job, budget, args, core) -> result dict` runs one job (default: `run_job`)."""
    runner = runner or run_job
    restore_archived(jobs, args.archive)
    todo = [j for j in jobs if not (j.path / "result.json").exists()]
    print(f"{len(jobs) - len(todo)} of {len(jobs)} jobs already done; running {len(todo)}", flush=True)
    cores: queue.Queue = queue.Queue()
    for core in args.cores:
        cores.put(core)
    lock = threading.Lock()

    def execute(job: Job) -> None:
        core = cores.get() if job.cores == 1 else None
        try:
            load = os.getloadavg()[0]
            tic = time.perf_counter()
            result = runner(job, budget, args, core if core is not None else args.cores[0])
            result["load_at_start"] = load
            (job.path / "result.json").write_text(json.dumps(result, indent=1))
            archive(job, args.archive)
            with lock:
                print(f"done {job.path.name} in {time.perf_counter() - tic:.0f} s (load {load:.1f})",
                      flush=True)
        except Exception as error:  # noqa: BLE001 - one failed run must not stop the others
            with lock:
                print(f"FAILED {job.path.name}: {error}", flush=True)
        finally:
            if core is not None:
                cores.put(core)

    with ThreadPoolExecutor(len(args.cores)) as pool:
        list(pool.map(execute, [j for j in todo if j.cores == 1]))
    for job in (j for j in todo if j.cores > 1):
        execute(job)


def select(jobs: list[Job], only: str | None) -> list[Job]:
    """The jobs whose directory name matches one of the comma-separated fnmatch patterns `only`
    (all of them when None); a pattern that matches no job is an error naming the jobs."""
    if only is None:
        return jobs
    names = [j.path.name for j in jobs]
    matched = {p: set(fnmatch.filter(names, p)) for p in only.split(",")}
    unmatched = [p for p, hits in matched.items() if not hits]
    if unmatched:
        raise SystemExit(f"--only {', '.join(unmatched)} matches none of the jobs: {', '.join(names)}")
    return [j for j in jobs if any(j.path.name in hits for hits in matched.values())]


def archive(job: Job, folder: Path | None) -> None:
    """Copies a finished job's result.json to `folder`/<job>/ (nothing when `folder` is None)."""
    if folder is not None:
        (folder / job.path.name).mkdir(parents=True, exist_ok=True)
        shutil.copy2(job.path / "result.json", folder / job.path.name / "result.json")


def restore_archived(jobs: list[Job], folder: Path | None) -> None:
    """Marks the jobs that `folder` holds a result of as done, copying that result into their run
    directory (a run directory's own result wins)."""
    for job in jobs:
        kept = folder / job.path.name / "result.json" if folder is not None else None
        if kept is not None and kept.exists() and not (job.path / "result.json").exists():
            job.path.mkdir(parents=True, exist_ok=True)
            shutil.copy2(kept, job.path / "result.json")


# --- command line -----------------------------------------------------------------------------------

def ensure_epymarl(args) -> None:
    """Stops with how to get EPyMARL if it is absent; makes its venv if missing."""
    if not args.epymarl or not (Path(args.epymarl) / "src" / "main.py").is_file():
        raise SystemExit(f"epymarl_side_by_side: no EPyMARL at {args.epymarl or '(none given)'}. {GET_EPYMARL}")
    if not (args.venv / "bin" / "python").exists():
        setup = Path(args.epymarl).resolve().parent / "setup_epymarl.sh"
        if not setup.is_file():
            raise SystemExit(f"epymarl_side_by_side: no venv at {args.venv} and no {setup} to make one; "
                             "make it with the reference folder's setup_epymarl.sh VENV_PATH")
        print(f"making EPyMARL's venv {args.venv} with {setup} (about 2 minutes)", flush=True)
        subprocess.run(["bash", str(setup), str(args.venv)], check=True)
    python, spec = str(args.venv / "bin" / "python"), task_spec(args.task)
    if spec.epymarl_packages and subprocess.run([python, "-c", f"import {spec.epymarl_module}"],
                                                 capture_output=True).returncode != 0:
        print(f"adding {' '.join(spec.epymarl_packages)} to {args.venv} for {args.task}", flush=True)
        subprocess.run([python, "-m", "pip", "install", "-q", *spec.epymarl_packages], check=True)
    if any(s.algo.startswith("pac") for s in args.settings):
        ensure_torch_scatter(python, args.venv)


# EPyMARL's pac critics import torch_scatter (src/modules/critics/pac_dcg_ns.py), which
# setup_epymarl.sh does not install and PyPI has only as source for torch 2.13
TORCH_SCATTER = ("wheel==0.45.1", "torch-scatter==2.1.2")


def ensure_torch_scatter(python: str, venv: Path) -> None:
    """Builds torch_scatter into EPyMARL's venv against its torch if missing (C++; about 50 min on one
    shared core of this machine)."""
    if subprocess.run([python, "-c", "import torch_scatter"], capture_output=True).returncode == 0:
        return
    print(f"building {TORCH_SCATTER[1]} from source into {venv} for EPyMARL's pac (about 50 min)", flush=True)
    subprocess.run([python, "-m", "pip", "install", "-q", TORCH_SCATTER[0]], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-binary", "torch-scatter",
                    TORCH_SCATTER[1]], check=True, env={**os.environ, "MAX_JOBS": "1"})


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epymarl", help="EPyMARL's folder (with src/main.py)")
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv-epymarl", help="EPyMARL's venv")
    parser.add_argument("--task", default=LBF_TASK, help=f"an LBF task (Foraging-...) or one of "
                        f"{', '.join(TASKS)} (default {LBF_TASK})")
    parser.add_argument("--quick", action="store_true", help="2 seeds x 100k steps, MLP only")
    parser.add_argument("--seeds", type=int, help="seeds per setting (default 5; quick 2)")
    parser.add_argument("--steps", type=int, help="env steps per run (default 1,000,000; quick 100k)")
    parser.add_argument("--interval", type=int, help="env steps between evaluations (50k; quick 10k)")
    parser.add_argument("--episodes", type=int, help="greedy episodes per evaluation (100; quick 32)")
    parser.add_argument("--algos", default=",".join(DEFAULT_ALGOS),
                        help=f"of {', '.join(ALGOS)} (default {', '.join(DEFAULT_ALGOS)})")
    parser.add_argument("--agents", help=f"of {', '.join(AGENTS)} (default both; quick mlp)")
    parser.add_argument("--vmap-seeds", type=int, default=4, help="seeds vmapped per process (many seeds)")
    parser.add_argument("--many-seeds", help="settings measured with many seeds (default: the first; "
                        "'all' for every setting)")
    parser.add_argument("--cores", default="0,1", help="CPU cores to pin runs to")
    parser.add_argument("--runs", type=Path, help="run directories (default runs/side_by_side/<mode>)")
    parser.add_argument("--archive", type=Path, help="also keep finished runs' result.json here, and "
                        "take finished runs from here (e.g. docs/results/runs/<report>; commit it)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "epymarl_side_by_side.md")
    parser.add_argument("--report-only", action="store_true", help="write the report from finished runs")
    parser.add_argument("--only", help="run only the jobs whose directory name matches one of these "
                        "comma-separated patterns (fnmatch, e.g. 'epymarl-*-s3'): to spread a benchmark "
                        "over instances on different cores; the report still covers every finished job")
    args = parser.parse_args(argv)
    quick = args.quick
    args.seeds = args.seeds or (2 if quick else 5)
    args.agents = args.agents or ("mlp" if quick else ",".join(AGENTS))
    args.budget = Budget(args.steps or (100_000 if quick else 1_000_000),
                         args.interval or (10_000 if quick else 50_000), args.episodes or (32 if quick else 100))
    args.settings = [make_setting(a, g) for g in args.agents.split(",") for a in args.algos.split(",")]
    args.many = args.settings if args.many_seeds == "all" else (
        [s for s in args.settings if s.name in args.many_seeds.split(",")] if args.many_seeds
        else args.settings[:1])
    args.cores = [int(c) for c in args.cores.split(",")]
    custom = any(v is not None for v in (args.steps, args.interval, args.episodes))
    args.mode = "quick" if quick else ("custom" if custom else "full")
    task_spec(args.task)  # an unknown task stops here, naming the accepted ones
    args.runs = args.runs or ROOT / "runs" / "side_by_side" / (
        args.mode if args.task == LBF_TASK else f"{args.task}-{args.mode}")
    args.venv = args.venv.resolve()
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    jobs = plan(args.settings, args.seeds, args.runs, args.many)
    if args.report_only:
        restore_archived(jobs, args.archive)
    else:
        ensure_epymarl(args)
        args.epymarl = Path(args.epymarl).resolve()
        tic = time.perf_counter()
        run_all(select(jobs, args.only), args.budget, args)
        args.wall_s = time.perf_counter() - tic
        print(f"benchmark wall time {args.wall_s:.0f} s", flush=True)
    written = write_report(jobs, args)
    print("wrote " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
    main()
