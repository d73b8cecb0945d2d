"""`netmarl train --multirun` (netmarl/sweep.py): Hydra sweeps, with the basic launcher in-process and
with hydra-submitit-launcher's local executor as separate processes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from netmarl.cli import main

TINY = ["env=matrix:climbing", "algo.agent=mlp", "algo.hidden=8", "algo.buffer_size=16", "algo.batch_size=4",
        "steps=40", "run.eval_interval=20", "run.eval_episodes=2", "run.progress=false"]


def _runs(folder: Path) -> dict[str, dict]:
    """run directory name -> its summary.json."""
    return {p.parent.name: json.loads(p.read_text()) for p in folder.glob("*/summary.json")}


def test_basic_sweep_trains_one_run_per_combination(tmp_path):
    main(["train", "-m", "algo=vdn,iql", "seed=0,1", *TINY, f"run.dir={tmp_path / 'runs'}",
          f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    runs = _runs(tmp_path / "runs")
    assert len(runs) == 4 and sorted(s["algo"] for s in runs.values()) == ["iql", "iql", "vdn", "vdn"]
    assert all(name.endswith(("_0", "_1", "_2", "_3")) for name in runs)  # the job number
    configs = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*/config.json")]
    assert sorted((c["algo"]["name"], c["run"]["seed"]) for c in configs) == \
        [("iql", 0), ("iql", 1), ("vdn", 0), ("vdn", 1)]
    assert (tmp_path / "sweep" / "multirun.yaml").is_file()  # Hydra's record of the sweep


def test_resume_is_refused_in_a_sweep():
    with pytest.raises(SystemExit, match="resume= is for one run"):
        main(["train", "-m", "resume=runs/x"])


@pytest.mark.slow  # 17 s from scratch: two processes, each importing JAX and compiling
def test_submitit_local_launcher_runs_the_jobs_as_processes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run([sys.executable, "-m", "netmarl.cli", "train", "-m", "algo=vdn,iql", *TINY,
                    f"run.dir={tmp_path / 'runs'}", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                    "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5"],
                   check=True, env=env, timeout=600)
    runs = _runs(tmp_path / "runs")
    assert sorted(s["algo"] for s in runs.values()) == ["iql", "vdn"]
    logs = list((tmp_path / "sweep" / ".submitit").rglob("*_log.out"))
    assert len(logs) == 2  # one submitit job per run
