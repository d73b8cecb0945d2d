"""Env-steps/s of JaxMARL environments through netmarl's adapter, against JaxMARL called directly
and (particle tasks) against PettingZoo's MPE (`mpe2`), in one run, under uniformly random actions.

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \
        .venv/bin/python benchmarks/jaxmarl_throughput.py [--tasks mpe-spread smax:3m] [--envs 1024]

The LBF benchmark is benchmarks/env_throughput.py; this one reuses its timing (episode mode: reset,
then a jitted scan over the max_steps steps of an episode, vmapped over B envs, steps after an
episode's end not counted; compile timed apart; the median of the timed repetitions).
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import env_throughput as base  # noqa: E402

os.environ.setdefault("NETMARL_COMPILATION_CACHE", "off")  # compile times are measured cold
from netmarl.envs.registry import make  # noqa: E402
from netmarl.results.provenance import machine_lines  # noqa: E402

MPE2 = {"mpe-spread": ("simple_spread_v3", {"N": 3, "local_ratio": 0.5}),
        "mpe-speaker-listener": ("simple_speaker_listener_v4", {}),
        "mpe-reference": ("simple_reference_v3", {})}


class _Outcome(NamedTuple):
    done: jax.Array
    team_reward: jax.Array


class Direct:
    """JaxMARL called directly: the adapter's wrapped env with its own dict API (`reset`,
    `step_env`), exposing just what env_throughput's episode rollout reads: no adapter code."""

    def __init__(self, env):
        self.inner, self.agents, self.max_steps = env.inner, list(env.inner.agents), env.max_steps
        self.num_agents, self.num_actions = len(self.agents), env.num_actions

    def reset(self, key):
        return self.inner.reset(key)[1], None

    def step(self, key, state, actions):
        _, state, rewards, dones, _ = self.inner.step_env(
            key, state, {ag: actions[i] for i, ag in enumerate(self.agents)})
        return state, _Outcome(dones["__all__"], sum(rewards[ag] for ag in self.agents))


def time_mpe2(task: str, steps: int, repeats: int) -> float:
    """env-steps/s of mpe2's parallel env in a Python loop (random actions, reset at the limit)."""
    module, kwargs = MPE2[task]
    env = importlib.import_module(f"mpe2.{module}").parallel_env(max_cycles=25, **kwargs)
    rng, times = np.random.default_rng(0), []
    env.reset(seed=0)
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            _, _, terms, truncs, _ = env.step({a: int(rng.integers(env.action_space(a).n)) for a in env.agents})
            if not env.agents or all(truncs.values()) or all(terms.values()):
                env.reset()
        times.append(time.perf_counter() - start)
    return steps / statistics.median(times)


def interleaved(subjects: list, num_envs: int, steps: int, repeats: int) -> list[tuple[float, float]]:
    """(median env-steps/s, compile s) per subject; the timed calls alternate between subjects
    (ABAB...) so that a shared machine's changing load hits both alike."""
    length, runs = max(1, -(-steps // num_envs)), []
    for subject in subjects:
        states, _ = jax.jit(jax.vmap(subject.reset))(jax.random.split(jax.random.key(0), num_envs))
        run, compile_s = base.compile_rollout(subject, num_envs, length, states, "episodes")
        jax.block_until_ready(run(jax.random.split(jax.random.key(1), num_envs), states))  # warm-up
        runs.append((run, states, compile_s, []))
    for r in range(repeats):
        for run, states, _, rates in runs:
            keys = jax.random.split(jax.random.key(2 + r), num_envs)
            start = time.perf_counter()
            _, _, counted = jax.block_until_ready(run(keys, states))
            rates.append(float(counted.sum()) / (time.perf_counter() - start))
    return [(statistics.median(rates), compile_s) for _, _, compile_s, rates in runs]


def measure(task: str, envs: list[int], steps: int, repeats: int) -> list[dict]:
    env = make(task)
    rows = []
    if task in MPE2:
        rate = time_mpe2(task, steps // 10, repeats)
        rows.append(dict(task=task, backend="mpe2 (PettingZoo)", envs=1, rate=rate))
        print(f"{task} mpe2: {rate:,.0f}", flush=True)
    for num_envs in envs:
        results = interleaved([Direct(env), env], num_envs, steps, repeats)
        for backend, (rate, compile_s) in zip(["JaxMARL direct", "netmarl adapter"], results):
            rows.append(dict(task=task, backend=backend, envs=num_envs, rate=rate, compile=compile_s))
            print(f"{task} {backend} x{num_envs}: {rate:,.0f} (compile {compile_s:.1f} s)", flush=True)
    return rows


def render(rows: list[dict], repeats: int, note: str) -> str:
    lines = ["# JaxMARL environments: throughput through the adapter", "",
             "| task | backend | envs | env-steps/s | adapter / direct | vs mpe2 |",
             "|---|---|---:|---:|---:|---:|"]
    for row in rows:
        direct = next((r["rate"] for r in rows if r["task"] == row["task"] and r["envs"] == row["envs"]
                       and r["backend"] == "JaxMARL direct"), None)
        ref = next((r["rate"] for r in rows if r["task"] == row["task"] and r["backend"].startswith("mpe2")), None)
        ratio = f"{row['rate'] / direct:.2f}" if direct and row["backend"] == "netmarl adapter" else ""
        vs = f"{row['rate'] / ref:,.0f}x" if ref and not row["backend"].startswith("mpe2") else ""
        lines.append(f"| `{row['task']}` | {row['backend']} | {row['envs']:,} | {row['rate']:,.0f} | {ratio} | {vs} |")
    command = shlex.join([".venv/bin/python", *sys.argv])
    lines += ["", "Goals (issue 22): adapter >= 0.9x JaxMARL direct; >= 100x mpe2 at 1,024 envs.", "",
              note, "", "## Machine", "", *machine_lines(("jax", "jaxlib", "jaxmarl", "mpe2")), "",
              "## Command", "", "```", f'XLA_FLAGS="{os.environ.get("XLA_FLAGS", "")}" {command}', "```", "",
              f"Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}", "",
              "## Methodology", "",
              "- One env step is one joint step of one environment; with B envs a call counts B.",
              "- Random actions: uniform over each agent's A actions (SMAX: invalid attacks are no-ops).",
              "- JaxMARL direct: the same JaxMARL env object the adapter wraps, `reset` + `step_env` "
              "with dict actions in the same episode-mode scan; the adapter adds its dict <-> array "
              "conversion, padding, avail masks, global state and step counting.",
              "- mpe2: its parallel env in a Python loop, one env, max_cycles = 25.",
              f"- {repeats} timed calls per row, alternating between JaxMARL direct and the adapter "
              "(same compiled scan length), median reported; compilation is timed apart."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["mpe-spread", "smax:3m"])
    parser.add_argument("--envs", type=int, nargs="+", default=[1024])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--note", default="", help="e.g. that the machine was shared")
    parser.add_argument("--out", default=str(ROOT / "docs/results/jaxmarl_throughput.md"))
    args = parser.parse_args(argv)
    rows = [row for task in args.tasks for row in measure(task, args.envs, args.steps, args.repeats)]
    Path(args.out).write_text(render(rows, args.repeats, args.note))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
