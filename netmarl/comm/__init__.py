"""Networked agents' communication: graphs, Metropolis weights, consensus and gradient tracking.

See specs/dvdn.md (algorithm) and specs/distributed.md (the `neighbor_allreduce` primitive).
"""
import netmarl._jax_setup  # noqa: F401  (netmarl's JAX settings, before anything compiles)
from netmarl.comm.consensus import consensus, consensus_rounds, jtd_estimate, neighbor_allreduce
from netmarl.comm.graphs import (
    MODES,
    TOPOLOGIES,
    GraphSchedule,
    build_topology,
    complete,
    degree_weights,
    erdos_renyi,
    grid,
    is_connected,
    line,
    make_schedule,
    mean_degree,
    metropolis_weights,
    random_geometric,
    ring,
    star,
    user,
    validate_adjacency,
)
from netmarl.comm.tracking import GTState, gradient_tracking, mix_params, with_gradient_tracking

__all__ = [
    "MODES", "TOPOLOGIES", "GTState", "GraphSchedule", "build_topology", "complete", "consensus",
    "consensus_rounds", "degree_weights", "erdos_renyi", "gradient_tracking", "grid", "is_connected", "jtd_estimate",
    "line", "make_schedule", "mean_degree", "metropolis_weights", "mix_params", "neighbor_allreduce",
    "random_geometric", "ring", "star", "user", "validate_adjacency", "with_gradient_tracking",
]
