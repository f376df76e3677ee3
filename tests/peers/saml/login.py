#!/usr/bin/env python3
"""Log a user in at the SimpleSAMLphp test IdP (start-idp.py) without a browser.

usage: python3 login.py --authn-url URL --user U --password PW [--cookies FILE] [--timeout S]

URL is where the SP sends the browser: the IdP's SSO service with an HTTP-Redirect binding AuthnRequest
(SAMLRequest, RelayState, optional SigAlg/Signature). Behaves like a browser with a cookie jar and without
following redirects by itself: follows 30x (GET), fills in the IdP's username/password form
(loginuserpass.php, with its AuthState), and stops at the auto-POST form the IdP returns.

Prints one JSON line on stdout:
    {"ok": true, "acs_url": ..., "saml_response": <base64 as sent>, "relay_state": <str or null>}   exit 0
    {"ok": false, "error": ..., "last_url": ..., "last_status": ..., "body_excerpt": ...}            exit 1
A wrong password gives ok:false with error "login failed: the IdP rejected the username or password".
--cookies FILE keeps the IdP session between runs (Mozilla cookies.txt; created when missing), e.g. to test
single sign-on: the second run then gets a SAMLResponse without a login form (the password is not used).
Only stdlib; stderr gets a trace of the requests.
"""

import argparse
import html
import http.cookiejar
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser

MAX_STEPS = 20


class Forms(HTMLParser):
    """Collects <form>s with their action, method and named <input> values."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms = []
        self._current = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._current = {"action": a.get("action"), "method": (a.get("method") or "get").lower(),
                             "inputs": {}}
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None and a.get("name"):
            self._current["inputs"][a["name"]] = a.get("value") or ""

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        if tag == "form":
            self._current = None


class NoRedirects(urllib.request.HTTPErrorProcessor):
    """Return every response as it is: no automatic redirects, no exception for 4xx/5xx."""

    def http_response(self, request, response):
        return response

    https_response = http_response


class Fail(Exception):
    pass


def excerpt(body, limit=600):
    text = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", body)
    text = re.sub(r"(?s)<[^>]+>", " ", text)
    text = html.unescape(re.sub(r"\s+", " ", text)).strip()
    return text[:limit] if limit else text


def error_page(body):
    """SimpleSAMLphp's error pages (sent with HTTP 200): 'IdP error page: <title>: <cause>'."""
    m = re.search(r"(?is)<title>(.*?)</title>", body)
    if not m or not re.search(r"SimpleSAML\\Error\\|Unhandled exception|errorreport", body):
        return None
    text = excerpt(body, None)
    cause = re.search(r"Caused by: (.*?)(?: Backtrace:|$)", text)
    return "IdP error page: " + html.unescape(m.group(1).strip()) + (": " + cause.group(1) if cause else "")


def main():
    ap = argparse.ArgumentParser(description="Non-interactive SAML login at the SimpleSAMLphp test IdP.")
    ap.add_argument("--authn-url", required=True, help="the IdP SSO URL with SAMLRequest (HTTP-Redirect)")
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--cookies", help="Mozilla cookies.txt to load and save (keeps the IdP session)")
    ap.add_argument("--timeout", type=float, default=20.0, help="per request, seconds (default 20)")
    args = ap.parse_args()

    jar = http.cookiejar.MozillaCookieJar(args.cookies) if args.cookies else http.cookiejar.CookieJar()
    if args.cookies:
        try:
            jar.load(ignore_discard=True, ignore_expires=True)
        except FileNotFoundError:
            pass
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),  # never via an http_proxy
                                         urllib.request.HTTPCookieProcessor(jar), NoRedirects())
    opener.addheaders = [("User-Agent", "sts-tests-saml-login/1"), ("Accept", "text/html,*/*")]
    state = {"url": args.authn_url, "status": None, "body": ""}

    def fetch(url, data=None):
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(url, data=body, method="POST" if data is not None else "GET")
        if body is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        state.update(url=url, status=None, body="")
        try:
            with opener.open(req, timeout=args.timeout) as resp:
                status = resp.status
                location = resp.headers.get("Location")
                text = resp.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as e:
            raise Fail(f"request failed: {e}")
        state.update(status=status, body=text)
        print(f"login: {'POST' if data is not None else 'GET'} {url[:160]} -> {status}"
              + (f" Location: {location[:160]}" if location else ""), file=sys.stderr)
        return status, location, text

    def result(ok, **fields):
        if args.cookies:
            try:
                jar.save(ignore_discard=True, ignore_expires=True)
            except OSError as e:
                print(f"login: could not save cookies: {e}", file=sys.stderr)
        print(json.dumps({"ok": ok, **fields}), flush=True)
        sys.exit(0 if ok else 1)

    try:
        url, data = args.authn_url, None
        posted_login = False
        for _ in range(MAX_STEPS):
            status, location, body = fetch(url, data)
            if status in (301, 302, 303, 307, 308):
                if not location:
                    raise Fail(f"HTTP {status} without Location")
                url = urllib.parse.urljoin(url, location)
                if status in (307, 308) and data is not None:
                    raise Fail(f"HTTP {status} redirect of a POST is not supported")
                data = None
                continue
            if status != 200:
                raise Fail(f"HTTP {status} from the IdP")

            forms = Forms()
            forms.feed(body)
            response_form = next((f for f in forms.forms if "SAMLResponse" in f["inputs"]), None)
            if response_form is not None:
                if response_form["method"] != "post" or not response_form["action"]:
                    raise Fail("the SAMLResponse form is not an HTTP-POST form with an action")
                result(True,
                       acs_url=urllib.parse.urljoin(url, response_form["action"]),
                       saml_response=response_form["inputs"]["SAMLResponse"],
                       relay_state=response_form["inputs"].get("RelayState"))

            login_form = next((f for f in forms.forms if "AuthState" in f["inputs"]
                               and "password" in f["inputs"]), None)
            if login_form is not None:
                if posted_login:
                    # SimpleSAMLphp shows the form again, with errorcode WRONGUSERPASS, after a failed login.
                    raise Fail("login failed: the IdP rejected the username or password")
                action = login_form["action"] or url
                if action.startswith("?"):  # SimpleSAMLphp's action="?": same path, the form's (empty) query
                    action = url.split("?", 1)[0] + action
                action = urllib.parse.urljoin(url, action)
                data = {"username": args.user, "password": args.password,
                        "AuthState": login_form["inputs"]["AuthState"]}
                url = action
                posted_login = True
                continue
            raise Fail(error_page(body) or "the IdP answered with neither a login form nor a SAMLResponse form")
        raise Fail(f"more than {MAX_STEPS} steps")
    except Fail as e:
        result(False, error=str(e), last_url=state["url"], last_status=state["status"],
               body_excerpt=excerpt(state["body"]))


if __name__ == "__main__":
    main()
