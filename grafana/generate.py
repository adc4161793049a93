#!/usr/bin/env python3
"""Writes grafana/trailwarden.json, the trailwarden dashboard.

The JSON is what users import; this script is how it is edited, so that every panel uses
the same datasource, variables and conventions. Standard library only.

    grafana/generate.py           rewrite grafana/trailwarden.json
    grafana/generate.py --check   exit 1 if the file differs from what this script writes

CI (.ci/deploy-checks) runs --check, validates the result against Grafana's dashboard and
panel schemas, parses every query with promtool, and tests/prometheus.rs checks that every
metric it names is in a real scrape of the daemon.
"""

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "trailwarden.json"

DS = {"type": "prometheus", "uid": "${datasource}"}

# Label filters every query applies. Policy findings have a region label only where the
# finding is regional (account-level ones have region=""), which `.*` matches.
ACC = 'account=~"$account"'
ACC_REG = 'account=~"$account", region=~"$region"'
TRAIL = 'account=~"$account", trail=~"$trail"'
TRAIL_REG = 'account=~"$account", region=~"$region", trail=~"$trail"'
INST = 'instance=~"$instance"'

INFO_DETECTIONS = "cloudtrail_trail_created|cloudtrail_start_logging"

ROW_PANEL_IDS = iter(range(1, 1000))


def born_inclusive(selector: str, by: str, window: str = "$__interval") -> str:
    """Events counted per `window`, including the first one of a label set.

    A counter series is born at its first increment (value 1), which increase() cannot
    see; the value `window` earlier, or 0 when the series did not exist yet, is
    subtracted instead. Counter resets (daemon restarts) are clamped to 0.
    """
    return (
        f"sum by ({by}) (clamp_min({selector} - ({selector} offset {window} or {selector} * 0), 0))"
    )


def target(expr, legend=None, ref="A", instant=False, table=False):
    t = {"datasource": DS, "editorMode": "code", "expr": expr, "refId": ref}
    if legend is not None:
        t["legendFormat"] = legend
    if instant:
        t["instant"] = True
        t["range"] = False
    else:
        t["range"] = True
    if table:
        t["format"] = "table"
    return t


def thresholds(*steps):
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for value, color in steps],
    }


def field_defaults(unit=None, thr=None, mappings=None, custom=None, color=None, decimals=None,
                   min_=None, max_=None, no_value=None):
    d = {}
    if color is not None:
        d["color"] = color
    if custom is not None:
        d["custom"] = custom
    if decimals is not None:
        d["decimals"] = decimals
    if mappings is not None:
        d["mappings"] = mappings
    if max_ is not None:
        d["max"] = max_
    if min_ is not None:
        d["min"] = min_
    if no_value is not None:
        d["noValue"] = no_value
    if thr is not None:
        d["thresholds"] = thr
    if unit is not None:
        d["unit"] = unit
    return d


def value_map(mapping):
    return [
        {
            "type": "value",
            "options": {
                key: {"text": text, "color": color, "index": i}
                for i, (key, (text, color)) in enumerate(mapping.items())
            },
        }
    ]


def legend(placement="bottom", mode="list", calcs=None):
    return {"calcs": calcs or [], "displayMode": mode, "placement": placement,
            "showLegend": True}


TOOLTIP = {"mode": "multi", "sort": "desc"}


def timeseries_custom(bars=False, stack=False):
    return {
        "axisBorderShow": False,
        "axisPlacement": "auto",
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 80 if bars else 10,
        "gradientMode": "none",
        "lineInterpolation": "linear",
        "lineWidth": 1,
        "pointSize": 4,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if stack else "none"},
        "thresholdsStyle": {"mode": "off"},
    }


class Layout:
    """Places panels left to right on Grafana's 24-column grid."""

    def __init__(self):
        self.y = 0
        self.x = 0
        self.row_h = 0
        self.panels = []
        self.next_id = 1

    def _id(self):
        i = self.next_id
        self.next_id += 1
        return i

    def row(self, title):
        self.newline()
        self.panels.append({
            "collapsed": False,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
            "id": self._id(),
            "panels": [],
            "title": title,
            "type": "row",
        })
        self.y += 1

    def newline(self):
        self.y += self.row_h
        self.x = 0
        self.row_h = 0

    def add(self, w, h, panel):
        if self.x + w > 24:
            self.newline()
        panel = {
            "datasource": DS,
            "description": panel.pop("description"),
            "fieldConfig": {"defaults": panel.pop("defaults", {}),
                            "overrides": panel.pop("overrides", [])},
            "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y},
            "id": self._id(),
            **panel,
        }
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)


def stat(title, description, targets, defaults, color_mode="background", text_mode="auto",
         graph="none", calcs=("lastNotNull",)):
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "targets": targets,
        "defaults": defaults,
        "options": {
            "colorMode": color_mode,
            "graphMode": graph,
            "justifyMode": "auto",
            "orientation": "auto",
            "percentChangeColorMode": "standard",
            "reduceOptions": {"calcs": list(calcs), "fields": "", "values": False},
            "showPercentChange": False,
            "textMode": text_mode,
            "wideLayout": True,
        },
    }


def timeseries(title, description, targets, defaults, legend_opts=None, interval=None):
    p = {
        "type": "timeseries",
        "title": title,
        "description": description,
        "targets": targets,
        "defaults": defaults,
        "options": {"legend": legend_opts or legend(), "tooltip": TOOLTIP},
    }
    if interval:
        p["interval"] = interval
    return p


def table(title, description, targets, defaults, organize, overrides=None, sort_by=None):
    d = dict(defaults)
    d["custom"] = {"align": "auto", "cellOptions": {"type": "auto"}, "inspect": False,
                   "filterable": True}
    p = {
        "type": "table",
        "title": title,
        "description": description,
        "targets": targets,
        "defaults": d,
        "options": {"cellHeight": "sm", "frameIndex": 0, "showHeader": True},
        "transformations": [
            {"id": "organize", "options": organize},
        ],
    }
    if sort_by:
        p["options"]["sortBy"] = sort_by
    if overrides:
        p["overrides"] = overrides
    return p


def organize(hide, order, rename=None):
    return {
        "excludeByName": {name: True for name in hide},
        "indexByName": {name: i for i, name in enumerate(order)},
        "renameByName": rename or {},
    }


def column_override(name, props):
    return {"matcher": {"id": "byName", "options": name}, "properties": props}


def dashboard():
    L = Layout()

    # --- Compliance overview -------------------------------------------------------------
    L.row("Compliance")
    sev_colors = {"critical": "dark-red", "high": "red", "medium": "orange", "low": "yellow",
                  "info": "blue"}
    L.add(12, 5, stat(
        "Failing policies by severity",
        "Findings whose current status is fail, per policy severity "
        "(trailwarden_policy_status, status=\"fail\"). Details: the daemon's /status, "
        "`findings[].message`.",
        [target(f'sum by (severity) (trailwarden_policy_status{{status="fail", {ACC_REG}}})',
                "{{severity}}", instant=True)],
        field_defaults(unit="none", decimals=0,
                       thr=thresholds((None, "green"), (1, "red")),
                       color={"mode": "thresholds"}),
    ))
    L.add(6, 5, stat(
        "Policies that cannot be evaluated",
        "Findings in status error: an AWS call the policy needs failed (missing data is "
        "never a pass). The reason is `findings[].message` in /status.",
        [target(f'sum(trailwarden_policy_status{{status="error", {ACC_REG}}})', "error",
                instant=True)],
        field_defaults(unit="none", decimals=0,
                       thr=thresholds((None, "green"), (1, "orange")),
                       color={"mode": "thresholds"}),
    ))
    L.add(6, 5, stat(
        "Trails logging",
        "Trails whose GetTrailStatus says IsLogging, out of all trails watched "
        "(trailwarden_trail_logging).",
        [target(f"sum(trailwarden_trail_logging{{{TRAIL}}})", "logging", instant=True),
         target(f"count(trailwarden_trail_logging{{{TRAIL}}})", "trails", ref="B",
                instant=True)],
        field_defaults(unit="none", decimals=0, color={"mode": "fixed", "fixedColor": "text"}),
        color_mode="value", text_mode="value_and_name",
    ))
    status_mapping = value_map({"pass": ("pass", "green"), "fail": ("FAIL", "red"),
                                "error": ("error", "orange"), "pending": ("pending", "blue")})
    L.add(24, 9, table(
        "Findings not passing",
        "Every policy finding whose current status is fail, error or pending (a trail too "
        "young for its first delivery or digest) "
        "(trailwarden_policy_status == 1). `resource` is the trail name, the region, or "
        "`account`. Why: the finding's `message` in /status.",
        [target(f'trailwarden_policy_status{{status!="pass", {ACC_REG}}} == 1',
                instant=True, table=True)],
        field_defaults(),
        organize(
            hide=["Time", "Value", "__name__", "job", "instance", "container", "endpoint",
                  "namespace", "pod", "service"],
            order=["severity", "status", "policy", "resource", "account", "region"],
        ),
        overrides=[
            column_override("status", [
                {"id": "mappings", "value": status_mapping},
                {"id": "custom.cellOptions", "value": {"type": "color-text"}},
            ]),
            column_override("severity", [
                {"id": "mappings", "value": value_map(
                    {k: (k, v) for k, v in sev_colors.items()})},
                {"id": "custom.cellOptions", "value": {"type": "color-text"}},
            ]),
        ],
        sort_by=[{"displayName": "severity", "desc": False}],
    ))

    # --- Trail logging -------------------------------------------------------------------
    L.row("Trail logging")
    L.add(24, 7, {
        "type": "state-timeline",
        "title": "Trail logging",
        "description": "IsLogging per trail over time (trailwarden_trail_logging): a red "
                       "stretch is a trail that was stopped. Who stopped it: /status "
                       "`events[]` with detection cloudtrail_stop_logging.",
        "targets": [target(f"max by (account, trail) (trailwarden_trail_logging{{{TRAIL}}})",
                           "{{account}} / {{trail}}")],
        "defaults": field_defaults(
            color={"mode": "thresholds"},
            thr=thresholds((None, "red"), (1, "green")),
            mappings=value_map({"0": ("stopped", "red"), "1": ("logging", "green")}),
            custom={"fillOpacity": 80, "lineWidth": 0},
        ),
        "options": {
            "alignValue": "left",
            "legend": {"calcs": [], "displayMode": "list", "placement": "bottom",
                       "showLegend": False},
            "mergeValues": True,
            "rowHeight": 0.8,
            "showValue": "auto",
            "tooltip": {"mode": "single", "sort": "none"},
        },
    })

    # --- Tamper events -------------------------------------------------------------------
    L.row("Tamper events")
    L.add(14, 8, timeseries(
        "Tamper events",
        "CloudTrail events that matched a detection, per detection and step "
        "(trailwarden_tamper_events_total; the first event of a label set is counted too). "
        "Who did it, from where and on what: /status `events[]` (actor, source_ip, "
        "user_agent, resource): metric labels never carry ARNs.",
        [target(born_inclusive(f"trailwarden_tamper_events_total{{{ACC_REG}}}", "detection"),
                "{{detection}}")],
        field_defaults(unit="none", decimals=0, min_=0,
                       custom=timeseries_custom(bars=True, stack=True),
                       color={"mode": "palette-classic"}),
        legend_opts=legend("right", "table", ["sum"]),
        interval="1m",
    ))
    L.add(10, 8, table(
        "Tamper events in the time range",
        "Events per detection, event, outcome, account and region in the selected range. "
        "Informational detections (a trail created, logging started) are included. "
        "Per-actor detail is not a metric (the design forbids ARNs as labels): open "
        "/status `events[]` and match on detection and event_time.",
        [target(
            f"sum by (detection, event_name, outcome, account, region) (clamp_min("
            f"trailwarden_tamper_events_total{{{ACC_REG}}} - "
            f"(trailwarden_tamper_events_total{{{ACC_REG}}} offset $__range or "
            f"trailwarden_tamper_events_total{{{ACC_REG}}} * 0), 0)) > 0",
            instant=True, table=True)],
        field_defaults(decimals=0),
        organize(hide=["Time"],
                 order=["detection", "event_name", "outcome", "account", "region", "Value"],
                 rename={"Value": "events", "event_name": "event"}),
        overrides=[column_override("outcome", [
            {"id": "mappings", "value": value_map({"success": ("success", "red"),
                                                   "failure": ("failed attempt", "orange")})},
            {"id": "custom.cellOptions", "value": {"type": "color-text"}},
        ])],
        sort_by=[{"displayName": "events", "desc": True}],
    ))
    L.add(24, 6, table(
        "Newest event per detection",
        "When each detection last matched (eventTime; "
        "trailwarden_last_tamper_event_timestamp_seconds). Informational detections are "
        f"listed too ({INFO_DETECTIONS.replace('|', ', ')}).",
        [target("max by (detection) (trailwarden_last_tamper_event_timestamp_seconds) * 1000",
                instant=True, table=True)],
        field_defaults(),
        organize(hide=["Time"], order=["detection", "Value"],
                 rename={"Value": "newest event"}),
        overrides=[column_override("newest event", [{"id": "unit", "value": "dateTimeAsIso"}])],
        sort_by=[{"displayName": "newest event", "desc": True}],
    ))

    # --- Delivery and retention ----------------------------------------------------------
    L.row("Log delivery and retention")
    L.add(12, 8, timeseries(
        "Age of the newest log file",
        "Now minus the time of the newest log file in the bucket, per trail and delivery "
        "region (trailwarden_trail_latest_log_timestamp_seconds). CloudTrail delivers about "
        "every 5 minutes; TrailwardenLogDeliveryStale fires past 30 minutes. A quiet "
        "region may rightly deliver nothing for a while.",
        [target(f"time() - max by (account, region, trail) "
                f"(trailwarden_trail_latest_log_timestamp_seconds{{{TRAIL_REG}}})",
                "{{trail}} {{region}}")],
        field_defaults(unit="s", min_=0, custom={**timeseries_custom(),
                                                 "thresholdsStyle": {"mode": "line+area"}},
                       thr=thresholds((None, "transparent"), (1800, "red")),
                       color={"mode": "palette-classic"}),
    ))
    L.add(6, 8, {
        "type": "bargauge",
        "title": "Days of logs retained",
        "description": "Age of the oldest log file in the bucket, per trail "
                       "(trailwarden_trail_oldest_log_timestamp_seconds). Event history "
                       "forgets after 90 days: below 90 the bucket no longer covers the gap "
                       "(policy log-coverage).",
        "targets": [target(f"(time() - min by (account, trail) "
                           f"(trailwarden_trail_oldest_log_timestamp_seconds{{{TRAIL}}})) / 86400",
                           "{{trail}}", instant=True)],
        "defaults": field_defaults(unit="d", decimals=0, min_=0,
                                   thr=thresholds((None, "red"), (90, "green")),
                                   color={"mode": "thresholds"}),
        "options": {
            "displayMode": "basic",
            "legend": {"calcs": [], "displayMode": "list", "placement": "bottom",
                       "showLegend": False},
            "maxVizHeight": 300,
            "minVizHeight": 16,
            "minVizWidth": 8,
            "namePlacement": "auto",
            "orientation": "horizontal",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "showUnfilled": True,
            "sizing": "auto",
            "valueMode": "color",
        },
    })
    L.add(6, 8, timeseries(
        "Longest hole in retained logs",
        "The longest stretch without log files in the retention window, per trail and "
        "region (trailwarden_log_coverage_gap_seconds); 0 when continuous. A hole is "
        "deleted logs or a time the trail was stopped.",
        [target(f"max by (account, region, trail) "
                f"(trailwarden_log_coverage_gap_seconds{{{TRAIL_REG}}})",
                "{{trail}} {{region}}")],
        field_defaults(unit="s", min_=0, custom=timeseries_custom(),
                       color={"mode": "palette-classic"}),
    ))
    L.add(12, 7, timeseries(
        "Log records processed",
        "Records per second read from delivered log files, per account and region "
        "(trailwarden_log_records_processed_total), and records or whole files that could "
        "not be read (trailwarden_log_records_unparseable_total; each is in the daemon's "
        "log with its object key).",
        [target(f"sum by (account, region) "
                f"(rate(trailwarden_log_records_processed_total{{{ACC_REG}}}[$__rate_interval]))",
                "{{account}} {{region}}"),
         target(f"sum(rate(trailwarden_log_records_unparseable_total{{{INST}}}"
                f"[$__rate_interval]))", "unreadable", ref="B")],
        field_defaults(unit="ops", min_=0, custom=timeseries_custom(),
                       color={"mode": "palette-classic"}),
    ))
    L.add(12, 7, timeseries(
        "Log files validated",
        "Log files per second checked against their digests, per trail and region "
        "(trailwarden_log_files_validated_total).",
        [target(f"sum by (account, region, trail) "
                f"(rate(trailwarden_log_files_validated_total{{{TRAIL_REG}}}[$__rate_interval]))",
                "{{trail}} {{region}}")],
        field_defaults(unit="ops", min_=0, custom=timeseries_custom(),
                       color={"mode": "palette-classic"}),
    ))

    # --- Integrity -----------------------------------------------------------------------
    L.row("Log integrity")
    L.add(8, 7, stat(
        "Integrity failures in the time range",
        "Digest validation failures by kind in the selected range "
        "(trailwarden_digest_validation_failures_total). Anything but 0 is "
        "TrailwardenLogIntegrityFailure; see the log-integrity finding in /status.",
        [target(born_inclusive(f"trailwarden_digest_validation_failures_total{{{TRAIL_REG}}}",
                               "kind", "$__range"), "{{kind}}", instant=True)],
        field_defaults(unit="none", decimals=0, thr=thresholds((None, "green"), (1, "red")),
                       color={"mode": "thresholds"}),
        text_mode="value_and_name",
    ))
    L.add(16, 7, timeseries(
        "Integrity failures",
        "Digest validation failures per trail, region and kind (missing_digest, "
        "invalid_signature, broken_link, missing_log, modified_log, unlisted_log, "
        "unexplained_restart, unverifiable, invalid_format).",
        [target(born_inclusive(f"trailwarden_digest_validation_failures_total{{{TRAIL_REG}}}",
                               "trail, region, kind"), "{{trail}} {{region}} {{kind}}")],
        field_defaults(unit="none", decimals=0, min_=0,
                       custom=timeseries_custom(bars=True, stack=True),
                       color={"mode": "palette-classic"}),
        interval="1m",
    ))

    # --- The daemon ----------------------------------------------------------------------
    L.row("trailwarden: polls and AWS API calls")
    L.add(8, 7, {
        "type": "state-timeline",
        "title": "Poll success",
        "description": "Whether each poller's last run made every AWS call it needed "
                       "(trailwarden_poll_success). Why not: /status `pollers[].last_error`.",
        "targets": [target(f"min by (poller) (trailwarden_poll_success{{{INST}}})",
                           "{{poller}}")],
        "defaults": field_defaults(
            color={"mode": "thresholds"},
            thr=thresholds((None, "red"), (1, "green")),
            mappings=value_map({"0": ("failing", "red"), "1": ("ok", "green")}),
            custom={"fillOpacity": 80, "lineWidth": 0},
        ),
        "options": {
            "alignValue": "left",
            "legend": {"calcs": [], "displayMode": "list", "placement": "bottom",
                       "showLegend": False},
            "mergeValues": True,
            "rowHeight": 0.8,
            "showValue": "auto",
            "tooltip": {"mode": "single", "sort": "none"},
        },
    })
    L.add(8, 7, timeseries(
        "Time since the last clean poll",
        "Now minus each poller's last run without a failed AWS call "
        "(trailwarden_last_poll_success_timestamp_seconds).",
        [target(f"time() - max by (poller) "
                f"(trailwarden_last_poll_success_timestamp_seconds{{{INST}}})", "{{poller}}")],
        field_defaults(unit="s", min_=0, custom=timeseries_custom(),
                       color={"mode": "palette-classic"}),
    ))
    L.add(8, 7, timeseries(
        "Poll duration (p90)",
        "90th percentile of a run's duration, AWS calls and evaluation included "
        "(trailwarden_poll_duration_seconds).",
        [target(f"histogram_quantile(0.9, sum by (poller, le) "
                f"(rate(trailwarden_poll_duration_seconds_bucket{{{INST}}}[$__rate_interval])))",
                "{{poller}}"),
         target(f"sum by (poller) (rate(trailwarden_poll_duration_seconds_sum{{{INST}}}"
                f"[$__rate_interval])) / sum by (poller) "
                f"(rate(trailwarden_poll_duration_seconds_count{{{INST}}}[$__rate_interval]))",
                "{{poller}} mean", ref="B")],
        field_defaults(unit="s", min_=0, custom=timeseries_custom(),
                       color={"mode": "palette-classic"}),
    ))
    L.add(12, 7, timeseries(
        "Poll errors and skipped ticks",
        "AWS calls that failed after retries, per poller and reason "
        "(trailwarden_poll_errors_total: access_denied, throttled, timeout, unreachable, "
        "bad_response, not_found, other), ticks skipped because the previous run was "
        "still going (trailwarden_poll_skipped_total), and runs that panicked "
        "(trailwarden_poll_panics_total: a bug; the daemon goes on).",
        [target(born_inclusive(f"trailwarden_poll_errors_total{{{INST}}}", "poller, reason"),
                "{{poller}}: {{reason}}"),
         target(born_inclusive(f"trailwarden_poll_skipped_total{{{INST}}}", "poller"),
                "{{poller}}: skipped", ref="B"),
         target(born_inclusive(f"trailwarden_poll_panics_total{{{INST}}}", "poller"),
                "{{poller}}: panicked", ref="C")],
        field_defaults(unit="none", decimals=0, min_=0,
                       custom=timeseries_custom(bars=True, stack=True),
                       color={"mode": "palette-classic"}),
        interval="1m",
    ))
    L.add(12, 7, timeseries(
        "Bucket objects not read",
        "Objects whose read failed and that wait for a retry, by kind: log (its records "
        "wait) or digest (a chain waits at it) (trailwarden_unread_objects); reads that "
        "failed, by reason (trailwarden_object_read_failures_total). Which objects: "
        "/status `buckets[].unread`.",
        [target(f"sum by (kind) (trailwarden_unread_objects{{{INST}}})", "waiting: {{kind}}"),
         target(born_inclusive(f"trailwarden_object_read_failures_total{{{INST}}}",
                               "kind, reason"), "failed: {{kind}} {{reason}}", ref="B")],
        field_defaults(unit="none", decimals=0, min_=0, custom=timeseries_custom(),
                       color={"mode": "palette-classic"}),
        interval="1m",
    ))
    L.add(12, 7, timeseries(
        "AWS API calls",
        "Request attempts per second (retries count) by service and operation "
        "(trailwarden_aws_api_calls_total).",
        [target(f"sum by (service, operation) "
                f"(rate(trailwarden_aws_api_calls_total{{{INST}}}[$__rate_interval]))",
                "{{service}} {{operation}}")],
        field_defaults(unit="reqps", min_=0, custom=timeseries_custom(stack=True),
                       color={"mode": "palette-classic"}),
        legend_opts=legend("right", "table", ["mean", "max"]),
    ))
    L.add(12, 7, timeseries(
        "AWS API calls not successful",
        "Attempts per second by outcome other than success (client_error, server_error, "
        "throttled, transport_error).",
        [target(f'sum by (service, operation, outcome) '
                f'(rate(trailwarden_aws_api_calls_total{{outcome!="success", {INST}}}'
                f'[$__rate_interval]))', "{{operation}} {{outcome}}")],
        field_defaults(unit="reqps", min_=0, custom=timeseries_custom(stack=True),
                       color={"mode": "palette-classic"}),
    ))
    L.add(12, 7, timeseries(
        "Event history",
        "LookupEvents records processed (each once), dropped as already seen (the overlap "
        "each poll re-reads), and unreadable, per region; and how far behind now the "
        "event history checkpoint is.",
        [target(f"sum by (region) (rate(trailwarden_events_processed_total{{{INST}}}"
                f"[$__rate_interval]))", "{{region}} processed"),
         target(f"sum by (region) (rate(trailwarden_events_duplicates_total{{{INST}}}"
                f"[$__rate_interval]))", "{{region}} duplicates", ref="B"),
         target(f"sum by (region) (rate(trailwarden_events_unparseable_total{{{INST}}}"
                f"[$__rate_interval]))", "{{region}} unreadable", ref="C")],
        field_defaults(unit="ops", min_=0, custom=timeseries_custom(),
                       color={"mode": "palette-classic"}),
    ))
    L.add(6, 7, timeseries(
        "Event history checkpoint lag",
        "Now minus the time up to which event history has been read completely, per "
        "region (trailwarden_event_history_checkpoint_timestamp_seconds).",
        [target(f"time() - max by (region) "
                f"(trailwarden_event_history_checkpoint_timestamp_seconds{{{INST}}})",
                "{{region}}")],
        field_defaults(unit="s", min_=0, custom=timeseries_custom(),
                       color={"mode": "palette-classic"}),
    ))
    L.add(6, 7, stat(
        "Daemon",
        "Version (trailwarden_build_info), trails seen (trailwarden_trails), and whether "
        "the last configuration reload was accepted "
        "(trailwarden_config_last_reload_successful) and when "
        "(trailwarden_config_last_reload_success_timestamp_seconds).",
        [target(f"count by (version) (trailwarden_build_info{{{INST}}})", "version {{version}}",
                instant=True),
         target(f"sum(trailwarden_trails{{{INST}}})", "trails", ref="B", instant=True),
         target(f"min(trailwarden_config_last_reload_successful{{{INST}}})", "config reload ok",
                ref="C", instant=True),
         target(f"time() - max(trailwarden_config_last_reload_success_timestamp_seconds"
                f"{{{INST}}})", "config age", ref="D", instant=True)],
        field_defaults(unit="none", decimals=0, color={"mode": "fixed", "fixedColor": "text"}),
        color_mode="value", text_mode="value_and_name",
    ) | {"overrides": [column_override("config age", [{"id": "unit", "value": "s"}])]})

    return {
        "annotations": {"list": [{
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }]},
        "description": "trailwarden: is the CloudTrail audit trail keeping its promises? "
                       "Policy status, Stop Logging, tamper events, delivery, retention, "
                       "integrity, and the daemon's own health.",
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "links": [{
            "asDropdown": False,
            "icon": "doc",
            "includeVars": False,
            "keepTime": False,
            "tags": [],
            "targetBlank": True,
            "title": "Runbooks",
            "tooltip": "What each trailwarden alert means and what to do",
            "type": "link",
            "url": "https://github.com/trailwarden/trailwarden/blob/main/docs/runbooks.md",
        }],
        "panels": L.panels,
        "refresh": "1m",
        "schemaVersion": 41,
        "tags": ["trailwarden", "cloudtrail", "aws", "compliance"],
        "templating": {"list": [
            {
                "current": {"text": "", "value": ""},
                "hide": 0,
                "includeAll": False,
                "label": "Prometheus",
                "multi": False,
                "name": "datasource",
                "options": [],
                "query": "prometheus",
                "refresh": 1,
                "regex": "",
                "type": "datasource",
            },
            query_variable("account", "Account",
                           "label_values(trailwarden_policy_status, account)"),
            query_variable("region", "Region",
                           'label_values(trailwarden_policy_status{account=~"$account"}, region)'),
            query_variable("trail", "Trail",
                           'label_values(trailwarden_trail_logging{account=~"$account"}, trail)'),
            query_variable("instance", "Daemon",
                           "label_values(trailwarden_build_info, instance)"),
        ]},
        "time": {"from": "now-24h", "to": "now"},
        "timepicker": {},
        "timezone": "utc",
        "title": "trailwarden: CloudTrail compliance",
        "uid": "trailwarden",
        "version": 1,
        "weekStart": "",
    }


def query_variable(name, label, query):
    return {
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "datasource": DS,
        "hide": 0,
        "includeAll": True,
        "label": label,
        "multi": True,
        "name": name,
        "options": [],
        "query": query,
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "type": "query",
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv):
    text = render()
    if argv[1:] == ["--check"]:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is not what grafana/generate.py writes: run grafana/generate.py",
                  file=sys.stderr)
            return 1
        return 0
    if argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
