//! One integration-test binary: `cargo test` builds it once.

mod azure;
mod cli;
mod codes;
mod examples;
mod golden;
mod robustness;
mod support;
