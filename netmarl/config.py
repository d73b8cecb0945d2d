"""Typed configuration: one dataclass per group, registered with Hydra's ConfigStore.

Units: env steps count joint steps of one environment; updates count learner steps (one minibatch);
episodes are whole episodes of one environment. Derived quantities live in `derive()`.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from netmarl.results.loggers import LOGGERS, check_loggers


@dataclass
class MixerConfig:
    """The mixing network of a mixed strategy (read only when algo.team_td = qmix, qplex or qtran)."""

    embed: int = 32  # mixing-network embedding size (QMIX), hidden width of QPLEX's weight and
    #   attention networks and of QTRAN's Q_jt / V_jt networks
    hyper_hidden: int = 64  # QMIX: hypernetwork hidden units (0: single linear W1/w2 hypernetworks)
    activation: str = "elu"  # QMIX: elu | relu, mixing-network nonlinearity
    init: str = "torch"  # QMIX: initialisation of the mixer's layers: torch (PyTorch's nn.Linear
    #   default, as EPyMARL: weights and biases U(±1/sqrt(fan_in))) | lecun (Flax's default: weights
    #   N(0, 1/fan_in), biases 0; about 3x larger mixing weights |W1|, |w2| at the start)
    heads: int = 4  # QPLEX: attention heads K of the advantage weights λ_i(s, a)
    stop_adv_grad: bool = True  # QPLEX: utilities learn only through Σ_i Q_i(s, a_i), the advantages
    #   in the λ term are constants (the original implementation's gradient; same Q_tot value). False:
    #   the gradient also flows through V_i = max_u Q_i and A_i (docs/results/decomposition_games.md)
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
class DGATConfig:
    """Distributed graph attention, DG-MAPPO's communication (read when algo.policy.agent_input =
    dgat; netmarl/nets/dgat.py). Each env step's graph is drawn from algo.comm's schedule (topology,
    p_drop, connected, mode), and so is each update's neighbour-averaging graph."""

    hops: int = 0  # K stacked attention hops; 0 = the number of agents (the seed's choice)
    width: int = 64  # D', the width of the attention projection W^i
    activation: str = "elu"  # σ of eq. 8: elu | tanh | relu
    alpha_consensus: float = 20.0  # weight of the consensus regulariser (eq. 11; 0 turns it off)
    averaging: str = "degree"  # neighbour averaging of ψ after every update: degree (c = 1/|N^i|,
    #   eq. 10) | metropolis (doubly stochastic, keeps the mean exactly) | none (the ablation)
    lr: float | None = None  # learning rate of ψ (None: algo.lr)


@dataclass
class PolicyConfig:
    """The on-policy actor-critic learner (read only when algo.family = policy; docs/algorithms.md).

    Algorithms differ in three registered pieces (netmarl/algos/policy/): what the critic sees, how
    the advantage is formed, and the policy loss."""

    agent_input: str = "local"  # what actors and critics see: local: o_i | dgat: õ_i = [o_i ‖ ô_i],
    #   ô_i inferred by distributed graph attention over the communication graph (DG-MAPPO)
    critic_input: str = "local"  # local: o_i (IA2C, IPPO) | state: s (MAA2C, MAPPO) | joint_obs:
    #   all o_j | joint_action: s, o_i and a_-i, an action-value critic Q_i(., a_-i)[a_i] (COMA, PAC)
    advantage: str = "td"  # td: n-step return - V | gae: GAE(lambda) | coma: counterfactual
    #   baseline | pareto: optimistic joint action (Pareto-AC); coma/pareto need critic_input=joint_action
    policy_loss: str = "a2c"  # a2c: -A log pi | ppo: clipped surrogate over epochs and minibatches
    critic_net: str = "mlp"  # critic network: mlp | gru (over the critic inputs' history)
    n_step: int = 5  # steps of the n-step critic targets (EPyMARL's q_nstep), within an episode
    gae_lambda: float = 0.95  # lambda of GAE (advantage=gae)
    entropy_coef: float = 0.001  # entropy bonus coefficient (the final one when annealed)
    entropy_start: float | None = None  # if set: the coefficient anneals linearly from this ...
    entropy_anneal_steps: int = 0  # ... to entropy_coef over this many env steps (Pareto-AC)
    epochs: int = 1  # passes over each iteration's episodes (PPO: 4)
    minibatches: int = 1  # minibatches of whole episodes per pass (must divide run.num_envs)
    length_buckets: int = 1  # B > 1: the updates run on the first ceil(T·b/B) steps of the episodes,
    #   b the smallest bucket holding the iteration's longest episode (the same losses: the steps cut
    #   are padding), compiled once per bucket; speeds up tasks whose episodes end well before T
    clip_eps: float = 0.2  # PPO ratio clip epsilon
    value_norm: bool = False  # critic learns standardised targets (running mean / std of targets)
    value_norm_scope: str = "pooled"  # pooled: one mean / std over every agent's targets (a central
    #   statistic) | agent: each agent's critic standardises by its own targets' statistics
    max_joint_actions: int = 4096  # advantage=pareto enumerates the A^(N-1) joint actions a_-i of
    #   the others exactly; refused above this many (see docs/algorithms.md)
    eval_sample: bool = False  # evaluation samples a ~ pi (EPyMARL's soft_policies selector does so
    #   in its test episodes too) instead of taking the most probable action
    refresh_advantages: bool = False  # advantage=td: A = G - V(current critic) again before every
    #   epoch (EPyMARL's ppo_learner), instead of once per iteration with the collecting critic
    small_heads: bool = True  # the actors' output layer starts at 0.01 of its init's scale and the
    #   critics' at zero; false: as initialised by algo.agent_init (EPyMARL's networks)


@dataclass
class AlgoConfig:
    """One Q-learner (family=value; algorithms differ in `team_td` and parameter sharing) or one
    actor-critic learner (family=policy; the pieces are in `policy`). EPyMARL-like defaults.

    Fields read by both families: name, family, shared_params, agent (the actor under policy),
    hidden, layers, lr, grad_clip, gamma, target_update_interval / target_tau (the critic's target),
    standardise_rewards, reward_shares, optimizer, bootstrap_truncation."""

    name: str = "vdn"  # display name of the algorithm (used in run ids and tables)
    family: str = "value"  # value: the Q-learner (algos/value) | policy: actor-critic (algos/policy)
    team_td: str = "vdn"  # how each agent's team TD is formed: iql | vdn | dvdn | qmix | qplex | qtran |
    #   pairvdn (see algos/value/team_td.py)
    shared_params: bool = False  # one parameter set for all agents, one-hot agent ids appended
    agent: str = "gru"  # agent network: gru | mlp
    hidden: int = 64  # hidden units per layer
    layers: int = 2  # ReLU layers of the MLP agent (the GRU agent has one Dense layer, a GRU cell)
    agent_init: str = "lecun"  # agent (and critic) networks' init: lecun (Flax's default) | torch
    #   (PyTorch's nn.Linear / nn.GRUCell: U(±1/sqrt(fan_in)), biases too; EPyMARL's agents)
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
    reward_shares: str = "env"  # env: per-agent rewards of the env | equal: team reward R / N each
    #   | team: R for every agent (the DVDN seed's R̄; EPyMARL's common reward) — docs/algorithms.md
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
    dgat: DGATConfig = field(default_factory=DGATConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)


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
    loggers: list[str] = field(default_factory=lambda: ["jsonl"])  # where metrics go, between chunks:
    #   jsonl (metrics.jsonl, always included), tensorboard, wandb (offline) — netmarl/results/loggers.py


@dataclass
class TrainConfig:
    """Everything a training run depends on (together with its seeds)."""

    algo: AlgoConfig = field(default_factory=AlgoConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    run: RunConfig = field(default_factory=RunConfig)


# --- validation: one table of ranges and one of choices, checked for every config --------------------

# dotted field -> accepted interval, in interval notation ("[" closed, "(" open, inf unbounded)
RANGES: dict[str, str] = {
    "algo.hidden": "[1, inf)", "algo.layers": "[1, inf)", "algo.lr": "(0, inf)",
    "algo.gamma": "[0, 1]", "algo.batch_size": "[1, inf)", "algo.buffer_size": "[1, inf)",
    "algo.target_update_interval": "[1, inf)", "algo.target_tau": "(0, 1]",
    "algo.eps_start": "[0, 1]", "algo.eps_finish": "[0, 1]", "algo.eps_anneal_steps": "[0, inf)",
    "algo.updates_per_iteration": "[1, inf)", "algo.learn_start": "[0, inf)",
    "algo.mixer.embed": "[1, inf)", "algo.mixer.hyper_hidden": "[0, inf)", "algo.mixer.heads": "[1, inf)",
    "algo.mixer.opt_weight": "[0, inf)", "algo.mixer.nopt_weight": "[0, inf)",
    "algo.comm.p_drop": "[0, 1)", "algo.comm.rounds": "[1, inf)", "algo.comm.num_edges": "[0, inf)",
    "algo.comm.loss": "[0, 1)", "algo.comm.patience": "(0, inf)",
    "algo.policy.n_step": "[1, inf)", "algo.policy.gae_lambda": "[0, 1]",
    "algo.policy.entropy_coef": "[0, inf)", "algo.policy.entropy_start": "[0, inf)",
    "algo.policy.entropy_anneal_steps": "[0, inf)", "algo.policy.epochs": "[1, inf)",
    "algo.policy.minibatches": "[1, inf)", "algo.policy.length_buckets": "[1, inf)", "algo.policy.clip_eps": "(0, inf)",
    "algo.policy.max_joint_actions": "[1, inf)", "algo.dgat.hops": "[0, inf)", "algo.dgat.width": "[1, inf)",
    "algo.dgat.alpha_consensus": "[0, inf)", "algo.dgat.lr": "(0, inf)",
    "run.total_steps": "[1, inf)", "run.seeds": "[1, inf)", "run.seed": "[0, inf)",
    "run.num_envs": "[1, inf)", "run.eval_interval": "[1, inf)", "run.eval_episodes": "[1, inf)",
}
# dotted field -> accepted values (names checked by a registry, e.g. algo.team_td, are not here)
CHOICES: dict[str, tuple[str, ...]] = {
    "algo.family": ("value", "policy"), "algo.agent": ("gru", "mlp"), "algo.optimizer": ("adam", "sgd"),
    "algo.agent_init": ("lecun", "torch"),
    "algo.reward_shares": ("env", "equal", "team"), "algo.policy.critic_net": ("mlp", "gru"),
    "algo.policy.value_norm_scope": ("pooled", "agent"), "algo.replay_unit": ("episode", "transition"),
    "algo.gt_optimizer": ("sgd", "adam"), "algo.gt_combine": ("atc", "cta"),
    "algo.mixer.activation": ("elu", "relu"), "algo.mixer.init": ("torch", "lecun"),
    "algo.comm.exchange": ("sync", "async"),
    "algo.comm.mode": ("dropout", "edges"), "run.seed_mode": ("vmap", "loop"),
    "run.loggers": tuple(LOGGERS),  # a list: each entry one of these (jsonl required)
    "algo.policy.agent_input": ("local", "dgat"), "algo.dgat.activation": ("elu", "tanh", "relu"),
    "algo.dgat.averaging": ("degree", "metropolis", "none"),
}


def check(config, prefix: str = "") -> None:
    """Refuses a value of the wrong type or outside its range, naming the field, type and range.

    `config` is a TrainConfig, or a part of one whose dotted path is `prefix` (e.g. "algo.")."""
    for path, value, hint in _leaves(config, prefix):
        if not has_type(value, hint):
            raise ValueError(f"{path}={value!r} has type {type(value).__name__}; expected {type_name(hint)}"
                             + (f" in {RANGES[path]}" if path in RANGES else ""))
        if path in RANGES and value is not None and not _in_range(value, RANGES[path]):
            raise ValueError(f"{path}={value!r} is out of range; accepted: {type_name(hint)} in "
                             f"{RANGES[path]}")
        if path == "run.loggers":
            check_loggers(value, path)
        elif path in CHOICES and value not in CHOICES[path]:
            raise ValueError(f"{path}={value!r}; accepted: {', '.join(CHOICES[path])}")


def field_help(path: str) -> str:
    """`type in range` (or `one of ...`) of a dotted field, for error messages; '' if unknown."""
    node, hint = TrainConfig, None
    for part in path.split("."):
        hints = typing.get_type_hints(node) if dataclasses.is_dataclass(node) else {}
        if part not in hints:
            return ""
        node = hint = hints[part]
    if path in CHOICES and typing.get_origin(hint) is list:
        return f"a list of {', '.join(CHOICES[path])}, e.g. [{','.join(CHOICES[path][:2])}]"
    if path in CHOICES:
        return f"one of {', '.join(CHOICES[path])}"
    return type_name(hint) + (f" in {RANGES[path]}" if path in RANGES else "")


def _leaves(config, prefix: str = ""):
    """(dotted path, value, type hint) of every non-dataclass field, depth first."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", value, hints[f.name]


def has_type(value, hint) -> bool:
    """isinstance for the hints used here: int, float, bool, str, dict[..], list[X], X | None."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if typing.get_origin(option) is list:
            items = typing.get_args(option) or (Any,)
            if isinstance(value, list) and all(has_type(v, items[0]) for v in value):
                return True
            continue
        option = typing.get_origin(option) or option
        if option is type(None) and value is None:
            return True
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if option in (bool, str, dict) and isinstance(value, option):
            return True
        if option is Any:
            return True
    return False


def type_name(hint) -> str:
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    return " or ".join("None" if o is type(None) else getattr(typing.get_origin(o) or o, "__name__", str(o))
                       for o in options)


def _in_range(value: float, interval: str) -> bool:
    low, high = (float(x) for x in interval[1:-1].split(","))
    above = value > low if interval[0] == "(" else value >= low
    below = value < high if interval[-1] == ")" else value <= high
    return above and below


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
