use super::*;

fn raw(t: &str) -> RawClient {
    toml::from_str(t).unwrap()
}

fn public_client() -> ClientSettings {
    raw(r#"id = "cli"
type = "public"
redirect_uris = ["http://127.0.0.1/cb", "https://app.example.com/cb"]"#)
    .validate(3600)
    .unwrap()
}

#[test]
fn defaults() {
    let c = raw(r#"id = "app"
type = "confidential"
redirect_uris = ["https://app.example.com/cb"]"#)
    .validate(3600)
    .unwrap();
    assert_eq!(c.auth_method, AuthMethod::ClientSecretBasic);
    assert_eq!(c.audience, vec!["app"]);
    assert!(c.allows(GrantType::AuthorizationCode) && c.allows(GrantType::RefreshToken));
    assert!(!c.allows(GrantType::ClientCredentials));
}

#[test]
fn redirect_uris_match_exactly() {
    let c = raw(r#"id = "app"
type = "confidential"
redirect_uris = ["https://app.example.com/cb", "http://127.0.0.1:8080/cb"]"#)
    .validate(3600)
    .unwrap();
    assert!(redirect_uri_matches(&c, "https://app.example.com/cb"));
    for bad in [
        "https://APP.example.com/cb",
        "https://app.example.com/cb/",
        "https://app.example.com/CB",
        "https://app.example.com/cb/extra",
        "https://app.example.com/cb?x=1",
        "https://user@app.example.com/cb",
        "https://app.example.com:443/cb",
        "https://app.example.com/cb#f",
        "http://127.0.0.1:8081/cb",
        "https://app.example.com.evil.com/cb",
    ] {
        assert!(!redirect_uri_matches(&c, bad), "{bad}");
    }
}

#[test]
fn loopback_port_varies_only_for_public_clients() {
    let c = public_client();
    assert!(redirect_uri_matches(&c, "http://127.0.0.1:51234/cb"));
    assert!(redirect_uri_matches(&c, "http://127.0.0.1/cb"));
    assert!(!redirect_uri_matches(&c, "http://127.0.0.1:51234/cb2"));
    assert!(!redirect_uri_matches(
        &c,
        "http://127.0.0.1:51234@evil.com/cb"
    ));
    assert!(!redirect_uri_matches(&c, "http://127.0.0.1.evil.com/cb"));
    assert!(!redirect_uri_matches(&c, "http://localhost:51234/cb"));
    assert!(!redirect_uri_matches(&c, "https://app.example.com:444/cb"));
}

#[test]
fn bad_registrations_are_refused() {
    for (t, why) in [
        (
            r#"id = "a"
type = "public"
grant_types = ["client_credentials"]"#,
            "confidential",
        ),
        (
            r#"id = "a"
type = "confidential"
redirect_uris = ["http://app.example.com/cb"]"#,
            "loopback",
        ),
        (
            r#"id = "a"
type = "confidential"
redirect_uris = ["https://app.example.com/cb#x"]"#,
            "fragment",
        ),
        (
            r#"id = "a"
type = "confidential"
redirect_uris = ["https://u:p@app.example.com/cb"]"#,
            "user information",
        ),
        (
            r#"id = "a"
type = "confidential"
redirect_uris = ["javascript:alert(1)"]"#,
            "scheme",
        ),
        (
            r#"id = "a"
type = "confidential""#,
            "redirect_uris",
        ),
        (
            r#"id = "a"
type = "public"
token_endpoint_auth_method = "client_secret_post"
redirect_uris = ["https://a.example.com/cb"]"#,
            "public client",
        ),
        (
            r#"id = "a"
type = "confidential"
token_endpoint_auth_method = "private_key_jwt"
redirect_uris = ["https://a.example.com/cb"]"#,
            "jwks",
        ),
        (
            r#"id = "a"
type = "confidential"
grant_types = ["client_credentials"]
access_token_lifetime_seconds = 99999"#,
            "max_lifetime",
        ),
        (
            r#"id = "a b"
type = "confidential"
grant_types = ["client_credentials"]"#,
            "client id",
        ),
        (
            r#"id = "a"
type = "confidential"
grant_types = ["client_credentials"]
jwks = '{"keys":[{"kty":"oct","k":"AAAA"}]}'
token_endpoint_auth_method = "private_key_jwt""#,
            "symmetric",
        ),
    ] {
        let e = raw(t).validate(3600).unwrap_err().0;
        assert!(e.contains(why), "{t}: {e}");
    }
}

#[test]
fn scope_tokens() {
    assert!(valid_scope_token("openid"));
    assert!(valid_scope_token("api:read"));
    assert!(!valid_scope_token("a b"));
    assert!(!valid_scope_token("a\"b"));
    assert!(!valid_scope_token(""));
}
