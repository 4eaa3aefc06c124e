//! CRAM-MD5 (RFC 2195): the server's msg-id challenge, the client's `username SP digest`
//! answer, and the HMAC-MD5 (RFC 2104) both sides compute.

use hmac::{Hmac, Mac};
use md5::Md5;

use super::{Credentials, MAX_IDENTITY_LEN, SaslError, identity, malformed};
use crate::secret::Secret;

type HmacMd5 = Hmac<Md5>;

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

/// `response = username SP digest`, digest = 32 lower-case hex digits (RFC 2195 §2). The
/// user name may hold spaces, so the split is at the last one.
pub(super) fn parse(response: &[u8], challenge: String) -> Result<Credentials, SaslError> {
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

/// `<...@...>` of visible ASCII: the shape RFC 2195 §2 asks of a challenge.
pub(super) fn is_msg_id(text: &str) -> bool {
    text.len() <= 2 * MAX_IDENTITY_LEN
        && text.starts_with('<')
        && text.ends_with('>')
        && text.len() > 2
        && text[1..text.len() - 1].contains('@')
        && text.bytes().all(|b| b.is_ascii_graphic())
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

/// Whether `digest` (32 lower-case hex digits) is HMAC-MD5(password, challenge): the check
/// behind [`Credentials::verify`], constant-time through [`Mac::verify_slice`].
pub(super) fn verify(challenge: &str, digest: &str, password: &str) -> bool {
    let Some(expected) = decode_hex16(digest) else {
        return false;
    };
    let mut mac = hmac_md5(password.as_bytes());
    mac.update(challenge.as_bytes());
    mac.verify_slice(&expected).is_ok()
}

/// The client's answer: `username SP hex(HMAC-MD5(password, challenge))` (RFC 2195 §2).
pub(super) fn response(username: &str, password: &str, challenge: &[u8]) -> Vec<u8> {
    let mut mac = hmac_md5(password.as_bytes());
    mac.update(challenge);
    let digest = hex_lower(&mac.finalize().into_bytes());
    format!("{username} {digest}").into_bytes()
}
