"""A webhook receiver process for compat/test_webhooks.py.

    python3 webhook_receiver.py PORT LOG [--fail-first N] [--always STATUS] [--delay-ms MS]

Every request is appended to LOG as one JSON line: {"id", "timestamp", "signature",
"body", "answer"}; --fail-first N answers 503 to the first N attempts of each webhook-id,
--always STATUS answers STATUS to everything, --delay-ms sleeps before answering."""

import argparse
import http.server
import json
import threading
import time

parser = argparse.ArgumentParser()
parser.add_argument("port", type=int)
parser.add_argument("log")
parser.add_argument("--fail-first", type=int, default=0)
parser.add_argument("--always", type=int, default=0)
parser.add_argument("--delay-ms", type=int, default=0)
args = parser.parse_args()

attempts: dict[str, int] = {}
lock = threading.Lock()
log = open(args.log, "a", buffering=1)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if len(body) < length:
            # The sender died mid-request (a SIGKILLed broker): not a delivery, and nobody
            # is left to answer.
            self.close_connection = True
            return
        if args.delay_ms:
            time.sleep(args.delay_ms / 1000)
        message_id = self.headers.get("webhook-id", "")
        with lock:
            attempts[message_id] = attempts.get(message_id, 0) + 1
            count = attempts[message_id]
        if args.always:
            status = args.always
        elif count <= args.fail_first:
            status = 503
        else:
            status = 200
        with lock:
            log.write(json.dumps({
                "id": message_id, "timestamp": self.headers.get("webhook-timestamp"),
                "signature": self.headers.get("webhook-signature"), "body": body.decode(),
                "answer": status,
            }) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        if status == 503:
            self.send_header("Retry-After", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
print("ready", flush=True)
server.serve_forever()
