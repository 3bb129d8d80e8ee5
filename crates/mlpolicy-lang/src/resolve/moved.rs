//! `moved { from = ADDRESS  to = ADDRESS }` blocks: each address must be well-formed (a
//! declaration `KIND.NAME`, with literal `for` keys, or `identity.X.federated.Y`), `to` must be
//! declared and `from` must not be; a move names one object kind on both sides, a federated
//! credential stays under its identity, and moves neither chain nor repeat. A block whose
//! addresses have no keys while `to` is declared inside a `for` moves every instance, keys
//! kept. Codes: E0121 E0122 E0123 E0124.

use std::collections::BTreeSet;

use crate::ast::{self, Expr, ExprKind, Segment};
use crate::diagnostics::{Code, Diagnostic, Diagnostics};
use crate::model::{Address, Key, Kind, Move};
use crate::resolve::ResolvedDecl;
use crate::source::Span;
use mlpolicy_vocab::suggest;

/// One block with both addresses read.
struct Written<'a> {
    from: Address,
    to: Address,
    block: &'a ast::Moved,
}

/// The valid moves of `blocks` (top-level `moved` blocks, in source order), expanded per
/// instance; every problem is reported in `diags`.
pub fn resolve_moves(blocks: &[&ast::Moved], decls: &[ResolvedDecl], diags: &mut Diagnostics) -> Vec<Move> {
    let declared: BTreeSet<&Address> = decls
        .iter()
        .filter(|d| d.kind() != Kind::Grant)
        .flat_map(|d| std::iter::once(&d.address).chain(d.children.iter().map(|c| &c.address)))
        .collect();
    let mut written = Vec::new();
    for &block in blocks {
        let (from, to) = match (address_of(&block.from), address_of(&block.to)) {
            (Ok(from), Ok(to)) => (from, to),
            (from, to) => {
                for (e, r) in [(&block.from, from), (&block.to, to)] {
                    if let Err(why) = r {
                        diags.push(malformed(e.span, &why));
                    }
                }
                continue;
            }
        };
        if let Some(d) = shape_problem(&from, &to, block, blocks) {
            diags.push(d);
            continue;
        }
        written.push(Written { from, to, block });
    }
    let written = without_chains(written, diags);
    let mut moves = Vec::new();
    for w in &written {
        moves.extend(expand(w, &declared, diags));
    }
    without_repeats(moves, diags)
}

/// E0121 with the reason.
fn malformed(span: Span, why: &str) -> Diagnostic {
    Diagnostic::error(Code::E0121, format!("invalid `moved` block: {why}"))
        .with_label(span, "not an address this block can move")
        .with_help("write `moved { from = group.old_name  to = group.new_name }`: the two addresses of one object, before and after")
}

/// The address a `from`/`to` expression names, or why it names none.
fn address_of(e: &Expr) -> Result<Address, String> {
    let ExprKind::Path(p) = &e.kind else {
        return Err("an address is written `KIND.NAME`, such as `group.readers`".into());
    };
    let kinds = Kind::TOP_LEVEL.map(Kind::keyword);
    let Some(kind) = Kind::from_keyword(&p.root.node).filter(|k| Kind::TOP_LEVEL.contains(k)) else {
        let hint = suggest::did_you_mean(&p.root.node, kinds.iter().copied()).unwrap_or_else(|| {
            if p.root.node == "grant" {
                "grants have no name of their own: they follow their principal and scope".into()
            } else {
                format!("the kinds are {}", kinds.map(|k| format!("`{k}`")).join(", "))
            }
        });
        return Err(format!("`{}` is not a kind of object that can move ({hint})", p.root.node));
    };
    let mut segments = p.segments.iter();
    let Some(Segment::Field(name)) = segments.next() else {
        return Err(format!("`{kind}` needs a name: `{kind}.NAME`"));
    };
    let mut keys = Vec::new();
    let mut fields = Vec::new();
    for s in segments {
        match s {
            Segment::Index(i) if fields.is_empty() => {
                keys.push(key_of(i).ok_or_else(|| {
                    "`for` keys in a `moved` block are written out: `[\"fraud\"]` or `[3]`".to_owned()
                })?);
            }
            Segment::Index(_) => return Err("only a declaration's own address carries `for` keys".into()),
            Segment::Field(f) => fields.push(f.node.as_str()),
        }
    }
    let decl = Address::decl(kind, name.node.clone(), keys);
    match fields.as_slice() {
        [] => Ok(decl),
        ["federated", credential] if kind == Kind::Identity => {
            Ok(Address::Federated { identity: Box::new(decl), name: (*credential).to_owned() })
        }
        _ => Err(format!("`{}` is not the address of a declared object", path_text(kind, &name.node, &fields))),
    }
}

fn path_text(kind: Kind, name: &str, fields: &[&str]) -> String {
    let mut s = format!("{kind}.{name}");
    for f in fields {
        s.push('.');
        s.push_str(f);
    }
    s
}

/// A literal key: a plain string or an integer.
fn key_of(e: &Expr) -> Option<Key> {
    match &e.kind {
        ExprKind::Str(s) => s.as_plain().map(Key::Str),
        ExprKind::Int(i) => Some(Key::Int(*i)),
        _ => None,
    }
}

/// The rules a block breaks whatever is declared: same address twice, another kind, a
/// credential changing identity.
fn shape_problem(from: &Address, to: &Address, block: &ast::Moved, blocks: &[&ast::Moved]) -> Option<Diagnostic> {
    if from == to {
        return Some(
            Diagnostic::error(Code::E0121, format!("`moved` block moves `{to}` to itself"))
                .with_label(block.span, "nothing moves")
                .with_help("remove the block, or name the old address in `from`"),
        );
    }
    if from.kind() != to.kind() {
        return Some(
            Diagnostic::error(Code::E0121, format!("`{from}` cannot move to `{to}`: a move keeps the kind of object"))
                .with_label(block.to.span, format!("{}, not {}", a_kind(to.kind()), a_kind(from.kind())))
                .with_help("a different kind of object is a different object in Azure: remove this block"),
        );
    }
    if let (Address::Federated { identity: fi, .. }, Address::Federated { identity: ti, .. }) = (from, to) {
        let identity_moves = blocks
            .iter()
            .any(|b| address_of(&b.from).is_ok_and(|f| f == **fi) && address_of(&b.to).is_ok_and(|t| t == **ti));
        if fi != ti && !identity_moves {
            return Some(
                Diagnostic::error(
                    Code::E0121,
                    format!("`{from}` cannot move to `{to}`: a federated credential stays under its identity"),
                )
                .with_label(block.to.span, format!("under {ti}, not {fi}"))
                .with_help("its Azure id names the identity; to rename the identity's address, move the identity"),
            );
        }
    }
    None
}

/// "a group", "an identity".
fn a_kind(kind: Kind) -> String {
    let word = kind.keyword().replace('_', " ");
    let article = if word.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    format!("{article} {word}")
}

/// Drops (and reports, E0124) blocks whose `to` is another block's `from`: chains and cycles.
fn without_chains<'a>(written: Vec<Written<'a>>, diags: &mut Diagnostics) -> Vec<Written<'a>> {
    let mut bad = BTreeSet::new();
    for (i, w) in written.iter().enumerate() {
        if bad.contains(&i) {
            continue;
        }
        let Some(j) = written.iter().position(|n| n.from == w.to) else { continue };
        // Back to where the chain starts (a cycle starts anywhere), then along it.
        let mut start = i;
        for _ in 0..written.len() {
            match written.iter().position(|n| n.to == written[start].from) {
                Some(prev) if prev != i => start = prev,
                Some(_) => {
                    start = i;
                    break;
                }
                None => break,
            }
        }
        let mut path = vec![written[start].from.to_string()];
        let mut at = start;
        let mut cycle = false;
        for _ in 0..written.len() {
            bad.insert(at);
            path.push(written[at].to.to_string());
            if written[at].to == written[start].from {
                cycle = true;
                break;
            }
            match written.iter().position(|n| n.from == written[at].to) {
                Some(next) if !bad.contains(&next) => at = next,
                _ => break,
            }
        }
        let (message, help) = if cycle {
            (
                format!("`moved` blocks form a cycle: {}", path.join(" → ")),
                "a cycle moves nothing: remove these blocks".to_owned(),
            )
        } else {
            (
                format!("`moved` blocks chain: {}", path.join(" → ")),
                format!(
                    "write one block from the oldest address to the declared one: `moved {{ from = {}  to = {} }}`",
                    path[0],
                    path[path.len() - 1]
                ),
            )
        };
        diags.push(
            Diagnostic::error(Code::E0124, message)
                .with_label(written[j].block.span, "this block moves what another block moved here")
                .with_secondary(w.block.span, "moves it here")
                .with_help(help),
        );
    }
    written.into_iter().enumerate().filter(|(i, _)| !bad.contains(i)).map(|(_, w)| w).collect()
}

/// The moves of one block: one, or one per instance of a `for` declaration. E0122 when `to` is
/// not declared, E0123 when `from` still is.
fn expand(w: &Written<'_>, declared: &BTreeSet<&Address>, diags: &mut Diagnostics) -> Vec<Move> {
    let span = w.block.span;
    let instances: Vec<&Address> = match &w.to {
        Address::Decl { kind, name, keys } if keys.is_empty() && !declared.contains(&w.to) => declared
            .iter()
            .copied()
            .filter(|a| matches!(a, Address::Decl { kind: k, name: n, .. } if k == kind && n == name))
            .collect(),
        _ if declared.contains(&w.to) => vec![&w.to],
        _ => Vec::new(),
    };
    if instances.is_empty() {
        let names: Vec<String> = declared.iter().filter(|a| a.kind() == w.to.kind()).map(ToString::to_string).collect();
        let help = suggest::did_you_mean(&w.to.to_string(), names.iter().map(String::as_str))
            .unwrap_or_else(|| "`to` names the object as the configuration declares it now".into());
        diags.push(
            Diagnostic::error(Code::E0122, format!("`moved` block moves to `{}`, which is not declared", w.to))
                .with_label(w.block.to.span, "no such object in the configuration")
                .with_help(help),
        );
        return Vec::new();
    }
    let whole = instances.first().is_some_and(|a| **a != w.to);
    if whole && !w.from.keys().is_empty() {
        diags.push(malformed(
            w.block.from.span,
            &format!("`{}` is declared in a `for`: every instance moves from a declaration without keys", w.to),
        ));
        return Vec::new();
    }
    let moves: Vec<Move> = instances
        .into_iter()
        .map(|to| {
            let from = match (&w.from, whole) {
                (Address::Decl { kind, name, .. }, true) => Address::decl(*kind, name.clone(), to.keys().to_vec()),
                _ => w.from.clone(),
            };
            Move { from, to: to.clone(), span }
        })
        .collect();
    let still: Vec<&Move> = moves.iter().filter(|m| declared.contains(&m.from)).collect();
    if let Some(first) = still.first() {
        diags.push(
            Diagnostic::error(Code::E0123, format!("`moved` block moves from `{}`, which is still declared", first.from))
                .with_label(w.block.from.span, "still in the configuration")
                .with_help(
                    "`from` is the address the object had before; an object declared at both addresses would be two objects",
                ),
        );
        return Vec::new();
    }
    moves
}

/// Drops (and reports, E0124) moves that name an address another move names too.
fn without_repeats(moves: Vec<Move>, diags: &mut Diagnostics) -> Vec<Move> {
    let mut out: Vec<Move> = Vec::with_capacity(moves.len());
    for m in moves {
        let twice = out.iter().find(|o| o.from == m.from || o.to == m.to);
        if let Some(o) = twice {
            let (what, address) = if o.from == m.from { ("from", &m.from) } else { ("to", &m.to) };
            diags.push(
                Diagnostic::error(Code::E0124, format!("two `moved` blocks move {what} `{address}`"))
                    .with_label(m.span, "second block")
                    .with_secondary(o.span, "first block")
                    .with_help("one object has one address before and one after: keep one of the blocks"),
            );
            continue;
        }
        out.push(m);
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::model::{Address, Key, Kind};

    fn compile(text: &str) -> crate::Compiled {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.mlp"), text).unwrap();
        std::fs::write(
            dir.path().join("mlpolicy.yaml"),
            "subscriptions:\n  prod: 11111111-1111-1111-1111-111111111111\n",
        )
        .unwrap();
        crate::compile(dir.path(), &crate::settings::Overrides::default())
    }

    const CONFIG: &str = r#"
resource_group ml {
  subscription = sub.prod
  name         = "rg"
  location     = "westeurope"
}

identity ci {
  resource_group = resource_group.ml
  name           = "id-ci"
  federated github {
    issuer  = "https://token.actions.githubusercontent.com"
    subject = "repo:contoso/x:ref:refs/heads/main"
  }
}

for team in ["fraud", "risk"] {
  group teams {
    name = "ml-${team}"
  }
}

grant "Reader" to group.teams["fraud"] on resource_group.ml

moved {
  from = group.ds
  to   = group.teams
}

moved {
  from = identity.trainer
  to   = identity.ci
}
"#;

    #[test]
    fn whole_declarations_move_per_instance_and_what_follows_moves_along() {
        let c = compile(CONFIG);
        assert!(!c.has_errors(), "{:#?}", c.diagnostics);
        let keyed = |name: &str, k: &str| Address::decl(Kind::Group, name, vec![Key::Str(k.into())]);
        let moves: Vec<(String, String)> =
            c.model.moves.iter().map(|m| (m.from.to_string(), m.to.to_string())).collect();
        assert_eq!(
            moves,
            [
                ("group.ds[\"fraud\"]".to_owned(), "group.teams[\"fraud\"]".to_owned()),
                ("group.ds[\"risk\"]".to_owned(), "group.teams[\"risk\"]".to_owned()),
                ("identity.trainer".to_owned(), "identity.ci".to_owned()),
            ]
        );
        assert_eq!(c.model.prior_address(&keyed("teams", "risk")), Some(keyed("ds", "risk")));
        let fic = Address::Federated {
            identity: Box::new(Address::decl(Kind::Identity, "ci", vec![])),
            name: "github".into(),
        };
        assert_eq!(c.model.prior_address(&fic).unwrap().to_string(), "identity.trainer.federated.github");
        let grant = c.model.grants.keys().next().unwrap();
        assert_eq!(
            c.model.prior_address(grant).unwrap().to_string(),
            "grant \"Reader\" to group.ds[\"fraud\"] on resource_group.ml"
        );
        assert_eq!(c.model.prior_address(&Address::decl(Kind::ResourceGroup, "ml", vec![])), None);
    }

    #[test]
    fn each_rule_has_its_code() {
        let cases = [
            ("moved {\n  from = group.teams\n  to   = group.nothing\n}\n", "E0122"),
            ("moved {\n  from = resource_group.ml\n  to   = identity.ci\n}\n", "E0121"),
            ("moved {\n  from = group.teams[\"fraud\"]\n  to   = group.teams[\"risk\"]\n}\n", "E0123"),
            ("moved {\n  from = group.teams[\"x\"]\n  to   = group.teams\n}\n", "E0121"),
            ("moved {\n  from = group.a[\"x\"]\n  to   = group.teams\n}\n", "E0121"),
            (
                "moved {\n  from = group.a\n  to   = group.b\n}\n\nmoved {\n  from = group.b\n  to   = group.teams\n}\n",
                "E0124",
            ),
            ("moved {\n  from = scope(\"x\")\n  to   = group.teams\n}\n", "E0121"),
        ];
        for (extra, code) in cases {
            let c = compile(&format!("{}\n{extra}", &CONFIG[..CONFIG.find("moved {").unwrap()]));
            let codes: Vec<&str> = c.diagnostics.items.iter().map(|d| d.code.as_str()).collect();
            assert_eq!(codes, [code], "{extra}");
            assert!(c.model.moves.is_empty(), "{extra}");
        }
    }
}
