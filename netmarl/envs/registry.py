"""The environment registry: one dict of families and one dict of presets, nothing else.

    make("lbf:Foraging-2s-10x10-3p-3f", rules="paper")   # family "lbf", task id, options
    make("matrix:climbing", episode_length=1)
    make("lbf-easy")                                     # a named preset (see PRESETS)
    make("boxjump:paper-16-fixed", max_timestep=1000)    # Box Jump, 2024 version, no rotation
    make("marbler:pcp", barrier=False)                   # a MARBLER robot task
"""
from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Callable

from netmarl.config import has_type, type_name
from netmarl.envs.adapters import HOST_FAMILIES
from netmarl.envs.boxjump import BoxJump
from netmarl.envs.core import Environment
from netmarl.envs.jaxmarl import make_jaxmarl
from netmarl.envs.lbf import LBF
from netmarl.envs.marbler import TASK_DESCRIPTION as _MARBLER_TASKS
from netmarl.envs.marbler import make_marbler
from netmarl.envs.matrix import GAMES, make_matrix
from netmarl.envs.smax import SMAC_MAPS, make_smax

_LBF_ID = re.compile(r"^Foraging(?:-(?P<sight>\d+)s)?-(?P<rows>\d+)x(?P<cols>\d+)-(?P<players>\d+)p-"
                     r"(?P<food>\d+)f(?P<coop>-coop)?(?P<pen>-pen)?$")
_LBF_EXAMPLE = ("Foraging[-<sight>s]-<rows>x<cols>-<players>p-<food>f[-coop][-pen], "
                "e.g. Foraging-2s-10x10-3p-3f")


def make_lbf(task: str, **options) -> LBF:
    """Parses an lbforaging task id (without the -v3 suffix) into an `LBF`; options override."""
    match = _LBF_ID.match(task)
    if match is None:
        hint = " (drop the version suffix; pick rules='v3' or 'paper')" if task.endswith("-v3") else ""
        raise ValueError(f"LBF task id {task!r} not understood{hint}; accepted: {_LBF_EXAMPLE}")
    rows = int(match["rows"])
    params = dict(rows=rows, cols=int(match["cols"]), num_players=int(match["players"]),
                  num_food=int(match["food"]), sight=int(match["sight"] or rows),
                  force_coop=bool(match["coop"]), penalty=0.1 if match["pen"] else 0.0)
    return _construct(LBF, {**params, **options})


_BOXJUMP_ID = re.compile(r"^(?P<version>paper|v0)-(?P<n>\d+)(?P<fixed>-fixed)?$")
_BOXJUMP_EXAMPLE = ("<paper|v0>-<N>[-fixed]: paper = the 2024 version behind the paper's table, "
                    "v0 = the public 2025 version, -fixed = no rotation; e.g. paper-16, v0-8, paper-16-fixed")


def make_boxjump(task: str, **options) -> BoxJump:
    """Parses a Box Jump task id `<paper|v0>-<N>[-fixed]` into a `BoxJump`; options override."""
    match = _BOXJUMP_ID.match(task)
    if match is None:
        raise ValueError(f"Box Jump task id {task!r} not understood; accepted: {_BOXJUMP_EXAMPLE}")
    params = dict(version=match["version"], num_boxes=int(match["n"]), fixed_rotation=bool(match["fixed"]))
    return _construct(BoxJump, {**params, **options})


def _make_matrix(task: str, **options) -> Environment:
    return _call(make_matrix, task, options, ("episode_length", "k"))


# family -> (constructor(task, **options), description of accepted tasks)
FAMILIES: dict[str, tuple[Callable[..., Environment], str]] = {
    "lbf": (make_lbf, _LBF_EXAMPLE),
    "matrix": (_make_matrix, ", ".join(sorted(GAMES)) + ", penalty-<k>"),
    "boxjump": (make_boxjump, _BOXJUMP_EXAMPLE),
    "marbler": (make_marbler, _MARBLER_TASKS),
    # JaxMARL through one adapter (netmarl/envs/jaxmarl.py; jaxmarl is imported on first use)
    "jaxmarl": (make_jaxmarl, "a jaxmarl.registered_envs id, e.g. MPE_simple_spread_v3"),
    "smax": (make_smax, ", ".join(SMAC_MAPS)),
}

# preset -> (environment id, default options); specs/lbf.md fixes the LBF presets.
PRESETS: dict[str, tuple[str, dict]] = {
    "lbf-easy": ("lbf:Foraging-10x10-3p-3f", {"rules": "paper"}),
    "lbf-medium": ("lbf:Foraging-2s-10x10-3p-3f", {"rules": "paper"}),
    "lbf-hard": ("lbf:Foraging-15x15-4p-3f", {"rules": "paper"}),
    "lbf-tiny": ("lbf:Foraging-5x5-2p-1f-coop", {}),
    # specs/pairvdn_boxjump.md: Table 1 uses the 2024 version with N = 16 (T = 400, rotation)
    "boxjump-paper": ("boxjump:paper-16", {}),
    "boxjump": ("boxjump:v0-16", {}),
    # specs/marbler.md: the original MARBLER configs the DVDN paper ran
    "marbler-arctic": ("marbler:arctic", {}),
    "marbler-material": ("marbler:material", {}),
    "marbler-pcp": ("marbler:pcp", {}),
    "marbler-warehouse": ("marbler:warehouse", {}),
    # particle tasks (JaxMARL's MPE); the adversarial ones train one side, the other acts at random
    "mpe-spread": ("jaxmarl:MPE_simple_spread_v3", {}),
    "mpe-speaker-listener": ("jaxmarl:MPE_simple_speaker_listener_v4", {}),
    "mpe-reference": ("jaxmarl:MPE_simple_reference_v3", {}),
    "mpe-adversary": ("jaxmarl:MPE_simple_adversary_v3", {"controlled": "agent_0,agent_1"}),
    "mpe-tag": ("jaxmarl:MPE_simple_tag_v3", {"controlled": "adversary_0,adversary_1,adversary_2"}),
}


def make(name: str, **options) -> Environment:
    """Builds an environment from a preset name or a `family:task` id; `options` override defaults."""
    if name in PRESETS:
        env_id, defaults = PRESETS[name]
        return make(env_id, **{**defaults, **options})
    family, sep, task = name.partition(":")
    if family in HOST_FAMILIES:
        raise ValueError(f"{name!r} is a host-stepped environment (Gymnasium / PettingZoo, stepped in "
                         "Python, so it cannot be jitted): `netmarl train` and `netmarl eval` run it "
                         "(netmarl.envs.adapters.make_host); everything else needs a netmarl JAX environment")
    if not sep or family not in FAMILIES:
        raise ValueError(f"unknown environment {name!r}; accepted: presets {', '.join(PRESETS)}, "
                         f"or family:task with family in {', '.join(FAMILIES)} "
                         f"(e.g. lbf:Foraging-8x8-2p-2f-coop, matrix:climbing, boxjump:paper-16)")
    constructor, _ = FAMILIES[family]
    return constructor(task, **options)


def register(family: str, constructor: Callable[..., Environment], description: str) -> None:
    """Adds an environment family; `constructor(task, **options)` must return an Environment."""
    if family in FAMILIES:
        raise ValueError(f"environment family {family!r} is already registered")
    FAMILIES[family] = (constructor, description)


def register_preset(name: str, env_id: str, **defaults) -> None:
    """Adds a named preset for an environment id with default options."""
    if name in PRESETS:
        raise ValueError(f"environment preset {name!r} is already registered")
    PRESETS[name] = (env_id, defaults)


def _construct(cls, kwargs: dict):
    names = [f.name for f in dataclasses.fields(cls)]
    return _call(cls, None, kwargs, names)


def _call(fn, task, kwargs: dict, accepted) -> Environment:
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(f"unknown environment option(s) {unknown}; accepted: {', '.join(accepted)}")
    check_option_types(fn, kwargs)
    return fn(**kwargs) if task is None else fn(task, **kwargs)


def check_option_types(owner, options: dict) -> None:
    """Refuses an option whose value does not have the type annotated on `owner` (a class or function)."""
    hints = typing.get_type_hints(owner)
    for name, value in options.items():
        if name in hints and not has_type(value, hints[name]):
            raise ValueError(f"environment option {name}={value!r} has type {type(value).__name__}; "
                             f"expected {type_name(hints[name])}")
