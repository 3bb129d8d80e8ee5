//! From a compiled configuration to Azure and back: lower (model → desired state), live read,
//! diff, the plan as data, effective access, apply, audit and export; role names and GUIDs.

pub mod access;
pub mod apply;
pub mod audit;
pub mod diff;
pub mod export;
pub mod limits;
pub mod live;
pub mod lower;
pub mod plan;
pub mod roles;

use std::collections::BTreeMap;

use mlpolicy_azure as azure;
use mlpolicy_lang::Compiled;
use mlpolicy_lang::diagnostics::Diagnostics;
use mlpolicy_lang::settings::Overrides;
use mlpolicy_lang::source;

/// The outcome of planning: the plan, the desired state it was computed for, and the
/// diagnostics of the live stages (unknown users, safety rails).
#[derive(Debug)]
pub struct Planned {
    pub plan: plan::Plan,
    pub desired: lower::DesiredState,
    pub diagnostics: Diagnostics,
}

/// SHA-256 over every file the configuration was compiled from, and the `--var` overrides.
pub fn config_fingerprint(compiled: &Compiled, overrides: &Overrides) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for f in &compiled.sources.files {
        h.update(f.name.as_bytes());
        h.update([0]);
        h.update(f.text.as_bytes());
        h.update([0]);
    }
    for v in &overrides.vars {
        h.update(v.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// live → diff: reads the tenant and computes the plan of a compiled configuration.
pub async fn plan(
    compiled: &Compiled,
    overrides: &Overrides,
    client: &azure::AzureClient,
    options: &diff::DiffOptions,
) -> Result<Planned, Diagnostics> {
    let owner = compiled.settings.owner.clone().unwrap_or_else(|| lower::DEFAULT_OWNER.to_owned());
    let desired = lower::lower(&compiled.model, &owner);
    let subscriptions: Vec<String> = compiled.settings.subscriptions.values().cloned().collect();
    let live = live::read(client, &desired, &subscriptions).await.map_err(Diagnostics::from)?;
    let order: Vec<String> = match &compiled.graph {
        Some(g) => g.creation_order().map(ToString::to_string).collect(),
        None => desired.objects.keys().cloned().collect(),
    };
    let spans: BTreeMap<String, source::Span> =
        compiled.model.metas().map(|m| (m.address.to_string(), m.name_span)).collect();
    // Each declaration's dependencies, asked of the graph once: diff wants them the other way
    // round (what depends on an object), apply as they are (`Change::depends_on`).
    // In creation order, so that each `dependents` list keeps that order.
    let dependencies: Vec<(String, Vec<String>)> = match &compiled.graph {
        Some(g) => g
            .creation_order()
            .map(|a| (a.to_string(), g.dependencies(a).into_iter().map(ToString::to_string).collect()))
            .collect(),
        None => Vec::new(),
    };
    let mut dependents: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (address, deps) in &dependencies {
        for dep in deps {
            dependents.entry(dep.clone()).or_default().push(address.clone());
        }
    }
    let waivers = compiled
        .model
        .metas()
        .flat_map(|m| {
            m.waivers.iter().map(|w| plan::PlanWaiver {
                address: m.address.to_string(),
                policy: w.policy.clone(),
                reason: w.reason.clone(),
            })
        })
        .collect();
    let policy_findings = compiled
        .evaluation
        .violations
        .iter()
        .map(|v| {
            let word = if v.effect == mlpolicy_lang::ast::Effect::Deny { "deny" } else { "warn" };
            format!("{word}: {} — {}", v.headline(), v.explanation())
        })
        .collect();
    let input = diff::DiffInput {
        order: &order,
        spans: &spans,
        dependents: &dependents,
        waivers,
        policy_findings,
        denied: compiled.evaluation.denied > 0,
        config_fingerprint: config_fingerprint(compiled, overrides),
        options,
    };
    let (mut plan, mut diagnostics) = diff::diff(&desired, &live, &input);
    let aliases: BTreeMap<String, String> =
        compiled.settings.subscriptions.iter().map(|(alias, id)| (id.to_ascii_lowercase(), alias.clone())).collect();
    diagnostics.extend(limits::check(&plan, &live, &aliases, &spans));
    if compiled.graph.is_some() {
        let by_address: std::collections::HashMap<&str, &Vec<String>> =
            dependencies.iter().map(|(a, deps)| (a.as_str(), deps)).collect();
        for c in &mut plan.changes {
            c.depends_on = by_address.get(c.address.as_str()).map(|deps| (*deps).clone());
        }
    }
    Ok(Planned { plan, desired, diagnostics })
}
