//! The pollers' stateful rules, decided in pure code: which accounts are watched, what a
//! pass over a bucket folder lists and reads, how far its cursor may move, when a digest chain is walked and where it resumes,
//! and what is retried when. The pollers keep only the I/O around these: a restart or a fault
//! can only turn into a lost event or a false alarm here, so here is where the tests are.

pub mod accounts;
pub mod claims;
pub mod config_evaluations;
pub mod digest_folder;
pub mod log_folder;
pub mod queue;
pub mod remediation;
pub mod retry;
pub mod shards;

#[cfg(test)]
mod replay;
