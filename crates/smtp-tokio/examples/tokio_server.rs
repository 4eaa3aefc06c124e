//! A mail server on `smtp-tokio` with a policy and storage of its own.
//!
//! ```text
//! cargo run -p smtp-tokio --example tokio_server -- LISTEN DIR DOMAIN USER... [--per-client N]
//! cargo run -p smtp-tokio --example tokio_server -- 127.0.0.1:2525 /tmp/mail example.org bob carol
//! ```
//!
//! - The [`Backend`] refuses a client that already has N sessions open (default 2) with
//!   `421 4.7.0` instead of the greeting.
//! - The [`SessionHandler`] accepts recipients at DOMAIN whose local part is one of the
//!   USERs, refuses other local parts there with `550 5.1.1` and other domains with
//!   `554 5.7.1` (relay denied); it asks for the whole body ([`SessionHandler::buffer_message`])
//!   and writes each message to `DIR/<id>.eml` with a `Return-Path:` line first (to a
//!   temporary name, synced, then renamed), then answers `250 2.0.0 Ok: queued as <id>`.
//! - Ctrl-C (SIGINT) shuts it down gracefully: no new connections, idle sessions get
//!   `421 4.3.2` at once, an open transaction gets a few seconds to finish.
//!
//! It prints `listening on ADDR` once bound (port 0 picks a free port) and one line per
//! message stored.

use std::collections::HashMap;
use std::error::Error;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use smtp_proto::server::{Refusal, ServerConfig};
use smtp_proto::{EnhancedCode, ForwardPath, RcptParams, Reply};
use smtp_tokio::{Backend, ConnectInfo, Context, Decision, Server, SessionHandler};
use tokio::io::AsyncWriteExt;

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// The server's side of every session: the mailboxes and the count of open sessions.
#[derive(Clone)]
struct Mailstore(Arc<Shared>);

struct Shared {
    dir: PathBuf,
    domain: String,
    users: Vec<String>,
    per_client: usize,
    /// Sessions open per client address.
    open: Mutex<HashMap<IpAddr, usize>>,
    next_id: AtomicU64,
}

/// Instead of the greeting, to a client over its limit (checked when compiled).
const BUSY: Reply = Reply::constant(
    421,
    Some(EnhancedCode::of(4, 7, 0)),
    "Error: too many connections from you",
);

/// The answer to a message that could not be stored (checked when compiled).
const STORAGE_FAILED: Decision = Decision::Reject(Refusal::constant(Reply::constant(
    451,
    Some(EnhancedCode::of(4, 3, 0)),
    "Error: local storage failed, try again later",
)));

impl Backend for Mailstore {
    type Handler = Delivery;

    fn connect(&self, info: &ConnectInfo) -> std::result::Result<Delivery, Reply> {
        let ip = info.peer.ip();
        let mut open = self.0.open.lock().unwrap();
        let count = open.entry(ip).or_default();
        if *count >= self.0.per_client {
            return Err(BUSY);
        }
        *count += 1;
        Ok(Delivery {
            store: self.clone(),
            ip,
        })
    }
}

/// One session's handler; dropping it gives the client's slot back, however the
/// session ended.
struct Delivery {
    store: Mailstore,
    ip: IpAddr,
}

impl Drop for Delivery {
    fn drop(&mut self) {
        let mut open = self.store.0.open.lock().unwrap();
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl SessionHandler for Delivery {
    async fn rcpt(
        &mut self,
        _: &Context<'_>,
        to: &ForwardPath<'static>,
        _: &RcptParams<'static>,
    ) -> Decision {
        // The checked constructor: the codes agree and the text, a parsed address,
        // holds no CR or LF, so only a bug in this file could make it fail.
        self.store.rcpt(to).unwrap_or(STORAGE_FAILED)
    }

    fn buffer_message(&mut self, _: &Context<'_>) -> bool {
        true
    }

    async fn message_end(&mut self, ctx: &Context<'_>) -> Decision {
        // Accept only once the message is stored (RFC 5321 §6.1).
        self.store.deliver(ctx).await.unwrap_or_else(|e| {
            eprintln!("storing a message: {e}");
            STORAGE_FAILED
        })
    }
}

impl Mailstore {
    /// Local recipients only, and only the users the server knows.
    fn rcpt(&self, to: &ForwardPath<'static>) -> Result<Decision> {
        let (local, domain) = match to {
            ForwardPath::Postmaster => return Ok(Decision::Accept),
            ForwardPath::Mailbox(m) => (m.local_part(), m.domain()),
        };
        let shared = &self.0;
        Ok(
            if !domain.is_some_and(|d| d.eq_ignore_case(&shared.domain)) {
                Decision::reject(554, (5, 7, 1), format!("{to}: Relay access denied"))?
            } else if !shared.users.iter().any(|u| u.eq_ignore_ascii_case(local)) {
                Decision::reject(
                    550,
                    (5, 1, 1),
                    format!("{to}: Recipient address rejected: User unknown"),
                )?
            } else {
                Decision::Accept
            },
        )
    }

    /// Stores the message [`Context::body`] holds, with a `Return-Path:` line first.
    async fn deliver(&self, ctx: &Context<'_>) -> Result<Decision> {
        let body = ctx.body().ok_or("no body: buffer_message said true")?;
        let from = ctx.session.reverse_path().map(ToString::to_string);
        let mut file = format!("Return-Path: {}\r\n", from.unwrap_or_default()).into_bytes();
        file.extend_from_slice(body);
        let id = self.queue_id();
        store(&self.0.dir, &id, &file).await?;
        let to: Vec<String> = ctx
            .session
            .recipients()
            .iter()
            .map(ToString::to_string)
            .collect();
        println!("stored {id} for {} ({} octets)", to.join(", "), body.len());
        let reply = Reply::new(
            250,
            Some(EnhancedCode::of(2, 0, 0)),
            format!("Ok: queued as {id}"),
        )?;
        Ok(Decision::accept_with(reply)?)
    }

    /// A queue id unique to this process: the time and a counter, in hex.
    fn queue_id(&self) -> String {
        let n = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        format!("{secs:X}{n:04X}")
    }
}

/// Writes `DIR/<id>.eml` under a temporary name, syncs it, then renames it into place,
/// so that a message is either whole or absent.
async fn store(dir: &Path, id: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{id}.tmp"));
    let mut file = tokio::fs::File::create(&tmp).await?;
    file.write_all(bytes).await?;
    file.sync_all().await?;
    tokio::fs::rename(&tmp, dir.join(format!("{id}.eml"))).await
}

#[tokio::main]
async fn main() -> Result<()> {
    let usage = "usage: tokio_server LISTEN DIR DOMAIN USER... [--per-client N]";
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut per_client = 2;
    if let Some(i) = args.iter().position(|a| a == "--per-client") {
        per_client = args.get(i + 1).ok_or(usage)?.parse()?;
        args.drain(i..i + 2);
    }
    let [listen, dir, domain, users @ ..] = args.as_slice() else {
        return Err(usage.into());
    };
    let store = Mailstore(Arc::new(Shared {
        dir: PathBuf::from(dir),
        domain: domain.clone(),
        users: users.to_vec(),
        per_client,
        open: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(1),
    }));
    tokio::fs::create_dir_all(&store.0.dir).await?;

    let mut config = ServerConfig::new(domain)?;
    config.limits.max_message_size = Some(10 << 20);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let server = Server::builder(config, store)
        .listener(listener)
        .shutdown_timeout(Duration::from_secs(5))
        .build()?;
    for listening in server.local_addrs() {
        println!("listening on {}", listening.addr);
    }
    server
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("shutting down");
        })
        .await;
    eprintln!("stopped");
    Ok(())
}
