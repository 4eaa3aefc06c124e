//! Delivery status notifications read back by an independent parser: Python's `email`
//! package must see a `multipart/report` with the RFC 3464 fields.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

use smtp_relay::dsn::{Action, RecipientStatus, Report, Return};

const ORIGINAL: &[u8] =
    b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: hello\r\n\r\nBody line\r\n";

fn status(recipient: &str, action: Action, code: (u8, u16, u16)) -> RecipientStatus {
    RecipientStatus {
        recipient: recipient.into(),
        original: None,
        action,
        status: code,
        remote_mta: Some("mx.example.net".into()),
        diagnostic: Some(format!("550 {}.{}.{} No such user", code.0, code.1, code.2)),
        detail: None,
        last_attempt: Some(UNIX_EPOCH + Duration::from_secs(1_751_360_800)),
        will_retry_until: None,
    }
}

fn report(recipients: Vec<RecipientStatus>, ret: Return) -> Report<'static> {
    Report {
        hostname: "relay.example.org",
        sender: "alice@example.org",
        queue_id: "ABC123",
        envid: Some("QQ314159"),
        arrived: UNIX_EPOCH + Duration::from_secs(1_751_360_703),
        smtputf8: false,
        ret,
        recipients,
        original: ORIGINAL,
    }
}

/// Parses the report with Python's `email` and returns what it saw, one fact per line.
fn python_reads(message: &[u8]) -> String {
    let script = r#"
import sys, email, email.policy
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.compat32)
print("type", m.get_content_type(), m.get_param("report-type"))
print("from", m["From"]); print("to", m["To"]); print("subject", m["Subject"])
print("auto", m["Auto-Submitted"])
parts = m.get_payload()
print("parts", [p.get_content_type() for p in parts])
status = parts[1]
blocks = status.get_payload()   # message/delivery-status: a list of header blocks
print("per-message", blocks[0]["Reporting-MTA"], "|", blocks[0]["Original-Envelope-Id"])
for b in blocks[1:]:
    print("recipient", b["Final-Recipient"], "|", b["Action"], "|", b["Status"], "|",
          b["Remote-MTA"], "|", b["Diagnostic-Code"], "|", b["Original-Recipient"], "|",
          b["Will-Retry-Until"] is not None)
third = parts[2]
if third.get_content_type() == "message/rfc822":
    print("returned subject", third.get_payload()[0]["Subject"])
else:
    print("returned headers", third.get_payload().splitlines()[2])
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(message).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn bounce_with_full_return_reads_as_multipart_report() {
    let mut bob = status("bob@example.net", Action::Failed, (5, 1, 1));
    bob.original = Some(("rfc822".into(), "Bob@Example.NET".into()));
    let composed = report(vec![bob], Return::Full)
        .compose(UNIX_EPOCH + Duration::from_secs(1_751_361_000), "T0k3n");
    assert!(!composed.eight_bit && !composed.smtputf8);
    let seen = python_reads(&composed.message);
    let expect = [
        "type multipart/report delivery-status",
        "from Mail Delivery System <MAILER-DAEMON@relay.example.org>",
        "to <alice@example.org>",
        "subject Undelivered Mail Returned to Sender",
        "auto auto-replied",
        "parts ['text/plain', 'message/delivery-status', 'message/rfc822']",
        "per-message dns; relay.example.org | QQ314159",
        "recipient rfc822; bob@example.net | failed | 5.1.1 | dns; mx.example.net | smtp; 550 5.1.1 No such user | rfc822; Bob@Example.NET | False",
        "returned subject hello",
    ];
    assert_eq!(seen.lines().collect::<Vec<_>>(), expect, "{seen}");
}

#[test]
fn delay_warning_returns_headers_only() {
    let mut bob = status("bob@example.net", Action::Delayed, (4, 4, 1));
    bob.diagnostic = None;
    bob.will_retry_until = Some(UNIX_EPOCH + Duration::from_secs(1_751_800_000));
    let mut r = report(vec![bob], Return::Headers);
    r.envid = None;
    let composed = r.compose(UNIX_EPOCH + Duration::from_secs(1_751_361_000), "abc");
    let seen = python_reads(&composed.message);
    assert!(
        seen.contains("subject Delayed Mail (still being retried)"),
        "{seen}"
    );
    assert!(
        seen.contains("parts ['text/plain', 'message/delivery-status', 'text/rfc822-headers']"),
        "{seen}"
    );
    assert!(
        seen.contains("per-message dns; relay.example.org | None"),
        "{seen}"
    );
    assert!(
        seen.contains("| delayed | 4.4.1 | dns; mx.example.net | None | None | True"),
        "{seen}"
    );
    assert!(seen.contains("returned headers Subject: hello"), "{seen}");
    // The body of the original is not returned.
    assert!(!String::from_utf8_lossy(&composed.message).contains("Body line"));
}

#[test]
fn success_and_internationalized_forms() {
    let ok = RecipientStatus {
        remote_mta: None,
        diagnostic: None,
        ..status("bøb@example.net", Action::Delivered, (2, 0, 0))
    };
    let mut r = report(vec![ok], Return::Headers);
    r.smtputf8 = true;
    let composed = r.compose(UNIX_EPOCH, "u");
    assert!(composed.smtputf8);
    let text = String::from_utf8(composed.message.clone()).unwrap();
    assert!(text.contains("Subject: Successful Mail Delivery Report\r\n"));
    assert!(text.contains("Content-Type: message/global-delivery-status\r\n"));
    assert!(text.contains("Final-Recipient: utf-8; bøb@example.net\r\n"));
    assert!(text.contains("Action: delivered\r\nStatus: 2.0.0\r\n"));
    assert!(text.contains("Content-Type: message/global-headers\r\n"));
    // Every line ends in CRLF, and none is longer than RFC 5322 allows.
    for line in composed.message.split(|&b| b == b'\n') {
        assert!(line.is_empty() || line.ends_with(b"\r"), "{line:?}");
        assert!(line.len() <= 998);
    }
}

#[test]
fn eight_bit_originals_and_boundaries() {
    let original = "Subject: caf\u{e9}\r\n\r\n--tok/relay.example.org\r\n".as_bytes();
    let mut r = report(
        vec![status("bob@example.net", Action::Failed, (5, 0, 0))],
        Return::Full,
    );
    r.original = original;
    let composed = r.compose(UNIX_EPOCH, "tok");
    assert!(composed.eight_bit);
    let text = String::from_utf8(composed.message).unwrap();
    // The boundary found in the original is not used.
    assert!(text.contains("boundary=\"tok/relay.example.org=\""));
    assert!(text.contains("Content-Transfer-Encoding: 8bit\r\n"));
}

/// RFC 6533 through Python's parser: a UTF-8 report (message/global-delivery-status,
/// utf-8 address type) reads as multipart/report, and a failure without an SMTP reply
/// (a null MX) carries its status and its reason.
#[test]
fn internationalized_and_null_mx_reports_read_back() {
    let mut r = report(
        vec![RecipientStatus {
            remote_mta: None,
            diagnostic: None,
            detail: Some("5.1.10 Domain dést.example does not accept mail (null MX)".into()),
            ..status("bøb@dést.example", Action::Failed, (5, 1, 10))
        }],
        Return::Headers,
    );
    r.smtputf8 = true;
    r.sender = "alïce@example.org";
    let composed = r.compose(UNIX_EPOCH + Duration::from_secs(1_751_361_000), "u8");
    let script = r#"
import sys, email, email.policy
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.default)
print("type", m.get_content_type(), m.get_param("report-type"))
print("to", m["To"])
parts = list(m.iter_parts())
print("parts", [p.get_content_type() for p in parts])
raw = parts[1].get_payload(decode=True) or parts[1].as_bytes()
text = parts[1].as_string() if not isinstance(raw, bytes) else raw.decode("utf-8", "replace")
for line in text.splitlines():
    if line.split(":")[0] in ("Final-Recipient", "Status", "Diagnostic-Code", "Action"):
        print(line)
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&composed.message)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "type multipart/report delivery-status",
        "to alïce@example.org",
        "parts ['text/plain', 'message/global-delivery-status', 'message/global-headers']",
        "Final-Recipient: utf-8; bøb@dést.example",
        "Action: failed",
        "Status: 5.1.10",
        "Diagnostic-Code: X-Smtp-Relay; 5.1.10 Domain dést.example does not accept mail (null MX)",
    ] {
        assert!(seen.lines().any(|l| l.trim() == want), "{want}\n{seen}");
    }
}
