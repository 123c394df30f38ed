#!/usr/bin/env python3
"""The tracestate cases of the W3C Trace Context suite, through the real
prism-w3c-service over HTTP on loopback.

The official suite (w3c/trace-context test/) is not vendored and cannot be
fetched in CI, so this does what its harness does for the cases our grammar
change touches: it POSTs /test to the service with the given headers and a
callback URL, and checks the traceparent/tracestate the service sends to the
callback. Python standard library only.

usage: service_test.py PATH/TO/prism-w3c-service
"""

import http.client
import http.server
import json
import socket
import subprocess
import sys
import threading
import time

TRACE_ID = "12345678901234567890123456789012"
TRACEPARENT = "00-" + TRACE_ID + "-1234567890123456-00"
LONG_AT_KEY = "t" * 242 + "@v"

# (name, tracestate header fields, expected tracestate at the callback or
# None when none must be sent)
CASES = [
    ("spec example", ["rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"],
     "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
    ("fields combined in order", ["foo=1,bar=2", "rojo=1,congo=2", "baz=3"],
     "foo=1,bar=2,rojo=1,congo=2,baz=3"),
    # test_tracestate_duplicated_keys: inherited, one of the duplicates dropped
    ("duplicate key, same value", ["foo=1,foo=1"], "foo=1"),
    ("duplicate key", ["foo=1,foo=2"], "foo=1"),
    ("duplicate key across fields", ["foo=1", "foo=2"], "foo=1"),
    # the editor's-draft key grammar
    ("'@' last in a key", ["foo@=1,bar=2"], "foo@=1,bar=2"),
    ("a 245-character key with '@'", ["foo=1," + LONG_AT_KEY + "=1"],
     "foo=1," + LONG_AT_KEY + "=1"),
    ("DIGIT-first key", ["1foo=1"], "1foo=1"),
    ("key_with_vendor", ["abcdefghijklmnopqrstuvwxyz0123456789_-*/@a-z0-9_-*/=1"],
     "abcdefghijklmnopqrstuvwxyz0123456789_-*/@a-z0-9_-*/=1"),
    # still invalid: the whole header is dropped, the traceparent goes on
    ("'@' first in a key", ["@foo=1,bar=2"], None),
    ("upper-case key", ["foo=1,BAR=2"], None),
    ("key of 257", ["foo=1," + "z" * 257 + "=1"], None),
    ("value with '='", ["foo=bar=baz"], None),
    ("33 members", [",".join("k%d=%d" % (i, i) for i in range(33))], None),
    ("32 members and a repeat", [",".join("k%d=%d" % (i, i) for i in range(32)) + ",k0=x"],
     None),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Callback(http.server.BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        Callback.received.append((self.headers.get("traceparent"),
                                  self.headers.get_all("tracestate")))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    service_bin = sys.argv[1]
    port = free_port()
    service = subprocess.Popen([service_bin, "--host", "127.0.0.1", "--port", str(port)])
    harness = http.server.HTTPServer(("127.0.0.1", 0), Callback)
    threading.Thread(target=harness.serve_forever, daemon=True).start()
    callback = "http://127.0.0.1:%d/callback" % harness.server_address[1]
    failures = 0
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or service.poll() is not None:
                    print("prism-w3c-service did not start", file=sys.stderr)
                    return 1
                time.sleep(0.05)
        for name, fields, expected in CASES:
            Callback.received.clear()
            # http.client sends every tracestate field as its own header line.
            body = json.dumps([{"url": callback}]).encode()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.putrequest("POST", "/test")
            conn.putheader("content-type", "application/json")
            conn.putheader("content-length", str(len(body)))
            conn.putheader("traceparent", TRACEPARENT)
            for f in fields:
                conn.putheader("tracestate", f)
            conn.endheaders(body)
            conn.getresponse().read()
            conn.close()
            ok = len(Callback.received) == 1
            got_tp, got_ts = Callback.received[0] if ok else (None, None)
            got = ",".join(got_ts) if got_ts else None
            ok = ok and got_tp is not None and got_tp.split("-")[1] == TRACE_ID
            ok = ok and got == expected
            print("%s: %s (tracestate %r, want %r)" % ("ok" if ok else "FAIL", name, got, expected))
            failures += 0 if ok else 1
    finally:
        harness.shutdown()
        service.terminate()
        service.wait(timeout=10)
    print("%d passed, %d failed" % (len(CASES) - failures, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
