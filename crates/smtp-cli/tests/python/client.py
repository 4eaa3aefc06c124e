"""smtplib against `smtp serve`: one scenario per invocation.

    python3 client.py SCENARIO PORT [ARGS...]

Each scenario asserts what the server answers and exits non-zero on any surprise; the
Rust test then checks what was stored in the Maildir, byte for byte.
"""
import smtplib
import ssl
import sys

HOST = "127.0.0.1"

# 8-bit text, a line that needs dot-stuffing, CRLF throughout.
MESSAGE = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: Bob <bob@example.org>\r\n"
    b"Subject: 8-bit test\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"caf\xc3\xa9 \xe2\x82\xac \xff\xfe raw octets\r\n"
    b".a line that starts with a dot\r\n"
    b"..and one with two\r\n"
    b"\r\n"
    b"last line\r\n"
)


def unverified():
    return ssl._create_unverified_context()


def expect(cond, what):
    if not cond:
        print("FAILED:", what, file=sys.stderr)
        sys.exit(1)


def plain(port):
    with smtplib.SMTP(HOST, port, local_hostname="client.example") as s:
        code, _ = s.ehlo()
        expect(code == 250, "EHLO")
        expect(s.has_extn("8bitmime") and s.has_extn("pipelining"), "extensions")
        refused = s.sendmail(
            "alice@example.org",
            ["bob@example.org", "carol@example.org"],
            MESSAGE,
            mail_options=["BODY=8BITMIME"],
        )
        expect(refused == {}, f"all recipients accepted: {refused}")


def starttls(port):
    with smtplib.SMTP(HOST, port, local_hostname="client.example") as s:
        s.ehlo()
        expect(s.has_extn("starttls"), "STARTTLS offered")
        code, _ = s.starttls(context=unverified())
        expect(code == 220, "STARTTLS accepted")
        s.ehlo()
        expect(not s.has_extn("starttls"), "STARTTLS not offered twice")
        s.sendmail("alice@example.org", ["bob@example.org"], MESSAGE)


def auth(port, mechanism, user, password, tls):
    with smtplib.SMTP(HOST, port, local_hostname="client.example") as s:
        s.ehlo()
        if tls == "tls":
            s.starttls(context=unverified())
            s.ehlo()
        offered = s.esmtp_features.get("auth", "").split()
        expect(mechanism in offered, f"{mechanism} offered in {offered}")
        # A wrong password first: 535, and the session goes on.
        s.user, s.password = user, password + "-wrong"
        method = getattr(s, "auth_" + mechanism.lower().replace("-", "_"))
        try:
            s.auth(mechanism, method)
            expect(False, "wrong password refused")
        except smtplib.SMTPAuthenticationError as e:
            expect(e.smtp_code == 535, f"535 for a wrong password, got {e.smtp_code}")
        s.user, s.password = user, password
        code, _ = s.auth(mechanism, method)
        expect(code == 235, "authenticated")
        s.sendmail("alice@example.org", ["bob@example.org"], MESSAGE)


def plain_auth_needs_tls(port):
    with smtplib.SMTP(HOST, port, local_hostname="client.example") as s:
        s.ehlo()
        offered = s.esmtp_features.get("auth", "").split()
        expect(offered == ["CRAM-MD5"], f"only CRAM-MD5 before TLS: {offered}")
        code, msg = s.docmd("AUTH", "PLAIN AHRpbQB0YW5zdGFhZg==")
        expect(code == 538, f"538 for PLAIN without TLS: {code} {msg}")


def relay(port, user, password):
    with smtplib.SMTP(HOST, port, local_hostname="client.example") as s:
        s.ehlo()
        s.mail("alice@example.org")
        code, msg = s.rcpt("someone@elsewhere.example")
        expect(code == 554, f"relay refused: {code}")
        expect(msg == b"5.7.1 <someone@elsewhere.example>: Relay access denied", msg)
        code, _ = s.rcpt("bob@example.org")
        expect(code == 250, "local domain accepted")
        code, _ = s.rcpt("Postmaster")
        expect(code == 250, "<Postmaster> accepted")
        s.rset()
        s.starttls(context=unverified())
        s.ehlo()
        s.login(user, password)
        refused = s.sendmail("alice@example.org", ["someone@elsewhere.example"], MESSAGE)
        expect(refused == {}, "relay allowed once authenticated")


def require(port, what):
    with smtplib.SMTP(HOST, port, local_hostname="client.example") as s:
        s.ehlo()
        code, msg = s.mail("alice@example.org")
        expect(code == 530, f"530 before {what}: {code} {msg}")
        expect(msg.startswith(b"5.7.0"), msg)


def lmtp(port):
    s = smtplib.LMTP(HOST, port, local_hostname="client.example")
    code, _ = s.ehlo()  # smtplib's LMTP sends LHLO
    expect(code == 250, "LHLO")
    refused = s.sendmail("alice@example.org", ["bob@example.org", "carol@example.org"], MESSAGE)
    expect(refused == {}, f"LMTP delivered to both: {refused}")
    s.quit()


def too_big(port):
    with smtplib.SMTP(HOST, port, local_hostname="client.example") as s:
        s.ehlo()
        expect(s.esmtp_features.get("size") == "1000", s.esmtp_features)
        try:
            s.sendmail("alice@example.org", ["bob@example.org"], MESSAGE * 20)
            expect(False, "too big refused")
        except smtplib.SMTPSenderRefused as e:
            expect(e.smtp_code == 552, e)


SCENARIOS = {
    "plain": plain,
    "starttls": starttls,
    "auth": auth,
    "plain_auth_needs_tls": plain_auth_needs_tls,
    "relay": relay,
    "require": require,
    "lmtp": lmtp,
    "too_big": too_big,
}

if __name__ == "__main__":
    name, port, *rest = sys.argv[1:]
    SCENARIOS[name](int(port), *rest)
    print("ok")
