#!/usr/bin/env python3
"""The checks of .ci/deploy-checks that need a program: generated copies, alert metadata,
rendered Kubernetes objects, CRD schemas, Grafana schemas and queries, the Dockerfile, the
IAM permissions of the CloudFormation templates.

Runs in target/deploy-checks/venv (PyYAML, jsonschema, kubernetes-validate,
grafana-foundation-sdk). Every subcommand prints what it checked and exits non-zero with
every problem listed. See .ci/deploy-checks for the order and the tools around it.
"""

import difflib
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "deploy/prometheus/alerts.yaml"
RUNBOOKS = ROOT / "docs/runbooks.md"
K8S = ROOT / "deploy/kubernetes/base"
AWS = ROOT / "deploy/aws"
IAM_POLICY = ROOT / "deploy/iam-policy.json"
RUNBOOK_URL = "https://github.com/trailwarden/trailwarden/blob/main/docs/runbooks.md#"
SEVERITIES = {"critical", "warning", "info"}


class Problems:
    def __init__(self, what):
        self.what = what
        self.items = []

    def add(self, message):
        self.items.append(message)

    def finish(self, ok_message):
        if self.items:
            print(f"FAIL {self.what}:", file=sys.stderr)
            for item in self.items:
                print(f"  - {item}", file=sys.stderr)
            return 1
        print(f"ok   {self.what}: {ok_message}")
        return 0


def rel(path):
    return str(Path(path).resolve().relative_to(ROOT))


# --- generated copies ------------------------------------------------------------------

PROMETHEUSRULE_HEAD = """\
# GENERATED from deploy/prometheus/alerts.yaml by `.ci/deploy-checks --fix`: edit that
# file, not this one (CI fails when they differ). The rule groups, as a prometheus-operator
# PrometheusRule. Your Prometheus must select it: match its ruleSelector (often a
# `release: <name>` label; add it in an overlay) and ruleNamespaceSelector.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: trailwarden
  labels:
    app.kubernetes.io/name: trailwarden
    app.kubernetes.io/component: daemon
spec:
"""

K8S_CONFIG_HEAD = """\
# GENERATED from config/trailwarden.yaml by `.ci/deploy-checks --fix` (CI fails when they
# differ): the daemon's configuration in the ConfigMap trailwarden-config, mounted at
# /etc/trailwarden. The only change: it listens on 0.0.0.0:9847, so that the Service,
# the ServiceMonitor and the probes reach it (the NetworkPolicy only lets Prometheus in).
# Change settings in an overlay: a configMapGenerator with `behavior: merge` and your own
# trailwarden.yaml (deploy/kubernetes/README.md).

"""


def generated_prometheusrule():
    body = ALERTS.read_text()
    start = body.index("\ngroups:") + 1
    lines = body[start:].splitlines()
    return PROMETHEUSRULE_HEAD + "\n".join(("  " + line) if line else "" for line in lines) + "\n"


def generated_k8s_config():
    source = (ROOT / "config/trailwarden.yaml").read_text()
    listen = re.compile(r"^listen: 127\.0\.0\.1:9847$", re.M)
    if len(listen.findall(source)) != 1:
        raise SystemExit("config/trailwarden.yaml: expected one `listen: 127.0.0.1:9847` line")
    return K8S_CONFIG_HEAD + listen.sub("listen: 0.0.0.0:9847", source)


def generated_stackset():
    """deploy/aws/stackset.yaml with its TemplateBody block replaced by audit-role.yaml,
    verbatim: a StackSet's template inline, so that nothing has to be uploaded to S3."""
    path = AWS / "stackset.yaml"
    lines = path.read_text().splitlines(True)
    starts = [i for i, line in enumerate(lines) if re.fullmatch(r" *TemplateBody: \|\n", line)]
    if len(starts) != 1:
        raise SystemExit(f"{rel(path)}: expected one `TemplateBody: |` line")
    start = starts[0]
    indent = " " * (len(lines[start]) - len(lines[start].lstrip(" ")) + 2)
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith(indent)):
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    body = "".join(indent + line if line.strip() else "\n"
                   for line in (AWS / "audit-role.yaml").read_text().splitlines(True))
    return "".join(lines[:start + 1]) + body + "".join(lines[end:])


def generated_files():
    return {
        K8S / "prometheusrule.yaml": generated_prometheusrule(),
        K8S / "config/trailwarden.yaml": generated_k8s_config(),
        K8S / "config/policies.yaml": (ROOT / "config/policies.yaml").read_text(),
        K8S / "config/detections.yaml": (ROOT / "config/detections.yaml").read_text(),
        AWS / "stackset.yaml": generated_stackset(),
    }


def cmd_sync(args):
    fix = args == ["--fix"]
    p = Problems("generated copies")
    for path, text in generated_files().items():
        current = path.read_text() if path.exists() else ""
        if current == text:
            continue
        if fix:
            path.write_text(text)
            print(f"wrote {rel(path)}")
            continue
        diff = "".join(list(difflib.unified_diff(
            current.splitlines(True), text.splitlines(True), rel(path), "generated"))[:40])
        p.add(f"{rel(path)} is out of date: run `.ci/deploy-checks --fix`\n{diff}")
    # Belt and braces: the PrometheusRule carries exactly the rule groups Prometheus loads.
    rule = yaml.safe_load((K8S / "prometheusrule.yaml").read_text())
    alerts = yaml.safe_load(ALERTS.read_text())
    if rule["spec"]["groups"] != alerts["groups"]:
        p.add("deploy/kubernetes/base/prometheusrule.yaml spec.groups differ from alerts.yaml groups")
    # And the StackSet deploys exactly the audit role template, as CloudFormation reads it.
    stackset = load_cfn(AWS / "stackset.yaml")["Resources"]["AuditRoleStackSet"]["Properties"]
    if stackset.get("TemplateBody") != (AWS / "audit-role.yaml").read_text():
        p.add("deploy/aws/stackset.yaml TemplateBody is not deploy/aws/audit-role.yaml, "
              "verbatim: run `.ci/deploy-checks --fix`")
    return p.finish("prometheusrule.yaml, deploy/kubernetes/base/config/ and the StackSet's "
                    "TemplateBody (deploy/aws/audit-role.yaml) match their sources")


# --- alert metadata and runbooks -------------------------------------------------------

def github_anchor(heading):
    slug = heading.strip().lower()
    slug = re.sub(r"[^\w\- ]", "", slug)
    return slug.replace(" ", "-")


def cmd_alerts_meta(_args):
    p = Problems("alert metadata")
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    headings = [m.group(1) for m in re.finditer(r"^## (.+)$", RUNBOOKS.read_text(), re.M)]
    anchors = {github_anchor(h): h for h in headings}
    names = set()
    for group in groups:
        for rule in group["rules"]:
            name = rule.get("alert")
            if not name:
                continue
            names.add(name)
            if not re.fullmatch(r"Trailwarden[A-Z][A-Za-z]+", name):
                p.add(f"{name}: alert names are CamelCase with the prefix Trailwarden")
            severity = rule.get("labels", {}).get("severity")
            if severity not in SEVERITIES:
                p.add(f"{name}: severity label {severity!r} is not one of {sorted(SEVERITIES)}")
            ann = rule.get("annotations", {})
            for key in ("summary", "description", "runbook_url"):
                if not ann.get(key):
                    p.add(f"{name}: no {key} annotation")
            url = ann.get("runbook_url", "")
            if not url.startswith(RUNBOOK_URL):
                p.add(f"{name}: runbook_url {url!r} does not point into docs/runbooks.md")
            elif url[len(RUNBOOK_URL):] not in anchors:
                p.add(f"{name}: runbook_url anchor #{url[len(RUNBOOK_URL):]} is no heading of "
                      "docs/runbooks.md")
            elif anchors[url[len(RUNBOOK_URL):]] != name:
                p.add(f"{name}: runbook_url leads to the section of another alert")
    required = {"TrailwardenCloudTrailLoggingStopped", "TrailwardenTamperEventDetected",
                "TrailwardenPolicyViolation", "TrailwardenLogDeliveryStale",
                "TrailwardenLogIntegrityFailure", "TrailwardenPollFailing", "TrailwardenDown"}
    for name in sorted(required - names):
        p.add(f"alerts.yaml has no {name}")
    for heading in headings:
        if heading not in names:
            p.add(f"docs/runbooks.md section {heading!r} belongs to no alert")
    return p.finish(f"{len(names)} alerts, each with severity, summary, description and a "
                    "runbook section")


# --- rendered Kubernetes objects -------------------------------------------------------

CORE_KINDS = {"Namespace", "ServiceAccount", "ConfigMap", "PersistentVolumeClaim",
              "Deployment", "Service", "NetworkPolicy"}
# The sharded overlay: a StatefulSet (with its own volumes) for the Deployment and its PVC.
SHARDED_KINDS = (CORE_KINDS - {"Deployment", "PersistentVolumeClaim"}) | {
    "StatefulSet", "PodDisruptionBudget"}
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}


def load_objects(path):
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d]


def cmd_k8s_split(args):
    """rendered outdir [sharded]: the objects one per file, core and CRD apart."""
    rendered, outdir = Path(args[0]), Path(args[1])
    expected = SHARDED_KINDS if args[2:] == ["sharded"] else CORE_KINDS
    p = Problems("rendered objects")
    objects = load_objects(rendered)
    kinds = sorted(o["kind"] for o in objects)
    for sub in ("core", "crd"):
        (outdir / sub).mkdir(parents=True, exist_ok=True)
        for old in (outdir / sub).glob("*.yaml"):
            old.unlink()
    for o in objects:
        kind = o["kind"]
        sub = "core" if kind in expected else "crd" if kind in CRD_KINDS else None
        if sub is None:
            p.add(f"unexpected kind {kind} (no validator for it)")
            continue
        name = f"{kind}-{o['metadata']['name']}.yaml"
        (outdir / sub / name).write_text(yaml.safe_dump(o, sort_keys=False))
    missing = (expected | CRD_KINDS) - set(kinds)
    if missing:
        p.add(f"{rel(rendered)} renders no {sorted(missing)}")
    return p.finish(f"{len(objects)} objects: {', '.join(kinds)}")


def normalised(objects):
    """Objects keyed by kind/name, with the ConfigMap hash suffix (which differs between
    kustomize versions) and empty annotations taken out."""
    for o in objects:
        # kustomize v2 leaves `annotations: {}` on a ConfigMap an overlay merged into.
        if o.get("metadata", {}).get("annotations") == {}:
            del o["metadata"]["annotations"]
    text = json.dumps(objects, sort_keys=True)
    text = re.sub(r"trailwarden-config-[a-z0-9]{10}", "trailwarden-config-HASH", text)
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in json.loads(text)}


def cmd_k8s_compare(args):
    a, b = normalised(load_objects(args[0])), normalised(load_objects(args[1]))
    p = Problems(f"{args[2]} and {args[3]} render the same objects")
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            p.add(f"{key} differs:\n" + "".join(difflib.unified_diff(
                yaml.safe_dump(a.get(key)).splitlines(True),
                yaml.safe_dump(b.get(key)).splitlines(True), args[2], args[3])))
    return p.finish(f"{len(a)} objects identical (ConfigMap hash suffix aside)")


def by_kind(objects, kind):
    found = [o for o in objects if o["kind"] == kind]
    return found[0] if len(found) == 1 else None


def labels_match(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def cmd_k8s_policy(args):
    """What the issue asks of the Deployment and how the objects fit together, beyond what
    the schemas can say."""
    objects = load_objects(args[0])
    p = Problems("Kubernetes invariants")
    get = {kind: by_kind(objects, kind) for kind in CORE_KINDS | CRD_KINDS}
    for kind, obj in get.items():
        if obj is None:
            p.add(f"expected exactly one {kind}")
    if p.items:
        return p.finish("")
    ns = get["Namespace"]["metadata"]["name"]
    for o in objects:
        if o["kind"] != "Namespace" and o["metadata"].get("namespace") != ns:
            p.add(f"{o['kind']}/{o['metadata']['name']} is not in namespace {ns}")
    if get["Namespace"]["metadata"].get("labels", {}).get(
            "pod-security.kubernetes.io/enforce") != "restricted":
        p.add("the namespace does not enforce Pod Security 'restricted'")

    dep = get["Deployment"]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"]["labels"]
    if spec.get("replicas") != 1:
        p.add("Deployment: replicas must be 1 (two daemons count everything twice)")
    if spec.get("strategy", {}).get("type") != "Recreate":
        p.add("Deployment: strategy must be Recreate")
    if not labels_match(spec["selector"]["matchLabels"], pod_labels):
        p.add("Deployment: selector does not match the pod labels")
    psc = pod.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True or not psc.get("runAsUser"):
        p.add("pod: runAsNonRoot and a non-zero runAsUser are required")
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        p.add("pod: seccompProfile RuntimeDefault is required")
    if pod.get("serviceAccountName") != get["ServiceAccount"]["metadata"]["name"]:
        p.add("pod: serviceAccountName is not the ServiceAccount of the base")
    if "eks.amazonaws.com/role-arn" not in get["ServiceAccount"]["metadata"].get(
            "annotations", {}):
        p.add("ServiceAccount: no IRSA role annotation placeholder")
    containers = pod["containers"]
    if len(containers) != 1:
        p.add("pod: expected one container")
        return p.finish("")
    c = containers[0]
    sc = c.get("securityContext", {})
    if sc.get("readOnlyRootFilesystem") is not True:
        p.add("container: readOnlyRootFilesystem must be true")
    if sc.get("allowPrivilegeEscalation") is not False:
        p.add("container: allowPrivilegeEscalation must be false")
    if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc.get("capabilities", {}).get("add"):
        p.add("container: capabilities must drop ALL and add none")
    if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
        p.add("container: livenessProbe must GET /healthz")
    if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
        p.add("container: readinessProbe must GET /readyz")
    res = c.get("resources", {})
    if not res.get("requests", {}).get("memory") or not res.get("limits", {}).get("memory"):
        p.add("container: memory request and limit are required")
    ports = {port["name"]: port["containerPort"] for port in c.get("ports", [])}
    if ports.get("http") != 9847:
        p.add("container: port http must be 9847")

    # The command line reads the config from the ConfigMap mount, and the config's
    # state_dir is the state volume.
    cargs = c.get("args", [])
    if "--config" not in cargs:
        p.add("container: no --config argument")
        return p.finish("")
    config_path = cargs[cargs.index("--config") + 1]
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    config_dir = str(Path(config_path).parent)
    cm = get["ConfigMap"]
    if config_dir not in mounts:
        p.add(f"container: nothing is mounted at {config_dir}")
    else:
        vol = volumes.get(mounts[config_dir]["name"], {})
        if vol.get("configMap", {}).get("name") != cm["metadata"]["name"]:
            p.add(f"{config_dir} is not the generated ConfigMap {cm['metadata']['name']}")
        if mounts[config_dir].get("readOnly") is not True:
            p.add(f"{config_dir} must be mounted read-only")
    name = Path(config_path).name
    if name not in cm.get("data", {}):
        p.add(f"the ConfigMap has no {name}")
        return p.finish("")
    config = yaml.safe_load(cm["data"][name])
    for ref in ("policies", "detections"):
        files = config.get(ref)
        for f in files if isinstance(files, list) else [files]:
            if f not in cm["data"]:
                p.add(f"the config names {ref} file {f}, which the ConfigMap lacks")
    if config.get("listen") != "0.0.0.0:9847":
        p.add(f"the config listens on {config.get('listen')}, not 0.0.0.0:9847")
    state = config.get("state_dir")
    if state not in mounts:
        p.add(f"state_dir {state} is not a mounted volume")
    elif mounts[state].get("readOnly"):
        p.add(f"state_dir {state} is mounted read-only")
    else:
        vol = volumes.get(mounts[state]["name"], {})
        claim = vol.get("persistentVolumeClaim", {}).get("claimName")
        if "emptyDir" not in vol and claim != get["PersistentVolumeClaim"]["metadata"]["name"]:
            p.add(f"state_dir {state} is neither the base's PVC nor an emptyDir")

    svc = get["Service"]
    if not labels_match(svc["spec"]["selector"], pod_labels):
        p.add("Service: selector does not match the pod")
    svc_ports = {port["name"]: port for port in svc["spec"]["ports"]}
    if svc_ports.get("http", {}).get("targetPort") not in ("http", 9847):
        p.add("Service: port http must target the container's http port")
    sm = get["ServiceMonitor"]
    if not labels_match(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"]):
        p.add("ServiceMonitor: selector does not match the Service")
    for ep in sm["spec"]["endpoints"]:
        if ep.get("port") not in svc_ports or ep.get("path", "/metrics") != "/metrics":
            p.add("ServiceMonitor: endpoints must scrape /metrics on a Service port")
    if svc["metadata"]["name"] != "trailwarden" or sm["spec"].get("jobLabel"):
        p.add("the Prometheus job must be 'trailwarden' (alerts.yaml TrailwardenDown)")
    np_ = get["NetworkPolicy"]
    if not labels_match(np_["spec"]["podSelector"]["matchLabels"], pod_labels):
        p.add("NetworkPolicy: podSelector does not match the pod")
    if sorted(np_["spec"].get("policyTypes", [])) != ["Egress", "Ingress"]:
        p.add("NetworkPolicy: must restrict both Ingress and Egress")
    ingress_ports = {port.get("port") for rule in np_["spec"].get("ingress", [])
                     for port in rule.get("ports", [])}
    if ingress_ports != {9847}:
        p.add("NetworkPolicy: ingress must allow the metrics port 9847 only")
    egress_ports = {port.get("port") for rule in np_["spec"].get("egress", [])
                    for port in rule.get("ports", [])}
    if not {53, 443} <= egress_ports:
        p.add("NetworkPolicy: egress must allow DNS and HTTPS to AWS")
    return p.finish("one replica, Recreate, non-root, read-only, no capabilities, "
                    "RuntimeDefault seccomp, probes, resources; config, state, Service, "
                    "ServiceMonitor and NetworkPolicy fit together")


def cmd_k8s_sharded(args):
    """What the issue asks of the sharded overlay: a StatefulSet whose pods take their shard
    from their hostname with the total equal to its replicas, a headless governing Service,
    a state volume per pod, a PodDisruptionBudget and topology spread over the pods, every
    pod scraped once, a configuration with accounts to split, and the base's pod hardening."""
    objects = load_objects(args[0])
    p = Problems("Kubernetes invariants (sharded)")
    kinds = [o["kind"] for o in objects]
    for kind in ("Deployment", "PersistentVolumeClaim"):
        if kind in kinds:
            p.add(f"a {kind} is left from the base")
    sts = by_kind(objects, "StatefulSet")
    pdb = by_kind(objects, "PodDisruptionBudget")
    cm = by_kind(objects, "ConfigMap")
    sm = by_kind(objects, "ServiceMonitor")
    if not (sts and pdb and cm and sm):
        p.add("expected one StatefulSet, PodDisruptionBudget, ConfigMap and ServiceMonitor")
        return p.finish("")
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"]["labels"]
    if not labels_match(spec["selector"]["matchLabels"], pod_labels):
        p.add("StatefulSet: selector does not match the pod labels")
    if spec.get("podManagementPolicy") != "Parallel":
        p.add("StatefulSet: podManagementPolicy must be Parallel (shards are independent)")
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    governing = services.get(spec.get("serviceName"))
    if not governing or governing["spec"].get("clusterIP") != "None":
        p.add("StatefulSet: serviceName must name a headless Service")
    elif not labels_match(governing["spec"]["selector"], pod_labels):
        p.add("the headless Service does not select the pods")
    c = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    if env.get("TRAILWARDEN_SHARD") != "hostname":
        p.add("container: TRAILWARDEN_SHARD must be hostname (the pod's ordinal)")
    if env.get("TRAILWARDEN_TOTAL_SHARDS") != str(spec.get("replicas")):
        p.add(f"container: TRAILWARDEN_TOTAL_SHARDS {env.get('TRAILWARDEN_TOTAL_SHARDS')} "
              f"is not the StatefulSet's replicas {spec.get('replicas')}")
    sc = c.get("securityContext", {})
    psc = pod.get("securityContext", {})
    if (sc.get("readOnlyRootFilesystem") is not True
            or sc.get("allowPrivilegeEscalation") is not False
            or sc.get("capabilities", {}).get("drop") != ["ALL"]
            or psc.get("runAsNonRoot") is not True
            or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault"):
        p.add("pod: not hardened as the base's (non-root, read-only, no capabilities, "
              "RuntimeDefault seccomp, no privilege escalation)")
    if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz" \
            or c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
        p.add("container: probes must GET /healthz and /readyz")
    claims = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    config_path = c["args"][c["args"].index("--config") + 1]
    config = yaml.safe_load(cm["data"][Path(config_path).name])
    if mounts.get(config.get("state_dir")) not in claims:
        p.add(f"state_dir {config.get('state_dir')} is not a volumeClaimTemplate (one per shard)")
    if not config.get("accounts"):
        p.add("the configuration has no accounts section: there is nothing to shard")
    if config.get("shard"):
        p.add("the configuration names a shard: every pod reads it, so each must take its own "
              "from its hostname instead")
    if not labels_match(pdb["spec"]["selector"]["matchLabels"], pod_labels):
        p.add("PodDisruptionBudget: selector does not match the pods")
    spread = pod.get("topologySpreadConstraints", [])
    if not spread or not all(labels_match(t["labelSelector"]["matchLabels"], pod_labels)
                             for t in spread):
        p.add("pod: topologySpreadConstraints over the shards' pods are required")
    scraped = [n for n, svc in services.items()
               if labels_match(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])]
    if len(scraped) != 1 or not labels_match(services[scraped[0]]["spec"]["selector"],
                                             pod_labels):
        p.add(f"ServiceMonitor: must select exactly one Service of the pods (selects {scraped}): "
              "every shard scraped once")
    return p.finish(f"StatefulSet of {spec.get('replicas')} shards (ordinal from the hostname, "
                    "total = replicas), headless Service, a state volume per shard, "
                    "PodDisruptionBudget, topology spread, every shard scraped once, accounts "
                    "to split")


# --- CRD schemas -----------------------------------------------------------------------

def strict_schema(schema):
    """A structural CRD schema as JSON Schema, unknown fields rejected (what
    `kubectl apply --validate=strict` reports) unless the schema keeps them."""
    if not isinstance(schema, dict):
        return schema
    s = dict(schema)
    for key in ("properties", "patternProperties"):
        if key in s:
            s[key] = {k: strict_schema(v) for k, v in s[key].items()}
    for key in ("items", "not"):
        if isinstance(s.get(key), dict):
            s[key] = strict_schema(s[key])
    if isinstance(s.get("additionalProperties"), dict):
        s["additionalProperties"] = strict_schema(s["additionalProperties"])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in s:
            s[key] = [strict_schema(v) for v in s[key]]
    if s.get("nullable") is True and isinstance(s.get("type"), str):
        s["type"] = [s["type"], "null"]
    if ("properties" in s and "additionalProperties" not in s
            and not s.get("x-kubernetes-preserve-unknown-fields")):
        s["additionalProperties"] = False
    return s


def object_meta_validator(version):
    import jsonschema
    from kubernetes_validate import utils
    from referencing import Registry, Resource

    folder = f"kubernetes-json-schema/v{version}.0-local-strict"
    schema = utils.schema_contents(f"{folder}/objectmeta-meta-v1.json", version)
    defs = utils.schema_contents(f"{folder}/_definitions.json", version)
    registry = Resource.from_contents(defs) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def cmd_crd_validate(args):
    import jsonschema

    crd_dir, version, files = Path(args[0]), args[1], args[2:]
    p = Problems(f"prometheus-operator objects against their CRD schemas (Kubernetes {version})")
    crds = {}
    for path in sorted(crd_dir.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        operator = crd["metadata"]["annotations"].get("operator.prometheus.io/version", "?")
        for v in crd["spec"]["versions"]:
            if v.get("served"):
                crds[(f"{group}/{v['name']}", kind)] = (
                    strict_schema(v["schema"]["openAPIV3Schema"]), operator)
    meta = object_meta_validator(version)
    checked = []
    for f in files:
        obj = yaml.safe_load(Path(f).read_text())
        key = (obj.get("apiVersion"), obj.get("kind"))
        if key not in crds:
            p.add(f"{f}: no CRD schema for {key}")
            continue
        schema, operator = crds[key]
        for err in jsonschema.Draft7Validator(schema).iter_errors(obj):
            path = ".".join(str(x) for x in err.absolute_path)
            p.add(f"{Path(f).name}: {path}: {err.message}")
        for err in meta.iter_errors(obj["metadata"]):
            path = ".".join(str(x) for x in err.absolute_path)
            p.add(f"{Path(f).name}: metadata.{path}: {err.message}")
        checked.append(f"{obj['kind']}/{obj['metadata']['name']}")
    if not checked and not p.items:
        p.add("nothing to check")
    return p.finish(f"{', '.join(checked)} valid (prometheus-operator v{operator}, strict)")


# --- Grafana ---------------------------------------------------------------------------

BUILTIN_VARS = {"__rate_interval", "__interval", "__range", "__interval_ms", "__range_s",
                "__all", "__name"}
PROM_DS = {"type": "prometheus", "uid": "${datasource}"}


def all_panels(panels):
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def cmd_grafana_schema(args):
    import jsonschema
    from grafana_foundation_sdk.models import prometheus

    schema_dir, dashboards = Path(args[0]), args[1:]
    p = Problems("Grafana dashboards against Grafana's schemas")
    dashboard_schema = json.loads((schema_dir / "dashboard.json").read_text())
    counts = []
    for f in dashboards:
        name = Path(f).name
        d = json.loads(Path(f).read_text())
        for err in jsonschema.Draft7Validator(dashboard_schema).iter_errors(d):
            path = ".".join(str(x) for x in err.absolute_path)
            p.add(f"{name}: {path}: {err.message}")
        variables = {v["name"] for v in d.get("templating", {}).get("list", [])}
        ids = set()
        n_targets = 0
        panels = list(all_panels(d.get("panels", [])))
        for panel in panels:
            where = f"{name}: panel {panel.get('id')} {panel.get('title')!r}"
            if panel.get("id") in ids:
                p.add(f"{where}: duplicate id")
            ids.add(panel.get("id"))
            if panel["type"] == "row":
                continue
            kind = panel["type"].replace("-", "")
            options = schema_dir / f"panel-{kind}-options.json"
            if not options.exists():
                p.add(f"{where}: no Grafana schema for panel type {panel['type']}")
                continue
            for err in jsonschema.Draft7Validator(json.loads(options.read_text())).iter_errors(
                    panel.get("options", {})):
                path = ".".join(str(x) for x in err.absolute_path)
                p.add(f"{where}: options.{path}: {err.message}")
            custom_schema = schema_dir / f"panel-{kind}-fieldconfig.json"
            custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom")
            if custom_schema.exists():
                for err in jsonschema.Draft7Validator(
                        json.loads(custom_schema.read_text())).iter_errors(custom or {}):
                    path = ".".join(str(x) for x in err.absolute_path)
                    p.add(f"{where}: fieldConfig.defaults.custom.{path}: {err.message}")
            elif custom:
                p.add(f"{where}: panel type {panel['type']} has no custom field config")
            if panel.get("datasource") != PROM_DS:
                p.add(f"{where}: datasource must be {PROM_DS}")
            targets = panel.get("targets", [])
            if not targets:
                p.add(f"{where}: no queries")
            refs = [t.get("refId") for t in targets]
            if len(set(refs)) != len(refs):
                p.add(f"{where}: duplicate refId")
            for t in targets:
                n_targets += 1
                # Grafana's Prometheus query model: an unknown field does not survive the
                # round trip.
                again = json.loads(json.dumps(prometheus.Dataquery.from_json(t).to_json(),
                                              default=lambda o: o.to_json()))
                if again != t:
                    extra = sorted(set(t) ^ set(again))
                    p.add(f"{where}: query {t.get('refId')}: not a Prometheus query "
                          f"(fields {extra})")
                if t.get("editorMode", "code") not in {m.value for m in prometheus.QueryEditorMode}:
                    p.add(f"{where}: query {t.get('refId')}: bad editorMode")
                if t.get("format", "time_series") not in {
                        m.value for m in prometheus.PromQueryFormat}:
                    p.add(f"{where}: query {t.get('refId')}: bad format")
                if t.get("datasource") != PROM_DS:
                    p.add(f"{where}: query {t.get('refId')}: datasource must be {PROM_DS}")
                for var in re.findall(r"\$\{?(\w+)", t.get("expr", "")):
                    if var not in variables | BUILTIN_VARS:
                        p.add(f"{where}: query {t.get('refId')}: unknown variable ${var}")
        for v in d.get("templating", {}).get("list", []):
            if v["type"] == "query":
                if v.get("datasource") != PROM_DS:
                    p.add(f"{name}: variable {v['name']}: datasource must be {PROM_DS}")
                for var in re.findall(r"\$\{?(\w+)", v.get("query", "")):
                    if var not in variables:
                        p.add(f"{name}: variable {v['name']}: unknown variable ${var}")
        for required in ("datasource", "account", "region", "trail"):
            if required not in variables:
                p.add(f"{name}: no {required} variable")
        counts.append(f"{name}: {len(panels)} panels, {n_targets} queries")
    return p.finish("; ".join(counts))


SUBSTITUTIONS = [("$__rate_interval", "1m"), ("$__interval", "1m"), ("$__range", "1d")]


def promql_of(text):
    for old, new in SUBSTITUTIONS:
        text = text.replace(old, new)
    return re.sub(r"\$\{?\w+\}?", ".*", text)


def cmd_grafana_promql(args):
    """Every dashboard query (template variables substituted) as a recording rule, for
    promtool's PromQL parser."""
    out, dashboards = Path(args[0]), args[1:]
    rules = []
    for f in dashboards:
        d = json.loads(Path(f).read_text())
        stem = re.sub(r"\W", "_", Path(f).stem)
        for panel in all_panels(d.get("panels", [])):
            for t in panel.get("targets", []):
                rules.append({"record": f"grafana:{stem}:panel{panel['id']}_{t['refId']}",
                              "expr": promql_of(t["expr"])})
        for v in d.get("templating", {}).get("list", []):
            if v["type"] != "query":
                continue
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", v["query"])
            if not m:
                raise SystemExit(f"{f}: variable {v['name']}: expected label_values(selector, "
                                 f"label), got {v['query']!r}")
            rules.append({"record": f"grafana:{stem}:variable_{v['name']}",
                          "expr": promql_of(m.group(1))})
    out.write_text(yaml.safe_dump({"groups": [{"name": "grafana", "rules": rules}]},
                                  sort_keys=False, width=1000))
    print(f"wrote {len(rules)} dashboard queries to {out}")
    return 0


# --- Dockerfile ------------------------------------------------------------------------

def cmd_dockerfile(_args):
    """What the other deploy files assume of the image. (No docker engine here to build it.)"""
    p = Problems("Dockerfile against the deploy files")
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I)
    if len(stages) < 2:
        p.add("expected a multi-stage build")
    for image, _ in stages:
        if image.endswith(":latest") or (":" not in image and "@" not in image
                                         and "$" not in image):
            p.add(f"FROM {image}: name a tag or digest, not latest")
    runtime = text[text.rfind("\nFROM"):]
    user = re.findall(r"^USER\s+(\S+)", runtime, re.M)
    dep = yaml.safe_load((K8S.parent / "deployment.yaml").read_text())
    uid = dep["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    if not user or user[-1].split(":")[0] != str(uid):
        p.add(f"the runtime stage must run as USER {uid} (deployment.yaml runAsUser)")
    if "COPY --from=" not in runtime or "/usr/local/bin/trailwarden" not in runtime:
        p.add("the runtime stage must copy the binary to /usr/local/bin/trailwarden")
    unit = (ROOT / "deploy/systemd/trailwarden.service").read_text()
    if "ExecStart=/usr/local/bin/trailwarden " not in unit:
        p.add("the systemd unit and the image disagree on the binary's path")
    entry = re.findall(r'^ENTRYPOINT\s+\["([^"]+)"', runtime, re.M)
    if entry != ["/usr/local/bin/trailwarden"]:
        p.add("ENTRYPOINT must be [\"/usr/local/bin/trailwarden\"] (deployment.yaml passes "
              "only args)")
    if not re.search(r"^EXPOSE\s+9847\b", runtime, re.M):
        p.add("EXPOSE 9847 missing")
    if "--locked" not in text:
        p.add("cargo build must use --locked")
    ignore = (ROOT / ".dockerignore").read_text().split()
    if "target" not in ignore and "/target" not in ignore:
        p.add(".dockerignore must exclude target/")
    return p.finish(f"multi-stage ({len(stages)} stages), tagged bases, runs as {uid}, "
                    "binary at /usr/local/bin/trailwarden, port 9847")


# --- CloudFormation: IAM permissions ---------------------------------------------------

class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms (!Ref, !Sub, ...) as their long forms."""


def _cfn_tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_cfn(path):
    return yaml.load(Path(path).read_text(), Loader=CfnLoader)


LIST_BUCKETS = "s3:ListAllMyBuckets"
ORGANIZATIONS = ["organizations:ListRoots", "organizations:ListOrganizationalUnitsForParent",
                 "organizations:ListAccountsForParent", "organizations:ListTagsForResource"]
ASSUME_AUDIT_ROLE = ("sts:AssumeRole", "arn:aws:iam::*:role/${AuditRoleName}")


def as_list(value):
    return value if isinstance(value, list) else [value]


def grants(statements, where, p):
    """{action: {(resource, condition as JSON)}} of Allow statements. Resources in
    ${AWS::Partition} are read in the aws partition; anything else the check cannot read
    (NotAction, Deny, an intrinsic in Action) is a problem of its own."""
    out = {}
    for st in statements:
        sid = f"{where} statement {st.get('Sid', '(no Sid)')}"
        if st.get("Effect") != "Allow" or set(st) & {"NotAction", "NotResource", "NotPrincipal"}:
            p.add(f"{sid}: only plain Allow statements (Action, Resource, Condition) are expected")
            continue
        resources = []
        for r in as_list(st.get("Resource")):
            if isinstance(r, dict) and set(r) == {"Fn::Sub"} and isinstance(r["Fn::Sub"], str):
                r = r["Fn::Sub"].replace("${AWS::Partition}", "aws")
            if not isinstance(r, str):
                p.add(f"{sid}: cannot read Resource {r!r}")
                continue
            resources.append(r)
        condition = json.dumps(st["Condition"], sort_keys=True) if "Condition" in st else None
        for action in as_list(st.get("Action")):
            if not isinstance(action, str):
                p.add(f"{sid}: cannot read Action {action!r}")
                continue
            out.setdefault(action, set()).update((r, condition) for r in resources)
    return out


def role_grants(path, logical_id, p):
    template = load_cfn(path)
    role = template.get("Resources", {}).get(logical_id)
    where = f"{rel(path)} {logical_id}"
    if not role or role.get("Type") != "AWS::IAM::Role":
        p.add(f"{where}: no such AWS::IAM::Role")
        return template, {}
    statements = []
    for policy in role["Properties"].get("Policies", []):
        statements += as_list(policy["PolicyDocument"]["Statement"])
    if not statements:
        p.add(f"{where}: no inline policy")
    others = sorted(k for k, r in template["Resources"].items()
                    if r.get("Type") in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy",
                                         "AWS::IAM::RolePolicy"})
    if others or role["Properties"].get("ManagedPolicyArns"):
        p.add(f"{where}: permissions must all be in the role's Policies (the check reads "
              f"only those): found {others or 'ManagedPolicyArns'}")
    return template, grants(statements, where, p)


def compare_grants(where, actual, expected, p):
    """Every difference, by action: the template must grant exactly `expected`."""
    for action in sorted(set(expected) - set(actual)):
        p.add(f"{where}: MISSING {action} ({expected[action][1]}): add it on "
              f"{sorted(r for r, _ in expected[action][0])}")
    for action in sorted(set(actual) - set(expected)):
        p.add(f"{where}: EXTRA {action}: the daemon does not call it (deploy/iam-policy.json "
              "lists every call; tests/daemon.rs keeps it so): remove it")
    for action in sorted(set(actual) & set(expected)):
        if actual[action] != expected[action][0]:
            p.add(f"{where}: {action} is granted on {sorted(actual[action], key=str)}, "
                  f"expected {sorted(expected[action][0], key=str)} ({expected[action][1]})")


def cmd_cfn_iam(_args):
    """The templates' permissions follow the daemon's calls: the audit role grants exactly
    deploy/iam-policy.json plus s3:ListAllMyBuckets; the daemon role that plus discovery and
    sts:AssumeRole on the audit role. And the trust and StackSet invariants."""
    p = Problems("CloudFormation IAM permissions against deploy/iam-policy.json")
    source = "deploy/iam-policy.json"
    daemon_policy = grants(as_list(json.loads(IAM_POLICY.read_text())["Statement"]), source, p)
    audit_expected = {a: (g, source) for a, g in daemon_policy.items()}
    audit_expected[LIST_BUCKETS] = ({("*", None)}, "ListBuckets: which account owns a bucket")
    daemon_expected = dict(audit_expected)
    for action in ORGANIZATIONS:
        daemon_expected[action] = ({("*", None)}, "organization discovery")
    daemon_expected[ASSUME_AUDIT_ROLE[0]] = ({(ASSUME_AUDIT_ROLE[1], None)},
                                            "assuming the audit role, and no other")

    audit_path, daemon_path = AWS / "audit-role.yaml", AWS / "daemon-role.yaml"
    audit, actual = role_grants(audit_path, "AuditRole", p)
    compare_grants(f"{rel(audit_path)} AuditRole", actual, audit_expected, p)
    daemon, actual = role_grants(daemon_path, "DaemonRole", p)
    compare_grants(f"{rel(daemon_path)} DaemonRole", actual, daemon_expected, p)

    # The audit role trusts the daemon's principal only, with the external ID.
    if audit.get("Resources", {}).get("AuditRole"):
        trust = audit["Resources"]["AuditRole"]["Properties"]["AssumeRolePolicyDocument"]
        external_id = {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}}
        expected_trust = [{"Sid": "TrailwardenDaemonOnly", "Effect": "Allow",
                           "Principal": {"AWS": {"Ref": "TrustedPrincipalArn"}},
                           "Action": "sts:AssumeRole", "Condition": external_id}]
        if as_list(trust.get("Statement")) != expected_trust:
            p.add(f"{rel(audit_path)}: the trust policy must be exactly {expected_trust}")
    params = {"audit-role.yaml": audit.get("Parameters", {}),
              "daemon-role.yaml": daemon.get("Parameters", {})}
    stackset_t = load_cfn(AWS / "stackset.yaml")
    params["stackset.yaml"] = stackset_t.get("Parameters", {})
    for name in ("audit-role.yaml", "stackset.yaml"):
        if params[name].get("ExternalId", {}).get("NoEcho") is not True:
            p.add(f"deploy/aws/{name}: parameter ExternalId must be NoEcho")
    role_name = params["audit-role.yaml"].get("RoleName", {}).get("Default")
    for name, key in (("stackset.yaml", "RoleName"), ("daemon-role.yaml", "AuditRoleName")):
        if params[name].get(key, {}).get("Default") != role_name:
            p.add(f"deploy/aws/{name}: {key} defaults to "
                  f"{params[name].get(key, {}).get('Default')!r}, the audit role to {role_name!r}")

    # The StackSet: service-managed, following the organization, passing the parameters.
    ss = stackset_t.get("Resources", {}).get("AuditRoleStackSet", {})
    props = ss.get("Properties", {})
    if ss.get("Type") != "AWS::CloudFormation::StackSet":
        p.add("deploy/aws/stackset.yaml: no AWS::CloudFormation::StackSet AuditRoleStackSet")
    if props.get("PermissionModel") != "SERVICE_MANAGED":
        p.add("deploy/aws/stackset.yaml: PermissionModel must be SERVICE_MANAGED")
    if props.get("AutoDeployment") != {"Enabled": True, "RetainStacksOnAccountRemoval": False}:
        p.add("deploy/aws/stackset.yaml: AutoDeployment must be Enabled, "
              "RetainStacksOnAccountRemoval false")
    if "CAPABILITY_NAMED_IAM" not in props.get("Capabilities", []):
        p.add("deploy/aws/stackset.yaml: the audit role is named: CAPABILITY_NAMED_IAM")
    groups = props.get("StackInstancesGroup", [])
    if len(groups) != 1 or len(groups[0].get("Regions", [])) != 1 \
            or "OrganizationalUnitIds" not in groups[0].get("DeploymentTargets", {}):
        p.add("deploy/aws/stackset.yaml: one StackInstancesGroup, OrganizationalUnitIds, "
              "one region (a named IAM role exists once per account)")
    passed = {x.get("ParameterKey") for x in props.get("Parameters", [])}
    declared = params["audit-role.yaml"]
    required = {k for k, v in declared.items() if "Default" not in v}
    if not required <= passed or not passed <= set(declared):
        p.add(f"deploy/aws/stackset.yaml passes parameters {sorted(passed)}; audit-role.yaml "
              f"declares {sorted(declared)} and requires {sorted(required)}")
    body = props.get("TemplateBody", "")
    if len(body.encode()) > 51200:
        p.add("deploy/aws/stackset.yaml: TemplateBody over 51,200 bytes")
    return p.finish(f"audit role: the {len(audit_expected) - 1} actions of iam-policy.json + "
                    f"{LIST_BUCKETS}; daemon role: those + {len(ORGANIZATIONS)} Organizations "
                    "actions + sts:AssumeRole on the audit role; trust with external ID; "
                    "StackSet service-managed, auto-deployed")


COMMANDS = {
    "sync": cmd_sync,
    "alerts-meta": cmd_alerts_meta,
    "k8s-split": cmd_k8s_split,
    "k8s-compare": cmd_k8s_compare,
    "k8s-policy": cmd_k8s_policy,
    "k8s-sharded": cmd_k8s_sharded,
    "crd-validate": cmd_crd_validate,
    "grafana-schema": cmd_grafana_schema,
    "grafana-promql": cmd_grafana_promql,
    "dockerfile": cmd_dockerfile,
    "cfn-iam": cmd_cfn_iam,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__ + "\ncommands: " + ", ".join(COMMANDS), file=sys.stderr)
        sys.exit(2)
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
