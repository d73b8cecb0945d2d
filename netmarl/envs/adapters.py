"""Host adapters: environments that are not JAX, stepped on the host, in netmarl's TimeStep format.

`HostEnv` wraps a Gymnasium multi-agent env (Tuple spaces, the lbforaging convention) or a PettingZoo
ParallelEnv and returns `TimeStep`s of numpy arrays with the dtypes of `core.make_timestep`:
obs float32 [N, O], state float32 [S], avail bool [N, A], reward float32 [N], team_reward float32 [],
terminated / truncated bool []. Neither gymnasium nor pettingzoo is imported: spaces and envs are
duck-typed. The wrapped env is stateful, so a HostEnv cannot be jitted or vmapped.

Conventions:
- reward: a single team reward R is split into equal shares R / N; per-agent rewards are used as
  given (so team_reward == reward.sum() always).
- state: `env.state()` when the env (or the env under its wrappers) declares both `state()` and
  `state_space` (PettingZoo's convention), else the concatenation of all agents' observations, [N * O].
- avail: `avail_fn(env, info)` if given; else per-agent `action_mask`s from the info (Gymnasium:
  `info["action_mask"]` [N, A]; PettingZoo: `infos[agent]["action_mask"]` [A]); rows without a
  mask are all True (the env then decides what an unusable action does).
- done flags pass through unchanged unless `time_limit` is set: then the episode is reported as
  truncated from step `time_limit` on, and terminated only if the env said so and
  `folds_time_limit` is False. `folds_time_limit` (the default, True) is for envs that fold their
  own time limit into `terminated`, lbforaging among them: learners must bootstrap at a time limit,
  and netmarl's own LBF reports it as truncation, but the flags alone cannot tell a genuine terminal
  on that very step from the time limit, so such a step is reported as truncation only. Envs that
  report truncation themselves (Gymnasium's TimeLimit, PettingZoo) take folds_time_limit=False and
  keep a genuine terminal at the limit (`make_host` decides).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from netmarl.envs.core import AgentSpaces, TimeStep

AvailFn = Callable[[Any, Any], np.ndarray]  # (wrapped env, info of the last reset/step) -> [N, A]


class HostEnv(AgentSpaces):
    """A host-stepped multi-agent env with netmarl's TimeStep API (numpy arrays).

    Build it with `HostEnv.from_gymnasium(env)` or `HostEnv.from_pettingzoo(parallel_env)`.

    Attributes: `env` (the wrapped env), `num_agents` (N), `num_actions` (A), `obs_dim` (O),
    `state_dim` (S), `agents` (PettingZoo agent names in agent-axis order; None for Gymnasium),
    `time_limit`, `steps` (env steps taken in the current episode), and, as `Environment` has them
    (the learners read them), `max_steps` (= time_limit), `agent_obs_dims`, `agent_num_actions`,
    `homogeneous` (always True: every agent has the same spaces; `core.AgentSpaces`).
    """

    def __init__(self, env: Any, num_agents: int, num_actions: int, obs_dim: int, *,
                 agents: Sequence[str] | None = None, time_limit: int | None = None,
                 avail_fn: AvailFn | None = None, folds_time_limit: bool = True):
        if time_limit is not None and time_limit < 1:
            raise ValueError(f"HostEnv: time_limit={time_limit} must be a positive integer or None")
        self.env, self.agents = env, None if agents is None else tuple(agents)
        self.num_agents, self.num_actions, self.obs_dim = num_agents, num_actions, obs_dim
        self.time_limit, self.avail_fn, self.steps = time_limit, avail_fn, 0
        self.folds_time_limit = folds_time_limit
        # the state() of the env, or of the env under its wrappers (Gymnasium's do not forward it)
        self._state_of = next((e for e in (env, getattr(env, "unwrapped", env))
                               if callable(getattr(e, "state", None)) and hasattr(e, "state_space")), None)
        self.state_dim = (int(np.prod(self._state_of.state_space.shape)) if self._state_of is not None
                          else num_agents * obs_dim)

    @classmethod
    def from_gymnasium(cls, env: Any, *, time_limit: int | None = None,
                       avail_fn: AvailFn | None = None, folds_time_limit: bool = True) -> HostEnv:
        """Wraps a Gymnasium env with Tuple(Discrete(A), ...) actions and Tuple(Box, ...) observations.

        Its `step(tuple of N ints)` returns (obs tuple [N] of [O], rewards [N] or a scalar team reward,
        terminated, truncated, info).
        """
        act, obs = env.action_space, env.observation_space
        name = type(getattr(env, "unwrapped", env)).__name__
        if not (hasattr(act, "spaces") and hasattr(obs, "spaces")):
            raise ValueError(f"HostEnv: {name} has action space {act} and observation space {obs}; "
                             "accepted: Tuple spaces, one entry per agent")
        num_actions, obs_dim = _check_spaces(list(act.spaces), list(obs.spaces), name)
        return cls(env, len(act.spaces), num_actions, obs_dim, time_limit=time_limit,
                   avail_fn=avail_fn, folds_time_limit=folds_time_limit)

    @classmethod
    def from_pettingzoo(cls, env: Any, *, time_limit: int | None = None,
                        avail_fn: AvailFn | None = None, folds_time_limit: bool = True) -> HostEnv:
        """Wraps a PettingZoo ParallelEnv; the agent axis follows `env.possible_agents`.

        Agents that have left the episode (absent from the env's dicts) get zero observations and
        rewards and all-True avail rows; their actions are not sent. The episode is over once every
        agent has terminated or truncated; it is reported as truncated if any agent was truncated.
        """
        agents = list(env.possible_agents)
        num_actions, obs_dim = _check_spaces([env.action_space(a) for a in agents],
                                             [env.observation_space(a) for a in agents],
                                             type(env).__name__)
        return cls(env, len(agents), num_actions, obs_dim, agents=agents, time_limit=time_limit,
                   avail_fn=avail_fn, folds_time_limit=folds_time_limit)

    @property
    def name(self) -> str:
        return f"HostEnv({type(getattr(self.env, 'unwrapped', self.env)).__name__})"

    @property
    def max_steps(self) -> int | None:
        return self.time_limit

    def reset(self, seed: int | None = None) -> TimeStep:
        """Starts an episode (seeding the wrapped env if `seed` is given); zero reward, no done."""
        self.steps = 0
        obs, info = self.env.reset(seed=seed)
        return self._timestep(obs, info, np.zeros(self.num_agents, np.float32), False, False)

    def step(self, actions: Any) -> TimeStep:
        """Advances one step with joint actions [N] (integers in [0, A))."""
        actions = self.check_actions(actions)
        n = self.num_agents
        if self.agents is None:
            obs, reward, terminated, truncated, info = self.env.step(tuple(int(a) for a in actions))
            reward = np.asarray(reward, np.float32)
            if reward.ndim == 0:
                reward = np.full(n, reward / n, np.float32)
            elif reward.shape != (n,):
                raise ValueError(f"{self.name}: the env returned rewards of shape {reward.shape}; "
                                 f"accepted: a scalar team reward or one reward per agent ({n},)")
        else:
            live = set(getattr(self.env, "agents", self.agents))
            obs, rewards, terms, truncs, info = self.env.step(
                {a: int(x) for a, x in zip(self.agents, actions) if a in live})
            reward = np.array([rewards.get(a, 0.0) for a in self.agents], np.float32)
            over = all(terms.get(a, True) or truncs.get(a, True) for a in self.agents)
            truncated = over and any(bool(truncs.get(a, False)) for a in self.agents)
            terminated = over and not truncated
        self.steps += 1
        if self.time_limit is not None and self.steps >= self.time_limit:
            terminated, truncated = bool(terminated) and not self.folds_time_limit, True
        return self._timestep(obs, info, reward, terminated, truncated)

    def check_actions(self, actions: Any) -> np.ndarray:
        """Returns `actions` as int64 [N]; raises ValueError on a wrong shape, dtype or value."""
        values = np.asarray(actions)
        accepted = f"accepted: {self.num_agents} integers in [0, {self.num_actions - 1}]"
        if values.shape != (self.num_agents,):
            raise ValueError(f"{self.name}: actions {values.tolist()!r} have shape {values.shape}; "
                             f"{accepted}, one per agent")
        if not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f"{self.name}: actions {values.tolist()!r} have dtype {values.dtype}; "
                             f"{accepted}")
        bad = values[(values < 0) | (values >= self.num_actions)]
        if bad.size:
            raise ValueError(f"{self.name}: action(s) {bad.tolist()} out of range; {accepted}")
        return values.astype(np.int64)

    def render(self) -> np.ndarray:
        """An RGB image [H, W, 3] from the wrapped env, which must use render_mode='rgb_array'."""
        mode = getattr(self.env, "render_mode", None)
        if mode != "rgb_array":
            raise NotImplementedError(f"{self.name}: render() needs the wrapped env to be made with "
                                      f"render_mode='rgb_array'; it has render_mode={mode!r}")
        return np.asarray(self.env.render())

    def close(self) -> None:
        """Closes the wrapped env, if it can be closed."""
        getattr(self.env, "close", lambda: None)()

    def _timestep(self, obs: Any, info: Any, reward: np.ndarray, terminated: bool,
                  truncated: bool) -> TimeStep:
        info = info if isinstance(info, Mapping) else {}
        if self.agents is None:
            per_agent, masks = list(obs), info.get("action_mask")
            masks = [None] * self.num_agents if masks is None else list(masks)
        else:
            per_agent = [obs.get(a) for a in self.agents]
            masks = [(info.get(a) or {}).get("action_mask") for a in self.agents]
        obs_arr = np.zeros((self.num_agents, self.obs_dim), np.float32)
        avail = np.ones((self.num_agents, self.num_actions), bool)
        for i, (o, m) in enumerate(zip(per_agent, masks, strict=True)):
            if o is not None:
                obs_arr[i] = np.asarray(o, np.float32).reshape(self.obs_dim)
            if m is not None:
                avail[i] = np.asarray(m).astype(bool).reshape(self.num_actions)
        if self.avail_fn is not None:
            avail = np.asarray(self.avail_fn(self.env, info), bool).reshape(avail.shape)
        state = (np.asarray(self._state_of.state(), np.float32).reshape(self.state_dim)
                 if self._state_of is not None else obs_arr.reshape(-1))
        reward = np.asarray(reward, np.float32)
        return TimeStep(obs=obs_arr, state=state, avail=avail, reward=reward,
                        team_reward=np.asarray(reward.sum(), np.float32),
                        terminated=np.asarray(terminated, bool), truncated=np.asarray(truncated, bool))


HOST_FAMILIES = ("gym", "pettingzoo")  # env ids `gym:<gymnasium id>`, `pettingzoo:<module>`


def is_host(name: str) -> bool:
    """Whether an environment id names a host-stepped env (trained through train/host.py)."""
    return name.partition(":")[0] in HOST_FAMILIES


def make_host(name: str, time_limit: int | None = None, **options) -> HostEnv:
    """A HostEnv from an id `gym:<id>` (`gymnasium.make(id, **options)`; `<id>` may name the module
    that registers it, `lbforaging:Foraging-8x8-2p-2f-coop-v3`) or `pettingzoo:<module>` (the module's
    `parallel_env(**options)`, e.g. `pettingzoo:mpe2.simple_spread_v3`).

    `time_limit`: the episode length T (padding, and truncation rather than termination from step T
    on); default: the env's own (Gymnasium's `max_episode_steps`, lbforaging's `_max_episode_steps`,
    PettingZoo's `max_cycles`). lbforaging envs get `lbforaging_avail` as their action masks, and
    `folds_time_limit` (the package reports its time limit as termination); other envs' flags are
    trusted.
    """
    family, _, task = name.partition(":")
    if family not in HOST_FAMILIES or not task:
        raise ValueError(f"host environment id {name!r} not understood; accepted: gym:<gymnasium id> "
                         "(e.g. gym:lbforaging:Foraging-8x8-2p-2f-coop-v3) or pettingzoo:<module with "
                         "parallel_env> (e.g. pettingzoo:mpe2.simple_spread_v3)")
    env = _make_gymnasium(task, options) if family == "gym" else _make_pettingzoo(task, options)
    limit = time_limit if time_limit is not None else _own_time_limit(env)
    if limit is None:
        raise ValueError(f"environment {name!r} declares no episode length; set env.options.time_limit "
                         "(env steps per episode)")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"env.options.time_limit={limit!r}; accepted: a positive integer")
    lbforaging = type(getattr(env, "unwrapped", env)).__module__.startswith("lbforaging")
    build = HostEnv.from_gymnasium if family == "gym" else HostEnv.from_pettingzoo
    return build(env, time_limit=limit, avail_fn=lbforaging_avail if lbforaging else None,
                 folds_time_limit=lbforaging)


def _make_gymnasium(task: str, options: dict) -> Any:
    import gymnasium
    try:
        return gymnasium.make(task, disable_env_checker=True, **options)
    except (gymnasium.error.Error, ModuleNotFoundError) as error:
        raise ValueError(f"gymnasium cannot make {task!r}: {error}; name a registered id, prefixed with "
                         "the module that registers it if needed (lbforaging:Foraging-8x8-2p-2f-v3)") from None
    except TypeError as error:
        raise ValueError(f"gymnasium env {task!r} refused the options {options}: {error}") from None


def _make_pettingzoo(module: str, options: dict) -> Any:
    import importlib
    try:
        constructor = importlib.import_module(module).parallel_env
    except (ModuleNotFoundError, AttributeError) as error:
        raise ValueError(f"pettingzoo:{module}: {error}; accepted: an importable module with a "
                         "parallel_env() constructor, e.g. mpe2.simple_spread_v3") from None
    try:
        return constructor(**options)
    except TypeError as error:
        raise ValueError(f"{module}.parallel_env refused the options {options}: {error}") from None


def _own_time_limit(env: Any) -> int | None:
    """The episode length an env declares (Gymnasium spec, lbforaging, PettingZoo's max_cycles)."""
    spec = getattr(env, "spec", None)
    unwrapped = getattr(env, "unwrapped", env)
    for value in (getattr(spec, "max_episode_steps", None), getattr(unwrapped, "_max_episode_steps", None),
                  getattr(unwrapped, "max_cycles", None)):
        if isinstance(value, int) and value > 0:
            return value
    return None


def lbforaging_avail(env: Any, info: Any = None) -> np.ndarray:
    """`avail_fn` for lbforaging's ForagingEnv: [N, 6] bool, the package's valid actions.

    The package puts no mask in its info (it turns invalid actions into NONE), and exposes valid
    actions only as the joint product `get_valid_actions()`; this reads its per-player lists.
    """
    env = getattr(env, "unwrapped", env)
    valid = [{action.value for action in env._valid_actions[p]} for p in env.players]
    return np.array([[a in v for a in range(env.action_space[0].n)] for v in valid], bool)


def _check_spaces(action_spaces: list, obs_spaces: list, name: str) -> tuple[int, int]:
    """(A, O) for per-agent Discrete(A) action spaces and Box observation spaces of size O."""
    sizes = {int(s.n) if hasattr(s, "n") and int(getattr(s, "start", 0)) == 0 else None
             for s in action_spaces}
    if None in sizes or len(sizes) != 1:
        raise ValueError(f"HostEnv: {name} has action spaces {action_spaces}; accepted: Discrete(A) "
                         "starting at 0, with the same A for every agent")
    dims = {int(np.prod(s.shape)) if hasattr(s, "low") and s.shape is not None else None
            for s in obs_spaces}
    if None in dims or len(dims) != 1:
        raise ValueError(f"HostEnv: {name} has observation spaces {obs_spaces}; accepted: Box spaces "
                         "with the same number of elements for every agent")
    return sizes.pop(), dims.pop()
