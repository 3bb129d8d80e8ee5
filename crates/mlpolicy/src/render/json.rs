//! The plan as the JSON of `docs/plan-json.md`, version [`FORMAT_VERSION`].
//!
//! The output has its own structs rather than serialising [`Plan`] itself: field order is the
//! structs' order, maps are `BTreeMap`s, so the bytes are stable, and a new internal field of
//! the plan never leaks into the schema. The internals `desired`, `live_ref` and `fingerprints`
//! are for saved plans and are left out. No-op changes are left out; read-only changes are in.

use schemars::JsonSchema;
use serde::Serialize;

use super::shown;
use mlpolicy_engine::plan::{Action, AttrValue, Attrs, FORMAT_VERSION, Plan};

/// The plan of `mlpolicy plan --format json` and `mlpolicy show PLANFILE --format json`
/// (docs/plan-json.md). Keys appear in this order and are always present.
#[derive(Serialize, JsonSchema)]
#[schemars(title = "mlpolicy plan")]
pub(crate) struct JsonPlan<'a> {
    /// Schema version: check it first and refuse versions you do not know.
    #[schemars(extend("const" = 1))]
    format_version: u32,
    /// The counts of the summary line.
    summary: JsonSummary,
    /// One entry per object the plan acts on, in apply order (no-ops left out).
    changes: Vec<JsonChange<'a>>,
    /// Access or attributes at managed scopes that the configuration does not describe.
    drift: Vec<JsonDrift<'a>>,
    /// Who gains or loses which role where.
    access_changes: Vec<JsonAccess<'a>>,
    /// `allow POLICY because` exceptions that apply to this plan.
    waivers: Vec<JsonWaiver<'a>>,
    /// Policy warnings and denies, one line each, as the text plan prints them.
    policy_findings: &'a [String],
    /// A policy `deny` matched: apply refuses and `plan` exits with 3.
    denied: bool,
}

/// The numbers of `Plan: 1 to add, 0 to change, 1 to destroy.`
#[derive(Serialize, JsonSchema)]
struct JsonSummary {
    /// Objects created, replacements included.
    add: usize,
    /// Objects updated in place.
    change: usize,
    /// Objects destroyed, replacements included.
    destroy: usize,
    /// Objects adopted: made outside mlpolicy, only their ownership marker is written.
    adopt: usize,
    /// Objects whose configuration address changed through a `moved` block, with nothing to do
    /// in Azure.
    moved: usize,
}

/// One object the plan acts on.
#[derive(Serialize, JsonSchema)]
struct JsonChange<'a> {
    /// Configuration address; for an object found only live, a description of it.
    address: &'a str,
    /// `resource_group`, `identity`, `federated`, `workspace`, `group`, `role_assignment` (open-ended).
    kind: &'a str,
    /// The object in Azure: ARM id, a group's `uniqueName`, or a role assignment's ARM id.
    azure_id: &'a str,
    /// `create`, `update`, `replace`, `delete`, `adopt`, `move` or `read` (open-ended: treat others as "something else").
    action: &'static str,
    /// Why: the attribute that forces a replacement, `no longer in configuration`, ...
    reason: Option<&'a str>,
    /// Attributes as live now (`null` for a create).
    before: Option<&'a Attrs>,
    /// Attributes after apply (`null` for a delete).
    after: Option<&'a Attrs>,
    /// The attributes that differ (empty for create and delete).
    changes: Vec<JsonAttrChange<'a>>,
    /// For `replace` and `delete`: the objects that go with it.
    blast_radius: &'a [String],
    /// The address a `moved` block says the object had before, when the live object was found
    /// under it; `null` otherwise.
    moved_from: Option<&'a str>,
}

/// One attribute that differs.
#[derive(Serialize, JsonSchema)]
struct JsonAttrChange<'a> {
    /// Attribute name (`members`, `description`, `location`, `tags`, ...).
    name: &'a str,
    /// `null` when the attribute appears.
    before: Option<&'a AttrValue>,
    /// `null` when the attribute disappears.
    after: Option<&'a AttrValue>,
    /// Azure cannot change it in place: this is why the object is replaced.
    forces_replacement: bool,
}

/// Something live at a managed scope that the configuration does not describe.
#[derive(Serialize, JsonSchema)]
struct JsonDrift<'a> {
    /// `role_assignment`, `group_member`, `group_owner`, `attribute` (open-ended).
    kind: &'a str,
    /// One line for people.
    summary: &'a str,
    /// The drifted object in Azure.
    azure_id: &'a str,
    /// The drift gives someone access the configuration does not.
    widens_access: bool,
}

/// Who gains or loses a role on a scope.
#[derive(Serialize, JsonSchema)]
struct JsonAccess<'a> {
    /// `gain` or `lose`.
    #[schemars(extend("enum" = ["gain", "lose"]))]
    change: &'static str,
    /// Users, service principals and identities by display name, sorted.
    principals: &'a [String],
    /// Role definition name.
    role: &'a str,
    /// The scope as reviewers know it.
    scope: &'a str,
    /// The group path that grants it (`outer → inner`); `null` when direct.
    via: Option<&'a str>,
}

/// A policy exception that applies to this plan.
#[derive(Serialize, JsonSchema)]
struct JsonWaiver<'a> {
    /// The declaration the exception is for.
    address: &'a str,
    /// The policy it is excepted from.
    policy: &'a str,
    /// The text after `because`.
    reason: &'a str,
}

/// The schema's name of an action.
fn action_name(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Update => "update",
        Action::Replace => "replace",
        Action::Delete => "delete",
        Action::Read => "read",
        Action::NoOp => "no-op",
        Action::Adopt => "adopt",
        Action::Move => "move",
    }
}

/// Renders the plan as pretty-printed JSON, ending with a newline.
pub fn json(plan: &Plan) -> String {
    let doc = JsonPlan {
        format_version: FORMAT_VERSION,
        summary: JsonSummary {
            add: plan.summary.add,
            change: plan.summary.change,
            destroy: plan.summary.destroy,
            adopt: plan.summary.adopt,
            moved: plan.summary.moved,
        },
        changes: shown(plan)
            .map(|c| JsonChange {
                address: &c.address,
                kind: c.kind.as_str(),
                azure_id: &c.azure_id,
                action: action_name(c.action),
                reason: c.reason.as_deref(),
                before: c.before.as_ref(),
                after: c.after.as_ref(),
                changes: c
                    .changes
                    .iter()
                    .map(|a| JsonAttrChange {
                        name: &a.name,
                        before: a.before.as_ref(),
                        after: a.after.as_ref(),
                        forces_replacement: a.forces_replacement,
                    })
                    .collect(),
                blast_radius: &c.blast_radius,
                moved_from: c.moved_from.as_deref(),
            })
            .collect(),
        drift: plan
            .drift
            .iter()
            .map(|d| JsonDrift {
                kind: d.kind.as_str(),
                summary: &d.summary,
                azure_id: &d.azure_id,
                widens_access: d.widens_access,
            })
            .collect(),
        access_changes: plan
            .access_changes
            .iter()
            .map(|a| JsonAccess {
                change: if a.gain { "gain" } else { "lose" },
                principals: &a.principals,
                role: &a.role,
                scope: &a.scope,
                via: a.via.as_deref(),
            })
            .collect(),
        waivers: plan
            .waivers
            .iter()
            .map(|w| JsonWaiver { address: &w.address, policy: &w.policy, reason: &w.reason })
            .collect(),
        policy_findings: &plan.policy_findings,
        denied: plan.denied,
    };
    // INVARIANT: every field is a string, number, bool, list or string-keyed map.
    let mut out = serde_json::to_string_pretty(&doc).expect("plan JSON serialises");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use super::*;
    use crate::render::fixtures;

    #[test]
    fn snapshots() {
        for (name, plan) in fixtures::all() {
            assert_snapshot!(name, json(&plan));
        }
    }

    #[test]
    fn parses_back_with_the_version_and_without_internals() {
        for (name, plan) in fixtures::all() {
            let v: serde_json::Value = serde_json::from_str(&json(&plan)).unwrap();
            assert_eq!(v["format_version"], 1, "{name}");
            let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
            let mut expected = [
                "format_version",
                "summary",
                "changes",
                "drift",
                "access_changes",
                "waivers",
                "policy_findings",
                "denied",
            ];
            expected.sort_unstable();
            assert_eq!(keys, expected, "{name}");
            for c in v["changes"].as_array().unwrap() {
                assert!(c.get("desired").is_none() && c.get("live_ref").is_none());
                assert_ne!(c["action"], "no-op");
            }
        }
    }

    #[test]
    fn key_order_is_the_documented_one() {
        let out = json(&fixtures::cli_example());
        let at = |k: &str| out.find(&format!("\"{k}\":")).unwrap();
        assert!(at("format_version") < at("summary"));
        assert!(at("summary") < at("changes"));
        assert!(at("changes") < at("drift"));
        assert!(at("drift") < at("access_changes"));
        assert!(at("access_changes") < at("waivers"));
        assert!(at("waivers") < at("policy_findings"));
        assert!(at("policy_findings") < at("denied"));
    }
}
