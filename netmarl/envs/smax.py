"""StarCraft-style micromanagement: SMAC maps on JaxMARL's SMAX, against its heuristic enemy.

    make("smax:3m")            # 3 marines a side, SMAC's time limit (60 env steps)
    make("smax:MMM2")          # medivac maps (netmarl/envs/smax_medivac.py): JaxMARL has no medivac
    make("smax:8m", attack_mode="random", max_steps=100)

Every map keeps SMAC's unit lists (smac/env/starcraft2/maps/smac_maps.py and the SMAC README) and
SMAC's time limit in env steps (`max_steps`, overridable). One SMAX env step is 8 world steps of
1/16 s (0.5 s of game time) where a SMAC step is 8 game loops (about 0.36 s at "faster" speed), so
the same step limit allows SMAX units about 40% more game time. The enemy is JaxMARL's
`HeuristicEnemySMAX` (attack the closest unit in range, else walk towards one it sees).

Team reward (SMAX's): the enemy team's health lost, as a fraction of its total, plus
`won_battle_bonus` (1) on a win; every ally gets it, so the adapter uses team_reward="mean".
The episode terminates when either side is wiped out; `TimeStep.info["won"]` is true on the step
that ends a won battle (every enemy dead, an ally alive), so the win rate of a batch of episodes is
the sum of `info["won"]` over steps divided by the episode count.
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from netmarl.envs.core import Array
from netmarl.envs.jaxmarl import JaxMARLEnv, check_options, import_jaxmarl

# SMAX's unit types (its constructor's order), and the medivac that netmarl adds after them.
UNIT_TYPES = ("marine", "marauder", "stalker", "zealot", "zergling", "hydralisk", "medivac")

# map -> (ally units, enemy units, SMAC time limit in env steps); units as (type, count) in agent order.
SMAC_MAPS: dict[str, tuple[tuple, tuple, int]] = {
    "3m": ((("marine", 3),), (("marine", 3),), 60),
    "8m": ((("marine", 8),), (("marine", 8),), 120),
    "25m": ((("marine", 25),), (("marine", 25),), 150),
    "5m_vs_6m": ((("marine", 5),), (("marine", 6),), 70),
    "8m_vs_9m": ((("marine", 8),), (("marine", 9),), 120),
    "10m_vs_11m": ((("marine", 10),), (("marine", 11),), 150),
    "27m_vs_30m": ((("marine", 27),), (("marine", 30),), 180),
    "2m_vs_1z": ((("marine", 2),), (("zealot", 1),), 150),
    "2s3z": ((("stalker", 2), ("zealot", 3)), (("stalker", 2), ("zealot", 3)), 120),
    "3s5z": ((("stalker", 3), ("zealot", 5)), (("stalker", 3), ("zealot", 5)), 150),
    "3s5z_vs_3s6z": ((("stalker", 3), ("zealot", 5)), (("stalker", 3), ("zealot", 6)), 170),
    "3s_vs_3z": ((("stalker", 3),), (("zealot", 3),), 150),
    "3s_vs_4z": ((("stalker", 3),), (("zealot", 4),), 200),
    "3s_vs_5z": ((("stalker", 3),), (("zealot", 5),), 250),
    "6h_vs_8z": ((("hydralisk", 6),), (("zealot", 8),), 150),
    "corridor": ((("zealot", 6),), (("zergling", 24),), 400),
    "MMM": ((("marauder", 2), ("marine", 7), ("medivac", 1)),
            (("marauder", 2), ("marine", 7), ("medivac", 1)), 150),
    "MMM2": ((("marauder", 2), ("marine", 7), ("medivac", 1)),
             (("marauder", 3), ("marine", 8), ("medivac", 1)), 180),
}

# SMAX/HeuristicEnemySMAX constructor options a user may set (the rest are fixed by the map).
SMAX_OPTIONS = ("max_steps", "enemy_shoots", "attack_mode", "see_enemy_actions", "won_battle_bonus",
                "walls_cause_death", "observation_type")
ATTACK_MODES = ("closest", "random")


def unit_types(map_name: str) -> tuple[int, ...]:
    """The unit type index of every unit of a map, allies first."""
    allies, enemies, _ = SMAC_MAPS[map_name]
    return tuple(UNIT_TYPES.index(kind) for kind, count in allies + enemies for _ in range(count))


def team_sizes(map_name: str) -> tuple[int, int]:
    allies, enemies, _ = SMAC_MAPS[map_name]
    return sum(c for _, c in allies), sum(c for _, c in enemies)


@dataclasses.dataclass(frozen=True)
class SMAXEnv(JaxMARLEnv):
    """A SMAC map on SMAX against the heuristic enemy (env_id is kept for the adapter's name only)."""

    env_id: str = "HeuristicEnemySMAX"
    team_reward: str = "mean"
    map_name: str = "3m"

    def build(self):
        options = {"max_steps": SMAC_MAPS[self.map_name][2], **dict(self.options)}
        scenario_cls = import_jaxmarl().environments.smax.smax_env.Scenario
        allies, enemies = team_sizes(self.map_name)
        scenario = scenario_cls(jnp.array(unit_types(self.map_name), jnp.uint8), allies, enemies,
                                False, False)
        if UNIT_TYPES.index("medivac") in unit_types(self.map_name):
            from netmarl.envs.smax_medivac import MedivacHeuristicEnemySMAX
            return MedivacHeuristicEnemySMAX(scenario=scenario, **options)
        from jaxmarl.environments.smax import HeuristicEnemySMAX
        return HeuristicEnemySMAX(scenario=scenario, **options)

    @property
    def name(self) -> str:
        return f"smax:{self.map_name}"

    def _teams_alive(self, inner) -> tuple[Array, Array]:
        alive = inner.state.unit_alive
        n = self.inner.num_allies
        return alive[:n].any(), alive[n:].any()

    def terminal(self, inner, done: Array, t: Array) -> Array:
        allies, enemies = self._teams_alive(inner)
        return ~allies | ~enemies

    def info(self, inner, terminal: Array):
        allies, enemies = self._teams_alive(inner)
        return {"won": allies & ~enemies}

    def global_state(self, obs: dict, inner, flat: dict) -> Array:
        """[S] SMAX's world state scaled as its observations are: per unit [health, x, y, cooldown,
        type one-hot] (zeros when dead), then every unit's team and type. SMAX's `get_world_state`
        gives raw positions (0-32) and the raw weapon cooldown, which falls by half a time unit every
        env step in which a unit does not fire and so grows negative without bound (-30 after a
        60-step episode); the observations, and SMAC's state, scale positions by the map size and clip
        the cooldown relative to the unit type's to [0, 1]. With the raw state QMIX's hypernetworks
        diverged on 3m (docs/results/jaxmarl_learning.md)."""
        env, smax = self.inner, inner.state
        units = smax.unit_types.shape[0]
        world = obs["world_state"].astype(jnp.float32)
        split = world.shape[0] - 2 * units  # per-unit features, then teams and types
        per_unit = world[:split].reshape(units, -1)
        alive = smax.unit_alive.astype(jnp.float32)
        xy = smax.unit_positions / jnp.array([env.map_width, env.map_height], jnp.float32)
        cooldown = jnp.clip(smax.unit_weapon_cooldowns / env.unit_type_weapon_cooldowns[smax.unit_types], 0, 1)
        scaled = jnp.concatenate([xy, cooldown[:, None]], -1) * alive[:, None]
        per_unit = per_unit.at[:, 1:4].set(scaled)
        return jnp.concatenate([per_unit.reshape(-1), world[split:]])


def make_smax(map_name: str, team_reward: str = "mean", **options) -> SMAXEnv:
    """Builds `smax:<map>`: a SMAC map (SMAC_MAPS) with SMAX options (SMAX_OPTIONS)."""
    if map_name not in SMAC_MAPS:
        raise ValueError(f"unknown SMAX map {map_name!r}; accepted: {', '.join(SMAC_MAPS)}")
    check_options(f"smax:{map_name}", options, [*SMAX_OPTIONS, "team_reward"])
    if options.get("attack_mode", "closest") not in ATTACK_MODES:
        raise ValueError(f"smax:{map_name}: attack_mode={options['attack_mode']!r} is not known; "
                         f"accepted: {', '.join(ATTACK_MODES)}")
    if "max_steps" in options and not (isinstance(options["max_steps"], int) and options["max_steps"] >= 1):
        raise ValueError(f"smax:{map_name}: max_steps={options['max_steps']!r} must be a positive integer")
    return SMAXEnv(options=tuple(sorted(options.items())), team_reward=team_reward, map_name=map_name)
