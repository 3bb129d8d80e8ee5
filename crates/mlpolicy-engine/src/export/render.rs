//! Writing the selection as `.mlp` files (before `fmt` lays them out):
//!
//! - `main.mlp`: resource groups, identities (with federated credentials) and workspaces;
//! - `groups.mlp`: groups; a group whose `uniqueName` holds loop keys is declared in a loop
//!   over exactly those keys, so that its address (and `uniqueName`) is reproduced;
//! - `grants.mlp`: grants;
//! - `teams.mlp`, when the estate repeats a shape per team: flat, one `for team in ["x"]`
//!   block per team with literal values; compact, `let teams = [...]` and one
//!   `for team in teams` loop with `${team}` interpolation and `let` maps where values differ,
//!   then per-team blocks for what does not fit the shape. Both give every object the same
//!   address, so flat and compact exports lower to the same desired state.
//!
//! Objects not exported are listed at the end of the file of their kind, with the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::ir::{Decl, Expr, Grant, Local, TEAM, TEAM_VAR, quote, sanitize};
use super::select::{Placed, Section, Selection, Skipped};
use mlpolicy_lang::model::Kind;

/// File name → unformatted text.
pub type Files = BTreeMap<String, String>;

fn skipped_text(skipped: &[Skipped], section: Section) -> String {
    let items: Vec<&Skipped> = skipped.iter().filter(|s| s.section == section).collect();
    if items.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n# Not exported (mlpolicy cannot declare these faithfully; review them by hand):\n");
    for s in items {
        let _ = writeln!(out, "#   {}: {}", s.what, s.why);
    }
    out
}

/// `for key in ["a"] { for key2 in ["b"] { ... } }` around `body` for a keyed declaration.
fn keyed(keys: &[String], body: &str, var: &str) -> String {
    let mut out = String::new();
    for (i, k) in keys.iter().enumerate() {
        let v = if i == 0 { var.to_owned() } else { format!("{var}{}", i + 1) };
        let _ = writeln!(out, "for {v} in [{}] {{", quote(k));
    }
    out.push_str(body);
    for _ in keys {
        out.push_str("}\n");
    }
    out
}

/// Renders every file.
pub fn render(sel: &Selection, compact: bool) -> Files {
    let mut files = Files::new();
    let plain = |d: &&Placed<Decl>| d.team.is_none();

    let mut main = String::from("# Resource groups, managed identities and workspaces, as exported from the tenant.\n");
    for d in sel.decls.iter().filter(plain).filter(|d| d.item.kind != Kind::Group) {
        main.push('\n');
        main.push_str(&d.item.text(""));
    }
    main.push_str(&skipped_text(&sel.skipped, Section::Main));
    files.insert("main.mlp".into(), main);

    let mut groups = String::new();
    for d in sel.decls.iter().filter(plain).filter(|d| d.item.kind == Kind::Group) {
        groups.push('\n');
        if d.item.local.keys.is_empty() {
            groups.push_str(&d.item.text(""));
        } else {
            groups.push_str(&keyed(&d.item.local.keys, &d.item.text(""), "key"));
        }
    }
    groups.push_str(&skipped_text(&sel.skipped, Section::Groups));
    if !groups.is_empty() {
        files.insert("groups.mlp".into(), format!("# Entra ID groups, as exported from the tenant.\n{groups}"));
    }

    let mut grants = String::new();
    for g in sel.grants.iter().filter(|g| g.team.is_none()) {
        grants.push_str(&g.item.text(""));
    }
    grants.push_str(&skipped_text(&sel.skipped, Section::Grants));
    if !grants.is_empty() {
        files.insert("grants.mlp".into(), format!("# Role assignments, as exported from the tenant.\n\n{grants}"));
    }

    if let Some(teams) = &sel.teams {
        let text = if compact { compact_teams(sel, &teams.keys) } else { flat_teams(sel, &teams.keys) };
        files.insert("teams.mlp".into(), text);
    }
    files
}

/// One `for team in ["x"]` block per team, holding its objects and grants as they are.
fn flat_teams(sel: &Selection, teams: &[String]) -> String {
    let mut out =
        format!("# The estate repeats one shape per team ({}): each team's objects, as exported.\n", teams.join(", "));
    for team in teams {
        let decls: Vec<&Decl> =
            sel.decls.iter().filter(|d| d.team.as_deref() == Some(team.as_str())).map(|d| &d.item).collect();
        let grants: Vec<&Grant> =
            sel.grants.iter().filter(|g| g.team.as_deref() == Some(team.as_str())).map(|g| &g.item).collect();
        out.push_str(&team_block(team, &decls, &grants, Some(&format!("Team {team}."))));
    }
    out
}

fn team_block(team: &str, decls: &[&Decl], grants: &[&Grant], note: Option<&str>) -> String {
    if decls.is_empty() && grants.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n");
    if let Some(n) = note {
        let _ = writeln!(out, "# {n}");
    }
    // Grants have no keyed address: without declarations they need no loop.
    if decls.is_empty() {
        for g in grants {
            out.push_str(&g.text(""));
        }
        return out;
    }
    let _ = writeln!(out, "for {TEAM_VAR} in [{}] {{", quote(team));
    for d in decls {
        out.push_str(&d.text("  "));
        out.push('\n');
    }
    for g in grants {
        out.push_str(&g.text("  "));
    }
    out.push_str("}\n");
    out
}

/// `e` with every key naming `team` as the loop's own key.
fn norm(e: &Expr, team: &str) -> Expr {
    let local = |l: &Local| {
        if l.keys.len() == 1 && l.keys[0] == team {
            Local { name: l.name.clone(), keys: vec![TEAM.into()] }
        } else {
            l.clone()
        }
    };
    match e {
        Expr::Obj(k, l) => Expr::Obj(*k, local(l)),
        Expr::WsIdentity(l) => Expr::WsIdentity(local(l)),
        Expr::WsDep(l, d) => Expr::WsDep(local(l), *d),
        Expr::List(items) => Expr::List(items.iter().map(|i| norm(i, team)).collect()),
        Expr::Map(entries) => Expr::Map(entries.iter().map(|(k, v)| (k.clone(), norm(v, team))).collect()),
        other => other.clone(),
    }
}

fn names_declarations(e: &Expr) -> bool {
    match e {
        Expr::Obj(..) | Expr::WsIdentity(_) | Expr::WsDep(..) => true,
        Expr::List(items) => items.iter().any(names_declarations),
        Expr::Map(entries) => entries.iter().any(|(_, v)| names_declarations(v)),
        _ => false,
    }
}

/// The `let` maps a compact loop reads, by name.
struct Lets {
    taken: BTreeSet<String>,
    defs: Vec<(String, Expr)>,
}

impl Lets {
    fn name(&mut self, hint: &str) -> String {
        let base = sanitize(hint, "values");
        let mut name = base.clone();
        let mut n = 2;
        while self.taken.contains(&name) || name == TEAM_VAR || name == "teams" {
            name = format!("{base}_{n}");
            n += 1;
        }
        self.taken.insert(name.clone());
        name
    }
}

/// One expression for the values the teams have, or `None` when none can say it.
fn unify(values: &[(&String, &Expr)], hint: &str, lets: &mut Lets) -> Option<Expr> {
    let normed: Vec<Expr> = values.iter().map(|(t, e)| norm(e, t)).collect();
    if normed.windows(2).all(|w| w[0] == w[1]) {
        return normed.into_iter().next();
    }
    if values.iter().all(|(_, e)| matches!(e, Expr::Str(_))) {
        let templates: Option<Vec<String>> = values
            .iter()
            .map(|(t, e)| match e {
                Expr::Str(s) if s.contains(t.as_str()) => Some(s.replace(t.as_str(), TEAM)),
                _ => None,
            })
            .collect();
        if let Some(t) = templates.filter(|t| t.windows(2).all(|w| w[0] == w[1])) {
            return t.into_iter().next().map(Expr::Template);
        }
    }
    if let Some(Expr::Map(first)) = values.first().map(|(_, e)| *e) {
        let keys: Vec<&String> = first.iter().map(|(k, _)| k).collect();
        let same_keys =
            values.iter().all(|(_, e)| matches!(e, Expr::Map(m) if m.iter().map(|(k, _)| k).eq(keys.iter().copied())));
        if same_keys {
            let mut entries = Vec::new();
            for (i, k) in keys.iter().enumerate() {
                let column: Vec<(&String, &Expr)> = values
                    .iter()
                    .map(|(t, e)| match e {
                        Expr::Map(m) => (*t, &m[i].1),
                        _ => unreachable!("checked above"),
                    })
                    .collect();
                entries.push(((*k).clone(), unify(&column, &format!("{hint}_{k}"), lets)?));
            }
            return Some(Expr::Map(entries));
        }
    }
    if values.iter().any(|(_, e)| names_declarations(e)) {
        return None;
    }
    let all_users =
        values.iter().all(|(_, e)| matches!(e, Expr::List(items) if items.iter().all(|i| matches!(i, Expr::User(_)))));
    let name = lets.name(hint);
    if all_users {
        let map = values
            .iter()
            .map(|(t, e)| {
                let upns = match e {
                    Expr::List(items) => items
                        .iter()
                        .filter_map(|i| if let Expr::User(u) = i { Some(Expr::Str(u.clone())) } else { None })
                        .collect(),
                    _ => Vec::new(),
                };
                ((*t).clone(), Expr::List(upns))
            })
            .collect();
        lets.defs.push((name.clone(), Expr::Map(map)));
        return Some(Expr::Raw(format!("[user({name}[{TEAM_VAR}])]")));
    }
    lets.defs.push((name.clone(), Expr::Map(values.iter().map(|(t, e)| ((*t).clone(), (*e).clone())).collect())));
    Some(Expr::Raw(format!("{name}[{TEAM_VAR}]")))
}

fn unify_attrs(per_team: &[(&String, &[(String, Expr)])], hint: &str, lets: &mut Lets) -> Option<Vec<(String, Expr)>> {
    let (_, first) = per_team.first()?;
    let names: Vec<&String> = first.iter().map(|(n, _)| n).collect();
    if !per_team.iter().all(|(_, a)| a.iter().map(|(n, _)| n).eq(names.iter().copied())) {
        return None;
    }
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let column: Vec<(&String, &Expr)> = per_team.iter().map(|(t, a)| (*t, &a[i].1)).collect();
        out.push(((*name).clone(), unify(&column, &format!("{hint}_{name}"), lets)?));
    }
    Some(out)
}

/// One declaration for a family's objects, or `None`.
fn unify_decls(per_team: &[(&String, &Decl)], lets: &mut Lets) -> Option<Decl> {
    let (_, first) = per_team.first()?;
    if per_team.iter().any(|(_, d)| !d.notes.is_empty()) {
        return None;
    }
    let hint = &first.local.name;
    let attrs: Vec<(&String, &[(String, Expr)])> = per_team.iter().map(|(t, d)| (*t, d.attrs.as_slice())).collect();
    let attrs = unify_attrs(&attrs, hint, lets)?;
    let block_names: Vec<&String> = first.blocks.iter().map(|(n, _)| n).collect();
    if !per_team.iter().all(|(_, d)| d.blocks.iter().map(|(n, _)| n).eq(block_names.iter().copied())) {
        return None;
    }
    let mut blocks = Vec::new();
    for (i, name) in block_names.iter().enumerate() {
        let column: Vec<(&String, &[(String, Expr)])> =
            per_team.iter().map(|(t, d)| (*t, d.blocks[i].1.as_slice())).collect();
        blocks.push(((*name).clone(), unify_attrs(&column, &format!("{hint}_{name}"), lets)?));
    }
    Some(Decl {
        kind: first.kind,
        local: Local { name: first.local.name.clone(), keys: vec![TEAM.into()] },
        attrs,
        blocks,
        notes: Vec::new(),
    })
}

/// `let teams`, one loop for what every team has in the same shape, then per-team blocks for
/// the rest.
fn compact_teams(sel: &Selection, teams: &[String]) -> String {
    let mut lets = Lets { taken: BTreeSet::new(), defs: Vec::new() };
    let mut body = String::new();
    let mut left_decls: BTreeSet<(Kind, String)> = BTreeSet::new();
    // Families, in declaration order.
    let mut families: Vec<(Kind, String)> = Vec::new();
    for d in sel.decls.iter().filter(|d| d.team.is_some()) {
        let key = (d.item.kind, d.item.local.name.clone());
        if !families.contains(&key) {
            families.push(key);
        }
    }
    for (kind, name) in &families {
        let per_team: Vec<(&String, &Decl)> = teams
            .iter()
            .filter_map(|t| {
                sel.decls
                    .iter()
                    .find(|d| d.team.as_ref() == Some(t) && d.item.kind == *kind && d.item.local.name == *name)
                    .map(|d| (t, &d.item))
            })
            .collect();
        let mut scratch = Lets { taken: lets.taken.clone(), defs: Vec::new() };
        match (per_team.len() == teams.len()).then(|| unify_decls(&per_team, &mut scratch)).flatten() {
            Some(d) => {
                lets.taken = scratch.taken;
                lets.defs.extend(scratch.defs);
                body.push_str(&d.text("  "));
                body.push('\n');
            }
            None => {
                left_decls.insert((*kind, name.clone()));
            }
        }
    }
    // Grants by shape: the same line once the team's own keys are `[team]`.
    let mut shapes: BTreeMap<String, Vec<(&String, &Grant)>> = BTreeMap::new();
    for g in &sel.grants {
        let Some(t) = &g.team else { continue };
        let Some(t) = teams.iter().find(|x| *x == t) else { continue };
        let shape = Grant {
            principal: norm(&g.item.principal, t),
            scope: norm(&g.item.scope, t),
            attrs: Vec::new(),
            notes: Vec::new(),
            role: g.item.role.clone(),
        };
        shapes.entry(shape.line()).or_default().push((t, &g.item));
    }
    let mut left_grants: BTreeSet<String> = BTreeSet::new();
    for members in shapes.values() {
        let complete = members.len() == teams.len();
        let mut scratch = Lets { taken: lets.taken.clone(), defs: Vec::new() };
        let attrs: Vec<(&String, &[(String, Expr)])> = members.iter().map(|(t, g)| (*t, g.attrs.as_slice())).collect();
        let hint = sanitize(&members[0].1.role, "grant");
        match complete.then(|| unify_attrs(&attrs, &hint, &mut scratch)).flatten() {
            Some(attrs) => {
                lets.taken = scratch.taken;
                lets.defs.extend(scratch.defs);
                let (t, g) = members[0];
                let grant = Grant {
                    role: g.role.clone(),
                    principal: norm(&g.principal, t),
                    scope: norm(&g.scope, t),
                    attrs,
                    notes: Vec::new(),
                };
                body.push_str(&grant.text("  "));
            }
            None => left_grants.extend(members.iter().map(|(_, g)| g.line())),
        }
    }
    let mut out = format!(
        "# The estate repeats one shape per team: one loop declares what every team has alike.\n\nlet teams = [{}]\n",
        teams.iter().map(|t| quote(t)).collect::<Vec<_>>().join(", ")
    );
    for (name, value) in &lets.defs {
        let _ = writeln!(out, "\nlet {name} = {}", value.text());
    }
    if !body.is_empty() {
        let _ = write!(out, "\nfor {TEAM_VAR} in teams {{\n{body}}}\n");
    }
    for team in teams {
        let decls: Vec<&Decl> = sel
            .decls
            .iter()
            .filter(|d| d.team.as_ref() == Some(team) && left_decls.contains(&(d.item.kind, d.item.local.name.clone())))
            .map(|d| &d.item)
            .collect();
        let grants: Vec<&Grant> = sel
            .grants
            .iter()
            .filter(|g| g.team.as_ref() == Some(team) && left_grants.contains(&g.item.line()))
            .map(|g| &g.item)
            .collect();
        let note = format!("What team {team} has beside the shared shape.");
        out.push_str(&team_block(team, &decls, &grants, Some(&note)));
    }
    out
}
