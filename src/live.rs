//! Live state: what exists in the tenant for the configuration, read through the Azure client
//! with list calls and Graph `$batch` rather than per-object GETs.
//!
//! It reads, per subscription in play: resource groups, ML workspaces, user-assigned identities
//! and every role assignment (one paged list each), the role catalog once, and the federated
//! credentials of every identity the configuration manages or owns. From Graph: every group
//! carrying this configuration's `uniqueName` prefix, the groups the configuration names by
//! display name, their members and owners (batched), and the object ids of named users and
//! service principals (batched, only for those not already seen as members).
//! Codes: E0501 (Azure error while reading).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use tokio::task::JoinSet;

use crate::azure::{self, AzureClient, AzureError, DirectoryObject, DirectoryObjectKind, RoleCatalog};
use crate::diagnostics::Diagnostic;
use crate::lower::{Desired, DesiredState, OWNER_TAG, PrincipalRef, canonical, group_unique_prefix};

/// A directory object as plans show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrincipalInfo {
    pub id: String,
    /// `user`, `group`, `service_principal`, or `unknown` (deleted or unreadable).
    pub kind: String,
    /// UPN for users, display name otherwise, the object id when nothing else is known.
    pub display: String,
    pub app_id: Option<String>,
}

impl PrincipalInfo {
    fn from_directory_object(o: &DirectoryObject) -> Self {
        let kind = match o.kind() {
            DirectoryObjectKind::User => "user",
            DirectoryObjectKind::Group => "group",
            DirectoryObjectKind::ServicePrincipal => "service_principal",
            DirectoryObjectKind::Other => "unknown",
        };
        let display = o.user_principal_name.clone().or_else(|| o.display_name.clone()).unwrap_or_else(|| o.id.clone());
        PrincipalInfo { id: o.id.to_ascii_lowercase(), kind: kind.to_owned(), display, app_id: o.app_id.clone() }
    }
}

/// A group with its direct members and owners (object ids, lower-case).
#[derive(Debug, Clone, PartialEq)]
pub struct LiveGroup {
    pub group: azure::Group,
    pub members: BTreeSet<String>,
    pub owners: BTreeSet<String>,
}

/// Everything read from the tenant. ARM maps are keyed by canonical (lower-case) id.
#[derive(Debug, Default)]
pub struct LiveState {
    pub owner: String,
    pub resource_groups: BTreeMap<String, azure::ResourceGroup>,
    pub workspaces: BTreeMap<String, azure::Workspace>,
    pub identities: BTreeMap<String, azure::UserAssignedIdentity>,
    pub federated: BTreeMap<String, azure::FederatedCredential>,
    pub role_assignments: BTreeMap<String, azure::RoleAssignment>,
    /// Role catalog per subscription id.
    pub roles: BTreeMap<String, std::sync::Arc<RoleCatalog>>,
    /// Groups by object id (lower-case).
    pub groups: BTreeMap<String, LiveGroup>,
    /// Every directory object seen, by object id (lower-case).
    pub principals: BTreeMap<String, PrincipalInfo>,
    /// Object ids of the principals the configuration names; `None` when not found.
    pub resolved: BTreeMap<PrincipalRef, Option<String>>,
    /// Display names that matched more than one object (service principals, existing groups).
    pub ambiguous: BTreeMap<PrincipalRef, usize>,
}

impl LiveState {
    /// The live group with a `uniqueName`, if any.
    pub fn group_by_unique_name(&self, unique_name: &str) -> Option<(&String, &LiveGroup)> {
        self.groups
            .iter()
            .find(|(_, g)| g.group.unique_name.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(unique_name)))
    }

    /// How a principal id is shown.
    pub fn display(&self, id: &str) -> String {
        self.principals.get(&id.to_ascii_lowercase()).map_or_else(|| id.to_owned(), |p| p.display.clone())
    }

    /// The name of an assignment's role: from the catalog read, else the built-in table, else
    /// the role definition GUID.
    pub fn role_name(&self, a: &azure::RoleAssignment) -> String {
        let guid = a.role_guid();
        self.roles
            .values()
            .find_map(|c| c.by_guid(&guid).map(|d| d.properties.role_name.clone()))
            .or_else(|| crate::roles::built_in_name(&guid).map(str::to_owned))
            .unwrap_or(guid)
    }

    /// Whether an ARM object carries this owner's tag.
    pub fn owned_tags(&self, tags: &BTreeMap<String, String>) -> bool {
        tags.iter().any(|(k, v)| k.eq_ignore_ascii_case(OWNER_TAG) && *v == self.owner)
    }
}

pub fn read_error(e: &AzureError) -> Diagnostic {
    let mut d = Diagnostic::error("E0501", format!("reading the tenant failed: {}", e.op)).with_help(
        e.hint.clone().unwrap_or_else(|| "check the credentials, the tenant and the subscription ids".into()),
    );
    let status = if e.status == 0 { "no response".to_owned() } else { format!("HTTP {}", e.status) };
    d.message = format!("{}: {status} {}: {}", d.message, e.code, e.message);
    d
}

/// Reads the live state the configuration depends on.
pub async fn read(
    client: &AzureClient,
    desired: &DesiredState,
    extra_subscriptions: &[String],
) -> Result<LiveState, Diagnostic> {
    let mut live = LiveState { owner: desired.owner.clone(), ..LiveState::default() };
    let mut subscriptions: BTreeSet<String> = extra_subscriptions.iter().map(|s| s.to_ascii_lowercase()).collect();
    for o in desired.objects.values() {
        if let Some(sub) = subscription_of(&o.object) {
            subscriptions.insert(sub);
        }
    }

    // ARM: one set of list calls per subscription, subscriptions in parallel.
    let mut tasks = JoinSet::new();
    for sub in subscriptions.clone() {
        let c = client.clone();
        tasks.spawn(async move {
            let rgs = c.list_resource_groups(&sub).await?;
            let ws = c.list_workspaces(&sub).await?;
            let ids = c.list_user_assigned_identities(&sub).await?;
            let ras = c.list_role_assignments_for_subscription(&sub).await?;
            let roles = c.role_catalog(&sub).await?;
            Ok::<_, AzureError>((sub, rgs, ws, ids, ras, roles))
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (sub, rgs, ws, ids, ras, roles) = joined
            .map_err(|e| Diagnostic::error("E0501", format!("reading the tenant failed: {e}")))?
            .map_err(|e| read_error(&e))?;
        live.resource_groups.extend(rgs.into_iter().map(|r| (canonical(&r.id), r)));
        live.workspaces.extend(ws.into_iter().map(|w| (canonical(&w.id), w)));
        live.identities.extend(ids.into_iter().map(|i| (canonical(&i.id), i)));
        live.role_assignments.extend(ras.into_iter().map(|r| (canonical(&r.id), r)));
        live.roles.insert(sub, roles);
    }

    // Federated credentials of the identities we manage or own.
    let mut identity_ids: BTreeSet<String> = desired
        .objects
        .values()
        .filter_map(|o| match &o.object {
            Desired::Identity(i) => Some(canonical(&i.id)),
            _ => None,
        })
        .filter(|id| live.identities.contains_key(id))
        .collect();
    identity_ids.extend(live.identities.iter().filter(|(_, i)| live.owned_tags(&i.tags)).map(|(id, _)| id.clone()));
    let mut tasks = JoinSet::new();
    for id in identity_ids {
        let c = client.clone();
        let real_id = live.identities[&id].id.clone();
        tasks.spawn(async move { c.list_federated_credentials(&real_id).await });
    }
    while let Some(joined) = tasks.join_next().await {
        let fics = joined
            .map_err(|e| Diagnostic::error("E0501", format!("reading the tenant failed: {e}")))?
            .map_err(|e| read_error(&e))?;
        live.federated.extend(fics.into_iter().map(|f| (canonical(&f.id), f)));
    }

    // Graph: our groups, the existing groups named, and their memberships.
    let mut groups = client
        .list_groups_by_unique_name_prefix(&group_unique_prefix(&desired.owner))
        .await
        .map_err(|e| read_error(&e))?;
    let refs = principal_refs(desired);
    for r in &refs {
        if let PrincipalRef::ExistingGroup { name } = r {
            let found = client.find_groups_by_display_name(name).await.map_err(|e| read_error(&e))?;
            match found.len() {
                0 => {
                    live.resolved.insert(r.clone(), None);
                }
                1 => {
                    live.resolved.insert(r.clone(), Some(found[0].id.to_ascii_lowercase()));
                    groups.extend(found);
                }
                n => {
                    live.ambiguous.insert(r.clone(), n);
                }
            }
        }
    }
    let group_ids: Vec<String> = groups.iter().map(|g| g.id.clone()).collect();
    let memberships = client.batch_group_members(&group_ids).await.map_err(|e| read_error(&e))?;
    for g in groups {
        let id = g.id.to_ascii_lowercase();
        live.principals.insert(
            id.clone(),
            PrincipalInfo {
                id: id.clone(),
                kind: "group".into(),
                display: g.display_name.clone().unwrap_or_else(|| id.clone()),
                app_id: None,
            },
        );
        let m = memberships.get(&g.id).cloned().flatten().unwrap_or_default();
        for o in m.members.iter().chain(&m.owners) {
            live.principals.entry(o.id.to_ascii_lowercase()).or_insert_with(|| PrincipalInfo::from_directory_object(o));
        }
        let members = m.members.iter().map(|o| o.id.to_ascii_lowercase()).collect();
        let owners = m.owners.iter().map(|o| o.id.to_ascii_lowercase()).collect();
        live.groups.insert(id, LiveGroup { group: g, members, owners });
    }

    // Principals the configuration names.
    let known_upns: BTreeMap<String, String> = live
        .principals
        .values()
        .filter(|p| p.kind == "user")
        .map(|p| (p.display.to_ascii_lowercase(), p.id.clone()))
        .collect();
    let mut upns = Vec::new();
    for r in &refs {
        match r {
            PrincipalRef::User { upn } => match known_upns.get(&upn.to_ascii_lowercase()) {
                Some(id) => {
                    live.resolved.insert(r.clone(), Some(id.clone()));
                }
                None => upns.push(upn.clone()),
            },
            PrincipalRef::ServicePrincipal { name } => {
                let found = if crate::check::is_guid(name) {
                    client
                        .find_service_principal_by_app_id(name)
                        .await
                        .map_err(|e| read_error(&e))?
                        .into_iter()
                        .collect()
                } else {
                    client.find_service_principals_by_display_name(name).await.map_err(|e| read_error(&e))?
                };
                match found.len() {
                    0 => {
                        live.resolved.insert(r.clone(), None);
                    }
                    1 => {
                        let sp = &found[0];
                        let id = sp.id.to_ascii_lowercase();
                        live.principals.insert(
                            id.clone(),
                            PrincipalInfo {
                                id: id.clone(),
                                kind: "service_principal".into(),
                                display: sp.display_name.clone().unwrap_or_else(|| name.clone()),
                                app_id: sp.app_id.clone(),
                            },
                        );
                        live.resolved.insert(r.clone(), Some(id));
                    }
                    n => {
                        live.ambiguous.insert(r.clone(), n);
                    }
                }
            }
            PrincipalRef::Group { unique_name, .. } => {
                let id = live.group_by_unique_name(unique_name).map(|(id, _)| id.clone());
                live.resolved.insert(r.clone(), id);
            }
            PrincipalRef::Identity { id, .. } => {
                let pid = live
                    .identities
                    .get(&canonical(id))
                    .and_then(|i| i.properties.principal_id.clone())
                    .map(|p| p.to_ascii_lowercase());
                if let (Some(p), Some(i)) = (&pid, live.identities.get(&canonical(id))) {
                    live.principals.insert(
                        p.clone(),
                        PrincipalInfo {
                            id: p.clone(),
                            kind: "service_principal".into(),
                            display: i.name.clone(),
                            app_id: i.properties.client_id.clone(),
                        },
                    );
                }
                live.resolved.insert(r.clone(), pid);
            }
            PrincipalRef::WorkspaceSystem { id, .. } => {
                let ws = live.workspaces.get(&canonical(id));
                let pid = ws
                    .and_then(|w| w.identity.as_ref())
                    .and_then(|i| i.principal_id.clone())
                    .map(|p| p.to_ascii_lowercase());
                if let (Some(p), Some(w)) = (&pid, ws) {
                    live.principals.insert(
                        p.clone(),
                        PrincipalInfo {
                            id: p.clone(),
                            kind: "service_principal".into(),
                            display: w.name.clone(),
                            app_id: None,
                        },
                    );
                }
                live.resolved.insert(r.clone(), pid);
            }
            PrincipalRef::ExistingGroup { .. } => {}
        }
    }
    if !upns.is_empty() {
        let users = client.resolve_upns(&upns).await.map_err(|e| read_error(&e))?;
        for upn in upns {
            let user = users.get(&upn).cloned().flatten();
            let id = user.as_ref().map(|u| u.id.to_ascii_lowercase());
            if let Some(u) = &user {
                let id = u.id.to_ascii_lowercase();
                live.principals.insert(
                    id.clone(),
                    PrincipalInfo {
                        id,
                        kind: "user".into(),
                        display: u.user_principal_name.clone().unwrap_or_else(|| upn.clone()),
                        app_id: None,
                    },
                );
            }
            live.resolved.insert(PrincipalRef::User { upn }, id);
        }
    }

    // Names of the other principals holding roles at the scopes we manage (for drift and access).
    let scopes = managed_scopes(desired);
    let unknown: BTreeSet<String> = live
        .role_assignments
        .values()
        .filter(|r| scopes.contains(&canonical(&r.properties.scope)))
        .map(|r| r.properties.principal_id.to_ascii_lowercase())
        .filter(|id| !live.principals.contains_key(id))
        .collect();
    name_principals(client, &mut live, &unknown).await?;
    Ok(live)
}

/// Names the principals `ids` (object ids, lower-case) through `$batch`; one that Graph no longer
/// knows is recorded as an unknown principal.
pub async fn name_principals(
    client: &AzureClient,
    live: &mut LiveState,
    unknown: &BTreeSet<String>,
) -> Result<(), Diagnostic> {
    if unknown.is_empty() {
        return Ok(());
    }
    let requests: Vec<azure::BatchRequest> = unknown
        .iter()
        .enumerate()
        .map(|(i, id)| azure::BatchRequest::get(i.to_string(), format!("/directoryObjects/{id}")))
        .collect();
    let ids: Vec<&String> = unknown.iter().collect();
    let responses = client.graph_batch(requests).await.map_err(|e| read_error(&e))?;
    for r in responses {
        let Some(id) = r.id.parse::<usize>().ok().and_then(|i| ids.get(i)) else { continue };
        let info = if r.status == 200 {
            serde_json::from_value::<DirectoryObject>(r.body.clone())
                .ok()
                .map(|o| PrincipalInfo::from_directory_object(&o))
        } else {
            None
        };
        let info = info.unwrap_or_else(|| PrincipalInfo {
            id: (*id).clone(),
            kind: "unknown".into(),
            display: format!("unknown principal {id}"),
            app_id: None,
        });
        live.principals.insert((*id).clone(), info);
    }
    Ok(())
}

/// Completes a live read for access questions: the members of every group that holds a role
/// assignment, and of every group nested in those, however deep (a visited set ends cycles), and
/// the names of every principal that holds a role.
pub async fn expand_groups(client: &AzureClient, live: &mut LiveState) -> Result<(), Diagnostic> {
    let mut pending: BTreeSet<String> = live
        .role_assignments
        .values()
        .filter(|a| {
            let id = a.properties.principal_id.to_ascii_lowercase();
            a.properties.principal_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("group"))
                || live.principals.get(&id).is_some_and(|p| p.kind == "group")
        })
        .map(|a| a.properties.principal_id.to_ascii_lowercase())
        .filter(|id| !live.groups.contains_key(id))
        .collect();
    let mut visited: BTreeSet<String> = live.groups.keys().cloned().collect();
    for g in live.groups.values() {
        for m in &g.members {
            if live.principals.get(m).is_some_and(|p| p.kind == "group") && !live.groups.contains_key(m) {
                pending.insert(m.clone());
            }
        }
    }
    while !pending.is_empty() {
        let ids: Vec<String> = pending.iter().filter(|id| visited.insert((*id).clone())).cloned().collect();
        pending.clear();
        if ids.is_empty() {
            break;
        }
        let memberships = client.batch_group_members(&ids).await.map_err(|e| read_error(&e))?;
        for id in ids {
            let Some(Some(m)) = memberships.get(&id) else { continue };
            for o in m.members.iter().chain(&m.owners) {
                let info = PrincipalInfo::from_directory_object(o);
                if info.kind == "group" && !visited.contains(&info.id) {
                    pending.insert(info.id.clone());
                }
                live.principals.entry(info.id.clone()).or_insert(info);
            }
            let members = m.members.iter().map(|o| o.id.to_ascii_lowercase()).collect();
            let owners = m.owners.iter().map(|o| o.id.to_ascii_lowercase()).collect();
            let group = azure::Group { id: id.clone(), ..azure::Group::default() };
            live.groups.insert(id, LiveGroup { group, members, owners });
        }
    }
    let unnamed: BTreeSet<String> = live
        .role_assignments
        .values()
        .map(|a| a.properties.principal_id.to_ascii_lowercase())
        .chain(live.groups.keys().cloned())
        .filter(|id| !live.principals.contains_key(id))
        .collect();
    name_principals(client, live, &unnamed).await
}

fn subscription_of(d: &Desired) -> Option<String> {
    match d {
        Desired::ResourceGroup(r) => Some(r.subscription.clone()),
        Desired::Identity(i) => Some(i.subscription.clone()),
        Desired::Workspace(w) => Some(w.subscription.clone()),
        Desired::RoleAssignment(r) => {
            r.scope.strip_prefix("/subscriptions/").map(|s| s.split('/').next().unwrap_or(s).to_owned())
        }
        Desired::Federated(_) | Desired::Group(_) => None,
    }
}

/// Every principal the desired state names.
pub fn principal_refs(desired: &DesiredState) -> BTreeSet<PrincipalRef> {
    let mut out = BTreeSet::new();
    for o in desired.objects.values() {
        match &o.object {
            Desired::Group(g) => out.extend(g.members.iter().chain(&g.owners).cloned()),
            Desired::RoleAssignment(r) => {
                out.insert(r.principal.clone());
            }
            _ => {}
        }
    }
    out
}

/// The scopes whose role assignments the configuration manages: every scope it grants on and
/// every workspace and resource group it declares (canonical ids).
pub fn managed_scopes(desired: &DesiredState) -> BTreeSet<String> {
    desired
        .objects
        .values()
        .filter_map(|o| match &o.object {
            Desired::RoleAssignment(r) => Some(r.scope.clone()),
            Desired::Workspace(w) => Some(canonical(&w.id)),
            Desired::ResourceGroup(r) => Some(canonical(&r.id)),
            _ => None,
        })
        .collect()
}
