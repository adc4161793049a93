//! trailsim: the CloudTrail layer over moto that trailwarden's tests and demo use.
//!
//! It serves one endpoint for AWS SDK clients and forwards to moto, adding what moto lacks:
//! every call recorded as a CloudTrail event ([`record`]), LookupEvents over those events with
//! the real 2-per-second limit ([`history`], [`limiter`]), log files delivered into trail
//! buckets with honest GetTrailStatus fields ([`delivery`], [`answers`]), organization trails
//! as member accounts see them ([`organization`]), AWS Config's conformance packs and rule
//! results ([`compliance`]), Security Hub findings checked against ASFF ([`security_hub`]), AssumeRole checked against the role
//! ([`trust`]), injected faults ([`faults`]), and a control API under `/_trailsim/`
//! ([`server`]). Not part of the shipped `trailwarden`.

pub mod answers;
pub mod call;
pub mod compliance;
mod control;
pub mod delivery;
pub mod digest;
pub mod digest_run;
pub mod faults;
pub mod history;
pub mod identity;
pub mod limiter;
pub mod organization;
pub mod read_cache;
pub mod record;
pub mod regions;
pub mod security_hub;
pub mod server;
pub mod timers;
pub mod trust;
pub mod upstream;
pub mod xml;
