"""netmarl/_threefry.py: the straight-line threefry lowering on CPU gives JAX's random bits exactly."""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

import netmarl.envs  # noqa: F401  (registers the lowering)
from netmarl._threefry import STRAIGHT_LINE

DRAWS = """
import json, sys, jax, jax.numpy as jnp
key = jax.random.key(7)
a, b = jax.random.split(key)
out = {"bits": jax.random.bits(a, (64,)).tolist(), "normal": jax.random.normal(b, (3, 5)).tolist(),
       "perm": jax.random.permutation(jax.random.fold_in(key, 3), 20).tolist(),
       "hlo_while": " while(" in jax.jit(lambda k: jax.random.bits(k, (4,))).lower(key).compile().as_text()}
json.dump(out, sys.stdout)
"""


def _draws(extra_env: dict, prelude: str = "") -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", **extra_env}
    out = subprocess.run([sys.executable, "-c", prelude + DRAWS], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def test_random123_known_answer():
    """Threefry-2x32 with 20 rounds on the published test vector of Salmon et al.'s Random123
    (kat_vectors: key 0x13198a2e 0x03707344, counter 0x243f6a88 0x85a308d3)."""
    from jax._src.random.threefry2x32 import threefry_2x32
    key = jnp.array([0x13198A2E, 0x03707344], jnp.uint32)
    count = jnp.array([0x243F6A88, 0x85A308D3], jnp.uint32)
    assert STRAIGHT_LINE
    for fn in (threefry_2x32, jax.jit(threefry_2x32)):
        assert [hex(int(x)) for x in fn(key, count)] == ["0xc4923a9c", "0x483df7a0"]


def test_straight_line_lowering_draws_jaxs_bits_without_loops():
    """The same bits, normals and permutation as JAX's own (rolled) CPU lowering, and no while loop in
    the compiled program; `NETMARL_THREEFRY=jax` keeps JAX's lowering."""
    ours = _draws({}, "import netmarl.envs\n")
    jaxs = _draws({"NETMARL_THREEFRY": "jax"}, "import netmarl.envs\n")
    assert not ours["hlo_while"] and jaxs["hlo_while"]
    assert ours["bits"] == jaxs["bits"] and ours["perm"] == jaxs["perm"]
    np.testing.assert_array_equal(np.asarray(ours["normal"]), np.asarray(jaxs["normal"]))
