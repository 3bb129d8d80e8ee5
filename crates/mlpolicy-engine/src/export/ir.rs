//! The export's own small tree of what it writes: declarations, grants and expressions, with
//! local names already chosen. Printing it gives `.mlp` text that `fmt` then lays out.

use std::fmt::Write as _;

use mlpolicy_lang::model::{Dependency, Kind};
use mlpolicy_lang::syntax::{KEYWORDS, is_identifier};

/// The key a loop body uses for its own team: rendered `[team]`, or `${team}` in strings.
pub const TEAM: &str = "\u{0}";
/// The loop variable of team loops.
pub const TEAM_VAR: &str = "team";

/// A local name with the loop keys it is declared under.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Local {
    pub name: String,
    pub keys: Vec<String>,
}

impl Local {
    pub fn plain(name: impl Into<String>) -> Local {
        Local { name: name.into(), keys: Vec::new() }
    }
}

/// An expression of the generated configuration.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Expr {
    Str(String),
    Bool(bool),
    List(Vec<Expr>),
    Map(Vec<(String, Expr)>),
    Obj(Kind, Local),
    WsIdentity(Local),
    WsDep(Local, Dependency),
    Sub(String),
    User(String),
    ServicePrincipal(String),
    ExistingGroup(String),
    Scope(String),
    /// A string with the loop variable interpolated at each [`TEAM`].
    Template(String),
    /// Source text as is (a `let` lookup).
    Raw(String),
}

/// One declaration (`resource_group`, `identity`, `workspace`, `group`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decl {
    pub kind: Kind,
    pub local: Local,
    pub attrs: Vec<(String, Expr)>,
    /// `federated NAME { attrs }` blocks of an identity.
    pub blocks: Vec<(String, Vec<(String, Expr)>)>,
    /// Comment lines written above it.
    pub notes: Vec<String>,
}

/// One `grant`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub role: String,
    pub principal: Expr,
    pub scope: Expr,
    pub attrs: Vec<(String, Expr)>,
    pub notes: Vec<String>,
}

/// A string literal: `"..."` with the language's escapes.
pub fn quote(s: &str) -> String {
    mlpolicy_lang::model::quote(s)
}

/// A string literal with `${team}` at every [`TEAM`].
fn template(s: &str) -> String {
    let mut out = String::from('"');
    let parts: Vec<&str> = s.split(TEAM).collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        mlpolicy_lang::fmt::escape_into(&mut out, part, !last);
        if !last {
            let _ = write!(out, "${{{TEAM_VAR}}}");
        }
    }
    out.push('"');
    out
}

fn map_key(k: &str) -> String {
    if is_identifier(k) && !KEYWORDS.contains(&k) { k.to_owned() } else { quote(k) }
}

/// `kind.name["key"]` (or `[team]`).
pub fn object(kind: Kind, local: &Local) -> String {
    let mut out = format!("{kind}.{}", local.name);
    for k in &local.keys {
        if k == TEAM {
            let _ = write!(out, "[{TEAM_VAR}]");
        } else {
            let _ = write!(out, "[{}]", quote(k));
        }
    }
    out
}

impl Expr {
    /// The expression as source text, on one line (`fmt` breaks long lists).
    pub fn text(&self) -> String {
        match self {
            Expr::Str(s) => quote(s),
            Expr::Bool(b) => b.to_string(),
            Expr::List(items) => format!("[{}]", items.iter().map(Expr::text).collect::<Vec<_>>().join(", ")),
            Expr::Map(entries) if entries.is_empty() => "{}".to_owned(),
            Expr::Map(entries) => format!(
                "{{ {} }}",
                entries.iter().map(|(k, v)| format!("{} = {}", map_key(k), v.text())).collect::<Vec<_>>().join(", ")
            ),
            Expr::Obj(kind, l) => object(*kind, l),
            Expr::WsIdentity(l) => format!("{}.identity", object(Kind::Workspace, l)),
            Expr::WsDep(l, d) => format!("{}.{}", object(Kind::Workspace, l), d.attribute()),
            Expr::Sub(alias) => format!("sub.{alias}"),
            Expr::User(u) => format!("user({})", quote(u)),
            Expr::ServicePrincipal(s) => format!("service_principal({})", quote(s)),
            Expr::ExistingGroup(g) => format!("existing_group({})", quote(g)),
            Expr::Scope(s) => format!("scope({})", quote(s)),
            Expr::Template(t) => template(t),
            Expr::Raw(r) => r.clone(),
        }
    }
}

fn attrs_text(out: &mut String, attrs: &[(String, Expr)], indent: &str) {
    for (name, value) in attrs {
        let _ = writeln!(out, "{indent}{name} = {}", value.text());
    }
}

fn notes_text(out: &mut String, notes: &[String], indent: &str) {
    for n in notes {
        for line in n.lines() {
            let _ = writeln!(out, "{indent}# {line}");
        }
    }
}

impl Decl {
    /// The declaration as source text, indented by `indent`.
    pub fn text(&self, indent: &str) -> String {
        let mut out = String::new();
        notes_text(&mut out, &self.notes, indent);
        let _ = writeln!(out, "{indent}{} {} {{", self.kind, self.local.name);
        let inner = format!("{indent}  ");
        attrs_text(&mut out, &self.attrs, &inner);
        for (name, attrs) in &self.blocks {
            let _ = writeln!(out, "{inner}federated {name} {{");
            attrs_text(&mut out, attrs, &format!("{inner}  "));
            let _ = writeln!(out, "{inner}}}");
        }
        let _ = writeln!(out, "{indent}}}");
        out
    }
}

impl Grant {
    /// `grant "ROLE" to PRINCIPAL on SCOPE`, as the address of the grant reads.
    pub fn line(&self) -> String {
        format!("grant {} to {} on {}", quote(&self.role), self.principal.text(), self.scope.text())
    }

    /// The grant as source text, indented by `indent`.
    pub fn text(&self, indent: &str) -> String {
        let mut out = String::new();
        notes_text(&mut out, &self.notes, indent);
        if self.attrs.is_empty() {
            let _ = writeln!(out, "{indent}{}", self.line());
        } else {
            let _ = writeln!(out, "{indent}{} {{", self.line());
            attrs_text(&mut out, &self.attrs, &format!("{indent}  "));
            let _ = writeln!(out, "{indent}}}");
        }
        out
    }
}

/// `s` as a local name: lower-case, `[a-z0-9_]` with runs of anything else turned into one
/// `_`, no leading or trailing `_`, a leading `_` before a digit, and a trailing `_` after a
/// keyword. `fallback` when nothing is left.
pub fn sanitize(s: &str, fallback: &str) -> String {
    let mut out = String::new();
    for c in s.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let mut out = out.trim_matches('_').to_owned();
    if out.is_empty() {
        fallback.clone_into(&mut out);
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if KEYWORDS.contains(&out.as_str()) {
        out.push('_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitised() {
        assert_eq!(sanitize("ML-Fraud--Data Scientists", "x"), "ml_fraud_data_scientists");
        assert_eq!(sanitize("2024-rg", "x"), "_2024_rg");
        assert_eq!(sanitize("in", "x"), "in_");
        assert_eq!(sanitize("--", "group"), "group");
        assert!(is_identifier(&sanitize("Ünïcode ñame", "x")));
    }

    #[test]
    fn expressions_print_as_the_language_writes_them() {
        let ds = Local { name: "ds".into(), keys: vec!["fraud".into()] };
        assert_eq!(Expr::Obj(Kind::Group, ds).text(), "group.ds[\"fraud\"]");
        let t = Local { name: "ws".into(), keys: vec![TEAM.into()] };
        assert_eq!(Expr::WsDep(t, Dependency::StorageAccount).text(), "workspace.ws[team].storage_account");
        assert_eq!(Expr::Template(format!("ml-{TEAM}-$")).text(), "\"ml-${team}-$\"");
        assert_eq!(Expr::Template(format!("a${TEAM}")).text(), "\"a\\u{24}${team}\"");
        assert_eq!(Expr::Str("${x}".into()).text(), "\"$${x}\"");
        assert_eq!(
            Expr::Map(vec![("in".into(), Expr::Bool(true)), ("env".into(), Expr::Str("p".into()))]).text(),
            "{ \"in\" = true, env = \"p\" }"
        );
    }
}
