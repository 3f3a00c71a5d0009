# fluxd: the commands a newcomer types. `make test` installs everything it needs.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: help venv system-deps testenv lint test test-unit test-e2e demo demo-real-node bench crds clean

help:
	@echo "make test      install, build the test control plane, lint, run every test"
	@echo "make demo      the seed scenario end to end on a local control plane"
	@echo "make demo-real-node  the same with fluxd and the app as Pods on a real node (root)"
	@echo "make lint      ruff, mypy --strict, import layers"
	@echo "make testenv   build (or reuse) etcd, kube-apiserver, ... from Go modules"
	@echo "make crds      regenerate manifests/crds from the Python API types"

# Runtime dependencies are pinned by constraints.txt (the versions the image installs),
# test and lint tools by constraints-test.txt (never read by the image).
$(BIN)/.installed: pyproject.toml constraints.txt constraints-test.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -c constraints-test.txt -e '.[test]'
	touch $@

venv: $(BIN)/.installed

system-deps:
	@scripts/system-deps.sh

testenv: venv
	$(BIN)/python -m testenv build

lint: venv
	$(BIN)/ruff check fluxd testenv tests bench demo
	$(BIN)/ruff format --check fluxd testenv tests bench demo
	$(BIN)/mypy
	$(BIN)/lint-imports

test: venv system-deps testenv lint
	$(BIN)/pytest -q -ra

test-unit: venv
	$(BIN)/pytest -q tests/unit

test-e2e: venv system-deps testenv
	$(BIN)/pytest -q tests/e2e

crds: venv
	$(BIN)/python -m fluxd.api.crds --write manifests/crds

demo: venv system-deps testenv
	$(BIN)/python -m demo

demo-real-node: venv system-deps testenv
	$(BIN)/python -m demo --real-node

bench: venv system-deps testenv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
