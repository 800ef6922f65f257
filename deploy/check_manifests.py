"""Checks of deploy/ that no linter here covers, run by deploy/check.sh.

- compose files: YAML parses (anchors and merge keys resolved), every
  service has an image or a build whose context and Dockerfile exist,
  `depends_on` names existing services with a valid condition, and a
  `service_healthy` dependency has a healthcheck; named volumes are declared;
  no unknown service key (typos); `${VAR}` interpolations are variables that
  first-boot.sh writes.
- Kubernetes manifests: selectors match the pod labels, probes and the
  Service point at the container port, and every container keeps the
  security settings the issue asks for.
- systemd units: `systemctl reload` sends SIGHUP to the main process; a unit
  whose service secrets come from TESSERA_SERVICE_TOKENS_FILE lets its
  dynamic user read that file through a supplementary group, does not also
  load it as an EnvironmentFile, and its install steps create the file for
  that group with first-boot.sh.
- every `TESSERA_*` variable named in deploy/ exists in the server.

Usage: python check_manifests.py REPO_ROOT
"""

import re
import sys
from pathlib import Path

import yaml

ERRORS = []

COMPOSE_SERVICE_KEYS = {
    "build", "image", "command", "entrypoint", "environment", "env_file",
    "ports", "expose", "volumes", "depends_on", "healthcheck", "restart",
    "deploy", "read_only", "cap_drop", "cap_add", "security_opt",
    "stop_grace_period", "stop_signal", "user", "working_dir", "networks",
    "labels", "logging", "tmpfs", "ulimits", "init", "profiles",
    "pull_policy", "container_name", "extra_hosts", "hostname", "secrets",
    "configs", "mem_limit", "cpus", "sysctls", "platform", "scale",
}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def error(path, message):
    ERRORS.append(f"{path}: {message}")


def check_compose(root, path, first_boot):
    text = path.read_text()
    rel = path.relative_to(root)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        error(rel, f"not YAML: {err}")
        return
    services = (doc or {}).get("services")
    if not isinstance(services, dict) or not services:
        error(rel, "no services")
        return
    volumes = set((doc.get("volumes") or {}).keys())
    for name, service in services.items():
        where = f"{rel}: service {name}"
        if not isinstance(service, dict):
            ERRORS.append(f"{where}: not a mapping")
            continue
        for key in service:
            if key not in COMPOSE_SERVICE_KEYS and not key.startswith("x-"):
                ERRORS.append(f"{where}: unknown key {key!r}")
        if "image" not in service and "build" not in service:
            ERRORS.append(f"{where}: neither image nor build")
        build = service.get("build")
        if isinstance(build, dict):
            context = (path.parent / build.get("context", ".")).resolve()
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            if not context.is_dir():
                ERRORS.append(f"{where}: build context {context} missing")
            if not dockerfile.is_file():
                ERRORS.append(f"{where}: Dockerfile {dockerfile} missing")
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {target: {"condition": "service_started"} for target in depends}
        for target, spec in depends.items():
            if target not in services:
                ERRORS.append(f"{where}: depends on unknown service {target!r}")
                continue
            condition = (spec or {}).get("condition", "service_started")
            if condition not in CONDITIONS:
                ERRORS.append(f"{where}: unknown condition {condition!r}")
            health = services[target].get("healthcheck") or {}
            if condition == "service_healthy" and (health.get("disable") or not health.get("test")):
                ERRORS.append(f"{where}: waits for {target} to be healthy, which has no healthcheck")
        health = service.get("healthcheck") or {}
        test = health.get("test")
        if test is not None and not health.get("disable"):
            if not isinstance(test, list) or test[0] not in ("CMD", "CMD-SHELL", "NONE"):
                ERRORS.append(f"{where}: healthcheck.test must be a list starting with CMD or CMD-SHELL")
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            if source and not source.startswith((".", "/", "~")) and source not in volumes:
                ERRORS.append(f"{where}: volume {source!r} is not declared")
    for var in set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text)):
        if var not in first_boot:
            error(rel, f"interpolates ${{{var}}}, which first-boot.sh never writes")


def k8s_containers(doc):
    spec = doc.get("spec", {})
    template = spec.get("template", {}).get("spec", {})
    return template, template.get("containers", []) + template.get("initContainers", [])


def check_k8s(root, paths):
    docs = []
    for path in paths:
        try:
            for doc in yaml.safe_load_all(path.read_text()):
                if doc:
                    docs.append((path.relative_to(root), doc))
        except yaml.YAMLError as err:
            error(path.relative_to(root), f"not YAML: {err}")
    pods = {}
    for rel, doc in docs:
        kind = doc.get("kind")
        name = doc.get("metadata", {}).get("name")
        where = f"{rel}: {kind}/{name}"
        if kind not in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
            continue
        pod, containers = k8s_containers(doc)
        labels = doc["spec"]["template"].get("metadata", {}).get("labels", {})
        selector = doc["spec"].get("selector", {}).get("matchLabels")
        if selector and any(labels.get(k) != v for k, v in selector.items()):
            ERRORS.append(f"{where}: selector does not match the pod labels")
        exposed = set()
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            ERRORS.append(f"{where}: pod securityContext.runAsNonRoot must be true")
        for container in containers:
            cname = f"{where} container {container.get('name')}"
            context = container.get("securityContext", {})
            if context.get("allowPrivilegeEscalation") is not False:
                ERRORS.append(f"{cname}: allowPrivilegeEscalation must be false")
            if context.get("readOnlyRootFilesystem") is not True:
                ERRORS.append(f"{cname}: readOnlyRootFilesystem must be true")
            if "ALL" not in context.get("capabilities", {}).get("drop", []):
                ERRORS.append(f"{cname}: capabilities must drop ALL")
            if not container.get("resources", {}).get("requests"):
                ERRORS.append(f"{cname}: no resource requests")
            ports = {p.get("containerPort") for p in container.get("ports", [])}
            exposed |= ports | {p.get("name") for p in container.get("ports", [])}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                grpc = container.get(probe, {}).get("grpc")
                if grpc and grpc.get("port") not in ports:
                    ERRORS.append(f"{cname}: {probe} port {grpc.get('port')} is not a container port")
            if kind == "Deployment":
                check_probes(cname, container)
        if kind == "Deployment":
            pods[name] = (labels, exposed)
    for rel, doc in docs:
        kind = doc.get("kind")
        where = f"{rel}: {kind}/{doc.get('metadata', {}).get('name')}"
        if kind not in ("Service", "PodDisruptionBudget"):
            continue
        spec = doc.get("spec", {})
        selector = spec.get("selector", {})
        selector = selector.get("matchLabels", selector) if kind == "PodDisruptionBudget" else selector
        matched = [
            entry for entry in pods.values()
            if selector and all(entry[0].get(k) == v for k, v in selector.items())
        ]
        if not matched:
            ERRORS.append(f"{where}: selector matches no Deployment")
        if kind == "Service":
            for port in spec.get("ports", []):
                target = port.get("targetPort", port.get("port"))
                if matched and target not in matched[0][1]:
                    ERRORS.append(f"{where}: targetPort {target!r} is not a container port")


def container_env(container):
    return {e.get("name"): e.get("value") for e in container.get("env", [])}


def check_probes(cname, container):
    """A plaintext server is probed natively; a TLS server cannot be (native
    gRPC probes speak plaintext only), so it is probed by `tessera health`
    with the CA to verify it, from files the container mounts."""
    env = container_env(container)
    tls = "TESSERA_TLS_CERT" in env
    for probe in ("readinessProbe", "livenessProbe"):
        spec = container.get(probe, {})
        if not tls:
            if "grpc" not in spec:
                ERRORS.append(f"{cname}: {probe} must be a native gRPC probe")
            continue
        command = spec.get("exec", {}).get("command", [])
        if command[:1] != ["/usr/local/bin/tessera"] or command[1:2] != ["health"]:
            ERRORS.append(f"{cname}: with TLS, {probe} must exec `tessera health`")
        elif "--tls-ca" not in command and "TESSERA_HEALTH_TLS_CA" not in env:
            ERRORS.append(f"{cname}: with TLS, {probe} needs the CA (TESSERA_HEALTH_TLS_CA)")
    if not tls:
        return
    mounts = [m.get("mountPath", "").rstrip("/") + "/" for m in container.get("volumeMounts", [])]
    for name in ("TESSERA_TLS_CERT", "TESSERA_TLS_KEY", "TESSERA_TLS_CLIENT_CA", "TESSERA_HEALTH_TLS_CA"):
        path = env.get(name)
        if path is not None and not any(path.startswith(mount) for mount in mounts):
            ERRORS.append(f"{cname}: {name} {path} is on no volume mount")


def unit_settings(text):
    """The `Key=value` lines of a unit, as a key → [values] map."""
    settings = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def check_systemd(root, path):
    rel = path.relative_to(root)
    text = path.read_text()
    unit = unit_settings(text)
    reload = unit.get("ExecReload", [])
    if not any(re.search(r"\bkill (-HUP|-s HUP|--signal HUP) \$MAINPID$", cmd) for cmd in reload):
        error(rel, "ExecReload must send SIGHUP to $MAINPID (`systemctl reload` rereads secrets and TLS)")
    env = dict(v.split("=", 1) for v in unit.get("Environment", []) if "=" in v)
    tokens_file = env.get("TESSERA_SERVICE_TOKENS_FILE")
    if tokens_file is None:
        return
    env_files = [v.lstrip("-") for v in unit.get("EnvironmentFile", [])]
    if tokens_file in env_files:
        error(rel, f"{tokens_file} is also an EnvironmentFile: its variables would be ignored, with a warning")
    groups = " ".join(unit.get("SupplementaryGroups", [])).split()
    if unit.get("DynamicUser", ["no"])[-1] == "yes" and not groups:
        error(rel, f"the dynamic user cannot read {tokens_file}: give it a SupplementaryGroups= that may")
    made = re.search(rf"first-boot\.sh -f {re.escape(tokens_file)} -g (\S+)", text)
    if made is None or made.group(1) not in groups:
        error(rel, f"the install steps must create {tokens_file} with first-boot.sh -g <a SupplementaryGroups= group>")


def server_variables(root):
    known = set()
    for path in (root / "server" / "src").rglob("*.rs"):
        text = path.read_text()
        known.update(re.findall(r'env\s*=\s*"([A-Z][A-Z0-9_]*)"', text))
        known.update(re.findall(r'env::var(?:_os)?\(\s*"([A-Z][A-Z0-9_]*)"', text))
    return known


def check_variables(root, paths, known):
    for path in paths:
        for var in set(re.findall(r"\bTESSERA_[A-Z0-9_]*", path.read_text())):
            if var.startswith("TESSERA_SERVICE_TOKEN_") or var in known:
                continue
            error(path.relative_to(root), f"names {var}, which the server does not read")


def main():
    root = Path(sys.argv[1]).resolve()
    deploy = root / "deploy"
    first_boot = (deploy / "first-boot.sh").read_text()
    compose = sorted((deploy / "compose").glob("*.yaml")) + sorted((deploy / "compose").glob("*.yml"))
    if not compose:
        error("deploy/compose", "no compose files")
    for path in compose:
        check_compose(root, path, first_boot)
    k8s = sorted((deploy / "k8s").rglob("*.yaml"))
    check_k8s(root, k8s)
    others = compose + k8s + sorted((deploy / "docker").glob("Dockerfile*"))
    units = sorted((deploy / "systemd").glob("*.service"))
    for path in units:
        check_systemd(root, path)
    others += units
    check_variables(root, others, server_variables(root))
    for message in ERRORS:
        print(f"error: {message}", file=sys.stderr)
    checked = len(compose) + len(k8s) + len(units)
    print(f"manifests: {checked} files, {len(ERRORS)} problems")
    return 1 if ERRORS else 0


if __name__ == "__main__":
    sys.exit(main())
