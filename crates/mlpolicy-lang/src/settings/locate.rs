//! Where a key path is written in the YAML text: the byte ranges diagnostics underline.
//! Best effort, by indentation for block style and by search for flow style.

/// Byte offset of a 1-based line and 1-based column (in characters), clamped to the text.
pub(super) fn byte_offset(text: &str, line: usize, column: usize) -> usize {
    let mut start = 0;
    for _ in 1..line {
        match text[start..].find('\n') {
            Some(i) => start += i + 1,
            None => return text.len(),
        }
    }
    let rest = &text[start..];
    let line_end = rest.find('\n').unwrap_or(rest.len());
    rest[..line_end].char_indices().nth(column.saturating_sub(1)).map_or(start + line_end, |(i, _)| start + i)
}

pub(super) fn next_char_end(text: &str, start: usize) -> usize {
    text[start..].chars().next().filter(|c| *c != '\n').map_or(start, |c| start + c.len_utf8())
}

/// One non-blank, non-comment line: its byte range and indentation.
struct Line {
    start: usize,
    end: usize,
    indent: usize,
}

fn content_lines(text: &str, from: usize, to: usize) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut start = from;
    while start < to {
        let end = text[start..to].find('\n').map_or(to, |i| start + i);
        let line = text[start..end].trim_end_matches('\r');
        let indent = line.len() - line.trim_start_matches(' ').len();
        let body = line[indent..].trim_start();
        if !body.is_empty() && !body.starts_with('#') {
            lines.push(Line { start, end: start + line.len(), indent });
        }
        start = end + 1;
    }
    lines
}

/// If `text[at..]` is `key` (bare or quoted) followed by optional spaces and `:` (then space
/// or end of line), returns the end of the key.
fn key_at(text: &str, at: usize, key: &str) -> Option<usize> {
    let rest = &text[at..];
    let len = [("", ""), ("\"", "\""), ("'", "'")].iter().find_map(|(open, close)| {
        let inner = rest.strip_prefix(open)?.strip_prefix(key)?.strip_prefix(close)?;
        let after = inner.trim_start_matches([' ', '\t']);
        let tail = after.strip_prefix(':')?;
        (tail.is_empty() || tail.starts_with([' ', '\t', '\n', '\r', ',', '}']))
            .then_some(open.len() + key.len() + close.len())
    })?;
    Some(at + len)
}

/// Byte range of the key at `path` (see [`Settings::span_of`](super::Settings::span_of)).
pub(super) fn locate_key(text: &str, path: &[&str]) -> Option<(usize, usize)> {
    let (mut from, mut to) = (0, text.len());
    let mut found = None;
    for key in path {
        let (start, end) = locate_in(text, from, to, key)?;
        found = Some((start, end));
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let column = start - line_start;
        // The key's block: the rest of its line and every following line indented deeper.
        let line_end = text[end..].find('\n').map_or(text.len(), |i| end + i);
        let block_end = content_lines(text, line_end, to).iter().find(|l| l.indent <= column).map_or(to, |l| l.start);
        (from, to) = (end, block_end.max(end));
    }
    found
}

/// Finds `key` as a direct child in `text[from..to]`: block style first (keys at the region's
/// smallest column, after any `- ` list markers), then flow style (after `{` or `,`).
fn locate_in(text: &str, from: usize, to: usize, key: &str) -> Option<(usize, usize)> {
    let first_line = if from == 0 { 0 } else { text[from..to].find('\n').map_or(to, |i| from + i + 1) };
    let keys: Vec<usize> = content_lines(text, first_line, to)
        .iter()
        .map(|l| {
            let mut at = l.start + l.indent;
            while text[at..l.end].starts_with("- ") {
                at += 2;
                at += text[at..l.end].len() - text[at..l.end].trim_start_matches(' ').len();
            }
            at
        })
        .collect();
    let line_start = |at: usize| text[..at].rfind('\n').map_or(0, |i| i + 1);
    if let Some(min) = keys.iter().map(|at| at - line_start(*at)).min() {
        for at in keys.into_iter().filter(|at| at - line_start(*at) == min) {
            if let Some(end) = key_at(text, at, key) {
                return Some((at, end));
            }
        }
    }
    let region = &text[from..to];
    let mut search = 0;
    while let Some(i) = region.get(search..).and_then(|r| r.find(key)) {
        let at = from + search + i;
        let quoted = at > from && matches!(text.as_bytes()[at - 1], b'"' | b'\'');
        let start = if quoted { at - 1 } else { at };
        if text[from..start].trim_end().ends_with(['{', ','])
            && let Some(end) = key_at(text, start, key)
        {
            return Some((start, end));
        }
        // An empty key (YAML's `: value`, or a tagged empty scalar) matches everywhere: step
        // over one whole character, and stop past the end.
        let step =
            if key.is_empty() { region[search + i..].chars().next().map_or(1, char::len_utf8) } else { key.len() };
        search += i + step;
    }
    None
}

/// The second `key` of the block mapping whose first key starts at `map_start`.
pub(super) fn second_key(text: &str, map_start: usize, key: &str) -> Option<(usize, usize)> {
    let line_start = text[..map_start].rfind('\n').map_or(0, |i| i + 1);
    let column = map_start - line_start;
    let mut seen = 0;
    for line in content_lines(text, line_start, text.len()) {
        if line.indent < column {
            break;
        }
        let at = line.start + column;
        if (line.indent == column || (line.start == line_start && at == map_start))
            && let Some(end) = key_at(text, at, key)
        {
            seen += 1;
            if seen == 2 {
                return Some((at, end));
            }
        }
    }
    None
}

/// The scalar written on the same line after a key ending at `key_end`, without a trailing
/// comment; `None` when the value is a block or a flow collection.
pub(super) fn scalar_after_key(text: &str, key_end: usize) -> Option<(usize, usize)> {
    let line_end = text[key_end..].find('\n').map_or(text.len(), |i| key_end + i);
    let after = &text[key_end..line_end];
    let colon = after.find(':')?;
    let value_start = key_end + colon + 1;
    let raw = &text[value_start..line_end];
    let raw = raw.find(" #").map_or(raw, |i| &raw[..i]);
    let trimmed = raw.trim_end_matches([' ', '\t', '\r']);
    let lead = trimmed.len() - trimmed.trim_start().len();
    let value = &trimmed[lead..];
    if value.is_empty() || value.starts_with(['[', '{', '|', '>']) {
        return None;
    }
    let end_in_value = if let Some(quote) = value.chars().next().filter(|c| *c == '"' || *c == '\'') {
        value[1..].find(quote).map_or(value.len(), |i| i + 2)
    } else if value.contains(['}', ']']) {
        value.find([',', '}', ']']).unwrap_or(value.len())
    } else {
        value.len()
    };
    let start = value_start + lead;
    Some((start, start + value[..end_in_value].trim_end().len()))
}

#[cfg(test)]
mod tests {
    use super::locate_key;

    /// Found by fuzzing (docs/fuzzing.md): an empty key searched in flow style stepped past
    /// the end of the text, or into the middle of a character.
    #[test]
    fn an_empty_key_is_searched_without_leaving_the_text() {
        for text in ["!!binary : subscriptions:{", ": {", "{é", "a: {x: 1}\né", "{, : é}"] {
            let found = locate_key(text, &[""]);
            if let Some((start, end)) = found {
                assert!(start <= end && end <= text.len() && text.is_char_boundary(start), "{text:?}: {found:?}");
            }
            let _ = locate_key(text, &["subscriptions", ""]);
        }
        assert_eq!(locate_key("{a: 1, : 2}", &[""]), Some((6, 6)));
    }
}
