//! Resolution: builds the symbol table over all files of a configuration, expands `for` loops
//! into keyed addresses, and evaluates every attribute with references checked against the
//! declarations that exist.
//!
//! Input: the parsed files, the variables and subscription aliases from settings. Output:
//! [`Resolved`], every declaration with its [`Address`] and evaluated attribute values, in source
//! order. Invariants: addresses are unique; every reference in a value names a declared object
//! of the right kind family (`kind.name[keys]` exists). Types and required attributes are left to
//! `check`. Budgets ([`Limits`]): the instances of `for` bodies (E0118) and the objects (E0119)
//! are counted before each is made, and both phases spend from one evaluation budget (E0120);
//! once a budget is crossed the walk stops, so a hostile file costs no more than its budgets.
//! Codes: E0102 E0112 E0113 E0114 E0115 E0118 E0119 (and the evaluation codes of `eval`).

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::ast::{self, BodyItem, Item};
use crate::diagnostics::Code;
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::eval::{Env, Evaluator, Symbols, keys_bytes};
use crate::limits::{Limits, Meter, thousands};
use crate::model::{Address, Key, Kind, Move, Value, Waiver};
use crate::source::Span;
use mlpolicy_vocab::suggest;

mod moved;

/// A declaration after resolution.
#[derive(Debug, Clone)]
pub struct ResolvedDecl {
    pub address: Address,
    /// The whole declaration.
    pub span: Span,
    /// The local name (for grants: the `grant` keyword through the scope).
    pub name_span: Span,
    pub attrs: Vec<ResolvedAttr>,
    pub waivers: Vec<Waiver>,
    /// `federated` blocks of an identity.
    pub children: Vec<ResolvedDecl>,
}

impl ResolvedDecl {
    pub fn kind(&self) -> Kind {
        self.address.kind()
    }
}

/// One attribute, evaluated. `value` is `None` when evaluating it failed (already reported).
#[derive(Debug, Clone)]
pub struct ResolvedAttr {
    pub name: String,
    pub name_span: Span,
    pub value: Option<Value>,
    pub value_span: Span,
}

/// The resolved configuration.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    pub decls: Vec<ResolvedDecl>,
    pub policies: Vec<ast::Policy>,
    /// The `moved` blocks that hold, expanded per instance.
    pub moves: Vec<Move>,
}

/// A declaration found while walking the files, with the loop bindings it was found under.
struct Pending<'a> {
    item: PendingItem<'a>,
    env: Env,
}

enum PendingItem<'a> {
    Decl(&'a ast::Decl, Address),
    Grant(&'a ast::Grant),
}

/// Resolves all files of one configuration within the default [`Limits`].
pub fn resolve(
    files: &[ast::File],
    vars: &BTreeMap<String, Value>,
    subscriptions: &BTreeMap<String, String>,
) -> (Resolved, Diagnostics) {
    resolve_within(files, vars, subscriptions, &Meter::new(Limits::default()))
}

/// Resolves all files of one configuration, spending from `meter` and within its limits.
pub fn resolve_within(
    files: &[ast::File],
    vars: &BTreeMap<String, Value>,
    subscriptions: &BTreeMap<String, String>,
    meter: &Meter,
) -> (Resolved, Diagnostics) {
    let limits = meter.limits;
    let mut diags = Diagnostics::default();
    let mut lets: HashMap<String, &ast::Let> = HashMap::new();
    let mut policies = Vec::new();
    for file in files {
        for item in &file.items {
            match item {
                Item::Let(l) => {
                    if let Some(prev) = lets.insert(l.name.node.clone(), l) {
                        diags.push(
                            Diagnostic::error(Code::E0114, format!("`let {}` is defined twice", l.name.node))
                                .with_label(l.name.span, "second definition")
                                .with_secondary(prev.name.span, "first definition")
                                .with_help("all files of a configuration share one namespace; rename one of them"),
                        );
                        lets.insert(prev.name.node.clone(), prev);
                    }
                }
                Item::Policy(p) => policies.push(p.clone()),
                _ => {}
            }
        }
    }

    // Phase 1: walk the files, expanding loops, to learn every address.
    let mut pending = Vec::new();
    let mut symbols = Symbols::default();
    let mut first_seen: HashMap<Address, Span> = HashMap::new();
    let mut moved_blocks = Vec::new();
    {
        let collector = Evaluator::new(vars, subscriptions, &lets, None).sharing(meter);
        let mut walker = Walker {
            eval: &collector,
            pending: &mut pending,
            moved: &mut moved_blocks,
            diags: &mut diags,
            limits,
            instances: 0,
            objects: 0,
            loops: Vec::new(),
            stopped: false,
        };
        for file in files {
            walker.items(&file.items, &Env::default());
        }
        let stopped = walker.stopped;
        diags.extend(collector.take_diagnostics());
        if stopped {
            // A budget was crossed: what was found is partial, and evaluating it would only
            // spend more on a configuration that cannot be used.
            return (Resolved { decls: Vec::new(), policies, moves: Vec::new() }, diags);
        }
    }
    for p in &pending {
        if let PendingItem::Decl(decl, address) = &p.item {
            if let Some(prev) = first_seen.insert(address.clone(), decl.name.span) {
                diags.push(duplicate(address, decl.name.span, prev));
            } else {
                symbols.insert(address.clone());
            }
        }
    }

    // Phase 2: evaluate every attribute with references checked.
    let evaluator = Evaluator::new(vars, subscriptions, &lets, Some(&symbols)).sharing(meter);
    let mut names: Vec<&String> = lets.keys().collect();
    names.sort();
    for name in names {
        evaluator.eval_let(name, lets[name].name.span);
    }
    let mut decls = Vec::with_capacity(pending.len());
    let mut grant_seen: HashMap<Address, Span> = HashMap::new();
    for p in &pending {
        match &p.item {
            PendingItem::Decl(decl, address) => {
                if first_seen.get(address) != Some(&decl.name.span) {
                    continue;
                }
                decls.push(resolve_decl(decl, address.clone(), &p.env, &evaluator, &mut diags));
            }
            PendingItem::Grant(grant) => {
                if let Some(d) = resolve_grant(grant, &p.env, &evaluator, &mut diags) {
                    if let Some(prev) = grant_seen.insert(d.address.clone(), d.name_span) {
                        diags.push(duplicate(&d.address, d.name_span, prev));
                    } else {
                        decls.push(d);
                    }
                }
            }
        }
    }
    diags.extend(evaluator.take_diagnostics());
    let moves = moved::resolve_moves(&moved_blocks, &decls, &mut diags);
    (Resolved { decls, policies, moves }, diags)
}

fn duplicate(address: &Address, span: Span, prev: Span) -> Diagnostic {
    Diagnostic::error(Code::E0102, format!("`{address}` is declared twice"))
        .with_label(span, "second declaration")
        .with_secondary(prev, "first declaration")
        .with_help("every object needs its own address; rename one, or give the loop distinct keys")
}

/// How many times an object's address is kept after resolution (pending declarations, the
/// symbol table, the resolved declaration, the model, the dependency graph): what its keys cost.
const ADDRESS_COPIES: u64 = 5;

struct Walker<'e, 'a> {
    eval: &'e Evaluator<'e>,
    pending: &'e mut Vec<Pending<'a>>,
    moved: &'e mut Vec<&'a ast::Moved>,
    diags: &'e mut Diagnostics,
    limits: Limits,
    /// Instances of `for` bodies so far.
    instances: u64,
    /// Objects found so far.
    objects: u64,
    /// The loops being walked, outermost first: each iterable and its number of instances.
    loops: Vec<(Span, usize)>,
    /// A budget was crossed (and reported): nothing more is walked.
    stopped: bool,
}

impl<'a> Walker<'_, 'a> {
    fn items(&mut self, items: &'a [Item], env: &Env) {
        let mut env = env.clone();
        for item in items {
            if self.stopped || self.eval.exhausted() {
                self.stopped = true;
                return;
            }
            match item {
                Item::Decl(d) => self.decl(d, &env),
                Item::Grant(g) => {
                    if self.count_objects(1, g.span, &env) {
                        self.pending.push(Pending { item: PendingItem::Grant(g), env: env.clone() });
                    }
                }
                Item::For(f) => self.for_loop(f, &env),
                // Top-level lets are global; a let inside a loop body binds for the rest of it.
                Item::Let(l) if !env.keys().is_empty() => {
                    if let Some(v) = self.eval.eval(&l.value, &env) {
                        env = env.with(&l.name.node, v);
                    }
                }
                Item::Moved(m) if env.keys().is_empty() => self.moved.push(m),
                Item::Moved(m) => self.diags.push(
                    Diagnostic::error(Code::E0121, "a `moved` block cannot be inside `for`")
                        .with_label(m.span, "inside a loop")
                        .with_help("write it at the top level of a file, with the keys written out (`group.ds[\"fraud\"]`), or without keys to move every instance"),
                ),
                Item::Let(_) | Item::Policy(_) => {}
            }
        }
    }

    fn decl(&mut self, d: &'a ast::Decl, env: &Env) {
        let Some(kind) = Kind::from_keyword(&d.kind.node).filter(|k| Kind::TOP_LEVEL.contains(k)) else {
            let kinds = Kind::TOP_LEVEL.map(Kind::keyword);
            let mut diag = Diagnostic::error(Code::E0113, format!("unknown declaration kind `{}`", d.kind.node))
                .with_label(d.kind.span, "not a kind of object");
            diag.help = suggest::did_you_mean(&d.kind.node, kinds.iter().copied()).or_else(|| {
                Some(if d.kind.node == "federated" {
                    "`federated` blocks go inside an `identity`".to_owned()
                } else {
                    format!("the kinds are {}", kinds.map(|k| format!("`{k}`")).join(", "))
                })
            });
            self.diags.push(diag);
            return;
        };
        let children = d.body.iter().filter(|i| matches!(i, BodyItem::Block(_))).count();
        if !self.count_objects(1 + u64::try_from(children).unwrap_or(u64::MAX), d.name.span, env) {
            return;
        }
        let address = Address::decl(kind, d.name.node.clone(), env.keys().to_vec());
        self.pending.push(Pending { item: PendingItem::Decl(d, address), env: env.clone() });
    }

    /// Counts `n` more objects for the declaration at `span` in `env`; false (E0119, and the
    /// walk stops) when that crosses `limits.objects`, or the evaluation budget cannot pay for
    /// its address (E0120).
    fn count_objects(&mut self, n: u64, span: Span, env: &Env) -> bool {
        let total = self.objects.saturating_add(n);
        if total <= self.limits.objects {
            self.objects = total;
            // An address's keys are copied into the symbol table, the model and the graph.
            let keys = u64::try_from(keys_bytes(env.keys())).unwrap_or(u64::MAX);
            if !self.eval.spend(ADDRESS_COPIES.saturating_mul(64 + keys), span) {
                self.stopped = true;
                return false;
            }
            return true;
        }
        let mut d = Diagnostic::error(
            Code::E0119,
            format!(
                "the configuration would declare more than {} objects (`limits.objects`)",
                thousands(self.limits.objects)
            ),
        )
        .with_label(span, format!("object {} is declared here", thousands(total)));
        for (iterable, n) in &self.loops {
            d = d.with_secondary(*iterable, format!("inside this loop of {}", thousands(*n as u64)));
        }
        self.diags.push(d.with_help(
            "objects, federated credentials and grants count, each instance of a loop's body once; if the \
             configuration really has more, raise `limits.objects` in mlpolicy.yaml",
        ));
        self.stopped = true;
        false
    }

    /// Counts the `n` instances of the loop over `iterable`; false (E0118, and the walk stops)
    /// when that crosses `limits.for_instances`.
    fn count_instances(&mut self, n: usize, iterable: Span) -> bool {
        let total = self.instances.saturating_add(n as u64);
        if total <= self.limits.for_instances {
            self.instances = total;
            return true;
        }
        let mut d = Diagnostic::error(
            Code::E0118,
            format!(
                "`for` loops would make more than {} instances (`limits.for_instances`)",
                thousands(self.limits.for_instances)
            ),
        )
        .with_label(
            iterable,
            format!("these {} instances would bring the total to {}", thousands(n as u64), thousands(total)),
        );
        for (outer, m) in &self.loops {
            d = d.with_secondary(*outer, format!("inside this loop of {}", thousands(*m as u64)));
        }
        self.diags.push(d.with_help(
            "every instance of every loop counts, so nested loops multiply; if the configuration really needs \
             more, raise `limits.for_instances` in mlpolicy.yaml",
        ));
        self.stopped = true;
        false
    }

    fn for_loop(&mut self, f: &'a ast::For, env: &Env) {
        for reserved in std::iter::once(&f.key).chain(f.value.as_ref()) {
            let name = reserved.node.as_str();
            if ["var", "sub", "system"].contains(&name) || Kind::from_keyword(name).is_some() {
                self.diags.push(
                    Diagnostic::error(Code::E0112, format!("loop variable `{name}` hides a built-in name"))
                        .with_label(reserved.span, "choose another name")
                        .with_help("`var`, `sub`, `system` and the declaration kinds cannot be loop variables"),
                );
                return;
            }
        }
        let Some(iterable) = self.eval.eval(&f.iterable, env) else { return };
        let mut seen: HashSet<Key> = HashSet::new();
        let entries: Vec<(Key, Value)> = match iterable {
            Value::List(items) => {
                if f.value.is_some() {
                    items
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| (Key::Int(i64::try_from(i).unwrap_or(i64::MAX)), v))
                        .collect()
                } else {
                    let mut out = Vec::with_capacity(items.len());
                    for v in items {
                        let key = match &v {
                            Value::Str(s) => Key::Str(s.clone()),
                            Value::Int(i) => Key::Int(*i),
                            other => {
                                self.diags.push(
                                    Diagnostic::error(
                                        Code::E0112,
                                        format!("loop keys must be strings or integers, found {}", other.a_type_name()),
                                    )
                                    .with_label(f.iterable.span, "iterated here")
                                    .with_help(format!(
                                        "iterate a map, or use `for i, {} in ...` to key by position",
                                        f.key.node
                                    )),
                                );
                                return;
                            }
                        };
                        out.push((key, v));
                    }
                    out
                }
            }
            Value::Map(m) => m.into_iter().map(|(k, v)| (Key::Str(k), v)).collect(),
            other => {
                self.diags.push(
                    Diagnostic::error(
                        Code::E0112,
                        format!("`for` needs a list or a map, found {}", other.a_type_name()),
                    )
                    .with_label(f.iterable.span, "not iterable"),
                );
                return;
            }
        };
        if !self.count_instances(entries.len(), f.iterable.span) {
            return;
        }
        self.loops.push((f.iterable.span, entries.len()));
        for (key, value) in entries {
            if self.stopped {
                break;
            }
            if !seen.insert(key.clone()) {
                self.diags.push(
                    Diagnostic::error(Code::E0112, format!("loop key {key} appears twice"))
                        .with_label(f.iterable.span, "duplicate key in this list")
                        .with_help("keys make addresses unique; remove the duplicate"),
                );
                continue;
            }
            let inner = match &f.value {
                Some(v) => {
                    let k = match &key {
                        Key::Str(s) => Value::Str(s.clone()),
                        Key::Int(i) => Value::Int(*i),
                    };
                    env.with(&f.key.node, k).with(&v.node, value)
                }
                None => env.with(&f.key.node, value),
            };
            let inner = inner.with_key(key);
            // Each instance's keys are copied into the addresses of what it declares.
            let cost = 64 + u64::try_from(keys_bytes(inner.keys())).unwrap_or(u64::MAX);
            if !self.eval.spend(cost, f.iterable.span) {
                self.stopped = true;
                break;
            }
            self.items(&f.items, &inner);
        }
        self.loops.pop();
    }
}

fn resolve_body(
    body: &[BodyItem],
    env: &Env,
    eval: &Evaluator<'_>,
    attrs: &mut Vec<ResolvedAttr>,
    waivers: &mut Vec<Waiver>,
) {
    for item in body {
        match item {
            BodyItem::Attr(a) => attrs.push(ResolvedAttr {
                name: a.name.node.clone(),
                name_span: a.name.span,
                value: eval.eval(&a.value, env),
                value_span: a.value.span,
            }),
            BodyItem::Allow(a) => {
                let reason = a.reason.node.as_plain().unwrap_or_default();
                waivers.push(Waiver { policy: a.policy.node.clone(), reason, span: a.span });
            }
            BodyItem::Block(_) => {}
        }
    }
}

fn resolve_decl(
    decl: &ast::Decl,
    address: Address,
    env: &Env,
    eval: &Evaluator<'_>,
    diags: &mut Diagnostics,
) -> ResolvedDecl {
    let mut out = ResolvedDecl {
        address,
        span: decl.span,
        name_span: decl.name.span,
        attrs: Vec::new(),
        waivers: Vec::new(),
        children: Vec::new(),
    };
    resolve_body(&decl.body, env, eval, &mut out.attrs, &mut out.waivers);
    let mut child_seen: HashMap<&str, Span> = HashMap::new();
    for item in &decl.body {
        let BodyItem::Block(block) = item else { continue };
        if out.address.kind() != Kind::Identity || block.kind.node != "federated" {
            let mut d = Diagnostic::error(Code::E0115, format!("a `{}` block cannot appear here", block.kind.node))
                .with_label(block.kind.span, format!("inside {}", out.address));
            d.help = if out.address.kind() == Kind::Identity {
                suggest::did_you_mean(&block.kind.node, ["federated"])
                    .or(Some("an identity holds `federated` blocks only".into()))
            } else {
                Some("only `identity` declarations hold nested blocks (`federated`)".into())
            };
            diags.push(d);
            continue;
        }
        if let Some(prev) = child_seen.insert(&block.name.node, block.name.span) {
            let addr = Address::Federated { identity: Box::new(out.address.clone()), name: block.name.node.clone() };
            diags.push(duplicate(&addr, block.name.span, prev));
            continue;
        }
        for nested in &block.body {
            if let BodyItem::Block(b) = nested {
                diags.push(
                    Diagnostic::error(
                        Code::E0115,
                        format!("a `{}` block cannot appear inside `federated`", b.kind.node),
                    )
                    .with_label(b.kind.span, "nested too deep"),
                );
            }
        }
        let mut child = ResolvedDecl {
            address: Address::Federated { identity: Box::new(out.address.clone()), name: block.name.node.clone() },
            span: block.span,
            name_span: block.name.span,
            attrs: Vec::new(),
            waivers: Vec::new(),
            children: Vec::new(),
        };
        resolve_body(&block.body, env, eval, &mut child.attrs, &mut child.waivers);
        out.children.push(child);
    }
    out
}

fn resolve_grant(grant: &ast::Grant, env: &Env, eval: &Evaluator<'_>, diags: &mut Diagnostics) -> Option<ResolvedDecl> {
    let role = eval.eval(&grant.role, env);
    let principal = eval.eval(&grant.principal, env);
    let scope = eval.eval(&grant.scope, env);
    let name_span = grant.span.to(grant.scope.span);
    let name_span = crate::source::Span { end: grant.scope.span.end, ..name_span };
    let mut attrs = vec![
        ResolvedAttr {
            name: "role".into(),
            name_span: grant.role.span,
            value: role.clone(),
            value_span: grant.role.span,
        },
        ResolvedAttr {
            name: "principal".into(),
            name_span: grant.principal.span,
            value: principal.clone(),
            value_span: grant.principal.span,
        },
        ResolvedAttr {
            name: "scope".into(),
            name_span: grant.scope.span,
            value: scope.clone(),
            value_span: grant.scope.span,
        },
    ];
    let mut waivers = Vec::new();
    if let Some(body) = &grant.body {
        for item in body {
            if let BodyItem::Block(b) = item {
                diags.push(
                    Diagnostic::error(Code::E0115, format!("a `{}` block cannot appear inside `grant`", b.kind.node))
                        .with_label(b.kind.span, "not allowed here")
                        .with_help("a grant's body holds `description`, `condition` and `allow`"),
                );
            }
        }
        let start = attrs.len();
        resolve_body(body, env, eval, &mut attrs, &mut waivers);
        for a in &attrs[start..] {
            if ["role", "principal", "scope"].contains(&a.name.as_str()) {
                diags.push(
                    Diagnostic::error(Code::E0201, format!("`{}` is given in the grant line, not its body", a.name))
                        .with_label(a.name_span, "remove this attribute"),
                );
            }
        }
    }
    let role = match role? {
        Value::Str(s) => s,
        other => {
            diags.push(
                Diagnostic::error(
                    Code::E0203,
                    format!("a grant's role must be a string, found {}", other.a_type_name()),
                )
                .with_label(grant.role.span, "expected a role name such as \"AzureML Data Scientist\""),
            );
            return None;
        }
    };
    let render = |v: &Value| match v {
        Value::Ref(r) => r.to_string(),
        other => format!("<{}>", other.type_name()),
    };
    let address = Address::Grant { role, principal: render(&principal?), scope: render(&scope?) };
    Some(ResolvedDecl { address, span: grant.span, name_span, attrs, waivers, children: Vec::new() })
}
