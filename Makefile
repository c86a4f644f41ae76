# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# Other Pythons the tap must work on; CI runs the unit tests and one end-to-end sync under each.
OTHER_PYTHONS ?= 3.9 3.13

.PHONY: venv demo test lint clean tools test-pythons

$(BIN)/tap-wootric: setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

venv: $(BIN)/tap-wootric

demo: venv
	$(BIN)/python tests/demo.py

lint: venv
	$(BIN)/ruff check .

tools: venv
	$(BIN)/python tests/tools.py

test: venv tools
	$(BIN)/ruff check .
	$(BIN)/python -m pytest
	$(MAKE) test-pythons

test-pythons:
	@set -e; for version in $(OTHER_PYTHONS); do \
	  python=$$(ls -d $(HOME)/.pyenv/versions/$$version.*/bin/python 2>/dev/null | tail -1); \
	  [ -n "$$python" ] || python=$$(command -v python$$version || true); \
	  [ -n "$$python" ] || { echo "Python $$version not found" >&2; exit 1; }; \
	  echo "== Python $$version ($$python)"; \
	  $$python -m venv .venv-$$version; \
	  .venv-$$version/bin/pip install --quiet --disable-pip-version-check -e ".[test]"; \
	  .venv-$$version/bin/python -m pytest -p no:cacheprovider tests/test_units.py \
	    tests/test_e2e.py::test_full_sync_emits_exactly_the_source_records_with_utc_instants; \
	done

clean:
	rm -rf $(VENV) .venv-3.* .tools demo-output build *.egg-info
