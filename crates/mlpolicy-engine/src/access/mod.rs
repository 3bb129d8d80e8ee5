//! Effective access: who holds which role on which scope, directly or through (nested) groups.
//! One implementation serves the plan's "Access changes" section, `mlpolicy access` and audit.
//!
//! The input is an [`AccessGraph`]: principals with display names and kinds, direct group
//! memberships, and role assignments. Group nesting is expanded transitively with a visited set,
//! so a cycle in a corrupted tenant cannot hang it. A leaf is any principal that is not a group
//! (user, service principal, managed identity), or a group whose members are not known.
//!
//! Scopes inherit downwards as in Azure RBAC: a role held on a subscription applies to its
//! resource groups, a role on a resource group to the resources in it ([`covers`]).
//!
//! `graph.rs` holds the graph and the effective-access computation; `query.rs` resolves what
//! `mlpolicy access` is asked; `report.rs` builds its answers.

mod graph;
mod query;
mod report;

pub use graph::{
    AccessGraph, Assignment, Effective, Node, changes, covers, desired_key, from_desired, from_live, is_group_ref,
};
pub use query::{ScopeQuery, principal_key, scope_query};
pub use report::{
    Context, Entry, ManagedAssignments, Query, Report, answer, desired_kinds, live_kinds, live_report,
    managed_live_assignments, managed_scope_names, scope_names,
};
