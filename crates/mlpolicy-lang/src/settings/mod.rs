//! Settings: the optional `mlpolicy.yaml` beside the `.mlp` files, plus the `--vars FILE` and
//! `--var NAME=VALUE` overrides, become one [`Settings`] value (language spec §7).
//!
//! `mlpolicy.yaml` is read with [`crate::source::read_inside`], so a symlink out of the
//! configuration directory is refused, and it is added to [`Sources`] so that diagnostics
//! underline the offending key. It never names other files. `--vars` files are named by the
//! operator and may live anywhere; they are added to [`Sources`] too.
//!
//! Variables: `vars` in `mlpolicy.yaml` < `--vars` files in the order given < `--var` flags in
//! the order given; a later source replaces a variable whole (maps are not merged). A
//! `--var` value is taken the way Terraform takes `-var` for a typed variable: when the
//! variable already has a value, that value's type decides (a string stays literal text, an
//! int or bool is parsed as one, a list or map is parsed as a YAML flow collection); a
//! variable with no earlier value is a string unless the text starts with `[` or `{`.
//!
//! Codes: E0020 YAML syntax or type error, E0021 unknown key, E0022 invalid value, E0023 bad
//! `--var`, E0024 `--vars` file problem (plus E0003–E0005 from reading `mlpolicy.yaml`).

mod locate;
mod schema;
#[cfg(test)]
mod tests;

pub use schema::{
    CloudEndpoints, CloudSetting, FILE_NAME, Overrides, Settings, VarValue, is_owner_marker, load, load_with,
};
