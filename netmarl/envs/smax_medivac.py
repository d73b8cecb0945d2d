"""The medivac JaxMARL's SMAX lacks, for SMAC's MMM and MMM2 maps: a subclass of SMAX.

Built on JaxMARL's SMAX by subclassing (not as our own module): the medivac only changes who may
target whom and adds healing after SMAX's world step, so three small overrides (`__init__`,
`_world_step`, `get_avail_actions`) keep all of SMAX's movement, combat, observations and rewards.

The medivac (unit type 6; StarCraft II Legacy of the Void stats, SMAC's maps):
- 150 health, speed 3.5, sight 11, radius 0.75; it cannot attack.
- heals 12.6 health per second a biological ally (marine, marauder, zealot, zergling, hydralisk,
  stalker count as "biological" here; medivacs do not) within heal range 4 that is damaged and
  alive; each 3 health healed cost 1 energy; energy starts at 50, regenerates 0.7875 per second,
  holds at most 200 (energy lives in the state as `unit_energy` [units]).
- its targeted actions are heals (SMAC's convention): an ally medivac's slot k heals ally k; an
  enemy medivac's slot k heals enemy unit N - 1 - k (enemies count their targets in reverse, as SMAX
  does for attacks). A medivac that stops (action 4) heals automatically (SC2's autocast): the
  damaged biological ally in range with the lowest health fraction. A moving medivac does not heal.
- it flies: marauders, zealots and zerglings (ground-only weapons) cannot target it.
- the heuristic enemy's medivac stops (and so autocasts) whenever its heuristic would attack, else
  follows the heuristic's move towards the fight.
Deviations from SC2, documented in docs/environments.md: air units still take part in SMAX's
collision push (they would not collide with ground units), and energy is not observed.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax.struct import dataclass
from jaxmarl.environments.smax import HeuristicEnemySMAX
from jaxmarl.environments.smax.heuristic_enemy import create_heuristic_policy
from jaxmarl.environments.smax.smax_env import SMAX
from jaxmarl.environments.smax.smax_env import State as SMAXState

MEDIVAC = 6
STOP = 4  # SMAX's stop action; attacks/heals start at 5
HEAL_PER_S, HEALTH_PER_ENERGY = 12.6, 3.0
ENERGY_START, ENERGY_MAX, ENERGY_REGEN_PER_S = 50.0, 200.0, 0.7875
# per unit type (marine, marauder, stalker, zealot, zergling, hydralisk, medivac)
CAN_TARGET_AIR = np.array([True, False, True, False, False, True, False])
BIOLOGICAL = np.array([True, True, True, True, True, True, False])
_MEDIVAC_STATS = dict(  # SMAX constructor argument -> the medivac's value appended to its array
    unit_type_velocities=3.5, unit_type_attacks=0.0, unit_type_attack_ranges=4.0,
    unit_type_sight_ranges=11.0, unit_type_radiuses=0.75, unit_type_health=150.0,
    unit_type_weapon_cooldowns=1.0)


@dataclass
class MedivacState(SMAXState):
    unit_energy: jax.Array  # [units] float32, medivac energy (0 for other units)


def medivac_kwargs(**kwargs) -> dict:
    """SMAX constructor arguments with the medivac appended to every per-type array."""
    defaults = {name: p.default for name, p in _smax_params().items()}
    out = dict(kwargs)
    out["unit_type_names"] = [*defaults["unit_type_names"], "medivac"]
    out["unit_type_shorthands"] = [*defaults["unit_type_shorthands"], "V"]
    for name, value in _MEDIVAC_STATS.items():
        out[name] = jnp.append(defaults[name], value)
    return out


def _smax_params():
    import inspect
    return inspect.signature(SMAX.__init__).parameters


class MedivacSMAX(SMAX):
    """SMAX with medivacs (see the module docstring)."""

    def __init__(self, **kwargs):
        super().__init__(**medivac_kwargs(**kwargs))

    def reset(self, key):
        obs, state = super().reset(key)
        fields = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}
        energy = jnp.where(state.unit_types == MEDIVAC, ENERGY_START, 0.0)
        return obs, MedivacState(**fields, unit_energy=energy)

    def slot_targets(self, heal: bool) -> tuple[jax.Array, jax.Array]:
        """[units, slots] target unit of each targeted action slot, and whether the slot exists."""
        n, na = self.num_agents, self.num_allies
        k = jnp.arange(max(self.num_allies, self.num_enemies))[None, :]
        ally = jnp.arange(n)[:, None] < na
        if heal:
            target = jnp.where(ally, k, n - 1 - k)
            exists = jnp.where(ally, k < na, k < self.num_enemies)
        else:
            target = jnp.where(ally, na + k, na - 1 - k)
            exists = jnp.where(ally, k < self.num_enemies, k < na)
        return jnp.clip(target, 0, n - 1), exists

    def _world_step(self, key, state, actions):
        movement, attack = actions
        slot = jnp.clip(attack - 5, 0)
        target, _ = self.slot_targets(heal=False)
        target = target[jnp.arange(self.num_agents), slot]
        medivac = state.unit_types == MEDIVAC
        air_target = state.unit_types[target] == MEDIVAC
        blocked = medivac | (air_target & ~jnp.asarray(CAN_TARGET_AIR)[state.unit_types])
        new = super()._world_step(key, state, (movement, jnp.where(blocked & (attack >= 5), 0, attack)))
        return self._heal(state, new, movement, attack)

    def _heal(self, before, state, movement, attack):
        """Applies one world step of medivac healing to `state` (targets chosen on `before`)."""
        dt = self.time_per_step
        medivac = (before.unit_types == MEDIVAC) & before.unit_alive
        health_max = self.unit_type_health[before.unit_types]
        team = before.unit_teams
        dist = jnp.linalg.norm(before.unit_positions[:, None] - before.unit_positions[None], axis=-1)
        healable = (before.unit_alive & jnp.asarray(BIOLOGICAL)[before.unit_types]
                    & (state.unit_health < health_max) & (state.unit_health > 0))[None, :]
        can = (healable & (team[:, None] == team[None, :]) & ~jnp.eye(self.num_agents, dtype=bool)
               & (dist < self.unit_type_attack_ranges[MEDIVAC]))  # [healer, target]
        slot_target, exists = self.slot_targets(heal=True)
        idx = jnp.arange(self.num_agents)
        chosen = slot_target[idx, jnp.clip(attack - 5, 0)]
        explicit = (attack >= 5) & exists[idx, jnp.clip(attack - 5, 0)] & can[idx, chosen]
        fraction = jnp.where(can, (state.unit_health / health_max)[None, :], jnp.inf)
        auto = jnp.argmin(fraction, axis=1)
        idle = (attack < 5) & jnp.all(movement == 0, axis=-1) & can[idx, auto]
        target = jnp.where(explicit, chosen, auto)
        amount = jnp.where(medivac & (explicit | idle), HEAL_PER_S * dt, 0.0)
        amount = jnp.minimum(amount, before.unit_energy * HEALTH_PER_ENERGY)
        healed = jnp.zeros(self.num_agents).at[target].add(amount)
        health = jnp.minimum(state.unit_health + healed, health_max)
        energy = before.unit_energy - amount / HEALTH_PER_ENERGY + jnp.where(
            before.unit_types == MEDIVAC, ENERGY_REGEN_PER_S * dt, 0.0)
        return state.replace(unit_health=jnp.where(state.unit_health > 0, health, 0.0),
                             unit_energy=jnp.clip(energy, 0.0, ENERGY_MAX))

    def get_avail_actions(self, state):
        masks = super().get_avail_actions(state)
        rows = jnp.stack([jnp.pad(masks[a], (0, max(self.num_allies, self.num_enemies) + 5 - masks[a].shape[0]))
                          for a in self.agents]).astype(bool)
        alive = state.unit_alive
        health_max = self.unit_type_health[state.unit_types]
        heal_t, heal_ok = self.slot_targets(heal=True)
        dist = jnp.linalg.norm(state.unit_positions[:, None] - state.unit_positions[heal_t], axis=-1)
        heal = (heal_ok & alive[heal_t] & jnp.asarray(BIOLOGICAL)[state.unit_types[heal_t]]
                & (state.unit_health[heal_t] < health_max[heal_t]) & (heal_t != jnp.arange(self.num_agents)[:, None])
                & (dist < self.unit_type_attack_ranges[MEDIVAC]) & alive[:, None]
                & (state.unit_energy[:, None] > 0))
        atk_t, _ = self.slot_targets(heal=False)
        air_ok = ~(state.unit_types[atk_t] == MEDIVAC) | jnp.asarray(CAN_TARGET_AIR)[state.unit_types][:, None]
        medivac = (state.unit_types == MEDIVAC)[:, None]
        targeted = jnp.where(medivac, heal, rows[:, 5:] & air_ok)
        rows = rows.at[:, 5:].set(targeted)
        return {a: rows[i, :masks[a].shape[0]].astype(jnp.uint8) for i, a in enumerate(self.agents)}


class MedivacHeuristicEnemySMAX(HeuristicEnemySMAX):
    """JaxMARL's heuristic-enemy SMAX on `MedivacSMAX`; the enemy medivac stops (autocast heals)
    where the heuristic would attack."""

    def __init__(self, enemy_shoots: bool = True, attack_mode: str = "closest", **env_kwargs):
        super().__init__(enemy_shoots=enemy_shoots, attack_mode=attack_mode, **medivac_kwargs(**env_kwargs))
        self._env = MedivacSMAX(**env_kwargs)
        self.heuristic_policy = create_heuristic_policy(self._env, 1, shoot=enemy_shoots,
                                                        attack_mode=attack_mode)
        types = np.asarray(self._env.scenario)[self.num_allies:]
        self._enemy_medivac = types == MEDIVAC  # [enemies], static

    def get_enemy_actions(self, key, policy_state, enemy_obs):
        actions, policy_state = super().get_enemy_actions(key, policy_state, enemy_obs)
        for i, agent in enumerate(self.enemy_agents):
            if self._enemy_medivac[i]:
                actions[agent] = jnp.where(actions[agent] >= 5, STOP, actions[agent])
        return actions, policy_state
