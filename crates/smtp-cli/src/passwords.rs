//! The `--auth-file`: `user:password` lines, or Dovecot `passwd-file` lines.
//!
//! A password without a `{SCHEME}` prefix is in clear, and is everything after the first
//! colon (so it may hold colons). With a prefix, the line is read as Dovecot reads a
//! `passwd-file` (`user:{SCHEME}hash:uid:gid:gecos:home:shell:extra`): the password field
//! ends at the next colon and the fields after it are ignored. Schemes, named as Dovecot
//! names them (case does not matter):
//!
//! - in clear: `{PLAIN}`, `{CLEAR}`;
//! - fast hashes, which a stolen file gives up quickly: `{SHA256}` (base64 of
//!   SHA-256(password)), `{SSHA256}` (base64 of SHA-256(password + salt), then the salt);
//! - slow hashes: `{ARGON2ID}` and `{ARGON2I}` (the PHC string `$argon2id$v=19$m=...`),
//!   `{SHA512-CRYPT}` (`$6$...`), `{SHA256-CRYPT}` (`$5$...`), `{BLF-CRYPT}` (bcrypt,
//!   `$2y$...`; `$2a$`, `$2b$` too), and `{CRYPT}` holding any of these crypt strings.
//!
//! Any other scheme is refused when the file is read, rather than taken for a clear-text
//! password. CRAM-MD5 needs the password in clear (RFC 2195 §2), so a hashed entry works
//! with PLAIN and LOGIN only. Blank lines and lines starting with `#` are ignored.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Condvar, Mutex};

use argon2::{Argon2, PasswordHash, PasswordVerifier as _};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::digest::{SHA256, digest};
use sha_crypt::ShaCrypt;
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
    /// A slow hash: its scheme (as a `{SCHEME}` prefix names it) and the string, checked
    /// for its syntax when the file was read.
    Slow {
        scheme: Slow,
        hash: String,
    },
}

/// The slow hashes, each verified by its own crate.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Slow {
    /// `$argon2id$...`, `$argon2i$...` (the PHC string format): the `argon2` crate.
    Argon2,
    /// `$6$...`, `$5$...`: the `sha-crypt` crate.
    ShaCrypt,
    /// `$2y$...` and its siblings: the `bcrypt` crate.
    Bcrypt,
}

impl Stored {
    /// What the start-up warning calls this entry; `None` for a slow hash.
    fn weakness(&self) -> Option<&'static str> {
        match self {
            Stored::Clear(_) => Some("clear text"),
            Stored::Sha256 { salt, .. } if salt.is_empty() => Some("SHA256"),
            Stored::Sha256 { .. } => Some("SSHA256"),
            Stored::Slow { .. } => None,
        }
    }
}

/// Users and their passwords.
#[derive(Default)]
pub(crate) struct PasswordFile {
    users: HashMap<String, Stored>,
    slow: Gate,
    /// A slow hash of the file, checked (and its answer ignored) for a user that does
    /// not exist, so that the refusal takes as long as a known user's: user names
    /// cannot be found by timing.
    decoy: Option<(Slow, String)>,
}

/// Lets a few slow hashes be computed at once, one per core: each may take tens of
/// megabytes (Argon2's `m=`) and the whole of a core, and a crowd of clients sending
/// passwords at once must not take the server's memory (Dovecot keeps them to its auth
/// worker processes likewise). Waiting blocks the thread, which is the session's own
/// (`--io blocking`) or one of tokio's blocking pool.
struct Gate {
    busy: Mutex<usize>,
    freed: Condvar,
    max: usize,
}

impl Default for Gate {
    fn default() -> Gate {
        Gate {
            busy: Mutex::new(0),
            freed: Condvar::new(),
            max: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

impl Gate {
    /// Runs `f` once fewer than `max` others are running.
    fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        let lock = || self.busy.lock().unwrap_or_else(|e| e.into_inner());
        {
            let mut busy = lock();
            while *busy >= self.max {
                busy = self.freed.wait(busy).unwrap_or_else(|e| e.into_inner());
            }
            *busy += 1;
        }
        let r = f();
        *lock() -= 1;
        self.freed.notify_one();
        r
    }
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
            let stored = match scheme(password) {
                None => Stored::Clear(password.to_owned()),
                Some((scheme, value)) => {
                    // Dovecot's passwd-file: the fields after the password are ignored.
                    let value = value.split_once(':').map_or(value, |(v, _)| v);
                    parse_scheme(&scheme, value).map_err(|why| bad(&why))?
                }
            };
            users.insert(user.to_owned(), stored);
        }
        let decoy = users.values().find_map(|stored| match stored {
            Stored::Slow { scheme, hash } => Some((*scheme, hash.clone())),
            _ => None,
        });
        Ok(PasswordFile {
            users,
            slow: Gate::default(),
            decoy,
        })
    }

    /// Whether `credentials` prove to be `user`'s. Costs real CPU time for a slow hash
    /// (see [`PasswordFile::verify_is_slow`]).
    pub(crate) fn verify(&self, user: &str, credentials: &Credentials) -> bool {
        let stored = match self.users.get(user) {
            Some(Stored::Clear(password)) => return credentials.verify(password),
            Some(stored) => stored,
            None => {
                if let (Some((scheme, hash)), Some(sent)) = (&self.decoy, password(credentials)) {
                    // The same work as for a known user; never an answer of its own.
                    let _ = self.slow.run(|| verify_slow(*scheme, sent, hash));
                }
                return false;
            }
        };
        // CRAM-MD5 and the others need the password in clear.
        let Some(sent) = password(credentials) else {
            return false;
        };
        match stored {
            Stored::Clear(_) => unreachable!("handled above"),
            Stored::Sha256 { digest: want, salt } => {
                let mut input = sent.to_vec();
                input.extend_from_slice(salt);
                let got = digest(&SHA256, &input);
                bool::from(got.as_ref().ct_eq(want.as_slice()))
            }
            Stored::Slow { scheme, hash } => self.slow.run(|| verify_slow(*scheme, sent, hash)),
        }
    }

    /// Whether checking a password of `user` costs real CPU time (a slow hash), so that
    /// an async host had better run [`PasswordFile::verify`] off its reactor threads.
    pub(crate) fn verify_is_slow(&self, user: &str) -> bool {
        match self.users.get(user) {
            Some(stored) => matches!(stored, Stored::Slow { .. }),
            None => self.decoy.is_some(),
        }
    }

    /// The users whose password is in clear or behind a fast hash, with which, sorted by
    /// name.
    pub(crate) fn weak(&self) -> Vec<(&str, &'static str)> {
        let mut weak: Vec<_> = self
            .users
            .iter()
            .filter_map(|(user, stored)| Some((user.as_str(), stored.weakness()?)))
            .collect();
        weak.sort_unstable();
        weak
    }

    /// Whether any user has a password in clear, the only kind CRAM-MD5 can check.
    pub(crate) fn any_clear(&self) -> bool {
        self.users.values().any(|s| matches!(s, Stored::Clear(_)))
    }

    /// How many users there are.
    pub(crate) fn len(&self) -> usize {
        self.users.len()
    }
}

/// Splits `{SCHEME}rest` into the scheme, upper-cased, and the rest. A `{` that does not
/// open a scheme name (letters, digits, `-`, `.`, `_`) leaves the password in clear.
fn scheme(password: &str) -> Option<(String, &str)> {
    let (name, rest) = password.strip_prefix('{')?.split_once('}')?;
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    valid.then(|| (name.to_ascii_uppercase(), rest))
}

/// Reads a password stored under `scheme`, or says why not.
fn parse_scheme(scheme: &str, value: &str) -> Result<Stored, String> {
    let slow = |want: Slow, prefixes: &[&str]| -> Result<Stored, String> {
        if !prefixes.iter().any(|p| value.starts_with(p)) {
            return Err(format!(
                "a {{{scheme}}} hash starts with {}",
                prefixes.join(" or ")
            ));
        }
        check_slow(want, value).map_err(|e| format!("bad {{{scheme}}} hash: {e}"))?;
        Ok(Stored::Slow {
            scheme: want,
            hash: value.to_owned(),
        })
    };
    match scheme {
        "PLAIN" | "CLEAR" => Ok(Stored::Clear(value.to_owned())),
        "SHA256" => {
            let digest = STANDARD.decode(value).map_err(|_| "bad base64")?;
            if digest.len() != 32 {
                return Err("a SHA-256 digest has 32 bytes".into());
            }
            Ok(Stored::Sha256 {
                digest,
                salt: Vec::new(),
            })
        }
        "SSHA256" => {
            let mut digest = STANDARD.decode(value).map_err(|_| "bad base64")?;
            if digest.len() <= 32 {
                return Err("a salted SHA-256 needs a salt after the digest".into());
            }
            let salt = digest.split_off(32);
            Ok(Stored::Sha256 { digest, salt })
        }
        "ARGON2ID" => slow(Slow::Argon2, &["$argon2id$"]),
        "ARGON2I" => slow(Slow::Argon2, &["$argon2i$"]),
        "SHA512-CRYPT" => slow(Slow::ShaCrypt, &["$6$"]),
        "SHA256-CRYPT" => slow(Slow::ShaCrypt, &["$5$"]),
        "BLF-CRYPT" => slow(Slow::Bcrypt, BCRYPT),
        // Dovecot's CRYPT is the system's crypt(3): the strings above are what it makes
        // of them; DES, MD5 and yescrypt ones are not understood here.
        "CRYPT" => match value {
            v if v.starts_with("$argon2") => slow(Slow::Argon2, &["$argon2id$", "$argon2i$"]),
            v if v.starts_with("$6$") || v.starts_with("$5$") => {
                slow(Slow::ShaCrypt, &["$6$", "$5$"])
            }
            v if BCRYPT.iter().any(|p| v.starts_with(p)) => slow(Slow::Bcrypt, BCRYPT),
            _ => Err(
                "a {CRYPT} hash here is bcrypt ($2y$), SHA-crypt ($5$, $6$) or Argon2; \
                 DES, MD5 and yescrypt ones are not supported"
                    .into(),
            ),
        },
        _ => Err(format!(
            "unsupported password scheme {{{scheme}}} (supported: PLAIN, CLEAR, SHA256, \
             SSHA256, ARGON2ID, ARGON2I, SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, CRYPT)"
        )),
    }
}

/// The prefixes of a bcrypt string (Dovecot writes `$2y$`).
const BCRYPT: &[&str] = &["$2y$", "$2b$", "$2a$", "$2x$"];

/// Checks a slow hash's syntax, so that a broken line fails at start rather than at the
/// first login.
fn check_slow(scheme: Slow, hash: &str) -> Result<(), String> {
    match scheme {
        Slow::Argon2 => {
            let parsed = PasswordHash::new(hash).map_err(|e| e.to_string())?;
            argon2::Params::try_from(&parsed).map_err(|e| e.to_string())?;
            if parsed.salt.is_none() || parsed.hash.is_none() {
                return Err("no salt or no hash".into());
            }
            Ok(())
        }
        Slow::ShaCrypt => {
            let parsed = sha_crypt::PasswordHashRef::new(hash).map_err(|e| e.to_string())?;
            // `$id$[rounds=N$]salt$hash`
            let fields = parsed.fields().count();
            if !(2..=3).contains(&fields) {
                return Err("expected $id$[rounds=N$]salt$hash".into());
            }
            Ok(())
        }
        Slow::Bcrypt => {
            // bcrypt's parser is private: 60 characters, `$2y$NN$` then 53 of its base64.
            let cost = hash.get(4..6).and_then(|c| c.parse::<u32>().ok());
            let ok = hash.len() == 60
                && hash.as_bytes()[6] == b'$'
                && cost.is_some_and(|c| (4..=31).contains(&c))
                && hash[7..]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
            if ok {
                Ok(())
            } else {
                Err("expected $2y$NN$ and 53 characters".into())
            }
        }
    }
}

/// Verifies `password` against a slow hash (checked at load).
/// The password PLAIN or LOGIN sent; `None` for the mechanisms that send none.
fn password(credentials: &Credentials) -> Option<&[u8]> {
    match credentials {
        Credentials::Plain { password, .. } | Credentials::Login { password, .. } => {
            Some(password.expose().as_bytes())
        }
        _ => None,
    }
}

fn verify_slow(scheme: Slow, password: &[u8], hash: &str) -> bool {
    match scheme {
        Slow::Argon2 => PasswordHash::new(hash)
            .is_ok_and(|h| Argon2::default().verify_password(password, &h).is_ok()),
        Slow::ShaCrypt => ShaCrypt::default().verify_password(password, hash).is_ok(),
        Slow::Bcrypt => bcrypt::verify(password, hash).unwrap_or(false),
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
        assert_eq!(
            f.weak(),
            [
                ("alice", "clear text"),
                ("bob", "SHA256"),
                ("carol", "SSHA256")
            ]
        );
    }

    /// Known answers made by other implementations: argon2-cffi (the reference C code),
    /// Apache's `htpasswd -B`, passlib's pure-Python bcrypt and SHA-crypt, and
    /// `openssl passwd -5`/`-6`. Each line: scheme and hash, the password, a wrong one.
    const KNOWN: &[(&str, &str, &str)] = &[
        (
            "{ARGON2ID}$argon2id$v=19$m=1024,t=2,p=1$rDZ/g1x3Zbwr5+pj6YP7tw$792Pa4rDa2XgmV2py84jAcsn2qUAgBfmCvw6GDMkPHc",
            "correct horse",
            "correct horse ",
        ),
        (
            "{ARGON2I}$argon2i$v=19$m=1024,t=2,p=1$mDHspjkBWB51HfA4e/46Rw$1lyJ5OcqqLIuvFEElyq5O/+aqse1/sIDQnuFEcu+nPo",
            "pässwörd",
            "passwort",
        ),
        (
            "{BLF-CRYPT}$2y$05$QqRlEqfZx6e5.hEU4f2NSes.QFOQoAQDFL/YDRZEn6zD7e/n7/vJ6",
            "battery staple",
            "battery stapler",
        ),
        (
            "{blf-crypt}$2y$04$TXDU80GI4sJU/KNpWRBOxOlp7NsMFS2IKkh4LG/PRPEiKs84Oa6Q6",
            "schön",
            "schon",
        ),
        (
            "{SHA512-CRYPT}$6$Dovecot1$bnBSeEvMtGDjAZu9FVgtRSK1XqHGUW5qAmPPA2ilPE7i.B3s4qLzrNGcmAd5VG/zHD9d5jxwhNXW8UweKzXOX1",
            "tr0ub4dor&3",
            "tr0ub4dor&4",
        ),
        (
            "{SHA512-CRYPT}$6$rounds=10000$saltsalt$ZmBr7voA56ByVicuBbp6nfy0cbnk57P7pfvtbIjI364trY.mEWr9SmM0tqNAhK63p/EFF.kAveekyEkNXUNvR.",
            "rounds",
            "Rounds",
        ),
        (
            "{SHA256-CRYPT}$5$abc$cgcp2e9c21faVh2fikKWNSIEdf8n1mYAJJcgUrG8di/",
            "pässwörd",
            "passwörd",
        ),
        (
            "{CRYPT}$6$Dovecot1$bnBSeEvMtGDjAZu9FVgtRSK1XqHGUW5qAmPPA2ilPE7i.B3s4qLzrNGcmAd5VG/zHD9d5jxwhNXW8UweKzXOX1",
            "tr0ub4dor&3",
            "tr0ub4dor&",
        ),
        (
            "{CRYPT}$2y$05$QqRlEqfZx6e5.hEU4f2NSes.QFOQoAQDFL/YDRZEn6zD7e/n7/vJ6",
            "battery staple",
            "battery",
        ),
    ];

    #[test]
    fn slow_hashes_known_answers() {
        for (stored, right, wrong) in KNOWN {
            // As Dovecot's passwd-file has them: uid, gid, gecos, home, shell, extra.
            let text = format!(
                "user@example.org:{stored}:1000:1000::/home/user::userdb_quota_rule=*:storage=1G\n"
            );
            let f = PasswordFile::parse(&text).unwrap_or_else(|e| panic!("{stored}: {e}"));
            assert!(f.verify_is_slow("user@example.org"), "{stored}");
            assert!(f.weak().is_empty(), "{stored}");
            assert!(
                f.verify("user@example.org", &plain("user@example.org", right)),
                "{stored}"
            );
            assert!(
                !f.verify("user@example.org", &plain("user@example.org", wrong)),
                "{stored} with {wrong:?}"
            );
        }
    }

    /// An unknown user costs the same slow hash as a known one (a decoy from the file,
    /// whose answer is never used), so user names cannot be found by timing.
    #[test]
    fn unknown_users_cost_a_slow_hash_and_never_match() {
        let (stored, right, _) = KNOWN[0];
        let f = PasswordFile::parse(&format!("known:{stored}\n")).unwrap();
        assert!(f.verify_is_slow("nobody"));
        // Not even with the decoy's own password.
        assert!(!f.verify("nobody", &plain("nobody", right)));
        assert!(f.verify("known", &plain("known", right)));
        // Without a slow hash in the file there is nothing to match the time of.
        let f = PasswordFile::parse("clear:pass\n").unwrap();
        assert!(!f.verify_is_slow("nobody"));
        assert!(!f.verify("nobody", &plain("nobody", "pass")));
    }

    #[test]
    fn dovecot_lines() {
        let f = PasswordFile::parse(
            "a:{PLAIN}pass:1000:1000::/home/a::\n\
             b:{CLEAR}pass\n\
             c:{sha256}9S+9MrKzuG/4jvbEkGKChfSCrxXdyylUH5S89Saj9sc=::::::\n\
             d:{weird pass\n",
        )
        .unwrap();
        assert!(f.verify("a", &plain("a", "pass")));
        assert!(f.verify("b", &plain("b", "pass")));
        assert!(f.verify("c", &plain("c", "hunter2")));
        // Not a scheme name: a clear-text password that starts with a brace.
        assert!(f.verify("d", &plain("d", "{weird pass")));
        assert!(f.any_clear());
        assert_eq!(f.len(), 4);
    }

    #[test]
    fn bad_lines_are_refused_at_load() {
        for (line, why) in [
            (
                "u:{MD5-CRYPT}$1$abc$def",
                "unsupported password scheme {MD5-CRYPT}",
            ),
            ("u:{SSHA512}abcd", "unsupported password scheme {SSHA512}"),
            (
                "u:{ARGON2ID}$argon2i$v=19$m=1024,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
                "starts with $argon2id$",
            ),
            (
                "u:{ARGON2ID}$argon2id$v=19$m=1024,t=2,p=1$c2FsdHNhbHQ",
                "bad {ARGON2ID} hash",
            ),
            (
                "u:{SHA512-CRYPT}$5$abc$cgcp2e9c21faVh2fikKWNSIEdf8n1mYAJJcgUrG8di/",
                "starts with $6$",
            ),
            ("u:{SHA512-CRYPT}$6$", "bad {SHA512-CRYPT} hash"),
            ("u:{BLF-CRYPT}$2y$05$short", "bad {BLF-CRYPT} hash"),
            (
                "u:{CRYPT}abJnggxhB/yWI",
                "DES, MD5 and yescrypt ones are not supported",
            ),
            ("u:{SHA256}c2hvcnQ=", "32 bytes"),
        ] {
            let e = PasswordFile::parse(&format!("# first\n{line}\n"))
                .err()
                .unwrap_or_else(|| panic!("{line} accepted"))
                .to_string();
            assert!(e.starts_with("line 2: ") && e.contains(why), "{line}: {e}");
        }
    }

    #[test]
    fn cram_md5_needs_clear_text() {
        let f = PasswordFile::parse(
            "u:{BLF-CRYPT}$2y$05$QqRlEqfZx6e5.hEU4f2NSes.QFOQoAQDFL/YDRZEn6zD7e/n7/vJ6\n",
        )
        .unwrap();
        assert!(!f.any_clear());
        let (mut exchange, step) =
            ServerExchange::start(Mechanism::CramMd5, None, || "<1.2@x>".into());
        let Step::Challenge(_) = step else { panic!() };
        let Step::Done(c) = exchange.respond(b"u 0123456789abcdef0123456789abcdef") else {
            panic!()
        };
        assert!(!f.verify("u", &c));
    }

    #[test]
    fn gate_lets_max_through_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let gate = Gate {
            max: 2,
            ..Gate::default()
        };
        let (now, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| {
                    gate.run(|| {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        now.fetch_sub(1, Ordering::SeqCst);
                    })
                });
            }
        });
        assert!((1..=2).contains(&most.load(Ordering::SeqCst)));
        assert_eq!(*gate.busy.lock().unwrap(), 0);
    }
}
