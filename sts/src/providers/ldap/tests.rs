//! Unit tests of the LDAP settings and helpers (the directory itself: tests/tests/ldap.rs).

use super::*;
use crate::providers::settings::SecretVars;

#[test]
fn first_rdn_values_are_unescaped() {
    assert_eq!(
        first_rdn_value("cn=admins,ou=groups,dc=x").as_deref(),
        Some("admins")
    );
    assert_eq!(
        first_rdn_value("CN=Smith\\, John,OU=x").as_deref(),
        Some("Smith, John")
    );
    assert_eq!(first_rdn_value("cn=a\\2cb,dc=x").as_deref(), Some("a,b"));
    assert_eq!(first_rdn_value("cn=a+uid=b,dc=x").as_deref(), Some("a"));
    assert_eq!(first_rdn_value("no-equals"), None);
    assert_eq!(first_rdn_value("cn=,dc=x"), None);
}

fn validate(extra: &str) -> Result<Arc<dyn KindSettings>, Refused> {
    let text = format!("url = \"ldaps://ldap.example.com\"\n{extra}");
    let c: LdapConfig = toml::from_str(&text).unwrap();
    let mut env = SecretVars::new();
    env.insert("PW".into(), "s3cret".into());
    c.validate(&env)
}

#[test]
fn settings_are_checked_by_name() {
    assert!(validate("bind_dn_template = \"uid={username},ou=people,dc=x\"").is_ok());
    assert!(
        validate("user_base_dn = \"ou=people,dc=x\"\nbind_dn = \"cn=svc,dc=x\"\nbind_password_env = \"PW\"").is_ok()
    );
    for (extra, why) in [
        ("", "bind_dn_template"),
        ("bind_dn_template = \"uid=x,dc=x\"", "{username}"),
        (
            "bind_dn_template = \"uid={username}{username}\"",
            "exactly once",
        ),
        ("user_base_dn = \"ou=people,dc=x\"", "bind_dn"),
        (
            "user_base_dn = \"ou=people,dc=x\"\nbind_dn = \"cn=svc,dc=x\"",
            "password",
        ),
        (
            "user_base_dn = \"ou=people,dc=x\"\nbind_dn = \"cn=svc,dc=x\"\nbind_password_env = \"NOPE\"",
            "NOPE",
        ),
        (
            "bind_dn_template = \"uid={username},dc=x\"\nbind_dn = \"cn=svc,dc=x\"",
            "applies to the search",
        ),
        (
            "bind_dn_template = \"uid={username},dc=x\"\nstart_tls = true",
            "start_tls",
        ),
        (
            "bind_dn_template = \"uid={username},dc=x\"\nca_pem = \"junk\"",
            "no certificate",
        ),
        (
            "bind_dn_template = \"uid={username},dc=x\"\ngroup_filter = \"(member={dn})\"",
            "group_base_dn",
        ),
        (
            "bind_dn_template = \"uid={username},dc=x\"\ngroup_name = \"x\"",
            "group_name",
        ),
        (
            "bind_dn_template = \"uid={username},dc=x\"\nmax_connections = 0",
            "max_connections",
        ),
    ] {
        let e = validate(extra).unwrap_err().0;
        assert!(e.contains(why), "{extra}: {e}");
    }
    // Plain LDAP: loopback only, unless explicitly insecure; never with a DN or credentials in the URL.
    let plain = |url: &str, extra: &str| {
        let text =
            format!("url = \"{url}\"\nbind_dn_template = \"uid={{username}},dc=x\"\n{extra}");
        toml::from_str::<LdapConfig>(&text)
            .unwrap()
            .validate(&SecretVars::new())
    };
    assert!(plain("ldap://127.0.0.1:389", "").is_ok());
    assert!(plain("ldap://[::1]:389", "").is_ok());
    assert!(plain("ldap://localhost", "").is_ok());
    assert!(plain("ldap://127.0.0.1.example.com", "").is_err());
    assert!(plain("ldap://10.0.0.1", "").is_err());
    assert!(
        plain("ldap://ldap.example.com", "")
            .unwrap_err()
            .0
            .contains("clear")
    );
    assert!(plain("ldap://ldap.example.com", "start_tls = true").is_ok());
    assert!(plain("ldap://ldap.example.com", "insecure_plaintext = true").is_ok());
    assert!(plain("ldaps://u:p@ldap.example.com", "").is_err());
    assert!(plain("ldaps://ldap.example.com/dc=x", "").is_err());
    assert!(plain("http://ldap.example.com", "").is_err());
}

#[test]
fn nested_groups_use_the_in_chain_rule() {
    let s = validate(
        "bind_dn_template = \"uid={username},dc=x\"\ngroup_base_dn = \"ou=groups,dc=x\"\nnested_groups = true",
    )
    .unwrap();
    let v = s.view();
    assert_eq!(
        v["groups"]["group_filter"],
        "(member:1.2.840.113556.1.4.1941:={dn})"
    );
    assert!(v.get("bind_password").is_none());
}
