//! Apply: carries out a plan's changes against Azure through the project's client.
//!
//! Changes run in fixed dependency layers, which is a valid topological order of everything
//! the language can express: resource groups → identities → workspaces → federated credentials
//! → group upserts → group memberships (owners before members) → role assignments, then the
//! deletions in reverse (role assignments, groups, federated credentials, workspaces,
//! identities, resource groups). Within a layer up to `parallelism` operations run at once. A
//! failed object fails only itself: later objects that depend on it — by ARM id containment, by
//! naming it as a principal, or by using it as a workspace identity — are skipped, and
//! independent ones continue.
//!
//! Every operation is idempotent (PUT, upsert by `uniqueName`, `$ref` adds where "already
//! exists" counts as done, DELETE where "already gone" counts as done), and group memberships
//! are computed from a fresh read of the group, so a rerun after an interruption at any point
//! converges without duplicates.
//!
//! Workspaces: a deletion soft-deletes (`forceToPurge=false`, recoverable for Azure's retention
//! period); a replacement, which must reuse the name, purges (`forceToPurge=true`).
//!
//! Codes: E0701 (an object failed), E0702 (self-lock-out refused), E0703 (stale saved plan),
//! E0704 (altered or invalid plan file), E0705 (audit log cannot be written).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinSet;

use crate::diff::{DiffInput, DiffOptions, fingerprint};
use crate::lower::{Desired, DesiredState, DesiredWorkspace, PrincipalRef};
use crate::plan::{Action, Change, ObjectKind, SavedPlan, SavedPlanError};
use mlpolicy_azure::{
    AzureClient, AzureError, FederatedCredentialProperties, GroupUpsert, RoleAssignmentRequest, capture_request_ids,
};
use mlpolicy_lang::diagnostics::Code;
use mlpolicy_lang::diagnostics::Diagnostic;
use mlpolicy_vocab::arm::canonical;
use mlpolicy_vocab::time::rfc3339_now;

/// Roles that let a principal manage access (Owner, User Access Administrator, Role Based
/// Access Control Administrator), by definition GUID.
pub const ACCESS_ADMIN_ROLES: [&str; 3] = [
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
];

/// Default operations in flight at once.
pub const DEFAULT_PARALLELISM: usize = 10;

/// How to apply.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Operations in flight at once within a layer (at least 1).
    pub parallelism: usize,
    /// Allow removing the running principal's last access-managing role assignment at a scope.
    pub allow_self_lockout: bool,
    /// Append one JSON line per change made to this file.
    pub audit_log: Option<PathBuf>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self { parallelism: DEFAULT_PARALLELISM, allow_self_lockout: false, audit_log: None }
    }
}

/// Progress of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyEvent {
    Started {
        address: String,
        action: Action,
    },
    Finished {
        address: String,
        action: Action,
        azure_id: String,
        elapsed: Duration,
        request_id: Option<String>,
        correlation_id: Option<String>,
    },
    Failed {
        address: String,
        error: String,
    },
    Skipped {
        address: String,
        reason: String,
    },
}

/// One object apply changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub address: String,
    pub action: Action,
    /// The object in Azure after the change (a group's object id).
    pub azure_id: String,
}

/// What apply did.
#[derive(Debug, Clone, Default)]
pub struct ApplyReport {
    pub done: Vec<Done>,
    /// One E0701 per failed object (or one E0702 / E0705 that stopped apply before it began).
    pub failed: Vec<Diagnostic>,
    /// Address and reason of each object not attempted.
    pub skipped: Vec<(String, String)>,
    /// `Apply complete: 3 added, 1 changed, 0 destroyed.` or `Apply failed: ...`.
    pub summary: String,
}

impl ApplyReport {
    /// Whether every change was made.
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty()
    }
}

/// The phases of apply, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Write,
    GroupUpsert,
    GroupMembers,
    Delete,
}

#[derive(Debug, Clone)]
struct Op {
    step: Step,
    change: Change,
}

/// What one finished operation produced.
#[expect(clippy::struct_field_names, reason = "they are all ids, as Azure names them")]
struct OpOutput {
    azure_id: String,
    /// Object id of the principal the object is or carries (identity, system identity, group).
    principal_id: Option<String>,
    request_id: Option<String>,
    correlation_id: Option<String>,
}

/// State shared by the operations of one apply.
struct Shared {
    client: AzureClient,
    /// Object ids of principals created or read during this apply, by address.
    principals: Mutex<HashMap<String, String>>,
    /// Resolved principals named by the configuration.
    resolved: Mutex<HashMap<PrincipalRef, String>>,
}

/// Orders the actionable changes into layers.
fn layers(changes: &[Change]) -> Vec<Vec<Op>> {
    let write_rank = |kind: ObjectKind| match kind {
        ObjectKind::ResourceGroup => 0,
        ObjectKind::Identity => 1,
        ObjectKind::Workspace => 2,
        ObjectKind::Federated => 3,
        ObjectKind::Group => 4,
        ObjectKind::RoleAssignment => 6,
    };
    let delete_rank = |kind: ObjectKind| match kind {
        ObjectKind::RoleAssignment => 7,
        ObjectKind::Group => 8,
        ObjectKind::Federated => 9,
        ObjectKind::Workspace => 10,
        ObjectKind::Identity => 11,
        ObjectKind::ResourceGroup => 12,
    };
    let mut out: Vec<Vec<Op>> = vec![Vec::new(); 13];
    for c in changes {
        match c.action {
            Action::Create | Action::Update | Action::Replace | Action::Adopt => {
                if c.kind == ObjectKind::Group {
                    out[4].push(Op { step: Step::GroupUpsert, change: c.clone() });
                    out[5].push(Op { step: Step::GroupMembers, change: c.clone() });
                } else {
                    out[write_rank(c.kind)].push(Op { step: Step::Write, change: c.clone() });
                }
            }
            Action::Delete => out[delete_rank(c.kind)].push(Op { step: Step::Delete, change: c.clone() }),
            Action::Read | Action::NoOp => {}
        }
    }
    out.retain(|l| !l.is_empty());
    out
}

/// `parent` is `child` or an ARM ancestor of it (canonical ids).
fn contains(parent: &str, child: &str) -> bool {
    !parent.is_empty() && (child == parent || child.strip_prefix(parent).is_some_and(|rest| rest.starts_with('/')))
}

/// The keys (canonical ids and addresses) of what an operation needs to have succeeded.
fn needs(op: &Op) -> Vec<String> {
    let c = &op.change;
    let mut keys = Vec::new();
    let refs = |refs: &mut Vec<String>, p: &PrincipalRef| match p {
        PrincipalRef::Group { address, .. }
        | PrincipalRef::Identity { address, .. }
        | PrincipalRef::WorkspaceSystem { address, .. } => refs.push(address.clone()),
        _ => {}
    };
    match &c.desired {
        Some(Desired::Workspace(w)) => keys.extend(w.user_identity.as_deref().map(canonical)),
        Some(Desired::Federated(f)) => keys.push(canonical(&f.identity_id)),
        Some(Desired::Group(g)) if op.step == Step::GroupMembers => {
            keys.push(c.address.clone());
            for p in g.members.iter().chain(&g.owners) {
                refs(&mut keys, p);
            }
        }
        Some(Desired::RoleAssignment(r)) => {
            keys.push(r.scope.clone());
            refs(&mut keys, &r.principal);
        }
        _ => {}
    }
    keys
}

/// The first failed object an operation depends on.
fn blocked_by(op: &Op, failed: &BTreeMap<String, String>) -> Option<String> {
    let own = canonical(&op.change.azure_id);
    if op.step == Step::Delete {
        // A parent is kept when deleting one of its children failed.
        return failed
            .iter()
            .find(|(k, _)| k.starts_with('/') && contains(&own, k) && **k != own)
            .map(|(_, a)| a.clone());
    }
    for key in needs(op) {
        if let Some(a) = failed.get(&key) {
            return Some(a.clone());
        }
        if key.starts_with('/')
            && let Some((_, a)) = failed.iter().find(|(k, _)| k.starts_with('/') && contains(k, &key))
        {
            return Some(a.clone());
        }
    }
    if own.starts_with('/')
        && let Some((_, a)) = failed.iter().find(|(k, _)| k.starts_with('/') && contains(k, &own) && **k != own)
    {
        return Some(a.clone());
    }
    None
}

/// `(subscription, resource group, name)` of an ARM id.
fn arm_parts(id: &str) -> Option<(String, String, String)> {
    let segs: Vec<&str> = id.trim_matches('/').split('/').collect();
    if segs.len() < 4
        || !segs[0].eq_ignore_ascii_case("subscriptions")
        || !segs[2].eq_ignore_ascii_case("resourcegroups")
    {
        return None;
    }
    Some((segs[1].to_owned(), segs[3].to_owned(), (*segs.last()?).to_owned()))
}

fn local(op: &str, message: impl Into<String>) -> AzureError {
    AzureError::local(op, "InvalidPlan", message)
}

/// The body of a workspace PUT (azure-wire §3.2, §3.3).
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
                if mlpolicy_vocab::guid::is_guid(name) {
                    c.find_service_principal_by_app_id(name).await?.map(|s| s.id)
                } else {
                    let found = c.find_service_principals_by_display_name(name).await?;
                    if found.len() > 1 {
                        return Err(local(&op, format!("{} service principals are named `{name}`", found.len())));
                    }
                    found.into_iter().next().map(|s| s.id)
                }
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
    async fn prefetch_users(&self, ops: &[Op]) {
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

    fn remember(&self, address: &str, principal_id: Option<&String>) {
        if let (Some(id), Ok(mut m)) = (principal_id, self.principals.lock()) {
            m.insert(address.to_owned(), id.to_ascii_lowercase());
        }
    }

    async fn run(&self, op: &Op) -> Result<OpOutput, AzureError> {
        let (result, ids) = capture_request_ids(self.execute(op)).await;
        let (azure_id, principal_id) = result?;
        self.remember(&op.change.address, principal_id.as_ref());
        let (request_id, correlation_id) = ids.map_or((None, None), |i| (i.request_id, i.correlation_id));
        Ok(OpOutput { azure_id, principal_id, request_id, correlation_id })
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
                    .or_else(|| mlpolicy_vocab::roles::built_in_id(&r.role).map(str::to_owned))
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

/// One line of the audit log.
#[derive(Debug, Serialize)]
struct AuditEntry<'a> {
    time: String,
    principal: Option<&'a str>,
    address: &'a str,
    azure_id: &'a str,
    action: Action,
    before_digest: Option<String>,
    after_digest: Option<String>,
    request_id: Option<&'a str>,
    correlation_id: Option<&'a str>,
    outcome: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Appends to the audit log, one flushed line per change.
struct Audit {
    file: std::fs::File,
    path: PathBuf,
    principal: Option<String>,
}

impl Audit {
    fn open(path: &PathBuf, principal: Option<String>) -> Result<Audit, Diagnostic> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| {
            Diagnostic::error(Code::E0705, format!("cannot open the audit log `{}`: {e}", path.display()))
                .with_help("check the path and permissions; nothing was applied")
        })?;
        Ok(Audit { file, path: path.clone(), principal })
    }

    fn write(
        &mut self,
        change: &Change,
        azure_id: &str,
        ids: (Option<&str>, Option<&str>),
        error: Option<String>,
    ) -> Result<(), Diagnostic> {
        let entry = AuditEntry {
            time: rfc3339_now(),
            principal: self.principal.as_deref(),
            address: &change.address,
            azure_id,
            action: change.action,
            before_digest: change.before.as_ref().map(fingerprint),
            after_digest: change.after.as_ref().map(fingerprint),
            request_id: ids.0,
            correlation_id: ids.1,
            outcome: if error.is_some() { "failed" } else { "succeeded" },
            error,
        };
        let mut line = serde_json::to_string(&entry).unwrap_or_default();
        line.push('\n');
        self.file.write_all(line.as_bytes()).and_then(|()| self.file.flush()).map_err(|e| {
            Diagnostic::error(Code::E0705, format!("cannot write the audit log `{}`: {e}", self.path.display()))
                .with_help("apply stopped before its next change; rerun it once the log is writable")
        })
    }
}

fn failure(c: &Change, e: &AzureError) -> Diagnostic {
    let status = if e.status == 0 { "no response".to_owned() } else { format!("HTTP {}", e.status) };
    let code = if e.code.is_empty() { String::new() } else { format!(" {}", e.code) };
    let mut d = Diagnostic::error(Code::E0701, format!("{} failed: {status}{code}: {}", c.address, e.message));
    let mut help = e.hint.clone().unwrap_or_else(|| {
        "fix the cause and run apply again: finished objects are kept, and it continues where it stopped".into()
    });
    match (&e.request_id, &e.correlation_id) {
        (Some(r), Some(co)) => {
            let _ = write!(help, " (request id {r}, correlation id {co})");
        }
        (Some(r), None) => {
            let _ = write!(help, " (request id {r})");
        }
        _ => {}
    }
    d = d.with_help(help);
    d
}

/// Refuses to delete the running principal's last role assignment that lets it manage access
/// at a scope (E0702). Assignments at or above the scope that survive the plan count as kept.
pub async fn check_self_lockout(
    changes: &[Change],
    client: &AzureClient,
    principal: &str,
) -> Result<(), Box<Diagnostic>> {
    let deleted: BTreeSet<String> = changes
        .iter()
        .filter(|c| c.kind == ObjectKind::RoleAssignment && c.action == Action::Delete)
        .map(|c| canonical(&c.azure_id))
        .collect();
    let fail = |e: &AzureError| {
        Box::new(
            Diagnostic::error(Code::E0702, format!("cannot check for self-lock-out: {e}"))
                .with_help("apply refuses to remove access-managing role assignments it cannot check"),
        )
    };
    let admin = |guid: &str| ACCESS_ADMIN_ROLES.iter().any(|g| g.eq_ignore_ascii_case(guid));
    let mut locked = Vec::new();
    for c in changes.iter().filter(|c| c.kind == ObjectKind::RoleAssignment && c.action == Action::Delete) {
        let Some(a) = client.get_role_assignment(&c.azure_id).await.map_err(|e| fail(&e))? else { continue };
        if !a.properties.principal_id.eq_ignore_ascii_case(principal) || !admin(&a.role_guid()) {
            continue;
        }
        let scope = canonical(&a.properties.scope);
        let others = client.list_role_assignments_for_principal(&scope, principal).await.map_err(|e| fail(&e))?;
        let kept = others.iter().any(|o| {
            admin(&o.role_guid())
                && !deleted.contains(&canonical(&o.id))
                && contains(&canonical(&o.properties.scope), &scope)
        });
        if !kept {
            locked.push(c.address.clone());
        }
    }
    if locked.is_empty() {
        return Ok(());
    }
    Err(Box::new(
        Diagnostic::error(
            Code::E0702,
            format!(
                "this apply would remove the role assignment that lets the running principal manage access: {}",
                locked.join(", ")
            ),
        )
        .with_help("nothing was applied; keep the grant, or pass `--allow-self-lockout` if another principal can restore access"),
    ))
}

/// `3 added, 1 changed, 0 destroyed`, with `, 2 adopted` when there were adoptions.
fn summary_counts(done: &[Done]) -> String {
    let (mut add, mut change, mut destroy, mut adopt) = (0, 0, 0, 0);
    for d in done {
        match d.action {
            Action::Create => add += 1,
            Action::Update => change += 1,
            Action::Replace => {
                add += 1;
                destroy += 1;
            }
            Action::Delete => destroy += 1,
            Action::Adopt => adopt += 1,
            Action::Read | Action::NoOp => {}
        }
    }
    let mut out = format!("{add} added, {change} changed, {destroy} destroyed");
    if adopt > 0 {
        let _ = write!(out, ", {adopt} adopted");
    }
    out
}

fn finish(mut report: ApplyReport) -> ApplyReport {
    let counts = summary_counts(&report.done);
    report.summary = if report.failed.is_empty() && report.skipped.is_empty() {
        format!("Apply complete: {counts}.")
    } else {
        format!("Apply failed: {} failed, {} skipped; {counts}.", report.failed.len(), report.skipped.len())
    };
    report
}

/// Carries out `changes` (a plan's, in any order) in dependency layers. `events` hears about
/// each object as it starts, finishes, fails or is skipped. `desired` is the state the plan was
/// computed for (reserved for principals the changes do not carry).
pub async fn apply(
    changes: &[Change],
    desired: &DesiredState,
    client: &AzureClient,
    opts: &ApplyOptions,
    events: &dyn Fn(ApplyEvent),
) -> ApplyReport {
    let _ = desired;
    let mut report = ApplyReport::default();
    let actionable = changes.iter().any(|c| !matches!(c.action, Action::NoOp | Action::Read));
    let principal = if actionable { client.principal_object_id().await.ok().flatten() } else { None };
    if actionable
        && !opts.allow_self_lockout
        && let Some(p) = &principal
        && let Err(d) = check_self_lockout(changes, client, p).await
    {
        report.failed.push(*d);
        return finish(report);
    }
    let mut audit = match &opts.audit_log {
        Some(path) => match Audit::open(path, principal.clone()) {
            Ok(a) => Some(a),
            Err(d) => {
                report.failed.push(d);
                return finish(report);
            }
        },
        None => None,
    };
    let shared = Arc::new(Shared { client: client.clone(), principals: Mutex::default(), resolved: Mutex::default() });
    // Principals the plan already knows.
    for c in changes {
        if let Some(id) = &c.live_ref.object_id {
            shared.remember(&c.address, Some(id));
        }
    }
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    let mut started: HashMap<String, Instant> = HashMap::new();
    let parallelism = opts.parallelism.max(1);
    let mut audit_broken = false;
    for layer in layers(changes) {
        if audit_broken {
            for op in layer {
                report.skipped.push((op.change.address.clone(), "apply stopped: the audit log failed".into()));
            }
            continue;
        }
        if layer.first().is_some_and(|o| o.step == Step::GroupMembers) {
            shared.prefetch_users(&layer).await;
        }
        let mut queue = layer.into_iter();
        let mut running: JoinSet<(Op, Result<OpOutput, AzureError>)> = JoinSet::new();
        loop {
            while running.len() < parallelism && !audit_broken {
                let Some(op) = queue.next() else { break };
                if op.step == Step::GroupMembers && failed.contains_key(&op.change.address) {
                    // Its upsert failed and was reported.
                    continue;
                }
                if let Some(dep) = blocked_by(&op, &failed) {
                    let address = op.change.address.clone();
                    let reason = format!("depends on {dep}, which failed");
                    events(ApplyEvent::Skipped { address: address.clone(), reason: reason.clone() });
                    failed.insert(canonical(&op.change.azure_id), address.clone());
                    failed.insert(address.clone(), address.clone());
                    report.skipped.push((address, reason));
                    continue;
                }
                if op.step != Step::GroupMembers {
                    events(ApplyEvent::Started { address: op.change.address.clone(), action: op.change.action });
                    started.insert(op.change.address.clone(), Instant::now());
                }
                let s = shared.clone();
                running.spawn(async move {
                    let r = s.run(&op).await;
                    (op, r)
                });
            }
            let Some(joined) = running.join_next().await else { break };
            let Ok((op, result)) = joined else { continue };
            let c = &op.change;
            match result {
                Ok(out) if op.step == Step::GroupUpsert => {
                    let _ = out;
                }
                Ok(out) => {
                    let elapsed = started.get(&c.address).map_or(Duration::ZERO, Instant::elapsed);
                    if let Some(a) = audit.as_mut()
                        && let Err(d) =
                            a.write(c, &out.azure_id, (out.request_id.as_deref(), out.correlation_id.as_deref()), None)
                    {
                        report.failed.push(d);
                        audit_broken = true;
                    }
                    events(ApplyEvent::Finished {
                        address: c.address.clone(),
                        action: c.action,
                        azure_id: out.azure_id.clone(),
                        elapsed,
                        request_id: out.request_id.clone(),
                        correlation_id: out.correlation_id.clone(),
                    });
                    let _ = out.principal_id;
                    report.done.push(Done { address: c.address.clone(), action: c.action, azure_id: out.azure_id });
                }
                Err(e) => {
                    if let Some(a) = audit.as_mut() {
                        let ids = (e.request_id.as_deref(), e.correlation_id.as_deref());
                        if let Err(d) = a.write(c, &c.azure_id, ids, Some(format!("{} {}", e.code, e.message))) {
                            report.failed.push(d);
                            audit_broken = true;
                        }
                    }
                    events(ApplyEvent::Failed { address: c.address.clone(), error: e.to_string() });
                    failed.insert(canonical(&c.azure_id), c.address.clone());
                    failed.insert(c.address.clone(), c.address.clone());
                    report.failed.push(failure(c, &e));
                }
            }
        }
        for op in queue {
            report.skipped.push((op.change.address.clone(), "apply stopped: the audit log failed".into()));
        }
    }
    finish(report)
}

/// Why a saved plan cannot be applied (E0703 stale, E0704 altered or invalid).
pub fn saved_plan_error(path: &str, e: &SavedPlanError) -> Diagnostic {
    match e {
        SavedPlanError::Altered => {
            Diagnostic::error(Code::E0704, format!("the plan file `{path}` was altered after it was written"))
                .with_help("a saved plan is applied exactly as reviewed; run `mlpolicy plan --out` again")
        }
        SavedPlanError::Invalid(m) => Diagnostic::error(Code::E0704, format!("`{path}` cannot be applied: {m}"))
            .with_help("pass a file written by `mlpolicy plan --out`, or a configuration directory"),
    }
}

/// Refuses a saved plan whose live objects or configuration changed since it was made (E0703).
/// `config_fingerprint` is the configuration's fingerprint now, when its directory still exists.
pub async fn check_stale(
    saved: &SavedPlan,
    client: &AzureClient,
    options: &DiffOptions,
    config_fingerprint: Option<&str>,
) -> Result<(), Box<Diagnostic>> {
    if let Some(now) = config_fingerprint
        && now != saved.plan.fingerprints.config
    {
        return Err(Box::new(
            Diagnostic::error(
                Code::E0703,
                format!("the plan is stale: the configuration in `{}` changed since it was planned", saved.config_dir),
            )
            .with_help("run `mlpolicy plan --out` again, with the same `--var` options, and review the new plan"),
        ));
    }
    let live = crate::live::read(client, &saved.desired, &saved.subscriptions).await.map_err(Box::new)?;
    let order: Vec<String> = saved.desired.objects.keys().cloned().collect();
    let spans = BTreeMap::new();
    let dependents = BTreeMap::new();
    let input = DiffInput {
        order: &order,
        spans: &spans,
        dependents: &dependents,
        waivers: Vec::new(),
        policy_findings: Vec::new(),
        denied: false,
        config_fingerprint: String::new(),
        options,
    };
    let (now, _) = crate::diff::diff(&saved.desired, &live, &input);
    let before = &saved.plan.fingerprints.live;
    let after = &now.fingerprints.live;
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let changed: Vec<String> =
        keys.into_iter().filter(|k| before.get(*k) != after.get(*k)).map(|k| describe_key(saved, k)).collect();
    if changed.is_empty() {
        return Ok(());
    }
    Err(Box::new(
        Diagnostic::error(
            Code::E0703,
            format!(
                "the plan is stale: {} object(s) changed since it was planned: {}",
                changed.len(),
                changed.join(", ")
            ),
        )
        .with_help("run `mlpolicy plan --out` again and review the new plan"),
    ))
}

/// A fingerprint key as reviewers know it: the address of the plan's change, else the key.
fn describe_key(saved: &SavedPlan, key: &str) -> String {
    let by_id = saved.plan.changes.iter().find(|c| {
        canonical(&c.azure_id) == *key || (c.kind == ObjectKind::Group && c.azure_id.eq_ignore_ascii_case(key))
    });
    if let Some(c) = by_id {
        return c.address.clone();
    }
    let mut parts = key.split('|');
    if let (Some(scope), Some(role)) = (parts.next(), parts.next())
        && let Some(c) = saved.plan.changes.iter().find(|c| {
            matches!(&c.desired, Some(Desired::RoleAssignment(r)) if r.scope == scope)
                && c.live_ref.role_guid.as_deref() == Some(role)
        })
    {
        return c.address.clone();
    }
    key.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(address: &str, kind: ObjectKind, id: &str, action: Action) -> Change {
        Change {
            address: address.into(),
            kind,
            azure_id: id.into(),
            display: address.into(),
            action,
            reason: None,
            before: None,
            after: None,
            changes: vec![],
            blast_radius: vec![],
            desired: None,
            live_ref: crate::plan::LiveRef::default(),
        }
    }

    #[test]
    fn layers_put_creations_first_and_deletions_in_reverse() {
        let rg = "/subscriptions/s/resourceGroups/rg";
        let changes = vec![
            change("grant.a", ObjectKind::RoleAssignment, "x", Action::Create),
            change("group.g", ObjectKind::Group, "u", Action::Update),
            change("rg gone", ObjectKind::ResourceGroup, rg, Action::Delete),
            change("ra gone", ObjectKind::RoleAssignment, "y", Action::Delete),
            change("resource_group.r", ObjectKind::ResourceGroup, rg, Action::Create),
            change("group.n", ObjectKind::Group, "n", Action::NoOp),
        ];
        let order: Vec<Vec<(String, Step)>> =
            layers(&changes).into_iter().map(|l| l.into_iter().map(|o| (o.change.address, o.step)).collect()).collect();
        assert_eq!(
            order,
            vec![
                vec![("resource_group.r".into(), Step::Write)],
                vec![("group.g".into(), Step::GroupUpsert)],
                vec![("group.g".into(), Step::GroupMembers)],
                vec![("grant.a".into(), Step::Write)],
                vec![("ra gone".into(), Step::Delete)],
                vec![("rg gone".into(), Step::Delete)],
            ]
        );
    }

    #[test]
    fn failures_block_only_dependents() {
        let mut failed = BTreeMap::new();
        failed.insert("/subscriptions/s/resourcegroups/rg".to_owned(), "resource_group.r".to_owned());
        let inside = Op {
            step: Step::Write,
            change: change(
                "identity.i",
                ObjectKind::Identity,
                "/subscriptions/s/resourceGroups/rg/providers/x/y/i",
                Action::Create,
            ),
        };
        assert_eq!(blocked_by(&inside, &failed), Some("resource_group.r".into()));
        let outside = Op {
            step: Step::Write,
            change: change(
                "identity.j",
                ObjectKind::Identity,
                "/subscriptions/s/resourceGroups/rg2/providers/x/y/j",
                Action::Create,
            ),
        };
        assert_eq!(blocked_by(&outside, &failed), None);
        // A parent is not deleted when deleting a child failed.
        let mut failed = BTreeMap::new();
        failed.insert("/subscriptions/s/resourcegroups/rg/providers/x/y/i".to_owned(), "identity gone".to_owned());
        let parent = Op {
            step: Step::Delete,
            change: change("rg gone", ObjectKind::ResourceGroup, "/subscriptions/s/resourceGroups/rg", Action::Delete),
        };
        assert_eq!(blocked_by(&parent, &failed), Some("identity gone".into()));
    }

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

    #[test]
    fn summary_lines() {
        let r = finish(ApplyReport {
            done: vec![
                Done { address: "a".into(), action: Action::Create, azure_id: String::new() },
                Done { address: "b".into(), action: Action::Replace, azure_id: String::new() },
            ],
            ..ApplyReport::default()
        });
        assert_eq!(r.summary, "Apply complete: 2 added, 0 changed, 1 destroyed.");
        let r = finish(ApplyReport { skipped: vec![("x".into(), "y".into())], ..ApplyReport::default() });
        assert!(r.summary.starts_with("Apply failed: 0 failed, 1 skipped"));
    }
}
