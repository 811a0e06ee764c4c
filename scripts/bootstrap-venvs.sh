#!/usr/bin/env bash
# Build the project's two virtualenvs:
#
#   .venv/py3   /usr/bin/python3 (Debian's; PYTHON3 to override), current
#               releases: the project (editable) and requirements/test.txt.
#   .venv/py27  /usr/bin/python2.7 (from bullseye, see bootstrap-system.sh;
#               PYTHON27 to override): a released Flocker 1.15.0 node --
#               requirements/flocker-1.15-py27.txt exactly, its pip 8.1.2 and
#               setuptools 23.0.0 included -- into which the project is then
#               installed as an operator installs it: with that pip, from the
#               built sdist and, separately, from the built wheel, never with
#               --no-deps.  `pip freeze` is recorded before and after each
#               install (in .venv/py27/vsphere-flocker-install/, which
#               tests/test_packaging.py reads); the test tools
#               (requirements/py27-test.txt) come last.
#
# Usage: scripts/bootstrap-venvs.sh py3
#        scripts/bootstrap-venvs.sh py27-node
#        scripts/bootstrap-venvs.sh py27-install SDIST WHEEL
#        scripts/bootstrap-venvs.sh py27 [SDIST WHEEL]
#        scripts/bootstrap-venvs.sh [all]
# `py27` is py27-node then py27-install; without files (and for `all`) the
# sdist and wheel are built first into dist/, as `make dist` builds them.
# VENV_DIR (default .venv) says where the virtualenvs live.
#
# Idempotent: the py27 node is kept while requirements/flocker-1.15-py27.txt
# is unchanged and rebuilt from nothing when it changes; each py27-install
# first takes the node back to its recorded freeze.  Needs the packages of
# scripts/bootstrap-system.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV_DIR=${VENV_DIR:-$ROOT/.venv}
PYTHON3=${PYTHON3:-/usr/bin/python3}
PYTHON27=${PYTHON27:-/usr/bin/python2.7}
REQ=$ROOT/requirements
NODE_PINS=$REQ/flocker-1.15-py27.txt
TEST_PINS=$REQ/py27-test.txt
CHECK_PINS=$ROOT/scripts/check_pins.py
# Where the py27 virtualenv keeps its records (read by tests/test_packaging.py).
RECORDS_NAME=vsphere-flocker-install

# The tool chain that creates a 2.7 virtualenv (see flocker-contract.md).  Its
# pip, which knows Requires-Python, builds the node; the node's own pip 8.1.2
# then replaces it.
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

# The key of a node: its pins and the tool chain that built it.
node_key() {
    { cat "$NODE_PINS"; echo "$PIP27 $SETUPTOOLS27 $WHEEL27 $VIRTUALENV27"; } \
        | sha256sum | cut -d' ' -f1
}

# An empty Python 2.7 virtualenv at $1, with the tool chain's pip.
create_py27() {
    local venv=$1 tools=$VENV_DIR/_py27-tools
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
}

build_py27_node() {
    local venv=$VENV_DIR/py27
    local records=$venv/$RECORDS_NAME
    local key
    key=$(node_key)
    if works "$venv/bin/python" "2,7" && [ -f "$records/node.txt" ] \
            && [ "$(cat "$records/node.key" 2>/dev/null)" = "$key" ]; then
        log "keeping $venv: Flocker 1.15.0's node as $NODE_PINS pins it"
        return
    fi
    create_py27 "$venv"
    mkdir -p "$records"
    # pip runs from the virtualenv's folder: `python -m pip` puts the working
    # directory on sys.path, and the checkout's egg-info there would count
    # as the project installed.
    cd "$venv"
    local python=$venv/bin/python
    log "installing Flocker 1.15.0's node into $venv"
    # Its libraries first, with the tool chain's pip (which, unlike 8.1.2,
    # would refuse a Python-3-only release, were a pin to lack one) ...
    grep -vE '^(pip|setuptools|wheel)==' "$NODE_PINS" >"$records/libraries.txt"
    "$python" -m pip install -q -r "$records/libraries.txt"
    "$python" -m pip check
    # ... then the virtualenv's own tools, which replace that pip.
    grep -E '^(pip|setuptools|wheel)==' "$NODE_PINS" >"$records/tools.txt"
    "$python" -m pip install -q -r "$records/tools.txt"
    "$python" "$CHECK_PINS" --exact "$NODE_PINS"
    "$python" "$CHECK_PINS" --freeze "$records/node.txt"
    rm -f "$records/libraries.txt" "$records/tools.txt"
    echo "$key" >"$records/node.key"
}

# The index for pip 8.1.2.  Its default is https://pypi.python.org/simple/,
# PyPI's old name, which redirects to pypi.org but may not resolve where only
# pypi.org is reachable; an index the caller or pip's configuration names wins.
pip8_index() {
    if [ -n "${PIP_INDEX_URL:-}" ]; then
        echo "$PIP_INDEX_URL"
    else
        "$(pip3_python)" -m pip config get global.index-url 2>/dev/null \
            || echo https://pypi.org/simple/
    fi
}

# Take the py27 virtualenv back to its recorded node, with its own pip.
restore_node() {
    local venv=$1 records=$1/$RECORDS_NAME plan
    plan=$("$venv/bin/python" "$CHECK_PINS" --restore "$records/node.txt")
    local uninstall=() install=()
    read -r -a uninstall <<<"$(awk '$1 == "uninstall" { printf "%s ", $2 }' <<<"$plan")"
    read -r -a install <<<"$(awk '$1 == "install" { printf "%s ", $2 }' <<<"$plan")"
    if [ ${#uninstall[@]} -gt 0 ]; then
        "$venv/bin/python" -m pip uninstall -q -y "${uninstall[@]}"
    fi
    if [ ${#install[@]} -gt 0 ]; then
        "$venv/bin/python" -m pip install -q --no-deps "${install[@]}"
    fi
    "$venv/bin/python" "$CHECK_PINS" --exact "$NODE_PINS" >/dev/null
}

install_py27() {
    local sdist wheel
    sdist=$(readlink -f "$1")
    wheel=$(readlink -f "$2")
    local venv=$VENV_DIR/py27
    local records=$venv/$RECORDS_NAME
    local python=$venv/bin/python
    if [ ! -f "$records/node.txt" ]; then
        log "$venv holds no recorded node; run $0 py27-node first"
        exit 1
    fi
    cd "$venv"  # as in build_py27_node
    local pip_version
    pip_version=$("$python" -c 'import pip; print(pip.__version__)')
    # Every pip below is the node's 8.1.2.
    PIP_INDEX_URL=$(pip8_index)
    export PIP_INDEX_URL
    rm -f "$records/installed.txt" \
        "$records"/{sdist,wheel}{,-loads}.txt
    local kind file digest copy
    for kind in sdist wheel; do
        if [ "$kind" = sdist ]; then file=$sdist; else file=$wheel; fi
        restore_node "$venv"
        # Installed from a folder named by its content: pip 8.1.2 caches the
        # wheel it builds from a local sdist by the file's path, and would
        # reuse a stale one for a rebuilt sdist of the same name.
        digest=$(sha256sum "$file" | cut -d' ' -f1)
        copy=$records/artifacts/$digest/$(basename "$file")
        mkdir -p "$(dirname "$copy")"
        cp "$file" "$copy"
        log "installing $(basename "$file") into $venv with its pip $pip_version"
        "$python" -m pip install -q "$copy"
        "$python" "$CHECK_PINS" --freeze "$records/$kind.txt"
        # The check docs/installation.rst gives operators, with the node's
        # packages alone: does the agent's Python load the backend?
        # Recorded, for the tests to judge.
        env -u PYTHONPATH "$python" -c \
            'import vsphere_flocker_plugin as p; print(p.FLOCKER_BACKEND.name)' \
            >"$records/$kind-loads.txt" 2>&1 \
            || echo "exit status $?" >>"$records/$kind-loads.txt"
        echo "$kind $digest $(basename "$file")" >>"$records/installed.txt"
    done
    # Only the copies of the files just installed are kept.
    local kept
    kept=$(awk '{ print $2 }' "$records/installed.txt")
    for copy in "$records"/artifacts/*; do
        grep -qxF "$(basename "$copy")" <<<"$kept" || rm -rf "$copy"
    done
    log "installing the test tools (requirements/py27-test.txt) into $venv"
    "$python" -m pip install -q -r "$TEST_PINS"
    # They changed nothing but their own pins.  Whether the project's installs
    # kept the node's is tests/test_packaging.py's to say, from the records.
    "$python" "$CHECK_PINS" --exact "$records/wheel.txt" "$TEST_PINS"
}

# The sdist and the wheel, built as `make dist` builds them; prints their paths.
build_dist() {
    build_py3 >&2
    local py3=$VENV_DIR/py3/bin/python version
    version=$("$py3" -c 'import vsphere_flocker_driver as m; print(m.__version__)')
    rm -rf "$ROOT/build" "$ROOT/dist"
    "$py3" -m build -q --no-isolation --outdir "$ROOT/dist" "$ROOT" >&2
    local files=("$ROOT/dist/vsphere_flocker_driver-$version.tar.gz"
                 "$ROOT/dist/vsphere_flocker_driver-$version-py2.py3-none-any.whl")
    "$VENV_DIR/py3/bin/twine" check --strict "${files[@]}" >&2
    printf '%s\n' "${files[@]}"
}

build_py27() {
    local files=("$@")
    if [ ${#files[@]} -eq 0 ]; then
        local built
        built=$(build_dist)
        mapfile -t files <<<"$built"
    fi
    build_py27_node
    install_py27 "${files[0]}" "${files[1]}"
}

usage() {
    echo "usage: $0 [py3|py27-node|py27-install SDIST WHEEL|py27 [SDIST WHEEL]|all]" >&2
    exit 2
}

command=${1:-all}
[ $# -gt 0 ] && shift
case "$command" in
    py3) [ $# -eq 0 ] || usage; build_py3 ;;
    py27-node) [ $# -eq 0 ] || usage; build_py27_node ;;
    py27-install) [ $# -eq 2 ] || usage; install_py27 "$1" "$2" ;;
    py27) [ $# -eq 0 ] || [ $# -eq 2 ] || usage; build_py27 "$@" ;;
    all) [ $# -eq 0 ] || usage; build_py3; build_py27 ;;
    *) usage ;;
esac
