"""`netmarl agent`: networked agents as real processes on MPI (specs/distributed.md).

    mpirun -n 5 --oversubscribe netmarl agent algo=dvdn env=lbf-tiny run.id=demo   # 4 agents

World rank 0 runs the environment (a dedicated process: agents never see each other's observations,
and killing any agent leaves the environment running); world rank i + 1 is agent i. Every process
composes the same config and derives the same keys; the run is a sequence of phases, each an
`iterate` (collect num_envs episodes, learn) or an `evaluate` (greedy episodes, records, checkpoint),
decided on every rank from the same counters:

    point < 0 -> evaluate 0;   env_steps >= until(point + 1) -> evaluate point + 1;   else iterate.

Every process keeps the state before its last phases. When a peer fails (ULFM), the survivors repair
the group (world.py) and all restart from the earliest phase any of them was in, without the dead
agents: the phase function is pure in its state, so the repeated phase is well defined.

The environment rank shows what `netmarl train` shows (netmarl/train/loop.py's `progress_bar` and
`report`): progress while it runs, then the learning curve and the summary line; it writes the team's
records to every logger of `run.loggers`. Agent ranks print nothing unless something goes wrong.
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

from netmarl.comm.mpi import PeerFailure, PeerTimeout, mpi
from netmarl.config import TrainConfig, check, to_dict
from netmarl.results.loggers import Loggers, check_installed
from netmarl.results.rundir import RunDir

KEEP_PHASES = 3  # snapshots kept: a survivor is at most one phase ahead of any other


def next_phase(point: int, env_steps: int, config: TrainConfig) -> str | None:
    """'evaluate', 'iterate', or None when the run is complete (point = last evaluation done)."""
    run = config.run
    if point < 0:
        return "evaluate"
    if point >= math.ceil(run.total_steps / run.eval_interval):
        return None
    until = min((point + 1) * run.eval_interval, run.total_steps)
    return "evaluate" if env_steps >= until else "iterate"


def drive(process, world, config: TrainConfig):
    """Runs the phases of `process` (EnvProcess or AgentProcess) to the end, repairing on failures."""
    phase, point, state = 0, -1, process.initial()
    snapshots = {}
    while True:
        try:
            while (kind := next_phase(point, process.env_steps(state), config)) is not None:
                snapshots[phase] = (point, state)
                snapshots.pop(phase - KEEP_PHASES, None)
                if kind == "evaluate":
                    point += 1
                    state = process.evaluate(state, point)
                else:
                    state = process.iterate(state)
                phase += 1
            world.barrier()  # nobody leaves while a survivor may still need a repair
            return state
        except PeerFailure as error:
            phase = world.recover(phase, error)
            point, state = snapshots[phase]
            if hasattr(process, "regroup"):
                process.regroup()
            print(f"netmarl agent: {world._who()}: peer failure ({error}); continuing with agents "
                  f"{world.agents} from phase {phase}", file=sys.stderr, flush=True)


def run_agents(config: TrainConfig, timeout: float = 300.0) -> None:
    """The body of one MPI process of a deployment run (environment or agent, by rank)."""
    from netmarl.distributed.world import ENV, World
    from netmarl.envs import make

    _check(config)
    _check_exchange(config, timeout)
    env = make(config.env.name, **config.env.options)
    learner, schedule = _learner(config, env)
    world = World(env.num_agents, schedule, timeout, _pushsum_options(config))
    root = Path(config.run.dir) / (config.run.id or "")
    try:
        if world.me == ENV:
            _run_env(config, env, learner, world, root)
        else:
            run = _agent_dir(root, world.me, config)
            process = _agent_process(config, env, learner, world, run)
            process.finish(drive(process, world, config))
        if world.failures:  # MPI_Finalize can wait forever for a dead peer: results are written
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
    except PeerTimeout as error:
        print(f"netmarl agent: {error}", file=sys.stderr, flush=True)
        mpi().COMM_WORLD.Abort(3)


def _learner(config: TrainConfig, env):
    """The simulator's learner (QLearner or DG-MAPPO's PolicyLearner) and its graph schedule."""
    if config.algo.family == "policy":
        from netmarl.algos.policy.learner import PolicyLearner
        learner = PolicyLearner(config.algo, env)
        return learner, learner.inputs.schedule
    from netmarl.algos.value.pairvdn import make_learner
    learner = make_learner(config.algo, env)
    return learner, learner.schedule


def _agent_process(config: TrainConfig, env, learner, world, run: RunDir):
    """Agent world.me's process: DVDN / IQL's AgentProcess or DG-MAPPO's PolicyAgentProcess."""
    if config.algo.family == "policy":
        from netmarl.distributed.policy_learner import AgentPolicy
        from netmarl.distributed.policy_rank import PolicyAgentProcess
        agent = AgentPolicy(learner, world.me, config.run.num_envs)
        return PolicyAgentProcess(config, env, agent, world, run)
    from netmarl.distributed.agent_rank import AgentProcess
    from netmarl.distributed.learner import AgentLearner
    return AgentProcess(config, env, AgentLearner(learner, world.me), world, run)


def _run_env(config: TrainConfig, env, learner, world, root: Path) -> None:
    """The environment rank: runs the phases with a progress bar and the run's loggers, writes the
    summary, and prints the learning curve and summary line as `netmarl train` does."""
    from netmarl.distributed.env_rank import EnvProcess
    from netmarl.distributed.policy_rank import PolicyEnvProcess
    from netmarl.train.loop import progress_bar, report

    run = RunDir.create(root, to_dict(config))
    kind = PolicyEnvProcess if config.algo.family == "policy" else EnvProcess
    with Loggers(config.run.loggers, run, to_dict(config)) as log, progress_bar(config, plain=True) as progress:
        process = kind(config, env, learner, world, run, log, progress)
        drive(process, world, config)
    _finish_env(run, config, world, process)
    report(run)


def _pushsum_options(config: TrainConfig) -> dict | None:
    """PushSumCommunicator options with algo.comm.exchange=async, else None (synchronous)."""
    comm = config.algo.comm
    if comm.exchange != "async":
        return None
    return {"patience": comm.patience, "loss": comm.loss, "seed": (config.run.seed, comm.seed)}


def _agent_dir(root: Path, agent: int, config: TrainConfig) -> RunDir:
    """runs/<id>/agent_<i>/ once the environment rank has created runs/<id>/."""
    import time

    for _ in range(600):
        if (root / "config.json").exists():
            break
        time.sleep(0.1)
    return RunDir.create(root / f"agent_{agent}", to_dict(config))


def _finish_env(run: RunDir, config: TrainConfig, world, process) -> None:
    """summary.json and marl_eval.json as `netmarl train` writes them, plus distributed.json."""
    import time

    from netmarl.train.loop import finish_run
    finish_run(run, config, time.perf_counter() - process.tic)
    agents = list(range(process.env.num_agents))
    run.write_json("distributed.json", {
        "layout": "world rank 0: environment; world rank i + 1: agent i", "agents": agents,
        "live_agents": world.agents, "failures": world.failures,
        "agent_dirs": [f"agent_{i}" for i in agents]})


def _check(config: TrainConfig) -> None:
    check(config)  # types and ranges of every field (netmarl/config.py)
    check_installed(config.run.loggers)
    if config.algo.family == "policy" and config.algo.policy.agent_input != "dgat":
        raise ValueError(f"netmarl agent runs networked agents (algo=dvdn, dvdn_gt, iql, dg_mappo); "
                         f"algo={config.algo.name} (algo.family=policy with algo.policy.agent_input="
                         f"{config.algo.policy.agent_input!r}, not dgat) trains with netmarl train")
    if not config.run.id:
        raise ValueError("netmarl agent needs run.id=<name>: every process must agree on the run "
                         "directory (runs/<id>/)")
    if config.run.seeds != 1:
        raise ValueError(f"netmarl agent runs one seed per launch, got run.seeds={config.run.seeds}; "
                         "launch one mpirun per seed with run.seed=<s> and distinct run.id")
    algo = config.algo
    if algo.family == "policy":
        return _check_dg_mappo(config)
    if algo.replay_unit != "episode" or algo.epoch_pass or config.env.eval_options:
        raise ValueError(f"netmarl agent supports episode replay only (algo.replay_unit=episode, "
                         f"algo.epoch_pass=false, no env.eval_options); got replay_unit="
                         f"{algo.replay_unit!r}, epoch_pass={algo.epoch_pass}, "
                         f"eval_options={config.env.eval_options}")
    if config.algo.team_td not in ("dvdn", "iql"):
        raise ValueError(f"netmarl agent runs networked or independent agents (algo.team_td = dvdn "
                         f"or iql), got {config.algo.team_td!r}: it needs a central learner")


def _check_exchange(config: TrainConfig, timeout: float) -> None:
    """algo.comm.exchange / loss / patience / log_jtd_error: valid values and combinations."""
    comm, algo = config.algo.comm, config.algo
    if comm.loss > 0 and comm.exchange != "async":
        raise ValueError(f"algo.comm.loss={comm.loss} needs algo.comm.exchange=async: the "
                         "synchronous exchange waits for every message and cannot lose any")
    if comm.exchange == "async" and not 0.0 < comm.patience < timeout:
        raise ValueError(f"algo.comm.patience={comm.patience} must be in (0, --timeout={timeout:g}) "
                         "seconds")
    if comm.exchange == "async" and algo.gradient_tracking:
        raise ValueError("algo.comm.exchange=async does not support algo.gradient_tracking=true "
                         "(dvdn_gt mixes parameters and trackers synchronously); use "
                         "algo.comm.exchange=sync, or algo=dvdn")
    if comm.exchange == "async" and algo.team_td != "dvdn":
        raise ValueError(f"algo.comm.exchange=async needs algo.team_td=dvdn (push-sum on the TDs), "
                         f"got {algo.team_td!r}, which exchanges nothing")
    if comm.log_jtd_error and algo.team_td != "dvdn":
        raise ValueError(f"algo.comm.log_jtd_error needs networked agents (algo.team_td=dvdn), got "
                         f"{algo.team_td!r}")


def _check_dg_mappo(config: TrainConfig) -> None:
    """The DG-MAPPO settings the agent processes support (each refusal names what is accepted)."""
    algo, p = config.algo, config.algo.policy
    if p.value_norm and p.value_norm_scope != "agent":
        raise ValueError(f"netmarl agent algo=dg_mappo: algo.policy.value_norm_scope="
                         f"{p.value_norm_scope!r} normalises every agent's critic targets with one "
                         "running mean and variance over all agents' targets, which no agent process "
                         "holds; accepted: algo.policy.value_norm_scope=agent (each agent its own), "
                         "or algo.policy.value_norm=false")
    if p.critic_input != "local":
        raise ValueError(f"netmarl agent algo=dg_mappo: algo.policy.critic_input={p.critic_input!r} "
                         "reads the global state or the other agents' observations; accepted: local")
    if p.advantage not in ("gae", "td"):
        raise ValueError(f"netmarl agent algo=dg_mappo: algo.policy.advantage={p.advantage!r}; "
                         "accepted: gae, td (state-value critics)")
    comm = algo.comm
    if comm.exchange != "sync" or comm.log_jtd_error:
        raise ValueError(f"netmarl agent algo=dg_mappo: algo.comm.exchange={comm.exchange!r}, "
                         f"algo.comm.log_jtd_error={comm.log_jtd_error}; accepted: exchange=sync, "
                         "log_jtd_error=false (D-GAT's hops need every neighbour's message)")
    if p.eval_sample:
        raise ValueError("netmarl agent algo=dg_mappo: algo.policy.eval_sample=true is not supported "
                         "(the agent processes evaluate the most probable action); accepted: false")
    if config.env.eval_options:
        raise ValueError(f"netmarl agent algo=dg_mappo: env.eval_options={config.env.eval_options} "
                         "is not supported (the environment rank plays one environment); accepted: {}")
