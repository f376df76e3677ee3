"""Errors raised by sts_login."""

from __future__ import annotations

from typing import Optional


class StsLoginError(Exception):
    """Any failure to get, refresh or revoke a token. The message never contains a token."""


class OAuthError(StsLoginError):
    """An OAuth error answer ({"error": ..., "error_description": ...}) from the STS."""

    def __init__(self, error: str, description: Optional[str] = None, status: Optional[int] = None,
                 endpoint: Optional[str] = None):
        self.error = error
        self.description = description
        self.status = status
        self.endpoint = endpoint
        text = error
        if description:
            text += ": " + description
        if status is not None:
            text += f" (HTTP {status}"
            text += f" from {endpoint})" if endpoint else ")"
        super().__init__(text)
