"""Training throughput of netmarl's Q-learner at EPyMARL's vdn_ns settings on lbf-easy.

The EPyMARL figure is not typed in: it is the steady-state env-steps/s of EPyMARL's `vdn_ns` (MLP,
or GRU for the GRU row) in the latest run of benchmarks/epymarl_side_by_side.py that measured it
(among the docs/results/epymarl_*.json it writes, with its date and machine). Settings matched here: 1
environment, minibatch of 32 episodes, one update per episode, 50-step episodes, feed-forward agents
of 64 hidden units with separate parameters, buffer of 5,000 episodes, Adam, double Q, target update
every 200 updates. The per-run ratio measured side by side, in one run, is in
docs/results/epymarl_side_by_side.md; this benchmark adds netmarl's parallel configurations.
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
from netmarl.config import AlgoConfig, EnvConfig, RunConfig, TrainConfig  # noqa: E402
from netmarl.results.provenance import command_line, machine_lines  # noqa: E402
from netmarl.train.runner import Trainer  # noqa: E402
from side_by_side_lib import latest_measured  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def measure(num_envs: int, seeds: int, agent: str, steps: int) -> dict:
    """Compiles, warms up for 10,000 steps (past the first minibatch), then times `steps` env steps."""
    buffer = -(-5000 // num_envs) * num_envs  # 5,000 episodes, rounded up to whole blocks of envs
    algo = AlgoConfig(name="vdn", team_td="vdn", agent=agent, hidden=64, layers=2, batch_size=32,
                      buffer_size=buffer, target_update_interval=200)
    config = TrainConfig(algo=algo, env=EnvConfig("lbf-easy"),
                         run=RunConfig(seeds=seeds, num_envs=num_envs, progress=False))
    trainer = Trainer(config)
    tic = time.perf_counter()
    carry = jax.block_until_ready(trainer.init_seeds())
    carry, _ = jax.block_until_ready(trainer.run_chunk(carry, jnp.int32(10_000)))
    warmup = time.perf_counter() - tic
    start_steps = int(carry.env_steps.sum())
    tic = time.perf_counter()
    carry, stats = jax.block_until_ready(trainer.run_chunk(carry, jnp.int32(10_000 + steps)))
    seconds = time.perf_counter() - tic
    done = int(carry.env_steps.sum()) - start_steps
    return dict(agent=agent, envs=num_envs, seeds=seeds, seconds=seconds, warmup=warmup,
                per_seed=done / seconds / seeds, total=done / seconds,
                updates=float(stats.updates.sum()) / seconds / seeds,
                episode_len=done / float(stats.episodes.sum()))


def report(rows: list[dict], steps: int) -> str:
    ref = {agent: _measured(f"vdn_ns-{agent}") for agent in ("mlp", "gru")}
    measured = [f"{ref[a].epymarl_steady:,.0f} env-steps/s with {a.upper()} agents ({ref[a].source})"
                for a in ref if ref[a]]
    lines = ["# Training throughput: VDN on lbf-easy at EPyMARL's vdn_ns settings", "",
             "EPyMARL `vdn_ns`, steady state, from the latest side-by-side run that measured it "
             "(benchmarks/epymarl_side_by_side.py; its document is named below): "
             + ("; ".join(measured) if measured else "not measured yet (run `make side-by-side` with "
                "vdn_ns)") + ".", "",
             "| agents | envs per update | seeds (vmapped) | env-steps/s per seed | vs EPyMARL vdn_ns "
             "| updates/s per seed | mean episode length | timed s | compile + warm-up s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        base = ref[r["agent"]]
        ratio = f"{r['per_seed'] / base.epymarl_steady:.0f}x" if base else "not measured"
        lines.append(f"| {r['agent']} | {r['envs']} | {r['seeds']} | {r['per_seed']:,.0f} | "
                     f"{ratio} | {r['updates']:.1f} | "
                     f"{r['episode_len']:.1f} | {r['seconds']:.1f} | {r['warmup']:.1f} |")
    lines += ["", "The per-run comparison at identical settings, measured side by side in one run "
              "(whole run and steady state), is docs/results/epymarl_side_by_side.md, with where a run's "
              "time goes and its floor (update FLOPs / matmul throughput); the rows here are measured "
              "in this process, after the side-by-side run.", "",
              "## Settings", "",
              "- lbf-easy = Foraging-10x10-3p-3f, rules `paper`, 50-step time limit; VDN, separate "
              "parameters per agent (EPyMARL vdn_ns), MLP agents 2x64 (first rows), Adam lr 5e-4, "
              "gamma 0.99, double Q, target update every 200 updates, buffer 5,000 episodes (5,024 "
              "with 32 envs: whole blocks of envs), minibatch 32 episodes, one update per iteration "
              "of `envs per update` episodes, epsilon 1 -> 0.05 "
              "over 50,000 steps.",
              f"- Timed: {steps:,} env steps per seed after a 10,000-step warm-up (compilation, "
              "filling the first minibatch); env steps count real episode steps (padding excluded).",
              "", "## Machine and command", "",
              *machine_lines(), "", "```", command_line(), "```"]
    return "\n".join(lines) + "\n"


def _measured(setting: str):
    """The side-by-side figures of `setting`, or None if the latest run did not include it."""
    try:
        return latest_measured(setting)
    except SystemExit as missing:
        print(f"note: {missing}", flush=True)
        return None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=50_000, help="timed env steps per seed")
    parser.add_argument("--out", default=str(ROOT / "docs/results/train_throughput.md"))
    args = parser.parse_args(argv)
    setups = [(1, 1, "mlp"), (8, 1, "mlp"), (32, 1, "mlp"), (1, 4, "mlp"), (1, 1, "gru")]
    rows = []
    for envs, seeds, agent in setups:
        rows.append(measure(envs, seeds, agent, args.steps))
        r = rows[-1]
        print(f"{agent} envs={envs} seeds={seeds}: {r['per_seed']:,.0f} env-steps/s per seed", flush=True)
    Path(args.out).write_text(report(rows, args.steps))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
