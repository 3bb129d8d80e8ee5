//! Where the cursor is, read off the text before it: inside which block (a declaration of some
//! kind, a grant's body, a policy, a `for` body, the top level), inside a string, a comment or
//! an expression. Completion needs this also in a half-typed file, where the parser gives up on
//! the item being typed, so it is a small scan of brackets, strings and comments (not a parser:
//! what the words mean is still the compiler's business).

use mlpolicy_lang::model::Kind;

/// The block a statement is written in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    TopLevel,
    /// A `for` body; `vars` are the loop variables it binds.
    For {
        vars: Vec<String>,
    },
    /// The body of a declaration of a known kind (`federated` included).
    Decl(Kind),
    /// A `grant`'s body.
    Grant,
    Policy,
    /// A block whose header is not understood (a misspelt kind).
    Unknown,
}

/// What the cursor is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    Comment,
    /// Inside a string literal that starts at this byte offset (at its `"`).
    String {
        start: usize,
    },
    /// In an expression inside brackets, braces of a map, parentheses or `${...}`.
    Nested,
    /// Directly in a block: at a statement's start, or after its first words.
    Statement,
}

/// The cursor's context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub position: Position,
    /// Innermost last; the top level is not listed.
    pub blocks: Vec<Block>,
    /// Loop variables in scope, innermost last.
    pub loop_vars: Vec<String>,
}

impl Context {
    pub fn block(&self) -> &Block {
        self.blocks.last().unwrap_or(&Block::TopLevel)
    }
}

#[derive(Debug)]
enum Frame {
    Block(Block),
    /// A map literal, brackets or parentheses.
    Nested,
    /// `${` inside the string that starts at this offset.
    Interp(usize),
}

/// Scans `text[..offset]`.
pub fn at(text: &str, offset: usize) -> Context {
    let offset = crate::text::floor_boundary(text, offset);
    let bytes = &text.as_bytes()[..offset];
    let mut frames: Vec<Frame> = Vec::new();
    let mut string: Option<usize> = None;
    let mut comment = false;
    let mut prev = b'\n';
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if comment {
            comment = b != b'\n';
        } else if let Some(start) = string {
            match b {
                b'\\' => i += 1,
                b'"' | b'\n' => string = None,
                b'$' if bytes.get(i + 1) == Some(&b'$') && bytes.get(i + 2) == Some(&b'{') => i += 2,
                b'$' if bytes.get(i + 1) == Some(&b'{') => {
                    frames.push(Frame::Interp(start));
                    string = None;
                    i += 1;
                    prev = b'{';
                }
                _ => {}
            }
        } else {
            match b {
                b'#' => comment = true,
                b'"' => string = Some(i),
                b'{' => {
                    let nested = matches!(frames.last(), Some(Frame::Nested | Frame::Interp(_)))
                        || matches!(prev, b'=' | b',' | b'[' | b'(' | b'{');
                    frames.push(if nested { Frame::Nested } else { Frame::Block(header(text, i)) });
                }
                b'[' | b'(' => frames.push(Frame::Nested),
                b'}' | b']' | b')' => {
                    if let Some(Frame::Interp(start)) = frames.pop() {
                        string = Some(start);
                    }
                }
                _ => {}
            }
            if !b.is_ascii_whitespace() {
                prev = b;
            }
        }
        i += 1;
    }
    let position = if comment {
        Position::Comment
    } else if let Some(start) = string {
        Position::String { start }
    } else {
        match frames.last() {
            Some(Frame::Nested | Frame::Interp(_)) => Position::Nested,
            _ => Position::Statement,
        }
    };
    let blocks: Vec<Block> =
        frames.into_iter().filter_map(|f| if let Frame::Block(b) = f { Some(b) } else { None }).collect();
    let loop_vars =
        blocks.iter().flat_map(|b| if let Block::For { vars } = b { vars.clone() } else { Vec::new() }).collect();
    Context { position, blocks, loop_vars }
}

/// What block a `{` at `brace` opens, from the words before it on its line.
fn header(text: &str, brace: usize) -> Block {
    let line_start = text[..brace].rfind('\n').map_or(0, |i| i + 1);
    let words: Vec<&str> = text[line_start..brace].split_whitespace().collect();
    match words.as_slice() {
        ["for", rest @ ..] => {
            let bound = rest.split(|w| *w == "in").next().unwrap_or_default();
            let vars = bound.join(" ").split(',').map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect();
            Block::For { vars }
        }
        ["grant", ..] => Block::Grant,
        ["policy", ..] => Block::Policy,
        [kind, _name] => Kind::from_keyword(kind).filter(|k| *k != Kind::Grant).map_or(Block::Unknown, Block::Decl),
        _ => Block::Unknown,
    }
}

/// The text of the cursor's line before it.
pub fn line_before(text: &str, offset: usize) -> &str {
    let offset = crate::text::floor_boundary(text, offset);
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    &text[start..offset]
}

/// The start of the name being typed at `offset` (letters, digits, `_`).
pub fn word_start(text: &str, offset: usize) -> usize {
    let offset = crate::text::floor_boundary(text, offset);
    text[..offset]
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_'))
        .map_or(0, |(i, c)| i + c.len_utf8())
}

/// The dotted path written just before `end` (`workspace.team[team].`), without what follows
/// its last dot; `None` when the text before `end` is not a path ending in `.`.
pub fn path_before(text: &str, end: usize) -> Option<&str> {
    let head = text[..end].strip_suffix('.')?;
    let bytes = head.as_bytes();
    let mut i = bytes.len();
    while i > 0 {
        let b = bytes[i - 1];
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' {
            i -= 1;
        } else if b == b']' {
            let mut depth = 0usize;
            while i > 0 {
                i -= 1;
                match bytes[i] {
                    b']' => depth += 1,
                    b'[' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    b'\n' => return None,
                    _ => {}
                }
            }
        } else {
            break;
        }
    }
    let path = &head[i..];
    path.starts_with(|c: char| c.is_ascii_lowercase() || c == '_').then_some(path)
}

/// The root name and the field names of a path (`workspace.team[team]` → `workspace`,
/// `["team"]`), and whether it has an index anywhere.
pub fn split_path(path: &str) -> (&str, Vec<&str>, bool) {
    let mut parts = Vec::new();
    let (mut indexed, mut depth, mut start, mut in_name) = (false, 0usize, 0, true);
    for (i, c) in path.char_indices() {
        match c {
            '[' => {
                if depth == 0 && in_name {
                    parts.push(&path[start..i]);
                    in_name = false;
                }
                depth += 1;
                indexed = true;
            }
            ']' => depth = depth.saturating_sub(1),
            '.' if depth == 0 => {
                if in_name {
                    parts.push(&path[start..i]);
                }
                start = i + 1;
                in_name = true;
            }
            _ => {}
        }
    }
    if in_name {
        parts.push(&path[start..]);
    }
    let root = parts.first().copied().unwrap_or("");
    (root, parts.get(1..).unwrap_or_default().to_vec(), indexed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(marked: &str) -> Context {
        let offset = marked.find('|').expect("cursor");
        let text = marked.replace('|', "");
        at(&text, offset)
    }

    #[test]
    fn finds_blocks_strings_and_nesting() {
        assert_eq!(ctx("group x {\n  na|").block(), &Block::Decl(Kind::Group));
        assert_eq!(ctx("group x {\n  tags = { a = 1 }\n  |").block(), &Block::Decl(Kind::Group));
        assert_eq!(ctx("group x {\n  tags = { a = |").position, Position::Nested);
        assert_eq!(ctx("grant \"Az|").position, Position::String { start: 6 });
        assert_eq!(ctx("x = \"a ${var.|").position, Position::Nested);
        assert_eq!(ctx("x = \"a ${var.env} |").position, Position::String { start: 4 });
        assert_eq!(ctx("x = \"$${ |").position, Position::String { start: 4 });
        assert_eq!(ctx("# group x {\n|").block(), &Block::TopLevel);
        assert_eq!(ctx("# a comment |").position, Position::Comment);
        let c = ctx("for team, v in var.teams {\n  identity i {\n    federated f {\n      |");
        assert_eq!(c.block(), &Block::Decl(Kind::Federated));
        assert_eq!(c.loop_vars, ["team", "v"]);
        assert_eq!(ctx("policy p {\n  deny grant when |").block(), &Block::Policy);
        assert_eq!(ctx("grant \"R\" to a on b {\n  |").block(), &Block::Grant);
        assert_eq!(ctx("workspase x {\n  |").block(), &Block::Unknown);
        assert_eq!(ctx("group x {\n}\n|").block(), &Block::TopLevel);
    }

    #[test]
    fn words_start_at_character_boundaries() {
        assert_eq!(word_start("😀ab", 6), 4);
        assert_eq!(word_start("x.😀", 6), 6);
        assert_eq!(path_before("😀.", 5), None);
    }

    #[test]
    fn reads_paths_before_a_dot() {
        let text = "  scope = workspace.team[team].";
        assert_eq!(path_before(text, text.len()), Some("workspace.team[team]"));
        assert_eq!(split_path("workspace.team[team]"), ("workspace", vec!["team"], true));
        assert_eq!(split_path("var"), ("var", vec![], false));
        assert_eq!(split_path("group.ds[k[\"x\"]].y"), ("group", vec!["ds", "y"], true));
        assert_eq!(path_before("x = 1.", 6), None);
        assert_eq!(path_before("x = a", 5), None);
    }
}
