#!/usr/bin/env bash
# End-to-end smoke test of the release binaries: a fresh database, the three
# services, the persona catalogue, one user with a due mission; fire a tick on
# each runner with the service key; assert through the APIs that action and
# feedback rows and an awaiting-review iteration exist, every /health is 200
# and /metrics counts the ticks. Everything is torn down, even on failure.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
work="$(mktemp -d /tmp/mana-smoke.XXXXXX)"
pids=()
admin_url="$(scripts/ensure-postgres.sh)"
db="mana_smoke_$$"
db_url="${admin_url%/*}/$db"
key="smoke-service-key-$$-0123456789"
ports=(31001 31070 31066)
auth="http://127.0.0.1:${ports[0]}"; persona="http://127.0.0.1:${ports[1]}"; mission="http://127.0.0.1:${ports[2]}"

cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  psql "$admin_url" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  if [ "$status" -ne 0 ]; then
    echo "smoke: FAILED; service logs:" >&2
    for f in "$work"/*.log; do echo "--- $f" >&2; tail -n 40 "$f" >&2; done
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT INT TERM

fail() { echo "smoke: $*" >&2; exit 1; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {'d': d}))" "$1"; }

echo "smoke: building release binaries"
cargo build --release -q -p auth-internal -p persona-runner -p mission-runner
bin="${CARGO_TARGET_DIR:-$here/target}/release"
psql "$admin_url" -qc "CREATE DATABASE $db" >/dev/null

start() { # name port env...
  local name="$1" port="$2"; shift 2
  env "$@" MANA_SERVICE_KEY="$key" PERSONA_SEED_SECRET=smoke-seed-secret MANA_LOG_FORMAT=json \
    BIND_ADDR="127.0.0.1:$port" "$bin/$name" >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 120); do
    curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  fail "$name did not become healthy"
}
start auth-internal "${ports[0]}" DATABASE_URL="$db_url"
start persona-runner "${ports[1]}" AUTH_INTERNAL_URL="$auth" TICK_INTERVAL_SECS=0 LLM_PROVIDER=sim
start mission-runner "${ports[2]}" AUTH_INTERNAL_URL="$auth" TICK_INTERVAL_SECS=0 LLM_PROVIDER=sim

echo "smoke: seeding the catalogue and a user with a due mission"
seeded="$(curl -fsS -X PUT "$auth/api/v1/internal/personas" -H "x-service-key: $key" \
  -H 'content-type: application/json' --data-binary @data/personas.json)"
[ "$(echo "$seeded" | json 'd["created"]')" -ge 1 ] || fail "catalogue not seeded: $seeded"
token="$(curl -fsS -X POST "$auth/api/v1/auth/register" -H 'content-type: application/json' \
  -d '{"email":"smoke@example.com","password":"smoke password"}' | json 'd["accessToken"]')"
due="$(date -u -d '-5 minutes' +%Y-%m-%dT%H:%M:%SZ)"
curl -fsS -X POST "$auth/api/v1/sync/push" -H "authorization: Bearer $token" -H 'content-type: application/json' -d @- >/dev/null <<JSON
{"clientId":"smoke","changes":[
 {"appId":"todo","table":"tasks","recordId":"t1","op":"insert","data":{"title":"Steuererklärung","isCompleted":false}},
 {"appId":"ai","table":"aiMissions","recordId":"m1","op":"insert","data":{"title":"Morgenplan",
  "objective":"Plan my day from my open todos","conceptMarkdown":"","state":"active",
  "cadence":{"kind":"daily","atHour":6,"atMinute":0},"nextRunAt":"$due",
  "inputs":[{"module":"todo","table":"tasks","id":"t1"}],"iterations":[]}}]}
JSON

echo "smoke: firing ticks"
p_report="$(curl -fsS -X POST "$persona/internal/tick" -H "x-service-key: $key")"
m_report="$(curl -fsS -X POST "$mission/internal/tick" -H "x-service-key: $key")"
echo "  persona tick: $p_report"
echo "  mission tick: $m_report"
[ "$(echo "$p_report" | json 'd["due"]')" -ge 1 ] || fail "no persona was due"
[ "$(echo "$m_report" | json 'd["plansProduced"]')" -eq 1 ] || fail "the mission was not planned"

echo "smoke: checking results through the API"
ids="$(curl -fsS "$auth/api/v1/internal/personas/due?limit=500" -H "x-service-key: $key" >/dev/null; \
  psql "$db_url" -qAtc "SELECT user_id FROM personas ORDER BY slug")"
actions=0; rated=0
for id in $ids; do
  n="$(curl -fsS "$auth/api/v1/internal/personas/$id" -H "x-service-key: $key" | json 'd["actionsTotal"]')"
  actions=$((actions + n))
  m="$(curl -fsS "$auth/api/v1/internal/personas/$id/ratings" -H "x-service-key: $key" | json 'len(d["modules"])')"
  rated=$((rated + m))
done
[ "$actions" -ge 1 ] || fail "no action rows were written"
[ "$rated" -ge 1 ] || fail "no feedback rows were written"
echo "  $actions action rows, $rated rated modules"
status="$(curl -fsS "$auth/api/v1/sync/pull?limit=1000" -H "authorization: Bearer $token" | \
  json '[c for c in d["changes"] if c["recordId"]=="m1" and c["data"] and "iterations" in c["data"]][-1]["data"]["iterations"][-1]["overallStatus"]')"
[ "$status" = "awaiting-review" ] || fail "mission iteration is $status, not awaiting-review"
echo "  mission iteration: $status"

for url in "$auth" "$persona" "$mission"; do
  code="$(curl -s -o /dev/null -w '%{http_code}' "$url/health")"
  [ "$code" = 200 ] || fail "$url/health answered $code"
done
# Read each /metrics whole before matching: `curl | grep -q` under pipefail fails at random
# when grep exits on its first match while curl is still writing (curl: (23), SIGPIPE).
p_metrics="$(curl -fsS "$persona/metrics")" || fail "persona-runner /metrics failed"
m_metrics="$(curl -fsS "$mission/metrics")" || fail "mission-runner /metrics failed"
for m in "$p_metrics" "$m_metrics"; do
  grep -E '_ticks(_total)?\{' <<<"$m" | grep -v ' 0$' >/dev/null || fail "a runner's /metrics does not count the tick"
done
grep -qF 'mana_persona_runner_llm_requests_total{provider="sim",status="ok"}' <<<"$p_metrics" \
  || fail "persona-runner /metrics does not count LLM requests"
grep -qF 'mana_mission_runner_missions_total{result="planned"} 1' <<<"$m_metrics" \
  || fail "mission-runner /metrics does not count the planned mission"
echo "smoke: passed"
