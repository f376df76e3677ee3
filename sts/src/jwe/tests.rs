use super::*;
use aws_lc_rs::agreement::PrivateKey;

/// RFC 7518 Appendix C: the Concat KDF example (ECDH-ES, A128GCM, apu "Alice", apv "Bob").
#[test]
fn concat_kdf_matches_rfc7518_appendix_c() {
    let z: [u8; 32] = [
        158, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156, 251, 49, 110,
        163, 218, 128, 106, 72, 246, 218, 167, 121, 140, 254, 144, 196,
    ];
    let k = concat_kdf(&z, "A128GCM", b"Alice", b"Bob", 128);
    assert_eq!(
        URL_SAFE_NO_PAD.encode(k.as_slice()),
        "VqqN6vgjbSBcIijNcacQGg"
    );
}

fn ec_jwk(pk: &PrivateKey) -> String {
    let p = pk.compute_public_key().unwrap();
    let p = p.as_ref();
    json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(&p[1..33]),
           "y": URL_SAFE_NO_PAD.encode(&p[33..65]), "kid": "k1"})
    .to_string()
}

/// Decrypts what `encrypt` made, with our own test key (the interop test opens it with npm jose).
fn decrypt_ec(pk: &PrivateKey, jwe: &str) -> Vec<u8> {
    let parts: Vec<&str> = jwe.split('.').collect();
    assert_eq!(parts.len(), 5);
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "ECDH-ES+A256KW");
    assert_eq!(header["enc"], "A256GCM");
    assert_eq!(header["kid"], "k1");
    let epk = &header["epk"];
    let mut point = vec![4u8];
    point.extend(URL_SAFE_NO_PAD.decode(epk["x"].as_str().unwrap()).unwrap());
    point.extend(URL_SAFE_NO_PAD.decode(epk["y"].as_str().unwrap()).unwrap());
    let kek = agreement::agree(pk, UnparsedPublicKey::new(&ECDH_P256, &point), (), |z| {
        Ok(concat_kdf(z, "ECDH-ES+A256KW", b"", b"", 256))
    })
    .unwrap();
    let mut cek = [0u8; 32];
    let wrapped = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
    AesKek::new(&AES_256, kek.as_ref())
        .unwrap()
        .unwrap(&wrapped, &mut cek)
        .unwrap();
    let iv: [u8; 12] = URL_SAFE_NO_PAD
        .decode(parts[2])
        .unwrap()
        .try_into()
        .unwrap();
    let mut data = URL_SAFE_NO_PAD.decode(parts[3]).unwrap();
    data.extend(URL_SAFE_NO_PAD.decode(parts[4]).unwrap());
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &cek).unwrap());
    key.open_in_place(
        Nonce::assume_unique_for_key(iv),
        Aad::from(parts[0].as_bytes()),
        &mut data,
    )
    .unwrap()
    .to_vec()
}

#[test]
fn ec_round_trip_and_a_changed_header_does_not_open() {
    let pk = PrivateKey::generate(&ECDH_P256).unwrap();
    let key = ClientKey::parse(&ec_jwk(&pk)).unwrap();
    assert_eq!(key.alg(), "ECDH-ES+A256KW");
    let jwe = key.encrypt(br#"{"access_token":"x"}"#).unwrap();
    assert_eq!(decrypt_ec(&pk, &jwe), br#"{"access_token":"x"}"#);
    // Two encryptions of the same text differ (fresh ephemeral key, CEK and IV).
    assert_ne!(key.encrypt(b"a").unwrap(), key.encrypt(b"a").unwrap());
}

#[test]
fn keys_that_are_refused() {
    let pk = PrivateKey::generate(&ECDH_P256).unwrap();
    let good: Value = serde_json::from_str(&ec_jwk(&pk)).unwrap();
    let with = |k: &str, v: Value| {
        let mut j = good.clone();
        j[k] = v;
        j.to_string()
    };
    let mut off_curve = good.clone();
    off_curve["y"] = URL_SAFE_NO_PAD.encode([7u8; 32]).into();
    let cases = [
        ("not json".to_string(), "not JSON"),
        ("[]".to_string(), "object"),
        (with("d", "AAAA".into()), "private"),
        (with("k", "AAAA".into()), "private"),
        (with("kty", "oct".into()), "EC (P-256) or RSA"),
        (with("crv", "P-384".into()), "P-256"),
        (with("crv", "secp256k1".into()), "P-256"),
        (with("use", "sig".into()), "use"),
        (with("alg", "ECDH-ES".into()), "ECDH-ES+A256KW only"),
        (with("x", "!!".into()), "base64url"),
        (with("x", URL_SAFE_NO_PAD.encode([1u8; 31]).into()), "32 bytes"),
        (off_curve.to_string(), "not on the P-256 curve"),
        (with("kid", "".into()), "kid"),
        (json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xffu8; 128]), "e": "AQAB"}).to_string(), "at least 2048"),
        (json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xffu8; 256]), "e": "AQ"}).to_string(), "exponent"),
        (json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xffu8; 256]), "e": "AQAB", "alg": "RSA1_5"}).to_string(), "RSA-OAEP-256 only"),
        (json!({"kty": "RSA", "e": "AQAB"}).to_string(), "no `n`"),
        (json!({"kty": "RSA", "n": "", "e": "AQAB"}).to_string(), "must not be zero"),
        (json!({"kty": "RSA", "n": "AA", "e": "AQAB"}).to_string(), "must not be zero"),
        (json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xffu8; 256]), "e": ""}).to_string(), "must not be zero"),
        ("x".repeat(MAX_JWK_BYTES + 1), "too long"),
    ];
    for (jwk, why) in cases {
        let e = ClientKey::parse(&jwk).expect_err(&jwk);
        assert!(e.0.contains(why), "{jwk}: {e}");
    }
}

#[test]
fn rsa_keys_of_2048_bits_and_more_are_accepted() {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey};
    let k = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
    let spki = k.public_key().as_der().unwrap();
    // n and e read back out of the SubjectPublicKeyInfo: our DER writer must give the same bytes.
    let (n, e) = read_rsa_spki(spki.as_ref());
    assert_eq!(rsa_spki(&n, &e), spki.as_ref());
    let jwk = json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(&n), "e": URL_SAFE_NO_PAD.encode(&e), "use": "enc"});
    let key = ClientKey::parse(&jwk.to_string()).unwrap();
    assert_eq!(key.describe(), "RSA 2048");
    let jwe = key.encrypt(b"hello").unwrap();
    let parts: Vec<&str> = jwe.split('.').collect();
    let wrapped = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
    let dk = aws_lc_rs::rsa::OaepPrivateDecryptingKey::new(k).unwrap();
    let mut cek = vec![0u8; 256];
    let cek = dk
        .decrypt(&OAEP_SHA256_MGF1SHA256, &wrapped, &mut cek, None)
        .unwrap();
    assert_eq!(cek.len(), 32);
}

/// Minimal reader for the test: SPKI → (n, e) without leading zeros.
fn read_rsa_spki(d: &[u8]) -> (Vec<u8>, Vec<u8>) {
    fn tlv(d: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = d[0];
        let (len, hdr) = if d[1] < 128 {
            (d[1] as usize, 2)
        } else {
            let nb = (d[1] & 0x7f) as usize;
            (
                d[2..2 + nb]
                    .iter()
                    .fold(0usize, |a, b| a * 256 + *b as usize),
                2 + nb,
            )
        };
        (tag, &d[hdr..hdr + len], &d[hdr + len..])
    }
    let (_, spki, _) = tlv(d);
    let (_, _alg, rest) = tlv(spki);
    let (_, bits, _) = tlv(rest);
    let (_, rsa, _) = tlv(&bits[1..]);
    let (_, n, rest) = tlv(rsa);
    let (_, e, _) = tlv(rest);
    (strip_zeros(n.to_vec()), strip_zeros(e.to_vec()))
}
