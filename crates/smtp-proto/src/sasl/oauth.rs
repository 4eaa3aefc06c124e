//! What XOAUTH2 and OAUTHBEARER share: `key=value` pairs and the `Bearer` auth value with
//! its RFC 6750 b64token.

use super::{SaslError, malformed};

/// `key "=" value`, key = 1*ALPHA (RFC 7628 §3.1; XOAUTH2 uses the same shape).
pub(super) fn key_value<'a>(
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

pub(super) fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    mechanism: &'static str,
) -> Result<(), SaslError> {
    if slot.is_some() {
        return Err(malformed(mechanism, "key repeated"));
    }
    *slot = Some(value);
    Ok(())
}

/// `auth-value = "Bearer" 1*SP b64token` (RFC 7628 §3.1 via RFC 6750 §2.1; the scheme is
/// case-insensitive).
pub(super) fn bearer<'a>(value: &'a [u8], mechanism: &'static str) -> Result<&'a str, SaslError> {
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
pub(super) fn is_token68(token: &[u8]) -> bool {
    let body_end = token.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    body_end > 0
        && token[..body_end]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(b))
}
