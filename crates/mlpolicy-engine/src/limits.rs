//! Azure's fixed RBAC limits, checked before apply: at most 4,000 role assignments per
//! subscription (at the subscription, its resource groups and resources; management-group
//! assignments do not count) and 500 per management group. Azure refuses the assignment past
//! the limit (`RoleAssignmentLimitExceeded`) and never raises it, so a plan that would cross it
//! fails with the count it would reach and the grants that take it there; a plan that ends
//! above 90% of a limit warns. (Custom roles, 5,000 per tenant, are not created by mlpolicy.)

use std::collections::BTreeMap;

use mlpolicy_lang::code::Code;
use mlpolicy_lang::diagnostics::{Diagnostic, Diagnostics};
use mlpolicy_lang::source::Span;
use mlpolicy_vocab::arm::{canonical, subscription_of};

use crate::live::LiveState;
use crate::plan::{Action, ObjectKind, Plan};

/// Role assignments per subscription.
pub const SUBSCRIPTION_LIMIT: usize = 4_000;
/// Role assignments per management group.
pub const MANAGEMENT_GROUP_LIMIT: usize = 500;
/// A plan that ends at or above this share of a limit warns.
const WARN_AT_PERCENT: usize = 90;
/// Grants labelled in a diagnostic; the rest are counted.
const LABELLED: usize = 5;

const MG_PREFIX: &str = "/providers/microsoft.management/managementgroups/";

/// Where a limit applies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Bucket {
    /// A subscription, by lower-case id.
    Subscription(String),
    /// A management group, by lower-case name.
    ManagementGroup(String),
}

impl Bucket {
    /// The bucket an assignment at `scope` counts in.
    fn of(scope: &str) -> Option<Bucket> {
        let scope = canonical(scope).to_ascii_lowercase();
        if let Some(rest) = scope.strip_prefix(MG_PREFIX) {
            // Only assignments at the management group itself count towards its limit.
            return (!rest.contains('/')).then(|| Bucket::ManagementGroup(rest.to_owned()));
        }
        subscription_of(&scope).map(Bucket::Subscription)
    }

    fn limit(&self) -> usize {
        match self {
            Bucket::Subscription(_) => SUBSCRIPTION_LIMIT,
            Bucket::ManagementGroup(_) => MANAGEMENT_GROUP_LIMIT,
        }
    }

    fn describe(&self, aliases: &BTreeMap<String, String>) -> String {
        match self {
            Bucket::Subscription(id) => match aliases.get(id) {
                Some(alias) => format!("subscription `{alias}` ({id})"),
                None => format!("subscription {id}"),
            },
            Bucket::ManagementGroup(name) => format!("management group `{name}`"),
        }
    }
}

/// The scope of a role assignment's ARM id.
fn scope_of(assignment_id: &str) -> &str {
    let lower = assignment_id.to_ascii_lowercase();
    lower.find("/providers/microsoft.authorization/roleassignments/").map_or(assignment_id, |i| &assignment_id[..i])
}

#[derive(Default)]
struct Tally {
    live: usize,
    added: Vec<String>,
    removed: usize,
}

/// The diagnostics for every subscription or management group the plan takes past (error) or
/// near (warning) its limit. `aliases` maps lower-case subscription ids to the configuration's
/// aliases; `spans` locates grants by address.
pub fn check(
    plan: &Plan,
    live: &LiveState,
    aliases: &BTreeMap<String, String>,
    spans: &BTreeMap<String, Span>,
) -> Diagnostics {
    let mut tallies: BTreeMap<Bucket, Tally> = BTreeMap::new();
    for a in live.role_assignments.values() {
        if let Some(b) = Bucket::of(&a.properties.scope) {
            tallies.entry(b).or_default().live += 1;
        }
    }
    for c in plan.changes.iter().filter(|c| c.kind == ObjectKind::RoleAssignment) {
        let Some(b) = Bucket::of(scope_of(&c.azure_id)) else { continue };
        match c.action {
            Action::Create => tallies.entry(b).or_default().added.push(c.address.clone()),
            Action::Delete => tallies.entry(b).or_default().removed += 1,
            _ => {}
        }
    }
    let mut out = Diagnostics::default();
    for (bucket, t) in &tallies {
        let after = (t.live + t.added.len()).saturating_sub(t.removed);
        let limit = bucket.limit();
        let place = bucket.describe(aliases);
        let counts = format!("{} now, {} added and {} removed by this plan", t.live, t.added.len(), t.removed);
        let d = if after > limit && !t.added.is_empty() {
            Diagnostic::error(
                Code::E0509,
                format!(
                    "{place} would hold {after} role assignments, above Azure's fixed limit of {limit} ({counts})"
                ),
            )
            .with_help(
                "Azure refuses every assignment past the limit and never raises it. Grant roles to groups instead of \
                 to each person or identity (one assignment for a group instead of one per member), or spread the \
                 scopes over more subscriptions; see https://learn.microsoft.com/azure/role-based-access-control/troubleshoot-limits",
            )
        } else if after * 100 >= limit * WARN_AT_PERCENT && !t.added.is_empty() {
            Diagnostic::warning(
                Code::W0501,
                format!(
                    "{place} would hold {after} role assignments, {}% of Azure's fixed limit of {limit} ({counts})",
                    after * 100 / limit
                ),
            )
            .with_help("Azure refuses assignments past the limit; grant to groups to keep room to grow.")
        } else {
            continue;
        };
        out.push(label_grants(d, &t.added, spans));
    }
    out
}

/// Labels the first few grants (in source order) a plan adds in the bucket, and counts the
/// others.
fn label_grants(mut d: Diagnostic, added: &[String], spans: &BTreeMap<String, Span>) -> Diagnostic {
    let mut located: Vec<Span> = added.iter().filter_map(|a| spans.get(a).copied()).collect();
    located.sort_by_key(|s| (s.file, s.start));
    let mut spans = located.iter();
    if let Some(span) = spans.next() {
        d = d.with_label(*span, "this grant adds an assignment there");
    }
    for span in spans.by_ref().take(LABELLED - 1) {
        d = d.with_secondary(*span, "and this one");
    }
    let rest = spans.count();
    if rest > 0 {
        let help = d.help.take().unwrap_or_default();
        d = d.with_help(format!("{help}\n{rest} more grants of this plan add assignments there."));
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_count_in_their_subscription_or_management_group() {
        let sub = "/subscriptions/AAA/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/st";
        assert_eq!(Bucket::of(sub), Some(Bucket::Subscription("aaa".into())));
        assert_eq!(
            Bucket::of("/providers/Microsoft.Management/managementGroups/Corp"),
            Some(Bucket::ManagementGroup("corp".into()))
        );
        assert_eq!(Bucket::of("/"), None);
        assert_eq!(
            scope_of("/subscriptions/a/resourceGroups/rg/providers/Microsoft.Authorization/roleAssignments/x"),
            "/subscriptions/a/resourceGroups/rg"
        );
    }
}
