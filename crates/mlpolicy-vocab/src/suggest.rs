//! "Did you mean" for misspelt names: the closest candidate by edit distance, if it is close
//! enough to be a plausible typo.

use std::cell::Cell;

/// Longest name (in characters) that gets or is offered a suggestion: a typo in a longer one is
/// not what "did you mean" helps with, and comparing long strings costs their product.
pub const MAX_CHARS: usize = 64;

/// The candidate closest to `wanted`, when the distance is small relative to its length.
/// Candidates whose length alone puts them too far are not compared.
pub fn closest<'a, I>(wanted: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let len = wanted.chars().count();
    if len > MAX_CHARS {
        return None;
    }
    let wanted_lower = wanted.to_lowercase();
    let limit = (len / 3).max(1) + 1;
    candidates
        .into_iter()
        .filter(|c| *c != wanted && c.len() <= 4 * MAX_CHARS && c.chars().count().abs_diff(len) <= limit)
        .map(|c| (strsim::damerau_levenshtein(&wanted_lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)))
        .map(|(_, c)| c)
}

/// Suggestions with a budget: at most so many candidates are looked at in all, after which
/// there are no more suggestions. Many misspellings against many names (20,000 unknown names
/// among 20,000 `let`s took minutes) then cost no more than the budget.
#[derive(Debug)]
pub struct Budget(Cell<usize>);

impl Budget {
    /// Candidates one stage may look at: well above what a configuration with a few typos
    /// needs, a fraction of a second at most.
    pub const DEFAULT: usize = 1_000_000;

    pub fn new(candidates: usize) -> Budget {
        Budget(Cell::new(candidates))
    }

    /// Gives the budget `candidates` again.
    pub fn renew(&self, candidates: usize) {
        self.0.set(candidates);
    }

    /// [`closest`], when all the candidates fit in what is left of the budget (so that the
    /// answer never depends on their order); `None`, and nothing left, otherwise.
    pub fn closest<'a, I>(&self, wanted: &str, candidates: I) -> Option<&'a str>
    where
        I: IntoIterator<Item = &'a str>,
        I::IntoIter: Clone,
    {
        let left = self.0.get();
        let candidates = candidates.into_iter();
        let n = candidates.clone().take(left.saturating_add(1)).count();
        if n > left {
            self.0.set(0);
            return None;
        }
        self.0.set(left - n);
        closest(wanted, candidates)
    }

    /// [`did_you_mean`], within the budget.
    pub fn did_you_mean<'a, I>(&self, wanted: &str, candidates: I) -> Option<String>
    where
        I: IntoIterator<Item = &'a str>,
        I::IntoIter: Clone,
    {
        self.closest(wanted, candidates).map(|c| format!("did you mean `{c}`?"))
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget::new(Budget::DEFAULT)
    }
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
    fn long_names_and_far_lengths_are_not_compared() {
        let long = "a".repeat(MAX_CHARS + 1);
        assert_eq!(closest(&long, [long.as_str(), "a"]), None);
        assert_eq!(closest("grup", ["group", &"g".repeat(10_000)]), Some("group"));
    }

    #[test]
    fn a_budget_stops_suggesting_once_spent() {
        let b = Budget::new(6);
        assert_eq!(b.closest("grup", ["x", "y", "group"]), Some("group"));
        assert_eq!(b.closest("grup", ["x", "y", "z", "group"]), None, "4 candidates do not fit in 3");
        assert_eq!(b.closest("grup", ["group"]), None, "and nothing is left");
        assert_eq!(b.did_you_mean("grup", ["group"]), None);
        b.renew(1);
        assert_eq!(b.did_you_mean("grup", ["group"]).as_deref(), Some("did you mean `group`?"));
    }

    #[test]
    fn ties_break_alphabetically() {
        assert_eq!(closest("ab", ["ac", "aa"]), Some("aa"));
    }
}
