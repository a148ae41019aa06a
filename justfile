# The one entry point. `just --list` shows every recipe.

set shell := ["bash", "-euo", "pipefail", "-c"]
set dotenv-load := true

export CARGO_TARGET_DIR := env_var_or_default("CARGO_TARGET_DIR", justfile_directory() / "target")
service_key := env_var_or_default("MANA_SERVICE_KEY", "dev-service-key-change-me")
auth_url := env_var_or_default("AUTH_INTERNAL_URL", "http://127.0.0.1:3001")

default:
    @just --list

# Start the whole system: Postgres (existing, Docker, or a local cluster), then the services.
up:
    scripts/up.sh

# Stop what `just up` started.
down:
    scripts/down.sh

# Run every test (ensures Postgres first).
test:
    #!/usr/bin/env bash
    set -euo pipefail
    export TEST_DATABASE_URL="$(scripts/ensure-postgres.sh)"
    if cargo nextest --version >/dev/null 2>&1; then
      cargo nextest run --workspace --no-fail-fast
    else
      cargo test --workspace --no-fail-fast
    fi

# Format check and clippy with warnings as errors.
# Then licences/bans/sources (cargo deny; advisories need the network, left out)
# and unused dependencies (cargo machete). Install: `just lint-tools`.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo deny check licenses bans sources
    cargo machete

# Install the lint tools from crates.io into the cargo home when missing.
lint-tools:
    #!/usr/bin/env bash
    set -euo pipefail
    command -v cargo-deny >/dev/null 2>&1 || cargo install --locked cargo-deny
    command -v cargo-machete >/dev/null 2>&1 || cargo install --locked cargo-machete

# End-to-end smoke test of the release binaries (fresh database, ticks on both runners).
smoke:
    scripts/smoke.sh

# Validate docker-compose, the Dockerfile and the Kubernetes manifests offline.
validate-deploy:
    scripts/validate-manifests.sh

# Load the persona catalogue (data/personas.json) into a running auth-internal.
seed:
    curl -fsS -X PUT "{{auth_url}}/api/v1/internal/personas" \
        -H "x-service-key: {{service_key}}" -H "content-type: application/json" \
        --data-binary @data/personas.json
    @echo

# Create a console operator (or set a new password): prompts on a terminal, else reads one line of stdin.
operator email:
    cargo run --quiet --release -p auth-internal -- operator add "{{email}}"

# Fire one tick on a runner now: `just tick persona` (port 3070) or `just tick mission` (port 3066).
tick runner="persona":
    #!/usr/bin/env bash
    set -euo pipefail
    case "{{runner}}" in
      persona) url="${PERSONA_RUNNER_URL:-http://127.0.0.1:3070}" ;;
      mission) url="${MISSION_RUNNER_URL:-http://127.0.0.1:3066}" ;;
      *) echo "usage: just tick persona|mission" >&2; exit 2 ;;
    esac
    curl -sS -X POST "$url/internal/tick" -H "x-service-key: {{service_key}}"
    echo

# One persona day against a real local llama.cpp server (SmolLM2-135M, from PyPI) via the
# `openai` provider, no shims. Not in CI: the first run builds llama-cpp-python (~15 min).
e2e-local-llm:
    scripts/e2e-local-llm.sh

# Benchmarks (release build); they print figures, they do not assert.
bench:
    #!/usr/bin/env bash
    set -euo pipefail
    export TEST_DATABASE_URL="$(scripts/ensure-postgres.sh)"
    cargo bench -p auth-internal --bench personas   # claim latency 10k vs 1M, action ingest
    cargo bench -p auth-internal --bench records    # MCP calls/s, sync push, pull vs log size
    cargo bench -p auth-internal --bench missions   # mission claim vs change-log size, replay baseline
    cargo bench -p auth-internal --bench reports    # reports p50/p95 over 1M feedback, 1M actions, 100k runs
    cargo bench -p persona-runner --bench day       # persona-days/s, RSS per concurrent persona
    cargo bench -p persona-runner --bench tokens    # billed-equivalent input tokens per day: no cache + all tools vs cache + mix
