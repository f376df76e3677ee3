//! The layer checker behind `tests/tests/architecture.rs`: it reads a crate's sources, collects which
//! top-level module refers to which (`use crate::…`, `crate::…` paths in code, and `super::` paths that
//! climb to the crate root), and reports every reference from a module to a layer above its own and every
//! circle of modules. Comments and string literals are skipped, so documentation may name any module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A reference from one top-level module to another, with the first file that makes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub file: String,
}

/// What is wrong with the imports.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Violation {
    /// `from` (in a lower layer) refers to `to` (in a higher one).
    Upward {
        from: String,
        to: String,
        file: String,
    },
    /// These modules refer to each other in a circle (a strongly connected component), one edge named.
    Circle { modules: Vec<String> },
    /// A module that the layer list does not place.
    Unplaced { module: String },
    /// `module` uses the external crate `krate`, which only some layers may use (e.g. actix: only the
    /// web layer and the composition root).
    Dependency {
        module: String,
        krate: String,
        file: String,
    },
}

impl Violation {
    /// A short stable key (`upward a -> b`, `circle a b c`, `unplaced a`) for lists of known violations.
    pub fn key(&self) -> String {
        match self {
            Violation::Upward { from, to, .. } => format!("upward {from} -> {to}"),
            Violation::Circle { modules } => format!("circle {}", modules.join(" ")),
            Violation::Unplaced { module } => format!("unplaced {module}"),
            Violation::Dependency { module, krate, .. } => {
                format!("dependency {module} -> {krate}")
            }
        }
    }
}

/// Reads every `.rs` file below `src` as (path relative to `src`, text).
pub fn read_sources(src: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("source directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src).expect("below src");
                let rel = rel.to_string_lossy().replace('\\', "/");
                out.push((rel, std::fs::read_to_string(&path).expect("source file")));
            }
        }
    }
    out.sort();
    out
}

/// The top-level module a file belongs to (`None` for the crate root files).
fn module_of(rel: &str) -> Option<String> {
    let first = rel.split('/').next()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// How many `super::` a path in this file needs to reach the crate root: the depth of its module.
fn depth_of(rel: &str) -> usize {
    let parts: Vec<&str> = rel.split('/').collect();
    let last = parts.last().copied().unwrap_or("");
    let dirs = parts.len() - 1;
    if last == "mod.rs" || (dirs == 0 && matches!(last, "lib.rs" | "main.rs")) {
        dirs
    } else {
        dirs + 1
    }
}

/// The code of a Rust file with comments and the contents of string and char literals blanked out.
pub fn code_only(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !ident_char(b.get(i.wrapping_sub(1)).copied())
        {
            // Raw string r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('a', '\n', '\u{..}') or a lifetime ('a): only blank the literal.
            let close = if next == Some('\\') {
                (i + 2..b.len().min(i + 12)).find(|&k| b[k] == '\'')
            } else if b.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match close {
                Some(k) => {
                    out.push_str("' '");
                    i = k + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_char(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// The top-level modules a file's code refers to: `crate::m`, `use crate::{m, n::x}`, and `super::`
/// chains that reach the crate root.
pub fn references(rel: &str, text: &str) -> BTreeSet<String> {
    let code = code_only(text);
    let chars: Vec<char> = code.chars().collect();
    let depth = depth_of(rel);
    let mut found = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        if ident_char(i.checked_sub(1).map(|k| chars[k])) || !chars[i].is_alphabetic() {
            i += 1;
            continue;
        }
        let Some(word) = ident_at(&chars, i) else {
            i += 1;
            continue;
        };
        let mut j = i + word.len();
        // After `crate` or a chain of `super` that climbs to the crate root: the token after `::`.
        let reaches_root = match word.as_str() {
            "crate" => true,
            "super" => {
                let mut n = 1;
                while let Some(after) = path_sep(&chars, j)
                    && ident_at(&chars, after).as_deref() == Some("super")
                {
                    n += 1;
                    j = after + 5;
                }
                n >= depth && depth > 0
            }
            _ => false,
        };
        if reaches_root && let Some(k) = path_sep(&chars, j) {
            if chars.get(k) == Some(&'{') {
                group(&chars, k, &mut found);
            } else if let Some(name) = ident_at(&chars, k) {
                found.insert(name);
            }
        }
        i = j;
    }
    found
}

/// At `j`: optional whitespace, `::`, optional whitespace; the index after them.
fn path_sep(chars: &[char], j: usize) -> Option<usize> {
    let k = skip_ws(chars, j);
    (chars.get(k) == Some(&':') && chars.get(k + 1) == Some(&':')).then(|| skip_ws(chars, k + 2))
}

fn skip_ws(chars: &[char], mut i: usize) -> usize {
    while chars.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    i
}

fn ident_at(chars: &[char], i: usize) -> Option<String> {
    let mut j = i;
    while ident_char(chars.get(j).copied()) {
        j += 1;
    }
    (j > i).then(|| chars[i..j].iter().collect())
}

/// `{a, b::c, d::{e, f}}` at `open`: the first identifier of each top-level item.
fn group(chars: &[char], open: usize, found: &mut BTreeSet<String>) {
    let mut depth = 0;
    let mut expect_item = true;
    let mut i = open;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '{' => {
                depth += 1;
                if depth == 1 {
                    expect_item = true;
                }
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return;
                }
            }
            ',' if depth == 1 => expect_item = true,
            c if depth == 1 && expect_item && (c.is_alphabetic() || c == '_') => {
                if let Some(name) = ident_at(chars, i) {
                    i += name.len();
                    if name != "self" {
                        found.insert(name);
                    }
                    expect_item = false;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
}

/// Every edge between top-level modules of the crate whose files are `sources`.
pub fn edges(sources: &[(String, String)]) -> Vec<Edge> {
    let modules: BTreeSet<String> = sources
        .iter()
        .filter_map(|(rel, _)| module_of(rel))
        .collect();
    let mut out: BTreeMap<(String, String), String> = BTreeMap::new();
    for (rel, text) in sources {
        let Some(from) = module_of(rel) else {
            continue;
        };
        for to in references(rel, text) {
            if to != from && modules.contains(&to) {
                out.entry((from.clone(), to)).or_insert_with(|| rel.clone());
            }
        }
    }
    out.into_iter()
        .map(|((from, to), file)| Edge { from, to, file })
        .collect()
}

/// Whether the code of a file names the external crate `krate` (as `krate::` or `use krate`).
fn uses_crate(text: &str, krate: &str) -> bool {
    let code = code_only(text);
    code.match_indices(krate).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = &code[i + krate.len()..];
        !ident_char(before)
            && (after.starts_with("::") || after.starts_with(';') || after.starts_with(" as "))
    })
}

/// Checks `sources` against `layers` (top first; each layer a list of top-level modules) and `crates`
/// (an external crate and the layers that may use it).
pub fn check(
    sources: &[(String, String)],
    layers: &[(&str, &[&str])],
    crates: &[(&str, &[&str])],
) -> Vec<Violation> {
    let level: BTreeMap<&str, usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(i, (_, mods))| mods.iter().map(move |m| (*m, i)))
        .collect();
    let mut out = BTreeSet::new();
    let modules: BTreeSet<String> = sources
        .iter()
        .filter_map(|(rel, _)| module_of(rel))
        .collect();
    for m in &modules {
        if !level.contains_key(m.as_str()) {
            out.insert(Violation::Unplaced { module: m.clone() });
        }
    }
    let all = edges(sources);
    for e in &all {
        if let (Some(a), Some(b)) = (level.get(e.from.as_str()), level.get(e.to.as_str()))
            && b < a
        {
            out.insert(Violation::Upward {
                from: e.from.clone(),
                to: e.to.clone(),
                file: e.file.clone(),
            });
        }
    }
    for scc in circles(&all) {
        out.insert(Violation::Circle { modules: scc });
    }
    let layer_of: BTreeMap<&str, &str> = layers
        .iter()
        .flat_map(|(name, mods)| mods.iter().map(move |m| (*m, *name)))
        .collect();
    let mut seen = BTreeSet::new();
    for (rel, text) in sources {
        let Some(module) = module_of(rel) else {
            continue;
        };
        let Some(layer) = layer_of.get(module.as_str()) else {
            continue;
        };
        for (krate, allowed) in crates {
            if !allowed.contains(layer)
                && uses_crate(text, krate)
                && seen.insert((module.clone(), *krate))
            {
                out.insert(Violation::Dependency {
                    module: module.clone(),
                    krate: krate.to_string(),
                    file: rel.clone(),
                });
            }
        }
    }
    out.into_iter().collect()
}

/// Strongly connected components with more than one module (Tarjan), each sorted.
fn circles(edges: &[Edge]) -> Vec<Vec<String>> {
    let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for e in edges {
        graph.entry(&e.from).or_default().push(&e.to);
        graph.entry(&e.to).or_default();
    }
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(v: &'a str, g: &BTreeMap<&'a str, Vec<&'a str>>, s: &mut State<'a>) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for &w in &g[v] {
            if !s.index.contains_key(w) {
                visit(w, g, s);
                let lw = s.low[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(lw));
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    let keys: Vec<&str> = graph.keys().copied().collect();
    for v in keys {
        if !s.index.contains_key(v) {
            visit(v, &graph, &mut s);
        }
    }
    s.out.sort();
    s.out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYERS: &[(&str, &[&str])] = &[
        ("app", &["startup"]),
        ("web", &["http"]),
        ("domain", &["sso", "oauth"]),
        ("store", &["store"]),
        ("leaves", &["clock"]),
    ];

    const CRATES: &[(&str, &[&str])] = &[("actix_web", &["app", "web"])];

    fn src(files: &[(&str, &str)]) -> Vec<(String, String)> {
        files
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn a_deliberately_wrong_import_is_reported() {
        let files = src(&[
            (
                "startup.rs",
                "use crate::http::AppState;\nuse crate::{store, clock::Clock};",
            ),
            (
                "http/mod.rs",
                "use crate::sso::flow;\nfn f() { crate::store::x(); }",
            ),
            ("sso/mod.rs", "pub mod flow;"),
            (
                "sso/flow.rs",
                "use super::super::clock;\nuse super::session;",
            ),
            (
                "oauth/mod.rs",
                "// crate::http is only named in a comment\nconst S: &str = \"crate::startup\";",
            ),
            // The deliberately wrong one: the store reaches up to the web layer.
            ("store/mod.rs", "use crate::{clock, http::AppState};"),
            ("clock.rs", ""),
        ]);
        let v = check(&files, LAYERS, CRATES);
        let keys: Vec<String> = v.iter().map(Violation::key).collect();
        // (and with it a circle: the web layer uses the store)
        assert_eq!(
            keys,
            vec![
                "upward store -> http".to_string(),
                "circle http store".to_string()
            ],
            "{v:?}"
        );
        let Violation::Upward { file, .. } = &v[0] else {
            unreachable!()
        };
        assert_eq!(file, "store/mod.rs");
    }

    #[test]
    fn circles_and_unplaced_modules_are_reported() {
        let files = src(&[
            ("sso/mod.rs", "use crate::oauth::x;"),
            ("oauth/mod.rs", "fn f() { let _ = crate :: sso :: y(); }"),
            ("extra.rs", "use crate::clock;"),
            ("clock.rs", ""),
        ]);
        let keys: Vec<String> = check(&files, LAYERS, CRATES)
            .iter()
            .map(Violation::key)
            .collect();
        assert_eq!(
            keys,
            vec!["circle oauth sso".to_string(), "unplaced extra".to_string()]
        );
    }

    #[test]
    fn a_restricted_crate_outside_its_layers_is_reported() {
        let files = src(&[
            ("http/mod.rs", "use actix_web::web;"),
            ("startup.rs", "fn f() { actix_web::App::new(); }"),
            // Named only in a comment and a string, and as part of another name: not a use.
            (
                "store/mod.rs",
                "// actix_web::x\nconst S: &str = \"actix_web::y\"; use my_actix_web::z;",
            ),
            // The deliberate one: the domain layer reaches for actix.
            ("sso/mod.rs", "use actix_web::HttpRequest;"),
            ("clock.rs", ""),
        ]);
        let keys: Vec<String> = check(&files, LAYERS, CRATES)
            .iter()
            .map(Violation::key)
            .collect();
        assert_eq!(keys, vec!["dependency sso -> actix_web".to_string()]);
    }

    #[test]
    fn super_paths_within_a_module_are_not_references() {
        let r = references(
            "oauth/token.rs",
            "use super::clients::Client; use super::super::store::x;",
        );
        assert_eq!(r.into_iter().collect::<Vec<_>>(), vec!["store".to_string()]);
        let r = references("oauth/mod.rs", "use super::store; use self::x;");
        assert_eq!(r.into_iter().collect::<Vec<_>>(), vec!["store".to_string()]);
        let r = references("keys/tests.rs", "use super::*; use super::super::clock;");
        assert_eq!(r.into_iter().collect::<Vec<_>>(), vec!["clock".to_string()]);
    }

    #[test]
    fn strings_chars_lifetimes_and_comments_are_skipped() {
        let text = "fn f<'a>(x: &'a str) -> char { let _ = r#\"crate::http\"#; /* crate::sso /* nested */ */ '\\'' }\nuse crate::store;";
        let r = references("oauth/mod.rs", text);
        assert_eq!(r.into_iter().collect::<Vec<_>>(), vec!["store".to_string()]);
    }
}
