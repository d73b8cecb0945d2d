"""The report of benchmarks/epymarl_side_by_side.py: Markdown, CSV, JSON headline and plot.

docs/results/epymarl_side_by_side.json carries the headline numbers (date, machine, per-setting
env-steps/s of both systems); the speed documents take their EPyMARL figure from it.
"""
from __future__ import annotations

import csv
import datetime
import json
import math
import os
from pathlib import Path

import numpy as np

from side_by_side_floor import floor_and_profile
from side_by_side_lib import RunResult, Setting, mean, runs_of, task_spec
from netmarl.results.provenance import command_line, cpu_model, machine_lines
from netmarl.results.stats import bootstrap_ci, difference_p

SYSTEMS = ("epymarl", "netmarl")
GOAL = {"mlp": 12.0, "gru": 10.0}  # per-run env-steps/s ratio issue 19 asks for (value family)
POLICY_GOAL = 20.0  # issue 21: the actor-critic family, MLP or GRU


def load(jobs) -> dict:
    """Finished jobs' results: {(kind, setting): [result, ...]} (missing jobs are skipped)."""
    done: dict = {}
    for job in jobs:
        file = job.path / "result.json"
        if file.exists():
            done.setdefault((job.kind, job.setting), []).append(json.loads(file.read_text()))
    return done


def curve(runs: list[RunResult], points: list[int]) -> np.ndarray:
    """[seeds, points] test returns at the given evaluation points."""
    return np.array([[r.points[k] for k in points] for r in runs])


def common_points(*groups: list[RunResult]) -> list[int]:
    """Evaluation points present in every run of every group."""
    sets = [set(r.points) for runs in groups for r in runs]
    return sorted(set.intersection(*sets)) if sets else []


def summary(returns: np.ndarray) -> dict:
    """Final and max (over points) of the mean over seeds, each with a 95 % bootstrap CI."""
    means = returns.mean(0)
    best = int(np.argmax(means))
    return {"final": float(means[-1]), "final_ci": bootstrap_ci(returns[:, -1]),
            "max": float(means[best]), "max_ci": bootstrap_ci(returns[:, best]), "best": best}


def verdict(x: float, ci: tuple[float, float]) -> str:
    low, high = ci
    if x > high:
        return f"above (+{x - high:.3f})"
    if x < low:
        return f"**below** (−{low - x:.3f})"
    return "inside"


# --- sections -----------------------------------------------------------------------------------

def learning_section(done: dict, settings: list[Setting], interval: int) -> tuple[list[str], dict]:
    lines = ["## Learning: test return", "",
             "The test return (EPyMARL's `test_return_mean`, netmarl's evaluation): greedy for the value "
             "family, sampled from the policies for the actor-critic family (see Settings). "
             "Mean over seeds with its 95 % bootstrap CI, at the evaluation points both systems share "
             f"(every {interval:,} env steps); *final* is the last point, *max* the best point of the "
             "mean curve. Verdict: netmarl's value against EPyMARL's CI; *p*: two-sided permutation test "
             "of the difference of the two systems' mean final returns (per-seed values; exact for small "
             "seed counts): a p well above 0.05 means the seeds cannot tell the systems apart.", "",
             "| setting | system | seeds | final | max (at env steps) | final verdict | p (final) | max verdict |",
             "|---|---|---:|---:|---:|---|---:|---|"]
    curves = {}
    for s in settings:
        ep, nm = runs_of(done, "epymarl", s), runs_of(done, "netmarl", s)
        points = common_points(ep, nm)
        if not ep or not nm or len(points) < 2:
            lines.append(f"| {s.name} | — | — | not run yet | | | | |")
            continue
        sums = {name: summary(curve(runs, points)) for name, runs in (("epymarl", ep), ("netmarl", nm))}
        curves[s] = (points, {"epymarl": curve(ep, points), "netmarl": curve(nm, points)})
        e, n = sums["epymarl"], sums["netmarl"]
        p_final = difference_p(curves[s][1]["netmarl"][:, -1], curves[s][1]["epymarl"][:, -1])
        floor_p = 2 / math.comb(len(ep) + len(nm), len(nm))  # the most extreme relabelling's p
        p_text = f"{p_final:.2f}" + (f" (cannot go below {floor_p:.2f} with these seeds)" if floor_p > 0.05 else "")
        for name, runs, x in (("EPyMARL", ep, e), ("netmarl", nm, n)):
            if name == "EPyMARL":
                judged = ("", "", "")
            elif len(ep) < 2:  # a CI of one run is no interval
                judged = ("none (EPyMARL: 1 seed, no CI)", p_text, "none")
            else:
                judged = (verdict(n["final"], e["final_ci"]), p_text, verdict(n["max"], e["max_ci"]))
            lines.append(f"| {s.name} | {name} | {len(runs)} | {_ci(x['final'], x['final_ci'])} | "
                         f"{_ci(x['max'], x['max_ci'])} ({points[x['best']] * interval:,}) | "
                         f"{' | '.join(judged)} |")
    return lines, curves


def _ci(x: float, ci: tuple[float, float]) -> str:
    return f"{x:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def throughput_section(done: dict, settings: list[Setting]) -> tuple[list[str], dict]:
    lines = ["## Throughput per run (identical settings, one process on one core each)", "",
             "Env steps/s of one run: *whole run* = env steps / the process's wall time (start-up, "
             "imports, compilation, evaluation and logging included); *steady* = from evaluation "
             "point 2 to the last (evaluation included, start-up excluded). Means over seeds. "
             "netmarl's runs of a setting share one compilation cache, as a user's runs do (on by "
             "default, netmarl/_xla_cache.py): the first compiles, later ones load its programs; "
             "below the table, each kind on its own.", "",
             "| setting | EPyMARL whole | netmarl whole | ratio | EPyMARL steady | netmarl steady | ratio "
             "| goal (per run) |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    head = {}
    for s in settings:
        ep, nm = runs_of(done, "epymarl", s), runs_of(done, "netmarl", s)
        if not ep or not nm:
            continue
        row = {"epymarl_whole": mean(r.whole_rate for r in ep), "netmarl_whole": mean(r.whole_rate for r in nm),
               "epymarl_steady": mean(r.steady_rate for r in ep),
               "netmarl_steady": mean(r.steady_rate for r in nm), "seeds": len(ep)}
        row["ratio_whole"] = row["netmarl_whole"] / row["epymarl_whole"]
        row["ratio_steady"] = row["netmarl_steady"] / row["epymarl_steady"]
        head[s.name] = row
        goal = POLICY_GOAL if s.family == "policy" else GOAL[s.agent]
        met = "met" if row["ratio_whole"] >= goal else "**not met**"
        lines.append(f"| {s.name} | {row['epymarl_whole']:,.0f} | {row['netmarl_whole']:,.0f} | "
                     f"{row['ratio_whole']:.1f}x | {row['epymarl_steady']:,.0f} | "
                     f"{row['netmarl_steady']:,.0f} | {row['ratio_steady']:.1f}x | "
                     f">= {goal:.0f}x: {met} |")
    return lines + cache_lines(done, settings, head), head


def cache_lines(done: dict, settings: list[Setting], head: dict) -> list[str]:
    """netmarl's whole-run rate with a cold and with a warm compilation cache, each against EPyMARL's
    whole-run rate (runs from before the benchmark recorded the cache are left out)."""
    lines = []
    for s in settings:
        by_state: dict[str, list[float]] = {}
        for result in done.get(("netmarl", s), []):
            for r in result["runs"]:
                by_state.setdefault(result.get("cache", "off"), []).append(RunResult.from_json(r).whole_rate)
        parts = [f"{state} cache {mean(rates):,.0f} env-steps/s ({mean(rates) / head[s.name]['epymarl_whole']:.1f}x, "
                 f"{len(rates)} run{'s' if len(rates) > 1 else ''})"
                 for state in ("cold", "warm") if (rates := by_state.get(state)) and s.name in head]
        if parts:
            lines.append(f"- {s.name}, netmarl whole run: " + "; ".join(parts) + ".")
    return [""] + lines if lines else []


def many_seeds_section(done: dict, settings: list[Setting], head: dict) -> list[str]:
    """The aggregate rate of vmapped seeds on both cores; nothing when none was measured
    (`--many-seeds none`)."""
    if not any(done.get(("many-seeds", s)) for s in settings):
        return []
    lines = ["## netmarl for a user with many seeds (both cores; not a per-run comparison)", "",
             "One netmarl process per core, each vmapping several seeds; aggregate env steps/s of all "
             "seeds over the wall time until both processes finish. *EPyMARL x2* is two EPyMARL runs "
             "on the two cores (its whole-run rate above, doubled).", "",
             "| setting | processes x vmapped seeds | aggregate env-steps/s | vs EPyMARL x2 |",
             "|---|---|---:|---:|"]
    for s in settings:
        for result in done.get(("many-seeds", s), []):
            base = 2 * head.get(s.name, {}).get("epymarl_whole", float("nan"))
            lines.append(f"| {s.name} | {result['processes']} x {result['vmap_seeds']} | "
                         f"{result['aggregate_rate']:,.0f} | {result['aggregate_rate'] / base:.1f}x |")
    return lines


# What both families share with EPyMARL (the settings section's sentence for each family follows).
SHARED = ("every action available (EPyMARL's gymma "
          "wrapper reports no action mask; netmarl's LBF `env.options.action_mask=false`), agent "
          "networks initialised as PyTorch's nn.Linear / nn.GRUCell (`algo.agent_init=torch`; "
          "PyTorch's GRUCell has two biases per gate where Flax's has one on the reset and update "
          "gates); the random streams differ (same seed numbers, different generators).")
FAMILY_SETTINGS = {
    "value": "the time limit terminal (no bootstrap past it: EPyMARL's gymma envs never flag it as a "
             "limit; netmarl `algo.bootstrap_truncation=false`), "
             "one environment, one update per episode on 32 episodes, buffer 5,000 episodes, Adam, "
             "target every 200 updates (both count it in updates), double Q, clip 10, standardised "
             "common reward; greedy evaluation. Known difference: EPyMARL's running reward statistics "
             "include the zero padding of episodes that ended early in a batch, netmarl's only real steps",
    "policy": "netmarl's configs of the same names (`conf/algo/`; EPyMARL's pac_ns is netmarl's pac): "
              "10 parallel environments, one update per iteration of their 10 episodes, n-step critic "
              "targets, Adam, clip 10, common reward; the n-step targets bootstrap after an episode's "
              "last step, so at the time limit (EPyMARL's `add_value_last_step`; its pac learner does "
              "not, nor does netmarl's pac here); PPO recomputes the advantages with the current critic "
              "before every epoch (`algo.policy.refresh_advantages=true`); MAA2C's and MAPPO's "
              "centralised critics see the "
              "joint observation (EPyMARL's gymma state); evaluation samples from the policies as "
              "EPyMARL's soft_policies selector does (`algo.policy.eval_sample=true`), and EPyMARL's "
              "parallel runner plays the test episodes in batches of 10 (a multiple of 10 at most the "
              "requested number); actor and critic output layers keep PyTorch's init "
              "(`algo.policy.small_heads=false`; netmarl's default scales them to 0.01 and 0, "
              "docs/algorithms.md). Known difference: COMA's critic sees [s, o_i, a_-i] with netmarl's "
              "LBF global state s, EPyMARL's [joint observation, a_-i, agent id]",
}


def settings_section(budget, seeds: int, done: dict, task: str) -> list[str]:
    loads = [r.get("load_at_start", float("nan")) for results in done.values() for r in results]
    spec = task_spec(task)
    families = {}
    for _, setting in done:
        families.setdefault(setting.family, {})[setting.algo] = True
    config_lines = [f"- {family.capitalize()} family: EPyMARL's own {', '.join(f'`{a}`' for a in algos)} configs with "
                    f"`use_rnn` False (MLP) or True (GRU); netmarl the same values "
                    f"(benchmarks/side_by_side_lib.py: NETMARL_ALGOS, "
                    f"{'POLICY_COMMON' if family == 'policy' else 'NETMARL_COMMON'}): "
                    f"{FAMILY_SETTINGS[family]}." for family, algos in families.items()]
    return ["## Settings", "",
            f"- Task: `{spec.epymarl_key}` (EPyMARL, through its gymma wrapper, time limit "
            f"{spec.time_limit}) = netmarl `{' '.join(spec.netmarl_env)}`.",
            f"- Budget: {budget.steps:,} env steps per run; evaluation with {budget.episodes} "
            f"episodes every {budget.interval:,} env steps; seeds 0..{seeds - 1} in both systems.",
            *config_lines, f"- Both families: {SHARED}",
            "- Scheduling: one process per run pinned to one core (`taskset`), two runs at a time on "
            "the two cores, EPyMARL and netmarl runs interleaved, so both systems ran under the same load.",
            f"- Machine load (1-min load average on {os.cpu_count()} cores) when the runs started: "
            f"{np.nanmin(loads):.1f} to {np.nanmax(loads):.1f} (mean {np.nanmean(loads):.1f}); "
            "above 2 means other processes shared the cores." if loads else "- no runs finished"]


# --- files --------------------------------------------------------------------------------------

def write_report(jobs, args) -> list[Path]:
    done = load(jobs)
    interval = args.budget.interval
    learn, curves = learning_section(done, args.settings, interval)
    speed, head = throughput_section(done, args.settings)
    out = Path(args.out)
    mode = args.mode
    lines = [f"# EPyMARL and netmarl side by side on {task_spec(args.task).title} ({mode} mode)", "",
             f"Measured in one invocation of `benchmarks/epymarl_side_by_side.py`: {args.seeds} seeds x "
             f"{args.budget.steps:,} env steps per setting and system. Regenerate with the command at "
             "the end (finished runs are kept and not re-run).", "",
             *headline_lines(head, args), "", *notes_lines(out),
             *learn, "", f"![learning curves]({out.stem}.png)", "", *speed, "",
             *(many + [""] if (many := many_seeds_section(done, args.settings, head)) else []),
             *(floor + [""] if (floor := floor_and_profile(done, args.settings)) else []),
             *settings_section(args.budget, args.seeds, done, args.task),
             "", "## Machine and command", "", *machine_lines(),
             f"- Newest run finished: {measured_date(jobs) or 'none yet'} (the date above is this report's)",
             "", "```", command_line(), "```"]
    out.write_text("\n".join(lines) + "\n")
    stamp = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    headline = {"date": measured_date(jobs) or stamp, "report_date": stamp, "cpu": cpu_model(), "cores": os.cpu_count(), "mode": mode,
                "seeds": args.seeds, "budget": args.budget._asdict(), "settings": head,
                "document": str(out.relative_to(out.parents[2])) if len(out.parents) > 2 else str(out)}
    out.with_suffix(".json").write_text(json.dumps(headline, indent=1) + "\n")
    write_csv(done, args.settings, out.with_suffix(".csv"), interval)
    written = [out, out.with_suffix(".json"), out.with_suffix(".csv")]
    if curves:
        written.append(plot(curves, out.with_suffix(".png"), interval))
    return written


def measured_date(jobs) -> str | None:
    """When the newest finished run of the report finished (its result.json), ISO format; the date
    the speed documents sort by (benchmarks/side_by_side_lib.latest_measured), not the report's."""
    times = [f.stat().st_mtime for job in jobs if (f := job.path / "result.json").exists()]
    if not times:
        return None
    return datetime.datetime.fromtimestamp(max(times)).astimezone().isoformat(timespec="seconds")


def notes_path(out: Path) -> Path:
    """The hand-written notes of a report: `<report stem>.notes.md` beside it, kept across regenerations."""
    return out.with_name(out.stem + ".notes.md")


def notes_lines(out: Path) -> list[str]:
    """The notes file's text (if it exists) under a heading naming it, so a regeneration keeps it."""
    path = notes_path(out)
    if not path.exists():
        return []
    return [f"## Notes (written by hand in `{path.name}`, kept by regeneration)", "",
            path.read_text().strip(), ""]


def headline_lines(head: dict, args) -> list[str]:
    ratios = ", ".join(f"{name} {row['ratio_whole']:.1f}x (steady {row['ratio_steady']:.1f}x)"
                       for name, row in head.items())
    wall = getattr(args, "wall_s", None)
    lines = [f"- Per run, netmarl / EPyMARL env-steps/s over the whole run: {ratios or 'no runs yet'}."]
    if wall is not None:
        lines.append(f"- This invocation took {wall / 60:.1f} min of wall time (runs finished in earlier "
                     "invocations are not re-run)" + (" (quick mode goal: < 15 min)." if args.quick else "."))
    return lines


def write_csv(done: dict, settings: list[Setting], path: Path, interval: int) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["system", "setting", "run", "point", "env_steps", "test_return", "run_env_steps",
                    "run_wall_s", "run_steady_env_steps_per_s"])
        for s in settings:
            for system in SYSTEMS:
                for i, r in enumerate(runs_of(done, system, s)):
                    for k, v in sorted(r.points.items()):
                        w.writerow([system, s.name, i, k, k * interval, f"{v:.4f}", r.env_steps,
                                    f"{r.wall_s:.2f}", f"{r.steady_rate:.1f}"])


def plot(curves: dict, path: Path, interval: int) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.4), squeeze=False)
    for ax, (setting, (points, by_system)) in zip(axes[0], curves.items()):
        x = np.array(points) * interval
        for system, returns in by_system.items():
            cis = np.array([bootstrap_ci(returns[:, j]) for j in range(len(points))])
            ax.plot(x, returns.mean(0), label=system)
            ax.fill_between(x, cis[:, 0], cis[:, 1], alpha=0.25)
        ax.set_title(setting.name)
        ax.set_xlabel("env steps")
        ax.set_ylabel("test return" + (" (sampled)" if setting.family == "policy" else " (greedy)"))
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
