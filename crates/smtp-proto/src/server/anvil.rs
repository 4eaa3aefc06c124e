//! Per-client limits, kept as Postfix's `anvil` keeps them: how many connections one
//! client has open at once, and how many AUTH attempts it failed within a window.
//!
//! Pure bookkeeping: time is passed in and nothing blocks. A server shares one [`Anvil`]
//! between its sessions (behind a mutex), asks it at connect, before AUTH and after a
//! failed AUTH, and tells it at disconnect. Memory stays bounded however many addresses
//! connect: an address is remembered only while it has connections open or failures in
//! the current window, and at most [`AnvilLimits::max_clients`] of the latter.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use super::Refusal;
use crate::reply::{EnhancedCode, Reply};

/// The limits; `0` turns a count limit off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnvilLimits {
    /// Connections one client may have open at once (Postfix's
    /// `smtpd_client_connection_count_limit`, 50); over it, `421 4.7.0` before the
    /// greeting.
    pub max_connections_per_ip: u32,
    /// Failed AUTH attempts one client may make within
    /// [`auth_window`](Self::auth_window) (10); after that AUTH gets `454 4.7.0` until
    /// the window is over.
    pub max_auth_failures: u32,
    /// The window failures are counted in (Postfix's `anvil_rate_time_unit` is one
    /// minute for rates; ten minutes here, so that guessing is slow).
    pub auth_window: Duration,
    /// Clients remembered for their failures at most; past it the one whose window is
    /// oldest is forgotten first.
    pub max_clients: usize,
}

impl Default for AnvilLimits {
    fn default() -> Self {
        AnvilLimits {
            max_connections_per_ip: 50,
            max_auth_failures: 10,
            auth_window: Duration::from_secs(600),
            max_clients: 100_000,
        }
    }
}

/// What is known of one client.
#[derive(Clone, Copy, Debug)]
struct Client {
    connections: u32,
    failures: u32,
    /// When the first failure of the current window happened.
    window_start: Instant,
}

/// The per-client counts: connections open at once, and AUTH failures in a window, per
/// client, in bounded memory.
///
/// ```
/// use std::time::{Duration, Instant};
/// use smtp_proto::server::{Anvil, AnvilLimits};
///
/// let limits = AnvilLimits { max_connections_per_ip: 2, ..AnvilLimits::default() };
/// let mut anvil = Anvil::new("mx.example.org", limits);
/// let (client, now) = ("192.0.2.7".parse().unwrap(), Instant::now());
/// assert!(anvil.connect(client, now).is_ok());
/// assert!(anvil.connect(client, now).is_ok());
/// let refusal = anvil.connect(client, now).unwrap_err();
/// assert_eq!(
///     refusal.to_string(),
///     "421 4.7.0 mx.example.org Error: too many connections from 192.0.2.7"
/// );
/// anvil.disconnect(client);
/// assert!(anvil.connect(client, now).is_ok());
/// ```
#[derive(Debug)]
pub struct Anvil {
    hostname: String,
    limits: AnvilLimits,
    clients: HashMap<IpAddr, Client>,
}

/// The client an address belongs to: IPv4 addresses one by one (IPv4-mapped IPv6 ones
/// too), IPv6 addresses by their /64, the smallest network a site is usually given.
fn client_of(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(
                u128::from(v6) & 0xffff_ffff_ffff_ffff_0000_0000_0000_0000,
            )),
        },
    }
}

impl Anvil {
    /// An empty record; `hostname` goes into the replies, as in the session's own.
    pub fn new(hostname: &str, limits: AnvilLimits) -> Anvil {
        Anvil {
            hostname: hostname.to_owned(),
            limits,
            clients: HashMap::new(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &AnvilLimits {
        &self.limits
    }

    /// Clients remembered now (connections open, or failures in their window).
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// A new connection from `addr`: counted, or refused with `421 4.7.0` (to send
    /// instead of the greeting, e.g. with
    /// [`Session::close_with`](super::Session::close_with)). Every `Ok` must be matched by
    /// a [`disconnect`](Self::disconnect).
    pub fn connect(&mut self, addr: IpAddr, now: Instant) -> Result<(), Reply> {
        let max = self.limits.max_connections_per_ip;
        let client = self.client(addr, now);
        if max != 0 && client.connections >= max {
            let text = format!("{} Error: too many connections from {addr}", self.hostname);
            return Err(reply(421, text));
        }
        client.connections += 1;
        Ok(())
    }

    /// A connection [`connect`](Self::connect) counted has ended.
    pub fn disconnect(&mut self, addr: IpAddr) {
        let key = client_of(addr);
        if let Some(client) = self.clients.get_mut(&key) {
            client.connections = client.connections.saturating_sub(1);
            if client.connections == 0 && client.failures == 0 {
                self.clients.remove(&key);
            }
        }
    }

    /// Before an AUTH from `addr` is looked at: `454 4.7.0` while the client has failed
    /// too often in the current window, to refuse the attempt with.
    pub fn auth_refusal(&mut self, addr: IpAddr, now: Instant) -> Option<Refusal> {
        let max = self.limits.max_auth_failures;
        let window = self.limits.auth_window;
        let key = client_of(addr);
        let client = self.clients.get_mut(&key)?;
        if now.saturating_duration_since(client.window_start) >= window {
            client.failures = 0;
        }
        if max != 0 && client.failures >= max {
            let text =
                format!("Temporary authentication failure: too many failed attempts from {addr}");
            return Some(Refusal::constant(reply(454, text)));
        }
        self.forget_if_idle(addr, now);
        None
    }

    /// An AUTH attempt from `addr` failed.
    pub fn auth_failed(&mut self, addr: IpAddr, now: Instant) {
        if self.limits.max_auth_failures == 0 {
            return;
        }
        let window = self.limits.auth_window;
        let client = self.client(addr, now);
        if client.failures == 0 || now.saturating_duration_since(client.window_start) >= window {
            client.failures = 0;
            client.window_start = now;
        }
        client.failures += 1;
    }

    /// The entry for `addr`, made if need be, room made first when full.
    fn client(&mut self, addr: IpAddr, now: Instant) -> &mut Client {
        let key = client_of(addr);
        if !self.clients.contains_key(&key) && self.clients.len() >= self.limits.max_clients {
            self.make_room(now);
        }
        self.clients.entry(key).or_insert(Client {
            connections: 0,
            failures: 0,
            window_start: now,
        })
    }

    /// Forgets the clients whose window is over and that have nothing open; if none
    /// was, the one with the oldest window among those with nothing open. Clients with
    /// connections open are never forgotten (they are bounded by the server's
    /// connection limit).
    fn make_room(&mut self, now: Instant) {
        let window = self.limits.auth_window;
        let before = self.clients.len();
        self.clients.retain(|_, c| {
            c.connections > 0 || now.saturating_duration_since(c.window_start) < window
        });
        if self.clients.len() < before {
            return;
        }
        let oldest = self
            .clients
            .iter()
            .filter(|(_, c)| c.connections == 0)
            .min_by_key(|(_, c)| c.window_start)
            .map(|(k, _)| *k);
        if let Some(key) = oldest {
            self.clients.remove(&key);
        }
    }

    /// Drops `addr`'s entry if it holds nothing: no connection, no failure in the
    /// current window.
    fn forget_if_idle(&mut self, addr: IpAddr, now: Instant) {
        let window = self.limits.auth_window;
        let key = client_of(addr);
        if let Some(c) = self.clients.get(&key) {
            let failing = c.failures > 0 && now.saturating_duration_since(c.window_start) < window;
            if c.connections == 0 && !failing {
                self.clients.remove(&key);
            }
        }
    }
}

fn reply(code: u16, text: String) -> Reply {
    let enhanced = Some(EnhancedCode::of(4, 7, 0));
    Reply::new(code, enhanced, text)
        .unwrap_or_else(|_| Reply::fixed(code, Some((4, 7, 0)), "Error"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn limits(conns: u32, failures: u32) -> AnvilLimits {
        AnvilLimits {
            max_connections_per_ip: conns,
            max_auth_failures: failures,
            auth_window: Duration::from_secs(600),
            max_clients: 3,
        }
    }

    #[test]
    fn connections_are_counted_per_client() {
        let now = Instant::now();
        let mut a = Anvil::new("mx.example.org", limits(2, 0));
        assert!(a.connect(ip("192.0.2.1"), now).is_ok());
        // The same client as IPv4-mapped IPv6.
        assert!(a.connect(ip("::ffff:192.0.2.1"), now).is_ok());
        let r = a.connect(ip("192.0.2.1"), now).unwrap_err();
        assert_eq!(
            r.to_string(),
            "421 4.7.0 mx.example.org Error: too many connections from 192.0.2.1"
        );
        // Another address is another client; an IPv6 /64 is one client.
        assert!(a.connect(ip("192.0.2.2"), now).is_ok());
        assert!(a.connect(ip("2001:db8::1"), now).is_ok());
        assert!(a.connect(ip("2001:db8::ffff:2"), now).is_ok());
        assert!(a.connect(ip("2001:db8::3"), now).is_err());
        assert!(a.connect(ip("2001:db8:0:1::3"), now).is_ok());
        a.disconnect(ip("192.0.2.1"));
        assert!(a.connect(ip("192.0.2.1"), now).is_ok());
        for addr in [
            "192.0.2.1",
            "192.0.2.1",
            "192.0.2.2",
            "2001:db8::1",
            "2001:db8::2",
        ] {
            a.disconnect(ip(addr));
        }
        a.disconnect(ip("2001:db8:0:1::3"));
        assert_eq!(a.clients(), 0, "nothing kept once all have left");
        // 0: no limit.
        let mut a = Anvil::new("mx.example.org", limits(0, 0));
        for _ in 0..1000 {
            assert!(a.connect(ip("192.0.2.1"), now).is_ok());
        }
    }

    #[test]
    fn auth_failures_block_until_the_window_is_over() {
        let t0 = Instant::now();
        let mut a = Anvil::new("mx.example.org", limits(0, 3));
        let c = ip("198.51.100.9");
        assert!(a.connect(c, t0).is_ok());
        for i in 0..3 {
            assert_eq!(a.auth_refusal(c, t0), None, "attempt {i}");
            a.auth_failed(c, t0 + Duration::from_secs(i));
        }
        let r = a.auth_refusal(c, t0 + Duration::from_secs(10)).unwrap();
        assert_eq!(
            r.to_string(),
            "454 4.7.0 Temporary authentication failure: too many failed attempts from 198.51.100.9"
        );
        // Another connection from the same client is refused as well, until the window
        // that started with the first failure is over.
        a.disconnect(c);
        assert!(a.auth_refusal(c, t0 + Duration::from_secs(599)).is_some());
        assert_eq!(a.auth_refusal(c, t0 + Duration::from_secs(600)), None);
        assert_eq!(a.clients(), 0);
        // 0: no limit.
        let mut a = Anvil::new("mx.example.org", limits(0, 0));
        for _ in 0..100 {
            a.auth_failed(c, t0);
            assert_eq!(a.auth_refusal(c, t0), None);
        }
        assert_eq!(a.clients(), 0);
    }

    #[test]
    fn memory_is_bounded_however_many_clients_fail() {
        let t0 = Instant::now();
        let mut a = Anvil::new("mx.example.org", limits(0, 3));
        // One client with a connection open is never forgotten.
        let held = ip("192.0.2.250");
        assert!(a.connect(held, t0).is_ok());
        for i in 0..10_000u32 {
            let addr = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            a.auth_failed(addr, t0 + Duration::from_millis(i.into()));
            assert!(a.clients() <= 3 + 1, "{} clients", a.clients());
        }
        assert!(a.connect(held, t0).is_ok());
        a.disconnect(held);
        a.disconnect(held);
        // The newest failures are the ones remembered.
        let last = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + 9_999));
        a.auth_failed(last, t0);
        a.auth_failed(last, t0);
        assert!(a.auth_refusal(last, t0 + Duration::from_secs(20)).is_some());
    }
}
