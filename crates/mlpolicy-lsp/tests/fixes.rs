//! The code actions fix what they say: over every golden diagnostics case of the CLI, each fix
//! offered is applied as an editor would (an unsaved buffer), the directory analysed again, and
//! the diagnostic it fixes must be gone.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mlpolicy_lang::settings::Overrides;
use mlpolicy_lang::source::Overlay;
use mlpolicy_lsp::actions;
use mlpolicy_lsp::analysis::Analysis;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mlpolicy/tests/cases");
    let mut out = Vec::new();
    for group in ["diagnostics", "policies"] {
        for e in std::fs::read_dir(root.join(group)).expect("cases") {
            let dir = e.expect("entry").path();
            if dir.is_dir() && !dir.join("args").exists() {
                out.push(dir);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_fix_removes_its_diagnostic() {
    let mut applied: Vec<String> = Vec::new();
    for dir in cases() {
        let a = Analysis::run(&dir, &Overrides::default(), &Overlay::new());
        for d in &a.report.items {
            let Some(span) = d.span() else { continue };
            if a.path_of(span.file).is_none() {
                continue;
            }
            for fix in actions::fixes(&a, span.file, span.start, span.end).into_iter().filter(|f| f.diagnostic == *d) {
                let file = fix.span.file;
                let text = a.text(file);
                let fixed =
                    format!("{}{}{}", &text[..fix.span.start as usize], fix.new_text, &text[fix.span.end as usize..]);
                let name = a.compiled.sources.get(file).name.clone();
                let overlay: Overlay = [(name.clone(), Arc::from(fixed.as_str()))].into_iter().collect();
                let after = Analysis::run(&dir, &Overrides::default(), &overlay);
                let still = after.report.items.iter().any(|e| e.code == d.code && e.message == d.message);
                assert!(
                    !still,
                    "{}: `{}` did not fix {} `{}`:\n{fixed}\n{:?}",
                    dir.display(),
                    fix.title,
                    d.code,
                    d.message,
                    after.report.items.iter().map(|e| format!("{} {}", e.code, e.message)).collect::<Vec<_>>()
                );
                applied.push(format!("{} {}", d.code, fix.title));
            }
        }
    }
    applied.sort();
    applied.dedup_by(|a, b| a.split(' ').next() == b.split(' ').next());
    let codes: Vec<&str> = applied.iter().filter_map(|f| f.split(' ').next()).collect();
    for code in [
        "E0021", "E0101", "E0106", "E0107", "E0113", "E0201", "E0202", "E0218", "E0219", "E0222", "E0223", "E0401",
        "W0201", "W0401",
    ] {
        assert!(codes.contains(&code), "no fix of {code} was tried: {applied:?}");
    }
}
