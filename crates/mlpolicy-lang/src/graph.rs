//! The dependency graph that apply follows: an edge from an object to each object that must
//! exist before it (an identity before its federated credentials, a group before the grant that
//! names it, a member group before the group that holds it).
//!
//! Input: the checked [`Model`]. Output: [`DepGraph`] with a deterministic topological order
//! (ties broken by address) and its reverse for deletions, or E0301 naming a cycle.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::diagnostics::Code;
use crate::diagnostics::Diagnostic;
use crate::model::{Address, Kind, Model, Principal, Scope, WorkspaceIdentity};
use crate::source::Span;

/// Why one object depends on another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Edge {
    /// Lives in (resource group, identity of a federated credential).
    Parent,
    /// Refers to (workspace identity, grant principal or scope, group member or owner).
    Reference,
}

/// The dependency graph of a model.
#[derive(Debug, Clone)]
pub struct DepGraph {
    pub graph: DiGraph<Address, Edge>,
    /// Every node, dependencies first; ties broken by address.
    pub order: Vec<NodeIndex>,
    pub index: BTreeMap<Address, NodeIndex>,
}

impl DepGraph {
    /// Builds the graph; a dependency cycle is an error that names every object on it.
    pub fn build(model: &Model) -> Result<DepGraph, Diagnostic> {
        let mut graph = DiGraph::with_capacity(model.len(), 0);
        for meta in model.metas() {
            graph.add_node(meta.address.clone());
        }
        // Each node's position in address order: integers stand in for addresses from here on,
        // so that sorting edges and the ready set compares no strings.
        let mut by_address: Vec<NodeIndex> = graph.node_indices().collect();
        by_address.sort_by(|a, b| graph[*a].cmp(&graph[*b]));
        let mut rank = vec![0; by_address.len()];
        for (r, n) in by_address.iter().enumerate() {
            rank[n.index()] = r;
        }
        let edges = edges_by_rank(model, &graph.node_indices().map(|n| (&graph[n], rank[n.index()])).collect());
        for (from, to, e) in edges {
            graph.add_edge(by_address[from], by_address[to], e);
        }
        let index = by_address.iter().map(|n| (graph[*n].clone(), *n)).collect();
        let mut g = DepGraph { graph, order: Vec::new(), index };
        if let Some(cycle) = g.cycle() {
            let spans: BTreeMap<&Address, Span> = model.metas().map(|m| (&m.address, m.name_span)).collect();
            let first = &cycle[0];
            let path: Vec<String> = cycle.iter().chain(std::iter::once(first)).map(ToString::to_string).collect();
            let mut d = Diagnostic::error(Code::E0301, format!("dependency cycle: {}", path.join(" → ")))
                .with_label(spans[first], "this depends on itself through the cycle")
                .with_help("Entra ID does not allow a group to contain itself through nesting; break the cycle");
            for a in &cycle[1..] {
                if spans[a].file == spans[first].file {
                    d = d.with_secondary(spans[a], "on the cycle");
                }
            }
            return Err(d);
        }
        g.order = g.topological(&rank);
        Ok(g)
    }

    /// One cycle's addresses, sorted so that the smallest address starts it, if any.
    fn cycle(&self) -> Option<Vec<Address>> {
        let mut sccs: Vec<Vec<NodeIndex>> = tarjan_scc(&self.graph)
            .into_iter()
            .filter(|c| c.len() > 1 || self.graph.contains_edge(c[0], c[0]))
            .collect();
        sccs.sort_by_key(|c| c.iter().map(|n| self.graph[*n].clone()).min());
        let scc = sccs.into_iter().next()?;
        let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
        let start = *scc.iter().min_by_key(|n| &self.graph[**n])?;
        // Walk the cycle from `start`, always taking the smallest next member.
        let mut path = vec![start];
        let mut current = start;
        loop {
            let next = self
                .graph
                .edges(current)
                .map(|e| e.target())
                .filter(|t| members.contains(t))
                .min_by_key(|t| (path.contains(t) && *t != start, self.graph[*t].clone()))?;
            if next == start || path.contains(&next) {
                break;
            }
            path.push(next);
            current = next;
        }
        Some(path.into_iter().map(|n| self.graph[n].clone()).collect())
    }

    /// Kahn's algorithm with a ready set sorted by address (`rank`: each node's position in
    /// address order), so the order is the same on every run.
    fn topological(&self, rank: &[usize]) -> Vec<NodeIndex> {
        let mut pending: Vec<usize> = self.graph.node_indices().map(|n| self.graph.edges(n).count()).collect();
        let mut ready: BTreeSet<(usize, NodeIndex)> =
            self.graph.node_indices().filter(|n| pending[n.index()] == 0).map(|n| (rank[n.index()], n)).collect();
        let mut order = Vec::with_capacity(self.graph.node_count());
        while let Some((_, n)) = ready.pop_first() {
            order.push(n);
            for e in self.graph.edges_directed(n, petgraph::Direction::Incoming) {
                let dependent = e.source();
                let c = &mut pending[dependent.index()];
                *c -= 1;
                if *c == 0 {
                    ready.insert((rank[dependent.index()], dependent));
                }
            }
        }
        order
    }

    /// Addresses in creation order.
    pub fn creation_order(&self) -> impl Iterator<Item = &Address> {
        self.order.iter().map(|n| &self.graph[*n])
    }

    /// Addresses in deletion order (dependents first).
    pub fn deletion_order(&self) -> impl Iterator<Item = &Address> {
        self.order.iter().rev().map(|n| &self.graph[*n])
    }

    /// The objects `address` depends on.
    pub fn dependencies(&self, address: &Address) -> Vec<&Address> {
        let Some(n) = self.index.get(address) else { return Vec::new() };
        let mut out: Vec<&Address> = self.graph.edges(*n).map(|e| &self.graph[e.target()]).collect();
        out.sort();
        out
    }

    /// Graphviz DOT, nodes and edges sorted by address. Edges point from an object to what it
    /// needs, as `terraform graph` draws them.
    pub fn to_dot(&self) -> String {
        let mut out = String::from(
            "digraph mlpolicy {\n  rankdir = \"RL\";\n  node [shape = \"box\", fontname = \"Helvetica\"];\n",
        );
        let mut nodes: Vec<&Address> = self.index.keys().collect();
        nodes.sort();
        for a in &nodes {
            let shape = match a.kind() {
                Kind::Grant => "note",
                Kind::Group => "ellipse",
                Kind::ResourceGroup => "folder",
                _ => "box",
            };
            let _ = writeln!(out, "  {} [shape = \"{shape}\"];", dot_id(&a.to_string()));
        }
        let mut edges: Vec<(&Address, &Address)> =
            self.graph.edge_references().map(|e| (&self.graph[e.source()], &self.graph[e.target()])).collect();
        edges.sort();
        for (from, to) in edges {
            let _ = writeln!(out, "  {} -> {};", dot_id(&from.to_string()), dot_id(&to.to_string()));
        }
        out.push_str("}\n");
        out
    }

    /// A Mermaid flowchart (`mlpolicy graph --format mermaid`), for a markdown page or a pull
    /// request that renders Mermaid: the same nodes and edges as [`DepGraph::to_dot`], nodes
    /// named `n0`, `n1`, ... in address order, shapes by kind.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart RL\n");
        let nodes: Vec<&Address> = self.index.keys().collect();
        let ids: BTreeMap<&Address, usize> = nodes.iter().enumerate().map(|(i, a)| (*a, i)).collect();
        for (i, a) in nodes.iter().enumerate() {
            let label = mermaid_text(&a.to_string());
            let node = match a.kind() {
                Kind::Grant => format!(">\"{label}\"]"),
                Kind::Group => format!("([\"{label}\"])"),
                Kind::ResourceGroup => format!("[/\"{label}\"/]"),
                _ => format!("[\"{label}\"]"),
            };
            let _ = writeln!(out, "  n{i}{node}");
        }
        let mut edges: Vec<(usize, usize)> = self
            .graph
            .edge_references()
            .map(|e| (ids[&self.graph[e.source()]], ids[&self.graph[e.target()]]))
            .collect();
        edges.sort_unstable();
        for (from, to) in edges {
            let _ = writeln!(out, "  n{from} --> n{to}");
        }
        out
    }
}

/// Text for a quoted Mermaid label (`id["..."]`): Mermaid's entity codes for the characters
/// that would end the label, start markup or a comment (`"`, `#`, `<`, `>`, `&`, `` ` ``,
/// `|`, `;`, `%`), control characters and line breaks as spaces.
pub fn mermaid_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '#' => out.push_str("#35;"),
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            '`' => out.push_str("#96;"),
            '|' => out.push_str("#124;"),
            ';' => out.push_str("#59;"),
            '%' => out.push_str("#37;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Every dependency of the model between two of its objects, as `(from, to, why)` with objects
/// given by `ranks`, sorted and without repeats.
fn edges_by_rank(model: &Model, ranks: &HashMap<&Address, usize>) -> Vec<(usize, usize, Edge)> {
    let mut edges = Vec::new();
    let mut add = |from: &Address, to: &Address, e: Edge| {
        if let (Some(&from), Some(&to)) = (ranks.get(from), ranks.get(to)) {
            edges.push((from, to, e));
        }
    };
    for (a, i) in &model.identities {
        add(a, &i.resource_group, Edge::Parent);
    }
    for (a, f) in &model.federated {
        add(a, &f.identity, Edge::Parent);
    }
    for (a, w) in &model.workspaces {
        add(a, &w.resource_group, Edge::Parent);
        if let WorkspaceIdentity::User(id) = &w.identity {
            add(a, id, Edge::Reference);
        }
    }
    for (a, g) in &model.groups {
        for p in g.members.iter().chain(&g.owners) {
            if let Some(target) = principal_object(p) {
                add(a, target, Edge::Reference);
            }
        }
    }
    for (a, g) in &model.grants {
        if let Some(target) = principal_object(&g.principal) {
            add(a, target, Edge::Reference);
        }
        match &g.scope {
            Scope::ResourceGroup(t) | Scope::Workspace(t) | Scope::WorkspaceDependency(t, _) => {
                add(a, t, Edge::Reference);
            }
            Scope::Subscription { .. } | Scope::Arm(_) => {}
        }
    }
    edges.sort_unstable();
    edges.dedup();
    edges
}

fn principal_object(p: &Principal) -> Option<&Address> {
    match p {
        Principal::Group(a) | Principal::Identity(a) | Principal::WorkspaceSystem(a) => Some(a),
        Principal::User(_) | Principal::ServicePrincipal(_) | Principal::ExistingGroup(_) => None,
    }
}

fn dot_id(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
