#!/usr/bin/env bash
# Ensure promtool (to check the Prometheus alert rules) and print its path on stdout.
# Installs Debian's prometheus package when missing (needs root and the package registry); only
# the promtool binary is used, no Prometheus server is started.
set -euo pipefail
log() { echo "promtool: $*" >&2; }

if ! command -v promtool >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then log "not installed and not root: the rule check will be skipped"; exit 1; fi
    log "installing Debian's prometheus package (for promtool)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    # --no-install-recommends: promtool needs none of the server's web assets or exporters.
    apt-get install -y -qq --no-install-recommends prometheus >&2
    # Debian starts the server from the package's postinst where a service manager runs; the
    # checks need only the binary.
fi
command -v promtool
