"""`netmarl table` and `netmarl plot`: the paper's table and learning curves from run directories.

Run directories are grouped by (environment, algorithm) from their config.json; several directories of
the same pair are pooled (their seeds must differ), so seeds run separately still form one cell.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from netmarl.results.rundir import RunDir
from netmarl.results.stats import Cell, Curves, bootstrap_ci, cell, curves_from_records, marks

Cells = dict[str, dict[str, Cell]]  # task -> algorithm -> cell
FINAL_CAPTION = ("Final policy, greedy: mean return over seeds (each seed: the mean over its evaluation "
                 "episodes), with the 95 % bootstrap CI over seeds as offsets. **Bold**: best of the "
                 "column; `*`: CI overlaps the best's CI; `**`: second in rank.")


def load_curves(paths: list[str | Path]) -> dict[str, dict[str, Curves]]:
    """Curves per task and algorithm (in the order first seen) from finished or running runs."""
    records: dict[tuple[str, str], list[dict]] = {}
    for path in paths:
        run = RunDir.open(path)
        config = run.read_json("config.json")
        found = run.metrics()
        if not found:
            raise ValueError(f"{run.path} has no evaluation records yet")
        pooled = records.setdefault((config["env"]["name"], config["algo"]["name"]), [])
        clash = {r["seed"] for r in pooled} & {r["seed"] for r in found}
        if clash:
            raise ValueError(f"{run.path} repeats seeds {sorted(clash)} of another run of "
                             f"{config['algo']['name']} on {config['env']['name']}")
        pooled.extend(_common_points(found))
    out: dict[str, dict[str, Curves]] = {}
    for (task, algo), found in records.items():
        out.setdefault(task, {})[algo] = curves_from_records(_common_points(found))
    return out


def load_final(paths: list[str | Path]) -> dict[str, dict[str, Curves]]:
    """One-point "curves" per "<task> <evaluation>" and algorithm from the runs' final_eval.json
    (written by `netmarl reproduce` for experiments with final_eval); seeds are pooled by run."""
    returns: dict[tuple[str, str], list[float]] = {}
    for path in paths:
        record = json.loads((Path(path) / "final_eval.json").read_text())
        for name, result in record["evals"].items():
            column = returns.setdefault((f"{record['env']} {name}", record["algo"]), [])
            column.extend(seed["mean"] for seed in result["per_seed"])
    out: dict[str, dict[str, Curves]] = {}
    for (task, algo), values in returns.items():
        out.setdefault(task, {})[algo] = Curves(np.array(values)[:, None], np.zeros(1))
    return out


def _common_points(records: list[dict]) -> list[dict]:
    """Keeps the evaluation points every seed has reached (a running run may be mid-chunk)."""
    seeds = {r["seed"] for r in records}
    points = [p for p in {r["point"] for r in records}
              if len({r["seed"] for r in records if r["point"] == p}) == len(seeds)]
    return [r for r in records if r["point"] in points]


def table_cells(curves: dict[str, dict[str, Curves]]) -> Cells:
    return {task: {algo: cell(c) for algo, c in algos.items()} for task, algos in curves.items()}


def _format(c: Cell, mark: str, digits: int) -> str:
    value = f"{c.max_mean:.{digits}f}"
    value = f"**{value}**" if mark == "best" else value + mark
    return f"{value} ({c.ci_low - c.max_mean:+.{digits}f}, {c.ci_high - c.max_mean:+.{digits}f})"


def markdown(cells: Cells, digits: int = 2, caption: str | None = None) -> str:
    """The paper-style table (max over evaluation points, 95 % CI offsets, marks) and a table of the
    final evaluation point (mean and IQM over seeds); with `caption`, that caption and the first
    table only (for one-point tables such as final evaluations)."""
    algos = _algorithms(cells)
    head = "| task | " + " | ".join(algos) + " |\n|---|" + "---:|" * len(algos) + "\n"
    best = head
    final = head
    for task, row in cells.items():
        task_marks = marks(row)
        best += f"| {task} | " + " | ".join(
            _format(row[a], task_marks[a], digits) if a in row else "–" for a in algos) + " |\n"
        final += f"| {task} | " + " | ".join(
            f"{row[a].final_mean:.{digits}f} / {row[a].final_iqm:.{digits}f}" if a in row else "–"
            for a in algos) + " |\n"
    seeds = sorted({c.seeds for row in cells.values() for c in row.values()})
    if caption:
        return f"{caption} Seeds per cell: {', '.join(map(str, seeds))}.\n\n{best}"
    return (f"Maximum over evaluation points of the mean greedy return over seeds (seeds per cell: "
            f"{', '.join(map(str, seeds))}), with the 95 % bootstrap CI over seeds at that point as "
            "offsets. **Bold**: best of the task; `*`: CI overlaps the best's CI; `**`: second in rank.\n\n"
            f"{best}\nFinal evaluation point: mean / IQM over seeds.\n\n{final}")


def to_csv(cells: Cells) -> str:
    out = io.StringIO()
    fields = ["task", "algo", "mark", *Cell._fields]
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for task, row in cells.items():
        task_marks = marks(row)
        for algo, c in row.items():
            writer.writerow({"task": task, "algo": algo, "mark": task_marks[algo], **c._asdict()})
    return out.getvalue()


def _algorithms(cells: Cells) -> list[str]:
    seen: list[str] = []
    for row in cells.values():
        seen += [a for a in row if a not in seen]
    return seen


def plot(curves: dict[str, dict[str, Curves]], out: str | Path, level: float = 0.95) -> Path:
    """One panel per task: mean greedy return over seeds against env steps, with bootstrap CI bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 3.4), squeeze=False)
    for ax, (task, algos) in zip(axes[0], curves.items()):
        for algo, c in algos.items():
            bands = np.array([bootstrap_ci(c.returns[:, p], level, resamples=2000)
                              for p in range(c.returns.shape[1])])
            ax.plot(c.env_steps, c.returns.mean(0), label=f"{algo} ({c.returns.shape[0]} seeds)")
            ax.fill_between(c.env_steps, bands[:, 0], bands[:, 1], alpha=0.2)
        ax.set(title=task, xlabel="env steps", ylabel="greedy return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
