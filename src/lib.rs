//! mlpolicy: identity and access for Azure Machine Learning as reviewed code.
//!
//! The pipeline reads top to bottom, one module per stage:
//! source → syntax → resolve → check → lower → graph → live → diff → plan → render → apply.

pub mod ast;
pub mod check;
pub mod diagnostics;
pub mod eval;
pub mod graph;
pub mod model;
pub mod resolve;
pub mod roles;
pub mod source;
pub mod suggest;
