"""Networked agents as real processes on MPI: `mpirun -n N+1 netmarl agent ...` (docs/deployment.md).

world.py (process group, environment <-> agent messages, ULFM repair), env_rank.py (world rank 0: the
environment), agent_rank.py (agent i), learner.py (agent i's share of the Q-learner), runtime.py (the
phase loop and the entry point); DG-MAPPO: policy_rank.py (its environment rank and agent i),
policy_learner.py (agent i's share of the actor-critic learner), dgat_exchange.py (D-GAT hop
messages). Importing this package does not import mpi4py.
"""
import netmarl._jax_setup  # noqa: F401  (netmarl's JAX settings, before anything compiles)
