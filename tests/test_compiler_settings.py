"""The suite's compiler settings (tests/compiler.py): cheap by default, users' inside `users_compiler`."""
import os

import jax
import jax.numpy as jnp
import pytest
from jax._src import compiler

from tests.compiler import TEST_XLA_FLAGS, USERS_COMPILER_OPTIONS, users_compiler

CHEAP = bool(os.environ.get("NETMARL_TEST_CHEAP_XLA"))


@pytest.mark.skipif(not CHEAP, reason="the suite runs with users' settings (NETMARL_TEST_FULL_OPT=1)")
def test_cheap_flags_come_first_and_users_compiler_overrides_them_per_compile():
    assert os.environ["XLA_FLAGS"].startswith(TEST_XLA_FLAGS)  # XLA stops reading at a word without dashes
    assert compiler.get_compile_options(1, 1).env_option_overrides == []
    with users_compiler():
        overrides = dict(compiler.get_compile_options(1, 1).env_option_overrides)
        with_own = dict(compiler.get_compile_options(
            1, 1, env_options_overrides={"xla_backend_optimization_level": 1}).env_option_overrides)
        compiled = jax.jit(lambda x: jnp.tanh(x).sum()).lower(jnp.ones(4)).compile()  # compiles so
    assert overrides == USERS_COMPILER_OPTIONS
    assert with_own == {**USERS_COMPILER_OPTIONS, "xla_backend_optimization_level": 1}  # its own wins
    assert float(compiled(jnp.zeros(4))) == 0.0
    assert compiler.get_compile_options(1, 1).env_option_overrides == []  # restored on exit
