//! Expression evaluation: literals, interpolation, `let` bindings, `var.x`, `sub.alias`,
//! references `kind.name[key].attr`, principal constructors and operators, to [`Value`]s.
//!
//! Evaluation is deterministic and always terminates: there are no user functions, and `let`
//! cycles are detected (E0109). Errors are reported once at the expression that caused them and
//! evaluation yields `None`, so one bad value does not cascade into more diagnostics.
//!
//! Evaluation is bounded ([`crate::limits`]): every expression evaluated and every value copied
//! is paid for from a [`Meter`] before it is made, a string is checked against
//! `string_bytes` before it grows, a list or map against `collection_elements` before it is
//! returned. Values are read in place (a path into a `let`, a variable or a loop variable
//! copies only what it selects), and loop bindings and `let` results are shared, not copied.
//! A `let` is evaluated after the `let`s it names (in dependency order, without recursing
//! through them), so a chain of any length costs no stack; only a cycle recurses, and is cut
//! at [`MAX_LET_DEPTH`].
//! Codes: E0101 E0103 E0104 E0105 E0106 E0107 E0108 E0109 E0110 E0111 E0116 E0117 E0120.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::ast::{self, BinaryOp, Expr, ExprKind, Segment, StrPart, UnaryOp};
use crate::diagnostics::Code;
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::limits::{Limits, Meter, thousands};
use crate::model::{Address, Dependency, Key, Kind, Ref, Value};
use crate::source::Span;
use mlpolicy_vocab::suggest;

/// Loop variables in scope. Adding a binding and cloning an environment take constant time and
/// memory (a shared list, innermost first), however many bindings a loop body's `let`s make.
#[derive(Debug, Clone, Default)]
pub struct Env {
    bindings: Option<Arc<Binding>>,
    /// The `for` keys of the enclosing loops, outermost first: they make addresses unique.
    keys: Arc<Vec<Key>>,
}

#[derive(Debug)]
struct Binding {
    name: String,
    value: Arc<Value>,
    outer: Option<Arc<Binding>>,
}

impl Drop for Binding {
    /// Unlinks the chain iteratively, so that dropping a long one cannot overflow the stack.
    fn drop(&mut self) {
        let mut next = self.outer.take();
        while let Some(b) = next {
            next = match Arc::try_unwrap(b) {
                Ok(mut only) => only.outer.take(),
                Err(_) => None,
            };
        }
    }
}

impl Env {
    /// An environment holding exactly these bindings (the last one innermost).
    pub fn from_bindings(bindings: Vec<(String, Value)>) -> Env {
        let mut env = Env::default();
        for (name, value) in bindings {
            env = env.with(&name, value);
        }
        env
    }

    #[must_use]
    pub fn with(&self, name: &str, value: Value) -> Env {
        let binding = Binding { name: name.to_owned(), value: Arc::new(value), outer: self.bindings.clone() };
        Env { bindings: Some(Arc::new(binding)), keys: Arc::clone(&self.keys) }
    }

    #[must_use]
    pub fn with_key(self, key: Key) -> Env {
        let mut keys = Vec::clone(&self.keys);
        keys.push(key);
        Env { bindings: self.bindings, keys: Arc::new(keys) }
    }

    /// The `for` keys of the enclosing loops, outermost first.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// The innermost binding of `name`, and how many bindings were looked at to find it.
    fn get(&self, name: &str) -> (Option<&Value>, u64) {
        let mut steps = 0;
        let mut next = self.bindings.as_deref();
        while let Some(b) = next {
            steps += 1;
            if b.name == name {
                return (Some(&b.value), steps);
            }
            next = b.outer.as_deref();
        }
        (None, steps)
    }

    fn names(&self) -> impl Iterator<Item = &str> + Clone {
        std::iter::successors(self.bindings.as_deref(), |b| b.outer.as_deref()).map(|b| b.name.as_str())
    }
}

/// Declared addresses, for checking references.
#[derive(Debug, Default)]
pub struct Symbols {
    pub addresses: BTreeSet<Address>,
    /// Declared local names per kind, for suggestions.
    pub names: BTreeMap<Kind, BTreeSet<String>>,
}

impl Symbols {
    pub fn insert(&mut self, address: Address) {
        if let Address::Decl { kind, name, .. } = &address {
            self.names.entry(*kind).or_default().insert(name.clone());
        }
        self.addresses.insert(address);
    }
}

/// Evaluates expressions against the configuration's variables, lets and symbols.
pub struct Evaluator<'a> {
    vars: &'a BTreeMap<String, Value>,
    subscriptions: &'a BTreeMap<String, String>,
    lets: &'a HashMap<String, &'a ast::Let>,
    /// `None` while declarations are still being collected: references are then not checked.
    symbols: Option<&'a Symbols>,
    cache: RefCell<HashMap<String, Option<Arc<Value>>>>,
    in_progress: RefCell<Vec<String>>,
    diags: RefCell<Diagnostics>,
    meter: MeterSlot<'a>,
    /// The `let`s each `let` names, memoised.
    deps: RefCell<HashMap<String, Arc<Vec<String>>>>,
    /// A cycle of `let`s ran past [`MAX_LET_DEPTH`] (reported once): no further `let` is
    /// evaluated.
    too_deep: std::cell::Cell<bool>,
    /// "Did you mean" within a budget: many unknown names among many candidates stay cheap.
    suggest: suggest::Budget,
}

/// The budget an evaluator spends: its own, or one shared with other evaluators.
enum MeterSlot<'a> {
    Own(Meter),
    Shared(&'a Meter),
}

/// What any value costs besides the bytes of its strings: its size in memory.
const NODE_BYTES: u64 = std::mem::size_of::<Value>() as u64;

/// What looking at one binding of an environment costs.
const LOOKUP_BYTES: u64 = 8;

/// What a map of `entries` costs besides its values and the bytes of its keys: the nodes of
/// its B-tree (each holds up to 11 keys and values, and is at least half full).
fn map_bytes(entries: usize) -> u64 {
    const BTREE_NODE: u64 = 11 * (std::mem::size_of::<String>() as u64 + NODE_BYTES) + 16;
    let entries = u64::try_from(entries).unwrap_or(u64::MAX);
    BTREE_NODE.saturating_mul(1 + entries / 5)
}

/// `let`s that may wait on each other at once. `let`s are evaluated in dependency order, so
/// only a cycle (E0109) gets this deep; it is cut here rather than overflow the stack.
pub const MAX_LET_DEPTH: usize = 100;

/// Roots that name a declaration kind in a reference.
const REFERENCE_KINDS: [Kind; 4] = [Kind::ResourceGroup, Kind::Identity, Kind::Workspace, Kind::Group];

const FUNCTIONS: [&str; 5] = ["user", "service_principal", "existing_group", "scope", "count"];

impl<'a> Evaluator<'a> {
    pub fn new(
        vars: &'a BTreeMap<String, Value>,
        subscriptions: &'a BTreeMap<String, String>,
        lets: &'a HashMap<String, &'a ast::Let>,
        symbols: Option<&'a Symbols>,
    ) -> Self {
        Evaluator {
            vars,
            subscriptions,
            lets,
            symbols,
            cache: RefCell::default(),
            in_progress: RefCell::default(),
            diags: RefCell::default(),
            meter: MeterSlot::Own(Meter::new(Limits::default())),
            deps: RefCell::default(),
            too_deep: std::cell::Cell::new(false),
            suggest: suggest::Budget::default(),
        }
    }

    /// This evaluator with its own budget of `limits`.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.meter = MeterSlot::Own(Meter::new(limits));
        self
    }

    /// This evaluator spending from `meter`, which other evaluators share.
    #[must_use]
    pub fn sharing(mut self, meter: &'a Meter) -> Self {
        self.meter = MeterSlot::Shared(meter);
        self
    }

    fn meter(&self) -> &Meter {
        match &self.meter {
            MeterSlot::Own(m) => m,
            MeterSlot::Shared(m) => m,
        }
    }

    /// The budgets in force.
    pub fn limits(&self) -> &Limits {
        &self.meter().limits
    }

    /// Whether the evaluation budget has run out (reported once, as E0120).
    pub fn exhausted(&self) -> bool {
        self.meter().exhausted()
    }

    /// Pays `bytes` from the evaluation budget for what is made at `span`; false when the
    /// budget would be crossed (E0120, reported at the first refusal only).
    pub fn spend(&self, bytes: u64, span: Span) -> bool {
        let meter = self.meter();
        if meter.spend(bytes) {
            return true;
        }
        if meter.first_refusal() {
            let limit = thousands(meter.limits.evaluation_bytes);
            self.report(
                Diagnostic::error(
                    Code::E0120,
                    format!("evaluation would make more than {limit} bytes of values (`limits.evaluation_bytes`)"),
                )
                .with_label(span, "the budget runs out while evaluating this")
                .with_help(
                    "every copy of a value counts: a large `let` used in many places or loops multiplies; if the \
                     configuration really needs more, raise `limits.evaluation_bytes` in mlpolicy.yaml",
                ),
            );
        }
        false
    }

    /// Copies `value` out of a `let`, variable or loop variable, paying for the copy first.
    fn copy(&self, value: &Value, span: Span) -> Option<Value> {
        let remaining = self.limits().evaluation_bytes.saturating_sub(self.meter().used());
        let cost = value_bytes(value, remaining.saturating_add(1));
        self.spend(cost, span).then(|| value.clone())
    }

    /// The diagnostics reported so far.
    pub fn take_diagnostics(&self) -> Diagnostics {
        std::mem::take(&mut self.diags.borrow_mut())
    }

    fn report(&self, d: Diagnostic) {
        self.diags.borrow_mut().push(d);
    }

    /// Evaluates `name`'s `let`, once; the value is shared, not copied. The `let`s it names are
    /// evaluated first, leaves first, so that none of them recurses.
    pub fn eval_let(&self, name: &str, used_at: Span) -> Option<Arc<Value>> {
        if let Some(v) = self.cache.borrow().get(name) {
            return v.clone();
        }
        if self.in_progress.borrow().is_empty() && !self.too_deep.get() {
            for dep in self.dependency_order(name) {
                if let Some(decl) = self.lets.get(dep.as_str()) {
                    self.eval_let_now(&dep, decl.name.span);
                }
            }
        }
        self.eval_let_now(name, used_at)
    }

    fn eval_let_now(&self, name: &str, used_at: Span) -> Option<Arc<Value>> {
        if let Some(v) = self.cache.borrow().get(name) {
            return v.clone();
        }
        let decl = self.lets.get(name)?;
        if self.in_progress.borrow().iter().any(|n| n == name) {
            let chain = self.in_progress.borrow().join("` → `");
            self.report(
                Diagnostic::error(Code::E0109, format!("`let {name}` refers to itself"))
                    .with_label(used_at, "this reference closes the cycle")
                    .with_secondary(decl.name.span, "defined here")
                    .with_help(format!("the cycle is `{chain}` → `{name}`; a value cannot depend on itself")),
            );
            return None;
        }
        if self.too_deep.get() {
            return None;
        }
        if self.in_progress.borrow().len() >= MAX_LET_DEPTH {
            self.too_deep.set(true);
            let first: Vec<String> = self.in_progress.borrow().iter().take(3).cloned().collect();
            self.report(
                Diagnostic::error(
                    Code::E0109,
                    format!("`let {name}` is more than {MAX_LET_DEPTH} `let`s deep in a chain that refers to itself"),
                )
                .with_label(used_at, "evaluation stops at this reference")
                .with_secondary(decl.name.span, "defined here")
                .with_help(format!("the chain starts `{}` → …; a value cannot depend on itself", first.join("` → `"))),
            );
            return None;
        }
        self.in_progress.borrow_mut().push(name.to_owned());
        let value = self.eval(&decl.value, &Env::default()).map(Arc::new);
        self.in_progress.borrow_mut().pop();
        self.cache.borrow_mut().insert(name.to_owned(), value.clone());
        value
    }

    /// The `let`s `name` depends on and that are not evaluated yet, each after those it
    /// names (a post-order walk, without recursion). Empty when they form a cycle: evaluation
    /// then finds and reports it.
    fn dependency_order(&self, name: &str) -> Vec<String> {
        let mut order = Vec::new();
        // 1: on the walk's path; 2: done.
        let mut state: HashMap<String, u8> = HashMap::from([(name.to_owned(), 1)]);
        let mut path: Vec<(String, Arc<Vec<String>>, usize)> = vec![(name.to_owned(), self.deps_of(name), 0)];
        while let Some((_, deps, next)) = path.last_mut() {
            if let Some(dep) = deps.get(*next).cloned() {
                *next += 1;
                if self.cache.borrow().contains_key(&dep) {
                    continue;
                }
                match state.get(&dep) {
                    Some(1) => return Vec::new(),
                    Some(_) => {}
                    None => {
                        state.insert(dep.clone(), 1);
                        let deps = self.deps_of(&dep);
                        path.push((dep, deps, 0));
                    }
                }
            } else if let Some((done, _, _)) = path.pop() {
                state.insert(done.clone(), 2);
                if !path.is_empty() {
                    order.push(done);
                }
            }
        }
        order
    }

    /// The `let`s the `let` `name` names, in the order written.
    fn deps_of(&self, name: &str) -> Arc<Vec<String>> {
        if let Some(d) = self.deps.borrow().get(name) {
            return d.clone();
        }
        let mut out = Vec::new();
        if let Some(decl) = self.lets.get(name) {
            let_refs(&decl.value, self.lets, &mut out);
        }
        let out = Arc::new(out);
        self.deps.borrow_mut().insert(name.to_owned(), out.clone());
        out
    }

    /// Evaluates an expression; `None` after an error was reported.
    pub fn eval(&self, expr: &Expr, env: &Env) -> Option<Value> {
        if !self.spend(NODE_BYTES, expr.span) {
            return None;
        }
        match &expr.kind {
            ExprKind::Str(s) => self.eval_str(s, expr.span, env).map(Value::Str),
            ExprKind::Int(i) => Some(Value::Int(*i)),
            ExprKind::Bool(b) => Some(Value::Bool(*b)),
            ExprKind::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut elements: u64 = 0;
                let mut ok = true;
                for item in items {
                    match self.eval(item, env) {
                        Some(v) => {
                            elements =
                                elements.saturating_add(1 + nested_elements(&v, self.limits().collection_elements));
                            if !self.within_elements(elements, expr.span, "list") {
                                return None;
                            }
                            out.push(v);
                        }
                        None => ok = false,
                    }
                }
                ok.then_some(Value::List(out))
            }
            ExprKind::Map(entries) => {
                let mut out = BTreeMap::new();
                let mut first: HashMap<&str, Span> = HashMap::new();
                let mut elements: u64 = 0;
                let mut ok = true;
                for (key, value) in entries {
                    if let Some(prev) = first.insert(&key.node, key.span) {
                        self.report(
                            Diagnostic::error(Code::E0108, format!("key `{}` appears twice in this map", key.node))
                                .with_label(key.span, "second entry")
                                .with_secondary(prev, "first entry")
                                .with_help("remove one of the entries"),
                        );
                        ok = false;
                    }
                    match self.eval(value, env) {
                        Some(v) => {
                            elements =
                                elements.saturating_add(1 + nested_elements(&v, self.limits().collection_elements));
                            if !self.within_elements(elements, expr.span, "map") {
                                return None;
                            }
                            // A new node of the map's B-tree every 5 entries, the first at once.
                            if out.len().is_multiple_of(5) && !self.spend(map_bytes(0), expr.span) {
                                return None;
                            }
                            out.insert(key.node.clone(), v);
                        }
                        None => ok = false,
                    }
                }
                ok.then_some(Value::Map(out))
            }
            ExprKind::Path(path) => self.eval_path(path, expr.span, env),
            ExprKind::Call { name, args } => self.eval_call(name, args, expr.span, env),
            ExprKind::Paren(inner) => self.eval(inner, env),
            ExprKind::Unary { op, operand } => {
                let v = self.eval(operand, env)?;
                match (op.node, v) {
                    (UnaryOp::Not, Value::Bool(b)) => Some(Value::Bool(!b)),
                    (UnaryOp::Not, other) => {
                        self.type_error(operand.span, "`not` needs a bool", &other);
                        None
                    }
                }
            }
            ExprKind::Binary { op, lhs, rhs } => self.eval_binary(op.node, op.span, lhs, rhs, env),
        }
    }

    /// Whether a list or map of `elements` (nested ones counted) is within
    /// `collection_elements`; E0117 at `span` otherwise.
    fn within_elements(&self, elements: u64, span: Span, what: &str) -> bool {
        let limit = self.limits().collection_elements;
        if elements <= limit {
            return true;
        }
        self.report(
            Diagnostic::error(
                Code::E0117,
                format!(
                    "this {what} would hold more than {} elements (`limits.collection_elements`)",
                    thousands(limit)
                ),
            )
            .with_label(span, format!("{} elements so far, nested lists and maps counted", thousands(elements)))
            .with_help(
                "a `let` that holds another more than once multiplies its size each time; if the configuration \
                 really needs more, raise `limits.collection_elements` in mlpolicy.yaml",
            ),
        );
        false
    }

    /// Whether `out` may grow by `more` bytes within `string_bytes`, paying for them; E0116
    /// at the string (`span`) and the part (`part`) that would cross it otherwise.
    fn grow(&self, out: &str, more: usize, span: Span, part: Option<Span>) -> bool {
        let limit = self.limits().string_bytes;
        let len = u64::try_from(out.len().saturating_add(more)).unwrap_or(u64::MAX);
        if len > limit {
            let mut d = Diagnostic::error(
                Code::E0116,
                format!("this string would be longer than {} bytes (`limits.string_bytes`)", thousands(limit)),
            )
            .with_label(span, format!("{} bytes so far", thousands(len)));
            if let Some(part) = part {
                d = d.with_secondary(part, "this part takes it over");
            }
            self.report(d.with_help(
                "a `let` that interpolates another more than once multiplies its length each time; if the \
                 configuration really needs longer strings, raise `limits.string_bytes` in mlpolicy.yaml",
            ));
            return false;
        }
        self.spend(u64::try_from(more).unwrap_or(u64::MAX), span)
    }

    fn eval_str(&self, s: &ast::StrLit, span: Span, env: &Env) -> Option<String> {
        let mut out = String::new();
        let mut ok = true;
        for part in &s.parts {
            match part {
                StrPart::Lit(t) => {
                    if !self.grow(&out, t.len(), span, None) {
                        return None;
                    }
                    out.push_str(t);
                }
                StrPart::Interp(e) => match self.eval(e, env) {
                    Some(Value::Str(v)) => {
                        if !self.grow(&out, v.len(), span, Some(e.span)) {
                            return None;
                        }
                        out.push_str(&v);
                    }
                    Some(Value::Int(i)) => out.push_str(&i.to_string()),
                    Some(other) => {
                        self.report(
                            Diagnostic::error(
                                Code::E0110,
                                format!("interpolation yields {}, not a string", other.a_type_name()),
                            )
                            .with_label(e.span, format!("this is {}", other.a_type_name()))
                            .with_help("only strings and integers can be interpolated into a string"),
                        );
                        ok = false;
                    }
                    None => ok = false,
                },
            }
        }
        ok.then_some(out)
    }

    fn type_error(&self, span: Span, what: &str, got: &Value) {
        self.report(
            Diagnostic::error(Code::E0111, format!("{what}, found {}", got.a_type_name()))
                .with_label(span, format!("this is {}", got.a_type_name())),
        );
    }

    fn eval_binary(&self, op: BinaryOp, op_span: Span, lhs: &Expr, rhs: &Expr, env: &Env) -> Option<Value> {
        // `and` / `or` short-circuit, so `"env" in tags and tags["env"] == "prod"` is safe.
        if matches!(op, BinaryOp::And | BinaryOp::Or)
            && let Some(Value::Bool(l)) = self.eval(lhs, env)
        {
            if l == (op == BinaryOp::Or) {
                return Some(Value::Bool(l));
            }
            return match self.eval(rhs, env)? {
                Value::Bool(r) => Some(Value::Bool(r)),
                other => {
                    self.type_error(rhs.span, &format!("`{}` needs bools", op.symbol()), &other);
                    None
                }
            };
        }
        let l = self.eval(lhs, env);
        let r = self.eval(rhs, env);
        let (l, r) = (l?, r?);
        if op == BinaryOp::Matches && !self.spend(matches_cost(&l, &r), op_span) {
            return None;
        }
        let result = apply_binary(op, &l, &r);
        if result.is_none() {
            self.report(
                Diagnostic::error(
                    Code::E0111,
                    format!("`{}` cannot compare {} with {}", op.symbol(), l.a_type_name(), r.a_type_name()),
                )
                .with_label(op_span, "here")
                .with_secondary(lhs.span, l.type_name())
                .with_secondary(rhs.span, r.type_name()),
            );
        }
        result
    }

    fn eval_call(&self, name: &ast::Ident, args: &[Expr], span: Span, env: &Env) -> Option<Value> {
        let func = name.node.as_str();
        if !FUNCTIONS.contains(&func) {
            let mut d = Diagnostic::error(Code::E0107, format!("unknown function `{func}`"))
                .with_label(name.span, "not a function");
            d.help = self
                .suggest
                .did_you_mean(func, FUNCTIONS.iter().copied())
                .or_else(|| Some(format!("the functions are {}", FUNCTIONS.map(|f| format!("`{f}`")).join(", "))));
            self.report(d);
            return None;
        }
        if args.len() != 1 {
            self.report(
                Diagnostic::error(Code::E0107, format!("`{func}` takes one argument, got {}", args.len()))
                    .with_label(span, "wrong number of arguments"),
            );
            return None;
        }
        let arg = self.eval(&args[0], env)?;
        let make = |s: String| -> Value {
            match func {
                "user" => Value::Ref(Ref::User(s)),
                "service_principal" => Value::Ref(Ref::ServicePrincipal(s)),
                "existing_group" => Value::Ref(Ref::ExistingGroup(s)),
                _ => Value::Ref(Ref::Scope(s)),
            }
        };
        match (func, arg) {
            ("count", Value::List(l)) => Some(Value::Int(i64::try_from(l.len()).unwrap_or(i64::MAX))),
            ("count", Value::Map(m)) => Some(Value::Int(i64::try_from(m.len()).unwrap_or(i64::MAX))),
            ("count", other) => {
                self.type_error(args[0].span, "`count` needs a list or a map", &other);
                None
            }
            ("scope", Value::Str(s)) => Some(make(s)),
            (_, Value::Str(s)) if func != "scope" => Some(make(s)),
            (_, Value::List(items)) if func != "scope" => {
                if !self.spend(NODE_BYTES.saturating_mul(u64::try_from(items.len()).unwrap_or(u64::MAX)), span) {
                    return None;
                }
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::Str(s) => out.push(make(s)),
                        other => {
                            self.type_error(args[0].span, &format!("`{func}` needs strings"), &other);
                            return None;
                        }
                    }
                }
                Some(Value::List(out))
            }
            (_, other) => {
                let need = if func == "scope" { "an ARM id string" } else { "a string or a list of strings" };
                self.type_error(args[0].span, &format!("`{func}` needs {need}"), &other);
                None
            }
        }
    }

    fn eval_path(&self, path: &ast::Path, span: Span, env: &Env) -> Option<Value> {
        let root = path.root.node.as_str();
        let (bound, steps) = env.get(root);
        // Looking a name up walks the bindings: paid for, so that many `let`s in a loop body
        // cannot make every lookup slow for free.
        if !self.spend(steps.saturating_mul(LOOKUP_BYTES), span) {
            return None;
        }
        if let Some(v) = bound {
            return self.select(v, &path.segments, span, env);
        }
        if self.lets.contains_key(root) {
            let v = self.eval_let(root, path.root.span)?;
            return self.select(&v, &path.segments, span, env);
        }
        match root {
            "var" => self.eval_var(path, span, env),
            "sub" => self.eval_sub(path),
            "system" if path.segments.is_empty() => Some(Value::Ref(Ref::System)),
            _ => {
                if let Some(kind) = REFERENCE_KINDS.into_iter().find(|k| k.keyword() == root) {
                    return self.eval_reference(kind, path, span, env);
                }
                let candidates = env
                    .names()
                    .chain(self.lets.keys().map(String::as_str))
                    .chain(["var", "sub", "system"])
                    .chain(REFERENCE_KINDS.iter().map(|k| k.keyword()));
                let mut d = Diagnostic::error(Code::E0106, format!("unknown name `{root}`"))
                    .with_label(path.root.span, "not a variable, `let`, or declaration kind");
                d.help = self.suggest.did_you_mean(root, candidates).or_else(|| {
                    Some("names are loop variables, `let` bindings, `var.NAME`, `sub.ALIAS` or `KIND.NAME`".to_owned())
                });
                self.report(d);
                None
            }
        }
    }

    fn eval_var(&self, path: &ast::Path, span: Span, env: &Env) -> Option<Value> {
        let Some(Segment::Field(name)) = path.segments.first() else {
            self.report(
                Diagnostic::error(Code::E0103, "`var` must be followed by a variable name")
                    .with_label(path.root.span, "write `var.NAME`"),
            );
            return None;
        };
        let Some(v) = self.vars.get(&name.node) else {
            let mut d = Diagnostic::error(Code::E0103, format!("variable `{}` is used but not given", name.node))
                .with_label(name.span, "no such variable");
            d.help = Some(match self.suggest.closest(&name.node, self.vars.keys().map(String::as_str)) {
                Some(c) => format!("did you mean `var.{c}`?"),
                None => format!(
                    "give it under `vars:` in mlpolicy.yaml, or with `--var {}=VALUE` or `--vars FILE.yaml`",
                    name.node
                ),
            });
            self.report(d);
            return None;
        };
        self.select(v, &path.segments[1..], span, env)
    }

    fn eval_sub(&self, path: &ast::Path) -> Option<Value> {
        let Some(Segment::Field(alias)) = path.segments.first() else {
            self.report(
                Diagnostic::error(Code::E0104, "`sub` must be followed by a subscription alias")
                    .with_label(path.root.span, "write `sub.ALIAS`"),
            );
            return None;
        };
        if path.segments.len() > 1 {
            self.report(
                Diagnostic::error(Code::E0108, format!("`sub.{}` has no attributes", alias.node))
                    .with_label(path.root.span.to(alias.span), "a subscription reference"),
            );
            return None;
        }
        let Some(id) = self.subscriptions.get(&alias.node) else {
            let mut d = Diagnostic::error(Code::E0104, format!("unknown subscription alias `{}`", alias.node))
                .with_label(alias.span, "not in `subscriptions:` of mlpolicy.yaml");
            d.help = Some(match self.suggest.closest(&alias.node, self.subscriptions.keys().map(String::as_str)) {
                Some(c) => format!("did you mean `sub.{c}`?"),
                None => format!("add `{}: <subscription id>` under `subscriptions:` in mlpolicy.yaml", alias.node),
            });
            self.report(d);
            return None;
        };
        Some(Value::Ref(Ref::Subscription { alias: alias.node.clone(), id: id.clone() }))
    }

    fn eval_reference(&self, kind: Kind, path: &ast::Path, span: Span, env: &Env) -> Option<Value> {
        let mut segments = path.segments.iter();
        let Some(Segment::Field(name)) = segments.next() else {
            self.report(
                Diagnostic::error(Code::E0101, format!("`{kind}` must be followed by a name"))
                    .with_label(path.root.span, format!("write `{kind}.NAME`")),
            );
            return None;
        };
        let mut keys = Vec::new();
        let mut attr: Option<&ast::Ident> = None;
        for seg in segments {
            match seg {
                Segment::Index(e) if attr.is_none() => match self.eval(e, env)? {
                    Value::Str(s) => keys.push(Key::Str(s)),
                    Value::Int(i) => keys.push(Key::Int(i)),
                    other => {
                        self.type_error(e.span, "a key must be a string or an integer", &other);
                        return None;
                    }
                },
                Segment::Field(f) if attr.is_none() => attr = Some(f),
                Segment::Field(f) => {
                    self.report(
                        Diagnostic::error(
                            Code::E0108,
                            format!("`.{}` cannot follow `.{}`", f.node, attr.map_or("", |a| a.node.as_str())),
                        )
                        .with_label(f.span, "too many attributes"),
                    );
                    return None;
                }
                Segment::Index(e) => {
                    self.report(
                        Diagnostic::error(Code::E0108, "an index cannot follow an attribute")
                            .with_label(e.span, "here"),
                    );
                    return None;
                }
            }
        }
        let address = Address::decl(kind, name.node.clone(), keys);
        if let Some(symbols) = self.symbols
            && !symbols.addresses.contains(&address)
        {
            self.report_missing(symbols, kind, name, &address, span);
            return None;
        }
        let Some(attr) = attr else {
            return Some(Value::Ref(Ref::Object(address)));
        };
        if kind == Kind::Workspace {
            if attr.node == "identity" {
                return Some(Value::Ref(Ref::WorkspaceIdentity(address)));
            }
            if let Some(dep) = Dependency::from_attribute(&attr.node) {
                return Some(Value::Ref(Ref::WorkspaceDependency(address, dep)));
            }
        }
        let allowed: Vec<&str> = if kind == Kind::Workspace {
            std::iter::once("identity").chain(Dependency::ALL.iter().map(|d| d.attribute())).collect()
        } else {
            Vec::new()
        };
        let mut d = Diagnostic::error(Code::E0108, format!("`{kind}` references have no attribute `{}`", attr.node))
            .with_label(attr.span, "unknown attribute");
        d.help = self.suggest.did_you_mean(&attr.node, allowed.iter().copied()).or_else(|| {
            Some(if allowed.is_empty() {
                format!("refer to the {kind} itself: `{kind}.{}`", name.node)
            } else {
                format!(
                    "a workspace reference may name {}",
                    allowed.iter().map(|a| format!("`.{a}`")).collect::<Vec<_>>().join(", ")
                )
            })
        });
        self.report(d);
        None
    }

    fn report_missing(&self, symbols: &Symbols, kind: Kind, name: &ast::Ident, address: &Address, span: Span) {
        let same_name: Vec<&Address> = symbols
            .addresses
            .iter()
            .filter(|a| matches!(a, Address::Decl { kind: k, name: n, .. } if *k == kind && *n == name.node))
            .collect();
        if same_name.is_empty() {
            let names = symbols.names.get(&kind);
            let mut d = Diagnostic::error(Code::E0101, format!("no {kind} named `{}`", name.node))
                .with_label(name.span, format!("no `{kind} {} {{ ... }}` in this configuration", name.node));
            d.help = names
                .and_then(|n| self.suggest.closest(&name.node, n.iter().map(String::as_str)))
                .map(|c| format!("did you mean `{kind}.{c}`?"));
            self.report(d);
            return;
        }
        let shown: Vec<String> = same_name.iter().take(5).map(ToString::to_string).collect();
        let more = if same_name.len() > 5 { ", …" } else { "" };
        let wants_keys = address.keys().len();
        let msg = if same_name.iter().all(|a| a.keys().len() != wants_keys) {
            if wants_keys == 0 {
                format!("`{kind}.{}` is declared inside `for`: name one instance with a key", name.node)
            } else {
                format!("`{kind}.{}` takes {} key(s), not {wants_keys}", name.node, same_name[0].keys().len())
            }
        } else {
            format!("there is no `{address}`")
        };
        self.report(
            Diagnostic::error(Code::E0105, msg)
                .with_label(span, "no such instance")
                .with_help(format!("declared instances: {}{more}", shown.join(", "))),
        );
    }

    /// Reads `root` along `segments` in place and copies only what they select (paid for).
    fn select(&self, root: &Value, segments: &[Segment], span: Span, env: &Env) -> Option<Value> {
        let mut value = root;
        for seg in segments {
            let (key, key_span): (Value, Span) = match seg {
                Segment::Field(f) => (Value::Str(f.node.clone()), f.span),
                Segment::Index(e) => (self.eval(e, env)?, e.span),
            };
            value = match (value, key) {
                (Value::Map(m), Value::Str(k)) => {
                    if let Some(v) = m.get(&k) {
                        v
                    } else {
                        let mut d = Diagnostic::error(Code::E0108, format!("no key `{k}` in this map"))
                            .with_label(key_span, "missing key");
                        d.help = self.suggest.did_you_mean(&k, m.keys().map(String::as_str)).or_else(|| {
                            let keys: Vec<String> = m.keys().take(8).map(|k| format!("`{k}`")).collect();
                            Some(if keys.is_empty() {
                                "the map is empty".to_owned()
                            } else {
                                format!("its keys are {}", keys.join(", "))
                            })
                        });
                        self.report(d);
                        return None;
                    }
                }
                (Value::List(l), Value::Int(i)) => {
                    if let Some(v) = usize::try_from(i).ok().and_then(|i| l.get(i)) {
                        v
                    } else {
                        self.report(
                            Diagnostic::error(
                                Code::E0108,
                                format!("index {i} is out of range for a list of {}", l.len()),
                            )
                            .with_label(key_span, "out of range"),
                        );
                        return None;
                    }
                }
                (v, k) => {
                    self.report(
                        Diagnostic::error(
                            Code::E0108,
                            format!("cannot index {} with {}", v.a_type_name(), k.a_type_name()),
                        )
                        .with_label(key_span, "invalid index")
                        .with_help("maps take string keys (`m.key` or `m[\"key\"]`), lists take integer indexes"),
                    );
                    return None;
                }
            };
        }
        self.copy(value, span)
    }
}

/// The names of `let`s that `expr` (a top-level `let`'s value, with no loop variable in scope)
/// refers to. Expressions nest at most 200 deep (E0013), so recursing is safe.
fn let_refs(expr: &Expr, lets: &HashMap<String, &ast::Let>, out: &mut Vec<String>) {
    match &expr.kind {
        ExprKind::Str(s) => {
            for part in &s.parts {
                if let StrPart::Interp(e) = part {
                    let_refs(e, lets, out);
                }
            }
        }
        ExprKind::Int(_) | ExprKind::Bool(_) => {}
        ExprKind::List(items) => items.iter().for_each(|e| let_refs(e, lets, out)),
        ExprKind::Map(entries) => entries.iter().for_each(|(_, e)| let_refs(e, lets, out)),
        ExprKind::Path(path) => {
            if lets.contains_key(&path.root.node) {
                out.push(path.root.node.clone());
            }
            for seg in &path.segments {
                if let Segment::Index(e) = seg {
                    let_refs(e, lets, out);
                }
            }
        }
        ExprKind::Call { args, .. } => args.iter().for_each(|e| let_refs(e, lets, out)),
        ExprKind::Unary { operand, .. } => let_refs(operand, lets, out),
        ExprKind::Binary { lhs, rhs, .. } => {
            let_refs(lhs, lets, out);
            let_refs(rhs, lets, out);
        }
        ExprKind::Paren(inner) => let_refs(inner, lets, out),
    }
}

/// Elements of `value` if it is a list or map, nested lists and maps counted in full.
/// Counting stops once past `cap` (the answer is then some number above `cap`).
fn nested_elements(value: &Value, cap: u64) -> u64 {
    let mut total: u64 = 0;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        let before = stack.len();
        match v {
            Value::List(items) => stack.extend(items),
            Value::Map(m) => stack.extend(m.values()),
            _ => {}
        }
        total = total.saturating_add(u64::try_from(stack.len() - before).unwrap_or(u64::MAX));
        if total > cap {
            break;
        }
    }
    total
}

/// What `value` takes in memory: [`NODE_BYTES`] per value plus the bytes of its strings.
/// Counting stops once past `cap` (the answer is then some number above `cap`).
pub fn value_bytes(value: &Value, cap: u64) -> u64 {
    let mut total: u64 = 0;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        let own = match v {
            Value::Str(s) => s.len(),
            Value::Int(_) | Value::Bool(_) => 0,
            Value::List(items) => {
                stack.extend(items);
                0
            }
            Value::Map(m) => {
                stack.extend(m.values());
                let keys: usize = m.keys().map(String::len).sum();
                let keys = u64::try_from(keys).unwrap_or(u64::MAX);
                usize::try_from(map_bytes(m.len()).saturating_add(keys)).unwrap_or(usize::MAX)
            }
            Value::Ref(r) => ref_bytes(r),
        };
        total = total.saturating_add(NODE_BYTES).saturating_add(u64::try_from(own).unwrap_or(u64::MAX));
        if total > cap {
            break;
        }
    }
    total
}

/// The bytes of a reference's strings.
fn ref_bytes(r: &Ref) -> usize {
    match r {
        Ref::Object(a) | Ref::WorkspaceIdentity(a) | Ref::WorkspaceDependency(a, _) => address_bytes(a),
        Ref::Subscription { alias, id } => alias.len() + id.len(),
        Ref::User(s) | Ref::ServicePrincipal(s) | Ref::ExistingGroup(s) | Ref::Scope(s) => s.len(),
        Ref::System => 0,
    }
}

/// The bytes of an address's strings.
pub fn address_bytes(a: &Address) -> usize {
    match a {
        Address::Decl { name, keys, .. } => name.len() + keys_bytes(keys),
        Address::Federated { identity, name } => address_bytes(identity) + name.len(),
        Address::Grant { role, principal, scope } => role.len() + principal.len() + scope.len(),
    }
}

/// The bytes of `for` keys (an integer key counts 8).
pub fn keys_bytes(keys: &[Key]) -> usize {
    keys.iter()
        .map(|k| match k {
            Key::Str(s) => s.len(),
            Key::Int(_) => 8,
        })
        .sum()
}

/// What `l matches r` may cost ([`glob_cost`] of every text and pattern it tries).
fn matches_cost(l: &Value, r: &Value) -> u64 {
    fn strings(v: &Value) -> Vec<&str> {
        match v {
            Value::Str(s) => vec![s.as_str()],
            Value::List(items) => {
                items.iter().filter_map(|i| if let Value::Str(s) = i { Some(s.as_str()) } else { None }).collect()
            }
            _ => Vec::new(),
        }
    }
    let (texts, patterns) = (strings(l), strings(r));
    texts.iter().flat_map(|t| patterns.iter().map(move |p| glob_cost(p, t))).fold(0u64, u64::saturating_add)
}

/// `op` applied to two values; `None` when the types do not fit the operator.
#[expect(clippy::many_single_char_names, reason = "operands of a table of operators")]
pub fn apply_binary(op: BinaryOp, l: &Value, r: &Value) -> Option<Value> {
    use Value::{Bool, Int, List, Map, Str};
    let b = |x: bool| Some(Bool(x));
    match (op, l, r) {
        (BinaryOp::And, Bool(a), Bool(c)) => b(*a && *c),
        (BinaryOp::Or, Bool(a), Bool(c)) => b(*a || *c),
        (BinaryOp::Eq, a, c) => b(a == c),
        (BinaryOp::Ne, a, c) => b(a != c),
        (BinaryOp::Lt, Int(a), Int(c)) => b(a < c),
        (BinaryOp::Le, Int(a), Int(c)) => b(a <= c),
        (BinaryOp::Gt, Int(a), Int(c)) => b(a > c),
        (BinaryOp::Ge, Int(a), Int(c)) => b(a >= c),
        (BinaryOp::In, a, List(items)) => b(items.contains(a)),
        (BinaryOp::NotIn, a, List(items)) => b(!items.contains(a)),
        (BinaryOp::In, Str(a), Map(m)) => b(m.contains_key(a)),
        (BinaryOp::NotIn, Str(a), Map(m)) => b(!m.contains_key(a)),
        (BinaryOp::In, Str(a), Str(s)) => b(s.contains(a.as_str())),
        (BinaryOp::NotIn, Str(a), Str(s)) => b(!s.contains(a.as_str())),
        (BinaryOp::Matches, Str(a), Str(pattern)) => b(glob_matches(pattern, a)),
        (BinaryOp::Matches, Str(a), List(patterns)) => {
            b(patterns.iter().any(|p| matches!(p, Str(p) if glob_matches(p, a))))
        }
        (BinaryOp::Matches, List(items), Str(pattern)) => {
            b(items.iter().any(|i| matches!(i, Str(s) if glob_matches(pattern, s))))
        }
        _ => None,
    }
}

/// One element of a glob pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Glob {
    /// `*`: any run of characters, `/` included.
    Any,
    /// `?`: one character.
    One,
    /// A character to match as itself (`\x` is `x`).
    Char(char),
}

fn glob_parts(pattern: &str) -> Vec<Glob> {
    let mut out = Vec::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '*' => Glob::Any,
            '?' => Glob::One,
            '\\' => Glob::Char(chars.next().unwrap_or('\\')),
            c => Glob::Char(c),
        });
    }
    out
}

/// Glob match of the whole `text`: `*` is any run of characters, `?` one character, `\` makes
/// the next character literal, and every other character is itself. No pattern is compiled:
/// the match backtracks only to the last `*`, in time at most [`glob_cost`] and no memory
/// beyond the two strings.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let p = glob_parts(pattern);
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // After the last `*`: where the pattern resumes, and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(Glob::Any) => {
                star = Some((pi + 1, ti));
                pi += 1;
            }
            Some(Glob::One) => {
                pi += 1;
                ti += 1;
            }
            Some(Glob::Char(c)) if *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((resume, tried)) => {
                    star = Some((resume, tried + 1));
                    pi = resume;
                    ti = tried + 1;
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|g| *g == Glob::Any)
}

/// An upper bound of the work of [`glob_matches`]: the text's length times the longest run of
/// the pattern between two `*` (the part a backtrack retries), plus the pattern's length.
pub fn glob_cost(pattern: &str, text: &str) -> u64 {
    let longest = pattern.split('*').map(str::len).max().unwrap_or(0);
    let work = (text.len().saturating_add(1)).saturating_mul(longest.saturating_add(1)).saturating_add(pattern.len());
    u64::try_from(work).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_is_whole_string() {
        assert!(glob_matches("*:pull_request", "repo:a/b:pull_request"));
        assert!(!glob_matches("*:pull_request", "repo:a/b:pull_request:x"));
        assert!(glob_matches("repo:contoso/*", "repo:contoso/x:ref:refs/heads/main"));
        assert!(glob_matches("*pull_request*", "repo:a/b:pull_request"));
        assert!(glob_matches("a?c", "abc") && !glob_matches("a?c", "ac") && glob_matches("?", "é"));
        assert!(glob_matches("", "") && !glob_matches("", "x") && glob_matches("*", "") && glob_matches("**", "x"));
        assert!(glob_matches("a\\*b", "a*b") && !glob_matches("a\\*b", "axb"), "`\\` makes `*` literal");
        assert!(glob_matches("[ab]", "[ab]") && !glob_matches("[ab]", "a"), "brackets are literal");
        assert!(glob_matches("*a*b*c", "xxaxxbxxc") && !glob_matches("*a*b*c", "xxaxxcxxb"));
    }

    /// The matcher agrees with the definition (a recursive match, exponential but obvious).
    fn reference(p: &[Glob], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((Glob::Any, rest)) => (0..=t.len()).any(|i| reference(rest, &t[i..])),
            Some((Glob::One, rest)) => !t.is_empty() && reference(rest, &t[1..]),
            Some((Glob::Char(c), rest)) => t.first() == Some(c) && reference(rest, &t[1..]),
        }
    }

    proptest::proptest! {
        #[test]
        fn glob_matching_agrees_with_its_definition(pattern in "[ab*?\\\\]{0,8}", text in "[ab*]{0,10}") {
            let t: Vec<char> = text.chars().collect();
            proptest::prop_assert_eq!(glob_matches(&pattern, &text), reference(&glob_parts(&pattern), &t));
        }
    }

    #[test]
    fn a_long_glob_costs_its_bound_not_memory() {
        let pattern = "*a".repeat(5_000) + "*";
        let text = "a".repeat(4_999) + &"b".repeat(5_000);
        assert!(!glob_matches(&pattern, &text));
        assert_eq!(glob_cost("*ab*c*", "xyz"), 4 * 3 + 6);
    }

    #[test]
    fn operators_on_values() {
        let s = |x: &str| Value::Str(x.into());
        assert_eq!(apply_binary(BinaryOp::In, &s("a"), &Value::List(vec![s("a")])), Some(Value::Bool(true)));
        assert_eq!(apply_binary(BinaryOp::Lt, &Value::Int(1), &Value::Int(2)), Some(Value::Bool(true)));
        assert_eq!(apply_binary(BinaryOp::Lt, &s("a"), &Value::Int(2)), None);
        assert_eq!(apply_binary(BinaryOp::And, &Value::Bool(true), &Value::Bool(false)), Some(Value::Bool(false)));
    }
}
