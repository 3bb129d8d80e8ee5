//! Role definitions by name and by GUID, in one place: a subscription's role catalog when one
//! was read (names case-insensitive, custom roles included), else the built-in table of
//! `mlpolicy_vocab::roles` (exact names), which is all apply has without a live read.

use mlpolicy_azure::RoleCatalog;
use mlpolicy_vocab::arm::last_segment;
use mlpolicy_vocab::roles::{built_in_id, built_in_name};

/// The lower-case role definition GUID of a role, by name: from `catalog` when there is one
/// (and only from it: a name it lacks does not exist in the tenant), else from the built-in
/// table.
pub fn role_guid(catalog: Option<&RoleCatalog>, name: &str) -> Option<String> {
    match catalog {
        Some(c) => c.by_name(name).map(|d| last_segment(&d.id).to_ascii_lowercase()),
        None => built_in_id(name).map(str::to_owned),
    }
}

/// The name of a role, by definition GUID or full role definition id: from the first catalog
/// that has it, else from the built-in table.
pub fn role_name<'a>(catalogs: impl IntoIterator<Item = &'a RoleCatalog>, guid_or_id: &str) -> Option<String> {
    catalogs
        .into_iter()
        .find_map(|c| c.by_guid(guid_or_id).map(|d| d.properties.role_name.clone()))
        .or_else(|| built_in_name(last_segment(guid_or_id)).map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlpolicy_azure::{RoleDefinition, RoleDefinitionProperties};

    const CUSTOM: &str = "11111111-2222-3333-4444-555555555555";

    fn catalog() -> RoleCatalog {
        let def = RoleDefinition {
            id: format!("/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/{}", CUSTOM.to_uppercase()),
            properties: RoleDefinitionProperties {
                role_name: "ML Auditor".into(),
                ..RoleDefinitionProperties::default()
            },
            ..RoleDefinition::default()
        };
        RoleCatalog::new(vec![def])
    }

    #[test]
    fn names_resolve_from_the_catalog_else_the_built_in_table() {
        let c = catalog();
        assert_eq!(role_guid(Some(&c), "ml auditor").as_deref(), Some(CUSTOM));
        // A catalog that lacks the name means the tenant lacks the role.
        assert_eq!(role_guid(Some(&c), "Reader"), None);
        assert_eq!(role_guid(None, "Reader").as_deref(), Some("acdd72a7-3385-48ef-bd42-f606fba81ae7"));
        assert_eq!(role_guid(None, "reader"), None);
        assert_eq!(role_guid(None, "ML Auditor"), None);
    }

    #[test]
    fn guids_and_ids_resolve_to_names() {
        let c = catalog();
        assert_eq!(role_name([&c], CUSTOM).as_deref(), Some("ML Auditor"));
        assert_eq!(role_name([&c], "ACDD72A7-3385-48EF-BD42-F606FBA81AE7").as_deref(), Some("Reader"));
        let id =
            "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7";
        assert_eq!(role_name([], id).as_deref(), Some("Reader"));
        assert_eq!(role_name([&c], "00000000-0000-0000-0000-000000000000"), None);
    }

    #[test]
    fn names_and_guids_round_trip() {
        for (name, guid) in mlpolicy_vocab::roles::BUILT_IN {
            assert_eq!(role_guid(None, name).as_deref(), Some(*guid));
            assert_eq!(role_name([], guid).as_deref(), Some(*name));
        }
    }
}
