//! One integration-test binary: `cargo test` builds it once.

mod access;
mod apply;
mod audit;
mod azure;
mod cli;
mod codes;
mod concurrency;
mod examples;
mod export;
mod golden;
mod plans;
mod policies;
mod robustness;
mod support;
