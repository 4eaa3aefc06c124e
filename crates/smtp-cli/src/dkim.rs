//! DKIM signing (RFC 6376) with the `mail-auth` crate: the `DOMAIN:SELECTOR:KEYFILE` specs of
//! `--dkim-sign`, the keys they name, and the `DKIM-Signature:` fields to prepend to a message.
//!
//! Shared by `smtp send --dkim-sign` and `smtp serve --dkim-sign`; `smtp dkim keygen`
//! ([`keygen`]) makes the keys and prints the TXT records to publish.

pub(crate) mod keygen;

use std::path::{Path, PathBuf};

use mail_auth::AuthenticatedMessage;
use mail_auth::common::crypto::{Algorithm, DkimKey, Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::{HeaderWriter, Writable};
use mail_auth::dkim::DkimSigner;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;

/// The header fields signed when the message has them: the list RFC 6376 §5.4.1 says SHOULD be
/// signed, which mail-auth's `DkimSigner::headers` documentation points to ("include at least
/// `From`"; its README example signs From, To and Subject, all in this list).
///
/// Only the fields present are named in `h=`: mail-auth would add an absent name to `h=` too
/// (oversigning), which breaks the signature when a list adds `List-Id` or a resender adds
/// `Resent-*` — the fields RFC 6376 §5.4.2 expects to be added later.
const SIGNED_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Resent-Date",
    "Resent-From",
    "Resent-To",
    "Resent-Cc",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Help",
    "List-Unsubscribe",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
];

/// One `--dkim-sign DOMAIN:SELECTOR:KEYFILE`: sign mail from DOMAIN with the key in KEYFILE,
/// published at `SELECTOR._domainkey.DOMAIN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DkimSpec {
    /// The signing domain (`d=`), matched against the `From:` domain.
    pub(crate) domain: String,
    /// The selector (`s=`).
    pub(crate) selector: String,
    /// The private key file (PEM).
    pub(crate) key: PathBuf,
}

/// Parses `DOMAIN:SELECTOR:KEYFILE` (a clap value parser). The key path may itself hold ':',
/// so only the first two separate.
pub(crate) fn parse_dkim_sign(s: &str) -> Result<DkimSpec, String> {
    let mut parts = s.splitn(3, ':');
    let (Some(domain), Some(selector), Some(key)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("{s:?}: expected DOMAIN:SELECTOR:KEYFILE"));
    };
    if !is_dns_name(domain) {
        return Err(format!("{domain:?}: not a domain name"));
    }
    if !is_dns_name(selector) {
        return Err(format!(
            "{selector:?}: not a selector (RFC 6376 §3.1: dot-separated labels)"
        ));
    }
    if key.is_empty() {
        return Err(format!("{s:?}: the key file is missing"));
    }
    Ok(DkimSpec {
        domain: domain.to_owned(),
        selector: selector.to_owned(),
        key: PathBuf::from(key),
    })
}

/// Whether `s` is dot-separated labels of letters, digits and hyphens (RFC 1035 §2.3.1, as
/// RFC 6376 §3.1 and §3.5 `d=` require), each label 1 to 63 octets, not starting or ending
/// with a hyphen.
pub(crate) fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// One loaded key with its domain and selector.
struct Signer {
    /// The signing domain (`d=`) as given.
    domain: String,
    /// The selector (`s=`).
    selector: String,
    /// The private key.
    key: DkimKey,
}

/// A borrowed key, so that one loaded key serves every message: mail-auth's `DkimSigner`
/// owns its key and is consumed by its builder, and the header list is chosen per message.
struct KeyRef<'a>(&'a DkimKey);

impl SigningKey for KeyRef<'_> {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        self.0.sign(input)
    }

    fn algorithm(&self) -> Algorithm {
        self.0.algorithm()
    }
}

/// The keys of every `--dkim-sign`, loaded once and shared by all sessions.
pub(crate) struct Signers {
    /// In the order given; several keys for one domain (RSA and Ed25519, RFC 8463 §4) all sign.
    signers: Vec<Signer>,
}

impl std::fmt::Debug for Signers {
    /// Names the domains and selectors, never the keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.signers
                    .iter()
                    .map(|s| format!("{}:{}", s.domain, s.selector)),
            )
            .finish()
    }
}

impl Signers {
    /// Reads each spec's key file: RSA in PEM, PKCS#1 (`RSA PRIVATE KEY`) or PKCS#8
    /// (`PRIVATE KEY`), or Ed25519 in PKCS#8 PEM (RFC 8463). The error names the file and why.
    pub(crate) fn load(specs: &[DkimSpec]) -> Result<Signers, String> {
        let signers = specs
            .iter()
            .map(|spec| {
                let key = load_key(&spec.key)
                    .map_err(|why| format!("DKIM key file {}: {why}", spec.key.display()))?;
                Ok(Signer {
                    domain: spec.domain.clone(),
                    selector: spec.selector.clone(),
                    key,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Signers { signers })
    }

    /// Whether no key was given (nothing will ever be signed).
    pub(crate) fn is_empty(&self) -> bool {
        self.signers.is_empty()
    }

    /// The `DKIM-Signature:` header field(s) to prepend to `message`, folded and
    /// CRLF-terminated, one per key whose domain is the `From:` domain (case-insensitive, the
    /// exact domain: a key for `example.com` does not sign `a@sub.example.com`). `None` when no
    /// key matches — also when the message has no `From:` address or several (several `From:`
    /// fields, or one with several mailboxes): which author's domain would sign is then
    /// ambiguous, and RFC 7489 §6.6.1 lets receivers reject such messages anyway.
    ///
    /// Canonicalisation is relaxed/relaxed, mail-auth's default and recommendation (RFC 6376
    /// §3.4: survives the whitespace and folding changes of relays); the signed fields are those
    /// of [`SIGNED_HEADERS`] that the message has; no `l=`, no `x=`.
    pub(crate) fn sign(&self, message: &[u8]) -> Option<String> {
        let parsed = AuthenticatedMessage::parse(message)?;
        let [from] = parsed.from.as_slice() else {
            return None;
        };
        let from_fields = parsed
            .headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(b"From"))
            .count();
        if from_fields != 1 {
            return None;
        }
        let (_, from_domain) = from.rsplit_once('@')?;
        let headers: Vec<&str> = SIGNED_HEADERS
            .iter()
            .copied()
            .filter(|wanted| {
                parsed
                    .headers
                    .iter()
                    .any(|(name, _)| name.eq_ignore_ascii_case(wanted.as_bytes()))
            })
            .collect();
        let mut fields = String::new();
        for signer in self
            .signers
            .iter()
            .filter(|s| s.domain.eq_ignore_ascii_case(from_domain))
        {
            let signed = DkimSigner::from_key(KeyRef(&signer.key))
                .domain(signer.domain.as_str())
                .selector(signer.selector.as_str())
                .headers(headers.iter().copied())
                .sign(message);
            match signed {
                Ok(signature) => fields.push_str(&signature.to_header()),
                Err(e) => {
                    tracing::warn!(domain = %signer.domain, selector = %signer.selector,
                        error = %e, "DKIM signing failed")
                }
            }
        }
        (!fields.is_empty()).then_some(fields)
    }

    /// `message` with its `DKIM-Signature:` fields ([`Signers::sign`]) in front; unchanged
    /// when no key matches.
    pub(crate) fn signed(&self, message: Vec<u8>) -> Vec<u8> {
        match self.sign(&message) {
            Some(fields) => [fields.into_bytes(), message].concat(),
            None => message,
        }
    }
}

/// Reads a PEM private key: PKCS#8 is tried as Ed25519, then as RSA; PKCS#1 is RSA.
fn load_key(path: &Path) -> Result<DkimKey, String> {
    let pem = std::fs::read(path).map_err(|e| e.to_string())?;
    let der =
        PrivateKeyDer::from_pem_slice(&pem).map_err(|e| format!("no PEM private key ({e})"))?;
    match der {
        PrivateKeyDer::Pkcs8(ref pkcs8) => {
            if let Ok(key) = Ed25519Key::from_pkcs8_der(pkcs8.secret_pkcs8_der()) {
                return Ok(key.into());
            }
            rsa_key(der)
        }
        PrivateKeyDer::Pkcs1(_) => rsa_key(der),
        _ => {
            Err("an EC (SEC1) key: DKIM signs with RSA or Ed25519 only (RFC 8301, RFC 8463)".into())
        }
    }
}

/// An RSA key, refused below the 1024 bits RFC 8301 §3.2 requires of signers.
fn rsa_key(der: PrivateKeyDer<'_>) -> Result<DkimKey, String> {
    let key = RsaKey::<Sha256>::from_key_der(der)
        .map_err(|e| format!("neither an Ed25519 nor an RSA private key ({e})"))?;
    let bits = rsa_public_bits(&key.public_key());
    if bits < keygen::MIN_RSA_BITS {
        return Err(format!(
            "a {bits}-bit RSA key; RFC 8301 requires at least {}",
            keygen::MIN_RSA_BITS
        ));
    }
    Ok(key.into())
}

/// The modulus size of a PKCS#1 `RSAPublicKey`, 0 if it cannot be read.
fn rsa_public_bits(pkcs1_der: &[u8]) -> usize {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::traits::PublicKeyParts;
    rsa::RsaPublicKey::from_pkcs1_der(pkcs1_der).map_or(0, |k| k.n().bits())
}

#[cfg(test)]
mod tests {
    use std::borrow::Borrow;
    use std::collections::HashMap;
    use std::hash::Hash;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use mail_auth::common::parse::TxtRecordParser;
    use mail_auth::common::verify::DomainKey;
    use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
    use mail_auth::{DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt};

    use super::keygen::{KeyAlgorithm, generate};
    use super::*;

    #[test]
    fn parse_dkim_sign_table() {
        let ok = |domain: &str, selector: &str, key: &str| {
            Ok(DkimSpec {
                domain: domain.into(),
                selector: selector.into(),
                key: key.into(),
            })
        };
        for (input, expected) in [
            ("example.com:s1:/k.pem", ok("example.com", "s1", "/k.pem")),
            (
                "Example.COM:2026-a:k.pem",
                ok("Example.COM", "2026-a", "k.pem"),
            ),
            (
                "ex.org:a.b:/tmp/c:d:e.pem",
                ok("ex.org", "a.b", "/tmp/c:d:e.pem"),
            ),
            ("ex.org:s:C:\\k", ok("ex.org", "s", "C:\\k")),
        ] {
            assert_eq!(parse_dkim_sign(input), expected, "{input}");
        }
        for input in [
            "",
            "example.com",
            "example.com:s1",
            "example.com:s1:",
            ":s1:/k.pem",
            "example.com::/k.pem",
            "exa mple.com:s1:/k.pem",
            "a@example.com:s1:/k.pem",
            "example.com.:s1:/k.pem",
            "-x.com:s1:/k.pem",
            "example.com:s_1:/k.pem",
        ] {
            assert!(parse_dkim_sign(input).is_err(), "{input:?} accepted");
        }
    }

    /// TXT records for mail-auth's verifier, from memory: mail-auth's own test cache is private
    /// (`cfg(test)`), so this implements its public `ResolverCache` for TXT records.
    struct TxtCache(Mutex<HashMap<Box<str>, Txt>>);

    impl ResolverCache<Box<str>, Txt> for TxtCache {
        fn get<Q>(&self, name: &Q) -> Option<Txt>
        where
            Box<str>: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            self.0.lock().unwrap().get(name).cloned()
        }

        fn remove<Q>(&self, name: &Q) -> Option<Txt>
        where
            Box<str>: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            self.0.lock().unwrap().remove(name)
        }

        fn insert(&self, key: Box<str>, value: Txt, _valid_until: Instant) {
            self.0.lock().unwrap().insert(key, value);
        }
    }

    /// mail-auth's verdicts on `message`, the key records coming from `records` only (the
    /// resolver has no servers: nothing leaves the machine).
    fn verify(records: &[(&str, &str)], message: &[u8]) -> Vec<DkimResult> {
        let cache = TxtCache(Mutex::new(HashMap::new()));
        for (name, record) in records {
            let key = DomainKey::parse(record.as_bytes()).expect("key record");
            cache.insert(
                (*name).into(),
                Txt::from(key),
                Instant::now() + Duration::from_secs(3600),
            );
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let authenticator = MessageAuthenticator::new(
                ResolverConfig::from_parts(None, Vec::new(), Vec::new()),
                ResolverOpts::default(),
            )
            .unwrap();
            let parsed = AuthenticatedMessage::parse(message).unwrap();
            authenticator
                .verify_dkim(Parameters::new(&parsed).with_txt_cache(&cache))
                .await
                .iter()
                .map(|output| output.result().clone())
                .collect()
        })
    }

    /// A key written to `dir` as `NAME.pem`, its spec, and its key record.
    fn key(dir: &Path, name: &str, domain: &str, algorithm: KeyAlgorithm) -> (DkimSpec, String) {
        let key = generate(algorithm, 1024).unwrap();
        let path = dir.join(format!("{name}.pem"));
        std::fs::write(&path, &key.private_pem).unwrap();
        let spec = DkimSpec {
            domain: domain.into(),
            selector: name.into(),
            key: path,
        };
        (spec, key.record)
    }

    const MESSAGE: &str = "From: Alice <alice@Example.COM>\r\n\
        To: bob@example.org\r\n\
        Subject: DKIM\r\n\
        Date: Tue, 8 Dec 2026 02:00:00 +0000\r\n\
        Message-ID: <1@example.com>\r\n\
        X-Other: not signed\r\n\
        \r\n\
        Hello,\r\n  world.\r\n";

    #[test]
    fn signs_and_mail_auth_verifies_rsa_and_ed25519() {
        let dir = tempfile::tempdir().unwrap();
        let (rsa, rsa_record) = key(dir.path(), "rsa", "example.com", KeyAlgorithm::Rsa);
        let (ed, ed_record) = key(dir.path(), "ed", "example.com", KeyAlgorithm::Ed25519);
        let (other, _) = key(dir.path(), "other", "example.net", KeyAlgorithm::Ed25519);
        let signers = Signers::load(&[rsa, ed, other]).unwrap();
        assert!(!signers.is_empty());

        let fields = signers.sign(MESSAGE.as_bytes()).expect("signed");
        let signed = format!("{fields}{MESSAGE}");
        let starts: Vec<&str> = fields
            .split("\r\n")
            .filter(|line| !line.starts_with('\t') && !line.is_empty())
            .collect();
        assert_eq!(starts.len(), 2, "one field per example.com key: {fields}");
        assert!(
            starts[0].starts_with(
                "DKIM-Signature: v=1; a=rsa-sha256; s=rsa; d=example.com; c=relaxed/relaxed;"
            ),
            "{fields}"
        );
        assert!(
            starts[1].starts_with(
                "DKIM-Signature: v=1; a=ed25519-sha256; s=ed; d=example.com; c=relaxed/relaxed;"
            ),
            "{fields}"
        );
        assert!(fields.ends_with("\r\n") && !fields.contains("\n\n"));
        assert!(
            fields.split("\r\n").all(|line| line.len() <= 78),
            "folded: {fields}"
        );
        let unfolded = fields.replace("\r\n\t", "");
        assert!(unfolded.contains("h=Date:Subject:To:From;"), "{fields}");
        assert!(!unfolded.contains("l="), "{fields}");

        let records = [
            ("rsa._domainkey.example.com.", rsa_record.as_str()),
            ("ed._domainkey.example.com.", ed_record.as_str()),
        ];
        assert_eq!(
            verify(&records, signed.as_bytes()),
            [DkimResult::Pass, DkimResult::Pass]
        );
        // One body byte changed: both fail, so the verdict above means something.
        let tampered = signed.replace("world.", "world!");
        let results = verify(&records, tampered.as_bytes());
        assert_eq!(results.len(), 2);
        assert!(
            results
                .iter()
                .all(|r| matches!(r, DkimResult::Neutral(_) | DkimResult::Fail(_))),
            "{results:?}"
        );
    }

    #[test]
    fn no_key_for_the_from_domain_no_signature() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, _) = key(dir.path(), "ed", "example.com", KeyAlgorithm::Ed25519);
        let signers = Signers::load(&[spec]).unwrap();
        for message in [
            "From: a@example.org\r\n\r\nbody\r\n",
            "From: a@sub.example.com\r\n\r\nbody\r\n",
            "From: a@example.com, b@example.com\r\nSender: a@example.com\r\n\r\nbody\r\n",
            "From: a@example.com\r\nFrom: b@example.com\r\n\r\nbody\r\n",
            "To: a@example.com\r\n\r\nbody\r\n",
        ] {
            assert_eq!(signers.sign(message.as_bytes()), None, "{message}");
        }
        assert!(
            signers
                .sign(b"From: A <a@EXAMPLE.com>\r\n\r\nbody\r\n")
                .is_some()
        );
        assert!(Signers::load(&[]).unwrap().is_empty());
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let spec = |path: PathBuf| DkimSpec {
            domain: "example.com".into(),
            selector: "s".into(),
            key: path,
        };
        let missing = dir.path().join("missing.pem");
        let err = Signers::load(&[spec(missing.clone())]).unwrap_err();
        assert!(
            err.starts_with(&format!("DKIM key file {}: ", missing.display())),
            "{err}"
        );
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a key\n").unwrap();
        let err = Signers::load(&[spec(garbage.clone())]).unwrap_err();
        assert!(
            err.starts_with(&format!(
                "DKIM key file {}: no PEM private key",
                garbage.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn signers_are_send_and_sync() {
        fn shared<T: Send + Sync>() {}
        shared::<Signers>();
    }
}
