//! One integration-test binary: `cargo test` builds it once.

mod access;
mod apply;
mod audit;
mod azure;
mod cli;
mod codes;
mod examples;
mod export;
mod golden;
mod limits;
mod plans;
mod policies;
mod robustness;
mod support;
