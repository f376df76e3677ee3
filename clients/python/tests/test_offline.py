"""Offline tests of the sts_login package: no real STS is needed (a small fake one runs on 127.0.0.1).

Run: python -m unittest discover -s clients/python/tests -v   (with sts_login and jwcrypto installed)
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import http.client
import http.server
import json
import os
import socket
import stat
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
from unittest import mock

from jwcrypto import jwe, jwk

import sts_login
from sts_login import StsLoginError, _cache, _core, _http, _jwe, _loopback
from sts_login._loopback import LoopbackListener

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
STS_URL_LINE = "Open this URL to sign in: "


def b64(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def fake_jwt(sub: str, aud: str, ttl: int = 300) -> str:
    return f"{b64({'alg': 'none'})}.{b64({'sub': sub, 'aud': aud, 'exp': int(time.time()) + ttl})}.sig"


def encrypt(payload, public: jwk.JWK, alg: str, enc: str) -> str:
    token = jwe.JWE(json.dumps(payload).encode(), protected={"alg": alg, "enc": enc}, algs=[alg, enc])
    token.add_recipient(public)
    return token.serialize(compact=True)


def http_get(url: str):
    """(status, body) for a GET without proxies; HTTP errors are returned, not raised."""
    try:
        with NO_PROXY.open(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read().decode()


def raw_get(port: int, path: str, host=None):
    """(status, headers as a dict with lower-case names, body) of one GET to 127.0.0.1:port, redirects
    not followed; `host` replaces the Host header."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        if host is None:
            conn.request("GET", path)
        else:
            conn.putrequest("GET", path, skip_host=True)
            conn.putheader("Host", host)
            conn.endheaders()
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode()
    finally:
        conn.close()


class TempDirCase(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self._tmp.cleanup)
        self.tmp = self._tmp.name
        patcher = mock.patch.dict(os.environ, {"STS_LOGIN_NO_BROWSER": "1"})
        patcher.start()
        self.addCleanup(patcher.stop)


# ------------------------------------------------------------------ JWE

class JweTest(unittest.TestCase):
    response = {"access_token": "at", "token_type": "Bearer", "expires_in": 300, "refresh_token": "rt"}

    def test_decrypts_ecdh_es_a256kw_a256gcm(self):
        key = _jwe.generate_key("EC")
        public = jwk.JWK.from_json(_jwe.public_jwk_json(key))
        self.assertNotIn("d", json.loads(_jwe.public_jwk_json(key)))
        self.assertEqual(json.loads(_jwe.public_jwk_json(key))["crv"], "P-256")
        compact = encrypt(self.response, public, "ECDH-ES+A256KW", "A256GCM")
        self.assertEqual(_jwe.decrypt(compact, key), self.response)

    def test_decrypts_rsa_oaep_256_with_rsa_key(self):
        key = _jwe.generate_key("RSA")
        public = jwk.JWK.from_json(_jwe.public_jwk_json(key))
        compact = encrypt(self.response, public, "RSA-OAEP-256", "A256GCM")
        self.assertEqual(_jwe.decrypt(compact, key), self.response)

    def assertRefused(self, compact, key):
        with self.assertRaises(StsLoginError) as cm:
            _jwe.decrypt(compact, key)
        self.assertNotIn('"at"', str(cm.exception))
        return cm.exception

    def test_refuses_alg_dir(self):
        key = _jwe.generate_key("EC")
        sym = jwk.JWK.generate(kty="oct", size=256)
        compact = encrypt(self.response, sym, "dir", "A256GCM")
        self.assertIn("refusing", str(self.assertRefused(compact, key)))

    def test_refuses_rsa1_5(self):
        for kty in ("EC", "RSA"):
            key = _jwe.generate_key(kty)
            rsa_pub = jwk.JWK.from_json(_jwe.public_jwk_json(key if kty == "RSA" else _jwe.generate_key("RSA")))
            compact = encrypt(self.response, rsa_pub, "RSA1_5", "A256GCM")
            self.assertIn("refusing", str(self.assertRefused(compact, key)))

    def test_refuses_a128cbc_hs256(self):
        key = _jwe.generate_key("EC")
        public = jwk.JWK.from_json(_jwe.public_jwk_json(key))
        compact = encrypt(self.response, public, "ECDH-ES+A256KW", "A128CBC-HS256")
        self.assertIn("refusing", str(self.assertRefused(compact, key)))

    def test_refuses_other_ec_algs_and_mismatched_key_type(self):
        key = _jwe.generate_key("EC")
        public = jwk.JWK.from_json(_jwe.public_jwk_json(key))
        for alg in ("ECDH-ES", "ECDH-ES+A128KW"):
            self.assertRefused(encrypt(self.response, public, alg, "A256GCM"), key)
        rsa = _jwe.generate_key("RSA")
        rsa_pub = jwk.JWK.from_json(_jwe.public_jwk_json(rsa))
        # RSA-OAEP-256 is only accepted with our RSA key; our key is EC here
        self.assertRefused(encrypt(self.response, rsa_pub, "RSA-OAEP-256", "A256GCM"), key)

    def test_jwcrypto_allow_list_holds_even_without_header_precheck(self):
        key = _jwe.generate_key("EC")
        public = jwk.JWK.from_json(_jwe.public_jwk_json(key))
        compact = encrypt(self.response, public, "ECDH-ES+A256KW", "A128CBC-HS256")
        plain = jwe.JWE()
        plain.deserialize(compact, key=key)  # jwcrypto's defaults would accept it...
        self.assertEqual(json.loads(plain.payload), self.response)
        lie = {"alg": "ECDH-ES+A256KW", "enc": "A256GCM"}
        with mock.patch.object(_jwe, "protected_header", return_value=lie):
            with self.assertRaises(StsLoginError) as cm:  # ...the explicit allow-list does not
                _jwe.decrypt(compact, key)
        self.assertIn("cannot decrypt", str(cm.exception))

    def test_refuses_wrong_key_tampering_and_non_compact(self):
        key = _jwe.generate_key("EC")
        other = jwk.JWK.from_json(_jwe.public_jwk_json(_jwe.generate_key("EC")))
        self.assertRefused(encrypt(self.response, other, "ECDH-ES+A256KW", "A256GCM"), key)
        public = jwk.JWK.from_json(_jwe.public_jwk_json(key))
        compact = encrypt(self.response, public, "ECDH-ES+A256KW", "A256GCM")
        parts = compact.split(".")
        parts[3] = ("A" if parts[3][0] != "A" else "B") + parts[3][1:]
        self.assertRefused(".".join(parts), key)
        token = jwe.JWE(b"{}", protected={"alg": "ECDH-ES+A256KW", "enc": "A256GCM"})
        token.add_recipient(public)
        self.assertRefused(token.serialize(), key)  # JSON serialization
        self.assertRefused("not-a-jwe", key)


# ------------------------------------------------------------------ cache

class CacheTest(TempDirCase):
    def test_modes_0600_and_0700(self):
        for umask in (0o000, 0o022, 0o077):
            d = os.path.join(self.tmp, f"u{umask:o}", "sts-login")
            old = os.umask(umask)
            try:
                _cache.save(d, _cache.empty())
            finally:
                os.umask(old)
            self.assertEqual(stat.S_IMODE(os.stat(d).st_mode), 0o700)
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(d, "tokens.json")).st_mode), 0o600)

    def test_existing_open_directory_is_tightened(self):
        d = os.path.join(self.tmp, "open")
        os.mkdir(d, 0o755)
        os.chmod(d, 0o755)
        _cache.save(d, _cache.empty())
        self.assertEqual(stat.S_IMODE(os.stat(d).st_mode), 0o700)

    def test_rewrite_keeps_unknown_fields_and_leaves_no_temp_file(self):
        d = os.path.join(self.tmp, "c")
        sts = "https://sts.example.com"
        original = {
            "version": 1, "written_by": "rust-cli", "sessions": {
                sts: {"refresh_token": "rt-old", "refresh_expires_at": None, "subject": "alice", "extra": [1, 2],
                      "tokens": {"orders-api": {"access_token": "at-orders", "expires_at": 1, "scope": "s",
                                                "note": "kept"}}},
                "https://other.example.com": {"refresh_token": "rt-other", "future": {"x": 1}, "tokens": {}},
            }}
        _cache.save(d, original)
        resp = {"access_token": fake_jwt("alice", "billing"), "token_type": "Bearer", "expires_in": 600,
                "refresh_token": "rt-new", "scope": "openid"}
        _core._store_login(sts, "billing", "openid", d, resp)
        with open(os.path.join(d, "tokens.json")) as f:
            data = json.load(f)
        self.assertEqual(data["written_by"], "rust-cli")
        self.assertEqual(data["sessions"]["https://other.example.com"], original["sessions"]["https://other.example.com"])
        s = data["sessions"][sts]
        self.assertEqual(s["extra"], [1, 2])
        self.assertEqual(s["refresh_token"], "rt-new")
        self.assertEqual(s["tokens"]["orders-api"]["note"], "kept")  # same subject: other audiences kept
        self.assertEqual(s["tokens"]["billing"]["scope"], "openid")
        self.assertGreater(s["tokens"]["billing"]["expires_at"], time.time() + 500)
        self.assertEqual([n for n in os.listdir(d) if "tmp" in n], [])
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(d, "tokens.json")).st_mode), 0o600)

    def test_new_identity_drops_other_audiences(self):
        d = os.path.join(self.tmp, "c")
        sts = "https://sts.example.com"
        _cache.save(d, {"version": 1, "sessions": {sts: {"subject": "alice", "tokens": {
            "a": {"access_token": "x", "expires_at": 9999999999}}}}})
        _core._store_login(sts, "b", "openid", d, {"access_token": fake_jwt("bob", "b"), "token_type": "Bearer",
                                                  "expires_in": 60, "refresh_token": "rt"})
        s = _cache.load(d)["sessions"][sts]
        self.assertEqual(set(s["tokens"]), {"b"})
        self.assertEqual(s["subject"], "bob")

    def test_refuses_corrupt_or_newer_cache(self):
        d = os.path.join(self.tmp, "c")
        os.makedirs(d)
        with open(os.path.join(d, "tokens.json"), "w") as f:
            f.write("{not json")
        with self.assertRaises(StsLoginError):
            _cache.load(d)
        with open(os.path.join(d, "tokens.json"), "w") as f:
            json.dump({"version": 2, "sessions": {}}, f)
        with self.assertRaises(StsLoginError):
            _cache.load(d)

    def test_default_directory(self):
        with mock.patch.dict(os.environ, {"STS_LOGIN_HOME": "/x/home", "XDG_CONFIG_HOME": "/x/xdg"}):
            self.assertEqual(_cache.default_cache_dir(), "/x/home")
        with mock.patch.dict(os.environ, {"XDG_CONFIG_HOME": "/x/xdg"}):
            os.environ.pop("STS_LOGIN_HOME", None)
            self.assertEqual(_cache.default_cache_dir(), "/x/xdg/sts-login")
        with mock.patch.dict(os.environ, {"HOME": "/x/h"}):
            os.environ.pop("STS_LOGIN_HOME", None)
            os.environ.pop("XDG_CONFIG_HOME", None)
            self.assertEqual(_cache.default_cache_dir(), "/x/h/.config/sts-login")

    def test_cached_token_needs_more_than_30_seconds(self):
        d = os.path.join(self.tmp, "c")
        sts = "https://sts.example.com"
        now = int(time.time())
        _cache.save(d, {"version": 1, "sessions": {sts: {"tokens": {
            "": {"access_token": "default-at", "expires_at": now + 120},
            "short": {"access_token": "short-at", "expires_at": now + 20}}}}})
        self.assertEqual(sts_login.get_token(sts + "/", cache_dir=d), "default-at")
        # 20 s left and no refresh token: a new login is needed; discovery at sts.example.com is not
        # reachable here, so stop it right there.
        with mock.patch.object(_core, "request_json", side_effect=StsLoginError("no network in this test")):
            with self.assertRaises(StsLoginError):
                sts_login.get_token(sts, audience="short", cache_dir=d, method="device")


# ------------------------------------------------------------------ loopback listener

class LoopbackTest(unittest.TestCase):
    def test_wrong_state_refused_right_state_accepted(self):
        state = "s" * 43
        with LoopbackListener(state) as listener:
            self.assertTrue(listener.redirect_uri.startswith("http://127.0.0.1:"))
            base = listener.redirect_uri
            results = {}

            def drive():
                results["other_path"] = http_get(base.replace("/callback", "/favicon.ico"))
                results["wrong"] = http_get(base + "?" + urllib.parse.urlencode({"response": "x", "state": "t" * 43}))
                results["missing"] = http_get(base + "?response=x")
                results["repeated"] = http_get(base + f"?response=x&state={state}&state={state}")
                results["right"] = http_get(base + "?" + urllib.parse.urlencode({"response": "the-jwe", "state": state}))
                results["after"] = http_get(base + "?" + urllib.parse.urlencode({"response": "y", "state": state}))

            t = threading.Thread(target=drive)
            t.start()
            got = listener.wait(10)
            t.join(10)
        self.assertEqual(got, {"response": "the-jwe", "state": state})
        self.assertEqual(results["other_path"][0], 404)
        self.assertEqual(results["wrong"][0], 400)
        self.assertEqual(results["missing"][0], 400)
        self.assertEqual(results["repeated"][0], 400)
        self.assertEqual(results["right"][0], 200)
        self.assertIn("Signed in; you can close this tab", results["right"][1])
        self.assertNotIn("the-jwe", results["right"][1])
        self.assertEqual(results["after"][0], 400)

    def test_error_callback_and_timeout(self):
        with LoopbackListener("abc" * 11) as listener:
            t = threading.Thread(target=http_get, args=(listener.redirect_uri + "?error=access_denied"
                                                        "&error_description=User+denied&state=" + "abc" * 11,))
            t.start()
            with self.assertRaises(StsLoginError) as cm:
                listener.wait(10)
            t.join(10)
        self.assertIn("access_denied", str(cm.exception))
        with LoopbackListener("z" * 40) as listener:
            with self.assertRaises(StsLoginError):
                listener.wait(0.2)

    def test_start_redirects_to_the_sign_in_url_and_nothing_else(self):
        state = "q" * 43
        sign_in = "https://sts.example.com/sso/flow/redirect/token?redirect_uri=x&state=" + state
        with LoopbackListener(state) as listener:
            port = listener.port
            self.assertEqual(listener.start_url, f"http://127.0.0.1:{port}/start")
            self.assertNotIn(state, listener.start_url)
            self.assertEqual(raw_get(port, "/start")[0], 404)  # nothing to redirect to yet
            listener.set_sign_in_url(sign_in)
            for path in ("/start", "/start", "/start?x=1", "/start?state=y&redirect=https://evil.example"):
                status, headers, body = raw_get(port, path)
                self.assertEqual(status, 302, path)
                self.assertEqual(headers["location"], sign_in)
                self.assertEqual(headers["cache-control"], "no-store")
                self.assertEqual(body, "")
            # The same result through a client that follows redirects: it ends at the sign-in URL.
            req = urllib.request.Request(listener.start_url)
            redirects = []

            class Catch(urllib.request.HTTPRedirectHandler):
                def redirect_request(self, req, fp, code, msg, headers, newurl):
                    redirects.append((code, newurl))
                    return None

            with self.assertRaises(urllib.error.HTTPError) as cm:
                urllib.request.build_opener(urllib.request.ProxyHandler({}), Catch()).open(req, timeout=10)
            cm.exception.close()
            self.assertEqual(redirects, [(302, sign_in)])
            # Only for its own Host (no DNS rebinding); other paths and methods learn nothing.
            for host in ("localhost:%d" % port, "evil.example", "127.0.0.1"):
                status, headers, body = raw_get(port, "/start", host=host)
                self.assertEqual(status, 400, host)
                self.assertNotIn("location", headers)
                self.assertNotIn(state, body)
            for path in ("/start/", "/startx", "/Start", "/start//", "/start/../callback", "/", "/callback/start"):
                status, headers, body = raw_get(port, path)
                self.assertEqual(status, 404, path)
                self.assertNotIn("location", headers)
                self.assertNotIn(state, body)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/start", body=b"")
            r = conn.getresponse()
            self.assertEqual(r.status, 501)
            self.assertNotIn(state, r.read().decode())
            conn.close()
            # Once the sign-in is over, /start stops redirecting.
            self.assertEqual(http_get(listener.redirect_uri + "?response=r&state=" + state)[0], 200)
            listener.wait(5)
            status, headers, _ = raw_get(port, "/start")
            self.assertEqual(status, 400)
            self.assertNotIn("location", headers)

    def test_set_sign_in_url_refuses_header_injection(self):
        with LoopbackListener("w" * 40) as listener:
            for bad in ("https://sts.example.com/x\r\nSet-Cookie: a=b", "https://sts.example.com/a b",
                        "javascript:alert(1)", "https://sts.example.com/\u00e9", ""):
                with self.assertRaises(ValueError, msg=bad):
                    listener.set_sign_in_url(bad)
            self.assertEqual(raw_get(listener.port, "/start")[0], 404)

    def test_idle_connections_do_not_delay_the_callback(self):
        state = "i" * 43
        idle = []
        with mock.patch.object(_loopback._Handler, "timeout", 1.0):
            with LoopbackListener(state) as listener:
                for n in range(8):
                    sock = socket.create_connection(("127.0.0.1", listener.port), timeout=10)
                    if n % 2:
                        sock.sendall(b"GET /callback?state=")  # an unfinished request line
                    idle.append(sock)
                self.addCleanup(lambda: [sock.close() for sock in idle])
                start = time.monotonic()
                t = threading.Thread(target=http_get, args=(listener.redirect_uri + "?response=r&state=" + state,))
                t.start()
                self.assertEqual(listener.wait(5)["response"], "r")
                t.join(10)
                self.assertLess(time.monotonic() - start, 0.9)  # served while the idle ones are still open
                # each idle connection is dropped after the per-connection timeout
                for sock in idle:
                    sock.settimeout(5)
                    try:
                        data = sock.recv(1024)
                    except ConnectionResetError:
                        data = b""
                    self.assertEqual(data, b"")
            self.assertLess(time.monotonic() - start, 4)
        self.assertLessEqual(_loopback.CONNECTION_TIMEOUT, 10)
        self.assertTrue(_loopback._Server.daemon_threads)

    def test_concurrent_right_callbacks_only_one_accepted(self):
        state = "c" * 43
        barrier = threading.Barrier(8)

        def slow(params):
            time.sleep(0.2)  # widen the window for a second acceptance
            return params["response"]

        results = {}
        with LoopbackListener(state, slow) as listener:
            def hit(n):
                barrier.wait(5)
                results[n] = http_get(listener.redirect_uri + f"?response=r{n}&state={state}")[0]

            threads = [threading.Thread(target=hit, args=(n,)) for n in range(8)]
            for t in threads:
                t.start()
            got = listener.wait(10)
            for t in threads:
                t.join(10)
        self.assertEqual(sorted(results.values()), [200] + [400] * 7)
        winner = [n for n, status in results.items() if status == 200][0]
        self.assertEqual(got, f"r{winner}")


# ------------------------------------------------------------------ URLs

class UrlTest(unittest.TestCase):
    def test_normalisation(self):
        n = _http.normalise_sts
        self.assertEqual(n("https://sts.example.com/"), "https://sts.example.com")
        self.assertEqual(n("  https://STS.Example.com:443// "), "https://sts.example.com")
        self.assertEqual(n("https://sts.example.com:8443/base/"), "https://sts.example.com:8443/base")
        self.assertEqual(n("http://127.0.0.1:8080/"), "http://127.0.0.1:8080")
        self.assertEqual(n("http://localhost:80"), "http://localhost")
        self.assertEqual(n("http://[::1]:9000/"), "http://[::1]:9000")
        for bad in ("", "sts.example.com", "ftp://sts.example.com", "https://user:pw@sts.example.com",
                    "https://sts.example.com/?x=1", "https://sts.example.com/#f", "https://sts.example.com:99999"):
            with self.assertRaises(StsLoginError, msg=bad):
                n(bad)

    def test_https_required_except_loopback(self):
        for bad in ("http://sts.example.com", "http://10.0.0.1:8080", "http://127.0.0.2", "http://localhost.evil.com"):
            with self.assertRaises(StsLoginError) as cm:
                _http.normalise_sts(bad)
            self.assertIn("https is required", str(cm.exception))
        for good in ("https://sts.example.com", "http://127.0.0.1", "http://[::1]", "http://localhost:1"):
            _http.check_transport(good)
        with self.assertRaises(StsLoginError):
            _http.check_transport("http://sts.example.com/sso/token", "token_endpoint")


# ------------------------------------------------------------------ flows against a fake STS on 127.0.0.1

class FakeSts:
    """Just enough of the protocol in PROTOCOL.md to drive the flows."""

    def __init__(self):
        self.valid_refresh = {}  # refresh token -> subject
        self.requests = []  # (path, form)
        self.device_script = []  # answers to device_code polls, e.g. ["authorization_pending", "ok"]
        self.revoked = []
        self.counter = 0
        self.redirect_alg = "ECDH-ES+A256KW"
        self.discovery_override = {}  # merged into the discovery document
        self.device_extra = {}  # merged into the device authorization answer
        self.token_extra = {}  # merged into every token response
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _json(self, status, obj, headers=None):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                parts = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(parts.query))
                fake.requests.append((parts.path, q))
                if parts.path == "/.well-known/openid-configuration":
                    b = fake.base
                    doc = {"issuer": b, "token_endpoint": b + "/sso/token",
                           "device_authorization_endpoint": b + "/sso/device_authorization",
                           "revocation_endpoint": b + "/sso/revoke",
                           "sts_token_redirect_endpoint": b + "/sso/flow/redirect/token"}
                    doc.update(fake.discovery_override)
                    return self._json(200, doc)
                if parts.path == "/sso/flow/redirect/token":
                    key = jwk.JWK.from_json(q["jwk"])
                    compact = encrypt(fake.issue("alice", q.get("audience", ""), q.get("scope")), key,
                                      fake.redirect_alg, "A256GCM")
                    loc = q["redirect_uri"] + "?" + urllib.parse.urlencode({"response": compact, "state": q["state"]})
                    self.send_response(302)
                    self.send_header("Location", loc)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                if parts.path == "/big":
                    return self._json(200, {"x": "a" * (1024 * 1024)})
                if parts.path == "/moved":
                    self.send_response(302)
                    self.send_header("Location", fake.base + "/.well-known/openid-configuration")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                return self._json(404, {"error": "not_found"})

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(n).decode()))
                fake.requests.append((self.path, form))
                if form.get("client_id") != "sts-login":
                    return self._json(401, {"error": "invalid_client"})
                if self.path == "/sso/token" and form.get("grant_type") == "refresh_token":
                    sub = fake.valid_refresh.pop(form.get("refresh_token"), None)
                    if sub is None:
                        return self._json(400, {"error": "invalid_grant", "error_description": "grant ended"})
                    return self._json(200, fake.issue(sub, form.get("audience", ""), form.get("scope")))
                if self.path == "/sso/token" and form.get("grant_type") == _core.DEVICE_GRANT:
                    step = fake.device_script.pop(0)
                    if step == "ok":
                        return self._json(200, fake.issue("carol", fake.device_audience, None))
                    return self._json(400, {"error": step})
                if self.path == "/sso/device_authorization":
                    fake.device_audience = form.get("audience", "")
                    answer = {"device_code": "dc", "user_code": "BCDF-GHJK",
                              "verification_uri": fake.base + "/sso/device",
                              "verification_uri_complete": fake.base + "/sso/device?user_code=BCDFGHJK",
                              "expires_in": 600, "interval": 2}
                    answer.update(fake.device_extra)
                    return self._json(200, answer)
                if self.path == "/sso/revoke":
                    fake.revoked.append(form.get("token"))
                    return self._json(200, {})
                return self._json(400, {"error": "unsupported_grant_type"})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def issue(self, sub, aud, scope):
        self.counter += 1
        rt = f"rt-{self.counter}"
        self.valid_refresh[rt] = sub
        resp = {"access_token": fake_jwt(sub, aud), "token_type": "Bearer",
                "expires_in": 300, "refresh_token": rt, "scope": scope or "openid"}
        resp.update(self.token_extra)
        return resp

    def token_posts(self):
        return [f for p, f in self.requests if p == "/sso/token"]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class FlowTest(TempDirCase):
    def setUp(self):
        super().setUp()
        self.sts = FakeSts()
        self.addCleanup(self.sts.close)
        self.cache = os.path.join(self.tmp, "cache")
        self.printed = []

    def follow_printed_url(self, line):
        """print_fn that acts as the browser: follows the sign-in URL (and the redirect to the callback)."""
        self.printed.append(line)
        if line.startswith(STS_URL_LINE) and "/sso/flow/redirect/token" in line:
            url = line[len(STS_URL_LINE):]
            threading.Thread(target=http_get, args=(url,), daemon=True).start()

    def read_cache(self):
        with open(os.path.join(self.cache, "tokens.json")) as f:
            return json.load(f)

    def test_redirect_login_then_cache_then_refresh_then_logout(self):
        at = sts_login.get_token(self.sts.base + "/", audience="orders-api", method="redirect",
                                 open_browser=False, timeout=20, cache_dir=self.cache, print_fn=self.follow_printed_url)
        self.assertEqual(_core._jwt_claims(at)["aud"], "orders-api")
        self.assertEqual(len(self.printed), 1)
        self.assertTrue(self.printed[0].startswith(STS_URL_LINE + self.sts.base + "/sso/flow/redirect/token?"))
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.printed[0][len(STS_URL_LINE):]).query))
        self.assertRegex(q["redirect_uri"], r"^http://127\.0\.0\.1:\d+/callback$")
        self.assertGreaterEqual(len(q["state"]), 32)
        self.assertEqual(set(json.loads(q["jwk"])), {"kty", "crv", "x", "y"})
        self.assertEqual((q["audience"], q["scope"]), ("orders-api", "openid profile email roles"))
        session = self.read_cache()["sessions"][self.sts.base]
        self.assertEqual(session["refresh_token"], "rt-1")
        self.assertEqual(session["subject"], "alice")
        self.assertIsNone(session["refresh_expires_at"])
        # second call: from the cache, no request at all
        n = len(self.sts.requests)
        self.assertEqual(sts_login.get_token(self.sts.base, audience="orders-api", cache_dir=self.cache), at)
        self.assertEqual(len(self.sts.requests), n)
        # another audience: refresh with the rotated token stored
        at2 = sts_login.get_token(self.sts.base, audience="billing", cache_dir=self.cache)
        self.assertEqual(_core._jwt_claims(at2)["aud"], "billing")
        post = self.sts.token_posts()[-1]
        self.assertEqual((post["grant_type"], post["refresh_token"], post["audience"]), ("refresh_token", "rt-1", "billing"))
        session = self.read_cache()["sessions"][self.sts.base]
        self.assertEqual(session["refresh_token"], "rt-2")
        self.assertEqual(set(session["tokens"]), {"orders-api", "billing"})
        # logout revokes the current refresh token and removes the entry
        self.assertTrue(sts_login.logout(self.sts.base + "/", cache_dir=self.cache))
        self.assertEqual(self.sts.revoked, ["rt-2"])
        self.assertNotIn(self.sts.base, self.read_cache()["sessions"])
        self.assertFalse(sts_login.logout(self.sts.base, cache_dir=self.cache))

    def test_redirect_refuses_wrong_jwe_alg(self):
        self.sts.redirect_alg = "ECDH-ES"
        with self.assertRaises(StsLoginError) as cm:
            sts_login.get_token(self.sts.base, method="redirect", timeout=20, cache_dir=self.cache,
                                print_fn=self.follow_printed_url)
        self.assertIn("refusing", str(cm.exception))

    def test_invalid_grant_falls_through_to_login(self):
        _cache.save(self.cache, {"version": 1, "sessions": {self.sts.base: {
            "refresh_token": "revoked", "refresh_expires_at": None, "tokens": {}}}})
        self.sts.device_script = ["ok"]
        with mock.patch.object(_core, "_sleep"):
            at = sts_login.get_token(self.sts.base, method="device", cache_dir=self.cache, print_fn=self.printed.append)
        self.assertEqual(_core._jwt_claims(at)["sub"], "carol")
        self.assertEqual(self.sts.token_posts()[0]["refresh_token"], "revoked")
        self.assertEqual(self.read_cache()["sessions"][self.sts.base]["refresh_token"], "rt-1")

    def test_device_flow_pending_slow_down_and_output(self):
        self.sts.device_script = ["authorization_pending", "slow_down", "authorization_pending", "ok"]
        sleeps = []
        with mock.patch.object(_core, "_sleep", side_effect=sleeps.append):
            at = sts_login.get_token(self.sts.base, audience="orders-api", method="device", cache_dir=self.cache,
                                     print_fn=self.printed.append)
        self.assertEqual(sleeps, [2, 2, 7, 7])
        self.assertEqual(self.printed[0], STS_URL_LINE + self.sts.base + "/sso/device?user_code=BCDFGHJK")
        self.assertIn("BCDF-GHJK", self.printed[1])
        for line in self.printed:
            self.assertNotIn(at, line)
            self.assertNotIn("rt-1", line)
        self.assertEqual(self.read_cache()["sessions"][self.sts.base]["tokens"]["orders-api"]["access_token"], at)

    def test_device_flow_denied_and_expired(self):
        for answer, words in (("access_denied", "denied"), ("expired_token", "expired")):
            self.sts.device_script = ["authorization_pending", answer]
            with mock.patch.object(_core, "_sleep"):
                with self.assertRaises(StsLoginError) as cm:
                    sts_login.get_token(self.sts.base, method="device", cache_dir=self.cache, print_fn=self.printed.append)
            self.assertIn(words, str(cm.exception))

    def test_auto_without_browser_uses_device(self):
        self.sts.device_script = ["ok"]
        with mock.patch.object(_core, "_sleep"):
            sts_login.get_token(self.sts.base, cache_dir=self.cache, print_fn=self.printed.append)
        self.assertIn("/sso/device?user_code=", self.printed[0])

    def test_refresh_rereads_cache_after_taking_the_lock(self):
        base = self.sts.base
        _cache.save(self.cache, {"version": 1, "sessions": {base: {
            "refresh_token": "rt-old", "tokens": {"": {"access_token": "stale", "expires_at": 1}}}}})
        lock_fd = os.open(os.path.join(self.cache, "tokens.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # "another process" is refreshing
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("at", sts_login.get_token(base, cache_dir=self.cache)))
        t.start()
        time.sleep(0.5)
        self.assertTrue(t.is_alive())
        _cache.save(self.cache, {"version": 1, "sessions": {base: {
            "refresh_token": "rt-rotated", "tokens": {"": {"access_token": "fresh", "expires_at": time.time() + 600}}}}})
        fcntl.flock(lock_fd, fcntl.LOCK_UN)
        os.close(lock_fd)
        t.join(10)
        self.assertEqual(result["at"], "fresh")
        self.assertEqual(self.sts.token_posts(), [])

    def test_redirect_opens_the_browser_on_the_start_address(self):
        opened = []

        def browser(url, *a, **kw):
            """Acts as the browser: /start, then the redirect to the STS, then the one to the callback."""
            opened.append(url)
            status, headers, _ = raw_get(urllib.parse.urlsplit(url).port, "/start")
            opened.append((status, headers.get("location"), headers.get("cache-control")))
            threading.Thread(target=http_get, args=(url,), daemon=True).start()
            return True

        with mock.patch.dict(os.environ, {"STS_LOGIN_NO_BROWSER": ""}), \
                mock.patch.object(_core.webbrowser, "open", side_effect=browser) as wb_open:
            at = sts_login.get_token(self.sts.base, audience="orders-api", method="redirect", open_browser=True,
                                     timeout=20, cache_dir=self.cache, print_fn=self.printed.append)
        self.assertEqual(_core._jwt_claims(at)["aud"], "orders-api")
        self.assertEqual(wb_open.call_count, 1)
        # The printed line is unchanged: the real sign-in URL at the STS...
        self.assertEqual(len(self.printed), 1)
        self.assertTrue(self.printed[0].startswith(STS_URL_LINE + self.sts.base + "/sso/flow/redirect/token?"))
        sign_in = self.printed[0][len(STS_URL_LINE):]
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(sign_in).query))
        port = urllib.parse.urlsplit(q["redirect_uri"]).port
        # ...but the browser's command line only gets the loopback /start address, without state or key.
        self.assertEqual(opened[0], f"http://127.0.0.1:{port}/start")
        for secret in (q["state"], q["jwk"], urllib.parse.quote(q["state"]), "jwk", "state"):
            self.assertNotIn(secret, opened[0])
        self.assertEqual(opened[1], (302, sign_in, "no-store"))

    def test_values_from_the_server_are_capped(self):
        # device answer: a huge interval and lifetime, then slow_down; the token: a huge lifetime
        self.sts.device_extra = {"interval": 10 ** 6, "expires_in": 10 ** 12}
        self.sts.token_extra = {"expires_in": 10 ** 12, "refresh_expires_in": 10 ** 30}
        self.sts.device_script = ["authorization_pending", "slow_down", "ok"]
        sleeps = []
        with mock.patch.object(_core, "_sleep", side_effect=sleeps.append):
            sts_login.get_token(self.sts.base, audience="a", method="device", cache_dir=self.cache,
                                print_fn=self.printed.append)
        self.assertEqual(sleeps, [60, 60, 60])
        session = self.read_cache()["sessions"][self.sts.base]
        self.assertLessEqual(session["tokens"]["a"]["expires_at"], time.time() + 86400)
        self.assertGreater(session["tokens"]["a"]["expires_at"], time.time() + 86000)
        self.assertIsNone(session["refresh_expires_at"])
        # slow_down never goes beyond 60; a zero, negative or non-finite interval is 1..5
        self.sts.device_extra = {"interval": 58}
        self.sts.device_script = ["slow_down", "slow_down", "ok"]
        sleeps.clear()
        with mock.patch.object(_core, "_sleep", side_effect=sleeps.append):
            sts_login.get_token(self.sts.base, audience="b", method="device", cache_dir=self.cache + "2",
                                print_fn=self.printed.append)
        self.assertEqual(sleeps, [58, 60, 60])
        for interval, expected in ((0, 1), (-7, 1), (0.2, 1), (30, 30), (float("inf"), 5), (float("nan"), 5),
                                   ("9", 5), (True, 5), (None, 5), (10 ** 400, 5)):
            self.assertEqual(_core._interval(interval), expected, interval)
        for expires_in, expected in ((600, 600), (86400, 86400), (86401, 86400), (1e300, 86400), (0, None),
                                     (-1, None), (float("inf"), None), (float("nan"), None), ("600", None)):
            self.assertEqual(_core._expires_in(expires_in), expected, expires_in)

    def test_device_code_lifetime_capped(self):
        self.sts.device_extra = {"expires_in": 10 ** 12, "interval": 60}
        clock = {"t": 1000.0}
        fake_time = mock.Mock(time=time.time, monotonic=lambda: clock["t"])
        real_request = _core.request_json
        polls = []

        def request(url, form=None, **kw):
            if form and form.get("grant_type") == _core.DEVICE_GRANT:
                polls.append(url)
                if len(polls) > 86400 // 60 + 5:
                    raise AssertionError("still polling after the capped device code lifetime")
                return 400, {"error": "authorization_pending"}
            return real_request(url, form, **kw)

        def sleep(seconds):
            clock["t"] += seconds

        with mock.patch.object(_core, "time", fake_time), mock.patch.object(_core, "_sleep", side_effect=sleep), \
                mock.patch.object(_core, "request_json", side_effect=request):
            with self.assertRaises(StsLoginError) as cm:
                sts_login.get_token(self.sts.base, method="device", timeout=10 ** 9, cache_dir=self.cache,
                                    print_fn=self.printed.append)
        self.assertIn("within 86400 s", str(cm.exception))
        self.assertEqual(len(polls), 86400 // 60)

    def test_non_finite_numbers_from_the_server(self):
        for extra in ({"expires_in": float("inf")}, {"expires_in": float("nan")}, {"expires_in": -1e308},
                      {"refresh_expires_in": float("inf")}, {"refresh_expires_in": 1e308}):
            session = {}
            resp = {"access_token": fake_jwt("alice", "a", ttl=10 ** 9), "token_type": "Bearer",
                    "refresh_token": "rt", "expires_in": 300}
            resp.update(extra)
            now = time.time()
            _core._apply_response(session, "a", resp, "openid", now)
            json.dumps(session, allow_nan=False)  # nothing the Rust CLI could not read
            self.assertLessEqual(session["tokens"]["a"]["expires_at"], now + 86400, extra)
            r = session["refresh_expires_at"]
            self.assertTrue(r is None or r <= now + 86400 * 3700, extra)

    def test_discovery_endpoints_are_checked_before_use(self):
        seen = []
        real_request = _core.request_json

        def request(url, form=None, **kw):
            seen.append(url)
            return real_request(url, form, **kw)

        def with_refresh_token():
            _cache.save(self.cache, {"version": 1, "sessions": {self.sts.base: {
                "refresh_token": "rt-x", "tokens": {"": {"access_token": "old", "expires_at": 1}}}}})

        flows = {
            "token_endpoint": lambda: (with_refresh_token(),
                                       sts_login.get_token(self.sts.base, cache_dir=self.cache)),
            "device_authorization_endpoint": lambda: sts_login.get_token(
                self.sts.base, method="device", cache_dir=self.cache, print_fn=self.printed.append),
            "sts_token_redirect_endpoint": lambda: sts_login.get_token(
                self.sts.base, method="redirect", timeout=5, cache_dir=self.cache, print_fn=self.printed.append),
            "revocation_endpoint": lambda: (with_refresh_token(),
                                            sts_login.logout(self.sts.base, cache_dir=self.cache)),
        }
        # the device flow needs a sound token endpoint too, before it shows a code
        flows["token_endpoint (device)"] = flows["device_authorization_endpoint"]
        bad_values = ("http://sts.example.com/x", "http://127.0.0.2:1/x", "ftp://127.0.0.1/x",
                      "https://user:pw@sts.example.com/x", "https://sts.example.com/x#frag",
                      "https://sts.example.com/a b", "https://sts.example.com/x\r\nX-Evil: 1",
                      "https://sts.example.com:99999/x", "/sso/token", "", 42, None)
        for name, flow in flows.items():
            key = name.split(" ")[0]
            for bad in bad_values:
                self.sts.discovery_override = {key: bad}
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(self.cache, "tokens.json"))
                self.printed.clear()
                seen.clear()
                with mock.patch.object(_core, "request_json", side_effect=request), \
                        mock.patch.object(_core, "_sleep"):
                    with self.assertRaises(StsLoginError, msg=(name, bad)) as cm:
                        flow()
                self.assertIn(key, str(cm.exception), (name, bad))
                self.assertEqual(seen, [self.sts.base + "/.well-known/openid-configuration"], (name, bad))
                self.assertEqual(self.printed, [], (name, bad))
        # loopback http and https endpoints are fine
        for good in ("http://127.0.0.1:1/sso/token", "http://[::1]:1/t", "http://localhost/t",
                     "https://sts.example.com/sso/token?x=1"):
            self.assertEqual(_http.check_endpoint(good, "token_endpoint"), good)

    def test_http_limits(self):
        with self.assertRaises(StsLoginError) as cm:
            _http.request_json(self.sts.base + "/big")
        self.assertIn("larger than", str(cm.exception))
        with self.assertRaises(StsLoginError) as cm:
            _http.request_json(self.sts.base + "/moved")
        self.assertIn("redirect", str(cm.exception))

    def test_cli_prints_only_the_token(self):
        import io
        from sts_login.__main__ import main
        now = int(time.time())
        _cache.save(self.cache, {"version": 1, "sessions": {self.sts.base: {
            "tokens": {"api": {"access_token": "cached-at", "expires_at": now + 600}}}}})
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["token", "--sts", self.sts.base, "--audience", "api", "--cache-dir", self.cache])
        self.assertEqual((rc, out.getvalue(), err.getvalue()), (0, "cached-at\n", ""))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["token", "--sts", "http://sts.example.com", "--cache-dir", self.cache])
        self.assertEqual(rc, 1)
        self.assertIn("https is required", err.getvalue())


if __name__ == "__main__":
    unittest.main()
