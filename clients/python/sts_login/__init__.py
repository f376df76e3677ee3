"""Access tokens from the STS for scripts and notebooks.

    import sts_login
    token = sts_login.get_token("https://sts.example.com", audience="orders-api")

The token cache is shared with the Rust `sts-login` CLI (see clients/PROTOCOL.md).
"""

from ._core import get_token, logout
from ._errors import StsLoginError

__all__ = ["get_token", "logout", "StsLoginError"]
__version__ = "0.1.0"
