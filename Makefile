# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv if missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Fake CPU devices make the multi-device tests run on one CPU.
TEST_ENV := XLA_FLAGS=--xla_force_host_platform_device_count=4 TF_CPP_MIN_LOG_LEVEL=2

.PHONY: demo test bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/jaxgen train --config experiments/dcgan_fashion_mnist.py:demo --workdir runs/demo
	$(BIN)/jaxgen sample --workdir runs/demo --num 64 --out runs/demo/samples/final.png
	@echo "demo done: samples in runs/demo/samples/, metrics in runs/demo/metrics.jsonl"

test: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py --config experiments/dcgan_fashion_mnist.py
	$(BIN)/python benchmarks/throughput.py --config experiments/vae_binarized_fashion_mnist.py

clean:
	rm -rf runs $(VENV) *.egg-info
