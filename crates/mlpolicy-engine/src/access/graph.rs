//! The access graph and effective access over it: group expansion (the rule is described in
//! the module documentation), holdings, holders, and the changes between two graphs.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::live::{LiveState, PrincipalKind};
use crate::lower::{Desired, DesiredState, PrincipalRef};
use crate::plan::AccessChange;
use mlpolicy_vocab::arm::canonical;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Node {
    pub display: String,
    pub is_group: bool,
}

/// One role held on one scope.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Assignment {
    pub principal: String,
    pub role: String,
    /// Scope as reviewers know it.
    pub scope: String,
    /// Canonical ARM id of the scope (lower-case), for inheritance.
    pub scope_id: String,
}

/// Principals, memberships and assignments. Nodes and memberships are hashed (a tenant has tens
/// of thousands of principals, looked up once per path step); everything that decides an order
/// is sorted, so answers stay deterministic.
#[derive(Debug, Clone, Default)]
pub struct AccessGraph {
    pub nodes: HashMap<String, Node>,
    /// Group key → direct member keys.
    pub members: HashMap<String, BTreeSet<String>>,
    pub assignments: BTreeSet<Assignment>,
}

/// A principal's role on a scope through one assignment, with the group path that grants it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Effective<'a> {
    /// The principal that holds the access (a user, service principal or identity).
    pub leaf: String,
    /// The assignment it comes from.
    pub assignment: &'a Assignment,
    /// Group keys from the assigned group down to the one holding the leaf; empty when direct.
    pub via: Vec<String>,
}

/// Whether a role held on `scope` applies to `target` (both canonical ARM ids): the same scope or
/// one of its ancestors.
pub fn covers(scope: &str, target: &str) -> bool {
    target == scope || (target.starts_with(scope) && target.as_bytes().get(scope.len()) == Some(&b'/'))
}

impl AccessGraph {
    pub fn display(&self, key: &str) -> String {
        self.nodes.get(key).map_or_else(|| key.to_owned(), |n| n.display.clone())
    }

    /// Whether a key is a group (declared as one, or with known members).
    pub fn is_group(&self, key: &str) -> bool {
        self.nodes.get(key).is_some_and(|n| n.is_group) || self.members.contains_key(key)
    }

    /// Whether an assignment to `key` reaches further principals: `key` is a group whose members
    /// are known. A group whose members are not known (not read, or outside the configuration)
    /// holds what is assigned to it itself, like a user or a service principal.
    fn expands(&self, key: &str) -> bool {
        self.members.contains_key(key)
    }

    /// Who holds what is assigned to `principal`, each with the shortest group path to it (ties:
    /// the smallest path), the one expansion that every question about access goes through. The
    /// principal itself, with an empty path, unless it [expands](Self::expands); then every leaf
    /// reachable through its members and nested groups, with the path from `principal` down.
    fn holders<'g>(&'g self, principal: &'g str) -> BTreeMap<&'g str, Vec<&'g str>> {
        let mut best: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        if !self.expands(principal) {
            best.insert(principal, Vec::new());
            return best;
        }
        let mut visited: BTreeSet<&str> = BTreeSet::from([principal]);
        // Breadth-first, so the first path that reaches a leaf is a shortest one.
        let mut frontier: Vec<(&str, Vec<&str>)> = vec![(principal, vec![principal])];
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for (g, path) in frontier {
                for m in self.members.get(g).into_iter().flatten() {
                    if self.expands(m) {
                        if visited.insert(m) {
                            let mut p = path.clone();
                            p.push(m);
                            next.push((m.as_str(), p));
                        }
                    } else if best.get(m.as_str()).is_none_or(|existing| preferred(&path, existing)) {
                        best.insert(m, path.clone());
                    }
                }
            }
            next.sort();
            frontier = next;
        }
        best
    }

    /// Every (leaf, role, scope) with one path, the shortest.
    pub fn effective(&self) -> BTreeMap<(String, String, String), Vec<String>> {
        let mut names = Names::default();
        let effective = self.effective_ids(&mut names);
        effective
            .into_iter()
            .map(|((leaf, role, scope), via)| {
                let text = |id: u32| names.text[id as usize].to_owned();
                ((text(leaf), text(role), text(scope)), via.into_iter().map(str::to_owned).collect())
            })
            .collect()
    }

    /// [`Self::effective`], unordered, keyed by the ids `names` gives the leaf, role and scope;
    /// each principal's holders are found once however many roles it holds.
    fn effective_ids<'g>(&'g self, names: &mut Names<'g>) -> HashMap<(u32, u32, u32), Vec<&'g str>> {
        let mut out: HashMap<(u32, u32, u32), Vec<&'g str>> = HashMap::new();
        let mut holders: HashMap<&str, Vec<(u32, Vec<&str>)>> = HashMap::new();
        for a in &self.assignments {
            let (role, scope) = (names.id(&a.role), names.id(&a.scope));
            let of = holders.entry(&a.principal).or_insert_with(|| {
                self.holders(&a.principal).into_iter().map(|(leaf, via)| (names.id(leaf), via)).collect()
            });
            for (leaf, via) in of.iter() {
                let key = (*leaf, role, scope);
                if out.get(&key).is_none_or(|existing| preferred(via, existing)) {
                    out.insert(key, via.clone());
                }
            }
        }
        out
    }

    /// Everything `key` holds: its own assignments and those of every group that contains it,
    /// directly or through nesting — one entry per assignment, with the shortest group path.
    pub fn holdings_of(&self, key: &str) -> Vec<Effective<'_>> {
        let mut parents: HashMap<&str, Vec<&str>> = HashMap::new();
        for (group, members) in &self.members {
            for m in members {
                parents.entry(m.as_str()).or_default().push(group.as_str());
            }
        }
        // Breadth-first upwards: the path to each containing group, from that group down.
        let mut paths: BTreeMap<&str, Vec<String>> = BTreeMap::from([(key, Vec::new())]);
        let mut frontier = vec![key];
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for child in frontier {
                for &parent in parents.get(child).into_iter().flatten() {
                    if paths.contains_key(parent) {
                        continue;
                    }
                    let mut path = vec![parent.to_owned()];
                    path.extend(paths[child].iter().cloned());
                    paths.insert(parent, path);
                    next.push(parent);
                }
            }
            next.sort_unstable();
            frontier = next;
        }
        let mut out: Vec<Effective> = self
            .assignments
            .iter()
            .filter_map(|a| {
                let path = paths.get(a.principal.as_str())?;
                let via = if a.principal == key { Vec::new() } else { path.clone() };
                Some(Effective { leaf: key.to_owned(), assignment: a, via })
            })
            .collect();
        out.sort_by(order);
        out
    }

    /// Everyone holding a role that applies at `targets` (canonical ARM ids): assignments on them,
    /// on their ancestors, and on scopes below them, each expanded to the principals that hold
    /// it. In assignment order; callers sort for their report.
    pub fn holders_at(&self, targets: &[String]) -> Vec<Effective<'_>> {
        let mut holders: HashMap<&str, BTreeMap<&str, Vec<&str>>> = HashMap::new();
        let mut out = Vec::new();
        for a in &self.assignments {
            let relevant = targets.iter().any(|t| covers(&a.scope_id, t) || covers(t, &a.scope_id));
            if !relevant {
                continue;
            }
            let of = holders.entry(a.principal.as_str()).or_insert_with(|| self.holders(&a.principal));
            for (leaf, via) in of.iter() {
                out.push(Effective {
                    leaf: (*leaf).to_owned(),
                    assignment: a,
                    via: via.iter().map(|k| (*k).to_owned()).collect(),
                });
            }
        }
        out
    }

    /// The path of an effective access as reviewers read it: `leaf → inner → outer` is shown
    /// outermost first, `outer → inner`; `None` when the access is direct.
    pub fn path_display<S: AsRef<str>>(&self, via: &[S]) -> Option<String> {
        (!via.is_empty()).then(|| via.iter().map(|k| self.display(k.as_ref())).collect::<Vec<_>>().join(" → "))
    }
}

/// Whether `path` is preferred to `existing` as the one shown: shorter, or as long and smaller.
fn preferred<S: Ord>(path: &[S], existing: &[S]) -> bool {
    path.len() < existing.len() || (path.len() == existing.len() && path < existing)
}

/// Report order: scope, role, then who and how.
fn order(x: &Effective, y: &Effective) -> std::cmp::Ordering {
    (&x.assignment.scope_id, &x.assignment.role, &x.leaf, &x.via, &x.assignment.principal).cmp(&(
        &y.assignment.scope_id,
        &y.assignment.role,
        &y.leaf,
        &y.via,
        &y.assignment.principal,
    ))
}

/// The key of a principal in a graph built from the configuration alone.
pub fn desired_key(r: &PrincipalRef) -> String {
    match r {
        PrincipalRef::User { upn } => format!("user:{}", upn.to_ascii_lowercase()),
        PrincipalRef::ServicePrincipal { name } => format!("service_principal:{name}"),
        PrincipalRef::ExistingGroup { name } => format!("existing_group:{name}"),
        PrincipalRef::Group { unique_name, .. } => format!("group:{}", unique_name.to_ascii_lowercase()),
        PrincipalRef::Identity { id, .. } | PrincipalRef::WorkspaceSystem { id, .. } => {
            format!("identity:{}", canonical(id))
        }
    }
}

/// Whether a reference names a group (whose members may grant access onwards).
pub fn is_group_ref(r: &PrincipalRef) -> bool {
    matches!(r, PrincipalRef::Group { .. } | PrincipalRef::ExistingGroup { .. })
}

/// Access as the configuration alone would make it, without reading the tenant. Principals are
/// keyed by [`desired_key`]; existing groups are holders whose members are not known.
pub fn from_desired(desired: &DesiredState) -> AccessGraph {
    let mut g = AccessGraph::default();
    let node = |g: &mut AccessGraph, r: &PrincipalRef| {
        let key = desired_key(r);
        g.nodes.entry(key.clone()).or_insert(Node { display: r.display().to_owned(), is_group: is_group_ref(r) });
        key
    };
    for o in desired.objects.values() {
        match &o.object {
            Desired::Group(grp) => {
                let key = node(
                    &mut g,
                    &PrincipalRef::Group {
                        address: o.address.clone(),
                        unique_name: grp.unique_name.clone(),
                        display_name: grp.display_name.clone(),
                    },
                );
                let members = grp.members.iter().map(|m| node(&mut g, m)).collect();
                g.members.insert(key, members);
            }
            Desired::RoleAssignment(r) => {
                let principal = node(&mut g, &r.principal);
                g.assignments.insert(Assignment {
                    principal,
                    role: r.role.clone(),
                    scope: r.scope_display.clone(),
                    scope_id: r.scope.clone(),
                });
            }
            _ => {}
        }
    }
    g
}

/// Access as the tenant has it: every principal and membership the live read saw, and the role
/// assignments whose canonical scope `keep` selects, shown through `show_scope`.
pub fn from_live(live: &LiveState, keep: impl Fn(&str) -> bool, show_scope: impl Fn(&str) -> String) -> AccessGraph {
    let mut g = AccessGraph::default();
    for (id, p) in &live.principals {
        g.nodes.insert(id.clone(), Node { display: p.display.clone(), is_group: p.kind == PrincipalKind::Group });
    }
    for (id, grp) in &live.groups {
        g.members.insert(id.clone(), grp.members.clone());
    }
    for a in live.role_assignments.values() {
        let scope_id = canonical(&a.properties.scope);
        if keep(&scope_id) {
            g.assignments.insert(Assignment {
                principal: a.properties.principal_id.to_ascii_lowercase(),
                role: live.role_name(a),
                scope: show_scope(&a.properties.scope),
                scope_id,
            });
        }
    }
    g
}

/// The distinct strings of one or two graphs as small numbers, so that effective-access
/// entries hash and compare as three integers.
#[derive(Default)]
struct Names<'g> {
    ids: HashMap<&'g str, u32>,
    text: Vec<&'g str>,
}

impl<'g> Names<'g> {
    fn id(&mut self, s: &'g str) -> u32 {
        let text = &mut self.text;
        *self.ids.entry(s).or_insert_with(|| {
            text.push(s);
            u32::try_from(text.len() - 1).unwrap_or(u32::MAX)
        })
    }
}

/// Who gains and who loses access between two graphs, grouped into reviewer-sized lines:
/// gains first, then losses, each ordered by scope, role and path.
pub fn changes<'g>(before: &'g AccessGraph, after: &'g AccessGraph) -> Vec<AccessChange> {
    // One set of names for both, so their entries compare; unordered maps, because what is
    // gained and lost is collected into ordered ones below.
    let mut names = Names::default();
    let b = before.effective_ids(&mut names);
    let a = after.effective_ids(&mut names);
    let text = |id: u32| names.text[id as usize];
    let mut grouped: BTreeMap<(bool, String, String, Option<String>), BTreeSet<String>> = BTreeMap::new();
    for (key, via) in &a {
        if !b.contains_key(key) {
            grouped
                .entry((true, text(key.2).to_owned(), text(key.1).to_owned(), after.path_display(via)))
                .or_default()
                .insert(after.display(text(key.0)));
        }
    }
    for (key, via) in &b {
        if !a.contains_key(key) {
            grouped
                .entry((false, text(key.2).to_owned(), text(key.1).to_owned(), before.path_display(via)))
                .or_default()
                .insert(before.display(text(key.0)));
        }
    }
    let mut out: Vec<AccessChange> = grouped
        .into_iter()
        .map(|((gain, scope, role, via), principals)| AccessChange {
            gain,
            principals: principals.into_iter().collect(),
            role,
            scope,
            via,
        })
        .collect();
    out.sort_by(|x, y| y.gain.cmp(&x.gain).then_with(|| (&x.scope, &x.role, &x.via).cmp(&(&y.scope, &y.role, &y.via))));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(members: &[(&str, &[&str])], assignments: &[(&str, &str, &str)]) -> AccessGraph {
        let mut g = AccessGraph::default();
        for (group, ms) in members {
            g.nodes.insert((*group).to_owned(), Node { display: format!("G-{group}"), is_group: true });
            g.members.insert((*group).to_owned(), ms.iter().map(|m| (*m).to_owned()).collect());
            for m in *ms {
                g.nodes.entry((*m).to_owned()).or_insert(Node { display: (*m).to_owned(), is_group: false });
            }
        }
        for (p, r, s) in assignments {
            g.assignments.insert(Assignment {
                principal: (*p).to_owned(),
                role: (*r).to_owned(),
                scope: (*s).to_owned(),
                scope_id: format!("/{s}"),
            });
        }
        g
    }

    #[test]
    fn nested_groups_give_paths() {
        let g = graph(&[("outer", &["inner", "carol"]), ("inner", &["alice"])], &[("outer", "Reader", "ws")]);
        let e = g.effective();
        assert_eq!(e[&("alice".into(), "Reader".into(), "ws".into())], vec!["outer".to_string(), "inner".to_string()]);
        assert_eq!(e[&("carol".into(), "Reader".into(), "ws".into())], vec!["outer".to_string()]);
    }

    #[test]
    fn cycles_terminate() {
        let g = graph(&[("a", &["b", "x"]), ("b", &["a", "y"])], &[("a", "Reader", "ws")]);
        let e = g.effective();
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn changes_group_principals() {
        let before = graph(&[("g", &["mallory"])], &[("g", "AzureML Data Scientist", "ws")]);
        let after = graph(&[("g", &["alice", "bob"])], &[("g", "AzureML Data Scientist", "ws")]);
        let c = changes(&before, &after);
        assert_eq!(c.len(), 2);
        assert!(c[0].gain);
        assert_eq!(c[0].principals, vec!["alice", "bob"]);
        assert_eq!(c[0].via.as_deref(), Some("G-g"));
        assert!(!c[1].gain);
        assert_eq!(c[1].principals, vec!["mallory"]);
    }

    #[test]
    fn a_deleted_nested_group_loses_access_and_gains_none() {
        // What the plan does to a group it deletes: the group stays (a parent still lists
        // it) with no members.
        let before = graph(&[("parent", &["doomed"]), ("doomed", &["alice"])], &[("parent", "Reader", "ws")]);
        let mut after = before.clone();
        after.members.insert("doomed".into(), BTreeSet::new());
        let c = changes(&before, &after);
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(!c[0].gain);
        assert_eq!(c[0].principals, vec!["alice"]);
    }

    #[test]
    fn covers_follows_arm_ancestry() {
        assert!(covers("/subscriptions/s", "/subscriptions/s/resourcegroups/rg"));
        assert!(covers("/subscriptions/s/resourcegroups/rg", "/subscriptions/s/resourcegroups/rg"));
        assert!(!covers("/subscriptions/s/resourcegroups/rg", "/subscriptions/s/resourcegroups/rg2"));
        assert!(!covers("/subscriptions/s/resourcegroups/rg/x", "/subscriptions/s/resourcegroups/rg"));
    }

    fn at(g: &mut AccessGraph, principal: &str, role: &str, scope_id: &str) {
        g.assignments.insert(Assignment {
            principal: principal.into(),
            role: role.into(),
            scope: scope_id.rsplit('/').next().unwrap().into(),
            scope_id: scope_id.into(),
        });
    }

    #[test]
    fn holdings_walk_up_nested_groups_with_shortest_paths() {
        let mut g = graph(&[("outer", &["middle"]), ("middle", &["inner", "alice"]), ("inner", &["alice"])], &[]);
        at(&mut g, "outer", "Reader", "/subscriptions/s");
        at(&mut g, "inner", "AzureML Data Scientist", "/subscriptions/s/rg/ws");
        at(&mut g, "alice", "Owner", "/subscriptions/s/rg");
        at(&mut g, "bob", "Owner", "/subscriptions/s/rg");
        let h = g.holdings_of("alice");
        let found: Vec<(&str, Vec<&str>)> =
            h.iter().map(|e| (e.assignment.role.as_str(), e.via.iter().map(String::as_str).collect())).collect();
        assert_eq!(
            found,
            vec![("Reader", vec!["outer", "middle"]), ("Owner", vec![]), ("AzureML Data Scientist", vec!["inner"]),]
        );
    }

    #[test]
    fn holdings_terminate_on_cycles() {
        let mut g = graph(&[("a", &["b"]), ("b", &["a", "alice"])], &[]);
        at(&mut g, "a", "Reader", "/x");
        let h = g.holdings_of("alice");
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].via, vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn holders_include_ancestors_and_descendants_of_the_target() {
        let mut g = graph(&[("ds", &["alice", "bob"])], &[]);
        at(&mut g, "ds", "AzureML Data Scientist", "/subscriptions/s/rg/ws");
        at(&mut g, "carol", "Owner", "/subscriptions/s/rg");
        at(&mut g, "dave", "Reader", "/subscriptions/s/rg/ws/computes/c1");
        at(&mut g, "eve", "Reader", "/subscriptions/s/rg/other");
        let mut leaves: Vec<String> =
            g.holders_at(&["/subscriptions/s/rg/ws".into()]).into_iter().map(|e| e.leaf).collect();
        leaves.sort();
        assert_eq!(leaves, vec!["alice", "bob", "carol", "dave"]);
    }

    /// A graph where `ext`, a group whose members were not read, holds Reader on `/s`, and the
    /// group `ds`, whose members are known, lists it.
    fn with_unread_group() -> AccessGraph {
        let mut g = graph(&[("ds", &["alice", "ext"])], &[]);
        g.nodes.insert("ext".into(), Node { display: "ext".into(), is_group: true });
        at(&mut g, "ext", "Reader", "/s");
        at(&mut g, "ds", "Owner", "/s");
        g
    }

    #[test]
    fn groups_without_known_members_hold_access_themselves_in_effective_access() {
        let e = with_unread_group().effective();
        let keys: Vec<(&str, &str)> = e.keys().map(|(leaf, role, _)| (leaf.as_str(), role.as_str())).collect();
        assert_eq!(keys, vec![("alice", "Owner"), ("ext", "Owner"), ("ext", "Reader")]);
        assert!(e[&("ext".into(), "Reader".into(), "s".into())].is_empty());
        assert_eq!(e[&("ext".into(), "Owner".into(), "s".into())], vec!["ds".to_string()]);
    }

    #[test]
    fn groups_without_known_members_gain_and_lose_access_themselves() {
        let after = with_unread_group();
        let mut before = after.clone();
        before.assignments.retain(|a| a.principal != "ext");
        let c = changes(&before, &after);
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(c[0].gain);
        assert_eq!(
            (c[0].principals.as_slice(), c[0].role.as_str(), c[0].via.as_deref()),
            (&["ext".to_owned()][..], "Reader", None)
        );
        let c = changes(&after, &before);
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(!c[0].gain);
    }

    #[test]
    fn groups_without_known_members_hold_access_themselves_at_a_scope() {
        let g = with_unread_group();
        let mut found: Vec<(String, &str, Vec<String>)> =
            g.holders_at(&["/s".into()]).into_iter().map(|e| (e.leaf, e.assignment.role.as_str(), e.via)).collect();
        found.sort();
        assert_eq!(
            found,
            vec![
                ("alice".into(), "Owner", vec!["ds".to_string()]),
                ("ext".into(), "Owner", vec!["ds".to_string()]),
                ("ext".into(), "Reader", vec![]),
            ]
        );
    }

    #[test]
    fn groups_without_known_members_hold_access_themselves() {
        let mut g = AccessGraph::default();
        g.nodes.insert("ext".into(), Node { display: "ext".into(), is_group: true });
        at(&mut g, "ext", "Reader", "/s");
        let h = g.holders_at(&["/s".into()]);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].leaf, "ext");
    }
}
