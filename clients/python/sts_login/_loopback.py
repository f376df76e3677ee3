"""The temporary loopback listener for the encrypted token redirect.

Listens on 127.0.0.1:<random port> and serves two paths, every other one is 404:

- /callback: requests with a wrong `state` are answered 400 and ignored (the listener keeps waiting); the
  first request with the right state ends the wait: its `response` (or `error`) is handed over and every
  later request is refused.
- /start: a 302 redirect to the sign-in URL (set with set_sign_in_url). The browser is started on this
  address rather than on the sign-in URL, so that the state, port and public key never appear on a
  command line (xdg-open, the browser's argv), where every local user could read them.

Each connection is served in its own (daemon) thread with a short read timeout, so idle or slow
connections cannot delay the real callback.
"""

from __future__ import annotations

import hmac
import html
import http.server
import socketserver
import threading
import urllib.parse
from typing import Any, Callable, Dict, Optional

from ._errors import OAuthError, StsLoginError

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title></head>
<body style="font-family: sans-serif; margin: 3em"><h1>{title}</h1><p>{text}</p></body></html>
"""


CONNECTION_TIMEOUT = 5.0  # seconds per connection (socket read timeout)


class _Server(http.server.ThreadingHTTPServer):
    listener: "LoopbackListener"
    daemon_threads = True  # a connection left open must not keep the process alive...
    block_on_close = False  # ...nor make close() wait for it

    def server_bind(self) -> None:
        # HTTPServer.server_bind would call socket.getfqdn(), which can stall on a reverse DNS look-up.
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = self.server_address[1]

    def handle_error(self, request, client_address) -> None:
        pass  # no tracebacks on the user's terminal


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    timeout = CONNECTION_TIMEOUT  # a stalled client only holds its own thread, and not for long
    server_version = "sts-login"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request line holds the state and the encrypted token: never log it

    def _answer(self, status: int, title: str, text: str) -> None:
        body = _PAGE.format(title=html.escape(title), text=html.escape(text)).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Connection", "close")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        listener = self.server.listener
        parts = urllib.parse.urlsplit(self.path)
        if parts.path not in ("/callback", "/start"):
            self._answer(404, "Not found", "This address only serves the sign-in callback.")
            return
        if self.headers.get("Host", "") != listener.host_header:  # also against DNS rebinding
            self._answer(400, "Bad request", "Unexpected Host header.")
            return
        if parts.path == "/start":
            self._start()
            return
        try:
            params = urllib.parse.parse_qs(parts.query, keep_blank_values=True, strict_parsing=False,
                                           max_num_fields=20)
        except ValueError:
            self._answer(400, "Bad request", "The callback parameters are malformed.")
            return
        if any(len(v) != 1 for v in params.values()):
            self._answer(400, "Bad request", "A callback parameter is repeated.")
            return
        flat = {k: v[0] for k, v in params.items()}
        state = flat.get("state", "")
        if not hmac.compare_digest(state.encode("utf-8"), listener.state.encode("utf-8")):
            self._answer(400, "Sign-in not accepted",
                         "This callback does not belong to the sign-in in progress (wrong state).")
            return
        if not listener._claim():
            self._answer(400, "Sign-in already finished", "This sign-in has already been completed.")
            return
        try:
            if "error" in flat:
                raise OAuthError(flat["error"][:100] or "error", (flat.get("error_description") or "")[:300] or None)
            if "response" not in flat:
                raise StsLoginError("the callback carried neither a response nor an error")
            result = listener._process(flat)
        except StsLoginError as e:
            listener._finish(error=e)
            self._answer(400 if "error" not in flat else 200, "Sign-in failed",
                         f"{e}. You can close this tab and try again.")
            return
        except Exception as e:  # a bug must not leave the caller waiting until the timeout
            listener._finish(error=StsLoginError(f"processing the callback failed: {type(e).__name__}"))
            self._answer(500, "Sign-in failed", "The sign-in could not be completed.")
            return
        listener._finish(result=result)
        self._answer(200, "Signed in", "Signed in; you can close this tab.")

    def _start(self) -> None:
        listener = self.server.listener
        target = listener._sign_in_url
        if target is None:
            self._answer(404, "Not found", "No sign-in is in progress here.")
            return
        if listener._event.is_set():
            self._answer(400, "Sign-in already finished", "This sign-in has already been completed.")
            return
        self._redirect(target)


class LoopbackListener:
    """A one-shot callback listener on 127.0.0.1, port chosen by the system.

    `process(params)` runs on the callback with the right state (params: dict of single values)
    and returns the result handed to `wait()`; it may raise StsLoginError."""

    def __init__(self, state: str, process: Optional[Callable[[Dict[str, str]], Any]] = None):
        if not state:
            raise ValueError("state must not be empty")
        self.state = state
        self._process = process or (lambda params: params)
        self._lock = threading.Lock()
        self._claimed = False
        self._event = threading.Event()
        self._result: Any = None
        self._error: Optional[BaseException] = None
        self._sign_in_url: Optional[str] = None
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.listener = self
        self.port = self._server.server_address[1]
        self.host_header = f"127.0.0.1:{self.port}"
        self.redirect_uri = f"http://127.0.0.1:{self.port}/callback"
        self.start_url = f"http://127.0.0.1:{self.port}/start"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="sts-login-callback", daemon=True)
        self._thread.start()

    def set_sign_in_url(self, url: str) -> None:
        """The URL that GET /start redirects to (an absolute http(s) URL, printable ASCII only)."""
        if (not isinstance(url, str) or not url.startswith(("https://", "http://"))
                or not all(0x21 <= ord(c) <= 0x7E for c in url)):
            raise ValueError("the sign-in URL must be an absolute http(s) URL of printable ASCII characters")
        self._sign_in_url = url

    def _claim(self) -> bool:
        with self._lock:
            if self._claimed:
                return False
            self._claimed = True
            return True

    def _finish(self, result: Any = None, error: Optional[BaseException] = None) -> None:
        self._result, self._error = result, error
        self._event.set()

    def wait(self, timeout: float) -> Any:
        """Block until the callback with the right state arrived; return process()'s result."""
        if not self._event.wait(timeout):
            raise StsLoginError(f"no sign-in callback within {timeout:g} s")
        if self._error is not None:
            raise self._error
        return self._result

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "LoopbackListener":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
