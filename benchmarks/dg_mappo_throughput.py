"""Throughput of DG-MAPPO in the simulator (issue 23, acceptance 3): env-steps/s on a SMAC map at the
seed's Table 3 settings (experiment=dg-mappo-<map>), with the communication it implies per agent.

    python benchmarks/dg_mappo_throughput.py [--map 8m] [--iterations 3] [--seeds 1 2]
        -> docs/results/dg_mappo_throughput.md (its "## MPI" section, measured under mpirun, is kept)

Each configuration compiles, runs one warm-up iteration (run.num_envs whole episodes and their PPO
epochs), then times `--iterations` more; the numbers are steady-state env steps per second (all
seeds together and per seed) and the floats an agent sends per env step (its D-GAT hop features to
each neighbour) from the run's own diagnostics. MAPPO at the same settings is measured beside it:
the cost of the K attention hops and of per-agent parameters.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

os.environ.setdefault("NETMARL_COMPILATION_CACHE", "off")  # compile times are measured cold
from netmarl.cli import compose  # noqa: E402
from netmarl.results.provenance import command_line, machine_lines  # noqa: E402
from netmarl.train.runner import Trainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def measure(algo: str, map_name: str, seeds: int, iterations: int) -> dict:
    """Steady-state env steps/s of `iterations` iterations after one warm-up iteration."""
    config = compose([f"algo={algo}", f"experiment=dg-mappo-{map_name}", f"run.seeds={seeds}",
                      "run.progress=false"])
    trainer = Trainer(config)
    per_iteration = config.run.num_envs * trainer.env.max_steps  # an upper bound: episodes may end early
    tic = time.perf_counter()
    carry = trainer.init_seeds()
    carry, _ = jax.block_until_ready(trainer.run_chunk(carry, jnp.int32(1)))  # compile + one iteration
    warmup = time.perf_counter() - tic
    start = int(carry.env_steps.sum())
    tic = time.perf_counter()
    until = int(carry.env_steps.max()) + iterations * per_iteration
    carry, stats = jax.block_until_ready(trainer.run_chunk(carry, jnp.int32(until)))
    seconds = time.perf_counter() - tic
    done = int(carry.env_steps.sum()) - start
    updates = max(float(stats.updates.sum()), 1.0)
    return dict(algo=algo, map=map_name, seeds=seeds, envs=config.run.num_envs, warmup=warmup,
                seconds=seconds, total=done / seconds, per_seed=done / seconds / seeds,
                floats=float(stats.learn.floats_sent.sum()) / updates,
                degree=float(stats.learn.mean_degree.sum()) / updates)


def report(rows: list[dict]) -> str:
    lines = ["## Simulator", "",
             f"`{command_line()}`", "", *machine_lines(), "",
             "Steady state after one warm-up iteration (compilation + the first iteration, shown "
             "apart). Floats sent: per agent and env step, the D-GAT hop features to each neighbour "
             "(K hops × observation size × degree); the neighbour averaging of ψ adds |ψ| per "
             "neighbour once per update.", "",
             "| algorithm | map | parallel envs | seeds (vmapped) | env steps/s (all seeds) | per seed | "
             "compile + 1st iteration (s) | floats sent / agent / env step | mean degree |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['algo']} | {r['map']} | {r['envs']} | {r['seeds']} | {r['total']:,.0f} | "
                     f"{r['per_seed']:,.0f} | {r['warmup']:.0f} | {r['floats']:,.0f} | {r['degree']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--map", default="8m")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default=str(ROOT / "docs/results/dg_mappo_throughput.md"))
    args = parser.parse_args()
    rows = [measure(algo, args.map, seeds, args.iterations)
            for algo in ("dg_mappo", "mappo") for seeds in args.seeds]
    text = f"# DG-MAPPO throughput on SMAX {args.map}\n\n" + report(rows)
    out = Path(args.out)
    old = out.read_text() if out.exists() else ""
    if "## MPI" in old:  # the deployment measurement (docs/deployment.md) is kept as it is
        text += "\n" + old[old.index("## MPI"):]
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
