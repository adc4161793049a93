//! The control API calls that change trailsim as a whole (clock, reset). This test binary has
//! its own moto and trailsim, and one test, so nothing else sees them change.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use serde_json::json;
use support::{post, principal};

#[tokio::test(flavor = "multi_thread")]
async fn clock_offset_moves_event_times_and_reset_forgets_everything() {
    let p = principal(3).await;
    let (code, _) = post("/_trailsim/clock", &json!({"offset_seconds": -86400}));
    assert_eq!(code, 200);
    p.cloudtrail().list_trails().send().await.unwrap();
    let found = p.lookup("ListTrails").await;
    let time = found[0].0.event_time().unwrap().secs();
    let day_ago = (chrono::Utc::now() - chrono::Duration::days(1)).timestamp();
    assert!(
        (time - day_ago).abs() < 120,
        "recorded a day back: {time} vs {day_ago}"
    );
    let record_time = found[0].1["eventTime"].as_str().unwrap().to_string();
    assert!(
        record_time.starts_with(
            &(chrono::Utc::now() - chrono::Duration::days(1))
                .format("%Y-%m-%d")
                .to_string()
        )
    );

    let (code, body) = post("/_trailsim/reset", &json!({}));
    assert_eq!(code, 200, "{body}");
    // moto forgot the account's resources, trailsim its events and its clock.
    let p = principal(3).await;
    assert!(p.lookup("ListTrails").await.is_empty());
    let out = p.cloudtrail().list_trails().send().await.unwrap();
    assert!(out.trails().is_empty());
    let found = p.lookup("ListTrails").await;
    let time = found[0].0.event_time().unwrap().secs();
    assert!(
        (time - chrono::Utc::now().timestamp()).abs() < 120,
        "clock back to real time"
    );
    let (code, body) = post("/_trailsim/clock", &json!({"offset": "soon"}));
    assert_eq!(code, 400, "{body}");
}
