"""dkimpy's verdict on stored messages, the keys from a DNS server on loopback.

Usage: dkim_verify.py DNS_PORT FILE...

Prints one JSON object per file: how many DKIM-Signature fields it has, dkimpy's
verify() for each (by index), dkim.verify() on the whole message, the a= of each
signature, and verify() again on a copy with one body byte changed.
The keys are looked up with dnspython at 127.0.0.1:DNS_PORT (never the machine's
resolver).
"""

import json
import re
import sys

import dkim
import dns.resolver


def dnsfunc_for(port):
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = port

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode("ascii")
        try:
            answer = resolver.resolve(name, "TXT", lifetime=timeout)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        # One record, its character-strings concatenated (RFC 6376 §3.6.2.2).
        return b"".join(answer[0].strings)

    return dnsfunc


def verify(message, idx, dnsfunc):
    """DKIM.verify() of signature idx; its exceptions (a body hash mismatch) are a no."""
    try:
        return bool(dkim.DKIM(message).verify(idx=idx, dnsfunc=dnsfunc))
    except dkim.DKIMException:
        return False


def verdicts(message, dnsfunc):
    count = len(re.findall(rb"(?im)^DKIM-Signature:", message.split(b"\r\n\r\n", 1)[0]))
    return count, [verify(message, i, dnsfunc) for i in range(count)]


def tampered(message):
    head, body = message.split(b"\r\n\r\n", 1)
    i = next(i for i, b in enumerate(body) if chr(b).isalpha())
    changed = bytes([body[i] ^ 0x20])  # swap the letter's case
    return head + b"\r\n\r\n" + body[:i] + changed + body[i + 1 :]


def main():
    dnsfunc = dnsfunc_for(int(sys.argv[1]))
    for path in sys.argv[2:]:
        with open(path, "rb") as f:
            message = f.read()
        # Maildir files may hold bare LF; DKIM works on CRLF lines.
        message = re.sub(rb"(?<!\r)\n", b"\r\n", message)
        count, verify = verdicts(message, dnsfunc)
        after = verdicts(tampered(message), dnsfunc)[1] if count else []
        algorithms = [
            m.decode()
            for m in re.findall(rb"\ba=([a-z0-9-]+);", message.split(b"\r\n\r\n", 1)[0])
        ]
        print(json.dumps({
            "file": path,
            "signatures": count,
            "algorithms": algorithms,
            "verify": verify,
            # dkimpy's one-call API: the first signature.
            "dkim_verify": bool(dkim.verify(message, dnsfunc=dnsfunc)),
            "tampered": after,
        }))


if __name__ == "__main__":
    main()
