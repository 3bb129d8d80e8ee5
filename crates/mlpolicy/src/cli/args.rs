//! Argument types, clap derive only.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use mlpolicy_lang::settings::Overrides;

/// `--version`: the package version and the git commit built from (`unknown` when built
/// outside a git checkout without `MLPOLICY_COMMIT` set; see build.rs).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("MLPOLICY_COMMIT"), ")");

/// Identity and access for Azure Machine Learning, as reviewed code.
#[derive(Debug, Parser)]
#[command(name = "mlpolicy", version = VERSION, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse, resolve, type-check and evaluate policies; touches no Azure API.
    #[command(
        after_help = "Example:\n  mlpolicy validate examples/contoso-ml\n  mlpolicy validate . --var env=dev\n\nExit codes: 0 valid, 1 errors, 3 a policy `deny`."
    )]
    Validate(ValidateArgs),
    /// Rewrite `.mlp` files in canonical layout, comments kept.
    #[command(
        after_help = "Example:\n  mlpolicy fmt examples/contoso-ml\n  mlpolicy fmt . --check     # in CI: exit 1 and list files that would change"
    )]
    Fmt(FmtArgs),
    /// Print the dependency graph that apply follows, as Graphviz DOT or a Mermaid flowchart.
    #[command(
        after_help = "Example:\n  mlpolicy graph examples/contoso-ml | dot -Tsvg > graph.svg\n  mlpolicy graph examples/contoso-ml --format mermaid > graph.mmd\n\nEdges point from an object to what must exist before it."
    )]
    Graph(GraphArgs),
    /// Read the live tenant, diff it with the configuration and print the plan.
    #[command(
        after_help = "Example:\n  mlpolicy plan examples/contoso-ml --emulator\n  mlpolicy plan . --out plan.json --format markdown > comment.md\n  mlpolicy plan . --detailed-exitcode     # 0 no changes, 2 changes, 1 error, 3 policy deny\n  mlpolicy plan . --out plan.json --pr-comment   # in CI: the plan as one pull-request comment\n\n--pr-comment on GitHub Actions reads GITHUB_REPOSITORY, GITHUB_EVENT_PATH, GITHUB_TOKEN and\nGITHUB_API_URL, and appends the plan to $GITHUB_STEP_SUMMARY; on Azure Pipelines it reads\nSYSTEM_COLLECTIONURI, SYSTEM_TEAMPROJECT, BUILD_REPOSITORY_ID, SYSTEM_PULLREQUEST_PULLREQUESTID\nand SYSTEM_ACCESSTOKEN. Later runs edit the same comment."
    )]
    Plan(PlanArgs),
    /// Carry out a plan: of a configuration directory (asks first), or a saved plan file.
    #[command(
        after_help = "Example:\n  mlpolicy apply examples/contoso-ml                 # plan, ask, apply\n  mlpolicy apply . --auto-approve --audit-log audit.jsonl\n  mlpolicy plan . --out plan.json && mlpolicy apply plan.json   # applies what was reviewed\n  mlpolicy apply . --emulator --auto-approve        # against the local emulator\n\nA plan file is re-derived from its configuration and the live tenant, and applied only when the same.\nWith MLPOLICY_PLAN_KEY set, a plan file must carry a signature made with that key (`plan --out` signs).\nExit codes: 0 applied, 1 error (a stale, altered, unsigned or edited plan file included), 3 a policy `deny`."
    )]
    Apply(ApplyArgs),
    /// Judge the live tenant: policies, orphaned assignments, unmanaged access, expiring app secrets.
    #[command(
        after_help = "Example:\n  mlpolicy audit examples/contoso-ml --emulator\n  mlpolicy audit . --format sarif > audit.sarif      # for code scanning\n  mlpolicy audit . --expiring-within 14d --format json\n\nOn GitHub Actions (GITHUB_ACTIONS=true) each finding is also printed to stderr as an annotation.\nMLPOLICY_NOW=2025-06-01T00:00:00Z judges secret expiry at that time instead of now (tests, reproducible reports).\nExit codes: 0 no `deny` finding (warnings only, or none), 1 error, 3 a `deny` finding."
    )]
    Audit(AuditArgs),
    /// Print a plan saved with `plan --out`.
    #[command(
        after_help = "Example:\n  mlpolicy show plan.json\n  mlpolicy show plan.json --format markdown > comment.md\n  mlpolicy show plan.json --format json | jq '.changes[].address'"
    )]
    Show(ShowArgs),
    /// Who can do what: a principal's roles on every scope, or everyone's access at a scope.
    #[command(
        after_help = "Example:\n  mlpolicy access alice@contoso.com examples/contoso-ml          # as the configuration would make it\n  mlpolicy access 'group.data_scientists[\"fraud\"]' examples/contoso-ml --live --emulator\n  mlpolicy access --scope 'workspace.team[\"fraud\"]' examples/contoso-ml --live\n\nPRINCIPAL is a UPN, an address (`group.NAME`, `identity.NAME`, `workspace.NAME.identity`),\na display name, or (with --live) an object id. Each line is a path: holder → group → … → role @ scope."
    )]
    Access(AccessArgs),
    /// Write the live estate under a scope as a configuration that plans to no changes.
    #[command(
        after_help = "Example:\n  mlpolicy export --out ml --subscription prod=6c1e9a42-3b7d-4f05-8e2a-9d4b1c7f3e60 --group-prefix ml-\n  mlpolicy export --out ml --resource-group rg-ml-teams-prod --group-prefix ml- --compact\n  mlpolicy export --out ml --emulator --emulator-state examples/contoso-ml/.mlpolicy/emulator.yaml\n\nThen `mlpolicy plan ml` (with `--emulator` when exported from it): no changes, only adoptions of\nwhat lacks the ownership marker. Grants the policy packs deny are held back as comments.\nExit codes: 0 written, 1 error (nothing is written when the export fails)."
    )]
    Export(ExportArgs),
    /// Run a local Azure (ARM, Microsoft Graph, token endpoint) on one loopback port.
    #[command(
        after_help = "Example:\n  mlpolicy emulator --listen 127.0.0.1:0 --state .mlpolicy/emulator.yaml\n  mlpolicy emulator --seed tenant.yaml --latency 30ms --throttle azure --fault-rate 0.05 --replication-delay 5s\n\nPrints one line, `mlpolicy emulator listening on URL`, when ready; Ctrl-C stops it."
    )]
    Emulator(mlpolicy_emulator::cli::Args),
    /// Print a shell completion script for bash, zsh, fish, powershell or elvish.
    #[command(
        after_help = "Example:\n  mlpolicy completions bash > mlpolicy.bash     # then: source mlpolicy.bash\n  mlpolicy completions zsh > _mlpolicy          # into a directory of $fpath\n  mlpolicy completions fish > mlpolicy.fish     # into ~/.config/fish/completions/\n  mlpolicy completions powershell > mlpolicy.ps1   # then: . ./mlpolicy.ps1 in $PROFILE"
    )]
    Completions(CompletionsArgs),
    /// Print the man page, or write one page per command into a directory.
    #[command(
        after_help = "Example:\n  mlpolicy man | man -l -\n  mlpolicy man --out man     # man/mlpolicy.1, man/mlpolicy-plan.1, ...; then: man -M . mlpolicy"
    )]
    Man(ManArgs),
    /// Serve the Language Server Protocol on stdin/stdout, for editors; touches no Azure API.
    #[command(
        after_help = "Example:\n  mlpolicy lsp     # started by an editor (docs/editors.md), not by hand\n\nDiagnostics are those of `mlpolicy validate` on the directory of each open file, as you type.\nExit codes: 0 after the client's `shutdown` and `exit`, 1 otherwise."
    )]
    Lsp(LspArgs),
}

/// `mlpolicy completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `mlpolicy man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write `mlpolicy.1` and one `mlpolicy-COMMAND.1` per command into DIR (created when
    /// missing) instead of printing `mlpolicy.1`.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `mlpolicy lsp`.
#[derive(Debug, Args)]
pub struct LspArgs {
    /// Accepted for clients that pass it (stdio is the only transport).
    #[arg(long)]
    pub stdio: bool,
}

/// `mlpolicy apply`.
#[derive(Debug, Args)]
#[expect(clippy::struct_excessive_bools, reason = "independent command-line switches")]
pub struct ApplyArgs {
    /// A configuration directory, or a plan file written by `mlpolicy plan --out`.
    #[arg(default_value = ".", value_name = "DIR | PLANFILE")]
    pub target: PathBuf,
    /// Apply without asking for confirmation (required when stdin is not a terminal).
    #[arg(long)]
    pub auto_approve: bool,
    /// Operations in flight at once.
    #[arg(long, default_value_t = mlpolicy_engine::apply::DEFAULT_PARALLELISM, value_name = "N")]
    pub parallelism: usize,
    /// Append one JSON line per change made to FILE (who, what, when, Azure request ids), after a
    /// first line for the apply; apply does not start when FILE cannot be written.
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Run against the in-process emulator (state in `.mlpolicy/emulator.yaml`).
    #[arg(long)]
    pub emulator: bool,
    /// With `--emulator`: `quick` (the default) or `azure` (replication delay, throttling and
    /// LRO polls, as a real tenant has them).
    #[arg(long, value_enum, value_name = "PROFILE", default_value_t = mlpolicy_emulator::Profile::Quick)]
    pub emulator_profile: mlpolicy_emulator::Profile,
    /// Allow replacing or destroying this address or Azure id (repeatable).
    #[arg(long = "allow-replace", value_name = "ADDR")]
    pub allow_replace: Vec<String>,
    /// Allow removing more than 10 members, or the last owner, of a group.
    #[arg(long)]
    pub allow_mass_removal: bool,
    /// Allow removing the role assignment that lets the running principal manage access.
    #[arg(long)]
    pub allow_self_lockout: bool,
    /// Log each Azure request (method, path, status, duration, request id), retry and the
    /// credential used to stderr (never a token or a body).
    #[arg(long, short)]
    pub verbose: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// How `show` prints a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum PlanFormat {
    #[default]
    Text,
    Markdown,
    Json,
}

/// `mlpolicy show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A plan file written by `mlpolicy plan --out`.
    pub plan_file: PathBuf,
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
}

/// How findings (of `validate` and `audit`) are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum FindingsFormat {
    #[default]
    Text,
    Json,
    Sarif,
}

/// `mlpolicy validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The configuration directory.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Output format: `text` is the summary line (diagnostics go to stderr in every format).
    #[arg(long, value_enum, default_value_t = FindingsFormat::Text)]
    pub format: FindingsFormat,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `mlpolicy audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The configuration directory.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FindingsFormat::Text)]
    pub format: FindingsFormat,
    /// Report client secrets that expire within this time, e.g. `30d`, `2w`.
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = humantime::parse_duration)]
    pub expiring_within: Duration,
    #[command(flatten)]
    pub azure: AzureArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Options shared by commands that compile a configuration.
#[derive(Debug, Args, Clone, Default)]
pub struct CommonArgs {
    /// Set a variable, overriding mlpolicy.yaml (repeatable): `--var env=prod`.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Read variables from a YAML file (repeatable; later files win).
    #[arg(long = "vars", value_name = "FILE.yaml")]
    pub var_files: Vec<PathBuf>,
}

impl CommonArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides { vars: self.vars.clone(), var_files: self.var_files.clone() }
    }
}

/// How `graph` prints the dependency graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum GraphFormat {
    /// Graphviz DOT (`dot -Tsvg`).
    #[default]
    Dot,
    /// A Mermaid flowchart (renders in GitHub and Azure DevOps markdown).
    Mermaid,
}

/// `mlpolicy graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The configuration directory.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    pub format: GraphFormat,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct FmtArgs {
    /// The configuration directory.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Change nothing; exit 1 and list the files that would change.
    #[arg(long)]
    pub check: bool,
}

/// Options of commands that reach Azure.
#[derive(Debug, Args, Clone, Default)]
pub struct AzureArgs {
    /// Run against an in-process Azure emulator whose state lives in DIR/.mlpolicy/.
    #[arg(long)]
    pub emulator: bool,
    /// With `--emulator`: `quick` (the default: everything at once) or `azure` (new
    /// principals replicate for 5 s, Azure's throttling buckets, LROs that take polls).
    #[arg(long, value_enum, value_name = "PROFILE", default_value_t = mlpolicy_emulator::Profile::Quick)]
    pub emulator_profile: mlpolicy_emulator::Profile,
    /// Log each Azure request (method, path, status, duration, request id), retry and the
    /// credential used to stderr (never a token or a body).
    #[arg(long, short)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The configuration directory.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Also save the plan, with fingerprints of what it was computed from, for `apply FILE`
    /// (signed with HMAC-SHA256 when `MLPOLICY_PLAN_KEY` is set).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Exit 2 when the plan has changes, 0 when it has none.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Post the markdown plan as a comment on the pull request this CI run is for, and update
    /// that same comment on later runs (GitHub Actions or Azure Pipelines; see the README).
    /// A failure to post is reported on stderr and does not change the exit code.
    #[arg(long)]
    pub pr_comment: bool,
    /// Allow replacing or deleting this workspace, identity or resource group (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub allow_replace: Vec<String>,
    /// Allow removing more than 10 members, or the last owner, of a group.
    #[arg(long)]
    pub allow_mass_removal: bool,
    #[command(flatten)]
    pub azure: AzureArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// How `access` prints its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ReportFormat {
    #[default]
    Text,
    Json,
}

/// `mlpolicy access`.
#[derive(Debug, Args)]
pub struct AccessArgs {
    /// A UPN, `group.NAME`, `identity.NAME`, `workspace.NAME.identity`, a display name or an
    /// object id. With `--scope` it may be left out: the first argument is then DIR.
    #[arg(value_name = "PRINCIPAL")]
    pub principal: Option<String>,
    /// The configuration directory.
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Everyone with access at this scope (`workspace.NAME`, `resource_group.NAME`,
    /// `workspace.NAME.storage_account`, `sub.ALIAS`, an ARM id), and how.
    #[arg(long, value_name = "SCOPE")]
    pub scope: Option<String>,
    /// Ask the tenant; without it the answer is what the configuration would make.
    #[arg(long)]
    pub live: bool,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    #[command(flatten)]
    pub azure: AzureArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `mlpolicy export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Directory to write to (created when missing); an mlpolicy.yaml there gives the tenant,
    /// cloud and subscription aliases, and is rewritten.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub out: PathBuf,
    /// A subscription to read (repeatable): `ALIAS=ID`, an id, or an alias of DIR/mlpolicy.yaml.
    /// Default: those of DIR/mlpolicy.yaml, else every subscription the caller can list.
    #[arg(long = "subscription", value_name = "ALIAS=ID")]
    pub subscriptions: Vec<String>,
    /// Only these resource groups (repeatable; default: every one of the subscriptions).
    #[arg(long = "resource-group", value_name = "NAME")]
    pub resource_groups: Vec<String>,
    /// Declare the Entra groups whose display name starts with PREFIX (repeatable).
    #[arg(long = "group-prefix", value_name = "PREFIX")]
    pub group_prefixes: Vec<String>,
    /// Write what repeats across teams as one `for` loop over the teams.
    #[arg(long)]
    pub compact: bool,
    /// The owner to write (default: the ownership marker most common in scope).
    #[arg(long, value_name = "NAME")]
    pub owner: Option<String>,
    /// The tenant (id or domain), when DIR/mlpolicy.yaml names none.
    #[arg(long, value_name = "ID")]
    pub tenant: Option<String>,
    /// Replace the `.mlp` files DIR already holds (and, with `--emulator-state`, its emulator
    /// state).
    #[arg(long)]
    pub force: bool,
    /// Policy packs to write into mlpolicy.yaml and review the export against (comma-separated
    /// or repeated); default: those of DIR/mlpolicy.yaml. Grants a pack denies are held back.
    #[arg(long = "policies", value_name = "PACK", value_delimiter = ',')]
    pub policies: Vec<String>,
    /// With `--emulator`: export the tenant of this emulator state file (e.g. another
    /// configuration's `.mlpolicy/emulator.yaml`); it is copied to DIR/.mlpolicy/emulator.yaml
    /// so that `mlpolicy plan DIR --emulator` reads the same tenant.
    #[arg(long, value_name = "FILE", requires = "emulator")]
    pub emulator_state: Option<PathBuf>,
    #[command(flatten)]
    pub azure: AzureArgs,
}
