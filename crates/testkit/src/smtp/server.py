"""A real SMTP server (aiosmtpd) for mfad's tests.

Usage: server.py MODE [CERT KEY] [USER PASSWORD] <&SOCKET
MODE is plain, starttls or tls. Listens on the bound TCP socket it gets as stdin.
Prints "listening PORT" once listening, then one JSON line per received message.
"""
import asyncio
import json
import socket
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
    mode = sys.argv[1]
    rest = sys.argv[2:]
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
            sock=socket.socket(fileno=0),
            ssl=context if mode == "tls" else None,
        )
    )
    print("listening %d" % server.sockets[0].getsockname()[1], flush=True)
    loop.run_forever()


main()
