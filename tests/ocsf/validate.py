#!/usr/bin/env python3
"""Validate trailwarden's OCSF 1.8.0 output against the generated JSON Schemas.

    python3 tests/ocsf/validate.py events.json      # or: ... | validate.py [-]

Input: one event object, a JSON array of events, or JSON lines (one event per
line). Each event's schema is chosen by its class_uid: 2003 Compliance Finding
or 2004 Detection Finding; any other class_uid is an error.

Exit status: 0 all events valid (prints "N events valid: a compliance findings,
b detection findings"), 1 any event invalid (each error is printed as
"event I: <JSON path>: <message>"), 2 unreadable input or no events.

Beyond plain JSON Schema, this enforces the schemas' "x-ocsf-profile" keyword:
an attribute that comes from an OCSF profile (e.g. `cloud`, `api`, `actor`,
resources[].region) is only allowed when the event's metadata.profiles
declares that profile, as the OCSF server's validator does. Use of a
deprecated attribute is printed as a warning and does not fail.

Needs only `jsonschema` (see requirements.txt).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import datetime

try:
    from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators
except ImportError:  # pragma: no cover
    print("validate.py needs jsonschema: pip install -r tests/ocsf/requirements.txt", file=sys.stderr)
    sys.exit(2)

HERE = os.path.dirname(os.path.abspath(__file__))
CLASSES = {2003: ("compliance_finding", "compliance findings"), 2004: ("detection_finding", "detection findings")}
MAX_MESSAGE = 300

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")

format_checker = FormatChecker(formats=())


@format_checker.checks("date-time", raises=ValueError)
def is_rfc3339(value: object) -> bool:
    """RFC 3339 date-time with a mandatory offset (jsonschema's own check needs
    an extra package, so it is done here with the standard library)."""
    if not isinstance(value, str):
        return True
    match = _RFC3339.match(value)
    if not match:
        return False
    text = value.replace("t", "T").replace(" ", "T").replace("z", "Z").replace("Z", "+00:00")
    if match.group(1):  # fromisoformat takes at most 6 fraction digits
        text = text.replace(match.group(1), match.group(1)[:7], 1)
    datetime.fromisoformat(text)  # raises ValueError on e.g. month 13
    return True


class Context:
    """Per-event state the custom keywords read."""

    def __init__(self) -> None:
        self.declared: set[str] = set()
        self.check_profiles = True


CTX = Context()


class Deprecation(ValidationError):
    """Reported as a warning, not an error. (Deprecated attributes only sit
    under `properties`, never inside the schemas' anyOf/oneOf/if branches, so
    this never changes which branch matches.)"""


def profile_keyword(validator, profile, instance, schema):
    if CTX.check_profiles and profile not in CTX.declared:
        yield ValidationError(
            f"attribute of the OCSF profile {profile!r}, which metadata.profiles does not declare")


def deprecated_keyword(validator, deprecated, instance, schema):
    if deprecated:
        yield Deprecation(f"deprecated in OCSF ({schema.get('title', '?')})")


OcsfValidator = validators.extend(
    Draft202012Validator, {"x-ocsf-profile": profile_keyword, "deprecated": deprecated_keyword})


def load_validators(schema_dir: str) -> dict[int, Draft202012Validator]:
    loaded = {}
    for class_uid, (name, _) in CLASSES.items():
        with open(os.path.join(schema_dir, f"{name}.schema.json"), encoding="utf-8") as f:
            schema = json.load(f)
        Draft202012Validator.check_schema(schema)
        loaded[class_uid] = OcsfValidator(schema, format_checker=format_checker)
    return loaded


def _no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key!r}")
        seen[key] = value
    return seen


def read_events(text: str) -> list[tuple[str, object]]:
    """(label, event) pairs; raises ValueError if the input is not JSON, an
    array of JSON values, or JSON lines."""
    try:
        whole = json.loads(text, object_pairs_hook=_no_duplicates)
    except ValueError as whole_error:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        if len(lines) < 2:
            raise ValueError(f"not JSON: {whole_error}") from None
        events = []
        for n, line in lines:
            try:
                events.append((f"event {len(events)} (line {n})", json.loads(line, object_pairs_hook=_no_duplicates)))
            except ValueError as error:
                raise ValueError(f"line {n}: not JSON: {error}") from None
        return events
    if isinstance(whole, list):
        return [(f"event {i}", event) for i, event in enumerate(whole)]
    if isinstance(whole, dict):
        return [("event 0", whole)]
    raise ValueError(f"expected an event object, an array of events or JSON lines, got {type(whole).__name__}")


def describe(error: ValidationError) -> str:
    schema = error.schema if isinstance(error.schema, dict) else {}
    subschemas = schema.get(error.validator) if error.validator in ("anyOf", "oneOf") else None
    if subschemas and all(set(s) == {"required"} for s in subschemas):
        names = ", ".join(name for s in subschemas for name in s["required"])
        present = [name for s in subschemas for name in s["required"] if name in error.instance]
        if error.validator == "anyOf":
            return f"needs at least one of: {names} (OCSF at_least_one constraint)"
        return f"needs exactly one of: {names}, has {present or 'none'} (OCSF just_one constraint)"
    message = error.message
    in_then = "then" in error.relative_schema_path
    if error.validator == "const" and in_then:
        message += " (type_uid must be class_uid * 100 + activity_id)"
    elif error.validator == "required" and in_then:
        message += " (required by a profile that metadata.profiles declares)"
    elif error.validator == "pattern" and len(str(error.validator_value)) > 80:
        message = f"{error.instance!r} does not match the OCSF pattern of this attribute's type"
    return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + "..."


def validate_event(event: object, checkers: dict[int, Draft202012Validator],
                   lenient_profiles: bool) -> tuple[list[str], list[str]]:
    """(errors, warnings) for one event."""
    if not isinstance(event, dict):
        return [f"$: expected an event object, got {type(event).__name__}"], []
    class_uid = event.get("class_uid")
    if isinstance(class_uid, bool) or class_uid not in CLASSES:
        return [f"$.class_uid: {class_uid!r} is not a supported class_uid (2003 Compliance Finding, "
                "2004 Detection Finding)"], []
    metadata = event.get("metadata")
    profiles = metadata.get("profiles") if isinstance(metadata, dict) else None
    CTX.declared = {p for p in profiles if isinstance(p, str)} if isinstance(profiles, list) else set()
    CTX.check_profiles = not lenient_profiles
    found = sorted(checkers[class_uid].iter_errors(event), key=lambda e: (e.json_path, e.message))
    errors = [f"{e.json_path}: {describe(e)}" for e in found if not isinstance(e, Deprecation)]
    warnings = [f"{e.json_path}: {e.message}" for e in found if isinstance(e, Deprecation)]
    return errors, warnings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", nargs="?", default="-", help="file to read, or - for stdin (default)")
    parser.add_argument("--schema-dir", default=HERE, help="where the *.schema.json files are")
    parser.add_argument("--lenient-profiles", action="store_true",
                        help="allow profile attributes even when metadata.profiles does not declare the profile")
    args = parser.parse_args()

    try:
        if args.input == "-":
            text = sys.stdin.read()
        else:
            with open(args.input, encoding="utf-8") as f:
                text = f.read()
        events = read_events(text)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        print(f"{args.input}: unreadable: {error}", file=sys.stderr)
        return 2
    if not events:
        print(f"{args.input}: no events", file=sys.stderr)
        return 2

    checkers = load_validators(args.schema_dir)
    counts = {uid: 0 for uid in CLASSES}
    invalid = total_errors = 0
    for label, event in events:
        errors, warnings = validate_event(event, checkers, args.lenient_profiles)
        for warning in warnings:
            print(f"{label}: warning: {warning}")
        for error in errors:
            print(f"{label}: {error}")
        if errors:
            invalid += 1
            total_errors += len(errors)
        else:
            counts[event["class_uid"]] += 1

    if invalid:
        print(f"{invalid} of {len(events)} events invalid ({total_errors} errors)")
        return 1
    print(f"{len(events)} events valid: {counts[2003]} compliance findings, {counts[2004]} detection findings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
