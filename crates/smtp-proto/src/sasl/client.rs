//! The client half of AUTH: [`select_mechanism`] picks a mechanism among those the server
//! offers, and [`ClientExchange`] builds the initial response and answers the server's
//! challenges from [`ClientCredentials`]. The bytes of each mechanism's
//! messages are built in that mechanism's file.

use super::login::{LoginPrompt, login_prompt};
use super::oauth::is_token68;
use super::wire::{decode_base64, encode_base64, encode_initial_response};
use super::{
    MAX_AUTH_COMMAND_LEN, Mechanism, SaslError, check_identity, check_password, cram_md5,
    oauthbearer, plain, xoauth2,
};
use crate::secret::Secret;

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

/// The client half of one AUTH exchange.
///
/// - [`ClientExchange::new`] validates the credentials for the mechanism.
/// - [`ClientExchange::initial_response`] gives the AUTH command's argument for a
///   client-first mechanism, when it fits the command line.
/// - [`ClientExchange::challenge`] (decoded) or [`ClientExchange::challenge_base64`] (the
///   text of a `334` reply) answers each challenge. On an error the client sends
///   [`CANCEL`](super::CANCEL) and gives up.
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
    /// sent: identities at most [`MAX_IDENTITY_LEN`](super::MAX_IDENTITY_LEN) octets
    /// without control characters, passwords 1 to
    /// [`MAX_PASSWORD_LEN`](super::MAX_PASSWORD_LEN) octets without NUL, tokens RFC 6750
    /// b64tokens.
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
                    Mechanism::Plain => ClientState::Pending(Secret::new(plain::message(
                        authzid,
                        username,
                        password.expose(),
                    ))),
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
                    xoauth2::message(username, token.expose())
                } else {
                    oauthbearer::message(username, token.expose(), host.as_deref(), *port)?
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
                Ok(Secret::new(cram_md5::response(
                    &username,
                    password.expose(),
                    challenge,
                )))
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
