#!/usr/bin/python3
"""A webhook receiver for the tests: stores every POST as a numbered JSON file and checks its
signature the way docs/webhook.md tells receivers to.

Usage: webhook-receiver.py DIR PORT   (listens on 127.0.0.1:PORT; the secret comes from the
environment variable WEBHOOK_SECRET, never from the command line, which any user can read)

Each POST becomes DIR/NNNNNN.json (written to a temporary name, then renamed, before the
answer goes out):
  {"n": 1, "method": "POST", "path": "/hook", "headers": {"content-type": ...},
   "body": "...", "signature_ok": true|false|null, "signature_error": "..."}
Header names are lowercased. signature_ok is null when the request has no X-S3imgfs-Signature
header, true when it matches HMAC-SHA256(WEBHOOK_SECRET, "<t>." + body) and t is within
300 seconds of now, false otherwise (signature_error says why).

Answers: 204 to a POST; POST /status/NNN answers HTTP NNN (200..599) with a short text body, to
test error handling; GET /health answers 200 "ok". Standard library only.
"""
import hashlib
import hmac
import http.server
import json
import os
import re
import sys
import threading
import time

TOLERANCE = 300  # seconds between the signature's timestamp and now


def check_signature(secret, header, body):
    """(ok, error) for the X-S3imgfs-Signature header value "t=<unix>,v1=<hex>"."""
    fields = {}
    candidates = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "v1":
            candidates.append(value)
        else:
            fields[key] = value
    t = fields.get("t", "")
    if not t.isdigit() or not candidates:
        return False, "malformed signature header"
    if abs(time.time() - int(t)) > TOLERANCE:
        return False, "timestamp outside the %d s tolerance" % TOLERANCE
    expected = hmac.new(secret, t.encode() + b"." + body, hashlib.sha256).hexdigest()
    if any(hmac.compare_digest(expected, c) for c in candidates):
        return True, None
    return False, "signature mismatch"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "s3imgfs-webhook-receiver"

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        sys.stderr.write("%s %s\n" % (self.log_date_time_string(), format % args))

    def answer(self, status, text=b""):
        self.send_response(status)
        if text:
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        if status not in (204, 304) and status >= 200:
            self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        if text and status not in (204, 304):
            self.wfile.write(text)

    def do_GET(self):
        if self.path == "/health":
            self.answer(200, b"ok\n")
        else:
            self.answer(404, b"not found\n")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        record = {
            "method": "POST",
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", errors="replace"),
            "signature_ok": None,
            "signature_error": None,
        }
        signature = self.headers.get("X-S3imgfs-Signature")
        if signature is not None:
            ok, error = check_signature(self.server.secret, signature, body)
            record["signature_ok"] = ok
            record["signature_error"] = error
        self.server.store(record)

        m = re.fullmatch(r"/status/(\d{3})(\?.*)?", self.path)
        if m and 200 <= int(m.group(1)) <= 599:
            status = int(m.group(1))
            self.answer(status, b"status %d from the test receiver\n" % status)
        else:
            self.answer(204)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port, directory, secret):
        super().__init__(("127.0.0.1", port), Handler)
        self.directory = directory
        self.secret = secret
        self.lock = threading.Lock()
        self.count = 0

    def store(self, record):
        with self.lock:
            self.count += 1
            record = {"n": self.count, **record}
            final = os.path.join(self.directory, "%06d.json" % self.count)
            tmp = os.path.join(self.directory, ".%06d.tmp" % self.count)
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(record, f, indent=1)
                f.write("\n")
            os.rename(tmp, final)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: webhook-receiver.py DIR PORT")
    directory, port = sys.argv[1], int(sys.argv[2])
    os.makedirs(directory, exist_ok=True)
    secret = os.environ.get("WEBHOOK_SECRET", "").encode()
    server = Server(port, directory, secret)
    sys.stderr.write("webhook receiver on http://127.0.0.1:%d, storing into %s\n" % (port, directory))
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
