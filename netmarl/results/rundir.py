"""The run directory: resolved config, metrics (JSONL), checkpoints, summary, marl-eval export.

    runs/<id>/config.json        the resolved TrainConfig
    runs/<id>/metrics.jsonl      one line per (evaluation point, seed)
    runs/<id>/checkpoints/<k>/   orbax checkpoint of the Carry after evaluation point k (the last
                                 two are kept; a corrupt latest one falls back to the previous)
    runs/<id>/summary.json       headline numbers, written when the run finishes
    runs/<id>/marl_eval.json     evaluation returns in the marl-eval JSON layout
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import zlib
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp


class RunDir:
    """Reads and writes one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | Path, config: dict) -> RunDir:
        """A new run directory, made complete (config.json inside) in a temporary folder and then
        renamed into place, so a killed start leaves either nothing or a resumable run."""
        run = cls(path)
        if run.path.exists():
            raise FileExistsError(f"run directory {run.path} already exists; continue it with "
                                  f"`netmarl train resume={run.path}`, or choose another run.id")
        staging = cls(run.path.with_name(f".{run.path.name}.creating"))
        shutil.rmtree(staging.path, ignore_errors=True)  # left by a start that was killed
        (staging.path / "checkpoints").mkdir(parents=True)
        staging.write_json("config.json", config)
        staging.path.rename(run.path)
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        run = cls(path)
        if not (run.path / "config.json").is_file():
            raise FileNotFoundError(f"{run.path} is not a netmarl run directory (no config.json)")
        return run

    def read_json(self, name: str):
        """A JSON file of the run; a damaged one is named with what to do."""
        file = self.path / name
        try:
            return json.loads(file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{file} is damaged ({_first_line(error)}); restore it from a copy, or "
                             f"start a new run (the run cannot be resumed without it)") from None

    def read_config(self):
        """The run's TrainConfig from config.json, checked (types, ranges, known keys)."""
        from netmarl.config import TrainConfig, check, from_dict

        try:
            config = from_dict(TrainConfig, self.read_json("config.json"))
            check(config)
        except (TypeError, ValueError, AttributeError) as error:
            if str(error).startswith(str(self.path / "config.json")):
                raise
            raise ValueError(f"{self.path / 'config.json'} does not hold a valid config "
                             f"({_first_line(error)}); restore it from a copy, or start a new run") from None
        return config

    def write_json(self, name: str, data) -> None:
        _write_atomic(self.path / name, json.dumps(data, indent=2, default=_plain))

    # --- metrics ------------------------------------------------------------------------------

    def append_metrics(self, records: list[dict]) -> None:
        """Adds records; the file is replaced atomically, so a kill never leaves half a line."""
        file = self.path / "metrics.jsonl"
        old = file.read_text() if file.exists() else ""
        _write_atomic(file, old + "".join(json.dumps(r, default=_plain) + "\n" for r in records))

    def metrics(self) -> list[dict]:
        file = self.path / "metrics.jsonl"
        if not file.exists():
            return []
        records = []
        for number, line in enumerate(file.read_text().splitlines(), 1):
            try:
                records.append(json.loads(line)) if line.strip() else None
            except json.JSONDecodeError as error:
                raise ValueError(f"{file} line {number} is damaged ({_first_line(error)}); delete that "
                                 f"line and what follows, then resume the run") from None
        return records

    def truncate_metrics(self, last_point: int) -> None:
        """Drops records of evaluation points after `last_point` (re-run after a resume)."""
        kept = [r for r in self.metrics() if r["point"] <= last_point]
        _write_atomic(self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in kept))

    # --- checkpoints ----------------------------------------------------------------------------

    def save_checkpoint(self, carry, point: int, meta: dict) -> None:
        """Saves the carry after evaluation point `point`; keeps it and the one before.

        orbax writes into a temporary folder and renames it when complete; `netmarl_meta.json`
        (written atomically, last) marks the checkpoint complete and holds a CRC-32 of every leaf."""
        target = self.path / "checkpoints" / str(point)
        leaves = jax.tree.leaves(carry)
        checkpointer = ocp.StandardCheckpointer()
        checkpointer.save(target.absolute(), {"leaves": leaves}, force=True)
        checkpointer.wait_until_finished()
        _write_atomic(target / META, json.dumps({**meta, "point": point, "crc32": _crc32(leaves)},
                                                default=_plain))
        for old in self._checkpoints()[:-KEEP]:
            (old / META).unlink(missing_ok=True)  # incomplete from now on, even if the removal is cut
            shutil.rmtree(old)
        for tmp in (self.path / "checkpoints").glob("*orbax-checkpoint-tmp*"):
            shutil.rmtree(tmp, ignore_errors=True)  # left by a run killed while saving

    def latest_checkpoint(self) -> Path | None:
        done = self._complete()
        return done[-1] if done else None

    def load_checkpoint(self, template):
        """Restores the newest readable checkpoint into the structure of `template`: (carry, meta).

        A corrupt newest checkpoint (unreadable, or leaves that fail their CRC-32) is renamed
        `<k>.corrupt` with a warning, and the one before it is used."""
        failures = []
        for path in reversed(self._complete()):
            try:
                return self._restore(path, template)
            except ValueError as error:
                failures.append(str(error))
                path.rename(path.with_name(f"{path.name}.corrupt"))
                print(f"netmarl: warning: {error}; set aside as {path.name}.corrupt, trying the "
                      "previous checkpoint", file=sys.stderr, flush=True)
        if failures:
            raise ValueError(f"no readable checkpoint in {self.path / 'checkpoints'} ({failures[-1]}); "
                             "start the run again")
        raise FileNotFoundError(f"no complete checkpoint in {self.path / 'checkpoints'}")

    def _restore(self, path: Path, template):
        leaves, treedef = jax.tree.flatten(template)
        abstract = {"leaves": [ocp.utils.to_shape_dtype_struct(x) for x in leaves]}
        try:
            meta = json.loads((path / META).read_text())
            restored = ocp.StandardCheckpointer().restore(path.absolute(), abstract)["leaves"]
        except Exception as error:  # orbax/tensorstore raise many types with pages of detail
            raise ValueError(f"checkpoint {path} is corrupt or does not match this run's config "
                             f"({type(error).__name__}: {_first_line(error)})") from None
        if meta.get("crc32") is not None and _crc32(restored) != meta["crc32"]:
            raise ValueError(f"checkpoint {path} is corrupt (its arrays fail their CRC-32 check)")
        # uncommitted arrays, like a fresh carry: a resumed run reuses the compiled chunk instead of
        # compiling a second variant for arrays committed to a device
        restored = [jnp.asarray(np.asarray(x)) for x in restored]
        return jax.tree.unflatten(treedef, restored), meta

    def _complete(self) -> list[Path]:
        return [c for c in self._checkpoints() if (c / META).exists()]

    def _checkpoints(self) -> list[Path]:
        folder = self.path / "checkpoints"
        found = [p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()] if folder.exists() else []
        return sorted(found, key=lambda p: int(p.name))


META = "netmarl_meta.json"  # marks a complete checkpoint
KEEP = 2  # checkpoints kept


def _write_atomic(file: Path, text: str) -> None:
    """Writes `text` to a temporary file, flushes it to disk and renames it over `file`."""
    tmp = file.with_name(f".{file.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(file)


def _crc32(leaves) -> int:
    crc = 0
    for leaf in leaves:
        crc = zlib.crc32(np.ascontiguousarray(np.asarray(leaf)).reshape(-1).view(np.uint8), crc)
    return crc


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


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
