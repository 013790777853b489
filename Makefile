# Every target installs what it needs into .venv, from a fresh clone, every time.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: venv install dev run test lint sync-client chaos clib clib-test clean bench-deps bench bench-quick

venv:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)

install: venv
	$(PIP) install -e .

dev: venv
	$(PIP) install -e '.[dev]'

run: install
	$(BIN)/taskbeat serve

test: dev clib-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: dev
	$(BIN)/ruff check app tests setup.py bench
	$(BIN)/ruff format --check app tests setup.py bench
	$(BIN)/mypy app
	$(BIN)/python app/client/generate_sync.py --check

# The sync client is generated from the async one (unasync): edit app/client/_async only.
sync-client: dev
	$(BIN)/python app/client/generate_sync.py

chaos: dev
	$(BIN)/python -m pytest -m chaos tests/chaos $(PYTEST_ARGS)

clib: dev
	$(BIN)/python setup.py -q build_ext --inplace

clib-test:
	$(MAKE) -C clib test

# The bench extras in .venv; the peers (FastAPI + SAQ, FastAPI + arq) in their own venv.
PEERS_VENV := var/bench/peers-venv

bench-deps: venv
	$(PIP) install -e '.[bench]'
	@test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip --disable-pip-version-check -q install -r bench/peers-requirements.txt

bench: bench-deps          # every workload, 3 runs each: docs/benchmarks.md (< 15 min)
	$(BIN)/python -m bench --command "make bench"

bench-quick: bench-deps    # small counts, one run: var/bench/benchmarks-quick.md (< 3 min)
	$(BIN)/python -m bench --quick --command "make bench-quick"

clean:
	rm -rf build dist *.egg-info app/native/*.so clib/build
