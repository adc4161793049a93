"""deploy_checks.py's checks of the Grafana dashboards: their schema, and their queries
(handed to promtool by .ci/deploy-checks)."""

import json
import re
from pathlib import Path

import yaml

from deploy_common import Problems


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
