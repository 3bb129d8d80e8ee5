//! Scheduling: apply's operations as a graph taken from the configuration's dependency graph
//! (`DepGraph`, carried by the plan as each change's `depends_on`), run with bounded
//! parallelism; what depends on a failed object is skipped.
//!
//! A write starts as soon as the writes of what it depends on have finished (a role assignment
//! once its group and workspace exist, not once every group and workspace does); a group's
//! memberships wait for its own upsert and for the groups and identities among its members.
//! Deletions run after every write, dependents first (role assignments, groups, credentials,
//! workspaces, identities, resource groups): what a configuration no longer declares has no
//! place in its graph. A plan saved without `depends_on` runs its writes in those kind layers
//! too. Among operations that may start, the earlier layer and then the plan's order go first,
//! so at `--parallelism 1` the order is always the same.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
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

/// Layers, for ordering among ready operations and for what has no place in the graph.
const LAYERS: usize = 13;

/// One operation and what it waits for.
#[derive(Debug)]
struct Node {
    op: Op,
    /// Its kind layer (writes 0–6, deletions 7–12).
    layer: usize,
    /// Operations that must finish first (indexes into the schedule).
    after: Vec<usize>,
    /// Waits for every operation of an earlier layer (deletions; writes of a plan without
    /// `depends_on`).
    layered: bool,
}

fn write_layer(kind: ObjectKind) -> usize {
    match kind {
        ObjectKind::ResourceGroup => 0,
        ObjectKind::Identity => 1,
        ObjectKind::Workspace => 2,
        ObjectKind::Federated => 3,
        ObjectKind::Group => 4,
        ObjectKind::RoleAssignment => 6,
    }
}

fn delete_layer(kind: ObjectKind) -> usize {
    match kind {
        ObjectKind::RoleAssignment => 7,
        ObjectKind::Group => 8,
        ObjectKind::Federated => 9,
        ObjectKind::Workspace => 10,
        ObjectKind::Identity => 11,
        ObjectKind::ResourceGroup => 12,
    }
}

/// The plan's actionable changes as operations with their edges.
fn schedule(changes: &[Change]) -> Vec<Node> {
    let writes = |c: &&Change| matches!(c.action, Action::Create | Action::Update | Action::Replace | Action::Adopt);
    let graph_known = changes.iter().filter(writes).all(|c| c.depends_on.is_some());
    let mut nodes: Vec<Node> = Vec::new();
    // The operation that makes an address exist (a group's upsert).
    let mut made_by: HashMap<&str, usize> = HashMap::new();
    for c in changes.iter().filter(writes) {
        let node =
            |step, layer| Node { op: Op { step, change: c.clone() }, layer, after: Vec::new(), layered: !graph_known };
        made_by.insert(c.address.as_str(), nodes.len());
        if c.kind == ObjectKind::Group {
            nodes.push(node(Step::GroupUpsert, 4));
            let upsert = nodes.len() - 1;
            let mut members = node(Step::GroupMembers, 5);
            members.after.push(upsert);
            nodes.push(members);
        } else {
            nodes.push(node(Step::Write, write_layer(c.kind)));
        }
    }
    for node in &mut nodes {
        if node.op.step == Step::GroupUpsert {
            continue;
        }
        for dep in node.op.change.depends_on.iter().flatten() {
            if let Some(&i) = made_by.get(dep.as_str()) {
                node.after.push(i);
            }
        }
    }
    for c in changes.iter().filter(|c| c.action == Action::Delete) {
        let op = Op { step: Step::Delete, change: c.clone() };
        nodes.push(Node { op, layer: delete_layer(c.kind), after: Vec::new(), layered: true });
    }
    nodes
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
    let actionable = changes.iter().any(|c| !matches!(c.action, Action::NoOp | Action::Read | Action::Move));
    let principal = if actionable { client.principal_object_id().await.ok().flatten() } else { None };
    if actionable
        && !opts.allow_self_lockout
        && let Some(p) = &principal
        && let Err(d) = check_self_lockout(changes, client, p).await
    {
        report.failed.push(*d);
        return finish(report);
    }
    let writes = changes.iter().filter(|c| !matches!(c.action, Action::NoOp | Action::Read)).count();
    let mut audit = match &opts.audit_log {
        Some(path) => match Audit::open(path, principal.clone(), writes) {
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
    let nodes = schedule(changes);
    let members: Vec<Op> = nodes.iter().filter(|n| n.op.step == Step::GroupMembers).map(|n| n.op.clone()).collect();
    if !members.is_empty() {
        shared.prefetch_users(&members).await;
    }
    let mut run = Run::new(&nodes);
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    let mut started: HashMap<String, Instant> = HashMap::new();
    let parallelism = opts.parallelism.max(1);
    let mut audit_broken = false;
    let mut running: JoinSet<(usize, Result<OpOutput, AzureError>)> = JoinSet::new();
    loop {
        while running.len() < parallelism && !audit_broken {
            let Some(i) = run.next_ready() else { break };
            let op = &nodes[i].op;
            if op.step == Step::GroupMembers && failed.contains_key(&op.change.address) {
                // Its upsert failed and was reported.
                run.finished(i);
                continue;
            }
            if let Some(dep) = blocked_by(op, &failed) {
                let address = op.change.address.clone();
                let reason = format!("depends on {dep}, which failed");
                events(ApplyEvent::Skipped { address: address.clone(), reason: reason.clone() });
                failed.insert(canonical(&op.change.azure_id), address.clone());
                failed.insert(address.clone(), address.clone());
                report.skipped.push((address, reason));
                run.finished(i);
                continue;
            }
            if op.step != Step::GroupMembers {
                events(ApplyEvent::Started { address: op.change.address.clone(), action: op.change.action });
                started.insert(op.change.address.clone(), Instant::now());
            }
            let s = shared.clone();
            let op = op.clone();
            running.spawn(async move {
                let r = s.run(&op).await;
                (i, r)
            });
        }
        let Some(joined) = running.join_next().await else { break };
        let Ok((i, result)) = joined else { continue };
        run.finished(i);
        let op = &nodes[i].op;
        let c = &op.change;
        match result {
            Ok(_) if op.step == Step::GroupUpsert => {}
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
    if let Some(a) = &audit {
        a.amend(&mut report.failed);
    }
    for i in run.never_started() {
        let op = &nodes[i].op;
        if op.step != Step::GroupMembers || !report.skipped.iter().any(|(a, _)| *a == op.change.address) {
            report.skipped.push((op.change.address.clone(), "apply stopped: the audit log failed".into()));
        }
    }
    finish(report)
}

/// Which operations may start: those whose `after` have all finished and, for layered ones,
/// every operation of an earlier layer too; the earliest layer, then the plan's order, first.
struct Run {
    /// Unfinished operations each waits for.
    waiting: Vec<usize>,
    /// Who waits for each.
    dependents: Vec<Vec<usize>>,
    layer: Vec<usize>,
    layered: Vec<bool>,
    /// Unfinished operations per layer.
    unfinished: [usize; LAYERS],
    /// Layered operations ready but for an earlier layer, per layer.
    parked: [Vec<usize>; LAYERS],
    ready: BinaryHeap<Reverse<(usize, usize)>>,
    started: Vec<bool>,
}

impl Run {
    fn new(nodes: &[Node]) -> Run {
        let mut run = Run {
            waiting: nodes.iter().map(|n| n.after.len()).collect(),
            dependents: vec![Vec::new(); nodes.len()],
            layer: nodes.iter().map(|n| n.layer).collect(),
            layered: nodes.iter().map(|n| n.layered).collect(),
            unfinished: [0; LAYERS],
            parked: std::array::from_fn(|_| Vec::new()),
            ready: BinaryHeap::new(),
            started: vec![false; nodes.len()],
        };
        for (i, n) in nodes.iter().enumerate() {
            run.unfinished[n.layer] += 1;
            for &j in &n.after {
                run.dependents[j].push(i);
            }
        }
        for i in 0..nodes.len() {
            if run.waiting[i] == 0 {
                run.unblocked(i);
            }
        }
        run
    }

    fn earlier_layers_done(&self, layer: usize) -> bool {
        self.unfinished[..layer].iter().all(|&n| n == 0)
    }

    fn unblocked(&mut self, i: usize) {
        if self.layered[i] && !self.earlier_layers_done(self.layer[i]) {
            self.parked[self.layer[i]].push(i);
        } else {
            self.ready.push(Reverse((self.layer[i], i)));
        }
    }

    fn next_ready(&mut self) -> Option<usize> {
        let Reverse((_, i)) = self.ready.pop()?;
        self.started[i] = true;
        Some(i)
    }

    fn finished(&mut self, i: usize) {
        self.started[i] = true;
        self.unfinished[self.layer[i]] -= 1;
        for k in 0..self.dependents[i].len() {
            let d = self.dependents[i][k];
            self.waiting[d] -= 1;
            if self.waiting[d] == 0 {
                self.unblocked(d);
            }
        }
        for layer in 0..LAYERS {
            if !self.parked[layer].is_empty() && self.earlier_layers_done(layer) {
                for p in std::mem::take(&mut self.parked[layer]) {
                    self.ready.push(Reverse((layer, p)));
                }
            }
        }
    }

    /// Operations that never started (apply stopped early).
    fn never_started(&self) -> Vec<usize> {
        (0..self.started.len()).filter(|&i| !self.started[i]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(address: &str, kind: ObjectKind, id: &str, action: Action) -> Change {
        Change::for_test(address, kind, id, action)
    }

    /// The order operations start in when one runs at a time.
    fn serial_order(changes: &[Change]) -> Vec<(String, Step)> {
        let nodes = schedule(changes);
        let mut run = Run::new(&nodes);
        let mut order = Vec::new();
        while let Some(i) = run.next_ready() {
            order.push((nodes[i].op.change.address.clone(), nodes[i].op.step));
            run.finished(i);
        }
        assert!(run.never_started().is_empty(), "every operation ran");
        order
    }

    fn with_deps(mut c: Change, deps: &[&str]) -> Change {
        c.depends_on = Some(deps.iter().map(|d| (*d).to_owned()).collect());
        c
    }

    #[test]
    fn deletions_run_after_writes_dependents_first() {
        let rg = "/subscriptions/s/resourceGroups/rg";
        let changes = vec![
            with_deps(change("grant.a", ObjectKind::RoleAssignment, "x", Action::Create), &["group.g"]),
            with_deps(change("group.g", ObjectKind::Group, "u", Action::Update), &[]),
            change("rg gone", ObjectKind::ResourceGroup, rg, Action::Delete),
            change("ra gone", ObjectKind::RoleAssignment, "y", Action::Delete),
            with_deps(change("resource_group.r", ObjectKind::ResourceGroup, rg, Action::Create), &[]),
            change("group.n", ObjectKind::Group, "n", Action::NoOp),
        ];
        assert_eq!(
            serial_order(&changes),
            vec![
                ("resource_group.r".into(), Step::Write),
                ("group.g".into(), Step::GroupUpsert),
                ("group.g".into(), Step::GroupMembers),
                ("grant.a".into(), Step::Write),
                ("ra gone".into(), Step::Delete),
                ("rg gone".into(), Step::Delete),
            ]
        );
    }

    #[test]
    fn a_write_waits_only_for_what_it_depends_on() {
        let ws = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w";
        let changes = vec![
            with_deps(change("workspace.w", ObjectKind::Workspace, ws, Action::Create), &[]),
            with_deps(change("group.slow", ObjectKind::Group, "s", Action::Create), &[]),
            with_deps(change("grant.a", ObjectKind::RoleAssignment, "x", Action::Create), &["workspace.w"]),
        ];
        let nodes = schedule(&changes);
        let mut run = Run::new(&nodes);
        // The workspace and the group's upsert start together; the grant waits for the
        // workspace only, not for the group in an earlier kind layer.
        let first = run.next_ready().unwrap();
        let second = run.next_ready().unwrap();
        let mut started: Vec<&str> = vec![&nodes[first].op.change.address, &nodes[second].op.change.address];
        started.sort_unstable();
        assert_eq!(started, ["group.slow", "workspace.w"]);
        assert_eq!(run.next_ready(), None, "the grant waits for its workspace");
        let ws_index = if nodes[first].op.change.address == "workspace.w" { first } else { second };
        run.finished(ws_index);
        let grant = run.next_ready().unwrap();
        assert_eq!(nodes[grant].op.change.address, "grant.a", "it starts while the group is still running");
    }

    #[test]
    fn a_plan_without_dependencies_runs_in_kind_layers() {
        let changes = vec![
            change("grant.a", ObjectKind::RoleAssignment, "x", Action::Create),
            change("group.g", ObjectKind::Group, "u", Action::Create),
        ];
        let nodes = schedule(&changes);
        let mut run = Run::new(&nodes);
        let upsert = run.next_ready().unwrap();
        assert_eq!(nodes[upsert].op.step, Step::GroupUpsert);
        assert_eq!(run.next_ready(), None, "the grant waits for the whole group layer");
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
