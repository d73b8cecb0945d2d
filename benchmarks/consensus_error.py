"""How well K consensus rounds on random dropout graphs estimate the joint TD (specs/dvdn.md, eq. 2).

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \
        .venv/bin/python benchmarks/consensus_error.py [--draws 2000] [--out docs/results/consensus.md]

For each draw, δ ~ N(0, I_N) and a fresh graph sequence (complete base, link dropout p_drop,
Metropolis weights); Δ̂ = N · W⁽ᴷ⁾ ⋯ W⁽¹⁾ δ (`jtd_estimate`). The error of one draw is the mean over
agents of |Δ̂_i − Σ_j δ_j| / |Σ_j δ_j|. The K-round estimates of one draw share their first rounds
(Ws[:K] of one 30-round sequence), as in a run that stops consensus after K rounds.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from netmarl.comm import GraphSchedule, jtd_estimate, make_schedule  # noqa: E402
from netmarl.results.provenance import machine_lines  # noqa: E402

AGENTS = (3, 4, 8, 16)
P_DROPS = (0.0, 0.25, 0.5, 0.75)
ROUNDS = (1, 2, 5, 10, 30)


def relative_errors(schedule: GraphSchedule, rounds: tuple[int, ...], key: jax.Array,
                    draws: int) -> np.ndarray:
    """Per-draw relative JTD error, mean over agents: [draws, len(rounds)]."""
    n = schedule.num_agents

    def one_draw(key: jax.Array) -> jax.Array:
        k_delta, k_graph = jax.random.split(key)
        delta = jax.random.normal(k_delta, (n,))
        weights = schedule.sample_rounds(k_graph, 0, max(rounds))  # [K_max, N, N]
        total = delta.sum()
        return jnp.stack([jnp.mean(jnp.abs(jtd_estimate(delta, weights[:k]) - total)) / jnp.abs(total)
                          for k in rounds])

    return np.asarray(jax.jit(jax.vmap(one_draw))(jax.random.split(key, draws)))


def measure(connected: bool, agents, p_drops, draws: int, seed: int) -> dict:
    """{(N, p_drop): (mean [K], median [K])} for complete base graphs."""
    results = {}
    for n in agents:
        for p_drop in p_drops:
            schedule = make_schedule("complete", n, p_drop=p_drop, connected=connected)
            key = jax.random.fold_in(jax.random.key(seed), 100 * n + int(100 * p_drop))
            errors = relative_errors(schedule, ROUNDS, key, draws)
            results[n, p_drop] = (errors.mean(0), np.median(errors, 0))
            print(f"connected={connected} N={n} p_drop={p_drop}: mean {np.round(errors.mean(0), 4)}",
                  flush=True)
    return results


def fmt(value: float) -> str:
    """A relative error as a percentage with two significant digits (floor 1e-5: float32 noise)."""
    if value < 1e-5:
        return "< 0.001 %"
    percent = 100 * value
    return f"{percent:,.0f} %" if percent >= 10 else f"{percent:.2g} %"


def table(results: dict, stats: tuple[int, ...]) -> list[str]:
    """Markdown table, rows N × p_drop, columns K; cells join the chosen stats (0 mean, 1 median)."""
    lines = ["| N | p_drop | " + " | ".join(f"K = {k}" for k in ROUNDS) + " |",
             "|---:|---:|" + "---:|" * len(ROUNDS)]
    for (n, p_drop), values in results.items():
        cells = [" / ".join(fmt(values[s][k]) for s in stats) for k in range(len(ROUNDS))]
        lines.append(f"| {n} | {p_drop} | " + " | ".join(cells) + " |")
    return lines


def k_below(results: dict, p_drop: float, threshold: float) -> str:
    """Smallest measured K whose mean error is below `threshold` for every N, or '> 30'."""
    ks = [next((k for k, v in zip(ROUNDS, results[n, p_drop][0]) if v < threshold), None) for n in AGENTS]
    return f"> {ROUNDS[-1]}" if None in ks else str(max(ks))


def reading(conn: dict, disc: dict) -> list[str]:
    """A short reading of the numbers (computed from them, so it stays true on a rerun)."""
    def span(p_drop: float, stat: int, k_index: int) -> str:
        values = [conn[n, p_drop][stat][k_index] for n in AGENTS]
        return f"{fmt(min(values))}–{fmt(max(values))}"

    k10 = ROUNDS.index(10)
    worst_k30 = max(stats[0][-1] for stats in conn.values())
    bound = "below 0.001 %" if worst_k30 < 1e-5 else f"at most {fmt(worst_k30)}"
    return [
        f"With p_drop = 0 the complete graph's Metropolis W is 11ᵀ/N, so one round is exact (mean error "
        f"{fmt(max(conn[n, 0.0][0][0] for n in AGENTS))} at K = 1) and DVDN equals VDN. "
        f"Under dropout the spec's default K = 1 is a rough estimate: at p_drop = 0.5 the median error "
        f"at K = 1 is {span(0.5, 1, 0)} across N, and the means ({span(0.5, 0, 0)}) are larger still "
        "because |Σδ| is sometimes near 0 (the relative error has a heavy tail, so the median table is "
        "the better guide to a typical transition). "
        f"The error falls geometrically with K: the first measured K with a mean below 1 % for every N "
        f"is {k_below(conn, 0.5, 0.01)} at p_drop = 0.5 and {k_below(conn, 0.75, 0.01)} at p_drop = 0.75, "
        f"and at K = 30 the mean is {bound} in every connected configuration, "
        "consistent with the spec's \"< 1 % after K = 30\". "
        f"Without the connectivity redraw (p_drop = 0.75), isolated agents slow small teams down: at "
        f"K = 10 the mean error is {fmt(disc[3, 0.75][0][k10])} for N = 3 against "
        f"{fmt(conn[3, 0.75][0][k10])} with connected=True, while for N = 16, whose dropout graphs are "
        f"usually connected anyway, the two are close ({fmt(disc[16, 0.75][0][k10])} vs "
        f"{fmt(conn[16, 0.75][0][k10])}).",
    ]


def render(conn: dict, disc: dict, draws: int, seconds: float, argv: list[str]) -> str:
    command = ('XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" '
               ".venv/bin/python benchmarks/consensus_error.py" + "".join(f" {shlex.quote(a)}" for a in argv))
    lines = ["# Consensus: JTD estimation error after K rounds", "",
             f"Relative error |Δ̂_i − Σ_j δ_j| / |Σ_j δ_j|, averaged over agents, then over {draws:,} draws "
             "of δ ~ N(0, I_N), each with its own graph sequence. Base graph complete; each round keeps "
             "every link with probability 1 − p_drop; Metropolis weights; Δ̂ = N · W⁽ᴷ⁾⋯W⁽¹⁾ δ.", "",
             "## connected=True (redraw until connected): mean over draws", "", *table(conn, (0,)), "",
             "## connected=True: median over draws", "", *table(conn, (1,)), "",
             "## connected=False, p_drop = 0.75 (isolated agents possible): mean / median", "",
             *table(disc, (0, 1)), ""]
    lines += ["## Reading", "", *reading(conn, disc), "",
              "## Machine and command", "",
              *machine_lines(),
              f"- Runtime: {seconds:.0f} s (including compilation)", "",
              "```", command, "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--draws", type=int, default=2000, help="random δ vectors (and graph sequences)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "docs/results/consensus.md"))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    conn = measure(True, AGENTS, P_DROPS, args.draws, args.seed)
    disc = measure(False, AGENTS, (0.75,), args.draws, args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(conn, disc, args.draws, time.perf_counter() - start, argv))
    print(f"wrote {out} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
