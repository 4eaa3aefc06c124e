"""pyspf and dkimpy for `smtp serve --verify`'s tests, DNS from a server on loopback.

Usage:
  sender_auth.py spf DNS_PORT IP HELO SENDER...   pyspf's result for each SENDER, one a line
  sender_auth.py sign KEYFILE SELECTOR DOMAIN     the message on stdin, signed by dkimpy

pyspf's lookups go through dnspython to 127.0.0.1:DNS_PORT (never the machine's resolver).
"""

import sys

import dkim
import dns.resolver
import spf


def spf_results(port, ip, helo, senders):
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = port
    dns.resolver.default_resolver = resolver
    for sender in senders:
        result, _explanation = spf.check2(i=ip, s=sender, h=helo)
        print(result)


def sign(keyfile, selector, domain):
    message = sys.stdin.buffer.read()
    with open(keyfile, "rb") as f:
        key = f.read()
    signature = dkim.sign(
        message,
        selector.encode(),
        domain.encode(),
        key,
        include_headers=[b"from", b"to", b"subject", b"date"],
    )
    sys.stdout.buffer.write(signature + message)


def main():
    if sys.argv[1] == "spf":
        spf_results(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:])
    elif sys.argv[1] == "sign":
        sign(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit("unknown command " + sys.argv[1])


if __name__ == "__main__":
    main()
