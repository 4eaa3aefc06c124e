"""An aiosmtpd server for the `smtp send` interop tests.

usage: aiosmtpd_server.py PORT SPOOL_DIR CERT KEY

Accepts mail for any recipient except nobody@..., which gets 550 5.1.1; stores each
message as SPOOL_DIR/<n>.eml with the envelope in SPOOL_DIR/<n>.env; offers STARTTLS
with CERT/KEY and AUTH (alice / s3cret) once TLS is active.
"""
import asyncio
import os
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Handler:
    def __init__(self, spool):
        self.spool = spool
        self.n = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().startswith("nobody@"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        base = os.path.join(self.spool, str(self.n))
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(base + ".env", "w") as f:
            f.write(f"{envelope.mail_from}\n{','.join(envelope.rcpt_tos)}\n")
            f.write(f"tls={session.ssl is not None} auth={session.authenticated}\n")
        return "250 2.0.0 Message accepted"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"alice" and auth_data.password == b"s3cret"
    # handled=False: aiosmtpd sends the 535 itself.
    return AuthResult(success=ok, handled=False)


def main():
    port, spool, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    controller = Controller(
        Handler(spool),
        hostname="127.0.0.1",
        port=port,
        tls_context=ctx,
        authenticator=authenticator,
        auth_require_tls=True,
        decode_data=False,
    )
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
