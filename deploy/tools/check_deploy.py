#!/usr/bin/env python3
"""Offline checks of deploy/ and docker-compose.yml, used by scripts/validate-manifests.sh.

Subcommands (each exits 1 with one line per problem, 0 when clean):

  render DIR            Render a kustomization to stdout, for machines without
                        `kubectl kustomize`. Supports only what deploy/k8s uses:
                        resources (files, directories), namespace, labels /
                        commonLabels, images, replicas, strategic-merge patches
                        by path. Anything else is refused, never ignored.
  same A B              Two rendered streams hold the same objects (order-free).
  policy FILE [--secret-example F]
                        Rules the schemas cannot express: selectors match pod
                        labels, Services/PDBs select something, probes on /health,
                        non-root + read-only root + dropped capabilities, resource
                        limits, pinned images, Prometheus annotations naming a
                        container port, ConfigMap/Secret references resolvable.
  compose FILE ENV_EXAMPLE
                        docker-compose.yml structure: services, images/builds,
                        depends_on, loopback-only ports, health checks, variable
                        interpolation syntax, every variable documented in
                        .env.example, named volumes and bind sources exist.
  dockerfile FILE       Stages referenced exist, non-root USER, HEALTHCHECK, no
                        `latest` base images.
  prometheus FILE...    Scrape configs parse and name jobs and targets.

Only PyYAML is needed (installed by the calling script).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
SCALABLE_KINDS = {"Deployment", "StatefulSet", "ReplicaSet"}
OWN_IMAGE = "mana-back-office"


class Problems:
    """Collects problems; `finish` prints them and picks the exit code."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.items: list[str] = []

    def add(self, msg: str) -> None:
        self.items.append(msg)

    def finish(self) -> int:
        for item in self.items:
            print(f"  ✗ {self.what}: {item}", file=sys.stderr)
        return 1 if self.items else 0


def load_docs(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


# --------------------------------------------------------------------------- render


class RenderError(Exception):
    pass


def kustomization_file(directory: Path) -> Path:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        if (directory / name).is_file():
            return directory / name
    raise RenderError(f"no kustomization.yaml in {directory}")


SUPPORTED_KEYS = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "labels",
    "commonLabels",
    "images",
    "replicas",
    "patches",
}


def pod_specs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod specs inside a workload (none for other kinds)."""
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind in POD_TEMPLATE_KINDS:
        return [((spec.get("template") or {}).get("spec")) or {}]
    if kind == "CronJob":
        tmpl = (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template")) or {}
        return [tmpl.get("spec") or {}]
    if kind == "Pod":
        return [spec]
    return []


def template_metadatas(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Metadata blocks of pod (and job) templates, created when missing."""
    kind = doc.get("kind")
    if kind not in POD_TEMPLATE_KINDS and kind != "CronJob":
        return []
    spec = doc.setdefault("spec", {})
    if kind in POD_TEMPLATE_KINDS:
        return [spec.setdefault("template", {}).setdefault("metadata", {})]
    if kind == "CronJob":
        jt = spec.setdefault("jobTemplate", {})
        return [
            jt.setdefault("metadata", {}),
            jt.setdefault("spec", {}).setdefault("template", {}).setdefault("metadata", {}),
        ]
    return []


def merge(base: Any, patch: Any) -> Any:
    """Strategic merge, simplified: maps merge, lists of named maps merge by name,
    other lists and scalars are replaced, null deletes."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            if isinstance(k, str) and k.startswith("$"):
                raise RenderError(f"patch directive {k} is not supported by the fallback renderer")
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = merge(out[k], v)
            else:
                out[k] = v
        return out
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(x, dict) and "name" in x for x in base + patch)
    ):
        out = list(base)
        for item in patch:
            for i, existing in enumerate(out):
                if existing["name"] == item["name"]:
                    out[i] = merge(existing, item)
                    break
            else:
                out.append(item)
        return out
    return patch


def set_image(container: dict[str, Any], images: list[dict[str, Any]]) -> None:
    image = container.get("image", "")
    name, tag, digest = image, None, None
    if "@" in name:
        name, digest = name.split("@", 1)
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    for rule in images:
        if rule.get("name") != name:
            continue
        new_name = rule.get("newName", name)
        if "digest" in rule:
            container["image"] = f"{new_name}@{rule['digest']}"
        elif "newTag" in rule:
            container["image"] = f"{new_name}:{rule['newTag']}"
        elif digest:
            container["image"] = f"{new_name}@{digest}"
        elif tag:
            container["image"] = f"{new_name}:{tag}"
        else:
            container["image"] = new_name
        return


def render(directory: Path) -> list[dict[str, Any]]:
    kfile = kustomization_file(directory)
    kust = yaml.safe_load(kfile.read_text(encoding="utf-8")) or {}
    unsupported = set(kust) - SUPPORTED_KEYS
    if unsupported:
        raise RenderError(
            f"{kfile}: {', '.join(sorted(unsupported))} not supported by the fallback renderer "
            "(install kubectl, which embeds kustomize)"
        )
    docs: list[dict[str, Any]] = []
    for res in kust.get("resources", []):
        path = (directory / res).resolve()
        if path.is_dir():
            docs.extend(render(path))
        elif path.is_file():
            docs.extend(load_docs(path))
        else:
            raise RenderError(f"{kfile}: resource {res} does not exist")

    for entry in kust.get("patches", []):
        if set(entry) - {"path"}:
            raise RenderError(f"{kfile}: only `patches: - path:` is supported by the fallback renderer")
        for patch in load_docs(directory / entry["path"]):
            kind, name = patch.get("kind"), (patch.get("metadata") or {}).get("name")
            targets = [
                i for i, d in enumerate(docs) if d.get("kind") == kind and d.get("metadata", {}).get("name") == name
            ]
            if len(targets) != 1:
                raise RenderError(f"{kfile}: patch for {kind}/{name} matches {len(targets)} objects")
            i = targets[0]
            patched = merge(docs[i], {k: v for k, v in patch.items() if k not in ("apiVersion", "kind")})
            patched["metadata"]["name"] = name
            docs[i] = patched

    namespace = kust.get("namespace")
    if namespace:
        for d in docs:
            meta = d.setdefault("metadata", {})
            if d.get("kind") == "Namespace":
                meta["name"] = namespace
            elif d.get("kind") not in CLUSTER_SCOPED:
                meta["namespace"] = namespace

    label_sets: list[tuple[dict[str, str], bool, bool]] = []
    if kust.get("commonLabels"):
        label_sets.append((kust["commonLabels"], True, True))
    for entry in kust.get("labels", []):
        label_sets.append(
            (entry.get("pairs", {}), bool(entry.get("includeSelectors")), bool(entry.get("includeTemplates")))
        )
    for pairs, selectors, templates in label_sets:
        for d in docs:
            d.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
            if templates or selectors:
                for meta in template_metadatas(d):
                    meta.setdefault("labels", {}).update(pairs)
            if selectors:
                if d.get("kind") == "Service":
                    d.setdefault("spec", {}).setdefault("selector", {}).update(pairs)
                elif d.get("kind") in POD_TEMPLATE_KINDS - {"Job"} or d.get("kind") == "PodDisruptionBudget":
                    d.setdefault("spec", {}).setdefault("selector", {}).setdefault("matchLabels", {}).update(pairs)

    images = kust.get("images", [])
    if images:
        for d in docs:
            for pod in pod_specs(d):
                for c in pod.get("containers", []) + pod.get("initContainers", []):
                    set_image(c, images)

    for rule in kust.get("replicas", []):
        hits = [
            d for d in docs if d.get("kind") in SCALABLE_KINDS and d.get("metadata", {}).get("name") == rule["name"]
        ]
        if not hits:
            raise RenderError(f"{kfile}: replicas for {rule['name']} match nothing")
        for d in hits:
            d["spec"]["replicas"] = rule["count"]
    return docs


def cmd_render(args: list[str]) -> int:
    try:
        docs = render(Path(args[0]))
    except (RenderError, yaml.YAMLError, OSError) as e:
        print(f"  ✗ render: {e}", file=sys.stderr)
        return 1
    yaml.safe_dump_all(docs, sys.stdout, sort_keys=True)
    return 0


def keyed(docs: list[dict[str, Any]]) -> dict[str, str]:
    out = {}
    for d in docs:
        meta = d.get("metadata", {})
        key = f"{d.get('apiVersion')}/{d.get('kind')}/{meta.get('namespace', '')}/{meta.get('name')}"
        out[key] = json.dumps(d, sort_keys=True)
    return out


def cmd_same(args: list[str]) -> int:
    a, b = keyed(load_docs(Path(args[0]))), keyed(load_docs(Path(args[1])))
    p = Problems("renderer parity")
    for key in sorted(set(a) | set(b)):
        if key not in a or key not in b:
            p.add(f"{key} only in {'first' if key in a else 'second'} rendering")
        elif a[key] != b[key]:
            p.add(f"{key} differs between the renderings")
    return p.finish()


# --------------------------------------------------------------------------- policy


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def cmd_policy(args: list[str]) -> int:
    path = Path(args[0])
    secret_example: Path | None = None
    if "--secret-example" in args:
        secret_example = Path(args[args.index("--secret-example") + 1])
    docs = load_docs(path)
    p = Problems(path.name)

    by_kind: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        by_kind.setdefault(d.get("kind", "?"), []).append(d)
    configmaps = {(d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in by_kind.get("ConfigMap", [])}
    secrets: dict[tuple[Any, str], set[str]] = {}
    for d in by_kind.get("Secret", []):
        keys = set((d.get("data") or {}).keys()) | set((d.get("stringData") or {}).keys())
        secrets[(d["metadata"].get("namespace"), d["metadata"]["name"])] = keys
    external: dict[str, set[str]] = {}
    if secret_example is not None:
        for d in load_docs(secret_example):
            if d.get("kind") == "Secret":
                external[d["metadata"]["name"]] = set((d.get("stringData") or {}).keys()) | set(
                    (d.get("data") or {}).keys()
                )

    # (namespace, labels of pod template, container ports by name) for each workload
    pods: list[tuple[Any, dict[str, str], set[str], str]] = []
    for d in docs:
        kind, meta = d.get("kind"), d.get("metadata", {})
        ident = f"{kind}/{meta.get('name')}"
        ns = meta.get("namespace")
        if kind not in CLUSTER_SCOPED and not ns:
            p.add(f"{ident} has no namespace")
        for pod in pod_specs(d):
            pod_sc = pod.get("securityContext") or {}
            if pod.get("automountServiceAccountToken") is not False:
                p.add(f"{ident}: automountServiceAccountToken should be false (no workload talks to the API)")
            for c in pod.get("containers", []) + pod.get("initContainers", []):
                cid = f"{ident}/{c.get('name')}"
                sc = c.get("securityContext") or {}
                image = c.get("image", "")
                if ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
                    p.add(f"{cid}: image {image!r} has no tag")
                elif image.endswith(":latest"):
                    p.add(f"{cid}: image {image!r} uses :latest")
                if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
                    p.add(f"{cid}: runAsNonRoot is not set")
                if sc.get("allowPrivilegeEscalation") is not False:
                    p.add(f"{cid}: allowPrivilegeEscalation must be false")
                if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                    p.add(f"{cid}: capabilities must drop ALL")
                own = image.startswith((OWN_IMAGE, "curlimages/curl"))
                if own and sc.get("readOnlyRootFilesystem") is not True:
                    p.add(f"{cid}: readOnlyRootFilesystem must be true")
                res = c.get("resources") or {}
                if not (res.get("requests") or {}).get("memory") or not (res.get("limits") or {}).get("memory"):
                    p.add(f"{cid}: memory request and limit are required")
                if not (res.get("requests") or {}).get("cpu"):
                    p.add(f"{cid}: cpu request is required")
                for env in c.get("env", []):
                    ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                    if ref:
                        key = (ns, ref["name"])
                        if key in secrets:
                            if ref["key"] not in secrets[key] and not ref.get("optional"):
                                p.add(f"{cid}: Secret {ref['name']} has no key {ref['key']}")
                        elif ref["name"] in external:
                            if ref["key"] not in external[ref["name"]]:
                                p.add(f"{cid}: key {ref['key']} missing from the example Secret {ref['name']}")
                        else:
                            p.add(f"{cid}: Secret {ref['name']} is neither rendered nor documented")
                    cref = (env.get("valueFrom") or {}).get("configMapKeyRef")
                    if cref and (ns, cref["name"]) not in configmaps:
                        p.add(f"{cid}: ConfigMap {cref['name']} does not exist")
                for src in c.get("envFrom", []):
                    if "configMapRef" in src and (ns, src["configMapRef"]["name"]) not in configmaps:
                        p.add(f"{cid}: ConfigMap {src['configMapRef']['name']} does not exist")
                mounts = {m["name"] for m in c.get("volumeMounts", [])}
                volumes = {v["name"] for v in pod.get("volumes", [])}
                for m in sorted(mounts - volumes):
                    p.add(f"{cid}: volumeMount {m} has no volume")

        if kind == "Deployment":
            spec = d["spec"]
            tmpl = spec["template"]
            labels = (tmpl.get("metadata") or {}).get("labels") or {}
            if not matches(spec["selector"].get("matchLabels") or {}, labels):
                p.add(f"{ident}: selector does not match the pod template labels")
            containers = tmpl["spec"]["containers"]
            port_names = {pt.get("name") for c in containers for pt in c.get("ports", [])}
            port_numbers = {str(pt.get("containerPort")) for c in containers for pt in c.get("ports", [])}
            pods.append((ns, labels, port_names | port_numbers, ident))
            for c in containers:
                if not c.get("image", "").startswith(OWN_IMAGE):
                    continue
                for probe in ("readinessProbe", "livenessProbe"):
                    get = (c.get(probe) or {}).get("httpGet") or {}
                    if get.get("path") != "/health":
                        p.add(f"{ident}/{c['name']}: {probe} must be GET /health")
                    elif str(get.get("port")) not in port_names | port_numbers:
                        p.add(f"{ident}/{c['name']}: {probe} port {get.get('port')} is not a container port")
                ann = (tmpl.get("metadata") or {}).get("annotations") or {}
                if ann.get("prometheus.io/scrape") != "true":
                    p.add(f'{ident}: pod template lacks prometheus.io/scrape: "true"')
                elif ann.get("prometheus.io/port") not in port_numbers:
                    p.add(f"{ident}: prometheus.io/port {ann.get('prometheus.io/port')} is not a container port")
                elif ann.get("prometheus.io/path", "/metrics") != "/metrics":
                    p.add(f"{ident}: prometheus.io/path should be /metrics")

    for d in by_kind.get("Service", []):
        ident = f"Service/{d['metadata']['name']}"
        sel = d["spec"].get("selector") or {}
        hits = [x for x in pods if x[0] == d["metadata"].get("namespace") and matches(sel, x[1])]
        if not hits:
            p.add(f"{ident}: selector matches no Deployment")
        for port in d["spec"].get("ports", []):
            target = str(port.get("targetPort", port.get("port")))
            for _, _, ports, who in hits:
                if target not in ports:
                    p.add(f"{ident}: targetPort {target} is not a port of {who}")
    for d in by_kind.get("PodDisruptionBudget", []):
        sel = (d["spec"].get("selector") or {}).get("matchLabels") or {}
        if not any(x[0] == d["metadata"].get("namespace") and matches(sel, x[1]) for x in pods):
            p.add(f"PodDisruptionBudget/{d['metadata']['name']}: selector matches no Deployment")
    names = [(d.get("kind"), d["metadata"].get("namespace"), d["metadata"].get("name")) for d in docs]
    for dup in sorted({n for n in names if names.count(n) > 1}, key=str):
        p.add(f"duplicate object {dup}")
    return p.finish()


# --------------------------------------------------------------------------- compose

INTERP = re.compile(r"\$(\$|\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
VAR_EXPR = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?$", re.DOTALL)


def strings(node: Any):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from strings(k)
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)


def env_example_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\s*#?\s*([A-Z][A-Z0-9_]*)=", line)
        if m:
            names.add(m.group(1))
    return names


def cmd_compose(args: list[str]) -> int:
    path, env_example = Path(args[0]), Path(args[1])
    p = Problems(path.name)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        p.add(f"invalid YAML: {e}")
        return p.finish()
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        p.add("no `services` mapping")
        return p.finish()
    allowed_top = {"name", "services", "volumes", "networks", "configs", "secrets", "include"}
    for key in data:
        if key not in allowed_top and not str(key).startswith("x-"):
            p.add(f"unknown top-level key {key!r}")

    documented = env_example_names(env_example)
    used: set[str] = set()
    for s in strings(data):
        for m in INTERP.finditer(s):
            if m.group(1) == "$":
                continue
            expr = m.group(2) if m.group(2) is not None else m.group(3)
            vm = VAR_EXPR.match(expr)
            if not vm:
                p.add(f"bad interpolation ${{{expr}}}")
                continue
            used.add(vm.group(1))
    services = data["services"]
    volumes = set((data.get("volumes") or {}).keys())
    for name, svc in services.items():
        if not isinstance(svc, dict):
            p.add(f"service {name} is not a mapping")
            continue
        if "image" not in svc and "build" not in svc:
            p.add(f"service {name} has neither image nor build")
        build = svc.get("build")
        if isinstance(build, dict):
            context = path.parent / build.get("context", ".")
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            if not dockerfile.is_file():
                p.add(f"service {name}: Dockerfile {dockerfile} does not exist")
        deps = svc.get("depends_on") or {}
        for dep, cond in deps.items() if isinstance(deps, dict) else ((d, None) for d in deps):
            if dep not in services:
                p.add(f"service {name} depends on unknown service {dep}")
            if isinstance(cond, dict) and cond.get("condition") not in (
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            ):
                p.add(f"service {name}: bad depends_on condition {cond}")
            if (
                isinstance(cond, dict)
                and cond.get("condition") == "service_healthy"
                and dep in services
                and not (services[dep].get("healthcheck") or {}).get("test")
            ):
                p.add(f"service {name} waits for {dep} to be healthy, but {dep} has no healthcheck")
        for port in svc.get("ports", []):
            if not (isinstance(port, str) and port.startswith("127.0.0.1:")):
                p.add(f"service {name}: port {port!r} is not bound to 127.0.0.1")
        env = svc.get("environment") or {}
        if isinstance(env, dict):
            for k, v in env.items():
                if v is not None and not isinstance(v, (str, int, float, bool)):
                    p.add(f"service {name}: environment {k} is not a scalar")
                if v is None:
                    used.add(k)  # taken from the shell / .env as is
        elif not isinstance(env, list):
            p.add(f"service {name}: environment must be a mapping or list")
        long_running = svc.get("restart", "no") != "no" and not svc.get("profiles")
        hc = svc.get("healthcheck") or {}
        if long_running and not hc.get("test"):
            p.add(f"service {name} runs continuously but has no healthcheck")
        if hc.get("test") and not isinstance(hc["test"], (list, str)):
            p.add(f"service {name}: healthcheck.test must be a list or string")
        if isinstance(hc.get("test"), list) and hc["test"][0] not in ("CMD", "CMD-SHELL", "NONE"):
            p.add(f"service {name}: healthcheck.test must start with CMD or CMD-SHELL")
        cmd = svc.get("command")
        if cmd is not None and not isinstance(cmd, (list, str)):
            p.add(f"service {name}: command must be a list or string")
        for vol in svc.get("volumes", []):
            src = vol.split(":", 1)[0] if isinstance(vol, str) else (vol or {}).get("source", "")
            if src.startswith((".", "/")):
                if not (path.parent / src).exists():
                    p.add(f"service {name}: bind source {src} does not exist")
            elif src and src not in volumes:
                p.add(f"service {name}: named volume {src} is not declared")
    for var in sorted(used - documented):
        p.add(f"variable {var} is used but not documented in {env_example.name}")
    return p.finish()


# --------------------------------------------------------------------------- dockerfile


def cmd_dockerfile(args: list[str]) -> int:
    path = Path(args[0])
    p = Problems(path.name)
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    stages: list[str] = []
    global_args: dict[str, str] = {}
    user = None
    healthcheck = False
    for ln in lines:
        instr, _, rest = ln.partition(" ")
        instr = instr.upper()
        if instr == "ARG" and not stages:
            name, _, default = rest.partition("=")
            global_args[name.strip()] = default.strip().strip('"')
        elif instr == "FROM":
            m = re.match(r"^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$", rest, re.IGNORECASE)
            if not m:
                p.add(f"bad FROM: {ln}")
                continue
            image = re.sub(r"\$\{(\w+)\}", lambda mm: global_args.get(mm.group(1), "?"), m.group(1))
            if "?" in image:
                p.add(f"FROM uses an undeclared ARG: {ln}")
            elif image not in stages and (":" not in image or image.endswith(":latest")):
                p.add(f"base image {image} is not pinned to a tag")
            stages.append((m.group(2) or f"stage{len(stages)}").lower())
            user, healthcheck = None, False
        elif instr in ("COPY", "ADD"):
            m = re.search(r"--from=(\S+)", rest)
            if m and m.group(1).lower() not in stages[:-1]:
                p.add(f"{instr} --from={m.group(1)} names no earlier stage")
        elif instr == "USER":
            user = rest.split(":")[0]
        elif instr == "HEALTHCHECK":
            healthcheck = True
    if not stages:
        p.add("no FROM")
    if user in (None, "root", "0"):
        p.add("the final stage runs as root (set USER to a non-root, numeric user)")
    elif not user.isdigit():
        p.add("USER should be numeric so Kubernetes runAsNonRoot can verify it")
    if not healthcheck:
        p.add("the final stage has no HEALTHCHECK")
    return p.finish()


# --------------------------------------------------------------------------- prometheus


def cmd_prometheus(args: list[str]) -> int:
    rc = 0
    for arg in args:
        path = Path(arg)
        p = Problems(path.name)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            p.add(f"invalid YAML: {e}")
            rc |= p.finish()
            continue
        jobs = (data or {}).get("scrape_configs") or []
        if not jobs:
            p.add("no scrape_configs")
        seen = set()
        for job in jobs:
            name = job.get("job_name")
            if not name or name in seen:
                p.add(f"missing or duplicate job_name {name!r}")
            seen.add(name)
            if not (job.get("static_configs") or job.get("kubernetes_sd_configs")):
                p.add(f"job {name} has no targets")
            for sc in job.get("static_configs") or []:
                for t in sc.get("targets") or []:
                    if not re.match(r"^[\w.-]+:\d+$", t):
                        p.add(f"job {name}: bad target {t!r}")
            for rc_ in job.get("relabel_configs") or []:
                if rc_.get("action", "replace") not in (
                    "keep",
                    "drop",
                    "replace",
                    "labelmap",
                    "labeldrop",
                    "labelkeep",
                    "hashmod",
                    "lowercase",
                    "uppercase",
                    "keepequal",
                    "dropequal",
                ):
                    p.add(f"job {name}: bad relabel action {rc_.get('action')}")
                if "regex" in rc_:
                    try:
                        re.compile(str(rc_["regex"]))
                    except re.error as e:
                        p.add(f"job {name}: bad regex {rc_['regex']!r}: {e}")
        rc |= p.finish()
    return rc


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = sys.argv[1], sys.argv[2:]
    table = {
        "render": cmd_render,
        "same": cmd_same,
        "policy": cmd_policy,
        "compose": cmd_compose,
        "dockerfile": cmd_dockerfile,
        "prometheus": cmd_prometheus,
    }
    if cmd not in table:
        print(__doc__, file=sys.stderr)
        return 2
    return table[cmd](args)


if __name__ == "__main__":
    sys.exit(main())
