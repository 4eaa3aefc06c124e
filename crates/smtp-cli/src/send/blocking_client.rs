//! `smtp send --io blocking`: connections on `smtp_blocking::Connector`, the load mode's
//! on a thread each.

use std::sync::Arc;
use std::time::Instant;

use smtp_blocking::{Connection, Connector, Error};
use smtp_proto::client::{ClientConfig, DeliveryStatus, Envelope};

use super::{Body, Failure, LoadJob, Plan, Sent, Tally, transcript_line};

/// A connector with the plan's configuration, TLS, server name, timeout and transcript.
fn connector(plan: &Plan) -> Connector {
    let mut c = Connector::new(ClientConfig::clone(&plan.config))
        .implicit_tls(plan.implicit_tls)
        .server_name(plan.host.clone())
        .connect_timeout(plan.connect_timeout);
    if let Some(tls) = &plan.tls {
        c = c.tls(Arc::clone(tls));
    }
    if plan.verbose {
        c = c.transcript(transcript_line);
    }
    c
}

/// Sends one message, then QUIT.
pub(super) fn send(plan: &Plan, envelope: Envelope, body: Body) -> Result<Sent, Failure> {
    let mut conn = connector(plan).connect(&plan.addr).map_err(failure)?;
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

fn failure(e: Error) -> Failure {
    match e {
        Error::Resolve { error, .. } | Error::Connect { error, .. } => {
            Failure::Connect(error.to_string())
        }
        Error::Tls(e) => Failure::Tls(e.to_string()),
        e @ (Error::ServerName(_) | Error::TlsConfig(_)) => Failure::Tls(e.to_string()),
        Error::Io(e) => Failure::Io(e.to_string()),
        Error::Body(e) => Failure::Body(e.to_string()),
        Error::Session(e) => Failure::Session(e),
        Error::Usage(_) | Error::Closed => Failure::Closed,
        e => Failure::Io(e.to_string()),
    }
}

/// The load mode: one thread per connection.
pub(super) fn load(plan: &Plan, job: &LoadJob) -> Result<Tally, Failure> {
    let connector = connector(plan);
    let start = Instant::now();
    let (sent, failed) = std::thread::scope(|scope| {
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
        threads.into_iter().fold((0, 0), |(sent, failed), t| {
            let (s, f) = t.ok().and_then(|t| t.join().ok()).unwrap_or((0, 0));
            (sent + s, failed + f)
        })
    });
    Ok(Tally {
        sent,
        failed,
        elapsed: start.elapsed(),
    })
}

/// One load connection: `share` messages, reconnecting after a failed session.
fn load_connection(connector: &Connector, addr: &str, job: &LoadJob, share: u64) -> (u64, u64) {
    let (mut sent, mut failed) = (0u64, 0u64);
    let mut conn: Option<Connection> = None;
    while sent + failed < share {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connector.connect(addr) {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    failed += 1;
                    continue;
                }
            },
        };
        match c.send(job.envelope.clone(), job.message.as_slice()) {
            Ok(o) if o.status == DeliveryStatus::Sent => sent += 1,
            Ok(_) => failed += 1,
            Err(_) => {
                failed += 1;
                conn = None;
            }
        }
    }
    if let Some(c) = conn {
        let _ = c.quit();
    }
    (sent, failed)
}
