"""Env-steps/s of netmarl's JAX Box Jump against the Box2D reference back-end, random actions.

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \
        .venv/bin/python benchmarks/boxjump_throughput.py [--task boxjump-paper] [--envs 1 1024]

One env step is one joint step of one environment (all N boxes), so a call over B envs counts B.
Writes docs/results/boxjump_throughput.md.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from netmarl.envs.boxjump_ref import BoxJumpRef  # noqa: E402
from netmarl.envs.registry import make  # noqa: E402
from netmarl.results.provenance import command_line, machine_lines  # noqa: E402

GOAL = 100.0  # issue goal: speed-up over the Box2D back-end with 1,024 envs
MIN_SECONDS = 1.0  # every timed repetition lasts at least this long


def time_box2d(env, steps: int, repeats: int) -> list[float]:
    """Seconds per repetition of `steps` Box2D env steps (uniform random actions, reset on truncation)."""
    ref, rng = BoxJumpRef(env), np.random.default_rng(0)
    times, episode = [], 0
    ref.reset(seed=episode)
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            if ref.step(rng.integers(0, env.num_actions, env.num_agents))[3]:
                episode += 1
                ref.reset(seed=episode)
        times.append(time.perf_counter() - start)
    return times


def rollout(env, length: int):
    """(key, state) -> state after `length` random-action steps of one env (a `lax.scan`)."""
    def body(state, key):
        actions = jax.random.randint(key, (env.num_agents,), 0, env.num_actions)
        return env.step(None, state, actions)[0], None

    def run(key, state):
        return jax.lax.scan(body, state, jax.random.split(key, length))[0]

    return run


def time_jax(env, num_envs: int, length: int, repeats: int) -> tuple[list[float], float, int]:
    """Times `length` steps of `num_envs` vmapped envs, started 50 steps into an episode (so boxes are
    moving and touching). Returns (seconds per repetition, compile seconds, scan length)."""
    states, _ = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(0), num_envs))
    states = jax.jit(jax.vmap(rollout(env, 50)))(jax.random.split(jax.random.key(1), num_envs), states)
    while True:
        run = jax.jit(jax.vmap(rollout(env, length)))
        keys = jax.random.split(jax.random.key(2), num_envs)
        start = time.perf_counter()
        compiled = run.lower(keys, states).compile()
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        jax.block_until_ready(compiled(keys, states))
        if time.perf_counter() - start >= MIN_SECONDS:
            break
        length *= 2
    times = []
    for r in range(repeats):
        keys = jax.random.split(jax.random.key(10 + r), num_envs)
        start = time.perf_counter()
        states = jax.block_until_ready(compiled(keys, states))
        times.append(time.perf_counter() - start)
    return times, compile_s, length


def render_report(task: str, env, rows: list[dict], repeats: int) -> str:
    base = rows[0]["rate"]
    lines = [f"# Box Jump throughput: `{task}` (`{env.name}`)", "",
             "| backend | envs | env-steps/s | speed-up vs Box2D | s/repetition | compile s |",
             "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        compile_s = f"{row['compile']:.1f}" if row["compile"] is not None else "-"
        lines.append(f"| {row['backend']} | {row['envs']:,} | {row['rate']:,.0f} | {row['rate'] / base:.1f}x "
                     f"| {row['seconds']:.2f} | {compile_s} |")
    goal = next((r for r in rows if r["envs"] == 1024 and r["backend"].startswith("netmarl")), None)
    if goal is not None:
        speedup = goal["rate"] / base
        lines += ["", f"Issue goal (>= {GOAL:.0f}x the Box2D back-end with 1,024 envs): "
                  f"{'**met**' if speedup >= GOAL else '**not met**'} ({speedup:.1f}x)."]
    lines += ["", "## Machine", "", *machine_lines(("jax", "jaxlib", "numpy", "box2d")), "",
              "## Command", "", "```", command_line(), "```", "", "## Methodology", "",
              "- One env step is one joint step of one environment (all N boxes); B envs count B.",
              "- Box2D: `netmarl.envs.boxjump_ref.BoxJumpRef` (pybox2d, `world.Step(1/40, 30, 30)`, a "
              "Python loop over agents for the actions and the O(N^2) observation scan, as the original "
              "environment), uniform random actions from numpy, reset when an episode is truncated.",
              "- netmarl: `jax.lax.scan` of `env.step` with actions drawn by `jax.random` inside the "
              "scan, vmapped over B envs, started 50 steps into an episode; compilation is timed "
              "separately, then one warm-up call, then the timed calls (`block_until_ready`).",
              "- The JAX solver's cost does not depend on how many boxes touch (every pair slot is "
              "solved densely), so a short scan measures the steady rate.",
              f"- Each backend is timed {repeats} times (each repetition >= {MIN_SECONDS:.0f} s); the "
              "table reports the median repetition."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="boxjump-paper", help="Box Jump preset or id")
    parser.add_argument("--steps", type=int, default=4000, help="Box2D env steps per repetition")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions per backend")
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 1024], help="vmapped JAX envs")
    parser.add_argument("--out", default=str(ROOT / "docs/results/boxjump_throughput.md"))
    args = parser.parse_args(argv)
    env = make(args.task)
    seconds = statistics.median(time_box2d(env, args.steps, args.repeats))
    rows = [dict(backend="Box2D reference", envs=1, rate=args.steps / seconds, seconds=seconds, compile=None)]
    print(f"box2d: {rows[0]['rate']:,.0f} env-steps/s", flush=True)
    for num_envs in args.envs:
        times, compile_s, length = time_jax(env, num_envs, max(8, 2000 // num_envs), args.repeats)
        seconds = statistics.median(times)
        rows.append(dict(backend="netmarl (JAX)", envs=num_envs, rate=num_envs * length / seconds,
                         seconds=seconds, compile=compile_s))
        print(f"netmarl x{num_envs}: {rows[-1]['rate']:,.0f} env-steps/s (compile {compile_s:.1f} s)", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(args.task, env, rows, args.repeats))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
