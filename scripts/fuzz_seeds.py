"""Seed corpora for the fuzz targets (fuzz/fuzz_targets/), written into fuzz/corpus/<target>/.

From ../shared/corpus/cloudtrail when it is there (real records, log files and a digest; the
project keeps no copy of them), and from the project's own configuration. Run by
scripts/fuzz.sh; the corpus folder is not committed.
"""
import gzip
import hashlib
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "corpus" / "cloudtrail"
OUT = ROOT / "fuzz" / "corpus"


def write(target, data):
    folder = OUT / target
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


def records():
    for path in sorted(SHARED.glob("*/*.json")):
        doc = json.loads(path.read_text())
        if isinstance(doc, dict) and "Records" in doc:
            yield path, doc["Records"]
        elif isinstance(doc, list):
            yield path, doc
        elif isinstance(doc, dict) and "eventName" in doc:
            yield path, [doc]


def main():
    shared = SHARED.is_dir()
    for path, recs in (records() if shared else []):
        for r in recs[:40]:
            write("record", json.dumps(r))
        whole = json.dumps({"Records": recs[:20]})
        write("log_file", whole)
        write("log_file", gzip.compress(whole.encode()))
        write("key_layout", f"AWSLogs/218007301253/CloudTrail/us-east-1/2023/07/10/{path.name}.gz")
    if shared:
        digest = (SHARED / "aws-docs" / "awsdocs_digest_file_example.json").read_bytes()
        write("digest_chain", digest)
        write("digest_chain", gzip.compress(digest))
        write("digest_chain", b"00ff\n" + digest + b"\n--\n" + digest)
        doc = json.loads(digest)
        write("key_layout", doc["digestS3Object"])
        write("key_layout", doc["digestS3Object"].replace(".json.gz", "_backfill.json.gz"))
    # The project's own: configuration, policies, detections, and their conditions.
    for name in ["trailwarden.yaml", "demo.yaml", "policies.yaml", "detections.yaml"]:
        write("config", (ROOT / "config" / name).read_text())
    # The sections the shipped files leave commented out: many accounts, metric lists.
    write("config", "policies: p.yaml\n"
          "accounts:\n  organization:\n    organizational_units: [r-ab12, ou-ab12-cd34ef56]\n"
          "    refresh: \"0 */15 * * * *\"\n  include: ['111122223333']\n"
          "  exclude: ['999999999999']\n  role:\n"
          "    arn: \"arn:aws:iam::{account}:role/trailwarden-audit\"\n"
          "    external_id: abc-123\n    session_name: tw\n    duration: 1h\n"
          "  concurrency: 8\n"
          "metrics:\n  allow: ['trailwarden_.*']\n  deny: ['.*_failures_total']\n")
    for c in [
        "{ path: status.latest_delivery_time, age_less_than: 2h }",
        "{ any: [{ path: requestParameters.kmsKeyId, eq: \"\" }, { path: derived.lifecycle_min_days, lte: 90 }] }",
        "{ all: [{ path: trail.name, in: [lab, prod] }, { not: { path: key, exists: true } }] }",
        "{ path: bucket.lifecycle_rules.0.expiration_days, gte: 365 }",
        "{ path: trail.home_region, regex: \"^us-\" }",
    ]:
        write("condition", c)
    write("key_layout", "AWSLogs/o-abcdefghij/123456789012/CloudTrail/eu-west-1/2026/12/01/123456789012_CloudTrail_eu-west-1_20261201T0005Z_abcdefghijklmnop.json.gz")
    write("log_file", '{"Records":[{"eventSource":"a","eventName":"b","x":"\\"]}"}]}')
    print(f"seeds in {OUT} ({'with' if shared else 'without'} ../shared/corpus)", file=sys.stderr)


main()
