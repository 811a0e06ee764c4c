#!/usr/bin/env bash
# The demonstration, from nothing: on a bare Debian machine (no make, no
# git) it first installs the system packages, make among them, then runs
# `make demo`: a volume's life on a simulated vCenter, its data moved
# between two nodes on real loop devices.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/bootstrap-system.sh
exec make demo "$@"
