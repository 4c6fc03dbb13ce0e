#!/usr/bin/env bash
# Makes sure PostgreSQL's server binaries (initdb, pg_ctl, postgres) are on
# this machine: the store tests start a throwaway cluster from them
# (internal/testenv/postgres.go). They are found through `pg_config
# --bindir`, then /usr/lib/postgresql/*/bin. When missing, Debian's
# postgresql package is installed; its own cluster is not needed, so the
# system service is kept from starting.
set -euo pipefail

bindir="$(pg_config --bindir 2>/dev/null || true)"
if [ -x "${bindir:-/nonexistent}/initdb" ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
# A policy-rc.d that exits 101 keeps the package from starting the service.
policy_rc=/usr/sbin/policy-rc.d
if command -v apt-get >/dev/null 2>&1 && [ ! -e "$policy_rc" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy_rc" >/dev/null
  $sudo chmod +x "$policy_rc"
  trap '$sudo rm -f "$policy_rc"' EXIT
fi
"$(dirname "$0")/apt-install.sh" postgresql "PostgreSQL's server binaries (initdb, pg_ctl), 15 or newer, for the store tests; the system service is not started"
