use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn file(text: &str) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), text).unwrap();
    f
}

#[test]
fn defaults_are_safe() {
    let c = Config::load_from(None, &env(&[]), &[]).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:19090");
    assert_eq!(c.public_url, "http://127.0.0.1:19090");
    assert_eq!(c.database_url, "sqlite://data/sts.db");
    assert!(
        matches!(c.master_key, MasterKeySource::File(ref p) if p == Path::new("keys/master.key"))
    );
    assert_eq!(c.rsa_bits, 2048);
    assert_eq!(c.token_lifetime, 600);
    assert!(c.tls.is_none());
}

#[test]
fn env_overrides_file_which_overrides_defaults() {
    let f = file(
        "[server]\nlisten = \"127.0.0.1:1000\"\npublic_url = \"https://sts.example.com/\"\n[tokens]\nlifetime_seconds = 120\n",
    );
    let c =
        Config::load_from(Some(f.path()), &env(&[("STS_LISTEN", "0.0.0.0:2000")]), &[]).unwrap();
    assert_eq!(c.listen.to_string(), "0.0.0.0:2000");
    assert_eq!(
        c.public_url, "https://sts.example.com",
        "trailing slash trimmed"
    );
    assert_eq!(c.token_lifetime, 120);
}

#[test]
fn unknown_file_key_is_named() {
    let f = file("[server]\nlistn = \"127.0.0.1:1000\"\n");
    let e = Config::load_from(Some(f.path()), &env(&[]), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("listn"), "{e}");
    let f = file("[servr]\n");
    let e = Config::load_from(Some(f.path()), &env(&[]), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("servr"), "{e}");
}

#[test]
fn unknown_env_variable_is_named() {
    let e = Config::load_from(None, &env(&[("STS_LISTN", "x")]), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("STS_LISTN"), "{e}");
    assert!(Config::load_from(None, &env(&[("STS_MY_PW", "x")]), &["STS_MY_PW"]).is_ok());
}

#[test]
fn invalid_values_are_named() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("STS_LISTEN", "nope")], "server.listen"),
        (&[("STS_PUBLIC_URL", "ftp://x")], "server.public_url"),
        (&[("STS_PUBLIC_URL", "https://u:p@x")], "server.public_url"),
        (&[("STS_KEY_SIZE", "1024")], "keys.rsa_bits"),
        (&[("STS_KEY_SIZE", "big")], "STS_KEY_SIZE"),
        (&[("STS_TOKEN_LIFETIME", "0")], "tokens.lifetime_seconds"),
        (&[("STS_TOKEN_LIFETIME", "7200")], "tokens.lifetime_seconds"),
        (&[("STS_LOG_FORMAT", "xml")], "log.format"),
        (&[("STS_DATABASE_URL", "mysql://db/sts")], "database.url"),
        (
            &[("STS_DATABASE_URL", "postgres://db-without-database")],
            "database.url",
        ),
        (&[("STS_TLS_CERT_FILE", "c.pem")], "server.tls.key_file"),
        (&[("STS_LISTEN", "0.0.0.0:19090")], "server.public_url"),
    ];
    for (vars, key) in cases {
        let e = Config::load_from(None, &env(vars), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains(key), "{vars:?}: `{e}` should name {key}");
    }
}

#[test]
fn wrong_type_in_file_is_named() {
    let f = file("[tokens]\nlifetime_seconds = \"ten\"\n");
    let e = Config::load_from(Some(f.path()), &env(&[]), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("lifetime_seconds"), "{e}");
}

#[test]
fn tls_moves_default_port_and_scheme() {
    let c = Config::load_from(
        None,
        &env(&[
            ("STS_TLS_CERT_FILE", "c.pem"),
            ("STS_TLS_KEY_FILE", "k.pem"),
        ]),
        &[],
    )
    .unwrap();
    assert_eq!(c.listen.port(), 19443);
    assert!(c.public_url.starts_with("https://"));
}

#[test]
fn secrets_do_not_debug_print() {
    let c = Config::load_from(
        None,
        &env(&[("STS_MASTER_KEY", "c2VjcmV0LW1hc3Rlci1rZXk=")]),
        &[],
    )
    .unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("c2VjcmV0"), "{dbg}");
}

#[test]
fn shipped_config_file_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/sts.toml");
    let c = Config::load_from(Some(&path), &env(&[]), &[]).unwrap();
    assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
}

#[test]
fn trusted_proxies_are_cidrs_or_addresses() {
    let c = Config::load_from(None, &env(&[]), &[]).unwrap();
    assert!(
        c.trusted_proxies.is_empty(),
        "no proxy is trusted by default"
    );
    let f = file(
        "[server]\ntrusted_proxies = [\"10.1.2.3/8\", \"192.0.2.1\", \"::1\", \"2001:db8::/32\"]\n",
    );
    let c = Config::load_from(Some(f.path()), &env(&[]), &[]).unwrap();
    let shown: Vec<String> = c.trusted_proxies.iter().map(|n| n.to_string()).collect();
    assert_eq!(
        shown,
        ["10.0.0.0/8", "192.0.2.1/32", "::1/128", "2001:db8::/32"]
    );
    for bad in ["10.0.0.0/33", "10.0.0", "", "any", "10.0.0.0/8,10.1.0.0/16"] {
        let f = file(&format!("[server]\ntrusted_proxies = [{bad:?}]\n"));
        let e = Config::load_from(Some(f.path()), &env(&[]), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.trusted_proxies"), "{bad}: {e}");
    }
}
