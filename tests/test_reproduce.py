"""`netmarl reproduce`: the grid's run states, skip/resume logic, and its table and figure."""
import json

import pytest

from netmarl.cli import compose
from netmarl.reproduce import Run, load_experiment, plan, reproduce
from netmarl.train.loop import train

EXPERIMENT = """
tasks: [matrix:climbing]
algos: [iql, vdn]
seeds: 2
overrides: [algo.agent=mlp, algo.hidden=16, algo.batch_size=8, algo.buffer_size=64,
            run.eval_interval=100, run.eval_episodes=4]
algo_overrides: {vdn: [algo.lr=0.01]}
"""


@pytest.fixture
def experiment(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(EXPERIMENT)
    return str(path)


def test_plan_names_one_run_per_task_algo_and_seed(experiment, tmp_path):
    runs = plan(load_experiment(experiment), tmp_path / "out", steps=300)
    assert [r.path.name for r in runs] == ["matrix:climbing_iql_s0", "matrix:climbing_iql_s1",
                                           "matrix:climbing_vdn_s0", "matrix:climbing_vdn_s1"]
    assert all(r.state == "new" and r.budget == 300 for r in runs)


def test_algo_overrides_must_name_an_algorithm_of_the_grid(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(EXPERIMENT.replace("{vdn:", "{qmix:"))
    with pytest.raises(ValueError, match="qmix"):
        plan(load_experiment(str(path)), tmp_path)


def test_unknown_experiment_lists_the_accepted_ones():
    with pytest.raises(ValueError, match="dvdn-lbf"):
        load_experiment("no-such-experiment")


def _metrics(run: Run) -> list[dict]:
    return [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]


def test_reproduce_skips_finished_runs_resumes_started_ones_and_extends_budgets(experiment, tmp_path):
    root = tmp_path / "out"
    runs = plan(load_experiment(experiment), root, steps=300)
    # One run was killed after its first evaluation point: it must be resumed, not restarted.
    first = runs[0]
    train(compose([*first.overrides, f"env={first.task}", f"algo={first.algo}", "run.seeds=1",
                   f"run.seed={first.seed}", f"run.dir={root}", f"run.id={first.path.name}",
                   "run.progress=false"]), stop_after=1)
    assert first.state == "partial"
    reproduce(experiment, str(root), steps=300)
    assert [r.state for r in runs] == ["done"] * 4
    assert [r["point"] for r in _metrics(first)] == [0, 1, 2, 3]  # no point lost or repeated
    assert (root / "table.md").exists() and (root / "table.csv").exists()
    assert (root / "curves.png").exists()
    lrs = [json.loads((r.path / "config.json").read_text())["algo"]["lr"] for r in runs]
    assert lrs == [5e-4, 5e-4, 0.01, 0.01]  # algo_overrides reach only their algorithm
    before = {r.path: (r.path / "metrics.jsonl").stat().st_mtime_ns for r in runs}
    reproduce(experiment, str(root), steps=300)  # everything finished: nothing runs again
    assert before == {r.path: (r.path / "metrics.jsonl").stat().st_mtime_ns for r in runs}
    bigger = plan(load_experiment(experiment), root, steps=500)
    assert [r.state for r in bigger] == ["partial"] * 4  # a larger budget continues the runs
    reproduce(experiment, str(root), steps=500)
    assert [r["point"] for r in _metrics(first)][-1] == 5
