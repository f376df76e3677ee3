//! Provider presets (admin-ui/src/presets.rs): each, with its `<placeholders>` filled in, validates like a
//! provider an admin saves in the console (the same code as `[[providers]]`), and the console's "Add a
//! provider" form starts from it.

use admin_ui::presets::PRESETS;

/// A preset's TOML with every `<placeholder>` filled: the text inside the brackets (a host, an id, a
/// DN), and a real CA certificate for the PEM placeholder.
fn filled(toml: &str) -> String {
    let der = rcgen::generate_simple_self_signed(vec!["ca.example".to_string()])
        .unwrap()
        .cert
        .der()
        .to_vec();
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let ca = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    );
    let mut out = String::new();
    let mut rest = toml;
    while let Some(start) = rest.find('<') {
        let end = start + rest[start..].find('>').expect("a closed placeholder");
        let inner = &rest[start + 1..end];
        out.push_str(&rest[..start]);
        if inner.contains("BEGIN CERTIFICATE") {
            // The PEM placeholder ends at the last '>' of its line.
            let line_end = start + rest[start..].find('\n').unwrap();
            out.push_str(ca.trim_end());
            rest = &rest[line_end..];
            continue;
        }
        out.push_str(inner);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn every_preset_validates_once_its_placeholders_are_filled() {
    assert!(PRESETS.len() >= 7);
    let mut kinds = std::collections::BTreeSet::new();
    for p in PRESETS {
        assert!(
            p.toml.contains('<'),
            "{}: nothing for the admin to complete",
            p.id
        );
        let toml = filled(p.toml);
        let kind = toml
            .lines()
            .find_map(|l| l.strip_prefix("type = \""))
            .unwrap()
            .trim_end_matches('"')
            .to_string();
        let secret = (kind != "saml").then_some("a-secret-of-some-length");
        let settings = sts::providers::managed::settings_from_source(&toml, secret)
            .unwrap_or_else(|e| panic!("preset {}: {e}\n{toml}", p.id));
        assert_eq!(settings.kind.type_name(), kind);
        assert!(!settings.roles.claim.is_empty());
        kinds.insert(kind);
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["ldap", "oauth2", "oidc", "saml"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_form_starts_from_a_preset() {
    let app = sts_tests::spawn_app().await;
    let (client, _) = sts_tests::admin::sign_in(&app).await;
    let page = client
        .get(format!("{}/admin/providers?preset=okta", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("issuer = &#34;https://&#60;your-org&#62;.okta.com/oauth2/default&#34;"),
        "{page}"
    );
    for p in PRESETS {
        assert!(page.contains(&format!("/admin/providers?preset={}", p.id)));
    }
    let page = client
        .get(format!(
            "{}/admin/providers?preset=%3Cscript%3E",
            app.address
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("<script>"), "an unknown preset starts empty");
}

#[test]
fn the_operator_guide_shows_every_preset_as_the_console_has_it() {
    let guide =
        std::fs::read_to_string(sts_tests::repo_root().join("docs/operator-guide.md")).unwrap();
    for p in PRESETS {
        assert!(
            guide.contains(&format!("```toml\n{}```", p.toml)),
            "docs/operator-guide.md, Presets, lacks or differs from preset {}",
            p.id
        );
    }
}
