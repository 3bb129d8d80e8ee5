//! Policy evaluation: every `deny` / `warn` rule over every object of its subject in the
//! desired state. A violation points at the declaration (primary label) and at the rule
//! (related), shows the policy's message, and names the object's full address (with its
//! `for` key). `allow POLICY because "..."` on a declaration waives that one policy for it.
//!
//! Subjects see their attributes as plain values: see [`subject_values`]. Codes: E0401 (a
//! `deny` rule matched), W0401 (a `warn` rule matched), W0402 (a condition could not be
//! evaluated for an object).

use std::collections::{BTreeMap, HashMap};

use crate::ast::{self, Effect};
use crate::diagnostics::Code;
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::eval::{Env, Evaluator};
use crate::model::{Address, Meta, Model, Principal, Scope, Value, Waiver, WorkspaceIdentity};
use crate::source::Span;

/// Roles that only read: an identity holding only these needs no federated credential rule.
pub const READ_ONLY_ROLES: &[&str] =
    &["Reader", "Storage Blob Data Reader", "AzureML Registry User", "Key Vault Secrets User", "AcrPull"];

/// One rule that matched one declaration. Violations are kept only here; they are shown as
/// E0401/W0401 diagnostics through [`Violation::to_diagnostic`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The policy's name.
    pub policy: String,
    /// Where the policy is declared (its file tells a pack from the configuration).
    pub policy_span: Span,
    pub effect: Effect,
    /// The rule's subject kind (`grant`, `group`, ...).
    pub subject: String,
    /// The rule that matched.
    pub rule_span: Span,
    /// The violating declaration's full address.
    pub address: String,
    /// The declaration's name (or, for grants, the `grant` line).
    pub span: Span,
    /// The policy's `message`, when it has one.
    pub message: Option<String>,
}

impl Violation {
    /// The headline: "policy `x` denies `address`".
    pub fn headline(&self) -> String {
        let verb = if self.effect == Effect::Deny { "denies" } else { "warns about" };
        format!("policy `{}` {verb} `{}`", self.policy, self.address)
    }

    /// The policy's message, or which rule matched.
    pub fn explanation(&self) -> String {
        self.message.clone().unwrap_or_else(|| {
            let word = if self.effect == Effect::Deny { "deny" } else { "warn" };
            format!("matches `{word} {} when ...`", self.subject)
        })
    }

    /// The violation as a diagnostic: E0401 for `deny`, W0401 for `warn`.
    pub fn to_diagnostic(&self) -> Diagnostic {
        let (code, base): (Code, fn(Code, String) -> Diagnostic) = match self.effect {
            Effect::Deny => (Code::E0401, |c, t| Diagnostic::error(c, t)),
            Effect::Warn => (Code::W0401, |c, t| Diagnostic::warning(c, t)),
        };
        base(code, self.headline())
            .with_label(self.span, self.explanation())
            .with_help(format!(
                "change the declaration, or waive it with `allow {} because \"...\"` in its body",
                self.policy
            ))
            .with_related(
                Diagnostic::warning(code, format!("rule of policy `{}`", self.policy))
                    .with_label(self.rule_span, "this rule matched"),
            )
    }
}

/// The outcome of evaluating policies.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    /// Problems of the evaluation itself (a condition that is not a bool, a missing variable).
    pub diagnostics: Diagnostics,
    /// Every violation, in the order found (waived ones are left out).
    pub violations: Vec<Violation>,
    /// Waivers that were used, for the plan's list of exceptions.
    pub waivers: Vec<(Address, Waiver)>,
    pub denied: usize,
    pub warned: usize,
}

/// Evaluates every rule of `policies` over the model.
pub fn evaluate(
    policies: &[ast::Policy],
    model: &Model,
    vars: &BTreeMap<String, Value>,
    subscriptions: &BTreeMap<String, String>,
    lets: &HashMap<String, &ast::Let>,
    meter: &crate::limits::Meter,
) -> Evaluation {
    let evaluator = Evaluator::new(vars, subscriptions, lets, None).sharing(meter);
    let mut out = Evaluation::default();
    if policies.iter().all(|p| p.rules.is_empty()) {
        return out;
    }
    let subjects = subject_values(model);
    for p in policies {
        let message = message_of(p);
        for rule in &p.rules {
            let Some(objects) = subjects.get(rule.subject.node.as_str()) else { continue };
            for (meta, env) in objects {
                match judge(&evaluator, p, rule, &meta.address, env, &meta.waivers, &mut out.diagnostics) {
                    Judgement::Clear => continue,
                    Judgement::Waived(w) => {
                        out.waivers.push((meta.address.clone(), w.clone()));
                        continue;
                    }
                    Judgement::Matched => {}
                }
                match rule.effect.node {
                    Effect::Deny => out.denied += 1,
                    Effect::Warn => out.warned += 1,
                }
                out.violations.push(Violation {
                    policy: p.name.node.clone(),
                    policy_span: p.name.span,
                    effect: rule.effect.node,
                    subject: rule.subject.node.clone(),
                    rule_span: rule.span,
                    address: meta.address.to_string(),
                    span: meta.name_span,
                    message: message.clone(),
                });
            }
        }
    }
    // Evaluation errors in conditions (a missing variable, a type error) are reported once each.
    let mut errors = evaluator.take_diagnostics();
    errors.sort();
    out.diagnostics.extend(errors);
    out
}

/// What one rule of a policy says of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement<'w> {
    /// The condition does not hold (or could not be evaluated).
    Clear,
    /// The condition holds, but the object waives the policy with this waiver.
    Waived(&'w Waiver),
    /// The condition holds: a violation.
    Matched,
}

/// Evaluates one rule of `policy` for one object, in the compiler and in the audit alike: the
/// rule's condition in `env`, then the object's `waivers`. A condition that yields something
/// other than a bool is reported as W0402 into `diagnostics`, naming the object `name`;
/// evaluation errors stay with `evaluator` (see [`Evaluator::take_diagnostics`]).
pub fn judge<'w>(
    evaluator: &Evaluator<'_>,
    policy: &ast::Policy,
    rule: &ast::Rule,
    name: &dyn std::fmt::Display,
    env: &Env,
    waivers: &'w [Waiver],
    diagnostics: &mut Diagnostics,
) -> Judgement<'w> {
    match evaluator.eval(&rule.condition, env) {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) | None => return Judgement::Clear,
        Some(other) => {
            diagnostics.push(
                Diagnostic::warning(
                    Code::W0402,
                    format!("policy `{}` yields {} for `{name}`, not a bool", policy.name.node, other.a_type_name()),
                )
                .with_label(rule.condition.span, "expected a condition"),
            );
            return Judgement::Clear;
        }
    }
    waivers.iter().find(|w| w.policy == policy.name.node).map_or(Judgement::Matched, Judgement::Waived)
}

/// A policy's `message`, when it is a plain string.
pub fn message_of(p: &ast::Policy) -> Option<String> {
    p.attrs.iter().find(|a| a.name.node == "message").and_then(|a| match &a.value.kind {
        ast::ExprKind::Str(s) => s.as_plain(),
        _ => None,
    })
}

/// Whether a role only reads: listed in [`READ_ONLY_ROLES`] or named `... Reader`.
pub fn is_read_only(role: &Value) -> bool {
    matches!(role, Value::Str(r) if READ_ONLY_ROLES.contains(&r.as_str()) || r.ends_with(" Reader"))
}

/// Direct members of a group principal of the configuration (0 for anything else).
fn member_count(model: &Model, p: &Principal) -> i64 {
    match p {
        Principal::Group(a) => model.groups.get(a).map_or(0, |g| i64::try_from(g.members.len()).unwrap_or(i64::MAX)),
        _ => 0,
    }
}

fn s(v: &str) -> Value {
    Value::Str(v.to_owned())
}

fn opt(v: Option<&String>) -> Value {
    Value::Str(v.cloned().unwrap_or_default())
}

fn map(entries: &[(&str, Value)]) -> Value {
    Value::Map(entries.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect())
}

fn tags(t: &BTreeMap<String, String>) -> Value {
    Value::Map(t.iter().map(|(k, v)| (k.clone(), s(v))).collect())
}

/// The name a principal shows to policies: a UPN, a group's or identity's Azure name.
pub fn principal_name(model: &Model, p: &Principal) -> String {
    match p {
        Principal::User(n) | Principal::ServicePrincipal(n) | Principal::ExistingGroup(n) => n.clone(),
        Principal::Group(a) => model.groups.get(a).map_or_else(|| a.to_string(), |g| g.name.clone()),
        Principal::Identity(a) => model.identities.get(a).map_or_else(|| a.to_string(), |i| i.name.clone()),
        Principal::WorkspaceSystem(a) => model.workspaces.get(a).map_or_else(|| a.to_string(), |w| w.name.clone()),
    }
}

/// The name a scope shows to policies.
pub fn scope_name(model: &Model, sc: &Scope) -> String {
    match sc {
        Scope::Subscription { alias, .. } => alias.clone(),
        Scope::ResourceGroup(a) => model.resource_groups.get(a).map_or_else(|| a.to_string(), |r| r.name.clone()),
        Scope::Workspace(a) => model.workspaces.get(a).map_or_else(|| a.to_string(), |w| w.name.clone()),
        Scope::WorkspaceDependency(a, d) => model
            .workspaces
            .get(a)
            .and_then(|w| w.dependency(*d))
            .and_then(|id| id.rsplit('/').next())
            .map_or_else(|| a.to_string(), str::to_owned),
        Scope::Arm(id) => id.clone(),
    }
}

/// For each subject, every object with the environment its conditions see.
pub fn subject_values(model: &Model) -> HashMap<&'static str, Vec<(&Meta, Env)>> {
    let mut out: HashMap<&'static str, Vec<(&Meta, Env)>> = HashMap::new();
    let bind =
        |pairs: Vec<(&str, Value)>| Env::from_bindings(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
    let mut roles_of: HashMap<&Address, Vec<Value>> = HashMap::new();
    for g in model.grants.values() {
        if let Principal::Identity(a) = &g.principal {
            roles_of.entry(a).or_default().push(s(&g.role));
        }
        let env = bind(vec![
            ("role", s(&g.role)),
            (
                "principal",
                map(&[
                    ("kind", s(g.principal.kind())),
                    ("name", s(&principal_name(model, &g.principal))),
                    ("member_count", Value::Int(member_count(model, &g.principal))),
                ]),
            ),
            ("scope", map(&[("kind", s(g.scope.kind())), ("name", s(&scope_name(model, &g.scope)))])),
            ("description", opt(g.description.as_ref())),
            ("condition", opt(g.condition.as_ref())),
        ]);
        out.entry("grant").or_default().push((&g.meta, env));
    }
    for g in model.groups.values() {
        let names = |ps: &[Principal]| Value::List(ps.iter().map(|p| s(&principal_name(model, p))).collect());
        let env = bind(vec![
            ("name", s(&g.name)),
            ("description", opt(g.description.as_ref())),
            ("members", names(&g.members)),
            ("owners", names(&g.owners)),
            ("members_additive", Value::Bool(g.members_additive)),
        ]);
        out.entry("group").or_default().push((&g.meta, env));
    }
    let mut subjects_of: HashMap<&Address, Vec<Value>> = HashMap::new();
    for f in model.federated.values() {
        subjects_of.entry(&f.identity).or_default().push(s(&f.subject));
    }
    for (a, i) in &model.identities {
        let federated = subjects_of.remove(a).unwrap_or_default();
        let roles = roles_of.remove(a).unwrap_or_default();
        let rg = model.resource_groups.get(&i.resource_group).map_or_else(String::new, |r| r.name.clone());
        let env = bind(vec![
            ("name", s(&i.name)),
            ("location", s(&i.location)),
            ("resource_group", s(&rg)),
            ("tags", tags(&i.tags)),
            ("federated", Value::List(federated)),
            ("write_roles", Value::List(roles.iter().filter(|r| !is_read_only(r)).cloned().collect())),
            ("roles", Value::List(roles)),
        ]);
        out.entry("identity").or_default().push((&i.meta, env));
    }
    for f in model.federated.values() {
        let identity = model.identities.get(&f.identity).map_or_else(String::new, |i| i.name.clone());
        let env = bind(vec![
            ("name", s(&f.name)),
            ("issuer", s(&f.issuer)),
            ("subject", s(&f.subject)),
            ("audiences", Value::List(f.audiences.iter().map(|a| s(a)).collect())),
            ("identity", map(&[("name", s(&identity))])),
        ]);
        out.entry("federated").or_default().push((&f.meta, env));
    }
    for w in model.workspaces.values() {
        let (kind, name) = match &w.identity {
            WorkspaceIdentity::System => ("system", w.name.clone()),
            WorkspaceIdentity::User(a) => {
                ("user", model.identities.get(a).map_or_else(String::new, |i| i.name.clone()))
            }
        };
        let rg = model.resource_groups.get(&w.resource_group).map_or_else(String::new, |r| r.name.clone());
        let env = bind(vec![
            ("name", s(&w.name)),
            ("location", s(&w.location)),
            ("identity", map(&[("kind", s(kind)), ("name", s(&name))])),
            ("public_network_access", Value::Bool(w.public_network_access)),
            ("tags", tags(&w.tags)),
            ("description", opt(w.description.as_ref())),
            ("resource_group", s(&rg)),
        ]);
        out.entry("workspace").or_default().push((&w.meta, env));
    }
    out
}
