"""Asynchronous averaging over MPI under message loss: push-sum with running sums, and the biased
plain averaging it replaces (specs/distributed.md, "Unannounced message loss").

Each round an agent waits at most `patience` seconds for its in-neighbours' messages; whatever has not
arrived by then is treated as lost (and `drop` makes the sender lose a fraction on purpose). Nothing
ever blocks past the deadline, so a slow or dead peer cannot stall the others.

Push-sum (weights travel with the values), robust form with running sums: agent i holds (s_i, w_i),
s_i⁽⁰⁾ = x_i, w_i⁽⁰⁾ = 1, and out-degree d_i. Each round it keeps (s_i, w_i)/(d_i + 1), adds the same
share to its running total σ_i = Σ_rounds shares and sends σ_i to every out-neighbour; on receiving
σ_j it adds σ_j − ρ_ij (ρ_ij: the last σ_j it had received). A lost message's mass arrives with the
next one that gets through, so Σ_i s_i + mass in flight = Σ_i x_i and Σ_i w_i + in flight = N at all
times: the ratios s_i / w_i converge to the true mean (1/N) Σ_j x_j.

Plain averaging x_i ← Σ_j α_ij x_j that silently substitutes x_i for lost x_j stays row-stochastic
but not column-stochastic, so it converges to a wrong, loss-dependent weighted average.

`PushSumCommunicator` is the same algorithm as the asynchronous exchange of `netmarl agent`
(algo.comm.exchange=async): one push-sum epoch per learning step over that step's round graphs, with
per-link running sums (the graph changes between rounds) and a closing drain instead of barriers.
"""
from __future__ import annotations

import time

import numpy as np

from netmarl.comm.communicator import row_weights
from netmarl.comm.mpi import PeerTimeout, as_peer_failure, mpi, wait_all

TAG = 30001


def push_sum(comm, x, out_neighbors: list[int], in_neighbors: list[int], rounds: int,
             drop: float = 0.0, seed: int = 0, patience: float = 0.005) -> np.ndarray:
    """This agent's estimate of the network mean of x [D] after `rounds` lossy push-sum rounds."""
    value = np.append(np.asarray(x, np.float64), 1.0)  # (s_i, w_i)
    sent = np.zeros_like(value)  # σ_i
    last = {j: np.zeros_like(value) for j in in_neighbors}  # ρ_ij
    rng = np.random.default_rng([seed, comm.Get_rank()])
    requests = []
    comm.Barrier()  # the agents start the averaging epoch together
    for r in range(rounds):
        share = value / (len(out_neighbors) + 1)
        sent += share
        value = share.copy()
        requests += _send(comm, np.append(sent, r), out_neighbors, drop, rng)
        for j, message in _receive(comm, in_neighbors, r, value.size + 1, patience).items():
            value += message - last[j]  # the running sum σ_j (s, w), round stamp removed
            last[j] = message
    for j, message in _finish(comm, requests, value.size + 1).items():  # mass still in flight
        value += message[:-1] - last[j]
    return value[:-1] / value[-1]


def plain_average(comm, x, weights: np.ndarray, rounds: int, drop: float = 0.0, seed: int = 0,
                  patience: float = 0.005) -> np.ndarray:
    """Metropolis averaging with W [N, N] where a lost x_j is silently replaced by the agent's own."""
    me = comm.Get_rank()
    neighbors = [j for j in range(weights.shape[0]) if j != me and weights[me, j] > 0]
    value = np.asarray(x, np.float64)
    rng = np.random.default_rng([seed, me])
    requests = []
    comm.Barrier()
    for r in range(rounds):
        requests += _send(comm, np.append(value, r), neighbors, drop, rng)
        got = _receive(comm, neighbors, r, value.size + 1, patience, latest_only=True)
        mixed = weights[me, me] * value
        for j in neighbors:
            mixed += weights[me, j] * (got[j][:-1] if j in got else value)
        value = mixed
    _finish(comm, requests, value.size + 1)
    return value


def _send(comm, message: np.ndarray, targets: list[int], drop: float, rng) -> list:
    MPI = mpi()
    buffer = np.ascontiguousarray(message, np.float64)
    return [comm.Isend([buffer, MPI.DOUBLE], dest=j, tag=TAG) for j in targets if rng.random() >= drop]


def _receive(comm, sources: list[int], round_: int, size: int, patience: float,
             latest_only: bool = False, stamped: bool = False) -> dict[int, np.ndarray]:
    """Newest message of each source that has arrived, waiting up to `patience` for this round's.

    Messages carry their round in the last slot; with `latest_only`, only this round's count."""
    MPI = mpi()
    newest: dict[int, np.ndarray] = {}
    deadline = time.monotonic() + patience
    while True:
        status = MPI.Status()
        while comm.Iprobe(source=MPI.ANY_SOURCE, tag=TAG, status=status):
            buffer = np.empty(size, np.float64)
            comm.Recv([buffer, MPI.DOUBLE], source=status.Get_source(), tag=TAG)
            newest[status.Get_source()] = buffer  # MPI keeps each sender's order: the newest last
        if all(j in newest and newest[j][-1] >= round_ for j in sources) or time.monotonic() > deadline:
            break
        time.sleep(1e-4)
    if latest_only:
        newest = {j: m for j, m in newest.items() if m[-1] == round_}
    return {j: m if latest_only or stamped else m[:-1] for j, m in newest.items() if j in sources}


def _finish(comm, requests: list, size: int) -> dict[int, np.ndarray]:
    """Completes this agent's sends, then drains the messages still queued for it: the newest
    message (with its round stamp) of each sender."""
    wait_all(requests, 60.0, "push-sum: completing sends")
    comm.Barrier()
    return _receive(comm, list(range(comm.Get_size())), 0, size, 0.0, latest_only=False, stamped=True)


# --- the asynchronous exchange of `netmarl agent` (algo.comm.exchange=async) ------------------------

ASYNC_TAG = 32001  # above the synchronous exchange's tags (round % 32000) and TAG


class PushSumCommunicator:
    """Agent `comm.rank`'s asynchronous, loss-tolerant averaging: one push-sum epoch per learning step.

    An epoch (the learner's update count: the same on every agent) runs over the step's K round
    graphs W⁽¹⁾ … W⁽ᴷ⁾ from the shared schedule. In round k agent i keeps (s_i, w_i) / (d_i + 1), with
    d_i its out-degree in W⁽ᵏ⁾, adds the same share to its running sum σ_ij for every out-neighbour j
    (one running sum per link: the graph changes between rounds) and sends σ_ij stamped (epoch, k),
    dropped with probability `loss`. It then waits at most `patience` seconds for the round's
    in-neighbours and absorbs σ_ji − ρ_ij of the newest message of every sender of the epoch that has
    arrived (ρ_ij: what it absorbed from j before). A lost message's mass travels with the next
    message on that link; mass still in flight when the epoch ends is left out, so s_i / w_i is always
    a convex combination of the agents' values and is exact when nothing is lost for long. Messages of a
    finished epoch are discarded ("stale"), those of a later epoch wait in the inbox. Sends are
    synchronous-mode (`Issend`) so that `close` knows when every message has been received.

    Args:
      comm: agents-only communicator (rank k = agent k of the live group).
      patience: seconds a round waits for its in-neighbours' messages.
      loss: simulated probability that a message is dropped, in [0, 1).
      seed: seed of the simulated drops (combined with the agent id).
      timeout: deadline of `close` (and of the exact sums of the jtd_error diagnostic).
      agent_ids: original agent id of each rank (after a repair), to seed drops and name peers.
    """

    def __init__(self, comm, patience: float = 0.05, loss: float = 0.0, seed: tuple[int, ...] = (0,),
                 timeout: float = 300.0, agent_ids: list[int] | None = None):
        self.comm, self.patience, self.loss, self.timeout = comm, patience, loss, timeout
        self.agent, self.num_agents = comm.Get_rank(), comm.Get_size()
        self.ids = list(range(self.num_agents)) if agent_ids is None else list(agent_ids)
        self.rng = np.random.default_rng([*seed, self.ids[self.agent]])
        self.epoch = -1
        self.inbox: dict[int, dict[int, np.ndarray]] = {}  # epoch -> {sender rank: newest message}
        self.pending: list[tuple] = []  # (request, buffer) of sends not yet received
        self.counts = {"sent": 0, "dropped": 0, "late": 0, "stale": 0}
        self.floats_sent = 0

    def average(self, x: np.ndarray, weights: np.ndarray, epoch: int) -> np.ndarray:
        """This agent's push-sum estimate of the live agents' mean of x (float32, x's shape) after
        the rounds of Ws [K, N, N]; `epoch` must grow from call to call."""
        if epoch <= self.epoch:
            raise ValueError(f"push-sum epoch {epoch} is not after the previous one ({self.epoch})")
        self.epoch = epoch
        value = np.append(np.asarray(x, np.float64).ravel(), 1.0)  # (s_i, w_i)
        links: dict[int, np.ndarray] = {}  # σ_ij per out-neighbour rank j
        absorbed: dict[int, np.ndarray] = {}  # ρ_ij per sender rank j
        for k, w in enumerate(np.asarray(weights)):
            row = row_weights(w, self.agent)
            value = self._push(value, row.dst, links, k)
            self._wait(sorted(row.src_weights), k)
            value = self._absorb(value, absorbed)
        self.inbox.pop(epoch, None)
        return (value[:-1] / value[-1]).astype(np.float32).reshape(np.shape(x))

    def _push(self, value: np.ndarray, dst: list[int], links: dict, round_: int) -> np.ndarray:
        """Keeps one share of (s_i, w_i), adds one to the running sum of every out-link, sends those."""
        share = value / (len(dst) + 1)
        for j in dst:
            links[j] = links.get(j, 0.0) + share
            self._send(np.concatenate([links[j], [self.epoch, round_]]), j)
        return share

    def _send(self, message: np.ndarray, dest: int) -> None:
        self.counts["sent"] += 1
        self.floats_sent += message.size
        if self.loss > 0 and self.rng.random() < self.loss:
            self.counts["dropped"] += 1
            return
        MPI = mpi()
        buffer = np.ascontiguousarray(message, np.float64)
        with as_peer_failure(f"agent {self.ids[self.agent]}: push-sum send to agent {self.ids[dest]}"):
            self.pending.append((self.comm.Issend([buffer, MPI.DOUBLE], dest=dest, tag=ASYNC_TAG),
                                 buffer))

    def _wait(self, sources: list[int], round_: int) -> None:
        """Receives until every source has sent this epoch's round `round_` (or later) or the
        patience runs out (the missing ones count as late)."""
        deadline = time.monotonic() + self.patience
        spins = 0
        while True:
            self._drain()
            inbox = self.inbox.get(self.epoch, {})
            missing = [j for j in sources if j not in inbox or inbox[j][-1] < round_]
            if not missing:
                return
            if time.monotonic() > deadline:
                self.counts["late"] += len(missing)
                return
            spins += 1
            time.sleep(0 if spins < 50 else 1e-4)

    def _drain(self) -> None:
        """Receives every message that has arrived; completes finished sends."""
        MPI = mpi()
        status = MPI.Status()
        with as_peer_failure(f"agent {self.ids[self.agent]}: push-sum receive"):
            while self.comm.Iprobe(source=MPI.ANY_SOURCE, tag=ASYNC_TAG, status=status):
                source = status.Get_source()
                buffer = np.empty(status.Get_count(MPI.DOUBLE), np.float64)
                self.comm.Recv([buffer, MPI.DOUBLE], source=source, tag=ASYNC_TAG)
                if int(buffer[-2]) < self.epoch:
                    self.counts["stale"] += 1
                else:  # MPI keeps each sender's order: the newest arrives last
                    self.inbox.setdefault(int(buffer[-2]), {})[source] = buffer
            self.pending = [(r, b) for r, b in self.pending if not r.Test()]

    def _absorb(self, value: np.ndarray, absorbed: dict) -> np.ndarray:
        """Adds the mass of the epoch's messages not absorbed yet: σ_ji − ρ_ij per sender j."""
        for j, message in self.inbox.get(self.epoch, {}).items():
            running = message[:-2]
            value = value + (running - absorbed.get(j, 0.0))
            absorbed[j] = running
        return value

    def close(self) -> None:
        """Receives (and discards) messages until this agent's sends have all been received, then
        agrees with the other agents (non-blocking barrier) that nothing is in flight any more, so
        that MPI_Finalize finds no pending message. Collective over the agents."""
        self.epoch = np.iinfo(np.int64).max  # whatever still arrives is stale
        barrier = None
        deadline = time.monotonic() + self.timeout
        with as_peer_failure(f"agent {self.ids[self.agent]}: closing push-sum"):
            while barrier is None or not barrier.Test():
                self._drain()
                if barrier is None and not self.pending:
                    barrier = self.comm.Ibarrier()
                if time.monotonic() > deadline:
                    raise PeerTimeout(f"agent {self.ids[self.agent]}: closing push-sum: messages "
                                      f"still in flight after the deadline of {self.timeout:g} s")
                time.sleep(1e-4)
