# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv if missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Fake CPU devices make the multi-device tests run on one CPU. Tests use tiny shapes, so
# compiling dominates: LLVM optimisation level 0 cuts the suite's compile time by a third.
TEST_ENV := XLA_FLAGS="--xla_force_host_platform_device_count=4 --xla_backend_optimization_level=0" TF_CPP_MIN_LOG_LEVEL=2

.PHONY: demo test test-all bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/jaxgen train --config experiments/dcgan_fashion_mnist.py:demo --workdir runs/demo
	$(BIN)/jaxgen sample --workdir runs/demo --num 64 --out runs/demo/samples/final.png
	@echo "demo done: samples in runs/demo/samples/, metrics in runs/demo/metrics.jsonl"

# Two workers, whole files each (module fixtures build once), the heaviest files first
# (tests/conftest.py): XLA compiles on one thread, so a 2-core machine runs two files'
# compiles at once. `make test` (CI) leaves out the tests
# marked slow: the second and later cases of a property the fast tier already checks on
# one model or family (README, "Tests"); `make test-all` runs them too.
test: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder -m "not slow"

test-all: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py --config experiments/dcgan_fashion_mnist.py
	$(BIN)/python benchmarks/throughput.py --config experiments/vae_binarized_fashion_mnist.py

clean:
	rm -rf runs $(VENV) *.egg-info
