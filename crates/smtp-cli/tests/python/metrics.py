"""The client side of tests/metrics.rs: SMTP sessions for the server to count, and a
scrape read with prometheus_client's own OpenMetrics parser (an independent reader of
what `smtp serve --metrics-listen` writes).

    python3 metrics.py session PORT USER PASSWORD FROM TO...
    python3 metrics.py implicit PORT
    python3 metrics.py refused PORT FROM TO
    python3 metrics.py too_big PORT
    python3 metrics.py scrape URL

Each session scenario asserts the server's replies and exits non-zero on a surprise;
`scrape` prints the samples as JSON: a list of {"name", "labels", "value"}.
"""
import base64
import json
import smtplib
import ssl
import sys
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families

HOST = "127.0.0.1"

# 28 octets as the server receives them (no line starts with a dot).
MESSAGE = b"Subject: metrics\r\n\r\nHello.\r\n"


def expect(cond, what):
    if not cond:
        print("FAILED:", what, file=sys.stderr)
        sys.exit(1)


def plain_auth(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def session(port, user, password, sender, recipients):
    """STARTTLS, one failed and one good AUTH PLAIN, one message accepted."""
    with smtplib.SMTP(HOST, port, local_hostname="client.test") as s:
        s.ehlo()
        code, _ = s.starttls(context=ssl._create_unverified_context())
        expect(code == 220, "STARTTLS")
        s.ehlo()
        code, reply = s.docmd("AUTH", "PLAIN " + plain_auth(user, password + "x"))
        expect(code == 535, f"a wrong password gets 535: {code} {reply}")
        code, reply = s.docmd("AUTH", "PLAIN " + plain_auth(user, password))
        expect(code == 235, f"the right one 235: {code} {reply}")
        refused = s.sendmail(sender, recipients, MESSAGE)
        expect(refused == {}, f"every recipient accepted: {refused}")


def implicit(port):
    """Implicit TLS (RFC 8314): EHLO and QUIT."""
    context = ssl._create_unverified_context()
    with smtplib.SMTP_SSL(HOST, port, local_hostname="client.test", context=context) as s:
        code, _ = s.ehlo()
        expect(code == 250, "EHLO over implicit TLS")


def refused(port, sender, recipient):
    """An unauthenticated client may not relay: RCPT gets 554 5.7.1."""
    with smtplib.SMTP(HOST, port, local_hostname="client.test") as s:
        s.ehlo()
        code, _ = s.mail(sender)
        expect(code == 250, "MAIL")
        code, reply = s.rcpt(recipient)
        expect(code == 554 and reply.startswith(b"5.7.1"), f"RCPT: {code} {reply}")


def too_big(port):
    """A message over --max-size 100, sent without SIZE=: refused at its end, 552 5.3.4."""
    with smtplib.SMTP(HOST, port, local_hostname="client.test") as s:
        s.ehlo()
        code, _ = s.mail("alice@client.test")
        expect(code == 250, "MAIL")
        code, _ = s.rcpt("bob@local.test")
        expect(code == 250, "RCPT")
        code, reply = s.data(b"Subject: big\r\n\r\n" + b"x" * 70 + b"\r\n" + b"y" * 70 + b"\r\n")
        expect(code == 552 and reply.startswith(b"5.3.4"), f"DATA: {code} {reply}")


def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    samples = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.append({"name": s.name, "labels": s.labels, "value": s.value})
    print(json.dumps(samples))


def main():
    what = sys.argv[1]
    if what == "session":
        port, user, password, sender = sys.argv[2:6]
        session(int(port), user, password, sender, sys.argv[6:])
    elif what == "implicit":
        implicit(int(sys.argv[2]))
    elif what == "refused":
        refused(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif what == "too_big":
        too_big(int(sys.argv[2]))
    elif what == "scrape":
        scrape(sys.argv[2])
    else:
        sys.exit(f"unknown scenario {what}")


if __name__ == "__main__":
    main()
