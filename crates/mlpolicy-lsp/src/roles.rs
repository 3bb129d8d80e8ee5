//! Azure's built-in role catalogue (the 928 definitions vendored in
//! `data/azure/roles/builtin-roles.json`, the same file the emulator serves), for role-name
//! completion and hover. Parsed once, on first use.

use std::fmt::Write as _;
use std::sync::OnceLock;

use serde::Deserialize;

/// One built-in role definition.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Role {
    pub role_name: String,
    /// The role definition's GUID.
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub permissions: Vec<Permission>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Permission {
    pub actions: Vec<String>,
    pub not_actions: Vec<String>,
    pub data_actions: Vec<String>,
    pub not_data_actions: Vec<String>,
}

/// Entries of one permission list shown in a hover.
const SHOWN: usize = 15;

const CATALOGUE: &str = include_str!("../../../data/azure/roles/builtin-roles.json");

/// Every built-in role, sorted by name.
pub fn all() -> &'static [Role] {
    static ROLES: OnceLock<Vec<Role>> = OnceLock::new();
    ROLES.get_or_init(|| {
        // INVARIANT: the vendored file is valid (the `catalogue_parses` test reads it).
        let mut roles: Vec<Role> = serde_json::from_str(CATALOGUE).unwrap_or_default();
        roles.sort_by(|a, b| a.role_name.cmp(&b.role_name));
        roles
    })
}

/// A built-in role by exact name.
pub fn find(name: &str) -> Option<&'static Role> {
    let roles = all();
    roles.binary_search_by(|r| r.role_name.as_str().cmp(name)).ok().map(|i| &roles[i])
}

/// Markdown for a role: name, GUID, description and permissions (long lists cut short).
pub fn markdown(role: &Role) -> String {
    let mut out = format!("**{}** — built-in role `{}`\n\n{}\n", role.role_name, role.name, role.description);
    if mlpolicy_vocab::roles::built_in_id(&role.role_name).is_some() {
        out.push_str("\nmlpolicy knows this role without reading the tenant.\n");
    }
    for p in &role.permissions {
        for (title, list) in [
            ("Actions", &p.actions),
            ("Not actions", &p.not_actions),
            ("Data actions", &p.data_actions),
            ("Not data actions", &p.not_data_actions),
        ] {
            if list.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n{title}:");
            for a in list.iter().take(SHOWN) {
                let _ = writeln!(out, "- `{a}`");
            }
            if list.len() > SHOWN {
                let _ = writeln!(out, "- … and {} more", list.len() - SHOWN);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_parses() {
        assert_eq!(all().len(), 928);
        let ds = find("AzureML Data Scientist").expect("role");
        assert_eq!(ds.name, "f6c7c914-8db3-469d-8ca1-694a8f32e121");
        assert!(!ds.description.is_empty());
        assert!(find("azureml data scientist").is_none());
    }

    #[test]
    fn every_role_the_compiler_knows_is_in_the_catalogue() {
        for (name, id) in mlpolicy_vocab::roles::BUILT_IN {
            assert_eq!(find(name).map(|r| r.name.as_str()), Some(*id), "{name}");
        }
    }

    #[test]
    fn markdown_cuts_long_lists() {
        let owner = find("Owner").expect("Owner");
        let md = markdown(owner);
        assert!(md.contains("`*`"), "{md}");
        let big = all().iter().max_by_key(|r| r.permissions.iter().map(|p| p.actions.len()).sum::<usize>()).unwrap();
        assert!(markdown(big).contains("more"), "{}", big.role_name);
    }
}
