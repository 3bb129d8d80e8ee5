//! Effective access: who holds which role on which scope, directly or through (nested) groups.
//! One implementation serves the plan's "Access changes" section, `mlpolicy access` and audit.
//!
//! The input is an [`AccessGraph`]: principals with display names and kinds, direct group
//! memberships, and role assignments. Group nesting is expanded transitively with a visited set,
//! so a cycle in a corrupted tenant cannot hang it. A leaf is any principal that is not a group
//! (user, service principal, managed identity), or a group whose members are not known.
//!
//! Scopes inherit downwards as in Azure RBAC: a role held on a subscription applies to its
//! resource groups, a role on a resource group to the resources in it ([`covers`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::live::LiveState;
use crate::lower::{Desired, DesiredState, PrincipalRef};
use crate::plan::AccessChange;
use mlpolicy_lang::diagnostics::Code;
use mlpolicy_lang::diagnostics::Diagnostic;
use mlpolicy_vocab::arm::canonical;

/// A principal in an access graph, keyed by object id (or `new:ADDRESS` before creation).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Node {
    pub display: String,
    pub is_group: bool,
}

/// One role held on one scope.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Assignment {
    pub principal: String,
    pub role: String,
    /// Scope as reviewers know it.
    pub scope: String,
    /// Canonical ARM id of the scope (lower-case), for inheritance.
    pub scope_id: String,
}

/// Principals, memberships and assignments. Nodes and memberships are hashed (a tenant has tens
/// of thousands of principals, looked up once per path step); everything that decides an order
/// is sorted, so answers stay deterministic.
#[derive(Debug, Clone, Default)]
pub struct AccessGraph {
    pub nodes: HashMap<String, Node>,
    /// Group key → direct member keys.
    pub members: HashMap<String, BTreeSet<String>>,
    pub assignments: BTreeSet<Assignment>,
}

/// A principal's role on a scope through one assignment, with the group path that grants it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Effective<'a> {
    /// The principal that holds the access (a user, service principal or identity).
    pub leaf: String,
    /// The assignment it comes from.
    pub assignment: &'a Assignment,
    /// Group keys from the assigned group down to the one holding the leaf; empty when direct.
    pub via: Vec<String>,
}

/// Whether a role held on `scope` applies to `target` (both canonical ARM ids): the same scope or
/// one of its ancestors.
pub fn covers(scope: &str, target: &str) -> bool {
    target == scope || (target.starts_with(scope) && target.as_bytes().get(scope.len()) == Some(&b'/'))
}

impl AccessGraph {
    pub fn display(&self, key: &str) -> String {
        self.nodes.get(key).map_or_else(|| key.to_owned(), |n| n.display.clone())
    }

    /// Whether a key is a group (declared as one, or with known members).
    pub fn is_group(&self, key: &str) -> bool {
        self.nodes.get(key).is_some_and(|n| n.is_group) || self.members.contains_key(key)
    }

    /// Every leaf reachable from `group` with the shortest path to it (ties: smallest path).
    pub fn leaves_of(&self, group: &str) -> BTreeMap<String, Vec<String>> {
        self.leaves(group)
            .into_iter()
            .map(|(leaf, via)| (leaf.to_owned(), via.into_iter().map(str::to_owned).collect()))
            .collect()
    }

    /// [`Self::leaves_of`], borrowing the keys from the graph.
    fn leaves<'g>(&'g self, group: &'g str) -> BTreeMap<&'g str, Vec<&'g str>> {
        let mut best: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut visited: BTreeSet<&str> = BTreeSet::new();
        // Breadth-first, so the first path that reaches a leaf is a shortest one.
        let mut frontier: Vec<(&str, Vec<&str>)> = vec![(group, vec![group])];
        visited.insert(group);
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for (g, path) in frontier {
                for m in self.members.get(g).into_iter().flatten() {
                    // A group whose members are unknown (not read, or outside the configuration)
                    // is as far as the path goes: it is shown as the holder.
                    if self.members.contains_key(m) {
                        if visited.insert(m) {
                            let mut p = path.clone();
                            p.push(m);
                            next.push((m.as_str(), p));
                        }
                    } else {
                        match best.get(m.as_str()) {
                            Some(existing)
                                if existing.len() < path.len()
                                    || (existing.len() == path.len() && *existing <= path) => {}
                            _ => {
                                best.insert(m, path.clone());
                            }
                        }
                    }
                }
            }
            next.sort();
            frontier = next;
        }
        best
    }

    /// Every (leaf, role, scope) with one path, the shortest.
    pub fn effective(&self) -> BTreeMap<(String, String, String), Vec<String>> {
        let mut names = Names::default();
        let effective = self.effective_ids(&mut names);
        effective
            .into_iter()
            .map(|((leaf, role, scope), via)| {
                let text = |id: u32| names.text[id as usize].to_owned();
                ((text(leaf), text(role), text(scope)), via.into_iter().map(str::to_owned).collect())
            })
            .collect()
    }

    /// [`Self::effective`], unordered, keyed by the ids `names` gives the leaf, role and scope;
    /// each group's leaves are found once however many roles it holds.
    fn effective_ids<'g>(&'g self, names: &mut Names<'g>) -> HashMap<(u32, u32, u32), Vec<&'g str>> {
        type Out<'g> = HashMap<(u32, u32, u32), Vec<&'g str>>;
        fn put<'g>(out: &mut Out<'g>, key: (u32, u32, u32), via: &[&'g str]) {
            match out.get(&key) {
                Some(existing) if existing.len() < via.len() || (existing.len() == via.len() && **existing <= *via) => {
                }
                _ => {
                    out.insert(key, via.to_vec());
                }
            }
        }
        let mut out: Out<'g> = HashMap::new();
        let mut leaves: HashMap<&str, Vec<(u32, Vec<&str>)>> = HashMap::new();
        for a in &self.assignments {
            let (role, scope) = (names.id(&a.role), names.id(&a.scope));
            if self.is_group(&a.principal) {
                let of_group = leaves.entry(&a.principal).or_insert_with(|| {
                    self.leaves(&a.principal).into_iter().map(|(leaf, via)| (names.id(leaf), via)).collect()
                });
                for (leaf, via) in of_group.iter() {
                    put(&mut out, (*leaf, role, scope), via);
                }
            } else {
                put(&mut out, (names.id(&a.principal), role, scope), &[]);
            }
        }
        out
    }

    /// Everything `key` holds: its own assignments and those of every group that contains it,
    /// directly or through nesting — one entry per assignment, with the shortest group path.
    pub fn holdings_of(&self, key: &str) -> Vec<Effective<'_>> {
        let mut parents: HashMap<&str, Vec<&str>> = HashMap::new();
        for (group, members) in &self.members {
            for m in members {
                parents.entry(m.as_str()).or_default().push(group.as_str());
            }
        }
        // Breadth-first upwards: the path to each containing group, from that group down.
        let mut paths: BTreeMap<&str, Vec<String>> = BTreeMap::from([(key, Vec::new())]);
        let mut frontier = vec![key];
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for child in frontier {
                for &parent in parents.get(child).into_iter().flatten() {
                    if paths.contains_key(parent) {
                        continue;
                    }
                    let mut path = vec![parent.to_owned()];
                    path.extend(paths[child].iter().cloned());
                    paths.insert(parent, path);
                    next.push(parent);
                }
            }
            next.sort_unstable();
            frontier = next;
        }
        let mut out: Vec<Effective> = self
            .assignments
            .iter()
            .filter_map(|a| {
                let path = paths.get(a.principal.as_str())?;
                let via = if a.principal == key { Vec::new() } else { path.clone() };
                Some(Effective { leaf: key.to_owned(), assignment: a, via })
            })
            .collect();
        out.sort_by(order);
        out
    }

    /// Everyone holding a role that applies at `targets` (canonical ARM ids): assignments on them,
    /// on their ancestors, and on scopes below them, each expanded to the principals that hold
    /// it. In assignment order; callers sort for their report.
    pub fn holders_at(&self, targets: &[String]) -> Vec<Effective<'_>> {
        let mut leaves: HashMap<&str, BTreeMap<String, Vec<String>>> = HashMap::new();
        let mut out = Vec::new();
        for a in &self.assignments {
            let relevant = targets.iter().any(|t| covers(&a.scope_id, t) || covers(t, &a.scope_id));
            if !relevant {
                continue;
            }
            if self.members.contains_key(&a.principal) {
                let of = leaves.entry(a.principal.as_str()).or_insert_with(|| self.leaves_of(&a.principal));
                for (leaf, via) in of.iter() {
                    out.push(Effective { leaf: leaf.clone(), assignment: a, via: via.clone() });
                }
            } else {
                out.push(Effective { leaf: a.principal.clone(), assignment: a, via: Vec::new() });
            }
        }
        out
    }

    /// The path of an effective access as reviewers read it: `leaf → inner → outer` is shown
    /// outermost first, `outer → inner`; `None` when the access is direct.
    pub fn path_display<S: AsRef<str>>(&self, via: &[S]) -> Option<String> {
        (!via.is_empty()).then(|| via.iter().map(|k| self.display(k.as_ref())).collect::<Vec<_>>().join(" → "))
    }
}

/// Report order: scope, role, then who and how.
fn order(x: &Effective, y: &Effective) -> std::cmp::Ordering {
    (&x.assignment.scope_id, &x.assignment.role, &x.leaf, &x.via, &x.assignment.principal).cmp(&(
        &y.assignment.scope_id,
        &y.assignment.role,
        &y.leaf,
        &y.via,
        &y.assignment.principal,
    ))
}

/// The key of a principal in a graph built from the configuration alone.
pub fn desired_key(r: &PrincipalRef) -> String {
    match r {
        PrincipalRef::User { upn } => format!("user:{}", upn.to_ascii_lowercase()),
        PrincipalRef::ServicePrincipal { name } => format!("service_principal:{name}"),
        PrincipalRef::ExistingGroup { name } => format!("existing_group:{name}"),
        PrincipalRef::Group { unique_name, .. } => format!("group:{}", unique_name.to_ascii_lowercase()),
        PrincipalRef::Identity { id, .. } | PrincipalRef::WorkspaceSystem { id, .. } => {
            format!("identity:{}", canonical(id))
        }
    }
}

/// Whether a reference names a group (whose members may grant access onwards).
pub fn is_group_ref(r: &PrincipalRef) -> bool {
    matches!(r, PrincipalRef::Group { .. } | PrincipalRef::ExistingGroup { .. })
}

/// Access as the configuration alone would make it, without reading the tenant. Principals are
/// keyed by [`desired_key`]; existing groups are holders whose members are not known.
pub fn from_desired(desired: &DesiredState) -> AccessGraph {
    let mut g = AccessGraph::default();
    let node = |g: &mut AccessGraph, r: &PrincipalRef| {
        let key = desired_key(r);
        g.nodes.entry(key.clone()).or_insert(Node { display: r.display().to_owned(), is_group: is_group_ref(r) });
        key
    };
    for o in desired.objects.values() {
        match &o.object {
            Desired::Group(grp) => {
                let key = node(
                    &mut g,
                    &PrincipalRef::Group {
                        address: o.address.clone(),
                        unique_name: grp.unique_name.clone(),
                        display_name: grp.display_name.clone(),
                    },
                );
                let members = grp.members.iter().map(|m| node(&mut g, m)).collect();
                g.members.insert(key, members);
            }
            Desired::RoleAssignment(r) => {
                let principal = node(&mut g, &r.principal);
                g.assignments.insert(Assignment {
                    principal,
                    role: r.role.clone(),
                    scope: r.scope_display.clone(),
                    scope_id: r.scope.clone(),
                });
            }
            _ => {}
        }
    }
    g
}

/// Access as the tenant has it: every principal and membership the live read saw, and the role
/// assignments whose canonical scope `keep` selects, shown through `show_scope`.
pub fn from_live(live: &LiveState, keep: impl Fn(&str) -> bool, show_scope: impl Fn(&str) -> String) -> AccessGraph {
    let mut g = AccessGraph::default();
    for (id, p) in &live.principals {
        g.nodes.insert(id.clone(), Node { display: p.display.clone(), is_group: p.kind == "group" });
    }
    for (id, grp) in &live.groups {
        g.members.insert(id.clone(), grp.members.clone());
    }
    for a in live.role_assignments.values() {
        let scope_id = canonical(&a.properties.scope);
        if keep(&scope_id) {
            g.assignments.insert(Assignment {
                principal: a.properties.principal_id.to_ascii_lowercase(),
                role: live.role_name(a),
                scope: show_scope(&a.properties.scope),
                scope_id,
            });
        }
    }
    g
}

/// What `mlpolicy access` answers: one principal's access, or everyone's access at a scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// `principal` or `scope`.
    pub query: &'static str,
    /// The principal or scope asked about, as reviewers know it.
    pub subject: String,
    /// `user`, `group`, `service_principal`, `identity`, `unknown`; or the scope's kind.
    pub subject_kind: String,
    /// `live` (the tenant) or `configuration` (as the configuration would make it).
    pub source: &'static str,
    /// A principal's access narrowed to this scope (`access PRINCIPAL --scope SCOPE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    pub entries: Vec<Entry>,
}

/// One way a principal holds a role on a scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Who holds the access (display name).
    pub principal: String,
    /// Its object id (live) or configuration key.
    pub principal_id: String,
    pub principal_kind: String,
    pub role: String,
    pub scope: String,
    pub scope_id: String,
    /// From the holder up to the group the role is assigned to: `[alice, leads, ds]`.
    pub path: Vec<String>,
    /// The role is held on an ancestor of the scope asked about (`--scope` only).
    pub inherited: bool,
    /// Managed workspaces and resource groups below the scope the role is held on.
    pub covers: Vec<String>,
    /// The configuration declares (or its ownership marker carries) the assignment.
    pub managed: bool,
}

/// How a report presents graph keys: display names, kinds, and which assignments are managed.
pub struct Context<'a> {
    pub graph: &'a AccessGraph,
    /// Key → kind shown in the report.
    pub kinds: &'a HashMap<String, String>,
    /// Managed scopes below which `covers` is computed: canonical id → display name.
    pub managed_scopes: &'a BTreeMap<String, String>,
    pub is_managed: &'a dyn Fn(&Assignment) -> bool,
    pub source: &'static str,
}

impl Context<'_> {
    fn entry(&self, e: &Effective<'_>, target: Option<&[String]>) -> Entry {
        let a = e.assignment;
        let mut path = vec![self.graph.display(&e.leaf)];
        path.extend(e.via.iter().rev().map(|k| self.graph.display(k)));
        let inherited = target.is_some_and(|t| !t.iter().any(|t| *t == a.scope_id || covers(t, &a.scope_id)));
        // Asked about a scope, the scope is the context; asked about a principal, name the
        // managed workspaces and resource groups a broad grant reaches.
        let covers = if target.is_some() {
            Vec::new()
        } else {
            self.managed_scopes
                .iter()
                .filter(|(id, _)| **id != a.scope_id && covers(&a.scope_id, id))
                .map(|(_, name)| name.clone())
                .collect()
        };
        Entry {
            principal: self.graph.display(&e.leaf),
            principal_id: e.leaf.clone(),
            principal_kind: self.kind(&e.leaf),
            role: a.role.clone(),
            scope: a.scope.clone(),
            scope_id: a.scope_id.clone(),
            path,
            inherited,
            covers,
            managed: (self.is_managed)(a),
        }
    }

    fn kind(&self, key: &str) -> String {
        self.kinds
            .get(key)
            .cloned()
            .unwrap_or_else(|| if self.graph.is_group(key) { "group" } else { "unknown" }.to_owned())
    }

    /// Everything `key` holds.
    pub fn principal_report(&self, key: &str) -> Report {
        Report {
            query: "principal",
            subject: self.graph.display(key),
            subject_kind: self.kind(key),
            source: self.source,
            at: None,
            entries: self.graph.holdings_of(key).iter().map(|e| self.entry(e, None)).collect(),
        }
    }

    /// Everyone with access at `targets` (a scope and the resources that go with it).
    pub fn scope_report(&self, subject: String, subject_kind: &str, targets: &[String]) -> Report {
        let mut entries: Vec<Entry> =
            self.graph.holders_at(targets).iter().map(|e| self.entry(e, Some(targets))).collect();
        entries.sort_unstable_by(|x, y| {
            (&x.principal, &x.scope_id, &x.role, &x.path).cmp(&(&y.principal, &y.scope_id, &y.role, &y.path))
        });
        Report {
            query: "scope",
            subject,
            subject_kind: subject_kind.to_owned(),
            source: self.source,
            at: None,
            entries,
        }
    }
}

/// A scope asked about: how it is shown, its kind, and the canonical ids that make it up (a
/// workspace with its storage account, key vault, registry and Application Insights).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeQuery {
    pub subject: String,
    pub kind: String,
    pub targets: Vec<String>,
}

/// Resolves `--scope`: an address of the configuration (`workspace.fraud`,
/// `workspace.fraud.storage_account`, `resource_group.ml`), `sub.ALIAS`, a workspace's Azure
/// name, or an ARM id. Code: E0902.
pub fn scope_query(
    query: &str,
    desired: &DesiredState,
    subscriptions: &BTreeMap<String, String>,
) -> Result<ScopeQuery, Diagnostic> {
    let q = query.trim();
    if q.starts_with('/') {
        let id = canonical(q);
        return Ok(ScopeQuery {
            subject: mlpolicy_vocab::arm::scope_display(&id),
            kind: "scope".into(),
            targets: vec![id],
        });
    }
    if let Some(id) = q.strip_prefix("sub.").and_then(|alias| subscriptions.get(alias)) {
        return Ok(ScopeQuery {
            subject: q.to_owned(),
            kind: "subscription".into(),
            targets: vec![format!("/subscriptions/{}", id.to_ascii_lowercase())],
        });
    }
    let (base, attachment) = match q.rsplit_once('.') {
        Some((b, a)) if ["storage_account", "key_vault", "container_registry", "application_insights"].contains(&a) => {
            (b, Some(a))
        }
        _ => (q, None),
    };
    let base = &normalize_address(base);
    let by_address = desired.objects.get(base.as_str());
    let by_name = || {
        desired.objects.values().find(|o| match &o.object {
            Desired::Workspace(w) => w.name.eq_ignore_ascii_case(base),
            _ => false,
        })
    };
    match (by_address.or_else(by_name).map(|o| (&o.address, &o.object)), attachment) {
        (Some((address, Desired::Workspace(w))), None) => {
            let mut targets = vec![canonical(&w.id), canonical(&w.storage_account), canonical(&w.key_vault)];
            targets.extend(w.container_registry.iter().chain(&w.application_insights).map(|i| canonical(i)));
            Ok(ScopeQuery { subject: format!("{address} ({})", w.name), kind: "workspace".into(), targets })
        }
        (Some((address, Desired::Workspace(w))), Some(a)) => {
            let id = match a {
                "storage_account" => Some(&w.storage_account),
                "key_vault" => Some(&w.key_vault),
                "container_registry" => w.container_registry.as_ref(),
                _ => w.application_insights.as_ref(),
            };
            let id = id.ok_or_else(|| {
                Diagnostic::error(Code::E0902, format!("`{address}` has no {}", a.replace('_', " ")))
                    .with_help("the workspace declares no such resource")
            })?;
            Ok(ScopeQuery {
                subject: format!("{address}.{a} ({})", mlpolicy_vocab::arm::scope_display(id)),
                kind: a.to_owned(),
                targets: vec![canonical(id)],
            })
        }
        (Some((address, Desired::ResourceGroup(r))), None) => Ok(ScopeQuery {
            subject: format!("{address} ({})", r.name),
            kind: "resource_group".into(),
            targets: vec![canonical(&r.id)],
        }),
        _ => {
            let candidates: Vec<String> = desired
                .objects
                .iter()
                .filter(|(_, o)| matches!(o.object, Desired::Workspace(_) | Desired::ResourceGroup(_)))
                .map(|(a, _)| a.clone())
                .chain(subscriptions.keys().map(|a| format!("sub.{a}")))
                .collect();
            let help = mlpolicy_vocab::suggest::did_you_mean(q, candidates.iter().map(String::as_str)).unwrap_or_else(|| {
                "give `workspace.NAME`, `workspace.NAME.storage_account`, `resource_group.NAME`, `sub.ALIAS` or an ARM id"
                    .into()
            });
            Err(Diagnostic::error(Code::E0902, format!("`{q}` is not a scope of this configuration")).with_help(help))
        }
    }
}

/// Resolves PRINCIPAL to a key of `graph`: an address of the configuration (`group.x`,
/// `identity.x`, `workspace.x.identity`), a UPN, an object id (live), or a display name.
/// `live` maps configuration references to object ids when the graph is the tenant's.
/// Code: E0901.
pub fn principal_key(
    query: &str,
    desired: &DesiredState,
    graph: &AccessGraph,
    live: Option<&LiveState>,
) -> Result<String, Diagnostic> {
    let q = query.trim();
    let reference = principal_ref(q, desired);
    if let Some(r) = &reference {
        return match live {
            None => Ok(desired_key(r)),
            Some(l) => l.resolved.get(r).cloned().flatten().ok_or_else(|| {
                Diagnostic::error(Code::E0901, format!("`{q}` does not exist in the tenant yet"))
                    .with_help("plan and apply the configuration first, or ask without --live")
            }),
        };
    }
    if ["group.", "identity.", "workspace."].iter().any(|k| q.starts_with(k)) {
        let addresses: Vec<String> = desired
            .objects
            .iter()
            .filter_map(|(a, o)| match o.object {
                Desired::Group(_) | Desired::Identity(_) => Some(a.clone()),
                Desired::Workspace(_) => Some(format!("{a}.identity")),
                _ => None,
            })
            .collect();
        let help = mlpolicy_vocab::suggest::did_you_mean(q, addresses.iter().map(String::as_str))
            .unwrap_or_else(|| "addresses of groups, identities and workspace identities name principals".into());
        return Err(
            Diagnostic::error(Code::E0901, format!("`{q}` is not a principal of this configuration")).with_help(help)
        );
    }
    if q.contains('@') {
        let upn = q.to_ascii_lowercase();
        let found = graph
            .nodes
            .iter()
            .filter(|(_, n)| !n.is_group && n.display.eq_ignore_ascii_case(&upn))
            .min_by(|x, y| x.0.cmp(y.0));
        return match (found, live) {
            (Some((k, _)), _) => Ok(k.clone()),
            (None, None) => Ok(format!("user:{upn}")),
            (None, Some(_)) => Err(Diagnostic::error(Code::E0901, format!("no user `{q}` in the tenant"))
                .with_help("check the user principal name (guests have `#EXT#` in theirs)")),
        };
    }
    if mlpolicy_vocab::guid::is_guid(q) {
        return if live.is_some() {
            Ok(q.to_ascii_lowercase())
        } else {
            Err(Diagnostic::error(
                Code::E0901,
                format!("`{q}` is an object id: the configuration does not know object ids"),
            )
            .with_help("add --live to ask the tenant, or give an address such as `group.NAME`"))
        };
    }
    let mut matches: Vec<&String> =
        graph.nodes.iter().filter(|(_, n)| n.display.eq_ignore_ascii_case(q)).map(|(k, _)| k).collect();
    matches.sort();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => {
            let names: BTreeSet<&str> = graph.nodes.values().map(|n| n.display.as_str()).collect();
            let help = mlpolicy_vocab::suggest::did_you_mean(q, names).unwrap_or_else(|| {
                "give a UPN, `group.NAME`, `identity.NAME`, `workspace.NAME.identity` or a display name".into()
            });
            Err(Diagnostic::error(Code::E0901, format!("no principal `{q}` holds or grants access here"))
                .with_help(help))
        }
        many => {
            Err(Diagnostic::error(Code::E0901, format!("`{q}` names {} principals", many.len())).with_help(format!(
                "give one of their object ids with --live: {}",
                many.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            )))
        }
    }
}

/// An address as typed on a command line, where quotes are a nuisance: `group.ds[fraud]` is
/// `group.ds["fraud"]`.
fn normalize_address(q: &str) -> String {
    let mut out = String::with_capacity(q.len() + 4);
    let mut rest = q;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']').map(|c| open + c) else { break };
        let key = &rest[open + 1..close];
        out.push_str(&rest[..=open]);
        if key.starts_with('"') || key.parse::<i64>().is_ok() {
            out.push_str(key);
        } else {
            out.push('"');
            out.push_str(key);
            out.push('"');
        }
        out.push(']');
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// The configuration reference an address names.
fn principal_ref(q: &str, desired: &DesiredState) -> Option<PrincipalRef> {
    let q = &normalize_address(q);
    if let Some(ws) = q.strip_suffix(".identity")
        && let Some(Desired::Workspace(w)) = desired.objects.get(ws).map(|o| &o.object)
    {
        return Some(PrincipalRef::WorkspaceSystem { address: ws.to_owned(), id: w.id.clone(), name: w.name.clone() });
    }
    let o = desired.objects.get(q)?;
    match &o.object {
        Desired::Group(g) => Some(PrincipalRef::Group {
            address: o.address.clone(),
            unique_name: g.unique_name.clone(),
            display_name: g.display_name.clone(),
        }),
        Desired::Identity(i) => {
            Some(PrincipalRef::Identity { address: o.address.clone(), id: i.id.clone(), name: i.name.clone() })
        }
        _ => None,
    }
}

/// Kinds of the configuration's principals, by [`desired_key`].
pub fn desired_kinds(desired: &DesiredState) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for r in crate::live::principal_refs(desired) {
        let kind = match r {
            PrincipalRef::User { .. } => "user",
            PrincipalRef::ServicePrincipal { .. } => "service_principal",
            PrincipalRef::ExistingGroup { .. } => "existing_group",
            PrincipalRef::Group { .. } => "group",
            PrincipalRef::Identity { .. } => "identity",
            PrincipalRef::WorkspaceSystem { .. } => "workspace_identity",
        };
        out.insert(desired_key(&r), kind.to_owned());
    }
    out
}

/// Kinds of the tenant's principals: managed identities (user-assigned and workspaces') are
/// `identity`, the rest as Graph says.
pub fn live_kinds(live: &LiveState) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = live.principals.iter().map(|(id, p)| (id.clone(), p.kind.clone())).collect();
    let identity_ids = live
        .identities
        .values()
        .filter_map(|i| i.properties.principal_id.as_ref())
        .chain(live.workspaces.values().filter_map(|w| w.identity.as_ref()?.principal_id.as_ref()));
    for id in identity_ids {
        out.insert(id.to_ascii_lowercase(), "identity".into());
    }
    out
}

/// Scopes as the configuration's grants show them, canonical id → display.
pub fn scope_names(desired: &DesiredState) -> BTreeMap<String, String> {
    desired
        .objects
        .values()
        .filter_map(|o| match &o.object {
            Desired::RoleAssignment(r) => Some((r.scope.clone(), r.scope_display.clone())),
            _ => None,
        })
        .collect()
}

/// Managed workspaces and resource groups, canonical id → Azure name, for `covers`.
pub fn managed_scope_names(desired: &DesiredState) -> BTreeMap<String, String> {
    desired
        .objects
        .values()
        .filter_map(|o| match &o.object {
            Desired::Workspace(w) => Some((canonical(&w.id), w.name.clone())),
            Desired::ResourceGroup(r) => Some((canonical(&r.id), r.name.clone())),
            _ => None,
        })
        .collect()
}

/// The live assignments the configuration manages: declared (same principal, role and scope)
/// or carrying its ownership marker. Keys are (principal id, role, canonical scope).
pub fn managed_live_assignments(desired: &DesiredState, live: &LiveState) -> BTreeSet<(String, String, String)> {
    let marker = crate::lower::assignment_marker(&desired.owner);
    let mut out: BTreeSet<(String, String, String)> = desired
        .objects
        .values()
        .filter_map(|o| match &o.object {
            Desired::RoleAssignment(r) => {
                let pid = live.resolved.get(&r.principal).cloned().flatten()?;
                Some((pid, r.role.to_ascii_lowercase(), r.scope.clone()))
            }
            _ => None,
        })
        .collect();
    for a in live.role_assignments.values() {
        if a.properties.description.as_deref().is_some_and(|d| d.ends_with(&marker)) {
            out.insert((
                a.properties.principal_id.to_ascii_lowercase(),
                live.role_name(a).to_ascii_lowercase(),
                canonical(&a.properties.scope),
            ));
        }
    }
    out
}

/// The distinct strings of one or two graphs as small numbers, so that effective-access
/// entries hash and compare as three integers.
#[derive(Default)]
struct Names<'g> {
    ids: HashMap<&'g str, u32>,
    text: Vec<&'g str>,
}

impl<'g> Names<'g> {
    fn id(&mut self, s: &'g str) -> u32 {
        let text = &mut self.text;
        *self.ids.entry(s).or_insert_with(|| {
            text.push(s);
            u32::try_from(text.len() - 1).unwrap_or(u32::MAX)
        })
    }
}

/// Who gains and who loses access between two graphs, grouped into reviewer-sized lines:
/// gains first, then losses, each ordered by scope, role and path.
pub fn changes<'g>(before: &'g AccessGraph, after: &'g AccessGraph) -> Vec<AccessChange> {
    // One set of names for both, so their entries compare; unordered maps, because what is
    // gained and lost is collected into ordered ones below.
    let mut names = Names::default();
    let b = before.effective_ids(&mut names);
    let a = after.effective_ids(&mut names);
    let text = |id: u32| names.text[id as usize];
    let mut grouped: BTreeMap<(bool, String, String, Option<String>), BTreeSet<String>> = BTreeMap::new();
    for (key, via) in &a {
        if !b.contains_key(key) {
            grouped
                .entry((true, text(key.2).to_owned(), text(key.1).to_owned(), after.path_display(via)))
                .or_default()
                .insert(after.display(text(key.0)));
        }
    }
    for (key, via) in &b {
        if !a.contains_key(key) {
            grouped
                .entry((false, text(key.2).to_owned(), text(key.1).to_owned(), before.path_display(via)))
                .or_default()
                .insert(before.display(text(key.0)));
        }
    }
    let mut out: Vec<AccessChange> = grouped
        .into_iter()
        .map(|((gain, scope, role, via), principals)| AccessChange {
            gain,
            principals: principals.into_iter().collect(),
            role,
            scope,
            via,
        })
        .collect();
    out.sort_by(|x, y| y.gain.cmp(&x.gain).then_with(|| (&x.scope, &x.role, &x.via).cmp(&(&y.scope, &y.role, &y.via))));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(members: &[(&str, &[&str])], assignments: &[(&str, &str, &str)]) -> AccessGraph {
        let mut g = AccessGraph::default();
        for (group, ms) in members {
            g.nodes.insert((*group).to_owned(), Node { display: format!("G-{group}"), is_group: true });
            g.members.insert((*group).to_owned(), ms.iter().map(|m| (*m).to_owned()).collect());
            for m in *ms {
                g.nodes.entry((*m).to_owned()).or_insert(Node { display: (*m).to_owned(), is_group: false });
            }
        }
        for (p, r, s) in assignments {
            g.assignments.insert(Assignment {
                principal: (*p).to_owned(),
                role: (*r).to_owned(),
                scope: (*s).to_owned(),
                scope_id: format!("/{s}"),
            });
        }
        g
    }

    #[test]
    fn nested_groups_give_paths() {
        let g = graph(&[("outer", &["inner", "carol"]), ("inner", &["alice"])], &[("outer", "Reader", "ws")]);
        let e = g.effective();
        assert_eq!(e[&("alice".into(), "Reader".into(), "ws".into())], vec!["outer".to_string(), "inner".to_string()]);
        assert_eq!(e[&("carol".into(), "Reader".into(), "ws".into())], vec!["outer".to_string()]);
    }

    #[test]
    fn cycles_terminate() {
        let g = graph(&[("a", &["b", "x"]), ("b", &["a", "y"])], &[("a", "Reader", "ws")]);
        let e = g.effective();
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn changes_group_principals() {
        let before = graph(&[("g", &["mallory"])], &[("g", "AzureML Data Scientist", "ws")]);
        let after = graph(&[("g", &["alice", "bob"])], &[("g", "AzureML Data Scientist", "ws")]);
        let c = changes(&before, &after);
        assert_eq!(c.len(), 2);
        assert!(c[0].gain);
        assert_eq!(c[0].principals, vec!["alice", "bob"]);
        assert_eq!(c[0].via.as_deref(), Some("G-g"));
        assert!(!c[1].gain);
        assert_eq!(c[1].principals, vec!["mallory"]);
    }

    #[test]
    fn a_deleted_nested_group_loses_access_and_gains_none() {
        // What the plan does to a group it deletes: the group stays (a parent still lists
        // it) with no members.
        let before = graph(&[("parent", &["doomed"]), ("doomed", &["alice"])], &[("parent", "Reader", "ws")]);
        let mut after = before.clone();
        after.members.insert("doomed".into(), BTreeSet::new());
        let c = changes(&before, &after);
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(!c[0].gain);
        assert_eq!(c[0].principals, vec!["alice"]);
    }

    #[test]
    fn covers_follows_arm_ancestry() {
        assert!(covers("/subscriptions/s", "/subscriptions/s/resourcegroups/rg"));
        assert!(covers("/subscriptions/s/resourcegroups/rg", "/subscriptions/s/resourcegroups/rg"));
        assert!(!covers("/subscriptions/s/resourcegroups/rg", "/subscriptions/s/resourcegroups/rg2"));
        assert!(!covers("/subscriptions/s/resourcegroups/rg/x", "/subscriptions/s/resourcegroups/rg"));
    }

    fn at(g: &mut AccessGraph, principal: &str, role: &str, scope_id: &str) {
        g.assignments.insert(Assignment {
            principal: principal.into(),
            role: role.into(),
            scope: scope_id.rsplit('/').next().unwrap().into(),
            scope_id: scope_id.into(),
        });
    }

    #[test]
    fn holdings_walk_up_nested_groups_with_shortest_paths() {
        let mut g = graph(&[("outer", &["middle"]), ("middle", &["inner", "alice"]), ("inner", &["alice"])], &[]);
        at(&mut g, "outer", "Reader", "/subscriptions/s");
        at(&mut g, "inner", "AzureML Data Scientist", "/subscriptions/s/rg/ws");
        at(&mut g, "alice", "Owner", "/subscriptions/s/rg");
        at(&mut g, "bob", "Owner", "/subscriptions/s/rg");
        let h = g.holdings_of("alice");
        let found: Vec<(&str, Vec<&str>)> =
            h.iter().map(|e| (e.assignment.role.as_str(), e.via.iter().map(String::as_str).collect())).collect();
        assert_eq!(
            found,
            vec![("Reader", vec!["outer", "middle"]), ("Owner", vec![]), ("AzureML Data Scientist", vec!["inner"]),]
        );
    }

    #[test]
    fn holdings_terminate_on_cycles() {
        let mut g = graph(&[("a", &["b"]), ("b", &["a", "alice"])], &[]);
        at(&mut g, "a", "Reader", "/x");
        let h = g.holdings_of("alice");
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].via, vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn holders_include_ancestors_and_descendants_of_the_target() {
        let mut g = graph(&[("ds", &["alice", "bob"])], &[]);
        at(&mut g, "ds", "AzureML Data Scientist", "/subscriptions/s/rg/ws");
        at(&mut g, "carol", "Owner", "/subscriptions/s/rg");
        at(&mut g, "dave", "Reader", "/subscriptions/s/rg/ws/computes/c1");
        at(&mut g, "eve", "Reader", "/subscriptions/s/rg/other");
        let mut leaves: Vec<String> =
            g.holders_at(&["/subscriptions/s/rg/ws".into()]).into_iter().map(|e| e.leaf).collect();
        leaves.sort();
        assert_eq!(leaves, vec!["alice", "bob", "carol", "dave"]);
    }

    #[test]
    fn groups_without_known_members_hold_access_themselves() {
        let mut g = AccessGraph::default();
        g.nodes.insert("ext".into(), Node { display: "ext".into(), is_group: true });
        at(&mut g, "ext", "Reader", "/s");
        let h = g.holders_at(&["/s".into()]);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].leaf, "ext");
    }

    #[test]
    fn addresses_accept_unquoted_keys() {
        assert_eq!(normalize_address("workspace.team[fraud]"), r#"workspace.team["fraud"]"#);
        assert_eq!(normalize_address(r#"group.ds["risk"].x"#), r#"group.ds["risk"].x"#);
        assert_eq!(normalize_address("group.ds[3]"), "group.ds[3]");
        assert_eq!(normalize_address("group.ds[open"), "group.ds[open");
    }
}
