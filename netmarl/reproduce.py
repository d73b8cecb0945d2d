"""`netmarl reproduce <experiment>`: a paper's grid of runs, resumable, then its table and figure.

An experiment (conf/reproduce/<name>.yaml) lists tasks, algorithms, seeds, the overrides shared by
all runs (the documented budget and hyperparameters), per-task overrides (`task_overrides`, e.g. a
longer budget for one task) and per-algorithm overrides (`algo_overrides`), applied in that order.
Every (task, algorithm, seed) is one run directory `<dir>/<task>_<algo>_s<seed>`:
  - finished (summary.json present): skipped;
  - started (config.json present): resumed from its latest checkpoint;
  - absent: trained.
The runs train on a backend (netmarl/backends.py): this machine's worker processes (the default; each
takes whole (task, algorithm) cells, so a cell's seeds share one compilation), a Ray cluster or a
Slurm cluster, each run in the same run directory. Killing the command (or a worker) loses at most
one evaluation interval per running run. `--archive DIR` also copies each finished run's records
(RECORDS: config, summary, metrics, evaluations; kilobytes, not its checkpoints) to DIR, mirroring the
run directories, and takes finished runs from there when their directory is missing: commit DIR and a
grid spread over machines or sessions resumes, and its tables regenerate, from the records alone.

An optional `final_eval: {episodes: E, envs: {NAME: {env option: value}}}` evaluates every trained
run's final policy greedily for E episodes on each named variant of the evaluation environment (e.g.
longer horizons) into <run>/final_eval.json, and `final_table.md/.csv` tabulates them; the
pseudo-algorithm `random` in `algos` is the uniformly random policy, evaluated the same way.

An algorithm `name@variant` in `algos` trains conf/algo/<name> with the variant's `algo_overrides`,
under its own run directories and table column (its algo.name is `name@variant`): protocols of one
algorithm side by side (e.g. vdn-ps-ceiling.yaml).

`seed_axis: vmap` trains each cell's seeds as one vmapped run `<dir>/<task>_<algo>` (tiny tasks such
as matrix games, where one compilation per cell dominates; `--seed-axis runs` overrides it when a
cell is too long for one session or machine: its seeds become separate runs); `report: {name: R, doc: PATH}` then
writes a study document with the registered report R (REPORTS) from the finished runs.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import yaml
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

CONF_DIR = Path(__file__).parent / "conf" / "reproduce"
RANDOM = "random"  # the pseudo-algorithm of the uniformly random policy (needs final_eval)
FINAL_EVAL = "final_eval.json"
RECORDS = ("config.json", "summary.json", "metrics.jsonl", "marl_eval.json", FINAL_EVAL)  # --archive
EXPERIMENTS = sorted(p.stem for p in CONF_DIR.glob("*.yaml"))
# report name -> "module:function(folder, runs, experiment, doc) -> Path" (written after the table)
REPORTS = {"decomposition-games": "netmarl.results.decomposition:write_report",
           "curves": "netmarl.results.curves_report:write_curves_report"}


@dataclasses.dataclass(frozen=True)
class Run:
    """One run of the grid."""

    task: str
    algo: str
    seed: int
    overrides: tuple[str, ...]
    path: Path
    budget: int  # env steps per seed, from the composed config (0 for the random policy)
    final_eval: dict | None = None  # {"episodes": E, "envs": {name: env options}} or None
    seeds: int = 1  # seeds of this run (vmapped): seed .. seed + seeds - 1

    @property
    def trained(self) -> bool:
        """Training finished at (at least) the budget; the random policy needs no training."""
        if self.algo == RANDOM:
            return True
        if not (self.path / "summary.json").exists():
            return False
        return json.loads((self.path / "config.json").read_text())["run"]["total_steps"] >= self.budget

    @property
    def evaluated(self) -> bool:
        """Every final evaluation of the experiment is in final_eval.json (or none is asked for)."""
        if not self.final_eval:
            return True
        path = self.path / FINAL_EVAL
        return path.exists() and set(self.final_eval["envs"]) <= set(json.loads(path.read_text())["evals"])

    @property
    def state(self) -> str:
        """done | partial (to resume, to extend to a larger budget, or to evaluate) | new."""
        if self.trained and self.evaluated:
            return "done"
        started = (self.path / "config.json").exists() or (self.path / FINAL_EVAL).exists()
        return "partial" if started else "new"


def load_experiment(name: str) -> dict:
    """A named experiment of conf/reproduce, or the path of an experiment YAML file."""
    path = Path(name) if name.endswith(".yaml") else CONF_DIR / f"{name}.yaml"
    if not path.exists():
        raise ValueError(f"unknown experiment {name!r}; accepted: {', '.join(EXPERIMENTS)} "
                         "or the path of a .yaml file")
    experiment = yaml.safe_load(path.read_text())
    missing = {"tasks", "algos", "seeds"} - set(experiment)
    if missing:
        raise ValueError(f"experiment {path} lacks {sorted(missing)}")
    _check_final_eval(experiment, path)
    _check_seed_axis(experiment.get("seed_axis", "runs"), f"experiment {path}: seed_axis")
    report = experiment.get("report")
    if report is not None and (not isinstance(report, dict) or report.get("name") not in REPORTS):
        raise ValueError(f"experiment {path}: report {report!r} must be {{name: N, doc: PATH}} with N "
                         f"among {', '.join(REPORTS)}")
    return experiment


def _check_seed_axis(value, what: str) -> None:
    if value not in ("runs", "vmap"):
        raise ValueError(f"{what} {value!r}; accepted: runs (one run per seed), vmap (one run per cell, "
                         "seeds vmapped)")


def _check_final_eval(experiment: dict, path: Path) -> None:
    final = experiment.get("final_eval")
    if final is None:
        if RANDOM in experiment["algos"]:
            raise ValueError(f"experiment {path}: algo {RANDOM!r} is only evaluated, so it needs final_eval")
        return
    episodes, envs = final.get("episodes"), final.get("envs")
    if not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"experiment {path}: final_eval.episodes {episodes!r} must be a positive integer")
    if not isinstance(envs, dict) or not envs or not all(isinstance(o, dict) for o in envs.values()):
        raise ValueError(f"experiment {path}: final_eval.envs {envs!r} must map names to env options, "
                         "e.g. {T400: {max_timestep: 400}}")


def plan(experiment: dict, root: Path, seeds: int | None = None, steps: int | None = None) -> list[Run]:
    """The grid's runs in cell order (task, algorithm), seeds 0 .. seeds - 1."""
    shared = list(experiment.get("overrides", []))
    per_task, per_algo = _keyed_overrides(experiment, "task"), _keyed_overrides(experiment, "algo")
    extra = [f"run.total_steps={steps}"] if steps is not None else []
    cells = {(task, algo): (*shared, *per_task.get(task, []), *_variant_name(algo), *per_algo.get(algo, []),
                            *extra)
             for task in experiment["tasks"] for algo in experiment["algos"]}
    budgets = {cell: _budget(*cell, overrides) for cell, overrides in cells.items()}
    seeds = seeds or experiment["seeds"]
    if experiment.get("seed_axis") == "vmap":
        return [Run(task, algo, 0, cells[task, algo], root / f"{task}_{algo}", budgets[task, algo],
                    experiment.get("final_eval"), seeds) for task, algo in cells]
    return [Run(task, algo, seed, cells[task, algo], root / f"{task}_{algo}_s{seed}", budgets[task, algo],
                experiment.get("final_eval"))
            for task, algo in cells for seed in range(seeds)]


def _keyed_overrides(experiment: dict, kind: str) -> dict[str, list[str]]:
    """`<kind>_overrides` of the experiment, each key one of its `<kind>s` (tasks or algos)."""
    keyed, known = experiment.get(f"{kind}_overrides", {}), experiment[f"{kind}s"]
    unknown = sorted(set(keyed) - set(known))
    if unknown:
        raise ValueError(f"{kind}_overrides for {unknown}, which are not among {kind}s {known}")
    return keyed


def base_algo(algo: str) -> str:
    """The conf/algo name of a grid's algorithm: `name` of `name@variant`."""
    return algo.partition("@")[0]


def _variant_name(algo: str) -> list[str]:
    """A variant `name@variant` is its own column: algo.name names it in run records and tables."""
    return [f"algo.name={algo}"] if "@" in algo else []


def _budget(task: str, algo: str, overrides: tuple[str, ...]) -> int:
    """run.total_steps of the cell's composed config (overrides may set it through an experiment)."""
    from netmarl.cli import compose

    if algo == RANDOM:
        return 0
    return compose([*overrides, f"env={task}", f"algo={base_algo(algo)}"]).run.total_steps


def execute(run: Run) -> None:
    """Trains, resumes or skips one run, in this process (compiled functions are cached)."""
    from netmarl.cli import compose
    from netmarl.train.loop import resume, train

    if not run.trained:
        (run.path / FINAL_EVAL).unlink(missing_ok=True)  # it evaluated a policy about to change
        if (run.path / "config.json").exists():
            resume(str(run.path), total_steps=run.budget, progress=False)
        else:
            train(compose(_run_overrides(run, run.algo)))
    if not run.evaluated:
        final_evaluation(run)


def _run_overrides(run: Run, algo: str) -> list[str]:
    return [*run.overrides, f"env={run.task}", f"algo={base_algo(algo)}", f"run.seed={run.seed}",
            f"run.seeds={run.seeds}", f"run.dir={run.path.parent}", f"run.id={run.path.name}",
            "run.progress=false"]


def final_evaluation(run: Run) -> None:
    """Writes <run>/final_eval.json: the final policy (or the random policy) on each evaluation env."""
    from netmarl.cli import compose
    from netmarl.train.evaluate import evaluate_run, random_policy_returns

    episodes, evals = run.final_eval["episodes"], {}
    for name, options in run.final_eval["envs"].items():
        if run.algo == RANDOM:  # any learner serves: ε = 1 ignores its parameters
            evals[name] = random_policy_returns(compose(_run_overrides(run, "iql")), episodes, options)
        else:
            evals[name] = evaluate_run(str(run.path), episodes, env_options=options)
    run.path.mkdir(parents=True, exist_ok=True)
    record = {"env": run.task, "algo": run.algo, "seed": run.seed, "evals": evals}
    (run.path / FINAL_EVAL).write_text(json.dumps(record, indent=1))


def reproduce(name: str, root: str | None = None, seeds: int | None = None, jobs: int | None = None,
              steps: int | None = None, dry_run: bool = False, backend: str = "local",
              options=None, tasks: list[str] | None = None, algos: list[str] | None = None,
              archive: str | None = None, seed_axis: str | None = None) -> Path:
    """Runs (or continues) experiment `name` on `backend` (netmarl.backends.BACKENDS, with its
    BackendOptions), or only its cells of `tasks` × `algos` (None: all, e.g. one cell per machine
    or core); writes table.md/.csv and curves.png into its folder. `archive`: a folder that keeps
    the finished runs' records (`_Archive`); `seed_axis`: runs | vmap, instead of the experiment's."""
    from netmarl.backends import BACKENDS, BackendOptions, check_backend

    options = options or BackendOptions()
    check_backend(backend, options)
    experiment = load_experiment(name)
    if seed_axis is not None:
        _check_seed_axis(seed_axis, "--seed-axis")
        experiment["seed_axis"] = seed_axis
    folder = Path(root or f"runs/reproduce/{Path(name).stem}")
    runs = plan(experiment, folder, seeds, steps)
    kept = _Archive(folder, Path(archive), runs) if archive else None
    if kept and not dry_run:
        kept.restore()
    chosen = select_cells(experiment, runs, tasks, algos)
    states = [r.state for r in chosen]
    of = "" if len(chosen) == len(runs) else f" (chosen of {len(runs)})"
    print(f"{name}: {len(chosen)} runs{of} in {folder} ({states.count('done')} done, "
          f"{states.count('partial')} to resume, {states.count('new')} new); backend={backend}, jobs={jobs}")
    if dry_run:
        for r in chosen:
            print(f"  {r.state:8s} {r.path}")
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    cells = [[r for r in chosen if (r.task, r.algo) == cell] for cell in
             dict.fromkeys((r.task, r.algo) for r in chosen)]
    todo = [cell for cell in cells if any(r.state != "done" for r in cell)]
    if todo:
        clock = _WallClock(folder, jobs, backend)
        with _progress(chosen) as update:
            def tick(steps=None):
                update(steps)
                clock.tick()
                if kept:
                    kept.save()

            BACKENDS[backend](todo, jobs, options, tick)
    if kept:
        kept.save()
    write_results(folder, runs)
    if experiment.get("report") and all(r.state == "done" for r in runs):
        write_report(experiment, folder, runs)
    return folder


def select_cells(experiment: dict, runs: list[Run], tasks: list[str] | None,
                 algos: list[str] | None) -> list[Run]:
    """The runs of the chosen tasks and algorithms (None or empty: all); a name outside the
    experiment's grid is refused, naming the accepted ones."""
    for kind, names in (("task", tasks), ("algo", algos)):
        known = experiment[f"{kind}s"]
        unknown = [n for n in names or () if n not in known]
        if unknown:
            raise ValueError(f"--{kind}s {', '.join(unknown)}: not in the experiment; accepted: "
                             f"{', '.join(known)}")
    return [r for r in runs if (not tasks or r.task in tasks) and (not algos or r.algo in algos)]


def write_report(experiment: dict, folder: Path, runs: list[Run]) -> Path:
    """The experiment's study document (its `report`), from its finished runs."""
    import importlib

    module, _, function = REPORTS[experiment["report"]["name"]].partition(":")
    doc = Path(experiment["report"].get("doc", folder / "report.md"))
    return getattr(importlib.import_module(module), function)(folder, runs, experiment, doc)


class _progress:
    """A progress bar over the env steps of every run of the grid (read from metrics files)."""

    def __init__(self, runs: list[Run]):
        self.runs = runs
        self.total = sum(r.budget for r in runs if r.algo != RANDOM)
        self.bar = Progress(TextColumn("[bold]reproduce"), BarColumn(), TextColumn("{task.fields[info]}"),
                            TimeElapsedColumn(), TimeRemainingColumn())

    def __enter__(self):
        self.bar.__enter__()
        self.task = self.bar.add_task("", total=self.total, info="")
        return self.update

    def update(self, steps: dict[str, int] | None = None) -> None:
        """Env steps from the workers' reports (`steps`: {run path: env steps}), else the metrics."""
        steps = steps or {}
        done = sum(steps.get(str(r.path.absolute())) or steps_done(r) for r in self.runs)
        finished = sum(r.state == "done" for r in self.runs)
        self.bar.update(self.task, completed=done,
                        info=f"{done / 1e6:.1f}M / {self.total / 1e6:.1f}M env steps, "
                             f"{finished}/{len(self.runs)} runs")

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)


def steps_done(run: Run) -> int:
    """Env steps of the run's latest metrics record (0 before its first)."""
    metrics = run.path / "metrics.jsonl"
    if not metrics.exists():
        return 0
    lines = metrics.read_text().splitlines()
    return json.loads(lines[-1])["env_steps"] if lines else 0


class _Archive:
    """Finished runs' records (RECORDS) under `dest`, at the same paths relative to the grid's folder
    as the run directories."""

    def __init__(self, folder: Path, dest: Path, runs: list[Run]):
        self.runs, self.saved = runs, set()
        self.where = {r.path: dest / r.path.relative_to(folder) for r in runs}

    def restore(self) -> None:
        """Copies the records of archived runs whose directory is missing, if they are done as the
        run would be (`Run.state`: a larger budget needs the checkpoint, so such a run trains afresh)."""
        for run in self.runs:
            kept = self.where[run.path]
            if run.path.exists() or dataclasses.replace(run, path=kept).state != "done":
                continue
            run.path.mkdir(parents=True)
            for name in RECORDS:
                if (kept / name).exists():
                    shutil.copy2(kept / name, run.path / name)

    def save(self) -> None:
        """Copies the records of runs finished since the last call."""
        for run in self.runs:
            if run.path in self.saved or run.state != "done":
                continue
            self.where[run.path].mkdir(parents=True, exist_ok=True)
            for name in RECORDS:
                if (run.path / name).exists():
                    shutil.copy2(run.path / name, self.where[run.path] / name)
            self.saved.add(run.path)


class _WallClock:
    """Records this invocation's wall time in <folder>/wall_time.jsonl, rewritten on every tick so a
    killed invocation keeps its time; a resumed reproduction sums its invocations."""

    def __init__(self, folder: Path, jobs: int | None, backend: str):
        self.file, self.start = folder / "wall_time.jsonl", time.time()
        self.earlier = self.file.read_text() if self.file.exists() else ""
        self.record = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "backend": backend, "jobs": jobs,
                       "wall_time_s": 0.0}

    def tick(self) -> None:
        self.record["wall_time_s"] = round(time.time() - self.start, 1)
        self.file.write_text(self.earlier + json.dumps(self.record) + "\n")


def write_results(folder: Path, runs: list[Run]) -> Path:
    """table.md/.csv and curves.png from the finished runs of the grid (final_table.md/.csv too if
    the experiment has final evaluations)."""
    from netmarl.results.table import (FINAL_CAPTION, load_curves, load_final, markdown, plot, table_cells,
                                       to_csv)

    unfinished = sum(r.state != "done" for r in runs)
    if unfinished:
        print(f"{unfinished} runs unfinished: no table written")
        return folder
    tables = {"table": load_curves([r.path for r in runs if r.algo != RANDOM])}
    if runs[0].final_eval:
        tables["final_table"] = load_final([r.path for r in runs])
    for name, curves in tables.items():
        cells = table_cells(curves)
        text = markdown(cells, caption=FINAL_CAPTION if name == "final_table" else None)
        (folder / f"{name}.md").write_text(text)
        (folder / f"{name}.csv").write_text(to_csv(cells))
        print(text)
    plot(tables["table"], folder / "curves.png")
    print(f"written: {', '.join(f'{folder / n}.md' for n in tables)} (and .csv), {folder / 'curves.png'}")
    return folder
