//! trailwarden: a continuous compliance daemon for AWS CloudTrail.
//!
//! Data flows one way: [`collect`] (the only code that calls AWS) → [`evaluate`] (pure) →
//! [`publish`] (metrics, `/status`). [`watch`] runs the pollers, [`daemon`] wires them to the
//! scheduler and HTTP, [`check`] does one pass for the command line. See ARCHITECTURE.md.

pub use trailwarden_core::{
    asff, config, evaluate, integrity, logfile, ocsf, plan, posture, record, s3_event,
};

pub mod check;
pub mod cli;
pub mod collect;
pub mod daemon;
pub mod hunt;
pub mod publish;
pub mod state;
pub mod validate_logs;
pub mod watch;
