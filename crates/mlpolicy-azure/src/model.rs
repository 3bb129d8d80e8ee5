//! Typed views of what mlpolicy reads from ARM and Microsoft Graph.
//!
//! Every struct is lenient: unknown fields are ignored, anything the service may leave out is an
//! `Option` or defaults to empty, so a newer api-version or the emulator never breaks parsing.
//! Request bodies that mlpolicy sends are built next to the calls in `arm.rs` and `graph.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A page of a list response: ARM `nextLink` or Graph `@odata.nextLink`.
#[derive(Debug, Deserialize)]
pub(crate) struct Page<T> {
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    #[serde(default, rename = "nextLink", alias = "@odata.nextLink")]
    pub next_link: Option<String>,
}

/// `Microsoft.Resources/resourceGroups`.
/// A subscription as `GET /subscriptions` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// `/subscriptions/{id}`.
    #[serde(default)]
    pub id: String,
    /// The GUID.
    #[serde(default)]
    pub subscription_id: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceGroup {
    /// ARM id.
    #[serde(default)]
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Region.
    #[serde(default)]
    pub location: String,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// `managedBy`, when set.
    #[serde(default)]
    pub managed_by: Option<String>,
    /// Provisioning state, when reported.
    #[serde(default)]
    pub properties: Option<ProvisioningProperties>,
}

/// `properties.provisioningState` alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvisioningProperties {
    /// `Succeeded`, `Creating`, `Deleting`, ...
    #[serde(default)]
    pub provisioning_state: Option<String>,
}

/// `ManagedServiceIdentity` (docs/azure-wire.md §3.3).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedServiceIdentity {
    /// `None`, `SystemAssigned`, `UserAssigned` or `SystemAssigned,UserAssigned`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Object id of the system-assigned principal, when there is one.
    #[serde(default)]
    pub principal_id: Option<String>,
    /// Tenant of the system-assigned principal.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// UAI ARM id → its principal and client ids.
    #[serde(default)]
    pub user_assigned_identities: BTreeMap<String, UserAssignedIdentityRef>,
}

/// Value of one entry in `userAssignedIdentities`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserAssignedIdentityRef {
    /// Service principal object id.
    #[serde(default)]
    pub principal_id: Option<String>,
    /// Application (client) id.
    #[serde(default)]
    pub client_id: Option<String>,
}

/// `Microsoft.MachineLearningServices/workspaces`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    /// ARM id.
    #[serde(default)]
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Region.
    #[serde(default)]
    pub location: String,
    /// `Default`, `Hub`, `Project`, `FeatureStore`, ...
    #[serde(default)]
    pub kind: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Identity block.
    #[serde(default)]
    pub identity: Option<ManagedServiceIdentity>,
    /// Properties.
    #[serde(default)]
    pub properties: WorkspaceProperties,
}

/// The workspace properties mlpolicy looks at; the rest is in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceProperties {
    /// Provisioning state.
    #[serde(default)]
    pub provisioning_state: Option<String>,
    /// Friendly name.
    #[serde(default)]
    pub friendly_name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Storage account id.
    #[serde(default)]
    pub storage_account: Option<String>,
    /// Key vault id.
    #[serde(default)]
    pub key_vault: Option<String>,
    /// Application Insights id.
    #[serde(default)]
    pub application_insights: Option<String>,
    /// Container registry id.
    #[serde(default)]
    pub container_registry: Option<String>,
    /// `Enabled` / `Disabled`.
    #[serde(default)]
    pub public_network_access: Option<String>,
    /// UAI id used as the workspace identity.
    #[serde(default)]
    pub primary_user_assigned_identity: Option<String>,
    /// `AccessKey`, `Identity`, `UserDelegationSAS`.
    #[serde(default)]
    pub system_datastores_auth_mode: Option<String>,
    /// Workspace GUID.
    #[serde(default)]
    pub workspace_id: Option<String>,
    /// Other properties, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// `Microsoft.ManagedIdentity/userAssignedIdentities`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserAssignedIdentity {
    /// ARM id.
    #[serde(default)]
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Region.
    #[serde(default)]
    pub location: String,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Service-assigned ids.
    #[serde(default)]
    pub properties: UserAssignedIdentityProperties,
}

/// The ids Azure assigns to a UAI.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserAssignedIdentityProperties {
    /// Tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Service principal object id (use for RBAC and group membership).
    #[serde(default)]
    pub principal_id: Option<String>,
    /// Application (client) id (use at the token endpoint).
    #[serde(default)]
    pub client_id: Option<String>,
}

/// A federated identity credential under a UAI.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FederatedCredential {
    /// ARM id.
    #[serde(default)]
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Issuer, subject, audiences.
    #[serde(default)]
    pub properties: FederatedCredentialProperties,
}

/// Issuer, subject and audiences of a FIC (also the PUT body's `properties`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FederatedCredentialProperties {
    /// Token issuer, e.g. `https://token.actions.githubusercontent.com`.
    #[serde(default)]
    pub issuer: String,
    /// Subject, e.g. `repo:org/repo:environment:prod`.
    #[serde(default)]
    pub subject: String,
    /// Exactly one audience, normally `api://AzureADTokenExchange`.
    #[serde(default)]
    pub audiences: Vec<String>,
}

/// `Microsoft.Authorization/roleDefinitions`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleDefinition {
    /// ARM id.
    #[serde(default)]
    pub id: String,
    /// The role GUID.
    #[serde(default)]
    pub name: String,
    /// Properties.
    #[serde(default)]
    pub properties: RoleDefinitionProperties,
}

/// Role name, type and permissions.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleDefinitionProperties {
    /// Display name, e.g. `AzureML Data Scientist`.
    #[serde(default)]
    pub role_name: String,
    /// `BuiltInRole` / `CustomRole`.
    #[serde(rename = "type", default)]
    pub role_type: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Permissions.
    #[serde(default)]
    pub permissions: Vec<Permission>,
    /// Assignable scopes.
    #[serde(default)]
    pub assignable_scopes: Vec<String>,
}

/// One permission block of a role definition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
    /// Control-plane actions.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Excluded control-plane actions.
    #[serde(default)]
    pub not_actions: Vec<String>,
    /// Data-plane actions.
    #[serde(default)]
    pub data_actions: Vec<String>,
    /// Excluded data-plane actions.
    #[serde(default)]
    pub not_data_actions: Vec<String>,
}

/// `Microsoft.Authorization/roleAssignments`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignment {
    /// ARM id.
    #[serde(default)]
    pub id: String,
    /// The assignment GUID.
    #[serde(default)]
    pub name: String,
    /// Properties.
    #[serde(default)]
    pub properties: RoleAssignmentProperties,
}

/// Principal, role and scope of an assignment.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignmentProperties {
    /// Role definition id (subscription-qualified or tenant-level form).
    #[serde(default)]
    pub role_definition_id: String,
    /// Principal object id.
    #[serde(default)]
    pub principal_id: String,
    /// `User`, `Group`, `ServicePrincipal`, `ForeignGroup`.
    #[serde(default)]
    pub principal_type: Option<String>,
    /// Scope, with a leading `/`.
    #[serde(default)]
    pub scope: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// ABAC condition.
    #[serde(default)]
    pub condition: Option<String>,
    /// Condition version (`2.0`).
    #[serde(default)]
    pub condition_version: Option<String>,
    /// Creation time.
    #[serde(default)]
    pub created_on: Option<String>,
    /// Creator object id.
    #[serde(default)]
    pub created_by: Option<String>,
}

impl RoleAssignment {
    /// The role GUID at the end of `roleDefinitionId`, lower-case.
    pub fn role_guid(&self) -> String {
        mlpolicy_vocab::arm::last_segment(&self.properties.role_definition_id).to_ascii_lowercase()
    }
}

/// A Graph group.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// Object id.
    #[serde(default)]
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Tenant-unique client-provided key.
    #[serde(default)]
    pub unique_name: Option<String>,
    /// Mail nickname.
    #[serde(default)]
    pub mail_nickname: Option<String>,
    /// Security group.
    #[serde(default)]
    pub security_enabled: Option<bool>,
    /// Mail enabled.
    #[serde(default)]
    pub mail_enabled: Option<bool>,
    /// `Unified` for Microsoft 365 groups.
    #[serde(default)]
    pub group_types: Vec<String>,
    /// Whether the group can be assigned to Entra roles.
    #[serde(default)]
    pub is_assignable_to_role: Option<bool>,
}

/// A member or owner: any directory object, told apart by `@odata.type`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryObject {
    /// `#microsoft.graph.user`, `#microsoft.graph.group`, `#microsoft.graph.servicePrincipal`, ...
    #[serde(rename = "@odata.type", default)]
    pub odata_type: Option<String>,
    /// Object id.
    #[serde(default)]
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// For users.
    #[serde(default)]
    pub user_principal_name: Option<String>,
    /// For service principals.
    #[serde(default)]
    pub app_id: Option<String>,
    /// For service principals: `Application`, `ManagedIdentity`, ...
    #[serde(default)]
    pub service_principal_type: Option<String>,
}

/// Kind of a directory object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectoryObjectKind {
    /// `#microsoft.graph.user`.
    User,
    /// `#microsoft.graph.group`.
    Group,
    /// `#microsoft.graph.servicePrincipal`.
    ServicePrincipal,
    /// Anything else (devices, contacts, ...).
    Other,
}

impl DirectoryObject {
    /// Kind from `@odata.type`.
    pub fn kind(&self) -> DirectoryObjectKind {
        match self.odata_type.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("#microsoft.graph.user") => DirectoryObjectKind::User,
            Some("#microsoft.graph.group") => DirectoryObjectKind::Group,
            Some("#microsoft.graph.serviceprincipal") => DirectoryObjectKind::ServicePrincipal,
            _ => DirectoryObjectKind::Other,
        }
    }
}

/// A Graph user.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Object id.
    #[serde(default)]
    pub id: String,
    /// UPN.
    #[serde(default)]
    pub user_principal_name: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Mail.
    #[serde(default)]
    pub mail: Option<String>,
    /// `Member` / `Guest`.
    #[serde(default)]
    pub user_type: Option<String>,
    /// Account enabled.
    #[serde(default)]
    pub account_enabled: Option<bool>,
}

/// A Graph service principal (apps and managed identities).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePrincipal {
    /// Object id.
    #[serde(default)]
    pub id: String,
    /// Application (client) id.
    #[serde(default)]
    pub app_id: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// `Application`, `ManagedIdentity`, `Legacy`, ...
    #[serde(default)]
    pub service_principal_type: Option<String>,
    /// Account enabled.
    #[serde(default)]
    pub account_enabled: Option<bool>,
}

/// A Graph application registration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// Object id.
    #[serde(default)]
    pub id: String,
    /// Application (client) id.
    #[serde(default)]
    pub app_id: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Client secrets (metadata only; Graph never returns the secret text on read).
    #[serde(default)]
    pub password_credentials: Vec<PasswordCredential>,
}

/// Metadata of an application client secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PasswordCredential {
    /// Key id.
    #[serde(default)]
    pub key_id: Option<String>,
    /// Description.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Start (RFC 3339).
    #[serde(default)]
    pub start_date_time: Option<String>,
    /// Expiry (RFC 3339).
    #[serde(default)]
    pub end_date_time: Option<String>,
    /// First characters of the secret.
    #[serde(default)]
    pub hint: Option<String>,
}
