//! What an incoming request is: service, operation (as CloudTrail names it), region, access
//! key and request parameters, read from the wire as AWS would: the SigV4 credential scope,
//! `X-Amz-Target` (JSON protocols), `Action=` (query protocol), or method, path and
//! sub-resource (S3 REST).

use serde_json::{Map, Value, json};

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// SigV4 service name: `cloudtrail`, `s3`, `kms`, `config`, `sts`, `organizations`, ...
    pub service: String,
    /// The operation as CloudTrail's `eventName` spells it (`PutBucketLifecycle`).
    pub operation: String,
    pub region: String,
    pub access_key_id: String,
    /// `requestParameters` of the record, before responses are known.
    pub parameters: Value,
    /// For S3 data events (object reads and writes, listings): the object, or the listing's
    /// prefix. Data events are not management events: they are never recorded.
    pub data: Option<DataObject>,
}

/// What an S3 data event touches.
#[derive(Debug, Clone, PartialEq)]
pub struct DataObject {
    pub bucket: String,
    /// The object's key, or a listing's `prefix` (empty when none).
    pub key: String,
}

/// The parts of a request [`identify`] reads.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub target: Option<&'a str>,
    pub host: Option<&'a str>,
    pub body: &'a [u8],
}

/// `None` for requests that are not signed AWS API calls (moto's own API, health checks).
pub fn identify(r: &Request<'_>) -> Option<Call> {
    let (access_key_id, region, service) = credential_scope(r.authorization?)?;
    if service == "s3"
        && let Some((operation, data)) = s3_data_operation(r)
    {
        return Some(Call {
            service,
            operation,
            region,
            access_key_id,
            parameters: json!({"bucketName": data.bucket, "key": data.key}),
            data: Some(data),
        });
    }
    let (operation, parameters) = if service == "s3" {
        s3_operation(r)?
    } else if service == "securityhub" {
        // REST JSON: the operation is in the method and path.
        let operation = security_hub_operation(r.method, r.path)?;
        let parameters = serde_json::from_slice(r.body).unwrap_or(Value::Null);
        (operation.to_string(), parameters)
    } else if let Some(target) = r.target {
        // `CloudTrail_20131101.StopLogging`, or fully qualified from botocore.
        let operation = target.rsplit('.').next()?.to_string();
        let parameters = serde_json::from_slice(r.body).unwrap_or(Value::Null);
        (operation, parameters)
    } else {
        query_operation(r.body)?
    };
    Some(Call {
        service,
        operation,
        region,
        access_key_id,
        parameters,
        data: None,
    })
}

/// The Security Hub operations trailsim knows, by method and path (REST JSON protocol).
fn security_hub_operation(method: &str, path: &str) -> Option<&'static str> {
    Some(
        match (method, path.split('?').next()?.trim_end_matches('/')) {
            ("POST", "/findings/import") => "BatchImportFindings",
            ("POST", "/findings") => "GetFindings",
            ("PATCH", "/findings/batchupdate") => "BatchUpdateFindings",
            ("POST", "/accounts") => "EnableSecurityHub",
            ("GET", "/accounts") => "DescribeHub",
            _ => return None,
        },
    )
}

/// `AWS4-HMAC-SHA256 Credential=AKID/20261124/us-east-1/cloudtrail/aws4_request, ...`
fn credential_scope(authorization: &str) -> Option<(String, String, String)> {
    let scope = authorization.split("Credential=").nth(1)?;
    let scope = scope.split([',', ' ']).next()?;
    let mut parts = scope.split('/');
    let key = parts.next()?.to_string();
    let _date = parts.next()?;
    let region = parts.next()?.to_string();
    let service = parts.next()?.to_string();
    Some((key, region, service))
}

/// Query protocol (STS): `Action=AssumeRole&RoleArn=...`. Parameters become lowerCamelCase,
/// as CloudTrail writes them (`roleArn`, `roleSessionName`).
fn query_operation(body: &[u8]) -> Option<(String, Value)> {
    let mut action = None;
    let mut params = Map::new();
    for (k, v) in form_urlencoded::parse(body) {
        match k.as_ref() {
            "Action" => action = Some(v.into_owned()),
            "Version" => {}
            key => {
                params.insert(lower_camel(key), Value::String(v.into_owned()));
            }
        }
    }
    Some((action?, Value::Object(params)))
}

fn lower_camel(key: &str) -> String {
    let mut chars = key.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// S3 data events, named as the SDKs name them: object reads and writes (`GetObject`,
/// `HeadObject`, `PutObject`, `DeleteObject`) and listings (`ListObjectsV2`, `ListObjects`).
/// Other object sub-resources (ACLs, tags, multipart uploads) are not identified.
fn s3_data_operation(r: &Request<'_>) -> Option<(String, DataObject)> {
    let path = r.path.trim_start_matches('/');
    let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
    if bucket.is_empty() {
        return None;
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let query: Vec<(String, String)> = r
        .query
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let only = |allowed: &[&str]| {
        query
            .iter()
            .all(|(k, _)| allowed.contains(&k.as_str()) || k.starts_with("response-"))
    };
    let data = |key: String| DataObject {
        bucket: decode(bucket),
        key,
    };
    if !key.is_empty() {
        if !only(&["versionId", "partNumber", "x-id"]) {
            return None;
        }
        let operation = match r.method {
            "GET" => "GetObject",
            "HEAD" => "HeadObject",
            "PUT" => "PutObject",
            "DELETE" => "DeleteObject",
            _ => return None,
        };
        return Some((operation.to_string(), data(decode(key))));
    }
    const LISTING: &[&str] = &[
        "list-type",
        "prefix",
        "delimiter",
        "max-keys",
        "continuation-token",
        "start-after",
        "encoding-type",
        "fetch-owner",
        "marker",
        "x-id",
    ];
    if r.method != "GET" || !only(LISTING) {
        return None;
    }
    let operation = if query.iter().any(|(k, v)| k == "list-type" && v == "2") {
        "ListObjectsV2"
    } else {
        "ListObjects"
    };
    let prefix = query
        .iter()
        .find(|(k, _)| k == "prefix")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    Some((operation.to_string(), data(prefix)))
}

/// S3 bucket-level operations by method and sub-resource (object-level calls and listings are
/// [`s3_data_operation`]).
fn s3_operation(r: &Request<'_>) -> Option<(String, Value)> {
    let path = r.path.trim_start_matches('/');
    let (bucket, key) = match path.split_once('/') {
        Some((b, k)) => (b, k),
        None => (path, ""),
    };
    if bucket.is_empty() && r.method == "GET" {
        // The service itself: ListBuckets, a management event.
        return Some(("ListBuckets".to_string(), json!({})));
    }
    if bucket.is_empty() || !key.is_empty() {
        return None;
    }
    let bucket = percent_encoding::percent_decode_str(bucket)
        .decode_utf8_lossy()
        .into_owned();
    let subresources: Vec<(String, String)> = r
        .query
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let sub = |name: &str| subresources.iter().any(|(k, _)| k == name);
    const KNOWN: &[&str] = &[
        "lifecycle",
        "policyStatus",
        "policy",
        "encryption",
        "versioning",
        "acl",
        "publicAccessBlock",
        "logging",
        "object-lock",
        "location",
        "tagging",
        "notification",
        "replication",
        "website",
        "cors",
        "ownershipControls",
        "list-type",
        "x-id",
        "prefix",
        "delimiter",
        "max-keys",
        "continuation-token",
        "start-after",
        "encoding-type",
        "fetch-owner",
        "marker",
    ];
    // A sub-resource this table does not know is not guessed at: a PUT of it is no
    // CreateBucket, a DELETE no DeleteBucket.
    if subresources
        .iter()
        .any(|(k, _)| !KNOWN.contains(&k.as_str()))
    {
        return None;
    }
    let (resource, suffix) = [
        ("lifecycle", "Lifecycle"),
        ("policyStatus", "PolicyStatus"),
        ("policy", "Policy"),
        ("encryption", "Encryption"),
        ("versioning", "Versioning"),
        ("acl", "Acl"),
        ("publicAccessBlock", "PublicAccessBlock"),
        ("logging", "Logging"),
        ("object-lock", "ObjectLockConfiguration"),
        ("location", "Location"),
        ("tagging", "Tagging"),
        ("notification", "Notification"),
        ("replication", "Replication"),
        ("website", "Website"),
        ("cors", "Cors"),
        ("ownershipControls", "OwnershipControls"),
    ]
    .into_iter()
    .find(|(name, _)| sub(name))
    .map_or(("", ""), |(name, suffix)| (name, suffix));
    let verb = match r.method {
        "GET" => "Get",
        "PUT" => "Put",
        "DELETE" => "Delete",
        "HEAD" => "Head",
        _ => return None,
    };
    let operation = match (verb, suffix) {
        ("Get", "") if sub("list-type") || subresources.is_empty() => "ListObjects".to_string(),
        ("Get", "") => return None,
        ("Put", "") => "CreateBucket".to_string(),
        ("Delete", "") => "DeleteBucket".to_string(),
        ("Head", "") => "HeadBucket".to_string(),
        ("Head", _) => return None,
        // CloudTrail names object lock calls without "Bucket".
        (v, "ObjectLockConfiguration") => format!("{v}ObjectLockConfiguration"),
        (v, s) => format!("{v}Bucket{s}"),
    };
    if operation == "ListObjects" {
        // A data event: not recorded as management activity.
        return None;
    }
    let mut params = Map::new();
    params.insert("bucketName".into(), json!(bucket));
    if let Some(host) = r.host {
        params.insert("Host".into(), json!(host));
    }
    if !resource.is_empty() {
        params.insert(resource.into(), json!(""));
    }
    if let Some((name, value)) = crate::xml::document(r.body) {
        params.insert(name, value);
    }
    Some((operation, Value::Object(params)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(service: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20261124/eu-west-1/{service}/aws4_request, SignedHeaders=host, Signature=abc"
        )
    }

    fn request<'a>(
        method: &'a str,
        path: &'a str,
        query: Option<&'a str>,
        auth: &'a str,
        target: Option<&'a str>,
        body: &'a [u8],
    ) -> Request<'a> {
        Request {
            method,
            path,
            query,
            authorization: Some(auth),
            target,
            host: Some("127.0.0.1:4566"),
            body,
        }
    }

    #[test]
    fn json_protocol_from_the_target_header() {
        let a = auth("cloudtrail");
        for target in [
            "CloudTrail_20131101.StopLogging",
            "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.StopLogging",
        ] {
            let c = identify(&request(
                "POST",
                "/",
                None,
                &a,
                Some(target),
                br#"{"Name":"lab"}"#,
            ))
            .unwrap();
            assert_eq!(c.service, "cloudtrail");
            assert_eq!(c.operation, "StopLogging");
            assert_eq!(c.region, "eu-west-1");
            assert_eq!(c.access_key_id, "ASIAEXAMPLE");
            assert_eq!(c.parameters, json!({"Name": "lab"}));
        }
    }

    #[test]
    fn query_protocol_from_the_action() {
        let a = auth("sts");
        let body = b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr&RoleSessionName=s";
        let c = identify(&request("POST", "/", None, &a, None, body)).unwrap();
        assert_eq!(c.operation, "AssumeRole");
        assert_eq!(
            c.parameters,
            json!({"roleArn": "arn:aws:iam::1:role/r", "roleSessionName": "s"})
        );
    }

    #[test]
    fn s3_bucket_operations_are_named_as_cloudtrail_does() {
        let a = auth("s3");
        let body = b"<LifecycleConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Rule><ID>x</ID><Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>";
        let c = identify(&request("PUT", "/logs", Some("lifecycle"), &a, None, body)).unwrap();
        assert_eq!(c.operation, "PutBucketLifecycle");
        assert_eq!(c.parameters["bucketName"], "logs");
        assert_eq!(c.parameters["lifecycle"], "");
        assert_eq!(
            c.parameters["LifecycleConfiguration"]["Rule"]["Expiration"]["Days"],
            "1"
        );
        for (method, query, name) in [
            ("PUT", None, "CreateBucket"),
            ("DELETE", None, "DeleteBucket"),
            ("GET", Some("policyStatus"), "GetBucketPolicyStatus"),
            ("DELETE", Some("policy"), "DeleteBucketPolicy"),
            ("GET", Some("object-lock"), "GetObjectLockConfiguration"),
            ("PUT", Some("versioning"), "PutBucketVersioning"),
            ("DELETE", Some("encryption"), "DeleteBucketEncryption"),
        ] {
            let c = identify(&request(method, "/logs", query, &a, None, b"")).unwrap();
            assert_eq!(c.operation, name, "{method} {query:?}");
        }
        // Unknown sub-resources are not guessed at.
        assert!(identify(&request("PUT", "/logs", Some("accelerate"), &a, None, b"")).is_none());
        assert!(
            identify(&request(
                "DELETE",
                "/logs",
                Some("analytics&id=x"),
                &a,
                None,
                b""
            ))
            .is_none()
        );
    }

    #[test]
    fn list_buckets_is_a_management_call() {
        let c = identify(&request(
            "GET",
            "/",
            Some("x-id=ListBuckets"),
            &auth("s3"),
            None,
            b"",
        ))
        .unwrap();
        assert_eq!(c.operation, "ListBuckets");
        assert!(c.data.is_none());
    }

    #[test]
    fn s3_data_events_name_their_object_or_prefix() {
        let a = auth("s3");
        for (method, path, query, name, key) in [
            (
                "GET",
                "/logs/AWSLogs/1/a%20b.json.gz",
                None,
                "GetObject",
                "AWSLogs/1/a b.json.gz",
            ),
            ("HEAD", "/logs/k", None, "HeadObject", "k"),
            ("PUT", "/logs/k", Some("x-id=PutObject"), "PutObject", "k"),
            ("DELETE", "/logs/k", None, "DeleteObject", "k"),
            (
                "GET",
                "/logs",
                Some("list-type=2&prefix=AWSLogs%2F1%2F&start-after=x"),
                "ListObjectsV2",
                "AWSLogs/1/",
            ),
            ("GET", "/logs", None, "ListObjects", ""),
        ] {
            let c = identify(&request(method, path, query, &a, None, b"")).unwrap();
            assert_eq!(c.operation, name, "{method} {path}");
            let data = c.data.expect("a data event");
            assert_eq!((data.bucket.as_str(), data.key.as_str()), ("logs", key));
        }
        // Object sub-resources are not guessed at; bucket calls are not data events.
        assert!(identify(&request("GET", "/logs/k", Some("acl"), &a, None, b"")).is_none());
        let lifecycle = identify(&request("GET", "/logs", Some("lifecycle"), &a, None, b""));
        assert_eq!(lifecycle.unwrap().data, None);
    }

    #[test]
    fn unsigned_requests_are_not_calls() {
        let r = Request {
            method: "POST",
            path: "/moto-api/reset",
            query: None,
            authorization: None,
            target: None,
            host: None,
            body: b"",
        };
        assert!(identify(&r).is_none());
    }
}
