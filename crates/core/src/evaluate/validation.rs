//! Log file validation: digests are only written when it is on.

use super::finding::{CheckResult, Verdict};
use crate::posture::Trail;

pub fn log_file_validation(trail: &Trail) -> CheckResult {
    Ok(if trail.log_file_validation_enabled {
        Verdict::pass("log file validation is enabled")
    } else {
        Verdict::fail("log file validation is disabled: no digest files prove the logs unaltered")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::testing::logging_trail;

    #[test]
    fn follows_the_flag() {
        let mut trail = logging_trail().trail;
        assert!(log_file_validation(&trail).unwrap().passed);
        trail.log_file_validation_enabled = false;
        assert!(!log_file_validation(&trail).unwrap().passed);
    }
}
