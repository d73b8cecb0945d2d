"""Speed-up of `netmarl reproduce --backend ray` on a local two-node Ray cluster over one node.

Starts a real Ray cluster on this machine (tests/ray_cluster.py: `ray start --head` and
`ray start --address=...`, 1 CPU per node), and times `netmarl reproduce <tiny grid> --backend ray
--address ...` (the whole command: planning, Ray workers starting and importing JAX, training, the
table and figure) on one node, then on two. A first, untimed run fills the JAX compilation cache,
so both timed runs load their programs from it. Writes docs/results/ray_scaling.md.

    .venv/bin/python benchmarks/ray_scaling.py [--seeds 4] [--steps 20000]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.ray_cluster when run as a script
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

from netmarl.results.provenance import command_line, machine_lines  # noqa: E402
from tests.ray_cluster import RayCluster  # noqa: E402

GRID = """# benchmarks/ray_scaling.py: 2 algorithms x {seeds} seeds on the climbing game, 1 CPU per run
tasks: [matrix:climbing]
algos: [iql, vdn]
seeds: {seeds}
overrides: [algo.agent=mlp, algo.hidden=64, algo.batch_size=64, algo.buffer_size=1024,
            run.eval_interval={interval}, run.eval_episodes=4]
"""


def timed_reproduce(cluster: RayCluster, grid: Path, out: Path, steps: int) -> float:
    """Wall seconds of `netmarl reproduce grid --backend ray --address <cluster>`."""
    command = [sys.executable, "-m", "netmarl.cli", "reproduce", str(grid), "--dir", str(out), "--steps",
               str(steps), "--backend", "ray", "--address", cluster.address]
    tic = time.perf_counter()
    done = subprocess.run(command, env=cluster.env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"reproduce failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - tic


def measure(work: Path, seeds: int, steps: int) -> dict[str, float]:
    """{"1 node": s, "2 nodes": s}: the same grid on a one-node cluster, then with a second node."""
    grid = work / "grid.yaml"
    grid.write_text(GRID.format(seeds=seeds, interval=max(steps // 2, 1)))
    cluster = RayCluster(work)
    try:
        cluster.start_head()
        cluster.ready(0)
        timed_reproduce(cluster, grid, work / "warmup", steps)  # fills the compilation cache
        times = {"1 node": timed_reproduce(cluster, grid, work / "one", steps)}
        cluster.add_worker()
        cluster.ready(1)
        times["2 nodes"] = timed_reproduce(cluster, grid, work / "two", steps)
    finally:
        cluster.stop()
    return times


def report(times: dict[str, float], seeds: int, steps: int, load: tuple[float, float]) -> str:
    one = times["1 node"]
    rows = "\n".join(f"| {name} (1 CPU per node) | {s:.1f} | {one / s:.2f}x |" for name, s in times.items())
    return f"""# Ray backend: two local nodes against one

`netmarl reproduce --backend ray --address HOST:PORT` on a tiny grid (2 algorithms x {seeds} seeds =
{2 * seeds} runs of {steps:,} env steps on the climbing game, feed-forward agents of 64 units,
minibatches of 64, 2 evaluations and checkpoints each), on
a Ray cluster of this machine started by `ray start` with 1 CPU per node: first the head node alone,
then with a worker node added. Wall time of the whole command (planning, Ray workers starting and
importing JAX, training, table and figure); the JAX compilation cache was filled by an untimed run.

| cluster | wall time (s) | speed-up |
|---|---:|---:|
{rows}

Machine and load (1-minute load average before / after: {load[0]:.2f} / {load[1]:.2f}; the machine's
other jobs share its cores, so the numbers move from run to run):
{chr(10).join(machine_lines(("jax", "jaxlib", "ray")))}

Command: `{command_line()}`
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "ray_scaling.md"))
    args = parser.parse_args()
    before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as work:
        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", f"{work}/jax_cache")
        times = measure(Path(work), args.seeds, args.steps)
    text = report(times, args.seeds, args.steps, (before, os.getloadavg()[0]))
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
