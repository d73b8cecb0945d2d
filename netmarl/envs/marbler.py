"""The four MARBLER robot tasks (Torbati et al. 2023) in pure JAX, with the original configs.

    make("marbler:arctic")      # ArcticTransport: 2 drones + ice robot + water robot, 60 steps
    make("marbler:material")    # MaterialTransport: 2 fast/small + 2 slow/large robots, 70 steps
    make("marbler:pcp")         # PredatorCapturePrey: 2 predators + 2 capture robots, 6 prey, 80 steps
    make("marbler:warehouse")   # Warehouse: 6 robots of two colours, individual rewards, 100 steps

Options override any field, e.g. `make("marbler:pcp", barrier=False, control_period=1)`.
Dynamics: `netmarl/envs/robotarium.py`; shared task logic: `netmarl/envs/marbler_core.py`.
"""
from __future__ import annotations

import dataclasses

from netmarl.envs.marbler_arctic import ArcticState, ArcticTransport
from netmarl.envs.marbler_core import ACTION_NAMES, LEFT, RIGHT, STAY, DOWN_Y, UP_Y, MarblerEnv
from netmarl.envs.marbler_material import MaterialState, MaterialTransport
from netmarl.envs.marbler_pcp import PCPState, PredatorCapturePrey
from netmarl.envs.marbler_warehouse import Warehouse, WarehouseState

TASKS: dict[str, type[MarblerEnv]] = {
    "arctic": ArcticTransport,
    "material": MaterialTransport,
    "pcp": PredatorCapturePrey,
    "warehouse": Warehouse,
}
TASK_DESCRIPTION = ", ".join(TASKS) + " (the original MARBLER configs; options override fields)"


def make_marbler(task: str, **options) -> MarblerEnv:
    """Builds a MARBLER task by name; options must be fields of its class."""
    if task not in TASKS:
        raise ValueError(f"MARBLER task {task!r} is not known; accepted: {', '.join(TASKS)}")
    cls = TASKS[task]
    accepted = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"unknown environment option(s) {unknown} for marbler:{task}; "
                         f"accepted: {', '.join(accepted)}")
    from netmarl.envs.registry import check_option_types  # the registry imports this module

    check_option_types(cls, options)
    env = cls(**options)
    env._check_layout()
    return env


__all__ = ["ACTION_NAMES", "LEFT", "RIGHT", "DOWN_Y", "UP_Y", "STAY", "TASKS", "MarblerEnv",
           "make_marbler", "ArcticTransport", "ArcticState", "MaterialTransport", "MaterialState",
           "PredatorCapturePrey", "PCPState", "Warehouse", "WarehouseState"]
