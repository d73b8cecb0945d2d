"""The floor section of the side-by-side report: a run's matrix products over this core's matmul
throughput, how far each system is from it, and where a netmarl run's time goes (value family).
Inputs: the finished jobs' results (benchmarks/side_by_side_report.load) and the profile jobs'
numbers (benchmarks/side_by_side_profile.py)."""
from __future__ import annotations

from side_by_side_lib import RunResult, Setting, mean, runs_of

FLOOR_GOAL = 1.3  # a run's time within this factor of its floor
PARTS = ("env steps", "action selection", "replay write", "update", "target update", "evaluation",
         "compilation", "host and other")


def floor_and_profile(done: dict, settings: list[Setting]) -> list[str]:
    """The floor (matrix-product FLOPs / matmul throughput) of netmarl's runs, how far EPyMARL's runs
    are from it, and (value family) the time breakdown of netmarl's runs."""
    floor = ["## The floor: a run's matrix products over this core's matmul throughput", "",
             "A run's physical limit is its arithmetic. Floor = the matrix-product FLOPs of its updates "
             "and of its episodes' action selection (every step of a recurrent unroll counted, gradients "
             "as traced: benchmarks/side_by_side_profile.py) / the best float32 matmul throughput "
             "measured on one core in this run. *floor / run*: floor over netmarl's whole wall time (goal: "
             f"within {FLOOR_GOAL}x, i.e. >= {1 / FLOOR_GOAL:.0%}) and over the time at its steady pace "
             "(start-up and compilation excluded). *EPyMARL / floor*: EPyMARL's run at its steady pace over "
             "the same floor, the largest speed-up any implementation of these settings could reach on "
             "this core.", "",
             "| setting | MFLOP per update | MFLOP per episode | updates, episodes per run | matmul GFLOP/s | "
             "floor s | run s | floor / run | floor / steady-state run | EPyMARL / floor | goal |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    parts = ["## Where a netmarl run's time goes", "",
             "Each part timed in isolation (jitted, one seed, benchmarks/side_by_side_profile.py) and "
             "multiplied by the run's counts (episodes, updates, evaluations); *host and other* is the "
             "run's wall time minus the rest (process start-up, imports, config, checkpoints, "
             "metrics, the host loop between chunks). Seconds per run (share of its wall time).", "",
             "| setting | " + " | ".join(PARTS) + " | wall |", "|---|" + "---:|" * (len(PARTS) + 1)]
    floor_rows, part_rows = [], []
    for s in settings:
        prof, runs, ep = done.get(("profile", s)), runs_of(done, "netmarl", s), runs_of(done, "epymarl", s)
        if not prof or not runs:
            continue
        p, wall = prof[0], mean(r.wall_s for r in runs)
        if "episode_flops" not in p and s.agent != "mlp":  # profiled before 2026-12-07 with XLA's FLOP
            # count, which counts a loop's body once: right for MLP updates (no loop), not for a GRU's unroll
            floor_rows.append(f"| {s.name} | profile predates the corrected FLOP count: rerun its profile job |"
                              + " |" * 10)
            continue
        updates, episodes = mean(r.updates for r in runs), mean(r.episodes for r in runs)
        matmul = p["matmul_flops_per_s"]["max"]
        update_flops = p["update_flops"] if s.family == "value" else 0.0  # the policy's is per episode
        floor_s = (updates * update_flops + episodes * p.get("episode_flops", 0.0)) / matmul
        ok = "met" if floor_s * FLOOR_GOAL >= wall else "**not met**"
        steady = mean(r.env_steps / r.steady_rate for r in runs)  # the run at its steady pace
        ceiling = f"{mean(r.env_steps / r.steady_rate for r in ep) / floor_s:.1f}x" if ep else "—"
        per_update = f"{update_flops / 1e6:.1f}" if s.family == "value" else "— (in the episodes')"
        per_episode = f"{p['episode_flops'] / 1e6:.1f}" if "episode_flops" in p else "— (not counted)"
        floor_rows.append(f"| {s.name} | {per_update} | {per_episode} | "
                     f"{updates:,.0f}, {episodes:,.0f} | {matmul / 1e9:.1f} | {floor_s:.1f} | {wall:.1f} | "
                     f"{floor_s / wall:.0%} | {floor_s / steady:.0%} | {ceiling} | {ok} |")
        if "seconds" in p:
            part_rows.append(breakdown_row(s, p, runs, wall, updates, episodes))
    if not floor_rows:
        return []
    return floor + floor_rows + ([""] + parts + part_rows if part_rows else [])


def breakdown_row(s: Setting, p: dict, runs: list[RunResult], wall: float, updates: float, episodes: float) -> str:
    sec, evals = p["seconds"], mean(len(r.points) for r in runs)
    times = [episodes * sec["env_episode"], episodes * (sec["collect_episode"] - sec["env_episode"]),
             episodes * sec["replay_write"], updates * (sec["update"] - sec["target"]),
             updates * sec["target"], evals * sec["evaluation"], sum(p["compile_s"].values())]
    times.append(wall - sum(times))
    return f"| {s.name} | " + " | ".join(f"{t:.1f} ({t / wall:.0%})" for t in times) + f" | {wall:.1f} |"
