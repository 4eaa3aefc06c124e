//! Sans-I/O SMTP, ESMTP and LMTP.
//!
//! This crate is the protocol and nothing else: it never touches a socket, never reads a
//! clock, never spawns a task. Bytes go in as `&[u8]`, time goes in as an `Instant`
//! argument, and everything that must leave (bytes to send, events for the host, the next
//! deadline) comes out of a `poll_*` method. Adapters (`smtp-tokio`, `smtp-blocking`) are
//! thin loops around it.
//!
//! # Layers
//! - The codec: [`Command`] and [`Reply`] parse and serialize every command and reply of
//!   RFC 5321 and its extensions; [`address`] holds the mailbox grammar, [`params`] the
//!   MAIL/RCPT parameters, [`ehlo`] the EHLO capabilities, [`data`] dot-stuffing in both
//!   directions, [`sasl`] the AUTH mechanisms.
//! - Framing: [`LineFramer`] finds complete lines within the RFC 5321 §4.5.3.1 limits, so
//!   the parsers only ever see whole lines and never need "incomplete" tricks.
//!
//! # Parsing a command
//! ```
//! use smtp_proto::{Command, ReversePath};
//! let cmd = Command::parse(b"MAIL FROM:<alice@example.org> SIZE=1024 BODY=8BITMIME\r\n").unwrap();
//! let Command::Mail { from, params } = &cmd else { unreachable!() };
//! assert_eq!(from.to_string(), "<alice@example.org>");
//! assert_eq!(params.size, Some(1024));
//! // Serializing gives canonical bytes that parse back to the same value.
//! assert_eq!(Command::parse(&cmd.to_bytes()).unwrap(), cmd);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod address;
pub mod client;
pub mod command;
pub mod data;
pub mod ehlo;
pub mod error;
pub mod line;
pub mod params;
pub mod reply;
pub mod sasl;
pub mod secret;
pub mod server;
mod verb;

pub use address::{
    AddressLiteral, Domain, ForwardPath, GeneralLiteral, Host, Mailbox, ReversePath,
};
pub use command::{Command, CommandDecoder, Decoded, InitialResponse, ParseOptions, Text, Verb};
pub use data::{BareLineEndings, DataDecoder, DataError, DotStuffer, LineNormalizer, LongLines};
pub use ehlo::{Capabilities, EhloError};
pub use error::{AddressError, BuildError, CommandError, ParamError};
pub use line::{Line, LineFramer};
pub use params::{
    BodyType, ByMode, DeliverBy, MailAuth, MailParams, Notify, Orcpt, Param, RcptParams, Ret, XText,
};
pub use reply::{EnhancedCode, Reply, ReplyCode, ReplyDecoder, ReplyError, ReplyLimits};
pub use secret::Secret;
