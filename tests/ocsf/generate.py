#!/usr/bin/env python3
"""Generate strict JSON Schemas (draft 2020-12) for two OCSF 1.8.0 classes.

    python3 tests/ocsf/generate.py /tmp/ocsf-1.8.0            # write the schemas
    python3 tests/ocsf/generate.py /tmp/ocsf-1.8.0 --check    # exit 1 if they are stale
    python3 tests/ocsf/generate.py /tmp/ocsf-1.8.0 --compare-export

The argument is an extracted copy of the ocsf-schema repository at commit
3dcb905d (the v1.8.0 release; see README.md). Needs the pins in
generate-requirements.txt: ocsf-lib compiles the repository, ocsf-json-schema
turns a compiled class into JSON Schema, and this script only adapts the one to
the other and adds what neither does (see post_process()).
"""

from __future__ import annotations

import argparse
import copy
import glob
import json
import os
import sys
from importlib.metadata import version as installed_version

OCSF_VERSION = "1.8.0"
SCHEMA_COMMIT = "3dcb905d26523ce4d5d0ba3c28c8507e2c859407"
PINS = {"ocsf-lib": "0.10.4", "ocsf-json-schema": "1.2.0"}
CLASSES = {"compliance_finding": 2003, "detection_finding": 2004}
HERE = os.path.dirname(os.path.abspath(__file__))
PROFILE_KEYWORD = "x-ocsf-profile"


def check_pins() -> None:
    for pkg, want in PINS.items():
        got = installed_version(pkg)
        if got != want:
            sys.exit(f"{pkg} {got} is installed; this generator is pinned to {want} "
                     "(pip install -r tests/ocsf/generate-requirements.txt)")


def strip_none(value):
    """ocsf-lib writes every unset field as null; ocsf-json-schema reads the
    presence of a key (e.g. '@deprecated') as meaningful, so drop the nulls."""
    if isinstance(value, dict):
        return {k: strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_none(v) for v in value]
    return value


def read_raw(schema_dir: str, kind: str) -> dict[str, dict]:
    """The core definition files of one kind ("objects" or "events"), by name
    (the two kinds are separate namespaces: there is an object and an event
    both named `finding`)."""
    raw: dict[str, dict] = {}
    for path in sorted(glob.glob(os.path.join(schema_dir, kind, "**", "*.json"), recursive=True)):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if "name" in data:
            raw[data["name"]] = data
    return raw


def lineage(raw: dict[str, dict], name: str) -> list[dict]:
    """A definition and the ones it extends, nearest first."""
    chain: list[dict] = []
    while name in raw and len(chain) < 20:
        chain.append(raw[name])
        name = raw[name].get("extends", "")
    return chain


def own_constraints(raw: dict[str, dict], name: str) -> dict:
    """ocsf-lib 0.10.4 merges a parent's `constraints` over the child's (e.g.
    `evidences` and `user` get `_entity`'s at_least_one [name, uid]); the OCSF
    server keeps the nearest definition's own."""
    for data in lineage(raw, name):
        if "constraints" in data:
            return data["constraints"]
    return {}


def native_attributes(raw: dict[str, dict], name: str) -> set[str]:
    """Attributes a definition or its ancestors declare themselves (not via a
    profile $include). ocsf-lib 0.10.4 keeps the profile tag on them (e.g.
    detection_finding.is_alert stays 'security_control'); the OCSF server
    treats them as plain class attributes."""
    names: set[str] = set()
    for data in lineage(raw, name):
        names.update(k for k in data.get("attributes", {}) if not k.startswith("$"))
    return names


def compile_core(schema_dir: str) -> dict:
    """Compile the core schema (no extensions) with ocsf-lib and adapt it to
    the 'export/schema' shape that ocsf-json-schema reads."""
    from ocsf.compile.compiler import Compilation
    from ocsf.compile.options import CompilationOptions
    from ocsf.repository import read_repo
    from ocsf.schema import to_dict

    with open(os.path.join(schema_dir, "version.json"), encoding="utf-8") as f:
        found = json.load(f)["version"]
    if found != OCSF_VERSION:
        sys.exit(f"{schema_dir} is OCSF {found}, expected {OCSF_VERSION}")

    repo = read_repo(schema_dir, preserve_raw_data=False)
    compiled = strip_none(to_dict(Compilation(repo, CompilationOptions(extensions=[])).build()))

    types, objects = compiled["types"], compiled["objects"]
    for kind in ("classes", "objects"):
        raw = read_raw(schema_dir, "events" if kind == "classes" else "objects")
        for name, record in compiled[kind].items():
            if kind == "classes":
                for attr_name in native_attributes(raw, name) & set(record.get("attributes", {})):
                    record["attributes"][attr_name].pop("profile", None)
            # ocsf-lib 0.10.4 leaves object references as {"type": "<object name>"}
            # (its set_object_types step never fires); the export has object_t.
            for attr_name, attr in record.get("attributes", {}).items():
                if attr["type"] in types:
                    continue
                if attr["type"] not in objects:
                    sys.exit(f"{kind}.{name}.{attr_name}: unknown type {attr['type']}")
                attr["object_type"] = attr["type"]
                attr["type"] = "object_t"
            record.pop("constraints", None)
            if own_constraints(raw, name):
                record["constraints"] = own_constraints(raw, name)
    return compiled


def reachable_objects(compiled: dict, class_name: str) -> list[str]:
    seen: set[str] = set()
    todo = [compiled["classes"][class_name]]
    while todo:
        for attr in todo.pop().get("attributes", {}).values():
            name = attr.get("object_type")
            if name and name not in seen:
                seen.add(name)
                todo.append(compiled["objects"][name])
    return sorted(seen)


def post_process(schema: dict, compiled: dict, class_name: str) -> dict:
    """What ocsf-json-schema does not do:

    * profile attributes: ocsf-json-schema includes the attributes of the
      profiles it is given and keeps their requirement. Here every profile is
      given; each profile attribute is marked with "x-ocsf-profile" (validate.py
      rejects it unless the event's metadata.profiles names that profile, like
      the OCSF server's validator) and is removed from `required`; for the
      class's own attributes an if/then re-requires them when the event
      declares the profile (e.g. `cloud` once "cloud" is declared).
    * datetime_t gets "format": "date-time" on top of the OCSF regex.
    * type_uid must equal class_uid * 100 + activity_id.
    * metadata.version must be this OCSF version; metadata.profiles items
      must be profiles this schema defines.
    """
    klass = compiled["classes"][class_name]
    uid = klass["uid"]

    def annotate(node: dict, record: dict) -> None:
        required = set(node.get("required", []))
        for prop_name, prop in node.get("properties", {}).items():
            attr = record["attributes"][prop_name]
            target = prop.get("items", prop)
            if attr["type"] == "datetime_t":
                target["format"] = "date-time"
            if "enum" in target:
                target["enum"] = sorted(target["enum"])
            if "profile" in attr:
                prop[PROFILE_KEYWORD] = attr["profile"]
                required.discard(prop_name)
        if required:
            node["required"] = sorted(required)
        else:
            node.pop("required", None)

    annotate(schema, klass)
    for def_name, node in schema["$defs"].items():
        annotate(node, compiled["objects"][def_name])

    gates = []
    by_profile: dict[str, list[str]] = {}
    for attr_name, attr in klass["attributes"].items():
        if "profile" in attr and attr["requirement"] == "required":
            by_profile.setdefault(attr["profile"], []).append(attr_name)
    for profile, names in sorted(by_profile.items()):
        gates.append({
            "$comment": f"profile {profile}: required once declared in metadata.profiles",
            "if": {"required": ["metadata"], "properties": {"metadata": {
                "required": ["profiles"],
                "properties": {"profiles": {"contains": {"const": profile}}}}}},
            "then": {"required": sorted(names)},
        })
    for activity in sorted(int(k) for k in klass["attributes"]["activity_id"]["enum"]):
        gates.append({
            "if": {"required": ["activity_id"], "properties": {"activity_id": {"const": activity}}},
            "then": {"properties": {"type_uid": {"const": uid * 100 + activity}}},
        })
    schema["allOf"] = gates

    metadata = schema["$defs"]["metadata"]["properties"]
    metadata["version"]["const"] = OCSF_VERSION
    metadata["profiles"]["items"]["enum"] = sorted(compiled["profiles"])

    schema["$id"] = f"urn:trailwarden:ocsf:{OCSF_VERSION}:{class_name}"
    schema["$comment"] = (
        f"GENERATED by tests/ocsf/generate.py from OCSF {OCSF_VERSION} (ocsf-schema commit "
        f"{SCHEMA_COMMIT}, core only, no extensions) with ocsf-lib {PINS['ocsf-lib']} and "
        f"ocsf-json-schema {PINS['ocsf-json-schema']}. Do not edit. Attributes marked "
        f"{PROFILE_KEYWORD} are allowed only when metadata.profiles declares that profile; "
        "tests/ocsf/validate.py enforces it, other validators ignore the keyword.")
    schema["x-ocsf"] = {
        "version": OCSF_VERSION,
        "schema_commit": SCHEMA_COMMIT,
        "class_name": class_name,
        "class_uid": uid,
        "category_uid": compiled["categories"][klass["category"]]["uid"],
        "class_profiles": sorted(klass.get("profiles", [])),
        "generator": {"ocsf-lib": PINS["ocsf-lib"], "ocsf-json-schema": PINS["ocsf-json-schema"]},
    }
    return schema


def build(compiled: dict, class_name: str) -> dict:
    from ocsf_json_schema import OcsfJsonSchemaEmbedded

    generator = OcsfJsonSchemaEmbedded(copy.deepcopy(compiled))
    schema = generator.get_class_schema(class_name, profiles=sorted(compiled["profiles"]))
    schema = post_process(schema, compiled, class_name)
    klass = compiled["classes"][class_name]
    assert schema["properties"]["class_uid"]["const"] == CLASSES[class_name]
    assert schema["properties"]["category_uid"]["const"] == schema["x-ocsf"]["category_uid"]
    assert klass["uid"] == CLASSES[class_name]
    return schema


def render(schema: dict) -> str:
    return json.dumps(schema, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def compare_export(compiled: dict) -> int:
    """Diff the ocsf-lib compilation against the OCSF server's own export of
    1.8.0 that ocsf-json-schema ships (schema.ocsf.io/1.8.0/export/v2/schema;
    the server runs with the linux/win/macos extensions, so their additions
    show up as 'only in export')."""
    from ocsf_json_schema import get_ocsf_schema

    export = get_ocsf_schema(OCSF_VERSION)
    diffs = 0

    def norm(attr: dict, v2: bool) -> dict:
        profiles = attr.get("profiles") or [] if v2 else [attr["profile"]] if "profile" in attr else []
        return {
            "type": attr["type"], "object_type": attr.get("object_type"),
            "requirement": attr.get("requirement"), "is_array": bool(attr.get("is_array")),
            "enum": sorted(attr.get("enum", {})), "profiles": sorted(profiles),
            "deprecated": "@deprecated" in attr,
        }

    def diff(label: str, ours: dict, theirs: dict) -> None:
        nonlocal diffs
        ca, ta = ours.get("attributes", {}), theirs.get("attributes", {})
        for name in sorted(set(ca) | set(ta)):
            if name not in ta:
                print(f"{label}.{name}: only in ocsf-lib compilation")
            elif name not in ca:
                print(f"{label}.{name}: only in export {norm(ta[name], True)['profiles']}")
            else:
                a, b = norm(ca[name], False), norm(ta[name], True)
                for key in a:
                    if a[key] != b[key]:
                        print(f"{label}.{name}.{key}: ocsf-lib {a[key]!r} / export {b[key]!r}")
                        diffs += 1
                continue
            diffs += 1
        if (ours.get("constraints") or {}) != (theirs.get("constraints") or {}):
            print(f"{label} constraints: ocsf-lib {ours.get('constraints')} / export {theirs.get('constraints')}")
            diffs += 1

    names: set[str] = set()
    for class_name in CLASSES:
        diff(class_name, compiled["classes"][class_name], export["classes"][class_name])
        names.update(reachable_objects(compiled, class_name))
    for name in sorted(names):
        diff(f"object {name}", compiled["objects"][name], export["objects"][name])
    print(f"{diffs} difference(s) over {len(CLASSES)} classes and {len(names)} objects")
    return diffs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("schema_dir", help=f"extracted ocsf-schema at commit {SCHEMA_COMMIT[:8]}")
    parser.add_argument("--out-dir", default=HERE)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed schemas differ")
    parser.add_argument("--compare-export", action="store_true",
                        help="diff the compilation against the OCSF server export packaged in ocsf-json-schema")
    args = parser.parse_args()

    check_pins()
    compiled = compile_core(args.schema_dir)
    if args.compare_export:
        compare_export(compiled)
        return 0

    stale = 0
    for class_name in sorted(CLASSES):
        text = render(build(compiled, class_name))
        path = os.path.join(args.out_dir, f"{class_name}.schema.json")
        if args.check:
            try:
                with open(path, encoding="utf-8") as f:
                    same = f.read() == text
            except FileNotFoundError:
                same = False
            if not same:
                print(f"{path} is stale; rerun generate.py")
                stale += 1
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            print(f"wrote {path} ({len(text)} bytes)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
