//! Built-in Azure role definitions served by the emulator: the roles of azure-wire.md §6.1
//! with their real GUIDs, descriptions and (abridged but realistic) permissions, plus helpers
//! to build subscription-qualified or tenant-level role definition ids.

use serde_json::{Value, json};

use super::util::eq_ci;

/// One built-in role.
pub struct BuiltInRole {
    /// The role GUID, identical in every tenant.
    pub guid: &'static str,
    /// Exact role name.
    pub name: &'static str,
    /// Description.
    pub description: &'static str,
    /// Control-plane actions.
    pub actions: &'static [&'static str],
    /// Excluded control-plane actions.
    pub not_actions: &'static [&'static str],
    /// Data-plane actions.
    pub data_actions: &'static [&'static str],
}

/// All built-in roles known to the emulator.
pub const BUILT_IN: &[BuiltInRole] = &[
    BuiltInRole {
        guid: "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        name: "Owner",
        description: "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
        actions: &["*"],
        not_actions: &[],
        data_actions: &[],
    },
    BuiltInRole {
        guid: "b24988ac-6180-42a0-ab88-20f7382dd24c",
        name: "Contributor",
        description: "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, manage assignments in Azure Blueprints, or share image galleries.",
        actions: &["*"],
        not_actions: &[
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
            "Microsoft.Blueprint/blueprintAssignments/write",
            "Microsoft.Blueprint/blueprintAssignments/delete",
            "Microsoft.Compute/galleries/share/action",
            "Microsoft.Purview/consents/write",
            "Microsoft.Purview/consents/delete",
            "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
            "Microsoft.Subscription/cancel/action",
            "Microsoft.Subscription/enable/action",
        ],
        data_actions: &[],
    },
    BuiltInRole {
        guid: "acdd72a7-3385-48ef-bd42-f606fba81ae7",
        name: "Reader",
        description: "View all resources, but does not allow you to make any changes.",
        actions: &["*/read"],
        not_actions: &[],
        data_actions: &[],
    },
    BuiltInRole {
        guid: "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
        name: "User Access Administrator",
        description: "Lets you manage user access to Azure resources.",
        actions: &["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"],
        not_actions: &[],
        data_actions: &[],
    },
    BuiltInRole {
        guid: "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
        name: "Role Based Access Control Administrator",
        description: "Manage access to Azure resources by assigning roles using Azure RBAC. This role does not allow you to manage access using other ways, such as Azure Policy.",
        actions: &[
            "Microsoft.Authorization/roleAssignments/write",
            "Microsoft.Authorization/roleAssignments/delete",
            "*/read",
            "Microsoft.Support/*",
        ],
        not_actions: &[],
        data_actions: &[],
    },
    BuiltInRole {
        guid: "f6c7c914-8db3-469d-8ca1-694a8f32e121",
        name: "AzureML Data Scientist",
        description: "Can perform all actions within an Azure Machine Learning workspace, except for creating or deleting compute resources and modifying the workspace itself.",
        actions: &[
            "Microsoft.MachineLearningServices/workspaces/*/read",
            "Microsoft.MachineLearningServices/workspaces/*/action",
            "Microsoft.MachineLearningServices/workspaces/*/delete",
            "Microsoft.MachineLearningServices/workspaces/*/write",
        ],
        not_actions: &[
            "Microsoft.MachineLearningServices/workspaces/delete",
            "Microsoft.MachineLearningServices/workspaces/write",
            "Microsoft.MachineLearningServices/workspaces/computes/*/write",
            "Microsoft.MachineLearningServices/workspaces/computes/*/delete",
            "Microsoft.Authorization/*",
            "Microsoft.MachineLearningServices/workspaces/listKeys/action",
            "Microsoft.MachineLearningServices/workspaces/hubs/write",
            "Microsoft.MachineLearningServices/workspaces/hubs/delete",
            "Microsoft.MachineLearningServices/workspaces/featurestores/write",
            "Microsoft.MachineLearningServices/workspaces/featurestores/delete",
        ],
        data_actions: &[],
    },
    BuiltInRole {
        guid: "e503ece1-11d0-4e8e-8e2c-7a6c3bf38815",
        name: "AzureML Compute Operator",
        description: "Can access and perform CRUD operations on Machine Learning Services managed compute resources (including Notebook VMs).",
        actions: &[
            "Microsoft.MachineLearningServices/workspaces/computes/read",
            "Microsoft.MachineLearningServices/workspaces/computes/write",
            "Microsoft.MachineLearningServices/workspaces/computes/delete",
            "Microsoft.MachineLearningServices/workspaces/computes/start/action",
            "Microsoft.MachineLearningServices/workspaces/computes/stop/action",
            "Microsoft.MachineLearningServices/workspaces/computes/restart/action",
            "Microsoft.MachineLearningServices/workspaces/computes/applicationaccess/action",
            "Microsoft.MachineLearningServices/workspaces/notebooks/storage/read",
            "Microsoft.MachineLearningServices/workspaces/notebooks/vm/read",
            "Microsoft.MachineLearningServices/workspaces/computes/updateSchedules/action",
        ],
        not_actions: &[],
        data_actions: &[],
    },
    BuiltInRole {
        guid: "1823dd4f-9b8c-4ab6-ab4e-7397a3684615",
        name: "AzureML Registry User",
        description: "Can perform all actions on Machine Learning Services Registry assets as well as get Registry resources.",
        actions: &[
            "Microsoft.MachineLearningServices/registries/read",
            "Microsoft.MachineLearningServices/registries/assets/read",
            "Microsoft.MachineLearningServices/registries/assets/write",
            "Microsoft.MachineLearningServices/registries/assets/delete",
            "Microsoft.MachineLearningServices/registries/checkNameAvailability/read",
        ],
        not_actions: &[],
        data_actions: &[],
    },
    BuiltInRole {
        guid: "635dd51f-9968-44d3-b7fb-6d9a6bd613ae",
        name: "AzureML Metrics Writer (preview)",
        description: "Lets you write metrics to AzureML workspace",
        actions: &["Microsoft.MachineLearningServices/workspaces/metrics/*/write"],
        not_actions: &[],
        data_actions: &[],
    },
    BuiltInRole {
        guid: "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
        name: "Storage Blob Data Reader",
        description: "Allows for read access to Azure Storage blob containers and data",
        actions: &[
            "Microsoft.Storage/storageAccounts/blobServices/containers/read",
            "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
        ],
        not_actions: &[],
        data_actions: &["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"],
    },
    BuiltInRole {
        guid: "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
        name: "Storage Blob Data Contributor",
        description: "Allows for read, write and delete access to Azure Storage blob containers and data",
        actions: &[
            "Microsoft.Storage/storageAccounts/blobServices/containers/delete",
            "Microsoft.Storage/storageAccounts/blobServices/containers/read",
            "Microsoft.Storage/storageAccounts/blobServices/containers/write",
            "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
        ],
        not_actions: &[],
        data_actions: &[
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/move/action",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action",
        ],
    },
    BuiltInRole {
        guid: "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
        name: "Storage Blob Data Owner",
        description: "Allows for full access to Azure Storage blob containers and data, including assigning POSIX access control.",
        actions: &[
            "Microsoft.Storage/storageAccounts/blobServices/containers/*",
            "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
        ],
        not_actions: &[],
        data_actions: &["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*"],
    },
    BuiltInRole {
        guid: "4633458b-17de-408a-b874-0445c86b69e6",
        name: "Key Vault Secrets User",
        description: "Read secret contents. Only works for key vaults that use the 'Azure role-based access control' permission model.",
        actions: &[],
        not_actions: &[],
        data_actions: &[
            "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
        ],
    },
    BuiltInRole {
        guid: "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
        name: "Key Vault Secrets Officer",
        description: "Perform any action on the secrets of a key vault, except manage permissions. Only works for key vaults that use the 'Azure role-based access control' permission model.",
        actions: &[
            "Microsoft.Authorization/*/read",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Support/*",
            "Microsoft.KeyVault/checkNameAvailability/read",
            "Microsoft.KeyVault/deletedVaults/read",
            "Microsoft.KeyVault/locations/*/read",
            "Microsoft.KeyVault/vaults/*/read",
            "Microsoft.KeyVault/operations/read",
        ],
        not_actions: &[],
        data_actions: &["Microsoft.KeyVault/vaults/secrets/*"],
    },
    BuiltInRole {
        guid: "7f951dda-4ed3-4680-a7ca-43fe172d538d",
        name: "AcrPull",
        description: "acr pull",
        actions: &["Microsoft.ContainerRegistry/registries/pull/read"],
        not_actions: &[],
        data_actions: &[],
    },
    BuiltInRole {
        guid: "8311e382-0749-4cb8-b61a-304f252e45ec",
        name: "AcrPush",
        description: "acr push",
        actions: &[
            "Microsoft.ContainerRegistry/registries/pull/read",
            "Microsoft.ContainerRegistry/registries/push/write",
        ],
        not_actions: &[],
        data_actions: &[],
    },
    BuiltInRole {
        guid: "f1a07417-d97a-45cb-824c-7a7467783830",
        name: "Managed Identity Operator",
        description: "Read and Assign User Assigned Identity",
        actions: &[
            "Microsoft.ManagedIdentity/userAssignedIdentities/*/read",
            "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
            "Microsoft.Authorization/*/read",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Support/*",
        ],
        not_actions: &[],
        data_actions: &[],
    },
];

/// Looks a role up by GUID (case-insensitive).
pub fn by_guid(guid: &str) -> Option<&'static BuiltInRole> {
    BUILT_IN.iter().find(|r| eq_ci(r.guid, guid))
}

/// Looks a role up by exact name (case-insensitive).
pub fn by_name(name: &str) -> Option<&'static BuiltInRole> {
    BUILT_IN.iter().find(|r| eq_ci(r.name, name))
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
        "id": definition_id(scope, role.guid),
        "name": role.guid,
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": role.name,
            "type": "BuiltInRole",
            "description": role.description,
            "assignableScopes": ["/"],
            "permissions": [{
                "actions": role.actions,
                "notActions": role.not_actions,
                "dataActions": role.data_actions,
                "notDataActions": [],
            }],
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
        assert_eq!(by_name("azureml data scientist").map(|r| r.guid), Some("f6c7c914-8db3-469d-8ca1-694a8f32e121"));
        assert_eq!(by_guid("ACDD72A7-3385-48EF-BD42-F606FBA81AE7").map(|r| r.name), Some("Reader"));
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
