//! The `--auth-file`: `user:password` lines.
//!
//! A password may be stored in clear, or hashed in Dovecot's formats `{SHA256}` (base64 of
//! SHA-256(password)) and `{SSHA256}` (base64 of SHA-256(password + salt) followed by the
//! salt). CRAM-MD5 needs the password in clear (RFC 2195 §2), so a hashed entry works with
//! PLAIN and LOGIN only. Blank lines and lines starting with `#` are ignored.

use std::collections::HashMap;
use std::io;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::digest::{SHA256, digest};
use smtp_proto::sasl::Credentials;
use subtle::ConstantTimeEq as _;

/// How a password is stored.
#[derive(Clone, PartialEq, Eq)]
enum Stored {
    Clear(String),
    /// SHA-256 digest and salt (empty for `{SHA256}`).
    Sha256 {
        digest: Vec<u8>,
        salt: Vec<u8>,
    },
}

/// Users and their passwords.
#[derive(Default)]
pub(crate) struct PasswordFile {
    users: HashMap<String, Stored>,
}

impl PasswordFile {
    /// Reads a file.
    pub(crate) fn load(path: &Path) -> io::Result<PasswordFile> {
        PasswordFile::parse(&std::fs::read_to_string(path)?)
    }

    /// Parses the file's text.
    pub(crate) fn parse(text: &str) -> io::Result<PasswordFile> {
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| {
                io::Error::new(io::ErrorKind::InvalidData, format!("line {}: {why}", n + 1))
            };
            let (user, password) = line
                .split_once(':')
                .ok_or_else(|| bad("expected user:password"))?;
            if user.is_empty() {
                return Err(bad("empty user name"));
            }
            let stored = if let Some(b64) = password.strip_prefix("{SHA256}") {
                let digest = STANDARD.decode(b64).map_err(|_| bad("bad base64"))?;
                if digest.len() != 32 {
                    return Err(bad("a SHA-256 digest has 32 bytes"));
                }
                Stored::Sha256 {
                    digest,
                    salt: Vec::new(),
                }
            } else if let Some(b64) = password.strip_prefix("{SSHA256}") {
                let mut digest = STANDARD.decode(b64).map_err(|_| bad("bad base64"))?;
                if digest.len() <= 32 {
                    return Err(bad("a salted SHA-256 needs a salt after the digest"));
                }
                let salt = digest.split_off(32);
                Stored::Sha256 { digest, salt }
            } else {
                Stored::Clear(
                    password
                        .strip_prefix("{PLAIN}")
                        .unwrap_or(password)
                        .to_owned(),
                )
            };
            users.insert(user.to_owned(), stored);
        }
        Ok(PasswordFile { users })
    }

    /// Whether `credentials` prove to be `user`'s.
    pub(crate) fn verify(&self, user: &str, credentials: &Credentials) -> bool {
        match self.users.get(user) {
            Some(Stored::Clear(password)) => credentials.verify(password),
            Some(Stored::Sha256 { digest: want, salt }) => {
                let sent = match credentials {
                    Credentials::Plain { password, .. } | Credentials::Login { password, .. } => {
                        password.expose()
                    }
                    _ => return false,
                };
                let mut input = sent.as_bytes().to_vec();
                input.extend_from_slice(salt);
                let got = digest(&SHA256, &input);
                bool::from(got.as_ref().ct_eq(want.as_slice()))
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smtp_proto::sasl::{Mechanism, ServerExchange, Step};

    fn plain(user: &str, password: &str) -> Credentials {
        let ir = format!("\0{user}\0{password}");
        let (_, step) = ServerExchange::start(Mechanism::Plain, Some(ir.as_bytes()), String::new);
        let Step::Done(c) = step else { panic!() };
        c
    }

    #[test]
    fn clear_and_hashed() {
        let salted = {
            let mut d = digest(&SHA256, b"s3cretNaCl").as_ref().to_vec();
            d.extend_from_slice(b"NaCl");
            STANDARD.encode(d)
        };
        let text = format!(
            "# users\n\nalice:wonder:land\nbob:{{SHA256}}{}\ncarol:{{SSHA256}}{salted}\n",
            STANDARD.encode(digest(&SHA256, b"builder"))
        );
        let f = PasswordFile::parse(&text).unwrap();
        assert!(f.verify("alice", &plain("alice", "wonder:land")));
        assert!(!f.verify("alice", &plain("alice", "wonder")));
        assert!(f.verify("bob", &plain("bob", "builder")));
        assert!(!f.verify("bob", &plain("bob", "Builder")));
        assert!(f.verify("carol", &plain("carol", "s3cret")));
        assert!(!f.verify("dave", &plain("dave", "x")));
        assert!(PasswordFile::parse("nocolon\n").is_err());
    }
}
