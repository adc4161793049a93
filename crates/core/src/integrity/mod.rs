//! Log file integrity, pure: where CloudTrail puts logs and digests (`layout`), what a
//! digest file is and how its signature checks (`digest`), judging a chain of digests and
//! the log files they list (`chain`), backfill digests each on its own (`backfill`),
//! delivery coverage of a bucket (`coverage`), and the verdict classes (`verdict`). Fetching
//! is `collect::objects` and `collect::chain`.

pub mod backfill;
pub mod chain;
pub mod coverage;
pub mod digest;
#[cfg(any(test, feature = "forge"))]
pub mod forge;
pub mod layout;
pub mod verdict;
