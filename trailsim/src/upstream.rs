//! trailsim's own calls to moto (reading trails, writing log files), and clients' requests
//! passed on to it ([`Upstream::pass`], through the read cache when it is on). moto checks no
//! signatures, but tells accounts apart by the access key in the credential scope: each call
//! carries a key moto maps to the account it acts for.

use crate::read_cache::{self, ReadCache};
use axum::http::{HeaderMap, Method, Uri};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::Value;
use std::sync::Arc;

#[derive(Clone)]
pub struct Upstream {
    pub base: String,
    pub client: Client<HttpConnector, Full<Bytes>>,
    /// S3 reads answered from memory (`--s3-read-cache`); every write through here empties it.
    pub cache: Option<Arc<ReadCache>>,
}

/// An answer from moto: status and body.
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Upstream {
    fn authorization(key: &str, region: &str, service: &str) -> String {
        let date = chrono::Utc::now().format("%Y%m%d");
        format!(
            "AWS4-HMAC-SHA256 Credential={key}/{date}/{region}/{service}/aws4_request, SignedHeaders=host;x-amz-date, Signature=trailsim"
        )
    }

    async fn send(&self, request: hyper::Request<Full<Bytes>>) -> Result<Answer, String> {
        let writes = ReadCache::may_change_reads(request.method(), request.headers());
        self.forget_if(writes);
        let response = self.client.request(request).await;
        self.forget_if(writes);
        let response = response.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Answer { status, body })
    }

    fn forget_if(&self, writes: bool) {
        if let (true, Some(cache)) = (writes, &self.cache) {
            cache.forget();
        }
    }

    /// A client's request passed to moto as it came; with the read cache, a repeated S3 read
    /// is answered from memory.
    pub async fn pass(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<read_cache::Answer, String> {
        let cached = self
            .cache
            .as_ref()
            .and_then(|cache| Some((cache, ReadCache::key(method, uri, headers)?)));
        if let Some((cache, key)) = &cached {
            if let Some(answer) = cache.get(key) {
                return Ok(answer);
            }
            tracing::debug!(key, "s3 read cache: miss");
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
        let writes = ReadCache::may_change_reads(method, headers);
        self.forget_if(writes);
        let response = self.client.request(request).await;
        self.forget_if(writes);
        let (parts, body) = response.map_err(|e| e.to_string())?.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        let answer = read_cache::Answer {
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
        self.json_call(key, region, "cloudtrail", &target, body)
            .await
    }

    /// An Organizations JSON call (`DescribeOrganization`, ...) as `key`'s account.
    pub async fn organizations(
        &self,
        key: &str,
        operation: &str,
        body: &Value,
    ) -> Result<Value, String> {
        let target = format!("AWSOrganizationsV20161128.{operation}");
        self.json_call(key, "us-east-1", "organizations", &target, body)
            .await
    }

    async fn json_call(
        &self,
        key: &str,
        region: &str,
        service: &str,
        target: &str,
        body: &Value,
    ) -> Result<Value, String> {
        let request = hyper::Request::post(format!("{}/", self.base))
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
        if !(200..300).contains(&answer.status) {
            let (code, message) = crate::record::error_of(answer.status, &answer.body);
            return Err(format!("{target}: {code}: {message}"));
        }
        serde_json::from_slice(&answer.body).map_err(|e| format!("{target}: {e}"))
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
        if !(200..300).contains(&answer.status) {
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
        if (200..300).contains(&answer.status) {
            Ok(())
        } else {
            Err(crate::record::error_of(answer.status, &answer.body).0)
        }
    }
}
