//! Built-in policy packs, compiled into the binary from `policies/` and selected in
//! `mlpolicy.yaml` (`policies: [baseline]`). A pack is a `.mlp` file of `policy` blocks plus
//! default values for the variables its rules read; the configuration's own variables win.

use crate::model::Value;

/// One built-in pack.
#[derive(Debug, Clone, Copy)]
pub struct Pack {
    pub name: &'static str,
    /// Shown in diagnostics as the file the rules live in.
    pub file: &'static str,
    pub text: &'static str,
    /// Packs whose rules this one also applies.
    pub includes: &'static [&'static str],
}

/// Every built-in pack.
pub const PACKS: &[Pack] = &[
    Pack {
        name: "baseline",
        file: "policies/baseline.mlp",
        text: include_str!("../policies/baseline.mlp"),
        includes: &[],
    },
    Pack {
        name: "strict",
        file: "policies/strict.mlp",
        text: include_str!("../policies/strict.mlp"),
        includes: &["baseline"],
    },
];

/// A pack by name.
pub fn find(name: &str) -> Option<&'static Pack> {
    PACKS.iter().find(|p| p.name == name)
}

/// The packs to load for the selected names, includes first, each once.
pub fn expand(selected: &[String]) -> Vec<&'static Pack> {
    let mut out: Vec<&'static Pack> = Vec::new();
    for name in selected {
        let Some(p) = find(name) else { continue };
        for inc in p.includes {
            if let Some(i) = find(inc)
                && !out.iter().any(|o| o.name == i.name)
            {
                out.push(i);
            }
        }
        if !out.iter().any(|o| o.name == p.name) {
            out.push(p);
        }
    }
    out
}

fn strs(items: &[&str]) -> Value {
    Value::List(items.iter().map(|s| Value::Str((*s).to_owned())).collect())
}

/// Default variables the packs read, used when the configuration does not set them.
pub fn default_vars() -> Vec<(&'static str, Value)> {
    vec![
        ("env", Value::Str(String::new())),
        ("production_envs", strs(&["prod", "production"])),
        (
            "allowed_issuers",
            strs(&[
                "https://token.actions.githubusercontent.com",
                "https://vstoken.dev.azure.com/*",
                "https://*.oic.prod-aks.azure.com/*",
                "https://login.microsoftonline.com/*",
            ]),
        ),
        (
            "data_write_roles",
            strs(&["Storage Blob Data Contributor", "Storage Blob Data Owner", "Key Vault Secrets Officer", "AcrPush"]),
        ),
        ("max_data_writers", Value::Int(10)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_parse_cleanly() {
        for p in PACKS {
            let (file, diags) = crate::syntax::parse(crate::source::FileId(0), p.text);
            assert!(!diags.has_errors(), "{}: {diags:?}", p.name);
            assert!(
                file.items.iter().all(|i| matches!(i, crate::ast::Item::Policy(_))),
                "{} holds only policies",
                p.name
            );
            assert_eq!(crate::fmt::format(&file, p.text), p.text, "{} is formatted", p.name);
        }
    }

    #[test]
    fn strict_includes_baseline_once() {
        let names: Vec<&str> = expand(&["strict".into(), "baseline".into()]).iter().map(|p| p.name).collect();
        assert_eq!(names, ["baseline", "strict"]);
    }
}
