"""An organization for scripts/bench-organization.sh, made through trailsim with botocore.

    bench_org_setup.py ENDPOINT MEMBERS EXTERNAL_ID OUT.json

A management account (entered as moto's default user, as the test bed does), its
organization, an organization trail (multi-region, with validation) logging to a bucket of
the management account whose new objects are announced to an SQS queue (S3 event
notifications, as deploy/aws/notifications.yaml sets up), then MEMBERS accounts made by
CreateAccount with the audit role in each (through OrganizationAccountAccessRole). Writes
the management account's credentials, the bucket, the queue and the member ids to OUT.json.
"""

import json
import random
import sys
from concurrent.futures import ThreadPoolExecutor

import botocore.session
from botocore.config import Config

ENDPOINT, MEMBERS, EXTERNAL_ID, OUT = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
AUDIT_ROLE = "trailwarden-audit"
CONFIG = Config(retries={"max_attempts": 10, "mode": "standard"}, max_pool_connections=16)
session = botocore.session.get_session()


def client(service, creds, region="us-east-1"):
    return session.create_client(
        service, region_name=region, endpoint_url=ENDPOINT, config=CONFIG,
        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds.get("SessionToken"))


def assume(creds, account, role):
    out = client("sts", creds).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/{role}", RoleSessionName="bench")
    return out["Credentials"]


default_user = {"AccessKeyId": "AKIAIOSFODNN7EXAMPLE", "SecretAccessKey": "not-a-secret"}
management_id = f"{random.randrange(400_000_000_000, 499_999_999_999):012d}"
management = assume(default_user, management_id, "bench-admin")
orgs = client("organizations", management)
orgs.create_organization(FeatureSet="ALL")

trust = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{management_id}:root"},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}},
    }],
})


def member(n):
    status = orgs.create_account(Email=f"member-{n}@example.com", AccountName=f"member-{n}")
    account = status["CreateAccountStatus"]["AccountId"]
    admin = assume(management, account, "OrganizationAccountAccessRole")
    client("iam", admin).create_role(RoleName=AUDIT_ROLE, AssumeRolePolicyDocument=trust)
    return account


bucket = f"bench-org-trail-{management_id}"
s3 = client("s3", management)
s3.create_bucket(Bucket=bucket)
sqs = client("sqs", management)
queue_url = sqs.create_queue(QueueName="bench-org-logs")["QueueUrl"]
queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
    "Attributes"]["QueueArn"]
s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
    "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]})
ct = client("cloudtrail", management)
arn = ct.create_trail(Name="org", S3BucketName=bucket, IsOrganizationTrail=True,
                      IsMultiRegionTrail=True, IncludeGlobalServiceEvents=True,
                      EnableLogFileValidation=True)["TrailARN"]
ct.start_logging(Name=arn)

# Members made after the trail started: each one's CreateRole is in its own folder of the
# organization trail's bucket at the next delivery.
with ThreadPoolExecutor(8) as pool:
    members = list(pool.map(member, range(MEMBERS)))

keys = {k: management[k] for k in ("AccessKeyId", "SecretAccessKey", "SessionToken")}
json.dump({"management": management_id, "credentials": keys, "bucket": bucket,
           "queue_url": queue_url, "trail": arn, "members": members}, open(OUT, "w"))
print(f"organization: management {management_id}, {len(members)} members, trail {arn}")
