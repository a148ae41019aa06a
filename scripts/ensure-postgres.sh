#!/usr/bin/env bash
# Make sure a PostgreSQL server is reachable and print its admin URL on stdout.
# Order: $DATABASE_URL (or the default 127.0.0.1:5432) if reachable → start an
# installed-but-stopped Debian cluster → Docker Compose where an engine runs →
# a private cluster from the installed server binaries (./.just-run/pg, port
# 5433) → (CI or MANA_INSTALL_POSTGRES=1, as root) apt-get install postgresql.
# Progress goes to stderr; only the URL goes to stdout.
set -euo pipefail
log() { echo "ensure-postgres: $*" >&2; }
here="$(cd "$(dirname "$0")/.." && pwd)"
default_url="postgres://postgres@127.0.0.1:5432/postgres"
url="${DATABASE_URL:-$default_url}"

ready() { command -v pg_isready >/dev/null 2>&1 && pg_isready -q -d "$1" -t 2; }
wait_ready() {
  for _ in $(seq 1 60); do ready "$1" && return 0; sleep 0.5; done
  return 1
}

if ready "$url"; then echo "$url"; exit 0; fi

start_debian_clusters() {
  command -v pg_lsclusters >/dev/null 2>&1 || return 1
  local started=1
  while read -r ver name _port status _rest; do
    [ "$ver" = "Ver" ] && continue
    if [ "$status" != "online" ]; then
      log "starting cluster $ver/$name"
      pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start >&2 || true
    fi
    started=0
  done < <(pg_lsclusters 2>/dev/null)
  return $started
}

# Debian clusters made by apt authenticate TCP with passwords: trust loopback
# for the tests (only for clusters this script set up, marked by a file).
trust_loopback() {
  local ver hba
  for hba in /etc/postgresql/*/main/pg_hba.conf; do
    [ -f "$hba" ] || continue
    if ! grep -q "mana: trust loopback" "$hba"; then
      log "trusting loopback connections in $hba"
      sed -i '1i # mana: trust loopback (added by scripts/ensure-postgres.sh)\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
      ver="$(basename "$(dirname "$(dirname "$hba")")")"
      pg_ctlcluster --skip-systemctl-redirect "$ver" main reload >&2 || true
    fi
  done
}

if start_debian_clusters && wait_ready "$default_url"; then echo "$default_url"; exit 0; fi

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  log "starting postgres with docker compose"
  (cd "$here" && docker compose up -d postgres >&2)
  if wait_ready "$default_url"; then echo "$default_url"; exit 0; fi
fi

bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
if [ -z "$bindir" ] && { [ -n "${CI:-}" ] || [ "${MANA_INSTALL_POSTGRES:-}" = 1 ]; } && [ "$(id -u)" = 0 ]; then
  log "installing postgresql from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  trust_loopback
  if start_debian_clusters && wait_ready "$default_url"; then echo "$default_url"; exit 0; fi
  bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
fi

if [ -n "$bindir" ]; then
  # A debian cluster that exists but rejects us (password auth): trust loopback and retry.
  if [ "$(id -u)" = 0 ] && ls /etc/postgresql/*/main/pg_hba.conf >/dev/null 2>&1; then
    trust_loopback
    if wait_ready "$default_url" && psql "$default_url" -qAtc 'select 1' >/dev/null 2>&1; then
      echo "$default_url"; exit 0
    fi
  fi
  data="$here/.just-run/pg"
  local_url="postgres://postgres@127.0.0.1:5433/postgres"
  runas=()
  if [ "$(id -u)" = 0 ]; then runas=(runuser -u postgres --); fi
  if [ ! -s "$data/PG_VERSION" ]; then
    log "initialising a private cluster in $data"
    mkdir -p "$data"
    [ "$(id -u)" = 0 ] && chown -R postgres: "$here/.just-run"
    "${runas[@]}" "$bindir/initdb" -D "$data" -U postgres --auth=trust >&2
  fi
  if ! ready "$local_url"; then
    "${runas[@]}" "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -o "-p 5433 -k /tmp -c listen_addresses=127.0.0.1" start >&2
  fi
  if wait_ready "$local_url"; then echo "$local_url"; exit 0; fi
fi

log "no PostgreSQL could be found or started. Set DATABASE_URL, install postgresql, or start Docker."
exit 1
