//! Saved plans: refusing altered or invalid (E0704), unsigned or badly signed (E0707), stale
//! (E0703) ones, and any whose changes differ from the plan re-derived now (E0706).
//!
//! `apply PLANFILE` does not trust the file's changes: it compiles the configuration the plan
//! names, reads the tenant, plans again (policies included) and applies what it re-derived,
//! after [`check_saved`] has found it equal to what was saved. An edited plan — a role GUID
//! swapped for Owner's, a member added, the integrity hash recomputed — is refused, and nothing
//! is applied that the configuration does not say.

use std::collections::{BTreeMap, BTreeSet};

use crate::Planned;
use crate::lower::{Desired, DesiredState};
use crate::plan::{Change, ObjectKind, PLAN_KEY_ENV, Plan, PlanKey, SavedPlan, SavedPlanError};
use mlpolicy_lang::diagnostics::{Code, Diagnostic};
use mlpolicy_vocab::arm::canonical;

/// Why a saved plan cannot be applied (E0704 altered or invalid, E0707 signature).
pub fn saved_plan_error(path: &str, e: &SavedPlanError) -> Diagnostic {
    match e {
        SavedPlanError::Altered => {
            Diagnostic::error(Code::E0704, format!("the plan file `{path}` was altered after it was written"))
                .with_help("a saved plan is applied exactly as reviewed; run `mlpolicy plan --out` again")
        }
        SavedPlanError::Invalid(m) => Diagnostic::error(Code::E0704, format!("`{path}` cannot be applied: {m}"))
            .with_help("pass a file written by `mlpolicy plan --out`, or a configuration directory"),
        SavedPlanError::Unsigned => {
            Diagnostic::error(Code::E0707, format!("the plan file `{path}` is not signed, and {PLAN_KEY_ENV} is set"))
                .with_help(format!("write the plan with `mlpolicy plan --out` where {PLAN_KEY_ENV} holds the same key"))
        }
        SavedPlanError::BadSignature => Diagnostic::error(
            Code::E0707,
            format!("the signature of the plan file `{path}` does not match the key in {PLAN_KEY_ENV}"),
        )
        .with_help("the plan was changed after it was signed, or signed with another key; plan again and review"),
        SavedPlanError::WeakKey(n) => Diagnostic::error(
            Code::E0707,
            format!("{PLAN_KEY_ENV} holds {n} bytes; a plan key needs at least {} bytes of text", PlanKey::MIN_BYTES),
        )
        .with_help("generate one with `openssl rand -hex 32` and keep it in the CI secret store"),
    }
}

/// Refuses a saved plan that is stale (E0703: the configuration or a live object it was
/// computed from changed) or that differs in anything from `now`, the plan re-derived from the
/// configuration and the live tenant (E0706).
pub fn check_saved(saved: &SavedPlan, path: &str, now: &Planned) -> Result<(), Box<Diagnostic>> {
    if now.plan.fingerprints.config != saved.plan.fingerprints.config {
        return Err(Box::new(
            Diagnostic::error(
                Code::E0703,
                format!("the plan is stale: the configuration in `{}` changed since it was planned", saved.config_dir),
            )
            .with_help("run `mlpolicy plan --out` again, with the same `--var` options, and review the new plan"),
        ));
    }
    let changed = stale_objects(&saved.plan, &now.plan);
    if !changed.is_empty() {
        return Err(Box::new(
            Diagnostic::error(
                Code::E0703,
                format!(
                    "the plan is stale: {} object(s) changed since it was planned: {}",
                    changed.len(),
                    changed.into_iter().collect::<Vec<_>>().join(", ")
                ),
            )
            .with_help("run `mlpolicy plan --out` again and review the new plan"),
        ));
    }
    let differences = differences(saved, now);
    if differences.is_empty() {
        return Ok(());
    }
    Err(Box::new(
        Diagnostic::error(
            Code::E0706,
            format!(
                "the plan file `{path}` does not say what the configuration and the tenant give now: {}",
                differences.join("; ")
            ),
        )
        .with_help(
            "apply re-derives every saved plan and applies only what it re-derived; this file was edited after \
             `mlpolicy plan --out` wrote it. Nothing was applied: plan again and review",
        ),
    ))
}

/// The objects whose live fingerprint differs between the saved plan and now, by the address
/// reviewers know, each once. A key that is absent on one side and not listed on the other
/// names no live object either way (a role assignment whose principal now exists is keyed by
/// its object id instead of its name): it is no change.
fn stale_objects(saved: &Plan, now: &Plan) -> BTreeSet<String> {
    let before = &saved.fingerprints.live;
    let after = &now.fingerprints.live;
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter(|k| {
            let (b, a) = (before.get(*k).map(String::as_str), after.get(*k).map(String::as_str));
            b != a && !matches!((b, a), (Some("absent"), None) | (None, Some("absent")))
        })
        .map(|k| describe_key(&[saved, now], k))
        .collect()
}

/// A fingerprint key as reviewers know it: the address of a change of either plan, else the key.
fn describe_key(plans: &[&Plan], key: &str) -> String {
    for plan in plans {
        let by_id = plan.changes.iter().find(|c| {
            canonical(&c.azure_id) == *key || (c.kind == ObjectKind::Group && c.azure_id.eq_ignore_ascii_case(key))
        });
        if let Some(c) = by_id {
            return c.address.clone();
        }
    }
    let mut parts = key.splitn(3, '|');
    if let (Some(scope), Some(role), Some(principal)) = (parts.next(), parts.next(), parts.next()) {
        for plan in plans {
            let assignment = plan.changes.iter().find(|c| {
                matches!(&c.desired, Some(Desired::RoleAssignment(r))
                    if r.scope == scope
                        && (c.live_ref.principal_id.as_deref() == Some(principal)
                            || principal.strip_prefix("new:") == Some(r.principal.display())))
                    && c.live_ref.role_guid.as_deref() == Some(role)
            });
            if let Some(c) = assignment {
                return c.address.clone();
            }
        }
    }
    key.to_owned()
}

/// What differs between the saved plan and the one re-derived now, one phrase each: changes
/// by address (and which of their parts), desired objects, and the plan's other sections.
fn differences(saved: &SavedPlan, now: &Planned) -> Vec<String> {
    let mut out = change_differences(&saved.plan.changes, &now.plan.changes);
    out.extend(desired_differences(&saved.desired, &now.desired));
    let (s, n) = (&saved.plan, &now.plan);
    let sections: [(&str, bool); 6] = [
        ("its drift differs", s.drift == n.drift),
        ("its access changes differ", s.access_changes == n.access_changes),
        ("its waivers differ", s.waivers == n.waivers),
        ("its policy findings differ", s.policy_findings == n.policy_findings),
        ("its policy verdict differs", s.denied == n.denied),
        ("its summary differs", s.summary == n.summary && s.format_version == n.format_version),
    ];
    out.extend(sections.iter().filter(|(_, same)| !same).map(|(what, _)| (*what).to_owned()));
    out
}

fn change_differences(saved: &[Change], now: &[Change]) -> Vec<String> {
    let saved_by: BTreeMap<&str, &Change> = saved.iter().map(|c| (c.address.as_str(), c)).collect();
    let now_by: BTreeMap<&str, &Change> = now.iter().map(|c| (c.address.as_str(), c)).collect();
    let mut out = Vec::new();
    for (address, c) in &saved_by {
        match now_by.get(address) {
            None => out.push(format!("`{address}` ({}) is in the saved plan only", c.action.phrase())),
            Some(n) if n != c => {
                let mut parts = Vec::new();
                if c.action != n.action {
                    parts.push("action");
                }
                if c.desired != n.desired {
                    parts.push("what apply sends");
                }
                if c.live_ref != n.live_ref || c.azure_id != n.azure_id {
                    parts.push("the live ids apply uses");
                }
                if c.before != n.before || c.after != n.after || c.changes != n.changes {
                    parts.push("attributes");
                }
                if parts.is_empty() {
                    parts.push("details");
                }
                out.push(format!("`{address}` differs in {}", parts.join(", ")));
            }
            Some(_) => {}
        }
    }
    for (address, c) in &now_by {
        if !saved_by.contains_key(address) {
            out.push(format!("`{address}` ({}) is missing from the saved plan", c.action.phrase()));
        }
    }
    if out.is_empty() && saved.iter().map(|c| &c.address).ne(now.iter().map(|c| &c.address)) {
        out.push("the order of its changes differs".to_owned());
    }
    out
}

fn desired_differences(saved: &DesiredState, now: &DesiredState) -> Vec<String> {
    let mut out = Vec::new();
    if saved.owner != now.owner {
        out.push("its ownership marker differs".to_owned());
    }
    let keys: BTreeSet<&String> = saved.objects.keys().chain(now.objects.keys()).collect();
    for k in keys {
        if saved.objects.get(k) != now.objects.get(k) {
            out.push(format!("the desired state of `{k}` differs"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::{DesiredRoleAssignment, PrincipalRef};
    use crate::plan::{Action, Fingerprints, LiveRef, Summary};

    fn plan(changes: Vec<Change>, live: &[(&str, &str)]) -> Plan {
        Plan {
            format_version: crate::plan::FORMAT_VERSION,
            changes,
            drift: vec![],
            access_changes: vec![],
            waivers: vec![],
            policy_findings: vec![],
            denied: false,
            summary: Summary::default(),
            fingerprints: Fingerprints {
                config: "c".into(),
                live: live.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            },
        }
    }

    fn change(address: &str, kind: ObjectKind, azure_id: &str) -> Change {
        Change::for_test(address, kind, azure_id, Action::Create)
    }

    fn grant(principal_id: Option<&str>) -> Change {
        let mut c = change("grant.reader", ObjectKind::RoleAssignment, "/subscriptions/s/x");
        c.desired = Some(Desired::RoleAssignment(DesiredRoleAssignment {
            scope: "/subscriptions/s".into(),
            scope_display: "sub s".into(),
            role: "Reader".into(),
            principal: PrincipalRef::Group {
                address: "group.ds".into(),
                unique_name: "mlpolicy.t.ds".into(),
                display_name: "ml-ds".into(),
            },
            description: "d".into(),
            condition: None,
        }));
        c.live_ref = LiveRef {
            role_guid: Some("r".into()),
            principal_id: principal_id.map(str::to_owned),
            ..LiveRef::default()
        };
        c
    }

    #[test]
    fn a_group_made_by_hand_is_one_stale_object_not_three() {
        let old_key = "/subscriptions/s|r|new:ml-ds";
        let saved = plan(
            vec![change("group.ds", ObjectKind::Group, "mlpolicy.t.ds"), grant(None)],
            &[("mlpolicy.t.ds", "absent"), (old_key, "absent")],
        );
        let now = plan(
            vec![change("group.ds", ObjectKind::Group, "mlpolicy.t.ds"), grant(Some("oid"))],
            &[("mlpolicy.t.ds", "f00d"), ("/subscriptions/s|r|oid", "absent")],
        );
        let stale = stale_objects(&saved, &now);
        assert_eq!(stale.into_iter().collect::<Vec<_>>(), ["group.ds"]);
        // The same address reached through two keys is counted once.
        let now = plan(
            vec![change("group.ds", ObjectKind::Group, "mlpolicy.t.ds"), grant(Some("oid"))],
            &[("mlpolicy.t.ds", "f00d"), ("/subscriptions/s|r|oid", "beef")],
        );
        assert_eq!(stale_objects(&saved, &now).into_iter().collect::<Vec<_>>(), ["grant.reader", "group.ds"]);
    }

    #[test]
    fn differences_name_the_change_and_what_differs() {
        let mut forged = grant(Some("oid"));
        forged.live_ref.role_guid = Some("8e3af657-a8ff-443c-a75c-2fe8c4bcb635".into());
        let extra = change("group.extra", ObjectKind::Group, "mlpolicy.t.extra");
        let d = change_differences(&[forged, extra], &[grant(Some("oid"))]);
        assert_eq!(
            d,
            [
                "`grant.reader` differs in the live ids apply uses",
                "`group.extra` (will be created) is in the saved plan only"
            ]
        );
        assert!(change_differences(&[grant(None)], &[grant(None)]).is_empty());
        let d = change_differences(&[], &[grant(None)]);
        assert_eq!(d, ["`grant.reader` (will be created) is missing from the saved plan"]);
    }
}
