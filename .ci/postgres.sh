#!/usr/bin/env bash
# Ensure a local PostgreSQL for the test suite and print its URL on stdout.
# Installs Debian's postgresql package when missing (needs root and the package registry),
# starts the cluster without a service manager, and creates a `bridge` role that may create
# databases (each test makes and drops its own) and may end other sessions: DROP DATABASE ... WITH
# (FORCE) on PostgreSQL 15 refuses to end an autovacuum worker of the database without pg_signal_backend.
set -euo pipefail
log() { echo "postgres: $*" >&2; }

if ! command -v pg_lsclusters >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then log "not installed and not root: PostgreSQL tests will be skipped"; exit 1; fi
    log "installing Debian's postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
fi

read -r version cluster port status _ < <(pg_lsclusters --no-header | head -n 1)
if [ -z "${version:-}" ]; then log "no cluster found; create one with pg_createcluster"; exit 1; fi
if [ "$status" != "online" ]; then
    log "starting cluster $version/$cluster on port $port"
    pg_ctlcluster "$version" "$cluster" start >&2
fi
for _ in $(seq 1 30); do
    if su postgres -c "psql -p $port -tAc 'select 1'" >/dev/null 2>&1; then break; fi
    sleep 0.5
done
su postgres -c "psql -p $port -v ON_ERROR_STOP=1 -qc \"DO \\\$\\\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bridge') THEN
    CREATE ROLE bridge LOGIN CREATEDB PASSWORD 'bridge';
  END IF; END \\\$\\\$;
  GRANT pg_signal_backend TO bridge;\"" >&2
echo "postgresql://bridge:bridge@127.0.0.1:$port/postgres"
