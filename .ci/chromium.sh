#!/usr/bin/env bash
# Ensure Debian's chromium (and its driver) for the console's browser tests (tests/browser/) and
# print the browser's path on stdout. Installs the packages when missing (needs root and the
# package registry); does nothing when they are there. Playwright drives this browser and never
# downloads one of its own.
set -euo pipefail
log() { echo "chromium: $*" >&2; }

if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then log "not installed and not root: browser tests will be skipped"; exit 1; fi
    log "installing Debian's chromium package"
    export DEBIAN_FRONTEND=noninteractive
    out="$(mktemp)"
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver; } >"$out" 2>&1; then
        cat "$out" >&2; rm -f "$out"; log "installation failed"; exit 1
    fi
    rm -f "$out"
fi
command -v chromium
