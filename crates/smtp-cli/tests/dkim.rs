//! DKIM signing end to end, checked by another implementation: `smtp dkim keygen` makes an
//! RSA and an Ed25519 key, dnsmasq on loopback publishes their TXT records as printed (the
//! RSA one in two strings), `smtp send --dkim-sign` sends to an `smtp serve` that stores in a
//! Maildir (a message, one from a domain without a key, and the load mode's generated message
//! twice), and dkimpy (`tests/python/dkim_verify.py`, keys through dnspython from that
//! dnsmasq) verifies what was stored. Every process is stopped by the test; everything lives in
//! a temporary directory. dnsmasq, python3, dkimpy and dnspython are required (`./test.sh`
//! installs them).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::dnsmasq::Dnsmasq;
use support::serve::{SMTP, Serve, ServeCommand};

const VERIFY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/dkim_verify.py");

/// `smtp dkim keygen` for `SELECTOR._domainkey.example.test` into `dir/SELECTOR.pem`: the key
/// file, and the TXT record's strings as printed (checked to be the zone-file form).
fn keygen(dir: &Path, selector: &str, extra: &[&str]) -> (PathBuf, Vec<String>) {
    let key = dir.join(format!("{selector}.pem"));
    let out = Command::new(SMTP)
        .args([
            "dkim",
            "keygen",
            "--domain",
            "example.test",
            "--selector",
            selector,
        ])
        .args(extra)
        .arg("--out")
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let prefix = format!("{selector}._domainkey.example.test. IN TXT ( \"");
    let strings = stdout
        .strip_prefix(&prefix)
        .and_then(|s| s.strip_suffix("\" )\n"))
        .unwrap_or_else(|| panic!("not the zone-file form: {stdout:?}"));
    let strings: Vec<String> = strings.split("\" \"").map(str::to_owned).collect();
    assert!(
        strings.iter().all(|s| !s.is_empty() && s.len() <= 255),
        "{strings:?}"
    );
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    (key, strings)
}

/// A running `smtp serve` storing in `DIR/maildir`, stopped when dropped.
fn start_serve(dir: &Path) -> Serve {
    ServeCommand::new()
        .args(["--listen", "127.0.0.1:0", "--hostname", "mx.example.test"])
        .args(["--no-tls", "--maildir"])
        .arg(dir.join("maildir"))
        .stderr_to(dir.join("serve.stderr"))
        .start()
}

/// `smtp send` of `message` (as a file) to `port`, with `--dkim-sign` for both keys.
fn send(dir: &Path, port: u16, name: &str, message: &str, keys: &[String]) {
    let file = dir.join(name);
    std::fs::write(&file, message).unwrap();
    let mut cmd = Command::new(SMTP);
    cmd.args(["send", "--server", &format!("127.0.0.1:{port}")])
        .args(["--from", "alice@example.test", "--to", "bob@example.test"])
        .args(["--starttls", "never", "--file"])
        .arg(&file);
    for key in keys {
        cmd.args(["--dkim-sign", key]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// dkimpy's verdicts on every stored message, by Subject.
fn dkimpy(dir: &Path, dns_port: u16) -> Vec<(String, serde_json::Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("maildir/new"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let out = Command::new("python3")
        .arg(VERIFY)
        .arg(dns_port.to_string())
        .args(&files)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let stored = std::fs::read_to_string(v["file"].as_str().unwrap()).unwrap();
            let subject = stored
                .lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap()
                .to_owned();
            (subject, v)
        })
        .collect()
}

const SIGNED: &str = "From: Alice <alice@example.test>\r\n\
    To: Bob <bob@example.test>\r\n\
    Subject: signed\r\n\
    Date: Tue, 08 Dec 2026 02:00:00 +0000\r\n\
    Message-ID: <signed@example.test>\r\n\
    \r\n\
    Hello Bob,\r\n\
    \r\n\
    this  line has  runs of spaces and a trailing one \r\n\
    .a line that starts with a dot\r\n";

const UNSIGNED: &str = "From: Carol <carol@other.test>\r\n\
    To: Bob <bob@example.test>\r\n\
    Subject: no key\r\n\
    \r\n\
    Hello Bob.\r\n";

#[test]
fn dkimpy_verifies_what_smtp_send_signs() {
    let dir = tempfile::tempdir().unwrap();
    let (rsa, rsa_txt) = keygen(dir.path(), "rsa", &[]);
    let (ed, ed_txt) = keygen(dir.path(), "ed", &["--algorithm", "ed25519"]);
    // A 2048-bit RSA key's record is longer than one 255-octet string (RFC 6376 §3.6.2.2).
    assert_eq!(rsa_txt.len(), 2, "{rsa_txt:?}");
    assert!(
        rsa_txt[0].starts_with("v=DKIM1; k=rsa; p=MIIBIjAN"),
        "{rsa_txt:?}"
    );
    assert_eq!(ed_txt.len(), 1, "{ed_txt:?}");
    assert!(
        ed_txt[0].starts_with("v=DKIM1; k=ed25519; p="),
        "{ed_txt:?}"
    );

    // One TXT record of several strings: dnsmasq separates them at commas (no shell here to
    // strip quotes, and a quote would be taken as part of the text).
    let record = |selector: &str, strings: &[String]| {
        format!(
            "--txt-record={selector}._domainkey.example.test,{}",
            strings.join(",")
        )
    };
    // The load mode's generated message is from load@localhost.
    let load_record = format!("--txt-record=ed._domainkey.localhost,{}", ed_txt.join(","));
    let dns = Dnsmasq::start(&[
        &record("rsa", &rsa_txt),
        &record("ed", &ed_txt),
        &load_record,
    ]);
    let serve = start_serve(dir.path());
    let keys = [
        format!("example.test:rsa:{}", rsa.display()),
        format!("example.test:ed:{}", ed.display()),
    ];
    send(dir.path(), serve.port(), "signed.eml", SIGNED, &keys);
    send(dir.path(), serve.port(), "unsigned.eml", UNSIGNED, &keys);
    // A file with bare LF line endings is signed as it travels, with CRLF.
    let lf = SIGNED
        .replace("\r\n", "\n")
        .replace("Subject: signed", "Subject: lf endings");
    send(dir.path(), serve.port(), "lf.eml", &lf, &keys);
    // Load mode: the generated message, signed once, sent twice.
    let load = Command::new(SMTP)
        .args(["send", "--server", &format!("127.0.0.1:{}", serve.port())])
        .args(["--starttls", "never", "--count", "2", "--size", "600"])
        .args(["--dkim-sign", &format!("localhost:ed:{}", ed.display())])
        .output()
        .unwrap();
    assert!(load.status.success(), "{load:?}");

    let mut verdicts = Vec::new();
    for _ in 0..100 {
        verdicts = dkimpy(dir.path(), dns.addr.port());
        if verdicts.len() == 5 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    verdicts.sort_by(|a, b| a.0.cmp(&b.0));
    let subjects: Vec<&str> = verdicts.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "lf endings",
            "no key",
            "signed",
            "smtp send load test",
            "smtp send load test"
        ]
    );

    let lf = &verdicts[0].1;
    assert_eq!(lf["verify"], serde_json::json!([true, true]), "{lf}");

    let unsigned = &verdicts[1].1;
    assert_eq!(unsigned["signatures"], 0, "{unsigned}");
    assert_eq!(unsigned["dkim_verify"], false, "{unsigned}");

    let signed = &verdicts[2].1;
    assert_eq!(signed["signatures"], 2, "{signed}");
    assert_eq!(
        signed["algorithms"],
        serde_json::json!(["rsa-sha256", "ed25519-sha256"])
    );
    assert_eq!(
        signed["verify"],
        serde_json::json!([true, true]),
        "{signed}"
    );
    assert_eq!(signed["dkim_verify"], true, "{signed}");
    // One body byte changed: dkimpy refuses both, so the verdicts above mean something.
    assert_eq!(
        signed["tampered"],
        serde_json::json!([false, false]),
        "{signed}"
    );
}

#[test]
fn keygen_refuses_to_overwrite_and_short_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keygen(dir.path(), "ed", &["--algorithm", "ed25519"]);
    let before = std::fs::read(&key).unwrap();
    let again = Command::new(SMTP)
        .args([
            "dkim",
            "keygen",
            "--domain",
            "example.test",
            "--selector",
            "ed",
        ])
        .args(["--algorithm", "ed25519", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(73), "{again:?}");
    assert!(again.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains(&key.display().to_string()), "{stderr}");
    assert_eq!(std::fs::read(&key).unwrap(), before);

    let short = dir.path().join("short.pem");
    for (extra, code) in [
        (&["--bits", "1023"][..], 64),
        (&["--algorithm", "ed25519", "--bits", "2048"][..], 64),
        (&["--selector", "bad_selector"][..], 64),
    ] {
        let out = Command::new(SMTP)
            .args(["dkim", "keygen", "--domain", "example.test"])
            .args(if extra.contains(&"--selector") {
                &[][..]
            } else {
                &["--selector", "s"][..]
            })
            .args(extra)
            .arg("--out")
            .arg(&short)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{extra:?}: {out:?}");
        assert!(!short.exists(), "{extra:?} left a file");
    }
}
