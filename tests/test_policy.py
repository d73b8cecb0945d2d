"""The actor-critic family's pieces: returns and advantages against plain loops, hand-derived policy
losses, contract tests over the three registries, and one iteration of every shipped algorithm."""
import functools
import itertools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netmarl.algos.policy.critics import CRITIC_INPUTS, joint_action, others_joint_actions
from netmarl.algos.policy.learner import PolicyLearner, output_layer
from netmarl.algos.policy.pieces import (ADVANTAGES, POLICY_LOSSES, a2c_loss, coma_advantage, entropy, gae,
                                         n_step_returns, ppo_clip_loss)
from netmarl.cli import compose
from netmarl.config import AlgoConfig, PolicyConfig
from netmarl.envs import make
from netmarl.nets.agents import apply_agents
from netmarl.train.replay import Episode
from netmarl.train.runner import Trainer

POLICY_ALGOS = ["ia2c", "ia2c_ns", "maa2c", "maa2c_ns", "coma", "pac", "ippo", "ippo_ns", "mappo", "mappo_ns"]


def _episode(key, t=7, end=5, terminated=True):
    """Random rewards and values of one padded episode of `end` real steps (of T = t)."""
    k_r, k_v = jax.random.split(key)
    r = jax.random.normal(k_r, (t,))
    v = jax.random.normal(k_v, (t + 1,))
    filled = jnp.arange(t) < end
    term = (jnp.arange(t) == end - 1) & terminated
    return r, 0.9 * (1.0 - term), v, filled


def _loop_gae(r, d, v, filled, lam):
    adv, a_next = np.zeros(len(r)), 0.0
    last = int(np.sum(filled)) - 1
    for t in reversed(range(last + 1)):
        delta = r[t] + d[t] * v[t + 1] - v[t]
        a_next = delta + d[t] * lam * (a_next if t < last else 0.0)
        adv[t] = a_next
    return adv


def _loop_n_step(r, d, v, filled, n):
    last, out = int(np.sum(filled)) - 1, np.zeros(len(r))
    for t in range(last + 1):
        g, scale, k = 0.0, 1.0, 0
        while k < n and t + k <= last:
            g += scale * r[t + k]
            scale *= d[t + k]
            k += 1
        out[t] = g + scale * v[t + k]
    return out


@pytest.mark.parametrize("terminated", [True, False])
def test_gae_and_n_step_returns_equal_plain_loops(terminated):
    for seed in range(3):
        r, d, v, filled = _episode(jax.random.key(seed), terminated=terminated)
        args = [np.asarray(x, np.float64) for x in (r, d, v)] + [np.asarray(filled)]
        end = int(filled.sum())
        for lam in (0.0, 0.7, 1.0):
            np.testing.assert_allclose(gae(r, d, v, filled, lam)[:end], _loop_gae(*args, lam)[:end], rtol=1e-5,
                                       atol=1e-5)
        for n in (1, 2, 5, 10):
            np.testing.assert_allclose(n_step_returns(r, d, v, filled, n)[:end], _loop_n_step(*args, n)[:end],
                                       rtol=1e-5, atol=1e-5)


def test_n_step_hand_values():
    # two steps then termination, γ = 0.5, n = 2: G_0 = 1 + 0.5·2 + 0 = 2 (terminal), G_1 = 2
    r, d = jnp.array([1.0, 2.0, 9.0]), jnp.array([0.5, 0.0, 0.5])
    v, filled = jnp.array([0.0, 4.0, 8.0, 16.0]), jnp.array([True, True, False])
    np.testing.assert_allclose(n_step_returns(r, d, v, filled, 2)[:2], [2.0, 2.0])
    # truncated instead (d_1 = 0.5): G_1 = 2 + 0.5·v_2 = 6, G_0 = 1 + 0.5·2 + 0.25·v_2 = 4
    d = jnp.array([0.5, 0.5, 0.5])
    np.testing.assert_allclose(n_step_returns(r, d, v, filled, 2)[:2], [4.0, 6.0])
    np.testing.assert_allclose(n_step_returns(r, d, v, filled, 1)[:2], [3.0, 6.0])  # r + 0.5 v'


def test_ppo_clip_loss_hand_derived_values_and_gradients():
    eps = 0.2
    cases = [  # (ratio, A, loss, d loss / d logp)
        (1.5, 2.0, -2.4, 0.0),   # min(3, 1.2·2) = 2.4, clipped: no gradient
        (1.5, -2.0, 3.0, 3.0),   # min(−3, −2.4) = −3 unclipped: d(−ρA)/dlogp = −ρA = 3
        (0.5, 2.0, -1.0, -1.0),  # min(1, 1.6) = 1 unclipped: −ρA = −1
        (0.5, -2.0, 1.6, 0.0),   # min(−1, −1.6) = −1.6 clipped
        (1.0, 3.0, -3.0, -3.0),  # ratio 1: the A2C gradient −A
    ]
    for ratio, adv, loss, grad in cases:
        logp_old = jnp.float32(-1.0)
        logp = logp_old + jnp.log(ratio)
        np.testing.assert_allclose(ppo_clip_loss(logp, logp_old, adv, eps), loss, rtol=1e-5)
        np.testing.assert_allclose(jax.grad(ppo_clip_loss)(logp, logp_old, adv, eps), grad, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a2c_loss(jnp.log(0.25), 0.0, 2.0, eps), 2.0 * np.log(4.0), rtol=1e-6)
    np.testing.assert_allclose(jax.grad(a2c_loss)(jnp.float32(-1.0), 0.0, 2.0, eps), -2.0)


def test_entropy_over_available_actions():
    # uniform over 3 of 4 actions: log 3; the unavailable action's huge logit is ignored
    np.testing.assert_allclose(entropy(jnp.array([0.0, 0.0, 9.0, 0.0]), jnp.array([1, 1, 0, 1], bool)),
                               np.log(3.0), rtol=1e-6)
    assert np.isfinite(jax.grad(entropy)(jnp.zeros(4), jnp.array([1, 0, 0, 0], bool))).all()


def _coma_critic(env, key):
    learner = PolicyLearner(AlgoConfig(family="policy", agent="mlp", hidden=16, shared_params=True,
                                       policy=PolicyConfig(critic_input="joint_action", advantage="coma")), env)
    return learner, learner.init(key).params["critic"]


def test_coma_baseline_equals_a_brute_force_loop_over_own_actions():
    env = make("lbf:Foraging-5x5-3p-1f")
    learner, params = _coma_critic(env, jax.random.key(0))
    n, a = env.num_agents, env.num_actions
    k_obs, k_state, k_act, k_pi = jax.random.split(jax.random.key(1), 4)
    obs = jax.random.normal(k_obs, (n, env.obs_dim))
    state = jax.random.normal(k_state, (env.state_dim,))
    actions = jax.random.randint(k_act, (n,), 0, a)
    pi = jax.nn.softmax(jax.random.normal(k_pi, (n, a)))

    @jax.jit
    def critic(joint):  # Q_i(., <a'_i, a_-i>) for every agent: [N, A]
        x = jnp.concatenate([joint_action(obs, state, joint, a), jnp.eye(n)], -1)
        return apply_agents(learner.critic, params, x, jnp.zeros((n, 1)), True)[0]

    adv, q_taken = jax.vmap(coma_advantage)(critic(actions)[..., None], pi, actions)  # one pass
    for i in range(n):
        baseline = 0.0
        for alt in range(a):  # the others keep their actions, agent i plays alt
            q_alt = critic(actions.at[i].set(alt))[i, alt]
            baseline += float(pi[i, alt]) * float(q_alt)
        q_a = float(critic(actions)[i, actions[i]])
        np.testing.assert_allclose(float(q_taken[i]), q_a, rtol=1e-5)
        np.testing.assert_allclose(float(adv[i]), q_a - baseline, rtol=1e-4, atol=1e-5)


def test_pareto_optimistic_joint_action_equals_brute_force_enumeration():
    env = make("lbf:Foraging-5x5-3p-1f")
    cfg = AlgoConfig(family="policy", agent="mlp", hidden=16, policy=PolicyConfig(
        critic_input="joint_action", advantage="pareto"))
    learner = PolicyLearner(cfg, env)
    params = learner.init(jax.random.key(0)).params["critic"]
    n, a = env.num_agents, env.num_actions
    _, ts = env.reset(jax.random.key(3))
    avail = ts.avail.at[1, 2].set(False)  # make one action of agent 1 unavailable
    episode = Episode(ts.obs[None], ts.state[None], avail[None], jnp.zeros((0, n), jnp.int32),
                      jnp.zeros((0, n)), jnp.zeros((0,), bool), jnp.zeros((0,), bool))
    stats = learner.init(jax.random.key(0)).value_stats
    table = learner.q_all_others(params, episode, stats)[0]  # [N, A, M]
    assert table.shape == (n, a, a ** (n - 1))
    q_i = jax.jit(lambda i, joint: learner.critic.apply(  # Q_i(h_i, z, <., a_-i>) [A], one agent
        jax.tree.map(lambda p: p[i], params), joint_action(ts.obs, ts.state, joint, a)[i], jnp.zeros(1))[0])
    for i in range(n):
        for own in range(a):
            best = -np.inf
            for others in itertools.product(range(a), repeat=n - 1):
                joint = [*others[:i], own, *others[i:]]
                if all(bool(avail[j, joint[j]]) for j in range(n) if j != i):
                    best = max(best, float(q_i(i, jnp.array(joint))[own]))
            np.testing.assert_allclose(float(table[i, own].max()), best, rtol=1e-5, atol=1e-5)


def test_others_joint_actions_leave_own_slot_empty():
    onehot, actions = others_joint_actions(3, 2)
    assert onehot.shape == (3, 4, 6) and actions.shape == (3, 4, 3)
    assert (onehot.reshape(3, 4, 3, 2)[np.arange(3), :, np.arange(3)] == 0).all()
    assert (onehot.reshape(3, 4, 3, 2).sum(-1) == 1 - np.eye(3)[:, None, :]).all()


# --- registry contracts ------------------------------------------------------------------------------

def _contract(fn, args, batch_axes):
    """jit equals eager, vmap over a batch equals a loop, and two calls are identical."""
    out = fn(*args)
    jitted = jax.jit(fn)(*args)
    for x, y in zip(jax.tree.leaves(out), jax.tree.leaves(jitted)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    batched = [jnp.stack([x, x * 0.5 if x.dtype == jnp.float32 else x]) if ax == 0 else x
               for x, ax in zip(args, batch_axes)]
    vmapped = jax.vmap(fn, batch_axes)(*batched)
    for b in range(2):
        single = fn(*[x[b] if ax == 0 else x for x, ax in zip(batched, batch_axes)])
        for x, y in zip(jax.tree.leaves(vmapped), jax.tree.leaves(single)):
            np.testing.assert_allclose(x[b], y, rtol=1e-5, atol=1e-6)
    for x, y in zip(jax.tree.leaves(out), jax.tree.leaves(fn(*args))):
        np.testing.assert_array_equal(x, y)
    return out


@pytest.mark.parametrize("name", list(ADVANTAGES))
def test_advantage_contract(name):
    adv = ADVANTAGES[name]
    if adv.kind == "v":
        r, d, v, filled = _episode(jax.random.key(0))
        fn = functools.partial(adv.fn, n=3, lambda_=0.9)
        out = _contract(lambda r, v: fn(r, d, v, v * 0.9, filled), (r, v), (0, 0))
        assert out[0].shape == out[1].shape == r.shape
    else:
        m = 1 if adv.others == "taken" else 4
        q = jax.random.normal(jax.random.key(1), (5, m))
        pi = jax.nn.softmax(jax.random.normal(jax.random.key(2), (5,)))
        out = _contract(lambda q, pi: adv.fn(q, pi, jnp.int32(3)), (q, pi), (0, 0))
        assert out[0].shape == out[1].shape == ()
        # the policy-weighted advantage is zero: Σ_a π(a) Adv(a) = 0
        total = sum(float(pi[a]) * float(adv.fn(q, pi, jnp.int32(a))[0]) for a in range(5))
        assert abs(total) < 1e-5


@pytest.mark.parametrize("name", list(POLICY_LOSSES))
def test_policy_loss_contract(name):
    logp, logp_old, a = jnp.log(jnp.array([0.3, 0.5])), jnp.log(jnp.array([0.25, 0.5])), jnp.array([1.0, -2.0])
    out = _contract(lambda x, y, z: POLICY_LOSSES[name](x, y, z, 0.2), (logp, logp_old, a), (0, 0, 0))
    assert out.shape == (2,)


@pytest.mark.parametrize("name", list(CRITIC_INPUTS))
def test_critic_input_contract(name):
    env = make("lbf:Foraging-5x5-3p-1f")
    spec = CRITIC_INPUTS[name](env)
    _, ts = env.reset(jax.random.key(0))
    actions = jnp.array([1, 2, 3])
    out = _contract(lambda o, s: spec.fn(o, s, actions), (ts.obs, ts.state), (0, 0))
    assert out.shape == (env.num_agents, spec.dim(env, env.obs_dim))


def test_unknown_and_mismatched_pieces_are_named():
    env = make("matrix:climbing")
    with pytest.raises(ValueError, match="unknown algo.policy.advantage 'gea'; accepted: td, gae, coma"):
        PolicyLearner(AlgoConfig(family="policy", policy=PolicyConfig(advantage="gea")), env)
    with pytest.raises(ValueError, match="need the action-value critic"):
        PolicyLearner(AlgoConfig(family="policy", policy=PolicyConfig(advantage="coma")), env)
    with pytest.raises(ValueError, match="max_joint_actions"):
        PolicyLearner(AlgoConfig(family="policy", agent="mlp", policy=PolicyConfig(
            critic_input="joint_action", advantage="pareto", max_joint_actions=2)), env)
    with pytest.raises(ValueError, match="accepted: value, policy"):
        Trainer(compose(["algo=mappo", "algo.family=polcy"]))


# These `_ns` configs differ from their shared twins only in algo.shared_params=false, whose path
# test_policy_learning.py's ippo_ns and mappo_ns runs (many iterations each) cover: they run with
# the slow tests.
SLOW_ITERATION = {"ia2c_ns", "maa2c_ns", "ippo_ns", "mappo_ns"}


@pytest.mark.parametrize("algo", [pytest.param(a, marks=pytest.mark.slow) if a in SLOW_ITERATION else a
                                  for a in POLICY_ALGOS])
def test_every_shipped_algorithm_runs_an_iteration(algo):
    """One jitted iteration of each config on a 3-step LBF task: finite metrics, the configured
    number of updates, parameters changed."""
    config = compose([f"algo={algo}", "env=lbf:Foraging-5x5-2p-1f", "env.options.max_steps=3",
                      "algo.hidden=8", "run.num_envs=2", "run.progress=false"])
    trainer = Trainer(config)
    carry = jax.tree.map(lambda x: x[0], trainer.init_seeds())
    new, stats = jax.jit(trainer.iteration)(carry, trainer.zero_stats())
    p = config.algo.policy
    assert float(stats.updates) == p.epochs * p.minibatches == int(new.learner.updates)
    assert all(np.isfinite(float(v)) for v in stats.learn)
    changed = [not np.allclose(x, y) for x, y in zip(jax.tree.leaves(carry.learner.params),
                                                    jax.tree.leaves(new.learner.params))]
    assert any(changed)


def test_shipped_configs_are_the_policy_family():
    names = sorted(p.stem for p in (Path(__file__).parents[1] / "netmarl/conf/algo").glob("*.yaml"))
    assert set(POLICY_ALGOS) <= set(names)
    for algo in POLICY_ALGOS:
        config = compose([f"algo={algo}"])
        assert config.algo.family == "policy" and config.algo.name == algo and config.run.num_envs == 10


def test_value_normaliser_pooled_or_per_agent():
    """value_norm_scope=agent: agent i's statistics are those of its own targets alone (what an MPI
    agent process can compute); pooled: one statistic over every agent's targets."""
    from netmarl.algos.policy.learner import value_scale
    from netmarl.algos.policy.update import update_value_stats
    from netmarl.algos.value.learner import RewardStats, update_reward_stats
    k_target, k_filled = jax.random.split(jax.random.PRNGKey(0))
    target = jax.random.normal(k_target, (4, 5, 3)) * jnp.array([1.0, 10.0, 100.0]) + jnp.array([0.0, 5.0, -50.0])
    filled = jax.random.bernoulli(k_filled, 0.7, (4, 5))
    prior = RewardStats(jnp.float32(1e-4), jnp.float32(0.0), jnp.float32(1.0))
    per_agent = update_value_stats(jax.tree.map(lambda x: jnp.full((3,), x), prior), target, filled)
    for i in range(3):
        own = update_reward_stats(prior, target[..., i], filled)
        np.testing.assert_allclose([per_agent.mean[i], per_agent.var[i]], [own.mean, own.var], rtol=1e-5)
    pooled = update_value_stats(prior, target, filled)
    mask = np.broadcast_to(np.asarray(filled)[..., None], target.shape)
    np.testing.assert_allclose(pooled.mean, np.asarray(target)[mask].mean(), rtol=1e-4)
    mean, std = value_scale(per_agent, 1)  # broadcasts over critic outputs [..., N, C]
    assert mean.shape == std.shape == (3, 1) and value_scale(pooled, 1)[0].shape == ()
    learner = PolicyLearner(compose(["algo=dg_mappo", "env=matrix:cycle-climbing-3"]).algo,
                            make("matrix:cycle-climbing-3"))
    assert learner.init(jax.random.PRNGKey(0)).value_stats.mean.shape == (3,)


def test_eval_sample_draws_from_the_policy_and_the_default_takes_its_mode():
    """algo.policy.eval_sample=true (EPyMARL's soft_policies selector, which samples in its test
    episodes too): evaluation actions are draws of π; the default is π's most probable action."""
    env = make("matrix:climbing")
    config = compose(["algo=mappo_ns", "env=matrix:climbing", "algo.hidden=8"]).algo
    sampled = PolicyLearner(compose(["algo=mappo_ns", "env=matrix:climbing", "algo.hidden=8",
                                     "algo.policy.eval_sample=true"]).algo, env)
    greedy = PolicyLearner(config, env)
    params = jax.jit(greedy.init)(jax.random.PRNGKey(0)).params
    _, ts = env.reset(jax.random.PRNGKey(0))
    h = greedy.initial_hidden()
    logits = greedy._logits(params, ts.obs, h, ts.avail, None)[0]  # [N, A]

    def actions(learner):
        act = jax.jit(jax.vmap(lambda k: learner.act(params, ts.obs, h, ts.avail, jnp.float32(0.0), k)[0]))
        return np.asarray(act(jax.random.split(jax.random.PRNGKey(1), 4000)))  # [4000, N]

    np.testing.assert_array_equal(actions(greedy), np.broadcast_to(np.argmax(logits, -1), (4000, 2)))
    freq = np.stack([np.bincount(a, minlength=3) / 4000 for a in actions(sampled).T])  # [N, A]
    np.testing.assert_allclose(freq, jax.nn.softmax(logits, -1), atol=0.03)  # 4000 draws: sd <= 0.008


def test_refreshed_advantages_start_from_the_iterations_and_need_td():
    """algo.policy.refresh_advantages (EPyMARL's ppo_learner): before the first epoch the critic is
    the collecting one, so the refreshed A = G - V equals the iteration's; other advantages refused."""
    from netmarl.algos.policy.update import prepare_batch, refreshed
    overrides = ["algo=ippo_ns", "env=matrix:climbing", "algo.hidden=8", "run.num_envs=2",
                 "algo.policy.refresh_advantages=true"]
    trainer = Trainer(compose(overrides))
    carry = jax.tree.map(lambda x: x[0], trainer.init_seeds())
    learner, state = trainer.learner, carry.learner
    batch, state = jax.jit(lambda s, e, k: prepare_batch(learner, s, e, k))(
        state, jax.jit(trainer.collect)(carry), jax.random.PRNGKey(2))
    mask = np.asarray(batch.episode.filled)[..., None]
    np.testing.assert_allclose(np.asarray(refreshed(learner, state, batch).adv) * mask,
                               np.asarray(batch.adv) * mask, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="refresh_advantages .* needs algo.policy.advantage=td"):
        Trainer(compose([*overrides, "algo.policy.advantage=gae"]))


def test_small_heads_scale_the_output_layers_and_can_be_turned_off():
    """Default: the actors' output kernel is 0.01 of the init's and the critics' zero; small_heads=false
    leaves both as algo.agent_init made them (EPyMARL's networks); every other leaf is the same."""
    env = make("matrix:climbing")
    learners = [PolicyLearner(AlgoConfig(family="policy", agent="mlp", hidden=8,
                                         policy=PolicyConfig(small_heads=small)), env) for small in (True, False)]
    small, plain = (learner.init(jax.random.key(3)).params for learner in learners)
    for part, scale in (("actor", 0.01), ("critic", 0.0)):
        layers, plain_layers = small[part]["params"], plain[part]["params"]
        last = output_layer(layers)
        np.testing.assert_allclose(layers[last]["kernel"], scale * plain_layers[last]["kernel"], rtol=1e-6)
        assert np.abs(plain_layers[last]["kernel"]).max() > 0.05
        others = [k for k in layers if k != last]
        assert all(np.array_equal(a, b) for k in others for a, b in
                   zip(jax.tree.leaves(layers[k]), jax.tree.leaves(plain_layers[k])))


def test_length_buckets_update_on_the_prefix_holding_every_episode_with_the_same_result():
    """algo.policy.length_buckets=3 on T = 6: episodes of at most 3 steps train on the first 4 steps
    (buckets 2, 4, 6), and the updates equal those on all 6 steps (the steps cut are padding)."""
    from netmarl.algos.policy.update import prepare_batch, time_prefix
    base = ["algo=ippo_ns", "env=lbf:Foraging-5x5-2p-1f", "env.options.max_steps=6", "algo.hidden=8",
            "run.num_envs=2", "algo.policy.epochs=2"]
    trainer = Trainer(compose(base))
    carry = jax.tree.map(lambda x: x[0], trainer.init_seeds())
    episodes = jax.jit(trainer.collect)(carry)
    short = jnp.arange(6) < jnp.array([[3], [2]])  # episode lengths 3 and 2
    episodes = episodes._replace(filled=short, terminated=short & ~jnp.pad(short, ((0, 0), (0, 1)))[:, 1:])
    learned = {}
    for buckets in (1, 3):
        learner = Trainer(compose([*base, f"algo.policy.length_buckets={buckets}"])).learner
        learned[buckets] = jax.jit(learner.learn)(carry.learner, episodes, jax.random.PRNGKey(3), jnp.int32(0))
    for x, y in zip(jax.tree.leaves(learned[1]), jax.tree.leaves(learned[3])):
        np.testing.assert_allclose(x, y, rtol=2e-5, atol=1e-6)
    # vmapped seeds (the runner's named axis) share one bucket: a real switch, not every bucket's
    # update computed and selected, and each seed's result is its own
    from netmarl.train.seed_axis import SEED_AXIS
    two = jax.tree.map(lambda x: jnp.stack([x, x]), (carry.learner, episodes))
    args = (*two, jax.random.PRNGKey(3), jnp.int32(0))
    named = jax.vmap(learner.learn, (0, 0, None, None), axis_name=SEED_AXIS)
    conds = lambda f: str(jax.make_jaxpr(f)(*args)).count("cond[")  # noqa: E731
    assert conds(named) == conds(jax.vmap(learner.learn, (0, 0, None, None))) + 1
    for x, y in zip(jax.tree.leaves(jax.jit(named)(*args)), jax.tree.leaves(learned[3])):
        np.testing.assert_allclose(x[1], y, rtol=2e-5, atol=1e-6)
    batch, _ = prepare_batch(trainer.learner, carry.learner, episodes, jax.random.PRNGKey(0))
    cut = time_prefix(batch, 6, 4)
    assert cut.episode.obs.shape[1] == 5 and cut.adv.shape[1] == 4 and cut.episode.filled.shape == (2, 4)
    assert cut.logp_old.shape[1] == 4 and cut.critic_in.shape[1] == 5
