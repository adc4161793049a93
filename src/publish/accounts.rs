//! The account metrics of many-account mode: one `_info` series and one health series per
//! watched account, and the count of accounts by state. Retired accounts lose their series.

use super::metrics::Metrics;
use crate::collect::TrailsResult;
use crate::plan::accounts::Roster;
use crate::posture::Fetched;
use std::collections::BTreeMap;

impl Metrics {
    /// `trailwarden_account_info` and `trailwarden_accounts` from a discovery.
    pub fn publish_accounts(&self, roster: &Roster) {
        let info = roster
            .watched
            .values()
            .map(|m| {
                let a = &m.account;
                (vec![a.id.clone(), a.name.clone(), a.ou_path.clone()], 1.0)
            })
            .collect();
        self.replace("account_info", &self.account_info, info, |g, v| {
            g.set(v as i64)
        });
        self.accounts
            .with_label_values(&["watched"])
            .set(roster.watched.len() as i64);
        self.accounts
            .with_label_values(&["retired"])
            .set(roster.retired.len() as i64);
        self.accounts
            .with_label_values(&["other_shards"])
            .set(roster.elsewhere.len() as i64);
    }

    /// `trailwarden_shard_ordinal` and `trailwarden_total_shards`: 0 of 1 for one replica.
    pub fn publish_shard(&self, shard: crate::plan::shards::Shard) {
        self.shard_ordinal.set(i64::from(shard.ordinal));
        self.total_shards.set(i64::from(shard.total));
    }

    /// `trailwarden_account_up` from a trail poll over every account.
    pub fn publish_account_up(&self, results: &BTreeMap<String, Fetched<TrailsResult>>) {
        let up = results
            .iter()
            .map(|(account, r)| (vec![account.clone()], f64::from(u8::from(r.is_ok()))))
            .collect();
        self.replace("account_up", &self.account_up, up, |g, v| g.set(v as i64));
    }
}
