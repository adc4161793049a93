"""deploy_checks.py's check of the IAM permissions the CloudFormation templates grant,
against deploy/iam-policy.json."""

import json
from pathlib import Path

import yaml

from deploy_common import AWS, IAM_POLICY, Problems, rel


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


# --- AWS Config: the conformance pack ------------------------------------------------------

# Config's rule names are at most 128 characters, and a pack adds "-conformance-pack-<id>".
MAX_PACK_RULE_NAME = 96


def cmd_conformance_pack(_args):
    """deploy/aws/conformance-pack.yaml holds one process check per policy of
    config/policies.yaml, named trailwarden-<id> (the daemon finds its rule by that name),
    and nothing a conformance pack cannot hold."""
    path = AWS / "conformance-pack.yaml"
    p = Problems(f"{rel(path)} against config/policies.yaml")
    pack = load_cfn(path)
    policies = yaml.safe_load((AWS.parent.parent / "config/policies.yaml").read_text())
    wanted = {f"trailwarden-{pol['id']}" for pol in policies["policies"]}
    found = set()
    for logical, resource in pack.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Config::ConfigRule":
            p.add(f"{logical}: a conformance pack holds Config rules, not {resource.get('Type')}")
            continue
        props = resource.get("Properties", {})
        name = props.get("ConfigRuleName", "")
        if props.get("Source") != {"Owner": "AWS", "SourceIdentifier": "AWS_CONFIG_PROCESS_CHECK"}:
            p.add(f"{logical}: Source must be the process check (Owner AWS, AWS_CONFIG_PROCESS_CHECK)")
        if len(name) > MAX_PACK_RULE_NAME:
            p.add(f"{logical}: ConfigRuleName {name} is longer than {MAX_PACK_RULE_NAME}")
        if name in found:
            p.add(f"{logical}: ConfigRuleName {name} twice")
        found.add(name)
    for name in sorted(wanted - found):
        p.add(f"no rule {name} for the policy in config/policies.yaml")
    for name in sorted(found - wanted):
        p.add(f"rule {name} names no policy of config/policies.yaml")
    return p.finish(f"{len(found)} process checks, one per policy")


# --- the opt-in writes beside the audit role ----------------------------------------------

# Each conditional policy of audit-role-writes.yaml, the condition that turns it on, and the
# policy file (what the daemon calls, checked by the tests) it must grant exactly.
WRITES = (
    ("AwsConfigPolicy", "PublishesToConfig", "deploy/iam-policy-aws-config.json"),
    ("SecurityHubPolicy", "ImportsToSecurityHub", "deploy/iam-policy-security-hub.json"),
    ("RemediationPolicy", "Remediates", "deploy/iam-policy-remediation.json"),
)


def cmd_cfn_writes(_args):
    """deploy/aws/audit-role-writes.yaml: each write policy is conditional (off by default),
    attached to the audit role by name, and grants exactly its deploy/iam-policy-*.json."""
    path = AWS / "audit-role-writes.yaml"
    p = Problems(f"{rel(path)} against the deploy/iam-policy-*.json of each write")
    template = load_cfn(path)
    resources = template.get("Resources", {})
    params = template.get("Parameters", {})
    audit_name = load_cfn(AWS / "audit-role.yaml")["Parameters"]["RoleName"]["Default"]
    if params.get("RoleName", {}).get("Default") != audit_name:
        p.add(f"RoleName must default to the audit role's name, {audit_name!r}")
    if set(resources) != {logical for logical, _, _ in WRITES}:
        p.add(f"resources must be exactly {[w[0] for w in WRITES]}, found {sorted(resources)}")
    for logical, condition, source in WRITES:
        r = resources.get(logical, {})
        where = f"{rel(path)} {logical}"
        if r.get("Type") != "AWS::IAM::RolePolicy" or r.get("Condition") != condition:
            p.add(f"{where}: must be an AWS::IAM::RolePolicy under condition {condition}")
            continue
        if r["Properties"].get("RoleName") != {"Ref": "RoleName"}:
            p.add(f"{where}: RoleName must be !Ref RoleName")
        actual = grants(as_list(r["Properties"]["PolicyDocument"]["Statement"]), where, p)
        expected_statements = json.loads((AWS.parent.parent / source).read_text())["Statement"]
        expected = {a: (g, source) for a, g in grants(expected_statements, source, p).items()}
        compare_grants(where, actual, expected, p)
    for name, param in params.items():
        if name != "RoleName" and param.get("Default") != "false":
            p.add(f"parameter {name} must default to \"false\": every write is opt-in")
    return p.finish(f"{len(WRITES)} conditional policies, each exactly its policy file, off by default")
