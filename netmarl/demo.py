"""`make demo` before the trainer exists: a random policy on lbf-easy, per-episode team returns."""
import jax
import jax.numpy as jnp

from netmarl.envs import make, step_autoreset


def main(episodes: int = 8) -> None:
    env = make("lbf-easy")
    key = jax.random.key(0)
    state, ts = env.reset(key)
    step = jax.jit(lambda k, s, a: step_autoreset(env, k, s, a))
    ret, done_eps = 0.0, 0
    while done_eps < episodes:
        key, k_act, k_env = jax.random.split(key, 3)
        actions = jax.random.categorical(k_act, jnp.where(ts.avail, 0.0, -jnp.inf))
        out = step(k_env, state, actions)
        state, ts, ret = out.state, out.current, ret + float(out.transition.team_reward)
        if bool(out.transition.done):
            done_eps += 1
            print(f"episode {done_eps}: team return {ret:.3f}")
            ret = 0.0


if __name__ == "__main__":
    main()
