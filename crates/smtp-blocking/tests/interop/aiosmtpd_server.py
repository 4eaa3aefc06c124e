"""An aiosmtpd server for the blocking client: refuses nobody@..., accepts AUTH for
alice/secret (after STARTTLS), prints one JSON line per message and the port first.
Usage: aiosmtpd_server.py CERT KEY. Runs until killed."""
import asyncio
import json
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        print(
            json.dumps(
                {
                    "from": envelope.mail_from,
                    "to": envelope.rcpt_tos,
                    "body": envelope.original_content.decode("latin-1"),
                    "tls": session.ssl is not None,
                    "auth": bool(session.authenticated),
                }
            ),
            flush=True,
        )
        return "250 2.0.0 Message accepted"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"alice" and auth_data.password == b"secret"
    # handled=False: aiosmtpd sends its 535 itself.
    return AuthResult(success=ok, handled=False)


async def main():
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(sys.argv[1], sys.argv[2])
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            Handler(),
            hostname="aiosmtpd.test",
            tls_context=context,
            authenticator=authenticator,
            auth_require_tls=True,
        ),
        "127.0.0.1",
        0,
    )
    print("PORT", server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


asyncio.run(main())
