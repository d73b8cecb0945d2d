"""netmarl environments: a pure-JAX protocol, a registry, and host adapters."""
from netmarl.envs.core import (AutoResetStep, Box, Discrete, Environment, TimeStep, make_timestep,
                               select_tree, step_autoreset)
from netmarl.envs.lbf import LBF, LBFState
from netmarl.envs.matrix import GAMES, MatrixGame, MatrixState, make_matrix
from netmarl.envs.registry import FAMILIES, PRESETS, make, register, register_preset

__all__ = [
    "AutoResetStep", "Box", "Discrete", "Environment", "TimeStep", "make_timestep", "select_tree",
    "step_autoreset", "LBF", "LBFState", "GAMES", "MatrixGame", "MatrixState", "make_matrix",
    "FAMILIES", "PRESETS", "make", "register", "register_preset",
]
