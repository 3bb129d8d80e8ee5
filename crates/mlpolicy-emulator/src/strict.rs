//! Strict reading of what the emulator is given: state and seed YAML, and the control API's
//! bodies. serde does the typing (every struct denies unknown fields, and serde's messages carry
//! the line and column); this module adds what serde cannot see: YAML tags (`!!binary`,
//! `!!python/object`, `!custom`), which `serde_norway` drops silently and which are therefore
//! refused, found with `saphyr-parser`'s event stream, which keeps every node's tag and position.

/// The first YAML tag in `text`, as `line L column C: ...`, when there is one.
///
/// Text that `saphyr-parser` cannot parse has no tag found here: the serde parse that follows
/// reports the syntax error with its position.
pub fn find_tag(text: &str) -> Option<String> {
    for event in saphyr_parser::Parser::new_from_str(text) {
        let Ok((event, span)) = event else { return None };
        let tag = match &event {
            saphyr_parser::Event::Scalar(_, _, _, tag)
            | saphyr_parser::Event::SequenceStart(_, tag)
            | saphyr_parser::Event::MappingStart(_, tag) => tag.as_deref(),
            saphyr_parser::Event::StreamEnd => return None,
            _ => None,
        };
        if let Some(tag) = tag {
            let shown = if tag.handle == "tag:yaml.org,2002:" { format!("!!{}", tag.suffix) } else { tag.to_string() };
            return Some(format!(
                "line {} column {}: the YAML tag `{shown}` is not allowed (tags are refused, not ignored); remove it",
                span.start.line(),
                span.start.col() + 1
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::find_tag;

    #[test]
    fn tags_are_found_with_their_position() {
        for (text, at, tag) in [
            ("a: !!binary aGVsbG8=\n", "line 1 column 4", "!!binary"),
            ("users:\n  - name: !!python/object:os.system x\n", "line 2 column 11", "!!python/object:os.system"),
            ("a: !foo bar\n", "line 1 column 4", "!foo"),
            ("a: [1, !!str 2]\n", "line 1 column 8", "!!str"),
            ("a: !!map {b: 1}\n", "line 1 column 4", "!!map"),
            ("a:\n  - !!seq []\n", "line 2 column 5", "!!seq"),
            ("a: &x !!int 1\n", "line 1", "!!int"),
            ("a: !<tag:example.com,2000:x> 1\n", "line 1", "tag:example.com,2000:x"),
        ] {
            let found = find_tag(text).unwrap_or_else(|| panic!("no tag found in {text:?}"));
            assert!(found.starts_with(at) && found.contains(tag), "{text:?}: {found}");
        }
    }

    #[test]
    fn text_without_tags_passes_even_where_it_holds_bangs() {
        for text in [
            "a: b!c\n",
            "a: \"!!binary x\"\n",
            "a: '!x'\n",
            "a: |\n  !!binary not a tag\n  !x\n",
            "a: >\n  !x\n",
            "# !!binary\na: 1 # !x\n",
            "a: x\n  !continued plain\n",
            "",
            "[unclosed",
        ] {
            assert_eq!(find_tag(text), None, "{text:?}");
        }
    }
}
