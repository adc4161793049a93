"""Seeds and changes the demo world in a local moto (used by scripts/demo.sh).

The lab: a KMS key with alias, a private SSE-KMS bucket whose lifecycle keeps logs 400 days,
a logging multi-region trail with log file validation and all management events, and a
recording AWS Config. Runs with the boto3 that moto's virtual environment already has.
"""
import argparse
import boto3

ACCOUNT = "123456789012"  # moto's default account
BUCKET = "trailwarden-demo-logs"
TRAIL = "demo"


def clients(endpoint):
    kw = dict(endpoint_url=endpoint, region_name="us-east-1",
              aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="demo")
    return {name: boto3.client(name, **kw) for name in ("kms", "s3", "cloudtrail", "config")}


def seed(c):
    key = c["kms"].create_key(Description="trailwarden demo trail key")["KeyMetadata"]
    c["kms"].create_alias(AliasName="alias/cloudtrail", TargetKeyId=key["KeyId"])
    s3 = c["s3"]
    s3.create_bucket(Bucket=BUCKET)
    s3.put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True,
        "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_encryption(Bucket=BUCKET, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                                "KMSMasterKeyID": key["Arn"]}}]})
    s3.put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration={"Rules": [
        {"ID": "keep-400-days", "Status": "Enabled", "Filter": {"Prefix": "AWSLogs/"},
         "Expiration": {"Days": 400}}]})
    ct = c["cloudtrail"]
    arn = ct.create_trail(Name=TRAIL, S3BucketName=BUCKET, IsMultiRegionTrail=True,
                          IncludeGlobalServiceEvents=True, EnableLogFileValidation=True,
                          KmsKeyId=key["Arn"])["TrailARN"]
    ct.put_event_selectors(TrailName=arn, EventSelectors=[
        {"ReadWriteType": "All", "IncludeManagementEvents": True}])
    ct.start_logging(Name=arn)
    cfg = c["config"]
    cfg.put_configuration_recorder(ConfigurationRecorder={
        "name": "default", "roleARN": f"arn:aws:iam::{ACCOUNT}:role/config"})
    cfg.put_delivery_channel(DeliveryChannel={"name": "default", "s3BucketName": BUCKET})
    cfg.start_configuration_recorder(ConfigurationRecorderName="default")
    print(f"seeded: trail {arn}, bucket {BUCKET}, key {key['Arn']} (alias/cloudtrail)")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("action", choices=["seed", "stop-logging", "start-logging", "disable-key",
                                      "shorten-lifecycle"])
    p.add_argument("--endpoint", default="http://127.0.0.1:4566")
    a = p.parse_args()
    c = clients(a.endpoint)
    if a.action == "seed":
        seed(c)
    elif a.action == "stop-logging":
        c["cloudtrail"].stop_logging(Name=TRAIL)
        print("StopLogging sent: watch trailwarden_trail_logging drop to 0")
    elif a.action == "start-logging":
        c["cloudtrail"].start_logging(Name=TRAIL)
        print("StartLogging sent")
    elif a.action == "disable-key":
        # DisableKey takes a key id or ARN, not an alias: find the alias's key.
        aliases = c["kms"].list_aliases()["Aliases"]
        key_id = next(a["TargetKeyId"] for a in aliases if a["AliasName"] == "alias/cloudtrail")
        c["kms"].disable_key(KeyId=key_id)
        print("key disabled: watch the sse-kms policy fail")
    elif a.action == "shorten-lifecycle":
        c["s3"].put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration={
            "Rules": [{"ID": "expire-30-days", "Status": "Enabled",
                       "Filter": {"Prefix": "AWSLogs/"}, "Expiration": {"Days": 30}}]})
        print("lifecycle now expires logs after 30 days: watch the retention policy fail")


if __name__ == "__main__":
    main()
