# Build and test entry points. `make test` is what CI runs (.ci/run).
#
#   make bootstrap   system packages (apt) + .venv/py3 + .venv/py27, idempotent
#   make test        both interpreters; fails if either fails
#   make test-py3 / make test-py27
#   make demo        the simulator-backed demo (Python 3)
#   make lint        ruff (Python 3)
#   make docs        Sphinx, warnings as errors
#   make clean       build artefacts and caches; `make distclean` also the venvs
#
# PYTEST_ARGS is passed to pytest, e.g. make test PYTEST_ARGS="-k layout -x".
# Stamp files record what is done; they are remade when the requirements,
# setup.py, pyproject.toml or the bootstrap scripts change.

SHELL := /bin/bash
.DEFAULT_GOAL := test

VENV := .venv
PY3 := $(VENV)/py3/bin/python
PY27 := $(VENV)/py27/bin/python
PYTEST_ARGS ?=

SYSTEM_STAMP := $(VENV)/.stamp-system
PY3_STAMP := $(VENV)/py3/.stamp-bootstrap
PY27_STAMP := $(VENV)/py27/.stamp-bootstrap

PROJECT_FILES := setup.py pyproject.toml scripts/bootstrap-venvs.sh
PY3_REQUIREMENTS := requirements/test.txt
PY27_REQUIREMENTS := requirements/flocker-1.15-py27.txt requirements/py27-lock.txt \
	requirements/py27-setup.txt requirements/py27.txt scripts/check_pins.py

.PHONY: bootstrap bootstrap-system bootstrap-py3 bootstrap-py27 \
	test test-py3 test-py27 demo lint docs clean distclean

bootstrap: bootstrap-system bootstrap-py3 bootstrap-py27
bootstrap-system: $(SYSTEM_STAMP)
bootstrap-py3: $(PY3_STAMP)
bootstrap-py27: $(PY27_STAMP)

$(SYSTEM_STAMP): scripts/bootstrap-system.sh
	scripts/bootstrap-system.sh
	@mkdir -p $(@D) && touch $@

# The system stamp is order-only: remaking it must not rebuild the venvs.
$(PY3_STAMP): $(PY3_REQUIREMENTS) $(PROJECT_FILES) | $(SYSTEM_STAMP)
	scripts/bootstrap-venvs.sh py3
	@touch $@

$(PY27_STAMP): $(PY27_REQUIREMENTS) $(PROJECT_FILES) | $(SYSTEM_STAMP)
	scripts/bootstrap-venvs.sh py27
	@touch $@

# Both interpreters run even when the first fails; the status is the worse.
test: bootstrap
	@status=0; \
	echo "== pytest on Python 3 ($(PY3))"; \
	$(PY3) -m pytest $(PYTEST_ARGS) || { echo "== Python 3: pytest exited $$?"; status=1; }; \
	echo "== pytest on Python 2.7 ($(PY27))"; \
	$(PY27) -m pytest $(PYTEST_ARGS) || { echo "== Python 2.7: pytest exited $$?"; status=1; }; \
	echo "== documentation (Sphinx, warnings as errors)"; \
	$(VENV)/py3/bin/sphinx-build -q -W -b html docs docs/_build/html || { echo "== docs: sphinx-build failed"; status=1; }; \
	exit $$status

test-py3: $(PY3_STAMP)
	$(PY3) -m pytest $(PYTEST_ARGS)

test-py27: $(PY27_STAMP)
	$(PY27) -m pytest $(PYTEST_ARGS)

# Needs Go and govmomi (system packages) to build the simulator.
demo: $(SYSTEM_STAMP) $(PY3_STAMP)
	$(VENV)/py3/bin/vsphere-flocker demo

lint: $(PY3_STAMP)
	$(VENV)/py3/bin/ruff check .

docs: $(PY3_STAMP)
	@test -f docs/conf.py || { echo "make docs: docs/conf.py does not exist yet" >&2; exit 1; }
	$(VENV)/py3/bin/sphinx-build -W -b html docs docs/_build/html

clean:
	rm -rf build dist .eggs *.egg-info docs/_build .pytest_cache .ruff_cache .tox
	find . -path ./$(VENV) -prune -o \( -name __pycache__ -o -name '*.pyc' \) -print0 \
		| xargs -0 rm -rf

distclean: clean
	rm -rf $(VENV)
