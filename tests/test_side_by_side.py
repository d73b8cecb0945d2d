"""The parsers and settings of benchmarks/epymarl_side_by_side.py (the benchmark itself is not a test).

Fixtures (tests/fixtures/side_by_side/): an EPyMARL run (a trimmed sacred info.json, the
benchmark's timestamped console log and wall.json, from a 5k-step run) and a netmarl run
(metrics.jsonl of two vmapped seeds, numbers chosen by hand).
"""
import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the benchmark scripts import each other by name
FIXTURES = Path(__file__).parent / "fixtures" / "side_by_side"
EPYMARL = Path("/work/shared/reference/epymarl")


def _lib():
    spec = importlib.util.spec_from_file_location("side_by_side_lib", ROOT / "benchmarks" / "side_by_side_lib.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lib = _lib()


def test_parse_epymarl_sacred_info_and_console_timestamps():
    run = lib.parse_epymarl(FIXTURES / "epymarl", interval=1000)
    # test returns at t_env 50, 1050, ..., 5050 -> points 0..5; sacred stores numpy floats as
    # {"py/object": "numpy.float64", "value": v}, plain floats as they are
    assert run.points == {0: 0.0, 1: 0.05, 2: 0.1, 3: 0.2, 4: 0.15, 5: 0.3}
    assert run.env_steps == 5050  # the largest t_env any statistic was logged at
    assert run.whole_rate == pytest.approx(5050 / 140.0)  # wall.json: 140 s
    # "t_env: 2050" at 65.571 s, "t_env: 5050" at 130.727 s
    assert run.steady_rate == pytest.approx(3000 / (130.727 - 65.571))


def test_parse_netmarl_metrics_one_result_per_seed():
    seed0, seed1 = lib.parse_netmarl(FIXTURES / "netmarl", interval=1000)
    assert seed0.points == {0: 0.0, 1: 0.1, 2: 0.3, 3: 0.2}
    assert seed1.points == {0: 0.0, 1: 0.0, 2: 0.4, 3: 0.5}  # 2,010 and 3,020 steps -> points 2, 3
    assert (seed0.env_steps, seed0.updates, seed0.episodes) == (3000, 29, 60)
    assert seed0.whole_rate == pytest.approx(150.0)  # 3,000 steps in 20 s
    assert seed0.steady_rate == pytest.approx(1000 / 2.5)  # points 2 -> 3: 12.0 s -> 14.5 s
    assert seed1.steady_rate == pytest.approx(1010 / 2.5)
    assert lib.RunResult.from_json(seed1.to_json()) == seed1


def test_steady_rate_needs_two_points_from_point_two():
    assert math.isnan(lib.steady_rate({0: (0.0, 0), 1: (5.0, 100), 2: (9.0, 200)}))
    assert lib.steady_rate({1: (5.0, 100), 2: (9.0, 200), 4: (13.0, 400)}) == pytest.approx(50.0)


def test_netmarl_overrides_compose_to_the_intended_config(tmp_path):
    from netmarl.cli import compose
    budget = lib.Budget(steps=100_000, interval=10_000, episodes=32)
    iql = compose(lib.netmarl_overrides(lib.make_setting("iql", "gru"), budget, 3, str(tmp_path / "r")))
    assert (iql.algo.team_td, iql.algo.shared_params, iql.algo.agent) == ("iql", True, "gru")
    assert (iql.algo.reward_shares, iql.algo.hidden, iql.algo.lr) == ("team", 128, 0.0003)
    assert (iql.run.seed, iql.run.total_steps, iql.run.num_envs, iql.run.id) == (3, 100_000, 1, "r")
    vdn_ns = compose(lib.netmarl_overrides(lib.make_setting("vdn_ns", "mlp"), budget, 0, str(tmp_path / "r")))
    assert (vdn_ns.algo.team_td, vdn_ns.algo.shared_params, vdn_ns.algo.reward_shares) == ("vdn", False, "equal")
    qmix = compose(lib.netmarl_overrides(lib.make_setting("qmix", "mlp"), budget, 0, str(tmp_path / "r")))
    assert (qmix.algo.team_td, qmix.algo.shared_params, qmix.algo.mixer.embed) == ("qmix", True, 32)
    with pytest.raises(ValueError, match="accepted algorithms: vdn, vdn_ns, iql, qmix, ia2c"):
        lib.make_setting("qplex", "mlp")


def test_tasks_name_the_same_env_in_both_systems(tmp_path):
    """LBF names map to lbforaging:<task>-v3 with the time limit 50; mpe-spread to PettingZoo's
    simple_spread_v3 through EPyMARL's pz wrapper (time limit 25) and netmarl's mpe-spread preset."""
    from netmarl.cli import compose
    budget, setting = lib.Budget(1000, 500, 4), lib.make_setting("qmix", "mlp")
    lbf = lib.epymarl_args(setting, budget, 0)
    assert "env_args.key=lbforaging:Foraging-10x10-3p-3f-v3" in lbf and "env_args.time_limit=50" in lbf
    mpe = lib.epymarl_args(setting, budget, 0, "mpe-spread")
    assert "env_args.key=pz-mpe-simple-spread-v3" in mpe and "env_args.time_limit=25" in mpe
    config = compose(lib.netmarl_overrides(setting, budget, 0, str(tmp_path / "r"),
                                           env=list(lib.task_spec("mpe-spread").netmarl_env)))
    from netmarl.envs import make
    env = make(config.env.name, **config.env.options)
    assert (env.num_agents, env.max_steps) == (3, 25)
    with pytest.raises(ValueError, match="task 'smax:3m' is not known; accepted: an LBF task"):
        lib.task_spec("smax:3m")


def _epymarl_config(algo: str) -> dict:
    import yaml
    config = yaml.safe_load((EPYMARL / "src/config/default.yaml").read_text())
    config.update(yaml.safe_load((EPYMARL / f"src/config/algs/{algo}.yaml").read_text()))
    return config


@pytest.mark.skipif(not EPYMARL.is_dir(), reason="the EPyMARL reference copy is not on this machine")
@pytest.mark.parametrize("algo", lib.POLICY_ALGOS)
def test_netmarl_actor_critic_settings_equal_epymarls_own_config(algo, tmp_path):
    """The oracle for the actor-critic family: the composed netmarl config of each setting against
    EPyMARL's default.yaml + algs/<algo>.yaml (its learners count the target period in critic
    training steps, one per batch of batch_size_run episodes: netmarl's iterations)."""
    from netmarl.cli import compose
    config = _epymarl_config(algo)
    budget = lib.Budget(steps=500_500, interval=50_000, episodes=100)
    ours = compose(lib.netmarl_overrides(lib.make_setting(algo, "gru"), budget, 0, str(tmp_path / "r")))
    a, p = ours.algo, ours.algo.policy
    assert a.family == "policy" and ours.run.num_envs == config["batch_size_run"] == config["batch_size"]
    assert (a.lr, a.hidden, a.grad_clip, a.gamma) == (config["lr"], config["hidden_dim"],
                                                      config["grad_norm_clip"], config["gamma"])
    assert a.standardise_rewards == config["standardise_rewards"] and a.reward_shares == "team"
    assert a.shared_params == (config.get("mac", "basic_mac") != "non_shared_mac") == config["obs_agent_id"]
    tau = config["target_update_interval_or_tau"]
    assert (a.target_update_interval, a.target_tau) == ((1, tau) if tau <= 1 else (tau, 1.0))
    assert p.n_step == config["q_nstep"]
    assert p.policy_loss == ("ppo" if config["learner"] == "ppo_learner" else "a2c")
    if p.policy_loss == "ppo":
        assert (p.epochs, p.clip_eps) == (config["epochs"], config["eps_clip"])
    if "initial_entropy_coef" in config:  # Pareto-AC: annealed over entropy_end_ratio of the budget
        assert (p.entropy_start, p.entropy_coef) == (config["initial_entropy_coef"], config["final_entropy_coef"])
        assert p.entropy_anneal_steps == int(config["entropy_end_ratio"] * budget.steps)
    else:
        assert p.entropy_coef == config["entropy_coef"] and p.entropy_start is None
    critic = {"ac_critic": "local", "cv_critic": "joint_obs", "coma_critic": "joint_action",
              "pac_critic_ns": "joint_action"}
    assert p.critic_input == critic[config["critic_type"]]
    assert (a.agent, a.agent_init, p.eval_sample, p.small_heads) == ("gru", "torch", True, False)
    # EPyMARL's actor-critic n-step returns bootstrap after an episode's last step (unmasked), so at
    # the time limit too: netmarl bootstraps past truncation
    registry = (EPYMARL / "src/learners/__init__.py").read_text()
    module = re.search(rf'REGISTRY\["{config["learner"]}"\] = (\w+)', registry)[1]
    module = re.search(rf"from \.(\w+) import {module}\b", registry)[1]
    learner = (EPYMARL / f"src/learners/{module}.py").read_text()
    bootstraps = "self.args.add_value_last_step" in learner  # pac's nstep_returns never does
    if bootstraps:
        assert config["add_value_last_step"]
        assert "values[:, t + 1]" in learner.split("add_value_last_step:")[1].split("else")[0]
    assert a.bootstrap_truncation == bootstraps
    # its ppo_learner recomputes the advantages with the current critic before every epoch
    per_epoch = "for k in range(self.args.epochs)" in learner and "train_critic_sequential(" in \
        learner.split("for k in range(self.args.epochs)")[-1]
    assert p.refresh_advantages == (config["learner"] == "ppo_learner") == per_epoch
    # EPyMARL's soft_policies selector samples in test mode too: netmarl's evaluation must sample
    selectors = (EPYMARL / "src/components/action_selectors.py").read_text()
    soft = selectors.split("class SoftPoliciesSelector")[1].split("REGISTRY")[0]
    assert config["action_selector"] == "soft_policies" and "m.sample()" in soft and "test_mode" not in soft.split(
        "def select_action")[1].split("\n", 1)[1]


@pytest.mark.skipif(not EPYMARL.is_dir(), reason="the EPyMARL reference copy is not on this machine")
@pytest.mark.parametrize("algo", lib.VALUE_ALGOS)
def test_netmarl_settings_equal_epymarls_own_config(algo):
    """The oracle: the values netmarl is given are those of EPyMARL's default.yaml + algs/<algo>.yaml."""
    config = _epymarl_config(algo)
    given = dict(o.split("=", 1) for o in lib.NETMARL_ALGOS[algo] + lib.NETMARL_COMMON if "." in o.split("=")[0])
    assert float(given["algo.lr"]) == config["lr"]
    assert int(given["algo.hidden"]) == config["hidden_dim"]
    assert int(given["algo.eps_anneal_steps"]) == config["epsilon_anneal_time"]
    assert int(given["algo.buffer_size"]) == config["buffer_size"]
    assert int(given["algo.batch_size"]) == config["batch_size"]
    assert int(given["algo.target_update_interval"]) == config["target_update_interval_or_tau"]
    assert float(given["algo.grad_clip"]) == config["grad_norm_clip"]
    assert float(given["algo.gamma"]) == config["gamma"]
    assert given["algo.standardise_rewards"] == str(config["standardise_rewards"]).lower()
    assert given["algo.double_q"] == str(config["double_q"]).lower()
    shared = config["mac"] != "non_shared_mac"  # the _ns configs select the non-shared controller
    assert any(f"algo={a}" in lib.NETMARL_ALGOS[algo] for a in ("vdn_ps", "iql_ps", "qmix")) == shared
    assert config["obs_agent_id"] == shared and config["obs_last_action"] is False
    # EPyMARL's time limit is terminal on gymma envs (no "episode_limit" in their info): netmarl's too
    runner = (EPYMARL / "src/runners/episode_runner.py").read_text()
    assert 'terminated != env_info.get("episode_limit", False)' in runner
    assert "episode_limit" not in (EPYMARL / "src/envs/gymma.py").read_text().split("def step")[1]
    assert given["algo.bootstrap_truncation"] == "false"
    if config.get("mixer") == "qmix":  # the mixer's sizes: netmarl's qmix defaults
        from netmarl.cli import compose
        mixer = compose(["algo=qmix"]).algo.mixer
        assert (mixer.embed, mixer.hyper_hidden, config["hypernet_layers"]) == (
            config["mixing_embed_dim"], config["hypernet_embed"], 2)
        assert not config["use_rnn"]  # EPyMARL's qmix: MLP agents (the benchmark sets use_rnn per setting)


def test_package_env_overrides_compose_to_the_host_path(tmp_path):
    from netmarl.cli import compose
    from netmarl.envs.adapters import make_host
    budget = lib.Budget(steps=1000, interval=500, episodes=4)
    config = compose(lib.netmarl_overrides(lib.make_setting("vdn", "mlp"), budget, 0, str(tmp_path / "r"),
                                           env=lib.package_env("Foraging-8x8-2p-2f-coop")))
    assert config.env.name == "gym:lbforaging:Foraging-8x8-2p-2f-coop-v3"
    env = make_host(config.env.name, **config.env.options)
    assert (env.num_agents, env.max_steps, env.folds_time_limit) == (2, lib.TIME_LIMIT, True)


def test_host_env_report_verdicts_and_speeds(tmp_path):
    """The report of benchmarks/host_env_side_by_side.py on made-up runs with known answers."""
    import argparse
    from host_env_report import write_report

    def run(returns, steps, wall):
        return lib.RunResult(dict(enumerate(returns)), steps, wall, steps / wall, 0, 0)

    results = {"native": [run([0.0, 0.5, 0.8], 1000, 10.0), run([0.0, 0.6, 0.9], 1000, 10.0)],
               "host": [run([0.0, 0.55, 0.85], 1000, 20.0), run([0.0, 0.5, 0.9], 1000, 20.0)],
               "epymarl": [run([0.0, 0.2, 0.4], 1000, 40.0), run([0.0, 0.3, 0.5], 1000, 40.0)],
               "host-vmapped": [run([0.0, 0.5, 0.8], 1000, 25.0), run([0.0, 0.5, 0.8], 1000, 25.0)]}
    args = argparse.Namespace(task="Foraging-8x8-2p-2f-coop", seeds=2, runs=tmp_path,
                              out=tmp_path / "report.md")
    text = write_report(results, lib.Budget(1000, 500, 4), args).read_text()
    assert "native LBF, final return: 0.875 against 0.850 [0.800, 0.900]: inside its CI." in text
    assert "package env, max return: 0.875 against 0.450 [0.400, 0.500]: above (+0.375) its CI." in text
    assert "| netmarl host path (package env) | 50 | 50 | 2.00× | 2.00× |" in text
    assert "collects 80 env steps/s in all" in text and (tmp_path / "report.png").stat().st_size > 0


def test_latest_measured_takes_the_newest_run_that_measured_the_setting(tmp_path):
    """The speed documents' EPyMARL figure: from the most recent side-by-side output holding the
    setting, never from a constant; none holding it stops naming the setting."""
    import json

    def write(name, date, settings):
        row = dict(epymarl_whole=100.0, epymarl_steady=120.0, netmarl_whole=1000.0, netmarl_steady=1500.0)
        data = dict(date=date, cpu="cpu", cores=2, mode="custom", seeds=2, budget={"steps": 1000},
                    document=f"docs/results/{name}.md", settings={s: {**row, "epymarl_steady": v}
                                                                  for s, v in settings.items()})
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
        return tmp_path / f"{name}.json"

    paths = [write("epymarl_a", "2026-12-01T00:00:00+00:00", {"vdn-mlp": 111.0, "vdn_ns-gru": 50.0}),
             write("epymarl_b", "2026-12-05T00:00:00+00:00", {"vdn-mlp": 222.0})]
    assert lib.latest_measured("vdn-mlp", paths).epymarl_steady == 222.0
    gru = lib.latest_measured("vdn_ns-gru", paths)
    assert gru.epymarl_steady == 50.0 and "2026-12-01" in gru.source and "epymarl_a.md" in gru.source
    with pytest.raises(SystemExit, match="no measured EPyMARL figure for 'iql-gru'"):
        lib.latest_measured("iql-gru", paths)


def test_report_keeps_hand_written_notes_across_regenerations(tmp_path):
    """A report's notes live in `<stem>.notes.md` beside it and are included, under a heading that
    names the file, every time the report is written; no notes file, no section."""
    from side_by_side_report import notes_lines, notes_path
    out = tmp_path / "epymarl_x.md"
    assert notes_lines(out) == []
    notes_path(out).write_text("- MAA2C is below EPyMARL's CI by 0.015.\n")
    lines = notes_lines(out)
    assert notes_path(out).name == "epymarl_x.notes.md"
    assert "`epymarl_x.notes.md`" in lines[0] and "- MAA2C is below EPyMARL's CI by 0.015." in lines


def test_report_shows_netmarl_cold_and_warm_compilation_cache_runs_apart():
    """netmarl runs of a setting share a compilation cache: the report gives the first (cold) and
    the later (warm) runs' whole-run rates each against EPyMARL's, besides their mean in the table."""
    from side_by_side_report import throughput_section
    setting = lib.make_setting("vdn", "mlp")

    def run(wall_s):
        return lib.RunResult({0: 0.0, 1: 0.1, 2: 0.2}, 1000, wall_s, 500.0, 10, 20).to_json()

    done = {("epymarl", setting): [{"runs": [run(10.0)]}, {"runs": [run(10.0)]}],
            ("netmarl", setting): [{"runs": [run(2.0)], "cache": "cold"}, {"runs": [run(1.0)], "cache": "warm"}]}
    lines, head = throughput_section(done, [setting])
    assert head["vdn-mlp"]["ratio_whole"] == pytest.approx(7.5)  # the mean of 500 and 1,000 over 100
    line = next(x for x in lines if x.startswith("- vdn-mlp, netmarl whole run"))
    assert "cold cache 500 env-steps/s (5.0x, 1 run)" in line and "warm cache 1,000 env-steps/s (10.0x, 1 run)" in line


def test_floor_counts_every_step_of_a_scan_where_xla_counts_its_body_once():
    """The floor's FLOPs: a GRU's 51-step scan counts 51 bodies (XLA's cost analysis, used before,
    counts one), gradients as traced, and a cond's costliest branch."""
    import jax
    import jax.numpy as jnp
    from side_by_side_profile import matmul_flops
    w, x = jnp.ones((64, 64)), jnp.ones((96, 64))
    step = 2 * 96 * 64 * 64
    scanned = lambda x: jax.lax.scan(lambda h, _: (jnp.tanh(h @ w), None), x, None, length=51)[0].sum()  # noqa: E731
    assert matmul_flops(scanned, x) == 51 * step
    assert matmul_flops(jax.grad(lambda w: jnp.tanh(x @ w).sum()), w) == 2 * step  # forward, dL/dw
    branches = lambda p, x: jax.lax.cond(p, lambda x: (x @ w) @ w, lambda x: x @ w, x)  # noqa: E731
    assert matmul_flops(branches, True, x) == 2 * step


def test_floor_rows_for_both_families_and_how_far_epymarl_is_from_it():
    """The floor counts the updates' and the episodes' FLOPs (the policy family's per episode), and
    EPyMARL / floor bounds the speed-up any implementation could reach; a profile from before the
    corrected FLOP count is named, not used."""
    from side_by_side_floor import floor_and_profile
    value, policy, old = lib.make_setting("vdn", "gru"), lib.make_setting("ippo", "gru"), lib.make_setting("iql", "gru")

    def run(steady):  # 1,000 env steps, 10 updates, 20 episodes
        return lib.RunResult({0: 0.0, 1: 0.1, 2: 0.2}, 1000, 4.0, steady, 10, 20).to_json()

    matmul = {"max": 1e9}
    done = {("profile", value): [{"update_flops": 1e8, "episode_flops": 5e7, "matmul_flops_per_s": matmul}],
            ("profile", policy): [{"update_flops": 0.0, "episode_flops": 1e8, "matmul_flops_per_s": matmul}],
            ("profile", old): [{"update_flops": 1e8, "matmul_flops_per_s": matmul}]}
    for s in (value, policy, old):
        done[("netmarl", s)] = [{"runs": [run(500.0)]}]
        done[("epymarl", s)] = [{"runs": [run(50.0)]}]
    lines = floor_and_profile(done, [value, policy, old])
    row = {s.name: next(x for x in lines if x.startswith(f"| {s.name} |")) for s in (value, policy, old)}
    # value: (10 x 1e8 + 20 x 5e7) / 1e9 = 2 s; EPyMARL's steady run 1000 / 50 = 20 s: 10x
    assert "| 2.0 | 4.0 | 50% | 100% | 10.0x |" in row["vdn-gru"]
    assert "| 2.0 | 4.0 | 50% | 100% | 10.0x |" in row["ippo-gru"]  # 20 x 1e8 / 1e9
    assert "predates the corrected FLOP count" in row["iql-gru"]


def test_archive_resumes_a_benchmark_on_a_machine_without_its_run_directories(tmp_path):
    """With --archive, each finished job's result.json is copied there; a later invocation with an
    empty runs folder takes those jobs as done and runs only the others."""
    import argparse
    from epymarl_side_by_side import plan, run_all
    setting = lib.make_setting("vdn", "mlp")
    archive = tmp_path / "archive"
    ran = []

    def runner(job, budget, args, core):
        ran.append(job.path.name)
        job.path.mkdir(parents=True)
        return {"runs": [], "job": job.path.name}

    first = argparse.Namespace(cores=[0], archive=archive)
    jobs = plan([setting], 1, tmp_path / "runs1", [])
    run_all(jobs[:1], None, first, runner)  # the first session finishes one job, then stops
    assert (archive / jobs[0].path.name / "result.json").exists()
    later = plan([setting], 1, tmp_path / "runs2", [])  # a new machine: no run directories
    run_all(later, None, first, runner)
    assert ran == [jobs[0].path.name] + [j.path.name for j in later[1:]]
    assert json.loads((later[0].path / "result.json").read_text())["job"] == jobs[0].path.name


def test_only_selects_jobs_by_pattern_and_names_the_jobs_when_none_match(tmp_path):
    from epymarl_side_by_side import plan, select
    jobs = plan([lib.make_setting("vdn", "mlp")], 3, tmp_path, [])
    assert select(jobs, None) == jobs
    chosen = select(jobs, "epymarl-*-s1,netmarl-vdn-mlp-s2")
    assert [j.path.name for j in chosen] == ["epymarl-vdn-mlp-s1", "netmarl-vdn-mlp-s2"]
    with pytest.raises(SystemExit, match=r"--only epymarl-\*-s7 matches none of the jobs: epymarl-vdn-mlp-s0"):
        select(jobs, "epymarl-*-s7")


def test_learning_section_gives_no_verdict_against_a_single_epymarl_run():
    """A report regenerated while the benchmark runs may have one EPyMARL seed: its 'CI' is a point,
    so the row gives the numbers and the p-value but no inside/above/below verdict."""
    from side_by_side_report import learning_section
    setting = lib.make_setting("vdn", "mlp")

    def run(last):
        return lib.RunResult({0: 0.0, 1: 0.1, 2: last}, 1000, 10.0, 500.0, 10, 20).to_json()

    done = {("epymarl", setting): [{"runs": [run(0.2)]}],
            ("netmarl", setting): [{"runs": [run(0.3)]}, {"runs": [run(0.4)]}]}
    lines, _ = learning_section(done, [setting], 1000)
    row = next(x for x in lines if x.startswith("| vdn-mlp | netmarl |"))
    assert "none (EPyMARL: 1 seed, no CI)" in row and "above" not in row
    done[("epymarl", setting)].append({"runs": [run(0.25)]})
    row = next(x for x in learning_section(done, [setting], 1000)[0] if x.startswith("| vdn-mlp | netmarl |"))
    assert "above" in row
