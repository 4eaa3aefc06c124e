//! `smtp send --io tokio`: connections on `smtp_tokio::Connection`, the load mode's as
//! tasks on a multi-threaded runtime.

use std::sync::Arc;
use std::time::Instant;

use smtp_proto::client::{DeliveryStatus, Envelope};
use smtp_tokio::{Connection, Connector};
use tokio::io::AsyncRead;

use super::{Body, Failure, LoadJob, Plan, Sent, Tally, connector, failure};

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
            let (connector, addr, envelope, message) = (
                connector.clone(),
                plan.addr.clone(),
                job.envelope.clone(),
                Arc::clone(&job.message),
            );
            tokio::spawn(async move {
                load_connection(&connector, &addr, envelope, &message, share).await
            })
        })
        .collect();
    runtime.block_on(async {
        let (mut sent, mut failed) = (0, 0);
        for t in tasks {
            let (s, f) = t.await.unwrap_or((0, 0));
            sent += s;
            failed += f;
        }
        Ok(Tally {
            sent,
            failed,
            elapsed: start.elapsed(),
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
) -> (u64, u64) {
    let (mut sent, mut failed) = (0u64, 0u64);
    let mut conn: Option<Connection> = None;
    while sent + failed < share {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connector.connect(addr).await {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    failed += 1;
                    continue;
                }
            },
        };
        let mut body: &[u8] = message;
        match c.send(env.clone(), &mut body).await {
            Ok(o) if o.status == DeliveryStatus::Sent => sent += 1,
            Ok(_) => failed += 1,
            Err(_) => {
                failed += 1;
                conn = None;
            }
        }
    }
    if let Some(c) = conn {
        let _ = c.quit().await;
    }
    (sent, failed)
}
