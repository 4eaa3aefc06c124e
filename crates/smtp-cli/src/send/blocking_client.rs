//! `smtp send --io blocking`: connections on `smtp_blocking::Connector`, the load mode's
//! on a thread each.

use std::time::Instant;

use smtp_blocking::{Connection, Connector};
use smtp_proto::client::{DeliveryStatus, Envelope};

use super::{Body, ConnectionTally, Failure, LoadJob, Plan, Sent, Tally, connector, failure};

/// Sends one message, then QUIT.
pub(super) fn send(plan: &Plan, envelope: Envelope, body: Body) -> Result<Sent, Failure> {
    let connector: Connector = connector(plan).map_err(failure)?;
    let mut conn = connector.connect(&plan.addr).map_err(failure)?;
    let outcome = match body {
        Body::File(f) => conn.send(envelope, f),
        Body::Memory(m) => conn.send(envelope, m.as_slice()),
    }
    .map_err(failure)?;
    let sent = Sent {
        outcome,
        tls: conn.is_tls(),
        auth: conn.authenticated().map(|m| m.as_str().to_owned()),
        error: conn.error().cloned(),
    };
    let _ = conn.quit();
    Ok(sent)
}

/// The load mode: one thread per connection.
pub(super) fn load(plan: &Plan, job: &LoadJob) -> Result<Tally, Failure> {
    let connector: Connector = connector(plan).map_err(failure)?;
    let start = Instant::now();
    let tally = std::thread::scope(|scope| {
        let threads: Vec<_> = job
            .shares
            .iter()
            .map(|&share| {
                let (connector, addr) = (&connector, plan.addr.as_str());
                std::thread::Builder::new()
                    .name("smtp-send".into())
                    .spawn_scoped(scope, move || load_connection(connector, addr, job, share))
            })
            .collect();
        threads
            .into_iter()
            .fold(ConnectionTally::default(), |tally, t| {
                tally.merge(t.ok().and_then(|t| t.join().ok()).unwrap_or_default())
            })
    });
    Ok(Tally {
        sent: tally.sent,
        failed: tally.failed,
        elapsed: start.elapsed(),
        latencies_us: tally.latencies_us,
    })
}

/// One load connection: `share` messages, reconnecting after a failed session.
fn load_connection(
    connector: &Connector,
    addr: &str,
    job: &LoadJob,
    share: u64,
) -> ConnectionTally {
    let mut tally = ConnectionTally::default();
    let counters = &*job.counters;
    let mut conn: Option<Connection> = None;
    while tally.sent + tally.failed < share {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connector.connect(addr) {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    tally.record(false, None, counters);
                    continue;
                }
            },
        };
        let started = Instant::now();
        match c.send(job.envelope.clone(), job.message.as_slice()) {
            Ok(o) => tally.record(
                o.status == DeliveryStatus::Sent,
                Some(started.elapsed()),
                counters,
            ),
            Err(_) => {
                tally.record(false, None, counters);
                conn = None;
            }
        }
    }
    if let Some(c) = conn {
        let _ = c.quit();
    }
    tally
}
