import netmarl._threefry  # noqa: F401  (threefry's faster CPU lowering, before anything compiles)
