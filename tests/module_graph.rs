//! The crate's modules import one another without a circle: a reader can take any module in
//! with what it uses, never the other way round as well.
//!
//! How: every `.rs` file under `src/` is a module (`src/a/b.rs` and `src/a/b/mod.rs` are
//! `a::b`). A module uses another when its code (comments and test code left out) names a
//! path `crate::…` or `super::…` that resolves to it or into it; the owner of a path is the
//! longest module prefix. Uses between a module and its own ancestors or descendants are not
//! counted (a parent declares and re-exports its children). Then any strongly connected set
//! of more than one module is a circle, and the test names its modules and their uses.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The module path of a file relative to `src/`.
fn module_of(relative: &Path) -> String {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Test-only modules: their uses are the tests', not the product's.
fn is_test_module(module: &str) -> bool {
    module
        .split("::")
        .any(|p| p == "tests" || p.ends_with("_tests") || p.ends_with("_testing"))
}

/// The code of a file without comments and without its inline `#[cfg(test)]` modules (which
/// stand at the end of a file in this crate).
fn product_code(text: &str) -> String {
    let without_tests = match text
        .find("#[cfg(test)]\nmod ")
        .or(text.find("#[cfg(test)]\npub(crate) mod "))
    {
        Some(at) if text[at..].contains('{') => &text[..at],
        _ => text,
    };
    without_tests
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths a piece of code names after `crate::` and `super::`, as module paths relative
/// to `module` (for `super::`).
fn named_paths(code: &str, module: &str) -> BTreeSet<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        if code[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue; // `$crate::` or an identifier ending in `crate`
        }
        let path: String = code[at + 7..].chars().take_while(|c| ident(*c)).collect();
        found.insert(path.trim_end_matches(':').to_string());
    }
    for (at, _) in code.match_indices("super::") {
        if at >= 7 && &code[at - 7..at] == "super::" {
            continue; // counted from the first `super::` of the chain
        }
        let rest = &code[at..];
        let mut ups = 0;
        let mut tail = rest;
        while let Some(t) = tail.strip_prefix("super::") {
            ups += 1;
            tail = t;
        }
        let path: String = tail.chars().take_while(|c| ident(*c)).collect();
        // `super` of module `a::b` is `a`, whether it is `a/b.rs` or `a/b/mod.rs`
        let mut base: Vec<&str> = module.split("::").filter(|p| !p.is_empty()).collect();
        for _ in 0..ups {
            base.pop();
        }
        let mut full = base.join("::");
        let path = path.trim_end_matches(':');
        if !path.is_empty() {
            if !full.is_empty() {
                full.push_str("::");
            }
            full.push_str(path);
        }
        found.insert(full);
    }
    found
}

fn owner<'a>(path: &str, modules: &'a BTreeSet<String>) -> Option<&'a String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .find_map(|n| modules.get(&parts[..n].join("::")))
}

fn related(a: &str, b: &str) -> bool {
    a.is_empty()
        || b.is_empty()
        || a.starts_with(&format!("{b}::"))
        || b.starts_with(&format!("{a}::"))
}

/// Tarjan's strongly connected components of more than one module.
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.edges.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}

#[test]
fn no_module_of_src_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    files(&src, &mut paths);
    let modules: BTreeSet<String> = paths
        .iter()
        .map(|p| module_of(p.strip_prefix(&src).unwrap_or(p)))
        .collect();
    assert!(modules.len() > 50, "{} modules found", modules.len());
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in &paths {
        let relative = path.strip_prefix(&src).unwrap_or(path);
        let module = module_of(relative);
        if is_test_module(&module) {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for named in named_paths(&product_code(&text), &module) {
            if let Some(to) = owner(&named, &modules) {
                if *to != module && !related(&module, to) && !is_test_module(to) {
                    edges.entry(module.clone()).or_default().insert(to.clone());
                }
            }
        }
    }
    let found = circles(&edges);
    let described: Vec<String> = found
        .iter()
        .map(|c| {
            let uses: Vec<String> = c
                .iter()
                .flat_map(|a| {
                    edges[a]
                        .iter()
                        .filter(|b| c.contains(b))
                        .map(move |b| format!("{a} -> {b}"))
                })
                .collect();
            uses.join(", ")
        })
        .collect();
    assert!(found.is_empty(), "import circles: {described:#?}");
}

#[test]
fn the_scan_finds_a_circle_where_there_is_one() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("c".into());
    edges.entry("c".into()).or_default().insert("a".into());
    edges.entry("c".into()).or_default().insert("d".into());
    assert_eq!(
        circles(&edges),
        vec![vec!["a".to_string(), "b".into(), "c".into()]]
    );
    let code = "use crate::proxy::relay::Upstream;\nuse super::super::x::y;\n$crate::no";
    let named = named_paths(code, "providers::gemini::stream");
    assert!(named.contains("proxy::relay::Upstream"), "{named:?}");
    assert!(named.contains("providers::x::y"), "{named:?}");
    assert!(!named.iter().any(|n| n == "no"), "{named:?}");
}
