//! What the accept threads, the sessions and the shutdown share: the connection counts,
//! each session's socket and idle flag, and how far the shutdown has gone.
//!
//! A module of its own so that `server` (which starts sessions and shuts down) and
//! `session` (which checks the shutdown's stage whenever it waits) both use it without
//! importing each other.

use std::collections::HashMap;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Threads answering over-limit implicit-TLS connections at most (each needs a handshake
/// before it can say 421); beyond this, such connections are dropped.
const MAX_REFUSING: usize = 32;

/// How far the shutdown has gone; it only moves forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stage {
    Running,
    /// Asked for: the accept threads stop.
    Stopping,
    /// Sessions close at their next wait outside a transaction.
    Draining,
    /// The grace period is over: every session closes with 421.
    Closing,
}

/// What the accept threads, the sessions and the shutdown share.
#[derive(Debug, Default)]
pub(crate) struct Control {
    state: Mutex<State>,
    changed: Condvar,
    /// A [`Stage`], readable without the lock on every wait of every session.
    stage: AtomicU8,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    /// Sessions running (threads holding a slot).
    pub(crate) active: usize,
    /// Connections over the limit being answered with 421.
    pub(crate) refusing: usize,
    /// Each session's socket (a clone, to wake its blocked read) and whether it is
    /// between transactions (see [`Session::is_idle`](smtp_proto::server::Session::is_idle)).
    sessions: HashMap<u64, (TcpStream, Arc<AtomicBool>)>,
}

/// A connection's place in the counts, given back when its thread ends, however it ends
/// (or when the thread could not start).
pub(crate) struct Slot {
    pub(crate) control: Arc<Control>,
    pub(crate) id: u64,
    /// Over the limit: the connection only gets `421 4.3.2`.
    pub(crate) refusal: bool,
    idle: Arc<AtomicBool>,
}

impl Control {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking session thread must not take the whole server down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a new connection: a session's under `limit`, else a refusal's; `None`
    /// when an implicit-TLS connection cannot even be refused.
    pub(crate) fn admit(self: &Arc<Self>, id: u64, limit: usize, tls: bool) -> Option<Slot> {
        let mut state = self.lock();
        let refusal = state.active >= limit;
        match (refusal, tls) {
            (false, _) => state.active += 1,
            (true, true) if state.refusing >= MAX_REFUSING => return None,
            (true, _) => state.refusing += 1,
        }
        let (control, idle) = (Arc::clone(self), Arc::default());
        Some(Slot {
            control,
            id,
            refusal,
            idle,
        })
    }

    pub(crate) fn active(&self) -> usize {
        self.lock().active
    }

    /// SeqCst, paired with the session's store of its idle flag: either the session sees
    /// the drain before it blocks, or the drain sees it idle and wakes it.
    pub(crate) fn stage(&self) -> Stage {
        match self.stage.load(SeqCst) {
            0 => Stage::Running,
            1 => Stage::Stopping,
            2 => Stage::Draining,
            _ => Stage::Closing,
        }
    }

    /// Moves the shutdown on to `stage` (never back). Draining wakes the sessions between
    /// transactions from their reads by shutting their read side, Closing wakes them all;
    /// their write side stays open for the machine's 421.
    pub(crate) fn advance(&self, stage: Stage) {
        let state = self.lock();
        self.stage.fetch_max(stage as u8, SeqCst);
        for (tcp, idle) in state.sessions.values() {
            if stage == Stage::Closing || (stage == Stage::Draining && idle.load(SeqCst)) {
                let _ = tcp.shutdown(Shutdown::Read);
            }
        }
        self.changed.notify_all();
    }

    /// Blocks until `done` holds or `deadline` passes (forever when `None`); whether
    /// `done` holds.
    pub(crate) fn wait_for(
        &self,
        deadline: Option<Instant>,
        done: impl Fn(&State) -> bool,
    ) -> bool {
        let mut state = self.lock();
        while !done(&state) {
            let timeout = match deadline.map(|d| d.saturating_duration_since(Instant::now())) {
                Some(t) if t.is_zero() => return false,
                Some(t) => t,
                None => Duration::from_secs(3600),
            };
            state = match self.changed.wait_timeout(state, timeout) {
                Ok((s, _)) => s,
                Err(e) => e.into_inner().0,
            };
        }
        true
    }
}

impl Slot {
    /// Registers the session's socket so that a shutdown can wake its reads.
    pub(crate) fn register(&self, tcp: &TcpStream) {
        let Ok(clone) = tcp.try_clone() else { return };
        // Under the lock: a shutdown moves on and walks the sockets holding it, so a
        // socket is either walked or sees the new stage here.
        let mut state = self.control.lock();
        if self.control.stage() == Stage::Closing {
            let _ = clone.shutdown(Shutdown::Read);
        }
        state
            .sessions
            .insert(self.id, (clone, Arc::clone(&self.idle)));
    }

    /// Whether the session is between transactions, for a drain to see.
    pub(crate) fn set_idle(&self, idle: bool) {
        self.idle.store(idle, SeqCst);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.control.lock();
        if self.refusal {
            state.refusing -= 1;
        } else {
            state.active -= 1;
            state.sessions.remove(&self.id);
        }
        self.control.changed.notify_all();
    }
}
