//! Request parameters of the OpenID Provider's endpoints: form or query decoding with duplicates
//! refused (RFC 6749 3.1, 3.2), and parameters appended to a redirect URI.

use std::collections::HashMap;

/// A parameter list that cannot be read: the message names a parameter only when it is one of the
/// protocols' (`KNOWN_PARAMS`), never client-chosen text.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(String);

/// `application/x-www-form-urlencoded` (or a query string) as a map; a parameter given twice is an error
/// (RFC 6749 3.1, 3.2), and so is anything that is not UTF-8 form encoding.
pub fn parse_params(raw: &[u8]) -> Result<HashMap<String, String>, ParamError> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw) {
        if out.insert(k.to_string(), v.to_string()).is_some() {
            // Only a parameter name of the protocols is ever quoted: any other name (which could carry
            // a secret, a newline or an escape sequence) is not repeated back or logged.
            return Err(ParamError(if KNOWN_PARAMS.contains(&k.as_ref()) {
                format!("parameter `{k}` is given more than once")
            } else {
                "a parameter is given more than once".to_string()
            }));
        }
    }
    Ok(out)
}

/// Parameter names of the endpoints (RFC 6749, 7636, 7009, 7662, 7523, OIDC Core and RP-Initiated Logout)
/// that an error message may name.
const KNOWN_PARAMS: &[&str] = &[
    "grant_type",
    "code",
    "redirect_uri",
    "client_id",
    "client_secret",
    "code_verifier",
    "refresh_token",
    "scope",
    "audience",
    "resource",
    "client_assertion",
    "client_assertion_type",
    "token",
    "token_type_hint",
    "response_type",
    "response_mode",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "login_hint",
    "id_token_hint",
    "acr_values",
    "ui_locales",
    "display",
    "claims",
    "request",
    "request_uri",
    "provider",
    "post_logout_redirect_uri",
    "confirm",
    "logout_hint",
];

/// Append parameters to a redirect URI, keeping its own query.
pub fn with_params(base: &str, params: &[(&str, &str)]) -> String {
    if params.is_empty() {
        return base.to_string();
    }
    match url::Url::parse(base) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            u.to_string()
        }
        Err(_) => base.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_parameters_are_refused() {
        assert!(parse_params(b"a=1&b=2").is_ok());
        assert!(
            parse_params(b"code=1&code=2")
                .unwrap_err()
                .to_string()
                .contains("`code`")
        );
        // Any other name is never repeated back: it could be a secret or carry a forged log line.
        for raw in [
            &b"a=1&a=2"[..],
            b"s3cr3t&s3cr3t",
            b"x%0AFORGED=1&x%0AFORGED=2",
            b"%1B%5B31m=1&%1B%5B31m=2",
        ] {
            let e = parse_params(raw).unwrap_err();
            assert_eq!(e.to_string(), "a parameter is given more than once");
        }
    }

    #[test]
    fn params_are_appended_to_the_redirect_uri() {
        assert_eq!(
            with_params(
                "https://a.example.com/cb?x=1",
                &[("code", "c d"), ("state", "s")]
            ),
            "https://a.example.com/cb?x=1&code=c+d&state=s"
        );
    }
}
