//! trailsim's digest files, checked the way a strict validator would: signatures with the
//! key ListPublicKeys serves, links to the actual previous digest, listed log file hashes,
//! chain restarts after StopLogging/StartLogging, empty digests for quiet intervals.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use flate2::read::GzDecoder;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::Read;
use support::{Principal, post, principal};

fn control(path: &str) {
    let (code, body) = post(path, &json!({}));
    assert_eq!(code, 200, "{body}");
}

fn sha256_hex(bytes: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// The uncompressed bytes and the metadata signature of an object.
async fn fetch(p: &Principal, bucket: &str, key: &str) -> (Vec<u8>, Option<String>) {
    let o = p
        .s3()
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let signature = o.metadata().and_then(|m| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("signature"))
            .map(|(_, v)| v.clone())
    });
    let gz = o.body.collect().await.unwrap().into_bytes();
    let mut raw = Vec::new();
    GzDecoder::new(&gz[..]).read_to_end(&mut raw).unwrap();
    (raw, signature)
}

#[tokio::test(flavor = "multi_thread")]
async fn digests_sign_link_and_list_every_delivered_log_file() {
    let p = principal(3).await;
    let bucket = format!("digests-{}", p.account);
    p.s3().create_bucket().bucket(&bucket).send().await.unwrap();
    let trail = p.create_trail("validated", &bucket, true, false).await;
    p.cloudtrail()
        .start_logging()
        .name(&trail)
        .send()
        .await
        .unwrap();

    p.cloudtrail().describe_trails().send().await.unwrap();
    control("/_trailsim/deliver");
    control("/_trailsim/digest");
    p.cloudtrail().list_trails().send().await.unwrap();
    control("/_trailsim/deliver");
    control("/_trailsim/digest");
    // A quiet interval: an empty digest.
    control("/_trailsim/digest");
    p.cloudtrail()
        .stop_logging()
        .name(&trail)
        .send()
        .await
        .unwrap();
    control("/_trailsim/deliver");
    control("/_trailsim/digest");
    p.cloudtrail()
        .start_logging()
        .name(&trail)
        .send()
        .await
        .unwrap();
    control("/_trailsim/deliver");
    control("/_trailsim/digest");
    // Stop and start again with no delivery in between: nothing before the stop is lost.
    p.cloudtrail()
        .stop_logging()
        .name(&trail)
        .send()
        .await
        .unwrap();
    p.cloudtrail()
        .start_logging()
        .name(&trail)
        .send()
        .await
        .unwrap();
    control("/_trailsim/deliver");
    control("/_trailsim/digest");
    // Stopped, the trail delivers nothing more: other tests' deliveries running beside this
    // one cannot add a log file between the listings below and the digest that lists it.
    p.cloudtrail()
        .stop_logging()
        .name(&trail)
        .send()
        .await
        .unwrap();
    control("/_trailsim/deliver");
    control("/_trailsim/digest");

    let listed = p.cloudtrail().list_public_keys().send().await.unwrap();
    let key = &listed.public_key_list()[0];
    let der = key.value().unwrap().as_ref().to_vec();
    let fingerprint: String = <md5::Md5 as md5::Digest>::digest(&der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        key.fingerprint(),
        Some(fingerprint.as_str()),
        "fingerprint = md5(DER)"
    );
    let verifier = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &der);

    let prefix = format!("AWSLogs/{}/CloudTrail-Digest/us-east-1/", p.account);
    let digest_keys = p.keys(&bucket, &prefix).await;
    assert!(digest_keys.len() >= 5, "{digest_keys:?}");
    let mut previous: Option<(String, String, String)> = None; // key, sha256, signature
    let mut starts = 0;
    let mut empty = 0;
    let mut listed_files = Vec::new();
    for k in &digest_keys {
        let (raw, signature) = fetch(&p, &bucket, k).await;
        let signature = signature.expect("signature in the object metadata");
        let d: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(d["digestS3Object"], k.as_str());
        assert_eq!(d["digestS3Bucket"], bucket.as_str());
        assert_eq!(d["awsAccountId"], p.account.as_str());
        assert_eq!(d["digestPublicKeyFingerprint"], fingerprint.as_str());
        assert_eq!(d["digestSignatureAlgorithm"], "SHA256withRSA");
        let sha = sha256_hex(&raw);
        let prev_sig = d["previousDigestSignature"].as_str().unwrap_or("null");
        let message = format!(
            "{}\n{bucket}/{k}\n{sha}\n{prev_sig}",
            d["digestEndTime"].as_str().unwrap()
        );
        assert!(
            verifier
                .verify(message.as_bytes(), &unhex(&signature))
                .is_ok(),
            "signature of {k}"
        );
        if d["previousDigestSignature"].is_null() {
            assert!(d["previousDigestHashValue"].is_null());
            starts += 1;
        } else {
            let (pk, psha, psig) = previous.as_ref().expect("a link needs a previous digest");
            assert_eq!(
                d["previousDigestS3Object"],
                pk.as_str(),
                "links to the actual previous"
            );
            assert_eq!(d["previousDigestHashValue"], psha.as_str());
            assert_eq!(d["previousDigestSignature"], psig.as_str());
        }
        let files = d["logFiles"].as_array().unwrap();
        if files.is_empty() {
            empty += 1;
            assert!(d["newestEventTime"].is_null());
        }
        for f in files {
            listed_files.push((
                f["s3Object"].as_str().unwrap().to_string(),
                f["hashValue"].as_str().unwrap().to_string(),
            ));
        }
        previous = Some((k.clone(), sha, signature));
    }
    assert_eq!(
        starts, 3,
        "a chain start at enablement and after each StopLogging/StartLogging"
    );
    assert!(empty >= 1, "quiet intervals get empty digests");

    let log_keys = p
        .keys(&bucket, &format!("AWSLogs/{}/CloudTrail/", p.account))
        .await;
    let unique: BTreeSet<&String> = listed_files.iter().map(|(k, _)| k).collect();
    assert_eq!(unique.len(), listed_files.len(), "each file in one digest");
    assert_eq!(
        unique.into_iter().cloned().collect::<Vec<_>>(),
        log_keys,
        "every delivered log file is listed"
    );
    for (k, hash) in &listed_files {
        let (raw, _) = fetch(&p, &bucket, k).await;
        assert_eq!(&sha256_hex(&raw), hash, "hash of {k}");
    }

    let status = p
        .cloudtrail()
        .get_trail_status()
        .name(&trail)
        .send()
        .await
        .unwrap();
    assert!(status.latest_digest_delivery_time().is_some());
}

/// Every digest of one region of a trail, oldest first, parsed.
async fn digests_of(p: &Principal, bucket: &str, region: &str) -> Vec<Value> {
    let prefix = format!("AWSLogs/{}/CloudTrail-Digest/{region}/", p.account);
    let mut out = Vec::new();
    for k in p.keys(bucket, &prefix).await {
        let (raw, _) = fetch(p, bucket, &k).await;
        out.push(serde_json::from_slice(&raw).unwrap());
    }
    out
}

async fn validated_trail(p: &Principal, bucket: &str, multi_region: bool) -> String {
    p.s3().create_bucket().bucket(bucket).send().await.unwrap();
    let trail = p
        .create_trail("validated", bucket, true, multi_region)
        .await;
    p.cloudtrail()
        .start_logging()
        .name(&trail)
        .send()
        .await
        .unwrap();
    trail
}

#[tokio::test(flavor = "multi_thread")]
async fn turning_validation_back_on_starts_a_new_chain() {
    let p = principal(3).await;
    let bucket = format!("revalidated-{}", p.account);
    let trail = validated_trail(&p, &bucket, false).await;
    control("/_trailsim/deliver");
    control("/_trailsim/digest");
    let update = |on: bool| {
        p.cloudtrail()
            .update_trail()
            .name(&trail)
            .enable_log_file_validation(on)
            .send()
    };
    update(false).await.unwrap();
    p.cloudtrail().list_trails().send().await.unwrap();
    control("/_trailsim/deliver");
    let unvalidated = p
        .keys(&bucket, &format!("AWSLogs/{}/CloudTrail/", p.account))
        .await;
    update(true).await.unwrap();
    control("/_trailsim/deliver");
    control("/_trailsim/digest");

    let digests = digests_of(&p, &bucket, "us-east-1").await;
    let starts = digests
        .iter()
        .filter(|d| d["previousDigestSignature"].is_null())
        .count();
    assert_eq!(starts, 2, "a new chain after validation came back on");
    let listed: Vec<&str> = digests
        .iter()
        .flat_map(|d| d["logFiles"].as_array().unwrap().iter())
        .filter_map(|f| f["s3Object"].as_str())
        .collect();
    let during = unvalidated
        .iter()
        .filter(|k| !listed.contains(&k.as_str()))
        .count();
    assert!(
        during >= 1,
        "files delivered while validation was off are in no digest"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn quiet_regions_of_a_multi_region_trail_get_empty_digests() {
    let p = principal(3).await;
    let bucket = format!("regions-{}", p.account);
    validated_trail(&p, &bucket, true).await;
    let eu = aws_sdk_cloudtrail::Client::from_conf(
        aws_sdk_cloudtrail::config::Builder::from(&p.sdk)
            .region(aws_sdk_cloudtrail::config::Region::new("eu-west-1"))
            .build(),
    );
    eu.list_trails().send().await.unwrap();
    control("/_trailsim/deliver");
    control("/_trailsim/digest");
    // Only us-east-1 is active from now on.
    p.cloudtrail().list_trails().send().await.unwrap();
    control("/_trailsim/deliver");
    control("/_trailsim/digest");

    let eu_digests = digests_of(&p, &bucket, "eu-west-1").await;
    assert!(eu_digests.len() >= 2, "{eu_digests:?}");
    // Another test's digest run may come between the eu call and its delivery, and give the
    // chain an empty first digest: some digest lists the eu file, the last lists nothing.
    assert!(
        eu_digests
            .iter()
            .any(|d| !d["logFiles"].as_array().unwrap().is_empty()),
        "{eu_digests:?}"
    );
    assert_eq!(
        eu_digests.last().unwrap()["logFiles"],
        json!([]),
        "the quiet interval"
    );
    // Each region is its own chain, with its region in the key.
    let key = eu_digests[0]["digestS3Object"].as_str().unwrap();
    assert!(
        key.contains("_CloudTrail-Digest_eu-west-1_validated_us-east-1_"),
        "{key}"
    );
}

/// Object keys of `account` in a delivery or digest answer's list.
fn keys_in(answer: &Value, list: &str, account: &str) -> Vec<String> {
    answer[list]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["key"].as_str())
        .filter(|k| k.contains(&format!("/{account}/")))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn late_log_files_are_left_out_then_listed_by_a_backfill_digest() {
    let p = principal(3).await;
    let bucket = format!("backfilled-{}", p.account);
    let trail = validated_trail(&p, &bucket, false).await;
    p.cloudtrail().describe_trails().send().await.unwrap();
    control("/_trailsim/deliver");
    // Another test's delivery may take this account's events first: call until a late
    // delivery of ours happens (only this account's trails deliver late).
    let mut late = Vec::new();
    for _ in 0..20 {
        p.cloudtrail().list_trails().send().await.unwrap();
        let (code, body) = post("/_trailsim/deliver", &json!({"late_account": p.account}));
        assert_eq!(code, 200, "{body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        assert!(
            answer["delivered"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["key"].as_str().unwrap().contains(&p.account)),
            "{body}"
        );
        late = keys_in(&answer, "delivered", &p.account);
        if !late.is_empty() {
            break;
        }
    }
    assert_eq!(late.len(), 1, "one late log file");
    control("/_trailsim/digest");
    let regular = digests_of(&p, &bucket, "us-east-1").await;
    let listed: Vec<&str> = regular
        .iter()
        .flat_map(|d| d["logFiles"].as_array().unwrap())
        .filter_map(|f| f["s3Object"].as_str())
        .collect();
    assert!(!listed.is_empty(), "the file delivered in time is listed");
    assert!(
        !listed.contains(&late[0].as_str()),
        "the late file is left out"
    );

    let (code, body) = post("/_trailsim/digest", &json!({"backfill": true}));
    assert_eq!(code, 200, "{body}");
    let backfills = keys_in(&serde_json::from_str(&body).unwrap(), "digests", &p.account);
    assert_eq!(backfills.len(), 1, "{body}");
    let key = &backfills[0];
    assert!(key.ends_with("Z_backfill.json.gz"), "{key}");
    let o = p
        .s3()
        .get_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let generated = o.metadata().unwrap()["backfill-generation-timestamp"].clone();
    assert!(
        chrono::DateTime::parse_from_rfc3339(&generated).is_ok(),
        "{generated}"
    );
    let (raw, signature) = fetch(&p, &bucket, key).await;
    let d: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(d["digestS3Object"], key.as_str());
    assert!(d["previousDigestSignature"].is_null(), "linked to nothing");
    let files = d["logFiles"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["s3Object"], late[0].as_str());
    // The interval is the one of the digest that left the file out.
    let left_out_by = regular
        .iter()
        .find(|r| r["digestEndTime"] == d["digestEndTime"])
        .expect("a regular digest with the same interval");
    assert_eq!(left_out_by["digestStartTime"], d["digestStartTime"]);
    let (late_raw, _) = fetch(&p, &bucket, &late[0]).await;
    assert_eq!(files[0]["hashValue"], sha256_hex(&late_raw).as_str());
    let listed = p.cloudtrail().list_public_keys().send().await.unwrap();
    let der = listed.public_key_list()[0]
        .value()
        .unwrap()
        .as_ref()
        .to_vec();
    let message = format!(
        "{}\n{bucket}/{key}\n{}\nnull",
        d["digestEndTime"].as_str().unwrap(),
        sha256_hex(&raw)
    );
    assert!(
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &der)
            .verify(message.as_bytes(), &unhex(&signature.unwrap()))
            .is_ok()
    );

    // Written once.
    let (_, body) = post("/_trailsim/digest", &json!({"backfill": true}));
    assert!(keys_in(&serde_json::from_str(&body).unwrap(), "digests", &p.account).is_empty());
    let _ = trail;
}
