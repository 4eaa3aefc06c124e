//! What the accept threads, the sessions and the shutdown share: the connection count,
//! each session's socket and idle flag, and the drain and forced-close flags.
//!
//! A module of its own so that `server` (which starts sessions and shuts down) and
//! `session` (which checks for a drain or forced close between commands) both use it
//! without importing each other.

use std::collections::HashMap;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What the accept threads, the sessions and the shutdown share.
#[derive(Default)]
pub(crate) struct Control {
    state: Mutex<ControlState>,
    pub(crate) changed: Condvar,
    /// No more connections are taken.
    pub(crate) stopping: AtomicBool,
    /// Shutting down: sessions close at their next command boundary outside a
    /// transaction.
    draining: AtomicBool,
    /// The grace period is over: sessions close with 421.
    force_close: AtomicBool,
}

#[derive(Default)]
pub(crate) struct ControlState {
    pub(crate) shutdown: bool,
    /// Sessions running (threads holding a slot).
    pub(crate) active: usize,
    /// Threads answering connections over the limit.
    pub(crate) refusing: usize,
    /// Each session's socket, to wake its blocked read at shutdown.
    pub(crate) sockets: HashMap<u64, Registered>,
}

/// A session as the shutdown sees it.
pub(crate) struct Registered {
    /// A clone of the session's socket.
    pub(crate) tcp: TcpStream,
    /// The session is between transactions (see [`Server::is_idle`](smtp_proto::server::Server::is_idle)).
    idle: Arc<AtomicBool>,
}

impl Control {
    pub(crate) fn lock(&self) -> MutexGuard<'_, ControlState> {
        // A panicking session thread must not take the whole server down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn wait_timeout<'a>(
        &self,
        guard: MutexGuard<'a, ControlState>,
        timeout: Duration,
    ) -> MutexGuard<'a, ControlState> {
        match self.changed.wait_timeout(guard, timeout) {
            Ok((g, _)) => g,
            Err(e) => e.into_inner().0,
        }
    }

    /// Whether the sessions must close now.
    pub(crate) fn force_closing(&self) -> bool {
        self.force_close.load(Ordering::Acquire)
    }

    /// Whether a shutdown has started.
    pub(crate) fn draining(&self) -> bool {
        // SeqCst, paired with the session's store of its idle flag: either the session
        // sees the drain before it blocks, or the drain sees it idle and wakes it.
        self.draining.load(Ordering::SeqCst)
    }

    /// Starts the drain: sessions between transactions are woken from their reads
    /// (their read side shut) and close with `421 4.3.2`; the others finish their
    /// transaction first.
    pub(crate) fn drain(&self) {
        let state = self.lock();
        self.draining.store(true, Ordering::SeqCst);
        for session in state.sockets.values() {
            if session.idle.load(Ordering::SeqCst) {
                let _ = session.tcp.shutdown(Shutdown::Read);
            }
        }
        self.changed.notify_all();
    }

    /// The grace period is over: blocked reads return at once (end of input), and the
    /// sessions see the flag and say 421 through their machines; their write side stays
    /// open for that.
    pub(crate) fn force_close(&self) {
        let state = self.lock();
        self.force_close.store(true, Ordering::Release);
        for session in state.sockets.values() {
            let _ = session.tcp.shutdown(Shutdown::Read);
        }
        self.changed.notify_all();
    }

    /// Blocks until `done` holds or `deadline` passes (forever when `None`); the state,
    /// and whether `done` holds.
    pub(crate) fn wait_for(
        &self,
        deadline: Option<Instant>,
        done: impl Fn(&ControlState) -> bool,
    ) -> (MutexGuard<'_, ControlState>, bool) {
        let mut state = self.lock();
        loop {
            if done(&state) {
                return (state, true);
            }
            let timeout = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(t) if !t.is_zero() => t,
                    _ => return (state, false),
                },
                None => Duration::from_secs(3600),
            };
            state = self.wait_timeout(state, timeout);
        }
    }

    /// Blocks until `deadline` (forever when `None`) or a forced close, whichever comes
    /// first; true for the forced close.
    pub(crate) fn sleep_until(&self, deadline: Option<Instant>) -> bool {
        self.wait_for(deadline, |_| self.force_closing()).1
    }

    /// Registers a session's socket so that a shutdown can wake its reads; the session
    /// keeps the returned flag up to date.
    pub(crate) fn register(&self, id: u64, tcp: &TcpStream) -> Arc<AtomicBool> {
        let idle = Arc::new(AtomicBool::new(false));
        let Ok(clone) = tcp.try_clone() else {
            return idle;
        };
        // Under the lock: the shutdown sets the flag and walks the sockets holding it, so
        // a socket is either walked or sees the flag here.
        let mut state = self.lock();
        if self.force_closing() {
            let _ = clone.shutdown(Shutdown::Read);
        }
        state.sockets.insert(
            id,
            Registered {
                tcp: clone,
                idle: Arc::clone(&idle),
            },
        );
        idle
    }
}
