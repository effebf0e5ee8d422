# `make demo` and `make test` are the two commands a newcomer needs (see README.md).
VENV ?= .venv
BIN := $(VENV)/bin
# llama-cpp-python builds from source: a portable AVX2 build, so the wheel pip caches here
# also runs on another x86-64 machine.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2

.PHONY: setup demo test lint typecheck unit browser

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[local,dev]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/moa-bench

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy
	$(BIN)/mypy examples/mylab  # the example of a user's strategy, outside the package

# The run browser's tests drive Debian's headless Chromium and its matching chromedriver.
browser:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update && apt-get install -y chromium chromium-driver) || \
	  { echo "cannot install chromium and chromium-driver (the run browser's tests need them)" >&2; exit 1; }

unit: setup browser
	$(BIN)/python -m pytest

test: lint typecheck unit
