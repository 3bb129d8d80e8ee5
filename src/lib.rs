//! mlpolicy: identity and access for Azure Machine Learning as reviewed code.
//!
//! The pipeline reads top to bottom, one module per stage:
//! source → syntax → resolve → check → lower → graph → live → diff → plan → render → apply.

pub mod ast;
pub mod diagnostics;
pub mod settings;
pub mod source;
pub mod synth;
