//! trailsim's own calls to moto (reading trails, writing log files), and clients' requests
//! passed on to it ([`Upstream::pass`], through the read cache when it is on). moto checks no
//! signatures, but tells accounts apart by the access key in the credential scope: each call
//! carries a key moto maps to the account it acts for, or names the account outright in
//! moto's `x-moto-account-id` header (an account trailsim knows no key of: an organization's
//! management account, the account a role is assumed into).

use crate::identity::DEFAULT_KEY;
use crate::read_cache::{self, Answer, Effect, ReadCache};
use axum::http::{HeaderMap, Method, Uri};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::Value;
use std::sync::Arc;

/// moto acts as the account this header names, whatever the key.
const ACCOUNT_HEADER: &str = "x-moto-account-id";

#[derive(Clone)]
pub struct Upstream {
    pub base: String,
    pub client: Client<HttpConnector, Full<Bytes>>,
    /// Reads answered from memory (`--read-cache`); every write through here empties it.
    pub cache: Option<Arc<ReadCache>>,
}

impl Upstream {
    fn authorization(key: &str, region: &str, service: &str) -> String {
        let date = chrono::Utc::now().format("%Y%m%d");
        format!(
            "AWS4-HMAC-SHA256 Credential={key}/{date}/{region}/{service}/aws4_request, SignedHeaders=host;x-amz-date, Signature=trailsim"
        )
    }

    /// trailsim's own request to moto, through the read cache like a client's.
    async fn send(&self, request: hyper::Request<Full<Bytes>>) -> Result<Answer, String> {
        let (parts, body) = request.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        self.pass(None, &parts.method, &parts.uri, &parts.headers, body)
            .await
    }

    fn forget_if(&self, writes: bool) {
        if let (true, Some(cache)) = (writes, &self.cache) {
            cache.forget();
        }
    }

    /// A request passed to moto as it came; with the read cache, a repeated read is answered
    /// from memory and a write empties it. `principal`: the signing key's account, when
    /// trailsim knows it (see [`crate::read_cache`]).
    pub async fn pass(
        &self,
        principal: Option<&str>,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Answer, String> {
        let effect = match &self.cache {
            Some(_) => read_cache::effect(method, uri, headers, &body),
            None => Effect::Neither,
        };
        let cached = match (&self.cache, effect) {
            (Some(cache), Effect::Read) => {
                ReadCache::key(principal, method, uri, headers, &body).map(|key| (cache, key))
            }
            _ => None,
        };
        if let Some((cache, key)) = &cached {
            if let Some(answer) = cache.get(key) {
                return Ok(answer);
            }
            tracing::debug!(key, "read cache: miss");
        }
        let generation = cached.as_ref().map(|(cache, _)| cache.generation());
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut builder = hyper::Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let request = builder.body(Full::new(body)).map_err(|e| e.to_string())?;
        let writes = effect == Effect::Write;
        self.forget_if(writes);
        let response = self.client.request(request).await;
        self.forget_if(writes);
        let (parts, body) = response.map_err(|e| e.to_string())?.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        let answer = Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        };
        if let (Some((cache, key)), Some(generation)) = (cached, generation) {
            cache.keep(key, generation, answer.clone());
        }
        Ok(answer)
    }

    /// A CloudTrail JSON call (`DescribeTrails`, ...) as `key`'s account in `region`.
    pub async fn cloudtrail(
        &self,
        key: &str,
        region: &str,
        operation: &str,
        body: &Value,
    ) -> Result<Value, String> {
        let target = format!("CloudTrail_20131101.{operation}");
        self.json_call(key, None, region, "cloudtrail", &target, body)
            .await
    }

    /// A CloudTrail JSON call as `account` in `region`.
    pub async fn cloudtrail_as(
        &self,
        account: &str,
        region: &str,
        operation: &str,
        body: &Value,
    ) -> Result<Value, String> {
        let target = format!("CloudTrail_20131101.{operation}");
        self.json_call(
            DEFAULT_KEY,
            Some(account),
            region,
            "cloudtrail",
            &target,
            body,
        )
        .await
    }

    /// An Organizations JSON call (`DescribeOrganization`, ...) as `account`.
    pub async fn organizations_as(
        &self,
        account: &str,
        operation: &str,
        body: &Value,
    ) -> Result<Value, String> {
        let target = format!("AWSOrganizationsV20161128.{operation}");
        let (key, region) = (DEFAULT_KEY, "us-east-1");
        self.json_call(key, Some(account), region, "organizations", &target, body)
            .await
    }

    async fn json_call(
        &self,
        key: &str,
        account: Option<&str>,
        region: &str,
        service: &str,
        target: &str,
        body: &Value,
    ) -> Result<Value, String> {
        let mut request = hyper::Request::post(format!("{}/", self.base));
        if let Some(account) = account {
            request = request.header(ACCOUNT_HEADER, account);
        }
        let request = request
            .header("authorization", Self::authorization(key, region, service))
            .header(
                "x-amz-date",
                chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string(),
            )
            .header("x-amz-target", target)
            .header("content-type", "application/x-amz-json-1.1")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        let answer = self.send(request).await?;
        if !answer.status.is_success() {
            let (code, message) = crate::record::error_of(answer.status.as_u16(), &answer.body);
            return Err(format!("{target}: {code}: {message}"));
        }
        serde_json::from_slice(&answer.body).map_err(|e| format!("{target}: {e}"))
    }

    /// IAM GetRole of `role` (its name) in `account`: the role's trust policy, or `None` when
    /// there is no such role.
    pub async fn role_trust_policy(
        &self,
        account: &str,
        role: &str,
    ) -> Result<Option<Value>, String> {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", "GetRole")
            .append_pair("Version", "2010-05-08")
            .append_pair("RoleName", role)
            .finish();
        // A GET, as the query protocol allows: a read, kept by the read cache.
        let request = hyper::Request::get(format!("{}/?{query}", self.base))
            .header(ACCOUNT_HEADER, account)
            .header(
                "authorization",
                Self::authorization(DEFAULT_KEY, "us-east-1", "iam"),
            )
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let answer = self.send(request).await?;
        if !answer.status.is_success() {
            let (code, message) = crate::record::error_of(answer.status.as_u16(), &answer.body);
            return match code.as_str() {
                "NoSuchEntity" => Ok(None),
                _ => Err(format!("GetRole: {code}: {message}")),
            };
        }
        // IAM answers the document URL-encoded, as AWS does.
        let (_, doc) = crate::xml::document(&answer.body).ok_or("GetRole: not XML")?;
        let encoded = doc["GetRoleResult"]["Role"]["AssumeRolePolicyDocument"]
            .as_str()
            .ok_or("GetRole: no AssumeRolePolicyDocument")?;
        let text = percent_encoding::percent_decode_str(encoded).decode_utf8_lossy();
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("GetRole: trust policy: {e}"))
    }

    /// A client's request headers, changed to reach moto as `account` in `region`: the
    /// request is answered there as if that account had made it.
    pub fn headers_as(
        headers: &HeaderMap,
        account: &str,
        region: &str,
        service: &str,
    ) -> HeaderMap {
        let mut headers = headers.clone();
        let authorization = Self::authorization(DEFAULT_KEY, region, service);
        if let (Ok(account), Ok(authorization)) = (account.parse(), authorization.parse()) {
            headers.insert(ACCOUNT_HEADER, account);
            headers.insert(axum::http::header::AUTHORIZATION, authorization);
        }
        headers
    }

    /// The bucket's policy document, if it has one.
    pub async fn bucket_policy(&self, key: &str, region: &str, bucket: &str) -> Option<Value> {
        let request = hyper::Request::get(format!("{}/{bucket}?policy", self.base))
            .header("authorization", Self::authorization(key, region, "s3"))
            .header(
                "x-amz-date",
                chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string(),
            )
            .body(Full::new(Bytes::new()))
            .ok()?;
        let answer = self.send(request).await.ok()?;
        if !answer.status.is_success() {
            return None;
        }
        serde_json::from_slice(&answer.body).ok()
    }

    /// S3 PutObject as `key`'s account; `Err` carries the S3 error code.
    pub async fn put_object(
        &self,
        key: &str,
        region: &str,
        bucket: &str,
        object: &str,
        body: Vec<u8>,
        metadata: &[(&str, &str)],
    ) -> Result<(), String> {
        let path: String = object
            .split('/')
            .map(|s| {
                percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join("/");
        let mut request = hyper::Request::put(format!("{}/{bucket}/{path}", self.base))
            .header("authorization", Self::authorization(key, region, "s3"))
            .header(
                "x-amz-date",
                chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string(),
            )
            .header("content-type", "application/x-gzip");
        for (name, value) in metadata {
            request = request.header(format!("x-amz-meta-{name}"), *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let answer = self.send(request).await?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(crate::record::error_of(answer.status.as_u16(), &answer.body).0)
        }
    }
}
