//! What several of this crate's test files need.
#![allow(dead_code)]

/// dnsmasq on loopback, the same helper smtp-relay's tests use (one copy).
#[path = "../../../smtp-relay/tests/support/dnsmasq.rs"]
pub(crate) mod dnsmasq;

pub(crate) mod net;
pub(crate) mod process;
pub(crate) mod serve;

/// `#[test] fn NAME` in `mod tokio_io` and `mod blocking_io`, calling the scenario
/// `NAME(io)` with `"tokio"` and `"blocking"`: every scenario on both adapters.
#[allow(unused_macros)]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod tokio_io {
            $(#[test] fn $name() { super::$name("tokio"); })*
        }
        mod blocking_io {
            $(#[test] fn $name() { super::$name("blocking"); })*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both;
