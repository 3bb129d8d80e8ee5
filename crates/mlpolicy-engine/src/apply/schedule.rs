//! Scheduling: orders a plan's changes into dependency layers, runs each layer with bounded
//! parallelism, and skips what depends on a failed object.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::audit_log::Audit;
use super::execute::{OpOutput, Shared};
use super::lockout::check_self_lockout;
use super::{ApplyEvent, ApplyOptions, ApplyReport, Done, failure, finish};
use crate::lower::{Desired, DesiredState, PrincipalRef};
use crate::plan::{Action, Change, ObjectKind};
use mlpolicy_azure::{AzureClient, AzureError};
use mlpolicy_vocab::arm::canonical;

/// The phases of apply, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Step {
    Write,
    GroupUpsert,
    GroupMembers,
    Delete,
}

#[derive(Debug, Clone)]
pub(super) struct Op {
    pub(super) step: Step,
    pub(super) change: Change,
}

/// Orders the actionable changes into layers.
fn layers(changes: &[Change]) -> Vec<Vec<Op>> {
    let write_rank = |kind: ObjectKind| match kind {
        ObjectKind::ResourceGroup => 0,
        ObjectKind::Identity => 1,
        ObjectKind::Workspace => 2,
        ObjectKind::Federated => 3,
        ObjectKind::Group => 4,
        ObjectKind::RoleAssignment => 6,
    };
    let delete_rank = |kind: ObjectKind| match kind {
        ObjectKind::RoleAssignment => 7,
        ObjectKind::Group => 8,
        ObjectKind::Federated => 9,
        ObjectKind::Workspace => 10,
        ObjectKind::Identity => 11,
        ObjectKind::ResourceGroup => 12,
    };
    let mut out: Vec<Vec<Op>> = vec![Vec::new(); 13];
    for c in changes {
        match c.action {
            Action::Create | Action::Update | Action::Replace | Action::Adopt => {
                if c.kind == ObjectKind::Group {
                    out[4].push(Op { step: Step::GroupUpsert, change: c.clone() });
                    out[5].push(Op { step: Step::GroupMembers, change: c.clone() });
                } else {
                    out[write_rank(c.kind)].push(Op { step: Step::Write, change: c.clone() });
                }
            }
            Action::Delete => out[delete_rank(c.kind)].push(Op { step: Step::Delete, change: c.clone() }),
            Action::Read | Action::NoOp => {}
        }
    }
    out.retain(|l| !l.is_empty());
    out
}

/// `parent` is `child` or an ARM ancestor of it (canonical ids).
pub(super) fn contains(parent: &str, child: &str) -> bool {
    !parent.is_empty() && (child == parent || child.strip_prefix(parent).is_some_and(|rest| rest.starts_with('/')))
}

/// The keys (canonical ids and addresses) of what an operation needs to have succeeded.
fn needs(op: &Op) -> Vec<String> {
    let c = &op.change;
    let mut keys = Vec::new();
    let refs = |refs: &mut Vec<String>, p: &PrincipalRef| match p {
        PrincipalRef::Group { address, .. }
        | PrincipalRef::Identity { address, .. }
        | PrincipalRef::WorkspaceSystem { address, .. } => refs.push(address.clone()),
        _ => {}
    };
    match &c.desired {
        Some(Desired::Workspace(w)) => keys.extend(w.user_identity.as_deref().map(canonical)),
        Some(Desired::Federated(f)) => keys.push(canonical(&f.identity_id)),
        Some(Desired::Group(g)) if op.step == Step::GroupMembers => {
            keys.push(c.address.clone());
            for p in g.members.iter().chain(&g.owners) {
                refs(&mut keys, p);
            }
        }
        Some(Desired::RoleAssignment(r)) => {
            keys.push(r.scope.clone());
            refs(&mut keys, &r.principal);
        }
        _ => {}
    }
    keys
}

/// The first failed object an operation depends on.
fn blocked_by(op: &Op, failed: &BTreeMap<String, String>) -> Option<String> {
    let own = canonical(&op.change.azure_id);
    if op.step == Step::Delete {
        // A parent is kept when deleting one of its children failed.
        return failed
            .iter()
            .find(|(k, _)| k.starts_with('/') && contains(&own, k) && **k != own)
            .map(|(_, a)| a.clone());
    }
    for key in needs(op) {
        if let Some(a) = failed.get(&key) {
            return Some(a.clone());
        }
        if key.starts_with('/')
            && let Some((_, a)) = failed.iter().find(|(k, _)| k.starts_with('/') && contains(k, &key))
        {
            return Some(a.clone());
        }
    }
    if own.starts_with('/')
        && let Some((_, a)) = failed.iter().find(|(k, _)| k.starts_with('/') && contains(k, &own) && **k != own)
    {
        return Some(a.clone());
    }
    None
}

/// Carries out `changes` (a plan's, in any order) in dependency layers. `events` hears about
/// each object as it starts, finishes, fails or is skipped. `desired` is the state the plan was
/// computed for (reserved for principals the changes do not carry).
pub async fn apply(
    changes: &[Change],
    desired: &DesiredState,
    client: &AzureClient,
    opts: &ApplyOptions,
    events: &dyn Fn(ApplyEvent),
) -> ApplyReport {
    let _ = desired;
    let mut report = ApplyReport::default();
    let actionable = changes.iter().any(|c| !matches!(c.action, Action::NoOp | Action::Read));
    let principal = if actionable { client.principal_object_id().await.ok().flatten() } else { None };
    if actionable
        && !opts.allow_self_lockout
        && let Some(p) = &principal
        && let Err(d) = check_self_lockout(changes, client, p).await
    {
        report.failed.push(*d);
        return finish(report);
    }
    let mut audit = match &opts.audit_log {
        Some(path) => match Audit::open(path, principal.clone()) {
            Ok(a) => Some(a),
            Err(d) => {
                report.failed.push(d);
                return finish(report);
            }
        },
        None => None,
    };
    let shared = Arc::new(Shared { client: client.clone(), principals: Mutex::default(), resolved: Mutex::default() });
    // Principals the plan already knows.
    for c in changes {
        if let Some(id) = &c.live_ref.object_id {
            shared.remember(&c.address, Some(id));
        }
    }
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    let mut started: HashMap<String, Instant> = HashMap::new();
    let parallelism = opts.parallelism.max(1);
    let mut audit_broken = false;
    for layer in layers(changes) {
        if audit_broken {
            for op in layer {
                report.skipped.push((op.change.address.clone(), "apply stopped: the audit log failed".into()));
            }
            continue;
        }
        if layer.first().is_some_and(|o| o.step == Step::GroupMembers) {
            shared.prefetch_users(&layer).await;
        }
        let mut queue = layer.into_iter();
        let mut running: JoinSet<(Op, Result<OpOutput, AzureError>)> = JoinSet::new();
        loop {
            while running.len() < parallelism && !audit_broken {
                let Some(op) = queue.next() else { break };
                if op.step == Step::GroupMembers && failed.contains_key(&op.change.address) {
                    // Its upsert failed and was reported.
                    continue;
                }
                if let Some(dep) = blocked_by(&op, &failed) {
                    let address = op.change.address.clone();
                    let reason = format!("depends on {dep}, which failed");
                    events(ApplyEvent::Skipped { address: address.clone(), reason: reason.clone() });
                    failed.insert(canonical(&op.change.azure_id), address.clone());
                    failed.insert(address.clone(), address.clone());
                    report.skipped.push((address, reason));
                    continue;
                }
                if op.step != Step::GroupMembers {
                    events(ApplyEvent::Started { address: op.change.address.clone(), action: op.change.action });
                    started.insert(op.change.address.clone(), Instant::now());
                }
                let s = shared.clone();
                running.spawn(async move {
                    let r = s.run(&op).await;
                    (op, r)
                });
            }
            let Some(joined) = running.join_next().await else { break };
            let Ok((op, result)) = joined else { continue };
            let c = &op.change;
            match result {
                Ok(out) if op.step == Step::GroupUpsert => {
                    let _ = out;
                }
                Ok(out) => {
                    let elapsed = started.get(&c.address).map_or(Duration::ZERO, Instant::elapsed);
                    if let Some(a) = audit.as_mut()
                        && let Err(d) =
                            a.write(c, &out.azure_id, (out.request_id.as_deref(), out.correlation_id.as_deref()), None)
                    {
                        report.failed.push(d);
                        audit_broken = true;
                    }
                    events(ApplyEvent::Finished {
                        address: c.address.clone(),
                        action: c.action,
                        azure_id: out.azure_id.clone(),
                        elapsed,
                        request_id: out.request_id.clone(),
                        correlation_id: out.correlation_id.clone(),
                    });
                    let _ = out.principal_id;
                    report.done.push(Done { address: c.address.clone(), action: c.action, azure_id: out.azure_id });
                }
                Err(e) => {
                    if let Some(a) = audit.as_mut() {
                        let ids = (e.request_id.as_deref(), e.correlation_id.as_deref());
                        if let Err(d) = a.write(c, &c.azure_id, ids, Some(format!("{} {}", e.code, e.message))) {
                            report.failed.push(d);
                            audit_broken = true;
                        }
                    }
                    events(ApplyEvent::Failed { address: c.address.clone(), error: e.to_string() });
                    failed.insert(canonical(&c.azure_id), c.address.clone());
                    failed.insert(c.address.clone(), c.address.clone());
                    report.failed.push(failure(c, &e));
                }
            }
        }
        for op in queue {
            report.skipped.push((op.change.address.clone(), "apply stopped: the audit log failed".into()));
        }
    }
    finish(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(address: &str, kind: ObjectKind, id: &str, action: Action) -> Change {
        Change {
            address: address.into(),
            kind,
            azure_id: id.into(),
            display: address.into(),
            action,
            reason: None,
            before: None,
            after: None,
            changes: vec![],
            blast_radius: vec![],
            desired: None,
            live_ref: crate::plan::LiveRef::default(),
        }
    }

    #[test]
    fn layers_put_creations_first_and_deletions_in_reverse() {
        let rg = "/subscriptions/s/resourceGroups/rg";
        let changes = vec![
            change("grant.a", ObjectKind::RoleAssignment, "x", Action::Create),
            change("group.g", ObjectKind::Group, "u", Action::Update),
            change("rg gone", ObjectKind::ResourceGroup, rg, Action::Delete),
            change("ra gone", ObjectKind::RoleAssignment, "y", Action::Delete),
            change("resource_group.r", ObjectKind::ResourceGroup, rg, Action::Create),
            change("group.n", ObjectKind::Group, "n", Action::NoOp),
        ];
        let order: Vec<Vec<(String, Step)>> =
            layers(&changes).into_iter().map(|l| l.into_iter().map(|o| (o.change.address, o.step)).collect()).collect();
        assert_eq!(
            order,
            vec![
                vec![("resource_group.r".into(), Step::Write)],
                vec![("group.g".into(), Step::GroupUpsert)],
                vec![("group.g".into(), Step::GroupMembers)],
                vec![("grant.a".into(), Step::Write)],
                vec![("ra gone".into(), Step::Delete)],
                vec![("rg gone".into(), Step::Delete)],
            ]
        );
    }

    #[test]
    fn failures_block_only_dependents() {
        let mut failed = BTreeMap::new();
        failed.insert("/subscriptions/s/resourcegroups/rg".to_owned(), "resource_group.r".to_owned());
        let inside = Op {
            step: Step::Write,
            change: change(
                "identity.i",
                ObjectKind::Identity,
                "/subscriptions/s/resourceGroups/rg/providers/x/y/i",
                Action::Create,
            ),
        };
        assert_eq!(blocked_by(&inside, &failed), Some("resource_group.r".into()));
        let outside = Op {
            step: Step::Write,
            change: change(
                "identity.j",
                ObjectKind::Identity,
                "/subscriptions/s/resourceGroups/rg2/providers/x/y/j",
                Action::Create,
            ),
        };
        assert_eq!(blocked_by(&outside, &failed), None);
        // A parent is not deleted when deleting a child failed.
        let mut failed = BTreeMap::new();
        failed.insert("/subscriptions/s/resourcegroups/rg/providers/x/y/i".to_owned(), "identity gone".to_owned());
        let parent = Op {
            step: Step::Delete,
            change: change("rg gone", ObjectKind::ResourceGroup, "/subscriptions/s/resourceGroups/rg", Action::Delete),
        };
        assert_eq!(blocked_by(&parent, &failed), Some("identity gone".into()));
    }
}
