//! Client-supplied text on its way into a log line or an error body: [`display_safe`] escapes every
//! control character (C0, DEL, C1), the Unicode line and paragraph separators and the bidirectional
//! overrides, and truncates to a bound, so no input can start a new log line, colour a terminal, reorder
//! what an operator reads, or grow a response. The log writer ([`crate::telemetry`]) applies the same
//! escaping to every line it writes, whatever a field holds.

/// An error type that is a refusal with its reason (which names the key, element or field), made by
/// `refusal!(/// doc \n Name)`: `Display` is the reason; built from a `String` or a `&str`.
macro_rules! refusal {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        #[error("{0}")]
        pub struct $name(pub String);

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_string())
            }
        }
    };
}
pub(crate) use refusal;

/// Longest client-derived text kept in an error description or page message (characters).
pub const MAX_DISPLAY_CHARS: usize = 256;

/// True for characters that must never reach a log line or an error body raw.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() // C0, DEL, C1
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// `s` with unsafe characters written as `\u{..}` escapes, cut at `max` characters (marked with `…`).
pub fn display_safe(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max * 2));
    for (i, c) in s.chars().enumerate() {
        if i >= max {
            out.push('…');
            break;
        }
        if is_unsafe(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_separators_and_bidi_are_escaped_and_text_is_bounded() {
        for bad in [
            "a\nb",
            "a\rb",
            "a\u{1b}[31mb",
            "a\u{85}b",
            "a\u{2028}b",
            "a\u{202e}b",
            "a\u{7f}b",
            "a\0b",
        ] {
            let s = display_safe(bad, 100);
            assert!(!s.chars().any(is_unsafe), "{bad:?} -> {s:?}");
            assert!(s.starts_with('a') && s.ends_with('b'), "{s:?}");
        }
        assert_eq!(display_safe("plain text", 100), "plain text");
        assert_eq!(display_safe(&"x".repeat(1000), 10).chars().count(), 11);
    }
}
