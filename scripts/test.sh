#!/usr/bin/env bash
# Runs the whole suite: starts a throwaway Redis on loopback, runs pytest, stops Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${REDIS_TEST_PORT:-6390}
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
  --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || kill "$(cat "$dir/redis.pid")" 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
export REDIS_URL="redis://127.0.0.1:$port/0"
.venv/bin/python -m pytest "$@"
