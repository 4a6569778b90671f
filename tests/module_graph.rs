//! The direction of dependencies inside the crate, checked on the source: the
//! modules `crate::X` paths connect form no cycle, no probe names another
//! probe, and the shared vocabulary is a leaf. Test code (`mod tests`) is left
//! out: a test may reach across modules to build its fixtures.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The node a file belongs to: its top-level module, or `probe::<name>` for
/// the probes, which must not know each other.
fn node_of_file(rel: &Path) -> Option<String> {
    let parts: Vec<String> = rel
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    match parts.as_slice() {
        [only] if only == "lib" || only == "main" => None,
        [top] => Some(top.clone()),
        [probe, name, ..] if probe == "probe" && name != "mod" => Some(format!("probe::{name}")),
        [top, ..] => Some(top.clone()),
        [] => None,
    }
}

/// The node a `crate::` path names, given the segments after `crate::`.
fn node_of_path(segments: &[&str]) -> String {
    match segments {
        ["probe", name, ..] if name.chars().all(|c| c.is_ascii_lowercase() || c == '_') => {
            format!("probe::{name}")
        }
        [top, ..] => (*top).to_owned(),
        [] => String::new(),
    }
}

/// The source before its unit tests.
fn without_tests(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod tests")
        .map_or(text, |at| &text[..at])
}

/// Every `crate::a::b` path in `text` outside comments, as its segments;
/// `crate::{a, b}` groups give one path per member.
fn crate_paths(text: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().last();
            rest = &rest[at + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // `nodevitals_crate::` or the like
            }
            let group = rest.strip_prefix('{');
            let heads: Vec<&str> = match group {
                Some(g) => g
                    .split('}')
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .map(str::trim)
                    .collect(),
                None => vec![rest],
            };
            for head in heads {
                let segments: Vec<String> = head
                    .split("::")
                    .map(|s| {
                        s.chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect::<String>()
                    })
                    .take_while(|s| !s.is_empty())
                    .collect();
                if !segments.is_empty() {
                    paths.push(segments);
                }
            }
        }
    }
    paths
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// module -> the modules it names (itself excluded).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let Some(from) = node_of_file(rel) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let edges = graph.entry(from.clone()).or_default();
        for path in crate_paths(without_tests(&text)) {
            let segments: Vec<&str> = path.iter().map(String::as_str).collect();
            let to = node_of_path(&segments);
            if to != from && !to.is_empty() {
                edges.insert(to);
            }
        }
    }
    graph
}

/// A cycle through the graph, if there is one, as the modules on it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = graph();
    assert!(graph.len() > 10, "too few modules found: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "modules depend on each other in a cycle: {}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn no_probe_names_another_probe() {
    for (from, to) in graph() {
        if from.starts_with("probe::") {
            let others: Vec<&String> = to.iter().filter(|t| t.starts_with("probe::")).collect();
            assert!(others.is_empty(), "{from} depends on {others:?}");
        }
    }
}

#[test]
fn the_vocabulary_and_the_metrics_know_no_probe() {
    let graph = graph();
    assert_eq!(
        graph["vocabulary"],
        BTreeSet::new(),
        "the vocabulary is a leaf"
    );
    let metrics = &graph["metrics"];
    assert!(
        metrics
            .iter()
            .all(|m| !m.starts_with("probe") && m != "remediation" && m != "runtime"),
        "metrics depend on {metrics:?}"
    );
}

/// The parser itself, on the forms the crate uses.
#[test]
fn paths_are_read_from_uses_groups_and_expressions() {
    let text = "use crate::probe::cpu::Snapshot;\nuse crate::{health, status::Board};\nlet s = crate::endpoint::socket_path(x); // crate::commented\n";
    let nodes: Vec<String> = crate_paths(text)
        .iter()
        .map(|p| node_of_path(&p.iter().map(String::as_str).collect::<Vec<_>>()))
        .collect();
    assert_eq!(nodes, ["probe::cpu", "health", "status", "endpoint"]);
    let mut g = BTreeMap::new();
    g.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    g.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(
        find_cycle(&g),
        Some(vec!["a".into(), "b".into(), "a".into()])
    );
}
