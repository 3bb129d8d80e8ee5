//! Azure Resource Manager operations: resource groups, ML workspaces, user-assigned identities
//! and their federated credentials, role definitions and role assignments.
//!
//! Lists follow `nextLink` verbatim and tolerate empty pages. Ids are compared ASCII
//! case-insensitively ([`arm_id_eq`]). Role assignments get a deterministic name
//! ([`role_assignment_name`]), always carry `principalType`, adopt an existing assignment on 409
//! `RoleAssignmentExists`, and retry `PrincipalNotFound` a bounded number of times. FIC writes
//! are serialised per identity because Azure answers concurrent ones with 409.

use std::{collections::HashMap, fmt::Write as _, sync::Arc};

use reqwest::Method;
use serde::de::DeserializeOwned;
use url::Url;
use uuid::Uuid;

use super::{
    AzureClient,
    cloud::Audience,
    error::AzureError,
    http::{Call, backoff_delay, jitter},
    lro::{self, LroKind},
    model::{
        FederatedCredential, FederatedCredentialProperties, Page, ResourceGroup, RoleAssignment, RoleDefinition,
        Subscription, UserAssignedIdentity, Workspace,
    },
};
use mlpolicy_vocab::arm::{canonical, last_segment};

/// api-version for resource groups.
pub const API_RESOURCES: &str = "2025-04-01";
/// Subscriptions (`GET /subscriptions`).
pub const API_SUBSCRIPTIONS: &str = "2022-12-01";
/// api-version for ML workspaces.
pub const API_ML: &str = "2025-06-01";
/// api-version for user-assigned identities and FICs.
pub const API_MANAGED_IDENTITY: &str = "2024-11-30";
/// api-version for role assignments and definitions.
pub const API_AUTHORIZATION: &str = "2022-04-01";

const MAX_PAGES: usize = 10_000;

/// Deterministic assignment name: `UUIDv5` over `lowercase(scope) + principalId + roleGuid`.
pub fn role_assignment_name(scope: &str, principal_id: &str, role_guid: &str) -> Uuid {
    let namespace = Uuid::new_v5(&Uuid::NAMESPACE_URL, b"https://mlpolicy.dev/role-assignment");
    let key = format!("{}{}{}", canonical(scope), principal_id.to_ascii_lowercase(), role_guid.to_ascii_lowercase());
    Uuid::new_v5(&namespace, key.as_bytes())
}

/// Principal type sent with every role assignment (serialised as its wire value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PrincipalType {
    /// A user.
    User,
    /// A security group.
    Group,
    /// An app, managed identity or other service principal.
    ServicePrincipal,
    /// A group from another tenant.
    ForeignGroup,
}

impl PrincipalType {
    /// Wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalType::User => "User",
            PrincipalType::Group => "Group",
            PrincipalType::ServicePrincipal => "ServicePrincipal",
            PrincipalType::ForeignGroup => "ForeignGroup",
        }
    }
}

/// A role assignment to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignmentRequest {
    /// Scope id, e.g. `/subscriptions/{s}/resourceGroups/{rg}`.
    pub scope: String,
    /// Role definition id or bare role GUID.
    pub role_definition_id: String,
    /// Principal object id.
    pub principal_id: String,
    /// Principal type (always sent).
    pub principal_type: PrincipalType,
    /// Description, e.g. `managed by mlpolicy`.
    pub description: Option<String>,
    /// ABAC condition (sent with `conditionVersion` 2.0).
    pub condition: Option<String>,
    /// Name (GUID) of an existing assignment to update in place, e.g. one adopted from outside
    /// mlpolicy; `None` uses the deterministic [`role_assignment_name`].
    pub name: Option<String>,
}

/// Result of [`AzureClient::put_role_assignment`].
#[derive(Debug, Clone, PartialEq)]
pub struct PutRoleAssignmentOutcome {
    /// The assignment as Azure holds it.
    pub assignment: RoleAssignment,
    /// True when an assignment with the same principal, role and scope already existed under
    /// another name and was adopted instead of created.
    pub adopted: bool,
}

/// Role definitions of a subscription, by name and GUID.
#[derive(Debug, Clone, Default)]
pub struct RoleCatalog {
    by_guid: HashMap<String, RoleDefinition>,
    by_name: HashMap<String, String>,
}

impl RoleCatalog {
    /// Builds the maps (names ASCII case-folded).
    pub fn new(definitions: Vec<RoleDefinition>) -> Self {
        let mut catalog = Self::default();
        for def in definitions {
            let guid = last_segment(&def.id).to_ascii_lowercase();
            catalog.by_name.insert(def.properties.role_name.to_ascii_lowercase(), guid.clone());
            catalog.by_guid.insert(guid, def);
        }
        catalog
    }

    /// Definition by role name (case-insensitive).
    pub fn by_name(&self, name: &str) -> Option<&RoleDefinition> {
        self.by_guid.get(self.by_name.get(&name.to_ascii_lowercase())?)
    }

    /// Definition by GUID or full id.
    pub fn by_guid(&self, guid_or_id: &str) -> Option<&RoleDefinition> {
        self.by_guid.get(&last_segment(guid_or_id).to_ascii_lowercase())
    }

    /// All definitions.
    pub fn iter(&self) -> impl Iterator<Item = &RoleDefinition> {
        self.by_guid.values()
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
pub(crate) fn encode_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Sets `url`'s query to the pairs, `%20` for spaces.
pub(crate) fn set_query(url: &mut Url, pairs: &[(&str, &str)]) {
    if pairs.is_empty() {
        url.set_query(None);
        return;
    }
    let query = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode_component(k).replace("%24", "$"), encode_component(v)))
        .collect::<Vec<_>>()
        .join("&");
    url.set_query(Some(&query));
}

/// `OData` string literal: single quotes doubled.
pub(crate) fn odata_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn scope_path(scope: &str) -> String {
    format!("/{}", scope.trim().trim_matches('/'))
}

impl AzureClient {
    pub(crate) fn arm_url(&self, path: &str, api_version: &str, extra: &[(&str, &str)]) -> Result<Url, AzureError> {
        let base = self.core().cloud.arm_base();
        let raw = format!("{}{}", base.as_str().trim_end_matches('/'), scope_path(path));
        let mut url = Url::parse(&raw)
            .map_err(|e| AzureError::local("build ARM URL", "InvalidUrl", format!("invalid URL `{raw}`: {e}")))?;
        let mut pairs = vec![("api-version", api_version)];
        pairs.extend_from_slice(extra);
        set_query(&mut url, &pairs);
        Ok(url)
    }

    /// GET every page of a list, following the next link verbatim.
    pub(crate) async fn list_pages<T: DeserializeOwned>(
        &self,
        audience: Audience,
        first: Url,
        op: &str,
    ) -> Result<Vec<T>, AzureError> {
        let mut items = Vec::new();
        let mut next = Some(first);
        let mut seen = 0usize;
        while let Some(url) = next.take() {
            seen += 1;
            if seen > MAX_PAGES {
                return Err(AzureError::local(op, "TooManyPages", format!("more than {MAX_PAGES} pages")));
            }
            let resp = self.core().send_ok(Call::new(audience, Method::GET, url.clone(), op)).await?;
            let page: Page<T> = resp.json(op)?;
            items.extend(page.value);
            if let Some(link) = page.next_link.filter(|l| !l.is_empty()) {
                let parsed = Url::parse(&link).map_err(|e| {
                    AzureError::local(op, "MalformedResponse", format!("invalid next link `{link}`: {e}"))
                })?;
                if parsed == url {
                    return Err(AzureError::local(op, "MalformedResponse", "the next link repeats the current page"));
                }
                next = Some(parsed);
            }
        }
        Ok(items)
    }

    async fn arm_get_opt<T: DeserializeOwned>(&self, url: Url, op: &str) -> Result<Option<T>, AzureError> {
        let resp = self.core().send(Call::new(Audience::Arm, Method::GET, url, op)).await?;
        match resp.status {
            404 => Ok(None),
            _ if resp.ok() => resp.json(op).map(Some),
            _ => Err(resp.error(op)),
        }
    }

    async fn arm_put<T: DeserializeOwned>(
        &self,
        url: Url,
        body: &serde_json::Value,
        op: &str,
    ) -> Result<T, AzureError> {
        let resp = self.core().send_ok(Call::new(Audience::Arm, Method::PUT, url, op).body(body)).await?;
        resp.json(op)
    }

    /// DELETE; true when something was deleted (200/202), false for 204/404.
    async fn arm_delete(&self, url: Url, op: &str) -> Result<bool, AzureError> {
        let resp = self.core().send(Call::new(Audience::Arm, Method::DELETE, url, op)).await?;
        match resp.status {
            204 | 404 => Ok(false),
            _ if resp.ok() => Ok(true),
            _ => Err(resp.error(op)),
        }
    }

    // ---- subscriptions ---------------------------------------------------------------------

    /// The subscriptions the caller can see.
    pub async fn list_subscriptions(&self) -> Result<Vec<Subscription>, AzureError> {
        let url = self.arm_url("/subscriptions", API_SUBSCRIPTIONS, &[])?;
        self.list_pages(Audience::Arm, url, "list subscriptions").await
    }

    /// `GET /subscriptions/{id}`; `None` when missing.
    pub async fn get_subscription(&self, id: &str) -> Result<Option<Subscription>, AzureError> {
        let url = self.arm_url(&format!("/subscriptions/{id}"), API_SUBSCRIPTIONS, &[])?;
        self.arm_get_opt(url, &format!("read subscription {id}")).await
    }

    // ---- resource groups -------------------------------------------------------------------

    /// `GET /subscriptions/{sub}/resourcegroups/{rg}`; `None` when missing.
    pub async fn get_resource_group(
        &self,
        subscription: &str,
        name: &str,
    ) -> Result<Option<ResourceGroup>, AzureError> {
        let url = self.arm_url(&format!("/subscriptions/{subscription}/resourcegroups/{name}"), API_RESOURCES, &[])?;
        self.arm_get_opt(url, &format!("read resource group {name}")).await
    }

    /// Creates or updates a resource group (synchronous; `location` is immutable).
    pub async fn put_resource_group(
        &self,
        subscription: &str,
        name: &str,
        location: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<ResourceGroup, AzureError> {
        let url = self.arm_url(&format!("/subscriptions/{subscription}/resourcegroups/{name}"), API_RESOURCES, &[])?;
        let body = serde_json::json!({ "location": location, "tags": tags });
        self.arm_put(url, &body, &format!("create or update resource group {name}")).await
    }

    /// Deletes a resource group and everything in it (LRO); false when it did not exist.
    pub async fn delete_resource_group(&self, subscription: &str, name: &str) -> Result<bool, AzureError> {
        let op = format!("delete resource group {name}");
        let url = self.arm_url(&format!("/subscriptions/{subscription}/resourcegroups/{name}"), API_RESOURCES, &[])?;
        let initial = self.core().send(Call::new(Audience::Arm, Method::DELETE, url.clone(), &op)).await?;
        match initial.status {
            204 | 404 => Ok(false),
            _ => {
                lro::complete(self.core(), &self.inner.lro, &op, initial, &url, LroKind::Delete).await?;
                Ok(true)
            }
        }
    }

    /// All resource groups of a subscription.
    pub async fn list_resource_groups(&self, subscription: &str) -> Result<Vec<ResourceGroup>, AzureError> {
        let url = self.arm_url(&format!("/subscriptions/{subscription}/resourcegroups"), API_RESOURCES, &[])?;
        self.list_pages(Audience::Arm, url, &format!("list resource groups in subscription {subscription}")).await
    }

    // ---- ML workspaces ---------------------------------------------------------------------

    fn workspace_path(subscription: &str, rg: &str, name: &str) -> String {
        format!(
            "/subscriptions/{subscription}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{name}"
        )
    }

    /// All ML workspaces of a subscription.
    pub async fn list_workspaces(&self, subscription: &str) -> Result<Vec<Workspace>, AzureError> {
        let url = self.arm_url(
            &format!("/subscriptions/{subscription}/providers/Microsoft.MachineLearningServices/workspaces"),
            API_ML,
            &[],
        )?;
        self.list_pages(Audience::Arm, url, &format!("list ML workspaces in subscription {subscription}")).await
    }

    /// One workspace; `None` when missing.
    pub async fn get_workspace(
        &self,
        subscription: &str,
        rg: &str,
        name: &str,
    ) -> Result<Option<Workspace>, AzureError> {
        let url = self.arm_url(&Self::workspace_path(subscription, rg, name), API_ML, &[])?;
        self.arm_get_opt(url, &format!("read ML workspace {name}")).await
    }

    /// Creates or updates a workspace (LRO) and returns it as finally provisioned.
    pub async fn put_workspace(
        &self,
        subscription: &str,
        rg: &str,
        name: &str,
        body: &serde_json::Value,
    ) -> Result<Workspace, AzureError> {
        self.workspace_write(Method::PUT, subscription, rg, name, body, "create or update").await
    }

    /// Patches a workspace (LRO) and returns it as finally provisioned.
    pub async fn patch_workspace(
        &self,
        subscription: &str,
        rg: &str,
        name: &str,
        body: &serde_json::Value,
    ) -> Result<Workspace, AzureError> {
        self.workspace_write(Method::PATCH, subscription, rg, name, body, "update").await
    }

    async fn workspace_write(
        &self,
        method: Method,
        subscription: &str,
        rg: &str,
        name: &str,
        body: &serde_json::Value,
        verb: &str,
    ) -> Result<Workspace, AzureError> {
        let op = format!("{verb} ML workspace {name}");
        let url = self.arm_url(&Self::workspace_path(subscription, rg, name), API_ML, &[])?;
        let initial = self.core().send(Call::new(Audience::Arm, method, url.clone(), &op).body(body)).await?;
        let done = lro::complete(self.core(), &self.inner.lro, &op, initial, &url, LroKind::Write).await?;
        let value = done.unwrap_or(serde_json::Value::Null);
        serde_json::from_value(value)
            .map_err(|e| AzureError::local(&op, "MalformedResponse", format!("unexpected workspace body: {e}")))
    }

    /// Deletes a workspace (LRO); `force_to_purge` skips soft delete so the name can be reused.
    /// Returns false when it did not exist.
    pub async fn delete_workspace(
        &self,
        subscription: &str,
        rg: &str,
        name: &str,
        force_to_purge: bool,
    ) -> Result<bool, AzureError> {
        let op = format!("delete ML workspace {name}");
        let extra: &[(&str, &str)] = if force_to_purge { &[("forceToPurge", "true")] } else { &[] };
        let url = self.arm_url(&Self::workspace_path(subscription, rg, name), API_ML, extra)?;
        let initial = self.core().send(Call::new(Audience::Arm, Method::DELETE, url.clone(), &op)).await?;
        match initial.status {
            204 | 404 => Ok(false),
            _ => {
                lro::complete(self.core(), &self.inner.lro, &op, initial, &url, LroKind::Delete).await?;
                Ok(true)
            }
        }
    }

    // ---- user-assigned identities ----------------------------------------------------------

    fn identity_path(subscription: &str, rg: &str, name: &str) -> String {
        format!(
            "/subscriptions/{subscription}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
        )
    }

    /// All user-assigned identities of a subscription.
    pub async fn list_user_assigned_identities(
        &self,
        subscription: &str,
    ) -> Result<Vec<UserAssignedIdentity>, AzureError> {
        let url = self.arm_url(
            &format!("/subscriptions/{subscription}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"),
            API_MANAGED_IDENTITY,
            &[],
        )?;
        self.list_pages(Audience::Arm, url, &format!("list managed identities in subscription {subscription}")).await
    }

    /// One identity; `None` when missing.
    pub async fn get_user_assigned_identity(
        &self,
        subscription: &str,
        rg: &str,
        name: &str,
    ) -> Result<Option<UserAssignedIdentity>, AzureError> {
        let url = self.arm_url(&Self::identity_path(subscription, rg, name), API_MANAGED_IDENTITY, &[])?;
        self.arm_get_opt(url, &format!("read managed identity {name}")).await
    }

    /// Creates or updates an identity (synchronous).
    pub async fn put_user_assigned_identity(
        &self,
        subscription: &str,
        rg: &str,
        name: &str,
        location: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<UserAssignedIdentity, AzureError> {
        let url = self.arm_url(&Self::identity_path(subscription, rg, name), API_MANAGED_IDENTITY, &[])?;
        let body = serde_json::json!({ "location": location, "tags": tags });
        self.arm_put(url, &body, &format!("create or update managed identity {name}")).await
    }

    /// Deletes an identity; false when it did not exist.
    pub async fn delete_user_assigned_identity(
        &self,
        subscription: &str,
        rg: &str,
        name: &str,
    ) -> Result<bool, AzureError> {
        let url = self.arm_url(&Self::identity_path(subscription, rg, name), API_MANAGED_IDENTITY, &[])?;
        self.arm_delete(url, &format!("delete managed identity {name}")).await
    }

    // ---- federated identity credentials ----------------------------------------------------

    fn fic_lock(&self, identity_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let key = canonical(identity_id);
        match self.inner.fic_locks.lock() {
            Ok(mut map) => map.entry(key).or_default().clone(),
            Err(_) => Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// FICs of one identity (`identity_id` is the UAI's ARM id).
    pub async fn list_federated_credentials(&self, identity_id: &str) -> Result<Vec<FederatedCredential>, AzureError> {
        let url = self.arm_url(
            &format!("{}/federatedIdentityCredentials", scope_path(identity_id)),
            API_MANAGED_IDENTITY,
            &[],
        )?;
        self.list_pages(Audience::Arm, url, &format!("list federated credentials of {}", last_segment(identity_id)))
            .await
    }

    /// Creates or updates a FIC; writes to one identity are serialised, and a 409 from a
    /// concurrent writer elsewhere is retried with backoff.
    pub async fn put_federated_credential(
        &self,
        identity_id: &str,
        name: &str,
        properties: &FederatedCredentialProperties,
    ) -> Result<FederatedCredential, AzureError> {
        let op = format!("create or update federated credential {name} on {}", last_segment(identity_id));
        let url = self.arm_url(
            &format!("{}/federatedIdentityCredentials/{name}", scope_path(identity_id)),
            API_MANAGED_IDENTITY,
            &[],
        )?;
        let body = serde_json::json!({ "properties": properties });
        let lock = self.fic_lock(identity_id);
        let _guard = lock.lock().await;
        self.fic_write(Method::PUT, url, Some(&body), &op)
            .await?
            .map_or_else(|| Err(AzureError::local(&op, "MalformedResponse", "empty response")), |resp| resp.json(&op))
    }

    /// Deletes a FIC; false when it did not exist.
    pub async fn delete_federated_credential(&self, identity_id: &str, name: &str) -> Result<bool, AzureError> {
        let op = format!("delete federated credential {name} on {}", last_segment(identity_id));
        let url = self.arm_url(
            &format!("{}/federatedIdentityCredentials/{name}", scope_path(identity_id)),
            API_MANAGED_IDENTITY,
            &[],
        )?;
        let lock = self.fic_lock(identity_id);
        let _guard = lock.lock().await;
        Ok(match self.fic_write(Method::DELETE, url, None, &op).await? {
            Some(resp) => resp.status != 204,
            None => false,
        })
    }

    async fn fic_write(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        op: &str,
    ) -> Result<Option<super::http::Resp>, AzureError> {
        let policy = &self.core().retry;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut call = Call::new(Audience::Arm, method.clone(), url.clone(), op);
            if let Some(b) = body {
                call = call.body(b);
            }
            let resp = self.core().send(call).await?;
            if resp.ok() {
                return Ok(Some(resp));
            }
            if resp.status == 404 && method == Method::DELETE {
                return Ok(None);
            }
            if resp.status == 409 && attempt < policy.max_attempts {
                let delay = backoff_delay(attempt, policy, jitter());
                self.log(&format!("{op}: 409 concurrent write on the identity; retrying in {delay:?}"));
                tokio::time::sleep(delay).await;
                continue;
            }
            return Err(resp.error(op));
        }
    }

    // ---- role definitions ------------------------------------------------------------------

    /// Role definitions applicable at `scope` (built-ins and custom roles at or above it).
    pub async fn list_role_definitions(&self, scope: &str) -> Result<Vec<RoleDefinition>, AzureError> {
        let url = self.arm_url(
            &format!("{}/providers/Microsoft.Authorization/roleDefinitions", scope_path(scope)),
            API_AUTHORIZATION,
            &[],
        )?;
        self.list_pages(Audience::Arm, url, &format!("list role definitions at {scope}")).await
    }

    /// The subscription's role definitions, listed once and cached for the client's lifetime.
    pub async fn role_catalog(&self, subscription: &str) -> Result<Arc<RoleCatalog>, AzureError> {
        let key = subscription.to_ascii_lowercase();
        let mut cache = self.inner.role_catalogs.lock().await;
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        let defs = self.list_role_definitions(&format!("/subscriptions/{subscription}")).await?;
        let catalog = Arc::new(RoleCatalog::new(defs));
        cache.insert(key, catalog.clone());
        Ok(catalog)
    }

    /// One role definition by full id; `None` when missing.
    pub async fn get_role_definition(&self, id: &str) -> Result<Option<RoleDefinition>, AzureError> {
        let url = self.arm_url(id, API_AUTHORIZATION, &[])?;
        self.arm_get_opt(url, &format!("read role definition {}", last_segment(id))).await
    }

    // ---- role assignments ------------------------------------------------------------------

    /// Every assignment in a subscription (at, above and below it) in one paged call.
    pub async fn list_role_assignments_for_subscription(
        &self,
        subscription: &str,
    ) -> Result<Vec<RoleAssignment>, AzureError> {
        let url = self.arm_url(
            &format!("/subscriptions/{subscription}/providers/Microsoft.Authorization/roleAssignments"),
            API_AUTHORIZATION,
            &[],
        )?;
        self.list_pages(Audience::Arm, url, &format!("list role assignments in subscription {subscription}")).await
    }

    /// Assignments at `scope` or inherited from above it (`$filter=atScope()`).
    pub async fn list_role_assignments_at_scope(&self, scope: &str) -> Result<Vec<RoleAssignment>, AzureError> {
        let url = self.arm_url(
            &format!("{}/providers/Microsoft.Authorization/roleAssignments", scope_path(scope)),
            API_AUTHORIZATION,
            &[("$filter", "atScope()")],
        )?;
        self.list_pages(Audience::Arm, url, &format!("list role assignments at {scope}")).await
    }

    /// A principal's assignments at, above or below `scope`.
    pub async fn list_role_assignments_for_principal(
        &self,
        scope: &str,
        principal_id: &str,
    ) -> Result<Vec<RoleAssignment>, AzureError> {
        let filter = format!("principalId eq {}", odata_quote(principal_id));
        let url = self.arm_url(
            &format!("{}/providers/Microsoft.Authorization/roleAssignments", scope_path(scope)),
            API_AUTHORIZATION,
            &[("$filter", &filter)],
        )?;
        self.list_pages(Audience::Arm, url, &format!("list role assignments of {principal_id} under {scope}")).await
    }

    /// One assignment by full id; `None` when missing.
    pub async fn get_role_assignment(&self, id: &str) -> Result<Option<RoleAssignment>, AzureError> {
        let url = self.arm_url(id, API_AUTHORIZATION, &[])?;
        self.arm_get_opt(url, &format!("read role assignment {}", last_segment(id))).await
    }

    /// Deletes an assignment by full id; false when it was already gone.
    pub async fn delete_role_assignment(&self, id: &str) -> Result<bool, AzureError> {
        let url = self.arm_url(id, API_AUTHORIZATION, &[])?;
        self.arm_delete(url, &format!("delete role assignment {}", last_segment(id))).await
    }

    /// Full role definition id for a GUID or id, qualified by the scope's subscription.
    pub fn role_definition_id_for(scope: &str, role: &str) -> String {
        if role.contains('/') {
            return role.to_string();
        }
        let mut segments = scope.trim_matches('/').split('/');
        match (segments.next(), segments.next()) {
            (Some(s), Some(sub)) if s.eq_ignore_ascii_case("subscriptions") => {
                format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{role}")
            }
            _ => format!("/providers/Microsoft.Authorization/roleDefinitions/{role}"),
        }
    }

    /// Creates a role assignment under its deterministic name. 409 `RoleAssignmentExists`
    /// adopts the existing assignment; 400 `PrincipalNotFound` is retried with bounded backoff.
    pub async fn put_role_assignment(
        &self,
        request: &RoleAssignmentRequest,
    ) -> Result<PutRoleAssignmentOutcome, AzureError> {
        let role_id = Self::role_definition_id_for(&request.scope, &request.role_definition_id);
        let role_guid = last_segment(&role_id).to_ascii_lowercase();
        let name = request.name.clone().unwrap_or_else(|| {
            role_assignment_name(&request.scope, &request.principal_id, &role_guid).hyphenated().to_string()
        });
        let op = format!(
            "create role assignment {role_guid} for {} {} on {}",
            request.principal_type.as_str(),
            request.principal_id,
            request.scope
        );
        let url = self.arm_url(
            &format!("{}/providers/Microsoft.Authorization/roleAssignments/{name}", scope_path(&request.scope)),
            API_AUTHORIZATION,
            &[],
        )?;
        let mut properties = serde_json::json!({
            "roleDefinitionId": role_id,
            "principalId": request.principal_id,
            "principalType": request.principal_type.as_str(),
        });
        if let Some(d) = &request.description {
            properties["description"] = serde_json::json!(d);
        }
        if let Some(c) = &request.condition {
            properties["condition"] = serde_json::json!(c);
            properties["conditionVersion"] = serde_json::json!("2.0");
        }
        let body = serde_json::json!({ "properties": properties });
        let mut patience = self.inner.replication.rbac();
        loop {
            let resp = self.core().send(Call::new(Audience::Arm, Method::PUT, url.clone(), &op).body(&body)).await?;
            if resp.ok() {
                return Ok(PutRoleAssignmentOutcome { assignment: resp.json(&op)?, adopted: false });
            }
            let err = resp.error(&op);
            if resp.status == 409 && err.has_code("RoleAssignmentExists") {
                if let Some(existing) = self.find_existing_assignment(request, &role_guid, &err).await? {
                    self.log(&format!("{op}: already exists as {}; adopted", existing.name));
                    return Ok(PutRoleAssignmentOutcome { assignment: existing, adopted: true });
                }
                return Err(err);
            }
            if err.has_code("PrincipalNotFound")
                && let Some(delay) = patience.next()
            {
                self.log(&format!(
                    "{op}: principal not yet replicated (attempt {}); retrying in {delay:?}",
                    patience.attempts()
                ));
                tokio::time::sleep(delay).await;
                continue;
            }
            return Err(err);
        }
    }

    async fn find_existing_assignment(
        &self,
        request: &RoleAssignmentRequest,
        role_guid: &str,
        err: &AzureError,
    ) -> Result<Option<RoleAssignment>, AzureError> {
        if let Some(existing) = err.existing_role_assignment_name() {
            let id = format!(
                "{}/providers/Microsoft.Authorization/roleAssignments/{}",
                scope_path(&request.scope),
                existing.hyphenated()
            );
            if let Some(found) = self.get_role_assignment(&id).await? {
                return Ok(Some(found));
            }
        }
        let candidates = self.list_role_assignments_for_principal(&request.scope, &request.principal_id).await?;
        Ok(candidates.into_iter().find(|a| {
            mlpolicy_vocab::arm::same_id(&a.properties.scope, &scope_path(&request.scope))
                && a.role_guid() == role_guid
                && a.properties.principal_id.eq_ignore_ascii_case(&request.principal_id)
        }))
    }
}
