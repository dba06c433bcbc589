#!/usr/bin/python3
"""A local stand-in for the Lambda Runtime API (2018-06-01), for testing s3imgfs-lambda.

  lambda_runtime_api.py --out CALLS.jsonl --port-file PORTFILE
                        [--events DIR] [--event JSON]... [--events-json LIST]
                        [--deadline-ms MS] [--idle-end SECONDS] [--port PORT]

Listens on 127.0.0.1 (PORT, default a free one, written to PORTFILE once it listens) and serves:
  GET  /2018-06-01/runtime/invocation/next     the next queued event with the headers
       Lambda-Runtime-Aws-Request-Id, Lambda-Runtime-Deadline-Ms (now + --deadline-ms,
       default 60000), Lambda-Runtime-Trace-Id and Lambda-Runtime-Invoked-Function-Arn. With the
       queue empty it waits (more may be queued meanwhile) until --idle-end seconds (default 2)
       pass, then answers 500, which tells a runtime to exit.
  POST /2018-06-01/runtime/invocation/ID/response|error   202; 400 for an ID never handed out,
       403 for one already answered (as Lambda does).
  POST /2018-06-01/runtime/init/error           202.
  POST /test/enqueue                            queues the body (an event, see below): 202.
Every call is appended to CALLS.jsonl as one JSON object: kind ("next", "response", "error",
"init_error", "enqueue", "unknown"), method, path, request_id, headers, body, status, time_ms.

Events come from DIR (its files in name order), from each --event and from --events-json (a
JSON list), in that order. An event is the body served as is (any bytes: an unparseable event is
a test case too), or an envelope, a JSON object with "__event" (an object, served as JSON, or a
string, served as is) and optionally:
  "__deadline_ms": the deadline relative to now (negative: already past),
  "__trace_id": the trace id (null: no Lambda-Runtime-Trace-Id header),
  "__request_id": the request id,
  "__post_status": the status answered to the runtime's post for this event (500: "exit now").
"""
import argparse
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:s3imgfs-test"


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Condition()
        self.queue = []
        self.issued = {}  # request id -> envelope
        self.answered = set()
        self.seq = 0
        self.out = open(args.out, "a", encoding="utf-8")

    def record(self, entry):
        entry["time_ms"] = int(time.time() * 1000)
        with self.lock:
            self.out.write(json.dumps(entry) + "\n")
            self.out.flush()

    def enqueue(self, raw):
        env = envelope(raw)
        with self.lock:
            self.queue.append(env)
            self.lock.notify_all()


def envelope(raw):
    """The envelope of an event given as bytes."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        doc = None
    if isinstance(doc, dict) and "__event" in doc:
        env = dict(doc)
        ev = doc["__event"]
        env["body"] = ev.encode() if isinstance(ev, str) else json.dumps(ev).encode()
        return env
    return {"body": raw}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the runtime expects
    server_version = "lambda-runtime-api-test"

    def log_message(self, fmt, *args):  # quiet: everything is in the calls file
        pass

    @property
    def state(self):
        return self.server.state

    def reply(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def entry(self, kind, body, status, request_id=None):
        self.state.record({"kind": kind, "method": self.command, "path": self.path,
                           "request_id": request_id, "headers": dict(self.headers.items()),
                           "body": body.decode("utf-8", "replace"), "status": status})

    def do_GET(self):
        if self.path != PREFIX + "/runtime/invocation/next":
            self.entry("unknown", b"", 404)
            self.reply(404, b'{"errorType":"NotFound"}')
            return
        st = self.state
        deadline = time.time() + st.args.idle_end
        with st.lock:
            while not st.queue and time.time() < deadline:
                st.lock.wait(max(0.0, deadline - time.time()))
            env = st.queue.pop(0) if st.queue else None
            if env is not None:
                st.seq += 1
                rid = env.get("__request_id") or f"req-{st.seq}-{uuid.uuid4().hex[:8]}"
                st.issued[rid] = env
        if env is None:
            self.entry("next", b"", 500)
            self.reply(500, b'{"errorMessage":"no more events: exit","errorType":"Test.End"}')
            return
        offset = env.get("__deadline_ms", st.args.deadline_ms)
        headers = {"Lambda-Runtime-Aws-Request-Id": rid,
                   "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + int(offset)),
                   "Lambda-Runtime-Invoked-Function-Arn": ARN}
        trace = env.get("__trace_id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};"
                                      "Parent=53995c3f42cd8ad8;Sampled=1")
        if trace is not None:
            headers["Lambda-Runtime-Trace-Id"] = trace
        self.entry("next", b"", 200, rid)
        self.reply(200, env["body"], headers)

    def do_POST(self):
        body = self.read_body()
        st = self.state
        if self.path == "/test/enqueue":
            st.enqueue(body)
            self.entry("enqueue", body, 202)
            self.reply(202, b'{"status":"OK"}')
            return
        if self.path == PREFIX + "/runtime/init/error":
            self.entry("init_error", body, 202)
            self.reply(202, b'{"status":"OK"}')
            return
        parts = self.path[len(PREFIX):].split("/") if self.path.startswith(PREFIX) else []
        # ["", "runtime", "invocation", ID, "response"|"error"]
        if len(parts) == 5 and parts[1:3] == ["runtime", "invocation"] and \
                parts[4] in ("response", "error"):
            rid, kind = parts[3], parts[4]
            with st.lock:
                env = st.issued.get(rid)
                if env is None:
                    status = 400
                elif rid in st.answered:
                    status = 403
                else:
                    st.answered.add(rid)
                    status = int(env.get("__post_status", 202))
            self.entry(kind, body, status, rid)
            if status == 202:
                self.reply(202, b'{"status":"OK"}')
            elif status == 400:
                self.reply(400, b'{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}')
            elif status == 403:
                self.reply(403, b'{"errorMessage":"Invalid state transition",'
                                b'"errorType":"InvalidStateTransition"}')
            else:
                self.reply(status, b'{"errorMessage":"test: failing on purpose",'
                                   b'"errorType":"Test.Failure"}')
            return
        self.entry("unknown", body, 404)
        self.reply(404, b'{"errorType":"NotFound"}')


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--port-file")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--events")
    ap.add_argument("--event", action="append", default=[])
    ap.add_argument("--events-json")
    ap.add_argument("--deadline-ms", type=int, default=60000)
    ap.add_argument("--idle-end", type=float, default=2.0)
    args = ap.parse_args()

    state = State(args)
    if args.events:
        for name in sorted(os.listdir(args.events)):
            with open(os.path.join(args.events, name), "rb") as f:
                state.enqueue(f.read())
    for e in args.event:
        state.enqueue(e.encode())
    if args.events_json:
        for e in json.loads(args.events_json):
            state.enqueue(json.dumps(e).encode())

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.state = state
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{server.server_address[1]}\n")
        os.replace(tmp, args.port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
