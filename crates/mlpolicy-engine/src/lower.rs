//! Lowering: the checked [`Model`] becomes Azure-shaped desired objects with every default
//! filled in and every name Azure will see, keyed by address.
//!
//! Each object carries its identity in Azure: a canonical ARM id (resource groups, identities,
//! federated credentials, workspaces), the group's `uniqueName`, or — for a role assignment —
//! its content (scope, role, principal), never a GUID name. The ownership marker of
//! docs/language.md §7 is applied here: the `mlpolicy-owner` tag, the group's `uniqueName` prefix and
//! the role assignment description suffix.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use mlpolicy_lang::model::{Address, Model, Principal, Scope, WorkspaceIdentity};
use mlpolicy_vocab::arm::canonical;

/// Tag that marks ARM resources created by a configuration.
pub const OWNER_TAG: &str = "mlpolicy-owner";
/// Owner used when mlpolicy.yaml sets none.
pub const DEFAULT_OWNER: &str = "mlpolicy";

/// Who is meant, before live state tells the object id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PrincipalRef {
    User {
        upn: String,
    },
    ServicePrincipal {
        name: String,
    },
    ExistingGroup {
        name: String,
    },
    /// A group of this configuration, by its `uniqueName`.
    Group {
        address: String,
        unique_name: String,
        display_name: String,
    },
    /// A user-assigned identity of this configuration, by ARM id.
    Identity {
        address: String,
        id: String,
        name: String,
    },
    /// A workspace's system-assigned identity, by workspace ARM id.
    WorkspaceSystem {
        address: String,
        id: String,
        name: String,
    },
}

impl PrincipalRef {
    /// How the principal is shown in plans before its object id is known.
    pub fn display(&self) -> &str {
        match self {
            PrincipalRef::User { upn: name }
            | PrincipalRef::ServicePrincipal { name }
            | PrincipalRef::ExistingGroup { name }
            | PrincipalRef::Group { display_name: name, .. }
            | PrincipalRef::Identity { name, .. }
            | PrincipalRef::WorkspaceSystem { name, .. } => name,
        }
    }

    /// Role assignments' `principalType` for this principal.
    pub fn principal_type(&self) -> mlpolicy_azure::PrincipalType {
        match self {
            PrincipalRef::User { .. } => mlpolicy_azure::PrincipalType::User,
            PrincipalRef::Group { .. } | PrincipalRef::ExistingGroup { .. } => mlpolicy_azure::PrincipalType::Group,
            _ => mlpolicy_azure::PrincipalType::ServicePrincipal,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredResourceGroup {
    pub id: String,
    pub subscription: String,
    pub name: String,
    pub location: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredIdentity {
    pub id: String,
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
    pub location: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredFederated {
    pub id: String,
    pub identity_id: String,
    pub name: String,
    pub issuer: String,
    pub subject: String,
    pub audiences: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredWorkspace {
    pub id: String,
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
    pub location: String,
    pub tags: BTreeMap<String, String>,
    /// `None` for the system-assigned identity, else the user-assigned identity's ARM id.
    pub user_identity: Option<String>,
    pub storage_account: String,
    pub key_vault: String,
    pub application_insights: Option<String>,
    pub container_registry: Option<String>,
    pub public_network_access: bool,
    pub friendly_name: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredGroup {
    pub unique_name: String,
    pub display_name: String,
    pub description: Option<String>,
    pub mail_nickname: String,
    pub members: Vec<PrincipalRef>,
    pub owners: Vec<PrincipalRef>,
    pub members_additive: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredRoleAssignment {
    /// Canonical ARM scope (lower-case, no trailing slash).
    pub scope: String,
    /// The scope as reviewers know it (`mlw-fraud-prod`, `rg-ml`, `sub prod`).
    pub scope_display: String,
    pub role: String,
    pub principal: PrincipalRef,
    /// Description as sent to Azure, ownership marker included.
    pub description: String,
    pub condition: Option<String>,
}

/// One desired object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Desired {
    ResourceGroup(DesiredResourceGroup),
    Identity(DesiredIdentity),
    Federated(DesiredFederated),
    Workspace(DesiredWorkspace),
    Group(DesiredGroup),
    RoleAssignment(DesiredRoleAssignment),
}

/// Everything the configuration wants to exist, by address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredState {
    pub owner: String,
    pub objects: BTreeMap<String, DesiredObject>,
}

/// A desired object with the facts about its declaration the plan needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredObject {
    pub address: String,
    pub prevent_destroy: bool,
    pub object: Desired,
    /// Where a `moved` block says the object was declared before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_from: Option<MovedFrom>,
}

/// The earlier address of a moved object and, where Azure names the object after its
/// address, the name it has there under that address: the plan finds the live object by it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedFrom {
    pub address: String,
    /// A group's `uniqueName` under the earlier address (Graph never changes a `uniqueName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_name: Option<String>,
    /// A federated credential's ARM id under the earlier address, when its name was defaulted
    /// from the local name and so differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// The `uniqueName` of a managed group: `mlpolicy.<owner>.<name>[.<key>...]`.
pub fn group_unique_name(owner: &str, address: &Address) -> String {
    let Address::Decl { name, keys, .. } = address else { return format!("mlpolicy.{owner}.{address}") };
    let mut out = format!("mlpolicy.{owner}.{name}");
    for k in keys {
        out.push('.');
        let raw = match k {
            mlpolicy_lang::model::Key::Str(s) => s.clone(),
            mlpolicy_lang::model::Key::Int(i) => i.to_string(),
        };
        out.extend(raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }));
    }
    out
}

/// The prefix of every `uniqueName` this owner creates.
pub fn group_unique_prefix(owner: &str) -> String {
    format!("mlpolicy.{owner}.")
}

/// The marker appended to the description of role assignments this owner creates.
pub fn assignment_marker(owner: &str) -> String {
    format!("[mlpolicy:{owner}]")
}

/// A role assignment description with the ownership marker.
pub fn assignment_description(owner: &str, description: Option<&str>) -> String {
    match description {
        Some(d) if !d.trim().is_empty() => format!("{} {}", d.trim(), assignment_marker(owner)),
        _ => format!("{DEFAULT_ASSIGNMENT_DESCRIPTION} {}", assignment_marker(owner)),
    }
}

/// What [`assignment_description`] writes when the configuration gives no description.
const DEFAULT_ASSIGNMENT_DESCRIPTION: &str = "Managed by mlpolicy";

/// A role assignment's description as its author wrote it: without `owner`'s marker, and empty
/// when it is only the default [`assignment_description`] writes.
pub fn unmarked_description<'d>(owner: &str, description: Option<&'d str>) -> &'d str {
    let d = description.unwrap_or_default().trim();
    let d = d.strip_suffix(assignment_marker(owner).as_str()).unwrap_or(d).trim();
    if d == DEFAULT_ASSIGNMENT_DESCRIPTION { "" } else { d }
}

/// Lowers a model. `owner` is the settings' owner or [`DEFAULT_OWNER`].
pub fn lower(model: &Model, owner: &str) -> DesiredState {
    let mut l = Lowering { model, owner, objects: BTreeMap::new() };
    l.resource_groups();
    l.identities();
    l.federated_credentials();
    l.workspaces();
    l.groups();
    l.grants();
    DesiredState { owner: owner.to_owned(), objects: l.objects }
}

/// The model being lowered, the owner marker, and the desired objects so far.
struct Lowering<'m> {
    model: &'m Model,
    owner: &'m str,
    objects: BTreeMap<String, DesiredObject>,
}

impl Lowering<'_> {
    fn put(&mut self, address: &Address, prevent_destroy: bool, object: Desired) {
        let moved_from = self.model.prior_address(address).map(|prior| self.moved_from(address, &prior, &object));
        let address = address.to_string();
        self.objects.insert(address.clone(), DesiredObject { address, prevent_destroy, object, moved_from });
    }

    /// What a moved object was called before: its earlier address, and its Azure name there
    /// when that derives from the address.
    fn moved_from(&self, address: &Address, prior: &Address, object: &Desired) -> MovedFrom {
        let mut out = MovedFrom { address: prior.to_string(), unique_name: None, id: None };
        match (object, prior) {
            (Desired::Group(g), Address::Decl { .. }) => {
                let before = group_unique_name(self.owner, prior);
                out.unique_name = (before != g.unique_name).then_some(before);
            }
            (Desired::Federated(f), Address::Federated { name: prior_name, .. }) => {
                // The default name is the local name with `_` as `-` (check.rs); a name the
                // configuration wrote stays what it was.
                let defaulted = matches!(address, Address::Federated { name, .. } if name.replace('_', "-") == f.name);
                let before = prior_name.replace('_', "-");
                if defaulted && before != f.name {
                    out.id = Some(format!("{}/federatedIdentityCredentials/{before}", f.identity_id));
                }
            }
            _ => {}
        }
        out
    }

    /// The declared tags and the ownership tag.
    fn owner_tags(&self, tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut t = tags.clone();
        t.insert(OWNER_TAG.to_owned(), self.owner.to_owned());
        t
    }

    fn rg_id(&self, a: &Address) -> Option<String> {
        let r = self.model.resource_groups.get(a)?;
        Some(format!("/subscriptions/{}/resourceGroups/{}", r.subscription_id, r.name))
    }

    fn identity_id(&self, a: &Address) -> Option<String> {
        let i = self.model.identities.get(a)?;
        Some(format!(
            "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{}",
            self.rg_id(&i.resource_group)?,
            i.name
        ))
    }

    fn workspace_id(&self, a: &Address) -> Option<String> {
        let w = self.model.workspaces.get(a)?;
        Some(format!(
            "{}/providers/Microsoft.MachineLearningServices/workspaces/{}",
            self.rg_id(&w.resource_group)?,
            w.name
        ))
    }

    fn resource_groups(&mut self) {
        for (a, r) in &self.model.resource_groups {
            let object = Desired::ResourceGroup(DesiredResourceGroup {
                id: format!("/subscriptions/{}/resourceGroups/{}", r.subscription_id, r.name),
                subscription: r.subscription_id.clone(),
                name: r.name.clone(),
                location: r.location.clone(),
                tags: self.owner_tags(&r.tags),
            });
            self.put(a, r.meta.prevent_destroy, object);
        }
    }

    fn identities(&mut self) {
        for (a, i) in &self.model.identities {
            let (Some(id), Some(rg)) = (self.identity_id(a), self.model.resource_groups.get(&i.resource_group)) else {
                continue;
            };
            let object = Desired::Identity(DesiredIdentity {
                id,
                subscription: rg.subscription_id.clone(),
                resource_group: rg.name.clone(),
                name: i.name.clone(),
                location: i.location.clone(),
                tags: self.owner_tags(&i.tags),
            });
            self.put(a, i.meta.prevent_destroy, object);
        }
    }

    fn federated_credentials(&mut self) {
        for (a, f) in &self.model.federated {
            let Some(identity) = self.identity_id(&f.identity) else { continue };
            let object = Desired::Federated(DesiredFederated {
                id: format!("{identity}/federatedIdentityCredentials/{}", f.name),
                identity_id: identity,
                name: f.name.clone(),
                issuer: f.issuer.clone(),
                subject: f.subject.clone(),
                audiences: f.audiences.clone(),
            });
            self.put(a, f.meta.prevent_destroy, object);
        }
    }

    fn workspaces(&mut self) {
        for (a, w) in &self.model.workspaces {
            let (Some(id), Some(rg)) = (self.workspace_id(a), self.model.resource_groups.get(&w.resource_group)) else {
                continue;
            };
            let user_identity = match &w.identity {
                WorkspaceIdentity::System => None,
                WorkspaceIdentity::User(i) => self.identity_id(i),
            };
            let object = Desired::Workspace(DesiredWorkspace {
                id,
                subscription: rg.subscription_id.clone(),
                resource_group: rg.name.clone(),
                name: w.name.clone(),
                location: w.location.clone(),
                tags: self.owner_tags(&w.tags),
                user_identity,
                storage_account: w.storage_account.clone(),
                key_vault: w.key_vault.clone(),
                application_insights: w.application_insights.clone(),
                container_registry: w.container_registry.clone(),
                public_network_access: w.public_network_access,
                friendly_name: w.friendly_name.clone(),
                description: w.description.clone(),
            });
            self.put(a, w.meta.prevent_destroy, object);
        }
    }

    /// A principal as the desired state names it; `None` for a declaration that is missing.
    fn principal(&self, p: &Principal) -> Option<PrincipalRef> {
        let model = self.model;
        Some(match p {
            Principal::User(upn) => PrincipalRef::User { upn: upn.clone() },
            Principal::ServicePrincipal(n) => PrincipalRef::ServicePrincipal { name: n.clone() },
            Principal::ExistingGroup(n) => PrincipalRef::ExistingGroup { name: n.clone() },
            Principal::Group(a) => PrincipalRef::Group {
                address: a.to_string(),
                unique_name: group_unique_name(self.owner, a),
                display_name: model.groups.get(a)?.name.clone(),
            },
            Principal::Identity(a) => PrincipalRef::Identity {
                address: a.to_string(),
                id: self.identity_id(a)?,
                name: model.identities.get(a)?.name.clone(),
            },
            Principal::WorkspaceSystem(a) => PrincipalRef::WorkspaceSystem {
                address: a.to_string(),
                id: self.workspace_id(a)?,
                name: model.workspaces.get(a)?.name.clone(),
            },
        })
    }

    fn groups(&mut self) {
        for (a, g) in &self.model.groups {
            let object = Desired::Group(DesiredGroup {
                unique_name: group_unique_name(self.owner, a),
                display_name: g.name.clone(),
                description: g.description.clone(),
                mail_nickname: g.mail_nickname.clone(),
                members: g.members.iter().filter_map(|p| self.principal(p)).collect(),
                owners: g.owners.iter().filter_map(|p| self.principal(p)).collect(),
                members_additive: g.members_additive,
            });
            self.put(a, g.meta.prevent_destroy, object);
        }
    }

    /// A grant's scope: its ARM id and how plans name it.
    fn scope(&self, scope: &Scope) -> Option<(String, String)> {
        let model = self.model;
        match scope {
            Scope::Subscription { id, alias } => {
                Some((format!("/subscriptions/{id}"), format!("subscription {alias}")))
            }
            Scope::ResourceGroup(r) => self.rg_id(r).map(|id| (id, model.resource_groups[r].name.clone())),
            Scope::Workspace(w) => self.workspace_id(w).map(|id| (id, model.workspaces[w].name.clone())),
            Scope::WorkspaceDependency(w, d) => model.workspaces.get(w).and_then(|ws| ws.dependency(*d)).map(|id| {
                let name = id.rsplit('/').next().unwrap_or(id).to_owned();
                (id.to_owned(), name)
            }),
            Scope::Arm(id) => Some((id.clone(), id.clone())),
        }
    }

    fn grants(&mut self) {
        for (a, g) in &self.model.grants {
            let Some(principal) = self.principal(&g.principal) else { continue };
            let Some((scope, scope_display)) = self.scope(&g.scope) else { continue };
            let object = Desired::RoleAssignment(DesiredRoleAssignment {
                scope: canonical(&scope),
                scope_display,
                role: g.role.clone(),
                principal,
                description: assignment_description(self.owner, g.description.as_deref()),
                condition: g.condition.clone(),
            });
            self.put(a, g.meta.prevent_destroy, object);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlpolicy_lang::model::{Key, Kind};

    #[test]
    fn unique_names_are_stable_and_safe() {
        let a = Address::decl(Kind::Group, "ds", vec![Key::Str("fraud team".into())]);
        assert_eq!(group_unique_name("contoso-ml", &a), "mlpolicy.contoso-ml.ds.fraud-team");
    }

    #[test]
    fn descriptions_carry_the_marker() {
        assert_eq!(assignment_description("o", None), "Managed by mlpolicy [mlpolicy:o]");
        assert_eq!(assignment_description("o", Some("CI deploys")), "CI deploys [mlpolicy:o]");
        for d in [None, Some("CI deploys")] {
            assert_eq!(unmarked_description("o", Some(&assignment_description("o", d))), d.unwrap_or_default());
        }
        assert_eq!(unmarked_description("o", Some("CI deploys [mlpolicy:other]")), "CI deploys [mlpolicy:other]");
    }
}
