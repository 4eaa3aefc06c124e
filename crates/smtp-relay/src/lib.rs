//! A mail relay on `smtp-tokio`'s client: a durable queue, routes (static, smarthost,
//! MX), retries with backoff.
//!
//! The parts that decide — the retry schedule ([`schedule`]), routes ([`route`]), MX
//! ordering ([`mx`]), reply classification ([`outcome`]), when to notify the sender
//! ([`notify`]), the reports themselves ([`dsn`]) and the header scan ([`headers`]) — take time, answers and randomness as arguments and are tested
//! without sockets, disks or sleeps. The queue sits behind a small [`Store`] interface
//! with the filesystem ([`FsStore`]) as the embedded default.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod date;
mod deliver;
pub mod dns;
pub mod dsn;
pub mod engine;
pub mod headers;
pub mod mx;
pub mod notify;
pub mod outcome;
pub mod route;
pub mod schedule;
pub mod spool;

pub use deliver::TlsPolicy;
pub use engine::{Relay, RelayConfig, RelayHandle};
pub use route::{HopHost, NextHop, Route, RouteError, Routes};
pub use schedule::RetrySchedule;
pub use spool::{Envelope, FsStore, SpoolWriter, Store};
