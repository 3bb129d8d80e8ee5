//! Checking: the attribute schema of every kind (required, unknown, wrong type, defaults),
//! Azure's naming and format rules, duplicate Azure names, and the type-check of policies.
//!
//! Input: [`Resolved`]. Output: the typed [`Model`] with defaults filled in (location from the
//! resource group, workspace identity `system`, federated audience `api://AzureADTokenExchange`,
//! group mail nickname from its name). Declarations with errors are left out of the model, so
//! later stages only see well-formed objects. Policy *evaluation* lives in `policy`.
//! Codes: E0201–E0222, W0201.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::ast::{self, ExprKind, Segment};
use crate::diagnostics::Code;
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::model::{
    Address, Dependency, FederatedCredential, Grant, Group, Identity, Kind, Meta, Model, Principal, Ref, ResourceGroup,
    Scope, Value, Workspace, WorkspaceIdentity,
};
use crate::resolve::{ResolvedAttr, ResolvedDecl};
use crate::source::Span;
use mlpolicy_vocab::guid::is_guid;
use mlpolicy_vocab::roles;
use mlpolicy_vocab::suggest;

/// The default and only audience Azure accepts on federated credentials.
pub const FIC_AUDIENCE: &str = "api://AzureADTokenExchange";
/// Azure's limit of federated credentials per identity.
pub const MAX_FEDERATED: usize = 20;

const COMMON: &[&str] = &["prevent_destroy"];
const RG_ATTRS: &[&str] = &["subscription", "name", "location", "tags"];
const IDENTITY_ATTRS: &[&str] = &["resource_group", "name", "location", "tags"];
const FIC_ATTRS: &[&str] = &["name", "issuer", "subject", "audiences"];
const WORKSPACE_ATTRS: &[&str] = &[
    "resource_group",
    "name",
    "location",
    "identity",
    "storage_account",
    "key_vault",
    "application_insights",
    "container_registry",
    "public_network_access",
    "friendly_name",
    "description",
    "tags",
];
const GROUP_ATTRS: &[&str] = &["name", "description", "mail_nickname", "members", "owners", "members_additive"];
const GRANT_ATTRS: &[&str] = &["role", "principal", "scope", "description", "condition"];

/// The attributes a declaration of `kind` takes (besides `prevent_destroy`, which every kind
/// takes), in the order the language documents them.
pub fn attributes(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::ResourceGroup => RG_ATTRS,
        Kind::Identity => IDENTITY_ATTRS,
        Kind::Federated => FIC_ATTRS,
        Kind::Workspace => WORKSPACE_ATTRS,
        Kind::Group => GROUP_ATTRS,
        Kind::Grant => GRANT_ATTRS,
    }
}

/// Attributes every declaration takes.
pub const COMMON_ATTRIBUTES: &[&str] = COMMON;

/// Checks a resolved configuration and builds its model.
pub fn check(decls: &[ResolvedDecl], known_policies: &HashSet<String>) -> (Model, Diagnostics) {
    let mut c = Checker::new(Model::default(), known_policies);
    let by_kind = |k: Kind| decls.iter().filter(move |d| d.kind() == k);
    for d in by_kind(Kind::ResourceGroup) {
        c.resource_group(d);
    }
    for d in by_kind(Kind::Identity) {
        c.identity(d);
    }
    for d in by_kind(Kind::Workspace) {
        c.workspace(d);
    }
    // Groups and grants read no other objects than the workspaces checked above: the grants are
    // checked on a second thread, against a copy of the workspaces, while this one checks the
    // groups. Their diagnostics keep the order of a sequential run.
    let workspaces = Model { workspaces: c.model.workspaces.clone(), ..Model::default() };
    let mut g = Checker::new(workspaces, known_policies);
    std::thread::scope(|scope| {
        scope.spawn(|| by_kind(Kind::Grant).for_each(|d| g.grant(d)));
        by_kind(Kind::Group).for_each(|d| c.group(d));
    });
    c.model.grants = g.model.grants;
    c.diags.extend(g.diags);
    c.duplicate_names();
    (c.model, c.diags)
}

struct Checker<'p> {
    model: Model,
    diags: Diagnostics,
    known_policies: &'p HashSet<String>,
    /// "Did you mean" within a budget, and once per unknown role name.
    suggest: suggest::Budget,
    role_help: HashMap<String, Option<String>>,
}

impl<'p> Checker<'p> {
    fn new(model: Model, known_policies: &'p HashSet<String>) -> Self {
        Checker {
            model,
            diags: Diagnostics::default(),
            known_policies,
            suggest: suggest::Budget::default(),
            role_help: HashMap::new(),
        }
    }
}

/// Typed access to one declaration's attributes; reports unknown and duplicate attributes on
/// creation and missing or mistyped ones on access. `ok` turns false on any error.
struct Fields<'d> {
    decl: &'d ResolvedDecl,
    by_name: HashMap<&'d str, &'d ResolvedAttr>,
    ok: bool,
    diags: Diagnostics,
}

impl<'d> Fields<'d> {
    fn new(decl: &'d ResolvedDecl, allowed: &[&str]) -> Self {
        let mut f = Fields { decl, by_name: HashMap::new(), ok: true, diags: Diagnostics::default() };
        let what = decl.kind();
        for a in &decl.attrs {
            if !allowed.contains(&a.name.as_str()) && !COMMON.contains(&a.name.as_str()) {
                let mut d = Diagnostic::error(Code::E0201, format!("unknown attribute `{}` on {what}", a.name))
                    .with_label(a.name_span, format!("not an attribute of {what}"));
                d.help = suggest::did_you_mean(&a.name, allowed.iter().chain(COMMON).copied()).or_else(|| {
                    Some(format!(
                        "{what} takes {}",
                        allowed.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                    ))
                });
                f.error(d);
                continue;
            }
            if let Some(prev) = f.by_name.insert(&a.name, a) {
                f.error(
                    Diagnostic::error(Code::E0204, format!("attribute `{}` is set twice", a.name))
                        .with_label(a.name_span, "second value")
                        .with_secondary(prev.name_span, "first value")
                        .with_help("remove one of them"),
                );
            }
            if a.value.is_none() {
                f.ok = false;
            }
        }
        f
    }

    fn error(&mut self, d: Diagnostic) {
        self.ok = false;
        self.diags.push(d);
    }

    fn attr(&self, name: &str) -> Option<&'d ResolvedAttr> {
        self.by_name.get(name).copied()
    }

    /// The value, or `None` when absent or already failed.
    fn value(&self, name: &str) -> Option<(&'d Value, Span)> {
        self.attr(name).and_then(|a| a.value.as_ref().map(|v| (v, a.value_span)))
    }

    fn missing(&mut self, name: &str, example: &str) {
        let what = self.decl.kind();
        let span = self.decl.name_span;
        self.error(
            Diagnostic::error(Code::E0202, format!("{what} `{}` is missing `{name}`", self.decl.address))
                .with_label(span, format!("needs `{name}`"))
                .with_help(format!("add `{name} = {example}`")),
        );
    }

    fn wrong_type(&mut self, name: &str, expected: &str, got: &Value, span: Span) {
        self.error(
            Diagnostic::error(Code::E0203, format!("`{name}` must be {expected}, found {}", got.a_type_name()))
                .with_label(span, format!("this is {}", got.a_type_name())),
        );
    }

    fn opt_str(&mut self, name: &str) -> Option<String> {
        match self.value(name)? {
            (Value::Str(s), _) => Some(s.clone()),
            (v, span) => {
                self.wrong_type(name, "a string", v, span);
                None
            }
        }
    }

    fn req_str(&mut self, name: &str, example: &str) -> Option<String> {
        if self.attr(name).is_none() {
            self.missing(name, example);
            return None;
        }
        self.opt_str(name)
    }

    fn opt_bool(&mut self, name: &str) -> Option<bool> {
        match self.value(name)? {
            (Value::Bool(b), _) => Some(*b),
            (v, span) => {
                self.wrong_type(name, "`true` or `false`", v, span);
                None
            }
        }
    }

    fn tags(&mut self) -> BTreeMap<String, String> {
        let Some((v, span)) = self.value("tags") else { return BTreeMap::new() };
        let Value::Map(m) = v else {
            self.wrong_type("tags", "a map of strings", v, span);
            return BTreeMap::new();
        };
        let mut out = BTreeMap::new();
        for (k, v) in m {
            match v {
                Value::Str(s) => {
                    out.insert(k.clone(), s.clone());
                }
                Value::Int(i) => {
                    out.insert(k.clone(), i.to_string());
                }
                other => self.wrong_type(&format!("tags.{k}"), "a string", other, span),
            }
        }
        out
    }

    /// A required reference to an object of `kind`.
    fn req_object(&mut self, name: &str, kind: Kind) -> Option<Address> {
        if self.attr(name).is_none() {
            self.missing(name, &format!("{kind}.NAME"));
            return None;
        }
        match self.value(name)? {
            (Value::Ref(Ref::Object(a)), _) if a.kind() == kind => Some(a.clone()),
            (v, span) => {
                self.wrong_type(name, &format!("a reference to a {kind} (`{kind}.NAME`)"), v, span);
                None
            }
        }
    }

    fn meta(&self, waivers_known: &HashSet<String>, diags: &mut Diagnostics) -> Meta {
        meta_of(self.decl, waivers_known, diags)
    }
}

fn meta_of(decl: &ResolvedDecl, known: &HashSet<String>, diags: &mut Diagnostics) -> Meta {
    let mut prevent_destroy = false;
    let mut attr_spans = BTreeMap::new();
    for a in &decl.attrs {
        attr_spans.entry(a.name.clone()).or_insert(a.value_span);
        if a.name == "prevent_destroy" {
            match &a.value {
                Some(Value::Bool(b)) => prevent_destroy = *b,
                Some(other) => diags.push(
                    Diagnostic::error(
                        Code::E0203,
                        format!("`prevent_destroy` must be `true` or `false`, found {}", other.a_type_name()),
                    )
                    .with_label(a.value_span, "expected a bool"),
                ),
                None => {}
            }
        }
    }
    for w in &decl.waivers {
        if !known.contains(&w.policy) {
            let mut d = Diagnostic::error(Code::E0222, format!("`allow {}` names no known policy", w.policy))
                .with_label(w.span, "unknown policy");
            d.help = suggest::did_you_mean(&w.policy, known.iter().map(String::as_str))
                .or_else(|| Some("name a `policy` of this configuration or of a selected pack".into()));
            diags.push(d);
        }
        if w.reason.trim().is_empty() {
            diags.push(
                Diagnostic::error(Code::E0222, format!("`allow {}` needs a reason", w.policy))
                    .with_label(w.span, "empty reason")
                    .with_help("say why the exception is acceptable: reviewers read it in every plan"),
            );
        }
    }
    Meta {
        address: decl.address.clone(),
        span: decl.span,
        name_span: decl.name_span,
        attr_spans,
        prevent_destroy,
        waivers: decl.waivers.clone(),
    }
}

impl Checker<'_> {
    fn finish(&mut self, f: Fields<'_>) -> bool {
        let ok = f.ok;
        self.diags.extend(f.diags);
        ok
    }

    fn invalid(&mut self, code: Code, message: String, span: Span, help: &str) {
        self.diags.push(Diagnostic::error(code, message).with_label(span, "invalid").with_help(help));
    }

    fn resource_group(&mut self, d: &ResolvedDecl) {
        let mut f = Fields::new(d, RG_ATTRS);
        let sub = match f.value("subscription") {
            Some((Value::Ref(Ref::Subscription { alias, id }), _)) => Some((alias.clone(), id.clone())),
            Some((v, span)) => {
                f.wrong_type("subscription", "a subscription alias (`sub.ALIAS`)", v, span);
                None
            }
            None => {
                if f.attr("subscription").is_none() {
                    f.missing("subscription", "sub.ALIAS");
                }
                None
            }
        };
        let name = f.req_str("name", "\"rg-ml-prod\"");
        let location = f.req_str("location", "\"westeurope\"");
        let tags = f.tags();
        let meta = f.meta(self.known_policies, &mut self.diags);
        let mut ok = self.finish(f);
        if let Some(n) = &name
            && !valid_rg_name(n)
        {
            ok = false;
            self.invalid(
                Code::E0212,
                format!("`{n}` is not a valid resource group name"),
                meta.attr_span("name"),
                "1–90 letters, digits, `-`, `_`, `.`, `(`, `)`; not ending in `.`",
            );
        }
        if let Some(l) = &location {
            ok &= self.location(l, meta.attr_span("location"));
        }
        if let (true, Some((alias, id)), Some(name), Some(location)) = (ok, sub, name, location) {
            self.model.resource_groups.insert(
                meta.address.clone(),
                ResourceGroup {
                    meta,
                    subscription_alias: alias,
                    subscription_id: id.to_lowercase(),
                    name,
                    location,
                    tags,
                },
            );
        }
    }

    fn location(&mut self, l: &str, span: Span) -> bool {
        let ok = !l.is_empty() && l.len() <= 64 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ');
        if !ok {
            self.invalid(
                Code::E0212,
                format!("`{l}` is not an Azure location"),
                span,
                "use a region name such as \"westeurope\"",
            );
        }
        ok
    }

    fn rg_location(&self, rg: &Address) -> Option<String> {
        self.model.resource_groups.get(rg).map(|r| r.location.clone())
    }

    fn identity(&mut self, d: &ResolvedDecl) {
        let mut f = Fields::new(d, IDENTITY_ATTRS);
        let rg = f.req_object("resource_group", Kind::ResourceGroup);
        let name = f.req_str("name", "\"id-training\"");
        let location = f.opt_str("location");
        let tags = f.tags();
        let meta = f.meta(self.known_policies, &mut self.diags);
        let mut ok = self.finish(f);
        if let Some(n) = &name
            && !valid_identity_name(n)
        {
            ok = false;
            self.invalid(
                Code::E0212,
                format!("`{n}` is not a valid managed identity name"),
                meta.attr_span("name"),
                "3–128 letters, digits, `-` and `_`, starting with a letter or digit",
            );
        }
        if let Some(l) = &location {
            ok &= self.location(l, meta.attr_span("location"));
        }
        // Federated credentials are checked even when the identity has errors.
        let mut pairs: HashMap<(String, String), Span> = HashMap::new();
        let mut count = 0;
        for child in &d.children {
            if let Some(fic) = self.federated(child, &d.address) {
                count += 1;
                let key = (fic.issuer.clone(), fic.subject.clone());
                if let Some(prev) = pairs.insert(key, fic.meta.attr_span("subject")) {
                    self.diags.push(
                        Diagnostic::error(
                            Code::E0216,
                            format!("`{}` repeats an issuer and subject of this identity", fic.meta.address),
                        )
                        .with_label(fic.meta.attr_span("subject"), "same issuer and subject")
                        .with_secondary(prev, "first used here")
                        .with_help(
                            "Azure rejects two federated credentials with the same issuer and subject on one identity",
                        ),
                    );
                    continue;
                }
                if count == MAX_FEDERATED + 1 {
                    self.diags.push(
                        Diagnostic::error(Code::E0210, format!("`{}` has more than {MAX_FEDERATED} federated credentials", d.address))
                            .with_label(fic.meta.name_span, format!("credential number {}", MAX_FEDERATED + 1))
                            .with_help("Azure allows at most 20 per identity; use a second identity or a broader subject (e.g. an environment)"),
                    );
                }
                self.model.federated.insert(fic.meta.address.clone(), fic);
            }
        }
        let (Some(rg), Some(name), true) = (rg, name, ok) else { return };
        let Some(location) = location.or_else(|| self.rg_location(&rg)) else { return };
        self.model.identities.insert(meta.address.clone(), Identity { meta, resource_group: rg, name, location, tags });
    }

    fn federated(&mut self, d: &ResolvedDecl, identity: &Address) -> Option<FederatedCredential> {
        let mut f = Fields::new(d, FIC_ATTRS);
        let local = match &d.address {
            Address::Federated { name, .. } => name.clone(),
            _ => String::new(),
        };
        let name = f.opt_str("name").unwrap_or_else(|| local.replace('_', "-"));
        let issuer = f.req_str("issuer", "\"https://token.actions.githubusercontent.com\"");
        let subject = f.req_str("subject", "\"repo:ORG/REPO:environment:prod\"");
        let audiences = match f.value("audiences") {
            None => Some(vec![FIC_AUDIENCE.to_owned()]),
            Some((Value::List(items), span)) => {
                let strs: Option<Vec<String>> =
                    items.iter().map(|v| if let Value::Str(s) = v { Some(s.clone()) } else { None }).collect();
                if strs.is_none() {
                    f.wrong_type("audiences", "a list of strings", &Value::List(items.clone()), span);
                }
                strs
            }
            Some((v, span)) => {
                f.wrong_type("audiences", "a list of strings", v, span);
                None
            }
        };
        let meta = f.meta(self.known_policies, &mut self.diags);
        let mut ok = self.finish(f);
        if !valid_fic_name(&name) {
            ok = false;
            self.invalid(
                Code::E0212,
                format!("`{name}` is not a valid federated credential name"),
                meta.attr_span("name"),
                "3–120 letters, digits, `-` and `_`, starting with a letter or digit",
            );
        }
        if let Some(i) = &issuer
            && !valid_issuer(i)
        {
            ok = false;
            self.invalid(
                Code::E0208,
                format!("issuer `{i}` is not an https URL"),
                meta.attr_span("issuer"),
                "the issuer is the OIDC provider's https URL, e.g. \"https://token.actions.githubusercontent.com\"",
            );
        }
        if let Some(s) = &subject
            && (s.is_empty() || s.len() > 600 || s.trim() != s || s.contains(char::is_whitespace) && !s.contains(':'))
        {
            ok = false;
            self.invalid(
                Code::E0209,
                format!("subject `{s}` is not a valid federated subject"),
                meta.attr_span("subject"),
                "1–600 characters without surrounding spaces, e.g. \"repo:contoso/fraud-model:environment:prod\"",
            );
        }
        if let Some(a) = &audiences
            && a.len() != 1
        {
            ok = false;
            self.diags.push(
                Diagnostic::error(
                    Code::E0215,
                    format!("a federated credential takes exactly one audience, found {}", a.len()),
                )
                .with_label(meta.attr_span("audiences"), "here")
                .with_help(format!("use [\"{FIC_AUDIENCE}\"] (the default)")),
            );
        }
        let (Some(issuer), Some(subject), Some(audiences), true) = (issuer, subject, audiences, ok) else {
            return None;
        };
        Some(FederatedCredential { meta, identity: identity.clone(), name, issuer, subject, audiences })
    }

    fn workspace(&mut self, d: &ResolvedDecl) {
        let mut f = Fields::new(d, WORKSPACE_ATTRS);
        let rg = f.req_object("resource_group", Kind::ResourceGroup);
        let name = f.req_str("name", "\"mlw-fraud-prod\"");
        let location = f.opt_str("location");
        let identity = match f.value("identity") {
            None | Some((Value::Ref(Ref::System), _)) => Some(WorkspaceIdentity::System),
            Some((Value::Ref(Ref::Object(a)), _)) if a.kind() == Kind::Identity => {
                Some(WorkspaceIdentity::User(a.clone()))
            }
            Some((v, span)) => {
                f.wrong_type("identity", "`system` or an identity reference (`identity.NAME`)", v, span);
                None
            }
        };
        let ids: Vec<(Dependency, Option<String>)> =
            Dependency::ALL.iter().map(|dep| (*dep, f.opt_str(dep.attribute()))).collect();
        for (dep, example) in [
            (Dependency::StorageAccount, "\"/subscriptions/.../storageAccounts/NAME\""),
            (Dependency::KeyVault, "\"/subscriptions/.../vaults/NAME\""),
        ] {
            if f.attr(dep.attribute()).is_none() {
                f.missing(dep.attribute(), example);
            }
        }
        let public_network_access = f.opt_bool("public_network_access").unwrap_or(true);
        let friendly_name = f.opt_str("friendly_name");
        let description = f.opt_str("description");
        let tags = f.tags();
        let meta = f.meta(self.known_policies, &mut self.diags);
        let mut ok = self.finish(f);
        if let Some(n) = &name
            && !valid_workspace_name(n)
        {
            ok = false;
            self.invalid(
                Code::E0212,
                format!("`{n}` is not a valid workspace name"),
                meta.attr_span("name"),
                "3–33 letters, digits, `-` and `_`, starting with a letter or digit",
            );
        }
        if let Some(l) = &location {
            ok &= self.location(l, meta.attr_span("location"));
        }
        let mut deps: HashMap<Dependency, String> = HashMap::new();
        for (dep, id) in ids {
            let Some(id) = id else { continue };
            if let Err(why) = check_resource_id(&id, Some(dependency_type(dep))) {
                ok = false;
                self.invalid(
                    Code::E0206,
                    format!("`{}` is not a valid {} id: {why}", id, dep.attribute().replace('_', " ")),
                    meta.attr_span(dep.attribute()),
                    &format!(
                        "write the full ARM id: /subscriptions/<id>/resourceGroups/<rg>/providers/{}/<name>",
                        dependency_type(dep)
                    ),
                );
            } else {
                deps.insert(dep, id);
            }
        }
        let (Some(rg), Some(name), Some(identity), true) = (rg, name, identity, ok) else { return };
        let Some(location) = location.or_else(|| self.rg_location(&rg)) else { return };
        let (Some(storage_account), Some(key_vault)) =
            (deps.remove(&Dependency::StorageAccount), deps.remove(&Dependency::KeyVault))
        else {
            return;
        };
        self.model.workspaces.insert(
            meta.address.clone(),
            Workspace {
                meta,
                resource_group: rg,
                name,
                location,
                identity,
                storage_account,
                key_vault,
                application_insights: deps.remove(&Dependency::ApplicationInsights),
                container_registry: deps.remove(&Dependency::ContainerRegistry),
                public_network_access,
                friendly_name,
                description,
                tags,
            },
        );
    }

    /// A principal from a reference value.
    fn principal(&mut self, r: &Value, span: Span, what: &str) -> Option<Principal> {
        let p = match r {
            Value::Ref(Ref::User(upn)) => {
                if !valid_upn(upn) {
                    self.invalid(
                        Code::E0207,
                        format!("`{upn}` is not a user principal name"),
                        span,
                        "a UPN looks like name@contoso.com (guests: name_ext.com#EXT#@contoso.onmicrosoft.com)",
                    );
                    return None;
                }
                Principal::User(upn.clone())
            }
            Value::Ref(Ref::ServicePrincipal(s)) => {
                if s.trim().is_empty() {
                    self.invalid(
                        Code::E0213,
                        "`service_principal` needs an application id or display name".into(),
                        span,
                        "e.g. service_principal(\"ci-deployer\")",
                    );
                    return None;
                }
                Principal::ServicePrincipal(s.clone())
            }
            Value::Ref(Ref::ExistingGroup(s)) => {
                if s.trim().is_empty() {
                    self.invalid(
                        Code::E0213,
                        "`existing_group` needs a display name".into(),
                        span,
                        "e.g. existing_group(\"All ML Engineers\")",
                    );
                    return None;
                }
                Principal::ExistingGroup(s.clone())
            }
            Value::Ref(Ref::Object(a)) if a.kind() == Kind::Group => Principal::Group(a.clone()),
            Value::Ref(Ref::Object(a)) if a.kind() == Kind::Identity => Principal::Identity(a.clone()),
            Value::Ref(Ref::WorkspaceIdentity(ws)) => match self.model.workspaces.get(ws).map(|w| &w.identity) {
                Some(WorkspaceIdentity::User(id)) => Principal::Identity(id.clone()),
                _ => Principal::WorkspaceSystem(ws.clone()),
            },
            other => {
                self.diags.push(
                    Diagnostic::error(Code::E0213, format!("{what} must be a principal, found {}", other.a_type_name()))
                        .with_label(span, "not a principal")
                        .with_help("principals are group.X, identity.X, workspace.X.identity, user(\"upn\"), service_principal(\"...\"), existing_group(\"...\")"),
                );
                return None;
            }
        };
        Some(p)
    }

    fn principals(&mut self, f: &mut Fields<'_>, name: &str) -> Vec<Principal> {
        let Some((v, span)) = f.value(name) else { return Vec::new() };
        let mut flat = Vec::new();
        flatten(v, &mut flat);
        let mut out = Vec::with_capacity(flat.len());
        let mut seen = HashSet::new();
        let what = format!("each of `{name}`");
        for item in flat {
            match self.principal(item, span, &what) {
                Some(p) => {
                    if seen.insert(p.clone()) {
                        out.push(p);
                    }
                }
                None => f.ok = false,
            }
        }
        out
    }

    fn group(&mut self, d: &ResolvedDecl) {
        let mut f = Fields::new(d, GROUP_ATTRS);
        let name = f.req_str("name", "\"ml-fraud-data-scientists\"");
        let description = f.opt_str("description");
        let nickname = f.opt_str("mail_nickname");
        let members = self.principals(&mut f, "members");
        let owners = self.principals(&mut f, "owners");
        let members_additive = f.opt_bool("members_additive").unwrap_or(false);
        let meta = f.meta(self.known_policies, &mut self.diags);
        let mut ok = self.finish(f);
        if members.iter().any(|m| *m == Principal::Group(meta.address.clone())) {
            ok = false;
            self.diags.push(
                Diagnostic::error(Code::E0213, format!("`{}` lists itself as a member", meta.address))
                    .with_label(meta.attr_span("members"), "a group cannot contain itself"),
            );
        }
        for o in &owners {
            if matches!(o, Principal::Group(_) | Principal::ExistingGroup(_)) {
                ok = false;
                self.diags.push(
                    Diagnostic::error(Code::E0213, format!("`{o}` cannot own a group"))
                        .with_label(meta.attr_span("owners"), "owners are users or service principals")
                        .with_help(
                            "Entra ID group owners are users, service principals or managed identities, not groups",
                        ),
                );
            }
        }
        let Some(name) = name else { return };
        if name.is_empty() || name.chars().count() > 256 {
            self.invalid(
                Code::E0212,
                "a group name has 1–256 characters".into(),
                meta.attr_span("name"),
                "shorten the name",
            );
            return;
        }
        let mail_nickname = nickname.unwrap_or_else(|| default_mail_nickname(&name));
        if !valid_mail_nickname(&mail_nickname) {
            self.invalid(
                Code::E0212,
                format!("`{mail_nickname}` is not a valid mail nickname"),
                meta.attr_span("mail_nickname"),
                "1–64 ASCII characters without spaces or any of @ ( ) \\ [ ] \" ; : . < > ,",
            );
            return;
        }
        if ok {
            self.model.groups.insert(
                meta.address.clone(),
                Group { meta, name, description, mail_nickname, members, owners, members_additive },
            );
        }
    }

    fn grant(&mut self, d: &ResolvedDecl) {
        let mut f = Fields::new(d, GRANT_ATTRS);
        let role = f.opt_str("role");
        let principal = f.value("principal");
        let scope = f.value("scope");
        let description = f.opt_str("description");
        let condition = f.opt_str("condition");
        let meta = f.meta(self.known_policies, &mut self.diags);
        let ok = self.finish(f);
        let principal = principal.and_then(|(v, span)| self.principal(v, span, "a grant's principal"));
        let scope = scope.and_then(|(v, span)| self.scope(v, span));
        let Some(role) = role else { return };
        if role.trim().is_empty() {
            self.invalid(
                Code::E0203,
                "a grant's role cannot be empty".into(),
                meta.attr_span("role"),
                "name a role, e.g. \"AzureML Data Scientist\"",
            );
            return;
        }
        if roles::built_in_id(&role).is_none() {
            let mut w = Diagnostic::warning(Code::W0201, format!("`{role}` is not a built-in role mlpolicy knows"))
                .with_label(meta.attr_span("role"), "checked against the tenant's custom roles at plan time");
            // Custom roles are named by many grants: suggest once per name.
            if !self.role_help.contains_key(&role) {
                let h = self.suggest.did_you_mean(&role, roles::BUILT_IN.iter().map(|(n, _)| *n));
                self.role_help.insert(role.clone(), h);
            }
            w.help = self.role_help.get(&role).cloned().flatten();
            self.diags.push(w);
        }
        if let (Some(principal), Some(scope), true) = (principal, scope, ok) {
            self.model
                .grants
                .insert(meta.address.clone(), Grant { meta, role, principal, scope, description, condition });
        }
    }

    fn scope(&mut self, v: &Value, span: Span) -> Option<Scope> {
        let s = match v {
            Value::Ref(Ref::Subscription { alias, id }) => Scope::Subscription { alias: alias.clone(), id: id.clone() },
            Value::Ref(Ref::Object(a)) if a.kind() == Kind::ResourceGroup => Scope::ResourceGroup(a.clone()),
            Value::Ref(Ref::Object(a)) if a.kind() == Kind::Workspace => Scope::Workspace(a.clone()),
            Value::Ref(Ref::WorkspaceDependency(a, dep)) => {
                let ws = self.model.workspaces.get(a)?;
                if ws.dependency(*dep).is_none() {
                    self.diags.push(
                        Diagnostic::error(Code::E0214, format!("`{a}` has no `{}`", dep.attribute()))
                            .with_label(span, "not set on that workspace")
                            .with_help(format!(
                                "set `{}` on the workspace, or grant on another scope",
                                dep.attribute()
                            )),
                    );
                    return None;
                }
                Scope::WorkspaceDependency(a.clone(), *dep)
            }
            Value::Ref(Ref::Scope(id)) => {
                if let Err(why) = check_scope_id(id) {
                    self.invalid(
                        Code::E0206,
                        format!("`{id}` is not a valid ARM scope: {why}"),
                        span,
                        "a scope is /subscriptions/<id>[/resourceGroups/<rg>[/providers/<ns>/<type>/<name>]]",
                    );
                    return None;
                }
                Scope::Arm(id.clone())
            }
            other => {
                self.diags.push(
                    Diagnostic::error(Code::E0214, format!("a grant's scope must be a scope, found {}", other.a_type_name()))
                        .with_label(span, "not a scope")
                        .with_help("scopes are workspace.X, workspace.X.storage_account (or .key_vault, .container_registry, .application_insights), resource_group.X, sub.ALIAS, scope(\"/subscriptions/...\")"),
                );
                return None;
            }
        };
        Some(s)
    }

    /// Two objects that would be the same object in Azure.
    fn duplicate_names(&mut self) {
        let mut seen: HashMap<String, (&Address, Span)> = HashMap::new();
        let mut found = Vec::new();
        let mut reported: HashSet<Address> = HashSet::new();
        let entries = self
            .model
            .resource_groups
            .values()
            .map(|r| (format!("rg/{}/{}", r.subscription_id, r.name.to_lowercase()), &r.meta, "resource group"))
            .chain(
                self.model
                    .identities
                    .values()
                    .map(|i| (format!("id/{}/{}", i.resource_group, i.name.to_lowercase()), &i.meta, "identity")),
            )
            .chain(
                self.model
                    .workspaces
                    .values()
                    .map(|w| (format!("ws/{}/{}", w.resource_group, w.name.to_lowercase()), &w.meta, "workspace")),
            )
            .chain(
                self.model.federated.values().map(|c| {
                    (format!("fic/{}/{}", c.identity, c.name.to_lowercase()), &c.meta, "federated credential")
                }),
            )
            .chain(self.model.groups.values().map(|g| (format!("group/{}", g.name.to_lowercase()), &g.meta, "group")))
            .chain(
                self.model
                    .groups
                    .values()
                    .map(|g| (format!("nick/{}", g.mail_nickname.to_lowercase()), &g.meta, "group mail nickname")),
            );
        for (key, meta, what) in entries {
            let span =
                if what == "group mail nickname" { meta.attr_span("mail_nickname") } else { meta.attr_span("name") };
            if let Some((prev, prev_span)) = seen.get(&key) {
                // A nickname derived from a duplicate name is the same mistake: report it once.
                if what == "group mail nickname" && reported.contains(&meta.address) {
                    continue;
                }
                reported.insert(meta.address.clone());
                found.push(
                    Diagnostic::error(
                        Code::E0211,
                        format!("`{}` and `{prev}` would be the same {what} in Azure", meta.address),
                    )
                    .with_label(span, "same name")
                    .with_secondary(*prev_span, "first used here")
                    .with_help("Azure names are case-insensitive; give each its own name"),
                );
            } else {
                seen.insert(key, (&meta.address, span));
            }
        }
        // A workspace's name is also unique per resource group across soft-deleted ones; the
        // identities here are checked per resource group. Both are covered by the keys above.
        self.diags.items.extend(found);
    }
}

fn flatten<'v>(v: &'v Value, out: &mut Vec<&'v Value>) {
    match v {
        Value::List(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

fn dependency_type(d: Dependency) -> &'static str {
    match d {
        Dependency::StorageAccount => "Microsoft.Storage/storageAccounts",
        Dependency::KeyVault => "Microsoft.KeyVault/vaults",
        Dependency::ApplicationInsights => "Microsoft.Insights/components",
        Dependency::ContainerRegistry => "Microsoft.ContainerRegistry/registries",
    }
}

fn valid_rg_name(n: &str) -> bool {
    (1..=90).contains(&n.chars().count())
        && !n.ends_with('.')
        && n.chars().all(|c| c.is_alphanumeric() || "-_.()".contains(c))
}

fn valid_identity_name(n: &str) -> bool {
    (3..=128).contains(&n.len())
        && starts_alnum(n)
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn valid_workspace_name(n: &str) -> bool {
    (3..=33).contains(&n.len())
        && starts_alnum(n)
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn valid_fic_name(n: &str) -> bool {
    (3..=120).contains(&n.len())
        && starts_alnum(n)
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn starts_alnum(n: &str) -> bool {
    n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
}

fn valid_issuer(s: &str) -> bool {
    url::Url::parse(s)
        .is_ok_and(|u| u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty()) && u.fragment().is_none())
}

/// A user principal name: `local@domain.tld`, guests with `#EXT#` included.
pub fn valid_upn(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else { return false };
    !local.is_empty()
        && local.len() <= 113
        && !local.starts_with('.')
        && !local.ends_with('.')
        && local.chars().all(|c| c.is_ascii_alphanumeric() || "._-'#+&!$%*/=?^`{|}~".contains(c))
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

pub fn default_mail_nickname(name: &str) -> String {
    let s: String = name
        .chars()
        .filter_map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                Some(c)
            } else if c == ' ' {
                Some('-')
            } else {
                None
            }
        })
        .take(64)
        .collect();
    if s.is_empty() { "group".to_owned() } else { s }
}

fn valid_mail_nickname(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars().all(|c| c.is_ascii() && !c.is_ascii_control() && !" @()\\[]\";:.<>,".contains(c))
}

/// Checks a full resource id, optionally of one `Namespace/type`.
pub fn check_resource_id(id: &str, expected_type: Option<&str>) -> Result<(), String> {
    let segs: Vec<&str> = id.strip_prefix('/').ok_or("it must start with `/subscriptions/`")?.split('/').collect();
    if segs.len() < 8
        || !segs[0].eq_ignore_ascii_case("subscriptions")
        || !segs[2].eq_ignore_ascii_case("resourceGroups")
        || !segs[4].eq_ignore_ascii_case("providers")
    {
        return Err("expected /subscriptions/<id>/resourceGroups/<rg>/providers/<namespace>/<type>/<name>".into());
    }
    if !is_guid(segs[1]) {
        return Err(format!("`{}` is not a subscription GUID", segs[1]));
    }
    if segs.iter().any(|s| s.is_empty()) || !segs.len().is_multiple_of(2) {
        return Err("it has an empty or missing segment".into());
    }
    if let Some(t) = expected_type {
        let actual = format!("{}/{}", segs[5], segs[6]);
        if !actual.eq_ignore_ascii_case(t) || segs.len() != 8 {
            return Err(format!("it names a `{actual}`, not a `{t}`"));
        }
    }
    Ok(())
}

/// Checks any ARM scope: a subscription, resource group, resource or management group.
pub fn check_scope_id(id: &str) -> Result<(), String> {
    let segs: Vec<&str> = id.strip_prefix('/').ok_or("it must start with `/`")?.split('/').collect();
    if segs.len() == 4
        && segs[0].eq_ignore_ascii_case("providers")
        && segs[1].eq_ignore_ascii_case("Microsoft.Management")
        && segs[2].eq_ignore_ascii_case("managementGroups")
        && !segs[3].is_empty()
    {
        return Ok(());
    }
    if segs.len() < 2 || !segs[0].eq_ignore_ascii_case("subscriptions") || !is_guid(segs[1]) {
        return Err("expected /subscriptions/<GUID>...".into());
    }
    match segs.len() {
        2 => Ok(()),
        4 if segs[2].eq_ignore_ascii_case("resourceGroups") && !segs[3].is_empty() => Ok(()),
        _ => check_resource_id(id, None),
    }
}

/// Attributes each policy subject exposes to conditions.
pub fn subject_attributes(subject: &str) -> Option<&'static [&'static str]> {
    Some(match subject {
        "grant" => &["role", "principal", "scope", "description", "condition"],
        "group" => &["name", "description", "members", "owners", "members_additive"],
        "identity" => &["name", "location", "resource_group", "tags", "federated", "roles", "write_roles"],
        "federated" => &["name", "issuer", "subject", "audiences", "identity"],
        "workspace" => {
            &["name", "location", "identity", "public_network_access", "tags", "description", "resource_group"]
        }
        _ => return None,
    })
}

/// Fields of a compound attribute a policy rule reads (`principal.kind`).
pub fn sub_attributes(subject: &str, attr: &str) -> Option<&'static [&'static str]> {
    Some(match (subject, attr) {
        ("grant", "principal") => &["kind", "name", "member_count"],
        ("grant", "scope") | ("workspace", "identity") => &["kind", "name"],
        ("federated", "identity") => &["name"],
        _ => return None,
    })
}

pub const SUBJECTS: [&str; 5] = ["grant", "group", "identity", "federated", "workspace"];

thread_local! {
    /// The suggestion budget of [`check_policies`] on this thread, renewed by each call.
    static POLICY_SUGGESTIONS: suggest::Budget = suggest::Budget::default();
}

/// Type-checks policy declarations: subjects, attributes and `message`.
pub fn check_policies(policies: &[ast::Policy], vars: &BTreeMap<String, Value>, lets: &HashSet<String>) -> Diagnostics {
    POLICY_SUGGESTIONS.with(|b| b.renew(suggest::Budget::DEFAULT));
    let mut diags = Diagnostics::default();
    let mut seen: HashMap<&str, Span> = HashMap::new();
    for p in policies {
        if let Some(prev) = seen.insert(&p.name.node, p.name.span) {
            diags.push(
                Diagnostic::error(Code::E0220, format!("policy `{}` is declared twice", p.name.node))
                    .with_label(p.name.span, "second declaration")
                    .with_secondary(prev, "first declaration"),
            );
        }
        if p.rules.is_empty() {
            diags.push(
                Diagnostic::error(Code::E0220, format!("policy `{}` has no rule", p.name.node))
                    .with_label(p.name.span, "empty policy")
                    .with_help("add `deny SUBJECT when CONDITION` or `warn SUBJECT when CONDITION`"),
            );
        }
        for a in &p.attrs {
            if a.name.node != "message" {
                let mut d = Diagnostic::error(Code::E0221, format!("unknown attribute `{}` in a policy", a.name.node))
                    .with_label(a.name.span, "a policy takes `message` only");
                d.help = suggest::did_you_mean(&a.name.node, ["message"]);
                diags.push(d);
            } else if !matches!(a.value.kind, ExprKind::Str(_)) {
                diags.push(
                    Diagnostic::error(Code::E0221, "a policy's `message` must be a string")
                        .with_label(a.value.span, "expected a string"),
                );
            }
        }
        for rule in &p.rules {
            let Some(attrs) = subject_attributes(&rule.subject.node) else {
                let mut d = Diagnostic::error(Code::E0218, format!("`{}` is not a policy subject", rule.subject.node))
                    .with_label(rule.subject.span, "unknown subject");
                d.help = suggest::did_you_mean(&rule.subject.node, SUBJECTS)
                    .or_else(|| Some(format!("subjects are {}", SUBJECTS.map(|s| format!("`{s}`")).join(", "))));
                diags.push(d);
                continue;
            };
            check_condition(&rule.condition, &rule.subject.node, attrs, vars, lets, &mut diags, 0);
        }
    }
    diags
}

fn check_condition(
    e: &ast::Expr,
    subject: &str,
    attrs: &[&str],
    vars: &BTreeMap<String, Value>,
    lets: &HashSet<String>,
    diags: &mut Diagnostics,
    depth: usize,
) {
    if depth > 256 {
        return;
    }
    let recurse =
        |e: &ast::Expr, diags: &mut Diagnostics| check_condition(e, subject, attrs, vars, lets, diags, depth + 1);
    match &e.kind {
        ExprKind::Path(p) => {
            let root = p.root.node.as_str();
            if root == "var" {
                if let Some(Segment::Field(name)) = p.segments.first()
                    && !vars.contains_key(&name.node)
                {
                    let mut d =
                        Diagnostic::error(Code::E0103, format!("variable `{}` is used but not given", name.node))
                            .with_label(name.span, "no such variable");
                    d.help = POLICY_SUGGESTIONS
                        .with(|b| b.closest(&name.node, vars.keys().map(String::as_str)))
                        .map(|c| format!("did you mean `var.{c}`?"));
                    diags.push(d);
                }
                return;
            }
            if lets.contains(root) {
                return;
            }
            if !attrs.contains(&root) {
                let mut d = Diagnostic::error(Code::E0219, format!("`{subject}` has no attribute `{root}`"))
                    .with_label(p.root.span, format!("not an attribute of {subject}"));
                d.help = suggest::did_you_mean(root, attrs.iter().copied()).or_else(|| {
                    Some(format!(
                        "{subject} has {}",
                        attrs.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
                    ))
                });
                diags.push(d);
                return;
            }
            if let (Some(Segment::Field(f)), Some(subs)) = (p.segments.first(), sub_attributes(subject, root))
                && !subs.contains(&f.node.as_str())
            {
                let mut d = Diagnostic::error(Code::E0219, format!("`{root}` has no attribute `{}`", f.node))
                    .with_label(f.span, "unknown attribute");
                d.help = suggest::did_you_mean(&f.node, subs.iter().copied()).or_else(|| {
                    Some(format!(
                        "`{root}` has {}",
                        subs.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
                    ))
                });
                diags.push(d);
            }
            for seg in &p.segments {
                if let Segment::Index(i) = seg {
                    recurse(i, diags);
                }
            }
        }
        ExprKind::Call { name, args } => {
            if !["count", "user", "service_principal", "existing_group", "scope"].contains(&name.node.as_str()) {
                diags.push(
                    Diagnostic::error(Code::E0107, format!("unknown function `{}`", name.node))
                        .with_label(name.span, "not a function")
                        .with_help("conditions may call `count(...)`"),
                );
            }
            for a in args {
                recurse(a, diags);
            }
        }
        ExprKind::Unary { operand, .. } => recurse(operand, diags),
        ExprKind::Binary { lhs, rhs, .. } => {
            recurse(lhs, diags);
            recurse(rhs, diags);
        }
        ExprKind::Paren(inner) => recurse(inner, diags),
        ExprKind::List(items) => items.iter().for_each(|i| recurse(i, diags)),
        ExprKind::Map(entries) => entries.iter().for_each(|(_, v)| recurse(v, diags)),
        ExprKind::Str(s) => {
            for part in &s.parts {
                if let ast::StrPart::Interp(i) = part {
                    recurse(i, diags);
                }
            }
        }
        ExprKind::Int(_) | ExprKind::Bool(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_and_ids() {
        assert!(is_guid("8e3af657-a8ff-443c-a75c-2fe8c4bcb635"));
        assert!(!is_guid("8e3af657-a8ff-443c-a75c-2fe8c4bcb63"));
        let sa = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/st1";
        assert!(check_resource_id(sa, Some("Microsoft.Storage/storageAccounts")).is_ok());
        assert!(check_resource_id(sa, Some("Microsoft.KeyVault/vaults")).is_err());
        assert!(check_scope_id("/subscriptions/11111111-1111-1111-1111-111111111111").is_ok());
        assert!(check_scope_id("/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg").is_ok());
        assert!(check_scope_id("/subscriptions/nope").is_err());
        assert!(check_scope_id("/providers/Microsoft.Management/managementGroups/mg1").is_ok());
    }

    #[test]
    fn upns() {
        assert!(valid_upn("alice@contoso.com"));
        assert!(valid_upn("bob_fabrikam.com#EXT#@contoso.onmicrosoft.com"));
        assert!(!valid_upn("alice"));
        assert!(!valid_upn("alice@contoso"));
        assert!(!valid_upn("al ice@contoso.com"));
    }

    #[test]
    fn names() {
        assert!(valid_workspace_name("mlw-fraud-prod"));
        assert!(!valid_workspace_name("-mlw"));
        assert!(!valid_workspace_name(&"a".repeat(34)));
        assert!(valid_fic_name("github-prod"));
        assert!(!valid_fic_name("gh"));
        assert_eq!(default_mail_nickname("ML Fraud: data scientists"), "ML-Fraud-data-scientists");
    }
}
