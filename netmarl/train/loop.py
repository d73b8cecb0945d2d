"""The host loop: chunks of jitted training, then evaluation, logging, checkpoint, progress bar.

`progress_bar`, `finish_run` and `report` are shared with the MPI runtime's environment rank
(netmarl/distributed/runtime.py), so `netmarl agent` shows and writes what `netmarl train` does."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
import time
from datetime import datetime

import jax
import jax.numpy as jnp
import numpy as np
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from netmarl.config import TrainConfig, to_dict
from netmarl.results.loggers import Loggers, check_installed
from netmarl.results.rundir import RunDir, eval_curve, marl_eval_export
from netmarl.train.runner import Carry, ChunkStats, Trainer, make_trainer


def train(config: TrainConfig, stop_after: int | None = None) -> RunDir:
    """Runs a new training run; returns its run directory.

    `stop_after`: stop after this evaluation point, as if killed (tests and staged runs).
    """
    trainer_for(config)  # refuses a bad config before anything is written
    check_installed(config.run.loggers)
    return _execute(RunDir.create(_run_path(config), to_dict(config)), config, stop_after)


def resume(path: str, total_steps: int | None = None, progress: bool | None = None,
           stop_after: int | None = None) -> RunDir:
    """Continues a run from its latest checkpoint with its saved config (optionally a new budget)."""
    run = RunDir.open(path)
    config = run.read_config()
    changes = {k: v for k, v in (("total_steps", total_steps), ("progress", progress)) if v is not None}
    config = dataclasses.replace(config, run=dataclasses.replace(config.run, **changes))
    if changes.get("total_steps") is not None:
        run.write_json("config.json", to_dict(config))
    return _execute(run, config, stop_after)


def _execute(run: RunDir, config: TrainConfig, stop_after: int | None) -> RunDir:
    trainer = trainer_for(config)
    points = math.ceil(config.run.total_steps / config.run.eval_interval)
    with Loggers(config.run.loggers, run, to_dict(config)) as log:
        carry, point, elapsed = _start(trainer, run, config.run.seed, log)
        with progress_bar(config, carry.env_steps) as progress:
            while point < points and (stop_after is None or point < stop_after):
                point += 1
                until = min(point * config.run.eval_interval, config.run.total_steps)
                tic = time.perf_counter()
                carry, stats = trainer.run_chunk(carry, jnp.int32(until))
                _check_finite(stats, run, point, until, config.run.seed)
                records = _records(trainer, carry, point, stats, config.run.seed)
                elapsed += time.perf_counter() - tic
                log.write([r | {"elapsed_s": elapsed} for r in records])
                run.save_checkpoint(carry, point, {"elapsed": elapsed})
                progress(carry.env_steps, records)
    if point >= points:
        finish_run(run, config, elapsed)
    return run


class TrainingDiverged(ValueError):
    """A chunk produced a NaN or infinite training statistic (loss, gradient norm, ...)."""


def _check_finite(stats: ChunkStats, run: RunDir, point: int, until: int, first_seed: int) -> None:
    """Stops the run, before anything of the chunk is saved, if any statistic is NaN or inf."""
    for name, value in (stats.learn._asdict() | {"train_return": stats.return_sum}).items():
        value = np.atleast_1d(np.asarray(value))  # [seeds]
        bad = ~np.isfinite(value)
        if bad.any():
            raise TrainingDiverged(
                f"training diverged: {name} is {value[bad][0]} for seed(s) "
                f"{[first_seed + int(s) for s in np.flatnonzero(bad)]} in the chunk ending at env step "
                f"{until} (evaluation point {point}); the last good checkpoint (point {point - 1}) is "
                f"kept in {run.path} — lower algo.lr or set algo.grad_clip, then start a new run")


def trainer_for(config: TrainConfig) -> Trainer:
    """A Trainer for `config`, reused (with its compiled functions) across runs that differ only in
    settings the jitted functions do not read (budget, evaluation interval, run directory)."""
    key = json.dumps({**to_dict(config), "run": {k: v for k, v in to_dict(config.run).items()
                                               if k not in _HOST_ONLY}}, sort_keys=True)
    if key not in _TRAINERS:
        _TRAINERS.clear()  # keep only the latest, so memory does not grow with each new config
        _TRAINERS[key] = make_trainer(config)
    return _TRAINERS[key]


_HOST_ONLY = ("total_steps", "eval_interval", "dir", "id", "progress", "seed", "loggers")
_TRAINERS: dict[str, Trainer] = {}


def _start(trainer: Trainer, run: RunDir, first_seed: int, log: Loggers) -> tuple[Carry, int, float]:
    """A fresh carry evaluated at point 0 (logged), or the latest checkpoint of a resumed run."""
    carry = trainer.init_seeds(first_seed)
    if run.latest_checkpoint() is not None:
        carry, meta = run.load_checkpoint(carry)
        run.truncate_metrics(meta["point"])
        return carry, meta["point"], meta["elapsed"]
    run.truncate_metrics(-1)  # a start killed before its first checkpoint may have left records
    log.write(_records(trainer, carry, 0, None, first_seed))
    run.save_checkpoint(carry, 0, {"elapsed": 0.0})
    return carry, 0, 0.0


def _records(trainer: Trainer, carry: Carry, point: int, stats: ChunkStats | None,
             first_seed: int) -> list[dict]:
    """One metrics record per seed: greedy evaluation plus the chunk's training statistics (the
    host loop adds `elapsed_s`, the run's seconds of training and evaluation up to this point)."""
    returns, outcomes = trainer.evaluate_outcomes(carry, jnp.int32(point))
    returns = np.asarray(returns)  # [seeds, episodes]
    outcomes = {name: np.asarray(value) for name, value in outcomes.items()}  # e.g. {"won": ...}
    env_steps = np.asarray(carry.env_steps)
    epsilon = np.asarray(jax.vmap(trainer.learner.epsilon)(carry.env_steps))
    records = []
    for s in range(returns.shape[0]):
        record = {"point": point, "seed": first_seed + s, "env_steps": int(env_steps[s]),
                  "episodes": int(carry.episodes[s]), "updates": int(carry.learner.updates[s]),
                  "epsilon": float(epsilon[s]), "eval_return": float(returns[s].mean()),
                  "eval_return_std": float(returns[s].std()), "eval_returns": returns[s].tolist()}
        record.update({f"eval_{name}": float(value[s].mean()) for name, value in outcomes.items()})
        if stats is not None:
            record.update(_means(jax.tree.map(lambda x: np.asarray(x)[s], stats)))
        records.append(record)
    return records


def _means(stats: ChunkStats) -> dict:
    """Per-episode and per-update means of a chunk's sums."""
    per_update = max(float(stats.updates), 1.0)
    means = {"train_return": float(stats.return_sum / max(float(stats.episodes), 1.0))}
    return means | {k: float(v) / per_update for k, v in stats.learn._asdict().items()}


def finish_run(run: RunDir, config: TrainConfig, elapsed: float) -> None:
    """Writes summary.json (headline numbers; `elapsed` = seconds of training and evaluation) and
    marl_eval.json of a completed run from its metrics."""
    records = run.metrics()
    curve = eval_curve(records)
    best, final = max(curve, key=lambda c: c.mean), curve[-1]
    steps = sum(r["env_steps"] for r in records if r["point"] == final.point)
    run.write_json("summary.json", {
        "env": config.env.name, "algo": config.algo.name, "seeds": config.run.seeds,
        "env_steps_per_seed": config.run.total_steps, "final_eval_return": final.mean,
        "max_eval_return": best.mean, "max_eval_point": best.point,
        "max_eval_env_steps": best.env_steps,
        "wall_time_s": elapsed, "env_steps_per_s": steps / max(elapsed, 1e-9)})
    family = config.env.name.split(":")[0].split("-")[0]
    run.write_json("marl_eval.json", marl_eval_export(records, family, config.env.name, config.algo.name))


def _run_path(config: TrainConfig) -> str:
    run_id = config.run.id or f"{config.env.name.replace(':', '_')}_{config.algo.name}_" \
                              f"{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    return f"{config.run.dir}/{run_id}"


PLAIN_INTERVAL_S = 10.0  # without a terminal: seconds between progress lines (besides evaluations)


@contextlib.contextmanager
def progress_bar(config: TrainConfig, env_steps=0, plain: bool | None = None):
    """A progress bar over env steps (mean over seeds, [seeds] or []); yields update(env_steps,
    records=None), called with the evaluation records at each evaluation point and, optionally,
    with the env steps alone in between.

    `plain` False: a rich progress bar; True: one plain line per evaluation point, and at most one
    every PLAIN_INTERVAL_S seconds in between; None (default): the bar in a terminal, plain lines
    when the output is piped or written to a file. (The MPI environment rank asks for plain lines:
    mpirun gives each rank a terminal, but forwards its output line by line, so a redrawn bar
    would print one line per redraw.)"""
    if not config.run.progress:
        yield lambda env_steps, records=None: None
        return
    title, total = f"{config.algo.name} on {config.env.name}", config.run.total_steps
    if plain or (plain is None and not sys.stdout.isatty()):
        yield _plain_progress(title, total)
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("env steps"), TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
               TimeRemainingColumn()]
    with Progress(*columns) as bar:
        task = bar.add_task(title, total=total, completed=int(np.mean(env_steps)), info="")

        def update(env_steps, records=None):
            info = {} if records is None else {"info": _eval_info(records)}
            bar.update(task, completed=min(int(np.mean(env_steps)), total), **info)

        yield update


def _plain_progress(title: str, total: int):
    """update(env_steps, records=None) printing `title: done/total env steps (%), ...` lines."""
    start, last = time.perf_counter(), -math.inf

    def update(env_steps, records=None):
        nonlocal last
        now = time.perf_counter()
        if records is None and now - last < PLAIN_INTERVAL_S:
            return
        last, done = now, min(int(np.mean(env_steps)), total)
        info = "" if records is None else f", {_eval_info(records)}"
        print(f"{title}: {done:,}/{total:,} env steps ({100 * done / total:.0f}%){info}, "
              f"{now - start:.0f} s", flush=True)

    return update


def _eval_info(records: list[dict]) -> str:
    won = [r["eval_won"] for r in records if "eval_won" in r]  # battles (SMAX): the win rate too
    return (f"eval return {np.mean([r['eval_return'] for r in records]):.3f}"
            + (f", won {100 * np.mean(won):.0f}%" if won else ""))


def report(run: RunDir) -> None:
    """Prints a run's directory, its learning curve (one line per evaluation point) and, once it is
    complete, its summary line (best evaluation return, env steps/s, wall time)."""
    print(f"run directory: {run.path}")
    for point in eval_curve(run.metrics()):
        print(f"  env steps {point.env_steps:>10,}  eval return {point.mean:.3f} ± {point.std:.3f} "
              "(over seeds)")
    if (run.path / "summary.json").exists():
        summary = run.read_json("summary.json")
        print(f"max eval return {summary['max_eval_return']:.3f} at ~{summary['max_eval_env_steps']:,} "
              f"env steps; {summary['env_steps_per_s']:,.0f} env steps/s over {summary['wall_time_s']:.0f} s")
    sys.stdout.flush()
