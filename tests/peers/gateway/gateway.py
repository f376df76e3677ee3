#!/usr/bin/env python3
"""An authenticating gateway in front of the STS for the trusted-header tests (tests/tests/gateway.rs),
in the manner of oauth2-proxy: it authenticates the browser itself (here: GET /gw/sign_in?user=NAME sets
its own cookie), strips identity headers a client sends, adds X-Forwarded-User, X-Forwarded-Email,
X-Forwarded-Groups and the shared secret, and forwards everything else to the STS. Its connections to the
STS leave from SOURCE_IP (another loopback address), so the STS can tell the gateway from a direct caller
on 127.0.0.1. Standard library only.

usage: gateway.py LISTEN_PORT STS_PORT SOURCE_IP SECRET
Users: alice (groups staff, sts-admins), bob (groups staff). Prints READY when listening.
"""
import http.client
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USERS = {
    "alice": ("alice@example.com", "staff,sts-admins"),
    "bob": ("bob@example.com", "staff"),
}
IDENTITY = {"x-forwarded-user", "x-forwarded-email", "x-forwarded-groups", "x-gateway-secret"}
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection", "host"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def gw_user(self):
        for part in (self.headers.get("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "gw_user" and value in USERS:
                return value
        return None

    def handle_any(self):
        if self.path.startswith("/gw/sign_in?user="):
            user = self.path.split("=", 1)[1]
            self.send_response(302)
            self.send_header("Set-Cookie", f"gw_user={user}; Path=/; HttpOnly")
            self.send_header("Location", "/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in IDENTITY | HOP}
        user = self.gw_user()
        if user:
            email, groups = USERS[user]
            headers["X-Forwarded-User"] = user
            headers["X-Forwarded-Email"] = email
            headers["X-Forwarded-Groups"] = groups
            headers["X-Gateway-Secret"] = SECRET
        headers["X-Forwarded-For"] = self.client_address[0]
        conn = http.client.HTTPConnection("127.0.0.1", STS_PORT, timeout=30, source_address=(SOURCE_IP, 0))
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_POST = handle_any


class Quiet(ThreadingHTTPServer):
    # A client that hangs up early (the STS stops reading at its size limit, or at its timeout) is normal
    # here: no traceback on stderr.
    def handle_error(self, request, client_address):
        pass


def main():
    global STS_PORT, SOURCE_IP, SECRET
    port, STS_PORT, SOURCE_IP, SECRET = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    server = Quiet(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("READY", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
