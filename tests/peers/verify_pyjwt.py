"""Independent verifier: PyJWT with PyJWKClient against the live JWKS URL.

usage: verify_pyjwt.py JWKS_URL TOKEN ISSUER AUDIENCE
Prints one JSON line; exit 0 when the token verifies, 1 when it is refused.
"""
import json
import sys

import jwt

jwks_url, token, issuer, audience = sys.argv[1:5]
try:
    client = jwt.PyJWKClient(jwks_url, cache_keys=False, cache_jwk_set=False, timeout=5)
    signing_key = client.get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        signing_key.key,
        algorithms=["RS256"],
        audience=audience,
        issuer=issuer,
        options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]},
    )
    header = jwt.get_unverified_header(token)
    print(json.dumps({"ok": True, "kid": signing_key.key_id, "header": header, "claims": claims}))
except Exception as e:  # every refusal is reported, never swallowed
    print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}))
    sys.exit(1)
