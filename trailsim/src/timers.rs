//! trailsim's own clock: log deliveries and digest files on a timer, as CloudTrail writes them
//! (every few minutes, every hour), faster for the demo and tests.

use crate::server::Sim;
use std::sync::Arc;
use std::time::Duration;

/// Delivers log files every `delivery` and writes digests every `digest`, until the runtime
/// stops. The first of each comes one interval after the start.
pub fn spawn(sim: Arc<Sim>, delivery: Duration, digest: Duration) {
    {
        let sim = sim.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(delivery);
            tick.tick().await;
            loop {
                tick.tick().await;
                crate::delivery::run(&sim, None).await;
            }
        });
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(digest);
        tick.tick().await;
        loop {
            tick.tick().await;
            crate::digest_run::run(&sim, false).await;
        }
    });
}
