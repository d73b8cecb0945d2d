"""Threefry's straight-line lowering on CPU: the same random bits, compiled about 3x faster.

Every `jax.random` call under JAX's default PRNG hashes counters with threefry2x32 (5 groups of 4
rounds of 32-bit add / rotate / xor). JAX lowers the hash to straight-line code on GPU and TPU but to
a rolled `fori_loop` over the 5 groups on CPU, and XLA's CPU backend compiles each loop's body on its
own: a netmarl program holds dozens of random calls (parameter init, ε-greedy, spawns, minibatch
indices), so the rolled loops are much of its compile time. Registering the straight-line rule
for CPU too cut a tiny VDN run's `init` compile 3x and its training chunk's by 10-20 % (measured
2026-12-07, docs/testing.md). The hash is exact integer arithmetic, so both lowerings give the same
bits (tests/test_threefry.py checks the published test vector and the rolled lowering's output).

This uses JAX internals of the pinned jax version (requirements.lock). If they move, netmarl warns
once and keeps JAX's own lowering; `NETMARL_THREEFRY=jax` keeps it on purpose.
"""
import os
import warnings


def use_straight_line_threefry_on_cpu() -> bool:
    """Registers the straight-line threefry lowering for CPU; True when it is in effect."""
    if os.environ.get("NETMARL_THREEFRY", "") == "jax":
        return False
    try:
        from jax._src.interpreters import mlir
        from jax._src.random import threefry2x32 as threefry
        mlir.register_lowering(threefry.threefry2x32_p, threefry._threefry2x32_lowering_rule,
                               platform="cpu")
    except (ImportError, AttributeError) as error:  # pragma: no cover - only with another jax
        warnings.warn(f"netmarl: JAX's rolled threefry lowering kept on CPU ({error!r}); "
                      "compilation is slower, results are the same", stacklevel=2)
        return False
    return True


STRAIGHT_LINE = use_straight_line_threefry_on_cpu()
