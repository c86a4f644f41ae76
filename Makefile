# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# Other Pythons the tap supports (pytest itself runs under $(PYTHON), 3.11 on the project's machines); the unit
# tests and one end-to-end sync run under each one found (under pyenv or on the PATH). A missing one is a one-line
# notice, and an error under CI=true. Keep in step with python_requires and the classifiers in setup.py.
OTHER_PYTHONS ?= 3.10 3.12 3.13

.PHONY: venv demo test lint clean tools postgres test-pythons dist

# Debian's python3 has no venv module without the python3-venv package.
$(BIN)/tap-wootric: setup.py pyproject.toml
	@$(PYTHON) -c "import ensurepip" 2>/dev/null || sh .ci/apt-install python3-venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

venv: $(BIN)/tap-wootric

# The sync of tests/demo.py, then DuckDB (target-duckdb), dbt build of dbt_wootric/ and the chart. The two
# DuckDB tools install into .tools/ while the venv is built.
demo:
	@$(PYTHON) -c "import ensurepip" 2>/dev/null || sh .ci/apt-install python3-venv
	@$(PYTHON) tests/tools.py target-duckdb dbt-duckdb >/dev/null & tools=$$!; \
	  $(MAKE) --no-print-directory venv; built=$$?; wait $$tools || exit 1; [ $$built -eq 0 ] || exit $$built
	$(BIN)/python tests/demo_models.py

lint: venv
	$(BIN)/ruff check .

tools: venv
	$(BIN)/python tests/tools.py

# The target-postgres tests start a throwaway cluster with PostgreSQL's initdb (Debian's postgresql).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
	  || sh .ci/apt-install postgresql

test: venv tools postgres
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n auto --dist loadfile
	$(MAKE) test-pythons

# The other Pythons' virtualenvs are built at once (pip mostly waits on the network and the disk), then each
# runs the unit tests and one end-to-end sync.
test-pythons:
	@set -e; found=""; pids=""; for version in $(OTHER_PYTHONS); do \
	  python=$$(ls -d $(HOME)/.pyenv/versions/$$version.*/bin/python 2>/dev/null | tail -1); \
	  [ -n "$$python" ] || python=$$(command -v python$$version || true); \
	  if [ -z "$$python" ]; then \
	    if [ "$${CI:-}" = "true" ]; then echo "Python $$version not found (CI needs every version)" >&2; exit 1; fi; \
	    echo "Python $$version not found: its tests are skipped (install it, e.g. with pyenv, to run them)"; \
	    continue; \
	  fi; \
	  found="$$found $$version:$$python"; \
	  ( $$python -m venv .venv-$$version && .venv-$$version/bin/pip install --quiet --disable-pip-version-check \
	      -e ".[test]" ) > .venv-$$version.log 2>&1 & pids="$$pids $$!"; \
	done; \
	for pid in $$pids; do wait $$pid || { cat .venv-3.*.log >&2; exit 1; }; done; \
	for entry in $$found; do \
	  version=$${entry%%:*}; echo "== Python $$version ($${entry#*:})"; \
	  .venv-$$version/bin/python -m pytest -p no:cacheprovider -p no:xdist tests/test_units.py \
	    tests/test_e2e.py::test_full_sync_emits_exactly_the_source_records_with_utc_instants; \
	done

# The release build (docs/releasing.md): sdist and wheel into dist/, checked as PyPI will (tests/test_release.py
# does the same on every `make test`).
dist: tools
	rm -rf dist
	.tools/build-twine/bin/python -m build --outdir dist .
	.tools/build-twine/bin/twine check --strict dist/*

clean:
	rm -rf $(VENV) .venv-3.* .tools demo-output build dist *.egg-info dbt_wootric/target dbt_wootric/logs
