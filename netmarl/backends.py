"""Where `netmarl reproduce` trains its grid: a registry of backends (BACKENDS), one function each.

    local  this machine: spawned worker processes (--jobs), each taking whole (task, algorithm) cells
           so a cell's seeds share one compilation (the default).
    ray    a Ray cluster (--address auto|HOST:PORT; without it, a Ray instance started on this machine
           with --jobs CPUs): every run is one Ray task of 1 CPU. Its worker streams the run's env
           steps to the driver's progress bar (through an actor on the driver's node), and Ray retries
           a task whose worker or node died (--retries, Ray's `max_retries`).
    slurm  a Slurm cluster through submitit: every run is one task of a job array (1 CPU;
           --slurm-partition, --slurm-time MINUTES, --slurm-option KEY=VALUE for any other sbatch
           option, --jobs = most tasks running at once). A job stopped by its time limit or a
           preemption is requeued (submitit's checkpoint); a job that died without a result (node
           failure, out of memory) is resubmitted, up to --retries times.

Every backend runs `netmarl.reproduce.execute` on each run: the same skip / resume / final-evaluation
logic, into the same run directories. A retried run therefore continues from its latest checkpoint
(resume cuts its metrics back to that checkpoint), so a worker's death never duplicates a record.
The ray and slurm backends need the experiment folder on a file system that every node sees at the
same path (as a Slurm cluster's shared home); a worker that cannot see it stops with that message.
ray and submitit are imported only when their backend runs (`pip install -e '.[cluster]'`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import multiprocessing
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from netmarl.reproduce import Run, execute, steps_done

POLL_S = 2.0  # seconds between the driver's looks at its workers (and progress bar updates)
REPORT_S = 1.0  # seconds between a Ray worker's progress reports
# The driver's settings that Ray workers inherit (single-threaded XLA, the compilation cache).
FORWARDED_ENV = ("XLA_FLAGS", "JAX_PLATFORMS", "JAX_COMPILATION_CACHE_DIR",
                 "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")
INSTALL_HINT = "pip install -e '.[cluster]'"
SLURM_EXECUTORS = ("slurm", "local")  # submitit's Slurm executor, or its LocalExecutor (no cluster)

Tick = Callable[..., None]  # tick(steps: {run path: env steps} | None): advance the progress bar


@dataclasses.dataclass(frozen=True)
class BackendOptions:
    """Options of the ray and slurm backends (the command's --address, --retries, --slurm-*)."""

    address: str | None = None  # ray: auto | HOST:PORT of a running cluster; None: start one here
    retries: int = 3  # ray and slurm: new attempts of a run whose worker, node or job died
    slurm_partition: str | None = None
    slurm_time: int | None = None  # minutes per job (the run resumes in a requeued job after it)
    slurm_options: tuple[str, ...] = ()  # KEY=VALUE sbatch options, e.g. account=abc, qos=high
    slurm_executor: str = "slurm"  # one of SLURM_EXECUTORS; local runs the jobs as local processes


class GridFailed(RuntimeError):
    """Some runs of a grid failed on a cluster backend (the others finished)."""


# --- checks --------------------------------------------------------------------------------------

def check_backend(name: str, options: BackendOptions) -> None:
    """Refuses an unknown backend, options of another backend, a malformed option or a missing
    package, before any run starts."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; accepted: {', '.join(BACKENDS)}")
    foreign = [f.name for f in dataclasses.fields(options)
               if getattr(options, f.name) != f.default and name not in _OWNERS[f.name]]
    if foreign:
        raise ValueError(f"--{foreign[0].replace('_', '-')} cannot be used with --backend {name}; it is "
                         f"an option of --backend {' and '.join(_OWNERS[foreign[0]])}")
    if options.retries < 0:
        raise ValueError(f"--retries {options.retries} must be 0 or more")
    if name == "ray" and options.address is not None:
        check_address(options.address)
    if name == "slurm":
        _check_slurm(options)
    package = {"ray": "ray", "slurm": "submitit"}.get(name)
    if package and importlib.util.find_spec(package) is None:
        raise ImportError(f"--backend {name} needs the {package} package, which is not installed: "
                          f"{INSTALL_HINT}")


_OWNERS = {"address": ("ray",), "retries": ("ray", "slurm"), "slurm_partition": ("slurm",),
           "slurm_time": ("slurm",), "slurm_options": ("slurm",), "slurm_executor": ("slurm",)}


def check_address(address: str) -> None:
    """`auto` or HOST:PORT with a port in 1..65535."""
    match = re.fullmatch(r"([\w.\-]+|\[[0-9a-fA-F:]+\]):(\d+)", address)
    if address != "auto" and not (match and 1 <= int(match[2]) <= 65535):
        raise ValueError(f"--address {address!r} is not a Ray cluster address; accepted: auto (the "
                         "cluster started on this machine by `ray start --head`) or HOST:PORT, e.g. "
                         "10.0.0.5:6379")


def _check_slurm(options: BackendOptions) -> None:
    if options.slurm_executor not in SLURM_EXECUTORS:
        raise ValueError(f"--slurm-executor {options.slurm_executor!r}; accepted: "
                         f"{', '.join(SLURM_EXECUTORS)}")
    if options.slurm_time is not None and options.slurm_time < 1:
        raise ValueError(f"--slurm-time {options.slurm_time} must be a positive number of minutes")
    bad = [o for o in options.slurm_options if not re.fullmatch(r"[a-z][\w-]*=.+", o)]
    if bad:
        raise ValueError(f"--slurm-option {bad[0]!r} is not of the form KEY=VALUE (an sbatch option "
                         "without its dashes, e.g. account=abc)")
    if options.slurm_executor == "slurm" and shutil.which("sbatch") is None:
        raise ValueError("--backend slurm: sbatch is not on this machine's PATH (run the command on "
                         "the cluster's login node); --slurm-executor local runs the jobs as local "
                         "processes instead")


def _require(package: str):
    try:
        return importlib.import_module(package)
    except ImportError as error:
        raise ImportError(f"{package} cannot be imported ({error}): {INSTALL_HINT}") from None


def _remaining(cells: list[list[Run]]) -> list[Run]:
    """The runs still to do, with absolute paths (cluster workers do not share the driver's cwd)."""
    return [dataclasses.replace(r, path=r.path.absolute()) for cell in cells for r in cell
            if r.state != "done"]


def _check_shared(run: Run) -> None:
    """On a cluster worker: the experiment folder (made by the driver) must be visible here."""
    if not run.path.parent.is_dir():
        raise FileNotFoundError(
            f"{run.path.parent} does not exist on {socket.gethostname()}: the cluster backends need "
            "the experiment folder (--dir) on a file system that every node sees at the same path")


# --- local ---------------------------------------------------------------------------------------

def run_local(cells: list[list[Run]], jobs: int | None, options: BackendOptions, tick: Tick) -> None:
    """The cells on `jobs` spawned worker processes (in this process if 1)."""
    if (jobs or 1) == 1:
        for cell in cells:
            for run in cell:
                execute(run)
                tick()
        return
    ctx = multiprocessing.get_context("spawn")  # JAX is not fork-safe
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # leaving the Pool stops the workers
    with ctx.Pool(jobs, _die_with_parent, maxtasksperchild=1) as pool:
        pending = [pool.apply_async(_execute_cell, (cell,)) for cell in cells]
        while not all(p.ready() for p in pending):
            tick()
            time.sleep(POLL_S)
        for p in pending:
            p.get()  # re-raises a worker's error
        pool.close()  # the workers exit on their own before Pool.__exit__ terminates the pool
        pool.join()
        tick()


def _execute_cell(runs: list[Run]) -> list[str]:
    for run in runs:
        execute(run)
    return [str(r.path) for r in runs]


def _die_with_parent() -> None:
    """Worker initializer: the worker exits when the reproduction process dies (even by SIGKILL), so
    a killed reproduction never leaves runs training in the background. A watchdog thread polls the
    parent pid. (Linux's PR_SET_PDEATHSIG fires when the *thread* that spawned the worker ends; the
    pool's handler thread spawns the replacement workers, so it killed idle workers holding the task
    queue's lock when the pool shut down, and the pool's exit deadlocked.)"""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(143)

    threading.Thread(target=watch, daemon=True).start()


# --- ray -----------------------------------------------------------------------------------------

def run_ray(cells: list[list[Run]], jobs: int | None, options: BackendOptions, tick: Tick) -> None:
    """Every remaining run as a Ray task of 1 CPU, retried up to options.retries times if its worker
    dies; the driver's progress bar follows the env steps the workers report."""
    ray = _require("ray")
    runs = _remaining(cells)
    _ray_init(ray, jobs, options.address)
    try:
        here = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
            ray.get_runtime_context().get_node_id(), soft=False)
        board = ray.remote(num_cpus=0)(Board).options(scheduling_strategy=here).remote()
        task = ray.remote(num_cpus=1, max_retries=options.retries)(ray_task)
        pending = {task.remote(run, board): run for run in runs}
        _ray_wait(ray, pending, board, tick, options.retries)
    finally:
        ray.shutdown()  # a connected driver's exit also ends its tasks still running on the cluster


def _ray_init(ray, jobs: int | None, address: str | None) -> None:
    """Connects to the cluster at `address`, or starts a Ray instance here with `jobs` CPUs."""
    import logging

    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    settings = dict(runtime_env={"env_vars": env}, log_to_driver=False, logging_level=logging.WARNING)
    if address is None:
        ray.init(num_cpus=jobs, include_dashboard=False, **settings)
        return
    try:
        if address != "auto":  # ray.init waits minutes for an address where nothing answers
            host, _, port = address.rpartition(":")
            socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
        ray.init(address=address, **settings)
    except (OSError, RuntimeError, ValueError) as error:  # ConnectionError is an OSError
        raise ValueError(f"--address {address}: no Ray cluster could be joined ({str(error).strip()}); "
                         "start one with `ray start --head` (and `ray start --address=HEAD:PORT` on "
                         "the other nodes), or omit --address to start one on this machine") from None


def _ray_wait(ray, pending: dict, board, tick: Tick, retries: int) -> None:
    """Waits for every task, announcing restarted runs; raises GridFailed for failed runs at the end."""
    failures, announced = [], {}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=POLL_S)
        for ref in done:
            run = pending.pop(ref)
            try:
                ray.get(ref)
            except ray.exceptions.RayError as error:
                failures.append(f"{run.path.name}: {_ray_reason(ray, error, retries)}")
        steps, attempts = ray.get(board.read.remote())
        for path, nodes in attempts.items():
            if len(nodes) > announced.get(path, 1):
                announced[path] = len(nodes)
                print(f"{Path(path).name}: its worker died; attempt {len(nodes)} on node {nodes[-1][:12]} "
                      "resumes it from its latest checkpoint")
        tick(steps)
    _raise_failures(failures)


def _ray_reason(ray, error, retries: int) -> str:
    if isinstance(error, ray.exceptions.RayTaskError):  # the run raised: not retried
        return f"{type(error.cause).__name__}: {error.cause}"
    return f"its worker died {retries + 1} times ({type(error).__name__}; --retries {retries})"


def _raise_failures(failures: list[str]) -> None:
    if failures:
        raise GridFailed(f"{len(failures)} run(s) failed (the others are done; run the command again "
                         "to continue, finished runs are skipped):\n  " + "\n  ".join(failures))


class Board:
    """The driver's view of the runs on the cluster, a Ray actor on the driver's node: each run's
    latest env steps and the node of each of its attempts."""

    def __init__(self):
        self.steps: dict[str, int] = {}
        self.attempts: dict[str, list[str]] = {}

    def started(self, path: str, node: str) -> None:
        """An attempt at run `path` began on `node` (a Ray node id)."""
        self.attempts.setdefault(path, []).append(node)

    def report(self, path: str, steps: int) -> None:
        """Run `path` is at `steps` env steps (per seed)."""
        self.steps[path] = steps

    def read(self) -> tuple[dict[str, int], dict[str, list[str]]]:
        """({run path: env steps}, {run path: [node of each attempt]})."""
        return self.steps, self.attempts


def ray_task(run: Run, board) -> str:
    """One run on a Ray worker: announces the attempt, then trains (or resumes, or evaluates) it
    while a thread reports its env steps to the board every REPORT_S seconds."""
    import ray

    _check_shared(run)
    board.started.remote(str(run.path), ray.get_runtime_context().get_node_id())
    with _reporting(lambda: board.report.remote(str(run.path), steps_done(run))):
        execute(run)
    return str(run.path)


@contextlib.contextmanager
def _reporting(report: Callable[[], None]):
    """Calls report() every REPORT_S seconds in a thread while the block runs, and once at its end."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(REPORT_S):
            report()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        report()


# --- slurm ---------------------------------------------------------------------------------------

def run_slurm(cells: list[list[Run]], jobs: int | None, options: BackendOptions, tick: Tick) -> None:
    """Every remaining run as one task of a Slurm job array (or a local process with
    --slurm-executor local); resubmits a job that died without a result."""
    submitit = _require("submitit")
    runs = _remaining(cells)
    executor = _slurm_executor(submitit, runs[0].path.parent, jobs, options)
    pending = dict(zip(executor.map_array(SlurmRun(), runs), runs))
    try:
        _slurm_wait(submitit, executor, pending, tick, options.retries)
    finally:
        for job in pending:
            job.cancel(check=False)  # interrupted: no job keeps training behind the user's back


def _slurm_executor(submitit, folder: Path, jobs: int | None, options: BackendOptions):
    """A submitit executor writing its job files (<job id>_submitted.pkl, _log.out, _log.err, result)
    into <folder>/slurm/."""
    executor = submitit.AutoExecutor(folder=folder / "slurm", cluster=options.slurm_executor)
    params = {"name": f"netmarl-{folder.name}", "nodes": 1, "tasks_per_node": 1, "cpus_per_task": 1,
              "timeout_min": options.slurm_time, "slurm_partition": options.slurm_partition,
              "slurm_array_parallelism": jobs,
              "slurm_additional_parameters": dict(o.split("=", 1) for o in options.slurm_options) or None}
    executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return executor


def _slurm_wait(submitit, executor, pending: dict, tick: Tick, retries: int) -> None:
    """Polls the jobs; resubmits one that died without a result (up to `retries` times)."""
    failures, attempts = [], {}
    while pending:
        for job in [j for j in pending if j.done()]:
            run = pending.pop(job)
            error = job.exception()
            if isinstance(error, submitit.core.utils.UncompletedJobError) and attempts.get(run.path, 0) < retries:
                attempts[run.path] = attempts.get(run.path, 0) + 1
                pending[executor.submit(SlurmRun(), run)] = run
                print(f"{run.path.name}: job {job.job_id} ended without a result ({job.state}); "
                      f"resubmitted (attempt {attempts[run.path] + 1}), it resumes from its latest checkpoint")
            elif error is not None:
                failures.append(f"{run.path.name}: job {job.job_id}: {str(error).strip().splitlines()[-1]}")
        tick()
        if pending:
            time.sleep(POLL_S)
    _raise_failures(failures)


class SlurmRun:
    """The callable of a Slurm job: one run. On its time limit or a preemption, submitit calls
    `checkpoint` and requeues the job, which resumes the run from its latest checkpoint."""

    def __call__(self, run: Run) -> str:
        _check_shared(run)
        print(f"netmarl: {run.path} on {socket.gethostname()}", flush=True)  # the job's log names its run
        execute(run)
        return str(run.path)

    def checkpoint(self, run: Run):
        """submitit's hook on timeout or preemption: requeue the same run (it resumes)."""
        import submitit

        return submitit.helpers.DelayedSubmission(SlurmRun(), run)


BACKENDS: dict[str, Callable[[list[list[Run]], int | None, BackendOptions, Tick], None]] = {
    "local": run_local, "ray": run_ray, "slurm": run_slurm}
