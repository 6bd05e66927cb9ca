PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Python writes its bytecode caches even where the environment asks it not to: without them each
# test worker and each started `reconciler` recompiles the package and pytest re-rewrites every
# test module (about 4 s a process). `__pycache__/` is ignored by git.
export PYTHONDONTWRITEBYTECODE :=

.PHONY: test test-slow test-browser faults demo bench lint lock clean

# Installs the versions pinned in requirements.lock (a constraints file: `make lock` refreshes it).
$(STAMP): pyproject.toml requirements.lock
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

# Re-resolves every dependency (runtime and dev) in a scratch venv and pins the result.
lock:
	rm -rf .venv-lock
	$(PY) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --upgrade pip
	.venv-lock/bin/pip install --quiet -e '.[dev]'
	{ echo '# Pinned versions, a constraints file for `make` (pip install -c). Refresh: make lock'; \
	  .venv-lock/bin/pip freeze --exclude-editable; } > requirements.lock
	rm -rf .venv-lock

# Three workers on two cores: many tests wait on SQLite, threads or sockets (measured on a
# quiet 2-core machine: 37-47 s, median 41 s of 17 runs; four workers: 41-46 s). The folders of
# the other tiers are not even collected (tests/test_suite_tiers.py keeps them tier-only).
test: $(STAMP)
	$(BIN)/pytest -q -n 3 --ignore=tests/faults --ignore=tests/browser --ignore=tests/e2e

test-slow: $(STAMP)
	$(BIN)/pytest -q -n 3 -m slow; status=$$?; [ $$status -eq 0 ] || [ $$status -eq 5 ]

# The admin page in Debian's Chromium (/usr/bin/chromium) against `reconciler run`; skips with a
# reason when Chromium is missing. Screenshots land in tests/browser/screenshots/.
test-browser: $(STAMP)
	$(BIN)/pytest -q -m browser -rs; status=$$?; [ $$status -eq 0 ] || [ $$status -eq 5 ]

# The "Prove it" suite of issue 8: SIGKILL crash loop, fault matrix, lost webhooks, hostile
# Hibob records. Minutes, not seconds; CI=true fixes the random choices (kill moments, drops).
faults: $(STAMP)
	$(BIN)/pytest -q -m faults -rxX

demo: $(STAMP)
	$(BIN)/reconciler demo

# matplotlib (for the chart) goes to its own folder: numpy and its kin stay out of the
# measured process's environment.
$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev,bench]'
	$(BIN)/pip install --quiet --target $(VENV)/plot 'matplotlib>=3.8'
	touch $@

bench: $(VENV)/.bench-installed
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check reconciler tests bench
	$(BIN)/ruff format --check reconciler tests bench
	$(BIN)/mypy reconciler
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache
