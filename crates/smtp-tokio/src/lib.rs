//! Tokio and rustls for the Sans-I/O [`smtp_proto`] server and client machines.
//!
//! This crate owns sockets, clocks, TLS and tasks; the protocol lives in
//! [`smtp_proto::server::Session`]. Each connection runs one machine in a loop around
//! [`poll_output`](smtp_proto::server::Session::poll_output): bytes the machine transmits
//! are written, events go to the application's [`SessionHandler`], whose [`Decision`]s go back
//! as `accept`/`reject`; `StartTls` hands the raw TCP stream to rustls; `Wait` reads
//! (only when the machine asks), sleeps until its deadline, or closes on shutdown. The
//! adapter never writes a byte the machine did not produce, and holds no input of its
//! own, so no plaintext can survive a STARTTLS.
//!
//! # Pieces
//! - [`Backend`]: asked about every new connection, returns a [`SessionHandler`] for it.
//! - [`SessionHandler`]: policy (HELO, MAIL, RCPT, AUTH, VRFY/EXPN/ETRN) and delivery
//!   (message start, body chunks, end, abort; LMTP per-recipient delivery). Methods
//!   return `impl Future`, so implementations may be `async fn`.
//! - [`Server`] and its [`Builder`]: plain (+STARTTLS) and implicit-TLS listeners, a
//!   connection limit (`421 4.3.2` over it), graceful shutdown, one `tracing` span per
//!   session (id and peer address; credentials never logged).
//!
//! - [`Connector`], from [`Connector::builder`]: the client's configuration (STARTTLS
//!   policy or implicit TLS, certificate [`Verification`] with the webpki roots by
//!   default, credentials, timeouts, a transcript hook); the builder and the [`Error`]
//!   type are [`smtp_proto::client::host`]'s, the same as the blocking adapter's.
//! - [`Connection`]: one client session; sends one message at a time with its body read
//!   from any `AsyncRead` in chunks.
//!
//! # TLS
//! [`tls`] builds rustls configurations with the `ring` provider (client ones from the
//! webpki roots, a CA file or an explicit insecure mode; server ones from PEM files or a
//! self-signed certificate): [`smtp_tls`], the same as the blocking adapter's.
//!
//! # Memory
//! An idle session holds its machine (about 650 bytes), its socket and its task, and no
//! read buffer: reads go through an 8 KiB stack buffer that exists only while a read
//! completes, and the large, rare futures (handler calls, TLS handshakes) are boxed for
//! their duration only. Measured with `smtp serve --discard` (release build, logging at
//! `warn`) and 2000 plain connections idle after EHLO: 4.5 KiB of resident memory per
//! connection (`crates/smtp-cli/bench/idle.py`).
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod client;
mod host;
mod server;
mod session;
mod stream;
pub mod tls;

pub use client::{Connection, Connector, ConnectorBuilder, DEFAULT_BODY_CHUNK, Error, Transcript};
pub use host::{Backend, ConnectInfo, Context, Decision, SessionHandler};
pub use server::{Builder, Server};
pub use smtp_proto::server::host::{ListenerAddr, SetupError};
pub use tls::{TlsError, Verification};
