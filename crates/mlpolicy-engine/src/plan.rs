//! The plan: plain data that says what apply will do, what drifted, who gains or loses access,
//! and which policy exceptions apply. Diffing builds it (`diff`), renderers print it
//! (`render`), apply carries it out (`apply`). A plan saved with `plan --out` carries
//! fingerprints of the configuration and of every live object it was computed from, an
//! integrity hash over its own content and, when `MLPOLICY_PLAN_KEY` is set, an HMAC-SHA256
//! signature with that key. The hash catches accidents, not forgery (anyone can recompute it):
//! `apply PLANFILE` therefore re-derives the plan and applies only what it re-derived
//! (`apply::check_saved`), and the signature proves where a plan file came from.
//!
//! The JSON form of this data is the documented schema of `docs/plan-json.md`
//! (`format_version`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::lower::Desired;

/// Version of the saved and `--format json` plan schema.
pub const FORMAT_VERSION: u32 = 1;

/// What happens to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Replace,
    Delete,
    /// Read only (data the configuration refers to but does not manage).
    Read,
    NoOp,
    /// The object already is as configured and only lacks this configuration's ownership
    /// marker: apply writes the marker and nothing else. Changes no access and no attribute,
    /// so it does not count as a change for `--detailed-exitcode`.
    Adopt,
    /// A `moved` block gave the object a new address and nothing else changes: apply does
    /// nothing in Azure. Does not count as a change for `--detailed-exitcode`.
    Move,
}

impl Action {
    /// The plan's symbol for the action.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update | Action::Move => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
            Action::Read => "<=",
            Action::NoOp => " ",
            Action::Adopt => "&",
        }
    }

    /// "will be created", ... as the text plan writes it.
    pub fn phrase(self) -> &'static str {
        match self {
            Action::Create => "will be created",
            Action::Update => "will be updated in place",
            Action::Replace => "must be replaced",
            Action::Delete => "will be destroyed",
            Action::Read => "will be read",
            Action::NoOp => "is up to date",
            Action::Adopt => "will be adopted",
            Action::Move => "has moved",
        }
    }
}

/// An attribute value as plans show it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum AttrValue {
    Bool(bool),
    Str(String),
    List(Vec<String>),
    Map(BTreeMap<String, String>),
}

/// Attribute name to value, ordered.
pub type Attrs = BTreeMap<String, AttrValue>;

/// One attribute that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttrChange {
    pub name: String,
    pub before: Option<AttrValue>,
    pub after: Option<AttrValue>,
    /// Azure cannot change this attribute in place: the object is replaced.
    pub forces_replacement: bool,
}

/// What kind of object a change is about. The serde names are the plan's `kind` strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    ResourceGroup,
    Identity,
    Federated,
    Workspace,
    Group,
    RoleAssignment,
}

impl ObjectKind {
    /// The kind as plans and their JSON name it: `resource_group`, `role_assignment`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::ResourceGroup => "resource_group",
            ObjectKind::Identity => "identity",
            ObjectKind::Federated => "federated",
            ObjectKind::Workspace => "workspace",
            ObjectKind::Group => "group",
            ObjectKind::RoleAssignment => "role_assignment",
        }
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the plan will do to one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Configuration address; for an object only found live, a description of it.
    pub address: String,
    pub kind: ObjectKind,
    /// The object in Azure: ARM id, `uniqueName` of a group, or the assignment's ARM id.
    pub azure_id: String,
    /// How the object is shown: `group "ml-fraud-data-scientists"`.
    pub display: String,
    pub action: Action,
    /// Why: the attribute that forces replacement, "adopt existing", "no longer in configuration".
    pub reason: Option<String>,
    pub before: Option<Attrs>,
    pub after: Option<Attrs>,
    /// The attributes that differ (empty for create and delete).
    pub changes: Vec<AttrChange>,
    /// For a replacement or deletion: the objects that go with it.
    pub blast_radius: Vec<String>,
    /// What apply sends (absent for deletes).
    pub desired: Option<Desired>,
    /// Live facts apply needs: object id of a group, role GUID and principal of an assignment.
    pub live_ref: LiveRef,
    /// The addresses this object depends on in the configuration's dependency graph
    /// (`DepGraph`): apply starts its write once theirs have finished. `None` in a plan saved
    /// before plans carried it; apply then runs in kind layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<String>>,
    /// The address a `moved` block says the object had before, when the live object was found
    /// under it (the change then keeps its live object: no delete and re-create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_from: Option<String>,
}

/// Live facts apply needs about a change's object, found while diffing. Serialised as the map
/// of string keys it replaced (fields in key order, absent ones left out), so saved plans keep
/// their format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveRef {
    /// A group made outside mlpolicy that this change adopts: its object id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopt_object_id: Option<String>,
    /// The object id of an existing group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// A role assignment's principal's object id, when it exists already.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    /// A role assignment's principal type, as Azure names it (`User`, `Group`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_type: Option<mlpolicy_azure::PrincipalType>,
    /// A role assignment's role definition GUID (lower case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_guid: Option<String>,
}

/// What kind of object drifted. The serde names are the plan's drift `kind` strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    RoleAssignment,
    GroupMember,
    GroupOwner,
    Attribute,
}

impl DriftKind {
    /// The kind as plans and their JSON name it: `role_assignment`, `group_member`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::RoleAssignment => "role_assignment",
            DriftKind::GroupMember => "group_member",
            DriftKind::GroupOwner => "group_owner",
            DriftKind::Attribute => "attribute",
        }
    }
}

impl std::fmt::Display for DriftKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Access that exists at a managed scope without the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// Widens access beyond the configuration (listed first, marked).
    pub widens_access: bool,
    /// What kind of object drifted.
    pub kind: DriftKind,
    /// One line: `role assignment Owner → mallory@contoso.com @ mlw-fraud-prod (not in configuration)`.
    pub summary: String,
    pub azure_id: String,
}

/// Someone gains or loses a role on a scope.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccessChange {
    pub gain: bool,
    /// Users, service principals and identities, by display name, sorted.
    pub principals: Vec<String>,
    pub role: String,
    pub scope: String,
    /// The group path that grants it (`ml-fraud-ds`, or `outer → inner`); `None` when direct.
    pub via: Option<String>,
}

/// An `allow POLICY because` that applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanWaiver {
    pub address: String,
    pub policy: String,
    pub reason: String,
}

/// Counts for the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
    /// Objects adopted: only their ownership marker is written.
    #[serde(default)]
    pub adopt: usize,
    /// Objects whose address moved (`moved` blocks) with nothing else to do.
    #[serde(default)]
    pub moved: usize,
}

impl Summary {
    /// `3 to add, 1 to change, 0 to destroy`, with `, 2 to adopt` only when there are
    /// adoptions and `, 1 moved` only when there are moves (so plans without any read as they
    /// always did).
    pub fn counts(&self) -> String {
        let mut out = format!("{} to add, {} to change, {} to destroy", self.add, self.change, self.destroy);
        if self.adopt > 0 {
            let _ = write!(out, ", {} to adopt", self.adopt);
        }
        if self.moved > 0 {
            let _ = write!(out, ", {} moved", self.moved);
        }
        out
    }
}

/// What the plan was computed from, to refuse stale or altered saved plans.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprints {
    /// SHA-256 of the configuration's files and settings.
    pub config: String,
    /// Azure id → SHA-256 of the live object as read (absent objects are not listed).
    pub live: BTreeMap<String, String>,
}

/// A plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    /// Changes in apply order (creations in dependency order, deletions last, reversed).
    pub changes: Vec<Change>,
    pub drift: Vec<Drift>,
    pub access_changes: Vec<AccessChange>,
    pub waivers: Vec<PlanWaiver>,
    /// Policy warnings and denies, one line each.
    pub policy_findings: Vec<String>,
    /// Whether a policy `deny` matched (apply refuses; exit code 3).
    pub denied: bool,
    pub summary: Summary,
    pub fingerprints: Fingerprints,
}

#[cfg(test)]
impl Change {
    /// A bare change for tests: no attributes, no live facts, no dependencies.
    pub(crate) fn for_test(address: &str, kind: ObjectKind, azure_id: &str, action: Action) -> Change {
        Change {
            address: address.into(),
            kind,
            azure_id: azure_id.into(),
            display: address.into(),
            action,
            reason: None,
            before: None,
            after: None,
            changes: vec![],
            blast_radius: vec![],
            desired: None,
            live_ref: LiveRef::default(),
            depends_on: None,
            moved_from: None,
        }
    }
}

impl Plan {
    /// Changes that do something (no-ops and adoptions left out).
    pub fn actions(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| !matches!(c.action, Action::NoOp | Action::Read | Action::Adopt | Action::Move))
    }

    /// Whether the plan changes an attribute or access (adoptions alone do not count: this is
    /// what `--detailed-exitcode` reports).
    pub fn has_changes(&self) -> bool {
        self.actions().next().is_some()
    }

    /// Whether apply has anything to write: changes, or ownership markers of adoptions.
    pub fn has_work(&self) -> bool {
        self.has_changes() || self.changes.iter().any(|c| c.action == Action::Adopt)
    }

    /// Counts of the actions.
    pub fn summarize(changes: &[Change]) -> Summary {
        let mut s = Summary::default();
        for c in changes {
            match c.action {
                Action::Create => s.add += 1,
                Action::Update => s.change += 1,
                Action::Replace => {
                    s.add += 1;
                    s.destroy += 1;
                }
                Action::Delete => s.destroy += 1,
                Action::Adopt => s.adopt += 1,
                Action::Move => s.moved += 1,
                Action::Read | Action::NoOp => {}
            }
        }
        s
    }

    /// `Plan: 3 to add, 1 to change, 0 to destroy.`, with `, 2 to adopt` when there are
    /// adoptions.
    pub fn summary_line(&self) -> String {
        format!("Plan: {}.", self.summary.counts())
    }
}

/// Everything `apply PLANFILE` needs without the configuration: the plan, the desired state it
/// was computed for, and where the tenant is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format_version: u32,
    /// `mlpolicy <version>` that wrote it.
    pub created_by: String,
    /// The configuration directory, as given to `plan`.
    pub config_dir: String,
    pub tenant: Option<String>,
    /// ARM, Graph and authority endpoints.
    pub cloud: [String; 3],
    /// Subscription ids read besides those the desired state names.
    pub subscriptions: Vec<String>,
    /// Whether it was planned against the in-process emulator.
    pub emulator: bool,
    pub desired: crate::lower::DesiredState,
    pub plan: Plan,
}

/// A saved plan on disk: the content, a SHA-256 over it and, when signed, an HMAC-SHA256
/// over the same bytes.
#[derive(Debug, Serialize, Deserialize)]
struct SavedPlanFile {
    integrity: String,
    /// `hmac-sha256:<hex>` with the key of [`PLAN_KEY_ENV`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signature: Option<String>,
    content: serde_json::Value,
}

/// The environment variable holding the key that signs saved plans.
pub const PLAN_KEY_ENV: &str = "MLPOLICY_PLAN_KEY";

/// The prefix of a saved plan's signature.
const SIGNATURE_PREFIX: &str = "hmac-sha256:";

/// The key that signs and verifies saved plans (at least 32 bytes; never printed).
#[derive(Clone)]
pub struct PlanKey(Vec<u8>);

impl std::fmt::Debug for PlanKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlanKey(***)")
    }
}

impl PlanKey {
    /// Shortest key accepted: an HMAC-SHA256 key should be as long as the hash.
    pub const MIN_BYTES: usize = 32;

    /// A key from its text; refused when shorter than [`Self::MIN_BYTES`].
    pub fn new(text: &str) -> Result<PlanKey, SavedPlanError> {
        if text.len() < Self::MIN_BYTES {
            return Err(SavedPlanError::WeakKey(text.len()));
        }
        Ok(PlanKey(text.as_bytes().to_vec()))
    }

    /// The key in [`PLAN_KEY_ENV`], if it is set and not empty.
    pub fn from_env() -> Result<Option<PlanKey>, SavedPlanError> {
        match std::env::var(PLAN_KEY_ENV) {
            Ok(text) if !text.is_empty() => PlanKey::new(&text).map(Some),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(SavedPlanError::WeakKey(0)),
        }
    }

    fn mac(&self, bytes: &[u8]) -> hmac::Hmac<sha2::Sha256> {
        use hmac::Mac as _;
        // INVARIANT: HMAC takes keys of any length.
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(bytes);
        mac
    }

    fn sign(&self, bytes: &[u8]) -> String {
        use hmac::Mac as _;
        format!("{SIGNATURE_PREFIX}{}", hex::encode(self.mac(bytes).finalize().into_bytes()))
    }

    fn verify(&self, bytes: &[u8], signature: &str) -> bool {
        use hmac::Mac as _;
        let Some(tag) = signature.strip_prefix(SIGNATURE_PREFIX).and_then(|h| hex::decode(h).ok()) else {
            return false;
        };
        // Constant time.
        self.mac(bytes).verify_slice(&tag).is_ok()
    }
}

/// Why a saved plan cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SavedPlanError {
    /// Not a plan file, or of another format version.
    Invalid(String),
    /// The content does not match its integrity hash.
    Altered,
    /// A key is set, and the plan carries no signature.
    Unsigned,
    /// A key is set, and the plan's signature is not that key's.
    BadSignature,
    /// The key is shorter than [`PlanKey::MIN_BYTES`] bytes (this many), or not text.
    WeakKey(usize),
}

impl SavedPlan {
    /// The file's text: content plus integrity hash, unsigned.
    pub fn to_file_text(&self) -> String {
        self.to_signed_file_text(None)
    }

    /// The file's text: content plus integrity hash, and a signature when `key` is given.
    pub fn to_signed_file_text(&self, key: Option<&PlanKey>) -> String {
        let content = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        let bytes = canonical_bytes(&content);
        let integrity = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        let signature = key.map(|k| k.sign(&bytes));
        let file = SavedPlanFile { integrity, signature, content };
        let mut text = serde_json::to_string_pretty(&file).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Reads a plan file's text, refusing an altered or foreign one.
    pub fn from_file_text(text: &str) -> Result<SavedPlan, SavedPlanError> {
        Self::from_signed_file_text(text, None)
    }

    /// Reads a plan file's text, refusing an altered or foreign one and, when `key` is given,
    /// one that is unsigned or signed with another key.
    pub fn from_signed_file_text(text: &str, key: Option<&PlanKey>) -> Result<SavedPlan, SavedPlanError> {
        let file: SavedPlanFile = serde_json::from_str(text)
            .map_err(|e| SavedPlanError::Invalid(format!("not an mlpolicy plan file: {e}")))?;
        let bytes = canonical_bytes(&file.content);
        if hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)) != file.integrity {
            return Err(SavedPlanError::Altered);
        }
        if let Some(key) = key {
            match &file.signature {
                None => return Err(SavedPlanError::Unsigned),
                Some(sig) if !key.verify(&bytes, sig) => return Err(SavedPlanError::BadSignature),
                Some(_) => {}
            }
        }
        let version = file.content.get("format_version").and_then(serde_json::Value::as_u64);
        if version != Some(u64::from(FORMAT_VERSION)) {
            return Err(SavedPlanError::Invalid(format!(
                "plan format version {} is not {FORMAT_VERSION}; plan again with this mlpolicy",
                version.map_or_else(|| "unknown".to_owned(), |v| v.to_string())
            )));
        }
        serde_json::from_value(file.content)
            .map_err(|e| SavedPlanError::Invalid(format!("the plan file is malformed: {e}")))
    }
}

/// The bytes the integrity hash and the signature are computed over: `serde_json`'s `Value`
/// keeps maps sorted (no `preserve_order`), so this is canonical.
fn canonical_bytes(content: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(content).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_refs_serialise_as_the_map_they_replaced() {
        let full = LiveRef {
            adopt_object_id: Some("a".into()),
            object_id: Some("o".into()),
            principal_id: Some("p".into()),
            principal_type: Some(mlpolicy_azure::PrincipalType::ServicePrincipal),
            role_guid: Some("r".into()),
        };
        let map = BTreeMap::from([
            ("role_guid".to_owned(), "r".to_owned()),
            ("principal_type".to_owned(), "ServicePrincipal".to_owned()),
            ("principal_id".to_owned(), "p".to_owned()),
            ("object_id".to_owned(), "o".to_owned()),
            ("adopt_object_id".to_owned(), "a".to_owned()),
        ]);
        assert_eq!(serde_json::to_string(&full).unwrap(), serde_json::to_string(&map).unwrap());
        assert_eq!(serde_json::to_string_pretty(&full).unwrap(), serde_json::to_string_pretty(&map).unwrap());
        let group = LiveRef { object_id: Some("o".into()), ..LiveRef::default() };
        assert_eq!(serde_json::to_string(&group).unwrap(), r#"{"object_id":"o"}"#);
        assert_eq!(serde_json::to_string(&LiveRef::default()).unwrap(), "{}");
        let user = LiveRef { principal_type: Some(mlpolicy_azure::PrincipalType::User), ..LiveRef::default() };
        assert_eq!(serde_json::to_string(&user).unwrap(), r#"{"principal_type":"User"}"#);
        let group_type = LiveRef { principal_type: Some(mlpolicy_azure::PrincipalType::Group), ..LiveRef::default() };
        assert_eq!(serde_json::to_string(&group_type).unwrap(), r#"{"principal_type":"Group"}"#);
        // Old maps read back.
        let back: LiveRef = serde_json::from_str(&serde_json::to_string(&map).unwrap()).unwrap();
        assert_eq!(back, full);
        assert_eq!(serde_json::from_str::<LiveRef>("{}").unwrap(), LiveRef::default());
    }

    #[test]
    fn drift_kinds_serialise_as_their_names() {
        for k in [DriftKind::RoleAssignment, DriftKind::GroupMember, DriftKind::GroupOwner, DriftKind::Attribute] {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
            assert_eq!(serde_json::from_str::<DriftKind>(&json).unwrap(), k);
        }
        assert_eq!(DriftKind::GroupOwner.to_string(), "group_owner");
    }

    #[test]
    fn object_kinds_serialise_as_their_names() {
        let all = [
            ObjectKind::ResourceGroup,
            ObjectKind::Identity,
            ObjectKind::Federated,
            ObjectKind::Workspace,
            ObjectKind::Group,
            ObjectKind::RoleAssignment,
        ];
        for k in all {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
            assert_eq!(serde_json::from_str::<ObjectKind>(&json).unwrap(), k);
        }
        assert_eq!(ObjectKind::RoleAssignment.to_string(), "role_assignment");
    }

    fn saved() -> SavedPlan {
        SavedPlan {
            format_version: FORMAT_VERSION,
            created_by: "mlpolicy test".into(),
            config_dir: ".".into(),
            tenant: None,
            cloud: ["a".into(), "b".into(), "c".into()],
            subscriptions: vec![],
            emulator: true,
            desired: crate::lower::DesiredState::default(),
            plan: Plan {
                format_version: FORMAT_VERSION,
                changes: vec![],
                drift: vec![],
                access_changes: vec![],
                waivers: vec![],
                policy_findings: vec![],
                denied: false,
                summary: Summary::default(),
                fingerprints: Fingerprints::default(),
            },
        }
    }

    #[test]
    fn saved_plans_round_trip_and_detect_alteration() {
        let text = saved().to_file_text();
        assert_eq!(SavedPlan::from_file_text(&text), Ok(saved()));
        let altered = text.replace("mlpolicy test", "mlpolicy evil");
        assert_eq!(SavedPlan::from_file_text(&altered), Err(SavedPlanError::Altered));
        assert!(matches!(SavedPlan::from_file_text("{}"), Err(SavedPlanError::Invalid(_))));
        assert!(matches!(SavedPlan::from_file_text("\u{0}garbage"), Err(SavedPlanError::Invalid(_))));
    }

    #[test]
    fn signed_plans_verify_with_their_key_only() {
        let key = PlanKey::new("0123456789abcdef0123456789abcdef").unwrap();
        let other = PlanKey::new("fedcba9876543210fedcba9876543210").unwrap();
        let signed = saved().to_signed_file_text(Some(&key));
        assert!(signed.contains("\"signature\": \"hmac-sha256:"), "{signed}");
        assert_eq!(SavedPlan::from_signed_file_text(&signed, Some(&key)), Ok(saved()));
        assert_eq!(SavedPlan::from_signed_file_text(&signed, Some(&other)), Err(SavedPlanError::BadSignature));
        // Without a key a signed plan reads as any plan; with one, an unsigned plan is refused.
        assert_eq!(SavedPlan::from_file_text(&signed), Ok(saved()));
        let unsigned = saved().to_file_text();
        assert!(!unsigned.contains("signature"));
        assert_eq!(SavedPlan::from_signed_file_text(&unsigned, Some(&key)), Err(SavedPlanError::Unsigned));
        // Content edited and the hash recomputed: the signature no longer verifies.
        let mut forged = saved();
        forged.created_by = "mlpolicy evil".into();
        let mut text = forged.to_file_text();
        let sig = signed.lines().find(|l| l.contains("\"signature\"")).unwrap();
        text = text.replacen("{\n", &format!("{{\n{sig}\n"), 1);
        assert_eq!(SavedPlan::from_signed_file_text(&text, Some(&key)), Err(SavedPlanError::BadSignature));
        let garbage = signed.replace("hmac-sha256:", "hmac-sha256:zz");
        assert_eq!(SavedPlan::from_signed_file_text(&garbage, Some(&key)), Err(SavedPlanError::BadSignature));
        assert_eq!(PlanKey::new("short").unwrap_err(), SavedPlanError::WeakKey(5));
        assert_eq!(format!("{key:?}"), "PlanKey(***)");
    }
}
