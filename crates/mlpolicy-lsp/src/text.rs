//! Byte offsets (what the compiler's spans hold) to LSP positions and back, in the position
//! encoding negotiated at `initialize`: UTF-16 code units (the protocol's default) or UTF-8
//! bytes. Offsets and positions outside the text are clamped, never a panic.

use lsp_types::{Position, Range};

/// How a position's `character` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Utf16,
}

/// The start offset of every line of one text.
#[derive(Debug, Clone)]
pub struct LineIndex<'t> {
    text: &'t str,
    starts: Vec<usize>,
    encoding: Encoding,
}

impl<'t> LineIndex<'t> {
    pub fn new(text: &'t str, encoding: Encoding) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts, encoding }
    }

    /// The position of a byte offset (rounded down to a character boundary).
    pub fn position(&self, offset: usize) -> Position {
        let offset = floor_boundary(self.text, offset.min(self.text.len()));
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let before = &self.text[self.starts[line]..offset];
        let character = match self.encoding {
            Encoding::Utf8 => before.len(),
            Encoding::Utf16 => before.chars().map(char::len_utf16).sum(),
        };
        Position { line: clamp_u32(line), character: clamp_u32(character) }
    }

    pub fn range(&self, start: usize, end: usize) -> Range {
        Range { start: self.position(start), end: self.position(end.max(start)) }
    }

    /// The byte offset of a position; a position past the end of its line is the line's end,
    /// past the last line the text's end.
    pub fn offset(&self, pos: Position) -> usize {
        let Some(&start) = self.starts.get(pos.line as usize) else { return self.text.len() };
        let end = self.starts.get(pos.line as usize + 1).map_or(self.text.len(), |&n| n - 1);
        let line = &self.text[start..end];
        let mut units = 0usize;
        for (i, c) in line.char_indices() {
            if units >= pos.character as usize {
                return start + i;
            }
            units += match self.encoding {
                Encoding::Utf8 => c.len_utf8(),
                Encoding::Utf16 => c.len_utf16(),
            };
        }
        end
    }

    /// The range of the whole text.
    pub fn full_range(&self) -> Range {
        self.range(0, self.text.len())
    }
}

fn clamp_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The largest character boundary at or before `i`.
pub fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_both_encodings() {
        let text = "ab\ncé😀d\n";
        for enc in [Encoding::Utf8, Encoding::Utf16] {
            let idx = LineIndex::new(text, enc);
            for offset in [0, 1, 3, 4, 6, 10, 11, 12] {
                assert_eq!(idx.offset(idx.position(offset)), offset, "{enc:?} {offset}");
            }
        }
        let u16 = LineIndex::new(text, Encoding::Utf16);
        assert_eq!(u16.position(10), Position { line: 1, character: 4 });
        let u8 = LineIndex::new(text, Encoding::Utf8);
        assert_eq!(u8.position(10), Position { line: 1, character: 7 });
    }

    #[test]
    fn clamps_out_of_range() {
        let idx = LineIndex::new("ab\ncd", Encoding::Utf16);
        assert_eq!(idx.offset(Position { line: 0, character: 99 }), 2);
        assert_eq!(idx.offset(Position { line: 9, character: 0 }), 5);
        assert_eq!(idx.position(99), Position { line: 1, character: 2 });
        let emoji = LineIndex::new("😀", Encoding::Utf16);
        assert_eq!(emoji.position(2), Position { line: 0, character: 0 });
        assert_eq!(emoji.offset(Position { line: 0, character: 1 }), 4);
    }
}
