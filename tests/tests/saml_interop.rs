//! SAML 2.0 login against a second, independent IdP implementation: npm `samlify` in IdP mode
//! (tests/peers/node/saml-idp2.mjs, started through `sts_tests::saml_idp2`), next to SimpleSAMLphp
//! (tests/tests/saml.rs). samlify writes other XML than SimpleSAMLphp: its own prefixes and signature
//! placement, millisecond timestamps, xml-encryption's EncryptedKey inside EncryptedData's (unprefixed)
//! ds:KeyInfo, AES-GCM; the peer can also move the EncryptedKey beside the EncryptedData (ds:RetrievalMethod)
//! and switch to saml2:/saml2p: prefixes. Each test logs alice (or bob) in through the real STS and checks the
//! session exactly like the SimpleSAMLphp tests do.

use std::net::TcpListener;

use sts_tests::saml_idp::{
    bootstrap_sp_metadata, decode, idp_login_via, post_acs_msg, post_verdict_msg,
};
use sts_tests::saml_idp2::{Idp2, start_idp2};
use sts_tests::verifiers::pyjwt;
use sts_tests::{AppOptions, TestApp, spawn_app_on};

/// The provider id of the samlify IdP in the STS configuration.
const PROVIDER: &str = "samlify";

struct Setup {
    app: TestApp,
    idp: Idp2,
}

/// STS + samlify IdP registered with the bootstrap SP metadata (entity ID and ACS only: no encryption key).
async fn setup(idp_flags: &[&str]) -> Setup {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sts = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let idp = start_idp2(&bootstrap_sp_metadata(&sts), idp_flags).await;
    let app = spawn_sts(listener, &idp, None).await;
    Setup { app, idp }
}

/// The IdP is registered from the STS's own metadata (signing and encryption certificates): the STS runs
/// once to make its SP key and publish the metadata, then restarts (same database, same address) against
/// a samlify IdP started with `flags` for that metadata.
async fn registered_from_our_metadata(flags: &[&str]) -> Setup {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sts_port = listener.local_addr().unwrap().port();
    let sts = format!("http://127.0.0.1:{sts_port}");
    let idp = start_idp2(&bootstrap_sp_metadata(&sts), &[]).await;
    let app = spawn_sts(listener, &idp, None).await;
    let our_metadata = reqwest::get(format!("{sts}/sso/sso-saml/metadata"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        our_metadata.contains("use=\"encryption\""),
        "{our_metadata}"
    );
    let dir = app.stop().await;
    drop(idp);
    let idp = start_idp2(&our_metadata, flags).await;
    let listener = TcpListener::bind(("127.0.0.1", sts_port)).unwrap();
    let app = spawn_sts(listener, &idp, Some(dir)).await;
    Setup { app, idp }
}

/// The STS with one SAML provider (`samlify`) for `idp`, on `listener` (and on `dir` when given: a restart).
/// Same roles as the SimpleSAMLphp tests: sts-admins -> admin, staff -> employee, everyone user.
async fn spawn_sts(listener: TcpListener, idp: &Idp2, dir: Option<tempfile::TempDir>) -> TestApp {
    let idp_xml = reqwest::get(&idp.metadata_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!idp_xml.contains("\'\'\'"));
    let toml = format!(
        r#"
[[providers]]
id = "{PROVIDER}"
type = "saml"
display_name = "samlify"
idp_metadata_xml = '''{idp_xml}'''

[providers.roles]
claim = "groups"
default_roles = ["user"]
rules = [ {{ match = "sts-admins", roles = ["admin"] }}, {{ match = "staff", roles = ["employee"] }} ]
"#,
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
    idp_login_via(app, PROVIDER, user, password).await
}

/// The STS's /sso/me page for `client`'s session.
async fn me(app: &TestApp, client: &reqwest::Client) -> String {
    let res = client
        .get(format!("{}/sso/me", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "/sso/me");
    res.text().await.unwrap()
}

/// Log alice in with the IdP in `s`, post the response, and check she is signed in with her subject, mail and
/// roles (as the SimpleSAMLphp login test does). Returns the decoded SAMLResponse XML for shape checks.
async fn alice_signs_in(s: &Setup) -> String {
    let app = &s.app;
    let (client, v) = idp_login(app, "alice", "alicepw").await;
    assert_eq!(v["ok"], true, "login at samlify: {v}\n{}", s.idp.log());
    assert_eq!(
        v["acs_url"].as_str().unwrap(),
        format!("{}/sso/sso-saml/acs", app.address)
    );
    let xml = decode(v["saml_response"].as_str().unwrap());
    let (status, code, message) = post_verdict_msg(&client, &v).await;
    assert_eq!(
        status, 303,
        "ACS refused samlify's response: {code}: {message}\n{xml}"
    );
    let html = me(app, &client).await;
    assert!(html.contains("<dd id=\"subject\">alice</dd>"), "{html}");
    assert!(
        html.contains("<dd id=\"email\">alice@example.com</dd>"),
        "{html}"
    );
    assert!(
        html.contains("<li>employee</li><li>admin</li><li>user</li>"),
        "{html}"
    );
    assert_eq!(app.session_count().await, 1);
    xml
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_idp_login_with_signed_assertion_ends_on_me_with_roles() {
    let s = setup(&[]).await;
    let app = &s.app;
    let (client, v) = idp_login(app, "alice", "alicepw").await;
    assert_eq!(v["ok"], true, "{v}\n{}", s.idp.log());
    let acs = v["acs_url"].as_str().unwrap().to_string();
    assert_eq!(acs, format!("{}/sso/sso-saml/acs", app.address));
    let xml = decode(v["saml_response"].as_str().unwrap());
    assert!(xml.starts_with("<samlp:Response"), "{xml}");
    let (status, code, message) = post_verdict_msg(&client, &v).await;
    assert_eq!(status, 303, "{code}: {message}\n{xml}");
    let html = me(app, &client).await;
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
    let (status, code, _) = post_acs_msg(
        &client,
        &acs,
        v["saml_response"].as_str().unwrap(),
        v["relay_state"].as_str().unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "state_unknown_or_used"));
    assert_eq!(app.session_count().await, 1);
}

/// Only the assertion is signed (samlify's signature right after the assertion's Issuer, none on the
/// Response); bob, who has no mapped group, gets the default role only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_idp_only_the_assertion_signed() {
    let s = setup(&[]).await;
    let app = &s.app;
    let (client, v) = idp_login(app, "bob", "bobpw").await;
    assert_eq!(v["ok"], true, "{v}\n{}", s.idp.log());
    let xml = decode(v["saml_response"].as_str().unwrap());
    assert_eq!(signatures(&xml), 1, "{xml}");
    let assertion_at = xml.find("<saml:Assertion").expect("a plaintext assertion");
    assert!(xml.find("<ds:Signature ").unwrap() > assertion_at, "{xml}");
    let (status, code, message) = post_verdict_msg(&client, &v).await;
    assert_eq!(status, 303, "{code}: {message}\n{xml}");
    let html = me(app, &client).await;
    assert!(html.contains("<dd id=\"subject\">bob</dd>"), "{html}");
    assert!(
        html.contains("<dd id=\"email\">bob@example.com</dd>"),
        "{html}"
    );
    assert!(html.contains("<li>user</li>"), "{html}");
    assert!(
        !html.contains("<li>admin</li>") && !html.contains("<li>employee</li>"),
        "{html}"
    );
    assert_eq!(app.session_count().await, 1);
}

/// Only the Response is signed (`--sign-response --no-sign-assertion`): accepted, as with SimpleSAMLphp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_idp_only_the_response_signed() {
    let s = setup(&["--sign-response", "--no-sign-assertion"]).await;
    let xml = alice_signs_in(&s).await;
    assert_eq!(signatures(&xml), 1, "{xml}");
    assert!(
        xml.find("<ds:Signature ").unwrap() < xml.find("<saml:Assertion").unwrap(),
        "the one signature is the Response's: {xml}"
    );
}

/// Both the Response and the assertion signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_idp_response_and_assertion_signed() {
    let s = setup(&["--sign-response"]).await;
    let xml = alice_signs_in(&s).await;
    assert_eq!(signatures(&xml), 2, "{xml}");
}

/// Nothing signed: refused, and no session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_idp_unsigned_response_is_refused() {
    let s = setup(&["--no-sign-assertion"]).await;
    let (client, v) = idp_login(&s.app, "alice", "alicepw").await;
    assert_eq!(v["ok"], true, "{v}\n{}", s.idp.log());
    let xml = decode(v["saml_response"].as_str().unwrap());
    assert!(!xml.contains("Signature"), "{xml}");
    let (status, code, message) = post_verdict_msg(&client, &v).await;
    assert_eq!((status, code.as_str()), (401, "saml_invalid"), "{message}");
    assert_eq!(s.app.session_count().await, 0);
}

/// saml2:/saml2p: prefixes (and dsig: on the Response signature) instead of saml:/samlp:.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_idp_saml2_prefixes() {
    let s = setup(&["--prefixes", "saml2", "--sign-response"]).await;
    let xml = alice_signs_in(&s).await;
    assert!(xml.starts_with("<saml2p:Response"), "{xml}");
    assert!(
        xml.contains("<saml2:Assertion") && !xml.contains("<saml:") && !xml.contains("<samlp:"),
        "{xml}"
    );
    assert!(xml.contains("<dsig:Signature"), "{xml}");
}

/// samlify's native encryption: AES-256-GCM content, RSA-OAEP-MGF1P key transport, the EncryptedKey inside
/// EncryptedData's ds:KeyInfo with its own ds:KeyInfo/X509Data of our certificate; the Response signed
/// after encryption.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_idp_encrypted_assertion_key_inside_keyinfo_aes256gcm() {
    let s = registered_from_our_metadata(&["--encrypt-assertion", "--sign-response"]).await;
    let xml = alice_signs_in(&s).await;
    assert!(
        xml.contains("EncryptedAssertion") && !xml.contains("NameID"),
        "the IdP encrypted the assertion: {xml}"
    );
    assert!(
        xml.contains("Algorithm=\"http://www.w3.org/2009/xmlenc11#aes256-gcm\"")
            && xml.contains("Algorithm=\"http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p\""),
        "{xml}"
    );
    let data_key_info = xml.find("<KeyInfo").expect("EncryptedData's KeyInfo");
    let key = xml.find("EncryptedKey").unwrap();
    let data_cipher = xml.rfind("CipherData>").unwrap();
    assert!(
        data_key_info < key && key < data_cipher && !xml.contains("RetrievalMethod"),
        "the EncryptedKey is inside EncryptedData's KeyInfo: {xml}"
    );
}

/// AES-128-CBC content encryption (key inside KeyInfo, RSA-OAEP-MGF1P).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_idp_encrypted_assertion_key_inside_keyinfo_aes128cbc() {
    let s = registered_from_our_metadata(&[
        "--encrypt-assertion",
        "--sign-response",
        "--enc-alg",
        "aes128-cbc",
    ])
    .await;
    let xml = alice_signs_in(&s).await;
    assert!(
        xml.contains("Algorithm=\"http://www.w3.org/2001/04/xmlenc#aes128-cbc\"")
            && !xml.contains("NameID"),
        "{xml}"
    );
}

/// The EncryptedKey beside the EncryptedData inside EncryptedAssertion, found through the EncryptedData's
/// `<ds:RetrievalMethod Type="…xmlenc#EncryptedKey" URI="#…"/>` (the layout of Shibboleth and others).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_idp_encrypted_assertion_key_beside_with_retrieval_method() {
    let s = registered_from_our_metadata(&[
        "--encrypt-assertion",
        "--sign-response",
        "--key-layout",
        "beside",
    ])
    .await;
    let xml = alice_signs_in(&s).await;
    assert!(
        xml.contains("RetrievalMethod Type=\"http://www.w3.org/2001/04/xmlenc#EncryptedKey\"")
            && xml.find("</xenc:EncryptedData>").unwrap() < xml.find("EncryptedKey ").unwrap(),
        "the EncryptedKey is beside the EncryptedData: {xml}"
    );
}

/// saml2:/saml2p: prefixes with an encrypted assertion: xenc:/dsig: prefixes inside EncryptedAssertion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_idp_saml2_prefixes_encrypted_assertion() {
    let s = registered_from_our_metadata(&[
        "--prefixes",
        "saml2",
        "--encrypt-assertion",
        "--sign-response",
    ])
    .await;
    let xml = alice_signs_in(&s).await;
    assert!(
        xml.starts_with("<saml2p:Response")
            && xml.contains("<saml2:EncryptedAssertion")
            && xml.contains("<xenc:EncryptedKey")
            && xml.contains("<dsig:KeyInfo"),
        "{xml}"
    );
}

/// Encrypted, but only the (inner) assertion is signed: the Response itself is not, so it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_idp_encrypted_assertion_without_signed_response_is_refused() {
    let s = registered_from_our_metadata(&["--encrypt-assertion"]).await;
    let (client, v) = idp_login(&s.app, "alice", "alicepw").await;
    assert_eq!(v["ok"], true, "{v}\n{}", s.idp.log());
    let (status, code, message) = post_verdict_msg(&client, &v).await;
    assert_eq!((status, code.as_str()), (401, "saml_invalid"), "{message}");
    assert!(
        message.contains("signed Response") || message.contains("signed by the IdP"),
        "{message}"
    );
    assert_eq!(s.app.session_count().await, 0);
}

/// Number of ds:Signature elements (not SignatureValue/SignatureMethod).
fn signatures(xml: &str) -> usize {
    xml.matches("<ds:Signature ").count() + xml.matches("<ds:Signature>").count()
}

/// XML Encryption 1.1 key transport `xmlenc11#rsa-oaep` with an explicit MGF (mgf1sha1) and AES-256-GCM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_idp_encrypted_assertion_rsa_oaep_xmlenc11() {
    let s = registered_from_our_metadata(&[
        "--encrypt-assertion",
        "--sign-response",
        "--key-transport",
        "rsa-oaep",
        "--enc-alg",
        "aes256-gcm",
    ])
    .await;
    let xml = alice_signs_in(&s).await;
    assert!(
        xml.contains("Algorithm=\"http://www.w3.org/2009/xmlenc11#rsa-oaep\"")
            && xml.contains("mgf1sha1")
            && !xml.contains("NameID"),
        "{xml}"
    );
}
