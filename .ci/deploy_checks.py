#!/usr/bin/env python3
"""The checks of .ci/deploy-checks that need a program: generated copies, alert metadata,
rendered Kubernetes objects, CRD schemas, Grafana schemas and queries, the Dockerfile, the
IAM permissions of the CloudFormation templates. The Kubernetes, Grafana and CloudFormation
checks live in deploy_kubernetes.py, deploy_grafana.py and deploy_cfn.py beside this file;
what they share (paths, the list of problems) in deploy_common.py.

Runs in target/deploy-checks/venv (PyYAML, jsonschema, kubernetes-validate,
grafana-foundation-sdk). Every subcommand prints what it checked and exits non-zero with
every problem listed. See .ci/deploy-checks for the order and the tools around it.
"""

import difflib
import re
import sys

import yaml

from deploy_common import ALERTS, AWS, K8S, Problems, ROOT, RUNBOOKS, RUNBOOK_URL, SEVERITIES, rel

from deploy_cfn import cmd_cfn_iam, cmd_cfn_writes, cmd_conformance_pack, load_cfn
from deploy_grafana import cmd_grafana_promql, cmd_grafana_schema
from deploy_kubernetes import cmd_crd_validate, cmd_k8s_compare, cmd_k8s_policy, cmd_k8s_sharded, cmd_k8s_split


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
    "conformance-pack": cmd_conformance_pack,
    "cfn-writes": cmd_cfn_writes,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__ + "\ncommands: " + ", ".join(COMMANDS), file=sys.stderr)
        sys.exit(2)
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
