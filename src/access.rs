//! Effective access: who holds which role on which scope, directly or through (nested) groups.
//! One implementation serves the plan's "Access changes" section, `mlpolicy access` and audit.
//!
//! The input is an [`AccessGraph`]: principals with display names and kinds, direct group
//! memberships, and role assignments. Group nesting is expanded transitively with a visited set,
//! so a cycle in a corrupted tenant cannot hang it. A leaf is any principal that is not a group
//! (user, service principal, managed identity).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::plan::AccessChange;

/// A principal in an access graph, keyed by object id (or `new:ADDRESS` before creation).
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
}

/// Principals, memberships and assignments.
#[derive(Debug, Clone, Default)]
pub struct AccessGraph {
    pub nodes: BTreeMap<String, Node>,
    /// Group key → direct member keys.
    pub members: BTreeMap<String, BTreeSet<String>>,
    pub assignments: BTreeSet<Assignment>,
}

/// A leaf's role on a scope with the group path that grants it (empty when direct).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Effective {
    pub leaf: String,
    pub role: String,
    pub scope: String,
    /// Group keys from the assigned group down to the one holding the leaf.
    pub via: Vec<String>,
}

impl AccessGraph {
    pub fn display(&self, key: &str) -> String {
        self.nodes.get(key).map_or_else(|| key.to_owned(), |n| n.display.clone())
    }

    fn is_group(&self, key: &str) -> bool {
        self.nodes.get(key).is_some_and(|n| n.is_group) || self.members.contains_key(key)
    }

    /// Every leaf reachable from `group` with the shortest path to it (ties: smallest path).
    pub fn leaves_of(&self, group: &str) -> BTreeMap<String, Vec<String>> {
        self.leaves(group)
            .into_iter()
            .map(|(leaf, via)| (leaf.to_owned(), via.into_iter().map(str::to_owned).collect()))
            .collect()
    }

    /// [`Self::leaves_of`], borrowing the keys from the graph.
    fn leaves<'g>(&'g self, group: &'g str) -> BTreeMap<&'g str, Vec<&'g str>> {
        let mut best: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut visited: BTreeSet<&str> = BTreeSet::new();
        // Breadth-first, so the first path that reaches a leaf is a shortest one.
        let mut frontier: Vec<(&str, Vec<&str>)> = vec![(group, vec![group])];
        visited.insert(group);
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for (g, path) in frontier {
                for m in self.members.get(g).into_iter().flatten() {
                    if self.is_group(m) {
                        if visited.insert(m) {
                            let mut p = path.clone();
                            p.push(m);
                            next.push((m.as_str(), p));
                        }
                    } else {
                        match best.get(m.as_str()) {
                            Some(existing)
                                if existing.len() < path.len()
                                    || (existing.len() == path.len() && *existing <= path) => {}
                            _ => {
                                best.insert(m, path.clone());
                            }
                        }
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
    /// each group's leaves are found once however many roles it holds.
    fn effective_ids<'g>(&'g self, names: &mut Names<'g>) -> HashMap<(u32, u32, u32), Vec<&'g str>> {
        type Out<'g> = HashMap<(u32, u32, u32), Vec<&'g str>>;
        fn put<'g>(out: &mut Out<'g>, key: (u32, u32, u32), via: &[&'g str]) {
            match out.get(&key) {
                Some(existing) if existing.len() < via.len() || (existing.len() == via.len() && **existing <= *via) => {
                }
                _ => {
                    out.insert(key, via.to_vec());
                }
            }
        }
        let mut out: Out<'g> = HashMap::new();
        let mut leaves: HashMap<&str, Vec<(u32, Vec<&str>)>> = HashMap::new();
        for a in &self.assignments {
            let (role, scope) = (names.id(&a.role), names.id(&a.scope));
            if self.is_group(&a.principal) {
                let of_group = leaves.entry(&a.principal).or_insert_with(|| {
                    self.leaves(&a.principal).into_iter().map(|(leaf, via)| (names.id(leaf), via)).collect()
                });
                for (leaf, via) in of_group.iter() {
                    put(&mut out, (*leaf, role, scope), via);
                }
            } else {
                put(&mut out, (names.id(&a.principal), role, scope), &[]);
            }
        }
        out
    }
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
    let path = |g: &AccessGraph, via: &[&str]| -> Option<String> {
        (!via.is_empty()).then(|| via.iter().map(|k| g.display(k)).collect::<Vec<_>>().join(" → "))
    };
    for (key, via) in &a {
        if !b.contains_key(key) {
            grouped
                .entry((true, text(key.2).to_owned(), text(key.1).to_owned(), path(after, via)))
                .or_default()
                .insert(after.display(text(key.0)));
        }
    }
    for (key, via) in &b {
        if !a.contains_key(key) {
            grouped
                .entry((false, text(key.2).to_owned(), text(key.1).to_owned(), path(before, via)))
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
}
