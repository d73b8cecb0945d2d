"""The report of benchmarks/host_env_side_by_side.py: curves with bootstrap CIs, verdicts, speeds."""
from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np

from netmarl.results.provenance import command_line, kept_discussion, machine_lines
from netmarl.results.stats import bootstrap_ci
from side_by_side_lib import Budget, RunResult
from side_by_side_report import common_points, curve, verdict
from side_by_side_report import summary as final_and_max

LABELS = {"epymarl": "EPyMARL (package env)", "host": "netmarl host path (package env)",
          "native": "netmarl native LBF"}


def summary(runs: list[RunResult]) -> dict:
    """Per evaluation point: mean and 95 % bootstrap CI over seeds; the final and best points."""
    points = common_points(runs)
    table = curve(runs, points)
    ends = final_and_max(table)
    return {"points": points, "mean": table.mean(0).tolist(), "seeds": len(runs),
            "ci": [bootstrap_ci(table[:, j]) for j in range(len(points))],
            "final": (ends["final"], ends["final_ci"]), "max": (ends["max"], ends["max_ci"], points[ends["best"]]),
            "whole_rate": float(np.mean([r.whole_rate for r in runs])),
            "steady_rate": float(np.nanmean([r.steady_rate for r in runs]))}


def write_report(results: dict[str, list[RunResult]], budget: Budget, args) -> Path:
    missing = [k for k in LABELS if k not in results]
    if missing:
        raise SystemExit(f"host_env_side_by_side: no finished runs of {', '.join(missing)} under {args.runs}")
    stats = {kind: summary(results[kind]) for kind in LABELS}
    lines = [f"# VDN on the lbforaging package through the host-stepped path ({args.task})", "",
             f"Measured {date.today().isoformat()}: `{command_line()}`", "", *machine_lines(), "",
             f"EPyMARL's `vdn` settings, MLP agents, {budget.steps:,} env steps per run, greedy "
             f"evaluation of {budget.episodes} episodes every {budget.interval:,} steps, seeds "
             f"0..{args.seeds - 1}; one process per run on one core, two at a time, interleaved.", "",
             *_verdicts(stats), "", *_curve_table(stats, budget), "", *_speed_table(stats, results), "",
             kept_discussion(args.out)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    args.out.with_suffix(".json").write_text(json.dumps(
        {"task": args.task, "budget": budget._asdict(), "summary": stats,
         "runs": {k: [r.to_json() for r in v] for k, v in results.items()}}, indent=1))
    _plot(stats, budget, args.out.with_suffix(".png"), args.task)
    return args.out


def _verdicts(stats: dict) -> list[str]:
    host, native, epy = stats["host"], stats["native"], stats["epymarl"]
    lines = ["## Verdict", ""]
    for other, name in ((native, "netmarl's native LBF"), (epy, "EPyMARL on the same package env")):
        for what in ("final", "max"):
            value, (low, high) = host[what][0], other[what][1]
            lines.append(f"- Host path vs {name}, {what} return: {value:.3f} against {other[what][0]:.3f} "
                         f"[{low:.3f}, {high:.3f}]: {verdict(value, (low, high))} its CI.")
    return lines


def _cell(s: dict, j: int) -> str:
    low, high = s["ci"][j]
    return f"{s['mean'][j]:.3f} [{low:.3f}, {high:.3f}]"


def _curve_table(stats: dict, budget: Budget) -> list[str]:
    points = stats["native"]["points"]
    lines = ["## Learning curves (mean greedy return [95 % bootstrap CI over seeds])", "",
             "| env steps | " + " | ".join(LABELS.values()) + " |", "|---|" + "---|" * len(LABELS)]
    for k in points:
        cells = [_cell(stats[kind], stats[kind]["points"].index(k)) if k in stats[kind]["points"] else "–"
                 for kind in LABELS]
        lines.append(f"| {k * budget.interval:,} | " + " | ".join(cells) + " |")
    return lines


def _speed_table(stats: dict, results: dict) -> list[str]:
    epy = stats["epymarl"]
    lines = ["## Speed (env steps/s per run, mean over seeds; ratio to EPyMARL)", "",
             "| system | whole run | steady state | whole-run ratio | steady ratio |", "|---|---|---|---|---|"]
    for kind, label in LABELS.items():
        s = stats[kind]
        lines.append(f"| {label} | {s['whole_rate']:,.0f} | {s['steady_rate']:,.0f} | "
                     f"{s['whole_rate'] / epy['whole_rate']:.2f}× | {s['steady_rate'] / epy['steady_rate']:.2f}× |")
    if results.get("host-vmapped"):
        runs = results["host-vmapped"]
        total = sum(r.env_steps for r in runs) / max(r.wall_s for r in runs)
        lines += ["", f"A user with many seeds: the host path with all {len(runs)} seeds vmapped in one "
                  f"process on one core collects {total:,.0f} env steps/s in all over the whole run "
                  f"({total / epy['whole_rate']:.1f}× one EPyMARL run, which runs one seed per core)."]
    lines += ["", "Whole run: env steps / wall time from process start to exit (imports, compilation, "
              "evaluation, logging). Steady state: from the second evaluation point to the last. "
              "Final: each system's last evaluation (EPyMARL tests when t_env first passes a multiple "
              "of the interval, so its last test can fall one interval before the budget)."]
    return lines


def _plot(stats: dict, budget: Budget, out: Path, task: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, label in LABELS.items():
        s = stats[kind]
        x = np.array(s["points"]) * budget.interval
        ax.plot(x, s["mean"], label=label)
        ax.fill_between(x, [c[0] for c in s["ci"]], [c[1] for c in s["ci"]], alpha=0.2)
    ax.set(xlabel="env steps", ylabel="greedy test return", title=f"VDN on {task}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
