//! `std::net` and rustls for the Sans-I/O [`smtp_proto`] machines: an SMTP server and
//! client for synchronous programs, with no async runtime.
//!
//! This crate owns sockets, clocks, TLS and threads; the protocol lives in
//! [`smtp_proto::server::Session`] and [`smtp_proto::client::Client`]. Each connection is a
//! loop around the machine's `poll_output`: bytes it transmits are written, events go to
//! the application, `StartTls` hands the raw `TcpStream` to rustls, and `Wait` reads
//! (only when the machine asks) with a socket timeout taken from the machine's deadline,
//! calling `handle_timeout` when it passes. The adapter never writes a byte the machine
//! did not produce and holds no input of its own (no `BufReader`), so no plaintext can
//! survive a STARTTLS.
//!
//! # Server
//! - [`Backend`]: asked about every new connection, returns a [`SessionHandler`] for it.
//! - [`SessionHandler`]: policy (HELO, MAIL, RCPT, AUTH, VRFY/EXPN/ETRN) and delivery (message
//!   start, body chunks, end, abort; LMTP per-recipient delivery), called on the
//!   session's thread. The same methods as the tokio adapter's, without `async`.
//! - [`Server`] and its [`Builder`]: plain (+STARTTLS) and implicit-TLS listeners, a
//!   thread per connection up to a limit (`421 4.3.2` over it, said by the machine),
//!   graceful shutdown through a [`ShutdownHandle`].
//!
//! ```no_run
//! use std::net::TcpListener;
//! use smtp_blocking::{ConnectInfo, Context, Decision, SessionHandler, Backend, Server};
//! use smtp_proto::{Reply, server::ServerConfig};
//!
//! struct Sink;
//! struct Session;
//! impl Backend for Sink {
//!     type Handler = Session;
//!     fn connect(&self, _: &ConnectInfo) -> Result<Session, Reply> {
//!         Ok(Session)
//!     }
//! }
//! impl SessionHandler for Session {
//!     fn message_end(&mut self, _: &Context<'_>) -> Decision {
//!         Decision::Accept // a real host stores the message first
//!     }
//! }
//!
//! let config = ServerConfig::new("mx.example.org").unwrap();
//! let listener = TcpListener::bind("127.0.0.1:2525").unwrap();
//! let server = Server::builder(config, Sink).listener(listener).build().unwrap();
//! let stop = server.shutdown_handle();
//! // Another thread (a signal handler thread, say) calls `stop.shutdown()`.
//! # stop.shutdown();
//! server.run();
//! ```
//!
//! # Client
//! - [`Connector`], from [`Connector::builder`]: connect timeout, implicit TLS or the
//!   STARTTLS policy, certificate [`Verification`] (webpki roots by default), AUTH
//!   credentials, a transcript hook. The builder and the [`Error`] type are
//!   [`smtp_proto::client::host`]'s, the same as the tokio adapter's.
//! - [`Connection`]: many messages per connection, each body streamed from any
//!   [`std::io::Read`], each with its per-recipient
//!   [`MessageOutcome`](smtp_proto::client::MessageOutcome).
//!
//! ```no_run
//! use smtp_blocking::{Connector, Verification};
//! use smtp_proto::client::{ClientConfig, Envelope, Recipient, StartTls};
//! use smtp_proto::{ForwardPath, ReversePath};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let connector = Connector::builder(ClientConfig::new("client.example.org")?)
//!     .starttls(StartTls::Required)
//!     .verification(Verification::WebPki)
//!     .build()?;
//! let mut conn = connector.connect("mx.example.org:25")?;
//! let from: ReversePath = "alice@example.org".parse()?;
//! let to: ForwardPath = "bob@example.org".parse()?;
//! let body: &[u8] = b"Subject: hi\r\n\r\nHello.\r\n";
//! let outcome = conn.send(Envelope::new(from, vec![Recipient::new(to)]), body)?;
//! println!("{:?} {:?}", outcome.status, outcome.reply);
//! conn.quit()?;
//! # Ok(())
//! # }
//! ```
//!
//! `examples/blocking_send.rs` sends standard input this way.
//!
//! # TLS
//! [`tls`] builds rustls configurations with the `ring` provider: client ones from the
//! webpki roots, a CA file, or an explicit insecure mode; server ones from PEM files or a
//! self-signed certificate. It is [`smtp_tls`], the same as the tokio adapter's.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod client;
mod control;
mod host;
mod server;
mod session;
mod stream;
pub mod tls;

pub use client::{Connection, Connector, ConnectorBuilder, DEFAULT_BODY_CHUNK, Error, Transcript};
pub use host::{Backend, ConnectInfo, Context, Decision, SessionHandler};
pub use server::{Builder, Server, ShutdownHandle};
pub use smtp_proto::server::host::{ListenerAddr, SetupError};
pub use tls::{TlsError, Verification};
