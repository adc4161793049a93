//! Fixtures for unit tests: the lab world of the integration tests, as plain values.

use crate::posture::*;
use chrono::{DateTime, TimeZone, Utc};

pub fn lab_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
}

pub fn unavailable(reason: &str) -> Unavailable {
    Unavailable::new(reason)
}

const KEY_ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

/// A logging multi-region trail with validation, SSE-KMS and all management events.
pub fn logging_trail() -> TrailState {
    TrailState {
        trail: Trail {
            arn: "arn:aws:cloudtrail:us-east-1:111122223333:trail/lab".into(),
            name: "lab".into(),
            account: "111122223333".into(),
            home_region: "us-east-1".into(),
            s3_bucket_name: Some("lab-trail-logs".into()),
            include_global_service_events: true,
            is_multi_region_trail: true,
            log_file_validation_enabled: true,
            kms_key_id: Some(KEY_ARN.into()),
            ..Default::default()
        },
        status: Ok(TrailStatus {
            is_logging: true,
            latest_delivery_time: Some(lab_now() - chrono::Duration::minutes(3)),
            start_logging_time: Some(lab_now() - chrono::Duration::days(30)),
            ..Default::default()
        }),
        selectors: Ok(EventSelectors::Basic(vec![BasicSelector {
            read_write_type: ReadWriteType::All,
            include_management_events: true,
            exclude_management_event_sources: vec![],
            data_resource_count: 0,
        }])),
    }
}

pub fn enabled_key() -> KeyPosture {
    KeyPosture {
        key_id: "1234abcd-12ab-34cd-56ef-1234567890ab".into(),
        arn: KEY_ARN.into(),
        account: "111122223333".into(),
        state: "Enabled".into(),
        rotation_enabled: Ok(true),
        aliases: Ok(vec!["alias/trail".into()]),
    }
}

/// A private, SSE-KMS bucket that keeps logs 400 days.
pub fn lab_bucket() -> BucketPosture {
    BucketPosture {
        name: "lab-trail-logs".into(),
        encryption: Ok(Some(BucketEncryption {
            algorithm: "aws:kms".into(),
            kms_key_id: Some(KEY_ARN.into()),
            bucket_key_enabled: true,
        })),
        lifecycle_rules: Ok(vec![LifecycleRule {
            id: Some("keep-400-days".into()),
            enabled: true,
            prefix: Some("AWSLogs/".into()),
            expiration_days: Some(400),
            ..Default::default()
        }]),
        versioning: Ok(Versioning::Enabled),
        object_lock: Ok(None),
        public_access_block: Ok(Some(PublicAccessBlock {
            block_public_acls: true,
            ignore_public_acls: true,
            block_public_policy: true,
            restrict_public_buckets: true,
        })),
        policy_is_public: Ok(Some(false)),
        acl_is_public: Ok(false),
        access_logging: Ok(None),
    }
}

pub fn lab_snapshot() -> Snapshot {
    let mut posture = Posture::default();
    posture
        .buckets
        .insert("lab-trail-logs".into(), Ok(lab_bucket()));
    posture.keys.insert(KEY_ARN.into(), Ok(enabled_key()));
    posture.recorders.insert(
        "us-east-1".into(),
        Ok(vec![Recorder {
            name: "default".into(),
            recording: true,
            last_status: Some("SUCCESS".into()),
            last_error_code: None,
        }]),
    );
    Snapshot {
        account: Ok("111122223333".into()),
        regions: vec!["us-east-1".into()],
        trails: Ok(vec![logging_trail()]),
        posture: Some(posture),
        evidence: Some(
            [(logging_trail().trail.arn, Ok(healthy_bucket()))]
                .into_iter()
                .collect(),
        ),
        members: Default::default(),
    }
}

/// A year of log files every 5 minutes, the last one 5 minutes ago, digests verified.
pub fn healthy_bucket() -> crate::posture::TrailEvidence {
    let mut region = crate::posture::RegionEvidence {
        account: "111122223333".into(),
        region: "us-east-1".into(),
        ..Default::default()
    };
    let now = lab_now();
    let mut t = now - chrono::Duration::days(365);
    while t <= now - chrono::Duration::minutes(5) {
        region.coverage.add(t, chrono::Duration::hours(1));
        t += chrono::Duration::minutes(5);
    }
    region.validated_until = Some(now - chrono::Duration::minutes(30));
    crate::posture::TrailEvidence {
        regions: vec![region],
        digests_seen: true,
        ..Default::default()
    }
}
