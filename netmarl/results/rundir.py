"""The run directory: resolved config, metrics (JSONL), checkpoints, summary, marl-eval export.

    runs/<id>/config.json        the resolved TrainConfig
    runs/<id>/metrics.jsonl      one line per (evaluation point, seed)
    runs/<id>/checkpoints/<k>/   orbax checkpoint of the Carry after evaluation point k (last kept)
    runs/<id>/summary.json       headline numbers, written when the run finishes
    runs/<id>/marl_eval.json     evaluation returns in the marl-eval JSON layout
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp


class RunDir:
    """Reads and writes one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | Path, config: dict) -> RunDir:
        run = cls(path)
        if run.path.exists():
            raise FileExistsError(f"run directory {run.path} already exists; continue it with "
                                  f"`netmarl train resume={run.path}`, or choose another run.id")
        (run.path / "checkpoints").mkdir(parents=True)
        run.write_json("config.json", config)
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        run = cls(path)
        if not (run.path / "config.json").is_file():
            raise FileNotFoundError(f"{run.path} is not a netmarl run directory (no config.json)")
        return run

    def read_json(self, name: str):
        return json.loads((self.path / name).read_text())

    def write_json(self, name: str, data) -> None:
        tmp = self.path / f".{name}.tmp"
        tmp.write_text(json.dumps(data, indent=2, default=_plain))
        tmp.replace(self.path / name)

    # --- metrics ------------------------------------------------------------------------------

    def append_metrics(self, records: list[dict]) -> None:
        with open(self.path / "metrics.jsonl", "a") as f:
            f.writelines(json.dumps(record, default=_plain) + "\n" for record in records)

    def metrics(self) -> list[dict]:
        file = self.path / "metrics.jsonl"
        if not file.exists():
            return []
        return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]

    def truncate_metrics(self, last_point: int) -> None:
        """Drops records of evaluation points after `last_point` (re-run after a resume)."""
        kept = [r for r in self.metrics() if r["point"] <= last_point]
        (self.path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))

    # --- checkpoints ----------------------------------------------------------------------------

    def save_checkpoint(self, carry, point: int, meta: dict) -> None:
        """Saves the carry after evaluation point `point`, then removes older checkpoints."""
        target = self.path / "checkpoints" / str(point)
        checkpointer = ocp.StandardCheckpointer()
        checkpointer.save(target.absolute(), {"leaves": jax.tree.leaves(carry)}, force=True)
        checkpointer.wait_until_finished()
        (target / "netmarl_meta.json").write_text(json.dumps({**meta, "point": point}, default=_plain))
        for old in self._checkpoints()[:-1]:
            shutil.rmtree(old)

    def latest_checkpoint(self) -> Path | None:
        done = [c for c in self._checkpoints() if (c / "netmarl_meta.json").exists()]
        return done[-1] if done else None

    def load_checkpoint(self, template):
        """Restores the latest checkpoint into the structure of `template`: (carry, meta)."""
        path = self.latest_checkpoint()
        if path is None:
            raise FileNotFoundError(f"no complete checkpoint in {self.path / 'checkpoints'}")
        leaves, treedef = jax.tree.flatten(template)
        abstract = {"leaves": [ocp.utils.to_shape_dtype_struct(x) for x in leaves]}
        try:
            restored = ocp.StandardCheckpointer().restore(path.absolute(), abstract)["leaves"]
        except Exception as error:  # orbax raises many types; name the file and the cause
            raise ValueError(f"checkpoint {path} is corrupt or does not match this run's config "
                             f"({type(error).__name__}: {error})") from error
        meta = json.loads((path / "netmarl_meta.json").read_text())
        return jax.tree.unflatten(treedef, restored), meta

    def _checkpoints(self) -> list[Path]:
        folder = self.path / "checkpoints"
        found = [p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()] if folder.exists() else []
        return sorted(found, key=lambda p: int(p.name))


class CurvePoint(NamedTuple):
    """One evaluation point of a run, over its seeds."""

    point: int
    env_steps: int  # mean over seeds
    mean: float  # mean over seeds of the per-seed mean greedy return
    std: float  # spread over seeds


def eval_curve(records: list[dict]) -> list[CurvePoint]:
    """The learning curve of a run's metrics records, in evaluation-point order."""
    by_point: dict[int, list[dict]] = {}
    for r in records:
        by_point.setdefault(r["point"], []).append(r)
    return [CurvePoint(p, int(np.mean([r["env_steps"] for r in rs])),
                       float(np.mean([r["eval_return"] for r in rs])),
                       float(np.std([r["eval_return"] for r in rs])))
            for p, rs in sorted(by_point.items())]


def marl_eval_export(records: list[dict], env_name: str, task: str, algo: str) -> dict:
    """Evaluation returns in marl-eval's layout: env -> task -> algo -> seed_k -> step_j."""
    runs: dict = {}
    for r in sorted(records, key=lambda r: (r["seed"], r["point"])):
        run = runs.setdefault(f"seed_{r['seed']}", {})
        run[f"step_{r['point']}"] = {"step_count": r["env_steps"], "return": r["eval_returns"]}
        run["absolute_metrics"] = {"return": r["eval_returns"]}
    return {env_name: {task: {algo: runs}}}


def _plain(x):
    """JSON fallback for numpy/jax scalars and arrays."""
    return np.asarray(x).tolist()
