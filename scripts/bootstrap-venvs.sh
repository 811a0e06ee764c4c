#!/usr/bin/env bash
# Build the project's two virtualenvs:
#
#   .venv/py3   /usr/bin/python3 (Debian's; PYTHON3 to override), current
#               releases: the project (editable) and requirements/test.txt.
#   .venv/py27  /usr/bin/python2.7 (from bullseye, see bootstrap-system.sh;
#               PYTHON27 to override), Flocker 1.15's exact pins
#               (requirements/flocker-1.15-py27.txt), pyVmomi 7.0.3, pytest
#               4.6.11, and the project (editable) installed without
#               upgrading any of them -- checked with `pip freeze` afterwards.
#
# Usage: scripts/bootstrap-venvs.sh [py3|py27|all]   (default: all)
#
# Idempotent: an existing, working virtualenv is kept and only topped up.
# Needs the packages of scripts/bootstrap-system.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV_DIR=${VENV_DIR:-$ROOT/.venv}
PYTHON3=${PYTHON3:-/usr/bin/python3}
PYTHON27=${PYTHON27:-/usr/bin/python2.7}
REQ=$ROOT/requirements
PINS=$REQ/flocker-1.15-py27.txt
LOCK=$REQ/py27-lock.txt

# The tool chain that creates a 2.7 virtualenv (see flocker-contract.md).
PIP27=pip==20.3.4
SETUPTOOLS27=setuptools==44.1.1
WHEEL27=wheel==0.37.1
VIRTUALENV27=virtualenv==20.15.1

export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_NO_INPUT=1
export PIP_NO_PYTHON_VERSION_WARNING=1

log() { printf 'bootstrap-venvs: %s\n' "$*" >&2; }

# works PYTHON MAJOR.MINOR: the interpreter runs and is that version.
works() {
    [ -x "$1" ] && "$1" -c "import sys; sys.exit(sys.version_info[:2] != ($2))" 2>/dev/null
}

build_py3() {
    local venv=$VENV_DIR/py3
    if ! works "$venv/bin/python" "3,$("$PYTHON3" -c 'import sys; print(sys.version_info[1])')" \
            || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
        log "creating $venv with $PYTHON3"
        rm -rf "$venv"
        "$PYTHON3" -m venv "$venv"
        "$venv/bin/python" -m pip install -q --upgrade pip setuptools wheel
    fi
    log "installing the project and requirements/test.txt into $venv"
    "$venv/bin/python" -m pip install -q -e "$ROOT" -r "$REQ/test.txt"
    "$venv/bin/python" -m pip check
}

# A Python 3 with pip, only to download the 2.7 tool chain's wheels.
pip3_python() {
    if "$VENV_DIR/py3/bin/python" -m pip --version >/dev/null 2>&1; then
        echo "$VENV_DIR/py3/bin/python"
        return
    fi
    local tools=$VENV_DIR/_pip3
    if ! "$tools/bin/python" -m pip --version >/dev/null 2>&1; then
        rm -rf "$tools"
        "$PYTHON3" -m venv "$tools" >&2
    fi
    echo "$tools/bin/python"
}

build_py27() {
    local venv=$VENV_DIR/py27
    local tools=$VENV_DIR/_py27-tools
    if ! works "$venv/bin/python" "2,7" || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
        if ! works "$PYTHON27" "2,7"; then
            log "$PYTHON27 is not a Python 2.7; run scripts/bootstrap-system.sh"
            exit 1
        fi
        if ! PYTHONPATH=$tools/site "$PYTHON27" -c "import virtualenv" 2>/dev/null; then
            log "installing $VIRTUALENV27 for $PYTHON27 into $tools/site"
            rm -rf "$tools"
            mkdir -p "$tools/wheels"
            # Today's pip fetches the last pip, setuptools and wheel for 2.7 ...
            "$(pip3_python)" -m pip download -q --no-deps --only-binary :all: \
                --dest "$tools/wheels" "$PIP27" "$SETUPTOOLS27" "$WHEEL27"
            # ... and that pip, run from its wheel by 2.7, installs virtualenv
            # with the dependencies it resolves for 2.7.
            local pip_wheel=("$tools"/wheels/pip-*.whl)
            local pip27=("$PYTHON27" "${pip_wheel[0]}/pip" install -q
                         --target "$tools/site")
            "${pip27[@]}" --no-index "$tools"/wheels/*.whl
            PYTHONPATH=$tools/site "${pip27[@]}" "$VIRTUALENV27"
        fi
        log "creating $venv with $PYTHON27"
        rm -rf "$venv"
        PYTHONPATH=$tools/site "$PYTHON27" -m virtualenv -q --no-periodic-update \
            --pip "${PIP27#*==}" --setuptools "${SETUPTOOLS27#*==}" --wheel "${WHEEL27#*==}" \
            "$venv"
    fi
    local pip=("$venv/bin/python" -m pip install -q)
    log "installing Flocker 1.15's pins into $venv"
    # Twisted 16.6.0's setup_requires must find incremental already there.
    "${pip[@]}" -r "$REQ/py27-setup.txt"
    "${pip[@]}" -r "$REQ/py27.txt"
    log "installing the project into $venv under the pins"
    "${pip[@]}" -c "$PINS" -c "$LOCK" -e "$ROOT"
    "$venv/bin/python" -m pip check
    "$venv/bin/python" "$ROOT/scripts/check_pins.py" "$PINS" "$LOCK"
}

case "${1:-all}" in
    py3) build_py3 ;;
    py27) build_py27 ;;
    all) build_py3; build_py27 ;;
    *) echo "usage: $0 [py3|py27|all]" >&2; exit 2 ;;
esac
