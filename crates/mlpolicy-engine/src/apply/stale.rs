//! Saved plans: refusing stale (E0703), altered or invalid (E0704) ones.

use std::collections::{BTreeMap, BTreeSet};

use crate::diff::{DiffInput, DiffOptions};
use crate::lower::Desired;
use crate::plan::{ObjectKind, SavedPlan, SavedPlanError};
use mlpolicy_azure::AzureClient;
use mlpolicy_lang::diagnostics::{Code, Diagnostic};
use mlpolicy_vocab::arm::canonical;

/// Why a saved plan cannot be applied (E0703 stale, E0704 altered or invalid).
pub fn saved_plan_error(path: &str, e: &SavedPlanError) -> Diagnostic {
    match e {
        SavedPlanError::Altered => {
            Diagnostic::error(Code::E0704, format!("the plan file `{path}` was altered after it was written"))
                .with_help("a saved plan is applied exactly as reviewed; run `mlpolicy plan --out` again")
        }
        SavedPlanError::Invalid(m) => Diagnostic::error(Code::E0704, format!("`{path}` cannot be applied: {m}"))
            .with_help("pass a file written by `mlpolicy plan --out`, or a configuration directory"),
    }
}

/// Refuses a saved plan whose live objects or configuration changed since it was made (E0703).
/// `config_fingerprint` is the configuration's fingerprint now, when its directory still exists.
pub async fn check_stale(
    saved: &SavedPlan,
    client: &AzureClient,
    options: &DiffOptions,
    config_fingerprint: Option<&str>,
) -> Result<(), Box<Diagnostic>> {
    if let Some(now) = config_fingerprint
        && now != saved.plan.fingerprints.config
    {
        return Err(Box::new(
            Diagnostic::error(
                Code::E0703,
                format!("the plan is stale: the configuration in `{}` changed since it was planned", saved.config_dir),
            )
            .with_help("run `mlpolicy plan --out` again, with the same `--var` options, and review the new plan"),
        ));
    }
    let live = crate::live::read(client, &saved.desired, &saved.subscriptions).await.map_err(Box::new)?;
    let order: Vec<String> = saved.desired.objects.keys().cloned().collect();
    let spans = BTreeMap::new();
    let dependents = BTreeMap::new();
    let input = DiffInput {
        order: &order,
        spans: &spans,
        dependents: &dependents,
        waivers: Vec::new(),
        policy_findings: Vec::new(),
        denied: false,
        config_fingerprint: String::new(),
        options,
    };
    let (now, _) = crate::diff::diff(&saved.desired, &live, &input);
    let before = &saved.plan.fingerprints.live;
    let after = &now.fingerprints.live;
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let changed: Vec<String> =
        keys.into_iter().filter(|k| before.get(*k) != after.get(*k)).map(|k| describe_key(saved, k)).collect();
    if changed.is_empty() {
        return Ok(());
    }
    Err(Box::new(
        Diagnostic::error(
            Code::E0703,
            format!(
                "the plan is stale: {} object(s) changed since it was planned: {}",
                changed.len(),
                changed.join(", ")
            ),
        )
        .with_help("run `mlpolicy plan --out` again and review the new plan"),
    ))
}

/// A fingerprint key as reviewers know it: the address of the plan's change, else the key.
fn describe_key(saved: &SavedPlan, key: &str) -> String {
    let by_id = saved.plan.changes.iter().find(|c| {
        canonical(&c.azure_id) == *key || (c.kind == ObjectKind::Group && c.azure_id.eq_ignore_ascii_case(key))
    });
    if let Some(c) = by_id {
        return c.address.clone();
    }
    let mut parts = key.split('|');
    if let (Some(scope), Some(role)) = (parts.next(), parts.next())
        && let Some(c) = saved.plan.changes.iter().find(|c| {
            matches!(&c.desired, Some(Desired::RoleAssignment(r)) if r.scope == scope)
                && c.live_ref.role_guid.as_deref() == Some(role)
        })
    {
        return c.address.clone();
    }
    key.to_owned()
}
