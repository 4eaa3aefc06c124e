//! `smtp dkim keygen`: a new DKIM key pair (mail-auth's `DkimKeyPair`), the private key written
//! to a new PEM file, the TXT record to publish printed on standard output.
//!
//! Exit status: 0 done; 64 (EX_USAGE) bad arguments; 73 (EX_CANTCREAT) the key file exists or
//! cannot be created; 70 (EX_SOFTWARE) key generation failed.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use clap::{Args, Subcommand, ValueEnum};
use mail_auth::dkim::generate::DkimKeyPair;
use pem_rfc7468::LineEnding;

use crate::{EX_CANTCREAT, EX_SOFTWARE, EX_USAGE};

/// The smallest RSA key RFC 8301 §3.2 lets a signer use.
pub(crate) const MIN_RSA_BITS: usize = 1024;
/// The largest RSA key verifiers must handle (RFC 8301 §3.2); larger ones may not verify.
pub(crate) const MAX_RSA_BITS: usize = 4096;
/// The RSA key size RFC 8301 §3.2 recommends.
const DEFAULT_RSA_BITS: usize = 2048;
/// A character-string in a TXT record holds at most 255 octets (RFC 1035 §3.3; RFC 6376
/// §3.6.2.2 splits longer records into several, which verifiers concatenate).
pub(crate) const TXT_STRING_MAX: usize = 255;

/// Options of `smtp dkim`.
#[derive(Debug, Args)]
pub(crate) struct DkimArgs {
    #[command(subcommand)]
    command: DkimCommand,
}

#[derive(Debug, Subcommand)]
enum DkimCommand {
    /// Make a key pair: the private key in a new PEM file, the TXT record on standard output.
    Keygen(KeygenArgs),
}

/// The key algorithm (`k=` in the record, `a=` in signatures).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum KeyAlgorithm {
    /// RSA, signing rsa-sha256 (RFC 8301).
    Rsa,
    /// Ed25519, signing ed25519-sha256 (RFC 8463); not all verifiers know it yet, so publish an
    /// RSA key beside it.
    Ed25519,
}

/// Options of `smtp dkim keygen`.
#[derive(Debug, Args)]
struct KeygenArgs {
    /// The signing domain (`d=`).
    #[arg(long, value_parser = dns_name)]
    domain: String,
    /// The selector (`s=`): the record is published at SELECTOR._domainkey.DOMAIN.
    #[arg(long, value_parser = dns_name)]
    selector: String,
    /// The key algorithm.
    #[arg(long, value_enum, default_value_t = KeyAlgorithm::Rsa)]
    algorithm: KeyAlgorithm,
    /// RSA key size in bits, 1024 to 4096 (RFC 8301); 2048 when absent. RSA only.
    #[arg(long)]
    bits: Option<usize>,
    /// The private key file to create (PEM, mode 0600); an existing file is not overwritten.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Clap value parser: a DNS name (letters, digits, hyphens; dot-separated labels).
fn dns_name(s: &str) -> Result<String, String> {
    if super::is_dns_name(s) {
        Ok(s.to_owned())
    } else {
        Err(format!("{s:?} is not a DNS name"))
    }
}

/// Runs `smtp dkim`; returns the exit status.
pub(crate) fn main(args: DkimArgs) -> u8 {
    match args.command {
        DkimCommand::Keygen(args) => keygen(args),
    }
}

/// Runs `smtp dkim keygen`.
fn keygen(args: KeygenArgs) -> u8 {
    let bits = match (args.algorithm, args.bits) {
        (KeyAlgorithm::Ed25519, Some(_)) => {
            eprintln!("smtp dkim keygen: --bits is for --algorithm rsa only");
            return EX_USAGE;
        }
        (KeyAlgorithm::Rsa, Some(bits)) if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) => {
            eprintln!(
                "smtp dkim keygen: --bits {bits}: RSA keys are {MIN_RSA_BITS} to {MAX_RSA_BITS} \
                 bits (RFC 8301 §3.2)"
            );
            return EX_USAGE;
        }
        (_, bits) => bits.unwrap_or(DEFAULT_RSA_BITS),
    };
    // Created before the (slow) generation, so that an existing file is refused at once.
    let mut file = match create_key_file(&args.out) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("smtp dkim keygen: {}: {e}", args.out.display());
            return EX_CANTCREAT;
        }
    };
    let generated = generate(args.algorithm, bits).and_then(|key| {
        file.write_all(key.private_pem.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("{}: {e}", args.out.display()))?;
        Ok(key)
    });
    match generated {
        Ok(key) => {
            println!("{}", zone_line(&args.selector, &args.domain, &key.record));
            0
        }
        Err(e) => {
            let _ = std::fs::remove_file(&args.out);
            eprintln!("smtp dkim keygen: {e}");
            EX_SOFTWARE
        }
    }
}

/// Creates `path`, new, readable by its owner only (it holds a private key).
fn create_key_file(path: &Path) -> std::io::Result<std::fs::File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                std::io::Error::new(e.kind(), "exists; not overwriting a key file")
            } else {
                e
            }
        })
}

/// A generated key: the private key in PEM, the key record's text.
pub(crate) struct GeneratedKey {
    /// PKCS#1 `RSA PRIVATE KEY` for RSA, PKCS#8 `PRIVATE KEY` for Ed25519.
    pub(crate) private_pem: String,
    /// `v=DKIM1; k=...; p=...` (RFC 6376 §3.6.1), unsplit.
    pub(crate) record: String,
}

/// Generates a key pair with mail-auth. An RSA public key is published as a
/// SubjectPublicKeyInfo, what `openssl rsa -pubout` and opendkim-genkey publish and every
/// verifier reads (mail-auth gives PKCS#1); an Ed25519 one as the raw 32 octets (RFC 8463 §4.2).
pub(crate) fn generate(algorithm: KeyAlgorithm, bits: usize) -> Result<GeneratedKey, String> {
    let (pair, label, k) = match algorithm {
        KeyAlgorithm::Rsa => (DkimKeyPair::generate_rsa(bits), "RSA PRIVATE KEY", "rsa"),
        KeyAlgorithm::Ed25519 => (DkimKeyPair::generate_ed25519(), "PRIVATE KEY", "ed25519"),
    };
    let pair = pair.map_err(|e| format!("key generation failed: {e}"))?;
    let public = match algorithm {
        KeyAlgorithm::Rsa => rsa_spki(pair.public_key())?,
        KeyAlgorithm::Ed25519 => pair.public_key().to_vec(),
    };
    let private_pem = pem_rfc7468::encode_string(label, LineEnding::LF, pair.private_key())
        .map_err(|e| format!("PEM encoding failed: {e}"))?;
    Ok(GeneratedKey {
        private_pem,
        record: format!(
            "v=DKIM1; k={k}; p={}",
            base64::engine::general_purpose::STANDARD.encode(public)
        ),
    })
}

/// A PKCS#1 `RSAPublicKey` re-encoded as a SubjectPublicKeyInfo.
fn rsa_spki(pkcs1_der: &[u8]) -> Result<Vec<u8>, String> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::EncodePublicKey;
    rsa::RsaPublicKey::from_pkcs1_der(pkcs1_der)
        .and_then(|key| {
            key.to_public_key_der()
                .map_err(|e| rsa::pkcs1::Error::Pkcs8(e.into()))
        })
        .map(|der| der.as_bytes().to_vec())
        .map_err(|e| format!("public key encoding failed: {e}"))
}

/// `text` cut into TXT character-strings of at most [`TXT_STRING_MAX`] octets. The record is
/// ASCII, so any cut is at a character boundary.
pub(crate) fn txt_strings(text: &str) -> Vec<&str> {
    text.as_bytes()
        .chunks(TXT_STRING_MAX)
        .map(|chunk| std::str::from_utf8(chunk).unwrap_or_default())
        .collect()
}

/// The zone-file line publishing `record` at `SELECTOR._domainkey.DOMAIN.`:
/// `S._domainkey.D. IN TXT ( "..." "..." )`.
pub(crate) fn zone_line(selector: &str, domain: &str, record: &str) -> String {
    let strings: Vec<String> = txt_strings(record)
        .into_iter()
        .map(|s| format!("\"{s}\""))
        .collect();
    format!(
        "{selector}._domainkey.{domain}. IN TXT ( {} )",
        strings.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::dkim::{DkimSpec, Signers};

    /// `smtp dkim keygen` into `out`.
    fn run(out: &Path, algorithm: KeyAlgorithm, bits: Option<usize>) -> u8 {
        keygen(KeygenArgs {
            domain: "example.com".into(),
            selector: "s1".into(),
            algorithm,
            bits,
            out: out.into(),
        })
    }

    #[test]
    fn keygen_writes_a_key_signers_load() {
        let dir = tempfile::tempdir().unwrap();
        for (name, algorithm) in [("rsa", KeyAlgorithm::Rsa), ("ed", KeyAlgorithm::Ed25519)] {
            let out = dir.path().join(name);
            assert_eq!(run(&out, algorithm, None), 0);
            let mode = std::fs::metadata(&out).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let spec = DkimSpec {
                domain: "example.com".into(),
                selector: "s1".into(),
                key: out.clone(),
            };
            let signers = Signers::load(&[spec]).unwrap();
            assert!(
                signers
                    .sign(b"From: a@example.com\r\n\r\nbody\r\n")
                    .is_some()
            );
            let before = std::fs::read(&out).unwrap();
            assert_eq!(run(&out, algorithm, None), EX_CANTCREAT);
            assert_eq!(std::fs::read(&out).unwrap(), before);
        }
        let short = dir.path().join("short");
        assert_eq!(run(&short, KeyAlgorithm::Rsa, Some(1023)), EX_USAGE);
        assert_eq!(run(&short, KeyAlgorithm::Ed25519, Some(2048)), EX_USAGE);
        assert!(!short.exists());
    }

    #[test]
    fn txt_strings_at_most_255_octets() {
        let text = "x".repeat(600);
        let strings = txt_strings(&text);
        assert_eq!(
            strings.iter().map(|s| s.len()).collect::<Vec<_>>(),
            [255, 255, 90]
        );
        assert_eq!(strings.concat(), text);
        assert_eq!(
            txt_strings("v=DKIM1; k=ed25519; p=AA"),
            ["v=DKIM1; k=ed25519; p=AA"]
        );
    }

    #[test]
    fn zone_line_form() {
        let record = format!("v=DKIM1; k=rsa; p={}", "A".repeat(300));
        assert_eq!(
            zone_line("s1", "example.com", &record),
            format!(
                "s1._domainkey.example.com. IN TXT ( \"v=DKIM1; k=rsa; p={}\" \"{}\" )",
                "A".repeat(255 - 18),
                "A".repeat(300 - (255 - 18))
            )
        );
    }
}
