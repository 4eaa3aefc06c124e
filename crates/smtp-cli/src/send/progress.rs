//! The load mode's live progress line and latency percentiles.
//!
//! Connections count what they send in shared atomics ([`Counters`]) and keep each
//! message's latency (MAIL to the final reply) in a `Vec` of microseconds of their own,
//! merged at the end: four bytes a message, no lock on the hot path. On a terminal a
//! thread rewrites one stderr line a few times a second ([`Ticker`]); elsewhere nothing
//! is printed, so scripts see the same output as before.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// How often the progress line is rewritten.
const TICK: Duration = Duration::from_millis(250);

/// Messages done so far, shared by every load connection.
#[derive(Debug, Default)]
pub(super) struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
}

impl Counters {
    pub(super) fn sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self) -> (u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

/// A message's latency in microseconds, saturating (71 minutes).
pub(super) fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// p50, p90 and p99 of the latencies, in milliseconds (nearest rank).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Percentiles {
    pub(super) p50: f64,
    pub(super) p90: f64,
    pub(super) p99: f64,
}

impl Percentiles {
    /// `None` when no message got a final reply. Sorts `latencies_us`.
    pub(super) fn of(latencies_us: &mut [u32]) -> Option<Percentiles> {
        if latencies_us.is_empty() {
            return None;
        }
        latencies_us.sort_unstable();
        let n = latencies_us.len();
        let at = |p: usize| {
            // Nearest rank: the smallest value with at least p% of the values at or below it.
            let rank = (p * n).div_ceil(100).max(1);
            f64::from(latencies_us[rank - 1]) / 1000.0
        };
        Some(Percentiles {
            p50: at(50),
            p90: at(90),
            p99: at(99),
        })
    }

    pub(super) fn json(&self) -> serde_json::Value {
        serde_json::json!({ "p50": self.p50, "p90": self.p90, "p99": self.p99 })
    }
}

/// The progress line: `sent 1200, failed 3, 4012.5 msg/s, 0.3 s`.
pub(super) fn progress_line(sent: u64, failed: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    format!(
        "sent {sent}, failed {failed}, {:.1} msg/s, {secs:.1} s",
        sent as f64 / secs.max(1e-9)
    )
}

/// The closing summary: the last progress line and the latency percentiles.
pub(super) fn summary_line(
    sent: u64,
    failed: u64,
    elapsed: Duration,
    latency: Option<Percentiles>,
) -> String {
    let mut line = progress_line(sent, failed, elapsed);
    if let Some(p) = latency {
        line.push_str(&format!(
            "; latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms",
            p.p50, p.p90, p.p99
        ));
    }
    line
}

/// The thread that rewrites the progress line on stderr until stopped.
pub(super) struct Ticker {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Ticker {
    /// Starts rewriting the line from `counters`, counting time from `start`.
    pub(super) fn start(counters: Arc<Counters>, start: Instant) -> Ticker {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(TICK) {
                let (sent, failed) = counters.get();
                // \r back to the start of the line, ESC [K to erase what a longer line left.
                eprint!("\r{}\x1b[K", progress_line(sent, failed, start.elapsed()));
                let _ = std::io::stderr().flush();
            }
        });
        Ticker { stop, thread }
    }

    /// Stops the thread and replaces the progress line with `summary`, or with nothing
    /// when it is empty (an error message follows).
    pub(super) fn finish(self, summary: &str) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
        if summary.is_empty() {
            eprint!("\r\x1b[K");
        } else {
            eprintln!("\r{summary}\x1b[K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        assert_eq!(Percentiles::of(&mut []), None);
        let mut one = [1500];
        let p = Percentiles::of(&mut one).unwrap();
        assert_eq!((p.p50, p.p90, p.p99), (1.5, 1.5, 1.5));
        // 1..=100 ms, shuffled.
        let mut v: Vec<u32> = (1..=100).rev().map(|ms| ms * 1000).collect();
        let p = Percentiles::of(&mut v).unwrap();
        assert_eq!((p.p50, p.p90, p.p99), (50.0, 90.0, 99.0));
        let mut v: Vec<u32> = (1..=10).map(|ms| ms * 1000).collect();
        let p = Percentiles::of(&mut v).unwrap();
        assert_eq!((p.p50, p.p90, p.p99), (5.0, 9.0, 10.0));
    }

    #[test]
    fn lines() {
        assert_eq!(
            progress_line(1200, 3, Duration::from_millis(300)),
            "sent 1200, failed 3, 4000.0 msg/s, 0.3 s"
        );
        let p = Percentiles {
            p50: 0.5,
            p90: 1.25,
            p99: 7.0,
        };
        assert_eq!(
            summary_line(10, 0, Duration::from_secs(2), Some(p)),
            "sent 10, failed 0, 5.0 msg/s, 2.0 s; latency p50 0.50 ms, p90 1.25 ms, p99 7.00 ms"
        );
        assert_eq!(
            summary_line(0, 1, Duration::from_secs(1), None),
            "sent 0, failed 1, 0.0 msg/s, 1.0 s"
        );
    }
}
