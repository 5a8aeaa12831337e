//! The sender's retry policy, as a pure function of one attempt's outcome.
//!
//! Follows the Remote Write 1.0 sender rules: 2xx is delivered;
//! 5xx, network errors and timeouts are retried with capped exponential backoff and jitter,
//! honouring `Retry-After`; 429 is retried when `retry_on_429` (our receiver's per-seed rate
//! limit); every other status is dropped, since resending the same bytes cannot succeed.

use std::time::Duration;

use crate::config::RetryConfig;
use crate::metrics::DropReason;

/// What one POST of a batch came back with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP response.
    Status {
        /// The status code.
        code: u16,
        /// `Retry-After` in seconds, when the response carried one.
        retry_after: Option<Duration>,
    },
    /// Connecting, TLS or the transfer failed.
    Network,
    /// No response within the request timeout.
    Timeout,
}

/// Why the receiver's answer gives a batch up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A 4xx (other than a retried 429): the receiver refuses these bytes.
    Rejected4xx(u16),
    /// A status that is neither success, client nor server error (1xx, 3xx: redirects are not
    /// followed, a redirecting URL is a misconfiguration).
    UnexpectedStatus(u16),
}

impl Refusal {
    /// The `reason` the drop counters count it under.
    pub fn reason(self) -> DropReason {
        match self {
            Refusal::Rejected4xx(_) => DropReason::Rejected4xx,
            Refusal::UnexpectedStatus(_) => DropReason::UnexpectedStatus,
        }
    }
}

/// What to do with the batch next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Acknowledged by the receiver.
    Delivered,
    /// Send the same batch again after `after`.
    Retry {
        /// Wait before the next attempt.
        after: Duration,
    },
    /// Give the batch up (and count it).
    Drop {
        /// Why.
        reason: Refusal,
    },
}

/// Decides the next step after `outcome` of attempt number `attempt` (0 for the first send).
///
/// Backoff is `min_backoff × 2^attempt` capped at `max_backoff`, with *equal jitter*: half of it
/// fixed, half scaled by `jitter` (in `[0, 1)`), so parallel lanes spread out yet never retry
/// faster than half the backoff. A `Retry-After` replaces the backoff, clamped to
/// `[min_backoff, max_backoff]` (a `0` must not turn into a hot loop; a huge one must not stall
/// the lane for longer than we would back off anyway).
pub fn decide(outcome: Outcome, attempt: u32, config: &RetryConfig, jitter: f64) -> Decision {
    let retry = |retry_after: Option<Duration>| Decision::Retry {
        after: match retry_after {
            Some(after) => after.clamp(config.min_backoff, config.max_backoff),
            None => backoff(attempt, config, jitter),
        },
    };
    match outcome {
        Outcome::Network | Outcome::Timeout => retry(None),
        Outcome::Status { code, retry_after } => match code {
            200..=299 => Decision::Delivered,
            429 if config.retry_on_429 => retry(retry_after),
            400..=499 => Decision::Drop {
                reason: Refusal::Rejected4xx(code),
            },
            500..=599 => retry(retry_after),
            _ => Decision::Drop {
                reason: Refusal::UnexpectedStatus(code),
            },
        },
    }
}

/// Capped exponential backoff with equal jitter.
fn backoff(attempt: u32, config: &RetryConfig, jitter: f64) -> Duration {
    let factor = 2u32.saturating_pow(attempt.min(31));
    let full = config
        .min_backoff
        .saturating_mul(factor)
        .min(config.max_backoff);
    let half = full / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(retry_on_429: bool) -> RetryConfig {
        RetryConfig {
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            retry_on_429,
        }
    }

    fn status(code: u16) -> Outcome {
        Outcome::Status {
            code,
            retry_after: None,
        }
    }

    fn retry_ms(ms: u64) -> Decision {
        Decision::Retry {
            after: Duration::from_millis(ms),
        }
    }

    #[test]
    fn table() {
        let secs = |s| Some(Duration::from_secs(s));
        #[rustfmt::skip]
        let cases: &[(Outcome, u32, bool, f64, Decision)] = &[
            // Success.
            (status(200), 0, true, 0.0, Decision::Delivered),
            (status(204), 7, true, 0.5, Decision::Delivered),
            // Server errors: exponential, equal jitter (half fixed + half × jitter).
            (status(500), 0, true, 0.0, retry_ms(250)),
            (status(503), 0, true, 0.999_999, retry_ms(500)),
            (status(503), 1, true, 0.0, retry_ms(500)),
            (status(503), 2, true, 0.5, retry_ms(1500)),
            // Capped at max_backoff, also for absurd attempt numbers.
            (status(502), 10, true, 0.0, retry_ms(15_000)),
            (status(502), 200, true, 0.5, retry_ms(22_500)),
            // Network errors and timeouts back off like 5xx.
            (Outcome::Network, 0, true, 0.0, retry_ms(250)),
            (Outcome::Timeout, 3, true, 0.0, retry_ms(2000)),
            // Retry-After wins over the backoff, clamped to [min, max].
            (Outcome::Status { code: 503, retry_after: secs(7) }, 0, true, 0.0, retry_ms(7000)),
            (Outcome::Status { code: 503, retry_after: secs(0) }, 5, true, 0.0, retry_ms(500)),
            (Outcome::Status { code: 503, retry_after: secs(3600) }, 0, true, 0.0, retry_ms(30_000)),
            (Outcome::Status { code: 429, retry_after: secs(2) }, 0, true, 0.0, retry_ms(2000)),
            // 429: retried by default, dropped when switched off.
            (status(429), 1, true, 0.0, retry_ms(500)),
            (status(429), 0, false, 0.0, Decision::Drop { reason: Refusal::Rejected4xx(429) }),
            (Outcome::Status { code: 429, retry_after: secs(2) }, 0, false, 0.0, Decision::Drop { reason: Refusal::Rejected4xx(429) }),
            // Other 4xx: never retried.
            (status(400), 0, true, 0.0, Decision::Drop { reason: Refusal::Rejected4xx(400) }),
            (status(401), 0, true, 0.0, Decision::Drop { reason: Refusal::Rejected4xx(401) }),
            (status(413), 0, true, 0.0, Decision::Drop { reason: Refusal::Rejected4xx(413) }),
            (Outcome::Status { code: 400, retry_after: secs(1) }, 0, true, 0.0, Decision::Drop { reason: Refusal::Rejected4xx(400) }),
            // Redirects and other oddities.
            (status(301), 0, true, 0.0, Decision::Drop { reason: Refusal::UnexpectedStatus(301) }),
            (status(101), 0, true, 0.0, Decision::Drop { reason: Refusal::UnexpectedStatus(101) }),
        ];
        for (i, (outcome, attempt, on_429, jitter, expected)) in cases.iter().enumerate() {
            let got = decide(*outcome, *attempt, &config(*on_429), *jitter);
            match (got, expected) {
                // Float scaling may be off by a nanosecond.
                (Decision::Retry { after: a }, Decision::Retry { after: b }) => assert!(
                    a.abs_diff(*b) < Duration::from_micros(1),
                    "case {i}: {outcome:?} attempt {attempt}: {a:?} != {b:?}"
                ),
                _ => assert_eq!(got, *expected, "case {i}: {outcome:?} attempt {attempt}"),
            }
        }
    }

    #[test]
    fn backoff_never_exceeds_max_nor_falls_below_half_min() {
        let c = config(true);
        for attempt in 0..64 {
            for jitter in [0.0, 0.25, 0.5, 0.999] {
                let Decision::Retry { after } = decide(Outcome::Network, attempt, &c, jitter)
                else {
                    panic!("network errors are retried")
                };
                assert!(after <= c.max_backoff && after >= c.min_backoff / 2);
            }
        }
    }

    #[test]
    fn drop_reason_labels() {
        assert_eq!(Refusal::Rejected4xx(400).reason().as_str(), "rejected_4xx");
        assert_eq!(
            Refusal::UnexpectedStatus(302).reason().as_str(),
            "unexpected_status"
        );
    }
}
