#!/usr/bin/env bash
# Ensure Debian's stunnel4 (a TLS terminator) for the Kafka TLS tests and print its path.
# The embedded broker (tansu 0.6) serves no TLS itself, so the tests put stunnel in front of it.
# Installs the package when missing (needs root and the package registry).
set -euo pipefail
log() { echo "stunnel: $*" >&2; }
if ! command -v stunnel4 >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then log "not installed and not root: the Kafka TLS tests will be skipped"; exit 1; fi
    log "installing Debian's stunnel4 package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq stunnel4 >&2 || { apt-get update -qq >&2 && apt-get install -y -qq stunnel4 >&2; }
fi
command -v stunnel4
