//! Errors as a user sees them: rendered against the source (ariadne,
//! ASCII, no colour) with a caret under the offending operator, or as a JSON
//! object; the engine's hints phrased as command-line options; exit statuses.

use std::io::Write;

use crate::error::{Error, ErrorKind, Hint, Label};

/// The process exit status for an error (docs/cli.md, Exit status): every kind exits 2
/// but an interruption, 130 as the shells give a command stopped by Ctrl-C.
/// (A failed check or verification, which is no error, exits 1.)
pub fn exit_code(e: &Error) -> i32 {
    match e.kind {
        ErrorKind::Interrupted => 130,
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

/// How messages are written: in colour on a terminal that wants it, else
/// plain text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Style {
    /// No escape codes: pipes, files, tests, `NO_COLOR`.
    #[default]
    Plain,
    /// ANSI colours: error reports as ariadne colours them, `d/dV` in bold.
    Colour,
}

impl Style {
    /// Colour for a stream that is a terminal, unless `NO_COLOR` is set
    /// (to anything but the empty string, <https://no-color.org>) or the
    /// terminal is `dumb`.
    pub fn of(stream: &impl std::io::IsTerminal) -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        if stream.is_terminal() && !no_color && !dumb {
            Style::Colour
        } else {
            Style::Plain
        }
    }
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
    style: Style,
) -> i32 {
    let part = Part { name: source_name.to_string(), offset: 0, skip: 0, text: source };
    let _ = write!(err, "{}", render_error_in(e, &[part], style));
    if json {
        let _ = write!(out, "{}", error_json(e));
    }
    exit_code(e)
}

/// Reports an argument clap refused (or `--help`, `--version`, exit 0, on
/// `out`); a refused `--json` command also prints a usage error as JSON
/// on `out`.
pub(super) fn clap_failure(
    e: &clap::Error,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
    style: Style,
) -> i32 {
    clap_report(e, json, out, err, style, |text| text)
}

/// [`clap_failure`] for a command typed in the REPL, whose usage lines
/// name the REPL's command (`derive EXPR ...`), not the binary's.
pub(super) fn clap_failure_in_repl(
    e: &clap::Error,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
    style: Style,
) -> i32 {
    clap_report(e, json, out, err, style, |text| {
        let text: String = text
            .split_inclusive('\n')
            .map(|l| if l.contains("Usage:") { l.replacen("matdiff ", "", 1) } else { l.to_string() })
            .collect();
        text.replace("<EXPR|--file <FILE>>", "EXPR")
    })
}

/// clap's message as `phrase` words it: coloured as clap colours it on
/// standard error where `style` says so; plain in help on standard output
/// (which may be a pipe) and in the JSON error.
fn clap_report(
    e: &clap::Error,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
    style: Style,
    phrase: impl Fn(String) -> String,
) -> i32 {
    let code = e.exit_code();
    let plain = phrase(e.render().to_string());
    if code == 0 {
        let _ = write!(out, "{plain}");
        return 0;
    }
    let shown = match style {
        Style::Plain => plain.clone(),
        Style::Colour => phrase(e.render().ansi().to_string()),
    };
    let _ = write!(err, "{shown}");
    if json {
        let mut lines = plain.lines().filter(|l| !l.trim().is_empty());
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
    render_error_in(
        e,
        &[Part { name: source_name.to_string(), offset: 0, skip: 0, text: source }],
        Style::Plain,
    )
}

/// A piece of a program's text shown under a name of its own: the REPL's
/// typed line (its program is the session's statements and the line's
/// expression), a statement entered before it. The program's bytes from
/// `offset` on are `text`'s from `skip` on (the typed line's command word
/// and options are not in the program).
pub(super) struct Part<'a> {
    pub name: String,
    pub offset: usize,
    pub skip: usize,
    pub text: &'a str,
}

/// The part that holds a label, and the label's bytes in that part's text
/// (widened to character boundaries).
pub(super) fn locate<'p, 'a>(
    l: &Label,
    parts: &'p [Part<'a>],
) -> Option<(&'p Part<'a>, std::ops::Range<usize>)> {
    let end = l.span.end.max(l.span.start + 1);
    let part = parts
        .iter()
        .find(|p| l.span.start >= p.offset && end <= p.offset + p.text.len().saturating_sub(p.skip))?;
    let text = part.text;
    let mut start = (l.span.start - part.offset + part.skip).min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (l.span.end - part.offset + part.skip).min(text.len()).max(start);
    while end < text.len() && !text.is_char_boundary(end) {
        end += 1;
    }
    Some((part, start..end))
}

/// [`error_json`] over a program in parts (the REPL's): each label's
/// `start` and `end` in the text of the part that holds it, which the label
/// names as its `source` (`<input>`, the line as typed; `<statement K>`);
/// labels outside every part are left out, as [`render_error_in`] leaves them.
pub(super) fn error_json_in(e: &Error, parts: &[Part]) -> String {
    let e = with_hints(e);
    let mut value = serde_json::to_value(&e).expect("errors serialize");
    let labels = e
        .labels
        .iter()
        .filter_map(|l| {
            let (part, span) = locate(l, parts)?;
            Some(serde_json::json!({
                "start": span.start,
                "end": span.end,
                "message": l.message,
                "source": part.name,
            }))
        })
        .collect();
    value["labels"] = serde_json::Value::Array(labels);
    format!("{}\n", serde_json::to_string_pretty(&value).expect("JSON values serialize"))
}

/// [`render_error`] over a program in parts: each label is shown in the
/// part that holds it, in that part's coordinates; labels outside every
/// part are left out.
pub(super) fn render_error_in(e: &Error, parts: &[Part], style: Style) -> String {
    use ariadne::{CharSet, Config, IndexType, Label as ALabel, Report, ReportKind};
    let e = &with_hints(e);
    let title = e.kind.title();
    // Each label with its part and its span there, at least one character
    // wide (a caret under `⊙` covers all of it).
    let located: Vec<(&Label, &Part, std::ops::Range<usize>)> = e
        .labels
        .iter()
        .filter_map(|l| {
            let (part, span) = locate(l, parts)?;
            let text = part.text;
            let mut end = span.end.max(span.start + 1).min(text.len());
            while end < text.len() && !text.is_char_boundary(end) {
                end += 1;
            }
            Some((l, part, span.start..end))
        })
        .collect();
    let Some((_, first_part, first_span)) = located.first() else {
        let error = match style {
            Style::Plain => "error:",
            Style::Colour => "\x1b[31merror:\x1b[0m",
        };
        let mut out = format!("{error} {title}: {}\n", e.message);
        for n in &e.notes {
            out.push_str(&format!("  = note: {n}\n"));
        }
        return out;
    };
    let config = Config::default()
        .with_color(style == Style::Colour)
        .with_char_set(CharSet::Ascii)
        .with_index_type(IndexType::Byte);
    let mut report =
        Report::build(ReportKind::Error, (first_part.name.clone(), first_span.start..first_span.start))
            .with_config(config)
            .with_message(format!("{title}: {}", e.message));
    for (i, (l, part, span)) in located.iter().enumerate() {
        report = report.with_label(
            ALabel::new((part.name.clone(), span.clone()))
                .with_message(&l.message)
                .with_order(i as i32)
                // (Ignored in plain text.)
                .with_color(if i == 0 { ariadne::Color::Red } else { ariadne::Color::Yellow }),
        );
    }
    for n in &e.notes {
        report = report.with_note(n);
    }
    let sources = ariadne::sources(parts.iter().map(|p| (p.name.clone(), p.text)));
    let mut buf = Vec::new();
    match report.finish().write(sources, &mut buf) {
        // `error:` as clap's messages and the plain ones begin, not `Error:`.
        Ok(()) => String::from_utf8_lossy(&buf).replacen("Error:", "error:", 1),
        Err(_) => format!("error: {title}: {}\n", e.message),
    }
}

/// Standard output on a colour terminal: each line that states a derived
/// result (`d/dW2 = ...`, `H[dX] = ...`) with its name in bold, the rest
/// as written. Lines pass through whole; the last, unfinished one on
/// flush or drop.
pub(super) struct Highlighted<'w> {
    inner: &'w mut dyn Write,
    line: Vec<u8>,
}

impl<'w> Highlighted<'w> {
    pub(super) fn new(inner: &'w mut dyn Write) -> Highlighted<'w> {
        Highlighted { inner, line: Vec::new() }
    }

    fn emit(&mut self) -> std::io::Result<()> {
        let line = std::mem::take(&mut self.line);
        let named = [&b"d/d"[..], b"dL/d", b"d2L/d", b"H["].iter().any(|p| line.starts_with(p));
        let end = line.windows(3).position(|w| w == b" = ").filter(|_| named);
        match end {
            Some(k) => {
                self.inner.write_all(b"\x1b[1m")?;
                self.inner.write_all(&line[..k])?;
                self.inner.write_all(b"\x1b[0m")?;
                self.inner.write_all(&line[k..])
            }
            None => self.inner.write_all(&line),
        }
    }
}

impl Write for Highlighted<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &b in buf {
            self.line.push(b);
            if b == b'\n' {
                self.emit()?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.emit()?;
        self.inner.flush()
    }
}

impl Drop for Highlighted<'_> {
    fn drop(&mut self) {
        let _ = self.emit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refused `--json` command on a colour terminal: clap's colours on
    /// standard error, plain JSON on standard output; and the option meant
    /// named where clap's own similarity has none (`--wtr`).
    #[test]
    fn refused_arguments_colour_only_standard_error() {
        let args = ["matdiff", "derive", "W*x", "--wtr", "W", "--json"];
        let e = super::super::command::parse(args.iter().map(Into::into).collect()).unwrap_err();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(clap_failure(&e, true, &mut out, &mut err, Style::Colour), 2);
        let (out, err) = (String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap());
        assert!(err.contains('\x1b') && err.contains("--wrt"), "{err:?}");
        assert!(!out.contains('\x1b') && out.contains("a similar argument exists: '--wrt'"), "{out}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap();
    }

    /// In parts (the REPL's program: a statement, then the typed line after
    /// its command word), each JSON label is placed in the part that holds
    /// it and names it; one outside every part is left out, as in the text.
    #[test]
    fn json_labels_in_parts_name_their_source() {
        use crate::syntax::Span;
        let (statement, typed) = ("Z = W * X", "derive Z + Q --json");
        // The program: the statement, a newline, the typed expression `Z + Q`.
        let parts = [
            Part { name: "<statement 1>".into(), offset: 0, skip: 0, text: statement },
            Part { name: "<input>".into(), offset: statement.len() + 1, skip: 7, text: typed },
        ];
        let e = Error::new(crate::ErrorKind::Shape, "cannot add")
            .label(Span { start: 12, end: 13 }, "here")
            .label(Span { start: 6, end: 7 }, "from here")
            .label(Span { start: 400, end: 401 }, "nowhere");
        let doc: serde_json::Value = serde_json::from_str(&error_json_in(&e, &parts)).unwrap();
        let labels = doc["labels"].as_array().unwrap();
        assert_eq!(labels.len(), 2, "{doc}");
        let placed = |k: usize| {
            let l = &labels[k];
            let text = if l["source"] == "<input>" { typed } else { statement };
            (
                l["source"].as_str().unwrap(),
                &text[l["start"].as_u64().unwrap() as usize..l["end"].as_u64().unwrap() as usize],
            )
        };
        assert_eq!(placed(0), ("<input>", "+"));
        assert_eq!(placed(1), ("<statement 1>", "*"));
    }
}
