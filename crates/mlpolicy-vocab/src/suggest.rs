//! "Did you mean" for misspelt names: the closest candidate by edit distance, if it is close
//! enough to be a plausible typo.

/// The candidate closest to `wanted`, when the distance is small relative to its length.
pub fn closest<'a, I>(wanted: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let wanted_lower = wanted.to_lowercase();
    let limit = (wanted.chars().count() / 3).max(1) + 1;
    candidates
        .into_iter()
        .filter(|c| *c != wanted)
        .map(|c| (strsim::damerau_levenshtein(&wanted_lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)))
        .map(|(_, c)| c)
}

/// `did you mean `x`?` help text, or `None`.
pub fn did_you_mean<'a, I>(wanted: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    closest(wanted, candidates).map(|c| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let kinds = ["resource_group", "identity", "workspace", "group"];
        assert_eq!(closest("workspase", kinds), Some("workspace"));
        assert_eq!(closest("grup", kinds), Some("group"));
        assert_eq!(closest("banana", kinds), None);
    }

    #[test]
    fn ties_break_alphabetically() {
        assert_eq!(closest("ab", ["ac", "aa"]), Some("aa"));
    }
}
