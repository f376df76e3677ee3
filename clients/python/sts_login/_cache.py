"""The token cache shared with the Rust `sts-login` CLI (see clients/PROTOCOL.md).

Directory: $STS_LOGIN_HOME, else $XDG_CONFIG_HOME/sts-login, else ~/.config/sts-login (mode 0700).
File tokens.json (mode 0600), rewritten atomically; read-modify-write cycles that refresh a token
run under an exclusive flock on tokens.lock in the same directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
from typing import Any, Dict, Iterator, Optional

from ._errors import StsLoginError

CACHE_FILE = "tokens.json"
LOCK_FILE = "tokens.lock"
VERSION = 1


def default_cache_dir() -> str:
    home = os.environ.get("STS_LOGIN_HOME")
    if home:
        return os.path.abspath(os.path.expanduser(home))
    xdg = os.environ.get("XDG_CONFIG_HOME")
    if xdg and os.path.isabs(xdg):  # the XDG spec says relative values are to be ignored
        return os.path.join(xdg, "sts-login")
    return os.path.join(os.path.expanduser("~"), ".config", "sts-login")


def resolve_dir(cache_dir: Optional[str]) -> str:
    return os.path.abspath(os.path.expanduser(cache_dir)) if cache_dir else default_cache_dir()


def ensure_dir(directory: str) -> None:
    """Create the directory with mode 0700 (parents as needed); tighten an existing one."""
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        st = os.stat(directory)
    except OSError as e:
        raise StsLoginError(f"cannot create the token cache directory {directory}: {e}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise StsLoginError(f"the token cache path {directory} is not a directory")
    if os.name == "posix" and stat.S_IMODE(st.st_mode) != 0o700:
        try:
            os.chmod(directory, 0o700)
        except OSError as e:
            raise StsLoginError(
                f"the token cache directory {directory} is accessible to others and cannot be made "
                f"private (mode 0700): {e}") from None


def empty() -> Dict[str, Any]:
    return {"version": VERSION, "sessions": {}}


def load(directory: str) -> Dict[str, Any]:
    """The cache contents; an empty cache when the file does not exist. Unknown fields are kept."""
    path = os.path.join(directory, CACHE_FILE)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return empty()
    except OSError as e:
        raise StsLoginError(f"cannot read the token cache {path}: {e}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise StsLoginError(f"the token cache {path} is not valid JSON; delete it to start afresh") from None
    if not isinstance(data, dict):
        raise StsLoginError(f"the token cache {path} is not a JSON object; delete it to start afresh")
    version = data.get("version", VERSION)
    if version != VERSION:
        raise StsLoginError(
            f"the token cache {path} has version {version!r}; this sts-login understands version {VERSION}")
    sessions = data.setdefault("sessions", {})
    if not isinstance(sessions, dict):
        raise StsLoginError(f"the token cache {path} has no valid \"sessions\" object; delete it to start afresh")
    data["version"] = VERSION
    return data


def save(directory: str, data: Dict[str, Any]) -> None:
    """Write the cache atomically: a temp file created 0600 with O_EXCL, fsync, rename."""
    ensure_dir(directory)
    path = os.path.join(directory, CACHE_FILE)
    tmp = os.path.join(directory, f"{CACHE_FILE}.tmp-{os.getpid()}")
    payload = json.dumps(data, indent=2, sort_keys=False).encode("utf-8") + b"\n"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # left over by a crashed process that had our pid
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(tmp, flags, 0o600)
    except OSError as e:
        raise StsLoginError(f"cannot write the token cache {tmp}: {e}") from None
    try:
        try:
            if os.name == "posix":
                os.fchmod(fd, 0o600)  # exactly 0600 whatever the umask
            view = memoryview(payload)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StsLoginError(f"cannot write the token cache {path}: {e}") from None
    if os.name == "posix":
        with contextlib.suppress(OSError):
            dfd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)


@contextlib.contextmanager
def locked(directory: str) -> Iterator[None]:
    """Hold the exclusive lock on tokens.lock (flock; msvcrt.locking on Windows)."""
    ensure_dir(directory)
    path = os.path.join(directory, LOCK_FILE)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as e:
        raise StsLoginError(f"cannot open the lock file {path}: {e}") from None
    try:
        if sys.platform == "win32":  # pragma: no cover - best effort outside POSIX
            import msvcrt
            while True:
                try:
                    msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
                    break
                except OSError:
                    continue
            try:
                yield
            finally:
                os.lseek(fd, 0, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        else:
            import fcntl
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
