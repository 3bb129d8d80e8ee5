//! One integration-test binary: `cargo test` builds it once.

mod access;
mod apply;
mod audit;
mod azure;
mod ci_templates;
mod cli;
mod codes;
mod concurrency;
mod docs_examples;
mod examples;
mod export;
mod golden;
mod install;
mod limits;
mod lsp;
mod plans;
mod policies;
mod pr_comment;
mod robustness;
mod schemas;
mod support;
