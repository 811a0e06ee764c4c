# Build and test entry points. `make test` is what CI runs (.ci/run).
#
#   make bootstrap   system packages (apt) + .venv/py3 + .venv/py27, idempotent
#   make test        both interpreters, the sdist's own tests and the docs;
#                    fails if any of them fails
#   make test-py3 / make test-py27
#   make test-sdist  the fast level (-m "not simulator") run from the unpacked
#                    sdist, on both interpreters
#   make dist        the sdist and the universal wheel in dist/, checked by twine
#   make demo        the simulator-backed demo (Python 3)
#   make bench       benchmarks/operations.py on Python 3, then on Python 2.7:
#                    SOAP requests, bytes received, client CPU and wall time
#                    of each operation, on the simulator with tasks that take
#                    time as on vCenter; BENCH_ARGS is passed on, e.g.
#                    make bench BENCH_ARGS="--volumes 500 --vms 100"
#   make bench-fleet benchmarks/fleet.py on Python 3, then on Python 2.7: K
#                    node agents (processes) listing on a loop against one
#                    simulator; SOAP requests, bytes and client CPU per list
#                    per node, and the simulator's CPU per minute and per
#                    list; FLEET_ARGS is passed on, e.g.
#                    make bench-fleet FLEET_ARGS="--nodes 20 --vms 200 --volumes 1000 --seconds 60"
#   make lint        ruff (Python 3)
#   make docs        Sphinx, warnings as errors
#   make clean       build artefacts and caches; `make distclean` also the venvs
#
# .venv/py27 is a released Flocker 1.15.0 node (requirements/
# flocker-1.15-py27.txt) into which the project is installed from dist/ with
# the node's own pip 8.1.2, its sdist and then its wheel, `pip freeze`
# recorded around each install for tests/test_packaging.py
# (scripts/bootstrap-venvs.sh).
#
# PYTEST_ARGS is passed to pytest, e.g. make test PYTEST_ARGS="-k layout -x".
# VENV says where the virtualenvs live (default .venv).  Stamp files record
# what is done: the venvs are remade when their requirements or the bootstrap
# scripts change, the dist and its install into .venv/py27 (half a minute)
# when any file the sdist holds changes -- by `make test`, not by the quicker
# test-py3 and test-py27.

SHELL := /bin/bash
.DEFAULT_GOAL := test

VENV := .venv
VENV_DIR := $(abspath $(VENV))
PY3 := $(VENV)/py3/bin/python
PY27 := $(VENV)/py27/bin/python
PYTEST_ARGS ?=
BENCH_ARGS ?=
FLEET_ARGS ?=
# Tells tests/test_packaging.py where the built files are, and that they and
# the py27 install records must be there.
PYTEST_ENV := VSPHERE_FLOCKER_DIST=$(abspath dist)

VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' vsphere_flocker_driver/__init__.py)
SDIST := dist/vsphere_flocker_driver-$(VERSION).tar.gz
WHEEL := dist/vsphere_flocker_driver-$(VERSION)-py2.py3-none-any.whl
# What the sdist is made of (see MANIFEST.in).
DIST_INPUTS := setup.py pyproject.toml MANIFEST.in LICENSE README.md \
	CHANGELOG.md ARCHITECTURE.md agent.yml.example vsphere_flocker_plugin.py \
	Makefile tox.ini \
	$(shell find vsphere_flocker_driver tests docs requirements scripts benchmarks \
		-name __pycache__ -prune -o -path docs/_build -prune -o \
		-type f ! -name '*.py[co]' -print)

SYSTEM_STAMP := $(VENV)/.stamp-system
PY3_STAMP := $(VENV)/py3/.stamp-bootstrap
PY27_NODE_STAMP := $(VENV)/py27/.stamp-node
PY27_STAMP := $(VENV)/py27/.stamp-bootstrap

BOOTSTRAP_VENVS := VENV_DIR=$(VENV_DIR) scripts/bootstrap-venvs.sh

.PHONY: bootstrap bootstrap-system bootstrap-py3 bootstrap-py27 dist \
	test test-py3 test-py27 test-sdist demo bench bench-fleet lint docs clean \
	distclean

bootstrap: bootstrap-system bootstrap-py3 bootstrap-py27
bootstrap-system: $(SYSTEM_STAMP)
bootstrap-py3: $(PY3_STAMP)
bootstrap-py27: $(PY27_STAMP)

$(SYSTEM_STAMP): scripts/bootstrap-system.sh
	scripts/bootstrap-system.sh
	@mkdir -p $(@D) && touch $@

# The system stamp is order-only: remaking it must not rebuild the venvs.
$(PY3_STAMP): requirements/test.txt setup.py pyproject.toml \
		scripts/bootstrap-venvs.sh | $(SYSTEM_STAMP)
	$(BOOTSTRAP_VENVS) py3
	@touch $@

# The node is rebuilt from nothing only when its pins change (the script
# keeps it otherwise); .venv/py3 lends its pip to fetch the 2.7 tool chain.
$(PY27_NODE_STAMP): requirements/flocker-1.15-py27.txt scripts/bootstrap-venvs.sh \
		scripts/check_pins.py | $(SYSTEM_STAMP) $(PY3_STAMP)
	$(BOOTSTRAP_VENVS) py27-node
	@touch $@

$(PY27_STAMP): $(PY27_NODE_STAMP) $(SDIST) $(WHEEL) requirements/py27-test.txt
	$(BOOTSTRAP_VENVS) py27-install $(SDIST) $(WHEEL)
	@touch $@

# Built with .venv/py3's setuptools and wheel (no isolated build environment:
# nothing is fetched), the wheel from the sdist.
$(SDIST) $(WHEEL) &: $(DIST_INPUTS) | $(PY3_STAMP)
	rm -rf build dist
	$(PY3) -m build -q --no-isolation --outdir dist .
	$(VENV)/py3/bin/twine check --strict $(SDIST) $(WHEEL)

dist: $(SDIST) $(WHEEL)

# Every part runs even when an earlier one fails; the status is the worst.
test: bootstrap
	@status=0; \
	echo "== pytest on Python 3 ($(PY3))"; \
	$(PYTEST_ENV) $(PY3) -m pytest $(PYTEST_ARGS) || { echo "== Python 3: pytest exited $$?"; status=1; }; \
	echo "== pytest on Python 2.7 ($(PY27)): Flocker 1.15.0's node, the project installed with its pip 8.1.2"; \
	$(PYTEST_ENV) $(PY27) -m pytest $(PYTEST_ARGS) || { echo "== Python 2.7: pytest exited $$?"; status=1; }; \
	$(MAKE) --no-print-directory test-sdist || { echo "== the sdist's tests failed"; status=1; }; \
	echo "== documentation (Sphinx, warnings as errors)"; \
	$(VENV)/py3/bin/sphinx-build -q -W -b html docs docs/_build/html || { echo "== docs: sphinx-build failed"; status=1; }; \
	exit $$status

# For quick runs these take the built files and their install into
# .venv/py27 as they are, once made (order-only): tests import the checkout.
# `make test` remakes them first.
test-py3: $(PY3_STAMP) | $(SDIST) $(WHEEL)
	$(PYTEST_ENV) $(PY3) -m pytest $(PYTEST_ARGS)

test-py27: $(PY27_NODE_STAMP) | $(PY27_STAMP)
	$(PYTEST_ENV) $(PY27) -m pytest $(PYTEST_ARGS)

# The sdist is complete when its own tests pass from it: unpacked into a
# temporary folder, which each interpreter then imports the project from.
test-sdist: $(PY3_STAMP) $(PY27_STAMP)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	tar -xzf $(SDIST) -C "$$tmp" && \
	cd "$$tmp/vsphere_flocker_driver-$(VERSION)" && status=0 && \
	for python in $(abspath $(PY3)) $(abspath $(PY27)); do \
		echo "== the sdist's fast level (-m \"not simulator\") on $$python"; \
		$$python -c 'import os, vsphere_flocker_driver as m; assert os.path.abspath(m.__file__).startswith(os.getcwd() + os.sep), m.__file__' \
			&& $$python -m pytest -q -p no:cacheprovider -m "not simulator" \
			|| { echo "== the sdist's tests on $$python failed"; status=1; }; \
	done; exit $$status

# Needs Go and govmomi (system packages) to build the simulator.
demo: $(SYSTEM_STAMP) $(PY3_STAMP)
	$(VENV)/py3/bin/vsphere-flocker demo

# Needs Go and govmomi, as the demo does; both interpreters run the checkout
# (the benchmark puts it first on sys.path).  Each runs even when the other
# fails; the status is the worst.
bench: $(SYSTEM_STAMP) $(PY3_STAMP) $(PY27_NODE_STAMP) | $(PY27_STAMP)
	@status=0; \
	for python in $(PY3) $(PY27); do \
		echo "== benchmarks/operations.py on $$python"; \
		$$python benchmarks/operations.py $(BENCH_ARGS) || { echo "== $$python: the benchmark failed"; status=1; }; \
	done; exit $$status

# Needs what bench needs; kept out of bench, which stays quick: the agents
# list for --seconds (30 by default) on each interpreter.
bench-fleet: $(SYSTEM_STAMP) $(PY3_STAMP) $(PY27_NODE_STAMP) | $(PY27_STAMP)
	@status=0; \
	for python in $(PY3) $(PY27); do \
		echo "== benchmarks/fleet.py on $$python"; \
		$$python benchmarks/fleet.py $(FLEET_ARGS) || { echo "== $$python: the fleet benchmark failed"; status=1; }; \
	done; exit $$status

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
