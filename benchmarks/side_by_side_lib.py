"""The pieces of benchmarks/epymarl_side_by_side.py that need no subprocess: the settings shared by
EPyMARL and netmarl, the two command lines, and the parsers of each system's output.

A run of either system leaves in its run directory:
    console.log      every line the process printed, prefixed by the seconds since it was started
                     (`<seconds>\t<line>`, written by the benchmark as the lines arrive)
    wall.json        {"wall_s": seconds from start to exit, "returncode": int}
and, for EPyMARL, its sacred output (`epymarl/results/sacred/<algo>/<env>/<run>/info.json`, which
holds `test_return_mean` and `test_return_mean_T`); for netmarl, its run directory `run/`
(metrics.jsonl with `eval_return`, `env_steps` and `elapsed_s` per evaluation point).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import NamedTuple

LBF_TASK = "Foraging-10x10-3p-3f"  # EPyMARL: lbforaging:<task>-v3; netmarl: lbf:<task> (rules v3)
TIME_LIMIT = 50  # env steps per LBF episode (EPyMARL's env_args.time_limit; netmarl's max_steps)
VALUE_ALGOS = ("vdn", "vdn_ns", "iql", "qmix")  # EPyMARL config names
POLICY_ALGOS = ("ia2c", "maa2c", "coma", "ippo", "mappo", "pac_ns")  # its actor-critic configs
ALGOS = VALUE_ALGOS + POLICY_ALGOS
DEFAULT_ALGOS = ("vdn", "vdn_ns", "iql")  # what the benchmark runs unless --algos names others
AGENTS = ("mlp", "gru")  # EPyMARL: use_rnn=False / True (fc-relu-fc-relu-fc or fc-relu-GRU-fc)

# netmarl's equivalent of each EPyMARL config (the values EPyMARL's src/config/algs/<algo>.yaml sets,
# on top of its default.yaml; both systems use Adam, gamma 0.99, batch 32 episodes, buffer 5,000
# episodes, hard target update every 200 updates, double Q, gradient clip 10, standardised
# rewards, epsilon 1 -> 0.05, one environment and one update per episode, PyTorch's default init of
# the agent networks). EPyMARL's common reward
# (the sum of LBF's per-agent rewards) enters VDN's joint TD once (`equal` shares, R/N per agent,
# summed) and every independent learner's TD whole (`team`: R for every agent).
# EPyMARL's gymma envs end an episode at the time limit as if it were terminal: its episode runner
# stores `terminated != env_info.get("episode_limit", False)` and the gymma wrapper (gymnasium's
# TimeLimit) never puts "episode_limit" in the info, so nothing bootstraps past the limit. netmarl
# bootstraps there by default; `algo.bootstrap_truncation=false` does as EPyMARL does.
NETMARL_ALGOS = {
    "vdn": ["algo=vdn_ps", "algo.reward_shares=equal", "algo.lr=0.0005", "algo.hidden=64",
            "algo.eps_anneal_steps=50000"],
    "vdn_ns": ["algo=vdn", "algo.reward_shares=equal", "algo.lr=0.0005", "algo.hidden=64",
               "algo.eps_anneal_steps=50000"],
    "iql": ["algo=iql_ps", "algo.reward_shares=team", "algo.lr=0.0003", "algo.hidden=128",
            "algo.eps_anneal_steps=200000"],
    # QMIX mixes the common reward once, as VDN does (mixing_embed_dim 32, hypernet_layers 2,
    # hypernet_embed 64: netmarl's qmix defaults)
    "qmix": ["algo=qmix", "algo.reward_shares=equal", "algo.lr=0.0005", "algo.hidden=64",
             "algo.eps_anneal_steps=50000"],
    # The actor-critic family: netmarl's configs of the same names hold EPyMARL's values (10 parallel
    # envs, one update per iteration of their episodes, n-step critic targets, Adam, clip 10, common
    # reward; conf/algo/<name>.yaml). EPyMARL's gymma state is the agents' concatenated observations,
    # so the centralised V(z) critics (maa2c, mappo) see the joint observation.
    "ia2c": ["algo=ia2c"],
    "maa2c": ["algo=maa2c", "algo.policy.critic_input=joint_obs"],
    "coma": ["algo=coma"],
    # EPyMARL's ppo_learner recomputes A = G - V with the current critic before every epoch
    "ippo": ["algo=ippo", "algo.policy.refresh_advantages=true"],
    "mappo": ["algo=mappo", "algo.policy.critic_input=joint_obs", "algo.policy.refresh_advantages=true"],
    # its entropy anneals over 80 % of the budget (netmarl_overrides); its n-step returns, unlike the
    # other actor-critic learners', never bootstrap after an episode's last step
    "pac_ns": ["algo=pac", "algo.bootstrap_truncation=false"],
}
NETMARL_COMMON = ["algo.layers=2", "algo.agent_init=torch", "algo.batch_size=32", "algo.buffer_size=5000",
                  "algo.target_update_interval=200", "algo.double_q=true", "algo.grad_clip=10",
                  "algo.standardise_rewards=true", "algo.updates_per_iteration=1", "algo.gamma=0.99",
                  "algo.eps_start=1.0", "algo.eps_finish=0.05", "run.num_envs=1",
                  "algo.bootstrap_truncation=false"]
# EPyMARL's soft_policies selector samples from pi in its test episodes too (it ignores test_greedy),
# so its test return is the stochastic policy's: netmarl's evaluation samples as well. Its a2c, ppo
# and coma learners' n-step returns add the value of the observation after an episode's last step
# unmasked (`add_value_last_step`): they bootstrap at the time limit, netmarl's default.
POLICY_COMMON = ["algo.agent_init=torch", "algo.policy.eval_sample=true", "algo.policy.small_heads=false"]
PAC_ENTROPY_END = 0.8  # EPyMARL pac_ns's entropy_end_ratio: the entropy anneals over this share of t_max


class Setting(NamedTuple):
    """One column of the comparison: an EPyMARL algorithm config with MLP or GRU agents."""

    algo: str  # vdn | vdn_ns | iql | qmix
    agent: str  # mlp | gru

    @property
    def name(self) -> str:
        return f"{self.algo}-{self.agent}"

    @property
    def family(self) -> str:
        """value (replay, epsilon-greedy, one update per episode) or policy (on-policy actor-critic)."""
        return "policy" if self.algo in POLICY_ALGOS else "value"


class Budget(NamedTuple):
    """What every run of a benchmark invocation gets (both systems)."""

    steps: int  # env steps per run (EPyMARL's t_max)
    interval: int  # env steps between greedy evaluations
    episodes: int  # greedy episodes per evaluation


def make_setting(algo: str, agent: str) -> Setting:
    if algo not in ALGOS or agent not in AGENTS:
        raise ValueError(f"setting {algo}-{agent} is not known; accepted algorithms: "
                         f"{', '.join(ALGOS)}; agents: {', '.join(AGENTS)}")
    return Setting(algo, agent)


class Task(NamedTuple):
    """One task as each system names it."""

    epymarl_key: str  # EPyMARL's gymma env_args.key
    time_limit: int  # env steps per episode (EPyMARL's env_args.time_limit)
    netmarl_env: tuple[str, ...]  # netmarl's env overrides
    title: str  # how the report names it
    epymarl_packages: tuple[str, ...] = ()  # pinned packages EPyMARL's venv needs beyond its own
    epymarl_module: str = ""  # the module that shows they are installed


# Tasks beyond LBF's `Foraging-...` names (which need no entry). mpe-spread: PettingZoo's
# simple_spread_v3 (EPyMARL's pz wrapper; its venv needs pettingzoo's MPE) = JaxMARL's
# MPE_simple_spread_v3 (netmarl's preset; conformance with mpe2 in tests/test_mpe_conformance.py).
# PettingZoo 1.24.3 is the last with MPE inside; pygame renders it.
TASKS = {"mpe-spread": Task("pz-mpe-simple-spread-v3", 25, ("env=mpe-spread",), "MPE simple_spread_v3",
                            ("pettingzoo==1.24.3", "pygame==2.6.1"), "pettingzoo.mpe")}


def task_spec(task: str) -> Task:
    """The Task called `task`: an entry of TASKS or an LBF task name (rules v3, time limit 50)."""
    if task in TASKS:
        return TASKS[task]
    if not task.startswith("Foraging-"):
        raise ValueError(f"task {task!r} is not known; accepted: an LBF task (Foraging-...) or "
                         f"{', '.join(TASKS)}")
    return Task(f"lbforaging:{task}-v3", TIME_LIMIT, tuple(native_env(task)), f"{task}-v3")


def epymarl_args(setting: Setting, budget: Budget, seed: int, task: str = LBF_TASK) -> list[str]:
    """EPyMARL's command-line arguments after `src/main.py` (run from its folder)."""
    spec = task_spec(task)
    return [f"--config={setting.algo}", "--env-config=gymma", "with",
            f"env_args.time_limit={spec.time_limit}", f"env_args.key={spec.epymarl_key}",
            f"use_rnn={setting.agent == 'gru'}", f"t_max={budget.steps}",
            f"test_interval={budget.interval}", f"test_nepisode={budget.episodes}",
            f"log_interval={budget.interval}", f"runner_log_interval={budget.interval}",
            f"learner_log_interval={budget.interval}", "save_model=False", "use_tensorboard=False",
            "use_cuda=False", f"seed={seed}"]


def native_env(task: str = LBF_TASK) -> list[str]:
    """netmarl's own LBF (rules v3, the package's) on `task`, with EPyMARL's time limit and, as
    EPyMARL's gymma wrapper reports, every action available (its agents explore and act among all 6;
    with LBF's valid-action mask, netmarl's default, VDN learned 4x faster here)."""
    return [f"env=lbf:{task}", f"env.options.max_steps={TIME_LIMIT}", "env.options.action_mask=false"]


def package_env(task: str = LBF_TASK) -> list[str]:
    """The lbforaging package itself on `task`, host-stepped (netmarl/train/host.py)."""
    return [f"env=gym:lbforaging:{task}-v3", f"env.options.time_limit={TIME_LIMIT}"]


def netmarl_overrides(setting: Setting, budget: Budget, seed: int, run_dir: str, seeds: int = 1,
                      env: list[str] | None = None) -> list[str]:
    """`netmarl train` overrides for the same setting; `seeds` > 1 vmaps seeds seed, seed + 1, ...;
    `env`: the environment overrides (default: `native_env()`; a task's: `task_spec(t).netmarl_env`)."""
    common = POLICY_COMMON if setting.family == "policy" else NETMARL_COMMON
    if setting.algo == "pac_ns":
        common = [*common, f"algo.policy.entropy_anneal_steps={int(PAC_ENTROPY_END * budget.steps)}"]
    return [*NETMARL_ALGOS[setting.algo], *common, f"algo.agent={setting.agent}",
            *(native_env() if env is None else env),
            f"run.total_steps={budget.steps}", f"run.eval_interval={budget.interval}",
            f"run.eval_episodes={budget.episodes}", f"run.seed={seed}", f"run.seeds={seeds}",
            "run.progress=false", f"run.dir={Path(run_dir).parent}", f"run.id={Path(run_dir).name}"]


# --- results ----------------------------------------------------------------------------------------

class RunResult(NamedTuple):
    """One finished run of either system."""

    points: dict[int, float]  # evaluation point k (at ~k * interval env steps) -> greedy test return
    env_steps: int  # env steps the run collected (per seed)
    wall_s: float  # process start to exit: imports, compilation, evaluation and logging included
    steady_rate: float  # env steps/s from evaluation point 2 to the last
    updates: int  # learner updates (netmarl; 0 where unknown)
    episodes: int  # training episodes (netmarl; 0 where unknown)

    @property
    def whole_rate(self) -> float:
        return self.env_steps / max(self.wall_s, 1e-9)

    def to_json(self) -> dict:
        return {**self._asdict(), "points": {str(k): v for k, v in self.points.items()}}

    @classmethod
    def from_json(cls, data: dict) -> RunResult:
        return cls(**{**data, "points": {int(k): v for k, v in data["points"].items()}})


def read_console(path: Path) -> list[tuple[float, str]]:
    """(seconds since start, line) pairs of a console.log written by the benchmark."""
    out = []
    for raw in Path(path).read_text().splitlines():
        seconds, _, line = raw.partition("\t")
        out.append((float(seconds), line))
    return out


def steady_rate(marks: dict[int, tuple[float, int]]) -> float:
    """Env steps/s from evaluation point 2 to the last one (start-up and the warm-up before the
    first minibatch excluded); `marks`: point -> (seconds since start, env steps). nan with fewer
    than two points from point 2 on."""
    later = sorted(k for k in marks if k >= 2)
    if len(later) < 2 or marks[later[-1]][0] <= marks[later[0]][0]:
        return float("nan")
    (t0, s0), (t1, s1) = marks[later[0]], marks[later[-1]]
    return (s1 - s0) / (t1 - t0)


_T_ENV = re.compile(r"t_env: (\d+) / \d+")


def parse_epymarl(run_dir: Path, interval: int) -> RunResult:
    """EPyMARL's sacred info.json (test returns and their t_env) and the timestamped console log
    (the `t_env: X / T` line printed just before each test)."""
    infos = sorted((Path(run_dir) / "epymarl" / "results" / "sacred").glob("*/*/*/info.json"))
    if not infos:
        raise FileNotFoundError(f"no sacred info.json under {run_dir}/epymarl/results/sacred; "
                                "did the EPyMARL run fail? See its console.log")
    info = json.loads(infos[-1].read_text())
    returns, t_env = info["test_return_mean"], info["test_return_mean_T"]
    points = {round(t / interval): _value(r) for t, r in zip(t_env, returns)}
    steps = max(max(v) for k, v in info.items() if k.endswith("_T") and v)
    marks = {round(int(m[1]) / interval): (s, int(m[1]))
             for s, line in read_console(run_dir / "console.log") if (m := _T_ENV.search(line))}
    wall = json.loads((Path(run_dir) / "wall.json").read_text())["wall_s"]
    return RunResult(points, int(steps), wall, steady_rate(marks), 0, 0)


def _value(x) -> float:
    """A sacred value: a float, or a serialised numpy/torch scalar ({"py/reduce": ...} or a dict
    with a `value`)."""
    if isinstance(x, (int, float)):
        return float(x)
    if isinstance(x, dict) and "value" in x:
        return float(x["value"])
    raise ValueError(f"cannot read a return from sacred value {x!r}")


def parse_netmarl(run_dir: Path, interval: int) -> list[RunResult]:
    """One RunResult per seed of a netmarl run directory (`run/metrics.jsonl`)."""
    records = [json.loads(line) for line in (Path(run_dir) / "run" / "metrics.jsonl").read_text().splitlines()
               if line.strip()]
    wall = json.loads((Path(run_dir) / "wall.json").read_text())["wall_s"]
    results = []
    for seed in sorted({r["seed"] for r in records}):
        mine = sorted((r for r in records if r["seed"] == seed), key=lambda r: r["point"])
        points = {round(r["env_steps"] / interval): r["eval_return"] for r in mine}
        marks = {r["point"]: (r.get("elapsed_s", 0.0), r["env_steps"]) for r in mine}
        results.append(RunResult(points, mine[-1]["env_steps"], wall, steady_rate(marks),
                                 mine[-1]["updates"], mine[-1]["episodes"]))
    return results


# --- the latest measured EPyMARL figure, for the speed documents --------------------------------------

HEADLINE = Path(__file__).resolve().parents[1] / "docs" / "results" / "epymarl_side_by_side.json"


class Measured(NamedTuple):
    """One setting's env-steps/s from the latest side-by-side run (both systems, same run)."""

    setting: str
    epymarl_whole: float  # whole run (start-up, evaluation and logging included)
    epymarl_steady: float
    netmarl_whole: float
    netmarl_steady: float
    source: str  # where and when it was measured, for the documents

    @property
    def ratio_whole(self) -> float:
        return self.netmarl_whole / self.epymarl_whole


def latest_measured(setting: str, paths: list[Path] | None = None) -> Measured:
    """The figures of `setting` (e.g. "vdn_ns-mlp") in the latest benchmarks/epymarl_side_by_side.py
    run that measured it, among `paths` (default: every docs/results/epymarl_*.json it wrote); stops
    with how to make one if there is none."""
    paths = sorted(HEADLINE.parent.glob("epymarl_*.json")) if paths is None else [Path(p) for p in paths]
    runs = [data for data in (json.loads(p.read_text()) for p in paths if p.exists())
            if setting in data.get("settings", {})]
    if not runs:
        raise SystemExit(f"no measured EPyMARL figure for {setting!r} in {', '.join(map(str, paths)) or 'no file'}; "
                         "run benchmarks/epymarl_side_by_side.py with it (e.g. `make side-by-side "
                         "EPYMARL=<path to epymarl> SIDE_BY_SIDE_ARGS=--quick`) first")
    data = max(runs, key=lambda d: d["date"])
    row = data["settings"][setting]
    source = (f"benchmarks/epymarl_side_by_side.py, {data['mode']} mode ({data['seeds']} seeds x "
              f"{data['budget']['steps']:,} env steps), {data['date']}, {data['cpu']}, {data['cores']} cores, "
              f"{data.get('document', 'docs/results')}")
    return Measured(setting, row["epymarl_whole"], row["epymarl_steady"], row["netmarl_whole"],
                    row["netmarl_steady"], source)


def runs_of(done: dict, kind: str, setting: Setting) -> list[RunResult]:
    """The RunResults of one (system or job kind, setting) among finished jobs' results."""
    return [RunResult.from_json(r) for result in done.get((kind, setting), []) for r in result["runs"]]


def mean(values) -> float:
    """The mean of the finite values (nan if none)."""
    values = [v for v in values if math.isfinite(v)]
    return sum(values) / len(values) if values else float("nan")
