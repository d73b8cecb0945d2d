"""JAX settings netmarl makes before anything compiles; every subpackage imports this module first
(`import netmarl` alone stays free of JAX, for the CLI's start-up):

- threefry's straight-line lowering on CPU (netmarl/_threefry.py; `NETMARL_THREEFRY=jax` opts out);
- JAX's persistent compilation cache (netmarl/_xla_cache.py; `NETMARL_COMPILATION_CACHE=off` opts out).
"""
import netmarl._threefry  # noqa: F401
import netmarl._xla_cache  # noqa: F401
