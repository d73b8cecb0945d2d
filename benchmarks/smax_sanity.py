"""Win rates of two scripted policies on the SMAC maps of DG-MAPPO's table (netmarl's SMAX maps).

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \
        .venv/bin/python benchmarks/smax_sanity.py [--episodes 256] [--maps 3m MMM2]

- random: uniform over each agent's available actions.
- attack-nearest: shoot the nearest enemy in range (medivacs: heal the ally with the lowest
  health fraction in range); else move towards the nearest living enemy (medivacs: towards the
  nearest living ally that is not a medivac).
A sanity check of the maps (a random team should rarely win; focused fire should win the
symmetric maps more often), not a benchmark of learners.
"""
from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from netmarl.envs.registry import make  # noqa: E402
from netmarl.results.provenance import machine_lines  # noqa: E402

MAPS = ["3m", "8m", "MMM", "8m_vs_9m", "MMM2", "3s5z_vs_3s6z", "6h_vs_8z"]
MEDIVAC = 6


def random_policy(env, state, ts, key):
    return jax.random.categorical(key, jnp.where(ts.avail, 0.0, -jnp.inf))


def nearest_policy(env, state, ts, key):
    """Attack-nearest (see the module docstring) for every ally, from the true unit positions."""
    smax, inner = state.inner.state, env.inner
    na, n = inner.num_allies, smax.unit_positions.shape[0]
    pos, alive = smax.unit_positions, smax.unit_alive
    medivac = smax.unit_types[:na] == MEDIVAC
    dist = jnp.linalg.norm(pos[:na, None] - pos[None], axis=-1)  # [allies, units]
    slots = ts.avail.shape[1] - 5
    attack_d = jnp.where(ts.avail[:, 5:], jnp.pad(dist[:, na:], ((0, 0), (0, slots - (n - na))),
                                                  constant_values=jnp.inf)[:, :slots], jnp.inf)
    fraction = smax.unit_health / inner.unit_type_health[smax.unit_types]
    heal_f = jnp.where(ts.avail[:, 5:], jnp.pad(fraction[:na], (0, slots - na))[:slots]
                       if slots >= na else fraction[:slots], jnp.inf)
    target = jnp.where(medivac, jnp.argmin(heal_f, 1), jnp.argmin(attack_d, 1))
    can_act = jnp.where(medivac, jnp.isfinite(heal_f).any(1), jnp.isfinite(attack_d).any(1))
    chase = jnp.where(medivac[:, None], (jnp.arange(n) < na) & (smax.unit_types != MEDIVAC),
                      jnp.arange(n) >= na) & alive
    goal = pos[jnp.argmin(jnp.where(chase, dist, jnp.inf), 1)] - pos[:na]
    moves, _ = inner._env._decode_discrete_actions(jnp.arange(4))  # [4, 2] unit vectors
    move = jnp.argmax(goal @ moves.T, axis=1)
    return jnp.where(can_act, 5 + target, move).astype(jnp.int32)


POLICIES = {"random": random_policy, "attack-nearest": nearest_policy}


def win_rate(map_name: str, policy, episodes: int, seed: int = 0) -> tuple[float, float]:
    """(win rate, mean episode length) of `policy` over `episodes` vmapped episodes."""
    env = make(f"smax:{map_name}")

    def episode(key):
        state, ts = env.reset(key)

        def step(carry, key):
            state, ts, alive, won, length = carry
            k_act, k_env = jax.random.split(key)
            state, nxt = env.step(k_env, state, policy(env, state, ts, k_act))
            return (state, nxt, alive & ~nxt.done, won | (alive & nxt.info["won"]),
                    length + alive), None

        init = (state, ts, jnp.bool_(True), jnp.bool_(False), jnp.int32(0))
        (_, _, _, won, length), _ = jax.lax.scan(step, init, jax.random.split(key, env.max_steps))
        return won, length

    won, length = jax.jit(jax.vmap(episode))(jax.random.split(jax.random.key(seed), episodes))
    return float(np.mean(won)), float(np.mean(length))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--maps", nargs="+", default=MAPS)
    parser.add_argument("--episodes", type=int, default=256)
    parser.add_argument("--out", default=str(ROOT / "docs/results/smax_sanity.md"))
    args = parser.parse_args(argv)
    lines = ["# SMAX maps: win rates of scripted policies against the heuristic enemy", "",
             f"{args.episodes} episodes per cell (seed 0); win rate (mean episode length in env steps).", "",
             "| map | allies vs enemies | time limit | " + " | ".join(POLICIES) + " |",
             "|---|---|---:|" + "---:|" * len(POLICIES)]
    for map_name in args.maps:
        env = make(f"smax:{map_name}")
        cells = []
        for name, policy in POLICIES.items():
            rate, length = win_rate(map_name, policy, args.episodes)
            cells.append(f"{rate:.2f} ({length:.0f})")
            print(map_name, name, rate, length, flush=True)
        lines.append(f"| {map_name} | {env.inner.num_allies} vs {env.inner.num_enemies} | "
                     f"{env.max_steps} | " + " | ".join(cells) + " |")
    command = shlex.join([".venv/bin/python", *sys.argv])
    lines += ["", "## Command", "", "```", f'XLA_FLAGS="{os.environ.get("XLA_FLAGS", "")}" {command}', "```",
              "", "## Machine", "", *machine_lines(("jax", "jaxlib", "jaxmarl")), "",
              f"Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}", "",
              __doc__.split("\n\n", 2)[2]]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
