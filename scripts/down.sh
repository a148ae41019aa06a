#!/usr/bin/env bash
# `just down`: stop the services `just up` started (and its private Postgres cluster, if any).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
run="$here/.just-run"
for pidfile in "$run"/*.pid; do
  [ -f "$pidfile" ] || continue
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    echo "stopped $(basename "$pidfile" .pid)"
  fi
  rm -f "$pidfile"
done
if [ -s "$run/pg/PG_VERSION" ]; then
  bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
  runas=(); [ "$(id -u)" = 0 ] && runas=(runuser -u postgres --)
  "${runas[@]}" "$bindir/pg_ctl" -D "$run/pg" stop -m fast >/dev/null 2>&1 && echo "stopped the private postgres cluster" || true
fi
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 && [ -f "$here/docker-compose.yml" ]; then
  (cd "$here" && docker compose down >/dev/null 2>&1) || true
fi
