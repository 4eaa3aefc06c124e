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

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use md5::Md5;
use subtle::ConstantTimeEq;

use crate::secret::Secret;

type HmacMd5 = Hmac<Md5>;

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

/// A reply as plain data: basic code, enhanced status code (RFC 3463) and text, so that this
/// module does not depend on the crate's reply type.
pub type ReplyParts = (u16, (u8, u16, u16), &'static str);

/// `235 2.7.0`: the exchange succeeded and the host accepted the credentials (RFC 4954 §6).
pub const AUTH_SUCCEEDED: ReplyParts = (235, (2, 7, 0), "Authentication successful");
/// `535 5.7.8`: the credentials are wrong or the response made no sense (RFC 4954 §6).
pub const AUTH_INVALID_CREDENTIALS: ReplyParts =
    (535, (5, 7, 8), "Authentication credentials invalid");
/// `501 5.7.0`: the client cancelled with `*` (RFC 4954 §4).
pub const AUTH_CANCELLED: ReplyParts = (501, (5, 7, 0), "Authentication cancelled");
/// `501 5.5.2`: a client response was not valid base64 (RFC 4954 §4).
pub const AUTH_INVALID_BASE64: ReplyParts =
    (501, (5, 5, 2), "Cannot Base64-decode client response");
/// `504 5.5.4`: the mechanism is unknown or not offered (RFC 4954 §4).
pub const AUTH_UNRECOGNIZED_MECHANISM: ReplyParts =
    (504, (5, 5, 4), "Unrecognized authentication type");
/// `538 5.7.11`: the mechanism would expose credentials without TLS (RFC 4954 §6).
pub const AUTH_ENCRYPTION_REQUIRED: ReplyParts = (
    538,
    (5, 7, 11),
    "Encryption required for requested authentication mechanism",
);
/// `530 5.7.0`: the command needs an authenticated session (RFC 4954 §6).
pub const AUTH_REQUIRED: ReplyParts = (530, (5, 7, 0), "Authentication required");
/// `454 4.7.0`: the server could not finish for a local reason; the client may retry
/// later (RFC 4954 §6).
pub const AUTH_TEMPORARY_FAILURE: ReplyParts = (454, (4, 7, 0), "Temporary authentication failure");
/// `534 5.7.9`: policy forbids this mechanism for this user (RFC 4954 §6).
pub const AUTH_MECHANISM_TOO_WEAK: ReplyParts =
    (534, (5, 7, 9), "Authentication mechanism is too weak");
/// `503 5.5.1`: AUTH after a successful AUTH (RFC 4954 §4 forbids a second one).
pub const AUTH_ALREADY_AUTHENTICATED: ReplyParts = (503, (5, 5, 1), "Already authenticated");
/// `500 5.5.6`: a response line exceeded [`MAX_RESPONSE_LINE_LEN`] (RFC 4954 §6).
pub const AUTH_LINE_TOO_LONG: ReplyParts =
    (500, (5, 5, 6), "Authentication Exchange line is too long");

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
    pub fn reply(&self) -> ReplyParts {
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
// Mechanism names
// ---------------------------------------------------------------------------------------

/// A SASL mechanism name as it appears in `AUTH` and in the EHLO `AUTH` keyword.
///
/// Built by [`Mechanism::parse`], which accepts any case and stores the canonical upper
/// case, so two names compare equal exactly when they name the same mechanism. `Other`
/// holds such a canonical name; build it through `parse` so that it stays a valid
/// `sasl-mech` (RFC 4422 §3.1) and can never inject into a command line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// `PLAIN`, RFC 4616: identities and password in one message.
    Plain,
    /// `LOGIN`, draft-murchison-sasl-login: user name and password in two answers.
    Login,
    /// `CRAM-MD5`, RFC 2195: an HMAC-MD5 of a server challenge keyed by the password.
    CramMd5,
    /// `XOAUTH2`, Google's bearer-token mechanism (predates OAUTHBEARER, still common).
    XOAuth2,
    /// `OAUTHBEARER`, RFC 7628: the standard bearer-token mechanism.
    OAuthBearer,
    /// Any other valid name, upper case (SCRAM-SHA-256, GSSAPI, ...): recognised and
    /// reported, not implemented here.
    Other(String),
}

impl Mechanism {
    /// Parses a `sasl-mech` (RFC 4422 §3.1): 1 to 20 of `A-Z 0-9 - _`.
    ///
    /// Lower case is accepted because clients send it (RFC 4954 §4 treats the name
    /// case-insensitively); the result is upper case.
    pub fn parse(name: &str) -> Result<Self, SaslError> {
        let valid = !name.is_empty()
            && name.len() <= MAX_MECHANISM_NAME_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(SaslError::InvalidMechanismName);
        }
        let upper = name.to_ascii_uppercase();
        Ok(match upper.as_str() {
            "PLAIN" => Mechanism::Plain,
            "LOGIN" => Mechanism::Login,
            "CRAM-MD5" => Mechanism::CramMd5,
            "XOAUTH2" => Mechanism::XOAuth2,
            "OAUTHBEARER" => Mechanism::OAuthBearer,
            _ => Mechanism::Other(upper),
        })
    }

    /// The canonical (upper-case) name.
    pub fn as_str(&self) -> &str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::XOAuth2 => "XOAUTH2",
            Mechanism::OAuthBearer => "OAUTHBEARER",
            Mechanism::Other(name) => name,
        }
    }

    /// Whether this module implements the mechanism on both sides.
    pub fn is_supported(&self) -> bool {
        !matches!(self, Mechanism::Other(_))
    }

    /// Whether the password crosses the wire as it is (base64 is no protection).
    ///
    /// RFC 4954 §4 and RFC 8314 §5.1: a server must not offer these, nor a client use
    /// them, on a connection without TLS unless explicitly configured to.
    pub fn sends_password_in_clear(&self) -> bool {
        matches!(self, Mechanism::Plain | Mechanism::Login)
    }

    /// Whether a passive listener could replay what the client sends: the cleartext
    /// password mechanisms and the bearer-token ones (RFC 7628 §5 requires TLS for the
    /// latter). A server answers [`AUTH_ENCRYPTION_REQUIRED`] for these before TLS.
    pub fn requires_tls(&self) -> bool {
        matches!(
            self,
            Mechanism::Plain | Mechanism::Login | Mechanism::XOAuth2 | Mechanism::OAuthBearer
        )
    }

    /// Whether the mechanism authenticates with a bearer token rather than a password.
    pub fn uses_token(&self) -> bool {
        matches!(self, Mechanism::XOAuth2 | Mechanism::OAuthBearer)
    }

    /// Whether the client speaks first, so that its first message can ride on the AUTH
    /// command as an initial response (RFC 4422 §3.3, RFC 4954 §4).
    pub fn is_client_first(&self) -> bool {
        matches!(
            self,
            Mechanism::Plain | Mechanism::XOAuth2 | Mechanism::OAuthBearer
        )
    }

    /// The name for errors; only implemented mechanisms reach the parsers.
    fn static_name(&self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::XOAuth2 => "XOAUTH2",
            Mechanism::OAuthBearer => "OAUTHBEARER",
            Mechanism::Other(_) => "unsupported",
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mechanism {
    type Err = SaslError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mechanism::parse(s)
    }
}

/// With TLS (or cleartext explicitly allowed) and a password: PLAIN first, because on an
/// encrypted channel it is as safe as any password mechanism and needs no plaintext password
/// store on the server; LOGIN for servers that offer nothing else; CRAM-MD5 last, since it
/// forces the server to keep plaintext passwords and is being moved to Historic
/// (draft-ietf-sasl-crammd5-to-historic; RFC 8314 prefers TLS plus PLAIN).
static PASSWORD_SECURE: [Mechanism; 3] = [Mechanism::Plain, Mechanism::Login, Mechanism::CramMd5];
/// Without TLS only CRAM-MD5 keeps the password off the wire.
static PASSWORD_CLEARTEXT: [Mechanism; 1] = [Mechanism::CramMd5];
/// With a token: the standard first (RFC 7628), Google's older XOAUTH2 second.
static TOKEN_SECURE: [Mechanism; 2] = [Mechanism::OAuthBearer, Mechanism::XOAuth2];

/// The mechanisms a client will use with these credentials, strongest first.
///
/// `cleartext_ok` is true when TLS is active, or when the caller has explicitly allowed
/// credentials on an unencrypted connection. Without it, a token is never sent (a bearer
/// token is as good as a password, RFC 7628 §5) and a password only through CRAM-MD5.
pub fn preference_order(
    credentials: &ClientCredentials,
    cleartext_ok: bool,
) -> &'static [Mechanism] {
    match (credentials, cleartext_ok) {
        (ClientCredentials::Password { .. }, true) => &PASSWORD_SECURE,
        (ClientCredentials::Password { .. }, false) => &PASSWORD_CLEARTEXT,
        (ClientCredentials::Token { .. }, true) => &TOKEN_SECURE,
        (ClientCredentials::Token { .. }, false) => &[],
    }
}

/// Picks the first mechanism of [`preference_order`] that the server offers in its EHLO
/// `AUTH` keyword, or `None` when there is none the client may use.
pub fn select_mechanism(
    offered: &[Mechanism],
    credentials: &ClientCredentials,
    cleartext_ok: bool,
) -> Option<Mechanism> {
    preference_order(credentials, cleartext_ok)
        .iter()
        .find(|m| offered.contains(m))
        .cloned()
}

// ---------------------------------------------------------------------------------------
// Base64 on the wire
// ---------------------------------------------------------------------------------------

/// Encodes a challenge or response for the wire (RFC 4954 §4: base64, RFC 4648 §4, with
/// padding).
pub fn encode_base64(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// Decodes base64 from the wire strictly: standard alphabet, canonical padding, no
/// whitespace, so that one message has one encoding.
pub fn decode_base64(text: &[u8]) -> Result<Vec<u8>, SaslError> {
    STANDARD.decode(text).map_err(|_| SaslError::Base64)
}

/// Encodes an initial response for the AUTH command: an empty one is written `=` (RFC 4954
/// §4), since an empty argument would mean "no initial response".
pub fn encode_initial_response(data: &[u8]) -> String {
    if data.is_empty() {
        String::from("=")
    } else {
        encode_base64(data)
    }
}

/// Decodes the initial-response argument of `AUTH <mechanism> <initial-response>`.
///
/// `=` stands for an empty response (RFC 4954 §4); anything else must be base64. An empty
/// argument is an error: it is not how an empty response is written.
pub fn decode_initial_response(argument: &[u8]) -> Result<Secret<Vec<u8>>, SaslError> {
    match argument {
        b"=" => Ok(Secret::new(Vec::new())),
        b"" => Err(SaslError::Base64),
        text => decode_base64(text).map(Secret::new),
    }
}

/// What a client sent on a continuation line of an AUTH exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The decoded response; it may hold a password, hence the [`Secret`].
    Data(Secret<Vec<u8>>),
    /// The line `*`: the client abandons the exchange (RFC 4954 §4); the server answers
    /// [`AUTH_CANCELLED`].
    Cancel,
}

/// Decodes a client line sent in answer to a `334` challenge (RFC 4954 §4).
///
/// `line` is the line without its CRLF (a trailing CRLF is tolerated). `*` alone is
/// [`Response::Cancel`]; an empty line is an empty response; anything else must be base64,
/// or the error is [`SaslError::Base64`] (the server answers [`AUTH_INVALID_BASE64`]).
/// Unlike the initial response, `=` is not special here.
pub fn decode_response(line: &[u8]) -> Result<Response, SaslError> {
    let line = line.strip_suffix(b"\r\n").unwrap_or(line);
    if line == CANCEL.as_bytes() {
        return Ok(Response::Cancel);
    }
    decode_base64(line).map(|data| Response::Data(Secret::new(data)))
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
            } => {
                let Some(expected) = decode_hex16(digest.expose()) else {
                    return false;
                };
                let mut mac = hmac_md5(password.as_bytes());
                mac.update(challenge.as_bytes());
                mac.verify_slice(&expected).is_ok()
            }
            Credentials::XOAuth2 { .. } | Credentials::OAuthBearer { .. } => false,
        }
    }
}

/// Builds a CRAM-MD5 challenge `<random.timestamp@hostname>` (RFC 2195 §2 asks for an
/// RFC 822 msg-id made of random digits, a timestamp and the server's host name).
///
/// The core has no randomness and no clock, so the host passes both in. A host name with
/// characters that a msg-id cannot hold is refused.
pub fn cram_md5_challenge(
    random: u64,
    timestamp: u64,
    hostname: &str,
) -> Result<String, SaslError> {
    let ok = !hostname.is_empty()
        && hostname.len() <= MAX_IDENTITY_LEN
        && hostname
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"<>@".contains(&b));
    if !ok {
        return Err(SaslError::InvalidChallenge);
    }
    Ok(format!("<{random}.{timestamp}@{hostname}>"))
}

/// Builds the JSON error a server sends as its last challenge when it refuses a bearer
/// token (RFC 7628 §3.2.2): `{"status":...,"scope":...,"openid-configuration":...}`.
///
/// Pass it to [`ServerExchange::reject`]. Strings are JSON-escaped.
pub fn oauth_error_challenge(
    status: &str,
    scope: Option<&str>,
    openid_configuration: Option<&str>,
) -> Vec<u8> {
    let mut json = String::from("{");
    push_json_member(&mut json, "status", status);
    if let Some(scope) = scope {
        json.push(',');
        push_json_member(&mut json, "scope", scope);
    }
    if let Some(url) = openid_configuration {
        json.push(',');
        push_json_member(&mut json, "openid-configuration", url);
    }
    json.push('}');
    json.into_bytes()
}

fn push_json_member(json: &mut String, key: &str, value: &str) {
    for (i, s) in [key, value].into_iter().enumerate() {
        if i == 1 {
            json.push(':');
        }
        json.push('"');
        for c in s.chars() {
            match c {
                '"' => json.push_str("\\\""),
                '\\' => json.push_str("\\\\"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    json.push_str(&format!("\\u{:04x}", c as u32));
                }
                c => json.push(c),
            }
        }
        json.push('"');
    }
}

// ---------------------------------------------------------------------------------------
// Server side
// ---------------------------------------------------------------------------------------

/// What the server does next in an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Step {
    /// Send `334 ` followed by the base64 of these bytes ([`encode_base64`]; empty bytes
    /// give `334 ` with nothing after the space), then feed the client's answer to
    /// [`ServerExchange::handle_line`] or [`ServerExchange::respond`].
    Challenge(Vec<u8>),
    /// The client has said everything: check these credentials, then answer
    /// [`AUTH_SUCCEEDED`] or call [`ServerExchange::reject`].
    Done(Credentials),
    /// The exchange is over; answer [`SaslError::reply`].
    Failed(SaslError),
}

/// The server half of one AUTH exchange: a small state machine fed with the client's
/// decoded responses.
///
/// - Input: [`ServerExchange::start`] with the AUTH command's mechanism and initial
///   response; then each client line through [`ServerExchange::handle_line`] (base64 and
///   `*` handled) or, already decoded, [`ServerExchange::respond`].
/// - Decision: [`ServerExchange::reject`] when the host refuses the credentials of
///   [`Step::Done`]; for the token mechanisms this sends the error challenge the client
///   must acknowledge before the `535`.
/// - Every input returns the next [`Step`]; after [`Step::Failed`], and after an accepted
///   [`Step::Done`], the exchange is finished and further input fails with
///   [`SaslError::ExchangeFinished`].
#[derive(Debug)]
pub struct ServerExchange {
    mechanism: Mechanism,
    state: ServerState,
}

#[derive(Debug)]
enum ServerState {
    /// PLAIN, XOAUTH2, OAUTHBEARER after the empty challenge (RFC 4422 §5).
    AwaitingMessage,
    /// LOGIN after `Username:`.
    LoginUsername,
    /// LOGIN after `Password:`.
    LoginPassword {
        username: String,
    },
    /// CRAM-MD5 after the challenge.
    CramMd5 {
        challenge: String,
    },
    /// Credentials handed to the host, which may still reject them.
    Done,
    /// Token mechanisms: the error challenge went out; waiting for the client's dummy
    /// response (RFC 7628 §3.2.3).
    ErrorSent,
    Finished,
}

/// LOGIN's first challenge (draft-murchison-sasl-login §2); base64 `VXNlcm5hbWU6`.
pub const LOGIN_USERNAME_PROMPT: &[u8] = b"Username:";
/// LOGIN's second challenge; base64 `UGFzc3dvcmQ6`.
pub const LOGIN_PASSWORD_PROMPT: &[u8] = b"Password:";

impl ServerExchange {
    /// Starts an exchange for `AUTH <mechanism> [initial-response]`.
    ///
    /// `initial_response` is the decoded argument ([`decode_initial_response`]), `None`
    /// when the command had none. `challenge` is called only for CRAM-MD5 and must return a
    /// fresh msg-id such as [`cram_md5_challenge`] builds, since the core has no clock and
    /// no randomness.
    ///
    /// Policy comes before this call: refuse a mechanism the server did not offer with
    /// [`AUTH_UNRECOGNIZED_MECHANISM`], one that [`Mechanism::requires_tls`] before TLS
    /// with [`AUTH_ENCRYPTION_REQUIRED`].
    pub fn start(
        mechanism: Mechanism,
        initial_response: Option<&[u8]>,
        challenge: impl FnOnce() -> String,
    ) -> (Self, Step) {
        let mut exchange = ServerExchange {
            mechanism,
            state: ServerState::Finished,
        };
        let step = match (&exchange.mechanism, initial_response) {
            (Mechanism::Other(name), _) => {
                Step::Failed(SaslError::UnsupportedMechanism(name.clone()))
            }
            // RFC 4616 §2 / RFC 4422 §5: without an initial response the server sends an
            // empty challenge and the client answers with its message.
            (Mechanism::Plain | Mechanism::XOAuth2 | Mechanism::OAuthBearer, None) => {
                exchange.state = ServerState::AwaitingMessage;
                Step::Challenge(Vec::new())
            }
            (Mechanism::Plain | Mechanism::XOAuth2 | Mechanism::OAuthBearer, Some(message)) => {
                exchange.client_message(message)
            }
            (Mechanism::Login, None) => {
                exchange.state = ServerState::LoginUsername;
                Step::Challenge(LOGIN_USERNAME_PROMPT.to_vec())
            }
            // Many clients send `AUTH LOGIN <base64 user name>`; it stands for the first
            // answer.
            (Mechanism::Login, Some(username)) => exchange.login_username(username),
            (Mechanism::CramMd5, Some(_)) => {
                Step::Failed(SaslError::UnexpectedInitialResponse("CRAM-MD5"))
            }
            (Mechanism::CramMd5, None) => {
                let text = challenge();
                if is_msg_id(&text) {
                    let bytes = text.as_bytes().to_vec();
                    exchange.state = ServerState::CramMd5 { challenge: text };
                    Step::Challenge(bytes)
                } else {
                    Step::Failed(SaslError::InvalidChallenge)
                }
            }
        };
        (exchange, step)
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> &Mechanism {
        &self.mechanism
    }

    /// Whether the exchange is waiting for a client response.
    pub fn wants_response(&self) -> bool {
        !matches!(self.state, ServerState::Done | ServerState::Finished)
    }

    /// Feeds one client line (CRLF stripped or not): decodes it with [`decode_response`],
    /// ends the exchange on `*` or bad base64 (RFC 4954 §4 rejects the AUTH command in
    /// both cases), and passes the data to [`ServerExchange::respond`].
    pub fn handle_line(&mut self, line: &[u8]) -> Step {
        if !self.wants_response() {
            return Step::Failed(SaslError::ExchangeFinished);
        }
        match decode_response(line) {
            Ok(Response::Data(data)) => self.respond(data.expose()),
            Ok(Response::Cancel) => self.fail(SaslError::Cancelled),
            Err(e) => self.fail(e),
        }
    }

    /// Feeds one decoded client response.
    pub fn respond(&mut self, response: &[u8]) -> Step {
        match std::mem::replace(&mut self.state, ServerState::Finished) {
            ServerState::AwaitingMessage => self.client_message(response),
            ServerState::LoginUsername => self.login_username(response),
            ServerState::LoginPassword { username } => {
                let result = password(response, "LOGIN").map(|password| Credentials::Login {
                    username,
                    password: Secret::new(password.to_owned()),
                });
                self.finish(result)
            }
            ServerState::CramMd5 { challenge } => {
                let result = parse_cram_md5(response, challenge);
                self.finish(result)
            }
            // Whatever the client says after the error challenge (RFC 7628 §3.2.3: a single
            // %x01; XOAUTH2: an empty line), the outcome is the same.
            ServerState::ErrorSent => Step::Failed(SaslError::Rejected),
            ServerState::Done | ServerState::Finished => {
                self.state = ServerState::Finished;
                Step::Failed(SaslError::ExchangeFinished)
            }
        }
    }

    /// The host refuses the credentials of [`Step::Done`].
    ///
    /// For PLAIN, LOGIN and CRAM-MD5 this is [`Step::Failed`] with
    /// [`SaslError::Rejected`]: answer `535`. For XOAUTH2 and OAUTHBEARER the server first
    /// sends an error challenge (RFC 7628 §3.2.2, Google's XOAUTH2 protocol), so this
    /// returns [`Step::Challenge`] with `error_challenge`, or a minimal JSON error when it
    /// is `None` (see [`oauth_error_challenge`]); the client's answer, fed in as usual,
    /// then fails with [`SaslError::Rejected`].
    pub fn reject(&mut self, error_challenge: Option<&[u8]>) -> Step {
        if !matches!(self.state, ServerState::Done) {
            return self.fail(SaslError::ExchangeFinished);
        }
        let default: &[u8] = match self.mechanism {
            Mechanism::XOAuth2 => br#"{"status":"401","schemes":"bearer"}"#,
            Mechanism::OAuthBearer => br#"{"status":"invalid_token"}"#,
            _ => return self.fail(SaslError::Rejected),
        };
        self.state = ServerState::ErrorSent;
        Step::Challenge(error_challenge.unwrap_or(default).to_vec())
    }

    fn fail(&mut self, error: SaslError) -> Step {
        self.state = ServerState::Finished;
        Step::Failed(error)
    }

    fn finish(&mut self, result: Result<Credentials, SaslError>) -> Step {
        match result {
            Ok(credentials) => {
                self.state = ServerState::Done;
                Step::Done(credentials)
            }
            Err(e) => self.fail(e),
        }
    }

    /// The one message of a client-first mechanism.
    fn client_message(&mut self, message: &[u8]) -> Step {
        let result = match self.mechanism {
            Mechanism::Plain => parse_plain(message),
            Mechanism::XOAuth2 => parse_xoauth2(message),
            Mechanism::OAuthBearer => parse_oauthbearer(message),
            _ => Err(SaslError::ExchangeFinished),
        };
        self.finish(result)
    }

    fn login_username(&mut self, response: &[u8]) -> Step {
        match identity(response, false, "LOGIN") {
            Ok(username) => {
                self.state = ServerState::LoginPassword {
                    username: username.to_owned(),
                };
                Step::Challenge(LOGIN_PASSWORD_PROMPT.to_vec())
            }
            Err(e) => self.fail(e),
        }
    }
}

/// `message = [authzid] UTF8NUL authcid UTF8NUL passwd` (RFC 4616 §2): exactly two NULs;
/// authcid and passwd 1 to 255 octets, authzid 0 to 255, all UTF-8.
fn parse_plain(message: &[u8]) -> Result<Credentials, SaslError> {
    const M: &str = "PLAIN";
    let mut parts = message.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(passwd), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed(M, "expected exactly two NUL separators"));
    };
    let authzid = identity(authzid, true, M)?;
    let authcid = identity(authcid, false, M)?;
    let passwd = password(passwd, M)?;
    Ok(Credentials::Plain {
        authzid: authzid.to_owned(),
        authcid: authcid.to_owned(),
        password: Secret::new(passwd.to_owned()),
    })
}

/// `response = username SP digest`, digest = 32 lower-case hex digits (RFC 2195 §2). The
/// user name may hold spaces, so the split is at the last one.
fn parse_cram_md5(response: &[u8], challenge: String) -> Result<Credentials, SaslError> {
    const M: &str = "CRAM-MD5";
    let Some(space) = response.iter().rposition(|&b| b == b' ') else {
        return Err(malformed(M, "expected user name, space and digest"));
    };
    let username = identity(&response[..space], false, M)?;
    let digest = &response[space + 1..];
    if digest.len() != 32
        || !digest
            .iter()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(malformed(M, "digest is not 32 lower-case hex digits"));
    }
    Ok(Credentials::CramMd5 {
        username: username.to_owned(),
        challenge,
        digest: Secret::new(String::from_utf8_lossy(digest).into_owned()),
    })
}

/// `user=` user `^A` `auth=Bearer ` token `^A^A` (Google's XOAUTH2 protocol). Unknown keys
/// are ignored; `user` and `auth` must each appear once.
fn parse_xoauth2(message: &[u8]) -> Result<Credentials, SaslError> {
    const M: &str = "XOAUTH2";
    let Some(body) = message.strip_suffix(b"\x01\x01") else {
        return Err(malformed(M, "must end with two ^A"));
    };
    let mut user = None;
    let mut token = None;
    for pair in body.split(|&b| b == 1) {
        let (key, value) = key_value(pair, M)?;
        match key {
            b"user" => set_once(&mut user, identity(value, false, M)?, M)?,
            b"auth" => set_once(&mut token, bearer(value, M)?, M)?,
            _ => {}
        }
    }
    match (user, token) {
        (Some(user), Some(token)) => Ok(Credentials::XOAuth2 {
            user: user.to_owned(),
            token: Secret::new(token.to_owned()),
        }),
        _ => Err(malformed(M, "user and auth are both required")),
    }
}

/// RFC 7628 §3.1:
/// ```text
/// client-resp = (gs2-header kvsep *kvpair kvsep) / kvsep
/// gs2-header  = gs2-cbind-flag "," [ gs2-authzid ] ","   ; RFC 5801 §4
/// kvpair      = key "=" value kvsep
/// kvsep       = %x01
/// key         = 1*(ALPHA)
/// value       = *(VCHAR / SP / HTAB / CR / LF)
/// ```
/// The lone-kvsep form only answers an error challenge and is handled there.
fn parse_oauthbearer(message: &[u8]) -> Result<Credentials, SaslError> {
    const M: &str = "OAUTHBEARER";
    // gs2-cbind-flag: "n" or "y"; "p=" would ask for channel binding, which OAUTHBEARER
    // does not support (RFC 7628 §3.1).
    let rest = match message {
        [b'n' | b'y', b',', rest @ ..] => rest,
        [b'p', b'=', ..] => return Err(malformed(M, "channel binding is not supported")),
        _ => return Err(malformed(M, "bad GS2 header")),
    };
    let Some(comma) = rest.iter().position(|&b| b == b',') else {
        return Err(malformed(M, "bad GS2 header"));
    };
    let authzid = match &rest[..comma] {
        [] => None,
        [b'a', b'=', name @ ..] => Some(saslname(name, M)?),
        _ => return Err(malformed(M, "bad GS2 header")),
    };
    let pairs = rest[comma + 1..]
        .strip_prefix(b"\x01")
        .and_then(|r| r.strip_suffix(b"\x01\x01"))
        .ok_or_else(|| malformed(M, "key/value pairs must follow ^A and end with ^A^A"))?;
    let mut host = None;
    let mut port = None;
    let mut token = None;
    for pair in pairs.split(|&b| b == 1) {
        let (key, value) = key_value(pair, M)?;
        if !value
            .iter()
            .all(|&b| b.is_ascii_graphic() || matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        {
            return Err(malformed(M, "value holds a forbidden character"));
        }
        match key {
            b"host" => set_once(&mut host, identity(value, false, M)?, M)?,
            b"port" => {
                let number = std::str::from_utf8(value)
                    .ok()
                    .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u16>().ok())
                    .ok_or_else(|| malformed(M, "port is not a number"))?;
                set_once(&mut port, number, M)?;
            }
            b"auth" => set_once(&mut token, bearer(value, M)?, M)?,
            // Other keys are extensions we do not know; skipping them keeps us compatible.
            _ => {}
        }
    }
    let token = token.ok_or_else(|| malformed(M, "auth is required"))?;
    Ok(Credentials::OAuthBearer {
        authzid,
        host: host.map(str::to_owned),
        port,
        token: Secret::new(token.to_owned()),
    })
}

/// `key "=" value`, key = 1*ALPHA (RFC 7628 §3.1; XOAUTH2 uses the same shape).
fn key_value<'a>(
    pair: &'a [u8],
    mechanism: &'static str,
) -> Result<(&'a [u8], &'a [u8]), SaslError> {
    let eq = pair
        .iter()
        .position(|&b| b == b'=')
        .ok_or_else(|| malformed(mechanism, "pair without ="))?;
    let (key, value) = (&pair[..eq], &pair[eq + 1..]);
    if key.is_empty() || !key.iter().all(u8::is_ascii_alphabetic) {
        return Err(malformed(mechanism, "bad key"));
    }
    Ok((key, value))
}

fn set_once<T>(slot: &mut Option<T>, value: T, mechanism: &'static str) -> Result<(), SaslError> {
    if slot.is_some() {
        return Err(malformed(mechanism, "key repeated"));
    }
    *slot = Some(value);
    Ok(())
}

/// `auth-value = "Bearer" 1*SP b64token` (RFC 7628 §3.1 via RFC 6750 §2.1; the scheme is
/// case-insensitive).
fn bearer<'a>(value: &'a [u8], mechanism: &'static str) -> Result<&'a str, SaslError> {
    let scheme_end = value
        .iter()
        .position(|&b| b == b' ')
        .ok_or_else(|| malformed(mechanism, "auth is not Bearer"))?;
    if !value[..scheme_end].eq_ignore_ascii_case(b"bearer") {
        return Err(malformed(mechanism, "auth is not Bearer"));
    }
    let token = value[scheme_end..].trim_ascii_start();
    if !is_token68(token) {
        return Err(malformed(mechanism, "bearer token is not a b64token"));
    }
    // is_token68 admits ASCII only.
    std::str::from_utf8(token).map_err(|_| malformed(mechanism, "bearer token is not a b64token"))
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="` (RFC 6750 §2.1).
fn is_token68(token: &[u8]) -> bool {
    let body_end = token.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    body_end > 0
        && token[..body_end]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(b))
}

/// `saslname` (RFC 5801 §4): `,` is written `=2C` and `=` is written `=3D`.
fn saslname(encoded: &[u8], mechanism: &'static str) -> Result<String, SaslError> {
    let mut decoded = Vec::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some((&b, tail)) = rest.split_first() {
        let (octet, tail) = match (b, tail) {
            (b'=', [b'2', b'C', tail @ ..]) => (b',', tail),
            (b'=', [b'3', b'D', tail @ ..]) => (b'=', tail),
            (b'=', _) => return Err(malformed(mechanism, "bad escape in authzid")),
            (b, tail) => (b, tail),
        };
        decoded.push(octet);
        rest = tail;
    }
    identity(&decoded, false, mechanism).map(str::to_owned)
}

fn encode_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

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

/// `<...@...>` of visible ASCII: the shape RFC 2195 §2 asks of a challenge.
fn is_msg_id(text: &str) -> bool {
    text.len() <= 2 * MAX_IDENTITY_LEN
        && text.starts_with('<')
        && text.ends_with('>')
        && text.len() > 2
        && text[1..text.len() - 1].contains('@')
        && text.bytes().all(|b| b.is_ascii_graphic())
}

fn malformed(mechanism: &'static str, reason: &'static str) -> SaslError {
    SaslError::Malformed { mechanism, reason }
}

fn hmac_md5(key: &[u8]) -> HmacMd5 {
    // HMAC takes keys of any length (RFC 2104 §2 hashes long ones), so this cannot fail.
    <HmacMd5 as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn decode_hex16(text: &str) -> Option<[u8; 16]> {
    fn nibble(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if bytes.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------

/// What a client authenticates with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCredentials {
    /// A user name and password, for PLAIN, LOGIN and CRAM-MD5.
    Password {
        /// An identity to act as (PLAIN only, RFC 4616 §2); `None` for one's own.
        authzid: Option<String>,
        /// The user name.
        username: String,
        /// The password.
        password: Secret<String>,
    },
    /// An OAuth 2.0 bearer token, for XOAUTH2 and OAUTHBEARER.
    Token {
        /// The account: XOAUTH2's `user=`, OAUTHBEARER's `a=` authzid.
        username: String,
        /// The access token (RFC 6750 §2.1 b64token).
        token: Secret<String>,
        /// OAUTHBEARER's `host=`: the server name the client connected to (RFC 7628 §3.1).
        host: Option<String>,
        /// OAUTHBEARER's `port=`.
        port: Option<u16>,
    },
}

impl ClientCredentials {
    /// Password credentials without an authorization identity.
    pub fn password(username: impl Into<String>, password: impl Into<String>) -> Self {
        ClientCredentials::Password {
            authzid: None,
            username: username.into(),
            password: Secret::new(password.into()),
        }
    }

    /// Token credentials without host and port.
    pub fn token(username: impl Into<String>, token: impl Into<String>) -> Self {
        ClientCredentials::Token {
            username: username.into(),
            token: Secret::new(token.into()),
            host: None,
            port: None,
        }
    }
}

/// The client half of one AUTH exchange.
///
/// - [`ClientExchange::new`] validates the credentials for the mechanism.
/// - [`ClientExchange::initial_response`] gives the AUTH command's argument for a
///   client-first mechanism, when it fits the command line.
/// - [`ClientExchange::challenge`] (decoded) or [`ClientExchange::challenge_base64`] (the
///   text of a `334` reply) answers each challenge. On an error the client sends
///   [`CANCEL`] and gives up.
/// - The outcome is the server's next non-334 reply, which this type does not see.
#[derive(Debug)]
pub struct ClientExchange {
    mechanism: Mechanism,
    state: ClientState,
    server_error: Option<Vec<u8>>,
}

#[derive(Debug)]
enum ClientState {
    /// A client-first message not sent yet: it goes out as the initial response or as the
    /// answer to the server's empty challenge (RFC 4422 §5).
    Pending(Secret<Vec<u8>>),
    /// The client-first message went out; only a token mechanism's error challenge may
    /// follow.
    Sent,
    LoginUsername {
        username: String,
        password: Secret<String>,
    },
    LoginPassword {
        password: Secret<String>,
    },
    CramMd5 {
        username: String,
        password: Secret<String>,
    },
    Finished,
}

impl ClientExchange {
    /// Prepares an exchange, checking that the credentials fit the mechanism and can be
    /// sent: identities at most [`MAX_IDENTITY_LEN`] octets without control characters,
    /// passwords 1 to [`MAX_PASSWORD_LEN`] octets without NUL, tokens RFC 6750 b64tokens.
    pub fn new(mechanism: Mechanism, credentials: &ClientCredentials) -> Result<Self, SaslError> {
        let invalid = SaslError::InvalidCredentials;
        let state = match (&mechanism, credentials) {
            (Mechanism::Other(name), _) => {
                return Err(SaslError::UnsupportedMechanism(name.clone()));
            }
            (
                Mechanism::Plain | Mechanism::Login | Mechanism::CramMd5,
                ClientCredentials::Password {
                    authzid,
                    username,
                    password,
                },
            ) => {
                check_identity(username.as_bytes(), false).map_err(invalid)?;
                check_password(password.expose().as_bytes()).map_err(invalid)?;
                let authzid = authzid.as_deref().unwrap_or("");
                check_identity(authzid.as_bytes(), true).map_err(invalid)?;
                match mechanism {
                    Mechanism::Plain => {
                        let mut message = Vec::with_capacity(
                            authzid.len() + username.len() + password.expose().len() + 2,
                        );
                        message.extend_from_slice(authzid.as_bytes());
                        message.push(0);
                        message.extend_from_slice(username.as_bytes());
                        message.push(0);
                        message.extend_from_slice(password.expose().as_bytes());
                        ClientState::Pending(Secret::new(message))
                    }
                    _ if !authzid.is_empty() => {
                        return Err(invalid("only PLAIN carries an authorization identity"));
                    }
                    Mechanism::Login => ClientState::LoginUsername {
                        username: username.clone(),
                        password: password.clone(),
                    },
                    _ => ClientState::CramMd5 {
                        username: username.clone(),
                        password: password.clone(),
                    },
                }
            }
            (
                Mechanism::XOAuth2 | Mechanism::OAuthBearer,
                ClientCredentials::Token {
                    username,
                    token,
                    host,
                    port,
                },
            ) => {
                check_identity(username.as_bytes(), false).map_err(invalid)?;
                if !is_token68(token.expose().as_bytes()) {
                    return Err(invalid("token is not an RFC 6750 b64token"));
                }
                let message = if mechanism == Mechanism::XOAuth2 {
                    format!("user={username}\x01auth=Bearer {}\x01\x01", token.expose())
                } else {
                    let mut m = format!("n,a={},\x01", encode_saslname(username));
                    if let Some(host) = host {
                        // A `value` is VCHAR (RFC 7628 §3.1); a host name needs no more.
                        check_identity(host.as_bytes(), false).map_err(invalid)?;
                        if !host.bytes().all(|b| b.is_ascii_graphic()) {
                            return Err(invalid("host is not visible ASCII"));
                        }
                        m.push_str(&format!("host={host}\x01"));
                    }
                    if let Some(port) = port {
                        m.push_str(&format!("port={port}\x01"));
                    }
                    m.push_str(&format!("auth=Bearer {}\x01\x01", token.expose()));
                    m
                };
                ClientState::Pending(Secret::new(message.into_bytes()))
            }
            (m, _) => return Err(SaslError::WrongCredentials(m.static_name())),
        };
        Ok(ClientExchange {
            mechanism,
            state,
            server_error: None,
        })
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> &Mechanism {
        &self.mechanism
    }

    /// The argument for `AUTH <mechanism> <argument>`, already base64 (`=` when empty,
    /// RFC 4954 §4), or `None`: the mechanism waits for the server (LOGIN, CRAM-MD5), the
    /// response was already taken, or the command would exceed [`MAX_AUTH_COMMAND_LEN`],
    /// in which case the response answers the server's empty challenge instead (RFC 4954
    /// §4, RFC 4422 §5).
    pub fn initial_response(&mut self) -> Option<Secret<String>> {
        let ClientState::Pending(message) = &self.state else {
            return None;
        };
        let argument = encode_initial_response(message.expose());
        // "AUTH" SP mechanism SP argument CRLF
        let line_len = 4 + 1 + self.mechanism.as_str().len() + 1 + argument.len() + 2;
        if line_len > MAX_AUTH_COMMAND_LEN {
            return None;
        }
        self.state = ClientState::Sent;
        Some(Secret::new(argument))
    }

    /// Answers a decoded challenge; the caller base64-encodes the result onto one line.
    ///
    /// - Client-first mechanisms whose message is still pending answer with it, whatever
    ///   the (normally empty) challenge.
    /// - LOGIN answers the user name, then the password; a prompt it recognises
    ///   (`user...`, `pass...`, any case) must match the step.
    /// - CRAM-MD5 answers `username SP hex(HMAC-MD5(password, challenge))` (RFC 2195 §2).
    /// - XOAUTH2 and OAUTHBEARER, after their message, answer the server's JSON error with
    ///   an empty response or `%x01` (RFC 7628 §3.2.3); the JSON is kept in
    ///   [`ClientExchange::server_error`].
    pub fn challenge(&mut self, challenge: &[u8]) -> Result<Secret<Vec<u8>>, SaslError> {
        let prompt = login_prompt(challenge);
        match std::mem::replace(&mut self.state, ClientState::Finished) {
            ClientState::Pending(message) => {
                self.state = ClientState::Sent;
                Ok(message)
            }
            ClientState::Sent => match self.mechanism {
                Mechanism::XOAuth2 => {
                    self.server_error = Some(challenge.to_vec());
                    Ok(Secret::new(Vec::new()))
                }
                Mechanism::OAuthBearer => {
                    self.server_error = Some(challenge.to_vec());
                    Ok(Secret::new(vec![1]))
                }
                _ => Err(SaslError::UnexpectedChallenge),
            },
            ClientState::LoginUsername { username, password } => {
                if prompt == Some(LoginPrompt::Password) {
                    return Err(SaslError::UnexpectedChallenge);
                }
                self.state = ClientState::LoginPassword { password };
                Ok(Secret::new(username.into_bytes()))
            }
            ClientState::LoginPassword { password } => {
                if prompt == Some(LoginPrompt::Username) {
                    return Err(SaslError::UnexpectedChallenge);
                }
                Ok(Secret::new(password.into_inner().into_bytes()))
            }
            ClientState::CramMd5 { username, password } => {
                if challenge.is_empty() {
                    return Err(SaslError::MalformedChallenge("empty CRAM-MD5 challenge"));
                }
                let mut mac = hmac_md5(password.expose().as_bytes());
                mac.update(challenge);
                let digest = hex_lower(&mac.finalize().into_bytes());
                Ok(Secret::new(format!("{username} {digest}").into_bytes()))
            }
            ClientState::Finished => Err(SaslError::UnexpectedChallenge),
        }
    }

    /// Answers the text of a `334` reply (base64) with the line to send (base64).
    pub fn challenge_base64(&mut self, text: &[u8]) -> Result<Secret<String>, SaslError> {
        let challenge = decode_base64(text).inspect_err(|_| self.state = ClientState::Finished)?;
        let response = self.challenge(&challenge)?;
        Ok(Secret::new(encode_base64(response.expose())))
    }

    /// The error a token server sent before failing (RFC 7628 §3.2.2: JSON with `status`,
    /// `scope`, `openid-configuration`), for the caller to log or act on.
    pub fn server_error(&self) -> Option<&[u8]> {
        self.server_error.as_deref()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoginPrompt {
    Username,
    Password,
}

/// Recognises `Username:`, `User Name`, `Password:` in any case; servers vary.
fn login_prompt(challenge: &[u8]) -> Option<LoginPrompt> {
    let lower = challenge.to_ascii_lowercase();
    let has = |needle: &[u8]| lower.windows(needle.len()).any(|w| w == needle);
    match (has(b"user"), has(b"pass")) {
        (true, false) => Some(LoginPrompt::Username),
        (false, true) => Some(LoginPrompt::Password),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RFC2195_CHALLENGE: &str = "<1896.697170952@postoffice.reston.mci.net>";

    fn start(mech: Mechanism, ir: Option<&[u8]>) -> (ServerExchange, Step) {
        ServerExchange::start(mech, ir, || RFC2195_CHALLENGE.to_owned())
    }

    fn done(step: Step) -> Credentials {
        match step {
            Step::Done(c) => c,
            other => panic!("expected Done, got {other:?}"),
        }
    }

    fn failed(step: Step) -> SaslError {
        match step {
            Step::Failed(e) => e,
            other => panic!("expected Failed, got {other:?}"),
        }
    }

    fn plain_creds(authzid: &str, authcid: &str, password: &str) -> Credentials {
        Credentials::Plain {
            authzid: authzid.into(),
            authcid: authcid.into(),
            password: Secret::new(password.into()),
        }
    }

    /// Runs a client and a server against each other in memory, through base64 lines as on
    /// the wire, and returns the server's last step.
    fn pair(mech: Mechanism, creds: &ClientCredentials) -> (ClientExchange, ServerExchange, Step) {
        let mut client = ClientExchange::new(mech.clone(), creds).unwrap();
        let ir = client.initial_response();
        let ir = ir.map(|arg| decode_initial_response(arg.expose().as_bytes()).unwrap());
        let (mut server, mut step) =
            ServerExchange::start(mech, ir.as_ref().map(|s| s.expose().as_slice()), || {
                cram_md5_challenge(1896, 697170952, "postoffice.reston.mci.net").unwrap()
            });
        for _ in 0..5 {
            let Step::Challenge(challenge) = &step else {
                break;
            };
            let line = client
                .challenge_base64(encode_base64(challenge).as_bytes())
                .unwrap();
            step = server.handle_line(line.expose().as_bytes());
        }
        (client, server, step)
    }

    // --- Mechanism ------------------------------------------------------------------

    #[test]
    fn mechanism_names() {
        let cases: &[(&str, Result<Mechanism, SaslError>)] = &[
            ("PLAIN", Ok(Mechanism::Plain)),
            ("plain", Ok(Mechanism::Plain)),
            ("Login", Ok(Mechanism::Login)),
            ("cram-md5", Ok(Mechanism::CramMd5)),
            ("xoauth2", Ok(Mechanism::XOAuth2)),
            ("OAuthBearer", Ok(Mechanism::OAuthBearer)),
            (
                "scram-sha-256",
                Ok(Mechanism::Other("SCRAM-SHA-256".into())),
            ),
            ("GS2_KRB5", Ok(Mechanism::Other("GS2_KRB5".into()))),
            (
                "ABCDEFGHIJKLMNOPQRST",
                Ok(Mechanism::Other("ABCDEFGHIJKLMNOPQRST".into())),
            ),
            (
                "ABCDEFGHIJKLMNOPQRSTU",
                Err(SaslError::InvalidMechanismName),
            ),
            ("", Err(SaslError::InvalidMechanismName)),
            ("PLAIN ", Err(SaslError::InvalidMechanismName)),
            ("PL\rAIN", Err(SaslError::InvalidMechanismName)),
            ("X.Y", Err(SaslError::InvalidMechanismName)),
            ("PLAİN", Err(SaslError::InvalidMechanismName)),
        ];
        for (name, expected) in cases {
            assert_eq!(&Mechanism::parse(name), expected, "{name:?}");
            if let Ok(m) = expected {
                assert_eq!(m.as_str(), name.to_ascii_uppercase());
                assert_eq!(m.to_string().parse::<Mechanism>().as_ref(), Ok(m));
            }
        }
    }

    #[test]
    fn mechanism_properties() {
        assert!(Mechanism::Plain.sends_password_in_clear());
        assert!(Mechanism::Login.sends_password_in_clear());
        assert!(!Mechanism::CramMd5.sends_password_in_clear());
        assert!(!Mechanism::XOAuth2.sends_password_in_clear());
        assert!(Mechanism::OAuthBearer.requires_tls());
        assert!(!Mechanism::CramMd5.requires_tls());
        assert!(Mechanism::Plain.is_client_first());
        assert!(!Mechanism::Login.is_client_first());
        assert!(!Mechanism::Other("GSSAPI".into()).is_supported());
    }

    #[test]
    fn selection() {
        use Mechanism::*;
        let pw = ClientCredentials::password("u", "p");
        let tok = ClientCredentials::token("u", "t");
        let all = [Login, Plain, CramMd5, XOAuth2, OAuthBearer];
        assert_eq!(select_mechanism(&all, &pw, true), Some(Plain));
        assert_eq!(select_mechanism(&all, &pw, false), Some(CramMd5));
        assert_eq!(select_mechanism(&[Login, CramMd5], &pw, true), Some(Login));
        assert_eq!(select_mechanism(&[Login, Plain], &pw, false), None);
        assert_eq!(select_mechanism(&all, &tok, true), Some(OAuthBearer));
        assert_eq!(
            select_mechanism(&[XOAuth2, Plain], &tok, true),
            Some(XOAuth2)
        );
        assert_eq!(select_mechanism(&all, &tok, false), None);
        assert_eq!(select_mechanism(&[], &pw, true), None);
    }

    // --- Wire helpers ---------------------------------------------------------------

    #[test]
    fn responses() {
        let data = |d: &[u8]| Ok(Response::Data(Secret::new(d.to_vec())));
        let cases: &[(&[u8], Result<Response, SaslError>)] = &[
            (b"*", Ok(Response::Cancel)),
            (b"*\r\n", Ok(Response::Cancel)),
            (b"", data(b"")),
            (b"dGlt", data(b"tim")),
            (b"dGlt\r\n", data(b"tim")),
            (b"dGltIA==", data(b"tim ")),
            (b"dGltIA", Err(SaslError::Base64)), // padding is required
            (b"dGltIA=", Err(SaslError::Base64)),
            (b"dGlt IA==", Err(SaslError::Base64)), // no whitespace
            (b"dGlu", data(b"tin")),
            (b"dGm=", Err(SaslError::Base64)), // non-canonical trailing bits
            (b"=", Err(SaslError::Base64)),    // `=` is special only as initial response
            (b"**", Err(SaslError::Base64)),
            (b"d-lt", Err(SaslError::Base64)), // URL-safe alphabet
        ];
        for (line, expected) in cases {
            assert_eq!(
                &decode_response(line),
                expected,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn initial_responses() {
        assert_eq!(decode_initial_response(b"=").unwrap().expose(), b"");
        assert_eq!(decode_initial_response(b"dGlt").unwrap().expose(), b"tim");
        assert_eq!(decode_initial_response(b""), Err(SaslError::Base64));
        assert_eq!(decode_initial_response(b"*"), Err(SaslError::Base64));
        assert_eq!(decode_initial_response(b"dGlt="), Err(SaslError::Base64));
        assert_eq!(encode_initial_response(b""), "=");
        assert_eq!(encode_initial_response(b"tim"), "dGlt");
        assert_eq!(
            decode_base64(encode_base64(b"\x00\xff\x01").as_bytes()).unwrap(),
            b"\x00\xff\x01"
        );
    }

    #[test]
    fn login_prompts_in_base64() {
        assert_eq!(encode_base64(LOGIN_USERNAME_PROMPT), "VXNlcm5hbWU6");
        assert_eq!(encode_base64(LOGIN_PASSWORD_PROMPT), "UGFzc3dvcmQ6");
    }

    #[test]
    fn replies() {
        assert_eq!(
            AUTH_SUCCEEDED,
            (235, (2, 7, 0), "Authentication successful")
        );
        assert_eq!(
            SaslError::Cancelled.reply(),
            (501, (5, 7, 0), "Authentication cancelled")
        );
        assert_eq!(SaslError::Base64.reply().0, 501);
        assert_eq!(SaslError::Base64.reply().1, (5, 5, 2));
        assert_eq!(SaslError::Rejected.reply(), AUTH_INVALID_CREDENTIALS);
        assert_eq!(malformed("PLAIN", "x").reply(), AUTH_INVALID_CREDENTIALS);
        assert_eq!(SaslError::UnsupportedMechanism("X".into()).reply().0, 504);
        assert_eq!(SaslError::InvalidChallenge.reply().0, 454);
        for (code, (class, _, _), text) in [
            AUTH_SUCCEEDED,
            AUTH_INVALID_CREDENTIALS,
            AUTH_CANCELLED,
            AUTH_INVALID_BASE64,
            AUTH_UNRECOGNIZED_MECHANISM,
            AUTH_ENCRYPTION_REQUIRED,
            AUTH_REQUIRED,
            AUTH_TEMPORARY_FAILURE,
            AUTH_MECHANISM_TOO_WEAK,
            AUTH_ALREADY_AUTHENTICATED,
            AUTH_LINE_TOO_LONG,
        ] {
            assert_eq!(u16::from(class), code / 100, "{code}");
            assert!(!text.is_empty());
        }
    }

    #[test]
    fn error_messages_are_lowercase() {
        for e in [
            SaslError::Base64,
            SaslError::Cancelled,
            malformed("PLAIN", "x"),
            SaslError::UnexpectedInitialResponse("CRAM-MD5"),
            SaslError::UnsupportedMechanism("X".into()),
            SaslError::InvalidMechanismName,
            SaslError::Rejected,
            SaslError::UnexpectedChallenge,
            SaslError::MalformedChallenge("x"),
            SaslError::InvalidCredentials("x"),
            SaslError::WrongCredentials("PLAIN"),
            SaslError::InvalidChallenge,
            SaslError::ExchangeFinished,
        ] {
            let text = e.to_string();
            assert!(text.starts_with(|c: char| c.is_ascii_lowercase()), "{text}");
        }
    }

    // --- PLAIN (RFC 4616) ------------------------------------------------------------

    #[test]
    fn plain_rfc4616_examples() {
        // RFC 4616 §4: tim / tanstaaftanstaaf, no authzid.
        let ir = decode_initial_response(b"AHRpbQB0YW5zdGFhZnRhbnN0YWFm").unwrap();
        assert_eq!(ir.expose(), b"\0tim\0tanstaaftanstaaf");
        let creds = done(start(Mechanism::Plain, Some(ir.expose())).1);
        assert_eq!(creds, plain_creds("", "tim", "tanstaaftanstaaf"));
        assert_eq!(creds.identity(), Some("tim"));
        assert_eq!(creds.authorization_identity(), None);
        assert!(creds.verify("tanstaaftanstaaf"));
        assert!(!creds.verify("tanstaaftanstaaF"));
        assert!(!creds.verify(""));

        // RFC 4616 §4: Kurt acting as Ursel.
        let msg = b"Ursel\0Kurt\0xipj3plmq";
        let creds = done(start(Mechanism::Plain, Some(msg)).1);
        assert_eq!(creds, plain_creds("Ursel", "Kurt", "xipj3plmq"));
        assert_eq!(creds.authorization_identity(), Some("Ursel"));

        // Without initial response: an empty challenge first.
        let (mut server, step) = start(Mechanism::Plain, None);
        assert_eq!(step, Step::Challenge(Vec::new()));
        let creds = done(server.handle_line(encode_base64(msg).as_bytes()));
        assert_eq!(creds.identity(), Some("Kurt"));
    }

    #[test]
    fn plain_malformed() {
        let long = "a".repeat(256);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"tim\0tanstaaf".to_vec(), "one NUL"),
            (b"\0tim\0tans\0taaf".to_vec(), "three NULs"),
            (b"".to_vec(), "empty"),
            (b"\0\0secret".to_vec(), "empty authcid"),
            (b"\0tim\0".to_vec(), "empty password"),
            (b"\0ti\rm\0secret".to_vec(), "CR in authcid"),
            (b"\0tim\n\0secret".to_vec(), "LF in authcid"),
            (b"ad\nmin\0tim\0secret".to_vec(), "LF in authzid"),
            (b"\0\xfftim\0secret".to_vec(), "non-UTF-8 authcid"),
            (b"\0tim\0\xff".to_vec(), "non-UTF-8 password"),
            (format!("\0{long}\0pw").into_bytes(), "authcid too long"),
            (format!("{long}\0tim\0pw").into_bytes(), "authzid too long"),
            (format!("\0tim\0{long}").into_bytes(), "password too long"),
        ];
        for (msg, why) in cases {
            let e = failed(start(Mechanism::Plain, Some(&msg)).1);
            assert!(
                matches!(
                    e,
                    SaslError::Malformed {
                        mechanism: "PLAIN",
                        ..
                    }
                ),
                "{why}: {e:?}"
            );
            assert_eq!(e.reply(), AUTH_INVALID_CREDENTIALS);
        }
        // 255 octets is the limit, not past it.
        let max = "a".repeat(255);
        let msg = format!("{max}\0{max}\0{max}");
        assert!(matches!(
            start(Mechanism::Plain, Some(msg.as_bytes())).1,
            Step::Done(_)
        ));
    }

    #[test]
    fn plain_empty_initial_response_is_malformed() {
        // `AUTH PLAIN =` is an empty message, which PLAIN cannot be.
        let ir = decode_initial_response(b"=").unwrap();
        assert!(matches!(
            failed(start(Mechanism::Plain, Some(ir.expose())).1),
            SaslError::Malformed { .. }
        ));
    }

    // --- Cancel, base64, finished ---------------------------------------------------

    #[test]
    fn cancel_and_bad_base64_end_the_exchange() {
        for mech in [
            Mechanism::Plain,
            Mechanism::Login,
            Mechanism::CramMd5,
            Mechanism::XOAuth2,
            Mechanism::OAuthBearer,
        ] {
            let (mut server, step) = start(mech.clone(), None);
            assert!(matches!(step, Step::Challenge(_)));
            let e = failed(server.handle_line(b"*"));
            assert_eq!(e, SaslError::Cancelled);
            assert_eq!(e.reply(), AUTH_CANCELLED);
            assert!(!server.wants_response());
            assert_eq!(
                failed(server.handle_line(b"dGlt")),
                SaslError::ExchangeFinished
            );

            let (mut server, _) = start(mech, None);
            let e = failed(server.handle_line(b"not base64!"));
            assert_eq!(e, SaslError::Base64);
            assert_eq!(e.reply(), AUTH_INVALID_BASE64);
            assert_eq!(failed(server.respond(b"x")), SaslError::ExchangeFinished);
        }
    }

    #[test]
    fn unsupported_mechanism() {
        let (mut server, step) = start(Mechanism::parse("gssapi").unwrap(), None);
        let e = failed(step);
        assert_eq!(e, SaslError::UnsupportedMechanism("GSSAPI".into()));
        assert_eq!(e.reply(), AUTH_UNRECOGNIZED_MECHANISM);
        assert_eq!(failed(server.respond(b"")), SaslError::ExchangeFinished);
        let creds = ClientCredentials::password("u", "p");
        assert!(matches!(
            ClientExchange::new(Mechanism::Other("GSSAPI".into()), &creds),
            Err(SaslError::UnsupportedMechanism(_))
        ));
    }

    #[test]
    fn done_then_more_input_is_refused() {
        let (mut server, step) = start(Mechanism::Plain, Some(b"\0tim\0pw"));
        let _ = done(step);
        assert_eq!(
            failed(server.respond(b"\0tim\0pw")),
            SaslError::ExchangeFinished
        );
    }

    #[test]
    fn reject_password_mechanisms() {
        let (mut server, step) = start(Mechanism::Plain, Some(b"\0tim\0pw"));
        let _ = done(step);
        assert_eq!(failed(server.reject(None)), SaslError::Rejected);
        assert_eq!(failed(server.reject(None)), SaslError::ExchangeFinished);
    }

    // --- LOGIN ----------------------------------------------------------------------

    #[test]
    fn login_server() {
        let (mut server, step) = start(Mechanism::Login, None);
        assert_eq!(step, Step::Challenge(b"Username:".to_vec()));
        assert_eq!(
            server.handle_line(b"dGlt"),
            Step::Challenge(b"Password:".to_vec())
        );
        let creds = done(server.handle_line(encode_base64(b"tanstaaf").as_bytes()));
        assert_eq!(
            creds,
            Credentials::Login {
                username: "tim".into(),
                password: Secret::new("tanstaaf".into())
            }
        );
        assert!(creds.verify("tanstaaf"));

        // Initial response = user name.
        let (mut server, step) = start(Mechanism::Login, Some(b"tim"));
        assert_eq!(step, Step::Challenge(b"Password:".to_vec()));
        assert_eq!(done(server.respond(b"pw")).identity(), Some("tim"));

        // Bad parts.
        assert!(matches!(
            failed(start(Mechanism::Login, Some(b"")).1),
            SaslError::Malformed { .. }
        ));
        assert!(matches!(
            failed(start(Mechanism::Login, Some(b"ti\r\nm")).1),
            SaslError::Malformed { .. }
        ));
        let (mut server, _) = start(Mechanism::Login, Some(b"tim"));
        assert!(matches!(
            failed(server.respond(b"")),
            SaslError::Malformed { .. }
        ));
        let (mut server, _) = start(Mechanism::Login, Some(b"tim"));
        assert!(matches!(
            failed(server.respond(b"p\0w")),
            SaslError::Malformed { .. }
        ));
    }

    #[test]
    fn login_client_by_prompt_and_step() {
        let creds = ClientCredentials::password("tim", "pw");
        let mut c = ClientExchange::new(Mechanism::Login, &creds).unwrap();
        assert!(c.initial_response().is_none());
        assert_eq!(
            c.challenge_base64(b"VXNlcm5hbWU6").unwrap().expose(),
            "dGlt"
        );
        assert_eq!(
            c.challenge_base64(b"UGFzc3dvcmQ6").unwrap().expose(),
            "cHc="
        );
        assert_eq!(
            c.challenge(b"Password:").unwrap_err(),
            SaslError::UnexpectedChallenge
        );

        // Unknown prompts: by step. Lower-case prompts are recognised.
        let mut c = ClientExchange::new(Mechanism::Login, &creds).unwrap();
        assert_eq!(c.challenge(b"").unwrap().expose(), b"tim");
        assert_eq!(c.challenge(b"password:").unwrap().expose(), b"pw");
        let mut c = ClientExchange::new(Mechanism::Login, &creds).unwrap();
        assert_eq!(c.challenge(b"User Name").unwrap().expose(), b"tim");
        assert_eq!(c.challenge(b"???").unwrap().expose(), b"pw");

        // A prompt that contradicts the step.
        let mut c = ClientExchange::new(Mechanism::Login, &creds).unwrap();
        assert_eq!(
            c.challenge(b"Password:").unwrap_err(),
            SaslError::UnexpectedChallenge
        );
        let mut c = ClientExchange::new(Mechanism::Login, &creds).unwrap();
        c.challenge(b"Username:").unwrap();
        assert_eq!(
            c.challenge(b"USERNAME:").unwrap_err(),
            SaslError::UnexpectedChallenge
        );
    }

    // --- CRAM-MD5 (RFC 2195) --------------------------------------------------------

    #[test]
    fn cram_md5_rfc2195_example() {
        assert_eq!(
            cram_md5_challenge(1896, 697170952, "postoffice.reston.mci.net").unwrap(),
            RFC2195_CHALLENGE
        );

        // Client.
        let creds = ClientCredentials::password("tim", "tanstaaftanstaaf");
        let mut client = ClientExchange::new(Mechanism::CramMd5, &creds).unwrap();
        assert!(client.initial_response().is_none());
        let response = client.challenge(RFC2195_CHALLENGE.as_bytes()).unwrap();
        assert_eq!(response.expose(), b"tim b913a602c7eda7a495b4e6e7334d3890");
        assert_eq!(
            client.challenge(b"again").unwrap_err(),
            SaslError::UnexpectedChallenge
        );

        // Server, with the RFC's base64 lines.
        let (mut server, step) = start(Mechanism::CramMd5, None);
        let Step::Challenge(ch) = step else { panic!() };
        assert_eq!(
            encode_base64(&ch),
            "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"
        );
        let creds = done(server.handle_line(b"dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"));
        assert_eq!(creds.identity(), Some("tim"));
        assert!(creds.verify("tanstaaftanstaaf"));
        assert!(!creds.verify("tanstaaftanstaa"));
        assert!(!creds.verify(""));
    }

    #[test]
    fn cram_md5_malformed() {
        let cases: &[&[u8]] = &[
            b"tim",
            b"tim ",
            b" b913a602c7eda7a495b4e6e7334d3890",
            b"tim B913A602C7EDA7A495B4E6E7334D3890",
            b"tim b913a602c7eda7a495b4e6e7334d389",
            b"tim b913a602c7eda7a495b4e6e7334d38900",
            b"tim b913a602c7eda7a495b4e6e7334d389g",
            b"t\nim b913a602c7eda7a495b4e6e7334d3890",
        ];
        for resp in cases {
            let (mut server, _) = start(Mechanism::CramMd5, None);
            assert!(
                matches!(failed(server.respond(resp)), SaslError::Malformed { .. }),
                "{resp:?}"
            );
        }
        // A user name with a space is fine: the digest follows the last one.
        let (mut server, _) = start(Mechanism::CramMd5, None);
        let creds = done(server.respond(b"tim smith b913a602c7eda7a495b4e6e7334d3890"));
        assert_eq!(creds.identity(), Some("tim smith"));
        // The digest does not cover the user name (RFC 2195 §2), so it still verifies.
        assert!(creds.verify("tanstaaftanstaaf"));
    }

    #[test]
    fn cram_md5_refuses_initial_response_and_bad_challenges() {
        let e = failed(start(Mechanism::CramMd5, Some(b"tim")).1);
        assert_eq!(e, SaslError::UnexpectedInitialResponse("CRAM-MD5"));
        for bad in [
            "",
            "<>",
            "no-brackets@host",
            "<no-at>",
            "<a b@c>",
            "<a@b\r\n>",
        ] {
            let (_, step) = ServerExchange::start(Mechanism::CramMd5, None, || bad.to_owned());
            assert_eq!(failed(step), SaslError::InvalidChallenge, "{bad:?}");
        }
        for bad in ["", "a b", "a<b", "a@b", "a\r\nb"] {
            assert_eq!(
                cram_md5_challenge(1, 2, bad),
                Err(SaslError::InvalidChallenge),
                "{bad:?}"
            );
        }
        let creds = ClientCredentials::password("tim", "pw");
        let mut client = ClientExchange::new(Mechanism::CramMd5, &creds).unwrap();
        assert!(matches!(
            client.challenge(b""),
            Err(SaslError::MalformedChallenge(_))
        ));
    }

    #[test]
    fn cram_md5_verify_rejects_bad_digest_text() {
        let creds = Credentials::CramMd5 {
            username: "tim".into(),
            challenge: RFC2195_CHALLENGE.into(),
            digest: Secret::new("B913A602C7EDA7A495B4E6E7334D3890".into()),
        };
        assert!(!creds.verify("tanstaaftanstaaf"));
    }

    #[test]
    fn challenge_source_only_called_for_cram_md5() {
        for mech in [
            Mechanism::Plain,
            Mechanism::Login,
            Mechanism::XOAuth2,
            Mechanism::OAuthBearer,
        ] {
            let _ = ServerExchange::start(mech, None, || panic!("not needed"));
        }
    }

    // --- XOAUTH2 --------------------------------------------------------------------

    const GMAIL_XOAUTH2: &[u8] =
        b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01";

    #[test]
    fn xoauth2_gmail_example() {
        // Google's XOAUTH2 protocol page, the SMTP example's initial response.
        assert_eq!(
            encode_base64(GMAIL_XOAUTH2),
            "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
        );
        let creds = ClientCredentials::token(
            "someuser@example.com",
            "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg",
        );
        let mut client = ClientExchange::new(Mechanism::XOAuth2, &creds).unwrap();
        let ir = client.initial_response().unwrap();
        assert_eq!(
            decode_initial_response(ir.expose().as_bytes())
                .unwrap()
                .expose(),
            GMAIL_XOAUTH2
        );

        let (mut server, step) = start(Mechanism::XOAuth2, Some(GMAIL_XOAUTH2));
        let got = done(step);
        assert_eq!(
            got,
            Credentials::XOAuth2 {
                user: "someuser@example.com".into(),
                token: Secret::new("ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg".into()),
            }
        );
        assert!(!got.verify("anything"));

        // The token is refused: JSON error challenge, empty answer, then 535.
        let error = br#"{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}"#;
        assert_eq!(server.reject(Some(error)), Step::Challenge(error.to_vec()));
        let answer = client
            .challenge_base64(encode_base64(error).as_bytes())
            .unwrap();
        assert_eq!(answer.expose(), "");
        assert_eq!(client.server_error(), Some(&error[..]));
        let e = failed(server.handle_line(answer.expose().as_bytes()));
        assert_eq!(e, SaslError::Rejected);
        assert_eq!(e.reply(), AUTH_INVALID_CREDENTIALS);
        assert_eq!(
            client.challenge(b"more").unwrap_err(),
            SaslError::UnexpectedChallenge
        );
    }

    #[test]
    fn xoauth2_malformed() {
        let cases: &[&[u8]] = &[
            b"",
            b"\x01\x01",
            b"user=a\x01auth=Bearer t\x01",
            b"user=a\x01auth=Bearer t",
            b"user=a\x01\x01",
            b"auth=Bearer t\x01\x01",
            b"user=a\x01auth=Basic dDp0\x01\x01",
            b"user=a\x01auth=Bearer\x01\x01",
            b"user=a\x01auth=Bearer t t\x01\x01",
            b"user=a\x01user=b\x01auth=Bearer t\x01\x01",
            b"user=\x01auth=Bearer t\x01\x01",
            b"user=a\r\nb\x01auth=Bearer t\x01\x01",
            b"user=a\x01\x01auth=Bearer t\x01\x01",
            b"usera\x01auth=Bearer t\x01\x01",
        ];
        for msg in cases {
            assert!(
                matches!(
                    failed(start(Mechanism::XOAuth2, Some(msg)).1),
                    SaslError::Malformed { .. }
                ),
                "{:?}",
                String::from_utf8_lossy(msg)
            );
        }
        // Scheme case and extra spaces are tolerated, unknown keys ignored.
        let ok = done(
            start(
                Mechanism::XOAuth2,
                Some(b"user=a\x01x=y\x01auth=bearer  t==\x01\x01"),
            )
            .1,
        );
        assert_eq!(
            ok,
            Credentials::XOAuth2 {
                user: "a".into(),
                token: Secret::new("t==".into())
            }
        );
    }

    // --- OAUTHBEARER (RFC 7628) -----------------------------------------------------

    const RFC7628_EXAMPLE: &[u8] = b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01";

    #[test]
    fn oauthbearer_rfc7628_example() {
        // RFC 7628 §4.1, the initial response in base64 and in the clear.
        assert_eq!(
            decode_initial_response(b"bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB")
                .unwrap()
                .expose(),
            RFC7628_EXAMPLE
        );
        let expected = Credentials::OAuthBearer {
            authzid: Some("user@example.com".into()),
            host: Some("server.example.com".into()),
            port: Some(143),
            token: Secret::new("vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==".into()),
        };
        let (mut server, step) = start(Mechanism::OAuthBearer, Some(RFC7628_EXAMPLE));
        assert_eq!(done(step), expected);

        // The client builds the same bytes.
        let creds = ClientCredentials::Token {
            username: "user@example.com".into(),
            token: Secret::new("vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==".into()),
            host: Some("server.example.com".into()),
            port: Some(143),
        };
        let mut client = ClientExchange::new(Mechanism::OAuthBearer, &creds).unwrap();
        let ir = client.initial_response().unwrap();
        assert_eq!(
            decode_initial_response(ir.expose().as_bytes())
                .unwrap()
                .expose(),
            RFC7628_EXAMPLE
        );

        // RFC 7628 §4.3: the failure, with the RFC's error JSON, acknowledged by ^A.
        let error = oauth_error_challenge(
            "invalid_token",
            Some("example_scope"),
            Some("https://example.com/.well-known/openid-configuration"),
        );
        assert_eq!(
            encode_base64(&error),
            "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Njb3BlIiwib3BlbmlkLWNvbmZpZ3VyYXRpb24iOiJodHRwczovL2V4YW1wbGUuY29tLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0="
        );
        assert_eq!(server.reject(Some(&error)), Step::Challenge(error.clone()));
        let answer = client.challenge(&error).unwrap();
        assert_eq!(answer.expose(), b"\x01");
        assert_eq!(encode_base64(answer.expose()), "AQ==");
        assert_eq!(failed(server.respond(answer.expose())), SaslError::Rejected);
        assert_eq!(client.server_error(), Some(&error[..]));
    }

    #[test]
    fn oauthbearer_variants() {
        let ok = |msg: &[u8]| done(start(Mechanism::OAuthBearer, Some(msg)).1);
        // No authzid, no host or port; `y` flag; escaped authzid.
        assert_eq!(
            ok(b"n,,\x01auth=Bearer abc\x01\x01"),
            Credentials::OAuthBearer {
                authzid: None,
                host: None,
                port: None,
                token: Secret::new("abc".into())
            }
        );
        assert!(matches!(
            ok(b"y,,\x01auth=Bearer abc\x01\x01"),
            Credentials::OAuthBearer { .. }
        ));
        assert_eq!(
            ok(b"n,a=a=3Db=2Cc,\x01auth=Bearer abc\x01\x01").authorization_identity(),
            Some("a=b,c")
        );
        // Unknown keys ignored.
        assert!(matches!(
            ok(b"n,,\x01foo=bar baz\x01auth=Bearer abc\x01\x01"),
            Credentials::OAuthBearer { .. }
        ));
        // Default error challenge.
        let (mut server, step) = start(
            Mechanism::OAuthBearer,
            Some(b"n,,\x01auth=Bearer abc\x01\x01"),
        );
        let _ = done(step);
        assert_eq!(
            server.reject(None),
            Step::Challenge(br#"{"status":"invalid_token"}"#.to_vec())
        );
    }

    #[test]
    fn oauthbearer_malformed() {
        let cases: &[&[u8]] = &[
            b"",
            b"\x01",
            b"p=tls-unique,,\x01auth=Bearer abc\x01\x01",
            b"x,,\x01auth=Bearer abc\x01\x01",
            b"n,\x01auth=Bearer abc\x01\x01",
            b"n,b=x,\x01auth=Bearer abc\x01\x01",
            b"n,a=,\x01auth=Bearer abc\x01\x01",
            b"n,a=x=2y,\x01auth=Bearer abc\x01\x01",
            b"n,,auth=Bearer abc\x01\x01",
            b"n,,\x01auth=Bearer abc\x01",
            b"n,,\x01\x01",
            b"n,,\x01host=h\x01\x01",
            b"n,,\x01auth=Bearer abc\x01auth=Bearer abc\x01\x01",
            b"n,,\x01port=99999\x01auth=Bearer abc\x01\x01",
            b"n,,\x01port=+1\x01auth=Bearer abc\x01\x01",
            b"n,,\x01host=a\r\nb\x01auth=Bearer abc\x01\x01",
            b"n,,\x01x=\x7f\x01auth=Bearer abc\x01\x01",
            b"n,,\x01auth=Basic abc\x01\x01",
            b"n,,\x01auth=Bearer a%c\x01\x01",
            b"n,,\x01=v\x01auth=Bearer abc\x01\x01",
            b"n,,\x01k1=v\x01auth=Bearer abc\x01\x01",
        ];
        for msg in cases {
            assert!(
                matches!(
                    failed(start(Mechanism::OAuthBearer, Some(msg)).1),
                    SaslError::Malformed { .. }
                ),
                "{:?}",
                String::from_utf8_lossy(msg)
            );
        }
    }

    #[test]
    fn oauth_error_json_is_escaped() {
        assert_eq!(
            oauth_error_challenge("a\"b\\c\n", None, None),
            br#"{"status":"a\"b\\c\u000a"}"#.to_vec()
        );
    }

    // --- Client validation ----------------------------------------------------------

    #[test]
    fn client_refuses_bad_credentials() {
        let pw = |u: &str, p: &str| ClientCredentials::password(u, p);
        let cases = [
            (Mechanism::Plain, pw("", "p")),
            (Mechanism::Plain, pw("ti\rm", "p")),
            (Mechanism::Login, pw("ti\nm", "p")),
            (Mechanism::CramMd5, pw("ti\0m", "p")),
            (Mechanism::Plain, pw("tim", "")),
            (Mechanism::Plain, pw("tim", "p\0w")),
            (Mechanism::Plain, pw(&"a".repeat(256), "p")),
            (Mechanism::Plain, pw("tim", &"a".repeat(256))),
            (
                Mechanism::Plain,
                ClientCredentials::Password {
                    authzid: Some("ad\nmin".into()),
                    username: "tim".into(),
                    password: Secret::new("p".into()),
                },
            ),
            (
                Mechanism::Login,
                ClientCredentials::Password {
                    authzid: Some("admin".into()),
                    username: "tim".into(),
                    password: Secret::new("p".into()),
                },
            ),
            (Mechanism::XOAuth2, ClientCredentials::token("a\x01b", "t")),
            (Mechanism::XOAuth2, ClientCredentials::token("a", "t t")),
            (Mechanism::XOAuth2, ClientCredentials::token("a", "")),
            (
                Mechanism::OAuthBearer,
                ClientCredentials::token("a", "t\x01"),
            ),
            (
                Mechanism::OAuthBearer,
                ClientCredentials::Token {
                    username: "a".into(),
                    token: Secret::new("t".into()),
                    host: Some("h\r\n".into()),
                    port: None,
                },
            ),
        ];
        for (mech, creds) in cases {
            assert!(
                matches!(
                    ClientExchange::new(mech.clone(), &creds),
                    Err(SaslError::InvalidCredentials(_))
                ),
                "{mech} {creds:?}"
            );
        }
        assert_eq!(
            ClientExchange::new(Mechanism::XOAuth2, &pw("a", "b")).unwrap_err(),
            SaslError::WrongCredentials("XOAUTH2")
        );
        assert_eq!(
            ClientExchange::new(Mechanism::Plain, &ClientCredentials::token("a", "b")).unwrap_err(),
            SaslError::WrongCredentials("PLAIN")
        );
    }

    #[test]
    fn client_plain_unexpected_challenge_after_initial_response() {
        let mut c =
            ClientExchange::new(Mechanism::Plain, &ClientCredentials::password("tim", "pw"))
                .unwrap();
        assert_eq!(c.initial_response().unwrap().expose(), "AHRpbQBwdw==");
        assert!(c.initial_response().is_none());
        assert_eq!(
            c.challenge(b"").unwrap_err(),
            SaslError::UnexpectedChallenge
        );
    }

    #[test]
    fn client_bad_base64_challenge() {
        let mut c = ClientExchange::new(
            Mechanism::CramMd5,
            &ClientCredentials::password("tim", "pw"),
        )
        .unwrap();
        assert_eq!(c.challenge_base64(b"%%%").unwrap_err(), SaslError::Base64);
        assert_eq!(
            c.challenge(b"<1@h>").unwrap_err(),
            SaslError::UnexpectedChallenge
        );
    }

    #[test]
    fn long_initial_response_waits_for_empty_challenge() {
        // RFC 4954 §4: a token too long for the 512-octet command line goes after `334 `.
        let token = "a".repeat(600);
        let creds = ClientCredentials::token("user@example.com", token.clone());
        let (mut client, _, step) = pair(Mechanism::XOAuth2, &creds);
        assert!(client.initial_response().is_none());
        assert_eq!(
            done(step),
            Credentials::XOAuth2 {
                user: "user@example.com".into(),
                token: Secret::new(token)
            }
        );
        // Just at the limit it still fits.
        let mut c =
            ClientExchange::new(Mechanism::Plain, &ClientCredentials::password("u", "p")).unwrap();
        let arg = c.initial_response().unwrap();
        assert!(4 + 1 + 5 + 1 + arg.expose().len() + 2 <= MAX_AUTH_COMMAND_LEN);
    }

    // --- Pairs ----------------------------------------------------------------------

    #[test]
    fn pairs_for_every_mechanism() {
        let pw = ClientCredentials::password("tim", "tanstaaftanstaaf");
        for mech in [Mechanism::Plain, Mechanism::Login, Mechanism::CramMd5] {
            let (_, _, step) = pair(mech.clone(), &pw);
            let creds = done(step);
            assert_eq!(creds.mechanism(), mech);
            assert_eq!(creds.identity(), Some("tim"));
            assert!(creds.verify("tanstaaftanstaaf"), "{mech}");
            assert!(!creds.verify("wrong"), "{mech}");
        }
        let proxy = ClientCredentials::Password {
            authzid: Some("Ursel".into()),
            username: "Kurt".into(),
            password: Secret::new("xipj3plmq".into()),
        };
        assert_eq!(
            done(pair(Mechanism::Plain, &proxy).2),
            plain_creds("Ursel", "Kurt", "xipj3plmq")
        );

        let tok = ClientCredentials::Token {
            username: "a,b=c@example.com".into(),
            token: Secret::new("tok/en+==".into()),
            host: Some("mx.example.com".into()),
            port: Some(587),
        };
        assert_eq!(
            done(pair(Mechanism::XOAuth2, &tok).2),
            Credentials::XOAuth2 {
                user: "a,b=c@example.com".into(),
                token: Secret::new("tok/en+==".into())
            }
        );
        assert_eq!(
            done(pair(Mechanism::OAuthBearer, &tok).2),
            Credentials::OAuthBearer {
                authzid: Some("a,b=c@example.com".into()),
                host: Some("mx.example.com".into()),
                port: Some(587),
                token: Secret::new("tok/en+==".into()),
            }
        );
    }

    #[test]
    fn pair_without_initial_response() {
        // A client that does not use the initial response: the server's empty challenge
        // gets the message instead (RFC 4422 §5).
        for (mech, creds) in [
            (Mechanism::Plain, ClientCredentials::password("tim", "pw")),
            (Mechanism::XOAuth2, ClientCredentials::token("tim", "tok")),
            (
                Mechanism::OAuthBearer,
                ClientCredentials::token("tim", "tok"),
            ),
        ] {
            let mut client = ClientExchange::new(mech.clone(), &creds).unwrap();
            let (mut server, step) = start(mech.clone(), None);
            assert_eq!(step, Step::Challenge(Vec::new()));
            let line = client.challenge_base64(b"").unwrap();
            let got = done(server.handle_line(line.expose().as_bytes()));
            assert_eq!(got.identity(), Some("tim"), "{mech}");
        }
    }

    // --- Secrets stay out of Debug --------------------------------------------------

    #[test]
    fn debug_never_shows_secrets() {
        let secret = "hunter2-s3cret";
        let all = [
            Credentials::Plain {
                authzid: "z".into(),
                authcid: "c".into(),
                password: Secret::new(secret.into()),
            },
            Credentials::Login {
                username: "u".into(),
                password: Secret::new(secret.into()),
            },
            Credentials::CramMd5 {
                username: "u".into(),
                challenge: "<1@h>".into(),
                digest: Secret::new(secret.into()),
            },
            Credentials::XOAuth2 {
                user: "u".into(),
                token: Secret::new(secret.into()),
            },
            Credentials::OAuthBearer {
                authzid: None,
                host: None,
                port: None,
                token: Secret::new(secret.into()),
            },
        ];
        for creds in all {
            let text = format!("{creds:?} {:?}", Step::Done(creds.clone()));
            assert!(!text.contains(secret), "{text}");
            assert!(text.contains("[redacted]"));
        }
        let pw = ClientCredentials::password("tim", secret);
        assert!(!format!("{pw:?}").contains(secret));
        let mut client = ClientExchange::new(Mechanism::Plain, &pw).unwrap();
        assert!(!format!("{client:?}").contains(secret));
        let ir = client.initial_response().unwrap();
        assert!(!format!("{ir:?}").contains(&encode_base64(format!("\0tim\0{secret}").as_bytes())));
        let mut login = ClientExchange::new(Mechanism::Login, &pw).unwrap();
        assert!(!format!("{login:?}").contains(secret));
        login.challenge(b"Username:").unwrap();
        assert!(!format!("{login:?}").contains(secret));
        let resp = decode_response(encode_base64(secret.as_bytes()).as_bytes()).unwrap();
        assert!(!format!("{resp:?}").contains(secret));
        let (server, _) = start(Mechanism::Login, Some(b"tim"));
        assert!(!format!("{server:?}").contains(secret));
    }

    // --- Properties -----------------------------------------------------------------

    fn any_mechanism() -> impl Strategy<Value = Mechanism> {
        prop_oneof![
            Just(Mechanism::Plain),
            Just(Mechanism::Login),
            Just(Mechanism::CramMd5),
            Just(Mechanism::XOAuth2),
            Just(Mechanism::OAuthBearer),
            Just(Mechanism::Other("SCRAM-SHA-1".into())),
        ]
    }

    /// What a hostile client may do next.
    #[derive(Debug, Clone)]
    enum Input {
        Respond(Vec<u8>),
        Line(Vec<u8>),
        Reject(Option<Vec<u8>>),
    }

    fn any_input() -> impl Strategy<Value = Input> {
        let bytes = || proptest::collection::vec(any::<u8>(), 0..80);
        // Messages shaped like the real ones reach deeper into the parsers.
        let shaped = proptest::collection::vec(
            prop_oneof![
                Just(b"\0".to_vec()),
                Just(b"\x01".to_vec()),
                Just(b"n,a=".to_vec()),
                Just(b"user=".to_vec()),
                Just(b"auth=Bearer ".to_vec()),
                Just(b"port=".to_vec()),
                Just(b"=2C".to_vec()),
                Just(b" ".to_vec()),
                "[a-z0-9,=]{0,6}".prop_map(String::into_bytes),
            ],
            0..12,
        )
        .prop_map(|parts| parts.concat());
        prop_oneof![
            bytes().prop_map(Input::Respond),
            shaped.clone().prop_map(Input::Respond),
            shaped.prop_map(|m| Input::Line(encode_base64(&m).into_bytes())),
            bytes().prop_map(Input::Line),
            proptest::option::of(bytes()).prop_map(Input::Reject),
        ]
    }

    fn username() -> impl Strategy<Value = String> {
        "[^\\x00-\\x1f\\x7f]{1,40}"
            .prop_filter("at most 255 octets", |s| s.len() <= MAX_IDENTITY_LEN)
    }

    fn password_text() -> impl Strategy<Value = String> {
        "[^\\x00]{1,40}".prop_filter("at most 255 octets", |s| s.len() <= MAX_PASSWORD_LEN)
    }

    proptest! {
        #[test]
        fn server_never_panics(
            mech in any_mechanism(),
            initial in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..80)),
            inputs in proptest::collection::vec(any_input(), 0..6),
        ) {
            let (mut server, _) = ServerExchange::start(mech, initial.as_deref(), || RFC2195_CHALLENGE.to_owned());
            for input in inputs {
                let _ = match input {
                    Input::Respond(r) => server.respond(&r),
                    Input::Line(l) => server.handle_line(&l),
                    Input::Reject(e) => server.reject(e.as_deref()),
                };
            }
        }

        #[test]
        fn client_never_panics(
            mech in any_mechanism(),
            challenges in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..5),
        ) {
            let creds = if mech.uses_token() {
                ClientCredentials::token("u", "t")
            } else {
                ClientCredentials::password("u", "p")
            };
            if let Ok(mut client) = ClientExchange::new(mech, &creds) {
                let _ = client.initial_response();
                for c in challenges {
                    let _ = client.challenge(&c);
                    let _ = client.challenge_base64(&c);
                }
            }
        }

        #[test]
        fn password_round_trip(user in username(), pass in password_text()) {
            let creds = ClientCredentials::password(user.clone(), pass.clone());
            prop_assert_eq!(
                done(pair(Mechanism::Plain, &creds).2),
                plain_creds("", &user, &pass)
            );
            prop_assert_eq!(
                done(pair(Mechanism::Login, &creds).2),
                Credentials::Login { username: user.clone(), password: Secret::new(pass.clone()) }
            );
            let cram = done(pair(Mechanism::CramMd5, &creds).2);
            prop_assert_eq!(cram.identity(), Some(user.as_str()));
            prop_assert!(cram.verify(&pass));
        }

        #[test]
        fn token_round_trip(
            user in username(),
            token in "[A-Za-z0-9._~+/-]{1,60}={0,2}",
            host in proptest::option::of("[a-z0-9.-]{1,30}"),
            port in proptest::option::of(any::<u16>()),
        ) {
            let creds = ClientCredentials::Token {
                username: user.clone(),
                token: Secret::new(token.clone()),
                host: host.clone(),
                port,
            };
            prop_assert_eq!(
                done(pair(Mechanism::XOAuth2, &creds).2),
                Credentials::XOAuth2 { user: user.clone(), token: Secret::new(token.clone()) }
            );
            prop_assert_eq!(
                done(pair(Mechanism::OAuthBearer, &creds).2),
                Credentials::OAuthBearer { authzid: Some(user), host, port, token: Secret::new(token) }
            );
        }

        #[test]
        fn response_base64_round_trip(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            let line = encode_base64(&data);
            prop_assert_eq!(decode_response(line.as_bytes()), Ok(Response::Data(Secret::new(data.clone()))));
            let arg = encode_initial_response(&data);
            prop_assert_eq!(decode_initial_response(arg.as_bytes()), Ok(Secret::new(data)));
        }
    }
}
