"""A real SMTP server (aiosmtpd) for mfad's tests.

Usage: server.py PORT MODE [CERT KEY] [USER PASSWORD]
MODE is plain, starttls or tls. PORT 0 picks a free port. Prints
"listening PORT" once bound, then one JSON line per received message.
"""
import asyncio
import json
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult


class Handler:
    async def handle_DATA(self, server, session, envelope):
        record = {
            "from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            "data": envelope.content.decode("utf8", errors="replace"),
            # STARTTLS sets session.ssl; implicit TLS shows on the transport only.
            "tls": session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
            "auth": session.authenticated,
        }
        print("message " + json.dumps(record), flush=True)
        return "250 OK"


def main():
    port = int(sys.argv[1])
    mode = sys.argv[2]
    rest = sys.argv[3:]
    context = None
    if mode in ("starttls", "tls"):
        cert, key, rest = rest[0], rest[1], rest[2:]
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
    creds = tuple(rest[:2]) if len(rest) >= 2 else None

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            creds is not None
            and auth_data.login.decode() == creds[0]
            and auth_data.password.decode() == creds[1]
        )
        return AuthResult(success=ok)

    def factory():
        kwargs = dict(handler=Handler(), hostname="smtp.test")
        if mode == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        if creds is not None:
            kwargs.update(
                authenticator=authenticator,
                auth_required=True,
                # Over implicit TLS the session is already encrypted.
                auth_require_tls=(mode != "plain"),
            )
        return SMTP(**kwargs)

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(
            factory,
            "127.0.0.1",
            port,
            ssl=context if mode == "tls" else None,
            reuse_address=True,
        )
    )
    print("listening %d" % server.sockets[0].getsockname()[1], flush=True)
    loop.run_forever()


main()
