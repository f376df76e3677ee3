//! Logging: human-readable by default, JSON with `log.format = "json"`; filter from `log.level` / `STS_LOG`.
//! Secrets never reach the log: secret types print `<redacted>` and the HTTP layer logs paths only.
//! Every line goes through [`SafeWriter`]: whatever a field holds (a parameter name, a header, an IdP's
//! message), one event is one line: control characters, line separators and bidirectional overrides are
//! escaped (`\u{a}`), and a line is cut at [`MAX_LINE_BYTES`]. No ANSI colours are written.

use std::io::Write;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{Config, LogFormat};

/// Longest log line written (bytes, before the newline); longer events are cut and marked.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Install the global subscriber (a second call is a no-op, which tests rely on).
pub fn init(config: &Config) {
    let filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(SafeStderr);
    let _ = match config.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Makes a [`SafeWriter`] over stderr for each event.
#[derive(Clone, Copy)]
pub struct SafeStderr;

impl<'a> MakeWriter<'a> for SafeStderr {
    type Writer = SafeWriter<std::io::Stderr>;
    fn make_writer(&'a self) -> Self::Writer {
        SafeWriter(std::io::stderr())
    }
}

/// Escapes each formatted event (the fmt layer writes one event per `write`) into one safe line.
pub struct SafeWriter<W: Write>(pub W);

/// One event's text as one safe line: unsafe characters escaped, the length bounded, one final newline.
pub fn safe_line(buf: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(buf);
    let body = text.strip_suffix('\n').unwrap_or(&text);
    let mut out = String::with_capacity(body.len() + 1);
    for c in body.chars() {
        if out.len() >= MAX_LINE_BYTES {
            out.push_str(" …(cut)");
            break;
        }
        if crate::text::is_unsafe(c) && c != '\t' {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out.push('\n');
    out.into_bytes()
}

impl<W: Write> Write for SafeWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(&safe_line(buf))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_is_one_line_without_escapes() {
        let line = safe_line("INFO x: name=a\nFORGED INFO line \u{1b}[2J\u{2028}end\n".as_bytes());
        let s = String::from_utf8(line).unwrap();
        assert_eq!(s.matches('\n').count(), 1, "{s:?}");
        assert!(s.ends_with('\n'));
        assert!(!s.contains('\u{1b}') && !s.contains('\u{2028}'), "{s:?}");
        assert!(s.contains("\\u{a}FORGED"), "{s:?}");
        let long = safe_line("y".repeat(MAX_LINE_BYTES * 2).as_bytes());
        assert!(long.len() < MAX_LINE_BYTES + 64);
    }
}
