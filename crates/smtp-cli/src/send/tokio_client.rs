//! `smtp send --io tokio`: connections on `smtp_tokio::Connection`, the load mode's as
//! tasks on a multi-threaded runtime.

use std::sync::Arc;
use std::time::Instant;

use smtp_proto::client::{DeliveryStatus, Envelope};
use smtp_tokio::{Connection, Connector};
use tokio::io::AsyncRead;

use super::progress::Counters;
use super::{Body, ConnectionTally, Failure, LoadJob, Plan, Sent, Tally, connector, failure};

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Io(format!("cannot start the runtime: {e}")))
}

/// Sends one message, then QUIT.
pub(super) fn send(plan: &Plan, envelope: Envelope, body: Body) -> Result<Sent, Failure> {
    runtime()?.block_on(async {
        let mut body: Box<dyn AsyncRead + Unpin + Send> = match body {
            Body::File(f) => Box::new(tokio::fs::File::from_std(f)),
            Body::Memory(m) => Box::new(std::io::Cursor::new(m)),
        };
        let connector: Connector = connector(plan).map_err(failure)?;
        let mut conn = connector.connect(&plan.addr).await.map_err(failure)?;
        let outcome = conn.send(envelope, &mut body).await.map_err(failure)?;
        let sent = Sent {
            outcome,
            tls: conn.is_tls(),
            auth: conn.authenticated().map(|m| m.as_str().to_owned()),
            error: conn.error().cloned(),
        };
        let _ = conn.quit().await;
        Ok(sent)
    })
}

/// The load mode: one task per connection.
pub(super) fn load(plan: &Plan, job: &LoadJob) -> Result<Tally, Failure> {
    let runtime = runtime()?;
    let _guard = runtime.enter();
    let connector: Connector = connector(plan).map_err(failure)?;
    let start = Instant::now();
    let tasks: Vec<_> = job
        .shares
        .iter()
        .map(|&share| {
            let (connector, addr, envelope, message, counters) = (
                connector.clone(),
                plan.addr.clone(),
                job.envelope.clone(),
                Arc::clone(&job.message),
                Arc::clone(&job.counters),
            );
            tokio::spawn(async move {
                load_connection(&connector, &addr, envelope, &message, share, &counters).await
            })
        })
        .collect();
    runtime.block_on(async {
        let mut tally = ConnectionTally::default();
        for t in tasks {
            tally = tally.merge(t.await.unwrap_or_default());
        }
        Ok(Tally {
            sent: tally.sent,
            failed: tally.failed,
            elapsed: start.elapsed(),
            latencies_us: tally.latencies_us,
        })
    })
}

/// One load connection: `share` messages, reconnecting after a failed session.
async fn load_connection(
    connector: &Connector,
    addr: &str,
    env: Envelope,
    message: &[u8],
    share: u64,
    counters: &Counters,
) -> ConnectionTally {
    let mut tally = ConnectionTally::default();
    let mut conn: Option<Connection> = None;
    while tally.sent + tally.failed < share {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connector.connect(addr).await {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    tally.record(false, None, counters);
                    continue;
                }
            },
        };
        let mut body: &[u8] = message;
        let started = Instant::now();
        match c.send(env.clone(), &mut body).await {
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
        let _ = c.quit().await;
    }
    tally
}
