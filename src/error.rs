//! Errors that point at the source: a message, labelled spans, notes.
//!
//! Every stage reports through [`Error`], which is data: a kind, a message,
//! labelled byte spans of the source and notes (it implements
//! `serde::Serialize`). An error states what is wrong or missing in terms of
//! the input; how to supply a missing fact through a front end (a
//! command-line option) is the front end's to say, from the error's
//! [`Hint`]s. Rendering against the source text and exit statuses belong to
//! the front ends (`cli`).

use std::fmt;

use serde::Serialize;

use crate::syntax::Span;

/// What went wrong, which decides nothing but the first word of the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The input does not follow the grammar.
    Parse,
    /// Shapes do not fit (a product of 3x4 by 5x6) or contradict a declaration.
    Shape,
    /// A construct whose derivative matdiff cannot derive (yet): refused by name.
    Unsupported,
    /// A request that cannot be carried out as asked (a variable that does not occur, a claim that does not parse).
    Usage,
    /// A size or depth limit was hit.
    Limit,
    /// The caller stopped the work ([`crate::Control`]) before it finished.
    Interrupted,
    /// A bug in matdiff: an invariant failed. Never a silent wrong answer.
    Internal,
}

impl ErrorKind {
    /// The kind as the first words of a message: `parse error`, `not supported`, ...
    pub fn title(self) -> &'static str {
        match self {
            ErrorKind::Parse => "parse error",
            ErrorKind::Shape => "shape error",
            ErrorKind::Unsupported => "not supported",
            ErrorKind::Usage => "usage error",
            ErrorKind::Limit => "limit reached",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::Internal => "internal error (a bug in matdiff)",
        }
    }
}

/// A labelled span of the source (byte offsets `start..end`).
#[derive(Clone, Debug, Serialize)]
pub struct Label {
    /// The labelled bytes of the source.
    #[serde(flatten)]
    pub span: Span,
    /// What the label says about them.
    pub message: String,
}

/// What the caller could supply or ask for instead, for a front end to
/// phrase in its own terms (the command line names its options).
/// Serialized as its snake-case name, `{"give_size": "n=8"}` for a size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hint {
    /// A size or a length the input does not give; an example assignment
    /// (`n=8`).
    GiveSize(String),
    /// A length given to a product is too large for a numeric plan.
    SmallerLength,
    /// Fewer gradients, or other variables, would stay within a limit.
    FewerTargets,
    /// The upstream gradient needs another name.
    NameUpstream,
    /// The claimed gradient, as a formula.
    Claim,
}

/// An error with the places in the source it is about.
///
/// ```
/// use matdiff::{Error, ErrorKind};
/// let e = Error::new(ErrorKind::Usage, "no expression");
/// assert_eq!(e.to_string(), "no expression");
/// ```
#[derive(Clone, Debug, Serialize)]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// The one-line message, without the kind's title.
    pub message: String,
    /// The places in the source the error is about.
    pub labels: Vec<Label>,
    /// Further lines of explanation.
    pub notes: Vec<String>,
    /// How the input could give what is missing (a front end turns these
    /// into notes of its own; serialized only where there are any).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<Hint>,
}

impl Error {
    /// An error of the given kind, with no labels, notes or hints.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into(), labels: vec![], notes: vec![], hints: vec![] }
    }

    /// Adds a label; synthetic spans (nodes built by matdiff) are skipped.
    pub fn label(mut self, span: Span, message: impl Into<String>) -> Error {
        if !span.is_synthetic() {
            self.labels.push(Label { span, message: message.into() });
        }
        self
    }

    /// Adds a note.
    pub fn note(mut self, note: impl Into<String>) -> Error {
        self.notes.push(note.into());
        self
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: Hint) -> Error {
        self.hints.push(hint);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// A result whose error is, by default, matdiff's `Error`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
