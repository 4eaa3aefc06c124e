//! What several of this crate's test files need.
#![allow(dead_code)]

/// dnsmasq on loopback, the same helper smtp-relay's tests use (one copy).
#[path = "../../../smtp-relay/tests/support/dnsmasq.rs"]
pub(crate) mod dnsmasq;

pub(crate) mod net;
pub(crate) mod process;
pub(crate) mod serve;
