"""The suite's cheap XLA settings (tests/conftest.py) and the way back to users' settings.

`users_compiler()` compiles every program compiled inside it with users' settings: XLA's
per-compile options override the cheap XLA_FLAGS, in this process (a test marked `users_compiler`
runs inside it; fixtures that run long programs use it directly). A Box Jump fixture's 48k physics
steps take 31 s cheap and 21 s so; the bitwise host-path check passes so and fails cheap by one ulp.
"""
from __future__ import annotations

import contextlib
import functools
import os

# Each cheap setting: (the suite's value, users' value = XLA's default).
CHEAP_XLA = {"xla_cpu_use_fusion_emitters": (False, True), "xla_backend_optimization_level": (0, 3),
             "xla_llvm_disable_expensive_passes": (True, False)}
TEST_XLA_FLAGS = " ".join(f"--{k}={str(cheap).lower()}" for k, (cheap, _) in CHEAP_XLA.items())
USERS_COMPILER_OPTIONS = {k: users for k, (_, users) in CHEAP_XLA.items()}


@contextlib.contextmanager
def users_compiler():
    """Every program compiled within compiles with `USERS_COMPILER_OPTIONS` (a no-op when the suite
    runs with users' settings, NETMARL_TEST_FULL_OPT=1). It adds them to the per-compile options of
    jax's compile step (jax._src.compiler.get_compile_options, jax 0.10.2), so it reaches every
    top-level compile and nothing else: patching `jax.jit` instead would leak into the modules first
    imported inside (their `@jax.jit`s, later nested, then fail). A program compiled before, with
    the same function and shapes, is reused as it was compiled."""
    from jax._src import compiler

    if not os.environ.get("NETMARL_TEST_CHEAP_XLA"):
        yield
        return
    original = compiler.get_compile_options

    @functools.wraps(original)
    def with_users_options(*args, env_options_overrides=None, **kwargs):
        options = {**USERS_COMPILER_OPTIONS, **(env_options_overrides or {})}
        return original(*args, env_options_overrides=options, **kwargs)

    compiler.get_compile_options = with_users_options
    try:
        yield
    finally:
        compiler.get_compile_options = original
