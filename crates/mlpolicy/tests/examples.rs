//! Every example under `examples/` validates cleanly, is already formatted, and has a stable
//! graph; the transcripts of `validate`, `fmt --check` and `graph` are snapshotted.
//! (`examples/ci/` holds CI templates, not a configuration: `ci_templates.rs` checks them.)

use std::path::PathBuf;

use crate::support::{assert_golden, mlpolicy, root, subdirs};

/// The example configurations: the folders of `examples/` with an `mlpolicy.yaml`.
fn example_configs() -> Vec<PathBuf> {
    subdirs(&root().join("examples")).into_iter().filter(|d| d.join("mlpolicy.yaml").exists()).collect()
}

fn snapshot(name: &str, text: &str) {
    assert_golden("examples", name, text, &[]);
}

#[test]
fn examples_validate_format_and_graph() {
    let examples = example_configs();
    assert!(!examples.is_empty());
    for dir in examples {
        let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let validate = mlpolicy(&dir, &["validate", "."]);
        assert_eq!(validate.code, 0, "{name} does not validate:\n{}", validate.transcript());
        assert!(!validate.stderr.contains("error"), "{name}:\n{}", validate.transcript());
        snapshot(&format!("{name}-validate"), &validate.transcript());

        let fmt = mlpolicy(&dir, &["fmt", ".", "--check"]);
        assert_eq!(fmt.code, 0, "{name} is not formatted:\n{}", fmt.transcript());

        let graph = mlpolicy(&dir, &["graph", "."]);
        assert_eq!(graph.code, 0, "{name}: {}", graph.transcript());
        assert!(graph.stdout.starts_with("digraph mlpolicy {"));
        snapshot(&format!("{name}-graph"), &graph.stdout);

        let mermaid = mlpolicy(&dir, &["graph", ".", "--format", "mermaid"]);
        assert_eq!(mermaid.code, 0, "{name}: {}", mermaid.transcript());
        assert!(mermaid.stdout.starts_with("flowchart RL\n"));
        // The same edges as the DOT graph.
        assert_eq!(mermaid.stdout.matches(" --> ").count(), graph.stdout.matches(" -> ").count(), "{name}");
        snapshot(&format!("{name}-graph-mermaid"), &mermaid.stdout);
    }
}

/// The formatted text of every example file, so that layout changes are reviewed.
#[test]
fn examples_formatted_text() {
    for dir in example_configs() {
        let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "mlp"))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let (ast, diags) = mlpolicy_lang::syntax::parse(mlpolicy_lang::source::FileId(0), &text);
            assert!(!diags.has_errors(), "{}", f.display());
            let out = mlpolicy_lang::fmt::format(&ast, &text);
            let file = f.file_name().unwrap().to_str().unwrap();
            snapshot(&format!("{name}-fmt-{file}"), &out);
        }
    }
}
