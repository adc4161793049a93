"""deploy_checks.py's checks of the rendered Kubernetes objects (base and sharded overlay)
and of the prometheus-operator objects against their CRD schemas."""

import difflib
import json
import re
from pathlib import Path

import yaml

from deploy_common import Problems, rel


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
