#!/usr/bin/env bash
# Runs the PostgreSQL half of the store tests and the three-replica proof:
# installs PostgreSQL from Debian when it is missing, starts a throw-away
# server as a plain user on a loopback port in a temporary directory (SCRAM
# password, nothing listening beyond 127.0.0.1), runs
#   go test -tags postgres -run "${PG_TEST_RUN:-Conformance|Postgres|Replicas|Shared|StoreHandoffs|PruneShortLived}" .
# with SCAIWAVE_TEST_POSTGRES set to its URL, and stops it. Here a test that
# would skip for want of PostgreSQL fails instead
# (SCAIWAVE_TEST_POSTGRES_REQUIRED=1).
#
#   scripts/postgres/run.sh                 # the PostgreSQL tests
#   PG_TEST_RUN='Conformance' scripts/postgres/run.sh
#   scripts/postgres/run.sh -shell          # start it, print the URL, wait for ^C
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PATH:/usr/local/go/bin"

pgbin=""
find_pg() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then pgbin=$d; return 0; fi
  done
  return 1
}
if ! find_pg; then
  echo "postgres: not installed; apt-get install -y postgresql"
  if [ "$(id -u)" -ne 0 ]; then echo "postgres: need root to install it" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  # Debian's package starts a cluster of its own; this script uses its own.
  find_pg || { echo "postgres: installed but no initdb found" >&2; exit 1; }
fi

# PostgreSQL refuses to run as root: run it as the postgres user (the
# package creates it) when we are root, else as ourselves.
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  as_pg=(runuser -u postgres --)
fi

dir=$(mktemp -d /tmp/scaiwave-pg.XXXXXX)
chmod 0755 "$dir"
[ ${#as_pg[@]} -eq 0 ] || chown postgres "$dir"
pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "$pw" >"$dir/pw"
[ ${#as_pg[@]} -eq 0 ] || chown postgres "$dir/pw"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 55432)

cleanup() {
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

"${as_pg[@]}" "$pgbin/initdb" -D "$dir/data" -U scaiwave --pwfile="$dir/pw" -A scram-sha-256 -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log"; exit 1; }
rm -f "$dir/pw"
# Settings in the cluster's file, so that a plain "pg_ctl start" brings it
# back as it was: the tests stop and start it (the database down and back).
cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 300
fsync = on
CONF
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null \
  || { cat "$dir/server.log"; exit 1; }

export SCAIWAVE_TEST_POSTGRES="postgres://scaiwave:$pw@127.0.0.1:$port/postgres?sslmode=disable"
export SCAIWAVE_TEST_POSTGRES_REQUIRED=1
export SCAIWAVE_TEST_PG_CTL="${as_pg[*]} $pgbin/pg_ctl -D $dir/data -l $dir/server.log"
export SCAIWAVE_TEST_PG_PORT=$port
echo "postgres: $("$pgbin/postgres" --version) on 127.0.0.1:$port"

if [ "${1:-}" = "-shell" ]; then
  echo "SCAIWAVE_TEST_POSTGRES=$SCAIWAVE_TEST_POSTGRES"
  echo "SCAIWAVE_TEST_PG_CTL='$SCAIWAVE_TEST_PG_CTL'"
  echo "^C (or SIGTERM) stops it"
  sleep infinity &
  sleeper=$!
  trap 'kill "$sleeper" 2>/dev/null; exit 0' INT TERM
  wait "$sleeper"
  exit 0
fi
go test -tags postgres -count=1 -run "${PG_TEST_RUN:-Conformance|Postgres|Replicas|Shared|StoreHandoffs|PruneShortLived}" ${PG_TEST_FLAGS:-} .
