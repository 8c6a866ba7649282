#!/bin/sh
# Install Debian's PostgreSQL server when no initdb is present; does nothing when one is.
# Used by tests/integration (the production-stack test) and usable by hand. Needs root + apt-get.
# Exit codes: 0 installed or already present, 2 not root, 3 no apt-get, other: apt-get's own.
set -eu
for initdb in /usr/lib/postgresql/*/bin/initdb; do
    if [ -x "$initdb" ]; then
        echo "PostgreSQL present: $initdb"
        exit 0
    fi
done
if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL is not installed and this is not root: run 'sudo $0' or" \
         "'sudo apt-get install -y postgresql'" >&2
    exit 2
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "PostgreSQL is not installed and there is no apt-get (not Debian/Ubuntu): install the" \
         "PostgreSQL server (initdb, pg_ctl) with this system's package manager" >&2
    exit 3
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends postgresql
