#!/usr/bin/env bash
# Validate the deployment files OFFLINE (no cluster, no Docker, no network
# beyond PyPI for the first install):
#   1. render every kustomization under deploy/k8s (base, overlays/*) with
#      `kubectl kustomize` when kubectl is installed, else with the fallback
#      renderer in deploy/tools/check_deploy.py (when both exist, their outputs
#      must agree, which keeps the fallback honest);
#   2. validate every rendered object, strictly (unknown fields are errors),
#      against the Kubernetes OpenAPI schemas bundled in the PyPI package
#      kubernetes-validate, for each version in $K8S_VERSIONS;
#   3. check rules schemas cannot express (deploy/tools/check_deploy.py policy);
#   4. check docker-compose.yml + .env.example, deploy/Dockerfile and the
#      Prometheus configs with Python (`docker compose config` needs Docker).
# Tools go to a private virtualenv (idempotent; reused on the next run).
# Knobs: K8S_VERSIONS="1.29.0 1.37.0" (schema versions, 1.25–1.37 bundled),
# MANA_RENDERER=fallback (ignore kubectl), MANA_VALIDATE_VENV=<dir>.
# Exit status: 0 when everything is valid, 1 otherwise.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
started="$(date +%s)"

KV_VERSION="1.37.0"                      # the validator (PyPI kubernetes-validate)
PYYAML_VERSION="6.0.3"
K8S_VERSIONS="${K8S_VERSIONS:-1.29.0 1.37.0}" # oldest supported cluster, newest schema bundled
venv="${MANA_VALIDATE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/mana-validate-manifests}"
tools="$here/deploy/tools/check_deploy.py"
log() { echo "validate-manifests: $*" >&2; }

# --- 1. tools -----------------------------------------------------------------
py="$venv/bin/python"
have_tools() {
  "$py" - "$KV_VERSION" <<'PY' 2>/dev/null
import sys, importlib.metadata as m
import yaml, kubernetes_validate  # noqa: F401
sys.exit(m.version("kubernetes-validate") != sys.argv[1])
PY
}
if ! have_tools; then
  log "installing kubernetes-validate==$KV_VERSION into $venv"
  if ! python3 -m venv "$venv" >&2; then
    log "python3 -m venv failed; install python3-venv (Debian) and retry"; exit 1
  fi
  "$py" -m pip install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KV_VERSION" "PyYAML==$PYYAML_VERSION" >&2
  have_tools || { log "kubernetes-validate did not install"; exit 1; }
fi
kv="$venv/bin/kubernetes-validate"

failures=0
fail() { echo "  ✗ $*" >&2; failures=$((failures + 1)); }
ok() { echo "  ✓ $*"; }

renderer="fallback renderer (deploy/tools/check_deploy.py render)"
kubectl_ok=false
if [ "${MANA_RENDERER:-}" != fallback ] && command -v kubectl >/dev/null 2>&1 \
  && kubectl kustomize --help >/dev/null 2>&1; then
  kubectl_ok=true
  kz="$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p')"
  renderer="kubectl kustomize (kustomize ${kz:-?}), cross-checked by the fallback renderer"
fi

echo "validator: kubernetes-validate $("$py" -c 'import importlib.metadata as m; print(m.version("kubernetes-validate"))')" \
  "(bundled schemas; strict) against Kubernetes ${K8S_VERSIONS// /, }"
echo "renderer:  $renderer"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

summary() { # file → "N objects: Kind×n, …"
  "$py" - "$1" <<'PY'
import sys, collections, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
c = collections.Counter(d.get("kind") for d in docs)
print(f"{len(docs)} objects: " + ", ".join(f"{k}×{n}" for k, n in sorted(c.items())))
PY
}

validate_k8s() { # label, file
  local label="$1" file="$2" v report
  for v in $K8S_VERSIONS; do
    if ! report="$("$kv" --strict --quiet -k "$v" "$file" 2>&1)"; then
      fail "$label does not validate against Kubernetes $v:"
      printf '%s\n' "$report" | sed 's/^/      /' >&2
      return
    fi
  done
  ok "$label: $(summary "$file") — schema-valid"
}

# --- 2./3. Kubernetes -------------------------------------------------------------
echo "kubernetes (deploy/k8s):"
for dir in deploy/k8s/base deploy/k8s/overlays/*/; do
  dir="${dir%/}"
  [ -f "$dir/kustomization.yaml" ] || continue
  name="$(echo "$dir" | tr '/' '_')"
  rendered="$out/$name.yaml"
  if ! "$py" "$tools" render "$dir" >"$out/$name.fallback.yaml"; then
    fail "$dir: the fallback renderer failed"; continue
  fi
  if $kubectl_ok; then
    if ! kubectl kustomize "$dir" >"$rendered" 2>"$out/$name.err"; then
      fail "$dir: kubectl kustomize failed:"; sed 's/^/      /' "$out/$name.err" >&2; continue
    fi
    "$py" "$tools" same "$rendered" "$out/$name.fallback.yaml" || fail "$dir: the two renderers disagree"
  else
    cp "$out/$name.fallback.yaml" "$rendered"
  fi
  validate_k8s "$dir" "$rendered"
  if "$py" "$tools" policy "$rendered" --secret-example deploy/k8s/base/secret.example.yaml; then
    ok "$dir: policy (probes on /health, non-root, read-only root fs, limits, selectors, refs, Prometheus annotations)"
  else
    fail "$dir: policy"
  fi
done
# Not part of any kustomization, but it must still be a valid object.
validate_k8s "deploy/k8s/base/secret.example.yaml" deploy/k8s/base/secret.example.yaml

# --- 4. compose, Dockerfile, Prometheus ---------------------------------------------
echo "docker compose, Dockerfile, Prometheus:"
if "$py" "$tools" compose docker-compose.yml .env.example; then
  ok "docker-compose.yml: YAML, services, depends_on, loopback ports, health checks, variables documented in .env.example"
else
  fail "docker-compose.yml"
fi
if "$py" "$tools" dockerfile deploy/Dockerfile; then
  ok "deploy/Dockerfile: stages, pinned bases, non-root numeric USER, HEALTHCHECK"
else
  fail "deploy/Dockerfile"
fi
if "$py" "$tools" prometheus deploy/prometheus/*.yml; then
  ok "deploy/prometheus/*.yml: scrape configs"
else
  fail "deploy/prometheus"
fi

elapsed=$(( $(date +%s) - started ))
if [ "$failures" -gt 0 ]; then
  echo "validate-manifests: $failures check(s) FAILED (${elapsed}s)" >&2
  exit 1
fi
echo "validate-manifests: all valid (${elapsed}s)"
