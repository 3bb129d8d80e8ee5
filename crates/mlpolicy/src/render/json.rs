//! The plan as the JSON of `docs/plan-json.md`, version [`FORMAT_VERSION`].
//!
//! The output has its own structs rather than serialising [`Plan`] itself: field order is the
//! structs' order, maps are `BTreeMap`s, so the bytes are stable, and a new internal field of
//! the plan never leaks into the schema. The internals `desired`, `live_ref` and `fingerprints`
//! are for saved plans and are left out. No-op changes are left out; read-only changes are in.

use serde::Serialize;

use super::shown;
use mlpolicy_engine::plan::{Action, AttrValue, Attrs, FORMAT_VERSION, Plan};

#[derive(Serialize)]
struct JsonPlan<'a> {
    format_version: u32,
    summary: JsonSummary,
    changes: Vec<JsonChange<'a>>,
    drift: Vec<JsonDrift<'a>>,
    access_changes: Vec<JsonAccess<'a>>,
    waivers: Vec<JsonWaiver<'a>>,
    policy_findings: &'a [String],
    denied: bool,
}

#[derive(Serialize)]
struct JsonSummary {
    add: usize,
    change: usize,
    destroy: usize,
    adopt: usize,
    moved: usize,
}

#[derive(Serialize)]
struct JsonChange<'a> {
    address: &'a str,
    kind: &'a str,
    azure_id: &'a str,
    action: &'static str,
    reason: Option<&'a str>,
    before: Option<&'a Attrs>,
    after: Option<&'a Attrs>,
    changes: Vec<JsonAttrChange<'a>>,
    blast_radius: &'a [String],
    moved_from: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonAttrChange<'a> {
    name: &'a str,
    before: Option<&'a AttrValue>,
    after: Option<&'a AttrValue>,
    forces_replacement: bool,
}

#[derive(Serialize)]
struct JsonDrift<'a> {
    kind: &'a str,
    summary: &'a str,
    azure_id: &'a str,
    widens_access: bool,
}

#[derive(Serialize)]
struct JsonAccess<'a> {
    change: &'static str,
    principals: &'a [String],
    role: &'a str,
    scope: &'a str,
    via: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonWaiver<'a> {
    address: &'a str,
    policy: &'a str,
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
