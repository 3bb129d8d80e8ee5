//! Argument types, clap derive only.

use std::path::PathBuf;

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
