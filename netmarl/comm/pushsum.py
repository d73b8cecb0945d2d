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
"""
from __future__ import annotations

import time

import numpy as np

from netmarl.comm.mpi import mpi, wait_all

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
