//! Mechanism names (RFC 4422 §3.1), parsed and printed, and what each implies (TLS,
//! client-first, token or password): kept apart from the exchanges because the EHLO `AUTH`
//! keyword and the AUTH command need the names without any exchange.

use std::fmt;
use std::str::FromStr;

use super::{MAX_MECHANISM_NAME_LEN, SaslError};

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
    /// latter). A server answers
    /// [`AUTH_ENCRYPTION_REQUIRED`](super::AUTH_ENCRYPTION_REQUIRED) for these before TLS.
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
    pub(super) fn static_name(&self) -> &'static str {
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
