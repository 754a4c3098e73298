//! Architecture invariants checked on the source itself (after
//! rust-analyzer's `tidy` tests): the runtime's top-level modules depend on
//! each other without a cycle, so each layer can be read, tested and
//! changed without the ones above it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("the source folder is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules of `src` (files and folders, not `lib.rs` or
/// `main.rs`) and, for each, the other top-level modules its code names as
/// `crate::<module>` (comments left out), with the first place it does.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut modules = BTreeSet::new();
    for entry in std::fs::read_dir(src).expect("the source folder is readable") {
        let path = entry.expect("a directory entry").path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let code = path.is_dir() || path.extension().is_some_and(|e| e == "rs");
        if code && name != "lib" && name != "main" {
            modules.insert(name);
        }
    }
    let mut graph = BTreeMap::new();
    for module in &modules {
        let mut files = Vec::new();
        let file = src.join(format!("{module}.rs"));
        if file.is_file() {
            files.push(file);
        }
        let dir = src.join(module);
        if dir.is_dir() {
            sources(&dir, &mut files);
        }
        let mut uses: BTreeMap<String, String> = BTreeMap::new();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("a source file is readable");
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for (at, _) in code.match_indices("crate::") {
                    let name: String = code[at + 7..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if &name != module && modules.contains(&name) {
                        let place =
                            format!("{}:{}", file.strip_prefix(src).unwrap().display(), n + 1);
                        uses.entry(name).or_insert(place);
                    }
                }
            }
        }
        graph.insert(module.clone(), uses);
    }
    graph
}

/// A cycle in `graph`, as the modules on it with the place each names the
/// next; `None` when there is none.
fn find_cycle(graph: &BTreeMap<String, BTreeMap<String, String>>) -> Option<Vec<String>> {
    // Depth-first search with the path on a stack: a module met again
    // while still on the path closes a cycle.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|p| p == node) {
            let cycle = &path[start..];
            return Some(
                cycle
                    .iter()
                    .enumerate()
                    .map(|(i, m)| {
                        let next = &cycle[(i + 1) % cycle.len()];
                        format!("{m} -> {next} ({})", graph[m][next])
                    })
                    .collect(),
            );
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph[node].keys() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(m, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_runtimes_top_level_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    // The graph is read, not assumed: the layers the architecture names
    // are all there and the lower ones are used by the upper ones.
    for (upper, lower) in [
        ("queue", "storage"),
        ("capabilities", "queue"),
        ("host", "capabilities"),
        ("sync", "host"),
    ] {
        assert!(
            graph[upper].contains_key(lower),
            "{upper} no longer uses {lower}; update this test's layers: {graph:?}"
        );
    }
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "the runtime's modules depend on each other in a cycle:\n  {}\nmove what both sides need into the lower module (see ARCHITECTURE.md, architecture invariants)",
            cycle.join("\n  ")
        );
    }
}

#[test]
fn a_cycle_is_found_and_named() {
    // The finder itself, on a graph with a cycle and one without.
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string())
                .or_default()
                .insert(b.to_string(), format!("{a}.rs:1"));
            g.entry(b.to_string()).or_default();
        }
        g
    };
    let cyclic = graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]);
    let cycle = find_cycle(&cyclic).expect("a -> b -> c -> a is a cycle");
    assert_eq!(cycle.len(), 3, "{cycle:?}");
    assert!(
        cycle.iter().any(|e| e.starts_with("c -> a (c.rs:1)")),
        "{cycle:?}"
    );
    let acyclic = graph(&[("a", "b"), ("b", "c"), ("a", "c"), ("d", "a")]);
    assert_eq!(find_cycle(&acyclic), None);
}
