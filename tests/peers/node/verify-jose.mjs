// Independent verifier: npm `jose` with createRemoteJWKSet against the live JWKS URL.
// usage: node verify-jose.mjs JWKS_URL TOKEN ISSUER AUDIENCE [TYP]   (TYP: required `typ` header, default at+jwt)
// Prints one JSON line; exit 0 when the token verifies, 1 when it is refused.
import { createRemoteJWKSet, jwtVerify } from 'jose';

const [jwksUrl, token, issuer, audience, typ = 'at+jwt'] = process.argv.slice(2);
const JWKS = createRemoteJWKSet(new URL(jwksUrl), { cooldownDuration: 0 });
try {
  const { payload, protectedHeader } = await jwtVerify(token, JWKS, {
    issuer,
    audience,
    algorithms: ['RS256'],
    typ,
    requiredClaims: ['exp', 'iat', 'nbf', 'iss', 'aud', 'sub', 'jti'],
  });
  console.log(JSON.stringify({ ok: true, header: protectedHeader, claims: payload }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: `${e.code ?? e.name}: ${e.message}` }));
  process.exit(1);
}
