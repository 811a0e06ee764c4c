#!/usr/bin/env bash
# The whole test suite on both interpreters, from nothing: on a bare Debian
# machine (no make, no git) it first installs the system packages, make
# among them, then runs `make test`, which builds the virtualenvs and the
# simulator itself.  Arguments go to make, e.g.
#
#   bash scripts/test.sh PYTEST_ARGS="-k attach -x"
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/bootstrap-system.sh
exec make test "$@"
