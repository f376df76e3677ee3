//! Logging: human-readable by default, JSON with `log.format = "json"`; filter from `log.level` / `STS_LOG`.
//! Secrets never reach the log: secret types print `<redacted>` and the HTTP layer logs paths only.
//! Every line goes through [`SafeWriter`]: whatever a field holds (a parameter name, a header, an IdP's
//! message), one event is one line: control characters, line separators and bidirectional overrides are
//! escaped (`\u{a}` in text, the JSON escape `\u000a` in JSON, so a JSON line stays valid JSON), and a line is
//! bounded by [`MAX_LINE_BYTES`] (text: cut; JSON: string values shortened, so it still parses). No ANSI
//! colours are written. Fields that carry client input are written with `?` (quoted and escaped), so a
//! value cannot forge another field (`account=x ip=10.0.0.1`).

use std::io::Write;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Longest log line written (bytes, before the newline); longer events are cut and marked.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Install the global subscriber with `log.level` (an `EnvFilter` directive) and `log.format` (a second
/// call is a no-op, which tests rely on).
pub fn init(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = matches!(format, LogFormat::Json);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(SafeStderr { json });
    let _ = match format {
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
pub struct SafeStderr {
    pub json: bool,
}

impl<'a> MakeWriter<'a> for SafeStderr {
    type Writer = SafeWriter<std::io::Stderr>;
    fn make_writer(&'a self) -> Self::Writer {
        SafeWriter {
            out: std::io::stderr(),
            json: self.json,
        }
    }
}

/// Escapes each formatted event (the fmt layer writes one event per `write`) into one safe line.
pub struct SafeWriter<W: Write> {
    pub out: W,
    pub json: bool,
}

/// One JSON event as one safe line that is still one JSON value: unsafe characters as JSON escapes, an
/// event over [`MAX_LINE_BYTES`] with its long string values shortened.
pub fn safe_json_line(buf: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(buf);
    let body = text.strip_suffix('\n').unwrap_or(&text);
    let shortened;
    let body = if body.len() > MAX_LINE_BYTES {
        shortened = match serde_json::from_str::<serde_json::Value>(body) {
            Ok(mut v) => {
                shorten_strings(&mut v, 1024);
                v.to_string()
            }
            Err(_) => serde_json::json!({"level": "WARN", "message": "a log event was not JSON and too long; left out", "bytes": body.len()}).to_string(),
        };
        shortened.as_str()
    } else {
        body
    };
    let mut out = String::with_capacity(body.len() + 1);
    for c in body.chars() {
        if crate::text::is_unsafe(c) {
            // Inside a JSON string (the only place such characters can be in serde_json's output).
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out.push('\n');
    out.into_bytes()
}

fn shorten_strings(v: &mut serde_json::Value, max: usize) {
    match v {
        serde_json::Value::String(s) if s.len() > max => {
            let mut end = max;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
            s.push_str("…(cut)");
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| shorten_strings(x, max)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|x| shorten_strings(x, max)),
        _ => {}
    }
}

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
        let line = if self.json {
            safe_json_line(buf)
        } else {
            safe_line(buf)
        };
        self.out.write_all(&line)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
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

    #[test]
    fn a_json_event_stays_one_valid_json_line() {
        let event = serde_json::json!({"level": "INFO", "reason": "a\u{2028}b\u{85}c\u{7f}\u{202e}", "x": "y".repeat(MAX_LINE_BYTES * 2)});
        let line = safe_json_line(format!("{event}\n").as_bytes());
        let s = String::from_utf8(line).unwrap();
        assert_eq!(s.matches('\n').count(), 1);
        assert!(
            !s.trim_end_matches('\n').chars().any(crate::text::is_unsafe),
            "{s:?}"
        );
        assert!(s.len() < MAX_LINE_BYTES);
        let v: serde_json::Value = serde_json::from_str(&s).expect("still JSON");
        assert_eq!(
            v["reason"], "a\u{2028}b\u{85}c\u{7f}\u{202e}",
            "the same value after parsing"
        );
    }
}
