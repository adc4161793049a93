//! The `shard` section, or `--shard` and `--total-shards`: which part of the accounts this
//! replica watches when the work is split over several (issue 14). Where the parts go is
//! `plan::shards`; this is only how a deployment names its part.

use super::yaml::{self, ParseScalar};
use crate::plan::shards::{Shard, ordinal_from_hostname};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardSettings {
    /// This replica's ordinal, 0 to `total` - 1, or `hostname`: the ordinal a StatefulSet
    /// gives its pod, read from the end of its hostname (`trailwarden-2` is 2).
    pub ordinal: ShardOrdinal,
    /// How many shards split the accounts; every replica must be given the same.
    pub total: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardOrdinal {
    Number(u32),
    Hostname,
}

impl ParseScalar for ShardOrdinal {
    const EXPECTING: &'static str = "a shard ordinal (0, 1, ...) or hostname";
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "hostname" => Ok(ShardOrdinal::Hostname),
            t => t.parse().map(ShardOrdinal::Number).map_err(|_| {
                format!("{text:?} is not a shard ordinal: give 0, 1, ... or hostname")
            }),
        }
    }
}
yaml::scalar_deserialize!(ShardOrdinal);

impl ShardSettings {
    /// The shard, given the machine's hostname (asked only for `hostname`).
    pub fn resolve(&self, hostname: impl FnOnce() -> Option<String>) -> Result<Shard, String> {
        let ordinal = match self.ordinal {
            ShardOrdinal::Number(n) => n,
            ShardOrdinal::Hostname => {
                let name = hostname()
                    .ok_or("shard: ordinal is hostname, but the hostname cannot be read")?;
                ordinal_from_hostname(&name).ok_or_else(|| {
                    format!(
                        "shard: ordinal is hostname, but {name:?} does not end in -N as a StatefulSet pod's does"
                    )
                })?
            }
        };
        Shard::new(ordinal, self.total).map_err(|e| format!("shard: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(ordinal: &str, total: u32) -> Result<ShardSettings, String> {
        Ok(ShardSettings {
            ordinal: ShardOrdinal::parse(ordinal)?,
            total,
        })
    }

    #[test]
    fn an_ordinal_is_a_number_or_the_hostname_of_a_statefulset_pod() {
        // (ordinal, total, hostname, the shard or what the refusal says)
        type Case<'a> = (&'a str, u32, Option<&'a str>, Result<(u32, u32), &'a str>);
        let cases: &[Case] = &[
            ("0", 1, None, Ok((0, 1))),
            ("3", 4, None, Ok((3, 4))),
            ("4", 4, None, Err("shard: shard 4 does not exist among 4")),
            (
                "0",
                0,
                None,
                Err("shard: the total number of shards must be at least 1"),
            ),
            ("hostname", 3, Some("trailwarden-2"), Ok((2, 3))),
            (
                "hostname",
                2,
                Some("trailwarden-2"),
                Err("shard: shard 2 does not exist among 2"),
            ),
            ("hostname", 3, Some("laptop"), Err("does not end in -N")),
            ("hostname", 3, None, Err("the hostname cannot be read")),
        ];
        for (ordinal, total, hostname, expected) in cases {
            let got = settings(ordinal, *total)
                .unwrap()
                .resolve(|| hostname.map(str::to_string))
                .map(|s| (s.ordinal, s.total));
            match (expected, &got) {
                (Ok(e), Ok(g)) => assert_eq!(e, g, "{ordinal} of {total}"),
                (Err(e), Err(g)) => assert!(g.contains(e), "{ordinal} of {total}: {g}"),
                _ => panic!("{ordinal} of {total} on {hostname:?}: {got:?}"),
            }
        }
        // A number never asks for the hostname.
        let numbered = settings("1", 2).unwrap();
        assert_eq!(numbered.resolve(|| panic!("asked")).unwrap().ordinal, 1);
    }

    #[test]
    fn anything_else_is_refused_where_it_is_written() {
        for bad in ["-1", "one", "2.5", "host"] {
            let e = settings(bad, 2).unwrap_err();
            assert!(e.contains("not a shard ordinal"), "{bad}: {e}");
        }
    }
}
