//! LOGIN (draft-murchison-sasl-login): the two prompts a server sends and how a client
//! recognises them. The exchange itself is two plain answers, kept in the server's and the
//! client's state machines.

/// LOGIN's first challenge (draft-murchison-sasl-login §2); base64 `VXNlcm5hbWU6`.
pub const LOGIN_USERNAME_PROMPT: &[u8] = b"Username:";

/// LOGIN's second challenge; base64 `UGFzc3dvcmQ6`.
pub const LOGIN_PASSWORD_PROMPT: &[u8] = b"Password:";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LoginPrompt {
    Username,
    Password,
}

/// Recognises `Username:`, `User Name`, `Password:` in any case; servers vary.
pub(super) fn login_prompt(challenge: &[u8]) -> Option<LoginPrompt> {
    let lower = challenge.to_ascii_lowercase();
    let has = |needle: &[u8]| lower.windows(needle.len()).any(|w| w == needle);
    match (has(b"user"), has(b"pass")) {
        (true, false) => Some(LoginPrompt::Username),
        (false, true) => Some(LoginPrompt::Password),
        _ => None,
    }
}
