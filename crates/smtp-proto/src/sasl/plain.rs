//! PLAIN (RFC 4616): identities and password in one message, parsed by the server and
//! built by the client.

use super::{Credentials, SaslError, identity, malformed, password};
use crate::secret::Secret;

/// `message = [authzid] UTF8NUL authcid UTF8NUL passwd` (RFC 4616 §2): exactly two NULs;
/// authcid and passwd 1 to 255 octets, authzid 0 to 255, all UTF-8.
pub(super) fn parse(message: &[u8]) -> Result<Credentials, SaslError> {
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

/// `[authzid] UTF8NUL authcid UTF8NUL passwd` (RFC 4616 §2), from values the client has
/// already checked.
pub(super) fn message(authzid: &str, username: &str, password: &str) -> Vec<u8> {
    let mut message = Vec::with_capacity(authzid.len() + username.len() + password.len() + 2);
    message.extend_from_slice(authzid.as_bytes());
    message.push(0);
    message.extend_from_slice(username.as_bytes());
    message.push(0);
    message.extend_from_slice(password.as_bytes());
    message
}
