//! Argument types, clap derive only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::settings::Overrides;

/// Identity and access for Azure Machine Learning, as reviewed code.
#[derive(Debug, Parser)]
#[command(name = "mlpolicy", version, about, long_about = None, propagate_version = true)]
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
    Validate(ConfigArgs),
    /// Rewrite `.mlp` files in canonical layout, comments kept.
    #[command(
        after_help = "Example:\n  mlpolicy fmt examples/contoso-ml\n  mlpolicy fmt . --check     # in CI: exit 1 and list files that would change"
    )]
    Fmt(FmtArgs),
    /// Print the dependency graph that apply follows, as Graphviz DOT.
    #[command(
        after_help = "Example:\n  mlpolicy graph examples/contoso-ml | dot -Tsvg > graph.svg\n\nEdges point from an object to what must exist before it."
    )]
    Graph(ConfigArgs),
    /// Run a local Azure (ARM, Microsoft Graph, token endpoint) on one loopback port.
    #[command(
        after_help = "Example:\n  mlpolicy emulator --listen 127.0.0.1:0 --state .mlpolicy/emulator.yaml\n  mlpolicy emulator --seed tenant.yaml --latency 30ms --throttle azure --fault-rate 0.05 --replication-delay 5s\n\nPrints one line, `mlpolicy emulator listening on URL`, when ready; Ctrl-C stops it."
    )]
    Emulator(EmulatorArgs),
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

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The configuration directory.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
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

#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Address to listen on; port 0 picks a free port (printed on the ready line).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// YAML state: loaded at start when it exists, saved after every change.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Tenant id (default: the state's, or a fixed one).
    #[arg(long, value_name = "ID")]
    pub tenant: Option<String>,
    /// Initial tenant (YAML) when the state file does not exist.
    #[arg(long, value_name = "FILE")]
    pub seed: Option<PathBuf>,
    /// Added latency per request, e.g. `30ms`.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub latency: Option<Duration>,
    /// List page size (Azure's default is 100).
    #[arg(long, value_name = "N")]
    pub page_size: Option<usize>,
    /// Token-bucket throttling: `azure`, or `read=CAP/REFILL,write=CAP/REFILL,graph=CAP/REFILL,random=RATE`.
    #[arg(long, value_name = "SPEC")]
    pub throttle: Option<String>,
    /// Probability of an injected 500/503 per request, 0 to 1.
    #[arg(long, value_name = "RATE")]
    pub fault_rate: Option<f64>,
    /// Probability of a dropped connection per request, 0 to 1.
    #[arg(long, value_name = "RATE")]
    pub drop_rate: Option<f64>,
    /// How long new principals stay invisible to role assignments and Graph, e.g. `5s`.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub replication_delay: Option<Duration>,
    /// Access token lifetime, e.g. `30s` (default `1h`).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub token_lifetime: Option<Duration>,
    /// Random seed, for reproducible faults, throttling and ids.
    #[arg(long = "random-seed", value_name = "N")]
    pub random_seed: Option<u64>,
    /// Serve HTTPS with a certificate from a throwaway CA (its PEM is written beside the state).
    #[arg(long)]
    pub tls: bool,
    /// Accept only applications and subscriptions present in the state.
    #[arg(long)]
    pub strict_auth: bool,
}
