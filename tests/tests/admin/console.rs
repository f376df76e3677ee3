//! The console: sign-in (argon2id, rate limit), sessions and CSRF on every state-changing route,
//! escaping in every page, signing credentials uploaded and regenerated.

use super::*;

#[tokio::test]
async fn sign_in_needs_the_right_password_and_is_rate_limited() {
    let app = spawn_app().await;
    create_user(&app, "root").await;
    create_user(&app, "ops").await;
    // The CLI refuses a short password and a second create.
    let out = app
        .cli(
            &[
                "admin",
                "create",
                "--username",
                "x",
                "--password-env",
                "ADMIN_PW",
            ],
            &[("ADMIN_PW", "short")],
        )
        .await;
    assert_ne!(out.status, 0);
    assert!(out.stderr.contains("12 characters"), "{}", out.stderr);
    let out = app
        .cli(
            &[
                "admin",
                "create",
                "--username",
                "root",
                "--password-env",
                "ADMIN_PW",
            ],
            &[("ADMIN_PW", PASSWORD)],
        )
        .await;
    assert_ne!(out.status, 0, "exists already");

    // Not signed in: every page sends to the sign-in page.
    let res = browser()
        .get(format!("{}/admin/keys", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/admin/login");

    // Wrong password, unknown user: the same answer.
    let (_, st, body) = sign_in_as(&app, "root", "not the password at all").await;
    assert_eq!(st, 401);
    assert!(body.contains("wrong user name or password"));
    let (_, st, body2) = sign_in_as(&app, "nobody", "not the password at all").await;
    assert_eq!(st, 401);
    assert!(body2.contains("wrong user name or password"));

    // The sign-in form's own CSRF token (double submit) is required.
    let res = browser()
        .post(format!("{}/admin/login", app.address))
        .form(&[
            ("username", "root"),
            ("password", PASSWORD),
            ("csrf", "forged"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    // Five failures lock the account for a while, even with the right password.
    for _ in 0..4 {
        let (_, st, _) = sign_in_as(&app, "ops", "wrong password, again").await;
        assert_eq!(st, 401);
    }
    let (_, st, _) = sign_in_as(&app, "ops", "wrong password, again").await;
    assert_eq!(st, 401);
    let (_, st, body) = sign_in_as(&app, "ops", PASSWORD).await;
    assert_eq!(st, 429, "{body}");
    assert!(body.contains("too many failed sign-ins"), "{body}");

    // The other account still signs in; the cookie is HttpOnly, SameSite=Strict, scoped to /admin.
    let client = browser();
    let page = client
        .get(format!("{}/admin/login", app.address))
        .send()
        .await
        .unwrap();
    let csrf = csrf_of(&page.text().await.unwrap());
    let res = client
        .post(format!("{}/admin/login", app.address))
        .form(&[
            ("username", "ROOT"),
            ("password", PASSWORD),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("sts_admin="))
        .expect("session cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    let dash = client
        .get(format!("{}/admin", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(dash.status(), 200);
    let csp = dash.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(dash.headers()["referrer-policy"], "no-referrer");
    let html = dash.text().await.unwrap();
    let kid = app.jwks_kids().await[0].clone();
    assert!(html.contains(&kid), "the dashboard shows the active kid");

    // Signing out ends the session.
    let csrf = csrf_of(&html);
    let (st, _) = post_form(
        &client,
        format!("{}/admin/logout", app.address),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(st, 303);
    let res = client
        .get(format!("{}/admin", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
}

#[tokio::test]
async fn every_state_changing_route_needs_a_session_and_its_csrf_token() {
    let app = spawn_app().await;
    create_user(&app, "root").await;
    let (client, csrf) = signed_in_root(&app).await;
    // Something to act on: an application and an API token.
    let (st, html) = post_form(
        &client,
        format!("{}/admin/applications", app.address),
        &[
            ("csrf", &csrf),
            ("id", "app-1"),
            ("type", "confidential"),
            ("redirect_uris", "https://a.example.com/cb"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{html}");
    let token = named_api_token(&app, &client, &csrf, "t1").await;
    let tokens_page = client
        .get(format!("{}/admin/tokens", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token_id = tokens_page
        .split("/admin/tokens/")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap()
        .to_string();

    let kids = app.jwks_kids().await;
    let audit_before = audit_total(&app, &token).await;
    let anonymous = browser();
    for pattern in admin_ui::STATE_CHANGING_PAGES {
        let path = pattern
            .replace("{sid}", "some-session")
            .replace("{provider}", "corp")
            .replace(
                "{id}",
                if pattern.contains("tokens") {
                    &token_id
                } else {
                    "app-1"
                },
            );
        let url = format!("{}{path}", app.address);
        // No session at all.
        let res = anonymous
            .post(&url)
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{path} without a session");
        // A session, but no or a wrong token.
        let res = client.post(&url).form(&[("x", "1")]).send().await.unwrap();
        assert_eq!(res.status(), 403, "{path} without a CSRF token");
        let res = client
            .post(&url)
            .form(&[("csrf", "forged")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{path} with a wrong CSRF token");
    }
    // Multipart upload without the token.
    let form = reqwest::multipart::Form::new().text("password", "x").part(
        "keystore",
        reqwest::multipart::Part::bytes(vec![1, 2, 3]).file_name("k.p12"),
    );
    let res = client
        .post(format!("{}/admin/keys/import", app.address))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // Nothing changed: same keys, the token still works, the application is still enabled.
    assert_eq!(app.jwks_kids().await, kids);
    assert_eq!(
        audit_total(&app, &token).await,
        audit_before,
        "no change was audited"
    );
    let apps = api_get(&app, &token, "/applications").await;
    assert_eq!(apps["items"][0]["enabled"], true);
    // Still signed in afterwards (the refused logout did not end the session).
    assert_eq!(
        client
            .get(format!("{}/admin", app.address))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn names_are_escaped_in_every_page() {
    let app = spawn_app().await;
    create_user(&app, "root").await;
    let (client, csrf) = signed_in_root(&app).await;
    let xss = "<script>alert(1)</script>";
    let (st, html) = post_form(
        &client,
        format!("{}/admin/applications", app.address),
        &[
            ("csrf", &csrf),
            ("id", "xss"),
            ("name", xss),
            ("type", "confidential"),
            (
                "redirect_uris",
                "https://a.example.com/cb?x=\"><img src=x onerror=alert(1)>",
            ),
        ],
    )
    .await;
    // The redirect URI is refused (whitespace/quotes are fine for URL parsing? then it is stored escaped).
    let page = client
        .get(format!("{}/admin/applications", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains(xss), "raw payload in the page");
    assert!(!page.contains("<img src=x"), "raw payload in the page");
    if st == 200 {
        assert!(
            page.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{page}"
        );
    } else {
        assert!(!html.contains("<img src=x"), "{html}");
    }
    let (st, html) = post_form(
        &client,
        format!("{}/admin/tokens", app.address),
        &[("csrf", &csrf), ("name", "<b onmouseover=alert(1)>t</b>")],
    )
    .await;
    assert_eq!(st, 200);
    assert!(!html.contains("<b onmouseover"), "{html}");
    let page = client
        .get(format!("{}/admin/tokens", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("<b onmouseover") && page.contains("&#60;b onmouseover"),
        "{page}"
    );
    let audit = client
        .get(format!("{}/admin/audit", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !audit.contains("<b onmouseover") && !audit.contains(xss),
        "{audit}"
    );
}

#[tokio::test]
async fn keystore_upload_and_regenerate_in_the_console() {
    let app = spawn_app().await;
    create_user(&app, "root").await;
    let (client, csrf) = signed_in_root(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sts_tests::pkcs12_fixture(d, "imported", "keystore-pw");
    let p12 = std::fs::read(d.join("ks.p12")).unwrap();
    let upload = |password: &str| {
        reqwest::multipart::Form::new()
            .text("csrf", csrf.clone())
            .text("password", password.to_string())
            .part(
                "keystore",
                reqwest::multipart::Part::bytes(p12.clone()).file_name("ks.p12"),
            )
    };
    let before = app.jwks_kids().await;
    let res = client
        .post(format!("{}/admin/keys/import", app.address))
        .multipart(upload("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let html = res.text().await.unwrap();
    assert!(html.contains("password"), "{html}");
    assert_eq!(app.jwks_kids().await, before);
    let res = client
        .post(format!("{}/admin/keys/import", app.address))
        .multipart(upload("keystore-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    let kid = html
        .split("the new active key is ")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap()
        .trim()
        .to_string();
    assert!(app.jwks_kids().await.contains(&kid), "{kid}");
    let page = client
        .get(format!("{}/admin/keys", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&kid) && page.contains("imported"));
    let (st, html) = post_form(
        &client,
        format!("{}/admin/keys/regenerate", app.address),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(st, 200);
    let new = html
        .split("the new active key is ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .unwrap()
        .trim()
        .to_string();
    let kids = app.jwks_kids().await;
    assert!(
        kids.contains(&new) && kids.contains(&kid),
        "the previous key stays published: {kids:?}"
    );
    // The SAML SP key and certificate, likewise: wrong password refused, right one shown by fingerprint.
    let page = client
        .get(format!("{}/admin/keys", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"no-saml-sp\""), "{page}");
    let res = client
        .post(format!("{}/admin/keys/saml-import", app.address))
        .multipart(upload("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = client
        .post(format!("{}/admin/keys/saml-import", app.address))
        .multipart(upload("keystore-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    let fp = html
        .split("the SAML SP certificate is now ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .unwrap()
        .to_string();
    assert_eq!(fp.len(), 64, "{html}");
    let page = client
        .get(format!("{}/admin/keys", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&fp) && page.contains("CN=imported"), "{page}");
}

/// One failed sign-in "from" `forwarded_for` (sent as `X-Forwarded-For`) under a new account name; the
/// status of the sign-in POST.
async fn failed_sign_in_via(app: &sts_tests::TestApp, account: &str, forwarded_for: &str) -> u16 {
    let client = browser();
    let page = client
        .get(format!("{}/admin/login", app.address))
        .header("X-Forwarded-For", forwarded_for)
        .send()
        .await
        .unwrap();
    let csrf = csrf_of(&page.text().await.unwrap());
    client
        .post(format!("{}/admin/login", app.address))
        .header("X-Forwarded-For", forwarded_for)
        .form(&[
            ("username", account),
            ("password", "not the password at all"),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Behind a load balancer the per-address sign-in limit counts the client's address, and only a trusted
/// proxy can name it: with `server.trusted_proxies` covering the peer (127.0.0.1 here), `X-Forwarded-For`
/// names the client, so one client's 20 failures do not lock out another; without the setting the header
/// is ignored, every attempt counts for the peer, and a forged header cannot escape the limit.
#[tokio::test]
async fn the_sign_in_limit_counts_the_address_a_trusted_proxy_names_and_only_that() {
    for trusted in [true, false] {
        let app = if trusted {
            sts_tests::spawn_app_with(
                sts_tests::AppOptions::default()
                    .config("[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n"),
            )
            .await
        } else {
            spawn_app().await
        };
        // 20 failures from one address (a new name each: the per-name limit is not what is tested).
        for i in 0..20 {
            let st = failed_sign_in_via(&app, &format!("user{i}"), "198.51.100.1").await;
            assert_ne!(st, 429, "attempt {i} (trusted proxy: {trusted})");
        }
        assert_eq!(
            failed_sign_in_via(&app, "user20", "198.51.100.1").await,
            429,
            "the 21st from the same address (trusted proxy: {trusted})"
        );
        let other = failed_sign_in_via(&app, "someone-else", "198.51.100.2").await;
        if trusted {
            assert_ne!(other, 429, "another client behind the trusted proxy");
        } else {
            assert_eq!(
                other, 429,
                "a forged X-Forwarded-For from an untrusted peer"
            );
        }
    }
}
