//! SAML 2.0 login against a real IdP (Debian's SimpleSAMLphp, started by tests/peers/saml/start-idp.py),
//! and the attacks an SP must refuse: tampering, unsigned or SHA-1 assertions, replays, unsolicited
//! responses, XML 1.1 / DOCTYPE parser differentials, assertion wrapping.

use std::net::TcpListener;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sts_tests::saml_idp::{
    Idp, bootstrap_sp_metadata, bootstrap_sp_metadata_acs, decode, encode, free_port,
    idp_login_via, post_acs_msg, post_verdict_msg, run_login_py, start_idp, start_idp_on,
};
use sts_tests::verifiers::pyjwt;
use sts_tests::{AppOptions, TestApp, browser, spawn_app_on};

struct Setup {
    app: TestApp,
    _idp: Idp,
}

async fn setup(idp_flags: &[&str], extra: &str) -> Setup {
    setup_with(idp_flags, extra, bootstrap_sp_metadata).await
}

/// STS + IdP where `sp_md(sts_base_url)` is what the IdP admin registered.
async fn setup_with(idp_flags: &[&str], extra: &str, sp_md: fn(&str) -> String) -> Setup {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sts = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let idp = start_idp(&sp_md(&sts), idp_flags).await;
    let app = spawn_sts(listener, &idp, extra, None).await;
    Setup { app, _idp: idp }
}

/// The STS with one SAML provider for `idp`, on `listener` (and on `dir` when given: a restart). `extra`
/// goes into the provider's table; from a `[[clients]]` line on, it goes after it (applications).
async fn spawn_sts(
    listener: TcpListener,
    idp: &Idp,
    extra: &str,
    dir: Option<tempfile::TempDir>,
) -> TestApp {
    let (extra, clients) = match extra.find("[[clients]]") {
        Some(i) => (&extra[..i], &extra[i..]),
        None => (extra, ""),
    };
    let idp_xml = reqwest::get(&idp.metadata_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // `extra` may name the metadata URL itself; otherwise the document goes inline into the config.
    assert!(!idp_xml.contains("\'\'\'"));
    let source = if extra.contains("idp_metadata_url") {
        String::new()
    } else {
        format!("idp_metadata_xml = \'\'\'{idp_xml}\'\'\'")
    };
    let toml = format!(
        r#"
[[providers]]
id = "simplesaml"
type = "saml"
display_name = "SimpleSAMLphp"
{source}
{extra}

[providers.roles]
claim = "groups"
default_roles = ["user"]
rules = [ {{ match = "sts-admins", roles = ["admin"] }}, {{ match = "staff", roles = ["employee"] }} ]
{clients}"#,
    );
    let opts = AppOptions::default()
        .with("STS_KEY_RELOAD_INTERVAL", "1")
        .config(toml);
    match dir {
        None => spawn_app_on(listener, opts).await,
        Some(dir) => sts_tests::try_spawn_on(dir, opts, listener)
            .await
            .map_err(|(_, e)| e)
            .expect("restart"),
    }
}

/// Start a login at the STS, authenticate at the IdP (login.py); returns the client and login.py's verdict.
async fn idp_login(
    app: &TestApp,
    user: &str,
    password: &str,
) -> (reqwest::Client, serde_json::Value) {
    idp_login_via(app, "simplesaml", user, password).await
}

async fn post_acs(
    client: &reqwest::Client,
    acs: &str,
    saml_response: &str,
    relay_state: &str,
) -> (u16, String) {
    let (status, code, _) = post_acs_msg(client, acs, saml_response, relay_state).await;
    (status, code)
}

/// The IdP's own start of an IdP-initiated login for our SP (SimpleSAMLphp's SSOService `spentityid`).
fn idp_initiated_url(idp: &Idp, app: &TestApp, relay_state: &str) -> String {
    let base = idp.metadata_url.trim_end_matches("/saml2/idp/metadata.php");
    let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    let mut url = format!(
        "{base}/saml2/idp/SSOService.php?spentityid={}",
        enc(&format!("{}/sso/sso-saml/metadata", app.address))
    );
    if !relay_state.is_empty() {
        url.push_str(&format!("&RelayState={}", enc(relay_state)));
    }
    url
}

/// Post what login.py got from the IdP (response, RelayState) to the ACS it names: (status, reason code).
async fn post_verdict(client: &reqwest::Client, v: &serde_json::Value) -> (u16, String) {
    let (status, code, _) = post_verdict_msg(client, v).await;
    (status, code)
}

/// Byte span of the (first) signed assertion.
fn assertion_span(x: &str) -> (usize, usize) {
    let start = x.find("<saml:Assertion").unwrap();
    let end = x.find("</saml:Assertion>").unwrap() + "</saml:Assertion>".len();
    (start, end)
}

/// The same AuthnRequest (same ID, RelayState, ACS) with another Issuer, unsigned.
fn reissue_as(url: &str, from: &str, to: &str) -> String {
    use std::io::{Read, Write};
    let parsed = url::Url::parse(url).unwrap();
    let get = |k: &str| {
        parsed
            .query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&STANDARD.decode(get("SAMLRequest")).unwrap()[..])
        .read_to_string(&mut xml)
        .unwrap();
    assert!(xml.contains(from), "{xml}");
    let xml = xml.replace(from, to);
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(xml.as_bytes()).unwrap();
    let mut out = parsed.clone();
    out.query_pairs_mut()
        .clear()
        .append_pair("SAMLRequest", &STANDARD.encode(enc.finish().unwrap()))
        .append_pair("RelayState", &get("RelayState"));
    out.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml_login_ends_on_me_with_roles_and_the_sp_metadata_is_served() {
    let s = setup(&[], "").await;
    let app = &s.app;

    let res = browser()
        .get(format!("{}/sso/sso-saml/metadata", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "application/samlmetadata+xml"
    );
    let md = res.text().await.unwrap();
    assert!(
        md.contains(&format!(
            "entityID=\"{}/sso/sso-saml/metadata\"",
            app.address
        )),
        "{md}"
    );
    assert!(
        md.contains(&format!("Location=\"{}/sso/sso-saml/acs\"", app.address)),
        "{md}"
    );
    assert!(
        md.contains("HTTP-POST")
            && md.contains("use=\"signing\"")
            && md.contains("X509Certificate"),
        "{md}"
    );
    assert!(
        md.contains("use=\"encryption\"") && md.contains("rsa-oaep-mgf1p"),
        "an encryption key is offered: {md}"
    );
    let per_provider = browser()
        .get(format!("{}/sso/sso-saml/simplesaml/metadata", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(per_provider.status(), 200);

    let (client, v) = idp_login(app, "alice", "alicepw").await;
    assert_eq!(v["ok"], true, "{v}");
    let acs = v["acs_url"].as_str().unwrap();
    assert_eq!(acs, format!("{}/sso/sso-saml/acs", app.address));
    // Posted with the base64 wrapped at 76 columns, as some IdPs do.
    let wrapped: String = v["saml_response"]
        .as_str()
        .unwrap()
        .as_bytes()
        .chunks(76)
        .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
        .collect();
    let res = client
        .post(acs)
        .form(&[
            ("SAMLResponse", wrapped.as_str()),
            ("RelayState", v["relay_state"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let me = client
        .get(format!("{}/sso/me", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let html = me.text().await.unwrap();
    assert!(html.contains("<dd id=\"subject\">alice</dd>"), "{html}");
    assert!(
        html.contains("<dd id=\"email\">alice@example.com</dd>"),
        "{html}"
    );
    assert!(
        html.contains("<li>employee</li><li>admin</li><li>user</li>"),
        "{html}"
    );
    let token = html
        .split("id=\"access-token\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap();
    let pv = pyjwt(&app.jwks_url(), token, &app.address, &app.address);
    assert!(pv.ok, "{}", pv.json);
    assert_eq!(app.session_count().await, 1);

    // The same response again: its RelayState (login flow) is spent.
    let (status, code) = post_acs(
        &client,
        acs,
        v["saml_response"].as_str().unwrap(),
        v["relay_state"].as_str().unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "state_unknown_or_used"));
    assert_eq!(app.session_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_and_unsolicited_responses_are_refused() {
    let s = setup(&[], "").await;
    let app = &s.app;
    let acs = format!("{}/sso/sso-saml/acs", app.address);

    // Each case gets a fresh, legitimate login to tamper with, so only the tampering is wrong.
    type Tamper = fn(&str) -> String;
    let cases: Vec<(&str, Tamper, u16, &str)> = vec![
        (
            "NameID changed",
            |x| x.replace(">alice</saml:NameID>", ">admin</saml:NameID>"),
            401,
            "saml_invalid",
        ),
        (
            "attribute value changed",
            |x| {
                x.replacen(
                    "<saml:AttributeValue xsi:type=\"xs:string\">staff",
                    "<saml:AttributeValue xsi:type=\"xs:string\">sts-admins",
                    1,
                )
            },
            401,
            "saml_invalid",
        ),
        (
            "XML 1.1 declaration",
            |x| {
                format!(
                    "<?xml version=\"1.1\"?>{}",
                    x.trim_start_matches(|c| c != '<')
                        .split_once("?>")
                        .filter(|(a, _)| a.starts_with("<?xml"))
                        .map(|(_, b)| b.to_string())
                        .unwrap_or_else(|| x.to_string())
                )
            },
            401,
            "saml_unsafe_xml",
        ),
        (
            "DOCTYPE",
            |x| format!("<!DOCTYPE r [<!ENTITY e \"alice\">]>{x}"),
            401,
            "saml_unsafe_xml",
        ),
        (
            "wrapped second assertion",
            |x| {
                // XSW: a copy of the signed assertion with another ID and subject placed before it.
                let start = x.find("<saml:Assertion").unwrap();
                let end = x.find("</saml:Assertion>").unwrap() + "</saml:Assertion>".len();
                let forged = x[start..end]
                    .replace(">alice</saml:NameID>", ">admin</saml:NameID>")
                    .replacen("ID=\"_", "ID=\"_evil", 1);
                format!("{}{}{}", &x[..start], forged, &x[start..])
            },
            401,
            "saml_assertion_count",
        ),
        (
            "wrapped: evil assertion after the signed one",
            |x| {
                let (start, end) = assertion_span(x);
                let forged = x[start..end]
                    .replace(">alice</saml:NameID>", ">admin</saml:NameID>")
                    .replacen("ID=\"_", "ID=\"_evil", 1);
                format!("{}{}{}", &x[..end], forged, &x[end..])
            },
            401,
            "saml_assertion_count",
        ),
        (
            "wrapped: signed assertion inside the evil one",
            |x| {
                let (start, end) = assertion_span(x);
                let signed = &x[start..end];
                let evil_open =
                    signed[..signed.find('>').unwrap() + 1].replacen("ID=\"_", "ID=\"_evil", 1);
                format!(
                    "{}{evil_open}<saml:Subject><saml:NameID>admin</saml:NameID></saml:Subject>{signed}</saml:Assertion>{}",
                    &x[..start],
                    &x[end..]
                )
            },
            401,
            "saml_assertion_count",
        ),
        (
            "wrapped: signed assertion moved into Extensions",
            |x| {
                let (start, end) = assertion_span(x);
                let signed = &x[start..end];
                let evil = signed
                    .replace(">alice</saml:NameID>", ">admin</saml:NameID>")
                    .replacen("ID=\"_", "ID=\"_evil", 1);
                let issuer_end = x.find("</saml:Issuer>").unwrap() + "</saml:Issuer>".len();
                format!(
                    "{}<samlp:Extensions>{signed}</samlp:Extensions>{}{evil}{}",
                    &x[..issuer_end],
                    &x[issuer_end..start],
                    &x[end..]
                )
            },
            401,
            "saml_assertion_count",
        ),
        (
            "wrapped: signed assertion moved into a ds:Object",
            |x| {
                let (start, end) = assertion_span(x);
                let signed = &x[start..end];
                let evil = signed
                    .replace(">alice</saml:NameID>", ">admin</saml:NameID>")
                    .replacen("ID=\"_", "ID=\"_evil", 1);
                format!(
                    "{}{evil}<ds:Object xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">{signed}</ds:Object>{}",
                    &x[..start],
                    &x[end..]
                )
            },
            401,
            "saml_assertion_count",
        ),
        (
            // xmlsec would read the file (or fetch a URL) before checking the signature value.
            "Reference to file:///dev/zero",
            |x| {
                let at = x.find("<ds:Reference URI=\"").unwrap() + "<ds:Reference URI=\"".len();
                let end = at + x[at..].find('"').unwrap();
                format!("{}file:///dev/zero{}", &x[..at], &x[end..])
            },
            401,
            "saml_unsafe_xml",
        ),
        (
            "XSLT transform",
            |x| {
                x.replacen(
                    "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
                    "http://www.w3.org/TR/1999/REC-xslt-19991116",
                    1,
                )
            },
            401,
            "saml_unsafe_xml",
        ),
        (
            "comment injected in NameID",
            |x| x.replace(">alice</saml:NameID>", ">ali<!---->ce</saml:NameID>"),
            401,
            "saml_unsafe_xml",
        ),
        (
            "signature stripped",
            |x| {
                let a = x.find("<ds:Signature").unwrap();
                let b = x.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
                format!("{}{}", &x[..a], &x[b..])
            },
            401,
            "saml_invalid",
        ),
    ];
    for (what, tamper, status_want, code_want) in cases {
        let (client, v) = idp_login(app, "alice", "alicepw").await;
        assert_eq!(v["ok"], true, "{v}");
        let forged = encode(&tamper(&decode(v["saml_response"].as_str().unwrap())));
        let (status, code) =
            post_acs(&client, &acs, &forged, v["relay_state"].as_str().unwrap()).await;
        assert_eq!((status, code.as_str()), (status_want, code_want), "{what}");
    }
    assert_eq!(
        app.session_count().await,
        0,
        "no forged response made a session"
    );

    // Garbage: not base64, base64 of non-XML, oversize; each a page, no panic, no session.
    let big = "A".repeat(600 * 1024);
    let declined = encode(
        "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_x\" Version=\"2.0\" \
         IssueInstant=\"2026-01-01T00:00:00Z\"><samlp:Status><samlp:StatusCode \
         Value=\"urn:oasis:names:tc:SAML:2.0:status:Responder\"/></samlp:Status></samlp:Response>",
    );
    for (what, body, code_want) in [
        ("IdP declined", declined, "saml_idp_status"),
        (
            "a flood of <",
            encode(&"<".repeat(190_000)),
            "saml_unsafe_xml",
        ),
        (
            "not base64",
            "%%%not-base64%%%".to_string(),
            "saml_malformed",
        ),
        (
            "not XML",
            encode("this is not xml at all"),
            "saml_assertion_count",
        ),
        ("oversize", big, "bad_request"),
    ] {
        let (client, v) = idp_login(app, "alice", "alicepw").await;
        let (status, code) =
            post_acs(&client, &acs, &body, v["relay_state"].as_str().unwrap()).await;
        assert!(status == 400 || status == 401, "{what}: {status}");
        assert_eq!(code, code_want, "{what}");
    }
    assert_eq!(app.session_count().await, 0, "no garbage made a session");

    // A genuine response delivered with another login's RelayState: InResponseTo does not match.
    let (client, first) = idp_login(app, "alice", "alicepw").await;
    let (_, second) = idp_login(app, "alice", "alicepw").await;
    let (status, code) = post_acs(
        &client,
        &acs,
        first["saml_response"].as_str().unwrap(),
        second["relay_state"].as_str().unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (401, "saml_invalid"));

    // IdP-initiated (unsolicited) response: no login flow of ours; refused.
    let unsolicited = idp_initiated_url(&s._idp, app, "");
    let v = run_login_py(&unsolicited, "alice", "alicepw").await;
    assert_eq!(v["ok"], true, "{v}");
    let (status, code) = post_acs(
        &browser(),
        &acs,
        v["saml_response"].as_str().unwrap(),
        v["relay_state"].as_str().unwrap_or("made-up"),
    )
    .await;
    assert_eq!(status, 400, "{code}");
    let (status, _) = post_acs(&browser(), &acs, v["saml_response"].as_str().unwrap(), "").await;
    assert_eq!(status, 400);
    assert_eq!(app.session_count().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_and_sha1_assertions_are_refused_signed_responses_accepted() {
    for (flags, want) in [
        (vec!["--no-sign-assertion"], (401, "saml_invalid")),
        (vec!["--sign-algo", "rsa-sha1"], (401, "saml_invalid")),
        (vec!["--sign-response", "--no-sign-assertion"], (303, "")),
    ] {
        let s = setup(&flags, "").await;
        let (client, v) = idp_login(&s.app, "alice", "alicepw").await;
        assert_eq!(v["ok"], true, "{flags:?}: {v}");
        let (status, code) = post_verdict(&client, &v).await;
        assert_eq!((status, code.as_str()), want, "{flags:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_audience_and_destination_are_refused() {
    // The IdP restarts on the same address with a new key: same entityID, a signature (and KeyInfo
    // certificate) from a key that is not in the metadata the STS was given.
    let port = free_port();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sts = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let idp = start_idp_on(port, &bootstrap_sp_metadata(&sts), &[]).await;
    let app = spawn_sts(listener, &idp, "", None).await;
    drop(idp);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let _rekeyed = start_idp_on(port, &bootstrap_sp_metadata(&sts), &[]).await;
    let (client, v) = idp_login(&app, "alice", "alicepw").await;
    assert_eq!(v["ok"], true, "{v}");
    let (status, code, message) = post_verdict_msg(&client, &v).await;
    assert_eq!(
        (status, code.as_str()),
        (401, "saml_invalid"),
        "signed by a key not in the IdP metadata"
    );
    assert!(
        message.contains("no signature verifies against the IdP metadata certificates"),
        "refused for another reason: {message}"
    );

    // Audience: the IdP also knows another SP (same ACS). Our AuthnRequest, re-issued in that SP's name,
    // gets a genuine response for our request ID and ACS whose audience is the other SP.
    let s = setup_with(&[], "", |sts| {
        format!(
            "<md:EntitiesDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\">{}{}</md:EntitiesDescriptor>",
            bootstrap_sp_metadata(sts),
            bootstrap_sp_metadata(sts).replace(&format!("entityID=\"{sts}/sso/sso-saml/metadata\""), "entityID=\"https://other-sp.example.com\"")
        )
    })
    .await;
    let client = browser();
    let res = client
        .get(format!("{}/sso/login?provider=simplesaml", s.app.address))
        .send()
        .await
        .unwrap();
    let ours = res.headers()["location"].to_str().unwrap().to_string();
    let theirs = reissue_as(
        &ours,
        &format!("{}/sso/sso-saml/metadata", s.app.address),
        "https://other-sp.example.com",
    );
    let v = run_login_py(&theirs, "alice", "alicepw").await;
    assert_eq!(v["ok"], true, "{v}");
    let xml = decode(v["saml_response"].as_str().unwrap());
    assert!(
        xml.contains("<saml:Audience>https://other-sp.example.com</saml:Audience>"),
        "{xml}"
    );
    let (status, code, message) = post_verdict_msg(&client, &v).await;
    assert_eq!(
        (status, code.as_str()),
        (401, "saml_invalid"),
        "wrong audience"
    );
    assert!(
        message.contains("AudienceRequirement"),
        "refused for another reason: {message}"
    );

    // The IdP sends the response to (and names as Destination/Recipient) another ACS than ours.
    let s = setup_with(&[], "", |sts| {
        bootstrap_sp_metadata_acs(sts, &format!("{sts}/sso/sso-saml/simplesaml/acs"))
    })
    .await;
    let (client, v) = idp_login(&s.app, "alice", "alicepw").await;
    assert!(
        v["acs_url"]
            .as_str()
            .unwrap()
            .ends_with("/sso/sso-saml/simplesaml/acs")
    );
    let (status, code, message) = post_verdict_msg(&client, &v).await;
    assert_eq!(
        (status, code.as_str()),
        (401, "saml_invalid"),
        "wrong destination"
    );
    assert!(
        message.contains("Recipient does not match"),
        "refused for another reason: {message}"
    );
    assert_eq!(s.app.session_count().await, 0);

    // The same IdP registration works once the provider is set to its own ACS URL.
    let s = setup_with(&[], "per_provider_acs = true", |sts| {
        bootstrap_sp_metadata_acs(sts, &format!("{sts}/sso/sso-saml/simplesaml/acs"))
    })
    .await;
    let (client, v) = idp_login(&s.app, "alice", "alicepw").await;
    let (status, _) = post_verdict(&client, &v).await;
    assert_eq!(status, 303, "per-provider ACS");
}

/// The IdP is registered from the STS's own metadata (signing and encryption certificates): the STS runs
/// once to make its SP key and publish the metadata, then restarts (same database, same address) against
/// an IdP started with `flags`.
async fn registered_from_our_metadata(flags: &[&str]) -> (TestApp, Idp) {
    let idp_port = free_port();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sts_port = listener.local_addr().unwrap().port();
    let sts = format!("http://127.0.0.1:{sts_port}");
    let idp = start_idp_on(idp_port, &bootstrap_sp_metadata(&sts), &[]).await;
    let app = spawn_sts(listener, &idp, "", None).await;
    let our_metadata = reqwest::get(format!("{sts}/sso/sso-saml/metadata"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        our_metadata.contains("AuthnRequestsSigned=\"true\""),
        "{our_metadata}"
    );
    let dir = app.stop().await;
    drop(idp);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let idp = start_idp_on(idp_port, &our_metadata, flags).await;
    let listener = TcpListener::bind(("127.0.0.1", sts_port)).unwrap();
    let app = spawn_sts(listener, &idp, "", Some(dir)).await;
    (app, idp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_assertions_are_decrypted_only_inside_a_signed_response() {
    let (app, idp) =
        registered_from_our_metadata(&["--encrypt-assertion", "--sign-response"]).await;
    let (client, v) = idp_login(&app, "alice", "alicepw").await;
    assert_eq!(v["ok"], true, "{v}");
    let xml = decode(v["saml_response"].as_str().unwrap());
    assert!(
        xml.contains("EncryptedAssertion") && !xml.contains("<saml:NameID"),
        "the IdP encrypted the assertion"
    );
    let (status, code, message) = post_verdict_msg(&client, &v).await;
    assert_eq!(status, 303, "{code}: {message}");
    let html = client
        .get(format!("{}/sso/me", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("<dd id=\"subject\">alice</dd>") && html.contains("<li>admin</li>"),
        "{html}"
    );
    drop((app, idp));

    // Encrypted, but only the (inner) assertion is signed: the Response itself is not, so it is refused.
    let (app, _idp) = registered_from_our_metadata(&["--encrypt-assertion"]).await;
    let (client, v) = idp_login(&app, "alice", "alicepw").await;
    assert_eq!(v["ok"], true, "{v}");
    let (status, code, message) = post_verdict_msg(&client, &v).await;
    assert_eq!((status, code.as_str()), (401, "saml_invalid"), "{message}");
    assert!(
        message.contains("signed Response") || message.contains("signed by the IdP"),
        "{message}"
    );
    assert_eq!(app.session_count().await, 0);
}

/// The IdP is registered from our own metadata (with our signing certificate) and requires signed
/// AuthnRequests: our signed requests pass, an unsigned one is refused by the IdP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_requiring_signed_authn_requests_accepts_ours() {
    let (app, _idp) = registered_from_our_metadata(&["--require-signed-authnrequests"]).await;
    let (client, v) = idp_login(&app, "alice", "alicepw").await;
    assert_eq!(
        v["ok"], true,
        "the IdP refused our signed AuthnRequest: {v}"
    );
    let (status, _) = post_verdict(&client, &v).await;
    assert_eq!(status, 303);

    // Control: the same request without its signature is refused by the IdP.
    let res = browser()
        .get(format!("{}/sso/login?provider=simplesaml", app.address))
        .send()
        .await
        .unwrap();
    let signed = res.headers()["location"].to_str().unwrap().to_string();
    let unsigned = signed.split("&SigAlg=").next().unwrap().to_string();
    let v = run_login_py(&unsigned, "alice", "alicepw").await;
    assert_eq!(
        v["ok"], false,
        "an unsigned AuthnRequest must be refused by this IdP: {v}"
    );
}

/// Replace the value of every `attr="..."` in `xml`.
fn set_attr(xml: &str, attr: &str, value: &str) -> String {
    let needle = format!("{attr}=\"");
    let mut out = String::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&needle) {
        out.push_str(&rest[..i + needle.len()]);
        rest = &rest[i + needle.len()..];
        let end = rest.find('"').unwrap();
        out.push_str(value);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Re-sign the assertion of a (modified) response with the IdP's own key (xmlsec1), as a compromised
/// clock or a buggy IdP would produce it: the signature is valid, only the content is wrong.
fn resign_with_idp_key(idp: &Idp, xml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.xml");
    let output = dir.path().join("out.xml");
    std::fs::write(&input, xml).unwrap();
    let cert = idp.dir.path().join("idp/cert");
    let key = format!(
        "{},{}",
        cert.join("idp.key").display(),
        cert.join("idp.crt").display()
    );
    sts_tests::tool(
        "xmlsec1",
        &[
            "--sign",
            "--privkey-pem",
            &key,
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
            "--output",
            output.to_str().unwrap(),
            input.to_str().unwrap(),
        ],
        dir.path(),
    );
    std::fs::read_to_string(output).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_not_yet_valid_assertions_are_refused() {
    let s = setup(&[], "").await;
    let tomorrow = (std::time::SystemTime::now() + std::time::Duration::from_secs(86_400))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let tomorrow = {
        // RFC 3339 without a date library: days since epoch -> civil date (Howard Hinnant's algorithm).
        let days = (tomorrow / 86_400) as i64;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!("{y:04}-{m:02}-{d:02}T00:00:00Z")
    };
    type Edit = Box<dyn Fn(&str) -> String>;
    let cases: Vec<(&str, Edit, u16, &str)> = vec![
        (
            "re-signed unchanged (control)",
            Box::new(|x: &str| x.to_string()),
            303,
            "",
        ),
        (
            "expired",
            Box::new(|x: &str| set_attr(x, "NotOnOrAfter", "2020-01-01T00:00:00Z")),
            401,
            "expired at",
        ),
        (
            "not yet valid",
            Box::new(move |x: &str| set_attr(x, "NotBefore", &tomorrow)),
            401,
            "not valid until",
        ),
    ];
    for (what, edit, status_want, message_want) in cases {
        let (client, v) = idp_login(&s.app, "alice", "alicepw").await;
        assert_eq!(v["ok"], true, "{v}");
        let resigned = resign_with_idp_key(
            &s._idp,
            &edit(&decode(v["saml_response"].as_str().unwrap())),
        );
        let (status, code, message) = post_acs_msg(
            &client,
            v["acs_url"].as_str().unwrap(),
            &encode(&resigned),
            v["relay_state"].as_str().unwrap(),
        )
        .await;
        assert_eq!(status, status_want, "{what}: {code} {message}");
        assert!(
            message.contains(message_want),
            "{what}: refused for another reason: {message}"
        );
    }
    assert_eq!(s.app.session_count().await, 1, "only the control logged in");
}

/// IdP-initiated login, turned on for the provider: accepted once; the same assertion again is a replay
/// (the assertion-ID cache, since there is no login flow to consume); a solicited response stripped of
/// its RelayState is not accepted as unsolicited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_initiated_login_when_allowed_still_refuses_replays() {
    let s = setup(&[], "allow_idp_initiated = true").await;
    let app = &s.app;
    let acs = format!("{}/sso/sso-saml/acs", app.address);
    let unsolicited = idp_initiated_url(&s._idp, app, "/sso/me");
    let v = run_login_py(&unsolicited, "alice", "alicepw").await;
    assert_eq!(v["ok"], true, "{v}");
    let response = v["saml_response"].as_str().unwrap().to_string();
    assert!(
        !decode(&response).contains("InResponseTo"),
        "really unsolicited"
    );
    let client = browser();
    let res = client
        .post(&acs)
        .form(&[
            ("SAMLResponse", response.as_str()),
            ("RelayState", "/sso/me"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/sso/me");
    assert_eq!(app.session_count().await, 1);

    let (status, code) = post_acs(&browser(), &acs, &response, "/sso/me").await;
    assert_eq!((status, code.as_str()), (401, "saml_replay"));

    // A response to one of our requests, delivered without its login flow.
    let (client, v) = idp_login(app, "alice", "alicepw").await;
    let (status, code) = post_acs(&client, &acs, v["saml_response"].as_str().unwrap(), "").await;
    assert_eq!((status, code.as_str()), (401, "saml_unsolicited"));
    assert_eq!(app.session_count().await, 1);
}

/// IdP metadata taken from its URL (fetched at start, refreshed on an interval) instead of a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_metadata_from_url() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sts = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let idp = start_idp(&bootstrap_sp_metadata(&sts), &[]).await;
    let extra = format!(
        "idp_metadata_url = \"{}\"\nmetadata_refresh_seconds = 60",
        idp.metadata_url
    );
    let app = spawn_sts(listener, &idp, &extra, None).await;
    let (client, v) = idp_login(&app, "alice", "alicepw").await;
    assert_eq!(v["ok"], true, "{v}");
    let (status, code) = post_verdict(&client, &v).await;
    assert_eq!(status, 303, "{code}");
}

/// `sts saml import-key`: the SP key and certificate come from a PKCS#12 keystore; after a restart the
/// SP metadata carries the imported certificate. A keystore without a certificate is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sp_key_imported_from_pkcs12_is_published_after_restart() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sts = format!("http://127.0.0.1:{port}");
    let idp = start_idp(&bootstrap_sp_metadata(&sts), &[]).await;
    let app = spawn_sts(listener, &idp, "", None).await;

    let ks = tempfile::tempdir().unwrap();
    let d = ks.path();
    let tool = |args: &[&str]| sts_tests::tool("openssl", args, d);
    tool(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "sp.key",
        "-out",
        "sp.pem",
        "-subj",
        "/CN=sts-sp-imported",
        "-days",
        "30",
    ]);
    tool(&[
        "pkcs12",
        "-export",
        "-inkey",
        "sp.key",
        "-in",
        "sp.pem",
        "-out",
        "sp.p12",
        "-passout",
        "pass:sp-pw",
    ]);
    tool(&[
        "pkcs12",
        "-export",
        "-nocerts",
        "-inkey",
        "sp.key",
        "-out",
        "nocert.p12",
        "-passout",
        "pass:sp-pw",
    ]);
    tool(&["x509", "-in", "sp.pem", "-outform", "DER", "-out", "sp.der"]);
    let cert_b64 = STANDARD.encode(std::fs::read(d.join("sp.der")).unwrap());

    let out = app
        .cli(
            &[
                "saml",
                "import-key",
                "--keystore",
                d.join("nocert.p12").to_str().unwrap(),
                "--password-env",
                "SP_PW",
            ],
            &[("SP_PW", "sp-pw")],
        )
        .await;
    assert_eq!(out.status, 1);
    assert!(out.stderr.contains("no certificate"), "{}", out.stderr);

    let out = app
        .cli(
            &[
                "saml",
                "import-key",
                "--keystore",
                d.join("sp.p12").to_str().unwrap(),
                "--password-env",
                "SP_PW",
            ],
            &[("SP_PW", "sp-pw")],
        )
        .await
        .ok();
    assert!(
        out.stdout.contains("imported the SAML SP key"),
        "{}",
        out.stdout
    );

    let dir = app.stop().await;
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let app = spawn_sts(listener, &idp, "", Some(dir)).await;
    let md = reqwest::get(format!("{}/sso/sso-saml/metadata", app.address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        md.replace(['\n', '\r', ' '], "").contains(&cert_b64),
        "the imported certificate is published: {md}"
    );
}

/// SimpleSAMLphp as the upstream of the STS as OpenID Provider: an application's authorization request
/// goes through a SAML login and comes back with a code; the tokens carry the SAML user and mapped roles.
#[tokio::test]
async fn saml_upstream_login_completes_an_authorization_code_flow() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use sha2::Digest;
    const CB: &str = "https://app.example.com/cb";
    let s = setup(
        &[],
        &format!(
            r#"[[clients]]
id = "app"
type = "confidential"
redirect_uris = ["{CB}"]
"#
        ),
    )
    .await;
    let app = &s.app;
    let secret = app
        .cli(&["clients", "secret", "app"], &[])
        .await
        .ok()
        .stdout
        .trim()
        .to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    let client = browser();
    let verifier = format!("{}-verifier", sts::sso::random_token());
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", "app"),
            ("redirect_uri", CB),
            ("scope", "openid profile email roles"),
            ("state", "saml-1"),
            ("nonce", "n-saml"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    // authorize -> /sso/login -> the IdP's SSO service (signed AuthnRequest).
    let mut url = format!("{}/sso/authorize?{q}", app.address);
    let mut authn_url = None;
    for _ in 0..5 {
        let res = client.get(&url).send().await.unwrap();
        assert_eq!(res.status(), 303, "{url}");
        let loc = res.headers()["location"].to_str().unwrap().to_string();
        let next = res.url().join(&loc).unwrap().to_string();
        if !next.starts_with(&app.address) {
            authn_url = Some(next);
            break;
        }
        url = next;
    }
    let authn_url = authn_url.expect("the STS sent the browser to the IdP");
    assert!(authn_url.contains("SAMLRequest="), "{authn_url}");
    let v = run_login_py(&authn_url, "alice", "alicepw").await;
    assert_eq!(v["ok"], true, "{v}");
    let res = client
        .post(v["acs_url"].as_str().unwrap())
        .form(&[
            ("SAMLResponse", v["saml_response"].as_str().unwrap()),
            ("RelayState", v["relay_state"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "ACS: {}", res.text().await.unwrap());
    let resume = res
        .url()
        .join(res.headers()["location"].to_str().unwrap())
        .unwrap()
        .to_string();
    assert!(resume.contains("/sso/authorize/resume?id="), "{resume}");
    let res = client.get(&resume).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let to = res.headers()["location"].to_str().unwrap().to_string();
    assert!(to.starts_with(CB), "{to}");
    let params: std::collections::HashMap<String, String> = url::Url::parse(&to)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(params["state"], "saml-1");
    assert_eq!(params["iss"], app.address);

    let tokens: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/sso/token", app.address))
        .basic_auth("app", Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &params["code"]),
            ("redirect_uri", CB),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id_token = tokens["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{tokens}"));
    let access = tokens["access_token"].as_str().unwrap();
    let v = pyjwt(&app.jwks_url(), id_token, &app.address, "app");
    assert!(v.ok, "{}", v.json);
    assert_eq!(v.json["claims"]["nonce"], "n-saml");
    assert_eq!(v.json["claims"]["idp"], "simplesaml");
    assert_eq!(
        v.json["claims"]["email_verified"], true,
        "a signed SAML mail attribute counts as verified"
    );
    let v = pyjwt(&app.jwks_url(), access, &app.address, "app");
    assert!(v.ok, "{}", v.json);
    let roles = v.json["claims"]["roles"].as_array().unwrap().clone();
    assert!(
        roles.contains(&"admin".into()) && roles.contains(&"user".into()),
        "{roles:?}"
    );
}

/// A SAML provider added in the admin console (API) from SimpleSAMLphp's metadata URL is live at once:
/// a SAML login through it works without a restart (the SP credentials are created on demand).
#[tokio::test]
async fn saml_provider_from_a_metadata_url_added_in_the_console() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sts = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let idp = start_idp(&bootstrap_sp_metadata(&sts), &[]).await;
    let app = spawn_app_on(listener, AppOptions::default()).await;
    let token = sts_tests::admin::api_token(&app).await;
    // A metadata URL that does not answer is refused on save, with the reason; nothing is saved.
    let res = reqwest::Client::new()
        .post(format!("{sts}/admin/api/v1/providers"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"source": format!("id = \"nowhere\"\ntype = \"saml\"\nidp_metadata_url = \"http://127.0.0.1:{}/metadata.xml\"\n\n[roles]\nclaim = \"groups\"\n", free_port())}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("could not be fetched"),
        "{body}"
    );
    let source = format!(
        "id = \"console-saml\"\ntype = \"saml\"\ndisplay_name = \"Console SAML\"\nidp_metadata_url = \"{}\"\n\n[roles]\nclaim = \"groups\"\nrules = [ {{ match = \"sts-admins\", roles = [\"admin\"] }} ]\ndefault_roles = [\"user\"]\n",
        idp.metadata_url
    );
    let res = reqwest::Client::new()
        .post(format!("{sts}/admin/api/v1/providers"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"source": source}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let created: serde_json::Value = res.json().await.unwrap();
    assert_eq!(created["callback_url"], format!("{sts}/sso/sso-saml/acs"));
    assert_eq!(
        created["sp_metadata_url"],
        format!("{sts}/sso/sso-saml/console-saml/metadata")
    );
    let md = reqwest::get(created["sp_metadata_url"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(md.status(), 200);

    let client = browser();
    let res = client
        .get(format!("{sts}/sso/login?provider=console-saml"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let authn_url = res.headers()["location"].to_str().unwrap().to_string();
    let v = run_login_py(&authn_url, "alice", "alicepw").await;
    assert_eq!(v["ok"], true, "{v}");
    let res = client
        .post(v["acs_url"].as_str().unwrap())
        .form(&[
            ("SAMLResponse", v["saml_response"].as_str().unwrap()),
            ("RelayState", v["relay_state"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let me = client
        .get(format!("{sts}/sso/me"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        me.contains("<li>admin</li>") && me.contains("console-saml"),
        "{me}"
    );
    // The provider's last login is visible through the API.
    let providers: serde_json::Value = reqwest::Client::new()
        .get(format!("{sts}/admin/api/v1/providers"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(providers["items"][0]["last_outcome"], "ok");
}

/// Put the first `saml:{local}` element of the assertion in `xml` in another namespace (open and close tag).
fn foreign(xml: &str, local: &str, ns_decl: &str, prefix: &str) -> String {
    // Inside the (signed) assertion: the Response's own Issuer and Status are not signed here.
    let base = xml.find("<saml:Assertion").unwrap();
    let open = format!("<saml:{local}");
    let at = base
        + [" ", ">", "/"]
            .iter()
            .filter_map(|end| xml[base..].find(&format!("{open}{end}")))
            .min()
            .unwrap_or_else(|| panic!("no {open} in {xml}"));
    let tag = if prefix.is_empty() {
        local.to_string()
    } else {
        format!("{prefix}:{local}")
    };
    let mut out = format!("{}<{tag} {ns_decl}{}", &xml[..at], &xml[at + open.len()..]);
    let close = format!("</saml:{local}>");
    if let Some(c) = out[at..].find(&close) {
        let c = at + c;
        out = format!("{}</{tag}>{}", &out[..c], &out[c + close.len()..]);
    }
    out
}

/// Class: every value taken from an assertion is read by namespace. An IdP-signed assertion (re-signed
/// with the IdP's own key after the edit) in which one SAML element carries a SAML local name in another
/// namespace (default-namespace trick, another prefix, no namespace at all) is refused with
/// `saml_namespace`, whichever element it is; the unchanged re-signed assertion logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml_elements_outside_their_namespace_are_refused_even_when_signed() {
    let s = setup(&[], "").await;
    type Edit = Box<dyn Fn(&str) -> String>;
    let other_default = r#"xmlns="urn:other""#;
    let other_prefix = r#"xmlns:o="urn:other""#;
    let protocol_prefix = r#"xmlns:o="urn:oasis:names:tc:SAML:2.0:protocol""#;
    let mut cases: Vec<(&str, Edit)> = vec![
        (
            "control: re-signed unchanged",
            Box::new(|x: &str| x.to_string()),
        ),
        (
            "the only NameID in a foreign default namespace, value changed",
            Box::new(move |x: &str| {
                let f = foreign(x, "NameID", other_default, "");
                let a = f.find("<NameID ").unwrap();
                let v = a + f[a..].find('>').unwrap() + 1;
                let e = a + f[a..].find("</NameID>").unwrap();
                format!("{}admin{}", &f[..v], &f[e..])
            }),
        ),
        (
            "a foreign NameID before the real one",
            Box::new(|x: &str| {
                let at = x.find("<saml:NameID").unwrap();
                format!(
                    r#"{}<x:NameID xmlns:x="urn:other">admin</x:NameID>{}"#,
                    &x[..at],
                    &x[at..]
                )
            }),
        ),
    ];
    for local in [
        "NameID",
        "Attribute",
        "AttributeValue",
        "Audience",
        "AudienceRestriction",
        "Conditions",
        "SubjectConfirmationData",
        "Subject",
        "Issuer",
        "AttributeStatement",
    ] {
        for (how, decl, prefix) in [
            ("another prefix", other_prefix, "o"),
            ("the protocol namespace", protocol_prefix, "o"),
            ("a foreign default namespace", other_default, ""),
        ] {
            let name: &'static str = Box::leak(format!("{local} in {how}").into_boxed_str());
            cases.push((
                name,
                Box::new(move |x: &str| foreign(x, local, decl, prefix)),
            ));
        }
    }
    let mut logged_in = 0;
    for (what, edit) in cases {
        let (client, v) = idp_login(&s.app, "alice", "alicepw").await;
        assert_eq!(v["ok"], true, "{v}");
        let edited = edit(&decode(v["saml_response"].as_str().unwrap()));
        let resigned = resign_with_idp_key(&s._idp, &edited);
        let (status, code, message) = post_acs_msg(
            &client,
            v["acs_url"].as_str().unwrap(),
            &encode(&resigned),
            v["relay_state"].as_str().unwrap(),
        )
        .await;
        if what.starts_with("control") {
            assert_eq!(status, 303, "{what}: {code} {message}");
            logged_in += 1;
        } else {
            assert_eq!(
                (status, code.as_str()),
                (401, "saml_namespace"),
                "{what}: {message}"
            );
        }
    }
    assert_eq!(s.app.session_count().await, logged_in);
}
