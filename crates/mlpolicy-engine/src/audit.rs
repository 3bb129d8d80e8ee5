//! Audit: the configuration's policies over the live tenant, and what only live state shows.
//!
//! In: a compiled configuration and a client. Out: a [`Report`] of findings. The audit reads
//! live state as `plan` does ([`live::read`]) and widens it to the *audit scopes*: every scope
//! the configuration manages (its resource groups, workspaces and grant scopes) plus the
//! resources attached to its workspaces (storage account, key vault, container registry,
//! Application Insights). It then judges, once each:
//!
//! - every role assignment at an audit scope, declared or not (`grant` rules), as it is live:
//!   a portal-granted Owner on a managed workspace violates `no_standing_admin` though no
//!   `.mlp` declares it;
//! - the managed workspaces (and those in managed resource groups), identities (managed or
//!   carrying the ownership tag) with their federated credentials, and groups (managed or named
//!   by the configuration), as they are live;
//! - `audit/orphaned-assignment`: an assignment whose principal Graph no longer knows (404);
//! - `audit/unexplained-access`: an assignment the configuration does not declare;
//! - `audit/expired-secret`, `audit/expiring-secret`: client secrets of app registrations whose
//!   service principal holds a role at an audit scope, expired or expiring within the window.
//!
//! Each live object gives at most one finding: the most specific rule that matched names it
//! (an orphaned principal first, then `deny` policies, then unexplained access, then `warn`
//! policies) and the others are listed in `also`. Waivers (`allow P because ...`) on a
//! declaration waive policy P for the live object it declares. Nothing here reads the clock:
//! "now" is an input. Reads only; codes are those of the live stage (E0501).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use crate::live::{self, LiveState, PrincipalKind, managed_scopes};
use crate::lower::{Desired, DesiredState, OWNER_TAG, assignment_marker, unmarked_description};
use mlpolicy_azure::{self as azure, AzureClient};
use mlpolicy_lang::Compiled;
use mlpolicy_lang::ast::{self, Effect};
use mlpolicy_lang::diagnostics::Diagnostics;
use mlpolicy_lang::eval::{Env, Evaluator};
use mlpolicy_lang::findings::{Finding, Level, Location, Report, RuleInfo, policy_rule_id, policy_rules};
use mlpolicy_lang::model::{Meta, Value};
use mlpolicy_lang::packs;
use mlpolicy_lang::policy;
use mlpolicy_vocab::arm::canonical;
use mlpolicy_vocab::time::parse_rfc3339;

/// A principal id Graph no longer resolves holds the role.
pub const ORPHANED: &str = "audit/orphaned-assignment";
/// A role assignment at an audit scope that the configuration does not declare.
pub const UNEXPLAINED: &str = "audit/unexplained-access";
/// A client secret that expired, of an app holding a role at an audit scope.
pub const EXPIRED: &str = "audit/expired-secret";
/// A client secret that expires within the window, of an app holding a role at an audit scope.
pub const EXPIRING: &str = "audit/expiring-secret";

/// Default `--expiring-within`.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30 * 86_400);

/// The rules of the audit itself.
pub fn audit_rules() -> Vec<RuleInfo> {
    let rule = |id: &str, level, summary: &str, help: &str| RuleInfo {
        id: id.to_owned(),
        level,
        summary: summary.to_owned(),
        help: help.to_owned(),
    };
    vec![
        rule(
            ORPHANED,
            Level::Warn,
            "role assignments whose principal was deleted",
            "The principal no longer exists, so the assignment grants nothing, but it clutters every access review and hides what was meant; delete it (`az role assignment delete --ids ID`)",
        ),
        rule(
            UNEXPLAINED,
            Level::Deny,
            "access at a managed scope that the configuration does not declare",
            "Declare it in the configuration (`grant ROLE to group.NAME on ...`, then `mlpolicy apply`) so that it is reviewed, or remove it; people get access through a group, not directly",
        ),
        rule(
            EXPIRED,
            Level::Deny,
            "expired client secrets of apps that hold roles on the estate",
            "Delete the expired secret (`az ad app credential delete --id APP_ID --key-id KEY_ID`); if the app still runs, move it to a managed identity or a federated credential instead of a new secret",
        ),
        rule(
            EXPIRING,
            Level::Warn,
            "client secrets that expire soon, of apps that hold roles on the estate",
            "Rotate the secret before it expires, or better, replace it with a federated credential or a managed identity so that there is no secret to rotate",
        ),
    ]
}

/// How findings are judged.
#[derive(Debug, Clone, Copy)]
pub struct AuditOptions {
    /// "Now", in seconds since the epoch.
    pub now: i64,
    /// Secrets expiring within this window are reported.
    pub expiring_within: Duration,
}

/// What the audit read.
#[derive(Debug, Default)]
pub struct AuditState {
    pub desired: DesiredState,
    pub live: LiveState,
    /// Canonical ids of the scopes whose role assignments are judged.
    pub scopes: BTreeSet<String>,
    /// App registrations by lower-case app id, of the service principals holding roles there.
    pub applications: BTreeMap<String, azure::Application>,
    /// Principal ids holding roles at the audit scopes that Graph answers 404 for: deleted.
    pub deleted: BTreeSet<String>,
}

/// Reads what the audit judges.
pub async fn read(compiled: &Compiled, client: &AzureClient) -> Result<AuditState, Diagnostics> {
    let owner = compiled.settings.owner.clone().unwrap_or_else(|| crate::lower::DEFAULT_OWNER.to_owned());
    let desired = crate::lower::lower(&compiled.model, &owner);
    let subscriptions: Vec<String> = compiled.settings.subscriptions.values().cloned().collect();
    let mut live = live::read(client, &desired, &subscriptions).await.map_err(Diagnostics::from)?;
    let scopes = audit_scopes(&desired);
    let holders = principals_with_roles(&live, &scopes);
    let unnamed: BTreeSet<String> = holders.iter().filter(|p| !live.principals.contains_key(*p)).cloned().collect();
    live::name_principals(client, &mut live, &unnamed).await.map_err(Diagnostics::from)?;
    // Principals Graph could not name and answered 404 for; other failures (403, say) do not
    // make an assignment orphaned.
    let deleted: BTreeSet<String> = holders.iter().filter(|p| live.deleted.contains(*p)).cloned().collect();
    let identities = live.identity_principals();
    let app_ids: Vec<String> = holders
        .into_iter()
        .filter(|p| !identities.contains(p))
        .filter_map(|p| live.principals.get(&p).and_then(|i| i.app_id.clone()))
        .map(|a| a.to_ascii_lowercase())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut applications = BTreeMap::new();
    if !app_ids.is_empty() {
        let found = client.batch_applications_by_app_id(&app_ids).await.map_err(|e| live::read_error(&e))?;
        applications.extend(found.into_iter().filter_map(|(k, v)| v.map(|a| (k, a))));
    }
    Ok(AuditState { desired, live, scopes, applications, deleted })
}

/// The audit scopes: what the configuration manages, and its workspaces' attached resources.
pub fn audit_scopes(desired: &DesiredState) -> BTreeSet<String> {
    let mut scopes = managed_scopes(desired);
    for o in desired.objects.values() {
        if let Desired::Workspace(w) = &o.object {
            let attached = [
                Some(&w.storage_account),
                Some(&w.key_vault),
                w.application_insights.as_ref(),
                w.container_registry.as_ref(),
            ];
            scopes.extend(attached.into_iter().flatten().filter(|s| !s.is_empty()).map(|s| canonical(s)));
        }
    }
    scopes
}

/// Principal ids (lower-case) holding a role at one of `scopes`.
fn principals_with_roles(live: &LiveState, scopes: &BTreeSet<String>) -> BTreeSet<String> {
    live.role_assignments
        .values()
        .filter(|a| scopes.contains(&canonical(&a.properties.scope)))
        .map(|a| a.properties.principal_id.to_ascii_lowercase())
        .collect()
}

/// One live object with what policies see of it.
struct Subject<'m> {
    /// Policy subject kind: `grant`, `group`, `identity`, `federated`, `workspace`.
    kind: &'static str,
    display: String,
    azure_id: String,
    /// The declaration of a managed object.
    meta: Option<&'m Meta>,
    env: Env,
    properties: BTreeMap<String, String>,
    /// Audit rules that matched before policies: (rank, rule, level, message).
    matches: Vec<(u8, String, Level, String)>,
}

const RANK_ORPHANED: u8 = 0;
const RANK_DENY: u8 = 1;
const RANK_UNEXPLAINED: u8 = 2;
const RANK_WARN: u8 = 3;

fn s(v: &str) -> Value {
    Value::Str(v.to_owned())
}

fn strs<'a>(items: impl IntoIterator<Item = &'a String>) -> Value {
    Value::List(items.into_iter().map(|v| s(v)).collect())
}

fn map(entries: &[(&str, Value)]) -> Value {
    Value::Map(entries.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect())
}

fn bind(pairs: Vec<(&str, Value)>) -> Env {
    Env::from_bindings(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn tags_value(tags: &BTreeMap<String, String>) -> Value {
    Value::Map(
        tags.iter().filter(|(k, _)| !k.eq_ignore_ascii_case(OWNER_TAG)).map(|(k, v)| (k.clone(), s(v))).collect(),
    )
}

/// The name of the resource group that holds an ARM id (as the id spells it).
fn resource_group_of(id: &str) -> String {
    mlpolicy_vocab::arm::resource_parts(id).map(|(_, rg, _)| rg.to_owned()).unwrap_or_default()
}

/// The policy `scope.kind` of an ARM scope.
pub fn scope_kind(scope: &str) -> &'static str {
    let segs: Vec<String> = scope.trim_matches('/').split('/').map(str::to_ascii_lowercase).collect();
    match segs.len() {
        2 if segs[0] == "subscriptions" => return "subscription",
        4 if segs[2] == "resourcegroups" => return "resource_group",
        _ => {}
    }
    let Some(i) = segs.iter().rposition(|s| s == "providers").filter(|i| segs.len() == i + 4) else {
        return "resource";
    };
    match (segs.get(i + 1).map(String::as_str), segs.get(i + 2).map(String::as_str)) {
        (Some("microsoft.machinelearningservices"), Some("workspaces")) => "workspace",
        (Some("microsoft.storage"), Some("storageaccounts")) => "storage_account",
        (Some("microsoft.keyvault"), Some("vaults")) => "key_vault",
        (Some("microsoft.containerregistry"), Some("registries")) => "container_registry",
        (Some("microsoft.insights"), Some("components")) => "application_insights",
        _ => "resource",
    }
}

/// Live role assignment id → address of the grant that declares it (matched as `diff` does:
/// scope, role GUID, principal object id).
fn declared_assignments(desired: &DesiredState, live: &LiveState) -> BTreeMap<String, String> {
    let mut by_content: HashMap<(String, String, String), Vec<&String>> = HashMap::new();
    for (id, a) in &live.role_assignments {
        let key = (canonical(&a.properties.scope), a.role_guid(), a.properties.principal_id.to_ascii_lowercase());
        by_content.entry(key).or_default().push(id);
    }
    let mut out = BTreeMap::new();
    for o in desired.objects.values() {
        let Desired::RoleAssignment(r) = &o.object else { continue };
        let Some(Some(pid)) = live.resolved.get(&r.principal) else { continue };
        let sub = r.scope.strip_prefix("/subscriptions/").map(|s| s.split('/').next().unwrap_or(s).to_owned());
        let catalog = sub.as_ref().and_then(|s| live.roles.get(s)).or_else(|| live.roles.values().next());
        let Some(guid) = catalog.and_then(|c| crate::roles::role_guid(Some(c), &r.role)) else { continue };
        let key = (r.scope.clone(), guid, pid.to_ascii_lowercase());
        for id in by_content.get(&key).into_iter().flatten() {
            out.insert((*id).clone(), o.address.clone());
        }
    }
    out
}

/// What the steps of [`evaluate`] share: the configuration, what was read, and the declarations
/// by address and by the Azure id of what they declare.
struct Audit<'a> {
    compiled: &'a Compiled,
    state: &'a AuditState,
    metas: BTreeMap<String, &'a Meta>,
    /// Canonical id of a declared workspace, identity, federated credential or resource group →
    /// its address.
    by_azure_id: BTreeMap<String, &'a String>,
    /// What was examined: how many of each kind of live object.
    examined: BTreeMap<String, usize>,
}

/// Judges what [`read`] found. Also returns the diagnostics of evaluating conditions (W0402).
pub fn evaluate(
    compiled: &Compiled,
    state: &AuditState,
    options: &AuditOptions,
    config_dir: &str,
) -> (Report, Diagnostics) {
    let mut audit = Audit::new(compiled, state);
    let mut subjects = audit.grants();
    subjects.extend(audit.workspaces());
    subjects.extend(audit.identities());
    subjects.extend(audit.federated());
    subjects.extend(audit.groups());
    let diagnostics = evaluate_policies(compiled, &mut subjects);
    (audit.report(subjects, options, config_dir), diagnostics)
}

impl<'a> Audit<'a> {
    fn new(compiled: &'a Compiled, state: &'a AuditState) -> Self {
        let metas = compiled.model.metas().map(|m| (m.address.to_string(), m)).collect();
        let by_azure_id = state
            .desired
            .objects
            .values()
            .filter_map(|o| match &o.object {
                Desired::Workspace(w) => Some((canonical(&w.id), &o.address)),
                Desired::Identity(i) => Some((canonical(&i.id), &o.address)),
                Desired::Federated(f) => Some((canonical(&f.id), &o.address)),
                Desired::ResourceGroup(r) => Some((canonical(&r.id), &o.address)),
                _ => None,
            })
            .collect();
        Audit { compiled, state, metas, by_azure_id, examined: BTreeMap::new() }
    }

    fn examine(&mut self, what: &str) {
        *self.examined.entry(what.to_owned()).or_default() += 1;
    }

    /// The declaration of the live object with ARM id `id`.
    fn meta_of(&self, id: &str) -> Option<&'a Meta> {
        self.by_azure_id.get(&canonical(id)).and_then(|a| self.metas.get(a.as_str()).copied())
    }

    /// Every role assignment at the audit scopes, with the orphaned and unexplained ones marked.
    fn grants(&mut self) -> Vec<Subject<'a>> {
        let live = &self.state.live;
        let declared = declared_assignments(&self.state.desired, live);
        let identities = live.identity_principals();
        let marker = assignment_marker(&self.state.desired.owner);
        let mut subjects = Vec::new();
        for (id, a) in &live.role_assignments {
            if !self.state.scopes.contains(&canonical(&a.properties.scope)) {
                continue;
            }
            self.examine("role assignments");
            let pid = a.properties.principal_id.to_ascii_lowercase();
            let role = live.role_name(a);
            let scope_name = mlpolicy_vocab::arm::scope_display(&a.properties.scope);
            let principal = live.display(&pid);
            let display = format!("role assignment {role} → {principal} @ {scope_name}");
            let address = declared.get(id);
            let meta = address.and_then(|a| self.metas.get(a).copied());
            let orphaned = self.state.deleted.contains(&pid);
            let info = live.principals.get(&pid);
            let kind = match info.map(|i| i.kind) {
                _ if orphaned => "unknown",
                Some(PrincipalKind::ServicePrincipal) if identities.contains(&pid) => "identity",
                Some(k) => k.as_str(),
                None => "unknown",
            };
            let member_count = live.groups.get(&pid).map_or(0, |g| i64::try_from(g.members.len()).unwrap_or(i64::MAX));
            let description = unmarked_description(&self.state.desired.owner, a.properties.description.as_deref());
            let env = bind(vec![
                ("role", s(&role)),
                (
                    "principal",
                    map(&[("kind", s(kind)), ("name", s(&principal)), ("member_count", Value::Int(member_count))]),
                ),
                ("scope", map(&[("kind", s(scope_kind(&a.properties.scope))), ("name", s(&scope_name))])),
                ("description", s(description)),
                ("condition", s(a.properties.condition.as_deref().unwrap_or_default())),
            ]);
            let mut properties = BTreeMap::from([
                ("role".to_owned(), role.clone()),
                ("principal_id".to_owned(), pid.clone()),
                ("scope".to_owned(), a.properties.scope.clone()),
            ]);
            if let Some(t) = &a.properties.principal_type {
                properties.insert("principal_type".into(), t.clone());
            }
            let mut matches = Vec::new();
            if orphaned {
                matches.push((
                    RANK_ORPHANED,
                    ORPHANED.to_owned(),
                    Level::Warn,
                    format!("{role} @ {scope_name} is held by principal {pid}, which no longer exists"),
                ));
            } else if address.is_none() {
                let how = match kind {
                    "user" => " (a direct grant to a user: no group of the configuration explains it)",
                    _ => "",
                };
                let owned = if a.properties.description.as_deref().is_some_and(|d| d.ends_with(&marker)) {
                    " (it carries this configuration's marker: the next `apply` deletes it)"
                } else {
                    ""
                };
                matches.push((
                    RANK_UNEXPLAINED,
                    UNEXPLAINED.to_owned(),
                    Level::Deny,
                    format!("{display} is not in the configuration{how}{owned}"),
                ));
            }
            subjects.push(Subject { kind: "grant", display, azure_id: a.id.clone(), meta, env, properties, matches });
        }
        subjects
    }

    /// The managed workspaces, and those in managed resource groups.
    fn workspaces(&mut self) -> Vec<Subject<'a>> {
        let live = &self.state.live;
        let managed_rgs: BTreeSet<String> = self
            .state
            .desired
            .objects
            .values()
            .filter_map(|o| if let Desired::ResourceGroup(r) = &o.object { Some(canonical(&r.id)) } else { None })
            .collect();
        let mut subjects = Vec::new();
        for (id, w) in &live.workspaces {
            let in_managed_rg = managed_rgs.iter().any(|rg| id.starts_with(&format!("{rg}/")));
            if !self.by_azure_id.contains_key(id) && !in_managed_rg {
                continue;
            }
            self.examine("workspaces");
            let (kind, name) = match w.identity.as_ref().map(|i| i.kind.to_ascii_lowercase()) {
                Some(k) if k.contains("userassigned") && !k.contains("systemassigned") => {
                    let uai = w
                        .identity
                        .as_ref()
                        .and_then(|i| i.user_assigned_identities.keys().next())
                        .map_or("", |k| mlpolicy_vocab::arm::last_segment(k));
                    ("user", uai.to_owned())
                }
                Some(k) if k.contains("systemassigned") => ("system", w.name.clone()),
                _ => ("none", String::new()),
            };
            let public =
                !w.properties.public_network_access.as_deref().is_some_and(|p| p.eq_ignore_ascii_case("Disabled"));
            let env = bind(vec![
                ("name", s(&w.name)),
                ("location", s(&w.location)),
                ("identity", map(&[("kind", s(kind)), ("name", s(&name))])),
                ("public_network_access", Value::Bool(public)),
                ("tags", tags_value(&w.tags)),
                ("description", s(w.properties.description.as_deref().unwrap_or_default())),
                ("resource_group", s(&resource_group_of(&w.id))),
            ]);
            subjects.push(Subject {
                kind: "workspace",
                display: format!("workspace {}", w.name),
                azure_id: w.id.clone(),
                meta: self.meta_of(id),
                env,
                properties: BTreeMap::new(),
                matches: Vec::new(),
            });
        }
        subjects
    }

    /// The managed identities, and those carrying the ownership tag.
    fn identities(&mut self) -> Vec<Subject<'a>> {
        let live = &self.state.live;
        let mut roles_of: HashMap<String, Vec<String>> = HashMap::new();
        for a in live.role_assignments.values() {
            roles_of.entry(a.properties.principal_id.to_ascii_lowercase()).or_default().push(live.role_name(a));
        }
        let mut subjects = Vec::new();
        for (id, i) in &live.identities {
            if !self.by_azure_id.contains_key(id) && !live.owned_tags(&i.tags) {
                continue;
            }
            self.examine("identities");
            let federated: Vec<&String> = live
                .federated
                .iter()
                .filter(|(fid, _)| fid.starts_with(&format!("{id}/")))
                .map(|(_, f)| &f.properties.subject)
                .collect();
            let mut roles = i
                .properties
                .principal_id
                .as_ref()
                .and_then(|p| roles_of.get(&p.to_ascii_lowercase()))
                .cloned()
                .unwrap_or_default();
            roles.sort();
            let write_roles: Vec<&String> = roles.iter().filter(|r| !policy::is_read_only(&s(r))).collect();
            let env = bind(vec![
                ("name", s(&i.name)),
                ("location", s(&i.location)),
                ("resource_group", s(&resource_group_of(&i.id))),
                ("tags", tags_value(&i.tags)),
                ("federated", strs(federated)),
                ("write_roles", strs(write_roles)),
                ("roles", strs(&roles)),
            ]);
            subjects.push(Subject {
                kind: "identity",
                display: format!("identity {}", i.name),
                azure_id: i.id.clone(),
                meta: self.meta_of(id),
                env,
                properties: BTreeMap::new(),
                matches: Vec::new(),
            });
        }
        subjects
    }

    /// The federated credentials read (those of managed and owned identities).
    fn federated(&mut self) -> Vec<Subject<'a>> {
        let live = &self.state.live;
        let mut subjects = Vec::new();
        for (id, f) in &live.federated {
            self.examine("federated credentials");
            let identity_id = id.rsplit_once("/federatedidentitycredentials/").map_or("", |(i, _)| i);
            let identity = live.identities.get(identity_id).map_or_else(String::new, |i| i.name.clone());
            let env = bind(vec![
                ("name", s(&f.name)),
                ("issuer", s(&f.properties.issuer)),
                ("subject", s(&f.properties.subject)),
                ("audiences", strs(&f.properties.audiences)),
                ("identity", map(&[("name", s(&identity))])),
            ]);
            subjects.push(Subject {
                kind: "federated",
                display: format!("federated credential {} of {identity}", f.name),
                azure_id: f.id.clone(),
                meta: self.meta_of(id),
                env,
                properties: BTreeMap::new(),
                matches: Vec::new(),
            });
        }
        subjects
    }

    /// The groups read: managed, or named by the configuration.
    fn groups(&mut self) -> Vec<Subject<'a>> {
        let live = &self.state.live;
        let groups_by_unique: BTreeMap<String, &String> = self
            .state
            .desired
            .objects
            .values()
            .filter_map(|o| match &o.object {
                Desired::Group(g) => Some((g.unique_name.to_ascii_lowercase(), &o.address)),
                _ => None,
            })
            .collect();
        let additive: BTreeMap<&String, bool> = self
            .state
            .desired
            .objects
            .values()
            .filter_map(|o| match &o.object {
                Desired::Group(g) => Some((&o.address, g.members_additive)),
                _ => None,
            })
            .collect();
        let mut subjects = Vec::new();
        for (id, g) in &live.groups {
            self.examine("groups");
            let address =
                g.group.unique_name.as_ref().and_then(|u| groups_by_unique.get(&u.to_ascii_lowercase())).copied();
            let names = |ids: &BTreeSet<String>| {
                let mut v: Vec<String> = ids.iter().map(|i| live.display(i)).collect();
                v.sort();
                Value::List(v.into_iter().map(Value::Str).collect())
            };
            let name = g.group.display_name.clone().unwrap_or_else(|| id.clone());
            let env = bind(vec![
                ("name", s(&name)),
                ("description", s(g.group.description.as_deref().unwrap_or_default())),
                ("members", names(&g.members)),
                ("owners", names(&g.owners)),
                ("members_additive", Value::Bool(address.and_then(|a| additive.get(a)).copied().unwrap_or(false))),
            ]);
            subjects.push(Subject {
                kind: "group",
                display: format!("group {name}"),
                azure_id: format!("/groups/{id}"),
                meta: address.and_then(|a| self.metas.get(a.as_str()).copied()),
                env,
                properties: BTreeMap::new(),
                matches: Vec::new(),
            });
        }
        subjects
    }

    /// The report: one finding per subject that matched something, then the secrets' findings.
    fn report(self, subjects: Vec<Subject<'_>>, options: &AuditOptions, config_dir: &str) -> Report {
        let compiled = self.compiled;
        let mut report = Report {
            command: "audit".into(),
            config_dir: config_dir.to_owned(),
            now: Some(mlpolicy_vocab::time::rfc3339(options.now)),
            ..Report::default()
        };
        report.findings.extend(subjects.into_iter().filter_map(|subject| finding(&compiled.sources, subject)));
        let (secrets, checked) = secret_findings(self.state, options);
        report.findings.extend(secrets);
        let mut examined = self.examined;
        examined.insert("applications".into(), checked);
        report.examined = examined;
        let mut catalog = policy_rules(&compiled.sources, &compiled.policies);
        catalog.extend(audit_rules());
        report.finish(&catalog);
        report
    }
}

/// Evaluates every policy rule over the subjects as the compiler does ([`policy::judge`]),
/// adding its matches; waivers are honoured, and a condition that is not a bool is W0402.
fn evaluate_policies(compiled: &Compiled, subjects: &mut [Subject<'_>]) -> Diagnostics {
    let mut vars: BTreeMap<String, Value> =
        compiled.settings.vars.iter().map(|(k, v)| (k.clone(), v.to_value())).collect();
    for (name, value) in packs::default_vars() {
        vars.entry(name.to_owned()).or_insert(value);
    }
    let lets: HashMap<String, &ast::Let> = compiled
        .files
        .iter()
        .flat_map(|f| &f.items)
        .filter_map(|i| if let ast::Item::Let(l) = i { Some((l.name.node.clone(), l)) } else { None })
        .collect();
    let evaluator =
        Evaluator::new(&vars, &compiled.settings.subscriptions, &lets, None).with_limits(compiled.settings.limits);
    let mut diagnostics = Diagnostics::default();
    for p in &compiled.policies {
        let rule_id = policy_rule_id(&compiled.sources, p.name.span, &p.name.node);
        for rule in &p.rules {
            for subject in subjects.iter_mut().filter(|s| s.kind == rule.subject.node) {
                let waivers = subject.meta.map_or(&[][..], |m| m.waivers.as_slice());
                let name: &dyn std::fmt::Display = match subject.meta {
                    Some(m) => &m.address,
                    None => &subject.display,
                };
                let judged = policy::judge(&evaluator, p, rule, name, &subject.env, waivers, &mut diagnostics);
                if judged != policy::Judgement::Matched {
                    continue;
                }
                let (rank, level, verb) = match rule.effect.node {
                    Effect::Deny => (RANK_DENY, Level::Deny, "denies"),
                    Effect::Warn => (RANK_WARN, Level::Warn, "warns about"),
                };
                let message = format!("policy `{}` {verb} {}", p.name.node, subject.display);
                subject.matches.push((rank, rule_id.clone(), level, message));
            }
        }
    }
    diagnostics.extend(evaluator.take_diagnostics());
    diagnostics.sort();
    diagnostics
}

/// The one finding of a subject: its most specific match, the others in `also`.
fn finding(sources: &mlpolicy_lang::source::Sources, mut subject: Subject<'_>) -> Option<Finding> {
    subject.matches.sort_by_key(|m| m.0);
    let (rank, rule, level, message) = subject.matches.first()?.clone();
    let mut also: Vec<String> = Vec::new();
    for (_, r, _, _) in &subject.matches[1..] {
        if *r != rule && !also.contains(r) {
            also.push(r.clone());
        }
    }
    let level = if rank == RANK_ORPHANED {
        Level::Warn
    } else if subject.matches.iter().any(|m| m.2 == Level::Deny) {
        Level::Deny
    } else {
        level
    };
    Some(Finding {
        rule,
        level,
        message,
        subject: subject.meta.map_or_else(|| subject.display.clone(), |m| m.address.to_string()),
        location: subject.meta.and_then(|m| Location::of(sources, m.name_span)),
        azure_id: Some(subject.azure_id),
        also,
        properties: subject.properties,
    })
}

/// Expired and expiring client secrets of the apps whose service principals hold roles at the
/// audit scopes; also returns how many applications were checked.
fn secret_findings(state: &AuditState, options: &AuditOptions) -> (Vec<Finding>, usize) {
    let live = &state.live;
    let mut roles: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for a in live.role_assignments.values() {
        if !state.scopes.contains(&canonical(&a.properties.scope)) {
            continue;
        }
        let Some(app_id) =
            live.principals.get(&a.properties.principal_id.to_ascii_lowercase()).and_then(|p| p.app_id.as_ref())
        else {
            continue;
        };
        roles.entry(app_id.to_ascii_lowercase()).or_default().insert(format!(
            "{} @ {}",
            live.role_name(a),
            mlpolicy_vocab::arm::scope_display(&a.properties.scope)
        ));
    }
    let window = i64::try_from(options.expiring_within.as_secs()).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    let mut checked = 0;
    for (app_id, app) in &state.applications {
        let Some(held) = roles.get(app_id) else { continue };
        checked += 1;
        let app_name = app.display_name.clone().unwrap_or_else(|| app_id.clone());
        let held = held.iter().cloned().collect::<Vec<_>>().join(", ");
        for p in &app.password_credentials {
            let Some(end_text) = p.end_date_time.as_deref() else { continue };
            let Some(end) = parse_rfc3339(end_text) else { continue };
            let left = end.saturating_sub(options.now);
            let key = p.key_id.clone().unwrap_or_default();
            let name = p.display_name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| key.clone());
            let date = mlpolicy_vocab::time::rfc3339(end);
            let (rule, level, when) = if left <= 0 {
                let days = (options.now - end) / 86_400;
                (EXPIRED, Level::Deny, format!("expired on {date} ({days} days ago)"))
            } else if left <= window {
                (EXPIRING, Level::Warn, format!("expires on {date} (in {} days)", left / 86_400))
            } else {
                continue;
            };
            out.push(Finding {
                rule: rule.to_owned(),
                level,
                message: format!(
                    "client secret `{name}` of app `{app_name}` {when}; its service principal holds {held}"
                ),
                subject: format!("client secret {key} of app {app_id}"),
                location: None,
                azure_id: Some(format!("/applications/{}", app.id)),
                also: Vec::new(),
                properties: BTreeMap::from([
                    ("app_id".to_owned(), app_id.clone()),
                    ("key_id".to_owned(), key),
                    ("end_date_time".to_owned(), date),
                    ("roles".to_owned(), held.clone()),
                ]),
            });
        }
    }
    (out, checked)
}

/// Reads and judges: the whole audit.
pub async fn audit(
    compiled: &Compiled,
    client: &AzureClient,
    options: &AuditOptions,
    config_dir: &str,
) -> Result<(Report, Diagnostics), Diagnostics> {
    let state = read(compiled, client).await?;
    Ok(evaluate(compiled, &state, options, config_dir))
}

#[cfg(test)]
mod tests;
