//! ARM resource ids and role-assignment scopes.
//!
//! ARM compares ids case-insensitively and echoes them in its own casing (`resourcegroups`,
//! re-cased provider namespaces), so ids are compared in one canonical form: lower-case,
//! without a trailing slash ([`canonical`]).

/// The canonical form of an ARM id: lower-case, one leading slash, no trailing slash (the empty
/// string stays empty).
pub fn canonical(id: &str) -> String {
    let trimmed = id.trim().trim_matches('/');
    if trimmed.is_empty() && !id.contains('/') {
        return String::new();
    }
    let mut out = String::with_capacity(trimmed.len() + 1);
    out.push('/');
    out.extend(trimmed.chars().map(|c| c.to_ascii_lowercase()));
    out
}

/// Whether two ARM ids name the same resource (ARM ids are case-insensitive and may differ in
/// a trailing slash).
pub fn same_id(a: &str, b: &str) -> bool {
    a.trim().trim_matches('/').eq_ignore_ascii_case(b.trim().trim_matches('/'))
}

/// The last path segment of an id (the GUID of a role definition id, a resource's name).
pub fn last_segment(id: &str) -> &str {
    id.trim_end_matches('/').rsplit('/').next().unwrap_or(id)
}

/// How a scope is named to people: `subscription <id>` for a subscription, else the last
/// segment of its id (the resource group's or resource's name).
pub fn scope_display(scope: &str) -> String {
    let segs: Vec<&str> = scope.trim_matches('/').split('/').collect();
    if segs.len() == 2 && segs[0].eq_ignore_ascii_case("subscriptions") {
        return format!("subscription {}", segs[1]);
    }
    segs.last().map_or_else(|| scope.to_owned(), |s| (*s).to_owned())
}

/// `parent` is `child` or an ARM ancestor of it (both canonical).
pub fn contains(parent: &str, child: &str) -> bool {
    !parent.is_empty() && (child == parent || child.strip_prefix(parent).is_some_and(|rest| rest.starts_with('/')))
}

/// The subscription id of an ARM id or scope (lower-case), if it is inside one.
pub fn subscription_of(id: &str) -> Option<String> {
    let id = canonical(id);
    let rest = id.strip_prefix("/subscriptions/")?;
    Some(rest.split('/').next().unwrap_or(rest).to_owned())
}

/// The canonical id of the resource group that holds (or is) an ARM id.
pub fn resource_group_id(id: &str) -> Option<String> {
    let c = canonical(id);
    let segs: Vec<&str> = c.split('/').collect();
    (segs.len() >= 5 && segs[1] == "subscriptions" && segs[3] == "resourcegroups").then(|| segs[..5].join("/"))
}

/// `(subscription, resource group, name)` of a resource id inside a resource group.
pub fn resource_parts(id: &str) -> Option<(&str, &str, &str)> {
    let segs: Vec<&str> = id.trim_matches('/').split('/').collect();
    if segs.len() < 4
        || !segs[0].eq_ignore_ascii_case("subscriptions")
        || !segs[2].eq_ignore_ascii_case("resourcegroups")
    {
        return None;
    }
    Some((segs[1], segs[3], segs.last()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_names() {
        assert_eq!(scope_display("/subscriptions/s1"), "subscription s1");
        assert_eq!(scope_display("/subscriptions/s1/resourceGroups/rg-a"), "rg-a");
        assert_eq!(scope_display("/subscriptions/s1/resourceGroups/rg/providers/P/workspaces/w"), "w");
    }

    #[test]
    fn containment_follows_path_segments() {
        assert!(contains("/subscriptions/s/resourcegroups/rg", "/subscriptions/s/resourcegroups/rg/providers/x/y/z"));
        assert!(contains("/subscriptions/s", "/subscriptions/s"));
        assert!(!contains("/subscriptions/s/resourcegroups/rg", "/subscriptions/s/resourcegroups/rg2"));
        assert!(!contains("", "/subscriptions/s"));
    }

    #[test]
    fn subscriptions_and_resource_groups_of_ids() {
        let id = "/subscriptions/S1/resourceGroups/RG/providers/P/t/n";
        assert_eq!(subscription_of(id).as_deref(), Some("s1"));
        assert_eq!(resource_group_id(id).as_deref(), Some("/subscriptions/s1/resourcegroups/rg"));
        assert_eq!(resource_group_id("/subscriptions/s1"), None);
        assert_eq!(subscription_of("/providers/Microsoft.Management/managementGroups/mg"), None);
    }

    #[test]
    fn ids_split_into_parts() {
        assert_eq!(resource_parts("/subscriptions/s/resourceGroups/rg/providers/P/t/n"), Some(("s", "rg", "n")));
        assert_eq!(resource_parts("/subscriptions/s"), None);
        assert_eq!(canonical("/Subscriptions/S/"), "/subscriptions/s");
        assert_eq!(canonical("subscriptions/A/resourceGroups/X/"), "/subscriptions/a/resourcegroups/x");
        assert_eq!(canonical(""), "");
        assert!(same_id("/subscriptions/A/resourcegroups/RG/", "/subscriptions/a/resourceGroups/rg"));
        assert_eq!(last_segment("/a/b/c/"), "c");
    }
}
