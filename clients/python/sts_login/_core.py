"""get_token() and logout(): cache, refresh, encrypted token redirect, device grant."""

from __future__ import annotations

import base64
import json
import math
import os
import secrets
import sys
import time
import urllib.parse
import webbrowser
from typing import Any, Callable, Dict, Optional

from . import _cache, _jwe
from ._errors import OAuthError, StsLoginError
from ._http import check_endpoint, check_transport, normalise_sts, oauth_error, request_json
from ._loopback import LoopbackListener

CLIENT_ID = "sts-login"
DEFAULT_SCOPE = "openid profile email roles"
MIN_REMAINING = 30  # seconds an access token must still be valid to be reused
METHODS = ("auto", "redirect", "device")
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# Caps on values from the STS, so that a hostile or broken server cannot make the helper wait (nearly)
# forever, poll in a tight loop, or write absurd numbers into the cache shared with the Rust CLI.
MAX_EXPIRES_IN = 86400  # seconds: access token lifetime and device code lifetime
MIN_INTERVAL, MAX_INTERVAL = 1.0, 60.0  # seconds between device polls (slow_down included)
DEFAULT_INTERVAL = 5.0
SLOW_DOWN_STEP = 5.0
MAX_REFRESH_EXPIRES_IN = 10 * 366 * 86400  # beyond this the refresh lifetime is stored as unknown (null)

_sleep = time.sleep  # replaced in tests


# ---------------------------------------------------------------- helpers

def _env_no_browser() -> bool:
    return os.environ.get("STS_LOGIN_NO_BROWSER", "").strip().lower() in ("1", "true", "yes")


def browser_available() -> bool:
    """True when a graphical browser can be opened on this machine."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        webbrowser.get()
    except webbrowser.Error:
        return False
    return True


def _open_browser(url: str) -> None:
    try:
        webbrowser.open(url)
    except Exception:  # the URL was printed; the user can open it by hand
        pass


def _number(v: Any) -> Optional[float]:
    """A finite JSON number as float; None for anything else (also NaN and infinities, which Python's
    json module accepts, and integers too large for a float)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        f = float(v)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def _expires_in(v: Any) -> Optional[float]:
    """A positive `expires_in` from the STS, capped at MAX_EXPIRES_IN; None when absent or invalid."""
    n = _number(v)
    if n is None or n <= 0:
        return None
    return min(n, float(MAX_EXPIRES_IN))


def _interval(v: Any) -> float:
    """The device polling interval from the STS, clamped to MIN_INTERVAL..MAX_INTERVAL."""
    n = _number(v)
    if n is None:
        return DEFAULT_INTERVAL
    return min(max(n, MIN_INTERVAL), MAX_INTERVAL)


def _jwt_claims(token: str) -> Dict[str, Any]:
    """The unverified claims of a JWT access token (informational only); {} if not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _check_token_response(obj: Dict[str, Any], where: str) -> Dict[str, Any]:
    at = obj.get("access_token")
    if not isinstance(at, str) or not at:
        raise StsLoginError(f"the token response from {where} has no access_token")
    tt = obj.get("token_type")
    if not isinstance(tt, str) or tt.lower() != "bearer":
        raise StsLoginError(f"the token response from {where} has token_type {tt!r}, expected Bearer")
    rt = obj.get("refresh_token")
    if rt is not None and (not isinstance(rt, str) or not rt):
        raise StsLoginError(f"the token response from {where} has an invalid refresh_token")
    return obj


def _cached_access(session: Any, audience: str, now: float) -> Optional[str]:
    if not isinstance(session, dict):
        return None
    tokens = session.get("tokens")
    entry = tokens.get(audience) if isinstance(tokens, dict) else None
    if not isinstance(entry, dict):
        return None
    at, exp = entry.get("access_token"), _number(entry.get("expires_at"))
    if isinstance(at, str) and at and exp is not None and exp - now > MIN_REMAINING:
        return at
    return None


def _apply_response(session: Dict[str, Any], audience: str, resp: Dict[str, Any], scope: str,
                    now: float) -> str:
    """Store a token response in a session object (in place, unknown fields kept); return the access token."""
    at = resp["access_token"]
    rt = resp.get("refresh_token")
    if rt:
        session["refresh_token"] = rt
        rexp = _number(resp.get("refresh_expires_in"))
        ok = rexp is not None and 0 < rexp <= MAX_REFRESH_EXPIRES_IN
        session["refresh_expires_at"] = int(now + rexp) if ok else None
    else:
        session.setdefault("refresh_expires_at", None)
    claims = _jwt_claims(at)
    if isinstance(claims.get("sub"), str):
        session["subject"] = claims["sub"]
    expires_in = _expires_in(resp.get("expires_in"))
    if expires_in is not None:
        expires_at = int(now + expires_in)
    else:
        exp = _number(claims.get("exp"))  # unverified: never trusted beyond MAX_EXPIRES_IN either
        expires_at = int(min(max(exp, 0.0), now + MAX_EXPIRES_IN)) if exp is not None else int(now)
    tokens = session.get("tokens")
    if not isinstance(tokens, dict):
        tokens = session["tokens"] = {}
    entry = tokens.get(audience)
    if not isinstance(entry, dict):
        entry = tokens[audience] = {}
    entry["access_token"] = at
    entry["expires_at"] = expires_at
    granted = resp.get("scope")
    entry["scope"] = granted if isinstance(granted, str) else scope
    return at


class _Endpoints:
    """{sts}/.well-known/openid-configuration, fetched once, on first use."""

    def __init__(self, sts: str):
        self.sts = sts
        self._doc: Optional[Dict[str, Any]] = None

    def get(self, name: str) -> str:
        if self._doc is None:
            url = self.sts + "/.well-known/openid-configuration"
            status, doc = request_json(url)
            if status != 200:
                raise StsLoginError(f"{url} answered HTTP {status}")
            self._doc = doc
        # Every endpoint is checked before use: https, or plain http on loopback only (as the STS URL).
        return check_endpoint(self._doc.get(name), name)


# ---------------------------------------------------------------- flows

def _refresh(sts: str, audience: str, scope: str, directory: str, endpoints: _Endpoints) -> Optional[str]:
    """Refresh under the lock. Returns the access token, or None when a new login is needed."""
    with _cache.locked(directory):
        data = _cache.load(directory)  # re-read: another process may have refreshed meanwhile
        sessions = data["sessions"]
        session = sessions.get(sts)
        now = time.time()
        at = _cached_access(session, audience, now)
        if at:
            return at
        if not isinstance(session, dict):
            return None
        rt = session.get("refresh_token")
        if not isinstance(rt, str) or not rt:
            return None
        rexp = _number(session.get("refresh_expires_at"))
        if rexp is not None and rexp <= now:
            del sessions[sts]
            _cache.save(directory, data)
            return None
        url = endpoints.get("token_endpoint")
        form = {"grant_type": "refresh_token", "refresh_token": rt, "client_id": CLIENT_ID}
        if audience:
            form["audience"] = audience
        if scope:
            form["scope"] = scope
        status, obj = request_json(url, form)
        if status == 200:
            resp = _check_token_response(obj, url)
            at = _apply_response(session, audience, resp, scope, time.time())
            _cache.save(directory, data)
            return at
        err = oauth_error(status, obj, url)
        if isinstance(err, OAuthError) and err.error == "invalid_grant":
            del sessions[sts]
            _cache.save(directory, data)
            return None
        raise err


def _store_login(sts: str, audience: str, scope: str, directory: str, resp: Dict[str, Any]) -> str:
    with _cache.locked(directory):
        data = _cache.load(directory)
        old = data["sessions"].get(sts)
        session: Dict[str, Any] = old if isinstance(old, dict) else {}
        new_sub = _jwt_claims(resp["access_token"]).get("sub")
        if not isinstance(new_sub, str) or session.get("subject") != new_sub:
            session["tokens"] = {}  # tokens of another identity (or of unknown identity) are not kept
        at = _apply_response(session, audience, resp, scope, time.time())
        data["sessions"][sts] = session
        _cache.save(directory, data)
        return at


def _login_redirect(sts: str, audience: str, scope: str, endpoints: _Endpoints, open_browser: Optional[bool],
                    timeout: float, print_fn: Callable[..., Any]) -> Dict[str, Any]:
    endpoint = endpoints.get("sts_token_redirect_endpoint")
    key = _jwe.generate_key("EC")
    state = secrets.token_urlsafe(32)

    def process(params: Dict[str, str]) -> Dict[str, Any]:
        return _check_token_response(_jwe.decrypt(params["response"], key), "the encrypted token redirect")

    with LoopbackListener(state, process) as listener:
        params = {"redirect_uri": listener.redirect_uri, "jwk": _jwe.public_jwk_json(key), "state": state}
        if audience:
            params["audience"] = audience
        if scope:
            params["scope"] = scope
        url = endpoint + ("&" if "?" in endpoint else "?") + urllib.parse.urlencode(
            params, quote_via=urllib.parse.quote)
        listener.set_sign_in_url(url)
        print_fn(f"Open this URL to sign in: {url}")
        if open_browser is not False:
            # Not the sign-in URL itself: a browser started by xdg-open would show it (state, port, key) in
            # /proc/*/cmdline to every local user. The listener's /start redirects to it instead.
            _open_browser(listener.start_url)
        return listener.wait(timeout)


def _login_device(sts: str, audience: str, scope: str, endpoints: _Endpoints, open_browser: Optional[bool],
                  timeout: float, print_fn: Callable[..., Any]) -> Dict[str, Any]:
    url = endpoints.get("device_authorization_endpoint")
    token_url = endpoints.get("token_endpoint")  # checked before the user is shown a code
    form = {"client_id": CLIENT_ID}
    if scope:
        form["scope"] = scope
    if audience:
        form["audience"] = audience
    status, obj = request_json(url, form)
    if status != 200:
        raise oauth_error(status, obj, url)
    device_code, user_code = obj.get("device_code"), obj.get("user_code")
    if not isinstance(device_code, str) or not device_code or not isinstance(user_code, str) or not user_code:
        raise StsLoginError(f"the device authorization answer from {url} lacks device_code or user_code")
    complete, plain = obj.get("verification_uri_complete"), obj.get("verification_uri")
    show = complete if isinstance(complete, str) and complete else plain
    if not isinstance(show, str) or not show:
        raise StsLoginError(f"the device authorization answer from {url} has no verification_uri")
    check_transport(show, "verification URI")
    print_fn(f"Open this URL to sign in: {show}")
    if show is complete:
        print_fn(f"and check that the page shows the code {user_code}")
    else:
        print_fn(f"and enter the code {user_code}")
    if open_browser is True:
        _open_browser(show)

    interval = _interval(obj.get("interval"))
    expires_in = _expires_in(obj.get("expires_in"))
    limit = min(timeout, expires_in) if expires_in is not None else timeout
    deadline = time.monotonic() + limit
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise StsLoginError(f"the sign-in was not completed within {limit:g} s")
        _sleep(min(interval, remaining))
        status, obj = request_json(token_url, {"grant_type": DEVICE_GRANT, "device_code": device_code,
                                               "client_id": CLIENT_ID})
        if status == 200:
            return _check_token_response(obj, token_url)
        err = oauth_error(status, obj, token_url)
        if not isinstance(err, OAuthError):
            raise err
        if err.error == "authorization_pending":
            continue
        if err.error == "slow_down":
            interval = min(interval + SLOW_DOWN_STEP, MAX_INTERVAL)
            continue
        if err.error == "access_denied":
            raise StsLoginError("the sign-in was denied")
        if err.error == "expired_token":
            raise StsLoginError("the sign-in code expired before it was used; try again")
        raise err


# ---------------------------------------------------------------- public API

def get_token(sts: str, audience: Optional[str] = None, scope: str = DEFAULT_SCOPE, method: str = "auto",
              open_browser: Optional[bool] = None, timeout: float = 300, cache_dir: Optional[str] = None,
              print_fn: Callable[..., Any] = print) -> str:
    """Return an access token for `audience` (None: the STS's default) from the STS at `sts`.

    Uses, in order: a cached access token with more than 30 s left; a refresh with the cached refresh
    token; a new login ("redirect": encrypted token redirect to a loopback listener, for a browser on
    this machine; "device": device authorization grant; "auto": redirect when a browser can be opened,
    else device). Sign-in instructions go to `print_fn`; tokens are never printed."""
    base = normalise_sts(sts)
    aud = audience or ""
    if method not in METHODS:
        raise StsLoginError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise StsLoginError("timeout must be a positive number of seconds")
    if _env_no_browser():
        open_browser = False
    directory = _cache.resolve_dir(cache_dir)

    data = _cache.load(directory)
    session = data["sessions"].get(base)
    at = _cached_access(session, aud, time.time())
    if at:
        return at
    endpoints = _Endpoints(base)
    if isinstance(session, dict) and session.get("refresh_token"):
        at = _refresh(base, aud, scope, directory, endpoints)
        if at:
            return at

    if method == "auto":
        method = "redirect" if open_browser is not False and browser_available() else "device"
    login = _login_redirect if method == "redirect" else _login_device
    resp = login(base, aud, scope, endpoints, open_browser, timeout, print_fn)
    return _store_login(base, aud, scope, directory, resp)


def logout(sts: str, cache_dir: Optional[str] = None) -> bool:
    """Revoke the cached refresh token of `sts` and remove its entry from the cache.

    Returns False when there was no session. The entry is removed even when the revocation fails
    (then StsLoginError is raised afterwards, saying so)."""
    base = normalise_sts(sts)
    directory = _cache.resolve_dir(cache_dir)
    if not os.path.exists(os.path.join(directory, _cache.CACHE_FILE)):
        return False
    problem: Optional[StsLoginError] = None
    with _cache.locked(directory):
        data = _cache.load(directory)
        session = data["sessions"].get(base)
        if session is None:
            return False
        rt = session.get("refresh_token") if isinstance(session, dict) else None
        if isinstance(rt, str) and rt:
            try:
                url = _Endpoints(base).get("revocation_endpoint")
                status, obj = request_json(url, {"token": rt, "token_type_hint": "refresh_token",
                                                 "client_id": CLIENT_ID})
                if status != 200:
                    problem = oauth_error(status, obj, url)
            except StsLoginError as e:
                problem = e
        del data["sessions"][base]
        _cache.save(directory, data)
    if problem is not None:
        raise StsLoginError(f"removed the local session, but revoking the refresh token failed: {problem}")
    return True
