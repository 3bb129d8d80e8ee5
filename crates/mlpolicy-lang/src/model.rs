//! The shared vocabulary of the later stages: [`Address`]es that name declared objects,
//! evaluated [`Value`]s, and the typed, checked objects of a configuration ([`Model`]) that
//! `graph`, `lower` and the policies read.

use std::collections::BTreeMap;
use std::fmt;

use crate::source::Span;

/// The kinds of object a configuration declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    ResourceGroup,
    Identity,
    Federated,
    Workspace,
    Group,
    Grant,
}

impl Kind {
    /// Kinds written as `KIND NAME { ... }` at top level.
    pub const TOP_LEVEL: [Kind; 4] = [Kind::ResourceGroup, Kind::Identity, Kind::Workspace, Kind::Group];

    pub fn keyword(self) -> &'static str {
        match self {
            Kind::ResourceGroup => "resource_group",
            Kind::Identity => "identity",
            Kind::Federated => "federated",
            Kind::Workspace => "workspace",
            Kind::Group => "group",
            Kind::Grant => "grant",
        }
    }

    pub fn from_keyword(s: &str) -> Option<Kind> {
        [Kind::ResourceGroup, Kind::Identity, Kind::Federated, Kind::Workspace, Kind::Group, Kind::Grant]
            .into_iter()
            .find(|k| k.keyword() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// One `for` key of an address: `["fraud"]` or `[3]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    Str(String),
    Int(i64),
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Str(s) => write!(f, "[{}]", quote(s)),
            Key::Int(i) => write!(f, "[{i}]"),
        }
    }
}

/// The stable name of a declared object, as shown in plans and diagnostics:
/// `group.ds["fraud"]`, `identity.trainer.federated.github_prod`,
/// `grant "AzureML Data Scientist" to group.ds["fraud"] on workspace.shared`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Address {
    Decl { kind: Kind, name: String, keys: Vec<Key> },
    Federated { identity: Box<Address>, name: String },
    Grant { role: String, principal: String, scope: String },
}

impl Address {
    pub fn decl(kind: Kind, name: impl Into<String>, keys: Vec<Key>) -> Address {
        Address::Decl { kind, name: name.into(), keys }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Address::Decl { kind, .. } => *kind,
            Address::Federated { .. } => Kind::Federated,
            Address::Grant { .. } => Kind::Grant,
        }
    }

    /// The `for` keys, if any (a federated credential inherits its identity's).
    pub fn keys(&self) -> &[Key] {
        match self {
            Address::Decl { keys, .. } => keys,
            Address::Federated { identity, .. } => identity.keys(),
            Address::Grant { .. } => &[],
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Decl { kind, name, keys } => {
                write!(f, "{kind}.{name}")?;
                keys.iter().try_for_each(|k| write!(f, "{k}"))
            }
            Address::Federated { identity, name } => write!(f, "{identity}.federated.{name}"),
            Address::Grant { role, principal, scope } => write!(f, "grant {} to {principal} on {scope}", quote(role)),
        }
    }
}

/// A string as the language writes it, with escapes (the formatter's own).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    crate::fmt::escape_into(&mut out, s, false);
    out.push('"');
    out
}

/// A resource a workspace is linked to, addressable as `workspace.X.<dependency>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dependency {
    StorageAccount,
    KeyVault,
    ApplicationInsights,
    ContainerRegistry,
}

impl Dependency {
    pub const ALL: [Dependency; 4] = [
        Dependency::StorageAccount,
        Dependency::KeyVault,
        Dependency::ApplicationInsights,
        Dependency::ContainerRegistry,
    ];

    pub fn attribute(self) -> &'static str {
        match self {
            Dependency::StorageAccount => "storage_account",
            Dependency::KeyVault => "key_vault",
            Dependency::ApplicationInsights => "application_insights",
            Dependency::ContainerRegistry => "container_registry",
        }
    }

    pub fn from_attribute(s: &str) -> Option<Dependency> {
        Dependency::ALL.into_iter().find(|d| d.attribute() == s)
    }
}

/// A reference value: something a declaration points at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ref {
    /// `group.x`, `identity.x`, `workspace.x`, `resource_group.x` (keys included).
    Object(Address),
    /// `workspace.x.identity`: the workspace's own identity.
    WorkspaceIdentity(Address),
    /// `workspace.x.storage_account` and the other linked resources.
    WorkspaceDependency(Address, Dependency),
    /// `sub.alias`
    Subscription { alias: String, id: String },
    /// `user("upn")`
    User(String),
    /// `service_principal("app id or display name")`
    ServicePrincipal(String),
    /// `existing_group("display name")`
    ExistingGroup(String),
    /// `scope("/subscriptions/...")`
    Scope(String),
    /// `system`: a workspace's system-assigned identity.
    System,
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ref::Object(a) => write!(f, "{a}"),
            Ref::WorkspaceIdentity(a) => write!(f, "{a}.identity"),
            Ref::WorkspaceDependency(a, d) => write!(f, "{a}.{}", d.attribute()),
            Ref::Subscription { alias, .. } => write!(f, "sub.{alias}"),
            Ref::User(s) => write!(f, "user({})", quote(s)),
            Ref::ServicePrincipal(s) => write!(f, "service_principal({})", quote(s)),
            Ref::ExistingGroup(s) => write!(f, "existing_group({})", quote(s)),
            Ref::Scope(s) => write!(f, "scope({})", quote(s)),
            Ref::System => f.write_str("system"),
        }
    }
}

/// An evaluated value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
    Ref(Ref),
}

impl Value {
    /// The type's name with its article: "a string", "an integer".
    pub fn a_type_name(&self) -> String {
        let n = self.type_name();
        let article = if n.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
        format!("{article} {n}")
    }

    /// The type's name as used in diagnostics.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Int(_) => "integer",
            Value::Bool(_) => "bool",
            Value::List(_) => "list",
            Value::Map(_) => "map",
            Value::Ref(Ref::Object(a)) => match a.kind() {
                Kind::ResourceGroup => "resource group reference",
                Kind::Identity => "identity reference",
                Kind::Workspace => "workspace reference",
                Kind::Group => "group reference",
                Kind::Federated | Kind::Grant => "reference",
            },
            Value::Ref(Ref::Subscription { .. }) => "subscription reference",
            Value::Ref(Ref::User(_)) => "user reference",
            Value::Ref(Ref::ServicePrincipal(_)) => "service principal reference",
            Value::Ref(Ref::ExistingGroup(_)) => "existing group reference",
            Value::Ref(Ref::Scope(_)) => "scope reference",
            Value::Ref(Ref::WorkspaceIdentity(_)) => "workspace identity reference",
            Value::Ref(Ref::WorkspaceDependency(..)) => "workspace resource reference",
            Value::Ref(Ref::System) => "`system`",
        }
    }
}

/// What every checked object carries besides its own attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub address: Address,
    /// The whole declaration.
    pub span: Span,
    /// The declaration's name (or, for grants, the `grant` line).
    pub name_span: Span,
    /// Where each attribute was written, for diagnostics that point at one.
    pub attr_spans: BTreeMap<String, Span>,
    pub prevent_destroy: bool,
    pub waivers: Vec<Waiver>,
}

impl Meta {
    /// The span of an attribute, or of the declaration's name when it was defaulted.
    pub fn attr_span(&self, name: &str) -> Span {
        self.attr_spans.get(name).copied().unwrap_or(self.name_span)
    }
}

/// `allow POLICY because "reason"` on a declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiver {
    pub policy: String,
    pub reason: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceGroup {
    pub meta: Meta,
    pub subscription_alias: String,
    pub subscription_id: String,
    pub name: String,
    pub location: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub meta: Meta,
    pub resource_group: Address,
    pub name: String,
    pub location: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedCredential {
    pub meta: Meta,
    pub identity: Address,
    pub name: String,
    pub issuer: String,
    pub subject: String,
    pub audiences: Vec<String>,
}

/// The identity a workspace runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkspaceIdentity {
    System,
    User(Address),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub meta: Meta,
    pub resource_group: Address,
    pub name: String,
    pub location: String,
    pub identity: WorkspaceIdentity,
    pub storage_account: String,
    pub key_vault: String,
    pub application_insights: Option<String>,
    pub container_registry: Option<String>,
    pub public_network_access: bool,
    pub friendly_name: Option<String>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
}

impl Workspace {
    pub fn dependency(&self, d: Dependency) -> Option<&str> {
        match d {
            Dependency::StorageAccount => Some(&self.storage_account),
            Dependency::KeyVault => Some(&self.key_vault),
            Dependency::ApplicationInsights => self.application_insights.as_deref(),
            Dependency::ContainerRegistry => self.container_registry.as_deref(),
        }
    }
}

/// Who a group holds or a grant is given to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Principal {
    User(String),
    ServicePrincipal(String),
    ExistingGroup(String),
    Group(Address),
    Identity(Address),
    /// The system-assigned identity of a workspace.
    WorkspaceSystem(Address),
}

impl Principal {
    /// `user`, `service_principal`, `group` or `identity`: the `principal.kind` of policies.
    pub fn kind(&self) -> &'static str {
        match self {
            Principal::User(_) => "user",
            Principal::ServicePrincipal(_) => "service_principal",
            Principal::ExistingGroup(_) | Principal::Group(_) => "group",
            Principal::Identity(_) | Principal::WorkspaceSystem(_) => "identity",
        }
    }

    pub fn as_ref_value(&self) -> Ref {
        match self {
            Principal::User(s) => Ref::User(s.clone()),
            Principal::ServicePrincipal(s) => Ref::ServicePrincipal(s.clone()),
            Principal::ExistingGroup(s) => Ref::ExistingGroup(s.clone()),
            Principal::Group(a) | Principal::Identity(a) => Ref::Object(a.clone()),
            Principal::WorkspaceSystem(a) => Ref::WorkspaceIdentity(a.clone()),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_ref_value())
    }
}

/// Where a grant applies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Subscription {
        alias: String,
        id: String,
    },
    ResourceGroup(Address),
    Workspace(Address),
    WorkspaceDependency(Address, Dependency),
    /// Any other ARM id, from `scope("...")`.
    Arm(String),
}

impl Scope {
    /// `subscription`, `resource_group`, `workspace`, `storage_account`, … : the `scope.kind`
    /// of policies.
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::Subscription { .. } => "subscription",
            Scope::ResourceGroup(_) => "resource_group",
            Scope::Workspace(_) => "workspace",
            Scope::WorkspaceDependency(_, d) => d.attribute(),
            Scope::Arm(_) => "resource",
        }
    }

    pub fn as_ref_value(&self) -> Ref {
        match self {
            Scope::Subscription { alias, id } => Ref::Subscription { alias: alias.clone(), id: id.clone() },
            Scope::ResourceGroup(a) | Scope::Workspace(a) => Ref::Object(a.clone()),
            Scope::WorkspaceDependency(a, d) => Ref::WorkspaceDependency(a.clone(), *d),
            Scope::Arm(s) => Ref::Scope(s.clone()),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_ref_value())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub meta: Meta,
    pub name: String,
    pub description: Option<String>,
    pub mail_nickname: String,
    pub members: Vec<Principal>,
    pub owners: Vec<Principal>,
    pub members_additive: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub meta: Meta,
    pub role: String,
    pub principal: Principal,
    pub scope: Scope,
    pub description: Option<String>,
    pub condition: Option<String>,
}

/// A `moved` block, resolved: the object declared at `to` was declared at `from` before. A
/// block naming whole declarations of a `for` (`group.ds` → `group.teams`) is expanded into one
/// move per instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub from: Address,
    pub to: Address,
    /// The `moved` block.
    pub span: Span,
}

/// A checked configuration: every declared object, typed, with defaults filled in.
/// Maps are ordered by address so that everything derived from a model is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    pub resource_groups: BTreeMap<Address, ResourceGroup>,
    pub identities: BTreeMap<Address, Identity>,
    pub federated: BTreeMap<Address, FederatedCredential>,
    pub workspaces: BTreeMap<Address, Workspace>,
    pub groups: BTreeMap<Address, Group>,
    pub grants: BTreeMap<Address, Grant>,
    /// The `moved` blocks, valid ones only, in source order.
    pub moves: Vec<Move>,
}

impl Model {
    /// The address an object was declared at before the `moved` blocks: the block's `from` for
    /// an object moved by one; for a federated credential, its place under its identity's
    /// earlier address; for a grant, the grant to its principal's and scope's earlier
    /// addresses. `None` when no move touches the object.
    pub fn prior_address(&self, address: &Address) -> Option<Address> {
        if let Some(m) = self.moves.iter().find(|m| m.to == *address) {
            return Some(m.from.clone());
        }
        match address {
            Address::Decl { .. } => None,
            Address::Federated { identity, name } => self
                .prior_address(identity)
                .map(|identity| Address::Federated { identity: Box::new(identity), name: name.clone() }),
            Address::Grant { role, .. } => {
                let g = self.grants.get(address)?;
                let prior = |a: &Address| self.prior_address(a);
                let principal = match &g.principal {
                    Principal::Group(a) => prior(a).map(Principal::Group),
                    Principal::Identity(a) => prior(a).map(Principal::Identity),
                    Principal::WorkspaceSystem(a) => prior(a).map(Principal::WorkspaceSystem),
                    _ => None,
                };
                let scope = match &g.scope {
                    Scope::ResourceGroup(a) => prior(a).map(Scope::ResourceGroup),
                    Scope::Workspace(a) => prior(a).map(Scope::Workspace),
                    Scope::WorkspaceDependency(a, d) => prior(a).map(|a| Scope::WorkspaceDependency(a, *d)),
                    _ => None,
                };
                if principal.is_none() && scope.is_none() {
                    return None;
                }
                Some(Address::Grant {
                    role: role.clone(),
                    principal: principal.unwrap_or_else(|| g.principal.clone()).to_string(),
                    scope: scope.unwrap_or_else(|| g.scope.clone()).to_string(),
                })
            }
        }
    }

    /// Every object's meta, in address order within each kind.
    pub fn metas(&self) -> impl Iterator<Item = &Meta> {
        self.resource_groups
            .values()
            .map(|o| &o.meta)
            .chain(self.identities.values().map(|o| &o.meta))
            .chain(self.federated.values().map(|o| &o.meta))
            .chain(self.workspaces.values().map(|o| &o.meta))
            .chain(self.groups.values().map(|o| &o.meta))
            .chain(self.grants.values().map(|o| &o.meta))
    }

    pub fn len(&self) -> usize {
        self.resource_groups.len()
            + self.identities.len()
            + self.federated.len()
            + self.workspaces.len()
            + self.groups.len()
            + self.grants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_render_as_written() {
        let ds = Address::decl(Kind::Group, "ds", vec![Key::Str("fraud".into())]);
        assert_eq!(ds.to_string(), "group.ds[\"fraud\"]");
        let fic =
            Address::Federated { identity: Box::new(Address::decl(Kind::Identity, "t", vec![])), name: "gh".into() };
        assert_eq!(fic.to_string(), "identity.t.federated.gh");
        let g = Address::Grant { role: "Reader".into(), principal: ds.to_string(), scope: "sub.prod".into() };
        assert_eq!(g.to_string(), "grant \"Reader\" to group.ds[\"fraud\"] on sub.prod");
    }

    #[test]
    fn quote_escapes() {
        assert_eq!(quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(quote("${x} $y"), "\"$${x} $y\"");
    }
}
