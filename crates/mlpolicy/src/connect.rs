//! How a command reaches Azure: the cloud and tenant of `mlpolicy.yaml` with a credential from
//! the environment, or — with `--emulator` — an in-process emulator on a free loopback port whose
//! state lives in `.mlpolicy/emulator.yaml` under the configuration directory, seeded from
//! `emulator-seed.yaml` there. Both are the same client over real HTTP. The emulator locks its
//! state for the whole command, so a second `--emulator` command on the same directory waits
//! for the first (up to `MLPOLICY_EMULATOR_LOCK_TIMEOUT`, default 2m) and sees its writes.
//! Codes: E0601 (cannot connect).

use std::path::Path;
use std::sync::Arc;

use mlpolicy_azure::{AuthOptions, AzureClient, ClientOptions, Cloud, Credential, SecretString, TokenSource};
use mlpolicy_emulator::{Emulator, EmulatorConfig};
use mlpolicy_lang::diagnostics::Code;
use mlpolicy_lang::diagnostics::Diagnostic;
use mlpolicy_lang::settings::{CloudSetting, Settings};

/// A connected client, and the emulator it talks to when there is one.
pub struct Connection {
    pub client: AzureClient,
    pub emulator: Option<Emulator>,
    /// The ARM, Graph and authority endpoints used.
    pub endpoints: [String; 3],
}

impl Connection {
    /// Stops the in-process emulator, if any, after its last state save.
    pub async fn close(self) {
        if let Some(e) = self.emulator {
            e.shutdown().await;
        }
    }
}

fn fail(message: String) -> Diagnostic {
    Diagnostic::error(Code::E0601, message)
}

/// Options for [`connect`].
#[derive(Clone, Default)]
pub struct ConnectOptions {
    /// Start the in-process emulator for this configuration directory.
    pub emulator: bool,
    /// Its realism preset.
    pub emulator_profile: mlpolicy_emulator::Profile,
    /// Receives `--verbose` lines (never a token).
    pub log: Option<mlpolicy_azure::LogFn>,
    pub concurrency: Option<usize>,
}

/// Connects for one command.
pub async fn connect(dir: &Path, settings: &Settings, opts: &ConnectOptions) -> Result<Connection, Diagnostic> {
    let mut options = ClientOptions { log: opts.log.clone(), ..ClientOptions::default() };
    if let Some(c) = opts.concurrency {
        options.concurrency = c.max(1);
    }
    if let Some(budget) = duration_env("MLPOLICY_THROTTLE_BUDGET")? {
        options.retry.throttle_budget = budget;
    }
    if let Some(dir) = std::env::var_os("MLPOLICY_RECORD").filter(|d| !d.is_empty()) {
        options.record = Some(dir.into());
        options.record_replace_ids = std::env::var("MLPOLICY_RECORD_IDS").map_or(true, |v| v != "keep");
    }
    if let Some(budget) = duration_env("MLPOLICY_REPLICATION_BUDGET")? {
        options.replication.rbac_budget = budget;
        options.replication.graph_budget = budget;
    }
    if opts.emulator {
        // The CLI signs in to the emulator with a fixed client secret of its own: the advice
        // to replace a secret is not for the reader.
        options.log = opts.log.clone().map(|log| -> mlpolicy_azure::LogFn {
            Arc::new(move |line: &str| {
                if line.starts_with("warning: authenticating with AZURE_CLIENT_SECRET") {
                    return;
                }
                if line.starts_with("authentication: client secret") {
                    log("authentication: the in-process emulator's fixed client (no credential of yours is used)");
                    return;
                }
                log(line);
            })
        });
        let state_dir = dir.join(".mlpolicy");
        std::fs::create_dir_all(&state_dir)
            .map_err(|e| fail(format!("cannot create `{}`: {e}", state_dir.display())))?;
        let seed = dir.join(SEED_FILE);
        let seed_file = if seed.exists() {
            let canonical_dir =
                dir.canonicalize().map_err(|e| fail(format!("cannot open `{}`: {e}", dir.display())))?;
            mlpolicy_lang::source::read_inside(&canonical_dir, &seed).map_err(|d| *d)?;
            Some(seed)
        } else {
            None
        };
        let state_file = state_dir.join("emulator.yaml");
        if let Some(seed) = &seed_file {
            reseed(seed, &state_file).await?;
        }
        let cfg = EmulatorConfig {
            state_file: Some(state_file),
            seed_file,
            tenant: settings.tenant.clone().unwrap_or_default(),
            realism: opts.emulator_profile.realism(),
            lock_timeout: duration_env("MLPOLICY_EMULATOR_LOCK_TIMEOUT")?
                .unwrap_or(mlpolicy_emulator::DEFAULT_LOCK_TIMEOUT),
            ..EmulatorConfig::default()
        };
        let emulator = Emulator::start(cfg).await.map_err(|e| fail(format!("cannot start the emulator: {e}")))?;
        let base = emulator.base_url();
        let cloud = Cloud::single_endpoint(&base).map_err(|e| fail(e.to_string()))?;
        let tenant = emulator.tenant().await.tenant_id.clone();
        // The emulator trusts any application: a fixed client id and secret stand for the CLI.
        let source = TokenSource::credential(Credential::ClientSecret {
            client_id: "00000000-0000-0000-0000-00000000c11e".into(),
            secret: SecretString::new("emulator"),
        });
        let client = AzureClient::new(cloud, &tenant, source, options).map_err(|e| fail(e.to_string()))?;
        return Ok(Connection { client, emulator: Some(emulator), endpoints: [base.clone(), base.clone(), base] });
    }
    let Some(tenant) = settings.tenant.clone() else {
        return Err(fail("mlpolicy.yaml sets no `tenant`".into()).with_help(
            "add `tenant: <directory id>` to mlpolicy.yaml, or run against the emulator with `--emulator`",
        ));
    };
    let endpoints = settings.cloud.endpoints();
    let cloud = match &settings.cloud {
        CloudSetting::Public => Cloud::Public,
        CloudSetting::UsGovernment => Cloud::UsGovernment,
        CloudSetting::China => Cloud::China,
        CloudSetting::Custom { arm, graph, authority } => {
            let parse = |u: &str| url::Url::parse(u).map_err(|e| fail(format!("invalid endpoint `{u}`: {e}")));
            Cloud::Custom {
                arm: parse(arm)?,
                graph: parse(graph)?,
                authority: parse(authority)?,
                arm_scope: None,
                graph_scope: None,
            }
        }
    };
    let source = TokenSource::from_env(&AuthOptions::default()).map_err(|e| {
        fail(format!("no Azure credential found: {}", e.message)).with_help(
            "in CI use workload identity federation (GitHub Actions OIDC, AZURE_FEDERATED_TOKEN_FILE) — see docs/azure.md; locally `az login`",
        )
    })?;
    let client = AzureClient::new(cloud, &tenant, source, options).map_err(|e| fail(e.to_string()))?;
    Ok(Connection { client, emulator: None, endpoints: [endpoints.arm, endpoints.graph, endpoints.authority] })
}

/// The seed of the in-process emulator, beside the configuration.
pub const SEED_FILE: &str = "emulator-seed.yaml";

/// A seed edited after the emulator's state was made (the state is rewritten on every run, so
/// a newer seed was edited since the last one): the users, groups and service principals it
/// names that the state lacks are added to the state, and a notice on stderr says so and how
/// to start over from the seed. Nothing else of the state changes.
async fn reseed(seed: &Path, state: &Path) -> Result<(), Diagnostic> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let (Some(seed_time), Some(state_time)) = (modified(seed), modified(state)) else { return Ok(()) };
    if seed_time <= state_time {
        return Ok(());
    }
    let load =
        |p: &Path| mlpolicy_emulator::Tenant::load(p).map_err(|e| fail(format!("cannot load the emulator: {e}")));
    let from = load(seed)?;
    let mut tenant = load(state)?;
    let mut added = Vec::new();
    for u in from.users {
        if tenant.find_user(&u.user_principal_name).is_none() {
            added.push(format!("user {}", u.user_principal_name));
            tenant.users.push(u);
        }
    }
    for g in from.groups {
        if !tenant.groups.iter().any(|t| t.display_name.eq_ignore_ascii_case(&g.display_name)) {
            added.push(format!("group {}", g.display_name));
            tenant.groups.push(g);
        }
    }
    for sp in from.service_principals {
        let known = tenant.service_principals.iter().any(|t| {
            t.display_name.eq_ignore_ascii_case(&sp.display_name) || (!sp.app_id.is_empty() && t.app_id == sp.app_id)
        });
        if !known {
            added.push(format!("service principal {}", sp.display_name));
            tenant.service_principals.push(sp);
        }
    }
    tenant.normalize();
    tenant.save(state).await.map_err(|e| fail(format!("cannot save the emulator's state: {e}")))?;
    let what = if added.is_empty() { "nothing new to add".to_owned() } else { format!("added {}", added.join(", ")) };
    eprintln!(
        "mlpolicy: `{}` changed after the emulator's state `{}` was made: {what}. Other changes to the seed apply only to a new state: delete `{}` to start over from the seed.",
        seed.display(),
        state.display(),
        state.display()
    );
    Ok(())
}

/// Under `--emulator`, a user, service principal or group the configuration names that the
/// emulator lacks (E0502) gets help saying how to add it: the seed file, its path and format.
pub fn emulator_help(diags: &mut mlpolicy_lang::diagnostics::Diagnostics, dir: &Path) {
    let seed = dir.join(SEED_FILE);
    for d in diags.items.iter_mut().filter(|d| d.code == Code::E0502) {
        let Some(name) = d.message.split('`').nth(1).map(str::to_owned) else { continue };
        let entry = if d.message.starts_with("user ") {
            format!("users:\n  - user_principal_name: {name}")
        } else if d.message.starts_with("service principal ") {
            format!("service_principals:\n  - display_name: {name}")
        } else {
            format!("groups:\n  - display_name: {name}")
        };
        d.help = Some(format!(
            "the in-process emulator has no such object: check the spelling, or add it to the emulator's seed (format in docs/emulator.md, \"State and seed files\") and run the command again, as a seed newer than the state is merged into it:\n# {}\n{entry}",
            seed.display()
        ));
    }
}

/// A log sink that writes `--verbose` lines to stderr.
pub fn stderr_log() -> mlpolicy_azure::LogFn {
    Arc::new(|line: &str| eprintln!("mlpolicy: {line}"))
}

/// A duration from the environment (`90s`, `5m`), when set.
fn duration_env(name: &str) -> Result<Option<std::time::Duration>, Diagnostic> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(text) => humantime::parse_duration(text.trim())
            .map(Some)
            .map_err(|e| fail(format!("`{name}` is not a duration (`90s`, `5m`): {e}"))),
    }
}
