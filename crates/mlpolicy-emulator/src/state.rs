//! The emulated tenant: one serde [`Tenant`] holding every ARM resource and directory object,
//! stored as YAML. The same format is used for the state file and for hand-written seed files:
//! every id is optional in a seed and [`Tenant::normalize`] mints missing ids deterministically
//! (UUID v5 of the object's natural key) and resolves human references (a UPN, a group name, a
//! role name) to object ids. Saving writes a temporary file and renames it over the target, so
//! a crash never leaves a half-written state.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::roles;
use super::util::{eq_ci, is_guid};

/// Namespace for ids minted from names, so seeds without ids give the same ids on every run.
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6d6c_706f_6c69_6379_656d_756c_6174_6f72);

/// A deterministic id for a natural key.
pub fn stable_id(kind: &str, key: &str) -> String {
    Uuid::new_v5(&ID_NAMESPACE, format!("{kind}:{}", key.to_ascii_lowercase()).as_bytes()).to_string()
}

/// The whole emulated tenant.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Tenant {
    /// Directory (tenant) id; the `--tenant` flag overrides it.
    pub tenant_id: String,
    /// Subscriptions known to the tenant (in lenient mode any id is accepted and recorded).
    pub subscriptions: Vec<Subscription>,
    /// Resource groups.
    pub resource_groups: Vec<ResourceGroup>,
    /// Azure ML workspaces, including soft-deleted ones.
    pub workspaces: Vec<Workspace>,
    /// User-assigned managed identities.
    pub identities: Vec<Identity>,
    /// Federated identity credentials of user-assigned identities.
    pub federated_credentials: Vec<FederatedCredential>,
    /// Role assignments at any scope.
    pub role_assignments: Vec<RoleAssignment>,
    /// Custom role definitions (the built-in ones are Azure's catalogue, never stored).
    pub role_definitions: Vec<CustomRole>,
    /// Directory users.
    pub users: Vec<User>,
    /// Directory groups.
    pub groups: Vec<Group>,
    /// Service principals (apps and managed identities).
    pub service_principals: Vec<ServicePrincipal>,
    /// App registrations.
    pub applications: Vec<Application>,
    /// Lookup index of directory objects (not state: never saved, compared or cloned).
    #[serde(skip)]
    index: DirectoryIndex,
}

/// A cache of where each directory object sits, so that looking one up by id or UPN does not
/// scan tens of thousands of users per request. It is a hint, never the truth: every hit is
/// checked against the object it points at, a stale or missing entry falls back to the scan
/// the answer is defined by, and the index is rebuilt when the collections change size.
#[derive(Default)]
struct DirectoryIndex(std::sync::Mutex<Option<std::sync::Arc<IndexData>>>);

struct IndexData {
    /// Lengths of users, groups, service principals and applications when built.
    shape: [usize; 4],
    /// Lower-cased object id → kind and position (the first occurrence in scan order).
    ids: std::collections::HashMap<String, (ObjectKind, usize)>,
    /// Lower-cased UPN → position in `users`.
    upns: std::collections::HashMap<String, usize>,
}

impl Clone for DirectoryIndex {
    fn clone(&self) -> Self {
        DirectoryIndex::default()
    }
}

impl PartialEq for DirectoryIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for DirectoryIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirectoryIndex")
    }
}

/// A subscription.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Subscription {
    /// Subscription GUID; minted from `display_name` when absent in a seed.
    pub id: String,
    /// Display name.
    pub display_name: String,
}

/// A resource group.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceGroup {
    /// Subscription id.
    pub subscription: String,
    /// Name as first created.
    pub name: String,
    /// Azure region.
    pub location: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Being deleted: reads answer `provisioningState: Deleting`, writes are refused, and the
    /// group goes with everything in it when its delete operation completes.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleting: bool,
}

/// A custom role definition (`type: CustomRole`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct CustomRole {
    /// The role GUID (the last segment of its id), chosen by the client.
    pub name: String,
    /// Role name, unique in the tenant.
    pub role_name: String,
    /// Description.
    pub description: String,
    /// Permission blocks (`actions`, `notActions`, `dataActions`, `notDataActions`).
    pub permissions: Vec<Value>,
    /// Scopes the role may be assigned at (and below), each with a leading `/`.
    pub assignable_scopes: Vec<String>,
    /// ISO timestamp of creation.
    pub created_on: String,
    /// ISO timestamp of the last update.
    pub updated_on: String,
    /// Object id of the creator (`null` in the create response, as in Azure).
    pub created_by: Option<String>,
    /// Object id of the last writer.
    pub updated_by: Option<String>,
}

/// An Azure ML workspace.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Workspace {
    /// Subscription id.
    pub subscription: String,
    /// Resource group name.
    pub resource_group: String,
    /// Workspace name.
    pub name: String,
    /// Azure region.
    pub location: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// `kind` as sent.
    pub kind: Option<String>,
    /// `sku` as sent.
    pub sku: Option<Value>,
    /// Writable `properties` as sent by the client.
    pub properties: Value,
    /// `identity.type` (`None`, `SystemAssigned`, `UserAssigned`, `SystemAssigned,UserAssigned`).
    pub identity_type: String,
    /// Full ids of attached user-assigned identities, as sent.
    pub user_assigned: Vec<String>,
    /// Object id of the system-assigned identity's service principal.
    pub principal_id: Option<String>,
    /// Read-only `workspaceId`.
    pub workspace_id: String,
    /// `Creating`, `Updating`, `Deleting`, `Succeeded`.
    pub provisioning_state: String,
    /// Soft-deleted: invisible, but blocks name reuse until purged.
    pub soft_deleted: bool,
    /// Who created and last changed it, and when (ARM's `systemData`); absent in old states.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_data: Option<SystemData>,
}

/// ARM's `systemData` block: who created and last modified a resource, and when.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SystemData {
    /// Creation time in milliseconds since the epoch.
    pub created_ms: u64,
    /// The creator: an application id (for service principals) or a user principal name.
    pub created_by: String,
    /// `Application`, `User`, `ManagedIdentity` or `Key`.
    pub created_by_type: String,
    /// Last modification time in milliseconds since the epoch.
    pub modified_ms: u64,
    /// The last modifier.
    pub modified_by: String,
    /// The last modifier's type.
    pub modified_by_type: String,
}

/// A user-assigned managed identity.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Identity {
    /// Subscription id.
    pub subscription: String,
    /// Resource group name.
    pub resource_group: String,
    /// Identity name.
    pub name: String,
    /// Azure region.
    pub location: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Object id of its service principal.
    pub principal_id: String,
    /// App id (client id) of its service principal.
    pub client_id: String,
    /// `isolationScope`, when sent.
    pub isolation_scope: Option<String>,
}

impl Identity {
    /// Canonical ARM id.
    pub fn id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{}",
            self.subscription, self.resource_group, self.name
        )
    }
}

/// A federated identity credential on a user-assigned identity.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FederatedCredential {
    /// Full id of the parent identity (a bare identity name is accepted in seeds).
    pub identity: String,
    /// Credential name.
    pub name: String,
    /// Token issuer.
    pub issuer: String,
    /// Token subject.
    pub subject: String,
    /// Audiences (exactly one).
    pub audiences: Vec<String>,
}

/// A role assignment.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RoleAssignment {
    /// The assignment GUID (minted from scope, principal and role when absent in a seed).
    pub name: String,
    /// Scope with a leading `/`.
    pub scope: String,
    /// Role: a full role definition id, a GUID, or a built-in role name in seeds (alias `role`).
    #[serde(alias = "role")]
    pub role_definition_id: String,
    /// Principal object id (a UPN, group or service principal name in seeds; alias `principal`).
    #[serde(alias = "principal")]
    pub principal_id: String,
    /// `User`, `Group`, `ServicePrincipal` or `ForeignGroup`.
    pub principal_type: String,
    /// Optional description.
    pub description: Option<String>,
    /// Optional ABAC condition.
    pub condition: Option<String>,
    /// Condition version.
    pub condition_version: Option<String>,
    /// ISO timestamp of creation.
    pub created_on: String,
    /// ISO timestamp of last update.
    pub updated_on: String,
    /// Object id of the creator.
    pub created_by: Option<String>,
    /// Object id of the last writer (the creator when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
}

/// A directory user.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct User {
    /// Object id (minted from the UPN when absent).
    pub id: String,
    /// UPN, e.g. `alice@contoso.com` or `bob_fabrikam.com#EXT#@contoso.onmicrosoft.com`.
    pub user_principal_name: String,
    /// Display name (defaults to the UPN's local part).
    pub display_name: String,
    /// Mail address.
    pub mail: Option<String>,
    /// Creation time in ms since the epoch (0 for seeded objects: replicated at once).
    pub created_ms: u64,
}

/// A directory group.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Group {
    /// Object id (minted from `unique_name` or `display_name` when absent).
    pub id: String,
    /// Display name (not unique).
    pub display_name: String,
    /// Client-provided tenant-unique key.
    pub unique_name: Option<String>,
    /// Mail nickname.
    pub mail_nickname: String,
    /// Description.
    pub description: Option<String>,
    /// Security group flag.
    pub security_enabled: bool,
    /// Mail-enabled flag.
    pub mail_enabled: bool,
    /// `groupTypes`.
    pub group_types: Vec<String>,
    /// Direct member object ids (UPNs or names in seeds).
    pub members: Vec<String>,
    /// Owner object ids (UPNs or names in seeds).
    pub owners: Vec<String>,
    /// Creation time in ms since the epoch.
    pub created_ms: u64,
}

/// A service principal.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServicePrincipal {
    /// Object id.
    pub id: String,
    /// App id (client id).
    pub app_id: String,
    /// Display name.
    pub display_name: String,
    /// `Application` or `ManagedIdentity`.
    pub service_principal_type: String,
    /// `alternativeNames` (managed identities carry their resource id here).
    pub alternative_names: Vec<String>,
    /// Client secrets added to the service principal itself (`addPassword`).
    pub password_credentials: Vec<PasswordCredential>,
    /// Creation time in ms since the epoch.
    pub created_ms: u64,
}

/// An app registration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Application {
    /// Object id.
    pub id: String,
    /// App id (client id).
    pub app_id: String,
    /// Display name.
    pub display_name: String,
    /// Client secrets.
    pub password_credentials: Vec<PasswordCredential>,
    /// Federated credentials (`iss`/`sub` pairs accepted as client assertions).
    pub federated_credentials: Vec<FederatedCredential>,
    /// `identifierUris` (`api://…`); Graph also lists them in the service principal's
    /// `servicePrincipalNames`.
    pub identifier_uris: Vec<String>,
    /// Owner object ids (users and service principals); the creator is the first.
    pub owners: Vec<String>,
    /// Creation time in ms since the epoch.
    pub created_ms: u64,
}

/// A client secret of an app registration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordCredential {
    /// Key id.
    pub key_id: String,
    /// Display name.
    pub display_name: Option<String>,
    /// The secret itself (never returned by Graph reads).
    pub secret_text: String,
    /// Start of validity.
    pub start_date_time: String,
    /// End of validity.
    pub end_date_time: String,
}

/// Errors loading or saving state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// File could not be read or written.
    #[error("cannot access `{path}`: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// File is not valid state YAML.
    #[error("invalid emulator state in `{path}`: {message}")]
    Yaml {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// Another emulator still holds the state file after the wait.
    #[error(
        "the emulator state `{path}` is still in use by another emulator ({holder}) after waiting {waited}; let that command finish first (the wait is `--lock-timeout` for `mlpolicy emulator`, `MLPOLICY_EMULATOR_LOCK_TIMEOUT` for `--emulator` commands)"
    )]
    Locked {
        /// The state file.
        path: String,
        /// `pid N`, or `another process`.
        holder: String,
        /// How long this process waited, e.g. `2m`.
        waited: String,
    },
}

/// The kind of a directory object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// A user.
    User,
    /// A group.
    Group,
    /// A service principal.
    ServicePrincipal,
    /// An application.
    Application,
}

impl ObjectKind {
    /// Graph `@odata.type`.
    pub fn odata_type(self) -> &'static str {
        match self {
            ObjectKind::User => "#microsoft.graph.user",
            ObjectKind::Group => "#microsoft.graph.group",
            ObjectKind::ServicePrincipal => "#microsoft.graph.servicePrincipal",
            ObjectKind::Application => "#microsoft.graph.application",
        }
    }
}

impl Tenant {
    /// Parses YAML (state or seed format), strictly: an unknown key, a value of the wrong type
    /// or a YAML tag is an error with its line and column, and an empty document (nothing but
    /// whitespace and comments, or `null`) is refused: an empty tenant is written `{}`.
    pub fn from_yaml(text: &str, path: &str) -> Result<Tenant, StateError> {
        let err = |message: String| StateError::Yaml { path: path.to_owned(), message };
        if let Some(tag) = crate::strict::find_tag(text) {
            return Err(err(tag));
        }
        match serde_norway::from_str::<Option<Tenant>>(text) {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(err("the document is empty; an empty tenant is written `{}`".to_owned())),
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// Serializes to YAML.
    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).unwrap_or_default()
    }

    /// Loads a file.
    pub fn load(path: &Path) -> Result<Tenant, StateError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| StateError::Io { path: shown.clone(), source })?;
        Tenant::from_yaml(&text, &shown)
    }

    /// Saves atomically: write `FILE.tmp`, then rename over `FILE`, so that a reader sees the
    /// old state or the new one, never half of one. Two processes never save the same file
    /// at once: each holds the file's lock (see [`crate::lock`]) while it runs.
    pub async fn save(&self, path: &Path) -> Result<(), StateError> {
        let text = self.to_yaml();
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        let shown = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(|source| StateError::Io { path: shown.clone(), source })?;
        }
        tokio::fs::write(&tmp, text).await.map_err(|source| StateError::Io { path: shown.clone(), source })?;
        tokio::fs::rename(&tmp, path).await.map_err(|source| StateError::Io { path: shown, source })
    }

    /// Looks up any directory object by id; returns its kind and creation time.
    pub fn directory_object(&self, id: &str) -> Option<(ObjectKind, u64)> {
        let (kind, at) = self.find_object(id)?;
        let created = match kind {
            ObjectKind::User => self.users[at].created_ms,
            ObjectKind::Group => self.groups[at].created_ms,
            ObjectKind::ServicePrincipal => self.service_principals[at].created_ms,
            ObjectKind::Application => self.applications[at].created_ms,
        };
        Some((kind, created))
    }

    /// The kind and position of the first directory object with this id, searching users,
    /// groups, service principals, then applications.
    pub fn find_object(&self, id: &str) -> Option<(ObjectKind, usize)> {
        if let Some((kind, at)) = self.index().ids.get(&id.to_ascii_lowercase()).copied()
            && self.object_id(kind, at).is_some_and(|x| eq_ci(x, id))
        {
            return Some((kind, at));
        }
        if let Some(at) = self.users.iter().position(|u| eq_ci(&u.id, id)) {
            return Some((ObjectKind::User, at));
        }
        if let Some(at) = self.groups.iter().position(|g| eq_ci(&g.id, id)) {
            return Some((ObjectKind::Group, at));
        }
        if let Some(at) = self.service_principals.iter().position(|s| eq_ci(&s.id, id)) {
            return Some((ObjectKind::ServicePrincipal, at));
        }
        self.applications.iter().position(|a| eq_ci(&a.id, id)).map(|at| (ObjectKind::Application, at))
    }

    /// The position of the first user whose id or UPN is `key`.
    pub fn find_user(&self, key: &str) -> Option<usize> {
        let index = self.index();
        let lower = key.to_ascii_lowercase();
        let by_id = index.ids.get(&lower).and_then(|&(k, at)| (k == ObjectKind::User).then_some(at));
        let by_upn = index.upns.get(&lower).copied();
        let matches =
            |at: usize| self.users.get(at).is_some_and(|u| eq_ci(&u.id, key) || eq_ci(&u.user_principal_name, key));
        let hit = [by_id, by_upn].into_iter().flatten().filter(|&at| matches(at)).min();
        hit.or_else(|| self.users.iter().position(|u| eq_ci(&u.id, key) || eq_ci(&u.user_principal_name, key)))
    }

    /// The id of the object at a position [`Self::find_object`] returned.
    pub fn object_id(&self, kind: ObjectKind, at: usize) -> Option<&str> {
        match kind {
            ObjectKind::User => self.users.get(at).map(|u| u.id.as_str()),
            ObjectKind::Group => self.groups.get(at).map(|g| g.id.as_str()),
            ObjectKind::ServicePrincipal => self.service_principals.get(at).map(|s| s.id.as_str()),
            ObjectKind::Application => self.applications.get(at).map(|a| a.id.as_str()),
        }
    }

    /// The directory index, rebuilt when a collection changed size since it was built.
    fn index(&self) -> std::sync::Arc<IndexData> {
        let shape = [self.users.len(), self.groups.len(), self.service_principals.len(), self.applications.len()];
        let mut slot = self.index.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(data) = slot.as_ref().filter(|d| d.shape == shape) {
            return std::sync::Arc::clone(data);
        }
        let mut ids = std::collections::HashMap::with_capacity(shape.iter().sum());
        let objects = (self.users.iter().enumerate().map(|(i, u)| (&u.id, ObjectKind::User, i)))
            .chain(self.groups.iter().enumerate().map(|(i, g)| (&g.id, ObjectKind::Group, i)))
            .chain(self.service_principals.iter().enumerate().map(|(i, s)| (&s.id, ObjectKind::ServicePrincipal, i)))
            .chain(self.applications.iter().enumerate().map(|(i, a)| (&a.id, ObjectKind::Application, i)));
        for (id, kind, at) in objects {
            ids.entry(id.to_ascii_lowercase()).or_insert((kind, at));
        }
        let mut upns = std::collections::HashMap::with_capacity(self.users.len());
        for (at, u) in self.users.iter().enumerate() {
            upns.entry(u.user_principal_name.to_ascii_lowercase()).or_insert(at);
        }
        let data = std::sync::Arc::new(IndexData { shape, ids, upns });
        *slot = Some(std::sync::Arc::clone(&data));
        data
    }

    /// True when the subscription is recorded.
    pub fn has_subscription(&self, sub: &str) -> bool {
        self.subscriptions.iter().any(|s| eq_ci(&s.id, sub))
    }

    /// Records a subscription if new (lenient mode).
    pub fn ensure_subscription(&mut self, sub: &str) {
        if !self.has_subscription(sub) {
            self.subscriptions
                .push(Subscription { id: sub.to_owned(), display_name: "Emulated subscription".to_owned() });
        }
    }

    /// Finds a resource group.
    pub fn resource_group(&self, sub: &str, rg: &str) -> Option<&ResourceGroup> {
        self.resource_groups.iter().find(|g| eq_ci(&g.subscription, sub) && eq_ci(&g.name, rg))
    }

    /// Resolves a human reference (object id, UPN, group unique/display name, SP display name or
    /// app id) to an object id.
    fn resolve_principal(&self, reference: &str) -> Option<String> {
        if self.directory_object(reference).is_some() {
            return Some(self.canonical_id(reference));
        }
        if let Some(u) = self.users.iter().find(|u| eq_ci(&u.user_principal_name, reference)) {
            return Some(u.id.clone());
        }
        if let Some(g) = self.groups.iter().find(|g| {
            g.unique_name.as_deref().is_some_and(|n| eq_ci(n, reference)) || eq_ci(&g.display_name, reference)
        }) {
            return Some(g.id.clone());
        }
        if let Some(i) = self.identities.iter().find(|i| eq_ci(&i.name, reference)) {
            return Some(i.principal_id.clone());
        }
        self.service_principals
            .iter()
            .find(|s| eq_ci(&s.display_name, reference) || eq_ci(&s.app_id, reference))
            .map(|s| s.id.clone())
    }

    fn canonical_id(&self, id: &str) -> String {
        self.users
            .iter()
            .map(|u| &u.id)
            .chain(self.groups.iter().map(|g| &g.id))
            .chain(self.service_principals.iter().map(|s| &s.id))
            .chain(self.applications.iter().map(|a| &a.id))
            .find(|x| eq_ci(x, id))
            .cloned()
            .unwrap_or_else(|| id.to_owned())
    }

    /// Fills in missing ids and defaults, creates service principals for apps and identities,
    /// and resolves human references in memberships and role assignments. Idempotent.
    pub fn normalize(&mut self) {
        for s in &mut self.subscriptions {
            if s.id.is_empty() {
                s.id = stable_id("subscription", &s.display_name);
            }
            if s.display_name.is_empty() {
                "Emulated subscription".clone_into(&mut s.display_name);
            }
        }
        let default_sub = self.subscriptions.first().map(|s| s.id.clone()).unwrap_or_default();
        for g in &mut self.resource_groups {
            if g.subscription.is_empty() {
                g.subscription.clone_from(&default_sub);
            }
            if g.location.is_empty() {
                "eastus".clone_into(&mut g.location);
            }
        }
        for u in &mut self.users {
            if u.id.is_empty() {
                u.id = stable_id("user", &u.user_principal_name);
            }
            if u.display_name.is_empty() {
                u.display_name = u.user_principal_name.split('@').next().unwrap_or_default().to_owned();
            }
        }
        for g in &mut self.groups {
            if g.id.is_empty() {
                g.id = stable_id("group", g.unique_name.as_deref().unwrap_or(&g.display_name));
            }
            if g.mail_nickname.is_empty() {
                g.mail_nickname = g.display_name.chars().filter(char::is_ascii_alphanumeric).collect::<String>();
                if g.mail_nickname.is_empty() {
                    "group".clone_into(&mut g.mail_nickname);
                }
            }
            if !g.mail_enabled {
                g.security_enabled = true;
            }
        }
        for a in &mut self.applications {
            if a.app_id.is_empty() {
                a.app_id = stable_id("appid", &a.display_name);
            }
            if a.id.is_empty() {
                a.id = stable_id("application", &a.app_id);
            }
            for p in &mut a.password_credentials {
                if p.key_id.is_empty() {
                    p.key_id = stable_id("key", &format!("{}:{}", a.app_id, p.secret_text));
                }
                if p.end_date_time.is_empty() {
                    "2299-12-31T00:00:00Z".clone_into(&mut p.end_date_time);
                }
                if p.start_date_time.is_empty() {
                    "2020-01-01T00:00:00Z".clone_into(&mut p.start_date_time);
                }
            }
        }
        let apps: Vec<(String, String)> =
            self.applications.iter().map(|a| (a.app_id.clone(), a.display_name.clone())).collect();
        for (app_id, name) in apps {
            if !self.service_principals.iter().any(|s| eq_ci(&s.app_id, &app_id)) {
                self.service_principals.push(ServicePrincipal {
                    id: stable_id("sp", &app_id),
                    app_id,
                    display_name: name,
                    service_principal_type: "Application".to_owned(),
                    ..ServicePrincipal::default()
                });
            }
        }
        for i in &mut self.identities {
            if i.subscription.is_empty() {
                i.subscription.clone_from(&default_sub);
            }
            if i.location.is_empty() {
                "eastus".clone_into(&mut i.location);
            }
            if i.principal_id.is_empty() {
                i.principal_id = stable_id("uai-principal", &i.id());
            }
            if i.client_id.is_empty() {
                i.client_id = stable_id("uai-client", &i.id());
            }
        }
        let uais: Vec<(String, String, String, String)> = self
            .identities
            .iter()
            .map(|i| (i.principal_id.clone(), i.client_id.clone(), i.name.clone(), i.id()))
            .collect();
        for (pid, cid, name, id) in uais {
            if !self.service_principals.iter().any(|s| eq_ci(&s.id, &pid)) {
                self.service_principals.push(ServicePrincipal {
                    id: pid,
                    app_id: cid,
                    display_name: name,
                    service_principal_type: "ManagedIdentity".to_owned(),
                    alternative_names: vec!["isExplicit=True".to_owned(), id],
                    password_credentials: Vec::new(),
                    created_ms: 0,
                });
            }
        }
        for s in &mut self.service_principals {
            if s.app_id.is_empty() {
                s.app_id = stable_id("appid", &s.display_name);
            }
            if s.id.is_empty() {
                s.id = stable_id("sp", &s.app_id);
            }
            if s.service_principal_type.is_empty() {
                "Application".clone_into(&mut s.service_principal_type);
            }
        }
        let identity_ids: Vec<String> = self.identities.iter().map(Identity::id).collect();
        for f in &mut self.federated_credentials {
            if !f.identity.starts_with('/')
                && let Some(full) =
                    identity_ids.iter().find(|id| id.rsplit('/').next().is_some_and(|n| eq_ci(n, &f.identity)))
            {
                f.identity.clone_from(full);
            }
        }
        self.normalize_memberships();
        self.normalize_assignments();
    }

    fn normalize_memberships(&mut self) {
        let resolved: Vec<(Vec<String>, Vec<String>)> = self
            .groups
            .iter()
            .map(|g| {
                let map = |list: &Vec<String>| {
                    list.iter().map(|m| self.resolve_principal(m).unwrap_or_else(|| m.clone())).collect::<Vec<_>>()
                };
                (map(&g.members), map(&g.owners))
            })
            .collect();
        for (g, (members, owners)) in self.groups.iter_mut().zip(resolved) {
            g.members = dedup_ci(members);
            g.owners = dedup_ci(owners);
        }
    }

    fn normalize_assignments(&mut self) {
        let mut fixed = Vec::with_capacity(self.role_assignments.len());
        for ra in &self.role_assignments {
            let mut ra = ra.clone();
            if !ra.scope.starts_with('/') {
                ra.scope = format!("/{}", ra.scope);
            }
            if ra.scope.len() > 1 {
                let trimmed = ra.scope.trim_end_matches('/').to_owned();
                ra.scope = trimmed;
            }
            if !ra.role_definition_id.contains('/') {
                let guid = if is_guid(&ra.role_definition_id) {
                    Some(ra.role_definition_id.clone())
                } else {
                    roles::by_name(&ra.role_definition_id).map(|r| r.guid.clone())
                };
                if let Some(guid) = guid {
                    ra.role_definition_id = roles::definition_id(&ra.scope, &guid);
                }
            }
            if let Some(pid) = self.resolve_principal(&ra.principal_id) {
                if ra.principal_type.is_empty() {
                    match self.directory_object(&pid).map(|o| o.0) {
                        Some(ObjectKind::Group) => "Group",
                        Some(ObjectKind::ServicePrincipal | ObjectKind::Application) => "ServicePrincipal",
                        _ => "User",
                    }
                    .clone_into(&mut ra.principal_type);
                }
                ra.principal_id = pid;
            }
            if ra.principal_type.is_empty() {
                "User".clone_into(&mut ra.principal_type);
            }
            if ra.name.is_empty() {
                ra.name = stable_id(
                    "role-assignment",
                    &format!("{}|{}|{}", ra.scope, ra.principal_id, roles::guid_of(&ra.role_definition_id)),
                );
            }
            if ra.created_on.is_empty() {
                "2024-01-01T00:00:00.0000000Z".clone_into(&mut ra.created_on);
            }
            if ra.updated_on.is_empty() {
                ra.updated_on.clone_from(&ra.created_on);
            }
            fixed.push(ra);
        }
        self.role_assignments = fixed;
    }

    /// Ids of all groups that contain `principal` directly or through nested groups.
    pub fn transitive_groups(&self, principal: &str) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        let mut frontier = vec![principal.to_owned()];
        while let Some(p) = frontier.pop() {
            for g in &self.groups {
                if g.members.iter().any(|m| eq_ci(m, &p)) && !found.iter().any(|f| eq_ci(f, &g.id)) {
                    found.push(g.id.clone());
                    frontier.push(g.id.clone());
                }
            }
        }
        found
    }
}

fn dedup_ci(list: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for item in list {
        if !out.iter().any(|o| eq_ci(o, &item)) {
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r"
tenant_id: 72f988bf-86f1-41af-91ab-2d7cd011db47
subscriptions:
  - display_name: prod
resource_groups:
  - name: rg-ml
users:
  - user_principal_name: alice@contoso.com
  - user_principal_name: bob_fabrikam.com#EXT#@contoso.onmicrosoft.com
    id: 11111111-1111-1111-1111-111111111111
groups:
  - display_name: ml-admins
    unique_name: ml-admins
    members: [alice@contoso.com, 11111111-1111-1111-1111-111111111111]
    owners: [alice@contoso.com]
applications:
  - display_name: deployer
    password_credentials:
      - secret_text: s3cret
identities:
  - resource_group: rg-ml
    name: uai-train
federated_credentials:
  - identity: uai-train
    name: github
    issuer: https://token.actions.githubusercontent.com
    subject: repo:org/repo:environment:prod
    audiences: [api://AzureADTokenExchange]
role_assignments:
  - scope: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-ml
    role: Reader
    principal: ml-admins
";

    #[test]
    fn seed_normalizes_deterministically() {
        let mut a = Tenant::from_yaml(SEED, "seed").unwrap();
        a.normalize();
        let mut b = Tenant::from_yaml(SEED, "seed").unwrap();
        b.normalize();
        assert_eq!(a, b);
        let alice = &a.users[0].id;
        assert!(is_guid(alice));
        assert_eq!(a.groups[0].members[0], *alice);
        assert_eq!(a.groups[0].members[1], "11111111-1111-1111-1111-111111111111");
        assert_eq!(a.role_assignments[0].principal_id, a.groups[0].id);
        assert_eq!(a.role_assignments[0].principal_type, "Group");
        assert!(a.role_assignments[0].role_definition_id.ends_with("acdd72a7-3385-48ef-bd42-f606fba81ae7"));
        assert_eq!(a.service_principals.len(), 2);
        assert!(a.federated_credentials[0].identity.ends_with("/userAssignedIdentities/uai-train"));
        let mut c = a.clone();
        c.normalize();
        assert_eq!(a, c);
    }

    #[test]
    fn yaml_round_trip() {
        let mut a = Tenant::from_yaml(SEED, "seed").unwrap();
        a.normalize();
        let back = Tenant::from_yaml(&a.to_yaml(), "state").unwrap();
        assert_eq!(a, back);
    }

    #[test]
    fn bad_yaml_is_an_error() {
        assert!(Tenant::from_yaml("users: 3", "x").is_err());
    }

    fn refused(text: &str) -> String {
        match Tenant::from_yaml(text, "seed.yaml") {
            Ok(t) => panic!("{text:?} was accepted: {t:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn unknown_keys_wrong_types_tags_and_empty_documents_are_refused_with_a_line() {
        let e = refused("users:\n  - user_principal_name: a@b.c\n    upn: a@b.c\n");
        assert!(e.contains("unknown field `upn`") && e.contains("line 3 column 5"), "{e}");
        let e = refused("tenant_id: x\nsubscriptionz: []\n");
        assert!(e.contains("unknown field `subscriptionz`") && e.contains("line 2"), "{e}");
        let e = refused("groups:\n  - display_name: g\n    security_enabled: maybe\n");
        assert!(e.contains("expected a boolean") && e.contains("line 3"), "{e}");
        let e = refused(
            "applications:\n  - display_name: a\n    password_credentials:\n      - secret_text: !!binary czNjcmV0\n",
        );
        assert!(e.contains("line 4 column 22") && e.contains("`!!binary`"), "{e}");
        let e = refused("users: !!python/object/apply:os.system [ls]\n");
        assert!(e.contains("line 1") && e.contains("!!python/object/apply:os.system"), "{e}");
        for empty in ["", "  \n", "# only a comment\n", "~\n", "null\n"] {
            let e = refused(empty);
            assert!(e.contains("empty") && e.contains("`{}`"), "{empty:?}: {e}");
        }
        assert_eq!(Tenant::from_yaml("{}", "x").unwrap(), Tenant::default());
        // A seed's aliases for role assignments stay accepted.
        let t = Tenant::from_yaml("role_assignments:\n  - {scope: /, role: Reader, principal: a}\n", "x").unwrap();
        assert_eq!(t.role_assignments[0].role_definition_id, "Reader");
    }
}
