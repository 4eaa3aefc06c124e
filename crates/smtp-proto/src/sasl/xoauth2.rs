//! XOAUTH2 (Google's bearer-token mechanism, older than OAUTHBEARER and still common):
//! `user=` and `auth=Bearer` pairs, parsed by the server and built by the client.

use super::oauth::{bearer, key_value, set_once};
use super::{Credentials, SaslError, identity, malformed};
use crate::secret::Secret;

/// `user=` user `^A` `auth=Bearer ` token `^A^A` (Google's XOAUTH2 protocol). Unknown keys
/// are ignored; `user` and `auth` must each appear once.
pub(super) fn parse(message: &[u8]) -> Result<Credentials, SaslError> {
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

/// `user=` user `^A` `auth=Bearer ` token `^A^A`, from values the client has already
/// checked.
pub(super) fn message(username: &str, token: &str) -> String {
    format!("user={username}\x01auth=Bearer {token}\x01\x01")
}
