//! When to try a deferred recipient again, and when to give up (RFC 5321 §4.5.4.1).
//!
//! Per recipient, the wait before the next attempt starts at the minimum and doubles
//! after each deferral up to the maximum, as Postfix's `minimal_backoff_time` and
//! `maximal_backoff_time` do; a little jitter (up to a tenth of the wait) keeps the
//! recipients deferred by one outage from all coming back in the same second. After the
//! queue lifetime a recipient fails for good (§4.5.4.1: "give-up time generally needs to
//! be at least 4-5 days").
//!
//! Pure: the caller passes the number of attempts, the times and the randomness.

use std::time::{Duration, SystemTime};

/// The retry policy of a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetrySchedule {
    /// The wait after the first deferral (`--retry-min`, 300 s).
    pub min: Duration,
    /// The longest wait (`--retry-max`, 4000 s).
    pub max: Duration,
    /// How long a recipient may stay queued (`--queue-lifetime`, five days).
    pub lifetime: Duration,
}

impl Default for RetrySchedule {
    fn default() -> RetrySchedule {
        RetrySchedule {
            min: Duration::from_secs(300),
            max: Duration::from_secs(4000),
            lifetime: Duration::from_secs(5 * 24 * 3600),
        }
    }
}

impl RetrySchedule {
    /// The wait after the `attempts`-th failed attempt (1 for the first): `min ×
    /// 2^(attempts-1)`, at most `max`, plus a jitter of up to a tenth of it drawn from
    /// `random` (so the longest wait is `max` and a tenth).
    ///
    /// ```
    /// use std::time::Duration;
    /// use smtp_relay::RetrySchedule;
    ///
    /// let s = RetrySchedule::default();
    /// assert_eq!(s.wait(1, 0), Duration::from_secs(300));
    /// assert_eq!(s.wait(2, 0), Duration::from_secs(600));
    /// assert_eq!(s.wait(5, 0), Duration::from_secs(4000)); // 4800 capped
    /// assert!(s.wait(1, u64::MAX) <= Duration::from_secs(330));
    /// assert!(s.wait(9, u64::MAX) <= Duration::from_secs(4400));
    /// ```
    pub fn wait(&self, attempts: u32, random: u64) -> Duration {
        let doublings = attempts.saturating_sub(1).min(31);
        let base = self
            .min
            .saturating_mul(1 << doublings)
            .min(self.max.max(self.min));
        // A tenth of the wait at most, in milliseconds, from the random input.
        let spread = (base.as_millis() / 10) as u64;
        let jitter = if spread == 0 {
            0
        } else {
            random % (spread + 1)
        };
        base + Duration::from_millis(jitter)
    }

    /// When to try again after the `attempts`-th failed attempt at `now`.
    pub fn next_attempt(&self, attempts: u32, now: SystemTime, random: u64) -> SystemTime {
        now + self.wait(attempts, random)
    }

    /// Whether a recipient queued at `arrived` has outlived the queue lifetime at `now`.
    /// A clock set back (now before arrival) does not expire anything.
    pub fn expired(&self, arrived: SystemTime, now: SystemTime) -> bool {
        now.duration_since(arrived)
            .is_ok_and(|age| age >= self.lifetime)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: RetrySchedule = RetrySchedule {
        min: Duration::from_secs(300),
        max: Duration::from_secs(4000),
        lifetime: Duration::from_secs(432_000),
    };

    #[test]
    fn doubles_from_min_to_max() {
        let waits: Vec<u64> = (1..=7).map(|a| S.wait(a, 0).as_secs()).collect();
        assert_eq!(waits, [300, 600, 1200, 2400, 4000, 4000, 4000]);
        // Attempt 0 (never tried) waits as the first.
        assert_eq!(S.wait(0, 0), Duration::from_secs(300));
        assert_eq!(S.wait(u32::MAX, 0), Duration::from_secs(4000));
        assert_eq!(S.wait(u32::MAX, 7), Duration::from_millis(4_000_007));
    }

    #[test]
    fn lifetime() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert!(!S.expired(t0, t0 + Duration::from_secs(431_999)));
        assert!(S.expired(t0, t0 + Duration::from_secs(432_000)));
        assert!(!S.expired(t0, t0 - Duration::from_secs(10)));
    }

    proptest! {
        #[test]
        fn jitter_stays_within_a_tenth(attempts in 0u32..100, random: u64,
                                      min in 1u64..10_000, max in 1u64..100_000) {
            let s = RetrySchedule {
                min: Duration::from_secs(min),
                max: Duration::from_secs(max),
                ..S
            };
            let base = s.wait(attempts, 0);
            let w = s.wait(attempts, random);
            prop_assert!(w >= base);
            prop_assert!(w <= base + base / 10 + Duration::from_millis(1));
            let cap = Duration::from_secs(max.max(min));
            prop_assert!(base <= cap);
            prop_assert!(base >= Duration::from_secs(min));
        }
    }
}
