"""Where a netmarl run's time goes, and the floor set by this CPU's matmul speed.

    python benchmarks/side_by_side_profile.py --out profile.json -- <netmarl train overrides>

Times each part of a run of the given settings in isolation (jitted, one seed, after warm-up):
one episode of environment steps with random actions, one ε-greedy episode (environment steps +
action selection), one replay write, one learner update (minibatch sampling, loss, gradient,
optimiser, target check), the target-network update alone, one greedy evaluation, and the
compilation of the run's jitted functions. It also counts the matrix-product FLOPs of one update
(its jaxpr, loops times their length) and measures this machine's float32 matmul throughput, so that a run's floor is
`updates x FLOPs per update / matmul FLOP/s`. Writes the numbers as JSON; benchmarks/
epymarl_side_by_side.py multiplies them by a run's counts to give the time breakdown.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import jax  # noqa: E402
import jax.extend  # noqa: E402
import jax.numpy as jnp  # noqa: E402

os.environ.setdefault("NETMARL_COMPILATION_CACHE", "off")  # compile times are measured cold
from netmarl.cli import compose  # noqa: E402
from netmarl.train.replay import add_episodes  # noqa: E402
from netmarl.train.runner import Trainer  # noqa: E402

MATMUL_SHAPES = ((256, 256, 256), (512, 512, 512), (4800, 64, 64), (4800, 128, 128))  # (m, k, n)


def per_call(fn, *args, seconds: float = 1.0) -> float:
    """Mean seconds of one call of a compiled `fn` (after one warm-up call), repeated ~`seconds`."""
    jax.block_until_ready(fn(*args))
    reps, tic = 0, time.perf_counter()
    while time.perf_counter() - tic < seconds or reps < 3:
        jax.block_until_ready(fn(*args))
        reps += 1
    return (time.perf_counter() - tic) / reps


def per_call_chained(fn, state, *args, seconds: float = 1.0) -> float:
    """Mean seconds of `state = fn(state, *args)` with the state's buffers donated (updated in
    place, as inside the run's loop) after one warm-up call."""
    state = jax.block_until_ready(fn(jax.tree.map(jnp.copy, state), *args))
    reps, tic = 0, time.perf_counter()
    while time.perf_counter() - tic < seconds or reps < 3:
        state = jax.block_until_ready(fn(state, *args))
        reps += 1
    return (time.perf_counter() - tic) / reps


def timed(fn, *args) -> tuple[float, object]:
    tic = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return time.perf_counter() - tic, out


def matmul_flops_per_s() -> dict[str, float]:
    """float32 matmul throughput (FLOP/s) of this core for a few shapes, and their maximum. Each
    shape's fastest single call over half a second: a call the scheduler did not interrupt, so the
    figure is the core's speed even when another process shares the core."""
    rates = {}
    for m, k, n in MATMUL_SHAPES:
        a, b = jnp.ones((m, k), jnp.float32), jnp.ones((k, n), jnp.float32)
        rates[f"{m}x{k}x{n}"] = 2.0 * m * k * n / fastest_call(jax.jit(jnp.matmul), a, b, seconds=0.5)
    return {"shapes": rates, "max": max(rates.values())}


def fastest_call(fn, *args, seconds: float) -> float:
    """The shortest time of one call of a compiled `fn` over ~`seconds` of calls (after a warm-up)."""
    jax.block_until_ready(fn(*args))
    best, start = float("inf"), time.perf_counter()
    while time.perf_counter() - start < seconds:
        tic = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - tic)
    return best


def xla_flops(fn, *args) -> float:
    """FLOPs of one compiled call by XLA's cost analysis, which counts a loop's body once: a GRU
    unrolled by `scan` over 51 steps is undercounted about 50x (kept in the profile for comparison)."""
    analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    return float(analysis.get("flops", float("nan")))


def matmul_flops(fn, *args) -> float:
    """Matrix-product FLOPs of one call of `fn` (gradients included, as traced): 2 x output size x
    contracted size for every dot_general in its jaxpr, a scan's body counted `length` times, a
    cond's costliest branch. A while loop's trip count is unknown when tracing: its body counts once."""
    return _jaxpr_matmul_flops(jax.make_jaxpr(fn)(*args).jaxpr)


def _jaxpr_matmul_flops(jaxpr) -> float:
    total = 0.0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += 2.0 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in contract)
            continue
        inner = [_jaxpr_matmul_flops(j) for j in _sub_jaxprs(eqn.params)]
        if eqn.primitive.name == "cond":
            total += max(inner, default=0.0)
        else:
            total += eqn.params.get("length", 1) * sum(inner)  # scan's length; 1 for calls, pjit, remat
    return total


def _sub_jaxprs(params: dict):
    for value in params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, jax.extend.core.ClosedJaxpr):
                yield item.jaxpr
            elif isinstance(item, jax.extend.core.Jaxpr):
                yield item


def random_episode(env):
    """One episode of uniformly random available actions: the environment's own cost."""
    def play(key):
        state, ts = env.reset(key)

        def step(c, k):
            state, ts = c
            k_act, k_env = jax.random.split(k)
            actions = jax.random.categorical(k_act, jnp.where(ts.avail, 0.0, -jnp.inf))
            return env.step(k_env, state, actions), ts.team_reward
        return jax.lax.scan(step, (state, ts), jax.random.split(key, env.max_steps))[1]
    return jax.jit(play)


def policy_floor(trainer: Trainer, overrides: list[str]) -> dict:
    """The actor-critic family's floor only (no time breakdown): matrix-product FLOPs of one
    iteration, its K episodes' collection and its update (every epoch), traced, not run."""
    one = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), jax.eval_shape(trainer.init_seeds))
    family, key, env_steps = trainer.family, jax.random.PRNGKey(1), jax.ShapeDtypeStruct((), jnp.int32)
    episodes = jax.eval_shape(family.collect, one.learner, env_steps, key)
    k = jax.tree.leaves(episodes)[0].shape[0]
    per_iteration = (matmul_flops(family.collect, one.learner, env_steps, key)
                     + matmul_flops(family.learner.learn, one.learner, episodes, key, env_steps))
    return {"overrides": overrides, "episode_flops": per_iteration / k, "update_flops": 0.0,
            "matmul_flops_per_s": matmul_flops_per_s(), "jax": jax.__version__,
            "xla_flags": os.environ.get("XLA_FLAGS", "")}


def profile(overrides: list[str]) -> dict:
    config = compose(overrides)
    trainer = Trainer(config)
    if config.algo.family == "policy":
        return policy_floor(trainer, overrides)
    compile_s = {}
    compile_s["init"], carry = timed(trainer.init_seeds)
    until = jnp.int32(64 * config.env.options.get("max_steps", 50))  # past the first minibatch
    tic = time.perf_counter()
    compiled_chunk = trainer.run_chunk.lower(carry, until).compile()
    compile_s["chunk"] = time.perf_counter() - tic
    carry, _ = jax.block_until_ready(compiled_chunk(carry, until))
    tic = time.perf_counter()
    trainer._evaluate_seeds.lower(carry, jnp.int32(1), jnp.float32(0.0)).compile()
    compile_s["evaluate"] = time.perf_counter() - tic
    one = jax.tree.map(lambda x: x[0], carry)  # seed 0
    learner, key = trainer.learner, jax.random.PRNGKey(1)

    def update(state, replay, key):
        return learner.learn(state, trainer.family._sample(replay, key))

    episodes = jax.jit(trainer.collect)(one)
    parts = {
        "env_episode": per_call(random_episode(trainer.env), key),
        "collect_episode": per_call(jax.jit(trainer.collect), one),
        "replay_write": per_call_chained(jax.jit(add_episodes, donate_argnums=0), one.replay, episodes),
        "update": per_call(jax.jit(update), one.learner, one.replay, key),
        "target": per_call(jax.jit(learner.update_target), one.learner),
        "evaluation": per_call(jax.jit(trainer._evaluate), one, jnp.int32(1), jnp.float32(0.0)),
    }
    batch = trainer.family._sample(one.replay, key)
    return {"overrides": overrides, "seconds": parts, "compile_s": compile_s,
            "update_flops": matmul_flops(learner.learn, one.learner, batch),
            "episode_flops": matmul_flops(trainer.collect, one),
            "update_flops_xla": xla_flops(learner.learn, one.learner, batch),
            "batch_transitions": int(batch.filled.size), "matmul_flops_per_s": matmul_flops_per_s(),
            "jax": jax.__version__, "xla_flags": os.environ.get("XLA_FLAGS", "")}


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args(argv[:split])
    result = profile(argv[split + 1:])
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result.get("seconds", {"episode_flops": result["episode_flops"]})), flush=True)


if __name__ == "__main__":
    main()
