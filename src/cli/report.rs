//! Errors as a user sees them: rendered against the source (ariadne,
//! ASCII, no colour) with a caret under the offending operator, or as a JSON
//! object; the engine's hints phrased as command-line options; exit statuses.

use std::io::Write;

use crate::error::{Error, ErrorKind, Hint, Label};

/// The process exit status for an error (docs/cli.md, Exit status): every kind exits 2.
/// (A failed check or verification, which is no error, exits 1.)
pub fn exit_code(e: &Error) -> i32 {
    match e.kind {
        ErrorKind::Parse
        | ErrorKind::Shape
        | ErrorKind::Unsupported
        | ErrorKind::Usage
        | ErrorKind::Limit
        | ErrorKind::Internal => 2,
    }
}

/// The note that says how to give, on the command line, what a hint says is missing.
fn hint_note(hint: &Hint) -> String {
    match hint {
        Hint::GiveSize(example) => format!("give it with --dims, e.g. {example}"),
        Hint::SmallerLength => {
            "a length given with --dims: give it a smaller value, or leave it out of --dims for the symbolic plan"
                .to_string()
        }
        Hint::FewerTargets => "ask for fewer gradients, or other variables, with --wrt".to_string(),
        Hint::NameUpstream => "name the upstream gradient with --upstream NAME".to_string(),
        Hint::Claim => "pass it with --claim 'FORMULA'".to_string(),
    }
}

/// The error with its hints as notes in command-line terms (and no hints left).
pub fn with_hints(e: &Error) -> Error {
    let mut e = e.clone();
    for h in std::mem::take(&mut e.hints) {
        e.notes.push(hint_note(&h));
    }
    e
}

/// The error as a pretty-printed JSON object (`kind`, `message`, `labels`
/// with byte spans, `notes`), hints included as notes, and a newline.
pub fn error_json(e: &Error) -> String {
    json_text(&with_hints(e))
}

fn json_text(value: &impl serde::Serialize) -> String {
    let value = serde_json::to_value(value).expect("errors serialize");
    format!("{}\n", serde_json::to_string_pretty(&value).expect("JSON values serialize"))
}

/// Reports a failed command: the rendered error on `err`, and for a
/// `--json` command the JSON error on `out`; returns the exit status.
pub(super) fn fail(
    e: &Error,
    source_name: &str,
    source: &str,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let _ = write!(err, "{}", render_error(e, source_name, source));
    if json {
        let _ = write!(out, "{}", error_json(e));
    }
    exit_code(e)
}

/// Reports an argument clap refused (or `--help`, `--version`, exit 0, on
/// `out`); a refused `--json` command also prints a usage error as JSON
/// on `out`.
pub(super) fn clap_failure(e: &clap::Error, json: bool, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let code = e.exit_code();
    let text = e.render().to_string();
    if code == 0 {
        let _ = write!(out, "{text}");
        return 0;
    }
    let _ = write!(err, "{text}");
    if json {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let first = lines.next().unwrap_or("invalid arguments");
        let message = first.strip_prefix("error: ").unwrap_or(first).to_string();
        let mut error = Error::new(ErrorKind::Usage, message);
        error.notes = lines.map(|l| l.trim().to_string()).collect();
        let _ = write!(out, "{}", json_text(&error));
    }
    code
}

/// The message with the source line and carets, as a user sees it; hints
/// become notes that name the command-line options.
pub fn render_error(e: &Error, source_name: &str, source: &str) -> String {
    use ariadne::{CharSet, Config, IndexType, Label as ALabel, Report, ReportKind, Source};
    let e = &with_hints(e);
    let title = e.kind.title();
    let labels: Vec<&Label> =
        e.labels.iter().filter(|l| l.span.end.max(l.span.start + 1) <= source.len()).collect();
    if labels.is_empty() {
        let mut out = format!("error: {title}: {}\n", e.message);
        for n in &e.notes {
            out.push_str(&format!("  = note: {n}\n"));
        }
        return out;
    }
    let primary = labels[0].span;
    let config =
        Config::default().with_color(false).with_char_set(CharSet::Ascii).with_index_type(IndexType::Byte);
    let mut primary_start = primary.start.min(source.len());
    while !source.is_char_boundary(primary_start) {
        primary_start -= 1;
    }
    let mut report = Report::build(ReportKind::Error, (source_name, primary_start..primary_start))
        .with_config(config)
        .with_message(format!("{title}: {}", e.message));
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
    for n in &e.notes {
        report = report.with_note(n);
    }
    let mut buf = Vec::new();
    let written = report.finish().write((source_name, Source::from(source)), &mut buf);
    match written {
        Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
        Err(_) => format!("error: {title}: {}\n", e.message),
    }
}
