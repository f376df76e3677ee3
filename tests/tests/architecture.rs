//! Class: imports that run the wrong way. The server crate is layered (top first); a module may use its
//! own layer and the layers below it, never one above, and no modules may use each other in a circle.
//! `LAYERS` is the one place the layers are listed (docs/architecture.md draws it). The checker is
//! `sts_tests::architecture` (its unit tests include a deliberately wrong import).
//!
//! `KNOWN` lists the violations that remain while the restructuring of issue 12 is under way: the test
//! fails on any violation not listed (nothing new may be added) and on a listed one that is gone (the list
//! only shrinks). The aim is an empty list.

use std::path::Path;

use sts_tests::architecture::{Violation, check, read_sources};

/// The layers of `sts/src`, top first.
pub const LAYERS: &[(&str, &[&str])] = &[
    // Composition root: start-up, the command line, the admin backend, export/import.
    ("app", &["cli", "startup", "declared", "admin", "export"]),
    // The only modules that see actix: routes, extractors, handlers, errors to HTTP.
    ("web", &["http"]),
    // Login flow and sessions; OAuth grants, authorization, client authentication.
    ("domain", &["sso", "oauth"]),
    // Identity providers, token issuing, role mapping.
    ("services", &["providers", "tokens", "roles"]),
    ("keys", &["keys"]),
    ("store", &["store"]),
    ("config", &["config"]),
    ("leaves", &["telemetry", "text", "clock"]),
];

/// Violations still to be removed (issue 12). Keys as `Violation::key` writes them.
const KNOWN: &[&str] = &[
    // The handlers in `oauth` and `sso` take `http::AppState`, and `http` mounts their routes; the
    // handlers are to move to the web layer, over domain services that do not see actix.
    "upward oauth -> http",
    "upward sso -> http",
    "circle http oauth sso",
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
    let found = check(&sources, LAYERS);
    let keys: Vec<String> = found.iter().map(Violation::key).collect();
    let new: Vec<&Violation> = found
        .iter()
        .filter(|v| !KNOWN.contains(&v.key().as_str()))
        .collect();
    let gone: Vec<&&str> = KNOWN
        .iter()
        .filter(|k| !keys.iter().any(|f| f == *k))
        .collect();
    assert!(
        new.is_empty(),
        "imports against the layers (move the code to the right layer, or pass what it needs down):\n{}",
        new.iter()
            .map(|v| format!("  {v:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(gone.is_empty(), "fixed, remove from KNOWN: {gone:?}");
}
