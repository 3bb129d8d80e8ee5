//! GUIDs as Azure and Entra ID write them (`8-4-4-4-12` hex digits, any case).

/// Whether `s` has the shape of a GUID.
pub fn is_guid(s: &str) -> bool {
    let mut parts = 0;
    for (part, len) in s.split('-').zip([8, 4, 4, 4, 12].into_iter().chain(std::iter::repeat(0))) {
        if part.len() != len || !part.bytes().all(|c| c.is_ascii_hexdigit()) {
            return false;
        }
        parts += 1;
    }
    parts == 5
}

#[cfg(test)]
mod tests {
    use super::is_guid;

    #[test]
    fn guids_have_five_hex_groups() {
        assert!(is_guid("8e3af657-a8ff-443c-a75c-2fe8c4bcb635"));
        assert!(is_guid("8E3AF657-A8FF-443C-A75C-2FE8C4BCB635"));
        assert!(!is_guid("8e3af657-a8ff-443c-a75c-2fe8c4bcb63"));
        assert!(!is_guid("8e3af657-a8ff-443c-a75c-2fe8c4bcb635-0"));
        assert!(!is_guid("8e3af657a8ff443ca75c2fe8c4bcb635"));
        assert!(!is_guid("ze3af657-a8ff-443c-a75c-2fe8c4bcb635"));
        assert!(!is_guid(""));
    }
}
