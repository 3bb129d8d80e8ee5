//! One integration-test binary: `cargo test` builds it once.

mod apply;
mod audit;
mod azure;
mod cli;
mod codes;
mod examples;
mod golden;
mod plans;
mod policies;
mod robustness;
mod support;
