//! Diffing: desired state against live state, into a [`Plan`].
//!
//! Objects are matched by their identity in Azure — canonical ARM id, group `uniqueName`, and
//! for role assignments the content triple (scope, role definition GUID, principal object id) —
//! so casing and id-format differences never show as changes, and an equivalent assignment made
//! by hand is adopted instead of duplicated. Adoption: an object made outside mlpolicy that
//! already is as configured and only lacks the ownership marker (the owner tag, a group's
//! `uniqueName` — a group is then found by display name among those without one — or the
//! assignment description's suffix) gets the action `Adopt`; one that also differs is an
//! `Update` whose reason says it adopts. Only what carries this configuration's ownership
//! marker is ever deleted; other access at a managed scope is reported as drift, widening drift
//! first. Safety rails (`prevent_destroy`, `--allow-replace`, `--allow-mass-removal`) turn
//! dangerous changes into errors. Codes: E0502–E0508.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sha2::{Digest, Sha256};

use crate::access::{self, Assignment, Node};
use crate::live::{GroupMatch, LiveState, managed_scopes};
use crate::lower::{
    Desired, DesiredGroup, DesiredObject, DesiredRoleAssignment, DesiredState, OWNER_TAG, PrincipalRef,
    assignment_description, assignment_marker, group_unique_prefix,
};
use crate::plan::{
    Action, AttrChange, AttrValue, Attrs, Change, Drift, DriftKind, FORMAT_VERSION, Fingerprints, LiveRef, ObjectKind,
    Plan, PlanWaiver,
};
use mlpolicy_lang::diagnostics::Code;
use mlpolicy_lang::diagnostics::{Diagnostic, Diagnostics};
use mlpolicy_lang::source::Span;
use mlpolicy_vocab::arm::{canonical, scope_display};
use mlpolicy_vocab::suggest;

/// Options that unlock dangerous changes.
#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// Addresses whose replacement or deletion is allowed (`--allow-replace`).
    pub allow_replace: BTreeSet<String>,
    /// Allow removing more than 10 members, or the last owner, of a group.
    pub allow_mass_removal: bool,
}

/// The reason of an adoption: apply writes the ownership marker and nothing else.
pub const MARKER_ONLY: &str = "ownership marker only";

/// Most members one plan may remove from one group without `--allow-mass-removal`.
pub const MASS_REMOVAL: usize = 10;

/// Inputs besides desired and live state.
pub struct DiffInput<'a> {
    /// Addresses in creation (dependency) order.
    pub order: &'a [String],
    /// Where each address is declared, for diagnostics.
    pub spans: &'a BTreeMap<String, Span>,
    /// Addresses that depend on each address (for blast radius).
    pub dependents: &'a BTreeMap<String, Vec<String>>,
    pub waivers: Vec<PlanWaiver>,
    pub policy_findings: Vec<String>,
    pub denied: bool,
    pub config_fingerprint: String,
    pub options: &'a DiffOptions,
}

struct Differ<'a> {
    desired: &'a DesiredState,
    live: &'a LiveState,
    input: &'a DiffInput<'a>,
    diags: Diagnostics,
    changes: Vec<Change>,
    deletes: Vec<Change>,
    drift: Vec<Drift>,
    fingerprints: BTreeMap<String, String>,
    /// Live role assignment ids the desired state accounts for.
    matched_assignments: BTreeSet<String>,
    /// Live role assignments by (canonical scope, role GUID, lower-case principal id), the
    /// first in id order for each, so matching a desired one is a lookup, not a scan.
    assignments_by_content: HashMap<(String, String, String), &'a mlpolicy_azure::RoleAssignment>,
    /// Canonical ids of identities this plan creates or replaces, from `changes[..identities_seen]`.
    recreated_identities: BTreeSet<String>,
    identities_seen: usize,
    /// Azure identities (a group's lower-case `uniqueName`, a credential's canonical id) that
    /// desired objects keep from their address before a `moved` block.
    relocated: BTreeSet<String>,
}

/// Computes the plan.
pub fn diff(desired: &DesiredState, live: &LiveState, input: &DiffInput<'_>) -> (Plan, Diagnostics) {
    let mut d = Differ {
        desired,
        live,
        input,
        diags: Diagnostics::default(),
        changes: Vec::new(),
        deletes: Vec::new(),
        drift: Vec::new(),
        fingerprints: BTreeMap::new(),
        matched_assignments: BTreeSet::new(),
        assignments_by_content: HashMap::new(),
        recreated_identities: BTreeSet::new(),
        identities_seen: 0,
        relocated: BTreeSet::new(),
    };
    for a in live.role_assignments.values() {
        let key = (canonical(&a.properties.scope), a.role_guid(), a.properties.principal_id.to_ascii_lowercase());
        d.assignments_by_content.entry(key).or_insert(a);
    }
    d.check_principals();
    for address in input.order {
        if let Some(o) = desired.objects.get(address) {
            d.object(o);
        }
    }
    d.recreate_dependents();
    d.orphans();
    d.rename_hints();
    d.unmanaged_assignments();
    d.safety();
    let access_changes = d.access_changes();
    let Differ { mut changes, mut deletes, mut drift, diags, fingerprints, .. } = d;
    // By kind, then by how they are shown: live ids (random GUIDs) must not order the plan.
    deletes.sort_by(|a, b| delete_rank(a.kind).cmp(&delete_rank(b.kind)).then_with(|| a.display.cmp(&b.display)));
    changes.append(&mut deletes);
    drift.sort_by(|a, b| b.widens_access.cmp(&a.widens_access).then_with(|| a.summary.cmp(&b.summary)));
    let summary = Plan::summarize(&changes);
    let plan = Plan {
        format_version: FORMAT_VERSION,
        changes,
        drift,
        access_changes,
        waivers: input.waivers.clone(),
        policy_findings: input.policy_findings.clone(),
        denied: input.denied,
        summary,
        fingerprints: Fingerprints { config: input.config_fingerprint.clone(), live: fingerprints },
    };
    (plan, diags)
}

/// Deletions run dependents first: assignments, then group memberships' groups, credentials,
/// workspaces, identities and resource groups last.
fn delete_rank(kind: ObjectKind) -> u8 {
    match kind {
        ObjectKind::RoleAssignment => 0,
        ObjectKind::Group => 1,
        ObjectKind::Federated => 2,
        ObjectKind::Workspace => 3,
        ObjectKind::Identity => 4,
        ObjectKind::ResourceGroup => 5,
    }
}

/// SHA-256 of a value's JSON, hex.
pub fn fingerprint<T: serde::Serialize>(value: &T) -> String {
    let json = serde_json::to_vec(value).unwrap_or_default();
    hex::encode(Sha256::digest(&json))
}

fn s(v: impl Into<String>) -> AttrValue {
    AttrValue::Str(v.into())
}

fn tags_attr(tags: &BTreeMap<String, String>) -> AttrValue {
    AttrValue::Map(tags.clone())
}

/// A live ARM id as the configuration spells it when both name the same resource (ids are
/// case-insensitive and Azure echoes its own casing), else as Azure returned it.
fn same_id(live: &str, desired: Option<&String>) -> String {
    match desired {
        Some(d) if canonical(d) == canonical(live) => d.clone(),
        _ => live.to_owned(),
    }
}

fn norm_location(l: &str) -> String {
    l.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase()
}

impl Differ<'_> {
    fn span(&self, address: &str) -> Option<Span> {
        self.input.spans.get(address).copied()
    }

    fn error(&mut self, code: Code, address: &str, message: String, help: String) {
        let mut d = Diagnostic::error(code, message).with_help(help);
        if let Some(span) = self.span(address) {
            d = d.with_label(span, "declared here");
        }
        self.diags.push(d);
    }

    /// Every user, service principal and existing group named must exist, once.
    fn check_principals(&mut self) {
        let mut users: BTreeMap<&PrincipalRef, Vec<&str>> = BTreeMap::new();
        for o in self.desired.objects.values() {
            let refs: Vec<&PrincipalRef> = match &o.object {
                Desired::Group(g) => g.members.iter().chain(&g.owners).collect(),
                Desired::RoleAssignment(r) => vec![&r.principal],
                _ => continue,
            };
            for r in refs {
                if matches!(
                    r,
                    PrincipalRef::User { .. }
                        | PrincipalRef::ServicePrincipal { .. }
                        | PrincipalRef::ExistingGroup { .. }
                ) {
                    users.entry(r).or_default().push(&o.address);
                }
            }
        }
        for (r, addresses) in users {
            let first = addresses[0];
            if let Some(n) = self.live.ambiguous.get(r) {
                self.error(
                    Code::E0503,
                    first,
                    format!("`{}` matches {n} objects in the tenant", r.display()),
                    "display names are not unique in Entra ID; name a service principal by its application id".into(),
                );
            } else if self.live.resolved.get(r).is_none_or(Option::is_none) {
                let (what, help) = match r {
                    PrincipalRef::User { .. } => {
                        ("user", "check the spelling of the UPN; mlpolicy never creates users")
                    }
                    PrincipalRef::ServicePrincipal { .. } => {
                        ("service principal", "name it by application id or exact display name")
                    }
                    _ => ("group", "`existing_group` names a group by its exact display name"),
                };
                let used = if addresses.len() > 1 {
                    format!(" (used by {} and {} more)", first, addresses.len() - 1)
                } else {
                    format!(" (used by {first})")
                };
                self.error(
                    Code::E0502,
                    first,
                    format!("{what} `{}` does not exist in the tenant{used}", r.display()),
                    help.into(),
                );
            }
        }
    }

    /// The object id of a principal, or `None` when it will be created by this plan.
    fn principal_id(&self, r: &PrincipalRef) -> Option<String> {
        self.live.resolved.get(r).cloned().flatten()
    }

    #[expect(clippy::too_many_arguments, reason = "one call per kind builds a change from its parts")]
    fn push(
        &mut self,
        o: &DesiredObject,
        kind: ObjectKind,
        azure_id: &str,
        display: String,
        before: Option<Attrs>,
        after: Attrs,
        replace_attrs: &[&str],
    ) -> Action {
        let (action, changes) = match &before {
            None => (Action::Create, Vec::new()),
            Some(b) => {
                let changes = attr_changes(b, &after, replace_attrs);
                let action = if changes.iter().any(|c| c.forces_replacement) {
                    Action::Replace
                } else if changes.is_empty() {
                    Action::NoOp
                } else {
                    Action::Update
                };
                (action, changes)
            }
        };
        let reason = match action {
            Action::Replace => {
                let forcing: Vec<&str> =
                    changes.iter().filter(|c| c.forces_replacement).map(|c| c.name.as_str()).collect();
                Some(format!("{} cannot change in place", forcing.join(", ")))
            }
            _ => None,
        };
        self.changes.push(Change {
            address: o.address.clone(),
            kind,
            azure_id: azure_id.to_owned(),
            display,
            action,
            reason,
            before,
            after: Some(after),
            changes,
            blast_radius: Vec::new(),
            desired: Some(o.object.clone()),
            live_ref: LiveRef::default(),
            depends_on: None,
            moved_from: None,
        });
        action
    }

    /// One desired object's change; a moved one is looked for under its earlier Azure name
    /// too, and its change says where it moved from.
    fn object(&mut self, o: &DesiredObject) {
        let relocated = self.relocate(o);
        let first = self.changes.len();
        self.object_at(relocated.as_ref().unwrap_or(o));
        let Some(m) = &o.moved_from else { return };
        // An object Azure names after its address moved only when it was found under the old
        // name; any other moved object when it exists at all.
        if (m.unique_name.is_some() || m.id.is_some()) && relocated.is_none() {
            return;
        }
        let Some(c) = self.changes.get_mut(first).filter(|c| c.before.is_some()) else { return };
        c.moved_from = Some(m.address.clone());
        if c.action == Action::NoOp {
            c.action = Action::Move;
        }
    }

    /// The desired object under the Azure name its earlier address gave it, when it exists
    /// live only under that name (a group's `uniqueName` never changes; a credential's name is
    /// part of its id).
    fn relocate(&mut self, o: &DesiredObject) -> Option<DesiredObject> {
        let m = o.moved_from.as_ref()?;
        let mut out = o.clone();
        match &mut out.object {
            Desired::Group(g) => {
                let before = m.unique_name.as_ref()?;
                if self.live.group_by_unique_name(&g.unique_name).is_some()
                    || self.live.group_by_unique_name(before).is_none()
                {
                    return None;
                }
                g.unique_name.clone_from(before);
                self.relocated.insert(before.to_ascii_lowercase());
            }
            Desired::Federated(f) => {
                let before = m.id.as_ref()?;
                if self.live.federated.contains_key(&canonical(&f.id))
                    || !self.live.federated.contains_key(&canonical(before))
                {
                    return None;
                }
                before.rsplit('/').next().unwrap_or(before).clone_into(&mut f.name);
                f.id.clone_from(before);
                self.relocated.insert(canonical(before));
            }
            _ => return None,
        }
        Some(out)
    }

    fn object_at(&mut self, o: &DesiredObject) {
        match &o.object {
            Desired::ResourceGroup(r) => {
                let live = self.live.resource_groups.get(&canonical(&r.id));
                self.fingerprints.insert(canonical(&r.id), live.map_or_else(|| "absent".into(), fingerprint));
                let before = live.map(|l| {
                    Attrs::from([
                        ("location".into(), s(norm_location(&l.location))),
                        ("tags".into(), tags_attr(&l.tags)),
                    ])
                });
                let after = Attrs::from([
                    ("location".into(), s(norm_location(&r.location))),
                    ("tags".into(), tags_attr(&r.tags)),
                ]);
                self.push(
                    o,
                    ObjectKind::ResourceGroup,
                    &r.id,
                    format!("resource group \"{}\"", r.name),
                    before,
                    after,
                    &["location"],
                );
                self.arm_adoption(live.map(|l| &l.tags));
            }
            Desired::Identity(i) => {
                let live = self.live.identities.get(&canonical(&i.id));
                self.fingerprints.insert(canonical(&i.id), live.map_or_else(|| "absent".into(), fingerprint));
                let before = live.map(|l| {
                    Attrs::from([
                        ("location".into(), s(norm_location(&l.location))),
                        ("tags".into(), tags_attr(&l.tags)),
                    ])
                });
                let after = Attrs::from([
                    ("location".into(), s(norm_location(&i.location))),
                    ("tags".into(), tags_attr(&i.tags)),
                ]);
                self.push(
                    o,
                    ObjectKind::Identity,
                    &i.id,
                    format!("managed identity \"{}\"", i.name),
                    before,
                    after,
                    &["location"],
                );
                self.arm_adoption(live.map(|l| &l.tags));
            }
            Desired::Federated(f) => {
                let parent_replaced = self.parent_recreated(&f.identity_id);
                let live = if parent_replaced { None } else { self.live.federated.get(&canonical(&f.id)) };
                self.fingerprints.insert(canonical(&f.id), live.map_or_else(|| "absent".into(), fingerprint));
                let before = live.map(|l| {
                    Attrs::from([
                        ("issuer".into(), s(&l.properties.issuer)),
                        ("subject".into(), s(&l.properties.subject)),
                        ("audiences".into(), AttrValue::List(l.properties.audiences.clone())),
                    ])
                });
                let after = Attrs::from([
                    ("issuer".into(), s(&f.issuer)),
                    ("subject".into(), s(&f.subject)),
                    ("audiences".into(), AttrValue::List(f.audiences.clone())),
                ]);
                self.push(
                    o,
                    ObjectKind::Federated,
                    &f.id,
                    format!("federated credential \"{}\"", f.name),
                    before,
                    after,
                    &[],
                );
            }
            Desired::Workspace(w) => {
                let live = self.live.workspaces.get(&canonical(&w.id));
                self.fingerprints.insert(canonical(&w.id), live.map_or_else(|| "absent".into(), fingerprint));
                let identity_name = |id: &Option<String>| {
                    id.as_deref().map_or_else(|| "system".to_owned(), |i| i.rsplit('/').next().unwrap_or(i).to_owned())
                };
                let before = live.map(|l| {
                    let p = &l.properties;
                    let user = l.identity.as_ref().filter(|i| i.kind.contains("UserAssigned")).and_then(|i| {
                        p.primary_user_assigned_identity
                            .clone()
                            .or_else(|| i.user_assigned_identities.keys().next().cloned())
                    });
                    let mut a = Attrs::new();
                    a.insert("location".into(), s(norm_location(&l.location)));
                    a.insert("identity".into(), s(identity_name(&user)));
                    a.insert(
                        "storage_account".into(),
                        s(same_id(p.storage_account.as_deref().unwrap_or(""), Some(&w.storage_account))),
                    );
                    a.insert("key_vault".into(), s(same_id(p.key_vault.as_deref().unwrap_or(""), Some(&w.key_vault))));
                    if let Some(x) = &p.application_insights {
                        a.insert("application_insights".into(), s(same_id(x, w.application_insights.as_ref())));
                    }
                    if let Some(x) = &p.container_registry {
                        a.insert("container_registry".into(), s(same_id(x, w.container_registry.as_ref())));
                    }
                    let public = p.public_network_access.as_deref().is_none_or(|v| v.eq_ignore_ascii_case("Enabled"));
                    a.insert("public_network_access".into(), AttrValue::Bool(public));
                    if let Some(x) = &p.friendly_name {
                        a.insert("friendly_name".into(), s(x));
                    }
                    if let Some(x) = &p.description {
                        a.insert("description".into(), s(x));
                    }
                    a.insert("tags".into(), tags_attr(&l.tags));
                    a
                });
                let mut after = Attrs::new();
                after.insert("location".into(), s(norm_location(&w.location)));
                after.insert("identity".into(), s(identity_name(&w.user_identity)));
                after.insert("storage_account".into(), s(&w.storage_account));
                after.insert("key_vault".into(), s(&w.key_vault));
                if let Some(x) = &w.application_insights {
                    after.insert("application_insights".into(), s(x));
                }
                if let Some(x) = &w.container_registry {
                    after.insert("container_registry".into(), s(x));
                }
                after.insert("public_network_access".into(), AttrValue::Bool(w.public_network_access));
                if let Some(x) = &w.friendly_name {
                    after.insert("friendly_name".into(), s(x));
                }
                if let Some(x) = &w.description {
                    after.insert("description".into(), s(x));
                }
                after.insert("tags".into(), tags_attr(&w.tags));
                self.push(
                    o,
                    ObjectKind::Workspace,
                    &w.id,
                    format!("workspace \"{}\"", w.name),
                    before,
                    after,
                    &["location", "storage_account", "key_vault"],
                );
                self.arm_adoption(live.map(|l| &l.tags));
            }
            Desired::Group(g) => self.group(o, g),
            Desired::RoleAssignment(r) => self.assignment(o, r),
        }
    }

    /// Whether the parent identity is created or replaced by this plan (its children go too).
    /// While objects are visited, changes are only appended and no action changes (that waits
    /// for `recreate_dependents`), so the changes already looked at need not be looked at again.
    fn parent_recreated(&mut self, identity_id: &str) -> bool {
        for c in &self.changes[self.identities_seen..] {
            if c.kind == ObjectKind::Identity && matches!(c.action, Action::Create | Action::Replace) {
                self.recreated_identities.insert(canonical(&c.azure_id));
            }
        }
        self.identities_seen = self.changes.len();
        self.recreated_identities.contains(&canonical(identity_id))
    }

    /// The update of an ARM object that carries no ownership tag at all adopts it: when the tag
    /// is all that differs, the change is an adoption; otherwise an update that also adopts.
    fn arm_adoption(&mut self, live_tags: Option<&BTreeMap<String, String>>) {
        let Some(live_tags) = live_tags else { return };
        if live_tags.keys().any(|k| k.eq_ignore_ascii_case(OWNER_TAG)) {
            return;
        }
        let owner = &self.desired.owner;
        let Some(last) = self.changes.last_mut() else { return };
        if last.action != Action::Update {
            return;
        }
        let marker_only = match last.changes.as_slice() {
            [c] if c.name == "tags" => match (&c.before, &c.after) {
                (Some(AttrValue::Map(before)), Some(AttrValue::Map(after))) => {
                    let mut marked = before.clone();
                    marked.insert(OWNER_TAG.to_owned(), owner.clone());
                    marked == *after
                }
                _ => false,
            },
            _ => false,
        };
        if marker_only {
            last.action = Action::Adopt;
            last.reason = Some(MARKER_ONLY.into());
        } else {
            last.reason = Some("adopts a resource made outside mlpolicy".into());
        }
    }

    fn member_names(&self, refs: &[PrincipalRef]) -> (BTreeSet<String>, Vec<String>) {
        let mut ids = BTreeSet::new();
        let mut names = Vec::new();
        for r in refs {
            if let Some(id) = self.principal_id(r) {
                names.push(self.live.display(&id));
                ids.insert(id);
            } else {
                names.push(r.display().to_owned());
                ids.insert(format!("new:{}", r.display()));
            }
        }
        names.sort();
        names.dedup();
        (ids, names)
    }

    fn group(&mut self, o: &DesiredObject, g: &DesiredGroup) {
        let (live, adopting) = match self.live.group_match(&g.unique_name, &g.display_name) {
            GroupMatch::Owned(id, lg) => (Some((id, lg)), false),
            GroupMatch::Adoptable(id, lg) => (Some((id, lg)), true),
            GroupMatch::Ambiguous(n) => {
                self.error(
                    Code::E0508,
                    &o.address,
                    format!(
                        "`{}` could adopt any of {n} groups named `{}` that mlpolicy did not create",
                        o.address, g.display_name
                    ),
                    "rename all but one of them in Entra ID (or delete the extra ones), so the group to adopt is unambiguous".into(),
                );
                (None, false)
            }
            GroupMatch::Absent => (None, false),
        };
        self.fingerprints.insert(
            g.unique_name.clone(),
            live.map_or_else(|| "absent".into(), |(_, lg)| fingerprint(&(&lg.group, &lg.members, &lg.owners))),
        );
        let (member_ids, mut member_names) = self.member_names(&g.members);
        let (_, owner_names) = self.member_names(&g.owners);
        let mut after = Attrs::new();
        if let Some(d) = &g.description {
            after.insert("description".into(), s(d));
        }
        after.insert("mail_nickname".into(), s(&g.mail_nickname));
        let before = live.map(|(_, lg)| {
            let mut a = Attrs::new();
            if let Some(d) = lg.group.description.as_deref().filter(|d| !d.is_empty()) {
                a.insert("description".into(), s(d));
            }
            a.insert("display_name".into(), s(lg.group.display_name.clone().unwrap_or_default()));
            a.insert("mail_nickname".into(), s(lg.group.mail_nickname.clone().unwrap_or_default()));
            let mut m: Vec<String> = lg.members.iter().map(|id| self.live.display(id)).collect();
            m.sort();
            let mut ow: Vec<String> = lg.owners.iter().map(|id| self.live.display(id)).collect();
            ow.sort();
            a.insert("members".into(), AttrValue::List(m));
            a.insert("owners".into(), AttrValue::List(ow));
            a
        });
        if let Some((_, lg)) = live {
            after.insert("display_name".into(), s(&g.display_name));
            let extra: Vec<String> = lg.members.iter().filter(|id| !member_ids.contains(*id)).cloned().collect();
            for id in &extra {
                let name = self.live.display(id);
                let what = if g.members_additive { "kept: the group is additive" } else { "will be removed" };
                self.drift.push(Drift {
                    widens_access: true,
                    kind: DriftKind::GroupMember,
                    summary: format!("{name} is a member of {} but not in the configuration ({what})", g.display_name),
                    azure_id: format!("{}/members/{id}", lg.group.id),
                });
            }
            if g.members_additive {
                member_names.extend(extra.iter().map(|id| self.live.display(id)));
                member_names.sort();
                member_names.dedup();
            }
        }
        after.insert("members".into(), AttrValue::List(member_names));
        after.insert("owners".into(), AttrValue::List(owner_names));
        if adopting {
            after.insert("unique_name".into(), s(&g.unique_name));
        }
        self.push(o, ObjectKind::Group, &g.unique_name, format!("group \"{}\"", g.display_name), before, after, &[]);
        if let (Some((id, _)), Some(last)) = (live, self.changes.last_mut()) {
            last.live_ref.object_id = Some(id.clone());
            if adopting {
                last.live_ref.adopt_object_id = Some(id.clone());
                if last.changes.len() == 1 && last.action == Action::Update {
                    last.action = Action::Adopt;
                    last.reason = Some(MARKER_ONLY.into());
                } else if last.action == Action::Update {
                    last.reason = Some("adopts a group made outside mlpolicy".into());
                }
            }
        }
    }

    fn role_guid(&mut self, o: &DesiredObject, r: &DesiredRoleAssignment) -> Option<String> {
        let sub = r.scope.strip_prefix("/subscriptions/").map(|s| s.split('/').next().unwrap_or(s).to_owned());
        let catalog = sub.as_ref().and_then(|s| self.live.roles.get(s)).or_else(|| self.live.roles.values().next());
        let Some(catalog) = catalog else {
            self.error(
                Code::E0504,
                &o.address,
                format!("no role definitions could be read for `{}`", r.scope),
                "check that the subscription exists and the caller can read it".into(),
            );
            return None;
        };
        if let Some(guid) = crate::roles::role_guid(Some(catalog), &r.role) {
            return Some(guid);
        }
        let names: Vec<String> = catalog.iter().map(|d| d.properties.role_name.clone()).collect();
        let help = suggest::did_you_mean(&r.role, names.iter().map(String::as_str)).unwrap_or_else(|| {
            "run `az role definition list --query [].roleName` to see the roles of the tenant".into()
        });
        self.error(Code::E0504, &o.address, format!("role `{}` does not exist in the tenant", r.role), help);
        None
    }

    fn assignment(&mut self, o: &DesiredObject, r: &DesiredRoleAssignment) {
        let Some(role_guid) = self.role_guid(o, r) else { return };
        let principal_id = self.principal_id(&r.principal);
        let principal_display =
            principal_id.as_deref().map_or_else(|| r.principal.display().to_owned(), |id| self.live.display(id));
        let display = format!("role assignment {} → {} @ {}", r.role, principal_display, r.scope_display);
        let live = principal_id.as_ref().and_then(|pid| {
            self.assignments_by_content.get(&(r.scope.clone(), role_guid.clone(), pid.to_ascii_lowercase())).copied()
        });
        let identity_key = format!(
            "{}|{}|{}",
            r.scope,
            role_guid,
            principal_id.clone().unwrap_or_else(|| format!("new:{}", r.principal.display()))
        );
        self.fingerprints.insert(identity_key, live.map_or_else(|| "absent".into(), fingerprint));
        let mut after = Attrs::from([("description".into(), s(&r.description))]);
        if let Some(c) = &r.condition {
            after.insert("condition".into(), s(c));
        }
        let before = live.map(|l| {
            let mut a = Attrs::from([("description".into(), s(l.properties.description.clone().unwrap_or_default()))]);
            if let Some(c) = &l.properties.condition {
                a.insert("condition".into(), s(c));
            }
            a
        });
        let azure_id = live.map_or_else(
            || format!("{}/providers/Microsoft.Authorization/roleAssignments/(new)", r.scope),
            |l| l.id.clone(),
        );
        let adopted = live.is_some_and(|l| {
            !l.properties.description.as_deref().unwrap_or("").ends_with(&assignment_marker(&self.desired.owner))
        });
        if let Some(l) = live {
            self.matched_assignments.insert(canonical(&l.id));
        }
        self.push(o, ObjectKind::RoleAssignment, &azure_id, display, before, after, &[]);
        if let Some(last) = self.changes.last_mut() {
            last.live_ref.role_guid = Some(role_guid);
            last.live_ref.principal_type = Some(r.principal.principal_type());
            last.live_ref.principal_id = principal_id;
            if adopted && last.action == Action::Update {
                let live_description = live.and_then(|l| l.properties.description.as_deref()).unwrap_or("");
                let marker_only = last.changes.len() == 1
                    && last.changes[0].name == "description"
                    && !live_description.contains("[mlpolicy:")
                    && assignment_description(&self.desired.owner, Some(live_description)) == r.description;
                if marker_only {
                    last.action = Action::Adopt;
                    last.reason = Some(MARKER_ONLY.into());
                } else {
                    last.reason = Some("adopts an equivalent assignment made outside mlpolicy".into());
                }
            }
        }
    }

    /// Objects that depend on a replaced one go with it and are created again after it.
    fn recreate_dependents(&mut self) {
        let replaced: Vec<String> =
            self.changes.iter().filter(|c| c.action == Action::Replace).map(|c| c.address.clone()).collect();
        let mut because: BTreeMap<String, String> = BTreeMap::new();
        for r in replaced {
            let mut stack = vec![r.clone()];
            while let Some(a) = stack.pop() {
                for d in self.input.dependents.get(&a).into_iter().flatten() {
                    if !because.contains_key(d) {
                        because.insert(d.clone(), r.clone());
                        stack.push(d.clone());
                    }
                }
            }
        }
        for c in &mut self.changes {
            let Some(r) = because.get(&c.address) else { continue };
            if matches!(c.action, Action::NoOp | Action::Update | Action::Adopt | Action::Move) {
                c.action = Action::Create;
                c.before = None;
                c.changes.clear();
                c.reason = Some(format!("created again with {r}"));
            }
        }
    }

    /// Live objects with our marker that the configuration no longer declares.
    fn orphans(&mut self) {
        let desired_ids: BTreeSet<String> = self
            .desired
            .objects
            .values()
            .filter_map(|o| match &o.object {
                Desired::ResourceGroup(r) => Some(canonical(&r.id)),
                Desired::Identity(i) => Some(canonical(&i.id)),
                Desired::Federated(f) => Some(canonical(&f.id)),
                Desired::Workspace(w) => Some(canonical(&w.id)),
                Desired::Group(g) => Some(g.unique_name.to_ascii_lowercase()),
                Desired::RoleAssignment(_) => None,
            })
            .chain(self.relocated.iter().cloned())
            .collect();
        let mut deletes = Vec::new();
        let owned = |tags: &BTreeMap<String, String>| self.live.owned_tags(tags);
        for (id, r) in &self.live.resource_groups {
            if owned(&r.tags) && !desired_ids.contains(id) {
                deletes.push(delete_change(
                    ObjectKind::ResourceGroup,
                    &r.id,
                    format!("resource group \"{}\"", r.name),
                    Attrs::from([("location".into(), s(&r.location))]),
                ));
            }
        }
        for (id, i) in &self.live.identities {
            if owned(&i.tags) && !desired_ids.contains(id) {
                deletes.push(delete_change(
                    ObjectKind::Identity,
                    &i.id,
                    format!("managed identity \"{}\"", i.name),
                    Attrs::from([("location".into(), s(&i.location))]),
                ));
            }
        }
        for (id, f) in &self.live.federated {
            let parent = id.rsplit_once("/federatedidentitycredentials/").map_or("", |(p, _)| p);
            let parent_owned =
                self.live.identities.get(parent).is_some_and(|i| owned(&i.tags)) || desired_ids.contains(parent);
            if parent_owned && !desired_ids.contains(id) {
                deletes.push(delete_change(
                    ObjectKind::Federated,
                    &f.id,
                    format!("federated credential \"{}\"", f.name),
                    Attrs::from([("subject".into(), s(&f.properties.subject))]),
                ));
            }
        }
        for (id, w) in &self.live.workspaces {
            if owned(&w.tags) && !desired_ids.contains(id) {
                deletes.push(delete_change(
                    ObjectKind::Workspace,
                    &w.id,
                    format!("workspace \"{}\"", w.name),
                    Attrs::from([("location".into(), s(&w.location))]),
                ));
            }
        }
        let prefix = group_unique_prefix(&self.desired.owner);
        for (id, g) in &self.live.groups {
            let Some(u) = g.group.unique_name.as_deref() else { continue };
            if u.to_ascii_lowercase().starts_with(&prefix.to_ascii_lowercase())
                && !desired_ids.contains(&u.to_ascii_lowercase())
            {
                let mut c = delete_change(
                    ObjectKind::Group,
                    u,
                    format!("group \"{}\"", g.group.display_name.clone().unwrap_or_default()),
                    Attrs::from([
                        ("members".into(), AttrValue::List(g.members.iter().map(|m| self.live.display(m)).collect())),
                        ("object_id".into(), s(id)),
                    ]),
                );
                c.live_ref.object_id = Some(id.clone());
                deletes.push(c);
            }
        }
        let marker = assignment_marker(&self.desired.owner);
        for (id, a) in &self.live.role_assignments {
            if a.properties.description.as_deref().is_some_and(|d| d.ends_with(&marker))
                && !self.matched_assignments.contains(id)
            {
                let role = self.role_name(a);
                let display = format!(
                    "role assignment {role} → {} @ {}",
                    self.live.display(&a.properties.principal_id),
                    scope_display(&a.properties.scope)
                );
                deletes.push(delete_change(ObjectKind::RoleAssignment, &a.id, display, Attrs::new()));
            }
        }
        for mut c in deletes {
            c.address.clone_from(&c.display);
            c.reason = Some("no longer in the configuration".into());
            self.fingerprints.insert(canonical(&c.azure_id), "present".into());
            self.deletes.push(c);
        }
    }

    /// W0502: a group or federated credential this plan destroys while it creates one with the
    /// same Azure name (a group's display name; a credential's issuer and subject under the
    /// same identity) looks like an address renamed without a `moved` block.
    fn rename_hints(&mut self) {
        let prefix = group_unique_prefix(&self.desired.owner);
        let mut hints = Vec::new();
        for d in &self.deletes {
            for c in self.changes.iter().filter(|c| c.action == Action::Create && c.kind == d.kind) {
                let from = match &c.desired {
                    Some(Desired::Group(g)) => {
                        let live = d.live_ref.object_id.as_ref().and_then(|id| self.live.groups.get(id));
                        let name = live.and_then(|l| l.group.display_name.as_deref());
                        if !name.is_some_and(|n| n.eq_ignore_ascii_case(&g.display_name)) {
                            continue;
                        }
                        address_of_unique_name(&d.azure_id, &prefix)
                    }
                    Some(Desired::Federated(f)) => {
                        let Some(live) = self.live.federated.get(&canonical(&d.azure_id)) else { continue };
                        let parent = canonical(&d.azure_id)
                            .rsplit_once("/federatedidentitycredentials/")
                            .map(|(p, _)| p.to_owned());
                        if parent.as_deref() != Some(canonical(&f.identity_id).as_str())
                            || live.properties.issuer != f.issuer
                            || live.properties.subject != f.subject
                        {
                            continue;
                        }
                        c.address
                            .rsplit_once(".federated.")
                            .map(|(identity, _)| format!("{identity}.federated.{}", live.name.replace('-', "_")))
                    }
                    _ => continue,
                };
                let keeps = if d.kind == ObjectKind::Group {
                    "its object id, its members and the role assignments made to it"
                } else {
                    "its id in Azure"
                };
                hints.push((c.address.clone(), d.display.clone(), from, keeps));
            }
        }
        for (to, what, from, keeps) in hints {
            let from = from.unwrap_or_else(|| "OLD_ADDRESS".to_owned());
            let mut diag = Diagnostic::warning(
                Code::W0502,
                format!("`{to}` is created while {what}, declared as `{from}` before, is destroyed: is this a rename?"),
            )
            .with_help(format!(
                "if `{to}` is `{from}` renamed, add `moved {{ from = {from}  to = {to} }}` and plan again: the object then keeps {keeps}"
            ));
            if let Some(span) = self.span(&to) {
                diag = diag.with_label(span, "created here");
            }
            self.diags.push(diag);
        }
    }

    fn role_name(&self, a: &mlpolicy_azure::RoleAssignment) -> String {
        self.live.role_name(a)
    }

    /// Role assignments at managed scopes that neither the configuration nor its marker explain.
    fn unmanaged_assignments(&mut self) {
        let scopes = managed_scopes(self.desired);
        let marker = assignment_marker(&self.desired.owner);
        let mut found = Vec::new();
        for (id, a) in &self.live.role_assignments {
            if !scopes.contains(&canonical(&a.properties.scope)) || self.matched_assignments.contains(id) {
                continue;
            }
            if a.properties.description.as_deref().is_some_and(|d| d.ends_with(&marker)) {
                continue;
            }
            let role = self.role_name(a);
            found.push(Drift {
                widens_access: true,
                kind: DriftKind::RoleAssignment,
                summary: format!(
                    "role assignment {role} → {} @ {} (not in the configuration)",
                    self.live.display(&a.properties.principal_id),
                    scope_display(&a.properties.scope)
                ),
                azure_id: a.id.clone(),
            });
        }
        self.drift.extend(found);
    }

    /// `prevent_destroy`, replacement and mass-removal rails.
    fn safety(&mut self) {
        let desired = self.desired;
        let mut errors = Vec::new();
        let dependents = self.input.dependents;
        let assignments_at: BTreeMap<String, Vec<String>> = {
            let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (id, a) in &self.live.role_assignments {
                if self.matched_assignments.contains(id) {
                    continue;
                }
                m.entry(canonical(&a.properties.scope)).or_default().push(format!(
                    "{} → {}",
                    self.role_name(a),
                    self.live.display(&a.properties.principal_id)
                ));
            }
            m
        };
        for c in self.changes.iter_mut().chain(self.deletes.iter_mut()) {
            if !matches!(c.action, Action::Replace | Action::Delete) {
                continue;
            }
            let mut radius: Vec<String> = dependents.get(&c.address).cloned().unwrap_or_default();
            radius.extend(
                assignments_at
                    .get(&canonical(&c.azure_id))
                    .into_iter()
                    .flatten()
                    .map(|a| format!("role assignment {a}")),
            );
            if c.kind == ObjectKind::Identity {
                let prefix = format!("{}/federatedidentitycredentials/", canonical(&c.azure_id));
                radius.extend(
                    self.live
                        .federated
                        .iter()
                        .filter(|(id, _)| id.starts_with(&prefix))
                        .map(|(_, f)| format!("federated credential {}", f.name)),
                );
            }
            radius.sort();
            radius.dedup();
            c.blast_radius = radius;
            let prevent = desired.objects.get(&c.address).is_some_and(|o| o.prevent_destroy);
            if prevent {
                errors.push((
                    Code::E0505,
                    c.address.clone(),
                    format!(
                        "`{}` has prevent_destroy, but this plan {} it",
                        c.address,
                        if c.action == Action::Delete { "destroys" } else { "replaces" }
                    ),
                    "remove `prevent_destroy = true` first, in its own reviewed change".to_owned(),
                ));
            } else if matches!(c.kind, ObjectKind::Workspace | ObjectKind::Identity | ObjectKind::ResourceGroup)
                && !self.input.options.allow_replace.contains(&c.address)
                && !self.input.options.allow_replace.contains(&c.azure_id)
            {
                errors.push((
                    Code::E0506,
                    c.address.clone(),
                    format!("`{}` {} with {} dependent object(s)", c.address, c.action.phrase(), c.blast_radius.len()),
                    format!(
                        "review the blast radius in the plan, then pass `--allow-replace '{}'`",
                        if c.action == Action::Delete { c.azure_id.clone() } else { c.address.clone() }
                    ),
                ));
            }
        }
        for c in &self.changes {
            if c.kind != ObjectKind::Group || c.action != Action::Update {
                continue;
            }
            for ch in &c.changes {
                let (Some(AttrValue::List(before)), Some(AttrValue::List(after))) = (&ch.before, &ch.after) else {
                    continue;
                };
                let removed = before.iter().filter(|b| !after.contains(b)).count();
                if self.input.options.allow_mass_removal {
                    continue;
                }
                if ch.name == "members" && removed > MASS_REMOVAL {
                    errors.push((
                        Code::E0507,
                        c.address.clone(),
                        format!("`{}` would lose {removed} members", c.address),
                        "removing more than 10 members at once needs `--allow-mass-removal`".to_owned(),
                    ));
                }
                if ch.name == "owners" && after.is_empty() && !before.is_empty() {
                    errors.push((Code::E0507, c.address.clone(), format!("`{}` would lose its last owner", c.address), "a group without owners can only be managed by directory admins; keep one, or pass `--allow-mass-removal`".to_owned()));
                }
            }
        }
        for (code, address, message, help) in errors {
            self.error(code, &address, message, help);
        }
    }

    /// The effective-access delta between live state and live state after the plan.
    fn access_changes(&self) -> Vec<crate::plan::AccessChange> {
        // Only group contents and role assignments move access: a plan without such a change
        // (a no-op plan, say) has none to report, and reading the whole tenant's access for
        // it would cost a no-op plan of a large estate a fifth of its time.
        let moves_access = self.changes.iter().chain(&self.deletes).any(|c| {
            !matches!(c.action, Action::NoOp | Action::Read | Action::Adopt | Action::Move)
                && (matches!(c.kind, ObjectKind::RoleAssignment | ObjectKind::Group) || c.action == Action::Delete)
        });
        if !moves_access {
            return Vec::new();
        }
        // Scopes this plan destroys (with every assignment at or below them), and the scopes of
        // the assignments it deletes: their losses are access changes too.
        let doomed: Vec<String> = self
            .deletes
            .iter()
            .filter(|c| matches!(c.kind, ObjectKind::ResourceGroup | ObjectKind::Workspace))
            .map(|c| canonical(&c.azure_id))
            .collect();
        let under_doomed = |s: &str| doomed.iter().any(|d| within(d, s));
        let mut scopes = managed_scopes(self.desired);
        for c in self.deletes.iter().filter(|c| c.kind == ObjectKind::RoleAssignment) {
            if let Some(a) = self.live.role_assignments.get(&canonical(&c.azure_id)) {
                scopes.insert(canonical(&a.properties.scope));
            }
        }
        scopes.extend(
            self.live.role_assignments.values().map(|a| canonical(&a.properties.scope)).filter(|s| under_doomed(s)),
        );
        let scope_names = access::scope_names(self.desired);
        let show_scope =
            |scope: &str| scope_names.get(&canonical(scope)).cloned().unwrap_or_else(|| scope_display(scope));
        let before = access::from_live(self.live, |s| scopes.contains(s), show_scope);
        let mut after = before.clone();
        let key_of = |r: &PrincipalRef| self.principal_id(r).unwrap_or_else(|| format!("new:{}", r.display()));
        for c in self.changes.iter().chain(&self.deletes) {
            match (&c.desired, c.action) {
                (Some(Desired::Group(g)), _) => {
                    let key = c.live_ref.object_id.clone().unwrap_or_else(|| format!("new:{}", g.display_name));
                    after.nodes.insert(key.clone(), Node { display: g.display_name.clone(), is_group: true });
                    let mut members: BTreeSet<String> = g.members.iter().map(key_of).collect();
                    for m in &g.members {
                        after.nodes.entry(key_of(m)).or_insert(Node {
                            display: m.display().to_owned(),
                            is_group: matches!(m, PrincipalRef::Group { .. } | PrincipalRef::ExistingGroup { .. }),
                        });
                    }
                    if g.members_additive {
                        members.extend(before.members.get(&key).cloned().unwrap_or_default());
                    }
                    after.members.insert(key, members);
                }
                (Some(Desired::RoleAssignment(r)), _) => {
                    let key = key_of(&r.principal);
                    after.nodes.entry(key.clone()).or_insert(Node {
                        display: r.principal.display().to_owned(),
                        is_group: matches!(
                            r.principal,
                            PrincipalRef::Group { .. } | PrincipalRef::ExistingGroup { .. }
                        ),
                    });
                    after.assignments.insert(Assignment {
                        principal: key,
                        role: r.role.clone(),
                        scope: r.scope_display.clone(),
                        scope_id: r.scope.clone(),
                    });
                }
                (None, Action::Delete) if c.kind == ObjectKind::RoleAssignment => {
                    if let Some(a) = self.live.role_assignments.get(&canonical(&c.azure_id)) {
                        after.assignments.remove(&Assignment {
                            principal: a.properties.principal_id.to_ascii_lowercase(),
                            role: self.role_name(a),
                            scope: show_scope(&a.properties.scope),
                            scope_id: canonical(&a.properties.scope),
                        });
                    }
                }
                (None, Action::Delete) if c.kind == ObjectKind::Group => {
                    if let Some(id) = &c.live_ref.object_id {
                        // Still a group (a parent may list it) but with no members: removing
                        // it from `members` would make it a leaf that gains its parents' roles.
                        after.members.insert(id.clone(), BTreeSet::new());
                    }
                }
                _ => {}
            }
        }
        after.assignments.retain(|a| !under_doomed(&a.scope_id));
        access::changes(&before, &after)
    }
}

/// Whether ARM id `child` is `parent` or below it (both canonical).
fn within(parent: &str, child: &str) -> bool {
    child == parent || child.strip_prefix(parent).is_some_and(|rest| rest.starts_with('/'))
}

/// The address a group's `uniqueName` (`mlpolicy.<owner>.<name>[.<key>...]`) was made from:
/// `group.name["key"]`, keys of digits as integers. `None` for another owner's name.
fn address_of_unique_name(unique_name: &str, prefix: &str) -> Option<String> {
    let rest = unique_name
        .get(prefix.len()..)
        .filter(|_| unique_name.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix)))?;
    let mut parts = rest.split('.');
    let mut out = format!("group.{}", parts.next().filter(|n| !n.is_empty())?);
    for k in parts {
        if !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(k);
            out.push(']');
        } else {
            out.push('[');
            out.push_str(&mlpolicy_lang::model::quote(k));
            out.push(']');
        }
    }
    Some(out)
}

fn delete_change(kind: ObjectKind, azure_id: &str, display: String, before: Attrs) -> Change {
    Change {
        address: String::new(),
        kind,
        azure_id: azure_id.to_owned(),
        display,
        action: Action::Delete,
        reason: None,
        before: Some(before),
        after: None,
        changes: Vec::new(),
        blast_radius: Vec::new(),
        desired: None,
        live_ref: LiveRef::default(),
        depends_on: None,
        moved_from: None,
    }
}

/// The attributes that differ between `before` and `after`; `replace` names those Azure cannot
/// change in place. Attributes only in `before` are ignored (not managed).
pub fn attr_changes(before: &Attrs, after: &Attrs, replace: &[&str]) -> Vec<AttrChange> {
    let mut out = Vec::new();
    for (name, a) in after {
        let b = before.get(name);
        let same = match (b, a) {
            (Some(AttrValue::Str(x)), AttrValue::Str(y)) => x == y,
            (Some(AttrValue::List(x)), AttrValue::List(y)) => {
                let mut x = x.clone();
                let mut y = y.clone();
                x.sort();
                y.sort();
                x == y
            }
            (Some(x), y) => x == y,
            (None, AttrValue::Str(y)) => y.is_empty(),
            (None, AttrValue::List(y)) => y.is_empty(),
            (None, AttrValue::Map(y)) => y.is_empty(),
            (None, AttrValue::Bool(_)) => false,
        };
        if !same {
            out.push(AttrChange {
                name: name.clone(),
                before: b.cloned(),
                after: Some(a.clone()),
                forces_replacement: replace.contains(&name.as_str()),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_changes_ignore_order_and_unmanaged() {
        let before = Attrs::from([
            ("members".into(), AttrValue::List(vec!["b".into(), "a".into()])),
            ("extra".into(), s("x")),
            ("location".into(), s("westeurope")),
        ]);
        let after = Attrs::from([
            ("members".into(), AttrValue::List(vec!["a".into(), "b".into()])),
            ("location".into(), s("northeurope")),
        ]);
        let c = attr_changes(&before, &after, &["location"]);
        assert_eq!(c.len(), 1);
        assert!(c[0].forces_replacement);
    }
}
