//! What `mlpolicy access` answers, built from an [`AccessGraph`]: reports of a principal's
//! access or of everyone's access at a scope, and the kinds, scope names and managed assignments
//! they show.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::graph::{AccessGraph, Assignment, Effective, covers, desired_key, from_live};
use super::query::{principal_key, scope_query};
use crate::live::LiveState;
use crate::lower::{Desired, DesiredState, PrincipalRef};
use mlpolicy_lang::diagnostics::{Code, Diagnostic, Diagnostics};
use mlpolicy_vocab::arm::canonical;

/// What `mlpolicy access` answers: one principal's access, or everyone's access at a scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Report {
    /// `principal` or `scope`.
    #[schemars(extend("enum" = ["principal", "scope"]))]
    pub query: &'static str,
    /// The principal or scope asked about, as reviewers know it.
    pub subject: String,
    /// `user`, `group`, `service_principal`, `identity`, `unknown`; or the scope's kind.
    pub subject_kind: String,
    /// `live` (the tenant) or `configuration` (as the configuration would make it).
    #[schemars(extend("enum" = ["live", "configuration"]))]
    pub source: &'static str,
    /// A principal's access narrowed to this scope (`access PRINCIPAL --scope SCOPE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    pub entries: Vec<Entry>,
}

/// One way a principal holds a role on a scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Entry {
    /// Who holds the access (display name).
    pub principal: String,
    /// Its object id (live) or configuration key.
    pub principal_id: String,
    /// `user`, `group`, `existing_group`, `service_principal`, `identity`, ...
    pub principal_kind: String,
    /// The role definition's name.
    pub role: String,
    /// The scope the role is held on, as reviewers know it.
    pub scope: String,
    /// The scope's ARM id (canonical).
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
    let mut out: HashMap<String, String> =
        live.principals.iter().map(|(id, p)| (id.clone(), p.kind.as_str().to_owned())).collect();
    for id in live.identity_principals() {
        out.insert(id, "identity".into());
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
/// or carrying its ownership marker. Looked up once per reported entry, without allocating.
#[derive(Debug, Default)]
pub struct ManagedAssignments {
    /// Principal id → (role, canonical scope) of each of its managed assignments.
    by_principal: HashMap<String, Vec<(String, String)>>,
}

impl ManagedAssignments {
    fn insert(&mut self, principal: String, role: String, scope_id: String) {
        self.by_principal.entry(principal).or_default().push((role, scope_id));
    }

    /// Whether `a` (keyed by principal id and canonical scope) is managed; roles compare
    /// without regard to case.
    pub fn contains(&self, a: &Assignment) -> bool {
        self.by_principal.get(a.principal.as_str()).is_some_and(|held| {
            held.iter().any(|(role, scope)| *scope == a.scope_id && role.eq_ignore_ascii_case(&a.role))
        })
    }
}

/// What `mlpolicy access` is asked: a principal, a scope, or a principal narrowed to a scope.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub principal: Option<&'a str>,
    pub scope: Option<&'a str>,
}

/// The report for a query over a graph: a principal's access, narrowed to a scope when both are
/// given, or everyone's access at a scope. `live` maps configuration references to object ids
/// when the graph is the tenant's. Codes: E0901, E0902.
pub fn answer(
    ctx: &Context<'_>,
    desired: &DesiredState,
    subscriptions: &BTreeMap<String, String>,
    query: &Query<'_>,
    live: Option<&LiveState>,
) -> Result<Report, Diagnostics> {
    let scope = query.scope.map(|s| scope_query(s, desired, subscriptions)).transpose()?;
    match (query.principal, scope) {
        (Some(p), scope) => {
            let key = principal_key(p, desired, ctx.graph, live)?;
            let mut report = ctx.principal_report(&key);
            if let Some(s) = scope {
                report.entries.retain(|e| s.targets.iter().any(|t| covers(&e.scope_id, t) || covers(t, &e.scope_id)));
                report.at = Some(s.subject);
            }
            Ok(report)
        }
        (None, Some(s)) => Ok(ctx.scope_report(s.subject, &s.kind, &s.targets)),
        (None, None) => Err(Diagnostic::error(Code::E0901, "give a PRINCIPAL, or --scope SCOPE").into()),
    }
}

/// `mlpolicy access --live` once the tenant is read (with its groups expanded): the answer over
/// the tenant's access graph, scopes shown as the configuration names them, and assignments the
/// configuration manages marked.
pub fn live_report(
    desired: &DesiredState,
    live: &LiveState,
    subscriptions: &BTreeMap<String, String>,
    query: &Query<'_>,
) -> Result<Report, Diagnostics> {
    let mut names = scope_names(desired);
    for (alias, id) in subscriptions {
        names.entry(canonical(&format!("/subscriptions/{id}"))).or_insert_with(|| format!("subscription {alias}"));
    }
    let show_scope =
        |s: &str| names.get(&canonical(s)).cloned().unwrap_or_else(|| mlpolicy_vocab::arm::scope_display(s));
    let graph = from_live(live, |_| true, show_scope);
    let kinds = live_kinds(live);
    let scopes = managed_scope_names(desired);
    let managed = managed_live_assignments(desired, live);
    let is_managed = |a: &Assignment| managed.contains(a);
    let ctx =
        Context { graph: &graph, kinds: &kinds, managed_scopes: &scopes, is_managed: &is_managed, source: "live" };
    answer(&ctx, desired, subscriptions, query, Some(live))
}

/// The [`ManagedAssignments`] of a configuration in the tenant.
pub fn managed_live_assignments(desired: &DesiredState, live: &LiveState) -> ManagedAssignments {
    let marker = crate::lower::assignment_marker(&desired.owner);
    let mut out = ManagedAssignments::default();
    for o in desired.objects.values() {
        if let Desired::RoleAssignment(r) = &o.object
            && let Some(Some(pid)) = live.resolved.get(&r.principal)
        {
            out.insert(pid.clone(), r.role.clone(), r.scope.clone());
        }
    }
    for a in live.role_assignments.values() {
        if a.properties.description.as_deref().is_some_and(|d| d.ends_with(&marker)) {
            out.insert(
                a.properties.principal_id.to_ascii_lowercase(),
                live.role_name(a),
                canonical(&a.properties.scope),
            );
        }
    }
    out
}
