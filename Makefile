# The two newcomer commands: `make demo` (verify the bundled demo models end to end) and
# `make test` (the test suite).  Both create .venv and install genbab on first use.
#
# torch is installed *first*, pinned, so that no later dependency pulls a multi-GB CUDA build
# on a machine without a GPU.  On this project's machines `pip install torch==2.13.0` takes a CPU
# wheel from local disk; elsewhere set TORCH_PIP_ARGS, e.g. to a CPU wheel index:
#   make demo TORCH_PIP_ARGS="torch==2.13.0 --index-url <your CPU wheel index>"
PYTHON ?= python3
VENV ?= .venv
TORCH_PIP_ARGS ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.genbab-installed

.PHONY: install demo test test-fast dev-suite smoke-suite clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || \
	  { if command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/pip install -q torch; \
	    else $(BIN)/pip install -q $(TORCH_PIP_ARGS); fi; }
	$(BIN)/pip install -q -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/genbab run-suite benchmarks/demo/instances.csv --root benchmarks/demo \
	  --expected benchmarks/demo/expected_results.csv --out results/demo.csv

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# Benchmark suites (need ../shared/benchmarks or BENCHMARKS=...)
BENCHMARKS ?= ../shared/benchmarks
smoke-suite: $(STAMP)
	$(BIN)/genbab run-suite $(BENCHMARKS)/suites/smoke.csv --root $(BENCHMARKS) --out results/smoke.csv
dev-suite: $(STAMP)
	$(BIN)/genbab run-suite $(BENCHMARKS)/suites/dev.csv --root $(BENCHMARKS) --timeout 60 --out results/dev.csv

clean:
	rm -rf $(VENV) results .pytest_cache
