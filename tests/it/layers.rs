//! The app crate's layers, read from its source: each module's `crate::`
//! paths are its edges. Layers, bottom up: the leaves (clock, random, log,
//! metrics), transport, config, wechat, store, web. A module may use its own layer and
//! the ones below; no two modules may use each other, however indirectly;
//! only transport/ names tiny_http and only wechat/ names ureq; the
//! simulator uses the app's lower layers, never its store or web.
//! (That the app cannot name the simulator is the compiler's business: the
//! app's package does not depend on the simulator's.)

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const LAYERS: &[&[&str]] = &[
    &["clock", "random", "log", "metrics", "qr"],
    &["transport"],
    &["config"],
    &["wechat"],
    &["store"],
    &["web"],
];

fn layer_of(module: &str) -> usize {
    let top = module.split("::").next().unwrap_or("");
    LAYERS
        .iter()
        .position(|names| names.contains(&top))
        .unwrap_or_else(|| panic!("{module}: in no layer; add its folder to LAYERS"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every .rs file under `dir`, with its module path ("web::handlers::scan").
fn modules(dir: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).expect("read the source folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(dir).unwrap().with_extension("");
                let mut parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
                    parts.pop();
                }
                let source = fs::read_to_string(&path).expect("read a source file");
                found.insert(parts.join("::"), code_only(&source));
            }
        }
    }
    found
}

/// The source without its tests module and without comments: what the
/// module itself uses.
fn code_only(source: &str) -> String {
    let source = match source.find("#[cfg(test)]\nmod tests") {
        Some(at) => &source[..at],
        None => source,
    };
    source
        .lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string ("http://…") is rare in use lines, and a
            // cut string hides no `crate::` path that matters here.
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths a module names after `prefix` (`crate`, `wxauth_app`), groups
/// (`use crate::{a, b::c}`) expanded: ["a", "b::c", ...].
fn paths_after(code: &str, prefix: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let needle = format!("{prefix}::");
    let mut rest = code;
    while let Some(at) = rest.find(&needle) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + needle.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let head = rest[..end].trim_end_matches(':');
        match rest[end..].strip_prefix('{') {
            // `crate::{a, b::c}` or `crate::web::handlers::{login, scan}`.
            Some(group) if rest[..end].ends_with("::") || end == 0 => {
                let close = group.find('}').unwrap_or(group.len());
                for item in group[..close].split(',') {
                    let item = item.trim().trim_start_matches("self");
                    let item = item.trim_start_matches("::");
                    match (head.is_empty(), item.is_empty()) {
                        (true, false) => paths.push(item.to_string()),
                        (false, false) => paths.push(format!("{head}::{item}")),
                        (false, true) => paths.push(head.to_string()),
                        (true, true) => {}
                    }
                }
            }
            _ => paths.push(head.to_string()),
        }
    }
    paths
}

/// The module a path lands in: its longest prefix that is a module.
fn module_named(path: &str, modules: &BTreeMap<String, String>) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|m| modules.contains_key(m))
}

fn edges(modules: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges = BTreeMap::new();
    for (module, code) in modules {
        let to: BTreeSet<String> = paths_after(code, "crate")
            .iter()
            .filter_map(|p| module_named(p, modules))
            // A folder's mod.rs that only declares its files is no edge.
            .filter(|m| m != module && !module.starts_with(&format!("{m}::")))
            .filter(|m| !m.is_empty())
            .collect();
        edges.insert(module.clone(), to);
    }
    edges
}

/// A cycle through `start`, if there is one.
fn cycle_from(start: &str, edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn walk(
        at: &str,
        start: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in edges.get(at).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(next, start, edges, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    walk(start, start, edges, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn the_app_crate_has_no_import_cycle_and_no_edge_up_a_layer() {
    let modules = modules(&root().join("crates/app/src"));
    assert!(modules.len() > 20, "read {} modules", modules.len());
    let edges = edges(&modules);
    let mut problems = Vec::new();
    for (from, tos) in &edges {
        for to in tos {
            if !from.is_empty() && layer_of(to) > layer_of(from) {
                problems.push(format!("{from} -> {to}: up a layer"));
            }
        }
        if let Some(cycle) = cycle_from(from, &edges) {
            problems.push(format!("cycle: {}", cycle.join(" -> ")));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The checker sees edges at all (a broken reader would pass everything).
    assert!(edges["web::service"].contains("web::routes"), "{edges:?}");
    assert!(edges["web::routes"].contains("web::handlers::login"));
}

#[test]
fn only_transport_names_tiny_http_and_only_wechat_names_ureq() {
    let modules = modules(&root().join("crates/app/src"));
    for (module, code) in &modules {
        if code.contains("tiny_http") {
            assert!(module.starts_with("transport"), "{module} names tiny_http");
        }
        if code.contains("ureq") {
            assert!(module.starts_with("wechat"), "{module} names ureq");
        }
    }
}

#[test]
fn the_simulator_uses_only_the_apps_lower_layers() {
    let sim = modules(&root().join("crates/sim/src"));
    let app = modules(&root().join("crates/app/src"));
    let mut used = BTreeSet::new();
    for (module, code) in &sim {
        for path in paths_after(code, "wxauth_app") {
            let named = module_named(&path, &app).unwrap_or_else(|| path.clone());
            assert!(
                !named.starts_with("web") && !named.starts_with("store"),
                "sim::{module} uses wxauth_app::{path}: the simulator stands in for WeChat \
                 and must not lean on the app's pages or stores"
            );
            used.insert(named);
        }
    }
    assert!(used.contains("transport::service"), "{used:?}");
}

#[test]
fn the_checker_finds_a_cycle_and_an_edge_up() {
    let mut modules = BTreeMap::new();
    modules.insert("store::a".to_string(), "use crate::web::b;".to_string());
    modules.insert(
        "web::b".to_string(),
        "use crate::{log, store::a::X};\nuse crate::web::{self, c::{D, E}};".to_string(),
    );
    modules.insert("web::c".to_string(), String::new());
    modules.insert("log".to_string(), String::new());
    let edges = edges(&modules);
    assert_eq!(
        edges["web::b"],
        BTreeSet::from(["log".into(), "store::a".into(), "web::c".into()])
    );
    assert!(cycle_from("store::a", &edges).is_some());
    assert!(layer_of("web::b") > layer_of("store::a"));
}
