use super::*;
use crate::providers::ProviderConfig;
use crate::providers::oidc::{OidcEndpoints, OidcSettings};

/// An entry as read from the file; one the reading already refuses gives that refusal at `validate`.
struct Raw(Result<ProviderConfig, Refused>);

impl Raw {
    fn validate(self, env: &SecretVars) -> Result<ProviderSettings, Refused> {
        match self.0 {
            Ok(c) => c.validate(env).map_err(|e| Refused(e.to_string())),
            Err(e) => Err(e),
        }
    }
}

fn raw(toml_text: &str) -> Raw {
    Raw(ProviderConfig::from_table(
        toml::from_str(toml_text).unwrap(),
    ))
}

fn env() -> BTreeMap<String, String> {
    [("SECRET".to_string(), "s3cret".to_string())]
        .into_iter()
        .collect()
}

#[test]
fn oidc_defaults() {
    let p = raw("id = \"corp\"\ntype = \"oidc\"\nissuer = \"https://idp.example.com\"\nclient_id = \"sts\"\nclient_secret_env = \"SECRET\"\n")
        .validate(&env())
        .unwrap();
    let oidc = p.kind.as_any().downcast_ref::<OidcSettings>().unwrap();
    assert_eq!(oidc.client.scopes, vec!["openid", "email", "profile"]);
    assert_eq!(oidc.id_token_algs, vec!["RS256"]);
    assert!(matches!(oidc.endpoints, OidcEndpoints::Discover { .. }));
    assert!(!format!("{p:?}").contains("s3cret"));
}

#[test]
fn refusals_name_the_problem() {
    let base = "type = \"oidc\"\nissuer = \"https://idp.example.com\"\nclient_id = \"sts\"\nclient_secret_env = \"SECRET\"\n";
    let cases = [
        (format!("id = \"Bad Id\"\n{base}"), "`id`"),
        (format!("id = \"a\"\n{base}id_token_algs = [\"none\"]\n"), "id_token_algs"),
        (format!("id = \"a\"\n{base}id_token_algs = [\"HS256\"]\n"), "id_token_algs"),
        (format!("id = \"a\"\n{base}pkce = false\n"), "pkce"),
        (format!("id = \"a\"\n{base}auth_params = {{ redirect_uri = \"x\" }}\n"), "auth_params.redirect_uri"),
        ("id = \"a\"\ntype = \"oidc\"\nissuer = \"http://idp.example.com\"\nclient_id = \"c\"\nclient_secret_env = \"SECRET\"\n".into(), "https"),
        ("id = \"a\"\ntype = \"oidc\"\nissuer = \"https://idp.example.com\"\nclient_id = \"c\"\nclient_secret_env = \"NOPE\"\n".into(), "NOPE"),
        ("id = \"a\"\ntype = \"oauth2\"\nclient_id = \"c\"\nclient_secret_env = \"SECRET\"\nissuer = \"https://x\"\n".into(), "`issuer` does not apply"),
        ("id = \"a\"\ntype = \"oauth2\"\nclient_id = \"c\"\nclient_secret_env = \"SECRET\"\n".into(), "authorization_endpoint"),
        ("id = \"a\"\ntype = \"kerberos\"\nclient_id = \"c\"\n".into(), "unknown `type`"),
    ];
    for (text, needle) in cases {
        let e = raw(&text).validate(&env()).unwrap_err().to_string();
        assert!(e.contains(needle), "{text}\n=> {e}");
    }
    assert!(
        raw("id = \"a\"\ntype = \"oidc\"\nissuerr = \"x\"\n")
            .validate(&env())
            .is_err(),
        "unknown key"
    );

    // SAML: metadata required, with a signing certificate; SAML keys refused on other kinds.
    let saml_cases = [
        ("id = \"s\"\ntype = \"saml\"\n", "IdP metadata is required"),
        (
            "id = \"s\"\ntype = \"saml\"\nidp_metadata_xml = \"<md:EntityDescriptor xmlns:md='urn:oasis:names:tc:SAML:2.0:metadata' entityID='https://idp'><md:IDPSSODescriptor protocolSupportEnumeration='urn:oasis:names:tc:SAML:2.0:protocol'><md:SingleSignOnService Binding='urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect' Location='https://idp/sso'/></md:IDPSSODescriptor></md:EntityDescriptor>\"\n",
            "no IdP signing certificate",
        ),
        (
            "id = \"s\"\ntype = \"saml\"\nidp_metadata_url = \"http://idp.example.com/md\"\n",
            "https",
        ),
        (
            "id = \"s\"\ntype = \"saml\"\nidp_metadata_url = \"https://idp.example.com/md\"\nidp_metadata_xml = \"x\"\n",
            "exactly one of",
        ),
        (
            "id = \"s\"\ntype = \"saml\"\nidp_metadata_xml = \"<!DOCTYPE x><x/>\"\n",
            "DOCTYPE",
        ),
        (
            "id = \"s\"\ntype = \"saml\"\nclient_id = \"c\"\nidp_metadata_xml = \"x\"\n",
            "`client_id` does not apply",
        ),
        (
            "id = \"o\"\ntype = \"oidc\"\nissuer = \"https://x\"\nclient_id = \"c\"\nclient_secret_env = \"SECRET\"\nforce_authn = true\n",
            "`force_authn` does not apply",
        ),
    ];
    let role_cases = [
        (
            format!("id = \"r\"\n{base}[roles]\ndefault_roles = [\"\"]\n"),
            "role name",
        ),
        (
            format!(
                "id = \"r\"\n{base}[roles]\nrules = [{{ match = \"g\", roles = [\"a\\nb\"] }}]\n"
            ),
            "role name",
        ),
        (
            format!("id = \"r\"\n{base}discovery_refresh_seconds = 5\n"),
            "discovery_refresh_seconds",
        ),
    ];
    for (text, needle) in role_cases {
        let e = raw(&text).validate(&env()).unwrap_err().to_string();
        assert!(e.contains(needle), "{text}\n=> {e}");
    }
    let mut empty = env();
    empty.insert("SECRET".into(), String::new());
    let e = raw(&format!("id = \"e\"\n{base}"))
        .validate(&empty)
        .unwrap_err()
        .to_string();
    assert!(e.contains("non-empty client secret"), "{e}");
    for (text, needle) in saml_cases {
        let e = raw(text).validate(&env()).unwrap_err().to_string();
        assert!(e.contains(needle), "{text}\n=> {e}");
    }
}

#[test]
fn endpoint_rules() {
    assert!(endpoint_url("https://idp.example.com/x").is_ok());
    assert!(endpoint_url("http://127.0.0.1:3000").is_ok());
    assert!(endpoint_url("http://localhost:3000").is_ok());
    assert!(endpoint_url("http://idp.example.com").is_err());
    assert!(endpoint_url("https://u:p@idp.example.com").is_err());
    assert!(endpoint_url("file:///etc/passwd").is_err());
}
