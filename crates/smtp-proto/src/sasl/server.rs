//! The server half of AUTH: [`ServerExchange`] turns the client's responses into a
//! [`Step`], which ends with the [`Credentials`] for the host to check. The grammar of each
//! mechanism's messages is in that mechanism's file.

use super::login::{LOGIN_PASSWORD_PROMPT, LOGIN_USERNAME_PROMPT};
use super::wire::{Response, decode_response};
use super::{
    Credentials, Mechanism, SaslError, cram_md5, identity, oauthbearer, password, plain, xoauth2,
};
use crate::secret::Secret;

/// What the server does next in an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Step {
    /// Send `334 ` followed by the base64 of these bytes
    /// ([`encode_base64`](super::encode_base64); empty bytes give `334 ` with nothing after
    /// the space), then feed the client's answer to [`ServerExchange::handle_line`] or
    /// [`ServerExchange::respond`].
    Challenge(Vec<u8>),
    /// The client has said everything: check these credentials, then answer
    /// [`AUTH_SUCCEEDED`](super::AUTH_SUCCEEDED) or call [`ServerExchange::reject`].
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

impl ServerExchange {
    /// Starts an exchange for `AUTH <mechanism> [initial-response]`.
    ///
    /// `initial_response` is the decoded argument
    /// ([`decode_initial_response`](super::decode_initial_response)), `None` when the
    /// command had none. `challenge` is called only for CRAM-MD5 and must return a fresh
    /// msg-id such as [`cram_md5_challenge`](super::cram_md5_challenge) builds, since the
    /// core has no clock and no randomness.
    ///
    /// Policy comes before this call: refuse a mechanism the server did not offer with
    /// [`AUTH_UNRECOGNIZED_MECHANISM`](super::AUTH_UNRECOGNIZED_MECHANISM), one that
    /// [`Mechanism::requires_tls`] before TLS with
    /// [`AUTH_ENCRYPTION_REQUIRED`](super::AUTH_ENCRYPTION_REQUIRED).
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
                if cram_md5::is_msg_id(&text) {
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
                let result = cram_md5::parse(response, challenge);
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
    /// is `None` (see [`oauth_error_challenge`](super::oauth_error_challenge)); the
    /// client's answer, fed in as usual, then fails with [`SaslError::Rejected`].
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
            Mechanism::Plain => plain::parse(message),
            Mechanism::XOAuth2 => xoauth2::parse(message),
            Mechanism::OAuthBearer => oauthbearer::parse(message),
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
