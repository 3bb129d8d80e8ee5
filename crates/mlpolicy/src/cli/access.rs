//! `mlpolicy access`

use std::path::PathBuf;

use super::args::{AccessArgs, ReportFormat};
use super::{ExitStatus, connect_options, print_diagnostics, runtime};
use crate::render;
use mlpolicy_engine::access::{self, Context, Report};
use mlpolicy_engine::lower::{self, DesiredState};
use mlpolicy_lang::diagnostics::Code;
use mlpolicy_lang::diagnostics::{Diagnostic, Diagnostics};

pub fn run(args: &AccessArgs) -> ExitStatus {
    // With --scope, PRINCIPAL may be left out and the only positional argument is DIR.
    let (principal, dir) = match (&args.scope, &args.principal, &args.dir) {
        (Some(_), Some(p), None) if std::path::Path::new(p).is_dir() => (None, PathBuf::from(p)),
        (_, p, d) => (p.clone(), d.clone().unwrap_or_else(|| PathBuf::from("."))),
    };
    let compiled = mlpolicy_lang::compile(&dir, &args.common.overrides());
    if compiled.has_errors() {
        let mut errors = compiled.diagnostics.clone();
        errors.items.retain(Diagnostic::is_error);
        print_diagnostics(&errors, &compiled.sources);
        return ExitStatus::Error;
    }
    if principal.is_none() && args.scope.is_none() {
        let d = Diagnostic::error(Code::E0901, "give a PRINCIPAL, or --scope SCOPE")
            .with_help("for example `mlpolicy access alice@contoso.com` or `mlpolicy access --scope workspace.NAME`");
        print_diagnostics(&d.into(), &compiled.sources);
        return ExitStatus::Error;
    }
    let owner = compiled.settings.owner.clone().unwrap_or_else(|| lower::DEFAULT_OWNER.to_owned());
    let desired = lower::lower(&compiled.model, &owner);
    let query = access::Query { principal: principal.as_deref(), scope: args.scope.as_deref() };
    let report = if args.live {
        live_report(args, &dir, &compiled, &desired, &query)
    } else {
        let graph = access::from_desired(&desired);
        let kinds = access::desired_kinds(&desired);
        let scopes = access::managed_scope_names(&desired);
        let ctx = Context {
            graph: &graph,
            kinds: &kinds,
            managed_scopes: &scopes,
            is_managed: &|_| true,
            source: "configuration",
        };
        access::answer(&ctx, &desired, &compiled.settings.subscriptions, &query, None)
    };
    match report {
        Ok(r) => {
            let out = match args.format {
                ReportFormat::Text => render::access_text(&r),
                ReportFormat::Json => render::access_json(&r),
            };
            print!("{out}");
            ExitStatus::Success
        }
        Err(d) => {
            print_diagnostics(&d, &compiled.sources);
            ExitStatus::Error
        }
    }
}

fn live_report(
    args: &AccessArgs,
    dir: &std::path::Path,
    compiled: &mlpolicy_lang::Compiled,
    desired: &DesiredState,
    query: &access::Query<'_>,
) -> Result<Report, Diagnostics> {
    let rt = runtime()?;
    let subscriptions: Vec<String> = compiled.settings.subscriptions.values().cloned().collect();
    let live = rt.block_on(async {
        let conn = crate::connect::connect(dir, &compiled.settings, &connect_options(&args.azure)).await?;
        let read = async {
            let mut live = mlpolicy_engine::live::read(&conn.client, desired, &subscriptions).await?;
            mlpolicy_engine::live::expand_groups(&conn.client, &mut live).await?;
            if let Some(p) = query.principal {
                find_principal(&conn.client, &mut live, p).await?;
            }
            Ok::<_, Diagnostic>(live)
        }
        .await;
        conn.close().await;
        read
    })?;
    access::live_report(desired, &live, &compiled.settings.subscriptions, query)
}

/// Reads a principal the live read has not seen (a user with no group membership in view, an
/// object id), so that the answer can be "holds nothing" rather than "unknown".
async fn find_principal(
    client: &mlpolicy_azure::AzureClient,
    live: &mut mlpolicy_engine::live::LiveState,
    query: &str,
) -> Result<(), Diagnostic> {
    let q = query.trim();
    let known = live.principals.values().any(|p| p.display.eq_ignore_ascii_case(q) || p.id.eq_ignore_ascii_case(q));
    if known {
        return Ok(());
    }
    if q.contains('@') {
        let users = client.resolve_upns(&[q.to_owned()]).await.map_err(|e| mlpolicy_engine::live::read_error(&e))?;
        if let Some(Some(u)) = users.get(q) {
            let id = u.id.to_ascii_lowercase();
            let display = u.user_principal_name.clone().unwrap_or_else(|| q.to_owned());
            live.principals.insert(
                id.clone(),
                mlpolicy_engine::live::PrincipalInfo {
                    id,
                    kind: mlpolicy_engine::live::PrincipalKind::User,
                    display,
                    app_id: None,
                },
            );
        }
    } else if mlpolicy_vocab::guid::is_guid(q) {
        let ids = std::iter::once(q.to_ascii_lowercase()).collect();
        mlpolicy_engine::live::name_principals(client, live, &ids).await?;
    }
    Ok(())
}
