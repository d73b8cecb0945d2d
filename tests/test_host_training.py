"""Training on host-stepped Gymnasium / PettingZoo envs (netmarl/train/host.py).

The equivalence test is exact (bitwise): netmarl's own LBF, wrapped as a Gymnasium env and
stepped on the host, trains to the same numbers as the jitted path on the same LBF, because the host
path keys every episode as the jitted path does (its reset seed is drawn from the episode's reset key,
and `SeededLBF` resets from that same seed natively)."""
import dataclasses

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium import spaces

from netmarl.cli import compose
from netmarl.envs import make
from netmarl.envs.adapters import make_host
from netmarl.envs.lbf import LBF
from netmarl.envs.registry import FAMILIES, make_lbf
from netmarl.train.evaluate import evaluate_run, load_run
from netmarl.train.families import blank_episode, make_family
from netmarl.train.host import HostTrainer, reset_seed
from netmarl.train.loop import resume, train
from netmarl.train.rollout import collect_episode
from netmarl.train.runner import Trainer

TASK = "Foraging-5x5-2p-1f"
SMALL = ["algo.agent=gru", "algo.hidden=16", "algo.buffer_size=16", "algo.batch_size=4",
         "algo.eps_anneal_steps=600", "algo.target_update_interval=10", "run.num_envs=2", "seeds=2",
         "run.eval_episodes=3", "run.progress=false"]


@dataclasses.dataclass(frozen=True)
class SeededLBF(LBF):
    """netmarl's LBF, reset from the integer seed the host path draws from the reset key."""

    def _reset(self, key):
        return super()._reset(jax.random.PRNGKey(reset_seed(key)))


class LBFGym(gymnasium.Env):
    """netmarl's LBF as a Gymnasium env with Tuple spaces (stepped one jitted step at a time)."""

    def __init__(self, max_steps: int = 10):
        self.lbf = make_lbf(TASK, max_steps=max_steps)
        n, o = self.lbf.num_agents, self.lbf.obs_dim
        self.action_space = spaces.Tuple([spaces.Discrete(self.lbf.num_actions)] * n)
        self.observation_space = spaces.Tuple([spaces.Box(-1.0, 10.0, (o,), np.float32)] * n)
        self.state_space = spaces.Box(-1.0, 10.0, (self.lbf.state_dim,), np.float32)
        self._max_episode_steps = max_steps

    def reset(self, seed=None, options=None):
        self._state, ts = self.lbf.reset(jax.random.PRNGKey(seed))
        self._ts = ts
        return tuple(np.asarray(ts.obs)), {"action_mask": np.asarray(ts.avail)}

    def step(self, actions):
        self._state, ts = self.lbf.step(jax.random.PRNGKey(0), self._state, jnp.asarray(actions, jnp.int32))
        self._ts = ts
        return (tuple(np.asarray(ts.obs)), np.asarray(ts.reward), bool(ts.terminated),
                bool(ts.truncated), {"action_mask": np.asarray(ts.avail)})

    def state(self):
        return np.asarray(self._ts.state)


@pytest.fixture(scope="module", autouse=True)
def registered():
    gymnasium.register("NetmarlLBF-v0", entry_point=LBFGym)
    FAMILIES["seededlbf"] = (lambda task, **options: SeededLBF(**dataclasses.asdict(
        make_lbf(task, **options))), "test only")
    yield
    del FAMILIES["seededlbf"]
    gymnasium.registry.pop("NetmarlLBF-v0")


# VDN stays in the default suite (28 s compiling from scratch); MAPPO's twin (28 s) is `slow`.
# Two different XLA programs agree bit for bit under users' compiler settings, not under the
# suite's cheap ones (a 1-ulp difference in a logged loss): users_compiler (conftest.py).
@pytest.mark.users_compiler
@pytest.mark.parametrize("algo", ["vdn", pytest.param("mappo", marks=pytest.mark.slow)])
def test_host_path_equals_jitted_path(algo):
    """The same run through both paths: env steps, losses, parameters and evaluations bitwise equal
    (the padding after an episode differs, zeros on the host: it is masked everywhere)."""
    extra = ["run.num_envs=2", "algo.policy.minibatches=2"] if algo == "mappo" else []
    native = Trainer(compose([f"algo={algo}", f"env=seededlbf:{TASK}", "env.options.max_steps=10",
                              *SMALL, *extra]))
    host = HostTrainer(compose([f"algo={algo}", "env=gym:NetmarlLBF-v0", *SMALL, *extra]))
    carries = [t.init_seeds() for t in (native, host)]
    for until in (100, 250):
        results = [t.run_chunk(c, jnp.int32(until)) for t, c in zip((native, host), carries)]
        carries = [r[0] for r in results]
        (a, stats_a), (b, stats_b) = results
        np.testing.assert_array_equal(a.env_steps, b.env_steps)
        assert float(stats_a.updates.sum()) > 0
        for x, y in zip(jax.tree.leaves(stats_a), jax.tree.leaves(stats_b)):
            np.testing.assert_array_equal(x, y)
        for x, y in zip(jax.tree.leaves(a.learner), jax.tree.leaves(b.learner)):
            np.testing.assert_array_equal(x, y)
    for point in (0, 3):
        np.testing.assert_array_equal(native.evaluate(carries[0], jnp.int32(point)),
                                      host.evaluate(carries[1], jnp.int32(point)))


def test_blank_episode_matches_a_collected_episode():
    """The replay template, built from shapes, has the shapes and dtypes of a real episode."""
    for name in ("lbf-tiny", "matrix:climbing"):
        config = compose(["algo=vdn", f"env={name}"])
        family = make_family(config, make(name))
        params = family.learner.init(jax.random.PRNGKey(0)).params
        real = jax.eval_shape(lambda k: collect_episode(family.env, family.learner, params, 1.0, k),
                              jax.random.PRNGKey(1))
        blank = blank_episode(family.env, family.learner)
        assert jax.tree.map(lambda x: (x.shape, x.dtype), real) == \
            jax.tree.map(lambda x: (x.shape, x.dtype), blank)


@pytest.mark.slow  # 20 s from scratch; the default suite keeps the bitwise VDN equivalence above
def test_lbforaging_package_trains_resumes_and_evaluates(tmp_path):
    """The real lbforaging package: a run killed after its first evaluation and resumed equals the
    uninterrupted run (the carry holds no env state: every episode is a seeded reset)."""
    overrides = ["algo=vdn", "env=gym:lbforaging:Foraging-5x5-2p-1f-coop-v3", "env.options.time_limit=10",
                 *SMALL, "run.total_steps=300", "run.eval_interval=150", f"run.dir={tmp_path}"]
    whole = train(compose([*overrides, "run.id=whole"]))
    part = train(compose([*overrides, "run.id=part"]), stop_after=1)
    resumed = resume(str(part.path))
    strip = lambda run: [{k: v for k, v in r.items() if k != "elapsed_s"} for r in run.metrics()]  # noqa: E731
    assert strip(whole) == strip(resumed) and len(strip(whole)) == 6
    for x, y in zip(jax.tree.leaves(load_run(str(whole.path))[1].learner.params),
                    jax.tree.leaves(load_run(str(resumed.path))[1].learner.params)):
        np.testing.assert_array_equal(x, y)
    result = evaluate_run(str(whole.path), episodes=2)
    assert len(result["per_seed"]) == 2
    with pytest.raises(ValueError, match="--render needs a netmarl JAX environment"):
        evaluate_run(str(whole.path), episodes=1, render=str(tmp_path / "x.gif"))


@pytest.mark.slow  # 12 s from scratch
def test_pettingzoo_mpe2_trains():
    """mpe2's simple_spread through the PettingZoo path: the global state is the env's state()."""
    trainer = HostTrainer(compose(["algo=mappo", "env=pettingzoo:mpe2.simple_spread_v3",
                                   "env.options.max_cycles=5", *SMALL]))
    assert (trainer.env.num_agents, trainer.env.max_steps, trainer.env.state_dim) == (3, 5, 54)
    carry, stats = trainer.run_chunk(trainer.init_seeds(), jnp.int32(20))
    np.testing.assert_array_equal(carry.env_steps, [20, 20])
    assert np.isfinite(np.asarray(stats.learn.loss)).all()
    returns = trainer.evaluate(carry, jnp.int32(1))
    assert returns.shape == (2, 3) and (np.asarray(returns) < 0).all()  # spread's rewards are negative


def test_bad_host_env_ids_are_named():
    with pytest.raises(ValueError, match="gymnasium cannot make 'NoSuchEnv-v0'"):
        make_host("gym:NoSuchEnv-v0")
    with pytest.raises(ValueError, match="pettingzoo:no_such_module: No module named"):
        make_host("pettingzoo:no_such_module")
    with pytest.raises(ValueError, match="accepted: gym:<gymnasium id>"):
        make_host("gym:")
    with pytest.raises(ValueError, match="time_limit=0; accepted: a positive integer"):
        make_host("gym:NetmarlLBF-v0", time_limit=0)
    with pytest.raises(ValueError, match="is a host-stepped environment"):
        make("gym:NetmarlLBF-v0")
