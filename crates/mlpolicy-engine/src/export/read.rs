//! Reading the estate an export describes: everything of the scope's subscriptions that an
//! export may declare, the groups under the prefixes and every group carrying an mlpolicy
//! `uniqueName`, their members and owners, and the directory objects role assignments name.
//! List calls and Graph `$batch` throughout, as `live` does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::task::JoinSet;

use crate::lower::OWNER_TAG;
use mlpolicy_azure::{
    self as azure, AzureClient, AzureError, BatchRequest, DirectoryObject, DirectoryObjectKind, RoleCatalog,
};
use mlpolicy_lang::diagnostics::Code;
use mlpolicy_lang::diagnostics::Diagnostic;
use mlpolicy_vocab::arm::canonical;

/// A group with its direct members and owners as directory objects.
#[derive(Debug, Clone)]
pub struct GroupInfo {
    pub group: azure::Group,
    pub members: Vec<DirectoryObject>,
    pub owners: Vec<DirectoryObject>,
}

/// A directory object as the export names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    User {
        upn: String,
    },
    Group {
        display_name: String,
    },
    App {
        app_id: Option<String>,
        display_name: String,
    },
    /// Deleted, or of a type mlpolicy does not name.
    Unknown,
}

impl Principal {
    fn of(o: &DirectoryObject) -> Principal {
        match o.kind() {
            DirectoryObjectKind::User => match &o.user_principal_name {
                Some(upn) => Principal::User { upn: upn.clone() },
                None => Principal::Unknown,
            },
            DirectoryObjectKind::Group => {
                Principal::Group { display_name: o.display_name.clone().unwrap_or_else(|| o.id.clone()) }
            }
            DirectoryObjectKind::ServicePrincipal => Principal::App {
                app_id: o.app_id.clone(),
                display_name: o.display_name.clone().unwrap_or_else(|| o.id.clone()),
            },
            DirectoryObjectKind::Other => Principal::Unknown,
        }
    }
}

/// What one export read. ARM objects are keyed by canonical id, directory objects by
/// lower-case object id.
#[derive(Debug, Default)]
pub struct Estate {
    /// `(alias, subscription id)`, as the scope names them.
    pub subscriptions: Vec<(String, String)>,
    pub resource_groups: BTreeMap<String, azure::ResourceGroup>,
    pub workspaces: BTreeMap<String, azure::Workspace>,
    pub identities: BTreeMap<String, azure::UserAssignedIdentity>,
    /// Federated credentials by canonical identity id.
    pub federated: BTreeMap<String, Vec<azure::FederatedCredential>>,
    pub role_assignments: BTreeMap<String, azure::RoleAssignment>,
    /// Role catalog per subscription id.
    pub roles: BTreeMap<String, Arc<RoleCatalog>>,
    /// Groups under a prefix, and every group whose `uniqueName` starts with `mlpolicy.`.
    pub groups: BTreeMap<String, GroupInfo>,
    /// Every directory object seen (members, owners, principals of role assignments).
    pub principals: BTreeMap<String, Principal>,
    /// Lower-case display name → how many groups in the tenant carry it, for the groups the
    /// export names with `existing_group`.
    pub group_name_counts: BTreeMap<String, usize>,
}

fn read_error(e: &AzureError) -> Diagnostic {
    let mut d = Diagnostic::error(Code::E0501, format!("reading the tenant failed: {}", e.op)).with_help(
        e.hint.clone().unwrap_or_else(|| "check the credentials, the tenant and the subscription ids".into()),
    );
    let status = if e.status == 0 { "no response".to_owned() } else { format!("HTTP {}", e.status) };
    d.message = format!("{}: {status} {}: {}", d.message, e.code, e.message);
    d
}

fn join_error(e: &tokio::task::JoinError) -> Diagnostic {
    Diagnostic::error(Code::E0501, format!("reading the tenant failed: {e}"))
}

use mlpolicy_vocab::arm::subscription_of;

/// Whether an ARM object carries any ownership tag.
pub fn owner_tag(tags: &BTreeMap<String, String>) -> Option<&str> {
    tags.iter().find(|(k, _)| k.eq_ignore_ascii_case(OWNER_TAG)).map(|(_, v)| v.as_str())
}

/// Reads the estate of `subscriptions` and the groups whose display name starts with one of
/// `prefixes`. `wanted_rg` says which resource groups' identities get their federated
/// credentials read (every identity carrying an ownership tag does too).
pub async fn read(
    client: &AzureClient,
    subscriptions: &[(String, String)],
    prefixes: &[String],
    wanted_rg: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Estate, Diagnostic> {
    let mut estate = Estate { subscriptions: subscriptions.to_vec(), ..Estate::default() };
    let mut tasks = JoinSet::new();
    for (_, sub) in subscriptions {
        let c = client.clone();
        let sub = sub.clone();
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
        let (sub, rgs, ws, ids, ras, roles) = joined.map_err(|e| join_error(&e))?.map_err(|e| read_error(&e))?;
        estate.resource_groups.extend(rgs.into_iter().map(|r| (canonical(&r.id), r)));
        estate.workspaces.extend(ws.into_iter().map(|w| (canonical(&w.id), w)));
        estate.identities.extend(ids.into_iter().map(|i| (canonical(&i.id), i)));
        // Assignments above the subscription (management groups, root) are not the estate's.
        estate.role_assignments.extend(
            ras.into_iter()
                .filter(|r| subscription_of(&r.properties.scope).is_some_and(|s| s == sub))
                .map(|r| (canonical(&r.id), r)),
        );
        estate.roles.insert(sub, roles);
    }

    // Federated credentials of the identities an export may declare: those in scope or marked,
    // and those a workspace in scope or marked runs as (a declared identity's credentials that
    // the export left out would be planned for deletion).
    let rg_of = |id: &str| id.split('/').nth(4).unwrap_or_default().to_owned();
    let mut needed: BTreeSet<String> = estate
        .identities
        .iter()
        .filter(|(id, i)| wanted_rg(&rg_of(id)) || owner_tag(&i.tags).is_some())
        .map(|(id, _)| id.clone())
        .collect();
    for (id, w) in &estate.workspaces {
        if !wanted_rg(&rg_of(id)) && owner_tag(&w.tags).is_none() {
            continue;
        }
        let user = w.identity.iter().flat_map(|i| i.user_assigned_identities.keys());
        needed.extend(user.chain(&w.properties.primary_user_assigned_identity).map(|u| canonical(u)));
    }
    let mut tasks = JoinSet::new();
    for (id, identity) in &estate.identities {
        if !needed.contains(id) {
            continue;
        }
        let c = client.clone();
        let key = id.clone();
        let real_id = identity.id.clone();
        tasks.spawn(async move { c.list_federated_credentials(&real_id).await.map(|f| (key, f)) });
    }
    while let Some(joined) = tasks.join_next().await {
        let (key, mut fics) = joined.map_err(|e| join_error(&e))?.map_err(|e| read_error(&e))?;
        fics.sort_by(|a, b| a.name.cmp(&b.name));
        estate.federated.insert(key, fics);
    }

    // Groups: under the prefixes, and every group mlpolicy created (for the owner count).
    let mut groups: BTreeMap<String, azure::Group> = BTreeMap::new();
    for g in client.list_groups_by_unique_name_prefix("mlpolicy.").await.map_err(|e| read_error(&e))? {
        groups.insert(g.id.to_ascii_lowercase(), g);
    }
    for prefix in prefixes {
        for g in client.list_groups_by_display_name_prefix(prefix).await.map_err(|e| read_error(&e))? {
            groups.insert(g.id.to_ascii_lowercase(), g);
        }
    }
    let ids: Vec<String> = groups.values().map(|g| g.id.clone()).collect();
    let memberships = client.batch_group_members(&ids).await.map_err(|e| read_error(&e))?;
    for (id, g) in groups {
        let m = memberships.get(&g.id).cloned().flatten().unwrap_or_default();
        estate
            .principals
            .insert(id.clone(), Principal::Group { display_name: g.display_name.clone().unwrap_or_default() });
        for o in m.members.iter().chain(&m.owners) {
            estate.principals.entry(o.id.to_ascii_lowercase()).or_insert_with(|| Principal::of(o));
        }
        estate.groups.insert(id, GroupInfo { group: g, members: m.members, owners: m.owners });
    }

    // The principals of role assignments not seen yet (identities and workspaces are known by
    // their principal ids and need no lookup).
    let known_arm: BTreeSet<String> = estate
        .identities
        .values()
        .filter_map(|i| i.properties.principal_id.as_deref())
        .chain(estate.workspaces.values().filter_map(|w| w.identity.as_ref().and_then(|i| i.principal_id.as_deref())))
        .map(str::to_ascii_lowercase)
        .collect();
    let unknown: Vec<String> = estate
        .role_assignments
        .values()
        .map(|r| r.properties.principal_id.to_ascii_lowercase())
        .filter(|id| !estate.principals.contains_key(id) && !known_arm.contains(id))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !unknown.is_empty() {
        let requests = unknown
            .iter()
            .enumerate()
            .map(|(i, id)| BatchRequest::get(i.to_string(), format!("/directoryObjects/{id}")));
        let responses = client.graph_batch(requests.collect()).await.map_err(|e| read_error(&e))?;
        for r in responses {
            let Some(id) = r.id.parse::<usize>().ok().and_then(|i| unknown.get(i)) else { continue };
            let principal = if r.status == 200 {
                serde_json::from_value::<DirectoryObject>(r.body.clone())
                    .map_or(Principal::Unknown, |o| Principal::of(&o))
            } else {
                Principal::Unknown
            };
            estate.principals.insert(id.clone(), principal);
        }
    }

    // How many groups carry each display name the export may write as `existing_group`.
    let names: BTreeSet<String> = estate
        .principals
        .iter()
        .filter(|(id, _)| !estate.groups.contains_key(*id))
        .filter_map(|(_, p)| if let Principal::Group { display_name } = p { Some(display_name.clone()) } else { None })
        .chain(estate.groups.values().filter_map(|g| g.group.display_name.clone()))
        .collect();
    if !names.is_empty() {
        let names: Vec<String> = names.into_iter().collect();
        let found = client.find_groups_by_display_names(&names).await.map_err(|e| read_error(&e))?;
        for (name, groups) in found {
            let n = groups.len();
            estate.group_name_counts.entry(name.to_lowercase()).and_modify(|c| *c = (*c).max(n)).or_insert(n);
        }
    }
    Ok(estate)
}
