//! User and room id validation: `^[a-zA-Z0-9@._-]{1,128}$`.

/// The longest user or room id, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// Whether `id` is a valid user or room id: 1 to 128 characters of `a-z A-Z 0-9 @ . _ -`.
///
/// ```
/// assert!(rtm_protocol::ids::is_valid_id("user_1@example.com"));
/// assert!(!rtm_protocol::ids::is_valid_id(""));
/// assert!(!rtm_protocol::ids::is_valid_id("a b"));
/// ```
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'@' | b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        assert!(is_valid_id("a"));
        assert!(is_valid_id(&"x".repeat(128)));
        assert!(!is_valid_id(&"x".repeat(129)));
        for bad in ["", "a b", "a/b", "ä", "a\0", "a+b", "a:b"] {
            assert!(!is_valid_id(bad), "{bad:?}");
        }
    }
}
