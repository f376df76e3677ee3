"""Command line: `python -m sts_login token --sts URL [--audience A]` prints an access token on stdout;
`python -m sts_login logout --sts URL` revokes and forgets the session. Messages go to stderr."""

from __future__ import annotations

import argparse
import functools
import sys
from typing import List, Optional

from ._core import DEFAULT_SCOPE, METHODS, get_token, logout
from ._errors import StsLoginError


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sts_login", description="Get access tokens from the STS.")
    sub = parser.add_subparsers(dest="command", required=True)
    tok = sub.add_parser("token", help="print an access token on stdout (signing in if needed)")
    tok.add_argument("--sts", required=True, help="the STS base URL, e.g. https://sts.example.com")
    tok.add_argument("--audience", default=None, help="the API the token is for (default: the STS's default)")
    tok.add_argument("--scope", default=DEFAULT_SCOPE, help=f"space-separated scopes (default: {DEFAULT_SCOPE!r})")
    tok.add_argument("--method", choices=METHODS, default="auto",
                     help="redirect: browser on this machine; device: code to enter elsewhere (SSH)")
    tok.add_argument("--no-browser", action="store_true", help="print the sign-in URL but do not open a browser")
    tok.add_argument("--timeout", type=float, default=300, help="seconds to wait for the sign-in (default 300)")
    tok.add_argument("--cache-dir", default=None, help="token cache directory (default: $STS_LOGIN_HOME, "
                     "$XDG_CONFIG_HOME/sts-login or ~/.config/sts-login)")
    out = sub.add_parser("logout", help="revoke the refresh token and forget the session")
    out.add_argument("--sts", required=True)
    out.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)

    err = functools.partial(print, file=sys.stderr, flush=True)
    try:
        if args.command == "token":
            token = get_token(args.sts, audience=args.audience, scope=args.scope, method=args.method,
                              open_browser=False if args.no_browser else None, timeout=args.timeout,
                              cache_dir=args.cache_dir, print_fn=err)
            print(token, flush=True)
        else:
            if logout(args.sts, cache_dir=args.cache_dir):
                err("Signed out.")
            else:
                err("No session for this STS in the cache.")
    except StsLoginError as e:
        err(f"sts-login: {e}")
        return 1
    except KeyboardInterrupt:
        err("sts-login: interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
