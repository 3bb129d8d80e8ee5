//! `textDocument/completion`: what may be written at the cursor. Statement starts offer the
//! kinds (top level, `for` bodies) or the attributes of the enclosing declaration; `allow `
//! offers policy names; `deny `/`warn ` policy subjects; a grant's role string the built-in role
//! catalogue; expressions offer loop variables, `let`s, `var.`/`sub.`, declared addresses,
//! functions and, after a dot, what that path has (`var.NAME`, `group.NAME`,
//! `workspace.NAME[key].storage_account`, `principal.kind`).

use std::collections::BTreeSet;

use lsp_types::{
    CompletionItem, CompletionItemKind, CompletionTextEdit, Documentation, InsertTextFormat, MarkupContent, MarkupKind,
    Range, TextEdit,
};
use mlpolicy_lang::check;
use mlpolicy_lang::model::{Address, Dependency, Kind};
use mlpolicy_lang::source::FileId;
use mlpolicy_lang::{policy, syntax};

use crate::analysis::{Analysis, render_value};
use crate::context::{self, Block, Context, Position};
use crate::index::Symbol;
use crate::text::LineIndex;
use crate::{docs, roles};

/// Most concrete keyed addresses offered at once (`workspace.team["fraud"]`, ...).
const MAX_ADDRESSES: usize = 200;

const FUNCTIONS: [(&str, &str); 5] = [
    ("user", "A user, by UPN; a string or a list of strings."),
    ("service_principal", "A service principal, by application id or display name."),
    ("existing_group", "A group this configuration does not manage, by display name."),
    ("scope", "Any ARM id as a grant's scope."),
    ("count", "The length of a list or map."),
];

struct Items<'a> {
    out: Vec<CompletionItem>,
    range: Range,
    snippets: bool,
    seen: BTreeSet<String>,
    analysis: &'a Analysis,
}

impl Items<'_> {
    /// Adds an item; `snippet` is inserted when the client takes snippets, else `plain`.
    fn add(
        &mut self,
        label: &str,
        kind: CompletionItemKind,
        detail: Option<String>,
        doc: Option<String>,
    ) -> &mut CompletionItem {
        self.seen.insert(label.to_owned());
        self.out.push(CompletionItem {
            label: label.to_owned(),
            kind: Some(kind),
            detail,
            documentation: doc
                .map(|d| Documentation::MarkupContent(MarkupContent { kind: MarkupKind::Markdown, value: d })),
            text_edit: Some(CompletionTextEdit::Edit(TextEdit { range: self.range, new_text: label.to_owned() })),
            ..CompletionItem::default()
        });
        self.out.last_mut().expect("just pushed")
    }

    fn snippet(&mut self, label: &str, kind: CompletionItemKind, doc: &str, snippet: &str, plain: &str) {
        let snippets = self.snippets;
        let item = self.add(label, kind, None, Some(doc.to_owned()));
        let text = if snippets { snippet } else { plain };
        item.text_edit =
            Some(CompletionTextEdit::Edit(TextEdit { range: item_range(item), new_text: text.to_owned() }));
        if snippets {
            item.insert_text_format = Some(InsertTextFormat::SNIPPET);
        }
    }
}

fn item_range(item: &CompletionItem) -> Range {
    match &item.text_edit {
        Some(CompletionTextEdit::Edit(e)) => e.range,
        _ => Range::default(),
    }
}

/// Completion items at a byte offset of a configuration file.
pub fn complete(
    a: &Analysis,
    file: FileId,
    offset: usize,
    index: &LineIndex<'_>,
    snippets: bool,
) -> Vec<CompletionItem> {
    let text = a.text(file);
    let offset = crate::text::floor_boundary(text, offset);
    let ctx = context::at(text, offset);
    let start = context::word_start(text, offset);
    let mut items =
        Items { out: Vec::new(), range: index.range(start, offset), snippets, seen: BTreeSet::new(), analysis: a };
    match ctx.position {
        Position::Comment => {}
        Position::String { start: quote } => {
            if role_position(text, quote) {
                items.range = index.range(quote + 1, offset);
                role_names(&mut items, !text[offset..].starts_with('"'));
            }
        }
        Position::Nested => expression(&mut items, text, start, &ctx),
        Position::Statement => {
            let before = context::line_before(text, start).trim();
            let words: Vec<&str> = before.split_whitespace().collect();
            match words.as_slice() {
                [] => statement_start(&mut items, ctx.block()),
                ["allow"] => policy_names(&mut items),
                ["deny" | "warn"] if *ctx.block() == Block::Policy => {
                    for s in check::SUBJECTS {
                        items.add(s, CompletionItemKind::KEYWORD, Some("policy subject".into()), None);
                    }
                }
                // Naming something: nothing to offer.
                [w] if w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {}
                ["for", ..] if !words.contains(&"in") => {}
                _ => expression(&mut items, text, start, &ctx),
            }
        }
    }
    items.out
}

/// Adds the documentation of a role item (left out of the list itself: 928 roles).
pub fn resolve(mut item: CompletionItem) -> CompletionItem {
    let role = item.data.as_ref().and_then(|d| d.get("role")).and_then(|r| r.as_str()).and_then(roles::find);
    if let Some(role) = role {
        item.documentation = Some(Documentation::MarkupContent(MarkupContent {
            kind: MarkupKind::Markdown,
            value: roles::markdown(role),
        }));
    }
    item
}

/// Whether a string starting at `quote` holds a role name: `grant "…`, or a policy's
/// `role == "…` / `role in ["…", "…`.
fn role_position(text: &str, quote: usize) -> bool {
    let before = context::line_before(text, quote).trim_end();
    if before.trim_start() == "grant" || before.ends_with(" grant") {
        return true;
    }
    before.rfind("role").is_some_and(|i| {
        let after = before[i..].trim_start_matches("roles").trim_start_matches("role").trim_start();
        ["==", "!=", "!in", "in"].iter().any(|op| after.starts_with(op))
    })
}

fn role_names(items: &mut Items<'_>, close_quote: bool) {
    for role in roles::all() {
        let known = mlpolicy_vocab::roles::built_in_id(&role.role_name).is_some();
        let description: String = role.description.chars().take(100).collect();
        let item = items.add(&role.role_name, CompletionItemKind::ENUM_MEMBER, Some(description), None);
        item.sort_text = Some(format!("{}{}", u8::from(!known), role.role_name));
        item.data = Some(serde_json::json!({ "role": role.role_name }));
        if close_quote {
            item.text_edit = Some(CompletionTextEdit::Edit(TextEdit {
                range: item_range(item),
                new_text: format!("{}\"", role.role_name),
            }));
        }
    }
}

fn policy_names(items: &mut Items<'_>) {
    let policies: Vec<_> = items.analysis.compiled.policies.iter().collect();
    for p in policies {
        let file = &items.analysis.compiled.sources.get(p.name.span.file).name;
        let doc = policy::message_of(p);
        items.add(&p.name.node, CompletionItemKind::EVENT, Some(format!("policy in {file}")), doc);
    }
}

fn statement_start(items: &mut Items<'_>, block: &Block) {
    match block {
        Block::TopLevel | Block::For { .. } => {
            for kind in Kind::TOP_LEVEL {
                let k = kind.keyword();
                items.snippet(
                    k,
                    CompletionItemKind::CLASS,
                    docs::kind(kind),
                    &format!("{k} ${{1:name}} {{\n  $0\n}}"),
                    &format!("{k} "),
                );
            }
            let g = "grant \"${1:AzureML Data Scientist}\" to ${2:group.name} on ${3:workspace.name}";
            items.snippet("grant", CompletionItemKind::KEYWORD, docs::kind(Kind::Grant), g, "grant ");
            items.snippet("let", CompletionItemKind::KEYWORD, "A named value.", "let ${1:name} = $0", "let ");
            let f = "for ${1:key} in ${2:var.list} {\n  $0\n}";
            items.snippet(
                "for",
                CompletionItemKind::KEYWORD,
                "Repeat the items for every key of a list or map.",
                f,
                "for ",
            );
            let p = "policy ${1:name} {\n  ${2|deny,warn|} ${3:grant} when $4\n  message = \"$5\"\n}";
            items.snippet("policy", CompletionItemKind::KEYWORD, "A named set of `deny`/`warn` rules.", p, "policy ");
        }
        Block::Decl(kind) => {
            attributes(items, *kind, check::attributes(*kind));
            if *kind == Kind::Identity {
                let f = "federated ${1:name} {\n  issuer  = \"${2:https://token.actions.githubusercontent.com}\"\n  subject = \"$3\"\n}";
                items.snippet("federated", CompletionItemKind::CLASS, docs::kind(Kind::Federated), f, "federated ");
            }
            allow(items);
        }
        Block::Grant => {
            attributes(items, Kind::Grant, &["description", "condition"]);
            allow(items);
        }
        Block::Policy => {
            for effect in ["deny", "warn"] {
                let doc = if effect == "deny" { "Fails validate, plan and apply." } else { "Reported only." };
                items.snippet(
                    effect,
                    CompletionItemKind::KEYWORD,
                    doc,
                    &format!("{effect} ${{1:grant}} when $0"),
                    &format!("{effect} "),
                );
            }
            items.snippet(
                "message",
                CompletionItemKind::PROPERTY,
                "Shown with every violation.",
                "message = \"$0\"",
                "message = ",
            );
        }
        Block::Unknown => {}
    }
}

fn attributes(items: &mut Items<'_>, kind: Kind, names: &[&str]) {
    for name in names.iter().chain(check::COMMON_ATTRIBUTES) {
        let doc = docs::attribute(kind, name).unwrap_or_default();
        items.snippet(name, CompletionItemKind::PROPERTY, doc, &format!("{name} = $0"), &format!("{name} = "));
        if let Some(item) = items.out.last_mut() {
            item.detail = Some(format!("attribute of {kind}"));
        }
    }
}

fn allow(items: &mut Items<'_>) {
    let doc = "Waive one policy for this object: `allow POLICY because \"reason\"`.";
    items.snippet("allow", CompletionItemKind::KEYWORD, doc, "allow ${1:policy} because \"$0\"", "allow ");
}

/// The subject of the policy rule on the cursor's line (`deny grant when …` → `grant`).
fn rule_subject(text: &str, at: usize) -> Option<String> {
    let line = context::line_before(text, at);
    let mut words = line.split_whitespace();
    matches!(words.next(), Some("deny" | "warn")).then(|| words.next().map(str::to_owned)).flatten()
}

fn expression(items: &mut Items<'_>, text: &str, start: usize, ctx: &Context) {
    let subject = if *ctx.block() == Block::Policy { rule_subject(text, start) } else { None };
    if let Some(path) = context::path_before(text, start) {
        dotted(items, path, ctx, subject.as_deref());
        return;
    }
    for v in ctx.loop_vars.iter().rev() {
        if !items.seen.contains(v) {
            items.add(v, CompletionItemKind::VARIABLE, Some("loop variable".into()), None);
        }
    }
    let in_rule = subject.is_some();
    if let Some(subject) = &subject {
        for attr in check::subject_attributes(subject).unwrap_or_default() {
            items.add(attr, CompletionItemKind::FIELD, Some(format!("attribute of the {subject}")), None);
        }
    }
    let a = items.analysis;
    let mut lets: Vec<_> = a.lets().into_iter().collect();
    lets.sort_by(|x, y| x.0.cmp(&y.0));
    for (name, l) in lets {
        let value = a.evaluate(&l.value).map(|v| short(&render_value(&v)));
        items.add(&name, CompletionItemKind::VARIABLE, value.or_else(|| Some("let".into())), None);
    }
    items.add("var", CompletionItemKind::KEYWORD, None, Some("`var.NAME`: a variable of mlpolicy.yaml.".into()));
    for b in ["true", "false"] {
        items.add(b, CompletionItemKind::VALUE, None, None);
    }
    // A policy rule reads its subject, variables and `let`s, and may count; the rest names
    // objects, which rules do not.
    for (f, doc) in FUNCTIONS.iter().filter(|(f, _)| !in_rule || *f == "count") {
        if !items.seen.contains(*f) {
            items.snippet(f, CompletionItemKind::FUNCTION, doc, &format!("{f}(${{1}})"), &format!("{f}("));
        }
    }
    if !in_rule {
        items.add(
            "sub",
            CompletionItemKind::KEYWORD,
            None,
            Some("`sub.ALIAS`: a subscription of mlpolicy.yaml.".into()),
        );
        items.add("system", CompletionItemKind::KEYWORD, None, Some("A workspace's system-assigned identity.".into()));
        addresses(items, ctx);
    }
}

/// `group.NAME`, `workspace.NAME[key]` for every declaration, and the concrete keyed addresses.
fn addresses(items: &mut Items<'_>, ctx: &Context) {
    let a = items.analysis;
    let key = ctx.loop_vars.last().cloned().unwrap_or_else(|| "\"key\"".into());
    let mut declared: BTreeSet<(Kind, String, bool)> = BTreeSet::new();
    for o in &a.index.occurrences {
        if let (Symbol::Decl { kind, name }, true) = (&o.symbol, o.def) {
            declared.insert((*kind, name.clone(), keyed(a, *kind, name)));
        }
    }
    for (kind, name, keyed) in &declared {
        let label = format!("{kind}.{name}");
        if *keyed {
            let snippet = format!("{label}[${{1:{}}}]", key.replace('$', "\\$").replace('}', "\\}"));
            items.snippet(
                &format!("{label}[…]"),
                CompletionItemKind::REFERENCE,
                docs::kind(*kind),
                &snippet,
                &format!("{label}["),
            );
        } else {
            items.add(&label, CompletionItemKind::REFERENCE, Some(docs::kind(*kind).into()), None);
        }
    }
    for address in concrete(a).take(MAX_ADDRESSES) {
        items.add(&address.to_string(), CompletionItemKind::REFERENCE, None, None);
    }
}

/// The declared objects with `for` keys, from the checked model.
fn concrete(a: &Analysis) -> impl Iterator<Item = &Address> {
    a.compiled
        .model
        .metas()
        .map(|m| &m.address)
        .filter(|ad| matches!(ad, Address::Decl { keys, .. } if !keys.is_empty()))
}

fn keyed(a: &Analysis, kind: Kind, name: &str) -> bool {
    concrete(a).any(|ad| matches!(ad, Address::Decl { kind: k, name: n, .. } if *k == kind && n == name))
}

fn dotted(items: &mut Items<'_>, path: &str, ctx: &Context, subject: Option<&str>) {
    let a = items.analysis;
    let (root, fields, indexed) = context::split_path(path);
    match (root, fields.as_slice()) {
        ("var", []) => {
            for (name, value) in a.vars() {
                items.add(&name, CompletionItemKind::VARIABLE, Some(short(&render_value(&value))), None);
            }
        }
        ("sub", []) => {
            for (alias, id) in &a.compiled.settings.subscriptions {
                items.add(alias, CompletionItemKind::MODULE, Some(id.clone()), None);
            }
        }
        ("workspace", [_]) => {
            items.add(
                "identity",
                CompletionItemKind::FIELD,
                Some("the workspace's system-assigned identity".into()),
                None,
            );
            for d in Dependency::ALL {
                items.add(
                    d.attribute(),
                    CompletionItemKind::FIELD,
                    Some("a linked resource, as a grant's scope".into()),
                    None,
                );
            }
        }
        (kind, []) if !indexed && Kind::from_keyword(kind).is_some_and(|k| Kind::TOP_LEVEL.contains(&k)) => {
            let kind = Kind::from_keyword(kind).expect("checked");
            declared_names(items, kind, ctx);
        }
        (attr, []) if subject.is_some() => {
            for f in check::sub_attributes(subject.unwrap_or_default(), attr).unwrap_or_default() {
                items.add(f, CompletionItemKind::FIELD, Some(format!("of {attr}")), None);
            }
        }
        _ => {}
    }
}

fn declared_names(items: &mut Items<'_>, kind: Kind, ctx: &Context) {
    let a = items.analysis;
    let key = ctx.loop_vars.last().cloned().unwrap_or_else(|| "\"key\"".into());
    let names: BTreeSet<&String> = a
        .index
        .occurrences
        .iter()
        .filter_map(|o| match &o.symbol {
            Symbol::Decl { kind: k, name } if o.def && *k == kind => Some(name),
            _ => None,
        })
        .collect();
    for name in names {
        if keyed(a, kind, name) {
            let snippet = format!("{name}[${{1:{}}}]", key.replace('$', "\\$").replace('}', "\\}"));
            items.snippet(
                &format!("{name}[…]"),
                CompletionItemKind::REFERENCE,
                docs::kind(kind),
                &snippet,
                &format!("{name}["),
            );
            let prefix = format!("{kind}.{name}[");
            let concrete: Vec<String> =
                concrete(a).map(ToString::to_string).filter(|s| s.starts_with(&prefix)).collect();
            for c in concrete.iter().take(MAX_ADDRESSES) {
                items.add(&c[kind.keyword().len() + 1..], CompletionItemKind::REFERENCE, Some(c.clone()), None);
            }
        } else {
            items.add(name, CompletionItemKind::REFERENCE, Some(format!("{kind}.{name}")), None);
        }
    }
}

/// A value cut to one short line for an item's detail.
fn short(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX { s.to_owned() } else { format!("{}…", s.chars().take(MAX).collect::<String>()) }
}

/// Whether a word may be used as a name (for rename).
pub fn is_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !syntax::KEYWORDS.contains(&s)
}
