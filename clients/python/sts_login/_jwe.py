"""Ephemeral key pair and decryption of the encrypted token redirect's JWE (jwcrypto)."""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Dict

from jwcrypto import jwe as _jwe
from jwcrypto import jwk as _jwk

from ._errors import StsLoginError

# The only combinations the protocol allows: key management by key type, content encryption A256GCM.
ALG_FOR_KTY = {"EC": "ECDH-ES+A256KW", "RSA": "RSA-OAEP-256"}
ENC = "A256GCM"
MAX_JWE_CHARS = 64 * 1024
_COMPACT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")


def generate_key(kty: str = "EC") -> _jwk.JWK:
    """A fresh key pair: EC P-256 (default) or RSA 2048."""
    if kty == "EC":
        return _jwk.JWK.generate(kty="EC", crv="P-256")
    if kty == "RSA":
        return _jwk.JWK.generate(kty="RSA", size=2048)
    raise ValueError(f"unsupported key type {kty!r}")


def public_jwk_json(key: _jwk.JWK) -> str:
    """The public JWK as compact JSON text (no private members)."""
    pub = key.export_public(as_dict=True)
    for private in ("d", "p", "q", "dp", "dq", "qi", "oth"):
        pub.pop(private, None)
    return json.dumps(pub, separators=(",", ":"), sort_keys=True)


def _b64url_json(segment: str) -> Dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        obj = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise StsLoginError("the encrypted token response has an unreadable header") from None
    if not isinstance(obj, dict):
        raise StsLoginError("the encrypted token response has an unreadable header")
    return obj


def protected_header(compact: str) -> Dict[str, Any]:
    if not isinstance(compact, str) or len(compact) > MAX_JWE_CHARS or not _COMPACT.match(compact):
        raise StsLoginError("the token response is not a compact JWE")
    return _b64url_json(compact.split(".", 1)[0])


def decrypt(compact: str, key: _jwk.JWK) -> Dict[str, Any]:
    """Decrypt the compact JWE with our private key and return the token response (a JSON object).

    Only alg ECDH-ES+A256KW (EC key) or RSA-OAEP-256 (RSA key) with enc A256GCM is accepted;
    the header is checked before jwcrypto sees it and jwcrypto is given the same allow-list."""
    header = protected_header(compact)
    kty = key.get("kty") if hasattr(key, "get") else key["kty"]
    alg = ALG_FOR_KTY.get(kty)
    if alg is None:
        raise StsLoginError(f"unsupported key type {kty!r}")
    if header.get("alg") != alg or header.get("enc") != ENC:
        raise StsLoginError(
            f"refusing the encrypted token response: alg {header.get('alg')!r} / enc {header.get('enc')!r} "
            f"(expected {alg} / {ENC})")
    if "crit" in header:
        raise StsLoginError("refusing the encrypted token response: unexpected \"crit\" header")
    token = _jwe.JWE(algs=[alg, ENC])
    try:
        token.deserialize(compact, key=key)
    except Exception as e:  # jwcrypto raises several types; none of them carries plaintext
        raise StsLoginError(f"cannot decrypt the token response: {type(e).__name__}") from None
    try:
        obj = json.loads(token.payload.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise StsLoginError("the decrypted token response is not JSON") from None
    if not isinstance(obj, dict):
        raise StsLoginError("the decrypted token response is not a JSON object")
    return obj
