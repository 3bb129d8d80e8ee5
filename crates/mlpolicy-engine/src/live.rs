//! Live state: what exists in the tenant for the configuration, read through the Azure client
//! with list calls and Graph `$batch` rather than per-object GETs.
//!
//! It reads, per subscription in play: resource groups, ML workspaces, user-assigned identities
//! and every role assignment (one paged list each), the role catalog once, and the federated
//! credentials of every identity the configuration manages or owns. From Graph: every group
//! carrying this configuration's `uniqueName` prefix, the groups the configuration names by
//! display name (batched), their members and owners (batched), the object ids of named
//! users and service principals (batched, users only when not already seen as members), and —
//! for a declared group without a live `uniqueName` match — the groups without a `uniqueName`
//! that carry its display name (batched), which the plan adopts. The ARM and Graph reads run at
//! the same time.
//! Codes: E0501 (Azure error while reading).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use tokio::task::JoinSet;

use crate::lower::{Desired, DesiredState, OWNER_TAG, PrincipalRef, group_unique_prefix};
use mlpolicy_azure::{self as azure, AzureClient, AzureError, DirectoryObject, DirectoryObjectKind, RoleCatalog};
use mlpolicy_lang::diagnostics::Code;
use mlpolicy_lang::diagnostics::Diagnostic;
use mlpolicy_vocab::arm::canonical;

/// What kind of directory object a principal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    User,
    Group,
    /// An app's service principal or a managed identity.
    ServicePrincipal,
    /// Deleted, unreadable, or a kind of object mlpolicy does not deal with.
    Unknown,
}

impl PrincipalKind {
    /// The word reports and policies use: `user`, `group`, `service_principal`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Group => "group",
            PrincipalKind::ServicePrincipal => "service_principal",
            PrincipalKind::Unknown => "unknown",
        }
    }
}

/// A directory object as plans show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrincipalInfo {
    pub id: String,
    pub kind: PrincipalKind,
    /// UPN for users, display name otherwise, the object id when nothing else is known.
    pub display: String,
    pub app_id: Option<String>,
}

impl PrincipalInfo {
    fn from_directory_object(o: &DirectoryObject) -> Self {
        let kind = match o.kind() {
            DirectoryObjectKind::User => PrincipalKind::User,
            DirectoryObjectKind::Group => PrincipalKind::Group,
            DirectoryObjectKind::ServicePrincipal => PrincipalKind::ServicePrincipal,
            DirectoryObjectKind::Other => PrincipalKind::Unknown,
        };
        let display = o.user_principal_name.clone().or_else(|| o.display_name.clone()).unwrap_or_else(|| o.id.clone());
        PrincipalInfo { id: o.id.to_ascii_lowercase(), kind, display, app_id: o.app_id.clone() }
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
    /// Groups made outside mlpolicy (no `uniqueName`) that a desired group without a live
    /// `uniqueName` match could adopt: lower-case display name → their object ids, sorted.
    pub adoptable: BTreeMap<String, Vec<String>>,
    /// Principal ids Graph answered 404 for when asked to name them: deleted from the directory.
    pub deleted: BTreeSet<String>,
    /// Groups a `moved` block renamed: lower-case `uniqueName` under the new address → the one
    /// under the earlier address, which the live group keeps.
    pub moved_groups: BTreeMap<String, String>,
    /// Where [`LiveState::group_by_unique_name`] looks first.
    unique_names: UniqueNameIndex,
}

/// How a desired group is found live.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GroupMatch<'a> {
    /// By its `uniqueName`: the group is this configuration's.
    Owned(&'a String, &'a LiveGroup),
    /// The one group with its display name and no `uniqueName`, which it adopts.
    Adoptable(&'a String, &'a LiveGroup),
    /// Several groups without a `uniqueName` carry its display name.
    Ambiguous(usize),
    Absent,
}

/// Lower-cased `uniqueName` → group id, built on first use. A hint only: a hit is checked
/// against the group, a miss falls back to the scan, and it is rebuilt when `groups` changes
/// size, so a plan of thousands of groups does not scan them all per group.
#[derive(Debug, Default)]
struct UniqueNameIndex(std::sync::Mutex<Option<(usize, std::collections::HashMap<String, String>)>>);

impl LiveState {
    /// The live group with a `uniqueName`, if any.
    pub fn group_by_unique_name(&self, unique_name: &str) -> Option<(&String, &LiveGroup)> {
        let named = |g: &LiveGroup| g.group.unique_name.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(unique_name));
        let hint = {
            let mut slot = self.unique_names.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if slot.as_ref().is_none_or(|(len, _)| *len != self.groups.len()) {
                let mut map = std::collections::HashMap::with_capacity(self.groups.len());
                for (id, g) in &self.groups {
                    if let Some(u) = &g.group.unique_name {
                        map.entry(u.to_ascii_lowercase()).or_insert_with(|| id.clone());
                    }
                }
                *slot = Some((self.groups.len(), map));
            }
            slot.as_ref().and_then(|(_, map)| map.get(&unique_name.to_ascii_lowercase()).cloned())
        };
        // The index is rebuilt whenever the group count changes and nothing renames a live
        // group in place, so a miss is final; a hint that no longer holds falls back to a scan.
        let id = hint?;
        if let Some(found) = self.groups.get_key_value(&id).filter(|(_, g)| named(g)) {
            return Some(found);
        }
        self.groups.iter().find(|(_, g)| named(g))
    }

    /// Finds a desired group: by `uniqueName`, else the one group it can adopt.
    pub fn group_match(&self, unique_name: &str, display_name: &str) -> GroupMatch<'_> {
        if let Some((id, g)) = self.group_by_unique_name(unique_name) {
            return GroupMatch::Owned(id, g);
        }
        if let Some((id, g)) =
            self.moved_groups.get(&unique_name.to_ascii_lowercase()).and_then(|u| self.group_by_unique_name(u))
        {
            return GroupMatch::Owned(id, g);
        }
        match self.adoptable.get(&display_name.to_lowercase()).map(Vec::as_slice) {
            Some([one]) => {
                self.groups.get_key_value(one).map_or(GroupMatch::Absent, |(id, g)| GroupMatch::Adoptable(id, g))
            }
            Some(many) if many.len() > 1 => GroupMatch::Ambiguous(many.len()),
            _ => GroupMatch::Absent,
        }
    }

    /// How a principal id is shown.
    pub fn display(&self, id: &str) -> String {
        // Ids are mostly lower-case already: no copy for those (plans show tens of thousands).
        let key = if id.bytes().any(|b| b.is_ascii_uppercase()) {
            std::borrow::Cow::Owned(id.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(id)
        };
        self.principals.get(key.as_ref()).map_or_else(|| id.to_owned(), |p| p.display.clone())
    }

    /// The name of an assignment's role: from the catalog read, else the built-in table, else
    /// the role definition GUID.
    pub fn role_name(&self, a: &azure::RoleAssignment) -> String {
        let guid = a.role_guid();
        crate::roles::role_name(self.roles.values().map(AsRef::as_ref), &guid).unwrap_or(guid)
    }

    /// Principal ids (lower-case) of the managed identities seen: user-assigned ones and
    /// workspaces' own. Graph lists them as service principals.
    pub fn identity_principals(&self) -> BTreeSet<String> {
        self.identities
            .values()
            .filter_map(|i| i.properties.principal_id.as_deref())
            .chain(self.workspaces.values().filter_map(|w| w.identity.as_ref()?.principal_id.as_deref()))
            .map(str::to_ascii_lowercase)
            .collect()
    }

    /// Whether an ARM object carries this owner's tag.
    pub fn owned_tags(&self, tags: &BTreeMap<String, String>) -> bool {
        tags.iter().any(|(k, v)| k.eq_ignore_ascii_case(OWNER_TAG) && *v == self.owner)
    }
}

pub fn read_error(e: &AzureError) -> Diagnostic {
    let mut d = Diagnostic::error(Code::E0501, format!("reading the tenant failed: {}", e.op)).with_help(
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
    for o in desired.objects.values() {
        if let (Desired::Group(g), Some(before)) =
            (&o.object, o.moved_from.as_ref().and_then(|m| m.unique_name.as_ref()))
        {
            live.moved_groups.insert(g.unique_name.to_ascii_lowercase(), before.clone());
        }
    }
    let mut subscriptions: BTreeSet<String> = extra_subscriptions.iter().map(|s| s.to_ascii_lowercase()).collect();
    for o in desired.objects.values() {
        if let Some(sub) = subscription_of(&o.object) {
            subscriptions.insert(sub);
        }
    }
    let refs = principal_refs(desired);

    // ARM (with the federated credentials) and the Graph groups do not depend on each other:
    // both are read at once. An ARM error is reported first, as when they ran in turn.
    let (arm, groups) =
        tokio::join!(read_arm(client, desired, &subscriptions, &mut live), read_groups(client, desired, &refs));
    arm?;
    record_groups(&mut live, groups?);
    resolve_named_principals(client, &mut live, &refs).await?;

    // Names of the other principals holding roles at the scopes we manage (for drift and
    // access), of those holding our assignments, and of those holding roles at or below the
    // objects of ours the configuration no longer declares (the plan destroys them): plans name
    // them all, never by object id.
    let scopes = managed_scopes(desired);
    let marker = crate::lower::assignment_marker(&desired.owner);
    let doomed = undeclared_owned(&live, desired);
    let unknown: BTreeSet<String> = live
        .role_assignments
        .values()
        .filter(|r| {
            let scope = canonical(&r.properties.scope);
            scopes.contains(&scope)
                || r.properties.description.as_deref().is_some_and(|d| d.ends_with(&marker))
                || doomed
                    .iter()
                    .any(|d| scope == *d || scope.strip_prefix(d.as_str()).is_some_and(|r| r.starts_with('/')))
        })
        .map(|r| r.properties.principal_id.to_ascii_lowercase())
        .filter(|id| !live.principals.contains_key(id))
        .collect();
    name_principals(client, &mut live, &unknown).await?;
    Ok(live)
}

/// Canonical ids of the resource groups and workspaces carrying this owner's tag that the
/// desired state does not declare: the plan destroys them.
fn undeclared_owned(live: &LiveState, desired: &DesiredState) -> Vec<String> {
    let declared: BTreeSet<String> = desired
        .objects
        .values()
        .filter_map(|o| match &o.object {
            Desired::ResourceGroup(r) => Some(canonical(&r.id)),
            Desired::Workspace(w) => Some(canonical(&w.id)),
            _ => None,
        })
        .collect();
    let rgs = live.resource_groups.iter().filter(|(_, r)| live.owned_tags(&r.tags)).map(|(id, _)| id);
    let ws = live.workspaces.iter().filter(|(_, w)| live.owned_tags(&w.tags)).map(|(id, _)| id);
    rgs.chain(ws).filter(|id| !declared.contains(*id)).cloned().collect()
}

/// The groups read, with their members and owners, into `live`.
fn record_groups(live: &mut LiveState, read: GroupsRead) {
    let GroupsRead { groups, mut memberships, resolved, ambiguous, adoptable } = read;
    // A group listed twice (ours, and named as an existing group) needs its members twice.
    let mut listed: BTreeMap<String, usize> = BTreeMap::new();
    for g in &groups {
        *listed.entry(g.id.clone()).or_default() += 1;
    }
    live.resolved.extend(resolved);
    live.ambiguous.extend(ambiguous);
    live.adoptable = adoptable;
    for g in groups {
        let id = g.id.to_ascii_lowercase();
        live.principals.insert(
            id.clone(),
            PrincipalInfo {
                id: id.clone(),
                kind: PrincipalKind::Group,
                display: g.display_name.clone().unwrap_or_else(|| id.clone()),
                app_id: None,
            },
        );
        let last = listed.get_mut(&g.id).is_some_and(|n| {
            *n -= 1;
            *n == 0
        });
        let m = if last { memberships.remove(&g.id) } else { memberships.get(&g.id).cloned() };
        let m = m.flatten().unwrap_or_default();
        for o in m.members.iter().chain(&m.owners) {
            live.principals.entry(o.id.to_ascii_lowercase()).or_insert_with(|| PrincipalInfo::from_directory_object(o));
        }
        let members = m.members.iter().map(|o| o.id.to_ascii_lowercase()).collect();
        let owners = m.owners.iter().map(|o| o.id.to_ascii_lowercase()).collect();
        live.groups.insert(id, LiveGroup { group: g, members, owners });
    }
}

/// Resolves the principals the configuration names: service principals and the users not seen
/// as members, each kind in batches, both at once.
async fn resolve_named_principals(
    client: &AzureClient,
    live: &mut LiveState,
    refs: &BTreeSet<PrincipalRef>,
) -> Result<(), Diagnostic> {
    let known_upns: BTreeMap<String, String> = live
        .principals
        .values()
        .filter(|p| p.kind == PrincipalKind::User)
        .map(|p| (p.display.to_ascii_lowercase(), p.id.clone()))
        .collect();
    let mut upns = Vec::new();
    let mut sp_names = Vec::new();
    for r in refs {
        match r {
            PrincipalRef::User { upn } if !known_upns.contains_key(&upn.to_ascii_lowercase()) => {
                upns.push(upn.clone());
            }
            PrincipalRef::ServicePrincipal { name } => sp_names.push(name.clone()),
            _ => {}
        }
    }
    let (sps, users) = tokio::join!(
        async {
            if sp_names.is_empty() { Ok(BTreeMap::new()) } else { client.find_service_principals(&sp_names).await }
        },
        async { if upns.is_empty() { Ok(BTreeMap::new()) } else { client.resolve_upns(&upns).await } },
    );
    let mut sps = sps.map_err(|e| read_error(&e))?;
    let users = users.map_err(|e| read_error(&e))?;
    for r in refs {
        resolve_ref(live, r, &known_upns, &mut sps);
    }
    for upn in upns {
        let user = users.get(&upn).cloned().flatten();
        let id = user.as_ref().map(|u| u.id.to_ascii_lowercase());
        if let Some(u) = &user {
            let id = u.id.to_ascii_lowercase();
            live.principals.insert(
                id.clone(),
                PrincipalInfo {
                    id,
                    kind: PrincipalKind::User,
                    display: u.user_principal_name.clone().unwrap_or_else(|| upn.clone()),
                    app_id: None,
                },
            );
        }
        live.resolved.insert(PrincipalRef::User { upn }, id);
    }
    Ok(())
}

/// What one principal the configuration names is in the tenant (users found as members, service
/// principals from the batch, and the principals of objects read from ARM and Graph).
fn resolve_ref(
    live: &mut LiveState,
    r: &PrincipalRef,
    known_upns: &BTreeMap<String, String>,
    sps: &mut BTreeMap<String, Vec<azure::ServicePrincipal>>,
) {
    match r {
        PrincipalRef::User { upn } => {
            if let Some(id) = known_upns.get(&upn.to_ascii_lowercase()) {
                live.resolved.insert(r.clone(), Some(id.clone()));
            }
        }
        PrincipalRef::ServicePrincipal { name } => {
            let found = sps.remove(name).unwrap_or_default();
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
                            kind: PrincipalKind::ServicePrincipal,
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
        PrincipalRef::Group { unique_name, display_name, .. } => {
            let id = match live.group_match(unique_name, display_name) {
                GroupMatch::Owned(id, _) | GroupMatch::Adoptable(id, _) => Some(id.clone()),
                GroupMatch::Ambiguous(_) | GroupMatch::Absent => None,
            };
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
                        kind: PrincipalKind::ServicePrincipal,
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
                        kind: PrincipalKind::ServicePrincipal,
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
        if r.status == 404 {
            live.deleted.insert((*id).clone());
        }
        let info = if r.status == 200 {
            serde_json::from_value::<DirectoryObject>(r.body.clone())
                .ok()
                .map(|o| PrincipalInfo::from_directory_object(&o))
        } else {
            None
        };
        let info = info.unwrap_or_else(|| PrincipalInfo {
            id: (*id).clone(),
            kind: PrincipalKind::Unknown,
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
                || live.principals.get(&id).is_some_and(|p| p.kind == PrincipalKind::Group)
        })
        .map(|a| a.properties.principal_id.to_ascii_lowercase())
        .filter(|id| !live.groups.contains_key(id))
        .collect();
    let mut visited: BTreeSet<String> = live.groups.keys().cloned().collect();
    for g in live.groups.values() {
        for m in &g.members {
            if live.principals.get(m).is_some_and(|p| p.kind == PrincipalKind::Group) && !live.groups.contains_key(m) {
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
                if info.kind == PrincipalKind::Group && !visited.contains(&info.id) {
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

/// Groups the desired state declares that have no live `uniqueName` match are looked up by
/// display name (batched); those without a `uniqueName` are adoption candidates, added to
/// `groups` so their members are read too.
async fn read_adoptable(
    client: &AzureClient,
    desired: &DesiredState,
    groups: &mut Vec<azure::Group>,
    adoptable: &mut BTreeMap<String, Vec<String>>,
) -> Result<(), Diagnostic> {
    let owned: BTreeSet<String> =
        groups.iter().filter_map(|g| g.unique_name.as_deref()).map(str::to_ascii_lowercase).collect();
    let names: BTreeSet<String> = desired
        .objects
        .values()
        .filter_map(|o| match &o.object {
            Desired::Group(g) if !owned.contains(&g.unique_name.to_ascii_lowercase()) => Some(g.display_name.clone()),
            _ => None,
        })
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = names.into_iter().collect();
    let found = client.find_groups_by_display_names(&names).await.map_err(|e| read_error(&e))?;
    for (name, candidates) in found {
        let mut ids = Vec::new();
        for g in candidates.into_iter().filter(|g| g.unique_name.as_deref().is_none_or(str::is_empty)) {
            ids.push(g.id.to_ascii_lowercase());
            if !groups.iter().any(|x| x.id.eq_ignore_ascii_case(&g.id)) {
                groups.push(g);
            }
        }
        ids.sort();
        ids.dedup();
        if !ids.is_empty() {
            adoptable.insert(name.to_lowercase(), ids);
        }
    }
    Ok(())
}

/// ARM: per subscription (subscriptions in parallel), its lists at once — resource groups,
/// workspaces, role assignments, the role catalog, and the identities followed by the
/// federated credentials of every identity the configuration manages or owns (one list each,
/// concurrent: ARM has no batch).
async fn read_arm(
    client: &AzureClient,
    desired: &DesiredState,
    subscriptions: &BTreeSet<String>,
    live: &mut LiveState,
) -> Result<(), Diagnostic> {
    let managed: std::sync::Arc<BTreeSet<String>> = std::sync::Arc::new(
        desired
            .objects
            .values()
            .filter_map(|o| match &o.object {
                Desired::Identity(i) => Some(canonical(&i.id)),
                _ => None,
            })
            .collect(),
    );
    let mut tasks = JoinSet::new();
    for sub in subscriptions.clone() {
        let c = client.clone();
        let managed = std::sync::Arc::clone(&managed);
        let our_owner = live.owner.clone();
        tasks.spawn(async move {
            let identities_and_credentials = async {
                let ids = c.list_user_assigned_identities(&sub).await?;
                let mut lists = JoinSet::new();
                for i in &ids {
                    let owned = i.tags.iter().any(|(k, v)| k.eq_ignore_ascii_case(OWNER_TAG) && *v == our_owner);
                    if owned || managed.contains(&canonical(&i.id)) {
                        let c = c.clone();
                        let id = i.id.clone();
                        lists.spawn(async move { c.list_federated_credentials(&id).await });
                    }
                }
                let mut fics = Vec::new();
                while let Some(joined) = lists.join_next().await {
                    let list = joined
                        .map_err(|e| AzureError::local("list federated credentials", "Internal", e.to_string()))??;
                    fics.extend(list);
                }
                Ok::<_, AzureError>((ids, fics))
            };
            let (rgs, ws, (ids, fics), ras, roles) = tokio::try_join!(
                c.list_resource_groups(&sub),
                c.list_workspaces(&sub),
                identities_and_credentials,
                c.list_role_assignments_for_subscription(&sub),
                c.role_catalog(&sub),
            )?;
            Ok::<_, AzureError>((sub, rgs, ws, ids, fics, ras, roles))
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (sub, rgs, ws, ids, fics, ras, roles) = joined
            .map_err(|e| Diagnostic::error(Code::E0501, format!("reading the tenant failed: {e}")))?
            .map_err(|e| read_error(&e))?;
        live.resource_groups.extend(rgs.into_iter().map(|r| (canonical(&r.id), r)));
        live.workspaces.extend(ws.into_iter().map(|w| (canonical(&w.id), w)));
        live.identities.extend(ids.into_iter().map(|i| (canonical(&i.id), i)));
        live.federated.extend(fics.into_iter().map(|f| (canonical(&f.id), f)));
        live.role_assignments.extend(ras.into_iter().map(|r| (canonical(&r.id), r)));
        live.roles.insert(sub, roles);
    }
    Ok(())
}

/// What [`read_groups`] found.
struct GroupsRead {
    /// This configuration's groups, then the existing groups it names, as listed.
    groups: Vec<azure::Group>,
    memberships: BTreeMap<String, Option<azure::GroupMembership>>,
    resolved: Vec<(PrincipalRef, Option<String>)>,
    ambiguous: Vec<(PrincipalRef, usize)>,
    adoptable: BTreeMap<String, Vec<String>>,
}

/// Graph: every group with this configuration's `uniqueName` prefix and the existing groups
/// the configuration names by display name (looked up in batches), at once; then the members
/// and owners of all of them (batched).
async fn read_groups(
    client: &AzureClient,
    desired: &DesiredState,
    refs: &BTreeSet<PrincipalRef>,
) -> Result<GroupsRead, Diagnostic> {
    let names: Vec<String> = refs
        .iter()
        .filter_map(|r| match r {
            PrincipalRef::ExistingGroup { name } => Some(name.clone()),
            _ => None,
        })
        .collect();
    let prefix = group_unique_prefix(&desired.owner);
    let (ours, existing) = tokio::join!(client.list_groups_by_unique_name_prefix(&prefix), async {
        if names.is_empty() { Ok(BTreeMap::new()) } else { client.find_groups_by_display_names(&names).await }
    });
    let mut groups = ours.map_err(|e| read_error(&e))?;
    let mut existing = existing.map_err(|e| read_error(&e))?;
    let mut resolved = Vec::new();
    let mut ambiguous = Vec::new();
    for r in refs {
        if let PrincipalRef::ExistingGroup { name } = r {
            let found = existing.remove(name).unwrap_or_default();
            match found.len() {
                0 => resolved.push((r.clone(), None)),
                1 => {
                    resolved.push((r.clone(), Some(found[0].id.to_ascii_lowercase())));
                    groups.extend(found);
                }
                n => ambiguous.push((r.clone(), n)),
            }
        }
    }
    let mut adoptable = BTreeMap::new();
    read_adoptable(client, desired, &mut groups, &mut adoptable).await?;
    let group_ids: Vec<String> = groups.iter().map(|g| g.id.clone()).collect();
    let memberships = client.batch_group_members(&group_ids).await.map_err(|e| read_error(&e))?;
    Ok(GroupsRead { groups, memberships, resolved, ambiguous, adoptable })
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
