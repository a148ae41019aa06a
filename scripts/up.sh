#!/usr/bin/env bash
# `just up`: ensure Postgres, build the release binaries, start the services in
# the background (logs and pids in .just-run/), seed the persona catalogue.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
run="$here/.just-run"
mkdir -p "$run"

admin_url="$(scripts/ensure-postgres.sh)"
# The app database: same server, database `mana` (created if missing).
db_url="${admin_url%/*}/mana"
if command -v psql >/dev/null 2>&1; then
  psql "$admin_url" -qAtc "SELECT 1 FROM pg_database WHERE datname = 'mana'" | grep -q 1 \
    || psql "$admin_url" -qc "CREATE DATABASE mana" >/dev/null
fi

export MANA_SERVICE_KEY="${MANA_SERVICE_KEY:-dev-service-key-change-me}"
export PERSONA_SEED_SECRET="${PERSONA_SEED_SECRET:-dev-persona-seed-secret-rotate-in-prod}"
export MANA_LOG_FORMAT="${MANA_LOG_FORMAT:-pretty}"
export DATABASE_URL="${DATABASE_URL:-$db_url}"

echo "building release binaries…"
cargo build --release -p auth-internal -p persona-runner -p mission-runner >&2
bin="${CARGO_TARGET_DIR:-$here/target}/release"

start() { # name, port, binary, env…
  local name="$1" port="$2" binary="$3"; shift 3
  if [ -f "$run/$name.pid" ] && kill -0 "$(cat "$run/$name.pid")" 2>/dev/null; then
    echo "$name already running (pid $(cat "$run/$name.pid"))"; return
  fi
  env "$@" "$bin/$binary" >"$run/$name.log" 2>&1 &
  echo $! >"$run/$name.pid"
  for _ in $(seq 1 60); do
    curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && { echo "$name listening on http://127.0.0.1:$port"; return; }
    sleep 0.5
  done
  echo "$name did not become healthy; see $run/$name.log" >&2; exit 1
}

start auth-internal 3001 auth-internal BIND_ADDR=127.0.0.1:3001
curl -fsS -X PUT http://127.0.0.1:3001/api/v1/internal/personas \
  -H "x-service-key: ${MANA_SERVICE_KEY%%,*}" -H "content-type: application/json" \
  --data-binary @data/personas.json >/dev/null && echo "persona catalogue seeded (data/personas.json)"

# Development only: one console operator, printed below with its password.
operator_line=""
if [ "${MANA_ENVIRONMENT:-development}" = "development" ]; then
  op_email="${MANA_DEV_OPERATOR_EMAIL:-operator@mana.test}"
  op_file="$run/operator-password"
  [ -s "$op_file" ] || (umask 077; head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$op_file")
  op_password="$(cat "$op_file")"
  printf '%s\n' "$op_password" | "$bin/auth-internal" operator add "$op_email" >/dev/null
  operator_line="Operator console: http://127.0.0.1:3001/console   sign in as $op_email / $op_password (development only; password in $op_file)"
fi

for runner in persona-runner:3070 mission-runner:3066; do
  name="${runner%%:*}"; port="${runner##*:}"
  start "$name" "$port" "$name" BIND_ADDR="127.0.0.1:$port" AUTH_INTERNAL_URL=http://127.0.0.1:3001
done

cat <<EOT

The system is up. Logs and pids: $run/
LLM: ${LLM_PROVIDER:-sim unless ANTHROPIC_API_KEY / OPENAI_API_KEY / OPENAI_BASE_URL is set} (see README, "Configuring an LLM")
Service key for internal routes and ticks: \$MANA_SERVICE_KEY (default dev-service-key-change-me)
  auth-internal   http://127.0.0.1:3001   (/health, /metrics, /mcp, /api/v1/…)
  persona-runner  http://127.0.0.1:3070   fire a tick: just tick persona
  mission-runner  http://127.0.0.1:3066   fire a tick: just tick mission
Stop everything: just down
EOT
[ -z "$operator_line" ] || echo "$operator_line"
