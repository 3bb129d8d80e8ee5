//! One-line explanations of the language's kinds and attributes for completion and hover,
//! condensed from docs/language.md. Which attributes a kind takes comes from the compiler
//! (`check::attributes`); a test checks that every one of them is explained here.

use mlpolicy_lang::model::Kind;

/// What a kind of declaration is.
pub fn kind(kind: Kind) -> &'static str {
    match kind {
        Kind::ResourceGroup => "An Azure resource group.",
        Kind::Identity => "A user-assigned managed identity; holds `federated` blocks (e.g. for GitHub Actions).",
        Kind::Federated => "A federated identity credential of the enclosing identity.",
        Kind::Workspace => "An Azure Machine Learning workspace.",
        Kind::Group => "An Entra ID security group; `members` and `owners` are authoritative.",
        Kind::Grant => "A role assignment: `grant ROLE to PRINCIPAL on SCOPE`.",
    }
}

/// What an attribute of a kind means, and whether it is required.
pub fn attribute(kind: Kind, name: &str) -> Option<&'static str> {
    Some(match (kind, name) {
        (_, "prevent_destroy") => "`true` refuses any plan that deletes this object.",
        (Kind::ResourceGroup, "subscription") => "Required. The subscription, as `sub.ALIAS` from mlpolicy.yaml.",
        (Kind::ResourceGroup, "name") => "Required. The resource group's Azure name.",
        (Kind::ResourceGroup, "location") => "Required. The Azure region, e.g. \"westeurope\".",
        (Kind::Identity | Kind::Workspace, "resource_group") => {
            "Required. The resource group, as `resource_group.NAME`."
        }
        (Kind::Identity, "name") => "Required. The identity's Azure name.",
        (Kind::Identity | Kind::Workspace, "location") => "The Azure region; defaults to the resource group's.",
        (_, "tags") => "A map of string tags; mlpolicy adds `mlpolicy-owner`.",
        (Kind::Federated, "name") => {
            "The credential's Azure name; defaults to the local name with `_` turned into `-`."
        }
        (Kind::Federated, "issuer") => {
            "Required. The token issuer, e.g. \"https://token.actions.githubusercontent.com\"."
        }
        (Kind::Federated, "subject") => "Required. The token subject, e.g. \"repo:ORG/REPO:environment:prod\".",
        (Kind::Federated, "audiences") => {
            "Defaults to [\"api://AzureADTokenExchange\"], the only audience Azure accepts."
        }
        (Kind::Workspace, "name") => "Required. The workspace's Azure name.",
        (Kind::Workspace, "identity") => "`system` (the default) or a user-assigned `identity.NAME`.",
        (Kind::Workspace, "storage_account") => "Required. The ARM id of the linked storage account.",
        (Kind::Workspace, "key_vault") => "Required. The ARM id of the linked key vault.",
        (Kind::Workspace, "application_insights") => "The ARM id of the linked Application Insights component.",
        (Kind::Workspace, "container_registry") => "The ARM id of the linked container registry (optional).",
        (Kind::Workspace, "public_network_access") => "`true` (Azure's default) or `false`.",
        (Kind::Workspace, "friendly_name") => "The name shown in Azure ML studio.",
        (Kind::Workspace | Kind::Group | Kind::Grant, "description") => "A free-text description.",
        (Kind::Group, "name") => "Required. The group's display name.",
        (Kind::Group, "mail_nickname") => "Defaults to the name with spaces turned into `-`.",
        (Kind::Group, "members") => {
            "Who is in the group: `user(...)`, `service_principal(...)`, `existing_group(...)`, `group.X`, `identity.X`."
        }
        (Kind::Group, "owners") => "The group's owners, written like `members`.",
        (Kind::Group, "members_additive") => "`true` only ever adds members, never removes them.",
        (Kind::Grant, "role") => "The role, written in the grant line.",
        (Kind::Grant, "principal") => "Who gets the role, written in the grant line.",
        (Kind::Grant, "scope") => "Where the role applies, written in the grant line.",
        (Kind::Grant, "condition") => "An ABAC condition on the role assignment.",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlpolicy_lang::check;

    #[test]
    fn every_attribute_is_explained() {
        for kind in [Kind::ResourceGroup, Kind::Identity, Kind::Federated, Kind::Workspace, Kind::Group, Kind::Grant] {
            for name in check::attributes(kind).iter().chain(check::COMMON_ATTRIBUTES) {
                assert!(attribute(kind, name).is_some(), "{kind}.{name}");
            }
        }
    }
}
