//! Class: imports that run the wrong way. The server crate is layered (top first); a module may use its
//! own layer and the layers below it, never one above, and no modules may use each other in a circle.
//! `LAYERS` is the one place the layers are listed (docs/architecture.md draws it). The checker is
//! `sts_tests::architecture` (its unit tests include a deliberately wrong import). `CRATES` names the
//! external crates that only some layers may use: actix (HTTP) only in the web layer and the composition
//! root.

use std::path::Path;

use sts_tests::architecture::{check, read_sources};

/// The layers of `sts/src`, top first.
pub const LAYERS: &[(&str, &[&str])] = &[
    // Composition root: start-up, the command line, the admin backend, export/import.
    ("app", &["cli", "startup", "declared", "admin", "export"]),
    // The only modules that see actix (besides start-up): routes, handlers, cookies, pages, errors to HTTP.
    ("web", &["web"]),
    // Login and OpenID Provider rules without HTTP: tokens and their hashes, return_to, applications.
    ("domain", &["sso", "oauth"]),
    // Identity providers, token issuing, role mapping.
    ("services", &["providers", "tokens", "roles"]),
    ("keys", &["keys"]),
    ("store", &["store"]),
    ("config", &["config"]),
    (
        "leaves",
        &["telemetry", "measure", "text", "clock", "crypto", "jwe"],
    ),
];

/// External crates that only the named layers may use.
pub const CRATES: &[(&str, &[&str])] = &[
    ("actix_web", &["app", "web"]),
    ("actix_http", &["app", "web"]),
    ("actix_server", &["app", "web"]),
    ("actix_service", &["app", "web"]),
    ("actix_tls", &["app", "web"]),
    ("askama", &["web"]),
];

#[test]
fn the_server_crate_imports_only_downwards_and_without_circles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sts/src");
    let sources = read_sources(&src);
    assert!(
        sources.len() > 30,
        "read {} files from {}",
        sources.len(),
        src.display()
    );
    let found = check(&sources, LAYERS, CRATES);
    assert!(
        found.is_empty(),
        "imports against the layers (move the code to the right layer, or pass what it needs down):\n{}",
        found
            .iter()
            .map(|v| format!("  {v:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Files stay small enough to read: none under `sts/src` or `admin-ui/src` over 600 lines (split along
/// a seam: a resource, a step of the checks, the tests).
#[test]
fn no_server_source_file_is_over_600_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut long = Vec::new();
    for dir in ["sts/src", "admin-ui/src"] {
        for (rel, text) in read_sources(&root.join(dir)) {
            let lines = text.lines().count();
            if lines > 600 {
                long.push(format!("{dir}/{rel}: {lines} lines"));
            }
        }
    }
    assert!(
        long.is_empty(),
        "split these along a seam:\n{}",
        long.join("\n")
    );
}

/// Errors are types: no function under `sts/src` or `admin-ui/src` returns `Result<_, String>` (each
/// module has its own `thiserror` type, and the web layer maps them to HTTP once), and `anyhow` is used
/// only by the command line (`sts/src/cli/`, `sts/src/main.rs`). Comments and strings are not code.
#[test]
fn errors_are_typed_and_anyhow_is_only_in_the_cli() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = Vec::new();
    for dir in ["sts/src", "admin-ui/src"] {
        for (rel, text) in read_sources(&root.join(dir)) {
            let cli = dir == "sts/src" && (rel.starts_with("cli/") || rel == "main.rs");
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                let compact: String = code.chars().filter(|c| !c.is_whitespace()).collect();
                if compact.contains(",String>") && stringly_result(&compact) {
                    found.push(format!("{dir}/{rel}:{}: Result<_, String>", n + 1));
                }
                if !cli && compact.contains("anyhow") {
                    found.push(format!("{dir}/{rel}:{}: anyhow outside the CLI", n + 1));
                }
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// Whether a line (whitespace removed) has a `Result<…, String>` whose error type is `String`: the
/// `, String>` that closes the `Result<` at its own nesting depth.
fn stringly_result(compact: &str) -> bool {
    let mut rest = compact;
    while let Some(i) = rest.find("Result<") {
        let after = &rest[i + "Result<".len()..];
        let mut depth = 0usize;
        let mut last_comma = None;
        for (j, c) in after.char_indices() {
            match c {
                '<' | '(' => depth += 1,
                '>' | ')' if depth > 0 => depth -= 1,
                '>' => {
                    if let Some(k) = last_comma
                        && &after[k + 1..j] == "String"
                    {
                        return true;
                    }
                    break;
                }
                ',' if depth == 0 => last_comma = Some(j),
                _ => {}
            }
        }
        rest = after;
    }
    false
}

#[test]
fn the_error_rule_finds_a_string_error_and_not_a_string_value() {
    assert!(stringly_result("fnf()->Result<(),String>{"));
    assert!(stringly_result("->Result<HashMap<String,String>,String>"));
    assert!(!stringly_result(
        "->Result<HashMap<String,String>,FormRefused>"
    ));
    assert!(!stringly_result("->Result<String,Refused>"));
    assert!(!stringly_result("->Result<Option<(String,String)>,E>"));
}
