#!/usr/bin/env python3
"""A credentials service for the credential-proxy tests (tests/tests/proxy.rs): the kind of existing
service Tyk Identity Broker's proxy provider forwards credentials to. Standard library only.

usage: upstream.py PORT

Users: alice / alice-pw-123 (groups staff, sts-admins), bob / bob-pw-123 (groups staff).
  POST /form    form body username, password  -> 200 {"ok": true, "user": {...}, "groups": [...]} or 401
  POST /json    JSON body {"login": ..., "secret": ...} -> same
  GET  /basic   HTTP Basic                     -> same
  POST /always200  form body -> always 200, {"ok": true|false, ...} (success judged by a JSON field)
  POST /text    form body -> 200 "WELCOME alice" or 200 "DENIED" (success judged by a body regex)
  POST /error   -> 500;  POST /big -> 200 with 1 MiB;  POST /hang -> never answers
  GET  /github/user/teams, /github/user/orgs -> GitHub-shaped JSON arrays, only with a Bearer token
       (the OAuth 2.0 provider's userinfo_extra test in tests/tests/login.rs)
  GET  /count   -> {"requests": N}: how many requests reached this service (not counted itself)
Prints READY when listening on 127.0.0.1:PORT.
"""
import base64
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USERS = {
    "alice": ("alice-pw-123", {"name": "alice", "email": "alice@example.net", "display": "Alice A."}, ["staff", "sts-admins"]),
    "bob": ("bob-pw-123", {"name": "bob", "email": "bob@example.net", "display": "Bob B."}, ["staff"]),
}
LOCK = threading.Lock()
COUNT = {"requests": 0}


def check(username, password):
    u = USERS.get(username)
    if u is None or u[0] != password:
        return None
    return {"ok": True, "user": u[1], "groups": u[2]}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def form(self):
        q = urllib.parse.parse_qs(self.body().decode(), keep_blank_values=True)
        return q.get("username", [""])[0], q.get("password", [""])[0]

    def do_GET(self):
        if self.path == "/count":
            with LOCK:
                return self.send(200, json.dumps(COUNT))
        with LOCK:
            COUNT["requests"] += 1
        if self.path.startswith("/github/user/"):
            if not self.headers.get("Authorization", "").startswith("Bearer "):
                return self.send(401, json.dumps({"message": "Requires authentication"}))
            if self.path == "/github/user/teams":
                return self.send(200, json.dumps([
                    {"slug": "platform", "name": "Platform", "organization": {"login": "acme"}},
                    {"slug": "sre", "name": "SRE", "organization": {"login": "acme"}},
                ]))
            if self.path == "/github/user/orgs":
                return self.send(200, json.dumps([{"login": "acme"}, {"login": "oss-club"}]))
        if self.path == "/basic":
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Basic "):
                return self.send(401, json.dumps({"ok": False}))
            user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            r = check(user, pw)
            return self.send(200 if r else 401, json.dumps(r or {"ok": False}))
        self.send(404, "{}")

    def do_POST(self):
        with LOCK:
            COUNT["requests"] += 1
        if self.path == "/hang":
            time.sleep(3600)
            return
        if self.path == "/error":
            self.body()
            return self.send(500, json.dumps({"error": "boom"}))
        if self.path == "/big":
            self.body()
            return self.send(200, json.dumps({"ok": True, "pad": "x" * (1 << 20)}))
        if self.path == "/json":
            try:
                j = json.loads(self.body() or b"{}")
            except ValueError:
                return self.send(400, "{}")
            r = check(j.get("login", ""), j.get("secret", ""))
            return self.send(200 if r else 401, json.dumps(r or {"ok": False}))
        user, pw = self.form()
        r = check(user, pw)
        if self.path == "/form":
            return self.send(200 if r else 401, json.dumps(r or {"ok": False}))
        if self.path == "/always200":
            return self.send(200, json.dumps(r or {"ok": False, "user": {"name": user}}))
        if self.path == "/text":
            return self.send(200, f"WELCOME {user}" if r else "DENIED", "text/plain")
        self.send(404, "{}")


class Quiet(ThreadingHTTPServer):
    # A client that hangs up early (the STS stops reading at its size limit, or at its timeout) is normal
    # here: no traceback on stderr.
    def handle_error(self, request, client_address):
        pass


def main():
    port = int(sys.argv[1])
    server = Quiet(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("READY", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
