//! Team detection: objects of one kind whose Azure names differ in exactly one token
//! (`ml-fraud-data-scientists`, `ml-risk-data-scientists`) form a family keyed by that token;
//! the token set shared by the most families (at least two) is the estate's teams.
//!
//! Names split into tokens at `-`, `_`, `.` and spaces. A family holds one object per token;
//! an object joins at most one family. A group that carries the ownership marker keeps the
//! address its `uniqueName` encodes, so it joins a family only when that address is the
//! family's (same local name, the token as its only key).

use std::collections::{BTreeMap, BTreeSet};

use mlpolicy_lang::model::Kind;

/// An object that may belong to a team.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub kind: Kind,
    /// The export's key of the object (its canonical ARM id or group object id).
    pub id: String,
    /// Its Azure name (a group's display name).
    pub name: String,
    /// For a marked group: the local name and keys its `uniqueName` fixes.
    pub fixed: Option<(String, Vec<String>)>,
}

/// Objects of one kind, one per team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub kind: Kind,
    /// The name with the team token replaced by [`HOLE`].
    pub template: String,
    /// The local name its marked groups fix, if any.
    pub fixed_name: Option<String>,
    /// Team → object id.
    pub members: BTreeMap<String, String>,
}

/// Where the team token was in a family's template.
pub const HOLE: char = '\u{1}';

/// The estate's teams and the families that repeat across them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Teams {
    pub keys: Vec<String>,
    pub families: Vec<Family>,
}

fn is_separator(c: char) -> bool {
    matches!(c, '-' | '_' | '.' | ' ')
}

/// `(start, end)` byte ranges of the tokens of `name`.
fn tokens(name: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in name.char_indices() {
        match (is_separator(c), start) {
            (true, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, name.len()));
    }
    out
}

/// Finds the teams, if the estate repeats a pattern.
pub fn detect(candidates: &[Candidate]) -> Option<Teams> {
    // (kind, template) → (token, candidate index)
    let mut families: BTreeMap<(Kind, String), Vec<(String, usize)>> = BTreeMap::new();
    for (index, c) in candidates.iter().enumerate() {
        for (start, end) in tokens(&c.name) {
            let template = format!("{}{HOLE}{}", &c.name[..start], &c.name[end..]);
            families.entry((c.kind, template)).or_default().push((c.name[start..end].to_owned(), index));
        }
    }
    let valid = |entries: &[(String, usize)]| -> bool {
        let tokens: BTreeSet<&String> = entries.iter().map(|(t, _)| t).collect();
        if entries.len() < 2 || tokens.len() != entries.len() {
            return false;
        }
        let fixed: Vec<Option<&(String, Vec<String>)>> =
            entries.iter().map(|(_, i)| candidates[*i].fixed.as_ref()).collect();
        if fixed.iter().all(Option::is_none) {
            return true;
        }
        let names: BTreeSet<&String> = fixed.iter().flatten().map(|(n, _)| n).collect();
        fixed.iter().all(Option::is_some)
            && names.len() == 1
            && entries.iter().zip(&fixed).all(|((t, _), f)| f.is_some_and(|(_, keys)| keys == std::slice::from_ref(t)))
    };
    families.retain(|_, entries| valid(entries));
    let mut score: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    for entries in families.values() {
        let mut set: Vec<String> = entries.iter().map(|(t, _)| t.clone()).collect();
        set.sort();
        *score.entry(set).or_insert(0) += 1;
    }
    // Most families, then most teams, then the first set in order.
    let keys = score
        .iter()
        .filter(|(_, n)| **n >= 2)
        .max_by(|(a, na), (b, nb)| na.cmp(nb).then(a.len().cmp(&b.len())).then(b.cmp(a)))
        .map(|(k, _)| k.clone())?;
    let mut taken: BTreeSet<usize> = BTreeSet::new();
    let mut out = Vec::new();
    for ((kind, template), entries) in &families {
        let mut set: Vec<&String> = entries.iter().map(|(t, _)| t).collect();
        set.sort();
        if set.into_iter().ne(keys.iter()) || entries.iter().any(|(_, i)| taken.contains(i)) {
            continue;
        }
        taken.extend(entries.iter().map(|(_, i)| *i));
        out.push(Family {
            kind: *kind,
            template: template.clone(),
            fixed_name: entries.first().and_then(|(_, i)| candidates[*i].fixed.as_ref()).map(|(n, _)| n.clone()),
            members: entries.iter().map(|(t, i)| (t.clone(), candidates[*i].id.clone())).collect(),
        });
    }
    if out.len() < 2 {
        return None;
    }
    Some(Teams { keys, families: out })
}

/// A family's name without the team token and one separator beside it.
pub fn base_name(template: &str) -> String {
    let Some(at) = template.find(HOLE) else { return template.to_owned() };
    let (before, after) = (&template[..at], &template[at + HOLE.len_utf8()..]);
    if let Some(rest) = after.strip_prefix(is_separator) {
        format!("{before}{rest}")
    } else if let Some(rest) = before.strip_suffix(is_separator) {
        format!("{rest}{after}")
    } else {
        format!("{before}{after}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(kind: Kind, name: &str) -> Candidate {
        Candidate { kind, id: name.to_owned(), name: name.to_owned(), fixed: None }
    }

    #[test]
    fn teams_are_the_token_set_most_families_share() {
        let cands = vec![
            c(Kind::Group, "ml-fraud-data-scientists"),
            c(Kind::Group, "ml-risk-data-scientists"),
            c(Kind::Group, "ml-platform-admins"),
            c(Kind::Identity, "id-fraud-training-prod"),
            c(Kind::Identity, "id-risk-training-prod"),
            c(Kind::Workspace, "mlw-fraud-prod"),
            c(Kind::Workspace, "mlw-risk-prod"),
            c(Kind::Workspace, "mlw-contoso-shared"),
        ];
        let t = detect(&cands).unwrap();
        assert_eq!(t.keys, ["fraud", "risk"]);
        let templates: Vec<String> = t.families.iter().map(|f| base_name(&f.template)).collect();
        assert_eq!(templates, ["id-training-prod", "mlw-prod", "ml-data-scientists"]);
        assert_eq!(t.families[2].members["risk"], "ml-risk-data-scientists");
    }

    #[test]
    fn one_family_is_no_pattern_and_marked_groups_keep_their_address() {
        assert_eq!(detect(&[c(Kind::Group, "a-x"), c(Kind::Group, "a-y")]), None);
        let mut g1 = c(Kind::Group, "ml-x-ds");
        g1.fixed = Some(("ds".into(), vec!["x".into()]));
        let mut g2 = c(Kind::Group, "ml-y-ds");
        g2.fixed = Some(("ds".into(), vec!["other".into()]));
        let cands = vec![
            g1,
            g2,
            c(Kind::Workspace, "w-x"),
            c(Kind::Workspace, "w-y"),
            c(Kind::Identity, "i-x"),
            c(Kind::Identity, "i-y"),
        ];
        let t = detect(&cands).unwrap();
        assert!(t.families.iter().all(|f| f.kind != Kind::Group), "{t:?}");
    }

    #[test]
    fn base_names_drop_one_separator() {
        assert_eq!(base_name("ml-\u{1}-ds"), "ml-ds");
        assert_eq!(base_name("\u{1}-ds"), "ds");
        assert_eq!(base_name("ds-\u{1}"), "ds");
        assert_eq!(base_name("ds\u{1}"), "ds");
    }
}
