"""Typed configuration: one dataclass per group, registered with Hydra's ConfigStore.

Units: env steps count joint steps of one environment; updates count learner steps (one minibatch);
episodes are whole episodes of one environment. Derived quantities live in `derive()`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class MixerConfig:
    """The mixing network of a mixed strategy (read only when algo.team_td = qmix, qplex or qtran)."""

    embed: int = 32  # mixing-network embedding size (QMIX), hidden width of QPLEX's weight and
    #   attention networks and of QTRAN's Q_jt / V_jt networks
    hyper_hidden: int = 64  # QMIX: hypernetwork hidden units (0: single linear W1/w2 hypernetworks)
    activation: str = "elu"  # QMIX: elu | relu, mixing-network nonlinearity
    heads: int = 4  # QPLEX: attention heads K of the advantage weights λ_i(s, a)
    opt_weight: float = 1.0  # QTRAN: λ_opt, weight of L_opt
    nopt_weight: float = 1.0  # QTRAN: λ_nopt, weight of L_nopt


@dataclass
class CommConfig:
    """The communication graph of networked agents (read when algo.team_td = dvdn or with GT)."""

    topology: str = "complete"  # base graph (netmarl.comm.TOPOLOGIES): complete, ring, line, ...
    p_drop: float = 0.5  # probability that a base link is down in a consensus round, in [0, 1)
    rounds: int = 1  # K consensus rounds per training step
    connected: bool = True  # redraw each round's graph until it is connected
    mode: str = "dropout"  # dropout: links kept w.p. 1 - p_drop | edges: exactly num_edges edges
    num_edges: int | None = None  # edges per round in mode=edges
    seed: int = 0  # graph schedule seed (folded into the run seed) and seed of random topologies
    # --- `netmarl agent` only (docs/deployment.md); the in-process simulator accepts the defaults ---
    exchange: str = "sync"  # sync: every consensus round waits for all its neighbours' TDs
    #   (Metropolis W @ x, equals the simulator) | async: one push-sum pass over the step's K round
    #   graphs that waits at most `patience` per round and tolerates lost or late messages (dvdn only)
    loss: float = 0.0  # async only: simulated probability that a neighbour message is dropped, in
    #   [0, 1) (for testing and demonstration; real losses and late messages are handled the same way)
    patience: float = 0.05  # async only: seconds a round waits for its in-neighbours' messages before
    #   treating the missing ones as lost (< the `--timeout` of netmarl agent)
    log_jtd_error: bool = False  # diagnostic: every agent also all-reduces the exact Σ_j δ_j (one
    #   blocking collective per update, not in floats_sent) to log jtd_error; the simulator always logs it


@dataclass
class AlgoConfig:
    """One Q-learner; algorithms differ in `team_td` (and parameter sharing). EPyMARL-like defaults."""

    name: str = "vdn"  # display name of the algorithm (used in run ids and tables)
    team_td: str = "vdn"  # how each agent's team TD is formed: iql | vdn | dvdn | qmix | qplex | qtran |
    #   pairvdn (see algos/value/team_td.py)
    shared_params: bool = False  # one parameter set for all agents, one-hot agent ids appended
    agent: str = "gru"  # agent network: gru | mlp
    hidden: int = 64  # hidden units per layer
    layers: int = 2  # ReLU layers of the MLP agent (the GRU agent has one Dense layer, a GRU cell)
    lr: float = 5e-4  # Adam learning rate
    grad_clip: float = 10.0  # gradient-norm clip (per agent for separate parameters); <= 0: none
    gamma: float = 0.99  # discount
    double_q: bool = True  # select next actions with the online network, evaluate with the target
    batch_size: int = 32  # episodes per minibatch
    buffer_size: int = 5000  # episodes kept in the replay buffer
    target_update_interval: int = 200  # updates between target-network updates ...
    target_tau: float = 1.0  # ... each moving the target by tau toward the online net (1 = hard copy)
    eps_start: float = 1.0  # epsilon-greedy exploration, linear from eps_start ...
    eps_finish: float = 0.05  # ... to eps_finish ...
    eps_anneal_steps: int = 50_000  # ... over this many env steps
    standardise_rewards: bool = False  # divide rewards by a running std (and centre them)
    reward_shares: str = "env"  # env: per-agent rewards of the env | equal: team reward / N each
    updates_per_iteration: int = 1  # learner updates per collection iteration (num_envs episodes)
    replay_unit: str = "episode"  # episode: minibatches of whole episodes | transition: of single
    #   transitions (feed-forward agents only; batch_size then counts transitions)
    epoch_pass: bool = False  # with transitions: each iteration makes one shuffled pass over the
    #   buffer (whole minibatches) instead of updates_per_iteration updates (PairVDN's protocol)
    learn_start: int = 0  # env steps collected before the first update (warm-up)
    optimizer: str = "adam"  # adam | sgd (plain, no momentum)
    bootstrap_truncation: bool = True  # bootstrap at the time limit (False: treat it as terminal)
    gradient_tracking: bool = False  # DVDN (GT): track the network-average gradient, mix parameters
    gt_optimizer: str = "sgd"  # with tracking: sgd (step lr, eq. 4d) | adam (Adam on the tracker)
    gt_combine: str = "atc"  # atc: ω_i <- Σ_j α_ij (ω_j - η z_j) | cta: eq. 4d as printed (see docs)
    mixer: MixerConfig = field(default_factory=MixerConfig)
    comm: CommConfig = field(default_factory=CommConfig)


@dataclass
class EnvConfig:
    """The environment: a preset name or a family:task id, and options passed to `envs.make`."""

    name: str = "lbf-easy"
    options: dict[str, Any] = field(default_factory=dict)
    eval_options: dict[str, Any] = field(default_factory=dict)  # options changed for evaluation only
    #   (e.g. a longer time limit: Box Jump is trained at T = 400 and evaluated at T = 400 and 1000)


@dataclass
class RunConfig:
    """Budget, seeds, evaluation, checkpoints and where results go."""

    total_steps: int = 200_000  # env steps per seed
    seeds: int = 1  # number of seeds, run in parallel (vmapped)
    seed: int = 0  # first seed; seeds are seed, seed + 1, ...
    seed_mode: str = "vmap"  # vmap | loop (loop: one seed after another, the fallback)
    num_envs: int = 1  # environments collected in parallel per iteration (one episode each)
    eval_interval: int = 10_000  # env steps between greedy evaluations (= chunk length)
    eval_episodes: int = 32  # greedy episodes per evaluation point
    dir: str = "runs"  # parent of run directories
    id: str | None = None  # run directory name (default: <env>_<algo>_<timestamp>)
    progress: bool = True  # show a progress bar


@dataclass
class TrainConfig:
    """Everything a training run depends on (together with its seeds)."""

    algo: AlgoConfig = field(default_factory=AlgoConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    run: RunConfig = field(default_factory=RunConfig)


def from_dict(cls, data: dict):
    """Builds a (nested) config dataclass from a plain dict, rejecting unknown keys by name."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} key(s) {unknown}; accepted: {', '.join(fields)}")
    kwargs = {}
    for name, value in data.items():
        sub = _dataclass_type(fields[name])
        kwargs[name] = from_dict(sub, value) if sub and isinstance(value, dict) else value
    return cls(**kwargs)


def _dataclass_type(f: dataclasses.Field):
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
    return type(default) if dataclasses.is_dataclass(default) else None


def to_dict(config) -> dict:
    return dataclasses.asdict(config)
