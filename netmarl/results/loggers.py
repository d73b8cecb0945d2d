"""Loggers: where a run's metrics records go, between chunks, on the host (`run.loggers`).

    run.loggers=[jsonl]                       # the default: runs/<id>/metrics.jsonl
    run.loggers=[jsonl,tensorboard,wandb]     # also runs/<id>/tensorboard/seed_<s>/, runs/<id>/wandb/

A record is one dict per (evaluation point, seed) as `netmarl train` writes it to metrics.jsonl
(greedy returns, training return, losses, ε, counters, communication diagnostics, elapsed_s).
TensorBoard and W&B receive its numeric fields as scalars (`scalars`), at step = the seed's env
steps, plus progress/env_steps_per_s = env_steps / elapsed_s. metrics.jsonl is the run's record
(summary, resume, `netmarl table` and `netmarl plot` read it), so `jsonl` is always among them.

TensorBoard: event files written with tensorboard's own event writer (no TensorFlow or torch), one
folder per seed. W&B: offline (WANDB_MODE=offline unless the environment sets another mode; no
network needed; `wandb sync runs/<id>/wandb/offline-run-*` uploads later), one W&B run per seed,
grouped by run directory. Both packages are imported when a run uses them (`netmarl[loggers]`).

A resumed run continues the records after its checkpoint; points between the checkpoint and the
kill were logged before and are logged again. TensorBoard hides the older copy (each writer starts
with a SessionLog.START at its first step, which TensorBoard's reader treats as a restart and purges
the points at or after it); W&B's offline history keeps both.
"""
from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from netmarl.results.rundir import RunDir


class Logger(Protocol):
    """Receives a run's metrics records between chunks."""

    def write(self, records: list[dict]) -> None:
        """Logs one evaluation point's records (one dict per seed)."""

    def close(self) -> None:
        """Flushes and releases what the logger holds."""


COMM = ("jtd_error", "disagreement", "mean_degree", "connected", "floats_sent")  # networked agents
PROGRESS = ("episodes", "updates", "elapsed_s")
NOT_SCALARS = ("point", "seed", "env_steps")  # the step and the run's coordinates


def scalars(record: dict) -> dict[str, float]:
    """The tagged scalars of one metrics record, e.g. {"eval/return": 0.8, "train/loss": 0.01}.

    Tags: eval/<x> for eval_<x>, comm/<x> for the communication diagnostics, progress/<x> for the
    counters, elapsed seconds and env_steps_per_s (env steps / elapsed seconds), train/<x> for the
    rest (train_return as train/return, losses, ε, ...). Lists and non-numbers (eval_returns, agents) are left out.
    """
    tags = {}
    for name, value in record.items():
        if name in NOT_SCALARS or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        group = ("eval" if name.startswith("eval_") else "comm" if name in COMM
                 else "progress" if name in PROGRESS else "train")
        tags[f"{group}/{name.removeprefix(group + '_')}"] = float(value)
    if record.get("elapsed_s"):
        tags["progress/env_steps_per_s"] = record["env_steps"] / record["elapsed_s"]
    return tags


class JsonlLogger:
    """runs/<id>/metrics.jsonl, one line per record (RunDir.append_metrics: atomic)."""

    def __init__(self, run: RunDir, config: dict):
        self.run = run

    def write(self, records: list[dict]) -> None:
        self.run.append_metrics(records)

    def close(self) -> None:
        pass


class TensorBoardLogger:
    """runs/<id>/tensorboard/seed_<s>/events.out.tfevents.*, scalars at step = env steps."""

    def __init__(self, run: RunDir, config: dict):
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._pb, self._summary, self._writer_cls = event_pb2, summary_pb2, EventFileWriter
        self.folder = run.path / "tensorboard"
        self._writers: dict[int, EventFileWriter] = {}
        self._last: dict[int, int] = {}  # seed -> last step written

    def write(self, records: list[dict]) -> None:
        for record in records:
            seed, step = record["seed"], int(record["env_steps"])
            writer = self._writer(seed)
            if step <= self._last.get(seed, -1) or seed not in self._last:
                # a (re)start: TensorBoard's reader drops what an earlier writer logged at >= step
                start = self._pb.SessionLog(status=self._pb.SessionLog.START)
                writer.add_event(self._pb.Event(wall_time=time.time(), step=step, session_log=start))
            values = [self._summary.Summary.Value(tag=tag, simple_value=value)
                      for tag, value in scalars(record).items()]
            writer.add_event(self._pb.Event(wall_time=time.time(), step=step,
                                            summary=self._summary.Summary(value=values)))
            self._last[seed] = step
        for writer in self._writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()

    def _writer(self, seed: int):
        if seed not in self._writers:
            self._writers[seed] = self._writer_cls(str(self.folder / f"seed_{seed}"))
        return self._writers[seed]


class WandbLogger:
    """One W&B run per seed under runs/<id>/wandb/, offline unless WANDB_MODE says otherwise."""

    def __init__(self, run: RunDir, config: dict):
        import wandb

        self._wandb, self.run, self.config = wandb, run, config
        self.mode = os.environ.get("WANDB_MODE", "offline")
        self._runs: dict = {}

    def write(self, records: list[dict]) -> None:
        for record in records:
            self._run(record["seed"]).log({"env_steps": record["env_steps"], **scalars(record)})

    def close(self) -> None:
        for wandb_run in self._runs.values():
            wandb_run.finish()

    def _run(self, seed: int):
        if seed not in self._runs:
            name = self.run.path.name
            wandb_run = self._wandb.init(
                mode=self.mode, dir=str(self.run.path), project=os.environ.get("WANDB_PROJECT", "netmarl"),
                group=name, name=f"{name}-seed{seed}", id=_wandb_id(name, seed), resume="allow",
                config={**self.config, "seed": seed}, reinit="create_new",
                settings=self._wandb.Settings(silent=True, console="off", disable_git=True,
                                              save_code=False, x_disable_stats=True))
            wandb_run.define_metric("env_steps")
            wandb_run.define_metric("*", step_metric="env_steps")
            self._runs[seed] = wandb_run
        return self._runs[seed]


def _wandb_id(name: str, seed: int) -> str:
    """A W&B run id from the run directory's name (W&B ids allow letters, digits, - and _)."""
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)
    return f"{safe}-seed{seed}"[-120:]


# name -> (constructor(run, config dict), the module it needs, the pip extra that installs it)
LOGGERS: dict[str, tuple[Callable[[RunDir, dict], Logger], str | None, str | None]] = {
    "jsonl": (JsonlLogger, None, None),
    "tensorboard": (TensorBoardLogger, "tensorboard", "loggers"),
    "wandb": (WandbLogger, "wandb", "loggers"),
}
REQUIRED = "jsonl"  # metrics.jsonl is the run's record


def check_loggers(names: list[str], path: str = "run.loggers") -> None:
    """Refuses unknown logger names and a list without jsonl, naming them and the accepted ones."""
    unknown = [n for n in names if n not in LOGGERS]
    if unknown:
        verb = "is not a logger" if len(unknown) == 1 else "are not loggers"
        raise ValueError(f"{path}={names!r}: {', '.join(map(repr, unknown))} {verb}; "
                         f"accepted: {', '.join(LOGGERS)}")
    if REQUIRED not in names:
        raise ValueError(f"{path}={names!r} must include {REQUIRED}: metrics.jsonl is the run's record "
                         f"(summary, resume, netmarl table and plot read it), e.g. "
                         f"{path}=[{','.join([REQUIRED, *names])}]")


def check_installed(names: list[str]) -> None:
    """Raises ImportError naming the extra to install when a logger's package is missing."""
    for name in names:
        _, module, extra = LOGGERS[name]
        if module is not None and importlib.util.find_spec(module) is None:
            raise ImportError(f"run.loggers: {name} needs the {module} package: "
                              f"pip install 'netmarl[{extra}]'")


class Loggers:
    """Every logger of `run.loggers`, as one: write(records) to all, close() all."""

    def __init__(self, names: list[str], run: RunDir, config: dict):
        check_loggers(names)
        check_installed(names)
        self.loggers: list[Logger] = []
        try:
            for name in dict.fromkeys(names):  # a name given twice logs once
                self.loggers.append(LOGGERS[name][0](run, config))
        except BaseException:
            self.close()
            raise

    def write(self, records: list[dict]) -> None:
        for logger in self.loggers:
            logger.write(records)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()

    def __enter__(self) -> Loggers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
