"""Communication graphs: base topologies, Metropolis weights and time-varying graph schedules.

specs/dvdn.md ("Consensus weights and graphs"). A base topology is a bool adjacency A [N, N]
(symmetric, zero diagonal). Each consensus round k a `GraphSchedule` realises a subgraph G(k) of the
base graph, as a pure function of (key, k), and its Metropolis weights

    α_ij = 1 / (1 + max(d_i, d_j))   for an edge (i, j) of G(k), with degrees d,
    α_ii = 1 − Σ_{j≠i} α_ij,         α_ij = 0 otherwise.

W = [α_ij] [N, N] is symmetric and doubly stochastic (consensus keeps the mean exactly). A round's
graph depends only on (key, round): every agent (and MPI rank) draws the same graph with no messages,
and a resumed run redraws bit-identical graphs.
    schedule = make_schedule("ring", 8, p_drop=0.5, connected=True)
    adj, W = schedule.sample(jax.random.key(0), 3)        # [8, 8] bool, [8, 8] float32
    Ws = schedule.sample_rounds(jax.random.key(0), 3, 5)  # [5, 8, 8]: training step 3, K = 5
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
MODES = ("dropout", "edges")


# ----------------------------------------------------------------------------- base topologies
def _from_pairs(num_agents: int, pairs: list[tuple[int, int]]) -> Array:
    """Symmetric bool adjacency [N, N] with the undirected edges `pairs`."""
    adj = np.zeros((num_agents, num_agents), bool)
    for i, j in pairs:
        if i != j:
            adj[i, j] = adj[j, i] = True
    return jnp.asarray(adj)


def complete(num_agents: int, key: Array | None = None) -> Array:
    """Every pair linked: A = 11ᵀ − I [N, N]."""
    return ~jnp.eye(num_agents, dtype=bool)


def ring(num_agents: int, key: Array | None = None) -> Array:
    """Cycle 0-1-…-(N−1)-0 [N, N] (N = 2: a single link; N = 1: no link)."""
    return _from_pairs(num_agents, [(i, (i + 1) % num_agents) for i in range(num_agents)])


def line(num_agents: int, key: Array | None = None) -> Array:
    """Path 0-1-…-(N−1) [N, N]."""
    return _from_pairs(num_agents, [(i, i + 1) for i in range(num_agents - 1)])


def star(num_agents: int, key: Array | None = None, center: int = 0) -> Array:
    """Hub `center` linked to every other agent [N, N]."""
    return _from_pairs(num_agents, [(center, j) for j in range(num_agents)])


def grid(num_agents: int, key: Array | None = None, rows: int | None = None) -> Array:
    """2-D lattice rows × cols = N [N, N], agent i at (i // cols, i % cols), 4-neighbourhood.

    By default rows is the largest divisor of N not above √N (near-square; a prime N gives a line).
    """
    rows = rows or max(d for d in range(1, math.isqrt(num_agents) + 1) if num_agents % d == 0)
    if num_agents % rows:
        raise ValueError(f"grid: rows={rows} does not divide num_agents={num_agents}")
    cols = num_agents // rows
    pairs = [(i, i + 1) for i in range(num_agents) if (i + 1) % cols]
    pairs += [(i, i + cols) for i in range(num_agents - cols)]
    return _from_pairs(num_agents, pairs)


def _require_key(key: Array | None, name: str) -> Array:
    if key is None:
        raise ValueError(f"topology {name!r} is random: pass a PRNG key")
    return key


def random_geometric(num_agents: int, key: Array | None = None, radius: float = 0.5) -> Array:
    """Points x_i ~ U([0, 1]²) drawn from `key`; link i-j iff ‖x_i − x_j‖ ≤ radius. [N, N]."""
    points = jax.random.uniform(_require_key(key, "random_geometric"), (num_agents, 2))
    dist = jnp.linalg.norm(points[:, None] - points[None], axis=-1)
    return (dist <= radius) & ~jnp.eye(num_agents, dtype=bool)


def erdos_renyi(num_agents: int, key: Array | None = None, prob: float = 0.5) -> Array:
    """G(N, q): each pair linked independently with probability q = `prob`, from `key`. [N, N]."""
    coin = jax.random.bernoulli(_require_key(key, "erdos_renyi"), prob, (num_agents, num_agents))
    upper = jnp.triu(coin, 1)
    return upper | upper.T


def validate_adjacency(adjacency) -> Array:
    """Checks a user adjacency (square, symmetric, zero diagonal) and returns it as bool [N, N]."""
    adj = np.asarray(adjacency)
    if adj.ndim != 2 or adj.shape[0] != adj.shape[1]:
        raise ValueError(f"adjacency must be square [N, N], got shape {adj.shape}")
    if not np.isin(adj, (0, 1)).all():
        raise ValueError("adjacency entries must be 0/1 or bool")
    adj = adj.astype(bool)
    if adj.diagonal().any():
        raise ValueError("adjacency must have a zero diagonal (no self loops)")
    if (adj != adj.T).any():
        raise ValueError("adjacency must be symmetric (undirected links)")
    return jnp.asarray(adj)


def user(num_agents: int, key: Array | None = None, adjacency=None) -> Array:
    """A user-given adjacency [N, N], validated (square, symmetric, zero diagonal, N agents)."""
    if adjacency is None:
        raise ValueError("topology 'user' needs adjacency=[[...], ...]")
    adj = validate_adjacency(adjacency)
    if adj.shape[0] != num_agents:
        raise ValueError(f"user adjacency is {adj.shape[0]}x{adj.shape[0]} but num_agents={num_agents}")
    return adj


# name -> constructor(num_agents, key=None, **options) -> bool adjacency [N, N]; the key is used
# by the random topologies only.
TOPOLOGIES: dict[str, Callable[..., Array]] = {
    fn.__name__: fn for fn in (complete, ring, line, star, grid, random_geometric, erdos_renyi, user)}


def build_topology(name: str, num_agents: int, key: Array | None = None, **options) -> Array:
    """Looks `name` up in TOPOLOGIES and builds its adjacency [N, N]; unknown names raise."""
    if name not in TOPOLOGIES:
        raise ValueError(f"unknown topology {name!r}; accepted: {', '.join(TOPOLOGIES)}")
    return TOPOLOGIES[name](num_agents, key=key, **options)


# ----------------------------------------------------------------------------- diagnostics, weights
def mean_degree(adj: Array) -> Array:
    """Average number of neighbours, Σ_ij A_ij / N. adj [..., N, N] bool -> [...] float32."""
    return jnp.sum(adj, axis=(-2, -1), dtype=jnp.float32) / adj.shape[-1]


def is_connected(adj: Array) -> Array:
    """Whether the undirected graph is connected. adj [..., N, N] bool -> [...] bool. Jittable.

    Reachability R = (I + A)^(2^s) by s = ⌈log2(N − 1)⌉ boolean squarings (paths of length
    ≤ N − 1 suffice); connected iff agent 0 reaches everyone.
    """
    n = adj.shape[-1]
    reach = (adj | jnp.eye(n, dtype=bool)).astype(jnp.float32)
    for _ in range(math.ceil(math.log2(max(n - 1, 1)))):
        reach = (reach @ reach > 0).astype(jnp.float32)
    return jnp.all(reach[..., 0, :] > 0, axis=-1)


def metropolis_weights(adj: Array) -> Array:
    """Metropolis weights of an undirected graph. adj [N, N] bool -> W [N, N] float32.

    α_ij = 1 / (1 + max(d_i, d_j)) on edges, α_ii = 1 − Σ_{j≠i} α_ij, 0 elsewhere (d = degrees).
    """
    adj = jnp.asarray(adj, bool)
    assert adj.ndim == 2 and adj.shape[0] == adj.shape[1], f"adjacency must be [N, N], got {adj.shape}"
    deg = adj.sum(-1).astype(jnp.float32)
    off = jnp.where(adj, 1.0 / (1.0 + jnp.maximum(deg[:, None], deg[None, :])), 0.0)
    return off + jnp.diag(1.0 - off.sum(-1))


def degree_weights(adj: Array) -> Array:
    """Uniform weights over each closed neighbourhood (DG-MAPPO's eq. 10, N^i including i):
    c(i, j) = 1 / (1 + d_i) for j ∈ N^i ∪ {i}, 0 elsewhere. adj [N, N] bool -> C [N, N] float32.

    Row-stochastic but not doubly stochastic: averaging keeps the degree-weighted mean
    Σ_i (1 + d_i) x_i / Σ_i (1 + d_i), which is the plain mean only on regular graphs (ring, complete).
    """
    adj = jnp.asarray(adj, bool)
    closed = (adj | jnp.eye(adj.shape[-1], dtype=bool)).astype(jnp.float32)
    return closed / closed.sum(-1, keepdims=True)


# ----------------------------------------------------------------------------- time-varying graphs
def _edge_list(adj: np.ndarray) -> np.ndarray:
    """Undirected edges (i < j) of a base adjacency, [M, 2] int (static, host side)."""
    return np.argwhere(np.triu(adj, 1)).reshape(-1, 2)


@dataclasses.dataclass(frozen=True)
class GraphSchedule:
    """Random subgraphs of a base graph, one per consensus round, as a pure function of (key, round).

    Hashable (usable as a static jit argument). Per round k, with k' = fold_in(key, k):
    - mode "dropout": every base link is kept independently with probability 1 − p_drop
      (one draw per undirected edge, so the graph stays symmetric);
    - mode "edges": a uniformly random set of exactly `num_edges` = E of the base links (p_drop unused).
    With `connected=True`, attempt a = 0, 1, … draws from fold_in(k', a) until the graph is
    connected (`lax.while_loop`); after `max_attempts` failures the round falls back to the (connected)
    base graph. That only happens when a connected draw is extremely unlikely (p_drop near 1): the
    fallback keeps the function total and jittable instead of looping forever.

    Fields: adjacency (base [N, N]; any 0/1 array-like, stored as a tuple of N tuples of bools),
    p_drop ∈ [0, 1), connected, mode, num_edges (E, mode "edges" only), max_attempts.
    """

    adjacency: tuple[tuple[bool, ...], ...]
    p_drop: float = 0.5
    connected: bool = True
    mode: str = "dropout"
    num_edges: int | None = None
    max_attempts: int = 1000

    def __post_init__(self):
        base = np.asarray(validate_adjacency(self.adjacency))
        object.__setattr__(self, "adjacency", tuple(tuple(bool(v) for v in row) for row in base))
        if not 0.0 <= self.p_drop < 1.0:
            raise ValueError(f"p_drop must be in [0, 1), got {self.p_drop}")
        if self.mode not in MODES:
            raise ValueError(f"unknown graph mode {self.mode!r}; accepted: {', '.join(MODES)}")
        if self.connected and not bool(is_connected(base)):
            raise ValueError("connected=True needs a connected base graph; this base graph is "
                             "disconnected (use connected=False or another topology)")
        self._check_num_edges(len(_edge_list(base)))

    def _check_num_edges(self, num_base_edges: int) -> None:
        if self.mode == "dropout":
            if self.num_edges is not None:
                raise ValueError("num_edges is only used with mode='edges'")
            return
        if self.num_edges is None or not 0 <= self.num_edges <= num_base_edges:
            raise ValueError(f"mode='edges' needs 0 <= num_edges <= {num_base_edges} (the base graph's "
                             f"edges), got num_edges={self.num_edges}")
        if self.connected and self.num_edges < self.num_agents - 1:
            raise ValueError(f"connected=True needs num_edges >= N - 1 = {self.num_agents - 1}, "
                             f"got {self.num_edges}")

    @property
    def num_agents(self) -> int:
        return len(self.adjacency)

    @property
    def base(self) -> np.ndarray:
        """Base adjacency [N, N] bool, a host array (static under jit)."""
        return np.array(self.adjacency, dtype=bool).reshape(self.num_agents, self.num_agents)

    @property
    def num_base_edges(self) -> int:
        """Number M of undirected links of the base graph."""
        return len(_edge_list(self.base))

    def _draw(self, key: Array) -> Array:
        """One candidate graph [N, N] bool (no connectivity check)."""
        edges = _edge_list(self.base)
        if self.mode == "dropout":
            keep = jax.random.uniform(key, (len(edges),)) >= self.p_drop
        else:
            _, chosen = jax.lax.top_k(jax.random.uniform(key, (len(edges),)), self.num_edges)
            keep = jnp.zeros(len(edges), bool).at[chosen].set(True)  # a uniform E-subset
        n = self.num_agents
        adj = jnp.zeros((n, n), bool).at[edges[:, 0], edges[:, 1]].set(keep)
        return adj | adj.T

    def _draw_connected(self, key: Array) -> Array:
        """First connected draw among attempts 0 … max_attempts − 1, else the base graph."""
        def cond(carry):
            attempt, adj = carry
            return ~is_connected(adj) & (attempt < self.max_attempts)

        def body(carry):
            attempt, _ = carry
            return attempt + 1, self._draw(jax.random.fold_in(key, attempt))

        _, adj = jax.lax.while_loop(cond, body, (jnp.int32(1), self._draw(jax.random.fold_in(key, 0))))
        return jnp.where(is_connected(adj), adj, self.base)

    def sample_graph(self, key: Array, round: Array | int) -> Array:
        """The realised graph of consensus round `round`: adjacency [N, N] bool."""
        if self.num_base_edges == 0:
            return jnp.asarray(self.base)
        key = jax.random.fold_in(key, round)
        if self.connected:
            return self._draw_connected(key)
        return self._draw(jax.random.fold_in(key, 0))

    def sample(self, key: Array, round: Array | int) -> tuple[Array, Array]:
        """Graph and weights of consensus round `round`: (adj [N, N] bool, W [N, N] float32).

        Pure in (key, round): jittable, vmappable over keys and rounds.
        """
        adj = self.sample_graph(key, round)
        return adj, metropolis_weights(adj)

    def sample_rounds(self, key: Array, step: Array | int, num_rounds: int) -> Array:
        """Weights of the K = `num_rounds` consensus rounds of training step `step`: Ws [K, N, N].

        Round k of step t is consensus round t·K + k, so consecutive steps get fresh graphs and
        Ws[k] = sample(key, t·K + k)[1].
        """
        rounds = step * num_rounds + jnp.arange(num_rounds)
        return jax.vmap(lambda r: self.sample(key, r)[1])(rounds)


def make_schedule(topology: str, num_agents: int, p_drop: float = 0.5, connected: bool = True,
                  mode: str = "dropout", num_edges: int | None = None, key_seed: int = 0,
                  **topology_options) -> GraphSchedule:
    """Builds a GraphSchedule on a registered base topology.

    `key_seed` seeds the random base topologies (random_geometric, erdos_renyi) only; the rounds'
    graphs come from the key given to `sample`. `topology_options` go to the constructor
    (radius, prob, rows, center, adjacency).
    """
    base = build_topology(topology, num_agents, key=jax.random.key(key_seed), **topology_options)
    return GraphSchedule(np.asarray(base), p_drop, connected, mode, num_edges)
