//! Errors that point at the source: a message, labelled spans, notes.
//!
//! Every stage reports through [`Error`]; the front ends render it with the
//! source text (ariadne, ASCII, no colour) so the user sees the line and a
//! caret under the offending operator.

use std::fmt;

use crate::syntax::Span;

/// What went wrong, which decides nothing but the first word of the message;
/// every kind exits with status 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    Parse,
    Shape,
    /// A construct whose derivative matdiff cannot derive (yet): refused by name.
    Unsupported,
    Usage,
    /// A size or depth limit was hit.
    Limit,
    /// A bug in matdiff: an invariant failed. Never a silent wrong answer.
    Internal,
}

/// A labelled span of the source.
#[derive(Clone, Debug)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

/// An error with the places in the source it is about.
///
/// ```
/// use matdiff::{Error, ErrorKind};
/// let e = Error::new(ErrorKind::Usage, "no expression");
/// assert_eq!(e.to_string(), "no expression");
/// ```
#[derive(Clone, Debug)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub labels: Vec<Label>,
    pub notes: Vec<String>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into(), labels: vec![], notes: vec![] }
    }

    /// Adds a label; synthetic spans (nodes built by matdiff) are skipped.
    pub fn label(mut self, span: Span, message: impl Into<String>) -> Error {
        if !span.is_synthetic() {
            self.labels.push(Label { span, message: message.into() });
        }
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Error {
        self.notes.push(note.into());
        self
    }

    /// The process exit status for this error (docs/cli.md, Exit status).
    pub fn exit_code(&self) -> i32 {
        2
    }

    /// The message with the source line and carets, as a user sees it.
    pub fn render(&self, source_name: &str, source: &str) -> String {
        use ariadne::{CharSet, Config, IndexType, Label as ALabel, Report, ReportKind, Source};
        let title = match self.kind {
            ErrorKind::Parse => "parse error",
            ErrorKind::Shape => "shape error",
            ErrorKind::Unsupported => "not supported",
            ErrorKind::Usage => "usage error",
            ErrorKind::Limit => "limit reached",
            ErrorKind::Internal => "internal error (a bug in matdiff)",
        };
        let labels: Vec<&Label> =
            self.labels.iter().filter(|l| l.span.end.max(l.span.start + 1) <= source.len()).collect();
        if labels.is_empty() {
            let mut out = format!("error: {title}: {}\n", self.message);
            for n in &self.notes {
                out.push_str(&format!("  = note: {n}\n"));
            }
            return out;
        }
        let primary = labels[0].span;
        let config = Config::default()
            .with_color(false)
            .with_char_set(CharSet::Ascii)
            .with_index_type(IndexType::Byte);
        let mut primary_start = primary.start.min(source.len());
        while !source.is_char_boundary(primary_start) {
            primary_start -= 1;
        }
        let mut report = Report::build(ReportKind::Error, (source_name, primary_start..primary_start))
            .with_config(config)
            .with_message(format!("{title}: {}", self.message));
        // Byte spans on character boundaries (a caret under `⊙` covers all of it).
        let snap = |start: usize, end: usize| {
            let mut start = start.min(source.len());
            while !source.is_char_boundary(start) {
                start -= 1;
            }
            let mut end = end.max(start + 1).min(source.len());
            while end < source.len() && !source.is_char_boundary(end) {
                end += 1;
            }
            start..end.max(start)
        };
        for (i, l) in labels.iter().enumerate() {
            report = report.with_label(
                ALabel::new((source_name, snap(l.span.start, l.span.end)))
                    .with_message(&l.message)
                    .with_order(i as i32),
            );
        }
        for n in &self.notes {
            report = report.with_note(n);
        }
        let mut buf = Vec::new();
        let written = report.finish().write((source_name, Source::from(source)), &mut buf);
        match written {
            Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
            Err(_) => format!("error: {title}: {}\n", self.message),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
