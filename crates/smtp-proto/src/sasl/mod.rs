//! SASL authentication for the SMTP AUTH extension (RFC 4954), as pure codecs for both sides.
//!
//! AUTH carries opaque SASL messages (RFC 4422) in `334` continuation replies and base64
//! lines. This module owns what is inside those messages for the mechanisms SMTP meets in
//! practice: PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login), CRAM-MD5 (RFC 2195),
//! XOAUTH2 (Google's) and OAUTHBEARER (RFC 7628). It never sees a socket or a line
//! terminator, never reads a clock and never draws a random number: the one value that needs
//! both, the CRAM-MD5 challenge, is handed in by the host.
//!
//! # Pieces
//! - [`Mechanism`]: the names, parsed case-insensitively, printed in canonical upper case;
//!   [`select_mechanism`] is the client's choice among those a server offers.
//! - Server: [`ServerExchange`] turns the client's decoded responses into a [`Step`]: a
//!   challenge to send, [`Credentials`] for the host to check, or a [`SaslError`] that
//!   knows its reply ([`SaslError::reply`]). Checking a password is the host's business
//!   ([`Credentials::verify`] does the comparison in constant time).
//! - Client: [`ClientExchange`] builds the initial response and answers challenges from
//!   [`ClientCredentials`].
//! - Wire helpers: [`decode_initial_response`] and [`decode_response`] for what the client
//!   sends, [`encode_base64`] and [`decode_base64`] for the rest; the reply constants
//!   ([`AUTH_SUCCEEDED`] and its neighbours) for what the server answers.
//!
//! Every value that holds a password, a token or a whole response travels in a
//! [`Secret`], so a `{:?}` in a log line shows `[redacted]`.
//!
//! # Files
//! Here: the limits, the reply constants, [`SaslError`], [`Credentials`] and the identity
//! and password rules every mechanism shares. Beside it, from the bottom up:
//! `mechanism.rs` (the names), `wire.rs` (base64 and the `*` line), one file per mechanism
//! with its grammar on both sides (`plain.rs`, `login.rs`, `cram_md5.rs`, `xoauth2.rs`,
//! `oauthbearer.rs`, and `oauth.rs` for what the last two share), then the two exchanges,
//! `server.rs` and `client.rs` (with the client's choice of mechanism). None of these
//! imports one listed after it.
//!
//! # Server side
//! ```
//! use smtp_proto::sasl::{decode_initial_response, Mechanism, ServerExchange, Step};
//! // C: AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm   (RFC 4616 §4)
//! let ir = decode_initial_response(b"AHRpbQB0YW5zdGFhZnRhbnN0YWFm").unwrap();
//! let (_exchange, step) = ServerExchange::start(Mechanism::Plain, Some(ir.expose()), String::new);
//! let Step::Done(credentials) = step else { panic!("PLAIN finishes in one message") };
//! assert_eq!(credentials.identity(), Some("tim"));
//! assert!(credentials.verify("tanstaaftanstaaf")); // the host looks the password up
//! ```
//!
//! # Client side
//! ```
//! use smtp_proto::sasl::{ClientCredentials, ClientExchange, Mechanism};
//! let creds = ClientCredentials::password("tim", "tanstaaftanstaaf");
//! let mut client = ClientExchange::new(Mechanism::CramMd5, &creds).unwrap();
//! assert!(client.initial_response().is_none()); // CRAM-MD5 waits for the server
//! // S: 334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+   (RFC 2195 §2)
//! let reply = client
//!     .challenge_base64(b"PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+")
//!     .unwrap();
//! assert_eq!(reply.expose(), "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw");
//! ```

use subtle::ConstantTimeEq;

use crate::reply::{EnhancedCode, Reply};
use crate::secret::Secret;

mod client;
mod cram_md5;
mod login;
mod mechanism;
mod oauth;
mod oauthbearer;
mod plain;
mod server;
mod wire;
mod xoauth2;

pub use client::{ClientCredentials, ClientExchange, preference_order, select_mechanism};
pub use cram_md5::cram_md5_challenge;
pub use login::{LOGIN_PASSWORD_PROMPT, LOGIN_USERNAME_PROMPT};
pub use mechanism::Mechanism;
pub use oauthbearer::oauth_error_challenge;
pub use server::{ServerExchange, Step};
pub use wire::{
    Response, decode_base64, decode_initial_response, decode_response, encode_base64,
    encode_initial_response,
};

// ---------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------

/// Longest mechanism name: `sasl-mech = 1*20mech-char` (RFC 4422 §3.1).
pub const MAX_MECHANISM_NAME_LEN: usize = 20;

/// Longest identity (user name, authorization identity, OAUTHBEARER host), in octets.
///
/// RFC 4616 §2 requires servers to accept up to 255 octets for authcid and authzid; we
/// accept exactly that much on both sides, which also bounds what reaches a `Received:`
/// header or a log line.
pub const MAX_IDENTITY_LEN: usize = 255;

/// Longest password, in octets: RFC 4616 §2's 255, applied to every password mechanism so
/// that one password works with all of them.
pub const MAX_PASSWORD_LEN: usize = 255;

/// Longest AUTH command line the client builds with an initial response, CRLF included.
///
/// RFC 4954 §4: the AUTH command stays within the SMTP command line limit of 512 octets
/// (RFC 5321 §4.5.3.1.4); when the initial response would not fit, the client must leave it
/// out and send it after the server's empty challenge (RFC 4422 §5).
pub const MAX_AUTH_COMMAND_LEN: usize = 512;

/// Longest client response line (base64 text, CRLF excluded) a server must accept during
/// an AUTH exchange: RFC 4954 §4 raises the limit to 12288 octets for these lines. The line
/// framer enforces it; it is here so that both sides quote the same number.
pub const MAX_RESPONSE_LINE_LEN: usize = 12288;

/// The line a client sends to abandon an exchange (RFC 4954 §4).
pub const CANCEL: &str = "*";

// ---------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------

/// A constant AUTH reply with its enhanced status code.
const fn auth_reply(code: u16, enhanced: (u8, u16, u16), text: &'static str) -> Reply {
    Reply::constant(
        code,
        Some(EnhancedCode::of(enhanced.0, enhanced.1, enhanced.2)),
        text,
    )
}

/// `235 2.7.0`: the exchange succeeded and the host accepted the credentials (RFC 4954 §6).
pub const AUTH_SUCCEEDED: Reply = auth_reply(235, (2, 7, 0), "Authentication successful");
/// `535 5.7.8`: the credentials are wrong or the response made no sense (RFC 4954 §6).
pub const AUTH_INVALID_CREDENTIALS: Reply =
    auth_reply(535, (5, 7, 8), "Authentication credentials invalid");
/// `501 5.7.0`: the client cancelled with `*` (RFC 4954 §4).
pub const AUTH_CANCELLED: Reply = auth_reply(501, (5, 7, 0), "Authentication cancelled");
/// `501 5.5.2`: a client response was not valid base64 (RFC 4954 §4).
pub const AUTH_INVALID_BASE64: Reply =
    auth_reply(501, (5, 5, 2), "Cannot Base64-decode client response");
/// `504 5.5.4`: the mechanism is unknown or not offered (RFC 4954 §4).
pub const AUTH_UNRECOGNIZED_MECHANISM: Reply =
    auth_reply(504, (5, 5, 4), "Unrecognized authentication type");
/// `538 5.7.11`: the mechanism would expose credentials without TLS (RFC 4954 §6).
pub const AUTH_ENCRYPTION_REQUIRED: Reply = auth_reply(
    538,
    (5, 7, 11),
    "Encryption required for requested authentication mechanism",
);
/// `530 5.7.0`: the command needs an authenticated session (RFC 4954 §6).
pub const AUTH_REQUIRED: Reply = auth_reply(530, (5, 7, 0), "Authentication required");
/// `454 4.7.0`: the server could not finish for a local reason; the client may retry
/// later (RFC 4954 §6).
pub const AUTH_TEMPORARY_FAILURE: Reply =
    auth_reply(454, (4, 7, 0), "Temporary authentication failure");
/// `534 5.7.9`: policy forbids this mechanism for this user (RFC 4954 §6).
pub const AUTH_MECHANISM_TOO_WEAK: Reply =
    auth_reply(534, (5, 7, 9), "Authentication mechanism is too weak");
/// `503 5.5.1`: AUTH after a successful AUTH (RFC 4954 §4 forbids a second one).
pub const AUTH_ALREADY_AUTHENTICATED: Reply =
    auth_reply(503, (5, 5, 1), "Error: already authenticated");
/// `500 5.5.6`: a response line exceeded [`MAX_RESPONSE_LINE_LEN`] (RFC 4954 §6).
pub const AUTH_LINE_TOO_LONG: Reply =
    auth_reply(500, (5, 5, 6), "Authentication Exchange line is too long");

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Why an exchange failed.
///
/// The variants say who erred: the client (seen by a server), the server (seen by a
/// client), or the caller of this module. [`SaslError::reply`] gives the reply a server
/// sends for each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SaslError {
    /// Client: a response was not valid base64 (standard alphabet, canonical padding).
    #[error("invalid base64 in an authentication exchange")]
    Base64,
    /// Client: it sent `*` to abandon the exchange (RFC 4954 §4).
    #[error("authentication cancelled by the client")]
    Cancelled,
    /// Client: the decoded response breaks the mechanism's grammar.
    #[error("malformed {mechanism} response: {reason}")]
    Malformed {
        /// The mechanism whose grammar was broken.
        mechanism: &'static str,
        /// What was wrong, for logs.
        reason: &'static str,
    },
    /// Client: it sent an initial response to a mechanism where the server speaks first
    /// (CRAM-MD5, RFC 2195 §2; RFC 4422 §3.3).
    #[error("initial response not allowed for {0}")]
    UnexpectedInitialResponse(&'static str),
    /// Client or caller: a mechanism this module does not implement.
    #[error("unsupported authentication mechanism {0}")]
    UnsupportedMechanism(String),
    /// Client or caller: a name that is not a `sasl-mech` (RFC 4422 §3.1).
    #[error("invalid authentication mechanism name")]
    InvalidMechanismName,
    /// Host: it refused the credentials the exchange produced ([`ServerExchange::reject`]).
    #[error("authentication credentials rejected")]
    Rejected,
    /// Server: a challenge arrived when the mechanism expects none, or one that does not
    /// fit the step (LOGIN asking for the user name twice).
    #[error("unexpected challenge from the server")]
    UnexpectedChallenge,
    /// Server: a challenge that cannot be answered (an empty CRAM-MD5 challenge).
    #[error("malformed challenge from the server: {0}")]
    MalformedChallenge(&'static str),
    /// Caller: the credentials cannot be sent (empty, too long, control characters, a NUL
    /// in a password, a token that is not a bearer token).
    #[error("invalid credentials: {0}")]
    InvalidCredentials(&'static str),
    /// Caller: password credentials for a token mechanism, or the other way round.
    #[error("credentials of the wrong kind for {0}")]
    WrongCredentials(&'static str),
    /// Caller: the CRAM-MD5 challenge it supplied is not an RFC 5322 msg-id
    /// (`<random.timestamp@hostname>`, RFC 2195 §2).
    #[error("invalid CRAM-MD5 challenge")]
    InvalidChallenge,
    /// Caller: input fed to an exchange that has already finished.
    #[error("the authentication exchange has already finished")]
    ExchangeFinished,
}

impl SaslError {
    /// The reply a server sends when its exchange ends with this error.
    ///
    /// A malformed response gets the same `535` as a wrong password, so that a prober learns
    /// nothing about which part it got wrong. Errors of the host itself get `454`, which
    /// tells the client to try again later rather than to give up.
    pub fn reply(&self) -> Reply {
        match self {
            SaslError::Base64 => AUTH_INVALID_BASE64,
            SaslError::Cancelled => AUTH_CANCELLED,
            SaslError::Malformed { .. }
            | SaslError::UnexpectedInitialResponse(_)
            | SaslError::Rejected => AUTH_INVALID_CREDENTIALS,
            SaslError::UnsupportedMechanism(_) | SaslError::InvalidMechanismName => {
                AUTH_UNRECOGNIZED_MECHANISM
            }
            SaslError::UnexpectedChallenge
            | SaslError::MalformedChallenge(_)
            | SaslError::InvalidCredentials(_)
            | SaslError::WrongCredentials(_)
            | SaslError::InvalidChallenge
            | SaslError::ExchangeFinished => AUTH_TEMPORARY_FAILURE,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Credentials, as the server received them
// ---------------------------------------------------------------------------------------

/// What the client presented, for the host to check against its user store.
///
/// Identities are valid UTF-8 of at most [`MAX_IDENTITY_LEN`] octets without control
/// characters (so they can go into a `Received:` header or a log line as they are); every
/// password, digest and token is in a [`Secret`]. Authorising the `authzid` (may this user
/// act as that one?) is the host's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials {
    /// PLAIN (RFC 4616 §2).
    Plain {
        /// The identity to act as; empty when the client wants its own (RFC 4616 §2).
        authzid: String,
        /// The identity whose password this is.
        authcid: String,
        /// The password.
        password: Secret<String>,
    },
    /// LOGIN (draft-murchison-sasl-login).
    Login {
        /// The user name.
        username: String,
        /// The password.
        password: Secret<String>,
    },
    /// CRAM-MD5 (RFC 2195 §2): check with [`Credentials::verify`].
    CramMd5 {
        /// The user name.
        username: String,
        /// The challenge the server sent, needed to recompute the digest.
        challenge: String,
        /// HMAC-MD5(password, challenge) as 32 lower-case hex digits.
        digest: Secret<String>,
    },
    /// XOAUTH2 (Google's format): check the token with the authorization server.
    XOAuth2 {
        /// The `user=` value.
        user: String,
        /// The bearer token.
        token: Secret<String>,
    },
    /// OAUTHBEARER (RFC 7628 §3.1): check the token with the authorization server.
    OAuthBearer {
        /// The `a=` of the GS2 header, when the client gave one.
        authzid: Option<String>,
        /// The `host=` pair: where the client thinks it connected.
        host: Option<String>,
        /// The `port=` pair.
        port: Option<u16>,
        /// The bearer token of the `auth=` pair.
        token: Secret<String>,
    },
}

impl Credentials {
    /// The mechanism that produced these credentials.
    pub fn mechanism(&self) -> Mechanism {
        match self {
            Credentials::Plain { .. } => Mechanism::Plain,
            Credentials::Login { .. } => Mechanism::Login,
            Credentials::CramMd5 { .. } => Mechanism::CramMd5,
            Credentials::XOAuth2 { .. } => Mechanism::XOAuth2,
            Credentials::OAuthBearer { .. } => Mechanism::OAuthBearer,
        }
    }

    /// The identity the client claims to be: authcid, user name, XOAUTH2 `user`, or the
    /// OAUTHBEARER authzid (whose real identity is inside the token).
    pub fn identity(&self) -> Option<&str> {
        match self {
            Credentials::Plain { authcid, .. } => Some(authcid),
            Credentials::Login { username, .. } | Credentials::CramMd5 { username, .. } => {
                Some(username)
            }
            Credentials::XOAuth2 { user, .. } => Some(user),
            Credentials::OAuthBearer { authzid, .. } => authzid.as_deref(),
        }
    }

    /// The identity the client asks to act as, when it named one (RFC 4422 §2).
    pub fn authorization_identity(&self) -> Option<&str> {
        match self {
            Credentials::Plain { authzid, .. } if !authzid.is_empty() => Some(authzid),
            Credentials::OAuthBearer { authzid, .. } => authzid.as_deref(),
            _ => None,
        }
    }

    /// Checks the stored password of [`Credentials::identity`] against what the client
    /// sent, in constant time for equal lengths.
    ///
    /// PLAIN and LOGIN compare the passwords; CRAM-MD5 recomputes HMAC-MD5(password,
    /// challenge) (RFC 2195 §2, RFC 2104) and compares the digests. Token credentials
    /// return `false`: a token is checked by the authorization server, not against a
    /// password.
    pub fn verify(&self, password: &str) -> bool {
        match self {
            Credentials::Plain { password: sent, .. }
            | Credentials::Login { password: sent, .. } => {
                bool::from(sent.expose().as_bytes().ct_eq(password.as_bytes()))
            }
            Credentials::CramMd5 {
                challenge, digest, ..
            } => cram_md5::verify(challenge, digest.expose(), password),
            Credentials::XOAuth2 { .. } | Credentials::OAuthBearer { .. } => false,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Identities and passwords, the same for every mechanism
// ---------------------------------------------------------------------------------------

/// An identity: UTF-8, at most [`MAX_IDENTITY_LEN`] octets, no control characters (NUL,
/// CR and LF above all: it may end up in a `Received:` header).
fn identity<'a>(
    bytes: &'a [u8],
    allow_empty: bool,
    mechanism: &'static str,
) -> Result<&'a str, SaslError> {
    check_identity(bytes, allow_empty).map_err(|reason| malformed(mechanism, reason))
}

fn check_identity(bytes: &[u8], allow_empty: bool) -> Result<&str, &'static str> {
    if bytes.is_empty() && !allow_empty {
        return Err("empty identity");
    }
    if bytes.len() > MAX_IDENTITY_LEN {
        return Err("identity longer than 255 octets");
    }
    if bytes.iter().any(u8::is_ascii_control) {
        return Err("control character in identity");
    }
    std::str::from_utf8(bytes).map_err(|_| "identity is not UTF-8")
}

/// A password: UTF-8, 1 to [`MAX_PASSWORD_LEN`] octets, no NUL (RFC 4616 §2).
fn password<'a>(bytes: &'a [u8], mechanism: &'static str) -> Result<&'a str, SaslError> {
    check_password(bytes).map_err(|reason| malformed(mechanism, reason))
}

fn check_password(bytes: &[u8]) -> Result<&str, &'static str> {
    if bytes.is_empty() {
        return Err("empty password");
    }
    if bytes.len() > MAX_PASSWORD_LEN {
        return Err("password longer than 255 octets");
    }
    if bytes.contains(&0) {
        return Err("NUL in password");
    }
    std::str::from_utf8(bytes).map_err(|_| "password is not UTF-8")
}

fn malformed(mechanism: &'static str, reason: &'static str) -> SaslError {
    SaslError::Malformed { mechanism, reason }
}
