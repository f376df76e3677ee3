//! JWS header checks that jsonwebtoken does not make, shared with the STS server (every place that
//! verifies a JWS calls [`check_jws_header`] before the signature check):
//! - `crit` (RFC 7515 section 4.1.11): this implementation understands no extension header parameter, so a
//!   header with `crit` (any list, including an empty one, which the RFC forbids, or names such as `exp` or
//!   `b64`) is refused;
//! - a header member given twice (a parser differential: which `alg` or `kid` would count?) is refused;
//! - the header must be a base64url-encoded JSON object of at most 4 KiB.

use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

/// Longest decoded JWS header accepted.
pub const MAX_HEADER_BYTES: usize = 4096;

/// Refuse a compact JWS whose protected header uses `crit`, repeats a member, or is not a JSON object.
pub fn check_jws_header(token: &str) -> Result<(), String> {
    use base64::Engine;
    let segment = token.split('.').next().unwrap_or_default();
    if segment.len() > MAX_HEADER_BYTES * 4 / 3 + 4 {
        return Err("the JWS header is too large".into());
    }
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| "the JWS header is not base64url".to_string())?;
    let Members(names) = serde_json::from_slice(&raw)
        .map_err(|e| format!("the JWS header is not a JSON object with unique members: {e}"))?;
    if names.iter().any(|n| n == "crit") {
        return Err(
            "the JWS header lists critical extensions (`crit`); none is understood here (RFC 7515 section 4.1.11)"
                .into(),
        );
    }
    Ok(())
}

/// The member names of a JSON object, refusing duplicates.
struct Members(Vec<String>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Members, A::Error> {
                let mut names: Vec<String> = Vec::new();
                while let Some(k) = m.next_key::<String>()? {
                    if names.contains(&k) {
                        return Err(serde::de::Error::custom(format!(
                            "member `{k}` appears twice"
                        )));
                    }
                    m.next_value::<IgnoredAny>()?;
                    names.push(k);
                }
                Ok(Members(names))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn tok(header: &str) -> String {
        format!(
            "{}.e30.sig",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header)
        )
    }

    #[test]
    fn crit_in_any_form_and_duplicates_are_refused() {
        assert!(check_jws_header(&tok(r#"{"alg":"RS256","kid":"k","typ":"at+jwt"}"#)).is_ok());
        for h in [
            r#"{"alg":"RS256","crit":["exp"],"exp":1}"#,
            r#"{"alg":"RS256","crit":["b64"],"b64":false}"#,
            r#"{"alg":"RS256","crit":[]}"#,
            r#"{"alg":"RS256","crit":["x-unknown"],"x-unknown":1}"#,
            r#"{"alg":"RS256","crit":"exp"}"#,
            r#"{"alg":"RS256","crit":null}"#,
            r#"{"alg":"RS256","alg":"none"}"#,
            r#"{"alg":"RS256","kid":"a","kid":"b"}"#,
            r#"["alg"]"#,
            "not json",
        ] {
            assert!(check_jws_header(&tok(h)).is_err(), "{h}");
        }
        assert!(check_jws_header("%%%.e30.sig").is_err());
    }
}
