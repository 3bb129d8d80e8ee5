//! Export: the live estate under a scope, written as a configuration directory that plans to
//! no changes against the same tenant (language.md §8, "Adopting an existing estate").
//!
//! `read` lists what the scope holds (subscriptions, then resource groups, identities with
//! their federated credentials, workspaces, role assignments; groups under the display name
//! prefixes and every group mlpolicy created, with members and owners). `select` picks the
//! owner (the marker most common in scope, or `--owner`), what to declare (the scope, plus
//! everything with the owner's marker so no plan of the export deletes it), the local names and
//! every reference, and keeps what cannot be declared faithfully as notes. `teams` finds the
//! per-team shape, `render` writes the files, flat or `--compact`, and each `.mlp` file goes
//! through `fmt`, so the export passes `fmt --check`.
//!
//! Objects the export declares that lack the marker are adopted by the next apply: the plan
//! shows them with the action `adopt` and changes nothing else.
//! Codes: E0801 (files would be overwritten), E0802 (bad scope), E0803 (the export does not
//! parse: a bug), W0801 (objects kept as comments).

mod ir;
mod read;
mod render;
pub mod review;
mod select;
mod teams;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

pub use self::read::Estate;
pub use self::select::Scope;
use mlpolicy_azure::AzureClient;
use mlpolicy_lang::diagnostics::Code;
use mlpolicy_lang::diagnostics::Diagnostic;
use mlpolicy_lang::model::Kind;
use mlpolicy_lang::settings::{CloudSetting, Settings, VarValue};

/// Everything an export needs besides the client.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    pub scope: Scope,
    /// `--subscription` values: `ALIAS=ID`, an `ID`, or an alias of the existing settings.
    pub subscriptions: Vec<String>,
    /// Loops and `let` maps for what repeats across teams.
    pub compact: bool,
}

/// What an export produced.
#[derive(Debug, Clone)]
pub struct Export {
    pub owner: String,
    /// File name → text: formatted `.mlp` files and `mlpolicy.yaml`.
    pub files: BTreeMap<String, String>,
    /// Declarations by kind keyword, and `grant`.
    pub counts: BTreeMap<&'static str, usize>,
    /// The teams found, if the estate repeats a shape.
    pub teams: Option<Vec<String>>,
    /// Objects in scope kept as comments, with the reason.
    pub skipped: Vec<String>,
    /// Things to tell the user.
    pub notes: Vec<String>,
}

fn scope_error(message: String, help: &str) -> Diagnostic {
    Diagnostic::error(Code::E0802, message).with_help(help)
}

fn read_error(e: &mlpolicy_azure::AzureError) -> Diagnostic {
    let status = if e.status == 0 { "no response".to_owned() } else { format!("HTTP {}", e.status) };
    Diagnostic::error(Code::E0501, format!("reading the tenant failed: {}: {status} {}: {}", e.op, e.code, e.message))
        .with_help(
            e.hint.clone().unwrap_or_else(|| "check the credentials, the tenant and the subscription ids".into()),
        )
}

/// A subscription id in canonical form, if `s` is one.
fn guid(s: &str) -> Option<String> {
    mlpolicy_vocab::guid::is_guid(s).then(|| s.to_ascii_lowercase())
}

/// An alias for a subscription from its display name.
fn alias_from(display: Option<&str>, id: &str) -> String {
    match display.map(|d| ir::sanitize(d, "")).filter(|a| !a.is_empty() && !a.starts_with('_')) {
        Some(a) => a,
        None => format!("sub_{}", &id[..8.min(id.len())]),
    }
}

/// The subscriptions to read, with their aliases: from `--subscription` values, else the
/// settings' subscriptions, else every subscription the caller can list.
pub async fn resolve_subscriptions(
    client: &AzureClient,
    given: &[String],
    settings: &Settings,
) -> Result<Vec<(String, String)>, Diagnostic> {
    let known: BTreeMap<&String, &String> = settings.subscriptions.iter().map(|(a, id)| (id, a)).collect();
    let mut out: Vec<(String, String)> = Vec::new();
    for value in given {
        let (alias, id) = if let Some((alias, id)) = value.split_once('=') {
            let alias = alias.trim();
            if !mlpolicy_lang::syntax::is_identifier(alias) || mlpolicy_lang::syntax::KEYWORDS.contains(&alias) {
                return Err(scope_error(
                    format!("`{alias}` is not a valid subscription alias"),
                    "aliases are written `sub.ALIAS`, so they use `[a-z_][a-z0-9_]*`: `--subscription prod=<id>`",
                ));
            }
            let Some(id) = guid(id.trim()) else {
                return Err(scope_error(
                    format!("`{id}` is not a subscription id"),
                    "a subscription id is a GUID: `--subscription prod=11111111-2222-3333-4444-555555555555`",
                ));
            };
            (alias.to_owned(), id)
        } else if let Some(id) = guid(value) {
            let alias = if let Some(a) = known.get(&id) {
                (*a).clone()
            } else {
                let sub = client.get_subscription(&id).await.map_err(|e| read_error(&e))?;
                alias_from(sub.as_ref().and_then(|s| s.display_name.as_deref()), &id)
            };
            (alias, id)
        } else if let Some(id) = settings.subscriptions.get(value) {
            (value.clone(), id.clone())
        } else {
            return Err(scope_error(
                format!("`{value}` is neither a subscription id nor an alias of mlpolicy.yaml"),
                "pass `--subscription ALIAS=ID`, a subscription id, or an alias the `--out` directory's mlpolicy.yaml defines",
            ));
        };
        if !out.iter().any(|(_, i)| *i == id) {
            out.push((alias, id));
        }
    }
    if out.is_empty() {
        if settings.subscriptions.is_empty() {
            for s in client.list_subscriptions().await.map_err(|e| read_error(&e))? {
                let Some(id) = guid(&s.subscription_id) else { continue };
                out.push((alias_from(s.display_name.as_deref(), &id), id));
            }
        } else {
            out.extend(settings.subscriptions.iter().map(|(a, id)| (a.clone(), id.clone())));
        }
    }
    // Aliases are unique.
    let mut seen = BTreeSet::new();
    for (alias, _) in &mut out {
        let base = alias.clone();
        let mut n = 2;
        while !seen.insert(alias.clone()) {
            *alias = format!("{base}_{n}");
            n += 1;
        }
    }
    out.sort();
    Ok(out)
}

/// Reads the estate and builds the export.
pub async fn export(
    client: &AzureClient,
    options: &ExportOptions,
    settings: &Settings,
    tenant: &str,
) -> Result<Export, Diagnostic> {
    if let Some(o) = &options.scope.owner
        && !mlpolicy_lang::settings::is_owner_marker(o)
    {
        return Err(scope_error(
            format!("`--owner` must be 1 to 64 characters of `a-z`, `0-9` and `-`, not `{o}`"),
            "the owner is written into uniqueNames, tags and descriptions: e.g. `--owner contoso-ml-prod`",
        ));
    }
    let subscriptions = resolve_subscriptions(client, &options.subscriptions, settings).await?;
    let filter: Vec<String> = options.scope.resource_groups.iter().map(|r| r.to_ascii_lowercase()).collect();
    let wanted = move |rg: &str| filter.is_empty() || filter.iter().any(|f| f == rg);
    let estate = read::read(client, &subscriptions, &options.scope.group_prefixes, &wanted).await?;
    build(&estate, options, settings, tenant)
}

/// Builds the export of an estate already read.
pub fn build(
    estate: &Estate,
    options: &ExportOptions,
    settings: &Settings,
    tenant: &str,
) -> Result<Export, Diagnostic> {
    let sel = select::select(estate, &options.scope);
    let mut files = BTreeMap::new();
    for (name, text) in render::render(&sel, options.compact) {
        files.insert(name.clone(), format_mlp(&name, &text)?);
    }
    files.insert("mlpolicy.yaml".to_owned(), settings_yaml(&sel, estate, settings, tenant));
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for d in &sel.decls {
        *counts.entry(d.item.kind.keyword()).or_insert(0) += 1;
        if d.item.kind == Kind::Identity {
            *counts.entry("federated").or_insert(0) += d.item.blocks.len();
        }
    }
    counts.insert("grant", sel.grants.len());
    let mut notes = sel.notes.clone();
    let others: Vec<String> =
        sel.owners_found.iter().filter(|(o, _)| **o != sel.owner).map(|(o, n)| format!("`{o}` ({n})")).collect();
    if !others.is_empty() {
        notes.push(format!(
            "objects in scope carry the markers of other configurations too: {}; they are left out",
            others.join(", ")
        ));
    }
    Ok(Export {
        owner: sel.owner.clone(),
        files,
        counts,
        teams: sel.teams.as_ref().map(|t| t.keys.clone()),
        skipped: sel.skipped.iter().map(|s| format!("{}: {}", s.what, s.why)).collect(),
        notes,
    })
}

/// Lays out one generated file as `mlpolicy fmt` would.
pub fn format_mlp(name: &str, text: &str) -> Result<String, Diagnostic> {
    let mut sources = mlpolicy_lang::source::Sources::default();
    let id = sources.add(name, std::path::PathBuf::from(name), text);
    let (file, diags) = mlpolicy_lang::syntax::parse(id, text);
    if let Some(d) = diags.items.iter().find(|d| d.is_error()) {
        return Err(Diagnostic::error(Code::E0803, format!("the exported `{name}` does not parse: {}", d.message))
            .with_help("this is a bug in mlpolicy export; please report it with the estate's shape"));
    }
    Ok(mlpolicy_lang::fmt::format(&file, text))
}

fn yaml_string(s: &str) -> String {
    // JSON strings are YAML double-quoted scalars.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn yaml_var(v: &VarValue) -> String {
    match v {
        VarValue::Str(s) => yaml_string(s),
        VarValue::Int(i) => i.to_string(),
        VarValue::Bool(b) => b.to_string(),
        VarValue::List(items) => format!("[{}]", items.iter().map(yaml_var).collect::<Vec<_>>().join(", ")),
        VarValue::Map(m) => format!(
            "{{{}}}",
            m.iter().map(|(k, v)| format!("{}: {}", yaml_string(k), yaml_var(v))).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// `mlpolicy.yaml` of the export: the tenant, cloud, subscriptions and owner, and the policy
/// packs and variables of the settings it replaces.
fn settings_yaml(sel: &select::Selection, estate: &Estate, settings: &Settings, tenant: &str) -> String {
    let mut out = String::from(
        "# Written by `mlpolicy export` from the live tenant. Review it, then `mlpolicy plan`: objects\n# made outside mlpolicy are adopted (they get the ownership marker below), nothing else changes.\n",
    );
    let _ = writeln!(out, "tenant: {}", yaml_string(tenant));
    match &settings.cloud {
        CloudSetting::Public => out.push_str("cloud: public\n"),
        CloudSetting::UsGovernment => out.push_str("cloud: usgovernment\n"),
        CloudSetting::China => out.push_str("cloud: china\n"),
        CloudSetting::Custom { arm, graph, authority } => {
            let _ = writeln!(
                out,
                "cloud:\n  arm: {}\n  graph: {}\n  authority: {}",
                yaml_string(arm),
                yaml_string(graph),
                yaml_string(authority)
            );
        }
    }
    if estate.subscriptions.is_empty() {
        out.push_str("subscriptions: {}\n");
    } else {
        out.push_str("subscriptions:\n");
        for (alias, id) in &estate.subscriptions {
            let _ = writeln!(out, "  {alias}: {id}");
        }
    }
    if !settings.vars.is_empty() {
        out.push_str("vars:\n");
        for (k, v) in &settings.vars {
            let _ = writeln!(out, "  {}: {}", yaml_string(k), yaml_var(v));
        }
    }
    if !settings.policies.is_empty() {
        let _ = writeln!(out, "policies: [{}]", settings.policies.join(", "));
    }
    let others: Vec<String> =
        sel.owners_found.iter().filter(|(o, _)| **o != sel.owner).map(|(o, n)| format!("{o} ({n})")).collect();
    if !others.is_empty() {
        let _ = writeln!(
            out,
            "# Other owners' markers were found in scope; their objects are left out: {}",
            others.join(", ")
        );
    }
    let _ = writeln!(out, "owner: {}", sel.owner);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_text_that_does_not_parse_is_e0803() {
        let e = format_mlp("main.mlp", "group {").unwrap_err();
        assert_eq!(e.code, Code::E0803);
        assert_eq!(format_mlp("main.mlp", "group  x {name=\"a\"}\n").unwrap(), "group x {\n  name = \"a\"\n}\n");
    }

    #[test]
    fn aliases_come_from_display_names() {
        assert_eq!(alias_from(Some("sub-contoso-ml-prod"), "6c1e9a42"), "sub_contoso_ml_prod");
        assert_eq!(alias_from(Some("2024"), "6c1e9a42-x"), "sub_6c1e9a42");
        assert_eq!(alias_from(None, "6c1e9a42-x"), "sub_6c1e9a42");
    }
}
