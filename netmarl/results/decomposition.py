"""The decomposition study's document (`netmarl reproduce decomposition-games`): the learned Q_tot and
utilities of every (game, algorithm) next to the true payoff, the greedy joint actions over seeds,
and the lecture's and the textbook's statements checked against them.

Sources: seeds/marl_book_lecture_deep_marl_part1.txt ("Value Decomposition in Matrix Games") and
seeds/textbook_value_decomposition_vdn_qmix.txt (section 5 and Table 30.6.1).
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from netmarl.results.qtables import checkpoint_q_tables

NAMES = {"iql": "IQL", "vdn": "VDN", "qmix": "QMIX", "qtran": "QTRAN", "qplex": "QPLEX", "pairvdn": "PairVDN"}
EXACT = 0.5  # |Q_tot − R| ≤ EXACT on every joint action: the payoff is "learned"
# The lecture's learned Q_tot (rows: agent 1's action, columns: agent 2's) and greedy joint actions.
LECTURE = {
    ("matrix-linear", "vdn"): ([[1.00, 5.00], [5.00, 9.00]], (1, 1)),
    ("matrix-linear", "qmix"): ([[1.00, 5.00], [5.00, 9.00]], (1, 1)),
    ("matrix-monotonic", "vdn"): ([[-2.43, 2.51], [2.60, 7.53]], (1, 1)),
    ("matrix-monotonic", "qmix"): ([[0.00, 0.00], [0.00, 10.00]], (1, 1)),
    ("matrix-climbing", "vdn"): ([[-8.84, -8.43, -1.00], [-10.66, -10.25, -2.82], [0.75, 1.16, 8.59]], (2, 2)),
    ("matrix-climbing", "qmix"): ([[-11.16, -11.16, -11.16], [-11.15, 2.34, -1.37], [-4.95, 8.72, 5.01]], (2, 1)),
}
# The textbook's Output 30.6.1: decentralised greedy joint actions.
TEXTBOOK = {("matrix-additive", "vdn"): (2, 2), ("matrix-additive", "qmix"): (2, 2),
            ("matrix-coordination", "vdn"): (0, 0), ("matrix-coordination", "qmix"): (2, 2)}


def payoff(task: str) -> np.ndarray:
    """The team payoff R [A, A] of a matrix-game task (env preset or matrix:<game> id)."""
    from netmarl.cli import compose
    from netmarl.envs import make

    env = compose([f"env={task}"]).env
    return make(env.name, **env.options).table.sum(0)


def load_cell(path: Path, table: np.ndarray) -> dict:
    """One run's tables (all seeds) and their summaries against the true payoff `table`."""
    t = checkpoint_q_tables(str(path))
    greedy = [tuple(int(x) for x in g) for g in t.greedy]
    err = np.abs(t.q_tot - table).reshape(len(greedy), -1).max(-1)  # [seeds]
    return {"q_tot": t.q_tot, "utilities": t.utilities, "greedy": greedy, "max_err": err,
            "optimal": [table[g] == table.max() for g in greedy], "greedy_payoff": [table[g] for g in greedy]}


def label(joint: tuple[int, ...]) -> str:
    return "(" + ", ".join("ABCDEFGH"[a] for a in joint) + ")"


def greedy_counts(cell: dict) -> str:
    return ", ".join(f"{label(g)} ×{c}" for g, c in Counter(cell["greedy"]).most_common())


def game_table(cells: dict[str, dict], table: np.ndarray) -> list[str]:
    """Markdown rows per algorithm: greedy joint actions over seeds, optimal share, fit error."""
    lines = ["| algorithm | greedy joint action (seeds) | optimal | payoff of greedy (mean) | "
             "max \\|Q_tot − R\\| (median over seeds) | fits R (≤ 0.5) |", "|---|---|---:|---:|---:|---:|"]
    for algo, c in cells.items():
        n = len(c["greedy"])
        lines.append(f"| {NAMES.get(algo, algo)} | {greedy_counts(c)} | {sum(c['optimal'])}/{n} | "
                     f"{np.mean(c['greedy_payoff']):.2f} | {np.median(c['max_err']):.2f} | "
                     f"{int((c['max_err'] <= EXACT).sum())}/{n} |")
    return lines


def heatmaps(task: str, cells: dict[str, dict], table: np.ndarray, out: Path) -> Path:
    """One PNG: the true payoff and each algorithm's Q_tot of seed 0, utilities on the margins, the
    greedy cell boxed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("true payoff R", table, None, None)] + [
        (NAMES.get(a, a), c["q_tot"][0], c["utilities"][0], c["greedy"][0]) for a, c in cells.items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9))
    lo, hi = float(table.min()), float(table.max())
    for ax, (title, values, util, greedy) in zip(axes, panels):
        _panel(ax, title, np.asarray(values), util, greedy, lo, hi)
    fig.suptitle(f"{task}: Q_tot(a1, a2) of seed 0 (rows: agent 1; margins: utilities Q_i)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _panel(ax, title, values, util, greedy, lo, hi) -> None:
    a = values.shape[0]
    ax.imshow(values, cmap="viridis", vmin=lo, vmax=hi)
    for i in range(a):
        for j in range(a):
            light = values[i, j] > (lo + hi) / 2
            ax.text(j, i, f"{values[i, j]:.1f}", ha="center", va="center", fontsize=7, color="k" if light else "w")
    names = "ABCDEFGH"[:a]
    rows = cols = list(names)
    if util is not None and np.ndim(util) == 2:  # per-agent utilities [N, A] (not PairVDN's grids)
        rows = [f"{n} {u:.1f}" for n, u in zip(names, util[0])]
        cols = [f"{n}\n{u:.1f}" for n, u in zip(names, util[1])]
    ax.set_xticks(range(a), cols, fontsize=6)
    ax.set_yticks(range(a), rows, fontsize=6)
    if greedy is not None:
        ax.add_patch(__import__("matplotlib").patches.Rectangle(
            (greedy[1] - 0.5, greedy[0] - 0.5), 1, 1, fill=False, edgecolor="red", lw=2))
    ax.set_title(title, fontsize=8)


def _fits(c: dict) -> bool:
    return bool(np.median(c["max_err"]) <= EXACT)


def _fit_text(name: str, c: dict) -> str:
    n = len(c["greedy"])
    return (f"{name}: max \\|Q_tot − R\\| median {np.median(c['max_err']):.2f}, ≤ {EXACT} in "
            f"{int((c['max_err'] <= EXACT).sum())}/{n} seeds; greedy optimal in {sum(c['optimal'])}/{n}")


def _verdict(ok: bool) -> str:
    return "**reproduced**" if ok else "**not reproduced**"


def claims(results: dict[str, dict[str, dict]]) -> list[str]:
    """The seeds' statements as Markdown rows: source, statement, our numbers, verdict."""
    r = results
    rows = []

    def add(source, statement, ok, numbers):
        rows.append(f"| {source} | {statement} | {numbers} | {_verdict(ok)} |")

    lin, mono, climb = r["matrix-linear"], r["matrix-monotonic"], r["matrix-climbing"]
    add("lecture", "linear game: VDN and QMIX learn the true Q_tot", _fits(lin["vdn"]) and _fits(lin["qmix"]),
        "; ".join(_fit_text(NAMES[a], lin[a]) for a in ("vdn", "qmix")))
    add("lecture", "monotonic game: only QMIX represents it (VDN does not)",
        _fits(mono["qmix"]) and not _fits(mono["vdn"]),
        "; ".join(_fit_text(NAMES[a], mono[a]) for a in ("vdn", "qmix")))
    add("lecture", "climbing game: neither VDN nor QMIX learns the true Q_tot; both converge to "
        "sub-optimal policies (in most seeds)", not any(_fits(climb[a]) or sum(climb[a]["optimal"]) >
                                                        len(climb[a]["optimal"]) / 2 for a in ("vdn", "qmix")),
        "; ".join(_fit_text(NAMES[a], climb[a]) for a in ("vdn", "qmix")))
    for (task, algo), (_, joint) in LECTURE.items():
        c = r[task][algo]
        add("lecture", f"{task}: {NAMES[algo]}'s greedy joint action is {label(joint)}",
            c["greedy"].count(joint) > len(c["greedy"]) / 2, f"{greedy_counts(c)}")
    for (task, algo), joint in TEXTBOOK.items():
        c = r[task][algo]
        add("textbook", f"{task}: {NAMES[algo]}'s decentralised argmax is {label(joint)}",
            c["greedy"].count(joint) > len(c["greedy"]) / 2, f"{greedy_counts(c)}")
    for task in [t for t in r if t == "matrix-climbing" or "penalty" in t]:
        for algo in ("qtran", "qplex"):
            if algo in r[task]:
                c = r[task][algo]
                add("textbook", f"{task}: {NAMES[algo]} (full IGM class) recovers the optimum",
                    sum(c["optimal"]) > len(c["greedy"]) / 2, _fit_text(NAMES[algo], c))
    return ["| source | statement | netmarl (10 seeds) | verdict |", "|---|---|---|---|", *rows]


def penalty_sweep(results: dict[str, dict[str, dict]]) -> list[str]:
    """Seeds (of 10) whose greedy joint action is optimal, per algorithm and penalty k."""
    tasks = [t for t in results if "penalty" in t]
    if not tasks:
        return []
    ks = [f"k = −{t.rsplit('-', 1)[1]}" if t.rsplit("-", 1)[1] != "0" else "k = 0" for t in tasks]
    algos = list(results[tasks[0]])
    lines = ["| algorithm | " + " | ".join(ks) + " |", "|---|" + "---:|" * len(ks)]
    for algo in algos:
        lines.append(f"| {NAMES.get(algo, algo)} | " + " | ".join(
            f"{sum(results[t][algo]['optimal'])}/{len(results[t][algo]['greedy'])}" for t in tasks) + " |")
    return ["Greedy joint action optimal (one of the two corners worth 10), seeds out of 10:", "", *lines]


def lecture_cells(results: dict[str, dict[str, dict]]) -> list[str]:
    """The lecture's Q_tot tables next to ours (mean over seeds), entry by entry."""
    lines = []
    for (task, algo), (theirs, joint) in LECTURE.items():
        c = results[task][algo]
        ours, spread = c["q_tot"].mean(0), c["q_tot"].std(0)
        diff = np.abs(ours - np.asarray(theirs)).max()
        a = ours.shape[0]
        lines += [f"**{task}, {NAMES[algo]}**: largest entry difference {diff:.2f} "
                  f"({_verdict(diff <= EXACT)} within {EXACT}); greedy {label(joint)} in the lecture, "
                  f"ours {greedy_counts(c)}.", "",
                  "| a1 \\ a2 | " + " | ".join("ABC"[:a]) + " |", "|---|" + "---:|" * a]
        for i in range(a):
            lines.append(f"| {'ABC'[i]} | " + " | ".join(
                f"{theirs[i][j]:.2f} → {ours[i, j]:.2f} ± {spread[i, j]:.2f}" for j in range(a)) + " |")
        lines.append("")
    return ["Entries: lecture → netmarl (mean ± std over seeds).", "", *lines]


def write_report(folder: Path, runs, experiment: dict, doc: Path) -> Path:
    """Writes `doc` (Markdown) and its heatmaps `<doc stem>_<task>.png` next to it."""
    from netmarl.results.provenance import kept_discussion, machine_lines

    doc.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, dict]] = {}
    sections = []
    for task in experiment["tasks"]:
        table = payoff(task)
        results[task] = {r.algo: load_cell(r.path, table) for r in runs if r.task == task}
        png = heatmaps(task, results[task], table, doc.with_name(f"{doc.stem}_{task.replace(':', '_')}.png"))
        sections += [f"### {task}", "", "True payoff R (rows: agent 1, columns: agent 2): "
                     + "; ".join("[" + ", ".join(f"{v:g}" for v in row) + "]" for row in table)
                     + f", optimum {table.max():g}.", "", *game_table(results[task], table), "",
                     f"![{task}]({png.name})", ""]
    wall = [json.loads(line) for line in (folder / "wall_time.jsonl").read_text().splitlines()]
    summaries = [json.loads((r.path / "summary.json").read_text()) for r in runs]
    doc.write_text("\n".join([
        "# Value decomposition on matrix games: IQL, VDN, QMIX, QTRAN, QPLEX, PairVDN", "",
        "Generated by `netmarl reproduce decomposition-games` (runs in "
        f"`{folder}`; netmarl/conf/reproduce/decomposition-games.yaml explains the setting).", "",
        f"Games {experiment['tasks']}, algorithms {experiment['algos']}, {experiment['seeds']} seeds per "
        f"cell (vmapped, one run per cell). Shared overrides: `{' '.join(experiment['overrides'])}`: "
        "one-step games with uniform exploration (ε = 1), so every algorithm fits its Q_tot to the "
        "payoff table in squared error over all joint actions — the setting of the textbook's code and "
        "of the lecture's decompositions. Q_tot is read from each run's final checkpoint with "
        "`netmarl.results.qtables.checkpoint_q_tables`: Σ_i Q_i for IQL (never trained as a sum) and "
        "VDN, the mixer for QMIX and QPLEX, Q_jt for QTRAN (whose agents act on Σ_i Q_i), the sum of "
        "the pair grids for PairVDN. The greedy joint action is the one the agents take (individual "
        "argmaxes; PairVDN's cyclic DP). 'Fits R' means |Q_tot − R| ≤ 0.5 on every joint action.", "",
        "## The seeds' statements, checked", "", *claims(results), "",
        "## The lecture's decompositions, entry by entry", "", *lecture_cells(results), "",
        "## The penalty game from k = −100 to k = 0", "", *penalty_sweep(results), "",
        "## Game by game", "", *sections,
        "## Wall time and machine", "",
        f"- Wall time of the study: {sum(w['wall_time_s'] for w in wall) / 60:.1f} min over {len(wall)} "
        f"invocation(s); runs' own training time {sum(s['wall_time_s'] for s in summaries) / 60:.1f} min.",
        *machine_lines(("jax", "jaxlib", "flax", "optax")), "", kept_discussion(doc)]))
    print(f"written: {doc} and {len(experiment['tasks'])} heatmaps")
    return doc
