"""An episode replay buffer held in the train state (a ring of whole, padded episodes).

Episodes have a fixed length T = env.max_steps; steps after the end are padded and masked out by
`filled`. Whole episodes let recurrent agents unroll from the first step (EPyMARL's episode buffer).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class Episode(NamedTuple):
    """One padded episode (or a batch of them, with leading axes)."""

    obs: Array  # [T+1, N, O] observations; obs[t+1] is the true next observation of step t
    state: Array  # [T+1, S] global states
    avail: Array  # [T+1, N, A] bool, available actions
    action: Array  # [T, N] int32
    reward: Array  # [T, N] per-agent reward shares
    terminated: Array  # [T] bool, step t ended the episode in a terminal state (no bootstrap)
    filled: Array  # [T] bool, step t belongs to the episode (False after it ended)
    graph: Array | None = None  # [T+1, N, N] bool, the communication graph of each step's
    #   observation (agents that communicate, e.g. DG-MAPPO; None otherwise)


class ReplayState(NamedTuple):
    data: Episode  # leaves [C, ...], C = capacity in episodes
    insert: Array  # [] int32, next slot to write
    size: Array  # [] int32, episodes stored (<= C)


def init_replay(example: Episode, capacity: int) -> ReplayState:
    """An empty buffer of `capacity` episodes shaped like `example` (one unbatched episode)."""
    data = jax.tree.map(lambda x: jnp.zeros((capacity, *x.shape), x.dtype), example)
    return ReplayState(data, jnp.int32(0), jnp.int32(0))


def add_episodes(replay: ReplayState, episodes: Episode, active: Array = True) -> ReplayState:
    """Writes a batch of E episodes (leaves [E, ...]) at the insertion point.

    The capacity is a multiple of E, so the block never wraps and is written with one in-place
    `dynamic_update_slice`. With `active` False the buffer is unchanged (old contents re-written).
    """
    data = jax.tree.map(lambda buf, x: _write(buf, x[None], (0, replay.insert), active),
                        jax.tree.map(lambda b: b[None], replay.data), episodes)
    return ReplayState(jax.tree.map(lambda b: b[0], data), *_advance(replay, episodes, active))


def add_episodes_seeds(replay: ReplayState, episodes: Episode, active: Array) -> ReplayState:
    """`add_episodes` for S seeds at once (leaves [S, ...], active [S]), one in-place write per seed.

    Used instead of vmapping `add_episodes`: XLA lowers the vmapped write to a scatter that rewrites
    the whole buffer on every iteration."""
    data = replay.data
    for s in range(active.shape[0]):
        data = jax.tree.map(lambda buf, x: _write(buf, x[s][None], (s, replay.insert[s]), active[s]),
                            data, episodes)
    return ReplayState(data, *jax.vmap(_advance)(replay, episodes, active))


def _write(buf: Array, block: Array, start: tuple, active: Array) -> Array:
    """Writes `block` [1, E, ...] into `buf` [S, C, ...] at (seed, slot), or re-writes the old block."""
    index = (*start, *[0] * (buf.ndim - 2))
    old = jax.lax.dynamic_slice(buf, index, block.shape)
    return jax.lax.dynamic_update_slice(buf, jnp.where(active, block.astype(buf.dtype), old), index)


def _advance(replay: ReplayState, episodes: Episode, active: Array) -> tuple[Array, Array]:
    """New (insert, size) after adding E episodes (unchanged when inactive)."""
    capacity = replay.data.filled.shape[0]
    num = jnp.where(active, episodes.filled.shape[0], 0)
    return (replay.insert + num) % capacity, jnp.minimum(replay.size + num, capacity)


def sample_episodes(replay: ReplayState, key: Array, batch_size: int) -> Episode:
    """`batch_size` distinct stored episodes, uniformly (requires size >= batch_size)."""
    capacity = replay.data.filled.shape[0]
    stored = jnp.arange(capacity) < replay.size
    idx = jax.random.choice(key, capacity, (batch_size,), replace=False, p=stored / replay.size)
    return jax.tree.map(lambda x: x[idx], replay.data)


def _transitions(data: Episode, episode: Array, t: Array) -> Episode:
    """Single transitions as length-1 episodes: leaves [B, 2, ...] (obs-like) or [B, 1, ...]."""
    two = lambda x: jnp.stack([x[episode, t], x[episode, t + 1]], 1)  # noqa: E731
    one = lambda x: x[episode, t][:, None]  # noqa: E731
    return Episode(obs=two(data.obs), state=two(data.state), avail=two(data.avail),
                   action=one(data.action), reward=one(data.reward),
                   terminated=one(data.terminated), filled=one(data.filled))


def stored_transitions(replay: ReplayState) -> Array:
    """[C, T] bool: the filled steps of the stored episodes."""
    stored = jnp.arange(replay.data.filled.shape[0]) < replay.size
    return replay.data.filled & stored[:, None]


def sample_transitions(replay: ReplayState, key: Array, batch_size: int) -> Episode:
    """`batch_size` distinct stored transitions, uniformly (i.i.d. replay; the "clean" protocol).

    Returns length-1 episodes (leaves [B, 2 or 1, ...]) that the learner's loss takes as they are."""
    valid = stored_transitions(replay).ravel()
    flat = jax.random.choice(key, valid.size, (batch_size,), replace=False, p=valid / valid.sum())
    steps = replay.data.filled.shape[1]
    return _transitions(replay.data, flat // steps, flat % steps)


def shuffled_pass(replay: ReplayState, key: Array, batch_size: int) -> tuple[Array, Array]:
    """One pass over the stored transitions in a random order (the PairVDN paper's epoch).

    Returns (order [C*T] flat indices, stored ones first in random order; the number of whole
    minibatches, the final partial batch being dropped)."""
    valid = stored_transitions(replay).ravel()
    order = jnp.argsort(jnp.where(valid, jax.random.uniform(key, valid.shape), 2.0))
    return order, valid.sum() // batch_size


def transitions_at(replay: ReplayState, flat: Array) -> Episode:
    """The transitions at flat indices [B] of the [C, T] grid (see `shuffled_pass`)."""
    steps = replay.data.filled.shape[1]
    return _transitions(replay.data, flat // steps, flat % steps)
