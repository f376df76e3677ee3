// Independent JWE peer: npm `jose` for the encrypted token redirect (clients/PROTOCOL.md).
// usage: node jwe-jose.mjs keygen EC|RSA
//          prints one JSON line {"public": <public JWK>, "private": <private JWK>}
//          (EC: P-256 for ECDH-ES+A256KW; RSA: 2048 bits for RSA-OAEP-256)
//        node jwe-jose.mjs decrypt   < {"private": <JWK>, "jwe": "<compact JWE>"}
//          prints one JSON line {"header": <protected header>, "payload": <parsed JSON plaintext>};
//          only alg ECDH-ES+A256KW / RSA-OAEP-256 with enc A256GCM are accepted.
// Exit 0 on success; on failure the error goes to stderr and the exit code is 1.
import { compactDecrypt, exportJWK, generateKeyPair, importJWK } from 'jose';

const ALG_FOR_KTY = { EC: 'ECDH-ES+A256KW', RSA: 'RSA-OAEP-256' };

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

async function keygen(kty) {
  const alg = ALG_FOR_KTY[kty];
  if (!alg) throw new Error(`keygen needs EC or RSA, got ${kty}`);
  const options = kty === 'EC' ? { crv: 'P-256', extractable: true } : { modulusLength: 2048, extractable: true };
  const { publicKey, privateKey } = await generateKeyPair(alg, options);
  console.log(JSON.stringify({ public: await exportJWK(publicKey), private: await exportJWK(privateKey) }));
}

async function decrypt() {
  const input = JSON.parse(await readStdin());
  const jwk = input?.private;
  if (typeof input?.jwe !== 'string' || !jwk || typeof jwk !== 'object') {
    throw new Error('stdin must be {"private": <JWK>, "jwe": "<compact JWE>"}');
  }
  const alg = ALG_FOR_KTY[jwk.kty];
  if (!alg) throw new Error(`unsupported key type ${jwk.kty}`);
  const key = await importJWK(jwk, alg);
  const { plaintext, protectedHeader } = await compactDecrypt(input.jwe, key, {
    keyManagementAlgorithms: ['ECDH-ES+A256KW', 'RSA-OAEP-256'],
    contentEncryptionAlgorithms: ['A256GCM'],
  });
  const payload = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(plaintext));
  console.log(JSON.stringify({ header: protectedHeader, payload }));
}

const [command, arg] = process.argv.slice(2);
try {
  if (command === 'keygen') await keygen(arg);
  else if (command === 'decrypt') await decrypt();
  else throw new Error('usage: node jwe-jose.mjs keygen EC|RSA | node jwe-jose.mjs decrypt < {"private","jwe"}');
} catch (e) {
  console.error(`${e.code ?? e.name}: ${e.message}`);
  process.exit(1);
}
