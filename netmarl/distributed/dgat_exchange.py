"""Agent i's side of distributed graph attention (D-GAT) on MPI: hop messages and its own row.

One D-GAT hop (netmarl/nets/dgat.py, eqs. 7–8) for agent i needs its neighbours' features h^j of
the previous hop, at every row m (an environment when acting, a (episode, step) pair when learning),
each row with its own graph. `HopExchange.exchange` sends h^i[m] to the agents j linked to i in row
m's graph (packed: one message per neighbour per hop, holding the rows where the link is up) and
receives theirs; the graph is drawn from keys every agent holds, so both ends of a link know which
rows to expect without any extra message. `hop_rows` is the simulator's hop arithmetic (`dgat.hop`)
on agent i's row only: views [M, N, D] hold its own h^i at column i and the received h^j elsewhere
(zero off the graph, where the attention weight is exactly 0).

Messages go through a duplicate of the agents' communicator, so their tags never meet those of
the ψ averaging (MPICommunicator) on the same ranks.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from netmarl.comm.mpi import mpi, wait_all
from netmarl.nets.dgat import ACTIVATIONS

Array = jax.Array


class HopExchange:
    """Neighbour messages of D-GAT features for agent `index` (its rank in `comm`, agents-only).

    `floats`: floats sent so far, by purpose ("act", "eval", "learn"; set `purpose` before use)."""

    def __init__(self, comm, index: int, num_agents: int, timeout: float):
        self.comm = comm.Dup()
        self.comm.Set_errhandler(mpi().ERRORS_RETURN)
        self.index, self.num_agents, self.timeout = index, num_agents, timeout
        self.count, self.purpose = 0, "act"
        self.floats = {"act": 0, "eval": 0, "learn": 0}

    def exchange(self, h: np.ndarray, links: np.ndarray) -> np.ndarray:
        """h [M, D] own features, links [M, N] bool (row m: i's neighbours in row m's graph, own
        column false) -> received [M, N, D] float32 (h^j[m] where linked, 0 elsewhere)."""
        MPI = mpi()
        h = np.asarray(h, np.float32)
        tag, self.count = self.count % 32000, self.count + 1
        peers = [j for j in range(self.num_agents) if j != self.index and links[:, j].any()]
        got = {j: np.empty((int(links[:, j].sum()), h.shape[1]), np.float32) for j in peers}
        sent = {j: np.ascontiguousarray(h[links[:, j]]) for j in peers}
        requests = [self.comm.Irecv([got[j], MPI.FLOAT], source=j, tag=tag) for j in peers]
        requests += [self.comm.Isend([sent[j], MPI.FLOAT], dest=j, tag=tag) for j in peers]
        self.floats[self.purpose] += sum(x.size for x in sent.values())
        labels = [f"agent {j} ({kind})" for kind in ("receive", "send") for j in peers]
        wait_all(requests, self.timeout, f"agent {self.index}: D-GAT hop message {tag} with "
                 f"agents {peers}", labels)
        received = np.zeros((h.shape[0], self.num_agents, h.shape[1]), np.float32)
        for j in peers:
            received[links[:, j], j] = got[j]
        return received

    def free(self) -> None:
        self.comm.Free()


def own_views(h: Array, received: Array, index: int) -> Array:
    """Agent i's views [M, N, D]: its own h [M, D] at column i (keeping its gradient), the received
    features elsewhere as constants (`dgat.received` with local=True, row i)."""
    received = jax.lax.stop_gradient(received)
    return received.at[:, index].set(h)


def hop_rows(w: Array, q: Array, h: Array, received: Array, closed: Array, index: int,
             activation: str) -> tuple[Array, Array]:
    """One hop of agent i on M rows: W [D', 2D], q [D'], h [M, D], received [M, N, D], closed [M, N]
    (i's closed neighbourhood per row) -> (h' [M, D], α [M, N]). Eqs. 7–8 as `dgat.hop` row i."""
    views = own_views(h, received, index)
    dim = h.shape[-1]
    own = jnp.einsum("pc,mc->mp", w[:, :dim], h)
    other = jnp.einsum("pc,mjc->mjp", w[:, dim:], views)
    e = jnp.einsum("mjp,p->mj", jax.nn.leaky_relu(own[:, None] + other, 0.2), q)
    alpha = jnp.where(closed, jax.nn.softmax(jnp.where(closed, e, -jnp.inf), axis=-1), 0.0)
    return ACTIVATIONS[activation](jnp.einsum("mj,mjc->mc", alpha, views)), alpha


def closed_rows(graphs: Array, index: int) -> Array:
    """Agent i's closed neighbourhood in each row's graph: graphs [M, N, N] -> [M, N] bool."""
    return graphs[:, index].at[:, index].set(True)


@functools.partial(jax.jit, static_argnums=(5, 6))
def hop_values(w: Array, q: Array, h: Array, received: Array, closed: Array, index: int,
               activation: str) -> Array:
    """`hop_rows`' features only, jitted (the host loop of a forward pass)."""
    return hop_rows(w, q, h, received, closed, index, activation)[0]


def forward(exchange: HopExchange, psi, obs: np.ndarray, graphs: np.ndarray, valid: np.ndarray,
            activation: str, final: bool = False):
    """K hops of agent i with messages: psi = DGATParams of agent i (w [K, 1, D', 2D]), obs [M, D],
    graphs [M, N, N], valid [M] (rows whose messages matter; others get none) ->
    (ô [M, D], received per hop [K, M, N, D], and with `final` the neighbours' ô [M, N, D], else None).
    """
    i = exchange.index
    links = np.asarray(graphs)[:, i] & np.asarray(valid, bool)[:, None]
    links[:, i] = False
    closed = closed_rows(jnp.asarray(graphs), i)
    h, received = jnp.asarray(obs, jnp.float32), []
    for k in range(psi.w.shape[0]):
        received.append(exchange.exchange(np.asarray(h), links))
        h = hop_values(psi.w[k, 0], psi.q[k, 0], h, jnp.asarray(received[-1]), closed, i, activation)
    last = exchange.exchange(np.asarray(h), links) if final else None
    return h, np.stack(received), last
