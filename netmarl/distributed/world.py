"""The process group of a deployment: one environment rank and N agent ranks, and its repair.

    mpirun -n N+1 netmarl agent ...     world rank 0: the environment; world rank i + 1: agent i

`World` holds the MPI communicator of the live processes, who is who (`members`: −1 for the
environment, the original agent id otherwise), the agents-only communicator with its
`MPICommunicator`, and the graph schedule restricted to the live agents. Environment → agent traffic
(observations, episode tails) uses a non-blocking scatter rooted at the environment rank, agent →
environment traffic (actions, metrics) point-to-point messages (so that a timeout names the agents
that did not send); agent ↔ agent traffic is only the neighbour exchange (synchronous, or push-sum
with algo.comm.exchange=async). Every wait has a deadline, tiered so that the rank nearest to a hung
peer reports it first: a neighbour exchange waits `timeout`; the environment rank waits 2 × timeout
for the agents (its waits include their learning steps); an agent waits 3 × timeout for the
environment rank (which may itself be waiting for a hung agent).

Fault tolerance (Open MPI ULFM, `mpirun --with-ft ulfm`): an MPI error naming a failed or revoked
peer becomes `PeerFailure`; `recover` revokes the communicators (so every survivor learns of the
failure at its next operation), shrinks the world to the survivors, agrees on the earliest phase any
survivor was in (MIN all-reduce) and rebuilds the agents' communicator and graph schedule without
the dead agents. The environment rank itself must survive.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from netmarl.comm import GraphSchedule, is_connected
from netmarl.comm.mpi import MPICommunicator, PeerFailure, mpi, wait_all
from netmarl.comm.pushsum import PushSumCommunicator

ENV = -1  # member id of the environment rank
GATHER_TAG = 7  # agent -> environment messages on the world communicator


class World:
    """The live processes. `me`: this process's member id (ENV or the original agent id).

    `pushsum`: None for the synchronous exchange, else the keyword arguments (patience, loss, seed)
    of the agents' PushSumCommunicator (algo.comm.exchange=async)."""

    def __init__(self, num_agents: int, base_schedule: GraphSchedule | None, timeout: float,
                 pushsum: dict | None = None):
        MPI = mpi()
        world = MPI.COMM_WORLD
        if world.Get_size() != num_agents + 1:
            raise ValueError(f"the environment has {num_agents} agents: launch N + 1 = "
                             f"{num_agents + 1} processes (rank 0 runs the environment), got "
                             f"{world.Get_size()} (mpirun -n {num_agents + 1} netmarl agent ...)")
        self.comm = world.Dup()
        self.comm.Set_errhandler(MPI.ERRORS_RETURN)
        self.members = [ENV, *range(num_agents)]
        self.me = self.members[self.comm.Get_rank()]
        self.base_schedule, self.timeout, self.pushsum = base_schedule, timeout, pushsum
        self.failures: list[dict] = []  # {"dead": [...], "phase": ...} per recovery
        self._split()

    # --- groups --------------------------------------------------------------------------------

    @property
    def agents(self) -> list[int]:
        """Original ids of the live agents, in rank order."""
        return [m for m in self.members if m != ENV]

    def _split(self) -> None:
        """The agents-only communicator (rank = position in `agents`) and the live schedule."""
        MPI = mpi()
        self.agents_comm = self.comm.Split(0 if self.me != ENV else MPI.UNDEFINED, key=self.me + 1)
        self.schedule = _restrict(self.base_schedule, self.agents)
        self.communicator = None
        if self.me != ENV:
            self.agents_comm.Set_errhandler(MPI.ERRORS_RETURN)
            self.communicator = self._communicator()

    def _communicator(self) -> MPICommunicator | PushSumCommunicator:
        """The agents' exchange: synchronous neighbour all-reduces, or push-sum (asynchronous)."""
        if self.pushsum is not None:
            return PushSumCommunicator(self.agents_comm, timeout=self.timeout, agent_ids=self.agents,
                                       **self.pushsum)
        static = None
        if self.schedule is not None and self.schedule.p_drop == 0 and self.schedule.mode == "dropout":
            from netmarl.comm import metropolis_weights
            static = np.asarray(metropolis_weights(self.schedule.base))
        return MPICommunicator(self.agents_comm, self.timeout, static, agent_ids=self.agents)

    @property
    def deadline(self) -> float:
        """Deadline of an environment <-> agent wait (module docstring: the tiers)."""
        return self.timeout * (2 if self.me == ENV else 3)

    # --- environment <-> agents ------------------------------------------------------------------

    def scatter(self, rows: dict[int, np.ndarray] | None, shape: tuple, dtype=np.float32) -> np.ndarray:
        """Environment: sends rows[agent] (each `shape`) to every live agent; agent: receives its row."""
        recv = np.empty(shape, dtype)
        send = None
        if self.me == ENV:
            send = np.zeros((len(self.members), *shape), dtype)
            for rank, member in enumerate(self.members):
                if member != ENV:
                    send[rank] = rows[member]
        request = self.comm.Iscatter(send, recv, root=0)
        wait_all([request], self.deadline, f"{self._who()}: environment scatter")
        return recv

    def gather(self, row: np.ndarray | None, shape: tuple, dtype=np.float32) -> dict[int, np.ndarray]:
        """Agent: sends its row (`shape`) to the environment rank, which gets {agent: row}.

        Point to point (not a collective), so that a timeout names the agents that did not send."""
        if self.me != ENV:
            row = np.ascontiguousarray(row, dtype)
            wait_all([self.comm.Isend(row, dest=0, tag=GATHER_TAG)], self.deadline,
                     f"{self._who()}: send to the environment")
            return {}
        got = {m: np.empty(shape, dtype) for m in self.agents}
        requests = [self.comm.Irecv(got[m], source=self.members.index(m), tag=GATHER_TAG)
                    for m in self.agents]
        wait_all(requests, self.deadline, "environment rank: gather from the agents",
                 [f"agent {m}" for m in self.agents])
        return got

    def barrier(self) -> None:
        wait_all([self.comm.Ibarrier()], self.deadline, f"{self._who()}: final barrier")

    def _who(self) -> str:
        return "environment rank" if self.me == ENV else f"agent {self.me}"

    # --- repair ----------------------------------------------------------------------------------

    def recover(self, phase: int, error: PeerFailure) -> int:
        """Revoke, shrink to the survivors, agree on the phase to redo (the earliest); returns it."""
        MPI = mpi()
        for comm in (self.agents_comm, self.comm):
            if comm != MPI.COMM_NULL:
                try:
                    comm.Revoke()
                except (MPI.Exception, NotImplementedError):
                    pass
        for _ in range(len(self.members)):
            try:
                shrunk = self.comm.Shrink()
                shrunk.Set_errhandler(MPI.ERRORS_RETURN)
                members = shrunk.allgather(self.me)
                agreed = shrunk.allreduce(phase, op=MPI.MIN)
                break
            except MPI.Exception:  # another failure during the repair: shrink again
                self.comm = shrunk
        else:
            raise RuntimeError(f"{self._who()}: could not repair the process group after {error}")
        if ENV not in members:
            raise RuntimeError(f"the environment rank failed ({error}); the agents cannot continue")
        dead = sorted(set(self.members) - set(members))
        self.failures.append({"dead_agents": dead, "phase": agreed, "error": str(error)})
        self.comm, self.members = shrunk, members
        self._split()
        return agreed


def _restrict(schedule: GraphSchedule | None, alive: list[int]) -> GraphSchedule | None:
    """The schedule on the live agents' induced base graph (connected if that is still possible)."""
    if schedule is None or len(alive) == schedule.num_agents:
        return schedule
    base = schedule.base[np.ix_(alive, alive)]
    edges = int(np.triu(base, 1).sum())
    connected = schedule.connected and bool(is_connected(base))
    num_edges = None if schedule.mode == "dropout" else min(schedule.num_edges, edges)
    return dataclasses.replace(schedule, adjacency=base, connected=connected, num_edges=num_edges)
