//! The questions `mlpolicy access` is asked: `--scope SCOPE` and PRINCIPAL as typed on the
//! command line, resolved against the configuration (and the tenant's graph).

use std::collections::{BTreeMap, BTreeSet};

use super::graph::{AccessGraph, desired_key};
use crate::live::LiveState;
use crate::lower::{Desired, DesiredState, PrincipalRef};
use mlpolicy_lang::diagnostics::Code;
use mlpolicy_lang::diagnostics::Diagnostic;
use mlpolicy_vocab::arm::canonical;

/// workspace with its storage account, key vault, registry and Application Insights).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeQuery {
    pub subject: String,
    pub kind: String,
    pub targets: Vec<String>,
}

/// Resolves `--scope`: an address of the configuration (`workspace.fraud`,
/// `workspace.fraud.storage_account`, `resource_group.ml`), `sub.ALIAS`, a workspace's Azure
/// name, or an ARM id. Code: E0902.
pub fn scope_query(
    query: &str,
    desired: &DesiredState,
    subscriptions: &BTreeMap<String, String>,
) -> Result<ScopeQuery, Diagnostic> {
    let q = query.trim();
    if q.starts_with('/') {
        let id = canonical(q);
        return Ok(ScopeQuery {
            subject: mlpolicy_vocab::arm::scope_display(&id),
            kind: "scope".into(),
            targets: vec![id],
        });
    }
    if let Some(id) = q.strip_prefix("sub.").and_then(|alias| subscriptions.get(alias)) {
        return Ok(ScopeQuery {
            subject: q.to_owned(),
            kind: "subscription".into(),
            targets: vec![format!("/subscriptions/{}", id.to_ascii_lowercase())],
        });
    }
    let (base, attachment) = match q.rsplit_once('.') {
        Some((b, a)) if ["storage_account", "key_vault", "container_registry", "application_insights"].contains(&a) => {
            (b, Some(a))
        }
        _ => (q, None),
    };
    let base = &normalize_address(base);
    let by_address = desired.objects.get(base.as_str());
    let by_name = || {
        desired.objects.values().find(|o| match &o.object {
            Desired::Workspace(w) => w.name.eq_ignore_ascii_case(base),
            _ => false,
        })
    };
    match (by_address.or_else(by_name).map(|o| (&o.address, &o.object)), attachment) {
        (Some((address, Desired::Workspace(w))), None) => {
            let mut targets = vec![canonical(&w.id), canonical(&w.storage_account), canonical(&w.key_vault)];
            targets.extend(w.container_registry.iter().chain(&w.application_insights).map(|i| canonical(i)));
            Ok(ScopeQuery { subject: format!("{address} ({})", w.name), kind: "workspace".into(), targets })
        }
        (Some((address, Desired::Workspace(w))), Some(a)) => {
            let id = match a {
                "storage_account" => Some(&w.storage_account),
                "key_vault" => Some(&w.key_vault),
                "container_registry" => w.container_registry.as_ref(),
                _ => w.application_insights.as_ref(),
            };
            let id = id.ok_or_else(|| {
                Diagnostic::error(Code::E0902, format!("`{address}` has no {}", a.replace('_', " ")))
                    .with_help("the workspace declares no such resource")
            })?;
            Ok(ScopeQuery {
                subject: format!("{address}.{a} ({})", mlpolicy_vocab::arm::scope_display(id)),
                kind: a.to_owned(),
                targets: vec![canonical(id)],
            })
        }
        (Some((address, Desired::ResourceGroup(r))), None) => Ok(ScopeQuery {
            subject: format!("{address} ({})", r.name),
            kind: "resource_group".into(),
            targets: vec![canonical(&r.id)],
        }),
        _ => {
            let candidates: Vec<String> = desired
                .objects
                .iter()
                .filter(|(_, o)| matches!(o.object, Desired::Workspace(_) | Desired::ResourceGroup(_)))
                .map(|(a, _)| a.clone())
                .chain(subscriptions.keys().map(|a| format!("sub.{a}")))
                .collect();
            let help = mlpolicy_vocab::suggest::did_you_mean(q, candidates.iter().map(String::as_str)).unwrap_or_else(|| {
                "give `workspace.NAME`, `workspace.NAME.storage_account`, `resource_group.NAME`, `sub.ALIAS` or an ARM id"
                    .into()
            });
            Err(Diagnostic::error(Code::E0902, format!("`{q}` is not a scope of this configuration")).with_help(help))
        }
    }
}

/// Resolves PRINCIPAL to a key of `graph`: an address of the configuration (`group.x`,
/// `identity.x`, `workspace.x.identity`), a UPN, an object id (live), or a display name.
/// `live` maps configuration references to object ids when the graph is the tenant's.
/// Code: E0901.
pub fn principal_key(
    query: &str,
    desired: &DesiredState,
    graph: &AccessGraph,
    live: Option<&LiveState>,
) -> Result<String, Diagnostic> {
    let q = query.trim();
    let reference = principal_ref(q, desired);
    if let Some(r) = &reference {
        return match live {
            None => Ok(desired_key(r)),
            Some(l) => l.resolved.get(r).cloned().flatten().ok_or_else(|| {
                Diagnostic::error(Code::E0901, format!("`{q}` does not exist in the tenant yet"))
                    .with_help("plan and apply the configuration first, or ask without --live")
            }),
        };
    }
    if ["group.", "identity.", "workspace."].iter().any(|k| q.starts_with(k)) {
        let addresses: Vec<String> = desired
            .objects
            .iter()
            .filter_map(|(a, o)| match o.object {
                Desired::Group(_) | Desired::Identity(_) => Some(a.clone()),
                Desired::Workspace(_) => Some(format!("{a}.identity")),
                _ => None,
            })
            .collect();
        let help = mlpolicy_vocab::suggest::did_you_mean(q, addresses.iter().map(String::as_str))
            .unwrap_or_else(|| "addresses of groups, identities and workspace identities name principals".into());
        return Err(
            Diagnostic::error(Code::E0901, format!("`{q}` is not a principal of this configuration")).with_help(help)
        );
    }
    if q.contains('@') {
        let upn = q.to_ascii_lowercase();
        let found = graph
            .nodes
            .iter()
            .filter(|(_, n)| !n.is_group && n.display.eq_ignore_ascii_case(&upn))
            .min_by(|x, y| x.0.cmp(y.0));
        return match (found, live) {
            (Some((k, _)), _) => Ok(k.clone()),
            (None, None) => Ok(format!("user:{upn}")),
            (None, Some(_)) => Err(Diagnostic::error(Code::E0901, format!("no user `{q}` in the tenant"))
                .with_help("check the user principal name (guests have `#EXT#` in theirs)")),
        };
    }
    if mlpolicy_vocab::guid::is_guid(q) {
        return if live.is_some() {
            Ok(q.to_ascii_lowercase())
        } else {
            Err(Diagnostic::error(
                Code::E0901,
                format!("`{q}` is an object id: the configuration does not know object ids"),
            )
            .with_help("add --live to ask the tenant, or give an address such as `group.NAME`"))
        };
    }
    let mut matches: Vec<&String> =
        graph.nodes.iter().filter(|(_, n)| n.display.eq_ignore_ascii_case(q)).map(|(k, _)| k).collect();
    matches.sort();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => {
            let names: BTreeSet<&str> = graph.nodes.values().map(|n| n.display.as_str()).collect();
            let help = mlpolicy_vocab::suggest::did_you_mean(q, names).unwrap_or_else(|| {
                "give a UPN, `group.NAME`, `identity.NAME`, `workspace.NAME.identity` or a display name".into()
            });
            Err(Diagnostic::error(Code::E0901, format!("no principal `{q}` holds or grants access here"))
                .with_help(help))
        }
        many => {
            Err(Diagnostic::error(Code::E0901, format!("`{q}` names {} principals", many.len())).with_help(format!(
                "give one of their object ids with --live: {}",
                many.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            )))
        }
    }
}

/// An address as typed on a command line, where quotes are a nuisance: `group.ds[fraud]` is
/// `group.ds["fraud"]`.
fn normalize_address(q: &str) -> String {
    let mut out = String::with_capacity(q.len() + 4);
    let mut rest = q;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']').map(|c| open + c) else { break };
        let key = &rest[open + 1..close];
        out.push_str(&rest[..=open]);
        if key.starts_with('"') || key.parse::<i64>().is_ok() {
            out.push_str(key);
        } else {
            out.push('"');
            out.push_str(key);
            out.push('"');
        }
        out.push(']');
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// The configuration reference an address names.
fn principal_ref(q: &str, desired: &DesiredState) -> Option<PrincipalRef> {
    let q = &normalize_address(q);
    if let Some(ws) = q.strip_suffix(".identity")
        && let Some(Desired::Workspace(w)) = desired.objects.get(ws).map(|o| &o.object)
    {
        return Some(PrincipalRef::WorkspaceSystem { address: ws.to_owned(), id: w.id.clone(), name: w.name.clone() });
    }
    let o = desired.objects.get(q)?;
    match &o.object {
        Desired::Group(g) => Some(PrincipalRef::Group {
            address: o.address.clone(),
            unique_name: g.unique_name.clone(),
            display_name: g.display_name.clone(),
        }),
        Desired::Identity(i) => {
            Some(PrincipalRef::Identity { address: o.address.clone(), id: i.id.clone(), name: i.name.clone() })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_accept_unquoted_keys() {
        assert_eq!(normalize_address("workspace.team[fraud]"), r#"workspace.team["fraud"]"#);
        assert_eq!(normalize_address(r#"group.ds["risk"].x"#), r#"group.ds["risk"].x"#);
        assert_eq!(normalize_address("group.ds[3]"), "group.ds[3]");
        assert_eq!(normalize_address("group.ds[open"), "group.ds[open");
    }
}
