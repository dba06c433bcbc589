#!/usr/bin/python3
"""An SMTP server that offers STARTTLS and AUTH (PLAIN, LOGIN) only over TLS, for the tests.

  smtp_auth_server.py PORT CERT KEY USER PASSWORD MAILDIR

Listens on 127.0.0.1:PORT (aiosmtpd, Debian's python3-aiosmtpd); refuses MAIL before STARTTLS
and before a successful AUTH; stores accepted mail in the Maildir MAILDIR; logs each AUTH
attempt ("auth ok USER" / "auth refused USER") on stdout. Runs until SIGTERM.
"""
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword


def main():
    if len(sys.argv) != 7:
        raise SystemExit(__doc__)
    port, cert, key, user, password, maildir = sys.argv[1:]

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user
              and auth_data.password.decode() == password)
        who = auth_data.login.decode(errors="replace") if isinstance(auth_data, LoginPassword) else "?"
        print(f"auth {'ok' if ok else 'refused'} {who}", flush=True)
        return AuthResult(success=ok)

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    controller = Controller(Mailbox(maildir), hostname="127.0.0.1", port=int(port),
                            tls_context=tls, require_starttls=True, authenticator=authenticate,
                            auth_required=True, auth_require_tls=True)
    controller.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
