"""`netmarl reproduce --backend ray|slurm` on the real engines (netmarl/backends.py).

A two-node Ray cluster (`ray start --head` and `ray start --address=...`, 1 CPU each, separate
processes: tests/ray_cluster.py) trains a 4-run grid; the worker node dies (its raylet and worker
SIGKILLed) mid-run, and the grid must still finish, its metrics identical to `--backend local`'s.
submitit's local executor (the slurm backend without a cluster) trains the same grid, one job
SIGKILLed mid-run, and must match too. The grid is test_reproduce's (the same compiled shapes)."""
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from netmarl.backends import BackendOptions, check_backend
from netmarl.cli import main
from tests.ray_cluster import RayCluster, free_port, processes
from tests.test_reproduce import EXPERIMENT

STEPS = 500  # 5 evaluation points (and checkpoints) per run: long enough to be killed mid-run
pytest.importorskip("ray")
pytest.importorskip("submitit")


def _grid(tmp_path: Path) -> str:
    path = tmp_path / "grid.yaml"
    path.write_text(EXPERIMENT)
    return str(path)


def _metrics(folder: Path) -> dict[str, list[dict]]:
    """Every run's metrics records without their wall-clock field."""
    return {p.parent.name: [{k: v for k, v in json.loads(line).items() if k != "elapsed_s"}
                            for line in p.read_text().splitlines()]
            for p in sorted(folder.glob("*/metrics.jsonl"))}


@functools.cache
def local_metrics() -> dict[str, list[dict]]:
    """The grid trained by `--backend local`, in this process (once per test process)."""
    from netmarl.reproduce import reproduce

    with tempfile.TemporaryDirectory() as tmp:
        reproduce(_grid(Path(tmp)), f"{tmp}/out", steps=STEPS)
        return _metrics(Path(tmp) / "out")


def _mid_run(folder: Path) -> list[Path]:
    """Runs past their first checkpointed evaluation point and not finished."""
    return [p.parent for p in folder.glob("*/metrics.jsonl")
            if len(p.read_text().splitlines()) >= 2 and not (p.parent / "summary.json").exists()]


def _reproduce(tmp_path: Path, env: dict | None, *args: str) -> subprocess.Popen:
    """`netmarl reproduce` on the grid, in a subprocess writing tmp_path/driver.log."""
    command = [sys.executable, "-m", "netmarl.cli", "reproduce", _grid(tmp_path), "--dir", str(tmp_path / "out"),
               "--steps", str(STEPS), *args]
    return subprocess.Popen(command, env=env, stdout=(tmp_path / "driver.log").open("w"), stderr=subprocess.STDOUT)


def _finish(driver: subprocess.Popen, tmp_path: Path, timeout: float = 150.0) -> str:
    try:
        driver.wait(timeout=timeout)
    finally:
        if driver.poll() is None:
            driver.kill()
    log = (tmp_path / "driver.log").read_text()
    assert driver.returncode == 0, log[-3000:]
    return log


def _until(condition, driver: subprocess.Popen, what: str, timeout: float = 40.0):
    """Polls condition() until it returns something true (returned), or fails naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and driver.poll() is None:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"{what} never happened (driver exit code {driver.poll()})")


def _kill_worker_node_mid_run(cluster: RayCluster, driver: subprocess.Popen, out: Path, names) -> None:
    """The worker node dies mid-run: its raylet and the worker process training there are SIGKILLed
    while its run is past its first checkpoint. The task is held (SIGSTOP) from its start until the
    head node has finished the other runs, then let go until its run has a checkpointed point, so the
    kill lands mid-run however fast or loaded the machine is. (The worker process is killed too, as
    when a machine fails: a worker outliving its raylet can still finish its task and hand the
    result straight to the driver, and then nothing is retried.)"""
    task = _until(lambda: cluster.training(1), driver, "a run on the worker node")[0]
    os.kill(task, signal.SIGSTOP)
    held = _until(lambda: _only_unfinished(out, names), driver, "the head node training the others")
    os.kill(task, signal.SIGCONT)
    _until(lambda: held in _mid_run(out) and os.kill(task, signal.SIGSTOP) is None, driver,
           f"{held.name} past its first checkpoint")
    os.kill(cluster.raylet(1), signal.SIGKILL)
    os.kill(task, signal.SIGKILL)


def _only_unfinished(out: Path, names) -> Path | None:
    unfinished = [out / name for name in names if not (out / name / "summary.json").exists()]
    return unfinished[0] if len(unfinished) == 1 else None


# `slow` (35-50 s: a two-node Ray cluster and a 4-run grid); the default suite keeps the backends'
# refusals and progress below
@pytest.mark.slow
def test_ray_grid_survives_a_killed_worker_node_and_equals_local(tmp_path):
    cluster = RayCluster(tmp_path)
    try:
        cluster.start_head()
        expected = local_metrics()  # trained here while the head node starts
        cluster.ready(0)
        cluster.add_worker()
        cluster.ready(1)
        driver = _reproduce(tmp_path, cluster.env, "--backend", "ray", "--address", cluster.address)
        _kill_worker_node_mid_run(cluster, driver, tmp_path / "out", expected)
        log = _finish(driver, tmp_path)
    finally:
        cluster.stop()
    assert "its worker died; attempt 2" in log  # the run was retried on the head node ...
    assert _metrics(tmp_path / "out") == expected  # ... resumed from its checkpoint: nothing lost or repeated
    assert (tmp_path / "out" / "table.md").exists()


def _job_training(run: Path) -> int | None:
    """The process of the submitit local job training `run` (its log names the run; the local
    executor's job id is the pid of the job's controller, whose child runs the job)."""
    for log in (run.parent / "slurm").glob("*_0_log.out"):
        if f"netmarl: {run} on" in log.read_text():
            job = int(log.name.split("_")[0])
            return next((pid for pid, parent, _ in processes() if parent == job), None)
    return None


# `slow` (28-39 s, mostly the start-up of submitit's job processes), as the Ray grid above, which checks
# the same contract (a remote grid with a killed worker equals the local one)
@pytest.mark.slow
def test_slurm_grid_through_submitit_equals_local_and_resubmits_a_killed_job(tmp_path):
    driver = _reproduce(tmp_path, None, "--backend", "slurm", "--slurm-executor", "local", "--slurm-time", "10")
    try:
        victim = _until(lambda: next(filter(None, map(_job_training, _mid_run(tmp_path / "out"))), None),
                        driver, "a job past its run's first checkpoint")
        os.kill(victim, signal.SIGKILL)  # the job ends without a result, as on a failed node
        expected = local_metrics()  # trained here while the resubmitted job runs
        log = _finish(driver, tmp_path)
    finally:
        driver.kill()
    assert "resubmitted (attempt 2)" in log
    assert _metrics(tmp_path / "out") == expected
    assert len(list((tmp_path / "out" / "slurm").glob("*_submitted.pkl"))) == 5  # 4 jobs and 1 resubmitted


@pytest.mark.parametrize("backend, options, message", [
    ("dask", {}, "unknown backend 'dask'; accepted: local, ray, slurm"),
    ("local", {"address": "auto"}, "--address cannot be used with --backend local; it is an option of "
                                   "--backend ray"),
    ("ray", {"slurm_partition": "gpu"}, "--slurm-partition cannot be used with --backend ray"),
    ("local", {"retries": 1}, "--retries cannot be used with --backend local; it is an option of "
                              "--backend ray and slurm"),
    ("ray", {"address": "headnode"}, "--address 'headnode' is not a Ray cluster address; accepted: auto"),
    ("ray", {"address": "10.0.0.5:99999"}, "'10.0.0.5:99999' is not a Ray cluster address"),
    ("ray", {"retries": -1}, "--retries -1 must be 0 or more"),
    ("slurm", {"slurm_executor": "pbs"}, "--slurm-executor 'pbs'; accepted: slurm, local"),
    ("slurm", {"slurm_executor": "local", "slurm_time": 0}, "--slurm-time 0 must be a positive number"),
    ("slurm", {"slurm_executor": "local", "slurm_options": ("--account abc",)},
     "--slurm-option '--account abc' is not of the form KEY=VALUE"),
])
def test_bad_backend_options_are_refused_by_name(backend, options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        check_backend(backend, BackendOptions(**options))


def test_slurm_without_sbatch_and_missing_packages_say_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    with pytest.raises(ValueError, match="sbatch is not on this machine's PATH .* --slurm-executor local"):
        check_backend("slurm", BackendOptions())
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(SystemExit, match=r"--backend ray needs the ray package, .*pip install -e '\.\[cluster\]'"):
        main(["reproduce", _grid(tmp_path), "--backend", "ray", "--dry-run"])


def test_a_ray_address_without_a_cluster_is_named(tmp_path):
    with pytest.raises(SystemExit, match=r"--address 127\.0\.0\.1:\d+: no Ray cluster could be joined"):
        main(["reproduce", _grid(tmp_path), "--dir", str(tmp_path / "out"), "--steps", "100", "--backend", "ray",
              "--address", f"127.0.0.1:{free_port()}"])


def test_progress_bar_follows_the_env_steps_workers_stream(tmp_path):
    """The Ray workers' reports (a thread calling report() every REPORT_S s, and once at the end)
    drive the driver's progress bar; runs without a report fall back to their metrics file."""
    from netmarl.backends import REPORT_S, _reporting
    from netmarl.reproduce import _progress, load_experiment, plan

    runs = plan(load_experiment(_grid(tmp_path)), tmp_path / "out", steps=STEPS)
    progress = _progress(runs)
    with progress as update:
        update({str(runs[0].path.absolute()): 300, str(runs[3].path.absolute()): 100})
        assert progress.bar.tasks[0].completed == 400 and progress.bar.tasks[0].total == 4 * STEPS
    reports = []
    with _reporting(lambda: reports.append(time.monotonic())):
        time.sleep(2.5 * REPORT_S)
    assert len(reports) == 3  # two periodic reports and the final one
