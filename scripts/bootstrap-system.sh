#!/usr/bin/env bash
# Install the system packages the build and the tests need, on Debian bookworm.
#
#   golang-go golang-github-vmware-govmomi-dev   build the vCenter simulator
#   e2fsprogs util-linux                         mkfs.ext4, losetup, lsblk
#   python2.7 python2.7-dev                      Flocker's interpreter (bullseye)
#   python3 python3-venv                         the Python 3 virtualenv
#   gcc libc6-dev make ca-certificates           build the 2.7 sdists (Twisted,
#                                                pyrsistent, PyYAML ...)
#
# Python 2.7 no longer exists in bookworm; it comes from Debian's previous
# release. We add a `bullseye` apt source by copying this machine's own Debian
# source entry with only the suite changed (so no host name is written by us)
# and pin bullseye low, so it only supplies what bookworm lacks.
#
# Idempotent: when every package is installed it does nothing (no apt-get
# update). Runs as root, or through sudo when not root.
set -euo pipefail

PACKAGES=(
    make gcc libc6-dev ca-certificates
    golang-go golang-github-vmware-govmomi-dev
    e2fsprogs util-linux
    python3 python3-venv
    python2.7 python2.7-dev
)
OLD_SUITE=bullseye
SOURCES_DIR=/etc/apt/sources.list.d
OLD_SOURCES_DEB822=$SOURCES_DIR/$OLD_SUITE.sources
OLD_SOURCES_LEGACY=$SOURCES_DIR/$OLD_SUITE.list
PIN_FILE=/etc/apt/preferences.d/$OLD_SUITE

log() { printf 'bootstrap-system: %s\n' "$*" >&2; }

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    log "not root and no sudo: cannot install ${PACKAGES[*]}"
    exit 1
fi
as_root() { "${SUDO[@]}" "$@"; }
export DEBIAN_FRONTEND=noninteractive

is_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    log "all system packages present"
    exit 0
fi
log "missing: ${missing[*]}"

# shellcheck disable=SC1091
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
if [ -z "$codename" ]; then
    log "cannot tell the Debian release from /etc/os-release"
    exit 1
fi

# write_if_changed FILE: replace FILE by stdin when different; status 0 if changed.
write_if_changed() {
    local file=$1 tmp
    tmp=$(mktemp)
    cat >"$tmp"
    if [ -f "$file" ] && cmp -s "$tmp" "$file"; then
        rm -f "$tmp"
        return 1
    fi
    as_root install -m 0644 "$tmp" "$file"
    rm -f "$tmp"
    log "wrote $file"
    return 0
}

need_update=0

# The bullseye source: a copy of the stanza (deb822) or the lines (one-line
# format) that name the machine's own release suite, with that suite replaced.
old_suite_entry=
if [ "$codename" != "$OLD_SUITE" ]; then
    if [ -f "$SOURCES_DIR/debian.sources" ]; then
        old_suite_entry=$(awk -v want="$codename" -v new="$OLD_SUITE" '
            BEGIN { RS = ""; ORS = "\n\n"; FS = "\n" }
            {
                keep = 0; out = ""
                for (i = 1; i <= NF; i++) {
                    line = $i
                    if (line ~ /^[Ee]nabled:[ \t]*no/) { keep = 0; break }
                    if (line ~ /^[Ss]uites:/) {
                        n = split(substr(line, 8), suites, /[ \t]+/)
                        for (j = 1; j <= n; j++) if (suites[j] == want) keep = 1
                        line = "Suites: " new
                    }
                    out = out line "\n"
                }
                if (keep) { printf "%s\n", out; exit }
            }' "$SOURCES_DIR/debian.sources")
        target=$OLD_SOURCES_DEB822
    fi
    if [ -z "$old_suite_entry" ] && [ -f /etc/apt/sources.list ]; then
        old_suite_entry=$(awk -v want="$codename" -v new="$OLD_SUITE" '
            /^[ \t]*deb[ \t]/ {
                for (i = 2; i <= NF; i++) if ($i == want) { $i = new; print; break }
            }' /etc/apt/sources.list)
        target=$OLD_SOURCES_LEGACY
    fi
    if [ -z "$old_suite_entry" ]; then
        log "found no Debian source entry for suite '$codename' to copy for $OLD_SUITE"
        exit 1
    fi
    if printf '%s\n' "$old_suite_entry" | write_if_changed "$target"; then
        need_update=1
    fi
    # Bookworm's packages keep their versions: bullseye only fills the gaps.
    write_if_changed "$PIN_FILE" <<PIN || true
# From vsphere-flocker-driver's scripts/bootstrap-system.sh: $OLD_SUITE only
# supplies what $codename lacks (python2.7); $codename's packages win.
Package: *
Pin: release n=$OLD_SUITE
Pin-Priority: 100
PIN
fi

# Refresh the package lists only when a missing package is unknown to apt
# (fresh machine, or the bullseye source was just added).
if [ "$need_update" -eq 0 ]; then
    for pkg in "${missing[@]}"; do
        if ! apt-cache show --no-all-versions "$pkg" >/dev/null 2>&1; then
            need_update=1
            break
        fi
    done
fi

install_missing() {
    as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
}
if [ "$need_update" -eq 1 ]; then
    as_root apt-get update -q
    install_missing
elif ! install_missing; then
    # Stale lists (a removed .deb version): refresh once and retry.
    as_root apt-get update -q
    install_missing
fi

for pkg in "${missing[@]}"; do
    if ! is_installed "$pkg"; then
        log "$pkg did not install"
        exit 1
    fi
done
log "installed: ${missing[*]}"
