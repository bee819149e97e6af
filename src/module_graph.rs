//! A test that keeps the top-level modules a DAG: it reads every `src/<module>/` file,
//! collects the `crate::<module>` paths its code (not its comments) names, and fails
//! on a cycle, printing it with a file and line for each edge. The Biscuit module must
//! stay a leaf (it names no other module of the crate).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module → (module it names → first place it does so).
type Graph = BTreeMap<String, BTreeMap<String, String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The modules some code names: `crate::x` and each `x` of `crate::{x, y::z}` (a
/// group may span lines), each with the byte offset of its `crate::`.
fn named_modules(line: &str) -> Vec<(usize, String)> {
    let mut names = Vec::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in line.match_indices("crate::") {
        let rest = &line[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: those after `{` or a `,` at depth 0, up to
            // the group's closing brace.
            let mut depth = 0;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && !c.is_whitespace() => {
                        names.push((at, ident(&group[i..])));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            names.push((at, ident(rest)));
        }
    }
    names.retain(|(_, n)| !n.is_empty());
    names
}

fn graph(src: &Path) -> Graph {
    let mut graph = Graph::new();
    let Ok(entries) = std::fs::read_dir(src) else {
        panic!("cannot read {}", src.display());
    };
    // Each directory and each `<name>.rs` beside `lib.rs` is a top-level module.
    let modules: BTreeSet<String> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if e.path().is_dir() {
                Some(name)
            } else {
                let stem = name.strip_suffix(".rs")?;
                // (This test's own examples are not imports; `testing` holds the unit
                // tests' wait helpers, compiled only for tests, so not part of the graph.)
                (!matches!(stem, "lib" | "main" | "module_graph" | "testing"))
                    .then(|| stem.to_owned())
            }
        })
        .collect();
    for module in &modules {
        let mut files = Vec::new();
        rust_files(&src.join(module), &mut files);
        let file = src.join(format!("{module}.rs"));
        if file.is_file() {
            files.push(file);
        }
        files.sort();
        let edges = graph.entry(module.clone()).or_default();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            // Comment lines blanked, so line numbers stay true.
            let code: String = text
                .lines()
                .map(|l| {
                    if l.trim_start().starts_with("//") {
                        ""
                    } else {
                        l
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            for (at, name) in named_modules(&code) {
                if &name != module && modules.contains(&name) {
                    let line = code[..at].matches('\n').count() + 1;
                    edges
                        .entry(name)
                        .or_insert_with(|| format!("{}:{line}", file.display()));
                }
            }
        }
    }
    graph
}

/// A cycle, as the list of modules on it (first repeated at the end), if any.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flat_map(|e| e.keys()) {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

fn explain(graph: &Graph, cycle: &[String]) -> String {
    cycle
        .windows(2)
        .map(|w| format!("  {} -> {} ({})", w[0], w[1], graph[&w[0]][&w[1]]))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn top_level_modules_have_no_import_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph(&src);
    assert!(graph.contains_key("policy") && graph.contains_key("auth"));
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle between modules:\n{}", explain(&graph, &cycle));
    }
}

#[test]
fn biscuit_is_a_leaf() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph(&src);
    let deps = &graph["biscuit"];
    assert!(deps.is_empty(), "src/biscuit names other modules: {deps:?}");
}

#[test]
fn the_reader_sees_paths_and_groups_and_finds_cycles() {
    let names =
        |code: &str| -> Vec<String> { named_modules(code).into_iter().map(|(_, n)| n).collect() };
    assert_eq!(names("use crate::auth::Identity;"), ["auth"]);
    assert_eq!(
        names("use crate::{\n    mcp::{a, b},\n    policy::Decision,\n};"),
        ["mcp", "policy"]
    );
    let mut g = Graph::new();
    g.entry("a".into())
        .or_default()
        .insert("b".into(), "a.rs:1".into());
    g.entry("b".into()).or_default();
    assert_eq!(find_cycle(&g), None);
    g.entry("b".into())
        .or_default()
        .insert("a".into(), "b.rs:2".into());
    let cycle = find_cycle(&g).expect("a cycle");
    assert_eq!(cycle, ["a", "b", "a"]);
    assert!(explain(&g, &cycle).contains("b -> a (b.rs:2)"));
}
