//! trailwarden: a continuous compliance daemon for AWS CloudTrail.
//!
//! Data flows one way: [`collect`] (the only code that calls AWS) → [`evaluate`] (pure) →
//! [`publish`] (metrics, `/status`). [`watch`] runs the pollers, [`daemon`] wires them to the
//! scheduler and HTTP, [`check`] does one pass for the command line. See ARCHITECTURE.md.

pub mod check;
pub mod collect;
pub mod config;
pub mod daemon;
pub mod evaluate;
pub mod integrity;
pub mod logfile;
pub mod posture;
pub mod publish;
pub mod record;
pub mod state;
pub mod validate_logs;
pub mod watch;
