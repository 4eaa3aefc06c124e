"""Python's smtplib against the blocking server: plain with several recipients (one
refused) and an 8-bit body, then STARTTLS with AUTH PLAIN, LOGIN and CRAM-MD5, then a
wrong password. Usage: smtplib_client.py PORT CA_FILE. Prints OK at the end."""
import smtplib
import ssl
import sys

port = int(sys.argv[1])
ca = sys.argv[2]

s = smtplib.SMTP("127.0.0.1", port, local_hostname="py.test", timeout=10)
code, _ = s.ehlo()
assert code == 250
assert s.has_extn("pipelining") and s.has_extn("8bitmime") and s.has_extn("starttls")
body = b"Subject: plain\r\n\r\ncaf\xc3\xa9 8-bit\r\n.leading dot\r\n"
refused = s.sendmail(
    "alice@example.org",
    ["bob@example.org", "nobody@example.org", "carol@example.org"],
    body,
    mail_options=["BODY=8BITMIME"],
)
assert list(refused) == ["nobody@example.org"], refused
assert refused["nobody@example.org"][0] == 550
s.quit()

for mech in ["PLAIN", "LOGIN", "CRAM-MD5"]:
    s = smtplib.SMTP("localhost", port, local_hostname="py.test", timeout=10)
    s.starttls(context=ssl.create_default_context(cafile=ca))
    s.ehlo()
    assert "AUTH" in s.esmtp_features.get("auth", "AUTH") or s.has_extn("auth")
    s.user, s.password = "alice", "secret"
    method = getattr(s, "auth_" + mech.lower().replace("-", "_"))
    code, _ = s.auth(mech, method)
    assert code == 235, code
    s.sendmail("alice@example.org", ["dave@example.org"], f"Subject: {mech}\r\n\r\nover tls\r\n")
    s.quit()

s = smtplib.SMTP("localhost", port, local_hostname="py.test", timeout=10)
s.starttls(context=ssl.create_default_context(cafile=ca))
s.ehlo()
s.user, s.password = "alice", "wrong"
try:
    s.auth("PLAIN", s.auth_plain)
    raise SystemExit("wrong password accepted")
except smtplib.SMTPAuthenticationError as e:
    assert e.smtp_code == 535, e.smtp_code
s.quit()
print("OK", flush=True)
