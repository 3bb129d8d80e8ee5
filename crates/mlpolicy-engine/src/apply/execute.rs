//! Executing one operation: the Azure calls that create, update, adopt or delete an object.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use super::schedule::{Op, Step};
use crate::lower::{Desired, DesiredWorkspace, PrincipalRef};
use crate::plan::{Action, Change, ObjectKind};
use mlpolicy_azure::{
    AzureClient, AzureError, FederatedCredentialProperties, GroupUpsert, RoleAssignmentRequest, capture_request_ids,
};

/// What one finished operation produced.
#[expect(clippy::struct_field_names, reason = "they are all ids, as Azure names them")]
pub(super) struct OpOutput {
    pub(super) azure_id: String,
    pub(super) request_id: Option<String>,
    pub(super) correlation_id: Option<String>,
}

/// State shared by the operations of one apply.
pub(super) struct Shared {
    pub(super) client: AzureClient,
    /// Object ids of principals created or read during this apply, by address.
    pub(super) principals: Mutex<HashMap<String, String>>,
    /// Resolved principals named by the configuration.
    pub(super) resolved: Mutex<HashMap<PrincipalRef, String>>,
}

/// `(subscription, resource group, name)` of an ARM id (`mlpolicy_vocab::arm::resource_parts`).
fn arm_parts(id: &str) -> Option<(String, String, String)> {
    mlpolicy_vocab::arm::resource_parts(id).map(|(s, rg, n)| (s.to_owned(), rg.to_owned(), n.to_owned()))
}

fn local(op: &str, message: impl Into<String>) -> AzureError {
    AzureError::local(op, "InvalidPlan", message)
}

/// The body of a workspace PUT (docs/azure-wire.md §3.2, §3.3).
pub fn workspace_body(w: &DesiredWorkspace) -> serde_json::Value {
    let mut properties = serde_json::json!({
        "storageAccount": w.storage_account,
        "keyVault": w.key_vault,
        "publicNetworkAccess": if w.public_network_access { "Enabled" } else { "Disabled" },
    });
    let mut set = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            properties[k] = serde_json::json!(v);
        }
    };
    set("applicationInsights", &w.application_insights);
    set("containerRegistry", &w.container_registry);
    set("friendlyName", &w.friendly_name);
    set("description", &w.description);
    let identity = match &w.user_identity {
        None => serde_json::json!({ "type": "SystemAssigned" }),
        Some(id) => {
            properties["primaryUserAssignedIdentity"] = serde_json::json!(id);
            serde_json::json!({ "type": "UserAssigned", "userAssignedIdentities": { id.clone(): {} } })
        }
    };
    serde_json::json!({
        "location": w.location,
        "tags": w.tags,
        "identity": identity,
        "properties": properties,
    })
}

impl Shared {
    /// The object id of a principal: created in this apply, known from the plan, or read now.
    async fn principal(&self, p: &PrincipalRef) -> Result<String, AzureError> {
        let op = format!("resolve principal {}", p.display());
        let by_address = match p {
            PrincipalRef::Group { address, .. }
            | PrincipalRef::Identity { address, .. }
            | PrincipalRef::WorkspaceSystem { address, .. } => {
                self.principals.lock().ok().and_then(|m| m.get(address).cloned())
            }
            _ => None,
        };
        if let Some(id) = by_address.or_else(|| self.resolved.lock().ok().and_then(|m| m.get(p).cloned())) {
            return Ok(id);
        }
        let c = &self.client;
        let found = match p {
            PrincipalRef::User { upn } => c.get_user(upn).await?.map(|u| u.id),
            PrincipalRef::ServicePrincipal { name } => {
                let found = c.find_service_principal(name).await?;
                if found.len() > 1 {
                    return Err(local(&op, format!("{} service principals are named `{name}`", found.len())));
                }
                found.into_iter().next().map(|s| s.id)
            }
            PrincipalRef::ExistingGroup { name } => {
                let found = c.find_groups_by_display_name(name).await?;
                if found.len() > 1 {
                    return Err(local(&op, format!("{} groups are named `{name}`", found.len())));
                }
                found.into_iter().next().map(|g| g.id)
            }
            PrincipalRef::Group { unique_name, .. } => c.get_group_by_unique_name(unique_name).await?.map(|g| g.id),
            PrincipalRef::Identity { id, .. } => {
                let (s, rg, n) = arm_parts(id).ok_or_else(|| local(&op, format!("not an ARM id: {id}")))?;
                c.get_user_assigned_identity(&s, &rg, &n).await?.and_then(|i| i.properties.principal_id)
            }
            PrincipalRef::WorkspaceSystem { id, .. } => {
                let (s, rg, n) = arm_parts(id).ok_or_else(|| local(&op, format!("not an ARM id: {id}")))?;
                c.get_workspace(&s, &rg, &n).await?.and_then(|w| w.identity).and_then(|i| i.principal_id)
            }
        };
        let id = found.map(|s| s.to_ascii_lowercase()).ok_or_else(|| {
            let mut e = AzureError::local(&op, "PrincipalNotFound", format!("`{}` does not exist", p.display()));
            e.status = 404;
            e
        })?;
        if let Ok(mut m) = self.resolved.lock() {
            m.insert(p.clone(), id.clone());
        }
        Ok(id)
    }

    /// Resolves every user the groups name in batches, before the membership layer.
    pub(super) async fn prefetch_users(&self, ops: &[Op]) {
        let mut upns: BTreeSet<String> = BTreeSet::new();
        for op in ops {
            if let Some(Desired::Group(g)) = &op.change.desired {
                for p in g.members.iter().chain(&g.owners) {
                    if let PrincipalRef::User { upn } = p {
                        upns.insert(upn.clone());
                    }
                }
            }
        }
        if upns.is_empty() {
            return;
        }
        let upns: Vec<String> = upns.into_iter().collect();
        // A failure here only means each user is read on its own later.
        if let Ok(found) = self.client.resolve_upns(&upns).await
            && let Ok(mut m) = self.resolved.lock()
        {
            for (upn, user) in found {
                if let Some(u) = user {
                    m.insert(PrincipalRef::User { upn }, u.id.to_ascii_lowercase());
                }
            }
        }
    }

    pub(super) fn remember(&self, address: &str, principal_id: Option<&String>) {
        if let (Some(id), Ok(mut m)) = (principal_id, self.principals.lock()) {
            m.insert(address.to_owned(), id.to_ascii_lowercase());
        }
    }

    pub(super) async fn run(&self, op: &Op) -> Result<OpOutput, AzureError> {
        let (result, ids) = capture_request_ids(self.execute(op)).await;
        let (azure_id, principal_id) = result?;
        self.remember(&op.change.address, principal_id.as_ref());
        let (request_id, correlation_id) = ids.map_or((None, None), |i| (i.request_id, i.correlation_id));
        Ok(OpOutput { azure_id, request_id, correlation_id })
    }

    async fn execute(&self, op: &Op) -> Result<(String, Option<String>), AzureError> {
        let c = &op.change;
        let client = &self.client;
        let what = format!("apply {}", c.address);
        if op.step == Step::Delete {
            return self.delete(c).await.map(|()| (c.azure_id.clone(), None));
        }
        let Some(desired) = &c.desired else { return Err(local(&what, "the change carries no desired object")) };
        let replace = c.action == Action::Replace;
        match (desired, op.step) {
            (Desired::ResourceGroup(r), _) => {
                if replace {
                    client.delete_resource_group(&r.subscription, &r.name).await?;
                }
                let rg = client.put_resource_group(&r.subscription, &r.name, &r.location, &r.tags).await?;
                Ok((rg.id, None))
            }
            (Desired::Identity(i), _) => {
                if replace {
                    client.delete_user_assigned_identity(&i.subscription, &i.resource_group, &i.name).await?;
                }
                let out = client
                    .put_user_assigned_identity(&i.subscription, &i.resource_group, &i.name, &i.location, &i.tags)
                    .await?;
                Ok((out.id, out.properties.principal_id))
            }
            (Desired::Workspace(w), _) => {
                if replace {
                    // The replacement reuses the name, which a soft-deleted workspace would keep.
                    client.delete_workspace(&w.subscription, &w.resource_group, &w.name, true).await?;
                }
                let out = client.put_workspace(&w.subscription, &w.resource_group, &w.name, &workspace_body(w)).await?;
                let principal = out.identity.and_then(|i| i.principal_id);
                Ok((out.id, principal))
            }
            (Desired::Federated(f), _) => {
                let props = FederatedCredentialProperties {
                    issuer: f.issuer.clone(),
                    subject: f.subject.clone(),
                    audiences: f.audiences.clone(),
                };
                let out = client.put_federated_credential(&f.identity_id, &f.name, &props).await?;
                Ok((out.id, None))
            }
            (Desired::Group(g), Step::GroupUpsert) => {
                if let Some(id) = &c.live_ref.adopt_object_id {
                    // A group made outside mlpolicy: its `uniqueName` is set (once, as Graph
                    // allows while it is empty) instead of upserting, which would create a
                    // second group.
                    let mut patch = serde_json::json!({
                        "uniqueName": g.unique_name,
                        "displayName": g.display_name,
                        "mailNickname": g.mail_nickname,
                    });
                    if let Some(d) = &g.description {
                        patch["description"] = serde_json::json!(d);
                    }
                    client.patch_group(id, &patch).await?;
                    let id = id.to_ascii_lowercase();
                    return Ok((id.clone(), Some(id)));
                }
                let upsert = GroupUpsert::security_group(
                    &g.unique_name,
                    &g.display_name,
                    &g.mail_nickname,
                    g.description.as_deref(),
                );
                let out = client.upsert_group(&upsert).await?;
                let id = out.group.id.to_ascii_lowercase();
                Ok((id.clone(), Some(id)))
            }
            (Desired::Group(g), _) => {
                let gid = self
                    .principal(&PrincipalRef::Group {
                        address: c.address.clone(),
                        unique_name: g.unique_name.clone(),
                        display_name: g.display_name.clone(),
                    })
                    .await?;
                self.sync_members(&gid, &g.owners, true, false).await?;
                self.sync_members(&gid, &g.members, false, g.members_additive).await?;
                Ok((gid.clone(), Some(gid)))
            }
            (Desired::RoleAssignment(r), _) => {
                let principal_id = match &c.live_ref.principal_id {
                    Some(id) => id.clone(),
                    None => self.principal(&r.principal).await?,
                };
                let role = c
                    .live_ref
                    .role_guid
                    .clone()
                    .or_else(|| crate::roles::role_guid(None, &r.role))
                    .ok_or_else(|| local(&what, format!("the plan does not say which role `{}` is", r.role)))?;
                let principal_type = c.live_ref.principal_type.unwrap_or_else(|| r.principal.principal_type());
                let existing = (matches!(c.action, Action::Update | Action::Adopt) && !c.azure_id.ends_with("(new)"))
                    .then(|| mlpolicy_vocab::arm::last_segment(&c.azure_id).to_owned());
                let request = RoleAssignmentRequest {
                    scope: r.scope.clone(),
                    role_definition_id: role,
                    principal_id,
                    principal_type,
                    description: Some(r.description.clone()),
                    condition: r.condition.clone(),
                    name: existing,
                };
                let out = client.put_role_assignment(&request).await?;
                Ok((out.assignment.id, None))
            }
        }
    }

    /// Makes a group's owners or members what the configuration says, from a fresh read.
    async fn sync_members(
        &self,
        gid: &str,
        wanted: &[PrincipalRef],
        owners: bool,
        additive: bool,
    ) -> Result<(), AzureError> {
        let client = &self.client;
        let current: BTreeSet<String> =
            if owners { client.list_group_owners(gid).await? } else { client.list_group_members(gid).await? }
                .into_iter()
                .map(|o| o.id.to_ascii_lowercase())
                .collect();
        let mut want = BTreeSet::new();
        for p in wanted {
            want.insert(self.principal(p).await?);
        }
        for id in want.difference(&current) {
            if owners {
                client.add_group_owner(gid, id).await?;
            } else {
                client.add_group_member(gid, id).await?;
            }
        }
        // Extra owners go only once the wanted ones are in, and never down to none.
        if additive || (owners && want.is_empty()) {
            return Ok(());
        }
        for id in current.difference(&want) {
            if owners {
                client.remove_group_owner(gid, id).await?;
            } else {
                client.remove_group_member(gid, id).await?;
            }
        }
        Ok(())
    }

    async fn delete(&self, c: &Change) -> Result<(), AzureError> {
        let client = &self.client;
        let what = format!("delete {}", c.address);
        #[expect(clippy::result_large_err, reason = "AzureError is the client's error type")]
        let parts = || arm_parts(&c.azure_id).ok_or_else(|| local(&what, format!("not an ARM id: {}", c.azure_id)));
        match c.kind {
            ObjectKind::RoleAssignment => {
                client.delete_role_assignment(&c.azure_id).await?;
            }
            ObjectKind::Group => {
                let id = match &c.live_ref.object_id {
                    Some(id) => Some(id.clone()),
                    None => client.get_group_by_unique_name(&c.azure_id).await?.map(|g| g.id),
                };
                if let Some(id) = id {
                    client.delete_group(&id).await?;
                }
            }
            ObjectKind::Federated => {
                let lower = c.azure_id.to_ascii_lowercase();
                let at = lower
                    .rfind("/federatedidentitycredentials/")
                    .ok_or_else(|| local(&what, format!("not a federated credential id: {}", c.azure_id)))?;
                let name = &c.azure_id[at + "/federatedidentitycredentials/".len()..];
                client.delete_federated_credential(&c.azure_id[..at], name).await?;
            }
            ObjectKind::Workspace => {
                let (s, rg, n) = parts()?;
                // Soft delete: recoverable during Azure's retention period.
                client.delete_workspace(&s, &rg, &n, false).await?;
            }
            ObjectKind::Identity => {
                let (s, rg, n) = parts()?;
                client.delete_user_assigned_identity(&s, &rg, &n).await?;
            }
            ObjectKind::ResourceGroup => {
                let (s, _, n) = parts()?;
                client.delete_resource_group(&s, &n).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn workspace_bodies_follow_the_wire_format() {
        let w = DesiredWorkspace {
            id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w".into(),
            subscription: "s".into(),
            resource_group: "rg".into(),
            name: "w".into(),
            location: "westeurope".into(),
            tags: BTreeMap::from([("a".into(), "b".into())]),
            user_identity: Some("/id/uai".into()),
            storage_account: "/st".into(),
            key_vault: "/kv".into(),
            application_insights: None,
            container_registry: Some("/acr".into()),
            public_network_access: false,
            friendly_name: None,
            description: Some("d".into()),
        };
        let b = workspace_body(&w);
        assert_eq!(b["identity"]["type"], "UserAssigned");
        assert!(b["identity"]["userAssignedIdentities"]["/id/uai"].is_object());
        assert_eq!(b["properties"]["primaryUserAssignedIdentity"], "/id/uai");
        assert_eq!(b["properties"]["publicNetworkAccess"], "Disabled");
        assert_eq!(b["properties"]["containerRegistry"], "/acr");
        assert!(b["properties"].get("applicationInsights").is_none());
        let system = workspace_body(&DesiredWorkspace { user_identity: None, ..w });
        assert_eq!(system["identity"], serde_json::json!({"type": "SystemAssigned"}));
    }
}
