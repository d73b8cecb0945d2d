"""The axis the runner vmaps seeds over (run.seed_mode=vmap), named so that a learner can agree
with the other seeds on a static choice: under vmap, control flow whose branch depends on a per-seed
value runs every branch and selects (`jax.lax.switch` becomes `select_n`); a value reduced over the
seed axis is the same for every seed, so its `switch` stays one branch."""
from __future__ import annotations

import jax

SEED_AXIS = "seeds"


def max_over_seeds(x: jax.Array) -> jax.Array:
    """x's maximum over the seeds when traced inside the runner's seed vmap; x itself otherwise (one
    seed: run.seed_mode=loop, or a learner function called directly)."""
    try:
        return jax.lax.pmax(x, SEED_AXIS)
    except NameError:  # the axis is not bound here
        return x
