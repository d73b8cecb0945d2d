"""`netmarl reproduce`: the grid's run states, skip/resume logic, and its table and figure."""
import functools
import json

import pytest

from netmarl.cli import compose, main
from netmarl.reproduce import EXPERIMENTS, Run, _Archive, load_experiment, plan, reproduce
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


def test_task_overrides_reach_their_task_and_must_name_a_task_of_the_grid(tmp_path):
    path = tmp_path / "tasks.yaml"
    path.write_text(EXPERIMENT.replace("tasks: [matrix:climbing]", "tasks: [matrix:climbing, matrix:penalty]")
                    + "task_overrides: {matrix:penalty: [run.total_steps=700]}\n")
    runs = plan(load_experiment(str(path)), tmp_path)
    assert {r.task: r.budget for r in runs} == {"matrix:climbing": compose([]).run.total_steps,
                                                "matrix:penalty": 700}
    path.write_text(EXPERIMENT + "task_overrides: {lbf-tiny: [run.total_steps=700]}\n")
    with pytest.raises(ValueError, match="lbf-tiny"):
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


def test_chosen_cells_train_alone_and_unknown_names_are_refused(experiment, tmp_path, capsys):
    """--tasks / --algos: only the chosen cells train (e.g. one per core or machine, same folder)."""
    root = tmp_path / "out"
    reproduce(experiment, str(root), steps=300, algos=["vdn"])
    runs = plan(load_experiment(experiment), root, steps=300)
    assert [r.state for r in runs] == ["new", "new", "done", "done"]
    assert "2 runs (chosen of 4)" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"--algos qmix: not in the experiment; accepted: iql, vdn"):
        reproduce(experiment, str(root), steps=300, algos=["qmix", "vdn"])
    with pytest.raises(ValueError, match=r"--tasks lbf-tiny: not in the experiment; accepted: matrix:climbing"):
        reproduce(experiment, str(root), steps=300, tasks=["lbf-tiny"], dry_run=True)
    main(["reproduce", experiment, "--dir", str(root), "--algos", "iql, vdn", "--tasks",
          "matrix:climbing", "--dry-run"])  # the command line's comma-separated lists
    assert "4 runs in" in capsys.readouterr().out


def test_archive_keeps_finished_runs_records_and_resumes_a_grid_without_its_run_directories(
        experiment, tmp_path, capsys):
    """--archive: finished runs' records (no checkpoints) are copied there; on a machine without
    the run directories they come back as finished runs, unless the budget grew (then they train)."""
    root, kept = tmp_path / "out", tmp_path / "kept"
    reproduce(experiment, str(root), steps=300, algos=["vdn"], archive=str(kept))
    runs = plan(load_experiment(experiment), root, steps=300)
    for run in runs[2:]:
        saved = kept / run.path.name
        assert sorted(p.name for p in saved.iterdir()) == ["config.json", "marl_eval.json", "metrics.jsonl",
                                                             "summary.json"]
        assert (saved / "metrics.jsonl").read_text() == (run.path / "metrics.jsonl").read_text()
    fresh = tmp_path / "fresh"  # a new machine: the records only
    main(["reproduce", experiment, "--dir", str(fresh), "--steps", "300", "--algos", "vdn", "--archive", str(kept)])
    assert "2 runs (chosen of 4) in" in capsys.readouterr().out
    again = plan(load_experiment(experiment), fresh, steps=300)
    assert [r.state for r in again] == ["new", "new", "done", "done"]
    assert not (again[2].path / "checkpoints").exists()  # restored, not retrained
    assert (again[2].path / "metrics.jsonl").read_text() == (runs[2].path / "metrics.jsonl").read_text()
    longer = tmp_path / "longer"
    reproduce(experiment, str(longer), steps=300, algos=["vdn"], archive=str(kept), dry_run=True)
    assert not longer.exists()  # a dry run restores nothing
    bigger = plan(load_experiment(experiment), longer, steps=400)
    _Archive(longer, kept, bigger).restore()
    assert [r.state for r in bigger] == ["new"] * 4  # trained to 300 < 400 steps: trains afresh


FINAL = EXPERIMENT.replace("algos: [iql, vdn]", "algos: [random, iql]").replace(
    "algo_overrides: {vdn: [algo.lr=0.01]}",
    "final_eval: {episodes: 400, envs: {one: {}, four: {episode_length: 4}}}")
CLIMBING_MEAN = -31 / 9  # the climbing game's mean payoff: the random policy's expected step reward


def test_final_evaluations_random_row_and_final_table(tmp_path):
    path = tmp_path / "final.yaml"
    path.write_text(FINAL)
    root = tmp_path / "out"
    reproduce(str(path), str(root), steps=200)
    runs = plan(load_experiment(str(path)), root, steps=200)
    assert [r.state for r in runs] == ["done"] * 4
    random = [json.loads((r.path / "final_eval.json").read_text()) for r in runs[:2]]
    assert not (runs[0].path / "metrics.jsonl").exists()  # the random policy is not trained
    one = [s["mean"] for r in random for s in r["evals"]["one"]["per_seed"]]
    four = [s["mean"] for r in random for s in r["evals"]["four"]["per_seed"]]
    assert abs(sum(one) / 2 - CLIMBING_MEAN) < 1.6  # 3 standard errors over 800 episodes
    assert abs(sum(four) / 2 - 4 * CLIMBING_MEAN) < 3.1  # evaluated with the longer episodes
    greedy = json.loads((runs[2].path / "final_eval.json").read_text())["evals"]
    assert greedy["one"]["per_seed"][0]["std"] == 0.0  # a greedy policy in a deterministic game
    assert greedy["four"]["per_seed"][0]["mean"] == pytest.approx(4 * greedy["one"]["per_seed"][0]["mean"])
    table = (root / "final_table.md").read_text()
    assert "| matrix:climbing one |" in table and "| matrix:climbing four |" in table
    assert "random" in (root / "final_table.csv").read_text()
    assert "random" not in (root / "table.csv").read_text()  # the curves table has trained runs only
    # A run killed between training and its final evaluation is evaluated, not retrained.
    (runs[2].path / "final_eval.json").unlink()
    assert runs[2].state == "partial"
    before = (runs[2].path / "metrics.jsonl").stat().st_mtime_ns
    reproduce(str(path), str(root), steps=200)
    assert runs[2].state == "done" and (runs[2].path / "metrics.jsonl").stat().st_mtime_ns == before
    # A larger budget trains on, and the final evaluation is redone on the new final policy.
    reproduce(str(path), str(root), steps=300)
    evals = json.loads((runs[2].path / "final_eval.json").read_text())["evals"]
    assert evals["one"]["checkpoint_point"] == 3 and evals["four"]["checkpoint_point"] == 3


@pytest.mark.parametrize("bad, message", [
    ("final_eval: {episodes: 0, envs: {a: {}}}", "episodes 0"),
    ("final_eval: {episodes: 5, envs: []}", "must map names"),
    ("", "needs final_eval"),
])
def test_bad_final_eval_is_refused(tmp_path, bad, message):
    path = tmp_path / "bad.yaml"
    path.write_text(FINAL.split("final_eval")[0] + bad + "\n")
    with pytest.raises(ValueError, match=message):
        load_experiment(str(path))


def test_eval_command_takes_env_options(tmp_path, capsys):
    from netmarl.cli import main

    run = plan(load_experiment(str(_write(tmp_path, EXPERIMENT))), tmp_path / "out", steps=100)[0]
    train(compose([*run.overrides, f"env={run.task}", f"algo={run.algo}", "run.seeds=1", "run.total_steps=100",
                   f"run.dir={run.path.parent}", f"run.id={run.path.name}", "run.progress=false"]))
    main(["eval", str(run.path), "--episodes", "3", "--env-option", "episode_length=5"])
    result = json.loads(capsys.readouterr().out)
    assert result["env_options"] == {"episode_length": 5} and len(result["per_seed"][0]["returns"]) == 3
    with pytest.raises(SystemExit, match="no_such_option|unknown|accepted"):
        main(["eval", str(run.path), "--episodes", "3", "--env-option", "no_such_option=1"])
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        main(["eval", str(run.path), "--env-option", "episode_length"])


def _write(tmp_path, text: str):
    path = tmp_path / "experiment.yaml"
    path.write_text(text)
    return path


def test_parallel_workers_finish_and_exit(experiment, tmp_path):
    """--jobs 2: cells run in spawned workers, and the command returns once they are done (the pool
    used to deadlock in its exit after the last cell)."""
    import subprocess
    import sys

    root = tmp_path / "parallel"
    code = f"from netmarl.reproduce import reproduce; reproduce({experiment!r}, {str(root)!r}, jobs=2, steps=100)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = plan(load_experiment(experiment), root, steps=100)
    assert [r.state for r in runs] == ["done"] * 4 and (root / "table.md").exists()


def test_workers_die_with_a_killed_reproduction(experiment, tmp_path):
    """SIGKILL of `netmarl reproduce --jobs 2` leaves no worker training in the background."""
    import os
    import signal
    import subprocess
    import sys
    import time

    code = (f"from netmarl.reproduce import reproduce; "
            f"reproduce({experiment!r}, {str(tmp_path / 'killed')!r}, jobs=2, steps=10**7)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    for _ in range(120):  # wait for both workers to start training
        time.sleep(0.5)
        workers = _children(parent.pid)
        if len(workers) >= 2 and list((tmp_path / "killed").glob("*/config.json")):
            break
    assert len(workers) >= 2, "the workers did not start"
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.5)
    assert not any(_alive(pid) for pid in workers)


def _children(pid: int) -> list[int]:
    from pathlib import Path

    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    from pathlib import Path

    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_shipped_experiment_composes(name, tmp_path):
    """Every (task, algorithm) cell of conf/reproduce/<name>.yaml is a valid config on a valid env."""
    from netmarl.envs import make
    from netmarl.reproduce import RANDOM, _run_overrides

    runs = plan(load_experiment(name), tmp_path)
    env_name = functools.cache(lambda task: compose([f"env={task}"]).env.name)  # a preset or an env id
    envs = {}  # every (env, options) a cell trains or evaluates on, built once below
    for run in {(r.task, r.algo): r for r in runs}.values():
        config = compose(_run_overrides(run, "iql" if run.algo == RANDOM else run.algo))
        assert config.env.name == env_name(run.task)
        assert run.budget == (0 if run.algo == RANDOM else config.run.total_steps)
        env = config.env
        finals = (run.final_eval or {"envs": {}})["envs"].values()
        for options in [env.options, *({**env.options, **env.eval_options, **o} for o in finals)]:
            envs[repr((env.name, sorted(options.items())))] = (env.name, options)
    for name, options in envs.values():
        make(name, **options)


@pytest.mark.parametrize("name", ["dvdn-lbf", "dvdn-marbler"])
def test_dvdn_reproductions_give_every_agent_the_team_reward(name, tmp_path):
    """The DVDN paper's R̄ (docs/algorithms.md, "Rewards"): IQL learns from the team reward R, the
    summed learners from R/N each; never the environment's individual rewards."""
    from netmarl.reproduce import _run_overrides

    runs = plan(load_experiment(name), tmp_path)
    for run in {r.algo: r for r in runs}.values():
        algo = compose(_run_overrides(run, run.algo)).algo
        assert algo.reward_shares == ("team" if algo.team_td == "iql" else "equal"), run.algo


def test_vmapped_seed_axis_plans_one_run_per_cell_with_all_seeds(tmp_path):
    path = _write(tmp_path, EXPERIMENT + "seed_axis: vmap\n")
    runs = plan(load_experiment(str(path)), tmp_path / "out", steps=300)
    assert [(r.path.name, r.seed, r.seeds) for r in runs] == [("matrix:climbing_iql", 0, 2),
                                                              ("matrix:climbing_vdn", 0, 2)]
    from netmarl.reproduce import _run_overrides
    assert "run.seeds=2" in _run_overrides(runs[0], "iql")


def test_seed_axis_option_splits_a_vmapped_cell_into_runs_per_seed(tmp_path, capsys):
    """--seed-axis runs: a vmapped experiment's seeds become separate runs (spread over sessions);
    a bad value is refused naming the accepted ones."""
    path = _write(tmp_path, EXPERIMENT + "seed_axis: vmap\n")
    main(["reproduce", str(path), "--dir", str(tmp_path / "out"), "--steps", "300", "--seed-axis", "runs",
          "--dry-run"])
    out = capsys.readouterr().out
    assert "4 runs in" in out and "matrix:climbing_vdn_s1" in out
    with pytest.raises(SystemExit, match="--seed-axis 'each'; accepted: runs"):
        main(["reproduce", str(path), "--steps", "300", "--seed-axis", "each", "--dry-run"])


def test_algorithm_variants_are_their_own_columns(tmp_path):
    """`name@variant` trains conf/algo/<name> with the variant's overrides, named name@variant."""
    from netmarl.reproduce import _run_overrides
    path = _write(tmp_path, EXPERIMENT.replace("algos: [iql, vdn]", "algos: [vdn, vdn@fast]")
                  .replace("{vdn: [algo.lr=0.01]}", "{vdn@fast: [algo.lr=0.01]}"))
    runs = plan(load_experiment(str(path)), tmp_path / "out", steps=300)
    assert [r.path.name for r in runs][1:3] == ["matrix:climbing_vdn_s1", "matrix:climbing_vdn@fast_s0"]
    plain, variant = (compose(_run_overrides(r, r.algo)).algo for r in (runs[0], runs[2]))
    assert (plain.name, plain.team_td, plain.lr) == ("vdn", "vdn", compose(["algo=vdn"]).algo.lr)
    assert (variant.name, variant.team_td, variant.lr) == ("vdn@fast", "vdn", 0.01)


@pytest.mark.parametrize("bad, message", [("seed_axis: each\n", "seed_axis 'each'"),
                                          ("report: {name: nope}\n", "decomposition-games")])
def test_bad_seed_axis_or_report_is_refused(tmp_path, bad, message):
    with pytest.raises(ValueError, match=message):
        load_experiment(str(_write(tmp_path, EXPERIMENT + bad)))


def test_decomposition_study_is_a_known_experiment():
    experiment = load_experiment("decomposition-games")
    assert "decomposition-games" in EXPERIMENTS and experiment["seed_axis"] == "vmap"
    assert set(experiment["algos"]) == {"iql", "vdn", "qmix", "qtran", "qplex", "pairvdn"}


def test_curves_report_win_rates_of_battles(tmp_path):
    """The curves report's win-rate rows: final (per seed) and best point, from `eval_won`."""
    import types

    from netmarl.results.curves_report import win_rates
    path = tmp_path / "smax_3m_qmix"
    path.mkdir()
    (path / "config.json").write_text("{}")
    won = {(0, 0): 0.0, (0, 1): 0.1, (1, 0): 0.9, (1, 1): 1.0, (2, 0): 0.8, (2, 1): 0.9}
    (path / "metrics.jsonl").write_text("\n".join(json.dumps(
        {"point": p, "seed": s, "env_steps": 100 * p + s, "eval_won": w}) for (p, s), w in won.items()))
    battle = types.SimpleNamespace(path=path, task="smax:3m", algo="qmix")
    rows = win_rates([battle])
    assert "| smax:3m | qmix | 0.850 (0.80, 0.90) | 0.950 at point 1 | 201 |" in rows
    plain = tmp_path / "lbf"
    plain.mkdir()
    (plain / "config.json").write_text("{}")
    (plain / "metrics.jsonl").write_text(json.dumps({"point": 0, "seed": 0, "env_steps": 0}))
    assert win_rates([types.SimpleNamespace(path=plain, task="lbf", algo="vdn")]) == []
