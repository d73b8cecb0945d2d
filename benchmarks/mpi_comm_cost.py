"""Per-step communication cost of networked agents over MPI, and the in-process simulation's.

    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
      .venv/bin/mpirun -n 4 --oversubscribe .venv/bin/python benchmarks/mpi_comm_cost.py
    .venv/bin/python benchmarks/mpi_comm_cost.py --local 4      # the simulator's W @ x, for N = 4

Measures, for one DVDN/DVDN (GT) training step of agents with the given network size:
- TD rounds: K neighbour all-reduces of the TD vector (one float per sampled transition, B·T floats),
  on a complete base graph with links dropped with p = 0.5 (a fresh connected graph every round,
  point-to-point Isend/Irecv), and on the static complete graph (dist-graph Ineighbor_allgather);
- parameter exchange (GT): one all-reduce of the packed parameters + tracker (2·P floats).
Prints one JSON line per measurement (median and 90th percentile over repetitions, milliseconds).
"""
from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np


def _params_size(hidden: int, layers: int, obs: int, actions: int) -> int:
    sizes = [obs, *[hidden] * layers, actions]
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def _time(fn, reps: int) -> dict:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        tic = time.perf_counter()
        fn()
        times.append((time.perf_counter() - tic) * 1e3)
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90))}


def mpi_costs(args) -> None:
    from mpi4py import MPI

    from netmarl.comm import make_schedule, metropolis_weights
    from netmarl.comm.mpi import MPICommunicator

    comm = MPI.COMM_WORLD
    n, me = comm.Get_size(), comm.Get_rank()
    dynamic = make_schedule("complete", n, p_drop=0.5, connected=True)
    static_w = np.asarray(metropolis_weights(make_schedule("complete", n, p_drop=0.0).base))
    weights = np.asarray(jax.jit(lambda k: dynamic.sample_rounds(k, 0, 64))(jax.random.key(0)))
    link = MPICommunicator(comm, timeout=60.0, static_weights=static_w)
    td = np.random.default_rng(me).standard_normal(args.transitions).astype(np.float32)
    size = 2 * _params_size(args.hidden, args.layers, args.obs, args.actions)
    params = np.random.default_rng(me).standard_normal(size).astype(np.float32)
    state = {"round": 0}

    def rounds(x, static):
        def run():
            for _ in range(args.rounds):
                w = static_w if static else weights[state["round"] % len(weights)]
                state["round"] += 1
                link.mix(x, w)
        return run

    results = {
        "td_rounds_dynamic_p2p": _time(rounds(td, False), args.reps),
        "td_rounds_static_neighbor_collective": _time(rounds(td, True), args.reps),
        "gt_params_tracker_dynamic_p2p": _time(rounds(params, False), args.reps),
    }
    gathered = comm.gather(results, root=0)
    if me == 0:
        for name in results:
            med = [g[name]["median_ms"] for g in gathered]
            print(json.dumps({"backend": "mpi", "agents": n, "what": name, "rounds": args.rounds,
                              "floats": int(td.size if name.startswith("td") else params.size),
                              "median_ms_max_over_agents": max(med),
                              "p90_ms_max_over_agents": max(g[name]["p90_ms"] for g in gathered)}))
    link.free()


def local_costs(args) -> None:
    """The simulator's consensus (jitted W @ x for all N agents at once)."""
    from netmarl.comm import consensus_rounds, make_schedule

    n = args.local
    schedule = make_schedule("complete", n, p_drop=0.5, connected=True)
    weights = jax.jit(lambda k: schedule.sample_rounds(k, 0, args.rounds))(jax.random.key(0))
    size = 2 * _params_size(args.hidden, args.layers, args.obs, args.actions)
    for what, floats in (("td_rounds", args.transitions), ("gt_params_tracker", size)):
        x = jax.random.normal(jax.random.key(1), (n, floats))
        mix = jax.jit(consensus_rounds)
        cost = _time(lambda: mix(x, weights).block_until_ready(), args.reps)
        print(json.dumps({"backend": "local (vmapped simulation)", "agents": n, "what": what,
                          "rounds": args.rounds, "floats": floats, **cost}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transitions", type=int, default=32 * 50, help="B·T floats per TD vector")
    parser.add_argument("--rounds", type=int, default=1, help="K consensus rounds per step")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--obs", type=int, default=30)
    parser.add_argument("--actions", type=int, default=6)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--local", type=int, help="measure the in-process simulation for N agents")
    args = parser.parse_args()
    (local_costs if args.local else mpi_costs)(args)


if __name__ == "__main__":
    main()
