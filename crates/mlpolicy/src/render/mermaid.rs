//! The plan's access changes as a Mermaid flowchart, which GitHub and Azure DevOps render inline
//! in a pull-request comment: people and identities → the groups they hold it through → the
//! role → the scope. A gain is a thick green arrow, a loss a dotted red one; the arrow into the
//! role says which. Principals and scopes are one node each; the groups and the role are drawn
//! once per access change, so every path from a principal to a scope is an access change of the
//! plan and no path mixes two changes (two changes through the same group would otherwise
//! suggest that everyone reaching the group gets both). Node ids are assigned in plan order (`p1`, `g1`, `r1`, `s1`, ...) and every
//! label goes through [`mermaid_text`], so the same plan gives the same bytes and no name can
//! break out of its label.
//!
//! The diagram is bounded: at most [`MAX_PRINCIPALS`] principals of one change (the rest are one
//! `… and N more` node), and access changes are drawn while the diagram stays under
//! [`MAX_BYTES`] and [`MAX_EDGES`]; a note then says how many are drawn.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use mlpolicy_engine::plan::{AccessChange, Plan};
use mlpolicy_lang::graph::mermaid_text;

/// Upper bound of the diagram's text, well inside what GitHub renders (50,000 characters).
pub(super) const MAX_BYTES: usize = 20_000;
/// Upper bound of its edges (Mermaid refuses more than 500 by default).
const MAX_EDGES: usize = 300;
/// Principals of one access change drawn one by one.
const MAX_PRINCIPALS: usize = 12;

const GAIN_STYLE: &str = "stroke:#1a7f37,stroke-width:3px";
const LOSS_STYLE: &str = "stroke:#cf222e,stroke-width:2px,stroke-dasharray:5 4";

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum NodeKind {
    Principal,
    Group,
    Role,
    Scope,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Link {
    Gain,
    Loss,
    /// Role to scope: neither gained nor lost itself.
    On,
}

/// The diagram being built; cloned to try a change and dropped when it does not fit.
#[derive(Clone, Default)]
struct Diagram {
    /// Node key (kind, label, and the change a group or role belongs to) → id; ids in order of
    /// first use.
    ids: BTreeMap<(NodeKind, String, String), String>,
    nodes: Vec<String>,
    edges: Vec<(String, String, Link)>,
    counts: [usize; 4],
    bytes: usize,
}

impl Diagram {
    fn node(&mut self, kind: NodeKind, label: &str, scope: &str) -> String {
        let key = (kind, label.to_owned(), scope.to_owned());
        if let Some(id) = self.ids.get(&key) {
            return id.clone();
        }
        let (prefix, open, close) = match kind {
            NodeKind::Principal => ("p", "([", "])"),
            NodeKind::Group => ("g", "{{", "}}"),
            NodeKind::Role => ("r", "[", "]"),
            NodeKind::Scope => ("s", "[(", ")]"),
        };
        self.counts[kind as usize] += 1;
        let id = format!("{prefix}{}", self.counts[kind as usize]);
        let line = format!("  {id}{open}\"{}\"{close}\n", mermaid_text(label));
        self.bytes += line.len();
        self.nodes.push(line);
        self.ids.insert(key, id.clone());
        id
    }

    fn edge(&mut self, from: &str, to: &str, link: Link) {
        let e = (from.to_owned(), to.to_owned(), link);
        if !self.edges.contains(&e) {
            self.bytes += from.len() + to.len() + 20;
            self.edges.push(e);
        }
    }

    /// Adds one access change: each principal → the `via` groups, outermost first → the role
    /// on the scope → the scope.
    fn add(&mut self, change: usize, a: &AccessChange) {
        let own = change.to_string();
        let link = if a.gain { Link::Gain } else { Link::Loss };
        let mut principals: Vec<String> =
            a.principals.iter().take(MAX_PRINCIPALS).map(|p| self.node(NodeKind::Principal, p, "")).collect();
        if a.principals.len() > MAX_PRINCIPALS {
            let more = format!("… and {} more", a.principals.len() - MAX_PRINCIPALS);
            // One "more" node per change: the count belongs to this change only.
            principals.push(self.node(NodeKind::Principal, &more, &own));
        }
        if principals.is_empty() && a.via.is_none() {
            principals.push(self.node(NodeKind::Principal, "nobody", ""));
        }
        let groups: Vec<String> =
            a.via.iter().flat_map(|v| v.split(" → ")).map(|g| self.node(NodeKind::Group, g.trim(), &own)).collect();
        let role = self.node(NodeKind::Role, &a.role, &own);
        let scope = self.node(NodeKind::Scope, &a.scope, "");
        let first = groups.first().cloned();
        for p in &principals {
            self.edge(p, first.as_deref().unwrap_or(&role), link);
        }
        for pair in groups.windows(2) {
            self.edge(&pair[0], &pair[1], link);
        }
        if let Some(last) = groups.last() {
            self.edge(last, &role, link);
        }
        self.edge(&role, &scope, Link::On);
    }

    fn render(&self) -> String {
        let mut out = String::from("```mermaid\nflowchart LR\n");
        for n in &self.nodes {
            out.push_str(n);
        }
        let mut gains = Vec::new();
        let mut losses = Vec::new();
        for (i, (from, to, link)) in self.edges.iter().enumerate() {
            let arrow = match link {
                Link::Gain => "==>|gains|",
                Link::Loss => "-.->|loses|",
                Link::On => "---|on|",
            };
            // Only the arrow into the role carries the word; the others are the path to it.
            let arrow = if to.starts_with('r') || *link == Link::On {
                arrow.to_owned()
            } else {
                arrow.split('|').next().unwrap_or(arrow).to_owned()
            };
            let _ = writeln!(out, "  {from} {arrow} {to}");
            match link {
                Link::Gain => gains.push(i.to_string()),
                Link::Loss => losses.push(i.to_string()),
                Link::On => {}
            }
        }
        if !gains.is_empty() {
            let _ = writeln!(out, "  linkStyle {} {GAIN_STYLE}", gains.join(","));
        }
        if !losses.is_empty() {
            let _ = writeln!(out, "  linkStyle {} {LOSS_STYLE}", losses.join(","));
        }
        out.push_str("```\n");
        out
    }
}

/// The access changes of `plan` as a fenced ```` ```mermaid ```` block followed by a legend
/// line, or `None` when the plan changes no access. At most `budget` bytes (`None` when even
/// one change does not fit).
pub(super) fn access_diagram(plan: &Plan, budget: usize) -> Option<String> {
    if plan.access_changes.is_empty() {
        return None;
    }
    let budget = budget.min(MAX_BYTES);
    let total = plan.access_changes.len();
    let mut diagram = Diagram::default();
    let mut drawn = 0;
    for (i, a) in plan.access_changes.iter().enumerate() {
        let mut next = diagram.clone();
        next.add(i, a);
        if next.bytes + 600 > budget || next.edges.len() > MAX_EDGES {
            break;
        }
        diagram = next;
        drawn += 1;
    }
    if drawn == 0 {
        return None;
    }
    let mut out = diagram.render();
    out.push_str("\n<sub>Thick green arrows: access gained · dotted red arrows: access lost.");
    if drawn < total {
        let _ =
            write!(out, " The diagram shows {drawn} of {total} access changes (size limit); the list has the rest.");
    }
    out.push_str("</sub>\n");
    Some(out)
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use super::*;
    use crate::render::fixtures;

    #[test]
    fn snapshots() {
        for (name, plan) in fixtures::all() {
            if let Some(d) = access_diagram(&plan, MAX_BYTES) {
                assert_snapshot!(name, d);
            }
        }
    }

    #[test]
    fn gains_and_losses_are_styled_apart() {
        let d = access_diagram(&fixtures::cli_example(), MAX_BYTES).unwrap();
        // alice and bob gain through the group; mallory loses directly.
        assert!(d.contains("  p1 ==> g1\n  p2 ==> g1\n  g1 ==>|gains| r1\n  r1 ---|on| s1\n"), "{d}");
        assert!(d.contains("  p3 -.->|loses| r2\n"), "{d}");
        assert!(d.contains(&format!("  linkStyle 0,1,2 {GAIN_STYLE}\n")), "{d}");
        assert!(d.contains(&format!("  linkStyle 4 {LOSS_STYLE}\n")), "{d}");
    }

    #[test]
    fn nested_groups_are_a_path_outermost_first_and_changes_do_not_mix() {
        let d = access_diagram(&fixtures::nested_access(), MAX_BYTES).unwrap();
        assert!(d.contains("  g1{{\"ml-outer\"}}\n  g2{{\"ml-inner\"}}\n"), "{d}");
        assert!(d.contains("  g1 ==> g2\n  g2 ==>|gains| r1\n"), "{d}");
        // dana gains Reader through the same groups as the others gain Data Scientist: her path
        // has groups of its own, so no path leads alice to Reader.
        assert!(d.contains("  p4 ==> g3\n  g3 ==> g4\n  g4 ==>|gains| r2\n"), "{d}");
        assert!(!d.contains("p1 ==> g3"), "{d}");
    }

    #[test]
    fn labels_cannot_break_out() {
        let mut plan = fixtures::cli_example();
        plan.access_changes[0].principals = vec!["a\"]; click p1 href \"x\" %%\n`md` <b>#&|".into()];
        plan.access_changes[0].role = "R\u{1b}[31m".into();
        let d = access_diagram(&plan, MAX_BYTES).unwrap();
        assert!(
            d.contains(
                "p1([\"a#quot;]#59; click p1 href #quot;x#quot; #37;#37; #96;md#96; #lt;b#gt;#35;#amp;#124;\"])"
            ),
            "{d}"
        );
        assert!(d.contains("r1[\"R [31m\"]"), "{d}");
        assert!(!d.contains('\u{1b}'));
        // Every line inside the fence is a node, an edge or a style: nothing a label started.
        let body: Vec<&str> = d.lines().skip(2).take_while(|l| *l != "```").collect();
        assert!(
            body.iter().all(|l| l.starts_with("  p")
                || l.starts_with("  g")
                || l.starts_with("  r")
                || l.starts_with("  s")
                || l.starts_with("  linkStyle ")),
            "{d}"
        );
    }

    #[test]
    fn huge_plans_are_bounded_with_a_note() {
        let plan = fixtures::large(10, 5000);
        let d = access_diagram(&plan, MAX_BYTES).unwrap();
        assert!(d.len() <= MAX_BYTES, "{}", d.len());
        let edges = d.lines().filter(|l| l.contains("==>") || l.contains("-.->") || l.contains("---")).count();
        assert!(edges <= MAX_EDGES, "{edges}");
        let drawn = d.lines().filter(|l| l.starts_with("  s")).count();
        assert!(d.contains(&format!("The diagram shows {drawn} of 5000 access changes (size limit)")), "{d}");
        assert_eq!(d, access_diagram(&plan, MAX_BYTES).unwrap());
    }

    #[test]
    fn many_principals_of_one_change_are_counted() {
        let mut plan = fixtures::cli_example();
        plan.access_changes[0].principals = (0..40).map(|i| format!("user{i:02}@contoso.com")).collect();
        let d = access_diagram(&plan, MAX_BYTES).unwrap();
        assert_eq!(d.matches("@contoso.com\"])").count(), MAX_PRINCIPALS + 1, "{d}");
        assert!(d.contains("\"… and 28 more\"])"), "{d}");
    }

    #[test]
    fn no_access_changes_no_diagram() {
        assert!(access_diagram(&fixtures::empty(), MAX_BYTES).is_none());
        assert!(access_diagram(&fixtures::cli_example(), 100).is_none());
    }
}
