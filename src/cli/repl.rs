//! `matdiff repl`: declarations that persist, bare expressions that print
//! their shape, and every subcommand with the same options.
//!
//! Entry point: [`run`]. On a terminal it uses a line editor (history kept
//! across runs, Ctrl-R search, completion, multi-line input); otherwise it
//! reads standard input line by line without prompts, so sessions can be
//! scripted (`matdiff repl < session.txt`).

use std::cell::RefCell;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use super::command::{self, Command, MAX_INPUT_BYTES};
use super::progress::{Bar, Cleared};
use super::report::{self, render_error, render_error_in, Highlighted, Part, Style};
use crate::syntax::parse_program;
use crate::Control;

const HELP: &str = "\
Declarations persist:   W1 : 3x4      x : n      a : scalar      Z = W1*X
A bare expression prints its shape:   W1*W2*X
Commands take the same options as on the command line:
  derive EXPR [--wrt V]... [--steps] [--latex] [--json]
  verify EXPR --wrt V --claim FORMULA
  check EXPR [--wrt V]... [--dims d0=3] [--seed N]
  plan EXPR [--dims d0=64,B=65536] [--json] [--emit numpy|pytorch|jax]
  hessian EXPR --wrt V [--wrt U]      jacobian EXPR --wrt X
  latex EXPR
  :help   :shapes (declared and inferred shapes)   :reset   :clear   :quit
  :save FILE (the declarations, as a script for `matdiff repl < FILE`)
  (help, clear, quit and exit alone on a line work too)
A declaration of a name the session has replaces it. Ctrl-C stops a running
command; the session stays.
A line ending in \\, or one the parser finds unfinished (an open parenthesis,
a trailing operator), continues on the next line.";

const COMMANDS: [&str; 13] = [
    "derive", "verify", "check", "plan", "hessian", "jacobian", "latex", ":help", ":shapes", ":reset",
    ":clear", ":quit", ":save",
];

/// The session: the declarations and definitions so far, and the flag
/// that Ctrl-C raises to stop the running command.
#[derive(Default)]
pub struct Session {
    statements: Vec<Statement>,
    control: Control,
    /// How errors are written (colour on a terminal).
    style: Style,
    /// Whether kept declarations are echoed.
    echo: Echo,
}

/// Whether a kept declaration is echoed: on a terminal, as feedback; not
/// in a piped session, whose standard output is its commands' (a script's
/// JSON stays JSON). A replacement is said on standard error either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Echo {
    #[default]
    Quiet,
    Declarations,
}

/// One declaration or definition of the session, as typed.
#[derive(Clone, Debug)]
struct Statement {
    /// The name it declares or defines.
    name: String,
    text: String,
}

/// What the session does after a line.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading lines; the line's exit status, as the command line's
    /// (0 success, 1 a check or verification that did not pass, 2 an error,
    /// 130 a command stopped by Ctrl-C).
    Continue(i32),
    /// End the session (`:quit`).
    Quit,
}

/// The name a message gives the line the user typed.
const INPUT: &str = "<input>";

/// Where an expression stands in the line the user typed.
struct Typed<'a> {
    line: &'a str,
    /// The expression's first byte in `line`.
    at: usize,
}

impl Session {
    /// The flag that stops the running command (the REPL's Ctrl-C handler
    /// requests it; each line clears it).
    pub fn control(&self) -> &Control {
        &self.control
    }

    /// The program text of `statements` and `expr`.
    fn program_of(statements: &[Statement], expr: &str) -> String {
        let mut parts: Vec<&str> = statements.iter().map(|s| s.text.as_str()).collect();
        parts.push(expr);
        parts.join("\n")
    }

    /// The program text of the session's statements and `expr`.
    fn program(&self, expr: &str) -> String {
        Session::program_of(&self.statements, expr)
    }

    /// The pieces of the program of `statements` and an expression typed
    /// as `typed`, for messages in the user's coordinates: each earlier
    /// statement under `<statement K>`, the expression in the typed line.
    /// The statements numbered in `fresh` (with the byte where each starts
    /// in the typed line) are the typed line's own.
    fn parts<'a>(statements: &'a [Statement], typed: &Typed<'a>, fresh: &[(usize, usize)]) -> Vec<Part<'a>> {
        let mut parts = vec![];
        let mut offset = 0;
        for (k, s) in statements.iter().enumerate() {
            parts.push(match fresh.iter().find(|(i, _)| *i == k) {
                Some(&(_, skip)) => Part { name: INPUT.to_string(), offset, skip, text: typed.line },
                None => Part { name: format!("<statement {}>", k + 1), offset, skip: 0, text: &s.text },
            });
            offset += s.text.len() + 1;
        }
        parts.push(Part { name: INPUT.to_string(), offset, skip: typed.at, text: typed.line });
        parts
    }

    /// An error about the program of `statements` and the expression typed
    /// as `typed`, rendered in the user's coordinates (an interruption
    /// says that the session is kept).
    fn render(
        &self,
        e: &crate::Error,
        statements: &[Statement],
        typed: &Typed,
        fresh: &[(usize, usize)],
    ) -> String {
        let mut e = e.clone();
        if e.kind == crate::ErrorKind::Interrupted {
            e.notes.push("the session's declarations are kept".to_string());
        }
        let parts = Session::parts(statements, typed, fresh);
        let mut text = render_error_in(&e, &parts, self.style);
        // A label shown in an earlier statement, where the text placed it.
        let earlier = |l: &crate::Label| report::locate(l, &parts).is_some_and(|(p, _)| p.name != INPUT);
        if e.labels.iter().any(earlier) {
            text.push_str(
                "  (a <statement K> is the K-th declaration or definition of the session: :shapes lists them, and one typed again replaces it)\n",
            );
        }
        text
    }

    /// Names declared or defined so far, for completion.
    pub fn names(&self) -> Vec<String> {
        self.statements.iter().map(|s| s.name.clone()).collect()
    }

    /// Runs one (possibly multi-line) input; output and errors go to the writers.
    pub fn line(&mut self, input: &str, out: &mut dyn Write, err: &mut dyn Write) -> Flow {
        self.control.clear();
        let line = join_lines(input).trim().to_string();
        if line.is_empty() {
            return Flow::Continue(0);
        }
        let first = line.split_whitespace().next().unwrap_or("");
        // The words a newcomer types first, alone on a line, are commands,
        // not undeclared variables whose shape would be printed.
        let first = match line.as_str() {
            "help" | "quit" | "exit" | "clear" => line.as_str(),
            _ => first,
        };
        let status = match first {
            ":quit" | ":q" | ":exit" | "quit" | "exit" => return Flow::Quit,
            "clear" | ":clear" => {
                // ANSI: clear the screen, cursor home.
                let _ = write!(out, "\x1b[2J\x1b[H");
                0
            }
            ":help" | "help" => {
                let _ = writeln!(out, "{HELP}");
                0
            }
            ":reset" => {
                self.statements.clear();
                let _ = writeln!(out, "declarations cleared");
                0
            }
            ":shapes" => self.shapes(out, err),
            ":save" => self.save(line[first.len()..].trim(), out, err),
            "derive" | "verify" | "check" | "plan" | "hessian" | "jacobian" | "latex" => {
                self.command(&line, first.len(), out, err)
            }
            _ if first.starts_with(':') => {
                let _ = writeln!(err, "error: unknown command `{first}`; :help lists them");
                2
            }
            _ => self.statement(&line, out, err),
        };
        Flow::Continue(status)
    }

    /// A declaration or definition (kept, if the session still types with
    /// it; one of a name the session has replaces it, saying so), or an
    /// expression (its shape is printed).
    fn statement(&mut self, line: &str, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
        let alone = parse_program(&format!("{line}\n0")).ok().filter(|p| {
            p.expr.kind == crate::syntax::ExprKind::Num(0.0) && (line.contains(':') || line.contains('='))
        });
        if let Some(p) = alone {
            return self.declare(line, &p, out, err);
        }
        let typed = Typed { line, at: 0 };
        let text = self.program(line);
        match parse_program(&text).and_then(|p| Ok(crate::shape::infer(&p)?.shape())) {
            Ok(shape) => {
                let _ = writeln!(out, "{shape}");
                0
            }
            Err(e) => {
                let _ = write!(err, "{}", self.render(&e, &self.statements, &typed, &[]));
                2
            }
        }
    }

    /// The declarations and definitions of `line` (parsed alone as `p`),
    /// each kept as a statement of its own, in place of the session's
    /// statement of the same name: echoed, a replacement with what it
    /// replaced. Refused, the session unchanged, where it no longer types.
    fn declare(
        &mut self,
        line: &str,
        p: &crate::syntax::Program,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> i32 {
        let mut pieces: Vec<(crate::syntax::Span, String)> = p
            .declarations
            .iter()
            .map(|d| (d.span, d.name.clone()))
            .chain(p.definitions.iter().map(|d| (d.span, d.name.clone())))
            .collect();
        pieces.sort_by_key(|(span, _)| span.start);
        let mut statements = self.statements.clone();
        let (mut kept, mut replaced, mut fresh) = (vec![], vec![], vec![]);
        for (span, name) in pieces {
            let text = line[span.start..span.end].to_string();
            kept.push(text.clone());
            match statements.iter().position(|s| s.name == name) {
                Some(k) => {
                    replaced.push(format!("note: `{text}` replaces `{}`", statements[k].text));
                    statements[k].text = text;
                    fresh.push((k, span.start));
                }
                None => {
                    fresh.push((statements.len(), span.start));
                    statements.push(Statement { name, text });
                }
            }
        }
        let checked = parse_program(&Session::program_of(&statements, "0"))
            .and_then(|p| crate::shape::infer(&p).map(drop));
        if let Err(e) = checked {
            // Shown against the statements as they would have been; the
            // typed line's pieces are its own statements there.
            let _ = write!(err, "{}", self.render(&e, &statements, &Typed { line, at: line.len() }, &fresh));
            let _ = writeln!(err, "  (not kept: the session is as it was)");
            return 2;
        }
        self.statements = statements;
        if self.echo == Echo::Declarations {
            for s in kept {
                let _ = writeln!(out, "{s}");
            }
        }
        for r in replaced {
            let _ = writeln!(err, "{r}");
        }
        0
    }

    /// A subcommand: `line` is the command word (its first `name_len`
    /// bytes), the expression, then the options. The options are parsed as
    /// on the command line; the command, given the session's program, runs
    /// through the command line's executor.
    fn command(&self, line: &str, name_len: usize, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
        let name = &line[..name_len];
        let words = split_words_at(&line[name_len..]);
        let at = words.iter().position(|(_, w)| w.starts_with("--")).unwrap_or(words.len());
        // The expression as typed where it has no quotes (so that messages
        // point into the line), else its words joined (the quotes taken out).
        let raw_end = words.get(at).map_or(line.len(), |(start, _)| name_len + start);
        let raw = line[name_len..raw_end].trim();
        let joined = words[..at].iter().map(|(_, w)| w.as_str()).collect::<Vec<_>>().join(" ");
        let (expr, typed) = if !raw.contains(['\'', '"']) {
            let start =
                if raw.is_empty() { name_len } else { name_len + line[name_len..].find(raw).unwrap_or(0) };
            (raw, Typed { line, at: start })
        } else {
            (joined.as_str(), Typed { line: &joined, at: 0 })
        };
        let options: Vec<String> = words[at..].iter().map(|(_, w)| w.clone()).collect();
        let json = options.iter().any(|w| w == "--json");
        // An unknown option is named, with the likeliest one meant, before
        // clap takes it for the expression's slot.
        if let Some(unknown) = options.iter().find(|w| w.starts_with("--") && !command::is_option(name, w)) {
            let message = match command::similar_option(name, unknown) {
                Some(known) => format!("`{unknown}` is not an option of {name}; did you mean `{known}`?"),
                None => format!("`{unknown}` is not an option of {name}; `{name} --help` lists them"),
            };
            return report::fail(
                &crate::Error::new(crate::ErrorKind::Usage, message),
                "",
                "",
                json,
                out,
                err,
                self.style,
            );
        }
        let args = ["matdiff", name].into_iter().map(str::to_string).chain(options.iter().cloned());
        let mut command = match command::parse(args.map(Into::into).collect()) {
            Ok(command) => command,
            Err(e) => return report::clap_failure_in_repl(&e, json, out, err, self.style),
        };
        if let Some(input) = command.input_mut() {
            let misplaced = match (&input.expr, &input.file) {
                (Some(e), _) => Some(format!("`{e}` follows the options; the expression comes before them")),
                (None, Some(_)) => {
                    Some("the expression is written on the line, not read with -f".to_string())
                }
                (None, None) => None,
            };
            if let Some(message) = misplaced {
                let e = crate::Error::new(crate::ErrorKind::Usage, message);
                return report::fail(&e, "", "", json, out, err, self.style);
            }
            input.expr = Some(self.program(expr));
        }
        debug_assert!(!matches!(command, Command::Repl | Command::Demo { .. }));
        match command::run(command, &self.control, out) {
            Ok(code) => code,
            Err(f) => {
                let _ = write!(err, "{}", self.render(&f.error, &self.statements, &typed, &[]));
                if json {
                    let parts = Session::parts(&self.statements, &typed, &[]);
                    let _ = write!(out, "{}", report::error_json_in(&f.error, &parts));
                }
                report::exit_code(&f.error)
            }
        }
    }

    /// `:save FILE`: the session's declarations and definitions as a script
    /// that `matdiff repl < FILE` replays (an existing file is replaced).
    fn save(&self, path: &str, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
        if path.is_empty() {
            let _ = writeln!(err, "error: usage error: :save takes a file name (:save session.txt)");
            return 2;
        }
        let mut text = format!("# matdiff session, saved by :save; replay with: matdiff repl < {path}\n");
        for s in &self.statements {
            text.push_str(&s.text);
            text.push('\n');
        }
        match std::fs::write(path, text) {
            Ok(()) => {
                let n = self.statements.len();
                let _ = writeln!(out, "saved {n} statement{} to {path}", if n == 1 { "" } else { "s" });
                0
            }
            Err(e) => {
                let _ = writeln!(err, "error: usage error: cannot write {path}: {e}");
                2
            }
        }
    }

    fn shapes(&self, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
        let text = self.program("0");
        let program = match parse_program(&text) {
            Ok(p) => p,
            Err(e) => {
                let _ =
                    write!(err, "{}", self.render(&e, &self.statements, &Typed { line: "0", at: 0 }, &[]));
                return 2;
            }
        };
        let mut typer = crate::shape::Typer::new();
        for d in &program.declarations {
            if d.binder.is_none() && typer.declare(&d.name, None, &d.shape, d.span).is_ok() {
                if let Some(s) = typer.var_shape(&crate::syntax::VarName::plain(&d.name)) {
                    let _ = writeln!(out, "{} : {s}", d.name);
                }
            } else if let Some(b) = &d.binder {
                let _ = writeln!(out, "{}[{b}] : declared family", d.name);
            }
        }
        for def in &program.definitions {
            if let Ok(s) = typer.infer(&def.expr) {
                let _ = writeln!(out, "{} = {}  : {}", def.name, def.expr, typer.resolve(s));
            }
        }
        if program.declarations.is_empty() && program.definitions.is_empty() {
            let _ = writeln!(out, "no declarations yet");
        }
        0
    }
}

/// Splits a command line into words, each with the byte where it starts;
/// single or double quotes group.
fn split_words_at(s: &str) -> Vec<(usize, String)> {
    let mut words = vec![];
    let mut current = String::new();
    let mut start = 0;
    let mut quote: Option<char> = None;
    let mut any = false;
    for (i, c) in s.char_indices() {
        if !any && current.is_empty() && quote.is_none() && !c.is_whitespace() {
            start = i;
        }
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !current.is_empty() {
                    words.push((start, std::mem::take(&mut current)));
                    any = false;
                }
            }
            (None, c) => current.push(c),
        }
    }
    if any || !current.is_empty() {
        words.push((start, current));
    }
    words
}

/// The words of [`split_words_at`].
fn split_words(s: &str) -> Vec<String> {
    split_words_at(s).into_iter().map(|(_, w)| w).collect()
}

/// A line without its comment: from a `#` outside quotes to the end.
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (None, '#') => return &line[..i],
            _ => {}
        }
    }
    line
}

/// An input of one or more lines as one line: each line without its
/// comment (which would otherwise swallow the lines after it) and its
/// trailing `\`, the lines joined by a space.
fn join_lines(input: &str) -> String {
    input
        .split('\n')
        .map(|l| {
            let l = strip_comment(l).trim_end();
            l.strip_suffix('\\').unwrap_or(l)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The text of a (joined) input that the parser reads: the expression of
/// a command (its words before the first option), or a statement; `None`
/// for a `:` command.
fn parsed_part(line: &str) -> Option<String> {
    let line = line.trim();
    let first = line.split_whitespace().next().unwrap_or("");
    match first {
        _ if first.starts_with(':') => None,
        "derive" | "verify" | "check" | "plan" | "hessian" | "jacobian" | "latex" => {
            let words = split_words(&line[first.len()..]);
            let at = words.iter().position(|w| w.starts_with("--")).unwrap_or(words.len());
            Some(words[..at].join(" "))
        }
        _ => Some(line.to_string()),
    }
}

/// Whether an input continues on the next line: its last line ends in
/// `\`, or the parser finds it unfinished ([`crate::syntax::unfinished`]:
/// `W * (`, `W +`). Parentheses in comments and quoted options do not
/// count.
pub fn incomplete(input: &str) -> bool {
    let last = input.trim_end_matches('\n').rsplit('\n').next().unwrap_or("");
    if strip_comment(last).trim_end().ends_with('\\') {
        return true;
    }
    parsed_part(&join_lines(input)).is_some_and(|text| crate::syntax::unfinished(&text))
}

/// Runs a session on piped input, without prompts. Lines are numbered from
/// 1 in messages. No line is lost without a word: a line that is not UTF-8
/// is an error for that line (and the input it continued), and an input
/// still unfinished at the end is an error that names its first line.
/// The exit status is the worst of the inputs' (2 over 1 over 0), so that
/// a script of checks can gate, and the lines that failed are named last.
fn piped(session: &mut Session, input: impl BufRead, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let mut failed: Vec<(usize, i32)> = vec![];
    read_piped(session, input, out, err, &mut failed);
    let worst = failed.iter().map(|&(_, status)| status).max().unwrap_or(0);
    if !failed.is_empty() {
        let lines: Vec<String> = failed
            .iter()
            .map(|(line, status)| {
                let what = if *status == 1 { "did not pass" } else { "failed" };
                format!("line {line} {what} (status {status})")
            })
            .collect();
        let _ = writeln!(err, "repl: {}; exit status {worst}", lines.join(", "));
    }
    worst
}

/// The loop of [`piped`]: each input's first line and status where it is not 0.
fn read_piped(
    session: &mut Session,
    mut input: impl BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
    failed: &mut Vec<(usize, i32)>,
) {
    let cap = MAX_INPUT_BYTES;
    let mut pending = String::new();
    let (mut first, mut number) = (0usize, 0usize);
    let mut bytes = Vec::new();
    loop {
        bytes.clear();
        match std::io::Read::take(&mut input, cap as u64 + 1).read_until(b'\n', &mut bytes) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                let _ = writeln!(err, "error: cannot read standard input after line {number}: {e}");
                failed.push((number + 1, 2));
                return;
            }
        }
        number += 1;
        if bytes.len() > cap {
            let _ = writeln!(
                err,
                "error: limit reached: line {number} is longer than {} MiB; the rest of the input is not read",
                cap >> 20
            );
            failed.push((number, 2));
            return;
        }
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        let line = match std::str::from_utf8(&bytes) {
            Ok(line) => line,
            Err(e) => {
                let dropped = if pending.trim().is_empty() {
                    String::new()
                } else {
                    format!("; so is the input from line {first} that it continued")
                };
                let _ = writeln!(
                    err,
                    "error: line {number} is not UTF-8 text (byte {} is not); it is skipped{dropped}",
                    e.valid_up_to() + 1
                );
                failed.push((number, 2));
                pending.clear();
                continue;
            }
        };
        if pending.is_empty() {
            first = number;
        }
        if pending.len() + line.len() > cap {
            let _ = writeln!(
                err,
                "error: limit reached: the input from line {first} is longer than {} MiB; it is skipped",
                cap >> 20
            );
            failed.push((first, 2));
            pending.clear();
            continue;
        }
        pending.push_str(line);
        pending.push('\n');
        if incomplete(&pending) {
            continue;
        }
        match session.line(&std::mem::take(&mut pending), out, err) {
            Flow::Quit => return,
            Flow::Continue(0) => {}
            Flow::Continue(status) => failed.push((first, status)),
        }
    }
    if !pending.trim().is_empty() {
        let _ = writeln!(err, "error: the input from line {first} is unfinished at the end of the input");
        failed.push((first, 2));
        if let Some(Err(e)) =
            parsed_part(&join_lines(&pending)).map(|text| parse_program(&text).map(|_| text))
        {
            let text = parsed_part(&join_lines(&pending)).unwrap_or_default();
            let _ = write!(err, "{}", render_error(&e, INPUT, &text));
        }
    }
}

/// Completion of commands, functions and the names declared so far.
struct ReplHelper {
    names: Rc<RefCell<Vec<String>>>,
}

impl Completer for ReplHelper {
    type Candidate = String;

    fn complete(&self, line: &str, pos: usize, _: &Context<'_>) -> rustyline::Result<(usize, Vec<String>)> {
        let start = line[..pos]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .map_or(0, |i| i + 1);
        let word = &line[start..pos];
        // An option of the line's command: `derive W*X --w` → `--wrt`.
        let dashes = line[..pos].rfind(char::is_whitespace).map_or(0, |i| i + 1);
        if line[dashes..pos].starts_with("--") {
            let command = line.split_whitespace().next().unwrap_or("");
            let typed = &line[dashes..pos];
            let options =
                command::long_options(command).into_iter().filter(|o| o.starts_with(typed) && o != typed);
            return Ok((dashes, options.collect()));
        }
        if word.is_empty() {
            return Ok((pos, vec![]));
        }
        let functions = crate::syntax::function_names().into_iter().map(str::to_string);
        let mut candidates: Vec<String> = COMMANDS
            .iter()
            .map(|c| c.to_string())
            .chain(functions)
            .chain(self.names.borrow().iter().cloned())
            .filter(|c| c.starts_with(word) && c != word)
            .collect();
        candidates.sort();
        candidates.dedup();
        Ok((start, candidates))
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {}

/// Every line is accepted as typed: an unfinished input is continued by
/// the loop of [`run`], under the continuation prompt (the line editor has
/// none for a buffer it keeps open).
impl Validator for ReplHelper {}

impl Helper for ReplHelper {}

/// Entries the history keeps, unless `MATDIFF_HISTORY_SIZE` says another
/// number (the oldest go first).
pub const HISTORY_SIZE: usize = 10_000;

/// Largest history file read; a larger one is neither read nor written.
const MAX_HISTORY_BYTES: u64 = 16 << 20;

/// The history's length: `MATDIFF_HISTORY_SIZE`, or [`HISTORY_SIZE`].
fn history_size() -> usize {
    match std::env::var("MATDIFF_HISTORY_SIZE") {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| {
            eprintln!("note: MATDIFF_HISTORY_SIZE=`{text}` is not a number; the history keeps {HISTORY_SIZE} entries");
            HISTORY_SIZE
        }),
        Err(_) => HISTORY_SIZE,
    }
}

/// Whether the history may be read from and saved to `path`: a regular
/// file of at most [`MAX_HISTORY_BYTES`], or no file yet. (A link to
/// /dev/zero was read until memory ran out; a FIFO blocked the start.)
fn history_file(path: &Path) -> std::result::Result<bool, String> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        Ok(m) if !m.is_file() => Err(format!("{} is not a regular file", path.display())),
        Ok(m) if m.len() > MAX_HISTORY_BYTES => {
            Err(format!("{} is larger than {} MiB", path.display(), MAX_HISTORY_BYTES >> 20))
        }
        Ok(_) => Ok(true),
    }
}

/// A history line of rustyline's format 2 (`\n` a line feed, `\\` a
/// backslash); a line with another escape is kept as it is, as rustyline does.
/// A history entry as a line of rustyline's `#V2` file: `\` and newlines escaped.
fn escape(entry: &str) -> String {
    entry.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Appends `entry` to the history file as it is entered, so that a session
/// that ends abruptly (Ctrl-C during a command, a closed terminal) keeps its
/// lines; the file is rewritten whole, and trimmed, when the session ends.
fn append_history_entry(path: &Path, entry: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut head = [0u8; 3];
    let v2 = std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head)).is_ok()
        && &head == b"#V2";
    let fresh = std::fs::metadata(path).map_or(true, |m| m.len() == 0);
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    if fresh {
        writeln!(file, "#V2")?;
    }
    // (A file of the old format, without the header, takes the entry on one line.)
    let line = if v2 || fresh { escape(entry) } else { entry.replace('\n', " ") };
    writeln!(file, "{line}")
}

fn unescape(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            _ => return line.to_string(),
        }
    }
    out
}

/// Loads the history file into the editor, line by line: a line that is
/// not UTF-8 is skipped (and named), not the rest of the file, which the
/// next save would then have cut off. Returns whether the history may be
/// saved to `path`; what is not done is said on standard error.
fn load_history(editor: &mut Editor<ReplHelper, DefaultHistory>, path: &Path, size: usize) -> bool {
    let not_kept = |why: String| eprintln!("note: history: {why}; the history is neither read nor saved");
    match history_file(path) {
        Ok(false) => return true,
        Ok(true) => {}
        Err(why) => {
            not_kept(why);
            return false;
        }
    }
    let mut bytes = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| {
        std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_HISTORY_BYTES + 1), &mut bytes)
    });
    if let Err(e) = read {
        not_kept(format!("cannot read {}: {e}", path.display()));
        return false;
    }
    if bytes.len() as u64 > MAX_HISTORY_BYTES {
        not_kept(format!("{} is larger than {} MiB", path.display(), MAX_HISTORY_BYTES >> 20));
        return false;
    }
    let mut lines = bytes.split(|&b| b == b'\n').enumerate().peekable();
    let v2 = lines.peek().is_some_and(|(_, first)| *first == b"#V2");
    let (mut entries, mut bad) = (0usize, vec![]);
    for (i, line) in lines.skip(usize::from(v2)) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        match std::str::from_utf8(line) {
            Ok(text) => {
                let _ = editor.add_history_entry(if v2 { unescape(text) } else { text.to_string() });
                entries += 1;
            }
            Err(_) => bad.push(i + 1),
        }
    }
    if !bad.is_empty() {
        let shown: Vec<String> = bad.iter().take(5).map(|n| n.to_string()).collect();
        let more = if bad.len() > 5 { ", …" } else { "" };
        eprintln!(
            "note: history: skipped {} line(s) of {} that are not UTF-8 text (line {}{more}); the other lines are kept",
            bad.len(),
            path.display(),
            shown.join(", ")
        );
    }
    if entries > size {
        eprintln!(
            "note: history: keeping the newest {size} of its {entries} entries (MATDIFF_HISTORY_SIZE sets the number)"
        );
    }
    true
}

fn history_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("share")))?;
    Some(base.join("matdiff").join("history"))
}

/// Runs the REPL on standard input; returns the exit status.
pub fn run() -> i32 {
    let stdout = std::io::stdout();
    // (Unlocked: a progress bar's ticks write to it from their thread.)
    let mut stderr = std::io::stderr();
    // A long command's progress bar; Ctrl-C's flag.
    let bar = Bar::new();
    let control = bar.listen(Control::default());
    let mut session = Session { style: Style::of(&stderr), control, ..Session::default() };
    // Derived results' names in bold where standard output is a colour terminal.
    let highlight = Style::of(&stdout) == Style::Colour;
    let mut lock = stdout.lock();
    let mut out: Box<dyn Write> =
        if highlight { Box::new(Highlighted::new(&mut lock)) } else { Box::new(&mut lock) };
    let mut out = Cleared::new(&bar, &mut out);
    let mut err = Cleared::new(&bar, &mut stderr);
    if !std::io::stdin().is_terminal() {
        return piped(&mut session, std::io::stdin().lock(), &mut out, &mut err);
    }
    session.echo = Echo::Declarations;
    let names = Rc::new(RefCell::new(vec![]));
    let size = history_size();
    let config = rustyline::Config::builder().max_history_size(size).map(|b| b.build()).unwrap_or_default();
    let mut editor: Editor<ReplHelper, DefaultHistory> = match Editor::with_config(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot start the line editor: {e}");
            return 2;
        }
    };
    editor.set_helper(Some(ReplHelper { names: names.clone() }));
    // (Kept only in a regular file, or where there is none yet.)
    let history = history_path().filter(|path| load_history(&mut editor, path, size));
    // Ctrl-C while a command runs (the line editor, reading, takes it as a
    // key) stops that command at its next poll; a second one, for a command
    // that does not stop, ends matdiff as Ctrl-C always did.
    let control = session.control().clone();
    // (The handler writes nothing: the command holds standard error's lock,
    // and a second Ctrl-C must not wait for it. The stopped command says so.)
    let handler = ctrlc::set_handler(move || {
        if control.is_interrupted() {
            std::process::exit(130);
        }
        control.interrupt();
    });
    if let Err(e) = handler {
        eprintln!("note: Ctrl-C cannot be caught here ({e}); it ends matdiff");
    }
    let colour = highlight;
    let prompt = if colour { "\x1b[1mmatdiff>\x1b[0m " } else { "matdiff> " };
    // As wide as the prompt, so that a continued input lines up.
    let more = if colour { "\x1b[1m     ...>\x1b[0m " } else { "     ...> " };
    let mut pending = String::new();
    println!("matdiff {} — :help for help, Ctrl-D to quit", env!("CARGO_PKG_VERSION"));
    loop {
        let shown = if pending.is_empty() { prompt } else { more };
        match editor.readline(shown) {
            Ok(line) => {
                pending.push_str(&line);
                if incomplete(&pending) {
                    pending.push('\n');
                    continue;
                }
                let input = std::mem::take(&mut pending);
                let _ = editor.add_history_entry(input.as_str());
                if let Some(path) = history.as_deref().filter(|path| history_file(path).is_ok()) {
                    if let Err(e) = append_history_entry(path, &input) {
                        eprintln!("note: history: cannot append to {}: {e}", path.display());
                    }
                }
                bar.restart();
                let outcome = session.line(&input, &mut out, &mut err);
                bar.restart();
                let _ = out.flush();
                *names.borrow_mut() = session.names();
                if outcome == Flow::Quit {
                    break;
                }
            }
            // Ctrl-C at the prompt drops the line, and the input it continued.
            Err(ReadlineError::Interrupted) => pending.clear(),
            Err(_) => break,
        }
    }
    // (Unless something other than a regular file took its place meanwhile.)
    if let Some(path) = history.filter(|path| history_file(path).is_ok()) {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = editor.save_history(&path) {
            eprintln!("note: history: cannot save {}: {e}", path.display());
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parser decides: an open parenthesis or a trailing operator
    /// continues, one in a comment or a quoted option does not.
    #[test]
    fn inputs_continue_where_the_parser_wants_more() {
        for (input, more) in [
            ("W * (\n", true),
            ("W +\n", true),
            ("W : 3 x\n", true),
            ("W1 * \\\n", true),
            ("derive W1 * (W2\n", true),
            ("W * W  # an open ( here\n", false),
            ("# (\n", false),
            ("verify W*X --wrt W --claim '(G*X^T'\n", false),
            ("W)\n", false),
            (":shapes (\n", false),
            ("W * (  # open\n  W)\n", false),
        ] {
            assert_eq!(incomplete(input), more, "{input:?}");
        }
        assert_eq!(join_lines("W * (  # open\n  W)\n"), "W * (   W) ");
    }
}
