"""URL rules and small JSON-over-HTTP helpers (urllib only)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Mapping, Optional, Tuple

from ._errors import OAuthError, StsLoginError

MAX_RESPONSE_BYTES = 1024 * 1024
HTTP_TIMEOUT = 30.0
USER_AGENT = "sts-login-python/0.1.0"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def is_loopback_host(host: Optional[str]) -> bool:
    return (host or "").lower() in LOOPBACK_HOSTS


def check_transport(url: str, what: str = "URL") -> None:
    """Refuse anything but https, except plain http to 127.0.0.1, ::1 or localhost."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
    except ValueError as e:
        raise StsLoginError(f"invalid {what} {url!r}: {e}") from None
    scheme = parts.scheme.lower()
    if not host:
        raise StsLoginError(f"invalid {what} {url!r}: no host")
    if scheme == "https":
        return
    if scheme == "http" and is_loopback_host(host):
        return
    if scheme == "http":
        raise StsLoginError(
            f"refusing {what} {url!r}: https is required (plain http is only allowed for "
            "127.0.0.1, ::1 and localhost)")
    raise StsLoginError(f"refusing {what} {url!r}: the scheme must be https")


def check_endpoint(url: Any, what: str) -> str:
    """An endpoint URL from the STS (discovery document): the same https-or-loopback rule as the STS URL,
    and no user info, fragment, white space or control characters. Returns the URL unchanged."""
    if not isinstance(url, str) or not url:
        raise StsLoginError(f"the STS discovery document has no {what}")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url) or not url.isascii():
        raise StsLoginError(f"refusing {what} {url!r}: white space, control or non-ASCII characters")
    check_transport(url, what)
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError as e:
        raise StsLoginError(f"invalid {what} {url!r}: {e}") from None
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise StsLoginError(f"refusing {what} {url!r}: user info is not allowed")
    if parts.fragment or "#" in url:
        raise StsLoginError(f"refusing {what} {url!r}: a fragment is not allowed")
    return url


def normalise_sts(sts: str) -> str:
    """The STS base URL as used for endpoints and as the cache key: scheme and host in lower
    case, no default port, no trailing slash, no query, fragment or user info."""
    if not isinstance(sts, str) or not sts.strip():
        raise StsLoginError("the STS URL is empty")
    raw = sts.strip()
    try:
        parts = urllib.parse.urlsplit(raw)
        host = parts.hostname
        port = parts.port
    except ValueError as e:
        raise StsLoginError(f"invalid STS URL {raw!r}: {e}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        raise StsLoginError(f"invalid STS URL {raw!r}: expected https://host[:port][/path]")
    if parts.username is not None or parts.password is not None:
        raise StsLoginError(f"invalid STS URL {raw!r}: user info is not allowed")
    if parts.query or parts.fragment or raw.endswith(("?", "#")):
        raise StsLoginError(f"invalid STS URL {raw!r}: a query or fragment is not allowed")
    host = host.lower()
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and not (scheme == "https" and port == 443) and not (scheme == "http" and port == 80):
        netloc += f":{port}"
    path = parts.path.rstrip("/")
    url = f"{scheme}://{netloc}{path}"
    check_transport(url, "STS URL")
    return url


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow redirects: a redirect would carry a POST body (a token) elsewhere."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401
        return None


def _opener(url: str) -> urllib.request.OpenerDirector:
    handlers = [_NoRedirect()]
    if is_loopback_host(urllib.parse.urlsplit(url).hostname):
        handlers.append(urllib.request.ProxyHandler({}))  # never send loopback traffic to a proxy
    return urllib.request.build_opener(*handlers)


def _read_limited(resp, url: str) -> bytes:
    body = resp.read(MAX_RESPONSE_BYTES + 1)
    if len(body) > MAX_RESPONSE_BYTES:
        raise StsLoginError(f"the answer from {url} is larger than {MAX_RESPONSE_BYTES} bytes")
    return body


def request_json(url: str, form: Optional[Mapping[str, str]] = None,
                 timeout: float = HTTP_TIMEOUT) -> Tuple[int, Dict[str, Any]]:
    """GET (form None) or POST a form; return (HTTP status, JSON object). Non-2xx answers are
    returned too (OAuth errors come as 400 with a JSON body); transport failures raise."""
    check_transport(url, "endpoint")
    data = None
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
    if form is not None:
        data = urllib.parse.urlencode(form).encode("ascii")
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if form is not None else "GET")
    try:
        try:
            resp = _opener(url).open(req, timeout=timeout)
        except urllib.error.HTTPError as e:
            status = e.code
            try:
                if 300 <= status < 400:
                    raise StsLoginError(
                        f"{url} answered with a redirect (HTTP {status}); redirects are not followed")
                body = _read_limited(e, url) if e.fp is not None else b""
            finally:
                e.close()
        else:
            with resp:
                status = resp.getcode()
                body = _read_limited(resp, url)
    except StsLoginError:
        raise
    except (urllib.error.URLError, socket.timeout, OSError) as e:
        reason = getattr(e, "reason", e)
        raise StsLoginError(f"cannot reach {url}: {reason}") from None
    if not body.strip():
        return status, {}
    try:
        obj = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        if status >= 400:
            raise StsLoginError(f"{url} answered HTTP {status} (not JSON)") from None
        raise StsLoginError(f"{url} answered HTTP {status} with a body that is not JSON") from None
    if not isinstance(obj, dict):
        raise StsLoginError(f"{url} answered HTTP {status} with JSON that is not an object")
    return status, obj


def oauth_error(status: int, obj: Mapping[str, Any], url: str) -> StsLoginError:
    """The error to raise for a non-2xx answer."""
    err = obj.get("error")
    if isinstance(err, str) and err:
        desc = obj.get("error_description")
        desc = desc[:300] if isinstance(desc, str) else None
        return OAuthError(err[:100], desc, status, url)
    return StsLoginError(f"{url} answered HTTP {status}")
