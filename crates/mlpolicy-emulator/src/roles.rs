//! Built-in Azure role definitions served by the emulator: all of Azure's built-in roles
//! (928) with their real GUIDs, names, descriptions and permission blocks, as
//! `az role definition list` reports them (vendored in the repository's
//! `data/azure/roles/builtin-roles.json`, with its source and licence), plus helpers to build
//! subscription-qualified or tenant-level role definition ids.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::{Value, json};

use super::util::eq_ci;

/// One built-in role.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuiltInRole {
    /// The role GUID, identical in every tenant.
    #[serde(rename = "name")]
    pub guid: String,
    /// Exact role name.
    #[serde(rename = "roleName")]
    pub name: String,
    /// Description.
    pub description: String,
    /// Permission blocks (`actions`, `notActions`, `dataActions`, `notDataActions`, and a
    /// `condition` where the role has one), as Azure returns them.
    pub permissions: Vec<Value>,
}

/// All built-in roles, in the catalogue's order.
pub static BUILT_IN: LazyLock<Vec<BuiltInRole>> = LazyLock::new(|| {
    // INVARIANT: the vendored catalogue is valid JSON of this shape (a test parses it).
    serde_json::from_str(include_str!("../../../data/azure/roles/builtin-roles.json"))
        .expect("the built-in role catalogue parses")
});

/// The catalogue's positions by lower-case GUID and by lower-case name, built once: role
/// assignment writes and state loads look roles up per assignment.
static INDEX: LazyLock<(HashMap<String, usize>, HashMap<String, usize>)> = LazyLock::new(|| {
    let by_guid = BUILT_IN.iter().enumerate().map(|(i, r)| (r.guid.to_ascii_lowercase(), i)).collect();
    let by_name = BUILT_IN.iter().enumerate().map(|(i, r)| (r.name.to_ascii_lowercase(), i)).collect();
    (by_guid, by_name)
});

/// Looks a role up by GUID (case-insensitive).
pub fn by_guid(guid: &str) -> Option<&'static BuiltInRole> {
    INDEX.0.get(&guid.to_ascii_lowercase()).map(|&i| &BUILT_IN[i])
}

/// Looks a role up by name; ARM's `roleName eq '…'` filter ignores case (a recorded
/// `roleName eq 'reader'` answers `Reader`).
pub fn by_name(name: &str) -> Option<&'static BuiltInRole> {
    INDEX.1.get(&name.to_ascii_lowercase()).map(|&i| &BUILT_IN[i])
}

/// The trailing GUID of a role definition id (or the input when it has no `/`).
pub fn guid_of(role_definition_id: &str) -> &str {
    role_definition_id.rsplit('/').next().unwrap_or(role_definition_id)
}

/// The subscription id inside a scope, if any.
pub fn subscription_of(scope: &str) -> Option<&str> {
    let mut parts = scope.split('/').filter(|p| !p.is_empty());
    while let Some(p) = parts.next() {
        if eq_ci(p, "subscriptions") {
            return parts.next();
        }
    }
    None
}

/// Role definition id as ARM echoes it for `scope`: subscription-qualified when the scope is in
/// a subscription, tenant-level otherwise.
pub fn definition_id(scope: &str, guid: &str) -> String {
    match subscription_of(scope) {
        Some(sub) => {
            format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}")
        }
        None => format!("/providers/Microsoft.Authorization/roleDefinitions/{guid}"),
    }
}

/// The ARM JSON of a role definition as seen from `scope`.
pub fn to_json(role: &BuiltInRole, scope: &str) -> Value {
    json!({
        "id": definition_id(scope, &role.guid),
        "name": role.guid,
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": role.name,
            "type": "BuiltInRole",
            "description": role.description,
            "assignableScopes": ["/"],
            "permissions": role.permissions,
            "createdOn": "2015-02-02T21:55:09.8806423Z",
            "updatedOn": "2024-04-30T20:33:10.4497745Z",
            "createdBy": null,
            "updatedBy": null,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_are_case_insensitive() {
        assert_eq!(
            by_name("azureml data scientist").map(|r| r.guid.as_str()),
            Some("f6c7c914-8db3-469d-8ca1-694a8f32e121")
        );
        assert_eq!(by_guid("ACDD72A7-3385-48EF-BD42-F606FBA81AE7").map(|r| r.name.as_str()), Some("Reader"));
    }

    #[test]
    fn the_catalogue_holds_every_built_in_role_with_its_permissions() {
        assert_eq!(BUILT_IN.len(), 928);
        let owner = by_name("Owner").unwrap();
        assert_eq!(owner.permissions[0]["actions"], json!(["*"]));
        let blob = by_name("Storage Blob Data Reader").unwrap();
        assert!(blob.permissions[0]["dataActions"].as_array().is_some_and(|a| !a.is_empty()));
        let mut guids: Vec<&str> = BUILT_IN.iter().map(|r| r.guid.as_str()).collect();
        guids.sort_unstable();
        guids.dedup();
        assert_eq!(guids.len(), 928, "GUIDs are unique");
    }

    #[test]
    fn definition_ids_follow_scope() {
        assert_eq!(
            definition_id("/subscriptions/s1/resourceGroups/rg", "abc"),
            "/subscriptions/s1/providers/Microsoft.Authorization/roleDefinitions/abc"
        );
        assert_eq!(definition_id("/", "abc"), "/providers/Microsoft.Authorization/roleDefinitions/abc");
        assert_eq!(guid_of("/providers/x/roleDefinitions/abc"), "abc");
    }
}
