import netmarl._jax_setup  # noqa: F401  (netmarl's JAX settings, before anything compiles)
