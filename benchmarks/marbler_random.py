"""Random-policy reference returns of the four MARBLER tasks, and their env-steps/s.

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \
        .venv/bin/python benchmarks/marbler_random.py [--episodes 200] [--out docs/results/marbler_random.md]

Every episode: reset, then uniformly random actions until the episode ends (violation, success or
the time limit). Returns are team returns (the sum of the agents' shares). The same episodes are run
with the safety barrier on (the MARBLER setting) and off, to show what the barrier prevents.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

os.environ.setdefault("NETMARL_COMPILATION_CACHE", "off")  # compile times are measured cold
from netmarl.envs.registry import make  # noqa: E402
from netmarl.results.provenance import command_line, machine_lines  # noqa: E402

TASKS = ("marbler-arctic", "marbler-material", "marbler-pcp", "marbler-warehouse")
MIN_SECONDS = 1.0


def random_episode(env):
    """key -> (team return, length, success, violated, collision-circle min distance) of one
    uniformly random episode; steps after the end are masked out."""
    def step(carry, key):
        state, alive, ret, length, violated = carry
        k_act, k_env = jax.random.split(key)
        actions = jax.random.randint(k_act, (env.num_agents,), 0, env.num_actions)
        new, ts = env.step(k_env, state, actions)
        hit = new.report.violated & ~state.report.violated
        carry = (jax.tree.map(lambda a, b: jnp.where(alive, a, b), new, state), alive & ~ts.done,
                 ret + alive * ts.team_reward, length + alive, violated | (alive & hit))
        return carry, None

    def episode(key):
        k_reset, k_run = jax.random.split(key)
        state, _ = env.reset(k_reset)
        init = (state, jnp.bool_(True), jnp.float32(0), jnp.int32(0), jnp.bool_(False))
        (state, _, ret, length, violated), _ = jax.lax.scan(step, init, jax.random.split(k_run, env.max_steps))
        return ret, length, env.success(state), violated, state.report.min_distance

    return episode


def random_returns(env, episodes: int, seed: int = 0) -> dict:
    """Runs `episodes` random episodes vmapped; returns summary statistics."""
    run = jax.jit(jax.vmap(random_episode(env)))
    ret, length, success, violated, min_dist = jax.device_get(
        run(jax.random.split(jax.random.key(seed), episodes)))
    return dict(mean=float(ret.mean()), std=float(ret.std()), length=float(length.mean()),
                success=float(success.mean()), violated=float(violated.mean()),
                min_dist=float(min_dist.min()))


def throughput(env, num_envs: int, repeats: int = 3) -> tuple[float, float]:
    """(env-steps/s, compile s) of a jitted scan of `env.step` with random actions over `num_envs`
    vmapped envs (no resets: the episode mode's inner loop, T = max_steps steps per call)."""
    def rollout(keys, states):
        def body(states, key):
            k_act, k_env = jax.random.split(key)
            actions = jax.random.randint(k_act, (num_envs, env.num_agents), 0, env.num_actions)
            states, _ = jax.vmap(env.step)(jax.random.split(k_env, num_envs), states, actions)
            return states, None
        return jax.lax.scan(body, states, keys)[0]

    states, _ = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(0), num_envs))
    length = env.max_steps
    while True:
        keys = jax.random.split(jax.random.key(1), length)
        start = time.perf_counter()
        compiled = jax.jit(rollout).lower(keys, states).compile()
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        jax.block_until_ready(compiled(keys, states))
        if time.perf_counter() - start >= MIN_SECONDS:
            break
        length *= 4
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(keys, states))
        times.append(time.perf_counter() - start)
    return num_envs * length / statistics.median(times), compile_s


def render_report(rows: list[dict], episodes: int) -> str:
    lines = ["# MARBLER: random-policy returns and throughput", "",
             f"Uniformly random actions, {episodes} episodes per row (seed 0), team return "
             "(sum of the agents' shares) mean ± std. `violated`: fraction of episodes ended by a "
             "collision or boundary violation (penalty, terminated); `min dist`: smallest distance "
             "between two robots' collision circles over all episodes (collision below 0.135 m).", "",
             "| task | barrier | return | length | success | violated | min dist (m) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| `{r['task']}` | {'on' if r['barrier'] else 'off'} | {r['mean']:.2f} ± {r['std']:.2f} "
                     f"| {r['length']:.1f} | {r['success']:.2f} | {r['violated']:.2f} | {r['min_dist']:.3f} |")
    lines += ["", "## Throughput (barrier on)", "", "| task | envs | env-steps/s | compile s |",
              "|---|---:|---:|---:|"]
    for r in rows:
        for n, (rate, compile_s) in r.get("speed", {}).items():
            lines.append(f"| `{r['task']}` | {n:,} | {rate:,.0f} | {compile_s:.1f} |")
    lines += ["", "One env step = one joint step of one environment (with its `update_frequency` "
              "Robotarium sub-steps: 36 / 74 / 29 / 29); a call over B envs counts B steps. Timed: "
              "a jitted `lax.scan` of vmapped `env.step` with random actions (no resets), the median "
              "of 3 calls of >= 1 s after compilation.", "", "## Machine", "",
              *machine_lines(("jax", "jaxlib", "numpy", "pillow")), "", "## Command", "", "```",
              command_line(), "```", ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 1024])
    parser.add_argument("--out", default=str(ROOT / "docs/results/marbler_random.md"))
    args = parser.parse_args(argv)
    rows = []
    for task in TASKS:
        for barrier in (True, False):
            env = make(task, barrier=barrier)
            row = dict(task=task, barrier=barrier, **random_returns(env, args.episodes))
            if barrier:
                row["speed"] = {n: throughput(env, n) for n in args.envs}
            rows.append(row)
            print(row, flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(rows, args.episodes))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
