//! AssumeRole as STS decides it, where moto hands out credentials for any role ARN: the role
//! must exist in its account (IAM GetRole there), and an `sts:ExternalId` condition
//! (`StringEquals`) of its trust policy must match the request's ExternalId. The trust
//! policy's principals are not checked.
//!
//! One exception keeps the test beds' way into a fresh account: a caller trailsim issued no
//! keys to (moto's default user, that `trailsim/tests/support`, `tests/support/lab.rs` and
//! `scripts/bench-validate.sh` sign their first AssumeRole with) may assume a role that does
//! not exist. moto makes an account the moment it is named, with no IAM at all, so nothing
//! could have made that role first, and moto lets its default user into every account.
//! Every principal that came from an AssumeRole through trailsim (test principals, the daemon
//! under test) is checked as STS checks it.

use crate::call::Call;
use crate::server::Sim;
use serde_json::Value;

/// Why an AssumeRole is refused (STS's AccessDenied message), or `None` when it may go on.
pub async fn refusal(sim: &Sim, call: &Call) -> Option<String> {
    let role_arn = call.parameters["roleArn"].as_str()?;
    let (account, role) = role_of(role_arn)?;
    let (caller, issued) = {
        let identities = sim.identities.lock().expect("identities lock");
        let key = &call.access_key_id;
        (identities.of(key).arn, identities.issued(key))
    };
    let allowed = match sim.upstream.role_trust_policy(account, role).await {
        Ok(Some(trust)) => allows(&trust, call.parameters["externalId"].as_str()),
        Ok(None) => !issued,
        Err(e) => {
            // Refusing what could not be checked would be a lie of its own.
            tracing::warn!(role_arn, "AssumeRole not checked: {e}");
            true
        }
    };
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    (!allowed).then(|| {
        format!(
            "User: {} is not authorized to perform: sts:AssumeRole on resource: {}",
            escape(&caller),
            escape(role_arn)
        )
    })
}

/// `arn:aws:iam::ACCOUNT:role/[PATH/]NAME` → account and role name.
fn role_of(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let name = resource.strip_prefix("role/")?.rsplit('/').next()?;
    (!account.is_empty() && !name.is_empty()).then_some((account, name))
}

/// Whether a trust policy lets an AssumeRole with `external_id` through: some Allow statement
/// for `sts:AssumeRole` whose `sts:ExternalId` condition, if it has one, names it.
fn allows(trust: &Value, external_id: Option<&str>) -> bool {
    let statements = match &trust["Statement"] {
        Value::Array(list) => list.iter().collect(),
        one @ Value::Object(_) => vec![one],
        _ => Vec::new(),
    };
    statements
        .into_iter()
        .filter(|s| s["Effect"] == "Allow" && strings(&s["Action"]).any(grants_assume_role))
        .any(|s| {
            let required = s["Condition"]["StringEquals"].as_object().and_then(|c| {
                c.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("sts:ExternalId"))
            });
            match required {
                None => true,
                Some((_, ids)) => external_id.is_some_and(|id| strings(ids).any(|x| x == id)),
            }
        })
}

/// A policy value that is one string or a list of them.
fn strings(v: &Value) -> impl Iterator<Item = &str> {
    let list = match v {
        Value::Array(list) => list.as_slice(),
        one => std::slice::from_ref(one),
    };
    list.iter().filter_map(Value::as_str)
}

/// `sts:AssumeRole`, or a wildcard that covers it (actions are case-insensitive).
fn grants_assume_role(action: &str) -> bool {
    let action = action.to_ascii_lowercase();
    match action.split_once('*') {
        None => action == "sts:assumerole",
        Some((head, tail)) => {
            "sts:assumerole".starts_with(head) && "sts:assumerole"[head.len()..].ends_with(tail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn role_arns_name_their_account_and_role() {
        assert_eq!(
            role_of("arn:aws:iam::111122223333:role/audit"),
            Some(("111122223333", "audit"))
        );
        assert_eq!(
            role_of("arn:aws:iam::111122223333:role/team/audit"),
            Some(("111122223333", "audit"))
        );
        assert_eq!(role_of("arn:aws:iam::111122223333:user/audit"), None);
        assert_eq!(role_of("audit"), None);
    }

    #[test]
    fn external_id_conditions() {
        let trust = |condition: Value| {
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                "Action": "sts:AssumeRole", "Condition": condition}]})
        };
        let none = json!({"Statement": {"Effect": "Allow", "Principal": {"AWS": "*"},
            "Action": ["sts:AssumeRole", "sts:TagSession"]}});
        assert!(allows(&none, None));
        assert!(allows(&none, Some("anything")));
        let one = trust(json!({"StringEquals": {"sts:ExternalId": "s3cret"}}));
        assert!(allows(&one, Some("s3cret")));
        assert!(!allows(&one, Some("other")));
        assert!(!allows(&one, None));
        let either = trust(json!({"StringEquals": {"sts:externalid": ["a", "b"]}}));
        assert!(allows(&either, Some("b")));
        assert!(!allows(&either, Some("c")));
        let web_only = json!({"Statement": [{"Effect": "Allow", "Principal": {"Federated": "x"},
            "Action": "sts:AssumeRoleWithWebIdentity"}]});
        assert!(!allows(&web_only, None), "no statement grants AssumeRole");
        let wildcard = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"},
            "Action": "sts:*"}]});
        assert!(allows(&wildcard, None));
    }
}
