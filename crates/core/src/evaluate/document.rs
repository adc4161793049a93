//! The trail document: one JSON object per trail that custom policies query by path.
//!
//! Sections: `account`, `trail`, `status`, `selectors`, `bucket`, `key` (see
//! `docs/trail-document.md`). A section or field that could not be collected is `null` in the
//! JSON and remembered as unavailable, so a condition on it is an error, never a pass.

use super::condition::{Document, Lookup};
use super::finding::need;
use crate::posture::{Fetched, Snapshot, TrailState};
use serde::Serialize;
use serde_json::{Map, Value, json};

pub struct TrailDocument {
    pub value: Value,
    /// Dotted paths that could not be collected, with the reason.
    unavailable: Vec<(String, String)>,
}

impl TrailDocument {
    pub fn build(state: &TrailState, snapshot: &Snapshot) -> TrailDocument {
        let mut doc = TrailDocument {
            value: json!({}),
            unavailable: Vec::new(),
        };
        let account = doc.section("account", need(&snapshot.account).map(|a| json!(a)));
        let trail = to_json(&state.trail);
        let status = doc.section("status", need(&state.status).map(to_json));
        let selectors = doc.section("selectors", need(&state.selectors).map(to_json));
        let bucket = match snapshot.bucket_of(&state.trail) {
            Ok(b) => {
                let mut m = Map::new();
                m.insert("name".into(), json!(b.name));
                doc.field(&mut m, "bucket", "encryption", &b.encryption);
                doc.field(&mut m, "bucket", "lifecycle_rules", &b.lifecycle_rules);
                doc.field(&mut m, "bucket", "versioning", &b.versioning);
                doc.field(&mut m, "bucket", "object_lock", &b.object_lock);
                doc.field(
                    &mut m,
                    "bucket",
                    "public_access_block",
                    &b.public_access_block,
                );
                doc.field(&mut m, "bucket", "policy_is_public", &b.policy_is_public);
                doc.field(&mut m, "bucket", "acl_is_public", &b.acl_is_public);
                doc.field(&mut m, "bucket", "access_logging", &b.access_logging);
                Value::Object(m)
            }
            Err(e) => doc.section("bucket", Err(e)),
        };
        let key = match snapshot.key_of(&state.trail) {
            Ok(Some(k)) => {
                let mut m = Map::new();
                m.insert("key_id".into(), json!(k.key_id));
                m.insert("arn".into(), json!(k.arn));
                m.insert("account".into(), json!(k.account));
                m.insert("state".into(), json!(k.state));
                doc.field(&mut m, "key", "rotation_enabled", &k.rotation_enabled);
                doc.field(&mut m, "key", "aliases", &k.aliases);
                Value::Object(m)
            }
            Ok(None) => Value::Null,
            Err(e) => doc.section("key", Err(e)),
        };
        doc.value = json!({
            "account": account, "trail": trail, "status": status,
            "selectors": selectors, "bucket": bucket, "key": key,
        });
        doc
    }

    fn section(&mut self, path: &str, value: Result<Value, crate::posture::Unavailable>) -> Value {
        value.unwrap_or_else(|e| {
            self.unavailable.push((path.to_string(), e.reason));
            Value::Null
        })
    }

    fn field<T: Serialize>(
        &mut self,
        map: &mut Map<String, Value>,
        section: &str,
        name: &str,
        value: &Fetched<T>,
    ) {
        let v = self.section(&format!("{section}.{name}"), need(value).map(to_json));
        map.insert(name.to_string(), v);
    }
}

impl Document for TrailDocument {
    /// Looks up a dotted path; numeric segments index arrays.
    fn lookup(&self, path: &str) -> Lookup<'_> {
        for (gap, reason) in &self.unavailable {
            let covers = path == gap
                || path.starts_with(&format!("{gap}."))
                || gap.starts_with(&format!("{path}."));
            if covers {
                return Lookup::Unavailable(format!("{gap} unavailable: {reason}"));
            }
        }
        self.value.lookup(path)
    }
}

fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::testing::{lab_snapshot, unavailable};

    #[test]
    fn finds_fields_and_indexes() {
        let snap = lab_snapshot();
        let state = &snap.trails.as_ref().unwrap()[0];
        let doc = TrailDocument::build(state, &snap);
        assert_eq!(doc.lookup("trail.name"), Lookup::Found(&json!("lab")));
        assert_eq!(doc.lookup("status.is_logging"), Lookup::Found(&json!(true)));
        assert_eq!(
            doc.lookup("bucket.lifecycle_rules.0.expiration_days"),
            Lookup::Found(&json!(400))
        );
        assert_eq!(doc.lookup("key.state"), Lookup::Found(&json!("Enabled")));
        assert_eq!(doc.lookup("trail.sns_topic_arn"), Lookup::Missing);
        assert_eq!(doc.lookup("bucket.nothing.here"), Lookup::Missing);
    }

    #[test]
    fn unavailable_sections_are_marked() {
        let mut snap = lab_snapshot();
        snap.trails.as_mut().unwrap()[0].status = Err(unavailable("GetTrailStatus: denied"));
        let state = &snap.trails.as_ref().unwrap()[0];
        let doc = TrailDocument::build(state, &snap);
        assert!(
            matches!(doc.lookup("status.is_logging"), Lookup::Unavailable(r) if r.contains("denied"))
        );
        assert!(matches!(doc.lookup("status"), Lookup::Unavailable(_)));
        assert_eq!(doc.lookup("trail.name"), Lookup::Found(&json!("lab")));
    }
}
