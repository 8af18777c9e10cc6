#!/usr/bin/env bash
# Runs the whole suite: starts a throwaway Redis and a throwaway PostgreSQL on loopback,
# runs pytest (the integration tests run once per database), stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${REDIS_TEST_PORT:-6390}
dir=$(mktemp -d)

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ ! -x "$pg_bin/initdb" ]; then
  echo "PostgreSQL is not installed: run make system-deps" >&2
  exit 1
fi
pg_port=${POSTGRES_TEST_PORT:-$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
pg_dir=$(mktemp -d)
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  # PostgreSQL refuses to run as root: its files and processes belong to the postgres user.
  chown postgres "$pg_dir"
  as_pg=(runuser -u postgres --)
fi

stop() {
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" stop -m immediate >/dev/null 2>&1 || true
  rm -rf "$dir" "$pg_dir"
}
trap stop EXIT

redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
  --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
# Trust on loopback only, no fsync: a database that lives as long as this script.
"${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust --no-sync >/dev/null
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/postgres.log" -w -t 60 \
  -o "-h 127.0.0.1 -p $pg_port -k $pg_dir -F" start >/dev/null
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
export REDIS_URL="redis://127.0.0.1:$port/0"
# The maintenance database: each test creates (and drops) a database of its own there.
export TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$pg_port/postgres"
# Tests spend most of their time waiting on worker processes, so they run side by side:
# pytest-xdist, one module per process (--dist loadscope keeps a module's shared server in
# one process). TEST_PROCESSES=0 runs them one after another.
.venv/bin/python -m pytest -n "${TEST_PROCESSES:-3}" --dist loadscope "$@"
