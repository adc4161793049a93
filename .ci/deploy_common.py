"""What the checks of .ci/deploy_checks.py share: the repository's paths and the list of
problems each check reports."""

import sys
from pathlib import Path

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
