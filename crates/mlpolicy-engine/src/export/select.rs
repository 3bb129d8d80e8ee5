//! From the estate to declarations: which objects the export declares (the scope, plus
//! everything that carries the owner's marker, plus what those need), who owns the estate,
//! the local name of each object, and every attribute and reference as an [`Expr`]. What
//! cannot be declared faithfully is kept as a [`Skipped`] note that says why.

use std::collections::{BTreeMap, BTreeSet};

use super::ir::{Decl, Expr, Grant, Local, sanitize};
use super::read::{Estate, GroupInfo, Principal, owner_tag};
use super::teams::{self, Candidate, Teams};
use crate::lower::{OWNER_TAG, group_unique_name, unmarked_description};
use mlpolicy_lang::check::{FIC_AUDIENCE, default_mail_nickname};
use mlpolicy_lang::model::{Address, Dependency, Key, Kind};
use mlpolicy_lang::syntax::{KEYWORDS, is_identifier};
use mlpolicy_vocab::arm::{canonical, resource_group_id, subscription_of};

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Resource group names (any subscription); empty: all of them.
    pub resource_groups: Vec<String>,
    /// Display name prefixes of the groups to declare.
    pub group_prefixes: Vec<String>,
    /// The owner to write; `None`: the most common marker in scope.
    pub owner: Option<String>,
}

/// Who an object id is, before local names are chosen.
enum Who {
    /// A declared identity (canonical id).
    Identity(String),
    /// A declared workspace's system-assigned identity (canonical id).
    Workspace(String),
    /// A declared group (object id).
    Group(String),
    /// Anything else, named directly.
    Expr(Expr),
}

/// Where a note about something not exported goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    Main,
    Groups,
    Grants,
}

/// An object the export does not declare, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Skipped {
    pub section: Section,
    pub what: String,
    pub why: String,
}

/// A declaration with the team it belongs to.
#[derive(Debug, Clone)]
pub struct Placed<T> {
    pub team: Option<String>,
    pub item: T,
}

/// Everything the renderer needs.
#[derive(Debug, Default)]
pub struct Selection {
    pub owner: String,
    /// Owners found on marked objects in scope, with their counts.
    pub owners_found: BTreeMap<String, usize>,
    pub teams: Option<Teams>,
    /// Resource groups, identities, workspaces, groups, in that order, each sorted by local.
    pub decls: Vec<Placed<Decl>>,
    pub grants: Vec<Placed<Grant>>,
    pub skipped: Vec<Skipped>,
    /// Things a user should know (printed by the command).
    pub notes: Vec<String>,
}

/// The owner of a role assignment description's `[mlpolicy:OWNER]` suffix.
fn assignment_owner(description: Option<&str>) -> Option<String> {
    let d = description?.trim_end();
    let rest = d.strip_suffix(']')?;
    let at = rest.rfind("[mlpolicy:")?;
    Some(rest[at + "[mlpolicy:".len()..].to_owned())
}

/// The owner and the rest of an mlpolicy `uniqueName` (`mlpolicy.OWNER.REST`).
fn unique_name_owner(unique_name: Option<&str>) -> Option<(String, String)> {
    let rest = unique_name?.strip_prefix("mlpolicy.")?;
    let (owner, rest) = rest.split_once('.')?;
    Some((owner.to_owned(), rest.to_owned()))
}

fn norm_location(l: &str) -> String {
    l.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase()
}

/// A valid owner marker from a scope name: `[a-z0-9-]`, at most 64.
fn owner_from(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out: String = out.trim_matches('-').chars().take(64).collect();
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() { crate::lower::DEFAULT_OWNER.to_owned() } else { out }
}

/// Azure's naming prefixes that add nothing to a local name.
fn strip_kind_prefix(kind: Kind, name: &str) -> &str {
    let prefixes: &[&str] = match kind {
        Kind::ResourceGroup => &["rg-", "rg_"],
        Kind::Identity => &["id-", "uai-", "umi-", "mi-"],
        Kind::Workspace => &["mlw-", "ws-"],
        _ => &[],
    };
    for p in prefixes {
        if let Some(rest) = name.get(p.len()..).filter(|_| name[..p.len()].eq_ignore_ascii_case(p))
            && !rest.is_empty()
        {
            return rest;
        }
    }
    name
}

/// Local names of one kind: unique, never a keyword.
#[derive(Default)]
struct Names {
    used: BTreeMap<Kind, BTreeSet<String>>,
}

impl Names {
    fn reserve(&mut self, kind: Kind, name: &str) {
        self.used.entry(kind).or_default().insert(name.to_owned());
    }

    fn take(&mut self, kind: Kind, wanted: &str) -> String {
        let base = sanitize(wanted, kind.keyword());
        let used = self.used.entry(kind).or_default();
        let mut name = base.clone();
        let mut n = 2;
        while used.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        used.insert(name.clone());
        name
    }
}

/// The marked group's address, when its `uniqueName` can be written as a declaration.
fn fixed_address(owner: &str, g: &GroupInfo) -> Option<(String, Vec<String>)> {
    let unique = g.group.unique_name.as_deref()?;
    let (o, rest) = unique_name_owner(Some(unique))?;
    if o != owner {
        return None;
    }
    let mut parts = rest.split('.');
    let name = parts.next()?.to_ascii_lowercase();
    let keys: Vec<String> = parts.map(str::to_owned).collect();
    if !is_identifier(&name) || KEYWORDS.contains(&name.as_str()) || keys.iter().any(String::is_empty) {
        return None;
    }
    let address = Address::decl(Kind::Group, &name, keys.iter().map(|k| Key::Str(k.clone())).collect());
    group_unique_name(owner, &address).eq_ignore_ascii_case(unique).then_some((name, keys))
}

/// The groups chosen for export, by object id, with the address a marked group keeps.
type ChosenGroups = BTreeMap<String, Option<(String, Vec<String>)>>;

/// Chooses, names and describes what to export.
pub fn select(estate: &Estate, scope: &Scope) -> Selection {
    let filter = Filter { estate, scope };
    let owners_found = owners_in_scope(filter);
    let owner = choose_owner(filter, &owners_found);

    let mut chooser = Chooser::new(filter, owner, owners_found);
    chooser.resource_groups();
    chooser.identities_and_workspaces();
    chooser.workspace_identities();
    chooser.groups();
    chooser.drop_groups_sharing_a_name();
    let principals = Principals::new(estate, &chooser.chosen);
    chooser.drop_groups_with_unnamed_owners(&principals);
    let Chooser { mut sel, chosen, .. } = chooser;

    let candidates = candidates(estate, &chosen);
    sel.teams = teams::detect(&candidates);
    let named = Named::new(estate, &chosen, principals, sel.teams.as_ref(), &candidates);
    sel.decls = named.declarations();
    named.grants(scope, &mut sel);
    sel.skipped.sort();
    sel
}

/// What the scope's filters take in.
#[derive(Clone, Copy)]
struct Filter<'a> {
    estate: &'a Estate,
    scope: &'a Scope,
}

impl Filter<'_> {
    /// A resource group (canonical id) the filter names; any when it names none.
    fn resource_group(self, id: &str) -> bool {
        self.scope.resource_groups.is_empty()
            || self
                .estate
                .resource_groups
                .get(id)
                .is_some_and(|r| self.scope.resource_groups.iter().any(|n| n.eq_ignore_ascii_case(&r.name)))
    }

    /// An ARM object inside a resource group the filter takes in.
    fn inside(self, id: &str) -> bool {
        resource_group_id(id).is_some_and(|rg| self.resource_group(&rg))
    }

    /// A group under one of the display name prefixes.
    fn group(self, g: &GroupInfo) -> bool {
        let name = g.group.display_name.as_deref().unwrap_or_default().to_lowercase();
        self.scope.group_prefixes.iter().any(|p| name.starts_with(&p.to_lowercase()))
    }

    /// A role assignment's scope: inside a resource group the filter takes in, or anywhere
    /// when it names none.
    fn assignment(self, scope_id: &str) -> bool {
        let c = canonical(scope_id);
        match resource_group_id(&c) {
            Some(rg) => self.resource_group(&rg),
            None => self.scope.resource_groups.is_empty(),
        }
    }
}

/// Who owns the estate: the owner markers found on the objects in scope, with their counts.
fn owners_in_scope(filter: Filter) -> BTreeMap<String, usize> {
    let estate = filter.estate;
    let mut found: BTreeMap<String, usize> = BTreeMap::new();
    let mut count = |o: Option<&str>| {
        if let Some(o) = o {
            *found.entry(o.to_owned()).or_insert(0) += 1;
        }
    };
    for (id, r) in &estate.resource_groups {
        if filter.resource_group(id) {
            count(owner_tag(&r.tags));
        }
    }
    for (id, i) in &estate.identities {
        if filter.inside(id) {
            count(owner_tag(&i.tags));
        }
    }
    for (id, w) in &estate.workspaces {
        if filter.inside(id) {
            count(owner_tag(&w.tags));
        }
    }
    for g in estate.groups.values().filter(|g| filter.group(g)) {
        count(unique_name_owner(g.group.unique_name.as_deref()).map(|(o, _)| o).as_deref());
    }
    for a in estate.role_assignments.values().filter(|a| filter.assignment(&a.properties.scope)) {
        count(assignment_owner(a.properties.description.as_deref()).as_deref());
    }
    found
}

/// The owner to write: the one asked for, else the most common marker in scope, else one
/// made from the scope's first name.
fn choose_owner(filter: Filter, found: &BTreeMap<String, usize>) -> String {
    let scope = filter.scope;
    let most_common = found.iter().max_by(|(a, na), (b, nb)| na.cmp(nb).then(b.cmp(a))).map(|(o, _)| o.clone());
    let derived = || {
        let from = scope
            .resource_groups
            .first()
            .or(scope.group_prefixes.first())
            .or(filter.estate.subscriptions.first().map(|(a, _)| a))
            .cloned()
            .unwrap_or_default();
        owner_from(&from)
    };
    scope.owner.clone().or(most_common).unwrap_or_else(derived)
}

/// The objects chosen for export, by canonical id.
#[derive(Default)]
struct Chosen {
    rgs: BTreeSet<String>,
    /// Resource groups in the filter that carry another owner's marker, with that owner.
    skipped_rgs: BTreeMap<String, String>,
    identities: BTreeSet<String>,
    workspaces: BTreeSet<String>,
    groups: ChosenGroups,
}

/// The selection state while choosing: what is chosen, and notes on what is not.
struct Chooser<'a> {
    estate: &'a Estate,
    filter: Filter<'a>,
    owner: String,
    chosen: Chosen,
    sel: Selection,
}

impl<'a> Chooser<'a> {
    fn new(filter: Filter<'a>, owner: String, owners_found: BTreeMap<String, usize>) -> Self {
        let sel = Selection { owner: owner.clone(), owners_found, ..Selection::default() };
        Chooser { estate: filter.estate, filter, owner, chosen: Chosen::default(), sel }
    }

    /// Whether the tags carry this export's marker.
    fn ours(&self, tags: &BTreeMap<String, String>) -> bool {
        owner_tag(tags) == Some(self.owner.as_str())
    }

    /// The other owner whose marker the tags carry.
    fn others(&self, tags: &BTreeMap<String, String>) -> Option<String> {
        owner_tag(tags).filter(|o| *o != self.owner).map(str::to_owned)
    }

    /// ARM: resource groups in the filter, and whatever carries our marker. One with
    /// another owner's marker is left to it, with everything it holds.
    fn resource_groups(&mut self) {
        let estate = self.estate;
        for (id, r) in &estate.resource_groups {
            if let Some(o) = self.others(&r.tags) {
                if self.filter.resource_group(id) {
                    self.sel.skipped.push(Skipped {
                        section: Section::Main,
                        what: format!("resource group {}", r.name),
                        why: format!(
                            "carries the marker of the mlpolicy configuration `{o}`; it and what it holds are left to it"
                        ),
                    });
                    self.chosen.skipped_rgs.insert(id.clone(), o);
                }
            } else if self.filter.resource_group(id) || self.ours(&r.tags) {
                self.chosen.rgs.insert(id.clone());
            }
        }
    }

    /// Identities and workspaces in a chosen resource group, and those that carry our
    /// marker (with their resource group).
    fn identities_and_workspaces(&mut self) {
        let estate = self.estate;
        for (id, i) in &estate.identities {
            if self.place(format!("managed identity {}", i.name), id, &i.tags) {
                self.chosen.identities.insert(id.clone());
            }
        }
        for (id, w) in &estate.workspaces {
            if self.place(format!("workspace {}", w.name), id, &w.tags) {
                self.chosen.workspaces.insert(id.clone());
            }
        }
    }

    /// Whether an object inside a resource group is declared; one that carries our marker
    /// brings its resource group along.
    fn place(&mut self, what: String, id: &str, tags: &BTreeMap<String, String>) -> bool {
        let Some(rg) = resource_group_id(id) else { return false };
        if let Some(o) = self.others(tags) {
            if self.chosen.rgs.contains(&rg) {
                self.sel.skipped.push(Skipped {
                    section: Section::Main,
                    what,
                    why: format!("carries the marker of the mlpolicy configuration `{o}`; left to it"),
                });
            }
            return false;
        }
        if self.chosen.rgs.contains(&rg) {
            return true;
        }
        if !self.ours(tags) {
            return false;
        }
        if let Some(o) = self.chosen.skipped_rgs.get(&rg) {
            self.sel.notes.push(format!(
                "{what} carries this export's marker but its resource group belongs to `{o}`: it is not exported, so a plan of this export deletes it"
            ));
            return false;
        }
        if self.estate.resource_groups.contains_key(&rg) {
            self.chosen.rgs.insert(rg);
            return true;
        }
        false
    }

    /// A workspace runs as a user-assigned identity the export must declare too; a
    /// workspace whose identity cannot be declared is left out.
    fn workspace_identities(&mut self) {
        let estate = self.estate;
        for id in self.chosen.workspaces.clone() {
            let w = &estate.workspaces[&id];
            let Some(uid) = user_identity(w) else { continue };
            if self.chosen.identities.contains(&uid) {
                continue;
            }
            let usable = estate
                .identities
                .get(&uid)
                .filter(|i| self.others(&i.tags).is_none())
                .and_then(|_| resource_group_id(&uid));
            if let Some(rg) =
                usable.filter(|rg| estate.resource_groups.contains_key(rg) && !self.chosen.skipped_rgs.contains_key(rg))
            {
                self.chosen.identities.insert(uid);
                self.chosen.rgs.insert(rg);
            } else {
                self.chosen.workspaces.remove(&id);
                self.sel.skipped.push(Skipped {
                    section: Section::Main,
                    what: format!("workspace {}", w.name),
                    why: format!("it runs as the identity {uid}, which this export cannot declare"),
                });
            }
        }
    }

    /// Groups: under the prefixes without a `uniqueName`, and every group with our marker.
    fn groups(&mut self) {
        let estate = self.estate;
        for (id, g) in &estate.groups {
            let display = g.group.display_name.clone().unwrap_or_default();
            let unique = g.group.unique_name.as_deref().filter(|u| !u.is_empty());
            match (unique, unique_name_owner(unique)) {
                (None, _) if self.filter.group(g) => {
                    self.chosen.groups.insert(id.clone(), None);
                }
                (Some(u), Some((o, _))) if o == self.owner => {
                    if let Some(fixed) = fixed_address(&self.owner, g) {
                        self.chosen.groups.insert(id.clone(), Some(fixed));
                    } else {
                        self.sel.skipped.push(Skipped {
                            section: Section::Groups,
                            what: format!("group {display}"),
                            why: format!("its uniqueName `{u}` is not one a declaration can reproduce"),
                        });
                        self.sel.notes.push(format!(
                            "group {display} carries this export's marker in a uniqueName no declaration reproduces (`{u}`): a plan of this export deletes it"
                        ));
                    }
                }
                (Some(u), _) if self.filter.group(g) => self.sel.skipped.push(Skipped {
                    section: Section::Groups,
                    what: format!("group {display}"),
                    why: format!(
                        "its uniqueName `{u}` belongs to another owner or tool and cannot change, so it cannot be adopted; it is named with existing_group where it is used"
                    ),
                }),
                _ => {}
            }
        }
    }

    /// Two unmarked groups with one display name cannot both be adopted.
    fn drop_groups_sharing_a_name(&mut self) {
        let estate = self.estate;
        let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (id, fixed) in &self.chosen.groups {
            if fixed.is_none() {
                let name = estate.groups[id].group.display_name.clone().unwrap_or_default().to_lowercase();
                by_name.entry(name).or_default().push(id.clone());
            }
        }
        for ids in by_name.values().filter(|ids| ids.len() > 1) {
            for id in ids {
                self.chosen.groups.remove(id);
                let display = estate.groups[id].group.display_name.clone().unwrap_or_default();
                self.sel.skipped.push(Skipped {
                    section: Section::Groups,
                    what: format!("group {display} ({id})"),
                    why: format!(
                        "{} groups without a uniqueName are named `{display}`, so none can be adopted",
                        ids.len()
                    ),
                });
            }
        }
    }

    /// A group whose owner cannot be named cannot be declared: apply would remove that owner.
    fn drop_groups_with_unnamed_owners(&mut self, principals: &Principals) {
        let estate = self.estate;
        let mut dropped: Vec<(String, String)> = Vec::new();
        for id in self.chosen.groups.keys() {
            if let Some(why) =
                estate.groups[id].owners.iter().find_map(|o| principals.who(&o.id, &self.chosen.groups).err())
            {
                dropped.push((id.clone(), why));
            }
        }
        for (id, why) in dropped {
            self.chosen.groups.remove(&id);
            let display = estate.groups[&id].group.display_name.clone().unwrap_or_default();
            if estate.groups[&id].group.unique_name.is_some() {
                self.sel.notes.push(format!(
                    "group {display} carries this export's marker but cannot be declared ({why}): a plan of this export deletes it"
                ));
            }
            self.sel.skipped.push(Skipped {
                section: Section::Groups,
                what: format!("group {display}"),
                why: format!("an owner cannot be named: {why}"),
            });
        }
    }
}

/// The user-assigned identity (canonical id) a workspace runs as.
fn user_identity(w: &mlpolicy_azure::Workspace) -> Option<String> {
    let i = w.identity.as_ref().filter(|i| i.kind.contains("UserAssigned"))?;
    w.properties
        .primary_user_assigned_identity
        .clone()
        .or_else(|| i.user_assigned_identities.keys().next().cloned())
        .map(|id| canonical(&id))
}

/// Who each object id is, before local names exist.
struct Principals<'a> {
    estate: &'a Estate,
    identity_by_principal: BTreeMap<String, String>,
    client_id_by_principal: BTreeMap<String, String>,
    workspace_by_principal: BTreeMap<String, String>,
}

impl<'a> Principals<'a> {
    fn new(estate: &'a Estate, chosen: &Chosen) -> Self {
        let identity_by_principal = chosen
            .identities
            .iter()
            .filter_map(|id| {
                Some((estate.identities[id].properties.principal_id.as_ref()?.to_ascii_lowercase(), id.clone()))
            })
            .collect();
        let client_id_by_principal = estate
            .identities
            .values()
            .filter_map(|i| {
                Some((i.properties.principal_id.as_ref()?.to_ascii_lowercase(), i.properties.client_id.clone()?))
            })
            .collect();
        let workspace_by_principal = chosen
            .workspaces
            .iter()
            .filter_map(|id| {
                let i = estate.workspaces[id].identity.as_ref().filter(|i| i.kind.contains("SystemAssigned"))?;
                Some((i.principal_id.as_ref()?.to_ascii_lowercase(), id.clone()))
            })
            .collect();
        Principals { estate, identity_by_principal, client_id_by_principal, workspace_by_principal }
    }

    /// Who an object id is, given the groups declared; why it cannot be named otherwise.
    fn who(&self, object_id: &str, groups: &ChosenGroups) -> Result<Who, String> {
        let key = object_id.to_ascii_lowercase();
        if let Some(id) = self.identity_by_principal.get(&key) {
            return Ok(Who::Identity(id.clone()));
        }
        if let Some(id) = self.workspace_by_principal.get(&key) {
            return Ok(Who::Workspace(id.clone()));
        }
        if groups.contains_key(&key) {
            return Ok(Who::Group(key));
        }
        if let Some(client_id) = self.client_id_by_principal.get(&key) {
            return Ok(Who::Expr(Expr::ServicePrincipal(client_id.clone())));
        }
        match self.estate.principals.get(&key) {
            Some(Principal::User { upn }) => Ok(Who::Expr(Expr::User(upn.clone()))),
            Some(Principal::Group { display_name }) => {
                match self.estate.group_name_counts.get(&display_name.to_lowercase()).copied().unwrap_or(0) {
                    1 => Ok(Who::Expr(Expr::ExistingGroup(display_name.clone()))),
                    0 => Err(format!("the group `{display_name}` cannot be found by its display name")),
                    n => Err(format!("{n} groups are named `{display_name}`, so existing_group cannot name it")),
                }
            }
            Some(Principal::App { app_id: Some(app), .. }) => Ok(Who::Expr(Expr::ServicePrincipal(app.clone()))),
            Some(Principal::App { display_name, .. }) => {
                Err(format!("the service principal `{display_name}` has no application id"))
            }
            Some(Principal::Unknown) | None => {
                Err(format!("the principal {key} no longer exists or is not a user, group or service principal"))
            }
        }
    }
}

/// The chosen objects, for team detection and naming.
fn candidates(estate: &Estate, chosen: &Chosen) -> Vec<Candidate> {
    let mut candidates = Vec::new();
    for id in &chosen.rgs {
        candidates.push(Candidate {
            kind: Kind::ResourceGroup,
            id: id.clone(),
            name: estate.resource_groups[id].name.clone(),
            fixed: None,
        });
    }
    for id in &chosen.identities {
        candidates.push(Candidate {
            kind: Kind::Identity,
            id: id.clone(),
            name: estate.identities[id].name.clone(),
            fixed: None,
        });
    }
    for id in &chosen.workspaces {
        candidates.push(Candidate {
            kind: Kind::Workspace,
            id: id.clone(),
            name: estate.workspaces[id].name.clone(),
            fixed: None,
        });
    }
    for (id, fixed) in &chosen.groups {
        candidates.push(Candidate {
            kind: Kind::Group,
            id: id.clone(),
            name: estate.groups[id].group.display_name.clone().unwrap_or_default(),
            fixed: fixed.clone(),
        });
    }
    candidates
}

/// The local name of every candidate, and the team of those in a team family: marked
/// groups keep their address, a family shares one name keyed by team, the rest are unique.
fn local_names(
    groups: &ChosenGroups,
    teams: Option<&Teams>,
    candidates: &[Candidate],
) -> (BTreeMap<String, Local>, BTreeMap<String, String>) {
    let mut names = Names::default();
    let mut locals: BTreeMap<String, Local> = BTreeMap::new();
    let mut team_of: BTreeMap<String, String> = BTreeMap::new();
    for fixed in groups.values().flatten() {
        names.reserve(Kind::Group, &fixed.0);
    }
    for (id, fixed) in groups {
        if let Some((name, keys)) = fixed {
            locals.insert(id.clone(), Local { name: name.clone(), keys: keys.clone() });
        }
    }
    if let Some(t) = teams {
        for f in &t.families {
            let name = match &f.fixed_name {
                Some(n) => n.clone(),
                None => names.take(f.kind, strip_kind_prefix(f.kind, &teams::base_name(&f.template))),
            };
            for (team, id) in &f.members {
                locals.insert(id.clone(), Local { name: name.clone(), keys: vec![team.clone()] });
                team_of.insert(id.clone(), team.clone());
            }
        }
    }
    for c in candidates {
        if !locals.contains_key(&c.id) {
            let name = names.take(c.kind, strip_kind_prefix(c.kind, &c.name));
            locals.insert(c.id.clone(), Local::plain(name));
        }
    }
    (locals, team_of)
}

/// The workspace (canonical id) and dependency each dependency resource id belongs to; the
/// first workspace by local name wins.
fn workspace_dependencies(
    estate: &Estate,
    workspaces: &BTreeSet<String>,
    locals: &BTreeMap<String, Local>,
) -> BTreeMap<String, (String, Dependency)> {
    let mut m = BTreeMap::new();
    let mut ordered: Vec<&String> = workspaces.iter().collect();
    ordered.sort_by_key(|id| &locals[*id]);
    for id in ordered {
        let p = &estate.workspaces[id].properties;
        for (dep, value) in [
            (Dependency::StorageAccount, &p.storage_account),
            (Dependency::KeyVault, &p.key_vault),
            (Dependency::ApplicationInsights, &p.application_insights),
            (Dependency::ContainerRegistry, &p.container_registry),
        ] {
            if let Some(v) = value {
                m.entry(canonical(v)).or_insert((id.clone(), dep));
            }
        }
    }
    m
}

/// Tags as a map expression, without the owner's marker; `None` when nothing is left.
fn tag_map(tags: &BTreeMap<String, String>) -> Option<Expr> {
    let entries: Vec<(String, Expr)> = tags
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case(OWNER_TAG))
        .map(|(k, v)| (k.clone(), Expr::Str(v.clone())))
        .collect();
    (!entries.is_empty()).then_some(Expr::Map(entries))
}

/// The chosen objects once named: how declarations and grants refer to them.
struct Named<'a> {
    estate: &'a Estate,
    chosen: &'a Chosen,
    principals: Principals<'a>,
    /// Subscription alias by subscription id.
    sub_alias: BTreeMap<String, String>,
    locals: BTreeMap<String, Local>,
    team_of: BTreeMap<String, String>,
    dependency_of: BTreeMap<String, (String, Dependency)>,
}

impl<'a> Named<'a> {
    fn new(
        estate: &'a Estate,
        chosen: &'a Chosen,
        principals: Principals<'a>,
        teams: Option<&Teams>,
        candidates: &[Candidate],
    ) -> Self {
        let (locals, team_of) = local_names(&chosen.groups, teams, candidates);
        let dependency_of = workspace_dependencies(estate, &chosen.workspaces, &locals);
        let sub_alias = estate.subscriptions.iter().map(|(a, id)| (id.clone(), a.clone())).collect();
        Named { estate, chosen, principals, sub_alias, locals, team_of, dependency_of }
    }

    fn team(&self, id: &str) -> Option<String> {
        self.team_of.get(id).cloned()
    }

    /// A principal as an expression, with the team of the object it names.
    fn principal(&self, object_id: &str) -> Result<(Expr, Option<String>), String> {
        Ok(match self.principals.who(object_id, &self.chosen.groups)? {
            Who::Identity(id) => (Expr::Obj(Kind::Identity, self.locals[&id].clone()), self.team(&id)),
            Who::Workspace(id) => (Expr::WsIdentity(self.locals[&id].clone()), self.team(&id)),
            Who::Group(id) => (Expr::Obj(Kind::Group, self.locals[&id].clone()), self.team(&id)),
            Who::Expr(e) => (e, None),
        })
    }

    /// A role assignment scope as an expression, with the team of the object it names.
    fn scope_expr(&self, scope_id: &str) -> (Expr, Option<String>) {
        let c = canonical(scope_id);
        if let Some(alias) = c.strip_prefix("/subscriptions/").and_then(|s| self.sub_alias.get(s)) {
            return (Expr::Sub(alias.clone()), None);
        }
        if self.chosen.rgs.contains(&c) {
            return (Expr::Obj(Kind::ResourceGroup, self.locals[&c].clone()), self.team(&c));
        }
        if self.chosen.workspaces.contains(&c) {
            return (Expr::Obj(Kind::Workspace, self.locals[&c].clone()), self.team(&c));
        }
        if let Some((ws, dep)) = self.dependency_of.get(&c) {
            return (Expr::WsDep(self.locals[ws].clone(), *dep), self.team(ws));
        }
        (Expr::Scope(scope_id.to_owned()), None)
    }

    /// The declared resource group holding an ARM id, and its location (normalized).
    fn rg_expr(&self, id: &str) -> Option<(Expr, String)> {
        let rg = resource_group_id(id)?;
        let r = self.estate.resource_groups.get(&rg)?;
        Some((Expr::Obj(Kind::ResourceGroup, self.locals.get(&rg)?.clone()), norm_location(&r.location)))
    }

    fn decl(
        &self,
        id: &str,
        kind: Kind,
        attrs: Vec<(String, Expr)>,
        blocks: Vec<(String, Vec<(String, Expr)>)>,
        notes: Vec<String>,
    ) -> Placed<Decl> {
        Placed { team: self.team(id), item: Decl { kind, local: self.locals[id].clone(), attrs, blocks, notes } }
    }

    /// Resource groups, identities, workspaces and groups, sorted by kind and local name.
    fn declarations(&self) -> Vec<Placed<Decl>> {
        let c = self.chosen;
        let mut decls: Vec<Placed<Decl>> = Vec::new();
        decls.extend(c.rgs.iter().filter_map(|id| self.resource_group(id)));
        decls.extend(c.identities.iter().filter_map(|id| self.identity(id)));
        decls.extend(c.workspaces.iter().filter_map(|id| self.workspace(id)));
        decls.extend(c.groups.keys().map(|id| self.group(id)));
        let kind_rank = |k: Kind| Kind::TOP_LEVEL.iter().position(|x| *x == k).unwrap_or(0);
        decls.sort_by(|a, b| {
            kind_rank(a.item.kind).cmp(&kind_rank(b.item.kind)).then_with(|| a.item.local.cmp(&b.item.local))
        });
        decls
    }

    fn resource_group(&self, id: &str) -> Option<Placed<Decl>> {
        let r = &self.estate.resource_groups[id];
        let alias = subscription_of(id).and_then(|s| self.sub_alias.get(&s).cloned())?;
        let mut attrs = vec![
            ("subscription".to_owned(), Expr::Sub(alias)),
            ("name".to_owned(), Expr::Str(r.name.clone())),
            ("location".to_owned(), Expr::Str(r.location.clone())),
        ];
        attrs.extend(tag_map(&r.tags).map(|t| ("tags".to_owned(), t)));
        Some(self.decl(id, Kind::ResourceGroup, attrs, Vec::new(), Vec::new()))
    }

    fn identity(&self, id: &str) -> Option<Placed<Decl>> {
        let i = &self.estate.identities[id];
        let (rg, rg_location) = self.rg_expr(id)?;
        let mut attrs = vec![("resource_group".to_owned(), rg), ("name".to_owned(), Expr::Str(i.name.clone()))];
        if norm_location(&i.location) != rg_location {
            attrs.push(("location".to_owned(), Expr::Str(i.location.clone())));
        }
        attrs.extend(tag_map(&i.tags).map(|t| ("tags".to_owned(), t)));
        let blocks = self.credential_blocks(id);
        Some(self.decl(id, Kind::Identity, attrs, blocks, Vec::new()))
    }

    /// An identity's federated credentials as `federated NAME { ... }` blocks.
    fn credential_blocks(&self, id: &str) -> Vec<(String, Vec<(String, Expr)>)> {
        let mut blocks = Vec::new();
        let mut fic_names = BTreeSet::new();
        for f in self.estate.federated.get(id).into_iter().flatten() {
            let mut local = sanitize(&f.name, "credential");
            let mut n = 2;
            while !fic_names.insert(local.clone()) {
                local = format!("{}_{n}", sanitize(&f.name, "credential"));
                n += 1;
            }
            let mut fa = Vec::new();
            if local.replace('_', "-") != f.name {
                fa.push(("name".to_owned(), Expr::Str(f.name.clone())));
            }
            fa.push(("issuer".to_owned(), Expr::Str(f.properties.issuer.clone())));
            fa.push(("subject".to_owned(), Expr::Str(f.properties.subject.clone())));
            if f.properties.audiences != [FIC_AUDIENCE] {
                fa.push((
                    "audiences".to_owned(),
                    Expr::List(f.properties.audiences.iter().map(|a| Expr::Str(a.clone())).collect()),
                ));
            }
            blocks.push((local, fa));
        }
        blocks
    }

    fn workspace(&self, id: &str) -> Option<Placed<Decl>> {
        let w = &self.estate.workspaces[id];
        let (rg, rg_location) = self.rg_expr(id)?;
        let p = &w.properties;
        let mut attrs = vec![("resource_group".to_owned(), rg), ("name".to_owned(), Expr::Str(w.name.clone()))];
        if norm_location(&w.location) != rg_location {
            attrs.push(("location".to_owned(), Expr::Str(w.location.clone())));
        }
        if let Some(uid) = user_identity(w) {
            attrs.push(("identity".to_owned(), Expr::Obj(Kind::Identity, self.locals[&uid].clone())));
        }
        for (name, value) in [
            ("storage_account", &p.storage_account),
            ("key_vault", &p.key_vault),
            ("application_insights", &p.application_insights),
            ("container_registry", &p.container_registry),
        ] {
            if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
                attrs.push((name.to_owned(), Expr::Str(v.clone())));
            }
        }
        if p.public_network_access.as_deref().is_some_and(|v| !v.eq_ignore_ascii_case("Enabled")) {
            attrs.push(("public_network_access".to_owned(), Expr::Bool(false)));
        }
        if let Some(f) = p.friendly_name.as_ref().filter(|f| !f.is_empty() && **f != w.name) {
            attrs.push(("friendly_name".to_owned(), Expr::Str(f.clone())));
        }
        if let Some(d) = p.description.as_ref().filter(|d| !d.is_empty()) {
            attrs.push(("description".to_owned(), Expr::Str(d.clone())));
        }
        attrs.extend(tag_map(&w.tags).map(|t| ("tags".to_owned(), t)));
        Some(self.decl(id, Kind::Workspace, attrs, Vec::new(), Vec::new()))
    }

    /// A group; members that cannot be named make it additive, with a note for each.
    fn group(&self, id: &str) -> Placed<Decl> {
        let g = &self.estate.groups[id];
        let display = g.group.display_name.clone().unwrap_or_default();
        let mut attrs = vec![("name".to_owned(), Expr::Str(display.clone()))];
        if let Some(d) = g.group.description.as_ref().filter(|d| !d.is_empty()) {
            attrs.push(("description".to_owned(), Expr::Str(d.clone())));
        }
        if let Some(n) = g.group.mail_nickname.as_ref().filter(|n| **n != default_mail_nickname(&display)) {
            attrs.push(("mail_nickname".to_owned(), Expr::Str(n.clone())));
        }
        let mut notes = Vec::new();
        let mut members = Vec::new();
        for m in &g.members {
            match self.principal(&m.id) {
                Ok((e, _)) => members.push(e),
                Err(why) => {
                    notes.push(format!("member {} is kept by `members_additive`: {why}", m.id.to_ascii_lowercase()));
                }
            }
        }
        let mut owners = Vec::new();
        for o in &g.owners {
            if let Ok((e, _)) = self.principal(&o.id) {
                owners.push(e);
            }
        }
        members.sort_by_key(Expr::text);
        members.dedup();
        owners.sort_by_key(Expr::text);
        owners.dedup();
        if !members.is_empty() {
            attrs.push(("members".to_owned(), Expr::List(members)));
        }
        if !owners.is_empty() {
            attrs.push(("owners".to_owned(), Expr::List(owners)));
        }
        if !notes.is_empty() {
            attrs.push(("members_additive".to_owned(), Expr::Bool(true)));
        }
        self.decl(id, Kind::Group, attrs, Vec::new(), notes)
    }

    /// Every role assignment in scope or carrying our marker: a grant, or a note why not.
    fn grants(&self, scope: &Scope, sel: &mut Selection) {
        let owner = sel.owner.clone();
        let mut seen = BTreeSet::new();
        let mut grants = Vec::new();
        for a in self.estate.role_assignments.values() {
            let p = &a.properties;
            let marked_by = assignment_owner(p.description.as_deref());
            let ours = marked_by.as_deref() == Some(owner.as_str());
            if !(self.assignment_in_scope(scope, &p.scope) || ours) {
                continue;
            }
            let role = self.role_name(a);
            let what = format!(
                "role assignment {} of {} to {} at {}",
                a.name,
                role.clone().unwrap_or_else(|| a.role_guid()),
                p.principal_id.to_ascii_lowercase(),
                p.scope
            );
            let skip = |why: String| Skipped { section: Section::Grants, what: what.clone(), why };
            if let Some(why) = self.left_to_another(&p.scope, marked_by.as_deref(), &owner) {
                sel.skipped.push(skip(why));
                continue;
            }
            match self.grant(a, role, &owner, &seen) {
                Ok(grant) => {
                    seen.insert(grant.item.line());
                    grants.push(grant);
                }
                Err(why) => {
                    if ours {
                        sel.notes.push(format!(
                            "{what} carries this export's marker but cannot be declared ({why}): a plan of this export deletes it"
                        ));
                    }
                    sel.skipped.push(skip(why));
                }
            }
        }
        grants.sort_by_key(|g| g.item.line());
        sel.grants = grants;
    }

    /// A scope inside a chosen resource group or one left to another owner, or anywhere
    /// when the scope names no resource group.
    fn assignment_in_scope(&self, scope: &Scope, scope_id: &str) -> bool {
        match resource_group_id(&canonical(scope_id)) {
            Some(rg) => self.chosen.rgs.contains(&rg) || self.chosen.skipped_rgs.contains_key(&rg),
            None => scope.resource_groups.is_empty(),
        }
    }

    /// The role's name, when the subscription's role catalog has it.
    fn role_name(&self, a: &mlpolicy_azure::RoleAssignment) -> Option<String> {
        let sub = subscription_of(&canonical(&a.properties.scope)).unwrap_or_default();
        self.estate.roles.get(&sub).and_then(|cat| cat.by_guid(&a.role_guid())).map(|d| d.properties.role_name.clone())
    }

    /// Why an assignment is left to another owner: made by it, or inside its resource group.
    fn left_to_another(&self, scope_id: &str, marked_by: Option<&str>, owner: &str) -> Option<String> {
        if let Some(o) = marked_by.filter(|o| *o != owner) {
            return Some(format!("made by the mlpolicy configuration `{o}`; left to it"));
        }
        let o = resource_group_id(&canonical(scope_id)).and_then(|rg| self.chosen.skipped_rgs.get(&rg))?;
        Some(format!("inside a resource group of the mlpolicy configuration `{o}`; left to it"))
    }

    /// An assignment as a grant, with its team; why it cannot be declared otherwise.
    fn grant(
        &self,
        a: &mlpolicy_azure::RoleAssignment,
        role: Option<String>,
        owner: &str,
        seen: &BTreeSet<String>,
    ) -> Result<Placed<Grant>, String> {
        let p = &a.properties;
        let Some(role) = role else {
            return Err(format!(
                "its role definition {} is not in the subscription's role catalog (a custom role mlpolicy cannot read, or a deleted one)",
                a.role_guid()
            ));
        };
        if p.condition.as_ref().is_some_and(|c| !c.is_empty())
            && p.condition_version.as_deref().is_some_and(|v| v != "2.0")
        {
            return Err(format!(
                "its condition has version {}; mlpolicy writes conditions as version 2.0",
                p.condition_version.clone().unwrap_or_default()
            ));
        }
        let (principal_expr, principal_team) = self.principal(&p.principal_id)?;
        let (scope_e, scope_team) = self.scope_expr(&p.scope);
        let team = match (principal_team, scope_team) {
            (Some(a), Some(b)) if a != b => None,
            (a, b) => a.or(b),
        };
        let mut attrs = Vec::new();
        let description = unmarked_description(owner, p.description.as_deref());
        if !description.is_empty() {
            attrs.push(("description".to_owned(), Expr::Str(description.to_owned())));
        }
        if let Some(cond) = p.condition.as_ref().filter(|c| !c.is_empty()) {
            attrs.push(("condition".to_owned(), Expr::Str(cond.clone())));
        }
        let grant = Grant { role, principal: principal_expr, scope: scope_e, attrs, notes: Vec::new() };
        if seen.contains(&grant.line()) {
            return Err("another assignment is declared by the same grant line".into());
        }
        Ok(Placed { team, item: grant })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_read_back() {
        assert_eq!(assignment_owner(Some("Managed by mlpolicy [mlpolicy:contoso-ml]")).as_deref(), Some("contoso-ml"));
        assert_eq!(assignment_owner(Some("by hand")), None);
        assert_eq!(
            unique_name_owner(Some("mlpolicy.contoso-ml.data_scientists.fraud")),
            Some(("contoso-ml".into(), "data_scientists.fraud".into()))
        );
        assert_eq!(owner_from("rg-ML_Prod!"), "rg-ml-prod");
        assert_eq!(owner_from("___"), "mlpolicy");
    }

    use std::sync::Arc;

    use mlpolicy_azure::{self as azure, DirectoryObject, RoleCatalog, RoleDefinition, RoleDefinitionProperties};

    const SUB: &str = "11111111-1111-1111-1111-111111111111";
    const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";

    fn estate() -> Estate {
        let reader = RoleDefinition {
            id: format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{READER}"),
            name: READER.into(),
            properties: RoleDefinitionProperties { role_name: "Reader".into(), ..RoleDefinitionProperties::default() },
        };
        let mut e = Estate { subscriptions: vec![("prod".into(), SUB.into())], ..Estate::default() };
        e.roles.insert(SUB.into(), Arc::new(RoleCatalog::new(vec![reader])));
        e
    }

    fn rg(e: &mut Estate, name: &str, owner: Option<&str>) -> String {
        let id = format!("/subscriptions/{SUB}/resourceGroups/{name}");
        let tags = owner.map(|o| BTreeMap::from([(OWNER_TAG.to_owned(), o.to_owned())])).unwrap_or_default();
        e.resource_groups.insert(
            canonical(&id),
            azure::ResourceGroup {
                id: id.clone(),
                name: name.into(),
                location: "westeurope".into(),
                tags,
                ..Default::default()
            },
        );
        id
    }

    fn user(e: &mut Estate, id: &str, upn: &str) -> DirectoryObject {
        e.principals.insert(id.into(), Principal::User { upn: upn.into() });
        DirectoryObject {
            odata_type: Some("#microsoft.graph.user".into()),
            id: id.into(),
            user_principal_name: Some(upn.into()),
            ..DirectoryObject::default()
        }
    }

    fn group(e: &mut Estate, id: &str, display: &str, unique: Option<&str>, members: Vec<DirectoryObject>) {
        let g = azure::Group {
            id: id.into(),
            display_name: Some(display.into()),
            unique_name: unique.map(str::to_owned),
            mail_nickname: Some(default_mail_nickname(display)),
            ..azure::Group::default()
        };
        e.principals.insert(id.into(), Principal::Group { display_name: display.into() });
        *e.group_name_counts.entry(display.to_lowercase()).or_insert(0) += 1;
        e.groups.insert(id.into(), GroupInfo { group: g, members, owners: Vec::new() });
    }

    fn assignment(e: &mut Estate, scope: &str, principal: &str, description: Option<&str>) {
        let id = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{principal}");
        e.role_assignments.insert(
            canonical(&id),
            azure::RoleAssignment {
                id: id.clone(),
                name: principal.into(),
                properties: azure::RoleAssignmentProperties {
                    role_definition_id: format!("/providers/Microsoft.Authorization/roleDefinitions/{READER}"),
                    principal_id: principal.into(),
                    scope: scope.into(),
                    description: description.map(str::to_owned),
                    ..azure::RoleAssignmentProperties::default()
                },
            },
        );
    }

    fn texts(sel: &Selection) -> Vec<String> {
        sel.decls
            .iter()
            .map(|d| {
                format!("{} {}", d.item.kind, super::super::ir::Expr::Obj(d.item.kind, d.item.local.clone()).text())
            })
            .collect()
    }

    #[test]
    fn the_most_common_marker_owns_and_other_owners_are_left_out() {
        let mut e = estate();
        rg(&mut e, "rg-a", Some("alpha"));
        let b = rg(&mut e, "rg-b", Some("alpha"));
        let c = rg(&mut e, "rg-c", Some("beta"));
        rg(&mut e, "rg-d", None);
        let u = user(&mut e, "00000000-0000-0000-0000-0000000000a1", "alice@contoso.com");
        let _ = u;
        assignment(&mut e, &b, "00000000-0000-0000-0000-0000000000a1", Some("Managed by mlpolicy [mlpolicy:alpha]"));
        assignment(&mut e, &c, "00000000-0000-0000-0000-0000000000a1", None);
        let sel = select(&e, &Scope::default());
        assert_eq!(sel.owner, "alpha");
        assert_eq!(sel.owners_found, BTreeMap::from([("alpha".into(), 3), ("beta".into(), 1)]));
        assert_eq!(
            texts(&sel),
            ["resource_group resource_group.a", "resource_group resource_group.b", "resource_group resource_group.d"]
        );
        let lines: Vec<String> = sel.grants.iter().map(|g| g.item.line()).collect();
        assert_eq!(lines, ["grant \"Reader\" to user(\"alice@contoso.com\") on resource_group.b"]);
        assert!(sel.grants[0].item.attrs.is_empty(), "the default description is not written");
        let why: Vec<&str> = sel.skipped.iter().map(|s| s.why.as_str()).collect();
        assert_eq!(why.len(), 2, "{why:?}");
        assert!(why.iter().all(|w| w.contains("`beta`")), "{why:?}");
        // `--owner` wins, and a filter narrows the scope but never drops what carries the marker.
        let scope = Scope { resource_groups: vec!["rg-d".into()], owner: Some("beta".into()), ..Scope::default() };
        let sel = select(&e, &scope);
        assert_eq!(texts(&sel), ["resource_group resource_group.c", "resource_group resource_group.d"]);
    }

    #[test]
    fn groups_are_declared_adopted_or_kept_as_comments() {
        let mut e = estate();
        let alice = user(&mut e, "00000000-0000-0000-0000-0000000000a1", "alice@contoso.com");
        group(&mut e, "g1", "ml-readers", None, vec![alice.clone()]);
        group(&mut e, "g2", "ml-dup", None, Vec::new());
        group(&mut e, "g3", "ml-dup", None, Vec::new());
        group(&mut e, "g4", "ml-tool", Some("other-tool.ml-tool"), Vec::new());
        group(&mut e, "g5", "admins of x", Some("mlpolicy.alpha.admins.x"), Vec::new());
        group(&mut e, "g6", "odd", Some("mlpolicy.alpha.Odd-Name"), Vec::new());
        let gone = DirectoryObject { id: "00000000-0000-0000-0000-0000000000ff".into(), ..DirectoryObject::default() };
        group(&mut e, "g7", "ml-partial", None, vec![alice, gone]);
        let scope = Scope { group_prefixes: vec!["ML-".into()], owner: Some("alpha".into()), ..Scope::default() };
        let sel = select(&e, &scope);
        assert_eq!(texts(&sel), ["group group.admins[\"x\"]", "group group.ml_partial", "group group.ml_readers"]);
        let partial = &sel.decls[1].item;
        assert!(partial.attrs.contains(&("members_additive".into(), Expr::Bool(true))), "{partial:?}");
        assert_eq!(partial.notes.len(), 1);
        let skipped: Vec<&str> = sel.skipped.iter().map(|s| s.what.as_str()).collect();
        assert_eq!(skipped, ["group ml-dup (g2)", "group ml-dup (g3)", "group ml-tool", "group odd"]);
        assert!(sel.notes.iter().any(|n| n.contains("a plan of this export deletes it")), "{:?}", sel.notes);
    }

    fn identity(e: &mut Estate, rg: &str, name: &str, n: u8, subjects: &[&str]) {
        let id = format!(
            "/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
        );
        e.identities.insert(
            canonical(&id),
            azure::UserAssignedIdentity {
                id: id.clone(),
                name: name.into(),
                location: "westeurope".into(),
                tags: BTreeMap::new(),
                properties: azure::UserAssignedIdentityProperties {
                    principal_id: Some(format!("00000000-0000-0000-0000-0000000001{n:02x}")),
                    client_id: Some(format!("00000000-0000-0000-0000-0000000002{n:02x}")),
                    tenant_id: None,
                },
            },
        );
        let fics = subjects
            .iter()
            .enumerate()
            .map(|(i, s)| azure::FederatedCredential {
                id: format!("{id}/federatedIdentityCredentials/gh-{i}"),
                name: format!("gh-{i}"),
                properties: azure::FederatedCredentialProperties {
                    issuer: "https://token.actions.githubusercontent.com".into(),
                    subject: (*s).into(),
                    audiences: vec![FIC_AUDIENCE.into()],
                },
            })
            .collect();
        e.federated.insert(canonical(&id), fics);
    }

    /// What a directory of generated files lowers to.
    fn lowered(files: &BTreeMap<String, String>) -> crate::lower::DesiredState {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let compiled = mlpolicy_lang::compile(dir.path(), &mlpolicy_lang::settings::Overrides::default());
        let errors: Vec<_> = compiled.diagnostics.items.iter().filter(|d| d.is_error()).collect();
        assert!(errors.is_empty(), "{errors:#?}\n{files:#?}");
        crate::lower::lower(&compiled.model, compiled.settings.owner.as_deref().unwrap())
    }

    /// Teams whose objects differ beyond their name: the compact loop reads `let` maps, what
    /// does not fit stays per team, and both forms lower to the same desired state.
    #[test]
    fn compact_and_flat_lower_alike_when_teams_differ() {
        let mut e = estate();
        let a = rg(&mut e, "rg-a-ml", None);
        let b = rg(&mut e, "rg-b-ml", None);
        identity(&mut e, "rg-a-ml", "id-a-train", 1, &["repo:contoso/a:environment:prod"]);
        identity(
            &mut e,
            "rg-b-ml",
            "id-b-train",
            2,
            &["repo:contoso/b:environment:prod", "repo:contoso/b:pull_request"],
        );
        let alice = user(&mut e, "00000000-0000-0000-0000-0000000000a1", "alice@contoso.com");
        let bob = user(&mut e, "00000000-0000-0000-0000-0000000000b1", "bob@contoso.com");
        e.principals
            .insert("00000000-0000-0000-0000-0000000000e1".into(), Principal::Group { display_name: "ext".into() });
        e.group_name_counts.insert("ext".into(), 1);
        let ext = DirectoryObject {
            odata_type: Some("#microsoft.graph.group".into()),
            id: "00000000-0000-0000-0000-0000000000e1".into(),
            display_name: Some("ext".into()),
            ..DirectoryObject::default()
        };
        group(&mut e, "g-a", "ml-a-ds", None, vec![alice]);
        group(&mut e, "g-b", "ml-b-ds", None, vec![bob, ext]);
        e.groups.get_mut("g-a").unwrap().group.description = Some("Alpha".into());
        e.groups.get_mut("g-b").unwrap().group.description = Some("Team B".into());
        assignment(&mut e, &a, "g-a", None);
        assignment(&mut e, &b, "g-b", None);
        assignment(&mut e, &a, "00000000-0000-0000-0000-000000000101", Some("CI of a"));
        let scope = Scope { group_prefixes: vec!["ml-".into()], ..Scope::default() };
        let options = |compact| super::super::ExportOptions { scope: scope.clone(), compact, ..Default::default() };
        let settings = mlpolicy_lang::settings::Settings::default();
        let flat = super::super::build(&e, &options(false), &settings, SUB).unwrap();
        let compact = super::super::build(&e, &options(true), &settings, SUB).unwrap();
        assert_eq!(flat.teams.as_deref(), Some(&["a".to_owned(), "b".to_owned()][..]));
        let teams = &compact.files["teams.mlp"];
        assert!(teams.contains("for team in teams {"), "{teams}");
        assert!(teams.contains("members     = ml_ds_members[team]"), "{teams}");
        assert!(teams.contains("description = ml_ds_description[team]"), "{teams}");
        assert!(teams.contains("# What team b has beside the shared shape."), "{teams}");
        assert!(teams.contains("identity train {"), "the identities differ in their credentials: {teams}");
        assert_eq!(lowered(&flat.files), lowered(&compact.files));
    }

    #[test]
    fn kind_prefixes_are_dropped_when_something_is_left() {
        assert_eq!(strip_kind_prefix(Kind::ResourceGroup, "rg-ml-shared"), "ml-shared");
        assert_eq!(strip_kind_prefix(Kind::Workspace, "mlw-"), "mlw-");
        assert_eq!(strip_kind_prefix(Kind::Group, "rg-x"), "rg-x");
    }
}
