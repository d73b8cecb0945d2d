"""The `netmarl` command.

    netmarl train algo=vdn env=lbf-easy seeds=3 run.total_steps=500000
    netmarl train resume=runs/<id> [steps=N]
    netmarl train -m algo=vdn,qmix seed=0,1 [hydra/launcher=submitit_slurm]   (a sweep; netmarl/sweep.py)
    netmarl eval runs/<id> --episodes 100 --render out.gif [--env-option max_timestep=1000]
    netmarl table runs/a runs/b ... [--out results/table]   (Markdown + CSV, the paper's metric)
    netmarl plot runs/a runs/b ... --out curves.png
    netmarl reproduce dvdn-lbf [--seeds 10] [--jobs 2] [--backend local|ray|slurm] (docs/scaling.md)
    mpirun -n <N+1> netmarl agent algo=dvdn env=lbf-tiny run.id=<id> [--timeout 300]
                                                          (one process per agent; docs/deployment.md)
"""
from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import sys
from pathlib import Path

CONF_DIR = Path(__file__).parent / "conf"
# Short forms accepted on the command line for frequent run settings.
ALIASES = {"seeds": "run.seeds", "seed": "run.seed", "steps": "run.total_steps", "id": "run.id"}
# With resume=<run dir>, only these settings may be given (the run keeps its saved config).
RESUME_KEYS = {"run.total_steps": int, "run.progress": lambda v: v.lower() in ("true", "1", "yes")}


def compose(overrides: list[str]):
    """Composes the Hydra config (conf/) with command-line overrides into a TrainConfig.

    Compositions are remembered by their overrides (one takes ~0.1 s of Hydra and OmegaConf; a
    reproduction plans and starts every cell of its grid): each call returns its own copy."""
    return copy.deepcopy(_compose(tuple(overrides)))


@functools.lru_cache(maxsize=1024)
def _compose(overrides: tuple[str, ...]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.config_store import ConfigStore
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from netmarl.config import TrainConfig

    if "base_config.yaml" not in ConfigStore.instance().repo:  # converting TrainConfig: 15 % of a compose
        ConfigStore.instance().store(name="base_config", node=TrainConfig)
    try:
        with initialize_config_dir(str(CONF_DIR), version_base=None):
            cfg = hydra_compose("config", overrides=[_expand(o) for o in overrides])
        return OmegaConf.to_object(cfg)
    except (HydraException, OmegaConfBaseException) as error:
        raise SystemExit(f"netmarl: bad configuration: {_wrong_type(str(error)) or error}"
                         f"{_accepted_keys(str(error))}") from None


def _wrong_type(message: str) -> str:
    """For a value Hydra cannot convert to its field's type: the field, its type and range."""
    import re

    from netmarl.config import field_help

    match = re.search(r"Error merging override ([\w.]+)=(.*)", message)
    expected = field_help(match[1]) if match else ""
    return f"{match[1]}={match[2]!r} is not accepted; expected {expected}" if expected else ""


def _accepted_keys(message: str) -> str:
    """For an unknown key `a.b.c`, the keys that `a.b` accepts (from the config dataclasses)."""
    import dataclasses
    import re

    from netmarl.config import TrainConfig

    match = re.search(r"Could not override '([\w.]+)'", message)
    if not match:
        return ""
    node, parts = TrainConfig(), match[1].split(".")[:-1]
    for part in parts:
        node = getattr(node, part, None)
    if not dataclasses.is_dataclass(node):
        return ""
    where = ".".join(parts) or "the top level"
    return f"\nAccepted keys under {where}: {', '.join(f.name for f in dataclasses.fields(node))}"


def _expand(override: str) -> str:
    """Applies ALIASES, and lets `env=<id>` name any environment id that has no config file."""
    key, sep, value = override.partition("=")
    if not sep:
        raise SystemExit(f"netmarl: override {override!r} is not of the form key=value")
    key = ALIASES.get(key, key)
    if key == "env" and not (CONF_DIR / "env" / f"{value}.yaml").exists():
        return f"env.name={value}"
    if key.startswith(("env.options.", "env.eval_options.")):  # free-form env options: add or override
        return f"++{key}={value}"
    return f"{key}={value}"


def cmd_train(args) -> None:
    from netmarl.train.loop import report, resume, train

    resume_at = [o.partition("=")[2] for o in args.overrides if o.startswith("resume=")]
    if args.multirun:
        if resume_at:
            raise SystemExit("netmarl: resume= is for one run; resume each run of a sweep on its own")
        from netmarl.sweep import run_sweep
        return run_sweep(args.overrides)
    try:
        if resume_at:
            run = resume(resume_at[-1], **_resume_options(args.overrides))
        else:
            run = train(compose(args.overrides))  # refuses a bad config (environment included) first
    except (ValueError, FileExistsError, FileNotFoundError, ImportError) as error:
        raise SystemExit(f"netmarl: {error}") from None
    report(run)


def _resume_options(overrides: list[str]) -> dict:
    """total_steps / progress given with resume=...; anything else is refused by name."""
    options = {}
    for override in overrides:
        key, _, value = override.partition("=")
        key = ALIASES.get(key, key)
        if key == "resume":
            continue
        if key not in RESUME_KEYS:
            raise SystemExit(f"netmarl: {override!r} cannot be changed when resuming (the run keeps "
                             f"its saved config); accepted with resume=: {', '.join(RESUME_KEYS)}")
        options[key.split(".")[1]] = RESUME_KEYS[key](value)
    return options


def cmd_eval(args) -> None:
    from netmarl.train.evaluate import evaluate_run

    try:
        result = evaluate_run(args.run_dir, args.episodes, args.render, args.seed_index,
                              parse_options(args.env_option))
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"netmarl: {error}") from None
    print(json.dumps(result, indent=2))


def parse_options(pairs: list[str]) -> dict:
    """["max_timestep=1000", ...] -> {"max_timestep": 1000, ...} (values read as YAML scalars)."""
    import yaml

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--env-option {pair!r} is not of the form KEY=VALUE")
        options[key] = yaml.safe_load(value)
    return options


def cmd_table(args) -> None:
    from netmarl.results.table import load_curves, markdown, table_cells, to_csv

    try:
        cells = table_cells(load_curves(args.run_dirs))
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"netmarl: {error}") from None
    text = markdown(cells, args.digits)
    print(text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".md").write_text(text)
        out.with_suffix(".csv").write_text(to_csv(cells))
        print(f"written: {out.with_suffix('.md')}, {out.with_suffix('.csv')}")


def cmd_plot(args) -> None:
    from netmarl.results.table import load_curves, plot

    try:
        print(f"written: {plot(load_curves(args.run_dirs), args.out)}")
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"netmarl: {error}") from None


def cmd_reproduce(args) -> None:
    from netmarl.backends import BackendOptions, GridFailed
    from netmarl.reproduce import reproduce

    if args.jobs is not None and args.jobs < 1:
        raise SystemExit(f"netmarl: --jobs {args.jobs} must be at least 1")
    options = BackendOptions(args.address, args.retries, args.slurm_partition, args.slurm_time,
                             tuple(args.slurm_option), args.slurm_executor)
    try:
        reproduce(args.experiment, args.dir, args.seeds, args.jobs, args.steps, args.dry_run, args.backend,
                  options, _names(args.tasks), _names(args.algos), args.archive, args.seed_axis)
    except (ValueError, FileNotFoundError, ImportError, GridFailed) as error:
        raise SystemExit(f"netmarl: {error}") from None


def _names(text: str | None) -> list[str] | None:
    """A comma-separated list of --tasks / --algos (None: all)."""
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def _cluster_arguments(rep: argparse.ArgumentParser) -> None:
    """netmarl reproduce's backend options (netmarl/backends.py, docs/scaling.md)."""
    rep.add_argument("--backend", default="local", help="where the runs train: local (worker processes "
                     "here), ray (a Ray cluster), slurm (Slurm through submitit)")
    rep.add_argument("--address", help="ray: auto or HOST:PORT of a running cluster (default: start "
                     "one on this machine)")
    rep.add_argument("--retries", type=int, default=3, help="ray, slurm: new attempts of a run whose "
                     "worker, node or job died (it resumes from its latest checkpoint)")
    rep.add_argument("--slurm-partition", help="slurm: the partition of the jobs")
    rep.add_argument("--slurm-time", type=int, metavar="MINUTES", help="slurm: time limit of a job "
                     "(a run stopped by it is requeued and resumes)")
    rep.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE",
                     help="slurm: any other sbatch option, e.g. account=abc (repeatable)")
    rep.add_argument("--slurm-executor", default="slurm", help="slurm: slurm (sbatch), or local "
                     "(submitit's local executor: the jobs as processes here, no cluster)")


def cmd_agent(args) -> None:
    from netmarl.distributed.runtime import run_agents

    try:
        config = compose(args.overrides)
        run_agents(config, args.timeout)
    except (ValueError, FileExistsError, FileNotFoundError, ImportError) as error:
        print(f"netmarl: {error}", file=sys.stderr, flush=True)
        _abort_mpi(2)


def _abort_mpi(code: int) -> None:
    """Exits; under MPI, aborts every process of the job (a lone exit would leave peers waiting)."""
    if "mpi4py.MPI" in sys.modules:
        sys.modules["mpi4py.MPI"].COMM_WORLD.Abort(code)
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="netmarl", description="Cooperative MARL in JAX.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train (or resume) a run; Hydra overrides key=value")
    train.add_argument("overrides", nargs="*", help="e.g. algo=qmix env=lbf-medium seeds=5 "
                       "run.total_steps=2000000 (aliases: " + ", ".join(ALIASES) + ")")
    train.add_argument("-m", "--multirun", action="store_true", help="a Hydra sweep: comma-separated "
                       "values (algo=vdn,qmix seed=0,1) give one run each, launched by hydra/launcher= "
                       "basic (default), submitit_local or submitit_slurm (netmarl/sweep.py)")
    train.set_defaults(func=cmd_train)
    ev = sub.add_parser("eval", help="greedy evaluation of a run's latest checkpoint")
    ev.add_argument("run_dir")
    ev.add_argument("--episodes", type=int, default=100)
    ev.add_argument("--render", metavar="OUT.gif", help="save one greedy episode as a GIF")
    ev.add_argument("--seed-index", type=int, default=0, help="which seed of the run to render")
    ev.add_argument("--env-option", action="append", default=[], metavar="KEY=VALUE",
                    help="override an option of the evaluation environment, e.g. max_timestep=1000")
    ev.set_defaults(func=cmd_eval)
    table = sub.add_parser("table", help="the paper's table (max over evaluations, 95 %% CI over seeds)")
    table.add_argument("run_dirs", nargs="+")
    table.add_argument("--out", help="write OUT.md and OUT.csv")
    table.add_argument("--digits", type=int, default=2)
    table.set_defaults(func=cmd_table)
    plot = sub.add_parser("plot", help="learning curves with 95 %% bootstrap CI bands (PNG)")
    plot.add_argument("run_dirs", nargs="+")
    plot.add_argument("--out", default="curves.png")
    plot.set_defaults(func=cmd_plot)
    rep = sub.add_parser("reproduce", help="run a paper's experiment (resumes; skips finished runs)")
    rep.add_argument("experiment", help="dvdn-lbf (conf/reproduce/*.yaml) or an experiment .yaml")
    rep.add_argument("--dir", help="parent of the run directories (default runs/reproduce/<experiment>)")
    rep.add_argument("--seeds", type=int, help="seeds per cell (default: the experiment's)")
    rep.add_argument("--jobs", type=int, help="local: worker processes (default 1); ray without "
                     "--address: CPUs of the Ray instance started here; slurm: most jobs running at once")
    rep.add_argument("--steps", type=int, help="env steps per seed (default: the experiment's budget)")
    rep.add_argument("--dry-run", action="store_true", help="list the runs and their state only")
    rep.add_argument("--tasks", help="only these tasks of the experiment (comma-separated; default all)")
    rep.add_argument("--algos", help="only these algorithms of the experiment (comma-separated; default "
                     "all), e.g. one cell per machine or core: --tasks lbf-easy --algos vdn_ps@benchmark")
    rep.add_argument("--archive", help="also keep each finished run's records (config, metrics, "
                     "evaluations; no checkpoints) in this folder, and take finished runs from it when "
                     "their directory is missing (e.g. docs/results/runs/<experiment>; commit it)")
    rep.add_argument("--seed-axis", help="runs (one run per seed) or vmap (one run per cell), instead of "
                     "the experiment's seed_axis: runs spreads a long vmapped cell's seeds over sessions")
    _cluster_arguments(rep)
    rep.set_defaults(func=cmd_reproduce)
    agent = sub.add_parser("agent", help="one networked agent per MPI process: mpirun -n N+1 "
                           "netmarl agent algo=dvdn ... (rank 0 runs the environment)")
    agent.add_argument("overrides", nargs="*", help="as for train; run.id is required")
    agent.add_argument("--timeout", type=float, default=300.0,
                       help="deadline in seconds of every message exchange (a hung peer fails the run)")
    agent.set_defaults(func=cmd_agent)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)


if __name__ == "__main__":
    main(sys.argv[1:])
