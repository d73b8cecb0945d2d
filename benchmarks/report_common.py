"""Pieces shared by the reproduction reports (benchmarks/report_*.py): finished runs, wall time,
the paper's table, and the hand-written discussion kept across regenerations."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from netmarl.reproduce import RANDOM, Run, load_experiment, plan
from netmarl.results.provenance import kept_discussion  # noqa: F401 (re-exported for the reports)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"


def finished_runs(name: str, folder: Path) -> tuple[dict, list[Run]]:
    """The experiment and its runs; exits with a clear message if any run is unfinished."""
    experiment = load_experiment(name)
    runs = plan(experiment, folder)
    unfinished = [r.path.name for r in runs if r.state != "done"]
    if unfinished:
        raise SystemExit(f"{len(unfinished)} runs are unfinished (e.g. {unfinished[0]}); "
                         f"finish them with `netmarl reproduce {name}` first")
    return experiment, runs


def wall_time_lines(folder: Path, runs: list[Run]) -> tuple[list[str], float]:
    """Markdown bullets on the reproduction's wall time (summed over resumed invocations) and the
    runs' own training times; returns (lines, wall hours)."""
    wall = [json.loads(line) for line in (folder / "wall_time.jsonl").read_text().splitlines()]
    hours = sum(w["wall_time_s"] for w in wall) / 3600
    summed = sum(json.loads((r.path / "summary.json").read_text())["wall_time_s"]
                 for r in runs if r.algo != RANDOM)
    jobs = sorted({w["jobs"] for w in wall})
    return [f"- Wall time of the reproduction: {hours:.2f} h over {len(wall)} invocation(s) of "
            f"`netmarl reproduce` with --jobs {'/'.join(map(str, jobs))} (resumed invocations are summed).",
            f"- Sum of the runs' own training times: {summed / 3600:.2f} h."], hours


def per_cell_timing(runs: list[Run], reference: float | None = None) -> list[str]:
    """A Markdown table: mean wall time and env-steps/s of one run (one seed) per (task, algorithm)."""
    cells: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        if run.algo != RANDOM:
            cells.setdefault((run.task, run.algo), []).append(json.loads((run.path / "summary.json").read_text()))
    extra = f" vs reference ({reference:,.0f}/s) |" if reference else ""
    lines = [f"| task | algo | mean wall time per seed (s) | env-steps/s per run |{extra}",
             "|---|---|---:|---:|" + ("---:|" if reference else "")]
    for (task, algo), summaries in cells.items():
        rate = np.mean([s["env_steps_per_s"] for s in summaries])
        ratio = f" {rate / reference:.0f}x |" if reference else ""
        lines.append(f"| {task} | {algo} | {np.mean([s['wall_time_s'] for s in summaries]):.0f} | "
                     f"{rate:,.0f} |{ratio}")
    return lines


def paper_table(paper: dict[str, dict[str, tuple]], names: dict[str, str], digits: int = 2) -> list[str]:
    """The paper's table: rows are tasks, columns `names` (algo -> label); a value is (mean, low
    offset, high offset) or (mean, std)."""
    lines = ["| task | " + " | ".join(names.values()) + " |", "|---|" + "---:|" * len(names)]
    for task, row in paper.items():
        lines.append(f"| {task} | " + " | ".join(_paper_value(row[a], digits) if a in row else "–"
                                                  for a in names) + " |")
    return lines


def _paper_value(value: tuple, digits: int) -> str:
    if len(value) == 3:
        return f"{value[0]:.{digits}f} ({value[1]:+.{digits}f}, {value[2]:+.{digits}f})"
    return f"{value[0]:.{digits}f} ± {value[1]:.{digits}f}"


def ordering(cells, algos: tuple[str, str, str], names: dict[str, str]) -> list[str]:
    """Per task, for (low, mid, high) = e.g. (IQL, DVDN, VDN): is low below mid (means; disjoint CIs),
    is mid at or above high or within its CI, and what share of the low -> high gap mid closes."""
    low, mid, high = algos
    lines = []
    for task, row in cells.items():
        a, b, c = row[low], row[mid], row[high]
        lines.append(f"| {task} | {_yes(a.max_mean < b.max_mean)} | {_yes(a.ci_high < b.ci_low)} | "
                     f"{_yes(b.ci_high >= c.ci_low)} | {_gap_closed(a, b, c, names[low], names[mid], names[high])} |")
    a, b, c = (names[x] for x in algos)
    return [f"| task | {a} < {b} (means) | {a} < {b} (CIs disjoint) | {b} ≥ {c} or CIs overlap | "
            f"gap {a} → {c} closed by {b} |", "|---|---|---|---|---:|", *lines]


def _yes(condition: bool) -> str:
    return "yes" if condition else "no"


def _gap_closed(a, b, c, low: str, mid: str, high: str) -> str:
    if c.max_mean - a.max_mean <= 1e-9:
        return f"none: {high} ≤ {low}"
    if b.max_mean >= c.max_mean:
        return f"all: {mid} ≥ {high}"
    return f"{(b.max_mean - a.max_mean) / (c.max_mean - a.max_mean):.0%}"


def table_report(name: str, folder: Path, doc: Path, title: str, paper: dict, names: dict[str, str],
                 order: tuple[str, str, str], ordering_text: str, curves_text: str = "",
                 comparison=None) -> tuple[list[Run], float]:
    """Writes `doc` for a finished curves-table experiment (our table, the paper's, the issue's
    ordering checks, learning curves, wall time, machine, kept discussion) and `<stem>_table.csv`
    and `<stem>_curves.png` next to it. `comparison(cells) -> lines` adds a section after the paper's
    table (e.g. our numbers on the paper's reward scale). Returns (runs, wall hours)."""
    from netmarl.results.provenance import machine_lines
    from netmarl.results.table import load_curves, markdown, plot, table_cells, to_csv

    experiment, runs = finished_runs(name, folder)
    curves = load_curves([r.path for r in runs])
    cells = table_cells(curves)
    figure = doc.with_name(f"{doc.stem}_curves.png")
    plot(curves, figure)
    doc.with_name(f"{doc.stem}_table.csv").write_text(to_csv(cells))
    wall_lines, hours = wall_time_lines(folder, runs)
    doc.write_text("\n".join([
        f"# {title}", "", f"Generated by `benchmarks/report_{doc.stem}.py` from the runs of", "",
        "```", f"netmarl reproduce {name} --jobs 2   # runs in {folder}", "```", "",
        f"{len(runs)} runs: tasks {experiment['tasks']}, algorithms {experiment['algos']}, "
        f"{experiment['seeds']} seeds each. Shared overrides: `{' '.join(experiment['overrides'])}`; per "
        f"algorithm: `{experiment.get('algo_overrides', {})}` (netmarl/conf/reproduce/{name}.yaml explains "
        "them; everything else is netmarl/conf).", "",
        "## netmarl", "", markdown(cells), "",
        f"## The paper (Table 1, {experiment['seeds']} seeds)", "", *paper_table(paper, names), "",
        *(comparison(cells) if comparison else []),
        "## The ordering the issue asks for", "", ordering_text, "", *ordering(cells, order, names), "",
        "## Learning curves", "", f"![curves]({figure.name})", "", curves_text, "",
        "## Wall time and machine", "", *wall_lines, "", *per_cell_timing(runs), "",
        *machine_lines(("jax", "jaxlib", "flax", "optax")), "", kept_discussion(doc)]))
    print(f"written: {doc}, {figure}")
    return runs, hours
