"""netmarl/_xla_cache.py: JAX's persistent compilation cache is on by default, where documented, and
a second process running the same program loads it from the cache and computes the same values."""
import os
import subprocess
import sys
from pathlib import Path

from netmarl._xla_cache import cache_dir

PROGRAM = """
import jax, jax.numpy as jnp
from jax import monitoring
hits = []
monitoring.register_event_listener(lambda name, **_: hits.append(name) if name.endswith("cache_hits") else None)
import netmarl.envs  # netmarl's JAX settings
f = jax.jit(lambda x: jnp.sin(x) @ x.T)
print(float(f(jnp.ones((3, 3))).sum()), len(hits), jax.config.jax_compilation_cache_dir)
"""


def _run(tmp_path, **env):
    environ = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    environ.update(JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", **env)
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=environ, capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout.split()
    return float(out[0]), int(out[1]), out[2]


def test_cache_dir_default_path_off_and_the_callers_choice():
    assert cache_dir({"XDG_CACHE_HOME": "/x"}) == "/x/netmarl/jax"
    assert cache_dir({}) == str(Path.home() / ".cache" / "netmarl" / "jax")
    assert cache_dir({"NETMARL_COMPILATION_CACHE": "/y/c"}) == "/y/c"
    assert cache_dir({"NETMARL_COMPILATION_CACHE": "off"}) is None
    assert cache_dir({"NETMARL_COMPILATION_CACHE": "/y/c"}, chosen_by_caller="/theirs") == "/theirs"


def test_second_process_loads_the_program_from_the_cache(tmp_path):
    """Default on: the first process writes the cache, the second hits it and computes the same."""
    cache = tmp_path / "cache"
    value, hits, used = _run(tmp_path, NETMARL_COMPILATION_CACHE=str(cache))
    assert used == str(cache) and hits == 0 and any(cache.iterdir())
    again, hits, _ = _run(tmp_path, NETMARL_COMPILATION_CACHE=str(cache))
    assert again == value and hits >= 1
