"""netmarl environments: a pure-JAX protocol, a registry, host adapters, and adapters for other
libraries (`to_pettingzoo`, `to_vector`: netmarl/envs/interop.py, imported on first use so that
`import netmarl.envs` does not import pettingzoo or gymnasium)."""
import netmarl._jax_setup  # noqa: F401  (netmarl's JAX settings, before anything compiles)
from netmarl.envs.core import (AutoResetStep, Box, Discrete, Environment, TimeStep, make_timestep,
                               select_tree, step_autoreset)
from netmarl.envs.lbf import LBF, LBFState
from netmarl.envs.matrix import GAMES, MatrixGame, MatrixState, make_matrix
from netmarl.envs.registry import FAMILIES, PRESETS, make, register, register_preset

_INTEROP = ("to_pettingzoo", "to_vector", "PettingZooEnv", "VectorEnv")

__all__ = [
    "AutoResetStep", "Box", "Discrete", "Environment", "TimeStep", "make_timestep", "select_tree",
    "step_autoreset", "LBF", "LBFState", "GAMES", "MatrixGame", "MatrixState", "make_matrix",
    "FAMILIES", "PRESETS", "make", "register", "register_preset", *_INTEROP,
]


def __getattr__(name: str):
    """`to_pettingzoo`, `to_vector` and their classes, from netmarl.envs.interop on first use."""
    if name in _INTEROP:
        from netmarl.envs import interop
        return getattr(interop, name)
    raise AttributeError(f"module 'netmarl.envs' has no attribute {name!r}")
