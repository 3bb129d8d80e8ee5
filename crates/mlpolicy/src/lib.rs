//! The `mlpolicy` command line: argument parsing, one module per command, and the renderers
//! that turn plans, findings and access answers into text, markdown, JSON and SARIF.

pub mod cli;
pub mod connect;
pub mod fuzz;
pub mod publish;
pub mod render;
